-- create_sync refuses bad definitions with PostgreSQL-style errors and
-- leaves nothing behind.
CREATE EXTENSION IF NOT EXISTS revetl;
CREATE SERVER IF NOT EXISTS hooks FOREIGN DATA WRAPPER revetl
  OPTIONS (type 'webhook', url 'http://127.0.0.1:9/events');
CREATE TABLE IF NOT EXISTS leads (id int PRIMARY KEY, email text, score int);
\set VERBOSITY default

-- Unknown destination, or a server of another wrapper.
SELECT revetl.create_sync('s', 'leads', 'nohooks', ARRAY['id']);
CREATE FOREIGN DATA WRAPPER other_fdw;
CREATE SERVER other_server FOREIGN DATA WRAPPER other_fdw;
SELECT revetl.create_sync('s', 'leads', 'other_server', ARRAY['id']);

-- Unknown model, unknown key column (with a suggestion), bad key lists.
SELECT revetl.create_sync('s', 'no_such_table', 'hooks', ARRAY['id']);
SELECT revetl.create_sync('s', 'leads', 'hooks', ARRAY['idd']);
SELECT revetl.create_sync('s', 'leads', 'hooks', ARRAY[]::text[]);
SELECT revetl.create_sync('s', 'leads', 'hooks', ARRAY['id', 'id']);
SELECT revetl.create_sync('s', 'leads', 'hooks', ARRAY['id', NULL]);
SELECT revetl.create_sync('s', 'leads', 'hooks', NULL);
SELECT revetl.create_sync(NULL, 'leads', 'hooks', ARRAY['id']);
SELECT revetl.create_sync('', 'leads', 'hooks', ARRAY['id']);
SELECT revetl.create_sync(repeat('x', 64), 'leads', 'hooks', ARRAY['id']);
CREATE SEQUENCE a_sequence;
SELECT revetl.create_sync('s', 'a_sequence', 'hooks', ARRAY['id']);

-- Mode and options.
SELECT revetl.create_sync('s', 'leads', 'hooks', ARRAY['id'], mode => 'merge');
SELECT revetl.create_sync('s', 'leads', 'hooks', ARRAY['id'], options => '{"batchsize": 10}');
SELECT revetl.create_sync('s', 'leads', 'hooks', ARRAY['id'], options => '{"batch_size": 0}');
SELECT revetl.create_sync('s', 'leads', 'hooks', ARRAY['id'], options => '[1]');

-- MAP entries are single expressions: no statements, clauses or wildcards
-- can be smuggled into the SQL revetl builds.
SELECT revetl.create_sync('s', 'leads', 'hooks', ARRAY['id'], map => '{"e": "email); DROP TABLE leads; --"}');
SELECT revetl.create_sync('s', 'leads', 'hooks', ARRAY['id'], map => '{"e": "email FROM pg_authid"}');
SELECT revetl.create_sync('s', 'leads', 'hooks', ARRAY['id'], map => '{"e": "1; DROP TABLE leads"}');
SELECT revetl.create_sync('s', 'leads', 'hooks', ARRAY['id'], map => '{"e": "*"}');
SELECT revetl.create_sync('s', 'leads', 'hooks', ARRAY['id'], map => '{"e": "email AS x"}');
SELECT revetl.create_sync('s', 'leads', 'hooks', ARRAY['id'], map => '{"e": 1}');
SELECT revetl.create_sync('s', 'leads', 'hooks', ARRAY['id'], map => '{}');
-- Expressions are checked against the model at creation time.
SELECT revetl.create_sync('s', 'leads', 'hooks', ARRAY['id'], map => '{"e": "emial"}');
SELECT revetl.create_sync('s', 'leads', 'hooks', ARRAY['id'], map => '{"e": "score + ''abc''"}');

-- A query model is one read-only SELECT.
SELECT revetl.create_sync('s', 'SELECT 1 AS id; SELECT 2', 'hooks', ARRAY['id']);
SELECT revetl.create_sync('s', 'WITH d AS (DELETE FROM leads RETURNING *) SELECT * FROM d', 'hooks', ARRAY['id']);
SELECT revetl.create_sync('s', 'SELECT * INTO leads_copy FROM leads', 'hooks', ARRAY['id']);
SELECT revetl.create_sync('s', 'SELECT * FROM leads FOR UPDATE', 'hooks', ARRAY['id']);

-- Names are unique.
SELECT revetl.create_sync('s', 'leads', 'hooks', ARRAY['id']) > 0 AS created;
SELECT revetl.create_sync('s', 'leads', 'hooks', ARRAY['id']);

-- Nothing half-made was left behind by the failures above.
SELECT name FROM revetl.syncs WHERE name = 's';
SELECT count(*) FROM pg_class WHERE relnamespace = 'revetl'::regnamespace AND relname LIKE 'shadow_%' AND relkind = 'r'
   AND relname <> (SELECT shadow_table FROM revetl.syncs WHERE name = 's');
SELECT revetl.drop_sync('s');

-- run_sync and preview_sync name the missing sync.
SELECT revetl.run_sync('missing');
SELECT * FROM revetl.preview_sync('missing', 1);
SELECT revetl.drop_sync('missing');
