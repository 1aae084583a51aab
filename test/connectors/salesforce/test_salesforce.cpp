// The Salesforce connector's requests (sObject Collections calls of at most
// 200 records, the Bulk API 2.0 job's calls), the choice between them by the
// run's size, CSV quoting and parsing, how per-record results and Bulk
// results map back to rows, and how Salesforce's errors are judged. The
// whole path against the stateful mock is test_salesforce.py.
#include "core/connectors/salesforce/salesforce.hpp"

#include "core/common/error.hpp"
#include "core/connectors/registry.hpp"

#include <gtest/gtest.h>
#include <rapidjson/document.h>

#include <string>
#include <vector>

using namespace revetl;

namespace {

DestinationSettings Settings(const std::string &threshold = "") {
    DestinationSettings s;
    s.type = "salesforce";
    s.url = "https://login.salesforce.com";
    s.credentials.oauth.token_url = "https://login.salesforce.com/services/oauth2/token";
    s.credentials.oauth.client_id = "cid";
    s.credentials.oauth.client_secret = "csecret";
    s.credentials.oauth.refresh_token = "rtoken";
    s.credentials.oauth_token = std::make_shared<OAuthToken>();
    s.credentials.oauth_token->access_token = "00Dtoken";
    s.credentials.oauth_token->instance_url = "https://acme.my.salesforce.com/";
    if (!threshold.empty())
        s.server_options.emplace_back("bulk_threshold", threshold);
    return s;
}

SyncTarget Target(const std::string &mode = "upsert", const std::string &match_on = "Customer_Id__c") {
    SyncTarget t;
    t.object = "Lead";
    t.match_on = match_on;
    t.mode = mode;
    return t;
}

Change Lead(int64_t seq, const std::string &extra = "") {
    Change c;
    c.seq = seq;
    c.op = Change::Op::Add;
    c.key = "{\"id\": " + std::to_string(seq) + "}";
    c.payload = "{\"Customer_Id__c\": \"" + std::to_string(seq) + "\", \"LastName\": \"L" +
                std::to_string(seq) + "\"" + extra + "}";
    return c;
}

Change Removal(int64_t seq, const std::string &dest_id) {
    Change c;
    c.seq = seq;
    c.op = Change::Op::Remove;
    c.key = "{\"id\": " + std::to_string(seq) + "}";
    c.dest_id = dest_id;
    return c;
}

std::vector<size_t> All(const std::vector<Change> &changes) {
    std::vector<size_t> rows(changes.size());
    for (size_t i = 0; i < rows.size(); i++)
        rows[i] = i;
    return rows;
}

HttpResponse Answer(long status, const std::string &body,
                    std::vector<std::pair<std::string, std::string>> headers = {}) {
    HttpResponse r;
    r.status = status;
    r.body = body;
    r.headers = std::move(headers);
    return r;
}

std::string HeaderOf(const HttpRequest &r, const std::string &name) {
    for (const auto &h : r.headers)
        if (h.first == name)
            return h.second;
    return {};
}

BatchContext Planned(int64_t planned) {
    BatchContext c;
    c.planned_rows = planned;
    return c;
}

} // namespace

TEST(Salesforce, CollectionsUpsertShapeGoesToTheInstanceUrl) {
    SalesforceConnector sf(Settings(), Target());
    std::vector<Change> changes = {Lead(1, ", \"Score__c\": 92.50"), Lead(2)};
    std::vector<std::pair<size_t, RowOutcome>> immediate;
    auto reqs = sf.Prepare(Planned(2), changes, All(changes), immediate);
    ASSERT_EQ(reqs.size(), 1u);
    EXPECT_TRUE(immediate.empty());
    const HttpRequest &r = reqs[0].http;
    EXPECT_EQ(r.method, "PATCH");
    EXPECT_EQ(r.url,
              "https://acme.my.salesforce.com/services/data/v60.0/composite/sobjects/Lead/Customer_Id__c");
    EXPECT_EQ(HeaderOf(r, "Content-Type"), "application/json");
    EXPECT_EQ(HeaderOf(r, "Authorization"), "Bearer 00Dtoken");
    // attributes.type on every record, payloads otherwise verbatim.
    EXPECT_EQ(r.body,
              "{\"allOrNone\":false,\"records\":[{\"attributes\":{\"type\":\"Lead\"},\"Customer_Id__c\": "
              "\"1\", \"LastName\": \"L1\", \"Score__c\": 92.50},{\"attributes\":{\"type\":\"Lead\"},"
              "\"Customer_Id__c\": \"2\", \"LastName\": \"L2\"}]}");
    rapidjson::Document doc;
    doc.Parse(r.body.c_str());
    ASSERT_FALSE(doc.HasParseError());
    EXPECT_TRUE(reqs[0].flow.step.empty());

    // Without an instance_url (a session id as bearer) the server's url.
    DestinationSettings s = Settings();
    s.credentials.oauth_token->instance_url.clear();
    SalesforceConnector plain(s, Target());
    immediate.clear();
    EXPECT_EQ(
        plain.Prepare(Planned(2), changes, All(changes), immediate)[0].http.url.rfind("https://login.", 0),
        0u);
}

