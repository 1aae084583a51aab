#!/usr/bin/env python3
"""Self-test for test/connectors/marketo/mock.py: the Identity endpoint (same
token until expiry, 401 for bad credentials), 601/602 in HTTP 200 answers,
Sync Leads in every action with per-record statuses and reasons in input
order, lookups by id, Delete Leads, static list membership (add, remove,
1004/1015, unknown list, ids by query and body), the 20-s window (606), the daily quota
(607), the concurrency limit (615), content type (612), faults, the journal
and the Swagger check.

Run: python3 test/connectors/marketo/mock_selftest.py"""

import json
import os
import sys
import threading
import unittest
import urllib.error
import urllib.request
from urllib.parse import urlencode

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "lib"))
from pgcluster import MockMarketo  # noqa: E402

CREDS = {"grant_type": "client_credentials", "client_id": MockMarketo.CLIENT_ID,
         "client_secret": MockMarketo.CLIENT_SECRET}


class MockMarketoTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.mock = MockMarketo()

    @classmethod
    def tearDownClass(cls):
        cls.mock.stop()

    def setUp(self):
        self.mock.reset()

    def raw(self, method, path, data=None, headers=None):
        req = urllib.request.Request(self.mock.url + path, data=data, method=method, headers=headers or {})
        try:
            with urllib.request.urlopen(req, timeout=10) as r:
                return r.status, json.loads(r.read() or b"null")
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read() or b"null")

    def token(self, **override):
        status, body = self.raw("POST", "/identity/oauth/token", urlencode(dict(CREDS, **override)).encode(),
                                {"Content-Type": "application/x-www-form-urlencoded"})
        return status, body

    def call(self, path, body, token=None, content_type="application/json", method="POST"):
        if token is None:
            token = self.token()[1]["access_token"]
        headers = {"Content-Type": content_type}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        return self.raw(method, path, None if body is None else json.dumps(body).encode(), headers)

    def sync(self, records, action=None, lookup=None, token=None):
        body = {"input": records}
        if action:
            body["action"] = action
        if lookup:
            body["lookupField"] = lookup
        status, answer = self.call("/rest/v1/leads.json", body, token)
        self.assertEqual(status, 200)
        return answer

    def test_identity_gives_the_same_token_until_it_expires(self):
        status, first = self.token()
        self.assertEqual(status, 200)
        self.assertEqual((first["token_type"], first["expires_in"]), ("bearer", 3600))
        # The query-parameter form (the Swagger contract's) works too.
        status, second = self.raw("GET", "/identity/oauth/token?" + urlencode(CREDS))
        self.assertEqual((status, second["access_token"]), (200, first["access_token"]))
        self.assertEqual(self.token(client_secret="wrong")[0], 401)
        self.mock.expire_tokens()
        answer = self.sync([{"email": "a@example.com"}], token=first["access_token"])
        self.assertEqual((answer["success"], answer["errors"][0]["code"]), (False, "602"))
        self.assertNotEqual(self.token()[1]["access_token"], first["access_token"])
        self.assertEqual(self.sync([{"email": "a@example.com"}], token="bogus")["errors"][0]["code"], "601")
        self.assertEqual(self.mock.stats()["tokens_issued"], 2)

    def test_sync_actions_statuses_and_reasons_in_input_order(self):
        token = self.token()[1]["access_token"]
        a = self.sync([{"email": "A@example.com", "firstName": "A"}, {"email": "b@example.com"},
                       {"email": "a@example.com"}, {"firstName": "no email"}, {"email": "bad"}], token=token)
        self.assertTrue(a["success"])
        r = a["result"]
        self.assertEqual([x["status"] for x in r], ["created", "created", "skipped", "skipped", "skipped"])
        self.assertEqual([x["reasons"][0]["code"] for x in r[2:]], ["1036", "1003", "1003"])
        lead_a = r[0]["id"]
        self.assertEqual(self.sync([{"email": "a@example.com", "lastName": "L"}], token=token)["result"],
                         [{"id": lead_a, "status": "updated"}])
        self.assertEqual(self.sync([{"email": "b@example.com"}], "createOnly", token=token)["result"][0]
                         ["reasons"][0]["code"], "1005")
        self.assertEqual(self.sync([{"email": "z@example.com"}], "updateOnly", token=token)["result"][0]
                         ["reasons"][0]["code"], "1004")
        # By id (updateOnly only): the match value itself may change.
        moved = self.sync([{"id": lead_a, "email": "new@example.com"}], "updateOnly", "id", token)
        self.assertEqual(moved["result"], [{"id": lead_a, "status": "updated"}])
        self.assertEqual(self.sync([{"id": lead_a}], "createOrUpdate", "id", token)["errors"][0]["code"], "1003")
        leads = {x["id"]: x for x in self.mock.leads()}
        self.assertEqual((leads[lead_a]["email"], leads[lead_a]["lastName"]), ("new@example.com", "L"))
        self.mock.configure(unknown_fields=["bogus__c"])
        self.assertEqual(self.sync([{"email": "c@example.com", "bogus__c": 1}], token=token)["result"][0]
                         ["reasons"][0]["code"], "1006")
        self.assertEqual(self.sync([{"email": f"{i}@x.com"} for i in range(301)], token=token)["errors"][0]["code"],
                         "1003")

    def test_delete_by_id(self):
        token = self.token()[1]["access_token"]
        ids = [x["id"] for x in self.sync([{"email": "a@x.com"}, {"email": "b@x.com"}], token=token)["result"]]
        status, answer = self.call("/rest/v1/leads/delete.json", {"input": [{"id": ids[0]}, {"id": 99999}]}, token)
        self.assertEqual(status, 200)
        self.assertEqual(answer["result"], [{"id": ids[0], "status": "deleted"},
                                            {"id": 99999, "status": "skipped",
                                             "reasons": [{"code": "1004", "message": "Lead not found"}]}])
        self.assertEqual([x["id"] for x in self.mock.leads()], [ids[1]])

    def test_static_list_membership(self):
        token = self.token()[1]["access_token"]
        self.mock.configure(lists=[77])
        a, b = [x["id"] for x in self.sync([{"email": "a@x.com"}, {"email": "b@x.com"}], token=token)["result"]]
        path = "/rest/v1/lists/77/leads.json"
        # Ids in the query and the same ids in the body (the contract's DELETE needs both).
        status, answer = self.call(f"{path}?id={a}&id=99999", {"input": [{"id": a}, {"id": 99999}]}, token)
        self.assertEqual(status, 200)
        self.assertEqual(answer["result"], [{"id": a, "status": "added"},
                                            {"id": 99999, "status": "skipped",
                                             "reasons": [{"code": "1004", "message": "Lead not found"}]}])
        # Body alone (POST's query is optional); adding a member again is added.
        self.assertEqual(self.call(path, {"input": [{"id": a}, {"id": b}]}, token)[1]["result"],
                         [{"id": a, "status": "added"}, {"id": b, "status": "added"}])
        self.assertEqual(self.mock.members(77), sorted([a, b]))
        removed = self.call(f"{path}?id={a}", {"input": [{"id": a}]}, token, method="DELETE")[1]
        self.assertEqual(removed["result"], [{"id": a, "status": "removed"}])
        again = self.call(f"{path}?id={a}", {"input": [{"id": a}]}, token, method="DELETE")[1]
        self.assertEqual(again["result"][0]["reasons"][0]["code"], "1015")
        self.assertEqual(self.mock.members(77), [b])
        # Query and body that disagree, an unknown list, more than 300 ids.
        self.assertEqual(self.call(f"{path}?id={a}", {"input": [{"id": b}]}, token)[1]["errors"][0]["code"], "1003")
        self.assertEqual(self.call(f"/rest/v1/lists/78/leads.json?id={a}", {"input": [{"id": a}]}, token)[1]
                         ["errors"][0]["code"], "1013")
        self.assertEqual(self.call(path, {"input": [{"id": i} for i in range(1, 302)]}, token)[1]
                         ["errors"][0]["code"], "1003")
        # The contract: a DELETE without its id query parameter is refused (609).
        self.assertEqual(self.call(path, {"input": [{"id": b}]}, token, method="DELETE")[1]["errors"][0]["code"],
                         "609")
        self.assertEqual(len(self.mock.contract_violations()), 1)
        # Deleting a lead takes it out of its lists.
        self.call("/rest/v1/leads/delete.json", {"input": [{"id": b}]}, token)
        self.assertEqual(self.mock.members(77), [])

    def test_limits_rate_window_daily_quota_and_concurrency(self):
        token = self.token()[1]["access_token"]
        self.mock.configure(rate_limit=3, rate_window_ms=60000)
        codes = [self.sync([{"email": "a@x.com"}], token=token).get("errors", [{}])[0].get("code")
                 for _ in range(4)]
        self.assertEqual(codes, [None, None, None, "606"])
        self.mock.reset()
        token = self.token()[1]["access_token"]
        self.mock.configure(daily_quota=1)
        self.assertTrue(self.sync([{"email": "a@x.com"}], token=token)["success"])
        self.assertEqual(self.sync([{"email": "a@x.com"}], token=token)["errors"][0]["code"], "607")
        self.mock.reset()
        token = self.token()[1]["access_token"]
        self.mock.configure(max_concurrent=2, delay_ms=300)
        answers = []

        def one():
            answers.append(self.sync([{"email": "c@x.com"}], "createDuplicate", token=token))
        threads = [threading.Thread(target=one) for _ in range(5)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        codes = sorted(a["errors"][0]["code"] for a in answers if not a["success"])
        self.assertTrue(codes and set(codes) == {"615"}, answers)
        self.assertGreaterEqual(self.mock.stats()["max_in_flight"], 3)

    def test_content_type_faults_journal_and_contract(self):
        token = self.token()[1]["access_token"]
        status, answer = self.call("/rest/v1/leads.json", {"input": [{"email": "a@x.com"}]}, token, "text/plain")
        self.assertEqual((status, answer["errors"][0]["code"]), (200, "612"))
        self.mock.configure(faults=[{"code": "606", "message": "Max rate limit '100' exceeded with in '20' secs"},
                                    {"status": 502, "body": None}])
        self.assertEqual(self.sync([{"email": "a@x.com"}], token=token)["errors"][0]["code"], "606")
        self.assertEqual(self.call("/rest/v1/leads.json", {"input": [{"email": "a@x.com"}]}, token)[0], 502)
        # The contract refuses a bad action and an id-less delete with 609.
        self.assertEqual(self.sync([{"email": "a@x.com"}], action="upsert", token=token)["errors"][0]["code"], "609")
        self.assertEqual(self.call("/rest/v1/leads/delete.json", {"input": [{"email": "x"}]}, token)[1]
                         ["errors"][0]["code"], "609")
        journal = self.mock.requests()
        self.assertEqual(journal[0]["path"], "/identity/oauth/token")
        self.assertEqual(journal[0]["body"]["client_secret"], "***")
        self.assertNotIn("authorization", journal[1]["headers"])
        self.assertEqual(len(self.mock.contract_violations()), 2)
        self.mock.clear_requests()
        self.assertEqual(self.mock.requests(), [])
        with self.assertRaises(urllib.error.HTTPError):
            self.mock.configure(bogus=1)


if __name__ == "__main__":
    unittest.main()
