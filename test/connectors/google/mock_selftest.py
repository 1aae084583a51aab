#!/usr/bin/env python3
"""Self-test for test/connectors/google/mock.py: the OAuth token endpoint and token
expiry, Data Manager ingest / remove / request status (PROCESSING, then SUCCESS or FAILED),
members refused by index, the 10,000-member limit, Google Ads jobs (create, addOperations
with partial failures, no mixing of create and remove, run, search), 429 with retryDelay,
CONCURRENT_MODIFICATION, faults, the contract check and the journal; and the contract
validator itself (test/lib/googlespec.py, revetl's hand-written description of Google's
request messages): each kind of violation it must catch, and well-formed bodies it must pass.

Run: python3 test/connectors/google/mock_selftest.py"""

import hashlib
import json
import os
import sys
import unittest
import urllib.error
import urllib.parse
import urllib.request

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "lib"))
from googlespec import GoogleSpec  # noqa: E402
from pgcluster import MockGoogle  # noqa: E402

LIST = "4455"


def h(text):
    return hashlib.sha256(text.encode()).hexdigest()


def dm_body(emails, terms=True):
    body = {"destinations": [{"operatingAccount": {"accountId": "123", "accountType": "GOOGLE_ADS"},
                              "productDestinationId": LIST}],
            "audienceMembers": [{"userData": {"userIdentifiers": [{"emailAddress": h(e)}]}} for e in emails],
            "encoding": "HEX"}
    if terms:
        body["termsOfService"] = {"customerMatchTermsOfServiceStatus": "ACCEPTED"}
    return body


class MockGoogleTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.mock = MockGoogle()

    @classmethod
    def tearDownClass(cls):
        cls.mock.stop()

    def setUp(self):
        self.mock.reset()

    def call(self, method, path, body=None, token="test-token", headers=None, raw=None):
        data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
        hdrs = {"Content-Type": "application/json", **(headers or {})}
        if token:
            hdrs["Authorization"] = "Bearer " + token
        req = urllib.request.Request(self.mock.url + path, data=data, method=method, headers=hdrs)
        try:
            with urllib.request.urlopen(req, timeout=10) as r:
                return r.status, json.loads(r.read() or b"null")
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read() or b"null")

    def token(self, **form):
        data = urllib.parse.urlencode(form).encode()
        return self.call("POST", "/token", raw=data, token=None,
                         headers={"Content-Type": "application/x-www-form-urlencoded"})

    def test_oauth_and_expiry(self):
        status, body = self.token(grant_type="refresh_token", refresh_token="google-refresh",
                                  client_id="google-client", client_secret="google-secret")
        self.assertEqual(status, 200)
        tok = body["access_token"]
        self.assertEqual(self.call("POST", "/v1/audienceMembers:ingest", dm_body(["a@x.com"]), token=tok)[0], 200)
        self.assertEqual(self.token(grant_type="refresh_token", refresh_token="nope", client_id="google-client",
                                    client_secret="google-secret"),
                         (400, {"error": "invalid_grant", "error_description": "Token has been expired or revoked."}))
        self.mock.configure(expire_tokens=True)
        status, body = self.call("POST", "/v1/audienceMembers:ingest", dm_body(["a@x.com"]), token=tok)
        self.assertEqual((status, body["error"]["status"]), (401, "UNAUTHENTICATED"))

    def test_data_manager_ingest_remove_and_status(self):
        self.mock.configure(polls=2)
        status, body = self.call("POST", "/v1/audienceMembers:ingest", dm_body(["a@x.com", "b@x.com"]))
        self.assertEqual(status, 200)
        rid = body["requestId"]
        self.assertEqual(len(self.mock.members(LIST)), 2)
        states = [self.call("GET", "/v1/requestStatus:retrieve?requestId=" + rid)[1]
                  ["requestStatusPerDestination"][0]["requestStatus"] for _ in range(3)]
        self.assertEqual(states, ["PROCESSING", "PROCESSING", "SUCCESS"])
        body = dm_body(["a@x.com"], terms=False)
        self.assertEqual(self.call("POST", "/v1/audienceMembers:remove", body)[0], 200)
        self.assertEqual(self.mock.members(LIST), [{"email": h("b@x.com")}])
        self.assertEqual(self.call("GET", "/v1/requestStatus:retrieve?requestId=nope")[0], 404)
        self.assertEqual(self.mock.contract_violations(), [])

    def test_data_manager_refusals(self):
        self.mock.configure(reject_members=[h("bad@x.com")], fail_requests=1, polls=0)
        status, body = self.call("POST", "/v1/audienceMembers:ingest", dm_body(["a@x.com", "bad@x.com"]))
        self.assertEqual(status, 400)
        self.assertEqual(body["error"]["details"][0]["fieldViolations"][0]["field"][:19], "audience_members[1]")
        self.assertEqual(self.mock.members(LIST), [])
        status, body = self.call("POST", "/v1/audienceMembers:ingest", dm_body(["a@x.com"]))
        per = self.call("GET", "/v1/requestStatus:retrieve?requestId=" + body["requestId"])[1]
        self.assertEqual(per["requestStatusPerDestination"][0]["requestStatus"], "FAILED")
        self.assertEqual(self.call("POST", "/v1/audienceMembers:ingest",
                                   dm_body([f"u{i}@x.com" for i in range(10001)]))[0], 400)

    def test_contract_violations_are_journaled(self):
        self.call("POST", "/v1/audienceMembers:ingest", {**dm_body(["a@x.com"]), "bogus": 1})
        self.call("POST", "/v1/audienceMembers:ingest", dm_body(["a@x.com"], terms=False))
        errors = [e for v in self.mock.contract_violations() for e in v["errors"]]
        self.assertTrue(any("bogus" in e for e in errors), errors)
        self.assertTrue(any("terms of service" in e for e in errors), errors)

    def test_ads_job_flow_with_partial_failure(self):
        hdr = {"developer-token": "dev"}
        status, body = self.call("POST", "/v25/customers/123/offlineUserDataJobs:create",
                                 {"job": {"type": "CUSTOMER_MATCH_USER_LIST", "customerMatchUserListMetadata": {
                                     "userList": f"customers/123/userLists/{LIST}"}}}, headers=hdr)
        self.assertEqual(status, 200)
        res = body["resourceName"]
        self.mock.configure(reject_members=[h("bad@x.com")], polls=1)
        ops = [{"create": {"userIdentifiers": [{"hashedEmail": h(e)}]}} for e in ("a@x.com", "bad@x.com")]
        status, body = self.call("POST", f"/v25/{res}:addOperations",
                                 {"enablePartialFailure": True, "operations": ops}, headers=hdr)
        self.assertEqual(status, 200)
        err = body["partialFailureError"]["details"][0]["errors"][0]
        self.assertEqual(err["location"]["fieldPathElements"][0], {"fieldName": "operations", "index": 1})
        status, body = self.call("POST", f"/v25/{res}:addOperations",
                                 {"operations": [{"remove": {"userIdentifiers": [{"hashedEmail": h("a@x.com")}]}}]},
                                 headers=hdr)
        self.assertEqual(status, 400)
        self.assertEqual(self.call("POST", f"/v25/{res}:run", {}, headers=hdr)[0], 200)
        q = {"query": f"SELECT offline_user_data_job.status FROM offline_user_data_job WHERE "
                      f"offline_user_data_job.resource_name = '{res}'"}
        seen = [self.call("POST", "/v25/customers/123/googleAds:search", q, headers=hdr)[1]["results"][0]
                ["offlineUserDataJob"]["status"] for _ in range(2)]
        self.assertEqual(seen, ["RUNNING", "SUCCESS"])
        self.assertEqual(self.mock.members(LIST), [{"email": h("a@x.com")}])
        self.assertEqual(self.mock.contract_violations(), [])
        self.call("POST", "/v25/customers/123/offlineUserDataJobs:create", {"job": {}})
        errors = [e for v in self.mock.contract_violations() for e in v["errors"]]
        self.assertIn("no developer-token header", errors)

    def test_throttling_concurrency_and_faults(self):
        self.mock.configure(throttle={"next": 1, "retry_delay": "2s"}, concurrent=1,
                            faults=[{"status": 500, "path": ":run"}])
        status, body = self.call("POST", "/v1/audienceMembers:ingest", dm_body(["a@x.com"]))
        self.assertEqual((status, body["error"]["details"][0]["retryDelay"]), (429, "2s"))
        status, body = self.call("POST", "/v25/customers/1/offlineUserDataJobs:create", {}, headers={
            "developer-token": "d"})
        self.assertEqual((status, body["error"]["details"][0]["errors"][0]["errorCode"]),
                         (409, {"databaseError": "CONCURRENT_MODIFICATION"}))
        self.assertEqual(self.call("POST", "/v25/customers/1/offlineUserDataJobs/5:run", {})[0], 500)
        self.assertEqual(self.mock.stats()["throttled"], 1)


