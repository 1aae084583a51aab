-- Creating, listing, previewing and dropping syncs, and the errors of
-- create_sync. Runs are not awaited here: the integration tests do that
-- against a mock destination.
CREATE EXTENSION IF NOT EXISTS revetl;
CREATE SERVER IF NOT EXISTS hooks FOREIGN DATA WRAPPER revetl
  OPTIONS (type 'webhook', url 'http://127.0.0.1:9/events');

CREATE TABLE customers (id int PRIMARY KEY, email text, plan text, mrr numeric, signed_up date,
                        internal_note text);
INSERT INTO customers VALUES
  (1, 'Ada@Example.com', 'pro', 120.50, '2024-01-02', 'vip'),
  (2, 'grace@example.com', 'free', 0, '2024-02-03', NULL),
  (3, NULL, 'team', 49.99, '2024-03-04', 'x');

-- A table model with a MAP of SQL expressions: any function may shape a value.
SELECT revetl.create_sync(name => 'customers_to_hooks', model => 'customers', destination => 'hooks',
                          key => ARRAY['id'], mode => 'mirror',
                          map => '{"email": "lower(email)", "plan": "upper(plan)", "mrr_cents": "(mrr * 100)::int"}',
                          options => '{"batch_size": 2}');

-- The model name was resolved and qualified at creation.
SELECT name, owner, model_kind, model_schema, model_name, destination, key_columns, mode, map, options, paused,
       shadow_table
  FROM revetl.syncs;

-- Preview: what a run would send, sending nothing. Only mapped values appear.
SELECT * FROM revetl.preview_sync('customers_to_hooks', 10) ORDER BY key->>'id';
SELECT count(*) AS previewed FROM revetl.preview_sync('customers_to_hooks', 1);

-- Without a MAP every column is sent under its own name.
SELECT revetl.create_sync('all_columns', 'public.customers', 'hooks', ARRAY['id']);
SELECT payload FROM revetl.preview_sync('all_columns', 1);

-- Payloads do not depend on the caller's date or time zone settings.
SET DateStyle = 'SQL, DMY';
SET TimeZone = 'America/New_York';
SELECT payload->>'signed_up' AS signed_up FROM revetl.preview_sync('all_columns', 1);
RESET DateStyle;
RESET TimeZone;

-- A query model with a key of two columns. Keys must be unique when the sync
-- is created; rows that later break that (or have a NULL key) are reported as
-- invalid and never sent.
CREATE TABLE extra_signups (plan text, signed_up date, n int);
SELECT revetl.create_sync('by_plan', $$
    SELECT plan, signed_up, count(*) AS n FROM customers GROUP BY plan, signed_up
    UNION ALL SELECT plan, signed_up, n FROM extra_signups   -- a trailing comment is harmless
  $$, 'hooks', ARRAY['plan', 'signed_up']);
INSERT INTO extra_signups VALUES ('pro', '2024-01-02', 99), (NULL, '2024-01-01', 1);
SELECT action, key, payload, reason FROM revetl.preview_sync('by_plan', 10)
 ORDER BY action, key::text, payload::text;

-- A view model.
CREATE VIEW paying AS SELECT id, email FROM customers WHERE mrr > 0;
SELECT revetl.create_sync('paying_customers', 'paying', 'hooks', ARRAY['id']);
SELECT action, key FROM revetl.preview_sync('paying_customers') ORDER BY key->>'id';

-- Each sync has its own shadow table; dropping the sync drops it.
SELECT count(*) FROM pg_class WHERE relnamespace = 'revetl'::regnamespace AND relname LIKE 'shadow_%' AND relkind = 'r';
SELECT revetl.drop_sync('paying_customers');
SELECT revetl.drop_sync('paying_customers');
SELECT revetl.drop_sync('paying_customers', if_exists => true);
SELECT count(*) FROM pg_class WHERE relnamespace = 'revetl'::regnamespace AND relname LIKE 'shadow_%' AND relkind = 'r';
SELECT name FROM revetl.syncs ORDER BY name;
