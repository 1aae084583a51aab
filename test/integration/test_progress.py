"""revetl.sync_progress (issue 17): a run in progress shows its phase, what
it planned, what it has done so far and an estimate of the time left, to
every role; a finished run leaves the view.
"""

import os
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


if __name__ == "__main__":
    unittest.main()
