"""Monitoring (issue 17): revetl.metrics through Prometheus' postgres_exporter
with contrib/postgres_exporter/revetl-queries.yaml, read by a pg_monitor
member that owns no sync: every sync's health, runs, rows and backlog appear
in /metrics, no error text does, and every metric the Grafana dashboard in
contrib/grafana names is there.
"""

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import unittest
import urllib.request

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from pgcluster import Cluster, MockWebhook, wait_for  # noqa: E402

REPO = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
EXPORTER = shutil.which("prometheus-postgres-exporter") or "/usr/bin/prometheus-postgres-exporter"
QUERIES = os.path.join(REPO, "contrib", "postgres_exporter", "revetl-queries.yaml")
DASHBOARD = os.path.join(REPO, "contrib", "grafana", "revetl-dashboard.json")

cluster = None
mock = None


def setUpModule():
    global cluster, mock
    cluster = Cluster(name="revetl-metrics").start()
    mock = MockWebhook()
    cluster.sql("create extension revetl")
    cluster.wait_for_worker()


def tearDownModule():
    if mock:
        mock.stop()
    if cluster:
        cluster.destroy()


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def parse(text):
    """{(name, frozenset(labels)): value} of the exposition format."""
    out = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = re.match(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? (\S+)$', line)
        if not m:
            continue
        labels = frozenset(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', m.group(3) or ""))
        out[(m.group(1), labels)] = float(m.group(4))
    return out


class MetricsTest(unittest.TestCase):
    @unittest.skipUnless(os.path.exists(EXPORTER), "prometheus-postgres-exporter is not installed")
    def test_exporter_shows_every_sync_to_a_monitoring_role(self):
        cluster.sql(f"""
            create table m (id int primary key); insert into m values (1), (2), (3);
            create server good foreign data wrapper revetl options (type 'webhook', url '{mock.url}/good');
            create server bad foreign data wrapper revetl options (type 'webhook', url '{mock.url}/bad');
            create role owner_a; grant select on m to owner_a; grant usage on foreign server good, bad to owner_a;
            set role owner_a;
            select revetl.create_sync('delivered', 'public.m', 'good', array['id']);
            select revetl.create_sync('refused', 'public.m', 'bad', array['id'],
                                      options => '{{"max_attempts": 1}}');
            reset role;
            create role monitor login in role pg_monitor;
        """)
        ok = int(cluster.sql("select revetl.run_sync('delivered')"))
        self.assertEqual(cluster.wait_for_run(ok), "succeeded")
        # Every request answered 400 {"error": "configured", "code": "CONFIGURED"}.
        mock.configure(reject_all_status=400)
        try:
            bad = int(cluster.sql("select revetl.run_sync('refused')"))
            self.assertIn(cluster.wait_for_run(bad), ("failed", "partial"))
        finally:
            mock.configure(reject_all_status=None)
        self.assertIn("CONFIGURED", cluster.sql(f"select error from revetl.sync_runs where id = {bad}") +
                      cluster.sql("select string_agg(r::text, ' ') from revetl.rejected_rows r"))

        # The queries file travels with the tests (scripts/test.sh copies
        # contrib/ into its work directory): without it the exporter would
        # serve no revetl metric at all.
        self.assertTrue(os.path.exists(QUERIES), f"{QUERIES} is missing")
        port = free_port()
        env = dict(os.environ,
                   DATA_SOURCE_NAME=f"host={cluster.dir} port={cluster.port} user=monitor dbname=postgres "
                                    "sslmode=disable")
        proc = subprocess.Popen([EXPORTER, f"--web.listen-address=127.0.0.1:{port}", "--disable-default-metrics",
                                 "--disable-settings-metrics", f"--extend.query-path={QUERIES}"],
                                env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            def scrape():
                try:
                    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
                        text = r.read().decode()
                except OSError:
                    return None
                return text if "revetl_sync_healthy" in text else None
            try:
                text = wait_for(scrape, timeout=30, interval=0.5, what="the exporter to serve revetl's metrics")
            except TimeoutError:
                proc.terminate()
                _, err = proc.communicate(timeout=10)
                self.fail(f"the exporter served no revetl metrics in 30 s; its log:\n{err.decode()[-3000:]}")
        finally:
            if proc.poll() is None:
                proc.terminate()
            _, err = proc.communicate(timeout=10)
        metrics = parse(text)

        def value(name, sync):
            found = [v for (n, labels), v in metrics.items() if n == name and ("sync_name", sync) in labels]
            self.assertEqual(len(found), 1, f"{name} for {sync}: {found}\n{text[:3000]}\n{err.decode()[-2000:]}")
            return found[0]
        self.assertEqual(value("revetl_sync_healthy", "delivered"), 1)
        self.assertEqual(value("revetl_sync_healthy", "refused"), 0)
        self.assertEqual(value("revetl_sync_rows_delivered", "delivered"), 3)
        self.assertEqual(value("revetl_sync_runs_succeeded", "delivered"), 1)
        self.assertEqual(value("revetl_sync_runs_failed", "refused") + value("revetl_sync_runs_partial", "refused"), 1)
        self.assertGreaterEqual(value("revetl_sync_requests", "delivered"), 1)
        self.assertEqual(value("revetl_sync_runs_queued", "delivered"), 0)
        self.assertGreaterEqual(value("revetl_sync_last_success_age_seconds", "delivered"), 0)
        self.assertEqual(value("revetl_sync_last_success_age_seconds", "refused"), -1)
        health = {dict(labels)["sync_name"]: dict(labels)["health"] for (n, labels) in metrics
                  if n == "revetl_sync_healthy"}
        self.assertEqual(health, {"delivered": "healthy", "refused": health["refused"]})
        self.assertIn(health["refused"], ("failing", "degraded"))
        # Counts and ages only: nothing the destination answered.
        self.assertNotIn("CONFIGURED", text)

        # Every metric the dashboard names is exported.
        with open(DASHBOARD) as f:
            dashboard = json.load(f)
        exprs = [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]
        exprs += [v["query"] for v in dashboard["templating"]["list"] if v["type"] == "query"]
        named = set()
        for e in exprs:
            named |= set(re.findall(r"\brevetl_[a-z_]+", e))
        exported = {n for (n, _) in metrics}
        self.assertTrue(named)
        self.assertEqual(named - exported, set(), "metrics the dashboard names but the exporter does not export")


if __name__ == "__main__":
    unittest.main()
