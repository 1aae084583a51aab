-- revetl.destination_types and the check of a sync's target against its
-- destination's spec. (A file of its own, after the others: the syncs it
-- creates would shift the ids the earlier files expect.)
-- Every destination type, from the specs compiled into revetl.
SELECT type, auth, modes, limits, returns_ids, idempotency_keys FROM revetl.destination_types ORDER BY type;
SELECT type, o->>'name' AS option, o->>'on' AS "on", o->>'required' AS required, o->>'default' AS "default"
  FROM revetl.destination_types, jsonb_array_elements(options) AS o
 WHERE o->>'name' IN ('type', 'url', 'method', 'rate_limit', 'batch_size', 'token', 'password')
 ORDER BY 1, 3 DESC, 2;
SELECT type, objects FROM revetl.destination_types ORDER BY type;
-- What a MODE AUDIENCE string names, for the types that have the mode.
SELECT type, audience FROM revetl.destination_types WHERE audience IS NOT NULL ORDER BY type;

-- Every role may read it: it holds no secret.
CREATE ROLE dt_reader;
SET ROLE dt_reader;
SELECT array_agg(type ORDER BY type) FROM revetl.destination_types;
RESET ROLE;
DROP ROLE dt_reader;

-- A sync its destination cannot serve is refused when it is created or
-- altered, not at its first run.
CREATE TABLE dest_model (id int PRIMARY KEY, email text, domain text);
SELECT revetl.execute($$CREATE SYNC to_companies FROM dest_model TO hs OBJECT companies KEY (id)$$);
SELECT revetl.execute($$CREATE SYNC to_companies FROM dest_model TO hs OBJECT 'companies/../owners' KEY (id) MATCH ON domain$$);
SELECT revetl.execute($$CREATE SYNC to_companies FROM dest_model TO hs OBJECT companies KEY (id) MATCH ON domain$$);
SELECT revetl.execute($$CREATE SYNC to_hook FROM dest_model TO hooks OBJECT companies KEY (id)$$);
SELECT revetl.execute($$ALTER SYNC to_hook SET TO hs$$);
SELECT revetl.drop_sync('to_hook');
SELECT revetl.execute($$CREATE SYNC to_contacts FROM dest_model TO hs KEY (id)$$);
SELECT revetl.drop_sync('to_companies');
SELECT revetl.drop_sync('to_contacts');
DROP TABLE dest_model;
DROP SERVER hs, hooks2;
