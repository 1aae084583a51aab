CREATE SYNC vip FROM users TO lists KEY (id) MODE AUDIENCE '4242' MAP (lower(email) AS email);
ALTER SYNC vip SET MODE AUDIENCE $$tag$$;
