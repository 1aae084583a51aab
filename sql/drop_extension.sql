-- DROP EXTENSION removes everything revetl made, shadow tables included,
-- and a fresh CREATE EXTENSION starts clean.
CREATE EXTENSION IF NOT EXISTS revetl;
CREATE SERVER IF NOT EXISTS hooks FOREIGN DATA WRAPPER revetl OPTIONS (type 'webhook', url 'http://127.0.0.1:9/x');
CREATE TABLE IF NOT EXISTS dropme (id int PRIMARY KEY);
SELECT revetl.create_sync('dropme_sync', 'dropme', 'hooks', ARRAY['id']) > 0 AS created;
\set VERBOSITY terse
-- Syncs' shadow tables depend on the extension's schema.
DROP EXTENSION revetl;
SET client_min_messages = warning;
DROP EXTENSION revetl CASCADE;
RESET client_min_messages;
\set VERBOSITY default
SELECT count(*) AS revetl_schemas FROM pg_namespace WHERE nspname = 'revetl';
CREATE EXTENSION revetl;
CREATE SERVER hooks2 FOREIGN DATA WRAPPER revetl OPTIONS (type 'webhook', url 'http://127.0.0.1:9/x');
SELECT revetl.create_sync('dropme_sync', 'dropme', 'hooks2', ARRAY['id']) AS new_id;
SELECT name, shadow_table FROM revetl.syncs;