TEST(Salesforce, AtMost200RecordsACallAndNoDuplicateKeyInOne) {
    SalesforceConnector sf(Settings(), Target());
    std::vector<Change> changes;
    for (int i = 1; i <= 450; i++)
        changes.push_back(Lead(i));
    changes.push_back(Lead(7)); // the same external id again
    std::vector<std::pair<size_t, RowOutcome>> immediate;
    auto reqs = sf.Prepare(Planned(451), changes, All(changes), immediate);
    ASSERT_EQ(reqs.size(), 3u);
    EXPECT_EQ(reqs[0].rows.size(), 200u);
    EXPECT_EQ(reqs[1].rows.size(), 200u);
    EXPECT_EQ(reqs[2].rows.size(), 51u);
    for (const auto &r : reqs) {
        rapidjson::Document doc;
        doc.Parse(r.http.body.c_str());
        ASSERT_TRUE(doc.IsObject());
        EXPECT_EQ(doc["records"].Size(), r.rows.size());
        EXPECT_LE(doc["records"].Size(), 200u);
    }
}

TEST(Salesforce, RowsThatCannotGoAreRefusedAtOnce) {
    SalesforceConnector sf(Settings(), Target("mirror"));
    std::vector<Change> changes = {Lead(1), Lead(2, ", \"Id\": \"00Q000000000001AAA\""), Removal(3, ""),
                                   Removal(4, "x'; drop"), Removal(5, "00Q000000000005AAA")};
    changes[0].payload = "{\"LastName\": \"no key\"}";
    std::vector<std::pair<size_t, RowOutcome>> immediate;
    auto reqs = sf.Prepare(Planned(5), changes, All(changes), immediate);
    ASSERT_EQ(immediate.size(), 4u);
    EXPECT_EQ(immediate[0].second.error_code, "NO_MATCH_VALUE");
    EXPECT_EQ(immediate[1].second.error_code, "ID_IN_PAYLOAD");
    EXPECT_EQ(immediate[2].second.error_code, "NO_RECORD_ID");
    EXPECT_EQ(immediate[3].second.error_code, "INVALID_RECORD_ID");
    EXPECT_TRUE(immediate[3].second.unresolvable_removal);
    ASSERT_EQ(reqs.size(), 1u);
    EXPECT_EQ(reqs[0].http.method, "DELETE");
    EXPECT_EQ(reqs[0].http.url, "https://acme.my.salesforce.com/services/data/v60.0/composite/"
                                "sobjects?ids=00Q000000000005AAA&allOrNone=false");
}

TEST(Salesforce, DeletesGoByRecordIdAtMost200) {
    SalesforceConnector sf(Settings(), Target("mirror"));
    std::vector<Change> changes;
    for (int i = 0; i < 201; i++) {
        std::string n = std::to_string(i);
        changes.push_back(Removal(i, "00Q" + std::string(12 - n.size(), '0') + n + "AAA"));
    }
    std::vector<std::pair<size_t, RowOutcome>> immediate;
    auto reqs = sf.Prepare(Planned(201), changes, All(changes), immediate);
    ASSERT_EQ(reqs.size(), 2u);
    EXPECT_EQ(reqs[0].rows.size(), 200u);
    EXPECT_EQ(reqs[1].rows.size(), 1u);
    Verdict v = sf.Interpret(reqs[1], changes,
                             Answer(200, "[{\"id\":\"00Q000000000200AAA\",\"success\":false,\"errors\":[{"
                                         "\"statusCode\":\"ENTITY_IS_DELETED\",\"message\":\"entity is "
                                         "deleted\",\"fields\":[]}]}]"));
    ASSERT_EQ(v.rows.size(), 1u);
    EXPECT_TRUE(v.rows[0].accepted) << "already deleted is what a removal wanted";
}

