-- The sync language through revetl.execute: CREATE [OR REPLACE] SYNC,
-- ALTER SYNC, DROP SYNC, and sync_ddl's round trip.
CREATE EXTENSION IF NOT EXISTS revetl;
CREATE SERVER crm FOREIGN DATA WRAPPER revetl OPTIONS (type 'webhook', url 'http://127.0.0.1:9/crm');
CREATE SERVER crm_eu FOREIGN DATA WRAPPER revetl OPTIONS (type 'webhook', url 'http://127.0.0.1:9/crm-eu');
CREATE SCHEMA analytics;
CREATE TABLE analytics.lead_scores (lead_id int PRIMARY KEY, email text, score numeric, region text,
                                    "Owner Email" text);
INSERT INTO analytics.lead_scores VALUES
  (1, 'Ada@Example.com', 0.91, 'emea', 'sam@example.com'),
  (2, 'grace@example.com', 0.35, 'amer', NULL);

-- Every clause, as an analytics engineer writes it.
SELECT * FROM revetl.execute($$
  CREATE SYNC leads_to_crm
    FROM analytics.lead_scores
    TO crm OBJECT contacts
    KEY (lead_id)
    MATCH ON email
    MODE UPSERT
    MAP (lower(email) AS email,
         round(score * 100)::int AS "leadScore",
         CASE WHEN score > 0.8 THEN 'hot' ELSE 'cold' END AS tier,
         "Owner Email" AS 'hubspot_owner_email')
    SCHEDULE EVERY '15 minutes'
    WITH (batch_size = 250, max_attempts = 3, timeout = '10s');
$$);
SELECT name, model_schema, model_name, destination, object, key_columns, match_on, mode, map, options,
       schedule_kind, schedule_value
  FROM revetl.syncs WHERE name = 'leads_to_crm';
SELECT key, payload FROM revetl.preview_sync('leads_to_crm') ORDER BY key->>'lead_id';

-- sync_ddl gives a statement that recreates the sync exactly.
SELECT revetl.sync_ddl('leads_to_crm');
SELECT revetl.sync_ddl('leads_to_crm') AS ddl \gset
SELECT * FROM revetl.execute('DROP SYNC leads_to_crm');
SELECT * FROM revetl.execute(:'ddl');
SELECT revetl.sync_ddl('leads_to_crm') = :'ddl' AS round_trips;

-- Identifiers fold to lower case unless quoted; keywords as names need quotes.
SELECT * FROM revetl.execute($$
  CREATE SYNC "Leads EU" FROM ANALYTICS.LEAD_SCORES TO CRM_EU KEY (LEAD_ID);
  create sync "select" from (select lead_id, region from analytics.lead_scores where region = 'emea') to crm key (lead_id);
$$);
SELECT name, model_name, destination, key_columns FROM revetl.syncs WHERE name IN ('Leads EU', 'select') ORDER BY name;
SELECT revetl.sync_ddl('select');

-- Several statements run together; a failure in any leaves none applied.
SELECT * FROM revetl.execute($$
  CREATE SYNC a1 FROM analytics.lead_scores TO crm KEY (lead_id);
  CREATE SYNC a2 FROM analytics.lead_scores TO nosuchserver KEY (lead_id);
$$);
SELECT count(*) AS a1_exists FROM revetl.syncs WHERE name = 'a1';

-- CREATE OR REPLACE with the same definition changes nothing and keeps the
-- shadow state (what the destination was told), so nothing is resent.
SELECT shadow_table AS shadow, updated_at AS before_update FROM revetl.syncs WHERE name = 'leads_to_crm' \gset
INSERT INTO revetl.:shadow (key, row_hash, run_id) VALUES ('{"lead_id": 1}', 42, 0);
SELECT * FROM revetl.execute(replace(:'ddl', 'CREATE SYNC', 'CREATE OR REPLACE SYNC'));
SELECT count(*) AS shadow_rows, (SELECT updated_at = :'before_update' FROM revetl.syncs WHERE name = 'leads_to_crm') AS unchanged
  FROM revetl.:shadow;
