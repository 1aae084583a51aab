"""The dbt package's macros, rendered with Jinja as dbt renders them and run
against a real cluster: post-hooks inside a model's transaction, waiting
outside one, and defining syncs with run-operation."""

import os
import sys
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from pgcluster import REPO, Cluster, MockWebhook, wait_for  # noqa: E402

try:
    import jinja2
except ImportError:  # scripts/install-deps.sh installs python3-jinja2
    jinja2 = None

MACROS = os.path.join(REPO, "dbt", "revetl", "macros", "revetl.sql")


class Result:
    def __init__(self, rows):
        self.rows = rows


@unittest.skipIf(jinja2 is None, "python3-jinja2 is not installed")
class DbtMacrosTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.cluster = Cluster(name="revetl-dbt").start()
        cls.mock = MockWebhook()
        cls.cluster.sql(f"""
            create extension revetl;
            create server crm foreign data wrapper revetl options (type 'webhook', url '{cls.mock.url}/crm');
            create table lead_scores as select g as lead_id, 'u' || g || '@x.com' as email, g as score
              from generate_series(1, 5) g;
            alter table lead_scores add primary key (lead_id);
        """)
        cls.cluster.wait_for_worker()
        cls.logged = []
        env = jinja2.Environment(extensions=["jinja2.ext.do"])
        source = open(MACROS).read()

        def run_query(sql):
            return Result(cls.cluster.rows(sql))

        common = {"run_query": run_query, "execute": True,
                  "log": lambda msg, info=False: cls.logged.append(msg) or ""}
        # Macros call each other as revetl.<name>, as in a dbt package.
        first = env.from_string(source, globals=common).module
        cls.revetl = env.from_string(source, globals=dict(common, revetl=first)).module

    @classmethod
    def tearDownClass(cls):
        cls.mock.stop()
        cls.cluster.destroy()

    def test_execute_defines_syncs_and_is_safe_to_rerun(self):
        statements = ("CREATE OR REPLACE SYNC leads_to_crm FROM lead_scores TO crm KEY (lead_id) "
                      "MAP (lower(email) AS email, score AS score)")
        self.revetl.execute(statements)
        self.assertIn("CREATE SYNC leads_to_crm", self.logged)
        before = self.cluster.sql("select updated_at from revetl.syncs where name = 'leads_to_crm'")
        self.revetl.execute(statements)
        self.assertEqual(self.cluster.sql("select updated_at from revetl.syncs where name = 'leads_to_crm'"), before)
        # Text that contains the default dollar-quote tag still arrives intact.
        self.revetl.execute("CREATE OR REPLACE SYNC tagged FROM (SELECT lead_id, '$revetl$' AS t FROM lead_scores) "
                            "TO crm KEY (lead_id)")
        self.assertIn("$revetl$", self.cluster.sql("select model_query from revetl.syncs where name = 'tagged'"))

    def test_post_hook_in_the_model_transaction_runs_after_commit(self):
        self.revetl.execute("CREATE OR REPLACE SYNC hooked FROM lead_scores TO crm KEY (lead_id)")
        post_hook = str(self.revetl.run_sync("hooked")).strip()
        self.assertEqual(post_hook, "select revetl.run_sync('hooked')")
        # dbt's table materialization, with the post-hook inside.
        self.cluster.sql(f"""
            begin;
            create table lead_scores__dbt_tmp as select lead_id, email, score * 2 as score from lead_scores;
            alter table lead_scores rename to lead_scores__dbt_backup;
            alter table lead_scores__dbt_tmp rename to lead_scores;
            drop table lead_scores__dbt_backup cascade;
            {post_hook};
            commit;
        """)
        wait_for(lambda: self.cluster.sql("select status from revetl.sync_runs where sync_name = 'hooked' "
                                          "order by id desc limit 1") == "succeeded", timeout=30,
                 what="post-hook run")
        scores = sorted(r["data"]["score"] for r in self.mock.requests()[-1]["body"]["records"])
        self.assertEqual(scores, [2, 4, 6, 8, 10])

    def test_wait_only_outside_a_transaction(self):
        self.revetl.execute("CREATE OR REPLACE SYNC waited FROM lead_scores TO crm KEY (lead_id)")
        sql = str(self.revetl.run_sync("waited", wait=True)).strip()
        self.assertEqual(sql, "select revetl.run_sync('waited', wait => true)")
        run_id = self.cluster.sql(sql)
        self.assertEqual(self.cluster.sql(f"select status from revetl.sync_runs where id = {int(run_id)}"),
                         "succeeded")
        _, err, rc = self.cluster.psql(f"begin; {sql}; commit;", check=False)
        self.assertNotEqual(rc, 0)
        self.assertIn("inside a transaction block", err)

    def test_names_are_quoted(self):
        sql = str(self.revetl.run_sync("o'brien", full=True)).strip()
        self.assertEqual(sql, "select revetl.run_sync('o''brien', full => true)")
        sql = str(self.revetl.run_sync("x", wait=True, resync=True)).strip()
        self.assertEqual(sql, "select revetl.run_sync('x', wait => true, resync => true)")
        sql = str(self.revetl.run_sync("x", allow_removals=True)).strip()
        self.assertEqual(sql, "select revetl.run_sync('x', allow_removals => true)")


if __name__ == "__main__":
    unittest.main()
