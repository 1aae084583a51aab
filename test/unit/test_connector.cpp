#include "core/connectors/connector.hpp"
#include "core/connectors/webhook/webhook.hpp"

#include "core/common/error.hpp"
#include "core/connectors/hubspot/hubspot.hpp"

#include "test_util.hpp"

#include <gtest/gtest.h>
#include <rapidjson/document.h>

#include <string>
#include <vector>

using namespace revetl;
using revetl_test::Contains;
using revetl_test::NotContains;

namespace {

template <typename F>
Error Catch(F &&f) {
    try {
        f();
    } catch (const Error &e) {
        return e;
    }
    ADD_FAILURE() << "expected revetl::Error";
    return Error("00000", "");
}

// Five changes; the third (index 2) is a removal with a known record id.
std::vector<Change> Changes(int n = 5) {
    std::vector<Change> out;
    for (int i = 0; i < n; i++) {
        Change c;
        c.seq = 100 + i;
        c.op = i == 2 ? Change::Op::Remove : (i == 1 ? Change::Op::Change : Change::Op::Add);
        c.key = "{\"id\": " + std::to_string(i + 1) + "}";
        c.payload =
            c.op == Change::Op::Remove ? "" : "{\"email\": \"u" + std::to_string(i + 1) + "@example.com\"}";
        c.row_hash = 7000 + i;
        if (i == 2)
            c.dest_id = "rec-3";
        out.push_back(c);
    }
    return out;
}

DestinationSettings Settings(const std::string &url = "https://hooks.example.com/in") {
    DestinationSettings s;
    s.type = "webhook";
    s.url = url;
    s.timeout_ms = 4321;
    s.connect_timeout_ms = 1234;
    return s;
}

BatchContext Context() {
    BatchContext c;
    c.sync_id = 9;
    c.sync_name = "people";
    c.run_id = 31;
    c.batch_no = 4;
    c.write_op = "upsert";
    return c;
}

HttpResponse Response(long status, const std::string &body = "",
                      std::vector<std::pair<std::string, std::string>> headers = {}) {
    HttpResponse r;
    r.status = status;
    r.body = body;
    r.headers = std::move(headers);
    return r;
}

PreparedRequest RequestFor(Connector &connector, const std::vector<Change> &changes,
                           std::vector<size_t> rows) {
    std::vector<std::pair<size_t, RowOutcome>> immediate;
    auto reqs = connector.Prepare(Context(), changes, rows, immediate);
    EXPECT_TRUE(immediate.empty());
    EXPECT_EQ(reqs.size(), 1u);
    return reqs.empty() ? PreparedRequest{} : reqs[0];
}

rapidjson::Document Parse(const std::string &body) {
    rapidjson::Document doc;
    doc.Parse(body.c_str(), body.size());
    EXPECT_FALSE(doc.HasParseError()) << body;
    EXPECT_TRUE(doc.IsObject()) << body;
    return doc;
}

std::string Str(const rapidjson::Value &v) {
    return v.IsString() ? std::string(v.GetString(), v.GetStringLength()) : std::string("<not a string>");
}

std::vector<std::string> RecordOps(const std::string &body) {
    rapidjson::Document doc = Parse(body);
    std::vector<std::string> ops;
    if (doc.IsObject() && doc.HasMember("records") && doc["records"].IsArray())
        for (const auto &r : doc["records"].GetArray())
            ops.push_back(Str(r["op"]));
    return ops;
}

} // namespace

// ---------------------------------------------------------------------------
// MakeConnector

TEST(MakeConnector, WebhookByDefault) {
    SyncTarget t;
    auto c = MakeConnector(Settings(), t);
    ASSERT_NE(c, nullptr);
    EXPECT_NE(dynamic_cast<WebhookConnector *>(c.get()), nullptr);
    EXPECT_EQ(dynamic_cast<HubSpotConnector *>(c.get()), nullptr);
}

