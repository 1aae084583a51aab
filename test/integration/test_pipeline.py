"""End-to-end: model -> plan -> deliver -> commit, against the mock webhook.

One cluster and one mock for the module; each test makes its own table,
server and sync, so tests do not depend on each other's state.
"""

import json
import os
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from pgcluster import Cluster, MockWebhook, key, wait_for  # noqa: E402

cluster = None
mock = None


def setUpModule():
    global cluster, mock
    cluster = Cluster(name="revetl-pipeline").start()
    mock = MockWebhook()
    cluster.sql("create extension revetl")
    cluster.wait_for_worker()


def tearDownModule():
    if mock:
        mock.stop()
    if cluster:
        cluster.destroy()


class PipelineTest(unittest.TestCase):
    counter = 0

    def setUp(self):
        mock.reset()
        PipelineTest.counter += 1
        self.n = PipelineTest.counter
        self.table = f"leads_{self.n}"
        self.server = f"hooks_{self.n}"
        self.sync = f"sync_{self.n}"
        cluster.sql(f"""
            create table {self.table} (id int primary key, email text, score int, note text);
            insert into {self.table} select g, 'u' || g || '@example.com', g * 10, 'n'
              from generate_series(1, 5) g;
            create server {self.server} foreign data wrapper revetl
              options (type 'webhook', url '{mock.url}/events/{self.n}');
        """)

    def create_sync(self, mode="mirror", options="{}", model=None):
        model = model or f"public.{self.table}"
        cluster.sql(f"""select revetl.create_sync('{self.sync}', $m${model}$m$, '{self.server}', array['id'],
                        mode => '{mode}', map => '{{"email": "lower(email)", "score": "score"}}',
                        options => '{options}')""")

    def run_sync(self):
        out, err, rc = cluster.psql(f"select revetl.run_sync('{self.sync}', wait => true)", check=False)
        return int(out.strip()) if rc == 0 else None, err

    def run_row(self, run_id):
        cols = ["status", "rows_added", "rows_changed", "rows_removed", "rows_delivered", "rows_rejected",
                "rows_invalid", "requests", "retries", "error"]
        row = cluster.rows(f"select {', '.join(cols)} from revetl.sync_runs where id = {run_id}")[0]
        return dict(zip(cols, row))

    def model_as_destination(self):
        rows = cluster.rows(f"select id, lower(email), score from {self.table} order by id")
        return {key(id=int(i)): {"email": e if e != "" else None, "score": int(s)} for i, e, s in rows}

    # -----------------------------------------------------------------------
    def test_first_run_sends_every_row_and_second_sends_nothing(self):
        self.create_sync()
        run_id, err = self.run_sync()
        self.assertIsNotNone(run_id, err)
        r = self.run_row(run_id)
        self.assertEqual((r["status"], r["rows_added"], r["rows_delivered"], r["requests"]),
                         ("succeeded", "5", "5", "1"))
        self.assertEqual(mock.records(), self.model_as_destination())
        body = mock.requests()[0]["body"]
        self.assertEqual(body["sync"], self.sync)
        self.assertEqual(body["run_id"], run_id)
        self.assertEqual({rec["op"] for rec in body["records"]}, {"upsert"})

        mock.clear_requests()
        run_id, err = self.run_sync()
        r = self.run_row(run_id)
        self.assertEqual((r["status"], r["rows_added"], r["rows_changed"], r["requests"]),
                         ("succeeded", "0", "0", "0"))
        self.assertEqual(mock.requests(), [])

    def test_update_sends_only_rows_whose_mapped_values_changed(self):
        self.create_sync()
        self.run_sync()
        mock.clear_requests()
        cluster.sql(f"update {self.table} set score = 999 where id = 2")
        cluster.sql(f"update {self.table} set note = 'unmapped change' where id = 3")
        cluster.sql(f"update {self.table} set email = upper(email) where id = 4")  # same after lower()
        run_id, _ = self.run_sync()
        r = self.run_row(run_id)
        self.assertEqual((r["rows_changed"], r["rows_delivered"]), ("1", "1"))
        sent = [rec for req in mock.requests() for rec in req["body"]["records"]]
        self.assertEqual(sent, [{"op": "upsert", "key": {"id": 2},
                                 "data": {"email": "u2@example.com", "score": 999},
                                 "idempotency_key": sent[0]["idempotency_key"]}])
        self.assertEqual(mock.records(), self.model_as_destination())

    def test_payloads_past_work_mem_wait_in_a_temporary_file_and_arrive_exact(self):
        # The queue (revetl.changes) holds a run's keys, what recovery needs;
        # the payloads stay with the run's process, past its work_mem in a
        # temporary file, which goes when the run ends
        # (src/pg/payload_store.hpp). Changes, removals (no payload) and adds
        # are numbered together: each request carries its own rows' values,
        # a 120 kB one included.
        cluster.sql("alter system set work_mem = '64kB'")
        cluster.sql("select pg_reload_conf()")
        try:
            cluster.sql(f"insert into {self.table} select g, 'u' || g || '@example.com', g, 'n' "
                        f"from generate_series(6, 3000) g")
            self.create_sync(options='{"batch_size": 100, "max_in_flight": 1}')
            self.run_sync()
            cluster.sql(f"""
                update {self.table} set score = -score where id % 3 = 0;
                update {self.table} set email = repeat('long', 30000) || '@example.com' where id = 10;
                delete from {self.table} where id % 50 = 0;
                insert into {self.table} select g, 'new' || g || '@example.com', g, 'n'
                  from generate_series(3001, 4500) g;
            """)
            mock.clear_requests()
            mock.configure(faults=[{"action": "hold"}])
            run_id = int(cluster.sql(f"select revetl.run_sync('{self.sync}')"))
            wait_for(lambda: mock.in_flight() == 1, what="the held request")
            queued = int(cluster.sql(f"select count(*) from revetl.changes where run_id = {run_id}"))
            planned = cluster.rows(f"select rows_added, rows_changed, rows_removed from revetl.sync_runs "
                                   f"where id = {run_id}")[0]
            self.assertEqual(queued, sum(map(int, planned)))
            self.assertGreater(int(cluster.sql("select count(*) from pg_catalog.pg_ls_tmpdir()")), 0,
                               "no temporary file holds the run's payloads")
            self.assertEqual(mock.release(), 1)
            self.assertEqual(cluster.wait_for_run(run_id), "succeeded")
            self.assertEqual(mock.records(), self.model_as_destination())
            r = self.run_row(run_id)
            self.assertEqual(r["rows_delivered"], str(queued))
            self.assertEqual(len([rec for req in mock.requests() for rec in req["body"]["records"]]), queued)
            self.assertEqual(cluster.sql("select count(*) from pg_catalog.pg_ls_tmpdir()"), "0")
            self.assertEqual(cluster.sql(f"select count(*) from revetl.changes where run_id = {run_id}"), "0")
        finally:
            cluster.sql("alter system reset work_mem")
            cluster.sql("select pg_reload_conf()")

    def test_payloads_past_temp_file_limit_fail_the_plan_and_lose_nothing(self):
        # The payloads' temporary file counts against temp_file_limit: a plan
        # that passes it fails with PostgreSQL's words, before anything is
        # sent, and leaves nothing queued; with room again, the next run sends
        # every row once.
        cluster.sql("alter system set work_mem = '64kB'")
        cluster.sql("alter system set temp_file_limit = '64kB'")
        cluster.sql("select pg_reload_conf()")
        try:
            cluster.sql(f"insert into {self.table} select g, 'u' || g || '@example.com', g, 'n' "
                        f"from generate_series(6, 3000) g")
            self.create_sync()
            run_id, err = self.run_sync()
            self.assertIsNone(run_id)
            failed = cluster.rows(f"select id, status, error from revetl.sync_runs where sync_name = '{self.sync}'")
            self.assertEqual(len(failed), 1)
            self.assertEqual(failed[0][1], "failed")
            # (PostgreSQL 18 quotes the setting's name)
            self.assertRegex(failed[0][2], r'temporary file size exceeds "?temp_file_limit"?')
            self.assertEqual(mock.requests(), [])
            self.assertEqual(cluster.sql(f"select count(*) from revetl.changes where run_id = {failed[0][0]}"), "0")
            self.assertEqual(cluster.sql("select count(*) from pg_catalog.pg_ls_tmpdir()"), "0")
        finally:
            cluster.sql("alter system reset work_mem")
            cluster.sql("alter system reset temp_file_limit")
            cluster.sql("select pg_reload_conf()")
        run_id, err = self.run_sync()
        self.assertIsNotNone(run_id, err)
        self.assertEqual(self.run_row(run_id)["rows_delivered"], "3000")
        self.assertEqual(mock.records(), self.model_as_destination())

    def test_mirror_mode_delivers_removals(self):
        self.create_sync(mode="mirror")
        self.run_sync()
        cluster.sql(f"delete from {self.table} where id in (1, 5)")
        run_id, _ = self.run_sync()
        r = self.run_row(run_id)
        self.assertEqual((r["rows_removed"], r["rows_delivered"]), ("2", "2"))
        self.assertEqual(mock.records(), self.model_as_destination())
        deletes = [rec for req in mock.requests() for rec in req["body"]["records"] if rec["op"] == "delete"]
        self.assertEqual(sorted(d["key"]["id"] for d in deletes), [1, 5])
        self.assertTrue(all("data" not in d for d in deletes))
        # Delivered removals leave the shadow state: a third run sends nothing.
        mock.clear_requests()
        self.run_sync()
        self.assertEqual(mock.requests(), [])

    def test_upsert_mode_never_deletes(self):
        self.create_sync(mode="upsert")
        self.run_sync()
        cluster.sql(f"delete from {self.table} where id = 1")
        run_id, _ = self.run_sync()
        self.assertEqual(self.run_row(run_id)["rows_removed"], "0")
        self.assertIn(key(id=1), mock.records())

    def test_refused_row_is_recorded_and_planned_again(self):
        self.create_sync()
        mock.configure(reject=[{"field": "email", "equals": "u3@example.com", "reason": "invalid email",
                                "code": "INVALID_EMAIL"}])
        run_id, err = self.run_sync()
        self.assertIn("did not deliver every row", err)
        r = self.run_row(run_id)
        self.assertEqual((r["status"], r["rows_delivered"], r["rows_rejected"]), ("partial", "4", "1"))
        rejected = cluster.rows(f"select kind, key, operation, reason, http_status, error_code, payload "
                                f"from revetl.rejected_rows where run_id = {run_id}")
        self.assertEqual(rejected, [["rejected", '{"id": 3}', "upsert", "invalid email", "207", "INVALID_EMAIL",
                                     '{"email": "u3@example.com", "score": 30}']])
        self.assertNotIn(key(id=3), mock.records())

        mock.configure(reject=[])
        mock.clear_requests()
        run_id, _ = self.run_sync()
        r = self.run_row(run_id)
        self.assertEqual((r["status"], r["rows_added"], r["rows_delivered"]), ("succeeded", "1", "1"))
        sent = [rec["key"] for req in mock.requests() for rec in req["body"]["records"]]
        self.assertEqual(sent, [{"id": 3}])
        self.assertEqual(mock.records(), self.model_as_destination())

    def test_null_and_duplicate_keys_are_invalid_and_never_sent(self):
        cluster.sql(f"create table extra_{self.n} (id int, email text, score int)")
        model = f"select id, email, score from {self.table} union all select * from extra_{self.n}"
        self.create_sync(model=model)
        # Keys are unique when the sync is created; these rows break that later.
        cluster.sql(f"insert into extra_{self.n} values (2, 'dup@example.com', 1), (null, 'nokey@example.com', 1)")
        run_id, _ = self.run_sync()
        r = self.run_row(run_id)
        self.assertEqual((r["status"], r["rows_added"], r["rows_invalid"], r["rows_delivered"]),
                         ("partial", "4", "3", "4"))
        invalid = cluster.rows(f"select key, reason from revetl.rejected_rows where run_id = {run_id} "
                               f"and kind = 'invalid' order by reason, payload->>'email'")
        self.assertEqual(len(invalid), 3)
        self.assertTrue(invalid[0][1].startswith("duplicate key: 2 rows"))
        self.assertTrue(invalid[2][1].startswith("the key has a NULL value"))
        sent_ids = sorted(rec["key"]["id"] for req in mock.requests() for rec in req["body"]["records"])
        self.assertEqual(sent_ids, [1, 3, 4, 5])

    def test_transient_failures_are_retried_within_the_run(self):
        self.create_sync()
        mock.configure(faults=[{"status": 503}, {"status": 429, "headers": {"Retry-After": "0"}}])
        run_id, _ = self.run_sync()
        r = self.run_row(run_id)
        # The 503 is a retry (an attempt); the 429 is waited out (not one).
        self.assertEqual((r["status"], r["requests"], r["retries"], r["rows_delivered"]),
                         ("succeeded", "3", "1", "5"))
        self.assertEqual(cluster.sql(f"select throttled from revetl.sync_runs where id = {run_id}"), "1")
        self.assertEqual(mock.records(), self.model_as_destination())

    def test_exhausted_retries_fail_the_run_and_lose_nothing(self):
        self.create_sync(options='{"max_attempts": 2}')
        mock.configure(faults=[{"status": 503, "body": {"error": "down"}}] * 2)
        run_id, err = self.run_sync()
        self.assertIsNone(run_id)
        self.assertIn("failed", err)
        run = cluster.rows(f"select id, status, error from revetl.sync_runs where sync_name = '{self.sync}'")[0]
        self.assertEqual(run[1], "failed")
        self.assertIn("HTTP 503", run[2])
        self.assertEqual(mock.records(), {})
        run_id, _ = self.run_sync()
        self.assertEqual(self.run_row(run_id)["rows_delivered"], "5")
        self.assertEqual(mock.records(), self.model_as_destination())

    def test_a_shadow_row_appearing_for_an_add_fails_the_run_and_loses_nothing(self):
        # Adds are recorded with a plain INSERT: nothing else writes a sync's
        # shadow table while its run holds the sync's lock. Should rows appear
        # anyway, the run fails rather than skipping them, and the next run
        # sends them as changes.
        self.create_sync(options='{"batch_size": 1, "max_in_flight": 1}')
        mock.configure(delay_ms=500)  # 2.5 s of delivery: the rows below land long before its end
        run_id = int(cluster.sql(f"select revetl.run_sync('{self.sync}')"))
        wait_for(lambda: cluster.sql(f"select planned_at is not null from revetl.sync_runs where id = {run_id}")
                 == "t", timeout=15, interval=0.01, what="the plan")
        shadow = cluster.sql(f"select shadow_table from revetl.syncs where name = '{self.sync}'")
        cluster.sql(f"insert into revetl.{shadow} (key, row_hash, run_id) "
                    f"select jsonb_build_object('id', id)::text, 0, 0 from {self.table} on conflict do nothing")
        self.assertEqual(cluster.wait_for_run(run_id), "failed")
        self.assertIn("duplicate key", cluster.sql(f"select error from revetl.sync_runs where id = {run_id}"))
        mock.configure(delay_ms=0)
        run2, err = self.run_sync()
        self.assertIsNotNone(run2, err)
        r = self.run_row(run2)
        self.assertEqual(r["status"], "succeeded")
        self.assertGreaterEqual(int(r["rows_changed"]), 4)
        self.assertEqual(mock.records(), self.model_as_destination())

    def test_whole_batch_refusal_rejects_each_row(self):
        self.create_sync(options='{"batch_size": 2}')
        mock.configure(reject_all_status=422)
        run_id, _ = self.run_sync()
        r = self.run_row(run_id)
        # Refused batches of 2 are split to find the bad rows: 3 + 3 + 1 requests.
        self.assertEqual((r["status"], r["rows_rejected"], r["requests"]), ("partial", "5", "7"))
        statuses = cluster.sql(f"select distinct http_status || ' ' || error_code from revetl.rejected_rows "
                               f"where run_id = {run_id}")
        self.assertEqual(statuses, "422 CONFIGURED")
        mock.configure(reject_all_status=None)
        run_id, _ = self.run_sync()
        self.assertEqual(self.run_row(run_id)["rows_delivered"], "5")

    def test_a_refused_batch_is_split_to_isolate_the_bad_row(self):
        self.create_sync(options='{"batch_size": 5}')
        mock.configure(reject_batch_if=[{"field": "email", "equals": "u4@example.com"}])
        run_id, _ = self.run_sync()
        r = self.run_row(run_id)
        self.assertEqual((r["status"], r["rows_delivered"], r["rows_rejected"]), ("partial", "4", "1"))
        rejected = cluster.rows(f"select key, http_status, error_code from revetl.rejected_rows "
                                f"where run_id = {run_id}")
        self.assertEqual(rejected, [['{"id": 4}', "400", "INVALID_BATCH"]])
        self.assertNotIn(key(id=4), mock.records())
        self.assertEqual(len(mock.records()), 4)

    def test_rate_limit_spaces_requests(self):
        cluster.sql(f"alter server {self.server} options (add rate_limit '20 per 1s')")
        self.create_sync(options='{"batch_size": 1}')
        run_id, _ = self.run_sync()
        times = [req["time"] for req in mock.requests()]
        self.assertEqual(len(times), 5)
        # 20 per second, evenly spaced (2% under the limit): five requests
        # are sent over four intervals of 51 ms (204 ms). Arrival times
        # carry the jitter of a busy machine (one arrival late by 20 ms has
        # been seen), so at least three intervals' worth is asserted: five
        # unlimited requests arrive within a few milliseconds.
        self.assertGreaterEqual(max(times) - min(times), 0.15, times)

    def test_insert_and_update_modes(self):
        cluster.sql(f"select * from revetl.execute($$CREATE SYNC {self.sync} FROM {self.table} TO {self.server} "
                    f"KEY (id) MODE INSERT MAP (email AS email)$$)")
        self.run_sync()
        self.assertEqual({rec["op"] for req in mock.requests() for rec in req["body"]["records"]}, {"insert"})
        mock.clear_requests()
        cluster.sql(f"update {self.table} set email = 'changed@example.com' where id = 1")
        run_id, _ = self.run_sync()
        # INSERT mode never sends changes to rows it already sent.
        self.assertEqual(mock.requests(), [])
        cluster.sql(f"select * from revetl.execute($$ALTER SYNC {self.sync} SET MODE UPDATE$$)")
        run_id, _ = self.run_sync()
        sent = [rec for req in mock.requests() for rec in req["body"]["records"]]
        self.assertEqual([(r["op"], r["key"]["id"]) for r in sent], [("update", 1)])

    def test_batches_respect_batch_size(self):
        self.create_sync(options='{"batch_size": 2}')
        self.run_sync()
        sizes = sorted(len(req["body"]["records"]) for req in mock.requests())
        self.assertEqual(sizes, [1, 2, 2])
        self.assertEqual(sorted(req["body"]["batch"] for req in mock.requests()), [1, 2, 3])

    def test_rolled_back_request_never_runs(self):
        self.create_sync()
        before = cluster.sql("select count(*) from revetl.sync_runs")
        cluster.sql(f"begin; select revetl.run_sync('{self.sync}'); rollback;")
        self.assertEqual(cluster.sql("select count(*) from revetl.sync_runs"), before)
        # A later committed request is the only one that reaches the destination.
        run_id, _ = self.run_sync()
        self.assertEqual(len(mock.requests()), 1)
        self.assertEqual(mock.requests()[0]["body"]["run_id"], run_id)

    def test_committed_request_wakes_the_worker(self):
        self.create_sync()
        run_id = int(cluster.sql(f"begin; select revetl.run_sync('{self.sync}'); commit;"))
        self.assertEqual(cluster.wait_for_run(run_id, timeout=15), "succeeded")
        self.assertEqual(mock.records(), self.model_as_destination())

    def test_notify_announces_finished_runs(self):
        self.create_sync()
        out, err, rc = cluster.psql(f"listen revetl_runs; select revetl.run_sync('{self.sync}', wait => true); "
                                    f"select pg_sleep(0.2); select 1;", check=False)
        self.assertEqual(rc, 0, err)
        self.assertIn('Asynchronous notification "revetl_runs"', out + err)
        self.assertIn(f'"sync" : "{self.sync}"', out + err)
        self.assertIn('"status" : "succeeded"', out + err)

    def test_token_from_user_mapping_is_sent_and_never_stored(self):
        secret_mock = MockWebhook(require_token="s3cr3t-token")
        try:
            cluster.sql(f"""
                create server tok_{self.n} foreign data wrapper revetl
                  options (type 'webhook', url '{secret_mock.url}/hook', max_attempts '1');
                create user mapping for public server tok_{self.n} options (token 'wrong');
                select revetl.create_sync('{self.sync}', 'public.{self.table}', 'tok_{self.n}', array['id']);
            """)
            run_id, err = self.run_sync()
            self.assertIsNone(run_id)  # 401: the run fails, no row is refused
            self.assertIn("refused the credentials (HTTP 401)", err)
            failed = cluster.rows(f"select status, rows_rejected from revetl.sync_runs "
                                  f"where sync_name = '{self.sync}' order by id desc limit 1")[0]
            self.assertEqual(failed, ["failed", "0"])
            cluster.sql(f"create user mapping for postgres server tok_{self.n} options (token 's3cr3t-token')")
            run_id, _ = self.run_sync()
            self.assertEqual(self.run_row(run_id)["rows_delivered"], "5")
            self.assertEqual(secret_mock.requests()[-1]["headers"]["authorization"], "Bearer s3cr3t-token")
            stored = cluster.sql("select string_agg(r::text, ' ') from revetl.sync_runs r") + \
                cluster.sql("select coalesce(string_agg(r::text, ' '), '') from revetl.rejected_rows r")
            self.assertNotIn("s3cr3t", stored)
            self.assertNotIn("s3cr3t", cluster.log_text())
        finally:
            secret_mock.stop()

    def test_model_is_read_as_the_owner(self):
        cluster.sql(f"""
            create role owner_{self.n} login;
            grant usage on foreign server {self.server} to owner_{self.n};
            grant select on {self.table} to owner_{self.n};
        """)
        cluster.sql(f"select revetl.create_sync('{self.sync}', 'public.{self.table}', '{self.server}', "
                    f"array['id'])", user=f"owner_{self.n}")
        run_id = int(cluster.sql(f"select revetl.run_sync('{self.sync}', wait => true)", user=f"owner_{self.n}"))
        self.assertEqual(self.run_row(run_id)["rows_delivered"], "5")
        cluster.sql(f"revoke select on {self.table} from owner_{self.n}; "
                    f"update {self.table} set score = 1")
        mock.clear_requests()
        out, err, rc = cluster.psql(f"select revetl.run_sync('{self.sync}', wait => true)",
                                    user=f"owner_{self.n}", check=False)
        self.assertNotEqual(rc, 0)
        run = cluster.rows(f"select status, error from revetl.sync_runs where sync_name = '{self.sync}' "
                           f"order by id desc limit 1")[0]
        self.assertEqual(run[0], "failed")
        self.assertIn(f"permission denied for table {self.table}", run[1])
        self.assertEqual(mock.requests(), [])

    def test_pg_dump_and_restore_keep_syncs_and_shadow_state(self):
        db = f"dumpsrc_{self.n}"
        cluster.sql(f"create database {db}")
        cluster.sql(f"""
            create extension revetl;
            create table t (id int primary key, v text);
            insert into t values (1, 'a'), (2, 'b');
            create server h foreign data wrapper revetl options (type 'webhook', url '{mock.url}/dump');
            select revetl.create_sync('dumped', 'public.t', 'h', array['id'], mode => 'mirror');
        """, db=db)
        cluster.wait_for_worker(db=db)
        run_id = int(cluster.sql("select revetl.run_sync('dumped', wait => true)", db=db))
        self.assertEqual(cluster.wait_for_run(run_id, db=db), "succeeded")
        dump = os.path.join(cluster.dir, f"{db}.dump")
        bindir = cluster.bindir
        subprocess.run([os.path.join(bindir, "pg_dump"), "-Fc", "-h", cluster.dir, "-p", str(cluster.port),
                        "-U", "postgres", "-f", dump, db], check=True, capture_output=True)
        restored = f"restored_{self.n}"
        cluster.sql(f"create database {restored}")
        p = subprocess.run([os.path.join(bindir, "pg_restore"), "-h", cluster.dir, "-p", str(cluster.port),
                            "-U", "postgres", "-d", restored, dump], capture_output=True, text=True)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual(cluster.rows("select name, owner, model_schema || '.' || model_name, destination, mode, "
                                      "key_columns from revetl.syncs", db=restored),
                         [["dumped", "postgres", "public.t", "h", "mirror", "{id}"]])
        self.assertEqual(cluster.sql("select count(*) from revetl.shadow_1", db=restored), "2")
        cluster.wait_for_worker(db=restored)
        # A restored copy holds its syncs until a DBA confirms it.
        self.assertEqual(cluster.sql("select health from revetl.sync_status", db=restored), "copy")
        _, err, rc = cluster.psql("select revetl.run_sync('dumped', wait => true)", db=restored, check=False)
        self.assertNotEqual(rc, 0)
        self.assertIn(f'database "{restored}" is a copy: it was restored from a dump of another database', err)
        self.assertIn("SELECT revetl.confirm_copy()", err)
        cluster.sql("select revetl.confirm_copy()", db=restored)
        mock.clear_requests()
        run_id = int(cluster.sql("select revetl.run_sync('dumped', wait => true)", db=restored))
        self.assertEqual(cluster.rows(f"select status, rows_added, requests from revetl.sync_runs "
                                      f"where id = {run_id}", db=restored), [["succeeded", "0", "0"]])
        # New syncs in the restored database do not collide with restored ids.
        cluster.sql("select revetl.create_sync('second', 'public.t', 'h', array['id'])", db=restored)

    def test_refused_credentials_and_redirects_fail_the_run_not_every_row(self):
        # A wrong token (401) or a moved endpoint (301) is about the
        # connection: one clear error, no row refused, the sync failing.
        self.create_sync()
        mock.configure(reject_all_status=401)
        run_id, err = self.run_sync()
        self.assertIsNone(run_id)
        self.assertIn("refused the credentials (HTTP 401)", err)
        self.assertIn("user mapping", err)
        row = cluster.rows(f"select status, rows_rejected, requests from revetl.sync_runs "
                           f"where sync_name = '{self.sync}' order by id desc limit 1")[0]
        self.assertEqual(row, ["failed", "0", "1"])
        self.assertEqual(cluster.sql(f"select count(*) from revetl.rejected_rows where sync_name = '{self.sync}'"),
                         "0")
        self.assertEqual(cluster.sql(f"select health from revetl.sync_status where name = '{self.sync}'"),
                         "failing")
        mock.configure(reject_all_status=None,
                       faults=[{"status": 301, "headers": {"Location": "https://hooks.example.com/moved"}}])
        run_id, err = self.run_sync()
        self.assertIsNone(run_id)
        self.assertIn("redirect to https://hooks.example.com/moved", err)
        # Once fixed, the next run delivers everything.
        run_id, err = self.run_sync()
        self.assertIsNotNone(run_id, err)
        self.assertEqual(self.run_row(run_id)["rows_delivered"], "5")

    def test_restore_of_tracked_syncs_succeeds_in_every_form(self):
        # A dump with capture triggers restores without errors, also in one
        # transaction (-1) and with --exit-on-error; the restored capture
        # works (revetl's DDL watch leaves the triggers to the dump).
        db = f"tracksrc_{self.n}"
        cluster.sql(f"create database {db}")
        cluster.sql(f"""
            create extension revetl;
            create table ev (id int primary key, v text);
            create table tr (id int primary key, v text);
            insert into ev values (1, 'a'); insert into tr values (1, 'a');
            create server h foreign data wrapper revetl options (type 'webhook', url '{mock.url}/restore');
            select * from revetl.execute($$
              CREATE SYNC ev_live FROM ev TO h KEY (id) SCHEDULE ON CHANGE;
              CREATE SYNC tr_tracked FROM tr TO h KEY (id) WITH (track_changes = true);
              CREATE SYNC plain FROM ev TO h KEY (id)$$);
        """, db=db)
        cluster.wait_for_worker(db=db)
        cluster.sql("select revetl.run_sync('tr_tracked', wait => true)", db=db)
        dump = os.path.join(cluster.dir, f"{db}.dump")
        bindir = cluster.bindir
        subprocess.run([os.path.join(bindir, "pg_dump"), "-Fc", "-h", cluster.dir, "-p", str(cluster.port),
                        "-U", "postgres", "-f", dump, db], check=True, capture_output=True)
        for form, flags in (("plain", []), ("single", ["-1"]), ("exit", ["--exit-on-error"])):
            with self.subTest(form=form):
                restored = f"rest_{form}_{self.n}"
                cluster.sql(f"create database {restored}")
                p = subprocess.run([os.path.join(bindir, "pg_restore"), "-h", cluster.dir, "-p",
                                    str(cluster.port), "-U", "postgres", "-d", restored] + flags + [dump],
                                   capture_output=True, text=True)
                self.assertEqual(p.returncode, 0, p.stderr)
                self.assertEqual(p.stderr, "")
                # Each tracked table has its four capture triggers, once.
                triggers = cluster.rows("select c.relname, count(*) from pg_trigger t join pg_class c "
                                        "on c.oid = t.tgrelid where t.tgname like 'revetl_capture_%' "
                                        "group by 1 order by 1", db=restored)
                self.assertEqual(triggers, [["ev", "4"], ["tr", "4"]])
                cluster.wait_for_worker(db=restored)
                cluster.sql("select revetl.confirm_copy()", db=restored)
                mock.clear_requests()
                cluster.sql("insert into ev values (2, 'b')", db=restored)
                wait_for(lambda: any(r["key"] == {"id": 2} for q in mock.requests()
                                     for r in (q["body"] or {}).get("records", [])),
                         what=f"the restored ({form}) ON CHANGE sync to send the new row")
                cluster.sql(f"select revetl.drop_sync(name) from revetl.syncs", db=restored)


if __name__ == "__main__":
    unittest.main()
