"""The README's getting-started SQL, run as written (only the endpoint is the
local mock's): its first run_sync delivers every row of the model, and the
schedule it sets afterwards is in place (issue 20: records arrive at the
first run_sync).
"""

import os
import re
import sys
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from pgcluster import Cluster, MockWebhook  # noqa: E402

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")


def getting_started_sql():
    with open(os.path.join(ROOT, "README.md")) as f:
        text = f.read()
    section = text[text.index("## Getting started"):]
    return re.search(r"```sql\n(.*?)```", section, re.S).group(1)


class ReadmeTest(unittest.TestCase):
    def test_getting_started_delivers_at_the_first_run_sync(self):
        mock = MockWebhook(require_token="the-bearer-token")
        cluster = Cluster(name="revetl-readme").start()
        try:
            cluster.sql("""
                create table customers (customer_id int primary key, email text, plan text,
                                        health_score numeric);
                insert into customers select g, 'C' || g || '@Example.com', 'pro', g / 100.0
                  from generate_series(1, 25) g;
            """)
            sql = getting_started_sql().replace("https://hooks.example.com/revetl", f"{mock.url}/revetl")
            self.assertIn(mock.url, sql)
            out, err, rc = cluster.psql(sql, check=False)
            self.assertEqual(rc, 0, err)
            first_run = cluster.sql("select min(id) from revetl.sync_runs where trigger = 'manual'")
            self.assertEqual(cluster.rows(f"select status, rows_added, rows_delivered from revetl.sync_runs "
                                          f"where id = {first_run}"), [["succeeded", "25", "25"]])
            self.assertEqual(len(mock.records()), 25)
            self.assertEqual(cluster.sql("select schedule from revetl.sync_status"), "every 15 minutes")
        finally:
            cluster.destroy()
            mock.stop()


if __name__ == "__main__":
    unittest.main()