TEST(MakeConnector, HubSpotType) {
    DestinationSettings s = Settings("https://api.hubapi.com");
    s.type = "hubspot";
    s.credentials.token = "pat-1";
    SyncTarget t;
    t.object = "contacts";
    auto c = MakeConnector(s, t);
    ASSERT_NE(c, nullptr);
    EXPECT_NE(dynamic_cast<HubSpotConnector *>(c.get()), nullptr);
}

TEST(MakeConnector, HubSpotTargetIsChecked) {
    DestinationSettings s = Settings("https://api.hubapi.com");
    s.type = "hubspot";
    SyncTarget t;
    t.object = "companies";
    try {
        MakeConnector(s, t);
        FAIL() << "expected revetl::Error";
    } catch (const Error &e) {
        EXPECT_EQ(e.sqlstate(), "22023");
        EXPECT_TRUE(Contains(e.what(), "needs MATCH ON"));
    }
}

TEST(MakeConnector, CredentialsAreJudgedAgainstTheType) {
    // HubSpot takes a bearer token only: none, or basic, is refused at run
    // start with the server named and no secret in the message.
    DestinationSettings s = Settings("https://api.hubapi.com");
    s.type = "hubspot";
    SyncTarget t;
    Error e = Catch([&] { MakeConnector(s, t, "s1", "crm"); });
    EXPECT_EQ(e.sqlstate(), "28000");
    EXPECT_STREQ(e.what(), "server \"crm\" of type hubspot does not accept requests without credentials");
    EXPECT_EQ(e.hint(), "Give the user mapping token or oauth_token_url, client_id and client_secret (and "
                        "refresh_token for the refresh-token grant).");
    s.credentials.user = "me";
    s.credentials.password = "pw-SECRET";
    e = Catch([&] { MakeConnector(s, t, "s1", "crm"); });
    EXPECT_STREQ(e.what(), "server \"crm\" of type hubspot does not accept auth scheme basic");
    EXPECT_TRUE(NotContains(std::string(e.what()) + e.detail() + e.hint(), "SECRET"));
    // The webhook takes basic.
    DestinationSettings w = Settings();
    w.credentials.user = "me";
    w.credentials.password = "pw";
    EXPECT_NO_THROW(MakeConnector(w, t));
}

TEST(MakeConnector, WriteOpFollowsTheMode) {
    const std::vector<std::pair<std::string, std::string>> cases = {
        {"upsert", "upsert"}, {"update", "update"}, {"insert", "insert"}, {"mirror", "upsert"}};
    auto changes = Changes();
    for (const auto &[mode, op] : cases) {
        SCOPED_TRACE(mode);
        SyncTarget t;
        t.mode = mode;
        auto c = MakeConnector(Settings(), t);
        PreparedRequest req = RequestFor(*c, changes, {0, 1, 2});
        // Added and changed rows carry the mode's op; removals stay deletes.
        EXPECT_EQ(RecordOps(req.http.body), (std::vector<std::string>{op, op, "delete"}));
    }
}

// ---------------------------------------------------------------------------
// WebhookConnector::Prepare