TEST(Salesforce, UpdateByIdAndInsertShapes) {
    SalesforceConnector upd(Settings(), Target("update", "Id"));
    std::vector<Change> changes = {Lead(1, ", \"Id\": \"00Q000000000001AAA\"")};
    std::vector<std::pair<size_t, RowOutcome>> immediate;
    auto reqs = upd.Prepare(Planned(1), changes, All(changes), immediate);
    ASSERT_EQ(reqs.size(), 1u);
    EXPECT_EQ(reqs[0].http.method, "PATCH");
    EXPECT_EQ(reqs[0].http.url, "https://acme.my.salesforce.com/services/data/v60.0/composite/sobjects");
    SalesforceConnector ins(Settings(), Target("insert", ""));
    reqs = ins.Prepare(Planned(1), {Lead(1)}, {0}, immediate);
    ASSERT_EQ(reqs.size(), 1u);
    EXPECT_EQ(reqs[0].http.method, "POST");
    EXPECT_TRUE(immediate.empty());
}

TEST(Salesforce, PerRecordResultsMapToRowsInOrder) {
    SalesforceConnector sf(Settings(), Target());
    std::vector<Change> changes = {Lead(1), Lead(2), Lead(3)};
    std::vector<std::pair<size_t, RowOutcome>> immediate;
    auto reqs = sf.Prepare(Planned(3), changes, All(changes), immediate);
    Verdict v = sf.Interpret(
        reqs[0], changes,
        Answer(
            200,
            "[{\"id\":\"00Q000000000001AAA\",\"success\":true,\"errors\":[],\"created\":true},"
            "{\"success\":false,\"errors\":[{\"statusCode\":\"INVALID_EMAIL_ADDRESS\",\"message\":\"Email: "
            "invalid email address: x\",\"fields\":[\"Email\"]}]}]",
            {{"sforce-limit-info", "api-usage=25/15000"}}));
    EXPECT_EQ(v.kind, Verdict::Kind::Done);
    ASSERT_EQ(v.rows.size(), 3u);
    EXPECT_TRUE(v.rows[0].accepted);
    EXPECT_EQ(v.rows[0].dest_id, "00Q000000000001AAA");
    EXPECT_FALSE(v.rows[1].accepted);
    EXPECT_EQ(v.rows[1].error_code, "INVALID_EMAIL_ADDRESS");
    EXPECT_EQ(v.rows[1].reason, "INVALID_EMAIL_ADDRESS: Email: invalid email address: x (fields: Email)");
    EXPECT_EQ(v.rows[2].error_code, "NO_RESULT");
    EXPECT_EQ(sf.LimitInfo(), "api-usage=25/15000");
    EXPECT_EQ(sf.RunNote(), "Salesforce Sforce-Limit-Info api-usage=25/15000");
}

