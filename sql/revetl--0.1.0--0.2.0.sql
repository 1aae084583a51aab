-- revetl 0.1.0 -> 0.2.0: run by ALTER EXTENSION revetl UPDATE.
--
-- Every change to the schema lands here and in sql/revetl--0.2.0.sql in the
-- same commit (docs/operations.md, "Upgrading"): the upgrade test checks that
-- an updated 0.1.0 and a fresh 0.2.0 have the same schema, and that an
-- update keeps every sync, server, shadow row and run.
\echo Use "ALTER EXTENSION revetl UPDATE TO '0.2.0'" to load this file. \quit

----------------------------------------------------------------------------
-- Identifier helpers for ad audiences (docs/identifiers.md): the normalised
-- and hashed emails, phone numbers, names and locations that Google Customer
-- Match and Meta Custom Audiences match on. Each result depends on its
-- arguments alone (not on the locale or any setting), hence IMMUTABLE and
-- PARALLEL SAFE. hashed_identifier is a SQL function without SET clauses,
-- so the planner inlines it into the calling query; every name in it is
-- schema-qualified instead.
----------------------------------------------------------------------------

CREATE FUNCTION revetl.normalize_email(email text, rule text DEFAULT 'default')
RETURNS text
AS 'MODULE_PATHNAME', 'revetl_normalize_email'
LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;

COMMENT ON FUNCTION revetl.normalize_email(text, text) IS
  'the email trimmed and lower-cased; rule google also removes all white space, and the dots and +tag of gmail.com and googlemail.com addresses; NULL if it is not an email';

-- Not STRICT: default_region is NULL unless given.
CREATE FUNCTION revetl.e164(phone text, default_region text DEFAULT NULL)
RETURNS text
AS 'MODULE_PATHNAME', 'revetl_e164'
LANGUAGE C IMMUTABLE CALLED ON NULL INPUT PARALLEL SAFE;

COMMENT ON FUNCTION revetl.e164(text, text) IS
  'the phone number in E.164 (+ and digits), parsed and validated by libphonenumber; default_region (ISO 3166-1 alpha-2) for numbers without a country code; NULL if it is not a valid number';

CREATE FUNCTION revetl.normalize_identifier(kind text, value text, rule text DEFAULT 'default',
                                            default_region text DEFAULT NULL)
RETURNS text
AS 'MODULE_PATHNAME', 'revetl_normalize_identifier'
LANGUAGE C IMMUTABLE CALLED ON NULL INPUT PARALLEL SAFE;

COMMENT ON FUNCTION revetl.normalize_identifier(text, text, text, text) IS
  'the value normalised for its kind as the rule''s vendor documents it: the text hashed_identifier hashes; NULL if it cannot be normalised';

-- The UTF-8 bytes of normalize_identifier's result, whatever the database
-- encoding: what hashed_identifier hashes. Callable by everyone, as the
-- inlined hashed_identifier runs with the caller's privileges.
CREATE FUNCTION revetl._identifier_bytes(kind text, value text, rule text, default_region text)
RETURNS bytea
AS 'MODULE_PATHNAME', 'revetl_identifier_bytes'
LANGUAGE C IMMUTABLE CALLED ON NULL INPUT PARALLEL SAFE;

CREATE FUNCTION revetl.hashed_identifier(kind text, value text, rule text DEFAULT 'default',
                                         default_region text DEFAULT NULL)
RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE
RETURN pg_catalog.encode(pg_catalog.sha256(revetl._identifier_bytes(kind, value, rule, default_region)), 'hex');

COMMENT ON FUNCTION revetl.hashed_identifier(text, text, text, text) IS
  'SHA-256 (64 lower-case hex characters) of the value normalised for its kind as the rule''s vendor documents it; NULL if it cannot be normalised';