TEST(WebhookConnector, PrepareBuildsOneRequestWithTheGivenRows) {
    DestinationSettings s = Settings();
    s.credentials.token = "tok-1";
    WebhookConnector c(s, "upsert");
    auto changes = Changes();
    std::vector<std::pair<size_t, RowOutcome>> immediate;
    auto reqs = c.Prepare(Context(), changes, {4, 2, 0}, immediate);
    EXPECT_TRUE(immediate.empty());
    ASSERT_EQ(reqs.size(), 1u);
    const PreparedRequest &req = reqs[0];
    EXPECT_EQ(req.rows, (std::vector<size_t>{4, 2, 0}));
    EXPECT_EQ(req.http.method, "POST");
    EXPECT_EQ(req.http.url, "https://hooks.example.com/in");
    EXPECT_EQ(req.http.timeout_ms, 4321);
    EXPECT_EQ(req.http.connect_timeout_ms, 1234);

    // The same request as BuildWebhookRequest makes for those rows, in order.
    BatchContext ctx = Context();
    HttpRequest expected = BuildWebhookRequest(s, ctx, {changes[4], changes[2], changes[0]});
    EXPECT_EQ(req.http.body, expected.body);
    EXPECT_EQ(req.http.headers, expected.headers);

    rapidjson::Document doc = Parse(req.http.body);
    EXPECT_EQ(Str(doc["sync"]), "people");
    EXPECT_EQ(doc["run_id"].GetInt64(), 31);
    EXPECT_EQ(doc["batch"].GetInt64(), 4);
    const auto &records = doc["records"];
    ASSERT_EQ(records.Size(), 3u);
    EXPECT_EQ(records[0]["key"]["id"].GetInt(), 5);
    EXPECT_EQ(Str(records[0]["op"]), "upsert");
    EXPECT_EQ(Str(records[0]["data"]["email"]), "u5@example.com");
    EXPECT_EQ(records[1]["key"]["id"].GetInt(), 3);
    EXPECT_EQ(Str(records[1]["op"]), "delete");
    EXPECT_FALSE(records[1].HasMember("data"));
    EXPECT_EQ(Str(records[1]["id"]), "rec-3");
    EXPECT_EQ(records[2]["key"]["id"].GetInt(), 1);
    EXPECT_EQ(Str(records[2]["idempotency_key"]), RecordIdempotencyKey(9, changes[0]));
}

TEST(WebhookConnector, PrepareUsesItsOwnWriteOpNotTheContexts) {
    auto changes = Changes();
    for (const std::string op : {"insert", "update"}) {
        SCOPED_TRACE(op);
        WebhookConnector c(Settings(), op);
        PreparedRequest req = RequestFor(c, changes, {0, 1, 2, 3});
        EXPECT_EQ(RecordOps(req.http.body), (std::vector<std::string>{op, op, "delete", op}));
    }
}

TEST(WebhookConnector, PrepareOfOneRow) {
    WebhookConnector c(Settings(), "upsert");
    auto changes = Changes();
    PreparedRequest req = RequestFor(c, changes, {3});
    EXPECT_EQ(req.rows, std::vector<size_t>{3});
    rapidjson::Document doc = Parse(req.http.body);
    ASSERT_EQ(doc["records"].Size(), 1u);
    EXPECT_EQ(doc["records"][0]["key"]["id"].GetInt(), 4);
}

// ---------------------------------------------------------------------------
// WebhookConnector::Interpret

class WebhookInterpret : public ::testing::Test {
protected:
    WebhookConnector connector{Settings("https://hooks.example.com/in?secret=s3cr3t"), "upsert"};
    std::vector<Change> changes = Changes();

    Verdict Run(const HttpResponse &response, std::vector<size_t> rows) {
        PreparedRequest req;
        req.rows = std::move(rows);
        return connector.Interpret(req, changes, response);
    }
};

TEST_F(WebhookInterpret, OkAcceptsAll) {
    Verdict v = Run(Response(200, R"({"ids": ["a", "b", "c"]})"), {0, 1, 3});
    EXPECT_EQ(v.kind, Verdict::Kind::Done);
    ASSERT_EQ(v.rows.size(), 3u);
    const char *ids[] = {"a", "b", "c"};
    for (size_t i = 0; i < 3; i++) {
        EXPECT_TRUE(v.rows[i].accepted);
        EXPECT_EQ(v.rows[i].http_status, 200);
        EXPECT_EQ(v.rows[i].dest_id, ids[i]);
        EXPECT_EQ(v.rows[i].reason, "");
    }
    EXPECT_EQ(v.error, "");
}

TEST_F(WebhookInterpret, OkWithEmptyBody) {
    Verdict v = Run(Response(204, ""), {0, 1});
    EXPECT_EQ(v.kind, Verdict::Kind::Done);
    ASSERT_EQ(v.rows.size(), 2u);
    EXPECT_TRUE(v.rows[0].accepted);
    EXPECT_TRUE(v.rows[1].accepted);
    EXPECT_EQ(v.rows[1].http_status, 204);
}

