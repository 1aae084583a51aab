"""Copies of a database do not send (issue 17, point 3): a database made
from another as its template holds every sync (health 'copy', a log line,
run_sync refused with the hint) while the original goes on sending;
revetl.confirm_copy(), for the database's owner, releases it, and what was
captured meanwhile is then delivered. (Restored dumps: test_pipeline.py.)
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
    cluster = Cluster(name="revetl-copies").start()
    mock = MockWebhook()
    cluster.sql("create database app")
    cluster.sql(f"""
        create extension revetl;
        create server hooks foreign data wrapper revetl options (type 'webhook', url '{mock.url}/in');
        create table ev (id int primary key, v text);
        select * from revetl.execute($$CREATE SYNC ev_out FROM ev TO hooks KEY (id) SCHEDULE ON CHANGE$$);
    """, db="app")
    cluster.wait_for_worker(db="app")


def tearDownModule():
    if mock:
        mock.stop()
    if cluster:
        cluster.destroy()


def sent_ids():
    return {r["key"]["id"] for q in mock.requests() for r in (q["body"] or {}).get("records", [])}


class CopiesTest(unittest.TestCase):
    def test_a_template_copy_holds_its_syncs_until_confirmed(self):
        cluster.sql("insert into ev values (1, 'original')", db="app")
        wait_for(lambda: 1 in sent_ids(), what="the original to send")
        self.assertEqual(cluster.sql("select health from revetl.sync_status", db="app"), "healthy")

        cluster.sql("create database copy1 template app")
        cluster.wait_for_worker(db="copy1")
        wait_for(lambda: 'revetl worker for database "copy1" holds every sync: this database is a copy (it was '
                         'created from another database as its template)' in cluster.log_text(),
                 what="the copy's log line")
        self.assertEqual(cluster.sql("select health from revetl.sync_status", db="copy1"), "copy")
        _, err, rc = cluster.psql("select revetl.run_sync('ev_out')", db="copy1", check=False)
        self.assertNotEqual(rc, 0)
        self.assertIn('database "copy1" is a copy: it was created from another database as its template, so its '
                      'syncs do not send', err)
        cluster.sql("insert into ev values (2, 'in the copy')", db="copy1")
        # The original goes on sending meanwhile; the copy does not.
        cluster.sql("insert into ev values (3, 'original')", db="app")
        wait_for(lambda: 3 in sent_ids(), what="the original to send its next row")
        self.assertNotIn(2, sent_ids())
        # Nothing was queued in the copy: its captured row waits.
        self.assertEqual(cluster.sql("select count(*) from revetl.sync_runs where status in ('queued', 'running')",
                                     db="copy1"), "0")
        self.assertEqual(cluster.sql("select count(*) from revetl.captured_changes", db="copy1"), "1")

        # Only the database's owner (or a superuser) may release it.
        cluster.sql("create role someone login")
        _, err, rc = cluster.psql("select revetl.confirm_copy()", db="copy1", user="someone", check=False)
        self.assertNotEqual(rc, 0)
        self.assertIn('must be the owner of database copy1 to confirm it as a copy', err)
        cluster.sql("select revetl.confirm_copy()", db="copy1")
        self.assertEqual(cluster.sql("select health from revetl.sync_status", db="copy1"), "healthy")
        # What was captured while it was held goes now.
        wait_for(lambda: 2 in sent_ids(), timeout=60, what="the confirmed copy to send its captured row")
        self.assertEqual(cluster.sql("select health from revetl.sync_status", db="app"), "healthy")


if __name__ == "__main__":
    unittest.main()
