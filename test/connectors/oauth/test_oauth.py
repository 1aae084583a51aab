"""OAuth 2.0 as a shared auth scheme, through PostgreSQL against the mock
token endpoint and protected API in test/connectors/oauth/mock.py, with the
generic `http` destination: runs share one token (shared memory), a token
revoked early is refreshed once and the request replayed, a rotated refresh
token is stored in the user mapping and used after a restart, invalid_grant
fails the run with a clear error and sends nothing, the client-credentials
grant, and no secret in revetl's tables or the server log (which logs every
statement here)."""

import json
import os
import sys
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "lib"))
from pgcluster import Cluster, MockOAuth, wait_for  # noqa: E402

cluster = None
api = None


def setUpModule():
    global cluster, api
    # Every statement is logged: a secret in any statement text would show.
    cluster = Cluster(name="revetl-oauth", extra_conf="log_statement = 'all'\n").start()
    api = MockOAuth()
    cluster.sql("create extension revetl")
    cluster.wait_for_worker()


def tearDownModule():
    if api:
        api.stop()
    if cluster:
        cluster.destroy()


class OAuthTest(unittest.TestCase):
    n = 0

    def setUp(self):
        api.reset()
        OAuthTest.n += 1
        self.t = f"users_{self.n}"
        self.srv = f"crm_{self.n}"
        self.s = f"to_crm_{self.n}"
        self.refresh = f"rt-initial-{self.n}-6f1c2a"
        cluster.sql(f"""
            create table {self.t} (id text primary key, email text);
            insert into {self.t} values ('1', 'a@x.com'), ('2', 'b@x.com'), ('3', 'c@x.com');
            create server {self.srv} foreign data wrapper revetl options (type 'http', url '{api.url}',
              add_path '/v1/import', body 'object', body_key 'records', errors_pointer '/errors');
        """)

    def tearDown(self):
        for s in (self.s, self.s + "_b"):
            cluster.sql(f"select revetl.drop_sync('{s}', if_exists => true)")

    def map_user(self, refresh_token=None, extra=""):
        rt = f", refresh_token '{refresh_token}'" if refresh_token else ""
        cluster.sql(f"""create user mapping for postgres server {self.srv} options (
              oauth_token_url '{api.token_url}', client_id '{MockOAuth.CLIENT_ID}',
              client_secret '{MockOAuth.CLIENT_SECRET}'{rt}{extra})""")

    def create_sync(self, name=None):
        cluster.sql(f"select * from revetl.execute($$CREATE SYNC {name or self.s} FROM {self.t} TO {self.srv} "
                    f"KEY (id) MAP (id AS id, email AS email)$$)")

    def run_sync(self, name=None):
        cluster.psql(f"select revetl.run_sync('{name or self.s}', wait => true)", check=False)
        return cluster.rows(f"select status, rows_delivered, rows_rejected, coalesce(error, '') "
                            f"from revetl.sync_runs where sync_name = '{name or self.s}' order by id desc limit 1")[0]

    def api_calls(self):
        return [r for r in api.requests() if r["path"] != "/oauth/token"]

    def token_calls(self):
        return [r for r in api.requests() if r["path"] == "/oauth/token"]

    def mapping_option(self, name):
        for o in json.loads(cluster.sql(
                f"select pg_catalog.array_to_json(umoptions) from pg_catalog.pg_user_mappings "
                f"where srvname = '{self.srv}'")):
            k, _, v = o.partition("=")
            if k == name:
                return v
        return None

    def assert_no_secret_stored(self, typed=(), learnt=()):
        """No secret in revetl's tables; none that revetl learnt from the
        token endpoint in the server log either (what the test typed itself
        in CREATE USER MAPPING is logged by log_statement = 'all')."""
        stored = cluster.sql("select coalesce(string_agg(error, ' '), '') from revetl.sync_runs") + \
            cluster.sql("select coalesce(string_agg(reason || coalesce(payload::text, ''), ' '), '') "
                        "from revetl.rejected_rows")
        log = cluster.log_text()
        self.assertIn("create user mapping", log)  # the log does hold statements
        for secret in (*typed, *learnt):
            self.assertNotIn(secret, stored)
        for secret in learnt:
            self.assertNotIn(secret, log)

    def test_runs_and_syncs_share_one_token(self):
        api.configure(refresh_tokens=[self.refresh])
        self.map_user(self.refresh)
        self.create_sync()
        self.create_sync(self.s + "_b")
        self.assertEqual(self.run_sync()[:3], ["succeeded", "3", "0"])
        cluster.sql(f"insert into {self.t} values ('4', 'd@x.com')")
        self.assertEqual(self.run_sync()[:3], ["succeeded", "1", "0"])
        self.assertEqual(self.run_sync(self.s + "_b")[:3], ["succeeded", "4", "0"])
        # One grant for three runs of two syncs, all sent with its token.
        self.assertEqual(api.state()["grants"], {"refresh_token": 1})
        tokens = {r["headers"]["authorization"] for r in self.api_calls()}
        self.assertEqual(len(tokens), 1)
        form = self.token_calls()[0]["body"]
        self.assertIn("grant_type=refresh_token", form)
        self.assertIn("refresh_token=" + self.refresh, form)
        access = tokens.pop()[len("Bearer "):]
        self.assert_no_secret_stored(typed=(self.refresh, MockOAuth.CLIENT_SECRET), learnt=(access,))

    def test_concurrent_runs_wait_for_one_refresh(self):
        # A slow token endpoint: the second run starts while the first is
        # still refreshing, waits for it and takes its token.
        api.configure(refresh_tokens=[self.refresh], token_delay=2)
        self.map_user(self.refresh)
        self.create_sync()
        self.create_sync(self.s + "_b")
        ids = cluster.rows(f"select revetl.run_sync('{self.s}'), revetl.run_sync('{self.s}_b')")[0]
        for run_id in ids:
            cluster.wait_for_run(run_id)
        runs = cluster.rows(f"select status, started_at < (select finished_at from revetl.sync_runs o "
                            f"where o.id <> r.id and o.id in ({ids[0]}, {ids[1]})) "
                            f"from revetl.sync_runs r where id in ({ids[0]}, {ids[1]})")
        self.assertEqual(runs, [["succeeded", "t"], ["succeeded", "t"]])  # they overlapped
        self.assertEqual(api.state()["grants"], {"refresh_token": 1})
        self.assertEqual(len(self.token_calls()), 1)
        self.assertEqual(len({r["headers"]["authorization"] for r in self.api_calls()}), 1)

    def test_token_revoked_early_is_refreshed_once_and_the_request_replayed(self):
        api.configure(refresh_tokens=[self.refresh])
        self.map_user(self.refresh)
        self.create_sync()
        self.assertEqual(self.run_sync()[:3], ["succeeded", "3", "0"])
        api.revoke_access_tokens()
        cluster.sql(f"update {self.t} set email = 'new-' || email")
        self.assertEqual(self.run_sync()[:3], ["succeeded", "3", "0"])
        self.assertEqual(api.state()["grants"], {"refresh_token": 2})
        calls = self.api_calls()
        self.assertEqual([c["status"] for c in calls], [200, 401, 200])
        self.assertNotEqual(calls[1]["headers"]["authorization"], calls[2]["headers"]["authorization"])
        self.assertEqual(calls[1]["body"], calls[2]["body"])  # the same request, replayed
        self.assertEqual(cluster.sql(f"select count(*) from revetl.rejected_rows where sync_name = '{self.s}'"), "0")

    def test_requests_in_flight_refused_together_cause_one_refresh(self):
        cluster.sql(f"alter server {self.srv} options (add batch_size '1', add max_in_flight '4')")
        api.configure(refresh_tokens=[self.refresh])
        self.map_user(self.refresh)
        self.create_sync()
        self.assertEqual(self.run_sync()[:3], ["succeeded", "3", "0"])
        api.revoke_access_tokens()
        cluster.sql(f"update {self.t} set email = 'new-' || email")
        self.assertEqual(self.run_sync()[:3], ["succeeded", "3", "0"])
        # Each refused request is replayed once, all with the one new token.
        self.assertEqual(api.state()["grants"], {"refresh_token": 2})
        second_run = self.api_calls()[3:]
        refused = [c for c in second_run if c["status"] == 401]
        replayed = [c for c in second_run if c["status"] == 200]
        self.assertGreaterEqual(len(refused), 1)
        self.assertEqual(len(replayed), 3)
        self.assertEqual(len({c["headers"]["authorization"] for c in replayed}), 1)

    def test_a_token_refused_after_refreshing_fails_the_run(self):
        api.configure(refresh_tokens=[self.refresh], expires_in=600)
        self.map_user(self.refresh)
        self.create_sync()
        self.assertEqual(self.run_sync()[0], "succeeded")
        # Every token dies as soon as it is issued: one refresh, one replay, then a clear error.
        api.configure(expires_in=0)
        api.revoke_access_tokens()
        cluster.sql(f"update {self.t} set email = 'x-' || email")
        status, _, rejected, error = self.run_sync()
        self.assertEqual((status, rejected), ("failed", "0"))
        self.assertIn("refused the credentials (HTTP 401)", error)
        self.assertIn("again, after refreshing the token", error)
        self.assertEqual(api.state()["grants"], {"refresh_token": 2})

    def test_rotated_refresh_token_is_stored_and_used_after_a_restart(self):
        api.configure(refresh_tokens=[self.refresh], rotate=True)
        self.map_user(self.refresh)
        self.create_sync()
        self.assertEqual(self.run_sync()[:3], ["succeeded", "3", "0"])
        rotated = api.state()["refresh_tokens"]
        self.assertEqual(len(rotated), 1)
        self.assertNotEqual(rotated[0], self.refresh)
        self.assertEqual(self.mapping_option("refresh_token"), rotated[0])
        # A restart forgets the cached token: the next run refreshes with
        # the stored (rotated) refresh token, which the vendor still honours.
        cluster.stop()
        cluster.start()
        cluster.wait_for_worker()
        cluster.sql(f"insert into {self.t} values ('4', 'd@x.com')")
        self.assertEqual(self.run_sync()[:3], ["succeeded", "1", "0"])
        self.assertEqual(api.state()["grants"], {"refresh_token": 2})
        self.assertIn("refresh_token=" + rotated[0], self.token_calls()[-1]["body"])
        self.assertEqual(self.mapping_option("refresh_token"), api.state()["refresh_tokens"][0])
        self.assert_no_secret_stored(typed=(self.refresh,), learnt=(rotated[0], api.state()["refresh_tokens"][0]))

    def test_invalid_grant_fails_the_run_with_a_reconnect_hint_and_sends_nothing(self):
        dead = f"rt-dead-{self.n}-93b0d1"
        self.map_user(dead)
        self.create_sync()
        status, delivered, rejected, error = self.run_sync()
        self.assertEqual(status, "failed")
        self.assertIn(f'server "{self.srv}"', error)
        self.assertIn("invalid_grant", error)
        self.assertIn("reconnect required", error)
        self.assertIn("ALTER USER MAPPING", error)
        self.assertIn("SET refresh_token", error)
        self.assertEqual(self.api_calls(), [])
        # No retry loop: one token request, and a second run within the
        # failure memory does not ask again.
        self.assertEqual(len(self.token_calls()), 1)
        self.assertEqual(self.run_sync()[0], "failed")
        self.assertEqual(len(self.token_calls()), 1)
        self.assert_no_secret_stored(typed=(dead, MockOAuth.CLIENT_SECRET))
        # Reconnecting (a new refresh token) is a new credential set: it works at once.
        api.configure(refresh_tokens=[self.refresh])
        cluster.sql(f"alter user mapping for postgres server {self.srv} options (set refresh_token '{self.refresh}')")
        self.assertEqual(self.run_sync()[:3], ["succeeded", "3", "0"])

    def test_client_credentials_grant(self):
        api.configure(camel_case=True, omit_expires_in=True)
        self.map_user(extra=", scope 'crm.write'")
        self.create_sync()
        self.assertEqual(self.run_sync()[:3], ["succeeded", "3", "0"])
        self.assertEqual(api.state()["grants"], {"client_credentials": 1})
        form = self.token_calls()[0]["body"]
        self.assertIn("grant_type=client_credentials", form)
        self.assertIn("scope=crm.write", form)
        self.assertNotIn("refresh_token", form)

    def test_token_endpoint_errors_are_retried(self):
        api.configure(refresh_tokens=[self.refresh], token_faults=[{"status": 503}, {"status": 500}])
        self.map_user(self.refresh)
        self.create_sync()
        self.assertEqual(self.run_sync()[:3], ["succeeded", "3", "0"])
        self.assertEqual([c["status"] for c in self.token_calls()], [503, 500, 200])

    def test_token_endpoint_host_is_checked_at_create(self):
        _, err, rc = cluster.psql(f"""create user mapping for public server {self.srv} options (
              oauth_token_url 'http://169.254.169.254/token', client_id 'c', client_secret 'sssss')""", check=False)
        self.assertNotEqual(rc, 0)
        self.assertIn('OAuth token endpoint host "169.254.169.254" is not in revetl.allowed_hosts', err)
        _, err, rc = cluster.psql(f"""create user mapping for public server {self.srv} options (
              oauth_token_url '{api.token_url}', client_id 'c', token 'tttt')""", check=False)
        self.assertNotEqual(rc, 0)
        self.assertIn("more than one auth scheme", err)

    def test_destination_types_list_oauth(self):
        types = {t["type"]: t for t in json.loads(cluster.sql(
            "select json_agg(json_build_object('type', type, 'auth', auth, 'options', options)) "
            "from revetl.destination_types"))}
        for name in ("http", "hubspot"):
            self.assertIn("oauth", types[name]["auth"])
            options = {o["name"]: o for o in types[name]["options"] if o["on"] == "user mapping"}
            self.assertTrue(options["refresh_token"]["secret"])
            self.assertTrue(options["client_secret"]["secret"])
            self.assertFalse(options["oauth_token_url"]["secret"])
        self.assertNotIn("oauth", types["webhook"]["auth"])


if __name__ == "__main__":
    unittest.main(verbosity=2)