TEST_F(WebhookInterpret, MultiStatusRejectsTheNamedRows) {
    Verdict v = Run(Response(207, R"({"rejected": [{"index": 1, "reason": "bad email", "code": "E_EMAIL"},
                                                   {"index": 3, "reason": "too old"}]})"),
                    {0, 1, 3, 4});
    EXPECT_EQ(v.kind, Verdict::Kind::Done);
    ASSERT_EQ(v.rows.size(), 4u);
    EXPECT_TRUE(v.rows[0].accepted);
    EXPECT_FALSE(v.rows[1].accepted);
    EXPECT_EQ(v.rows[1].reason, "bad email");
    EXPECT_EQ(v.rows[1].error_code, "E_EMAIL");
    EXPECT_EQ(v.rows[1].http_status, 207);
    EXPECT_TRUE(v.rows[2].accepted);
    EXPECT_FALSE(v.rows[3].accepted);
    EXPECT_EQ(v.rows[3].reason, "too old");
    EXPECT_EQ(v.rows[3].error_code, "");
    for (const auto &o : v.rows)
        EXPECT_EQ(o.http_status, 207);
}

TEST_F(WebhookInterpret, TooManyRequestsIsThrottledWithRetryAfter) {
    Verdict v = Run(Response(429, "slow down", {{"retry-after", "3"}}), {0, 1});
    EXPECT_EQ(v.kind, Verdict::Kind::Throttled);
    EXPECT_EQ(v.wait_ms, 3000);
    EXPECT_TRUE(v.rows.empty());
    EXPECT_TRUE(Contains(v.error, "answered HTTP 429: slow down"));
}

TEST_F(WebhookInterpret, TooManyRequestsWithoutRetryAfter) {
    Verdict v = Run(Response(429, ""), {0});
    EXPECT_EQ(v.kind, Verdict::Kind::Throttled);
    EXPECT_EQ(v.wait_ms, -1);
}

TEST_F(WebhookInterpret, TooManyRequestsWithUnparsableRetryAfter) {
    Verdict v = Run(Response(429, "", {{"retry-after", "soon"}}), {0});
    EXPECT_EQ(v.kind, Verdict::Kind::Throttled);
    EXPECT_EQ(v.wait_ms, -1);
}

TEST_F(WebhookInterpret, ServerErrorIsRetried) {
    Verdict v = Run(Response(503, "busy"), {0, 1});
    EXPECT_EQ(v.kind, Verdict::Kind::Retry);
    EXPECT_EQ(v.wait_ms, -1);
    EXPECT_TRUE(v.rows.empty());
    // The URL is redacted: the query string (it may hold a secret) is hidden.
    EXPECT_EQ(v.error, "destination https://hooks.example.com/in?*** answered HTTP 503: busy");
    EXPECT_TRUE(NotContains(v.error, "s3cr3t"));
}

TEST_F(WebhookInterpret, ServerErrorWithRetryAfter) {
    Verdict v = Run(Response(503, "", {{"retry-after", "2"}}), {0});
    EXPECT_EQ(v.kind, Verdict::Kind::Retry);
    EXPECT_EQ(v.wait_ms, 2000);
    EXPECT_EQ(v.error, "destination https://hooks.example.com/in?*** answered HTTP 503");
}

TEST_F(WebhookInterpret, OtherTransientStatusesAreRetried) {
    for (long status : {408L, 425L, 500L, 502L, 504L}) {
        SCOPED_TRACE(status);
        Verdict v = Run(Response(status, ""), {0, 1});
        EXPECT_EQ(v.kind, Verdict::Kind::Retry);
    }
}

TEST_F(WebhookInterpret, TransportErrorIsRetried) {
    HttpResponse r = Response(0);
    r.transport_error = "Couldn't connect to server";
    Verdict v = Run(r, {0});
    EXPECT_EQ(v.kind, Verdict::Kind::Retry);
    EXPECT_EQ(v.error, "could not reach https://hooks.example.com/in?***: Couldn't connect to server");

    HttpResponse t = Response(0);
    t.timed_out = true;
    t.transport_error = "Timeout was reached";
    Verdict tv = Run(t, {0});
    EXPECT_EQ(tv.kind, Verdict::Kind::Retry);
    EXPECT_EQ(tv.error, "could not reach https://hooks.example.com/in?***: timed out");
}

