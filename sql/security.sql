-- Who may create, run, preview and drop syncs, and who sees rejected rows.
CREATE EXTENSION IF NOT EXISTS revetl;
CREATE SERVER IF NOT EXISTS secure_hooks FOREIGN DATA WRAPPER revetl
  OPTIONS (type 'webhook', url 'http://127.0.0.1:9/secure');
CREATE TABLE secrets (id int PRIMARY KEY, ssn text);
CREATE TABLE public_data (id int PRIMARY KEY, v text);
INSERT INTO public_data VALUES (1, 'a');
CREATE ROLE analyst;
CREATE ROLE outsider;
GRANT SELECT ON public_data TO analyst, outsider;

SET ROLE analyst;
-- No USAGE on the server: refused.
SELECT revetl.create_sync('a1', 'public_data', 'secure_hooks', ARRAY['id']);
RESET ROLE;
GRANT USAGE ON FOREIGN SERVER secure_hooks TO analyst;
SET ROLE analyst;
-- No SELECT on the model: refused, so nobody can send out what they cannot read.
SELECT revetl.create_sync('a1', 'secrets', 'secure_hooks', ARRAY['id']);
SELECT revetl.create_sync('a1', 'SELECT * FROM secrets', 'secure_hooks', ARRAY['id']);
SELECT revetl.create_sync('a1', 'public_data', 'secure_hooks', ARRAY['id'], map => '{"x": "(SELECT ssn FROM secrets LIMIT 1)"}');
-- Allowed.
SELECT revetl.create_sync('a1', 'public_data', 'secure_hooks', ARRAY['id']) > 0 AS created;
SELECT name, owner FROM revetl.syncs WHERE name = 'a1';
-- The owner may read its shadow table, never write it.
SELECT shadow_table FROM revetl.syncs WHERE name = 'a1' \gset
SELECT count(*) FROM revetl.:shadow_table;
INSERT INTO revetl.:shadow_table VALUES ('{}', 0, NULL, 0);
-- Catalog tables are read-only for users.
INSERT INTO revetl.syncs (name) VALUES ('x');
UPDATE revetl.runs SET status = 'failed';
SELECT * FROM revetl.changes;
RESET ROLE;

SET ROLE outsider;
-- Others see that the sync exists, but may not run, preview or drop it.
SELECT name FROM revetl.syncs WHERE name = 'a1';
SELECT revetl.run_sync('a1');
SELECT * FROM revetl.preview_sync('a1');
SELECT revetl.drop_sync('a1');
RESET ROLE;

-- Rejected rows carry payloads, so only the sync owner's members see them.
INSERT INTO revetl.rejected_rows (run_id, sync_id, sync_name, kind, key, operation, reason, payload)
  SELECT 0, id, name, 'rejected', '{"id": 1}', 'upsert', 'test', '{"v": "a"}' FROM revetl.syncs WHERE name = 'a1';
SET ROLE outsider;
SELECT count(*) AS outsider_sees FROM revetl.rejected_rows;
RESET ROLE;
SET ROLE analyst;
SELECT count(*) AS owner_sees FROM revetl.rejected_rows;
SELECT * FROM revetl.preview_sync('a1');
RESET ROLE;
DELETE FROM revetl.rejected_rows WHERE run_id = 0;

SELECT revetl.drop_sync('a1');
DROP TABLE secrets, public_data;
REVOKE ALL ON FOREIGN SERVER secure_hooks FROM analyst;
DROP ROLE analyst;
DROP ROLE outsider;

-- Syncs follow their owner through REASSIGN OWNED and DROP OWNED.
CREATE ROLE leaver;
CREATE ROLE successor;
CREATE TABLE handover (id int PRIMARY KEY);
GRANT SELECT ON handover TO leaver, successor;
GRANT USAGE ON FOREIGN SERVER secure_hooks TO leaver, successor;
SET ROLE leaver;
SELECT revetl.create_sync('handed_over', 'handover', 'secure_hooks', ARRAY['id']) > 0 AS created;
SELECT revetl.create_sync('dropped_with_owner', 'handover', 'secure_hooks', ARRAY['id']) > 0 AS created;
RESET ROLE;
REASSIGN OWNED BY leaver TO successor;
SELECT name, owner FROM revetl.syncs WHERE name IN ('handed_over', 'dropped_with_owner') ORDER BY name;
SELECT has_table_privilege('successor', 'revetl.' || shadow_table, 'SELECT') AS successor_reads,
       has_table_privilege('leaver', 'revetl.' || shadow_table, 'SELECT') AS leaver_reads
  FROM revetl.syncs WHERE name = 'handed_over';
SELECT revetl.alter_sync_owner('dropped_with_owner', 'leaver');
DROP OWNED BY leaver;
SELECT name, owner FROM revetl.syncs WHERE name IN ('handed_over', 'dropped_with_owner') ORDER BY name;
DROP ROLE leaver;
SELECT revetl.drop_sync('handed_over');
DROP OWNED BY successor;
DROP ROLE successor;
DROP TABLE handover;
