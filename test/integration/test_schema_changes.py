"""Schema changes that break a sync (issue 17, point 5): reported at the DDL
itself (a WARNING naming the sync and the map entry), kept in
sync_status.model_problem until fixed, and named by the run's error; an
unrelated statement does not repeat the warning, and a fix clears it.
"""

import os
import sys
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from pgcluster import Cluster, MockWebhook  # noqa: E402

cluster = None
mock = None


def setUpModule():
    global cluster, mock
    cluster = Cluster(name="revetl-schema").start()
    mock = MockWebhook()
    cluster.sql("create extension revetl")
    cluster.wait_for_worker()
    cluster.sql(f"create server hooks foreign data wrapper revetl options (type 'webhook', url '{mock.url}/in')")


def tearDownModule():
    if mock:
        mock.stop()
    if cluster:
        cluster.destroy()


def ddl(sql):
    """Runs DDL; returns its stderr (notices and warnings)."""
    _, err, rc = cluster.psql(sql)
    return err


def problem(sync):
    return cluster.sql(f"select model_problem from revetl.sync_status where name = '{sync}'")


class SchemaChangesTest(unittest.TestCase):
    def test_a_dropped_or_retyped_mapped_column(self):
        cluster.sql("""
            create table leads (id int primary key, email text, score int);
            insert into leads select g, 'U' || g || '@example.com', g from generate_series(1, 5) g;
            select * from revetl.execute($$CREATE SYNC leads_out FROM leads TO hooks KEY (id) MODE MIRROR
                                          MAP (lower(email) AS email, score AS score)$$);
        """)
        cluster.sql("select revetl.run_sync('leads_out', wait => true)")
        self.assertEqual(len(mock.records()), 5)

        err = ddl("alter table leads drop column score")
        self.assertIn('WARNING:  sync "leads_out" no longer fits its model after this statement: column "score" '
                      'does not exist (in the map expression for field "score")', err)
        self.assertIn("ALTER SYNC leads_out SET FROM, SET KEY or SET MAP", err)
        self.assertEqual(problem("leads_out"), 'column "score" does not exist (in the map expression for field "score")')
        # An unrelated statement says nothing more.
        self.assertNotIn("WARNING", ddl("create table unrelated (x int); alter table unrelated add column y int"))

        # The run names the sync and the entry; nothing is removed.
        _, err, rc = cluster.psql("select revetl.run_sync('leads_out', wait => true)", check=False)
        self.assertNotEqual(rc, 0)
        self.assertIn('sync "leads_out" no longer fits its model: column "score" does not exist (in the map expression '
                      'for field "score")', err)
        self.assertEqual(len(mock.records()), 5)

        # Fixed by DDL: the problem goes, and runs work again.
        self.assertNotIn("WARNING", ddl("alter table leads add column score int"))
        self.assertEqual(problem("leads_out"), "")
        cluster.sql("select revetl.run_sync('leads_out', wait => true)")

        err = ddl("alter table leads alter column email type int using 0")
        self.assertIn('sync "leads_out" no longer fits its model after this statement: function lower(integer) '
                      'does not exist (in the map expression for field "email")', err)
        # Fixed by the sync: ALTER SYNC clears it.
        cluster.sql("select * from revetl.execute($$ALTER SYNC leads_out SET MAP (email AS email, score AS score)$$)")
        self.assertEqual(problem("leads_out"), "")

    def test_a_renamed_or_dropped_model(self):
        cluster.sql("""
            create table accounts (id int primary key, name text);
            create view accounts_v as select id, name from accounts;
            select * from revetl.execute($$CREATE SYNC accounts_out FROM accounts TO hooks KEY (id)$$);
            select * from revetl.execute($$CREATE SYNC accounts_v_out FROM accounts_v TO hooks KEY (id)$$);
        """)
        err = ddl("alter table accounts rename to accounts_old")
        self.assertIn('sync "accounts_out" no longer fits its model after this statement:', err)
        self.assertNotIn("accounts_v_out", err)  # a view follows its table's rename
        self.assertNotEqual(problem("accounts_out"), "")
        self.assertNotIn("WARNING", ddl("alter table accounts_old rename to accounts"))
        self.assertEqual(problem("accounts_out"), "")

        err = ddl("drop view accounts_v")
        self.assertIn('sync "accounts_v_out" no longer fits its model after this statement:', err)
        self.assertIn("accounts_v", problem("accounts_v_out"))
        # A new view of the same name fits again.
        self.assertNotIn("WARNING", ddl("create view accounts_v as select id, name from accounts"))
        self.assertEqual(problem("accounts_v_out"), "")


if __name__ == "__main__":
    unittest.main()