TEST(Salesforce, ErrorsAreJudged) {
    SalesforceConnector sf(Settings(), Target());
    std::vector<Change> changes = {Lead(1), Lead(2)};
    std::vector<std::pair<size_t, RowOutcome>> immediate;
    auto req = sf.Prepare(Planned(2), changes, All(changes), immediate)[0];
    Verdict v = sf.Interpret(
        req, changes,
        Answer(401, "[{\"message\":\"Session expired or invalid\",\"errorCode\":\"INVALID_SESSION_ID\"}]"));
    EXPECT_EQ(v.kind, Verdict::Kind::AuthExpired);
    EXPECT_NE(v.error.find("INVALID_SESSION_ID"), std::string::npos);
    v = sf.Interpret(
        req, changes,
        Answer(403,
               "[{\"message\":\"TotalRequests Limit exceeded.\",\"errorCode\":\"REQUEST_LIMIT_EXCEEDED\"}]",
               {{"sforce-limit-info", "api-usage=15001/15000"}}));
    EXPECT_EQ(v.kind, Verdict::Kind::Fatal);
    EXPECT_NE(v.error.find("REQUEST_LIMIT_EXCEEDED"), std::string::npos);
    EXPECT_NE(v.error.find("api-usage=15001/15000"), std::string::npos);
    EXPECT_EQ(sf.Interpret(req, changes, Answer(503, "[]")).kind, Verdict::Kind::Retry);
    EXPECT_EQ(sf.Interpret(req, changes, Answer(0, "")).kind, Verdict::Kind::Retry);
    EXPECT_EQ(sf.Interpret(req, changes, Answer(400, "[{\"errorCode\":\"JSON_PARSER_ERROR\"}]")).kind,
              Verdict::Kind::Split);
    PreparedRequest one = req;
    one.rows = {0};
    v = sf.Interpret(one, changes, Answer(400, "[{\"message\":\"bad\",\"errorCode\":\"INVALID_FIELD\"}]"));
    ASSERT_EQ(v.rows.size(), 1u);
    EXPECT_EQ(v.rows[0].error_code, "INVALID_FIELD");
    EXPECT_EQ(sf.Interpret(req, changes, Answer(404, "[{\"errorCode\":\"NOT_FOUND\"}]")).kind,
              Verdict::Kind::Fatal);
    // Hostile header text is not kept as it is.
    sf.Interpret(req, changes, Answer(503, "", {{"sforce-limit-info", "api-usage=1/2\r\n<script>"}}));
    EXPECT_EQ(sf.LimitInfo(), "api-usage=1/2script");
}

TEST(Salesforce, ThresholdChoosesBulkForLargeRuns) {
    SalesforceConnector def(Settings(), Target());
    EXPECT_FALSE(def.UsesBulk(2000));
    EXPECT_TRUE(def.UsesBulk(2001));
    EXPECT_FALSE(def.UsesBulk(0)) << "unknown size: Collections";
    SalesforceConnector never(Settings("0"), Target());
    EXPECT_FALSE(never.UsesBulk(1000000));
    SalesforceConnector low(Settings("5"), Target());
    std::vector<Change> changes = {Lead(1), Lead(2)};
    std::vector<std::pair<size_t, RowOutcome>> immediate;
    EXPECT_TRUE(low.Prepare(Planned(5), changes, All(changes), immediate)[0].flow.step.empty());
    auto reqs = low.Prepare(Planned(6), changes, All(changes), immediate);
    ASSERT_EQ(reqs.size(), 1u);
    EXPECT_EQ(reqs[0].flow.step, "bulk_create");
    // Inserts always go through Collections (Bulk results could not be
    // mapped back to rows without a key).
    SalesforceConnector ins(Settings("5"), Target("insert", ""));
    EXPECT_TRUE(ins.Prepare(Planned(6), changes, All(changes), immediate)[0].flow.step.empty());
}

