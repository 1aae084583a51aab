"""The generic HTTP destination (type 'http') through PostgreSQL against the
mock API in test/connectors/http/mock.py: path templates with key values,
record bodies with DELETE for removals, batches with per-record errors found
by a JSON pointer, API keys from the user mapping, and a definition the
server cannot serve refused at CREATE SYNC."""

import json
import os
import sys
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "lib"))
from pgcluster import Cluster, MockHttp  # noqa: E402

cluster = None
api = None


def setUpModule():
    global cluster, api
    cluster = Cluster(name="revetl-http").start()
    api = MockHttp()
    cluster.sql("create extension revetl")
    cluster.wait_for_worker()


def tearDownModule():
    if api:
        api.stop()
    if cluster:
        cluster.destroy()


class HttpDestinationTest(unittest.TestCase):
    n = 0

    def setUp(self):
        api.reset()
        HttpDestinationTest.n += 1
        self.t = f"users_{self.n}"
        self.srv = f"api_{self.n}"
        self.s = f"to_api_{self.n}"
        cluster.sql(f"""
            create table {self.t} (id text primary key, email text, amount numeric);
            insert into {self.t} values ('1', 'a@x.com', 92.50), ('2', 'bad@x.com', 1), ('a b/c', 'c@x.com', 3);
        """)

    def tearDown(self):
        cluster.sql(f"select revetl.drop_sync('{self.s}', if_exists => true)")

    def run_sync(self):
        _, err, rc = cluster.psql(f"select revetl.run_sync('{self.s}', wait => true)", check=False)
        return cluster.rows(f"select status, rows_delivered, rows_rejected, requests from revetl.sync_runs "
                            f"where sync_name = '{self.s}' order by id desc limit 1")[0]

    def rejected(self):
        return cluster.rows(f"select key->>'id', reason, http_status from revetl.rejected_rows "
                            f"where sync_name = '{self.s}' order by 1")

    def test_records_by_path_template_with_delete_for_removals(self):
        api.configure(reject_field="email", reject_pattern="^bad")
        cluster.sql(f"""
            create server {self.srv} foreign data wrapper revetl options (type 'http', url '{api.url}',
              body 'record', add_method 'PUT', add_path '/v1/users/{{id}}', remove_method 'DELETE');
            create user mapping for postgres server {self.srv} options (api_key 'key-1');
            select * from revetl.execute($$CREATE SYNC {self.s} FROM {self.t} TO {self.srv} KEY (id) MODE MIRROR
              MAP (email AS email, amount AS amount)$$);
        """)
        self.assertEqual(self.run_sync(), ["partial", "2", "1", "3"])
        records = api.records()
        self.assertEqual(records["/v1/users/1"], {"email": "a@x.com", "amount": 92.50})
        self.assertEqual(records["/v1/users/a%20b%2Fc"]["email"], "c@x.com")
        self.assertEqual(self.rejected(), [["2", "email 'bad@x.com' is refused", "422"]])
        # The plan sends rows in no particular order: the PUT of record 1.
        put = next(r for r in api.requests() if r["path"] == "/v1/users/1")
        self.assertEqual(put["method"], "PUT")
        self.assertEqual(put["headers"]["x-api-key"], "key-1")
        self.assertEqual(json.loads(put["body"])["amount"], 92.50)
        self.assertIn('"amount": 92.50', put["body"])  # the numeric's exact text

        # A removed row is deleted at its own path; the refused row is sent again.
        api.configure(reject_field="email", reject_pattern="^nothing")
        cluster.sql(f"delete from {self.t} where id = '1'")
        self.assertEqual(self.run_sync()[:3], ["succeeded", "2", "0"])
        self.assertNotIn("/v1/users/1", api.records())
        self.assertIn("/v1/users/2", api.records())
        self.assertIn({"method": "DELETE", "path": "/v1/users/1"},
                      [{"method": r["method"], "path": r["path"]} for r in api.requests()])

    def test_batches_with_per_record_errors(self):
        api.configure(reject_field="email", reject_pattern="^bad")
        cluster.sql(f"""
            create server {self.srv} foreign data wrapper revetl options (type 'http', url '{api.url}',
              add_path '/v1/import?source=revetl', body 'object', body_key 'records', errors_pointer '/errors');
            select * from revetl.execute($$CREATE SYNC {self.s} FROM {self.t} TO {self.srv} KEY (id)
              MAP (id AS id, email AS email)$$);
        """)
        self.assertEqual(self.run_sync(), ["partial", "2", "1", "1"])
        self.assertEqual(sorted(api.records()), ["/v1/import#1", "/v1/import#a b/c"])
        self.assertEqual(self.rejected(), [["2", "email 'bad@x.com' is refused", "200"]])
        self.assertEqual(api.requests()[0]["path"], "/v1/import?source=revetl")

    def test_a_definition_the_server_cannot_serve_is_refused_at_create(self):
        cluster.sql(f"create server {self.srv} foreign data wrapper revetl options (type 'http', url '{api.url}')")
        _, err, rc = cluster.psql(f"select * from revetl.execute($$CREATE SYNC {self.s} FROM {self.t} "
                                  f"TO {self.srv} KEY (id) MODE MIRROR$$)", check=False)
        self.assertNotEqual(rc, 0)
        self.assertIn(f'sync "{self.s}" cannot use mode mirror with server "{self.srv}" (type http)', err)
        self.assertIn("remove_method", err)

    def test_retries_then_delivers(self):
        api.configure(faults=[{"status": 503}, {"status": 429, "headers": {"Retry-After": "1"}}])
        cluster.sql(f"""
            create server {self.srv} foreign data wrapper revetl options (type 'http', url '{api.url}',
              add_path '/v1/import', body 'ndjson');
            select * from revetl.execute($$CREATE SYNC {self.s} FROM {self.t} TO {self.srv} KEY (id)$$);
        """)
        self.assertEqual(self.run_sync(), ["succeeded", "3", "0", "3"])
        self.assertEqual(len(api.records()), 3)


if __name__ == "__main__":
    unittest.main()
