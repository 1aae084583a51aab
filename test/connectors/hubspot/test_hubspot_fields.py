"""The destination schema cache against the stateful mock HubSpot: the
properties API fills revetl.destination_fields through a revetl process
(refresh_destination_fields waits for it), a refused token is reported
clearly and without the token, CREATE SYNC checks MAP targets against the
cache (an error with the closest name while it is fresh, a warning once it is
stale, nothing to judge with no cache), read-only properties are refused,
only roles with USAGE see or refresh anything, and values are formatted by
the property's type at delivery."""

import os
import sys
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "lib"))
from pgcluster import Cluster, MockHubSpot, wait_for  # noqa: E402

cluster = None
hubspot = None


def setUpModule():
    global cluster, hubspot
    cluster = Cluster(name="revetl-hubspot-fields").start()
    hubspot = MockHubSpot()
    cluster.sql("create extension revetl")
    cluster.wait_for_worker()


def tearDownModule():
    if hubspot:
        hubspot.stop()
    if cluster:
        cluster.destroy()


def psql(sql, user="postgres"):
    return cluster.psql(sql, user=user, check=False)


class FieldsTest(unittest.TestCase):
    n = 0

    def setUp(self):
        hubspot.reset()
        FieldsTest.n += 1
        self.srv = f"hsf_{FieldsTest.n}"
        self.t = f"people_f{FieldsTest.n}"
        self.s = f"fields_sync_{FieldsTest.n}"
        cluster.sql(f"""
            create server {self.srv} foreign data wrapper revetl
              options (type 'hubspot', url '{hubspot.url}');
            create user mapping for postgres server {self.srv} options (token 'test-token');
            create table {self.t} (id int primary key, email text, first_name text, ts timestamptz,
                                   flag text, tags text[], score numeric);
            insert into {self.t} values
              (1, 'a@example.com', 'Ann', '2024-01-05 10:30:00+00', 'yes', '{{music,travel}}', 92.50);
        """)

    def tearDown(self):
        cluster.sql(f"select revetl.drop_sync('{self.s}', if_exists => true)")
        self.assertEqual(hubspot.contract_violations(), [])

    def refresh(self, user="postgres"):
        return psql(f"select revetl.refresh_destination_fields('{self.srv}')", user=user)

    def create_sync(self, map_clause, options=""):
        return psql(f"""set client_min_messages = notice; {options}
            select * from revetl.execute($$
              CREATE SYNC {self.s} FROM {self.t} TO {self.srv} OBJECT contacts KEY (id) MATCH ON email
                MODE UPSERT MAP ({map_clause})
            $$);""")

    def test_refresh_fills_the_cache_and_waits(self):
        out, err, rc = self.refresh()
        self.assertEqual(rc, 0, err)
        self.assertEqual(int(out.strip()), 12)  # 7 standard + 5 custom contact properties
        # Already visible to the next statement: the call waited for the fetch.
        rows = dict((r[0], r[1:]) for r in cluster.rows(
            f"select field, type, field_type, read_only, user_mapping from revetl.destination_fields "
            f"where server = '{self.srv}' and object = 'contacts'"))
        self.assertEqual(len(rows), 12)
        self.assertEqual(rows["hs_object_id"][:3], ["number", "number", "t"])
        self.assertEqual(rows["createdate"][2], "t")
        self.assertEqual(rows["email"][2], "f")
        self.assertEqual(rows["email"][3], "postgres")
        self.assertEqual(cluster.sql(
            f"select options->1->>'value' from revetl.destination_fields "
            f"where server = '{self.srv}' and field = 'lifecyclestage'"), "lead")
        req = [r for r in hubspot.requests() if "/properties/" in r["path"]]
        self.assertEqual(len(req), 1)
        self.assertEqual((req[0]["method"], req[0]["path"]),
                         ("GET", "/crm/v3/properties/contacts?archived=false"))
        self.assertEqual(req[0]["headers"]["authorization"], "Bearer test-token")
        # A refresh replaces the object's rows: a property gone at HubSpot goes.
        hubspot.configure(properties={"contacts": [{"name": "tier"}]})
        self.assertEqual(self.refresh()[0].strip(), "8")
        self.assertEqual(cluster.sql(f"select count(*) from revetl.destination_fields "
                                     f"where server = '{self.srv}' and field = 'score'"), "0")
        # Without waiting: nothing until commit, then the worker fetches.
        hubspot.configure(properties={"contacts": [{"name": "tier"}, {"name": "extra"}]})
        out, err, rc = psql(f"begin; select revetl.refresh_destination_fields('{self.srv}', wait => false); "
                            f"select revetl.refresh_destination_fields('{self.srv}', wait => false); commit;")
        self.assertEqual((rc, out.strip()), (0, ""), err)
        wait_for(lambda: cluster.sql(f"select count(*) from revetl.destination_fields "
                                     f"where server = '{self.srv}' and field = 'extra'") == "1",
                 what="the queued refresh")
        # Two waits and one queued request: the second queued call joined the first.
        self.assertEqual(cluster.sql(f"select count(*) from revetl.field_refreshes r join pg_foreign_server s "
                                     f"on s.oid = r.server_id where s.srvname = '{self.srv}'"), "3")
        self.assertEqual(sum(1 for r in hubspot.requests() if "/properties/" in r["path"]), 3)

    def test_refused_token_is_reported_without_the_token(self):
        hubspot.configure(token="rotated")
        out, err, rc = self.refresh()
        self.assertNotEqual(rc, 0)
        self.assertIn(f'could not fetch the fields of object "contacts" of server "{self.srv}"', err)
        self.assertIn("refused the credentials (HTTP 401)", err)
        self.assertNotIn("test-token", err)
        self.assertEqual(cluster.sql(f"select count(*) from revetl.destination_fields "
                                     f"where server = '{self.srv}'"), "0")
        # Other failures: an unknown object, a type that cannot describe its fields.
        out, err, rc = psql(f"select revetl.refresh_destination_fields('{self.srv}', 'no/such')")
        self.assertIn('invalid HubSpot object "no/such"', err)
        cluster.sql(f"create server {self.srv}_hook foreign data wrapper revetl "
                    f"options (type 'webhook', url '{hubspot.url}')")
        out, err, rc = psql(f"select revetl.refresh_destination_fields('{self.srv}_hook')")
        self.assertIn("cannot describe its fields", err)

    def test_map_targets_checked_against_a_fresh_cache(self):
        self.assertEqual(self.refresh()[2], 0)
        out, err, rc = self.create_sync("email AS email, first_name AS lifecylestage")
        self.assertNotEqual(rc, 0, out)
        self.assertIn('MAP field "lifecylestage" does not exist in object "contacts"', err)
        self.assertIn('Perhaps you meant "lifecyclestage"', err)
        self.assertEqual(cluster.sql(f"select count(*) from revetl.syncs where name = '{self.s}'"), "0")
        # Read-only properties are refused; MATCH ON a read-only one is fine.
        out, err, rc = self.create_sync("email AS email, ts AS createdate")
        self.assertNotEqual(rc, 0, out)
        self.assertIn('field "createdate" of object "contacts" of server "%s" is read-only' % self.srv, err)
        # A stale cache (older than revetl.destination_fields_max_age) warns.
        out, err, rc = self.create_sync("email AS email, first_name AS lifecylestage",
                                        options="set revetl.destination_fields_max_age = 0;")
        self.assertEqual(rc, 0, err)
        self.assertIn("WARNING", err)
        self.assertIn('Perhaps you meant "lifecyclestage"', err)
        # ALTER SYNC and CREATE OR REPLACE are checked the same way.
        out, err, rc = psql(f"select * from revetl.execute($$ ALTER SYNC {self.s} "
                            f"SET MAP (email AS email, first_name AS firstnam) $$)")
        self.assertNotEqual(rc, 0, out)
        self.assertIn('Perhaps you meant "firstname"', err)
        replace = (f"select * from revetl.execute($$ CREATE OR REPLACE SYNC {self.s} FROM {self.t} "
                   f"TO {self.srv} OBJECT contacts KEY (id) MATCH ON {{match}} MAP (email AS email, "
                   f"first_name AS {{field}}) $$)")
        out, err, rc = psql(replace.format(match="email", field="firstnam"))
        self.assertNotEqual(rc, 0, out)
        self.assertIn('Perhaps you meant "firstname"', err)
        # MATCH ON targets likewise (a read-only one may identify records).
        out, err, rc = psql(replace.format(match="emial", field="firstname"))
        self.assertNotEqual(rc, 0, out)
        self.assertIn('MATCH ON field "emial" does not exist', err)
        out, err, rc = psql(replace.format(match="hs_object_id", field="firstname"))
        self.assertEqual(rc, 0, err)

    def test_no_cache_accepts_the_definition(self):
        out, err, rc = self.create_sync("email AS email, first_name AS lifecylestage")
        self.assertEqual(rc, 0, err)
        self.assertIn("WARNING:  MAP targets of sync", err)
        self.assertIn("were not checked", err)
        self.assertIn(f"revetl.refresh_destination_fields('{self.srv}', 'contacts')", err)

    def test_visibility_and_rights(self):
        self.assertEqual(self.refresh()[2], 0)
        cluster.sql("drop role if exists fields_outsider; create role fields_outsider login")
        self.assertEqual(cluster.sql("select count(*) from revetl.destination_fields",
                                     user="fields_outsider"), "0")
        out, err, rc = self.refresh(user="fields_outsider")
        self.assertNotEqual(rc, 0)
        self.assertIn(f"permission denied for foreign server {self.srv}", err)
        # USAGE alone is not enough to see what another mapping fetched, nor to
        # fetch without a mapping of one's own (or PUBLIC's).
        cluster.sql(f"grant usage on foreign server {self.srv} to fields_outsider")
        self.assertEqual(cluster.sql("select count(*) from revetl.destination_fields",
                                     user="fields_outsider"), "0")
        out, err, rc = self.refresh(user="fields_outsider")
        self.assertIn('user mapping for "fields_outsider" does not exist', err)
        # The internal tables are closed to everyone but the extension.
        out, err, rc = psql("select * from revetl.field_cache", user="fields_outsider")
        self.assertIn("permission denied", err)
        cluster.sql(f"create user mapping for fields_outsider server {self.srv} "
                    f"options (token 'test-token')")
        out, err, rc = self.refresh(user="fields_outsider")
        self.assertEqual(rc, 0, err)
        self.assertEqual(cluster.sql("select distinct user_mapping from revetl.destination_fields",
                                     user="fields_outsider"), "fields_outsider")
        cluster.sql(f"drop user mapping for fields_outsider server {self.srv}; "
                    f"revoke usage on foreign server {self.srv} from fields_outsider")

    def test_values_formatted_by_property_type(self):
        self.assertEqual(self.refresh()[2], 0)
        out, err, rc = self.create_sync(
            "email AS email, ts AS signup_date, ts AS last_seen, flag AS vip, tags AS interests, "
            "score AS score")
        self.assertEqual(rc, 0, err)
        out, err, rc = psql(f"select revetl.run_sync('{self.s}', wait => true)")
        self.assertEqual(rc, 0, err)
        props = hubspot.contacts()["a@example.com"]["properties"]
        self.assertEqual(props["signup_date"], "2024-01-05")
        self.assertEqual(props["last_seen"], "1704450600000")
        self.assertEqual(props["vip"], "true")
        self.assertEqual(props["interests"], "music;travel")
        self.assertEqual(props["score"], "92.50")  # exact numeric text kept


if __name__ == "__main__":
    unittest.main()