-- A new MAP keeps the shadow state: only rows whose payload changes are sent.
SELECT * FROM revetl.execute($$
  CREATE OR REPLACE SYNC leads_to_crm FROM analytics.lead_scores TO crm OBJECT contacts KEY (lead_id)
    MATCH ON email MAP (lower(email) AS email) SCHEDULE EVERY '15 minutes';
$$);
SELECT count(*) AS shadow_rows FROM revetl.:shadow;
-- A new key or destination starts afresh, and says so.
SELECT * FROM revetl.execute($$
  CREATE OR REPLACE SYNC leads_to_crm FROM analytics.lead_scores TO crm_eu OBJECT contacts KEY (lead_id)
    MATCH ON email MAP (lower(email) AS email);
$$);
SELECT count(*) AS shadow_rows FROM revetl.:shadow;

-- ALTER SYNC.
INSERT INTO revetl.:shadow (key, row_hash, run_id) VALUES ('{"lead_id": 1}', 42, 0);
SELECT * FROM revetl.execute($$
  ALTER SYNC leads_to_crm SET MODE MIRROR;
  ALTER SYNC leads_to_crm SET MAP (lower(email) AS email, region AS region);
  ALTER SYNC leads_to_crm SET (batch_size = 100, timeout = '5s');
  ALTER SYNC leads_to_crm RESET (timeout);
  ALTER SYNC leads_to_crm SET SCHEDULE CRON '0 6 * * mon-fri';
  ALTER SYNC leads_to_crm PAUSE;
$$);
SELECT mode, map, options, schedule_kind, schedule_value, paused FROM revetl.syncs WHERE name = 'leads_to_crm';
-- (Counted by key: the worker may add rows of its own meanwhile.)
SELECT count(*) AS shadow_rows_kept FROM revetl.:shadow WHERE key = '{"lead_id": 1}';
SELECT revetl.run_sync('leads_to_crm');
SELECT * FROM revetl.execute($$
  ALTER SYNC leads_to_crm RESUME;
  ALTER SYNC leads_to_crm DROP MAP;
  ALTER SYNC leads_to_crm SET SCHEDULE AFTER "Leads EU";
  ALTER SYNC leads_to_crm RENAME TO crm_leads;
$$);
SELECT name, map, schedule_kind, schedule_value, paused FROM revetl.syncs WHERE name = 'crm_leads';
-- The sync it runs after cannot be dropped from under it; renames follow.
-- Dropping a sync that others run AFTER is allowed; they become manual.
BEGIN;
SELECT * FROM revetl.execute('DROP SYNC "Leads EU"');
SELECT name, schedule_kind, schedule_value FROM revetl.syncs WHERE name = 'crm_leads';
ROLLBACK;
SELECT * FROM revetl.execute('ALTER SYNC "Leads EU" RENAME TO leads_eu');
SELECT schedule_value FROM revetl.syncs WHERE name = 'crm_leads';
SELECT * FROM revetl.execute('ALTER SYNC crm_leads SET KEY (lead_id, region)');
SELECT * FROM revetl.execute('ALTER SYNC crm_leads SET FROM (SELECT lead_id, region, email FROM analytics.lead_scores)');
SELECT * FROM revetl.execute('ALTER SYNC crm_leads SET TO crm');
SELECT model_kind, model_query, destination, key_columns FROM revetl.syncs WHERE name = 'crm_leads';
SELECT revetl.sync_ddl('crm_leads');

-- OWNER TO: the new owner must be able to read the model and use the server.
CREATE ROLE new_owner;
SELECT * FROM revetl.execute('ALTER SYNC crm_leads OWNER TO new_owner');
GRANT USAGE ON SCHEMA analytics TO new_owner;
GRANT SELECT ON analytics.lead_scores TO new_owner;
GRANT USAGE ON FOREIGN SERVER crm TO new_owner;
-- A sync that runs AFTER another role's sync goes only to a member of that
-- role (new_owner is not a member of the owner of leads_eu).
SELECT * FROM revetl.execute('ALTER SYNC crm_leads OWNER TO new_owner');
SELECT * FROM revetl.execute('ALTER SYNC crm_leads SET SCHEDULE MANUAL');
SELECT * FROM revetl.execute('ALTER SYNC crm_leads OWNER TO new_owner');
SELECT owner FROM revetl.syncs WHERE name = 'crm_leads';
SELECT has_table_privilege('new_owner', 'revetl.' || shadow_table, 'SELECT') AS new_owner_reads_shadow
  FROM revetl.syncs WHERE name = 'crm_leads';