TEST(Salesforce, BulkJobFlow) {
    SalesforceConnector sf(Settings("1"), Target());
    std::vector<Change> changes = {Lead(1, ", \"Company\": \"Smith, \\\"Jones\\\"\\nand Co\""), Lead(2),
                                   Lead(3)};
    std::vector<std::pair<size_t, RowOutcome>> immediate;
    auto reqs = sf.Prepare(Planned(3), changes, All(changes), immediate);
    ASSERT_EQ(reqs.size(), 1u);
    EXPECT_EQ(reqs[0].http.method, "POST");
    EXPECT_EQ(reqs[0].http.url, "https://acme.my.salesforce.com/services/data/v60.0/jobs/ingest");
    EXPECT_EQ(reqs[0].http.body, "{\"object\":\"Lead\",\"operation\":\"upsert\",\"externalIdFieldName\":"
                                 "\"Customer_Id__c\",\"contentType\":\"CSV\",\"columnDelimiter\":\"COMMA\","
                                 "\"lineEnding\":\"LF\"}");
    // Created: upload the CSV.
    Verdict v =
        sf.Interpret(reqs[0], changes, Answer(200, "{\"id\":\"7505e000000AbcdAAC\",\"state\":\"Open\"}"));
    ASSERT_EQ(v.kind, Verdict::Kind::Continue);
    ASSERT_TRUE(v.next);
    PreparedRequest upload = *v.next;
    upload.rows = reqs[0].rows;
    EXPECT_FALSE(v.job_accepted);
    EXPECT_EQ(upload.http.method, "PUT");
    EXPECT_EQ(upload.http.url, "https://acme.my.salesforce.com/services/data/v60.0/jobs/ingest/"
                               "7505e000000AbcdAAC/batches");
    EXPECT_EQ(HeaderOf(upload.http, "Content-Type"), "text/csv");
    EXPECT_EQ(upload.http.body,
              "Customer_Id__c,LastName,Company\n1,L1,\"Smith, \"\"Jones\"\"\nand Co\"\n2,L2,\n"
              "3,L3,\n");
    // Uploaded: close it; closed: the job is kept and polled.
    v = sf.Interpret(upload, changes, Answer(201, ""));
    ASSERT_EQ(v.kind, Verdict::Kind::Continue);
    PreparedRequest close = *v.next;
    close.rows = upload.rows;
    EXPECT_EQ(close.http.method, "PATCH");
    EXPECT_EQ(close.http.body, "{\"state\":\"UploadComplete\"}");
    v = sf.Interpret(close, changes,
                     Answer(200, "{\"id\":\"7505e000000AbcdAAC\",\"state\":\"UploadComplete\"}"));
    ASSERT_EQ(v.kind, Verdict::Kind::Continue);
    EXPECT_TRUE(v.job_accepted);
    PreparedRequest poll = *v.next;
    poll.rows = close.rows;
    EXPECT_EQ(poll.flow.job_id, "7505e000000AbcdAAC");
    EXPECT_EQ(poll.flow.step, "bulk_poll");
    EXPECT_EQ(poll.http.method, "GET");
    // Polls until JobComplete, then the results.
    v = sf.Interpret(poll, changes, Answer(200, "{\"state\":\"InProgress\"}"));
    EXPECT_EQ(v.kind, Verdict::Kind::Continue);
    EXPECT_EQ(v.next->flow.step, "bulk_poll");
    v = sf.Interpret(poll, changes, Answer(200, "{\"state\":\"JobComplete\"}"));
    ASSERT_EQ(v.kind, Verdict::Kind::Continue);
    PreparedRequest ok = *v.next;
    ok.rows = poll.rows;
    EXPECT_EQ(ok.http.url,
              "https://acme.my.salesforce.com/services/data/v60.0/jobs/ingest/7505e000000AbcdAAC/"
              "successfulResults/");
    EXPECT_EQ(HeaderOf(ok.http, "Accept"), "text/csv");
    // The results repeat every uploaded row: read past the default limit.
    EXPECT_EQ(ok.http.max_response_body, size_t{64} << 20);
    EXPECT_EQ(poll.http.max_response_body, kDefaultMaxResponseBody);
    v = sf.Interpret(
        ok, changes,
        Answer(200, "\"sf__Id\",\"sf__Created\",\"Customer_Id__c\",\"LastName\",\"Company\"\n"
                    "\"00Q000000000002AAA\",\"true\",\"2\",\"L2\",\"\"\n"
                    "\"00Q000000000001AAA\",\"false\",\"1\",\"L1\",\"Smith, \"\"Jones\"\"\nand Co\"\n"));
    ASSERT_EQ(v.kind, Verdict::Kind::Continue);
    ASSERT_EQ(v.rows.size(), 3u);
    EXPECT_TRUE(v.rows[0].accepted);
    EXPECT_EQ(v.rows[0].dest_id, "00Q000000000001AAA");
    EXPECT_EQ(v.rows[1].dest_id, "00Q000000000002AAA");
    PreparedRequest failed = *v.next;
    EXPECT_EQ(failed.rows, (std::vector<size_t>{2}));
    EXPECT_EQ(failed.flow.step, "bulk_failed");
    EXPECT_EQ(failed.http.max_response_body, size_t{64} << 20);
    v = sf.Interpret(failed, changes,
                     Answer(200,
                            "\"sf__Id\",\"sf__Error\",\"Customer_Id__c\",\"LastName\"\n"
                            "\"\",\"REQUIRED_FIELD_MISSING:Required fields are missing: [LastName]:LastName "
                            "--\",\"3\",\"\"\n"));
    EXPECT_EQ(v.kind, Verdict::Kind::Done);
    ASSERT_EQ(v.rows.size(), 1u);
    EXPECT_EQ(v.rows[0].error_code, "REQUIRED_FIELD_MISSING");
    EXPECT_EQ(v.rows[0].reason, "Required fields are missing: [LastName]:LastName --");

    // A failed job refuses its rows; a job Salesforce no longer knows is sent again.
    v = sf.Interpret(poll, changes, Answer(200, "{\"state\":\"Failed\",\"errorMessage\":\"InvalidBatch\"}"));
    EXPECT_EQ(v.kind, Verdict::Kind::Done);
    EXPECT_EQ(v.rows[0].error_code, "JOB_FAILED");
    EXPECT_EQ(sf.Interpret(poll, changes, Answer(404, "[{\"errorCode\":\"NOT_FOUND\"}]")).kind,
              Verdict::Kind::Resend);
    // Resume polls a kept job; anything else is not resumed.
    auto resumed = sf.Resume(BatchContext{}, changes, poll.flow);
    ASSERT_TRUE(resumed);
    EXPECT_EQ(resumed->http.url, poll.http.url);
    FlowStep bad = poll.flow;
    bad.job_id = "../x";
    EXPECT_FALSE(sf.Resume(BatchContext{}, changes, bad));
    // An invalid job id in the creation answer stops the run.
    EXPECT_EQ(sf.Interpret(reqs[0], changes, Answer(200, "{\"id\":\"../../x\"}")).kind, Verdict::Kind::Fatal);
}