INGEST, REMOVE = "/v1/audienceMembers:ingest", "/v1/audienceMembers:remove"
CREATE = "/v25/customers/123/offlineUserDataJobs:create"
ADD = "/v25/customers/123/offlineUserDataJobs/77:addOperations"
RUN = "/v25/customers/123/offlineUserDataJobs/77:run"


def ads_body(emails, kind="create"):
    return {"enablePartialFailure": True,
            "operations": [{kind: {"userIdentifiers": [{"hashedEmail": h(e)}]}} for e in emails]}


class GoogleSpecTest(unittest.TestCase):
    """The validator alone (no mock): every rule below must be able to fail."""

    spec = GoogleSpec()

    def errors(self, path, body):
        return self.spec.validate("POST", path, json.dumps(body))

    def refused(self, path, body, fragment):
        errors = self.errors(path, body)
        self.assertTrue(any(fragment in e for e in errors), f"{fragment!r} not in {errors}")

    def test_accepts_well_formed_bodies(self):
        full = dm_body(["a@x.com"])
        full["destinations"][0]["loginAccount"] = {"accountId": "9", "accountType": "GOOGLE_ADS"}
        full["consent"] = {"adUserData": "CONSENT_GRANTED", "adPersonalization": "CONSENT_DENIED"}
        full["audienceMembers"].append({"userData": {"userIdentifiers": [
            {"phoneNumber": h("+16502530000")},
            {"address": {"givenName": h("ann"), "familyName": h("lee"), "regionCode": "US", "postalCode": "94043"}}]}})
        full["audienceMembers"].append({"userIdData": {"userId": "u-1"}, "consent": {"adUserData": "CONSENT_GRANTED"}})
        self.assertEqual(self.errors(INGEST, full), [])
        self.assertEqual(self.errors(REMOVE, dm_body(["a@x.com"], terms=False)), [])
        self.assertEqual(self.errors(CREATE, {"job": {"type": "CUSTOMER_MATCH_USER_LIST", "externalId": "42",
                                                      "customerMatchUserListMetadata": {
                                                          "userList": "customers/123/userLists/4455",
                                                          "consent": {"adUserData": "GRANTED"}}}}), [])
        add = ads_body(["a@x.com"])
        add["operations"].append({"create": {"userIdentifiers": [
            {"hashedPhoneNumber": h("+16502530000")}, {"thirdPartyUserId": "u-1"},
            {"addressInfo": {"hashedFirstName": h("ann"), "hashedLastName": h("lee"), "countryCode": "US",
                             "postalCode": "94043"}}]}})
        self.assertEqual(self.errors(ADD, add), [])
        self.assertEqual(self.errors(RUN, {}), [])
        self.assertEqual(self.errors(RUN, {"resourceName": "customers/123/offlineUserDataJobs/77"}), [])

    def test_unknown_field(self):
        self.refused(INGEST, {**dm_body(["a@x.com"]), "bogus": 1}, "bogus: unknown field")
        body = dm_body(["a@x.com"])
        body["audienceMembers"][0]["userData"]["userIdentifiers"][0]["email_address"] = h("a@x.com")
        self.refused(INGEST, body, "email_address: unknown field")
        self.refused(ADD, {"operations": [{"create": {"userIdentifiers": [{"hashedEmail": h("a@x.com"),
                                                                           "extra": "x"}]}}]}, "extra: unknown")

    def test_wrong_json_type(self):
        self.refused(INGEST, {**dm_body(["a@x.com"]), "validateOnly": "true"}, "expected true or false")
        self.refused(INGEST, {**dm_body(["a@x.com"]), "destinations": {}}, "expected a JSON array")
        self.refused(ADD, {"operations": [{"create": {"userIdentifiers": [{"hashedEmail": 5}]}}]},
                     "expected a string")

    def test_wrong_enum_value(self):
        self.refused(INGEST, {**dm_body(["a@x.com"]), "encoding": "HEXADECIMAL"}, "'HEXADECIMAL' is not one of")
        body = dm_body(["a@x.com"])
        body["destinations"][0]["operatingAccount"]["accountType"] = "ACCOUNT_TYPE_UNSPECIFIED"
        self.refused(INGEST, body, "is not one of")
        # Google Ads spells consent GRANTED, Data Manager CONSENT_GRANTED: each API its own.
        self.refused(CREATE, {"job": {"type": "CUSTOMER_MATCH_USER_LIST", "customerMatchUserListMetadata": {
            "userList": "customers/1/userLists/2", "consent": {"adUserData": "CONSENT_GRANTED"}}}},
            "'CONSENT_GRANTED' is not one of")

    def test_two_members_of_a_oneof(self):
        body = dm_body(["a@x.com"])
        body["audienceMembers"][0]["userData"]["userIdentifiers"][0]["phoneNumber"] = h("+16502530000")
        self.refused(INGEST, body, "oneof identifier has 2 members set")
        self.refused(ADD, {"operations": [{"create": {"userIdentifiers": [{"hashedEmail": h("a")}]},
                                           "removeAll": True}]}, "oneof operation has 2 members set")

    def test_missing_required_field(self):
        body = dm_body(["a@x.com"])
        del body["destinations"][0]["productDestinationId"]
        self.refused(INGEST, body, "productDestinationId: required field missing")
        body = dm_body(["a@x.com"])
        body["audienceMembers"][0]["userData"] = {}
        self.refused(INGEST, body, "userIdentifiers: required field missing")
        self.refused(INGEST, {**dm_body(["a@x.com"]), "audienceMembers": []},
                     "audienceMembers: required field is empty")
        self.refused(CREATE, {}, "job: required field missing")
        self.refused(ADD, {"enablePartialFailure": True}, "operations: required field missing")
        body = dm_body(["a@x.com"])
        body["audienceMembers"][0]["userData"]["userIdentifiers"][0] = {
            "address": {"givenName": h("ann"), "familyName": h("lee"), "regionCode": "US"}}
        self.refused(INGEST, body, "postalCode: required field missing")

    def test_hashes_and_codes(self):
        body = dm_body(["a@x.com"])
        body["audienceMembers"][0]["userData"]["userIdentifiers"][0]["emailAddress"] += "0"  # 65 characters
        self.refused(INGEST, body, "emailAddress is not a SHA-256 digest")
        body["audienceMembers"][0]["userData"]["userIdentifiers"][0]["emailAddress"] = h("a@x.com").upper()
        self.refused(INGEST, body, "emailAddress is not a SHA-256 digest")
        body["audienceMembers"][0]["userData"]["userIdentifiers"][0]["emailAddress"] = "a@x.com"
        self.refused(INGEST, body, "emailAddress is not a SHA-256 digest")
        self.refused(ADD, {"operations": [{"create": {"userIdentifiers": [{"hashedEmail": h("a") + "f"}]}}]},
                     "hashedEmail is not SHA-256 lower-case hex")
        body = dm_body(["a@x.com"])
        body["audienceMembers"][0]["userData"]["userIdentifiers"][0] = {
            "address": {"givenName": "Ann", "familyName": h("lee"), "regionCode": "usa", "postalCode": "94043"}}
        self.refused(INGEST, body, "givenName is not a SHA-256 digest")
        self.refused(INGEST, body, "regionCode is not an ISO-3166-1 alpha-2 code")

    def test_limits(self):
        self.refused(INGEST, dm_body([f"u{i}@x.com" for i in range(10001)]),
                     "10001 audienceMembers, more than 10,000")
        self.assertEqual(self.errors(INGEST, dm_body([f"u{i}@x.com" for i in range(10000)])), [])
        body = dm_body(["a@x.com"])
        body["audienceMembers"][0]["userData"]["userIdentifiers"] = [{"emailAddress": h(f"{i}")} for i in range(11)]
        self.refused(INGEST, body, "has 11 identifiers, more than 10")
        add = {"operations": [{"create": {"userIdentifiers": [{"hashedEmail": h(f"{i}")} for i in range(21)]}}]}
        self.refused(ADD, add, "has 21 identifiers, more than 20")
        many = {"operations": [{"create": {"userIdentifiers": [{"hashedEmail": h("a")}] * 20}}] * 5001}
        self.refused(ADD, many, "100020 user identifiers in one request, more than 100,000")

    def test_contract_rules(self):
        self.refused(INGEST, dm_body(["a@x.com"], terms=False), "terms of service not accepted")
        body = dm_body(["a@x.com"])
        del body["encoding"]
        self.refused(INGEST, body, "encoding is required with userData")
        self.refused(ADD, {"operations": ads_body(["a"])["operations"] + ads_body(["b"], "remove")["operations"]},
                     "create and remove operations mixed")
        self.refused(CREATE, {"job": {"type": "CUSTOMER_MATCH_USER_LIST",
                                      "customerMatchUserListMetadata": {"userList": "4455"}}}, "userList is not")
        self.refused(RUN, {"resourceName": "customers/123/offlineUserDataJobs/78"}, "disagrees with the URL")
        self.assertTrue(self.spec.validate("POST", "/v1/audienceMembers:removeAll", "{}"))
        self.refused(INGEST, {**dm_body(["a@x.com"]), "encryptionInfo": {}}, "does not describe")


if __name__ == "__main__":
    unittest.main()
