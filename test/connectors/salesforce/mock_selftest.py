#!/usr/bin/env python3
"""Self-test for test/connectors/salesforce/mock.py: the token endpoint
(instance_url pointing at the mock, no expires_in), INVALID_SESSION_ID after
expiry, Sforce-Limit-Info, sObject Collections upsert by external id with
per-record errors in request order, the 200 cap, deletes by id, Bulk API 2.0
jobs that take several polls with failed rows in failedResults,
REQUEST_LIMIT_EXCEEDED, faults, the journal and the Postman-collection check.

Run: python3 test/connectors/salesforce/mock_selftest.py"""

import csv
import io
import json
import os
import sys
import unittest
import urllib.error
import urllib.parse
import urllib.request

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "lib"))
from pgcluster import MockSalesforce  # noqa: E402

V = "/services/data/v60.0"


class MockSalesforceTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.mock = MockSalesforce()

    @classmethod
    def tearDownClass(cls):
        cls.mock.stop()

    def setUp(self):
        self.mock.reset()
        self.token = self.get_token()

    def raw(self, method, url, data=None, headers=None):
        req = urllib.request.Request(url, data=data, method=method, headers=headers or {})
        try:
            with urllib.request.urlopen(req, timeout=10) as r:
                return r.status, r.read().decode(), dict(r.headers)
        except urllib.error.HTTPError as e:
            return e.code, e.read().decode(), dict(e.headers)

    def get_token(self, refresh=MockSalesforce.REFRESH_TOKEN):
        form = urllib.parse.urlencode({"grant_type": "refresh_token", "refresh_token": refresh,
                                       "client_id": MockSalesforce.CLIENT_ID,
                                       "client_secret": MockSalesforce.CLIENT_SECRET}).encode()
        status, body, _ = self.raw("POST", self.mock.token_url, form,
                                   {"Content-Type": "application/x-www-form-urlencoded"})
        answer = json.loads(body)
        if status == 200:
            self.assertEqual(answer["instance_url"], self.mock.url)
            self.assertNotIn("expires_in", answer)
            return answer["access_token"]
        return answer

    def call(self, method, path, body=None, token=None, ctype="application/json", text=None):
        data = text.encode() if text is not None else (json.dumps(body).encode() if body is not None else None)
        headers = {"Authorization": f"Bearer {token or self.token}"}
        if data is not None:
            headers["Content-Type"] = ctype
        status, out, headers = self.raw(method, self.mock.url + V + path, data, headers)
        try:
            return status, json.loads(out) if out else None, headers
        except ValueError:
            return status, out, headers

    def test_token_refusals_and_session_expiry(self):
        self.assertEqual(self.get_token("wrong")["error"], "invalid_grant")
        status, body, headers = self.call("PATCH", "/composite/sobjects/Lead/Ext__c",
                                          {"records": [{"attributes": {"type": "Lead"}, "Ext__c": "1",
                                                        "LastName": "A"}]})
        self.assertEqual(status, 200)
        self.assertEqual(headers["Sforce-Limit-Info"], "api-usage=1/15000")
        self.mock.expire_tokens()
        status, body, _ = self.call("PATCH", "/composite/sobjects/Lead/Ext__c",
                                    {"records": [{"attributes": {"type": "Lead"}, "Ext__c": "1"}]})
        self.assertEqual((status, body[0]["errorCode"]), (401, "INVALID_SESSION_ID"))

    def test_upsert_results_in_order_with_errors_and_cap(self):
        records = [{"attributes": {"type": "Lead"}, "Ext__c": "1", "LastName": "A", "Email": "a@x.com"},
                   {"attributes": {"type": "Lead"}, "Ext__c": "2", "Email": "bad"},
                   {"attributes": {"type": "Lead"}, "Ext__c": "3"},
                   {"Ext__c": "4", "LastName": "D"}]
        status, body, _ = self.call("PATCH", "/composite/sobjects/Lead/Ext__c", {"allOrNone": False, "records": records})
        self.assertEqual(status, 200)
        self.assertTrue(body[0]["success"] and body[0]["created"])
        self.assertEqual(body[1]["errors"][0]["statusCode"], "INVALID_EMAIL_ADDRESS")
        self.assertEqual(body[2]["errors"][0]["statusCode"], "REQUIRED_FIELD_MISSING")
        self.assertEqual(body[3]["errors"][0]["statusCode"], "INVALID_TYPE")
        status, again, _ = self.call("PATCH", "/composite/sobjects/Lead/Ext__c",
                                     {"records": [{"attributes": {"type": "Lead"}, "Ext__c": "1", "Company": "C"}]})
        self.assertEqual((again[0]["id"], again[0]["created"]), (body[0]["id"], False))
        self.assertEqual(len(self.mock.records("Lead")), 1)
        status, body, _ = self.call("PATCH", "/composite/sobjects/Lead/Ext__c",
                                    {"records": [{"attributes": {"type": "Lead"}, "Ext__c": str(i), "LastName": "x"}
                                                 for i in range(201)]})
        self.assertEqual((status, body[0]["errorCode"]), (400, "EXCEEDED_ID_LIMIT"))
        # Deletes by id, in order; an unknown id is ENTITY_IS_DELETED.
        rid = again[0]["id"]
        status, body, _ = self.call("DELETE", f"/composite/sobjects?ids={rid},00Q000000000999AAA&allOrNone=false")
        self.assertEqual(status, 200)
        self.assertTrue(body[0]["success"])
        self.assertEqual(body[1]["errors"][0]["statusCode"], "ENTITY_IS_DELETED")
        self.assertEqual(self.mock.records("Lead"), [])

    def test_bulk_job_takes_polls_and_fails_rows(self):
        self.mock.configure(polls_to_complete=3)
        status, job, _ = self.call("POST", "/jobs/ingest", {"object": "Lead", "operation": "upsert",
                                                            "externalIdFieldName": "Ext__c", "contentType": "CSV"})
        self.assertEqual((status, job["state"]), (200, "Open"))
        jid = job["id"]
        text = 'Ext__c,LastName,Company\n1,A,"Smith, ""J""\nCo"\n2,#N/A,X\n'
        self.assertEqual(self.call("PUT", f"/jobs/ingest/{jid}/batches", text=text, ctype="text/csv")[0], 201)
        self.assertEqual(self.call("PATCH", f"/jobs/ingest/{jid}", {"state": "UploadComplete"})[1]["state"],
                         "UploadComplete")
        states = [self.call("GET", f"/jobs/ingest/{jid}")[1]["state"] for _ in range(3)]
        self.assertEqual(states, ["InProgress", "InProgress", "JobComplete"])
        _, ok, headers = self.call("GET", f"/jobs/ingest/{jid}/successfulResults/")
        self.assertTrue(headers["Content-Type"].startswith("text/csv"))
        ok_rows = list(csv.reader(io.StringIO(ok, newline="")))
        self.assertEqual(ok_rows[0][:2], ["sf__Id", "sf__Created"])
        self.assertEqual(ok_rows[1][2:], ["1", "A", 'Smith, "J"\nCo'])
        _, failed, _ = self.call("GET", f"/jobs/ingest/{jid}/failedResults/")
        failed_rows = list(csv.reader(io.StringIO(failed, newline="")))
        self.assertTrue(failed_rows[1][1].startswith("REQUIRED_FIELD_MISSING:"))
        self.assertEqual(self.mock.records("Lead")[0]["Company"], 'Smith, "J"\nCo')
        self.assertEqual(self.call("GET", "/jobs/ingest/750000000000999AAA")[0], 404)

    def test_limit_faults_journal_and_contract(self):
        self.mock.configure(faults=[{"status": 503, "body": [{"errorCode": "SERVER_UNAVAILABLE"}]}])
        self.assertEqual(self.call("POST", "/jobs/ingest", {"object": "Lead", "operation": "insert"})[0], 503)
        self.mock.configure(request_limit_exceeded=True)
        status, body, _ = self.call("POST", "/jobs/ingest", {"object": "Lead", "operation": "insert"})
        self.assertEqual((status, body[0]["errorCode"]), (403, "REQUEST_LIMIT_EXCEEDED"))
        self.mock.configure(request_limit_exceeded=False)
        # The Postman collection's create job needs operation: refused, and journaled.
        status, body, _ = self.call("POST", "/jobs/ingest", {"object": "Lead"})
        self.assertEqual((status, body[0]["errorCode"]), (400, "CONTRACT_VIOLATION"))
        self.assertEqual(len(self.mock.contract_violations()), 1)
        status, body, _ = self.call("PATCH", "/composite/sobjects/Lead/Ext__c", {"records": []},
                                    ctype="text/plain")
        self.assertEqual(status, 400)
        journal = self.mock.requests()
        self.assertEqual([r["status"] for r in journal], [200, 503, 403, 400, 400])
        self.assertIn("fault", journal[1])
        with self.assertRaises(urllib.error.HTTPError):
            self.mock.configure(no_such_key=1)


if __name__ == "__main__":
    unittest.main()