TEST(Salesforce, CsvQuotingAndParsing) {
    EXPECT_EQ(CsvField("plain"), "plain");
    EXPECT_EQ(CsvField("a,b"), "\"a,b\"");
    EXPECT_EQ(CsvField("say \"hi\""), "\"say \"\"hi\"\"\"");
    EXPECT_EQ(CsvField("line\nbreak"), "\"line\nbreak\"");
    EXPECT_EQ(CsvField("cr\rhere"), "\"cr\rhere\"");
    EXPECT_EQ(CsvField(" padded"), "\" padded\"");
    EXPECT_EQ(CsvField(""), "");
    auto rows = ParseCsv("a,\"b,c\",\"d\"\"e\"\r\n\"multi\nline\",,x\n", 10);
    ASSERT_TRUE(rows);
    ASSERT_EQ(rows->size(), 2u);
    EXPECT_EQ((*rows)[0], (std::vector<std::string>{"a", "b,c", "d\"e"}));
    EXPECT_EQ((*rows)[1], (std::vector<std::string>{"multi\nline", "", "x"}));
    EXPECT_FALSE(ParseCsv("\"unterminated", 10));
    EXPECT_FALSE(ParseCsv("a\"b", 10));
    EXPECT_FALSE(ParseCsv("a\nb\nc\n", 2)) << "bounded";
    // Round trip of what a job uploads: nulls become #N/A.
    SalesforceConnector sf(Settings("1"), Target());
    std::vector<Change> changes = {Lead(1, ", \"Company\": null, \"N\": 1.50, \"B\": true")};
    EXPECT_EQ(sf.Csv(changes, {0}), "Customer_Id__c,LastName,Company,N,B\n1,L1,#N/A,1.50,true\n");
}

TEST(Salesforce, CreateSyncRefusesWhatCannotWork) {
    OptionList server = {{"type", "salesforce"}, {"url", "https://acme.my.salesforce.com"}};
    SyncTarget t = Target("upsert", "");
    EXPECT_THROW(CheckSyncTarget(server, t, "s", "srv"), Error);
    t = Target("upsert", "Id");
    EXPECT_THROW(CheckSyncTarget(server, t, "s", "srv"), Error);
    t = Target("update", "Customer_Id__c");
    EXPECT_THROW(CheckSyncTarget(server, t, "s", "srv"), Error);
    t = Target("upsert", "Customer_Id__c");
    t.object = "Lead/../x";
    EXPECT_THROW(CheckSyncTarget(server, t, "s", "srv"), Error);
    t = Target("upsert", "Customer_Id__c");
    EXPECT_NO_THROW(CheckSyncTarget(server, t, "s", "srv"));
    t = Target("update", "Id");
    EXPECT_NO_THROW(CheckSyncTarget(server, t, "s", "srv"));
    t = Target("insert", "");
    t.object = "Foo__c";
    EXPECT_NO_THROW(CheckSyncTarget(server, t, "s", "srv"));
    OptionList old = server;
    old.emplace_back("api_version", "45.0");
    EXPECT_THROW(ValidateServer(old), Error);
    old.back().second = "v60";
    EXPECT_THROW(ValidateServer(old), Error);
    old.back().second = "61.0";
    EXPECT_NO_THROW(ValidateServer(old));
}
