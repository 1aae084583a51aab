-- revetl 0.1.0 -> 0.2.0: run by ALTER EXTENSION revetl UPDATE.
--
-- Every change to the schema lands here and in sql/revetl--0.2.0.sql in the
-- same commit (docs/operations.md, "Upgrading"): the upgrade test checks that
-- an updated 0.1.0 and a fresh 0.2.0 have the same schema, and that an
-- update keeps every sync, server, shadow row and run.
\echo Use "ALTER EXTENSION revetl UPDATE TO '0.2.0'" to load this file. \quit