TEST_F(WebhookInterpret, RefusedRequestOfSeveralRowsIsSplit) {
    for (long status : {400L, 413L, 422L}) {
        SCOPED_TRACE(status);
        Verdict v = Run(Response(status, R"({"error": "bad"})"), {0, 1});
        EXPECT_EQ(v.kind, Verdict::Kind::Split);
        EXPECT_TRUE(v.rows.empty());
    }
}

TEST_F(WebhookInterpret, RefusedRequestOfOneRowRejectsIt) {
    for (long status : {400L, 413L, 422L}) {
        SCOPED_TRACE(status);
        Verdict v = Run(Response(status, R"({"error": "email is invalid", "code": "E_EMAIL"})"), {3});
        EXPECT_EQ(v.kind, Verdict::Kind::Done);
        ASSERT_EQ(v.rows.size(), 1u);
        EXPECT_FALSE(v.rows[0].accepted);
        EXPECT_EQ(v.rows[0].http_status, status);
        EXPECT_EQ(v.rows[0].reason, "email is invalid");
        EXPECT_EQ(v.rows[0].error_code, "E_EMAIL");
    }
}

TEST_F(WebhookInterpret, RefusedCredentialsFailTheRunInsteadOfEveryRow) {
    // A wrong token would otherwise refuse every row of the model, run
    // after run: the run stops with one error naming what to check.
    for (long status : {401L, 403L}) {
        SCOPED_TRACE(status);
        Verdict v = Run(Response(status, "no token"), {0, 1, 3});
        // 401: expired credentials, which the engine refreshes once where
        // it can (OAuth) and otherwise treats as Fatal.
        EXPECT_EQ(v.kind, status == 401 ? Verdict::Kind::AuthExpired : Verdict::Kind::Fatal);
        EXPECT_TRUE(v.rows.empty());
        EXPECT_NE(v.error.find("HTTP " + std::to_string(status)), std::string::npos) << v.error;
        EXPECT_NE(v.error.find("user mapping"), std::string::npos) << v.error;
    }
}

TEST_F(WebhookInterpret, RedirectsAndAMissingUrlFailTheRun) {
    HttpResponse moved = Response(301, "");
    moved.headers.emplace_back("location", "https://hooks.example.com/new?secret=x");
    Verdict v = Run(moved, {0, 1});
    EXPECT_EQ(v.kind, Verdict::Kind::Fatal);
    EXPECT_NE(v.error.find("redirect to https://hooks.example.com/new"), std::string::npos) << v.error;
    EXPECT_EQ(v.error.find("secret=x"), std::string::npos) << v.error; // the query string is not shown
    v = Run(Response(302, ""), {0});
    EXPECT_EQ(v.kind, Verdict::Kind::Fatal);
    v = Run(Response(404, "Not Found"), {0, 1});
    EXPECT_EQ(v.kind, Verdict::Kind::Fatal);
    EXPECT_NE(v.error.find("check the server's url"), std::string::npos) << v.error;
}

TEST_F(WebhookInterpret, UnresolvableHostAndTlsFailuresFailTheRun) {
    HttpResponse dns = Response(0, "");
    dns.transport_error = "Couldn't resolve host name";
    dns.transport_code = kTransportCouldNotResolve;
    EXPECT_EQ(Run(dns, {0}).kind, Verdict::Kind::Fatal);
    HttpResponse tls = Response(0, "");
    tls.transport_error = "SSL peer certificate or SSH remote key was not OK";
    tls.transport_code = kTransportTls;
    Verdict v = Run(tls, {0});
    EXPECT_EQ(v.kind, Verdict::Kind::Fatal);
    EXPECT_NE(v.error.find("certificate"), std::string::npos) << v.error;
    // Other transport failures (refused, reset, timed out) are retried.
    HttpResponse reset = Response(0, "");
    reset.transport_error = "Connection reset by peer";
    reset.transport_code = kTransportOther;
    EXPECT_EQ(Run(reset, {0}).kind, Verdict::Kind::Retry);
}

