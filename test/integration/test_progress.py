"""revetl.sync_progress (issue 17): a run in progress shows its phase, what
it planned, what it has done so far and an estimate of the time left, to
every role; a finished run leaves the view.
"""

import os
import re
import sys
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from pgcluster import Cluster, MockWebhook, wait_for  # noqa: E402

cluster = None
mock = None


def setUpModule():
    global cluster, mock
    cluster = Cluster(name="revetl-progress").start()
    mock = MockWebhook()
    cluster.sql("create extension revetl")
    cluster.wait_for_worker()


def tearDownModule():
    if mock:
        mock.stop()
    if cluster:
        cluster.destroy()


class ProgressTest(unittest.TestCase):
    def test_a_running_run_shows_its_progress(self):
        cluster.sql(f"""
            create table big (id int primary key, v text);
            insert into big select g, 'v' || g from generate_series(1, 400) g;
            create server slow foreign data wrapper revetl options (type 'webhook', url '{mock.url}/slow',
              batch_size '10', max_in_flight '1');
            select revetl.create_sync('progressing', 'public.big', 'slow', array['id']);
            create role watcher login;
        """)
        mock.configure(delay_ms=50)
        try:
            run_id = int(cluster.sql("select revetl.run_sync('progressing')"))
            columns = ("phase, rows_planned, rows_done, rows_delivered, requests, "
                       "estimated_time_left > interval '0', elapsed > interval '0'")
            query = f"select {columns} from revetl.sync_progress where run_id = {run_id}"

            def midway():
                row = cluster.rows(query, user="watcher")
                return row and row[0][0] == "delivering" and 0 < int(row[0][2]) < 400 and row[0]
            row = wait_for(midway, timeout=60, what="the run to show progress half-way")
            phase, planned, done, delivered, requests, left, elapsed = row
            self.assertEqual((phase, planned, left, elapsed), ("delivering", "400", "t", "t"))
            self.assertEqual(done, delivered)
            self.assertGreaterEqual(int(requests), int(done) // 10)
            cluster.wait_for_run(run_id)
            self.assertEqual(cluster.sql(query), "")
            self.assertEqual(cluster.sql(f"select status, rows_delivered from revetl.sync_runs where id = {run_id}"),
                             "succeeded|400")
        finally:
            mock.configure(delay_ms=0)

    def test_run_sync_wait_says_how_far_it_is(self):
        # run_sync(wait => true) tells its caller where the run is: the plan,
        # then each further tenth of the rows, at most one NOTICE a second.
        cluster.sql(f"""
            create table waited (id int primary key);
            insert into waited select g from generate_series(1, 300) g;
            create server slow_wait foreign data wrapper revetl options (type 'webhook', url '{mock.url}/wait',
              batch_size '10', max_in_flight '1');
            select revetl.create_sync('waited_on', 'public.waited', 'slow_wait', array['id']);
        """)
        mock.configure(delay_ms=150)  # 30 requests: about 5 s
        try:
            out, err, rc = cluster.psql("select revetl.run_sync('waited_on', wait => true)")
        finally:
            mock.configure(delay_ms=0)
        self.assertEqual(rc, 0, err)
        notices = [line for line in err.splitlines() if line.startswith("NOTICE:")]
        self.assertTrue(notices, err)
        self.assertRegex(notices[0], r'^NOTICE:  run \d+ of sync "waited_on": plan done, 300 rows to send$')
        steps = [line for line in notices[1:] if "% done" in line]
        self.assertTrue(steps, f"no progress NOTICE after the plan: {err}")
        self.assertEqual(len(steps), len(notices) - 1, err)
        self.assertLessEqual(len(steps), 9, err)  # one per tenth at most, never the end
        percents = []
        for line in steps:
            m = re.match(r'^NOTICE:  run \d+ of sync "waited_on": (\d+)% done, (\d+) of 300 rows '
                         r'\((\d+) delivered, 0 refused\)$', line)
            self.assertIsNotNone(m, line)
            self.assertEqual(m.group(2), m.group(3))
            percents.append(int(m.group(1)))
        self.assertEqual(percents, sorted(set(percents)), err)
        self.assertTrue(all(10 <= p < 100 for p in percents), percents)
        # Without wait there is nothing to say it to.
        _, err, _ = cluster.psql("select revetl.run_sync('waited_on')")
        self.assertNotIn("NOTICE", err)


if __name__ == "__main__":
    unittest.main()
