"""Day two messages (issue 20, point 8): what revetl says when something is
off, through a real cluster: close-name hints for sync names, a NOTICE when a
MAP target is folded to lower case, one duration syntax in options and
schedules, rate limits per second / minute / hour, and a partial run's line
in the server log.
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
    cluster = Cluster(name="revetl-messages").start()
    mock = MockWebhook()
    cluster.sql("create extension revetl")
    cluster.wait_for_worker()
    cluster.sql(f"""
        create table people (id int primary key, email text, first_name text);
        insert into people select g, 'p' || g || '@example.com', 'P' || g from generate_series(1, 5) g;
        create server hooks foreign data wrapper revetl options (type 'webhook', url '{mock.url}/in');
    """)


def tearDownModule():
    if mock:
        mock.stop()
    if cluster:
        cluster.destroy()


class DayTwoMessagesTest(unittest.TestCase):
    def test_a_misspelled_sync_name_gets_the_closest_one(self):
        cluster.sql("select * from revetl.execute('CREATE SYNC customers_to_crm FROM people TO hooks KEY (id)')")
        try:
            _, err, rc = cluster.psql("select revetl.run_sync('customer_to_crm')", check=False)
            self.assertNotEqual(rc, 0)
            self.assertIn('sync "customer_to_crm" does not exist', err)
            self.assertIn('Perhaps you meant the sync "customers_to_crm".', err)
            _, err, _ = cluster.psql("select revetl.run_sync('zzzzzzzzzz')", check=False)
            self.assertIn("SELECT name FROM revetl.syncs lists the syncs", err)
        finally:
            cluster.sql("select * from revetl.execute('DROP SYNC customers_to_crm')")

    def test_an_unquoted_map_target_folded_to_lower_case_is_noticed(self):
        _, err, rc = cluster.psql("select * from revetl.execute($$CREATE SYNC folded FROM people TO hooks KEY (id) "
                                  "MAP (first_name AS firstName, email AS \"eMail\", id AS id)$$)")
        try:
            self.assertEqual(rc, 0, err)
            self.assertIn('NOTICE:  destination field name firstName is folded to lower case: "firstname"', err)
            self.assertIn('Write AS "firstName" (in double quotes) to keep its case.', err)
            self.assertNotIn("eMail", err)  # quoted: kept as written, nothing to say
            self.assertEqual(cluster.sql("select string_agg(e->>'field', ',') from revetl.syncs, "
                                         "jsonb_array_elements(map) e where name = 'folded'"), "firstname,eMail,id")
        finally:
            cluster.sql("select * from revetl.execute('DROP SYNC folded')")

    def test_durations_read_the_same_in_options_and_schedules(self):
        cluster.sql("create server words foreign data wrapper revetl options (type 'webhook', "
                    f"url '{mock.url}/w', timeout '30 seconds', settle_time '2 minutes', "
                    "rate_limit '10 per second')")
        try:
            cluster.sql("alter server words options (set rate_limit '3000 per minute')")
            cluster.sql("select * from revetl.execute($$CREATE SYNC worded FROM people TO words KEY (id) "
                        "SCHEDULE EVERY '15 minutes' WITH (timeout = '1 minute')$$)")
            cluster.sql("select * from revetl.execute('DROP SYNC worded')")
            _, err, rc = cluster.psql("alter server words options (set timeout '10 fortnights')", check=False)
            self.assertNotEqual(rc, 0)
            self.assertIn("'15 minutes'", err)
        finally:
            cluster.sql("drop server words")

    def test_a_partial_run_is_logged_with_its_counts(self):
        cluster.sql("select * from revetl.execute('CREATE SYNC partly FROM people TO hooks KEY (id)')")
        try:
            mock.configure(reject=[{"field": "email", "equals": "p3@example.com", "reason": "bad address"}])
            run = cluster.sql("select revetl.run_sync('partly', wait => true)")
            line = (f'revetl: run {run} of sync "partly" in database "postgres" ended partial: 4 rows delivered, '
                    f'1 refused by the destination, 0 invalid')
            wait_for(lambda: line in cluster.log_text(), timeout=10, what="the partial run's log line")
        finally:
            mock.configure(reject=[])
            cluster.sql("select * from revetl.execute('DROP SYNC partly')")


if __name__ == "__main__":
    unittest.main()


class MatchValueChangeNoticeTest(unittest.TestCase):
    """Issue 20, point 3: where a changed MATCH ON value does not follow the
    record (the type finds records by that value alone), CREATE SYNC says so,
    once; HubSpot updates a kept record by its id and says nothing."""

    def test_create_sync_says_what_a_changed_match_value_does(self):
        cluster.sql("""
            create server zd foreign data wrapper revetl options (type 'zendesk', subdomain 'acme');
            create server hs foreign data wrapper revetl options (type 'hubspot');
        """)
        create = ("select * from revetl.execute($$CREATE OR REPLACE SYNC to_zd FROM people TO zd OBJECT users "
                  "KEY (id) MATCH ON email MODE {mode} MAP (email AS email, first_name AS name)$$)")
        try:
            _, err, rc = cluster.psql(create.format(mode="MIRROR"))
            self.assertEqual(rc, 0, err)
            self.assertIn('NOTICE:  sync "to_zd" finds records of server "zd" (type zendesk) by "email" alone', err)
            self.assertIn("the record with the old value is left as it was, and MIRROR will not remove it", err)
            self.assertIn("HINT:  MATCH ON a value that never changes for a record", err)
            # An identical deploy says nothing; a new mode says it again.
            _, err, rc = cluster.psql(create.format(mode="MIRROR"))
            self.assertEqual((rc, err.strip()), (0, ""))
            _, err, rc = cluster.psql(create.format(mode="UPSERT"))
            self.assertIn("finds records of server", err)
            self.assertNotIn("MIRROR will not remove it", err)

            _, err, rc = cluster.psql("select * from revetl.execute($$CREATE SYNC to_hs FROM people TO hs "
                                      "KEY (id) MODE MIRROR MAP (email AS email)$$)")
            self.assertEqual(rc, 0, err)
            self.assertNotIn("finds records", err)
        finally:
            cluster.sql("select revetl.drop_sync('to_zd', if_exists => true); "
                        "select revetl.drop_sync('to_hs', if_exists => true); "
                        "drop server zd; drop server hs")