TEST_F(WebhookInterpret, OtherPermanentStatusesRejectWithoutSplitting) {
    for (long status : {409L, 410L, 451L}) {
        SCOPED_TRACE(status);
        Verdict v = Run(Response(status, ""), {0, 1});
        EXPECT_EQ(v.kind, Verdict::Kind::Done);
        ASSERT_EQ(v.rows.size(), 2u);
        EXPECT_FALSE(v.rows[0].accepted);
        EXPECT_FALSE(v.rows[1].accepted);
        EXPECT_EQ(v.rows[0].http_status, status);
        EXPECT_EQ(v.rows[0].reason, "HTTP " + std::to_string(status));
    }
}

TEST(RecordIdempotencyKey, UniquePerChangeStablePerRetry) {
    // A -> B -> A: the third change has the content of the first, but is
    // based on a later version, so a receiver that skips keys it applied
    // before still applies it.
    Change a1 = revetl_test::MakeChange(Change::Op::Add, "{\"id\": 1}", "{\"v\": \"A\"}", 100);
    a1.version = -3; // first seen by run 3
    Change b = revetl_test::MakeChange(Change::Op::Change, "{\"id\": 1}", "{\"v\": \"B\"}", 200);
    b.version = 3;
    Change a2 = revetl_test::MakeChange(Change::Op::Change, "{\"id\": 1}", "{\"v\": \"A\"}", 100);
    a2.version = 4;
    EXPECT_NE(RecordIdempotencyKey(9, a1), RecordIdempotencyKey(9, a2));
    EXPECT_NE(RecordIdempotencyKey(9, a1), RecordIdempotencyKey(9, b));
    EXPECT_NE(RecordIdempotencyKey(9, b), RecordIdempotencyKey(9, a2));

    // delete, re-insert, delete: the two deletes differ.
    Change d1 = revetl_test::MakeChange(Change::Op::Remove, "{\"id\": 1}", "", 0);
    d1.version = 5;
    Change d2 = d1;
    d2.version = 8;
    EXPECT_NE(RecordIdempotencyKey(9, d1), RecordIdempotencyKey(9, d2));

    // A retry of one change (same version, same content) has the same key,
    // whatever the seq or run it is sent from; another sync, another key.
    Change retry = b;
    retry.seq = 77;
    EXPECT_EQ(RecordIdempotencyKey(9, b), RecordIdempotencyKey(9, retry));
    EXPECT_NE(RecordIdempotencyKey(9, b), RecordIdempotencyKey(10, b));
    EXPECT_EQ(RecordIdempotencyKey(9, b).size(), 32u);
}

TEST(TransientFailure, NoAnswer408And5xxAreRetriedWithTheVendorsMessage) {
    HttpResponse timeout;
    timeout.timed_out = true;
    auto v = TransientFailure(timeout, "Acme", "");
    ASSERT_TRUE(v.has_value());
    EXPECT_EQ(v->kind, Verdict::Kind::Retry);
    EXPECT_EQ(v->error, "could not reach Acme: timed out");

    HttpResponse lost;
    lost.transport_error = "Connection reset by peer";
    EXPECT_EQ(TransientFailure(lost, "Acme", "")->error, "could not reach Acme: Connection reset by peer");

    HttpResponse busy;
    busy.status = 503;
    EXPECT_EQ(TransientFailure(busy, "Acme", "")->error, "Acme answered HTTP 503");
    const std::string long_message(1000, 'm');
    auto with_message = TransientFailure(busy, "Acme", long_message);
    EXPECT_EQ(with_message->error.rfind("Acme answered HTTP 503: mmm", 0), 0u);
    EXPECT_LE(with_message->error.size(), std::string("Acme answered HTTP 503: ").size() + 300);

    busy.status = 408;
    EXPECT_TRUE(TransientFailure(busy, "Acme", "").has_value());
    for (long status : {200L, 207L, 400L, 401L, 404L, 409L, 422L, 429L}) {
        HttpResponse answer;
        answer.status = status;
        EXPECT_FALSE(TransientFailure(answer, "Acme", "x").has_value()) << status;
    }
}
