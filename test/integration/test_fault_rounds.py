"""A randomised fault run (issue 18): a MIRROR model changed round after round
(inserts, updates, deletes, re-inserts, key changes), each round delivered
under one fault, must end exactly equal at two receivers: a plain one and
one that skips idempotency keys it applied before.

Fault kinds, each at least twice per run: 503 before and after applying,
429 storms, TCP resets before and after applying, a request held past the
timeout and applied late (after later requests), the run stopped
(pg_terminate_backend), the run killed (SIGKILL: the server restarts), and
the server stopped with `pg_ctl stop -m immediate`.

The CI size is the default. A longer run is one command (docs/benchmarks.md
is not the place: this asserts, it does not time):

    REVETL_FAULT_SEED=7 REVETL_FAULT_ROUNDS=60 REVETL_FAULT_ROWS=20000 \\
        python3 test/integration/run.py test_fault_rounds.py
"""

import json
import os
import random
import signal
import sys
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from pgcluster import Cluster, MockWebhook, key, wait_for  # noqa: E402

SEED = int(os.environ.get("REVETL_FAULT_SEED", "18"))
ROWS = int(os.environ.get("REVETL_FAULT_ROWS", "3000"))
KINDS = ["503", "503_after_apply", "429", "reset", "reset_after_apply", "hold", "stop_run", "kill_run",
         "stop_immediate"]
ROUNDS = max(int(os.environ.get("REVETL_FAULT_ROUNDS", str(2 * len(KINDS)))), len(KINDS))

# Small batches: each round's few hundred changes make several requests per
# sync, so that a round's faults (after up to three passed requests) are
# reached.
SERVER_OPTIONS = ("timeout '1s', settle_time '2s', max_attempts '8', batch_size '25', max_in_flight '2', "
                  "connect_timeout '1s'")


