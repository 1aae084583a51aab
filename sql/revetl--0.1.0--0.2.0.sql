-- revetl 0.1.0 -> 0.2.0: run by ALTER EXTENSION revetl UPDATE.
--
-- Every change to the schema lands here and in sql/revetl--0.2.0.sql in the
-- same commit (docs/operations.md, "Upgrading"): the upgrade test checks that
-- an updated 0.1.0 and a fresh 0.2.0 have the same schema, and that an
-- update keeps every sync, server, shadow row and run.
\echo Use "ALTER EXTENSION revetl UPDATE TO '0.2.0'" to load this file. \quit

-- One row per destination type, from the specs compiled into revetl.so
-- (src/core/connectors/registry.cpp): its options, auth schemes, objects
-- and modes, limits, and whether it returns record ids and takes
-- idempotency keys.
CREATE FUNCTION revetl._destination_types()
RETURNS jsonb
AS 'MODULE_PATHNAME', 'revetl_destination_types'
LANGUAGE C STABLE PARALLEL SAFE;

CREATE VIEW revetl.destination_types AS
SELECT d->>'type' AS type,
       d->>'summary' AS summary,
       d->'options' AS options,
       ARRAY(SELECT jsonb_array_elements_text(d->'auth')) AS auth,
       d->'objects' AS objects,
       ARRAY(SELECT jsonb_array_elements_text(d->'modes')) AS modes,
       d->'limits' AS limits,
       (d->>'returns_ids')::boolean AS returns_ids,
       (d->>'idempotency_keys')::boolean AS idempotency_keys
  FROM jsonb_array_elements(revetl._destination_types()) AS d;

GRANT SELECT ON revetl.destination_types TO PUBLIC;
COMMENT ON VIEW revetl.destination_types IS
  'one row per destination type: its options, auth schemes, objects, modes and limits';