-- The other schedules.
SELECT * FROM revetl.execute($$
  CREATE SYNC on_change FROM analytics.lead_scores TO crm KEY (lead_id) SCHEDULE ON CHANGE;
  CREATE SYNC hourly FROM analytics.lead_scores TO crm KEY (lead_id) SCHEDULE CRON '@hourly';
  CREATE SYNC by_hand FROM analytics.lead_scores TO crm KEY (lead_id) SCHEDULE MANUAL;
$$);
SELECT name, schedule_kind, schedule_value FROM revetl.syncs WHERE name IN ('on_change', 'hourly', 'by_hand') ORDER BY name;

-- The function forms do the same.
SELECT revetl.alter_sync('by_hand', mode => 'insert', options => '{"batch_size": 10}');
SELECT revetl.alter_sync('by_hand', options => '{"batch_size": null}', schedule => 'every 1 hour');
SELECT revetl.rename_sync('by_hand', 'by_hand_2');
SELECT revetl.pause_sync('by_hand_2');
SELECT name, mode, options, schedule_kind, schedule_value, paused FROM revetl.syncs WHERE name = 'by_hand_2';
SELECT revetl.resume_sync('by_hand_2');
SELECT revetl.create_sync('by_hand_2', 'analytics.lead_scores', 'crm', ARRAY['lead_id'], mode => 'mirror',
                          replace => true) > 0 AS replaced;
SELECT mode FROM revetl.syncs WHERE name = 'by_hand_2';

-- DROP SYNC takes a list and IF EXISTS.
SELECT * FROM revetl.execute('DROP SYNC IF EXISTS on_change, hourly, nonexistent');
SELECT * FROM revetl.execute('DROP SYNC crm_leads, leads_eu, "select", by_hand_2, a1');
SELECT * FROM revetl.execute('DROP SYNC crm_leads, leads_eu, "select", by_hand_2');
SELECT count(*) AS syncs_left FROM revetl.syncs WHERE name NOT IN ('customers_to_hooks', 'all_columns', 'by_plan');
REVOKE ALL ON FOREIGN SERVER crm FROM new_owner;
DROP OWNED BY new_owner;
DROP ROLE new_owner;

-- MODE AUDIENCE: the rows are the members of a list (issue 14). The
-- audience is part of the mode; sync_ddl round-trips it.
CREATE SERVER lists FOREIGN DATA WRAPPER revetl OPTIONS (type 'iterable', url 'http://127.0.0.1:9/');
SELECT * FROM revetl.execute($$
  CREATE SYNC hot_leads FROM analytics.lead_scores TO lists KEY (lead_id)
    MODE AUDIENCE '12345' MAP (lower(email) AS email)
$$);
SELECT mode, audience, match_on FROM revetl.syncs WHERE name = 'hot_leads';
SELECT revetl.sync_ddl('hot_leads');
SELECT revetl.sync_ddl('hot_leads') AS ddl \gset
SELECT * FROM revetl.execute('DROP SYNC hot_leads');
SELECT * FROM revetl.execute(:'ddl');
SELECT revetl.sync_ddl('hot_leads') = :'ddl' AS round_trips;
-- The plan adds each member, by its identifier only.
SELECT action, key, payload FROM revetl.preview_sync('hot_leads') ORDER BY key->>'lead_id';
-- Another list, or another mode, starts afresh (a NOTICE says so).
SELECT * FROM revetl.execute($$ALTER SYNC hot_leads SET MODE AUDIENCE '678'$$);
SELECT mode, audience FROM revetl.syncs WHERE name = 'hot_leads';
SELECT * FROM revetl.execute('ALTER SYNC hot_leads SET MODE UPSERT');
SELECT mode, audience FROM revetl.syncs WHERE name = 'hot_leads';
SELECT revetl.alter_sync('hot_leads', mode => 'audience', audience => '99');
SELECT mode, audience FROM revetl.syncs WHERE name = 'hot_leads';
-- The function form takes the audience beside the mode.
SELECT revetl.create_sync('hot_leads_fn', 'analytics.lead_scores', 'lists', ARRAY['lead_id'],
                          mode => 'audience', map => '{"email": "email"}', audience => '4') > 0 AS created;
SELECT mode, audience FROM revetl.syncs WHERE name = 'hot_leads_fn';
SELECT * FROM revetl.execute('DROP SYNC hot_leads, hot_leads_fn');
DROP SERVER lists;
