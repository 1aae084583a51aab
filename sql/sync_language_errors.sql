-- Errors of the sync language, each like PostgreSQL's: a syntax error names
-- what was expected and points at it (psql draws the caret under QUERY).
CREATE EXTENSION IF NOT EXISTS revetl;
CREATE SERVER IF NOT EXISTS crm FOREIGN DATA WRAPPER revetl OPTIONS (type 'webhook', url 'http://127.0.0.1:9/crm');
CREATE TABLE IF NOT EXISTS people (id int PRIMARY KEY, email text, team text);
INSERT INTO people VALUES (1, 'a@example.com', 'x'), (2, 'b@example.com', 'x');
\set VERBOSITY default

-- Syntax errors.
SELECT * FROM revetl.execute('CREATE SYNCH s FROM people TO crm KEY (id)');
SELECT * FROM revetl.execute('CREATE SYNC s FROM people KEY (id)');
SELECT * FROM revetl.execute('CREATE SYNC s FROM people TO crm');
SELECT * FROM revetl.execute('CREATE SYNC s FROM people TO crm KEY id');
SELECT * FROM revetl.execute('CREATE SYNC s FROM people TO crm KEY (id) MODE MERGE');
SELECT * FROM revetl.execute('CREATE SYNC s FROM people TO crm KEY (id) MODE UPSERT MODE MIRROR');
SELECT * FROM revetl.execute('CREATE SYNC s FROM people TO crm KEY (id) MAP (lower(email))');
SELECT * FROM revetl.execute('CREATE SYNC s FROM people TO crm KEY (id) MAP (email AS e, team AS e)');
SELECT * FROM revetl.execute('CREATE SYNC s FROM people TO crm KEY (id) SCHEDULE SOMETIMES');
SELECT * FROM revetl.execute('CREATE SYNC s FROM (SELECT id FROM people TO crm KEY (id)');
SELECT * FROM revetl.execute('CREATE SYNC s FROM people TO crm KEY (id) WITH (batch_size 10)');
SELECT * FROM revetl.execute('CREATE SYNC s FROM people TO crm KEY (id); DROP TABLE people');
SELECT * FROM revetl.execute($$CREATE SYNC s FROM people TO crm KEY (id) MAP ('unterminated AS x)$$);
SELECT * FROM revetl.execute('ALTER SYNC s EXPLODE');
SELECT * FROM revetl.execute('   ');
-- A bad statement after good ones: nothing runs.
SELECT * FROM revetl.execute('CREATE SYNC ok1 FROM people TO crm KEY (id); CREATE SYNC ok2 FROM people TO');
SELECT count(*) AS created FROM revetl.syncs WHERE name = 'ok1';

-- Unknown objects name themselves and suggest what is close.
SELECT * FROM revetl.execute('CREATE SYNC s FROM peopel TO crm KEY (id)');
SELECT * FROM revetl.execute('CREATE SYNC s FROM people TO crn KEY (id)');
SELECT * FROM revetl.execute('CREATE SYNC s FROM people TO crm KEY (idd)');
SELECT * FROM revetl.execute('CREATE SYNC s FROM people TO crm KEY (id) WITH (batchsize = 10)');
SELECT * FROM revetl.execute('ALTER SYNC nosuch PAUSE');
SELECT * FROM revetl.execute('DROP SYNC nosuch');

-- Types and keys are checked against the model at CREATE time.
SELECT * FROM revetl.execute('CREATE SYNC s FROM people TO crm KEY (id) MAP (email + 1 AS e)');
-- A key the model's data makes non-unique is a WARNING with an example: the
-- data can change, and a deploy must not wait on it. The check is made only
-- when the key or the model changes: an identical CREATE OR REPLACE is quiet.
SELECT * FROM revetl.execute('CREATE SYNC s FROM people TO crm KEY (team)');
SELECT * FROM revetl.execute('CREATE OR REPLACE SYNC s FROM people TO crm KEY (team)');
SELECT * FROM revetl.execute('ALTER SYNC s SET (batch_size = 10)');
SELECT * FROM revetl.execute('DROP SYNC s');
SELECT * FROM revetl.execute('CREATE SYNC s FROM (SELECT id FROM people UNION ALL SELECT 1) TO crm KEY (id)');
SELECT * FROM revetl.execute('DROP SYNC s');

-- Schedules are checked too.
SELECT * FROM revetl.execute($$CREATE SYNC s FROM people TO crm KEY (id) SCHEDULE EVERY 'soon'$$);
SELECT * FROM revetl.execute($$CREATE SYNC s FROM people TO crm KEY (id) SCHEDULE EVERY '-5 minutes'$$);
SELECT * FROM revetl.execute($$CREATE SYNC s FROM people TO crm KEY (id) SCHEDULE CRON '61 * * * *'$$);
SELECT * FROM revetl.execute($$CREATE SYNC s FROM people TO crm KEY (id) SCHEDULE CRON '* * *'$$);
SELECT * FROM revetl.execute($$CREATE SYNC s FROM people TO crm KEY (id) SCHEDULE CRON '0 0 30 2 *'$$);
SELECT * FROM revetl.execute('CREATE SYNC s FROM people TO crm KEY (id) SCHEDULE AFTER nosuch');
-- AFTER chains may not loop.
SELECT * FROM revetl.execute('CREATE SYNC chain_a FROM people TO crm KEY (id); CREATE SYNC chain_b FROM people TO crm KEY (id) SCHEDULE AFTER chain_a');
SELECT * FROM revetl.execute('ALTER SYNC chain_a SET SCHEDULE AFTER chain_b');
SELECT * FROM revetl.execute('DROP SYNC chain_b, chain_a');
SELECT * FROM revetl.execute('CREATE SYNC s FROM people TO crm KEY (id) SCHEDULE AFTER s');
SELECT * FROM revetl.execute('CREATE SYNC s FROM (SELECT id FROM people) TO crm KEY (id) SCHEDULE ON CHANGE');

-- Permissions: USAGE on the server and SELECT on the model, and ownership.
CREATE ROLE lang_user;
SET ROLE lang_user;
SELECT * FROM revetl.execute('CREATE SYNC s FROM people TO crm KEY (id)');
RESET ROLE;
GRANT USAGE ON FOREIGN SERVER crm TO lang_user;
SET ROLE lang_user;
SELECT * FROM revetl.execute('CREATE SYNC s FROM people TO crm KEY (id)');
RESET ROLE;
SELECT * FROM revetl.execute('CREATE SYNC owned_by_postgres FROM people TO crm KEY (id)');
SET ROLE lang_user;
SELECT * FROM revetl.execute('ALTER SYNC owned_by_postgres PAUSE');
SELECT * FROM revetl.execute('CREATE OR REPLACE SYNC owned_by_postgres FROM people TO crm KEY (id)');
SELECT * FROM revetl.execute('DROP SYNC owned_by_postgres');
RESET ROLE;
SELECT * FROM revetl.execute('CREATE SYNC owned_by_postgres FROM people TO crm KEY (id)');
SELECT * FROM revetl.execute('DROP SYNC owned_by_postgres');
REVOKE ALL ON FOREIGN SERVER crm FROM lang_user;
DROP ROLE lang_user;

-- MODE AUDIENCE: the mode word with a hint, the audience string, and the
-- refusals of CREATE SYNC (a type without lists, a list id that is not
-- one, an identifier the MAP does not send, the function form's pairs).
SELECT * FROM revetl.execute('CREATE SYNC s FROM people TO crm KEY (id) MODE AUDIENSE ''1''');
SELECT * FROM revetl.execute('CREATE SYNC s FROM people TO crm KEY (id) MODE MIROR');
SELECT * FROM revetl.execute('CREATE SYNC s FROM people TO crm KEY (id) MODE AUDIENCE');
SELECT * FROM revetl.execute('CREATE SYNC s FROM people TO crm KEY (id) MODE AUDIENCE ''''');
SELECT * FROM revetl.execute('CREATE SYNC s FROM people TO crm KEY (id) MODE AUDIENCE ''1'' MAP (email AS email)');
CREATE SERVER lists_err FOREIGN DATA WRAPPER revetl OPTIONS (type 'iterable', url 'http://127.0.0.1:9/');
SELECT * FROM revetl.execute('CREATE SYNC s FROM people TO lists_err KEY (id) MODE AUDIENCE ''vip'' MAP (email AS email)');
SELECT * FROM revetl.execute('CREATE SYNC s FROM people TO lists_err KEY (id) MODE AUDIENCE ''7'' MAP (team AS team)');
SELECT * FROM revetl.execute('CREATE SYNC s FROM people TO lists_err KEY (id) MATCH ON phone MODE AUDIENCE ''7''');
SELECT revetl.create_sync('s', 'people', 'lists_err', ARRAY['id'], mode => 'audience');
SELECT revetl.create_sync('s', 'people', 'lists_err', ARRAY['id'], mode => 'upsert', audience => '7');
SELECT revetl.create_sync('s', 'people', 'lists_err', ARRAY['id'], mode => 'audiense', audience => '7');
DROP SERVER lists_err;
-- A map expression computed over several rows, a model ending in a
-- semicolon and a statement that writes: each says what is wrong in the
-- user's own terms, never with revetl's generated SQL (issue 20, point 8).
SELECT * FROM revetl.execute('CREATE SYNC s FROM people TO crm KEY (id) MAP (count(*) AS n)');
SELECT * FROM revetl.execute('CREATE SYNC s FROM people TO crm KEY (id) MAP (rank() OVER (ORDER BY id) AS r)');
SELECT * FROM revetl.execute('CREATE SYNC s FROM people TO crm KEY (id) MAP (generate_series(1, 2) AS g)');
SELECT * FROM revetl.execute('CREATE SYNC s FROM (DELETE FROM people RETURNING *) TO crm KEY (id)');
SELECT revetl.create_sync('s', 'DELETE FROM people RETURNING *', 'crm', ARRAY['id']);
SELECT revetl.create_sync('s', 'SELECT id, email FROM people; ', 'crm', ARRAY['id']) > 0 AS created;
SELECT model_query FROM revetl.syncs WHERE name = 's';
SELECT revetl.drop_sync('s');