class FaultRoundsTest(unittest.TestCase):
    def setUp(self):
        self.rng = random.Random(SEED)
        self.cluster = Cluster(name="revetl-faults").start()
        self.mocks = {"plain": MockWebhook(), "dedupe": MockWebhook()}
        self.mocks["plain"].configure(dedupe=False)
        self.cluster.sql("create extension revetl")
        self.cluster.wait_for_worker()
        self.cluster.sql(f"""
            create table model (id int primary key, v text, n int);
            insert into model select g, 'v' || g, 0 from generate_series(1, {ROWS}) g;
        """)
        for name, mock in self.mocks.items():
            self.cluster.sql(f"""
                create server to_{name} foreign data wrapper revetl
                  options (type 'webhook', url '{mock.url}/in', {SERVER_OPTIONS});
                select revetl.create_sync('sync_{name}', 'public.model', 'to_{name}', array['id'],
                                          mode => 'mirror', map => '{{"v": "v", "n": "n"}}');
            """)
        self.next_id = ROWS + 1
        self.deleted = []

    def tearDown(self):
        for mock in self.mocks.values():
            mock.stop()
        self.cluster.destroy()

    # -- the model ------------------------------------------------------------
    def mutate(self, round_no):
        rng = self.rng
        ids = [int(i) for i in self.cluster.sql("select string_agg(id::text, ',') from model").split(",")]
        statements = []
        updated = rng.sample(ids, min(len(ids), rng.randint(20, 200)))
        statements.append(f"update model set n = n + 1, v = 'r{round_no}-' || id "
                          f"where id in ({','.join(map(str, updated))})")
        # back to an earlier content: the same value as two rounds ago
        if round_no >= 2:
            back = rng.sample(ids, 10)
            statements.append(f"update model set v = 'v' || id, n = 0 where id in ({','.join(map(str, back))})")
        gone = rng.sample([i for i in ids if i not in updated], min(30, len(ids) // 20))
        statements.append(f"delete from model where id in ({','.join(map(str, gone))})")
        if self.deleted:
            again = rng.sample(self.deleted, min(len(self.deleted), 15))
            statements.append("insert into model select g, 'v' || g, 0 from unnest(array["
                              + ",".join(map(str, again)) + "]) g on conflict do nothing")
            self.deleted = [d for d in self.deleted if d not in again]
        self.deleted += gone
        # key changes: a row moves to a new key
        moved = rng.sample([i for i in ids if i not in gone], 5)
        for old in moved:
            statements.append(f"update model set id = {self.next_id} where id = {old}")
            self.deleted.append(old)
            self.next_id += 1
        statements.append(f"insert into model select g, 'new' || g, 0 from generate_series({self.next_id}, "
                          f"{self.next_id + 19}) g")
        self.next_id += 20
        self.cluster.sql(";\n".join(statements))

    def model(self):
        out = {}
        for i, v, n in self.cluster.rows("select id, v, n from model"):
            out[key(id=int(i))] = {"v": v, "n": int(n)}
        return out

    # -- faults ---------------------------------------------------------------
    def arm(self, kind):
        skip = [{"action": "pass"}] * self.rng.randint(0, 3)
        faults = {
            "503": [{"status": 503}],
            "503_after_apply": [{"status": 503, "apply": True}],
            "429": [{"status": 429, "headers": {"Retry-After": "0"}}] * 5,
            "reset": [{"action": "reset"}],
            "reset_after_apply": [{"action": "reset", "apply": True}],
            "hold": [{"action": "hold"}],
        }.get(kind)
        for mock in self.mocks.values():
            # Each round has its own faults: one the last round's requests
            # did not reach would hit this round's (a hold then stays held
            # for rounds, far past settle_time, which no design can cover).
            mock.clear_faults()
            # The run-stopping kinds need runs still in flight when they act:
            # slow answers keep them there.
            mock.configure(faults=skip + faults if faults else [], delay_ms=600 if faults is None else 0)

    def run_all(self, kind):
        runs = [int(self.cluster.sql(f"select revetl.run_sync('sync_{name}')")) for name in self.mocks]
        if kind in ("stop_run", "kill_run", "stop_immediate"):
            # A request is in the mock's slow answer right now, so the stop
            # lands while the run has requests in flight (waiting for ones
            # already answered would often find the runs ended under load).
            wait_for(lambda: any(m.in_flight() > 0 for m in self.mocks.values())
                     or all(self.finished(r) for r in runs), timeout=60, interval=0.02, what="requests to start")
            if kind == "stop_run":
                self.cluster.sql("select pg_terminate_backend(pid) from pg_stat_activity "
                                 "where backend_type = 'revetl run'")
            elif kind == "kill_run":
                # One SIGKILL is enough: the postmaster then stops every
                # process and recovers (shared memory is reset).
                restarts = self.cluster.log_text().count("reinitializing")
                pid = self.cluster.sql("select pid from pg_stat_activity where backend_type = 'revetl run' "
                                       "limit 1")
                if pid:
                    try:
                        os.kill(int(pid), signal.SIGKILL)
                    except ProcessLookupError:
                        pass  # the run finished meanwhile
                    else:
                        wait_for(lambda: self.cluster.log_text().count("reinitializing") > restarts,
                                 timeout=30, what="the server to restart after the killed run")
            else:
                self.cluster.stop(mode="immediate")
            for mock in self.mocks.values():
                mock.configure(delay_ms=0)
            if kind != "stop_run":
                if kind == "stop_immediate":
                    self.cluster.start()
                wait_for(lambda: self.sql_ok("select 1"), timeout=60, what="the server to accept connections")
                self.cluster.wait_for_worker()
        for run in runs:
            wait_for(lambda: self.finished(run), timeout=120, what=f"run {run} to finish")
        if kind == "hold":
            # The held request lands now, after the requests that followed it.
            for mock in self.mocks.values():
                mock.release()

    def sql_ok(self, sql):
        _, _, rc = self.cluster.psql(sql, check=False)
        return rc == 0

    def finished(self, run_id):
        _, _, rc = self.cluster.psql("select 1", check=False)
        if rc != 0:
            return False
        return self.cluster.sql(f"select status from revetl.sync_runs where id = {run_id}") not in (
            "queued", "running", "")

    def quiet(self):
        """No run queued or running (retries of stopped runs included)."""
        return self.cluster.sql("select count(*) from revetl.sync_runs where status in ('queued', 'running')") \
            == "0"

    def waiting_verifications(self):
        return int(self.cluster.sql(
            "select coalesce(sum((xpath('/row/c/text()', query_to_xml(format("
            "'select count(*) as c from revetl.%I where verify_after > now()', shadow_table), "
            "false, true, '')))[1]::text::int), 0) from revetl.syncs"))

    def converge(self):
        for mock in self.mocks.values():
            mock.configure(faults=[], delay_ms=0)
            mock.release()
        wait_for(self.quiet, timeout=120, what="every queued retry to finish")
        expected = self.model()
        for _ in range(6):
            # Re-verifications are due once their settle time has passed.
            wait_for(lambda: self.waiting_verifications() == 0, timeout=30, what="the settle time to pass")
            for name in self.mocks:
                self.cluster.sql(f"select revetl.run_sync('sync_{name}', wait => true)")
            if all(m.records() == expected for m in self.mocks.values()):
                break
        for name, mock in self.mocks.items():
            got = mock.records()
            missing = sorted(set(expected) - set(got))[:5]
            extra = sorted(set(got) - set(expected))[:5]
            wrong = sorted(k for k in expected if k in got and got[k] != expected[k])[:5]
            self.assertEqual((missing, extra, wrong), ([], [], []),
                             f"{name} receiver differs from the model (seed {SEED})\n"
                             + self.history(name, missing + extra + wrong))

    def history(self, name, keys):
        """What happened to each key: the journal's requests carrying it (in
        apply order), the sync's runs and the key's shadow row, so that a
        failure under load can be read without a rerun."""
        out = []
        runs = self.cluster.sql(
            f"select string_agg(format('%s %s %s %s..%s %s', r.id, r.status, r.trigger, r.started_at::time, "
            f"r.finished_at::time, left(coalesce(r.error, ''), 80)), E'\\n' order by r.id) "
            f"from revetl.sync_runs r where r.sync_name = 'sync_{name}'")
        out.append(f"runs of sync_{name}:\n{runs}")
        for k in keys:
            out.append(f"key {k}:")
            for q in self.mocks[name].requests():
                for rec in (q.get("body") or {}).get("records", []) if isinstance(q.get("body"), dict) else []:
                    if json.dumps(rec.get("key"), sort_keys=True) == k:
                        out.append(f"  seq {q.get('seq')} {q.get('time')} status {q.get('status')} "
                                   f"{rec.get('op')} {rec.get('data')} ikey {rec.get('idempotency_key')}")
            ident = json.loads(k)["id"]
            out.append("  shadow: " + self.shadow_row(name, ident))
        return "\n".join(out)

    def shadow_row(self, name, ident):
        table = self.cluster.sql(f"select shadow_table from revetl.syncs where name = 'sync_{name}'")
        return self.cluster.sql(
            f"select coalesce(string_agg(to_jsonb(t)::text, ' '), '(none)') from revetl.{table} t "
            f"where t.key::jsonb->>'id' = '{ident}'")

    # -------------------------------------------------------------------------
    def test_every_fault_kind_converges_exactly(self):
        for name in self.mocks:
            self.cluster.sql(f"select revetl.run_sync('sync_{name}', wait => true)")
        kinds = KINDS * (ROUNDS // len(KINDS)) + self.rng.sample(KINDS, ROUNDS % len(KINDS))
        self.rng.shuffle(kinds)
        for round_no, kind in enumerate(kinds, 1):
            with self.subTest(round=round_no, fault=kind):
                self.mutate(round_no)
                self.arm(kind)
                self.run_all(kind)
        # Every fault happened, at least twice each.
        statuses = [q["status"] for m in self.mocks.values() for q in m.requests()]
        self.assertGreaterEqual(statuses.count(503), 4 * len(self.mocks) // 2)
        self.assertGreaterEqual(statuses.count(429), 2)
        self.assertGreaterEqual(statuses.count("reset"), 4)
        self.assertGreaterEqual(statuses.count("held"), 2)
        self.assertGreaterEqual(int(self.cluster.sql(
            "select count(*) from revetl.sync_runs where status = 'interrupted'")), 2)
        self.assertGreaterEqual(int(self.cluster.sql(
            "select count(*) from revetl.sync_runs where error like '%process running this run stopped%'")), 2)
        self.converge()
        # Nothing stuck: no run open, no queued change left behind.
        self.assertEqual(self.cluster.sql("select count(*) from revetl.changes"), "0")


if __name__ == "__main__":
    unittest.main()
