#include "core/connectors/customerio/customerio.hpp"

#include "core/common/error.hpp"

#include <gtest/gtest.h>
#include <rapidjson/document.h>

#include <string>
#include <vector>

using namespace revetl;

namespace {

DestinationSettings Settings() {
    DestinationSettings s;
    s.type = "customerio";
    s.url = "https://track.customer.io/";
    s.credentials.user = "site-1";
    s.credentials.password = "cio-secret-key";
    return s;
}

SyncTarget Target(const std::string &mode = "upsert", const std::string &match_on = "id") {
    SyncTarget t;
    t.object = "people";
    t.mode = mode;
    t.match_on = match_on;
    return t;
}

Change Write(int64_t seq, const std::string &payload) {
    Change c;
    c.seq = seq;
    c.op = Change::Op::Add;
    c.key = "{\"id\": " + std::to_string(seq) + "}";
    c.payload = payload;
    return c;
}

Change Person(int64_t seq, const std::string &id) {
    return Write(seq, "{\"id\": \"" + id + "\", \"plan\": \"p" + std::to_string(seq) + "\"}");
}

Change Removal(int64_t seq, const std::string &dest_id) {
    Change c;
    c.seq = seq;
    c.op = Change::Op::Remove;
    c.key = "{\"id\": " + std::to_string(seq) + "}";
    c.dest_id = dest_id;
    return c;
}

struct Prepared {
    std::vector<PreparedRequest> requests;
    std::vector<std::pair<size_t, RowOutcome>> immediate;
};

Prepared PrepareAll(CustomerIoConnector &c, const std::vector<Change> &changes) {
    Prepared p;
    std::vector<size_t> rows;
    for (size_t i = 0; i < changes.size(); i++)
        rows.push_back(i);
    p.requests = c.Prepare(BatchContext{}, changes, rows, p.immediate);
    return p;
}

rapidjson::Document Parse(const std::string &body) {
    rapidjson::Document doc;
    doc.Parse(body.c_str(), body.size());
    EXPECT_FALSE(doc.HasParseError()) << body;
    return doc;
}

std::string HeaderOf(const HttpRequest &r, const std::string &name) {
    for (const auto &h : r.headers)
        if (h.first == name)
            return h.second;
    return "<none>";
}

HttpResponse Response(long status, const std::string &body = "",
                      std::vector<std::pair<std::string, std::string>> headers = {}) {
    HttpResponse r;
    r.status = status;
    r.body = body;
    r.headers = std::move(headers);
    return r;
}

} // namespace

TEST(CustomerIoConnector, BatchRequestShape) {
    CustomerIoConnector c(Settings(), Target());
    std::vector<Change> changes = {
        Write(1, "{\"id\": \"42\", \"email\": \"a@x.com\", \"seats\": 92.50, \"big\": 12345678901234567890, "
                 "\"vip\": true, \"gone\": null, \"tags\": [\"a\"], \"_update\": false}"),
        Removal(2, "43")};
    Prepared p = PrepareAll(c, changes);
    ASSERT_EQ(p.requests.size(), 1u);
    EXPECT_TRUE(p.immediate.empty());
    const HttpRequest &r = p.requests[0].http;
    EXPECT_EQ(r.method, "POST");
    EXPECT_EQ(r.url, "https://track.customer.io/api/v2/batch");
    EXPECT_EQ(HeaderOf(r, "Content-Type"), "application/json");
    // Basic site id : API key (base64 of "site-1:cio-secret-key").
    EXPECT_EQ(HeaderOf(r, "Authorization"), "Basic c2l0ZS0xOmNpby1zZWNyZXQta2V5");
    EXPECT_EQ(r.body,
              "{\"batch\":[{\"type\":\"person\",\"identifiers\":{\"id\":\"42\"},\"action\":\"identify\","
              "\"attributes\":{\"email\":\"a@x.com\",\"seats\":92.50,\"big\":12345678901234567890,"
              "\"vip\":true,\"gone\":null,\"tags\":[\"a\"]}},"
              "{\"type\":\"person\",\"identifiers\":{\"id\":\"43\"},\"action\":\"delete\"}]}");
    EXPECT_EQ(p.requests[0].rows, (std::vector<size_t>{0, 1}));
}

TEST(CustomerIoConnector, UpdateModeSetsUpdateAndEmailIdentifies) {
    CustomerIoConnector c(Settings(), Target("update", "email"));
    std::vector<Change> changes = {Write(1, "{\"email\": \"Ada@X.com\", \"plan\": \"pro\"}")};
    Prepared p = PrepareAll(c, changes);
    ASSERT_EQ(p.requests.size(), 1u);
    auto doc = Parse(p.requests[0].http.body);
    const auto &item = doc["batch"][0];
    EXPECT_STREQ(item["identifiers"]["email"].GetString(), "Ada@X.com");
    EXPECT_FALSE(item["attributes"].HasMember("email"));
    EXPECT_TRUE(item["attributes"]["_update"].GetBool());
}

TEST(CustomerIoConnector, SamePersonTwiceGoesInSeparateRequests) {
    CustomerIoConnector c(Settings(), Target("upsert", "email"));
    std::vector<Change> changes = {Write(1, "{\"email\": \"a@x.com\"}"), Write(2, "{\"email\": \"A@X.COM\"}"),
                                   Write(3, "{\"email\": \"b@x.com\"}")};
    Prepared p = PrepareAll(c, changes);
    ASSERT_EQ(p.requests.size(), 2u);
    EXPECT_EQ(p.requests[0].rows, (std::vector<size_t>{0, 2}));
    EXPECT_EQ(p.requests[1].rows, (std::vector<size_t>{1}));
}

TEST(CustomerIoConnector, SizeLimitsCutRequestsAndRefuseLargeItems) {
    CustomerIoConnector c(Settings(), Target());
    std::vector<Change> changes;
    const std::string blob(20000, 'x');
    for (int i = 1; i <= 60; i++)
        changes.push_back(Write(i, "{\"id\": \"" + std::to_string(i) + "\", \"blob\": \"" + blob + "\"}"));
    changes.push_back(Write(61, "{\"id\": \"61\", \"blob\": \"" + std::string(40000, 'y') + "\"}"));
    changes.push_back(Write(62, "{\"plan\": \"no id\"}"));
    changes.push_back(Write(63, "{\"id\": \"" + std::string(151, '9') + "\"}"));
    changes.push_back(Removal(64, ""));
    Prepared p = PrepareAll(c, changes);
    size_t sent = 0;
    for (const auto &r : p.requests) {
        EXPECT_LT(r.http.body.size(), CustomerIoConnector::kMaxRequestBytes);
        sent += r.rows.size();
    }
    EXPECT_EQ(sent, 60u);
    EXPECT_EQ(p.requests.size(), 3u); // 24 items of ~20 KB per request
    ASSERT_EQ(p.immediate.size(), 4u);
    EXPECT_EQ(p.immediate[0].second.error_code, "ITEM_TOO_LARGE");
    EXPECT_EQ(p.immediate[1].second.error_code, "NO_MATCH_VALUE");
    EXPECT_EQ(p.immediate[2].second.error_code, "IDENTIFIER_TOO_LONG");
    EXPECT_EQ(p.immediate[3].second.error_code, "NO_RECORD_ID");
}

TEST(CustomerIoConnector, ResponsesMapToRows) {
    CustomerIoConnector c(Settings(), Target());
    std::vector<Change> changes = {Person(1, "a"), Person(2, "b"), Removal(3, "c")};
    Prepared p = PrepareAll(c, changes);
    ASSERT_EQ(p.requests.size(), 1u);

    Verdict ok = c.Interpret(p.requests[0], changes, Response(200, "{}"));
    ASSERT_EQ(ok.kind, Verdict::Kind::Done);
    ASSERT_EQ(ok.rows.size(), 3u);
    EXPECT_TRUE(ok.rows[0].accepted);
    EXPECT_EQ(ok.rows[0].dest_id, "a");
    EXPECT_TRUE(ok.rows[2].accepted);
    EXPECT_EQ(ok.rows[2].dest_id, "");

    Verdict partial = c.Interpret(
        p.requests[0], changes,
        Response(207, "{\"errors\":[{\"batch_index\":1,\"reason\":\"invalid\",\"field\":\"email\","
                      "\"message\":\"invalid email address\"},{\"batch_index\":9,\"reason\":\"x\"}]}"));
    ASSERT_EQ(partial.kind, Verdict::Kind::Done);
    EXPECT_TRUE(partial.rows[0].accepted);
    EXPECT_FALSE(partial.rows[1].accepted);
    EXPECT_EQ(partial.rows[1].error_code, "invalid");
    EXPECT_EQ(partial.rows[1].reason, "email: invalid email address");
    EXPECT_EQ(partial.rows[1].http_status, 207);
    EXPECT_TRUE(partial.rows[2].accepted);

    EXPECT_EQ(c.Interpret(p.requests[0], changes, Response(400, "{\"meta\":{\"error\":\"bad\"}}")).kind,
              Verdict::Kind::Split);
    PreparedRequest one = p.requests[0];
    one.rows = {0};
    Verdict lone = c.Interpret(one, changes, Response(400, "{\"meta\":{\"errors\":[\"bad attribute\"]}}"));
    ASSERT_EQ(lone.rows.size(), 1u);
    EXPECT_EQ(lone.rows[0].reason, "bad attribute");
    EXPECT_EQ(lone.rows[0].error_code, "HTTP_400");
}

TEST(CustomerIoConnector, ThrottlingRetriesAndCredentials) {
    CustomerIoConnector c(Settings(), Target());
    std::vector<Change> changes = {Person(1, "a")};
    Prepared p = PrepareAll(c, changes);
    Verdict t = c.Interpret(p.requests[0], changes, Response(429, "{\"meta\":{\"error\":\"slow down\"}}"));
    EXPECT_EQ(t.kind, Verdict::Kind::Throttled);
    EXPECT_EQ(t.wait_ms, 1000);
    Verdict t2 = c.Interpret(p.requests[0], changes, Response(429, "", {{"retry-after", "7"}}));
    EXPECT_EQ(t2.wait_ms, 7000);
    EXPECT_EQ(c.Interpret(p.requests[0], changes, Response(503)).kind, Verdict::Kind::Retry);
    EXPECT_EQ(c.Interpret(p.requests[0], changes, Response(0)).kind, Verdict::Kind::Retry);
    Verdict denied =
        c.Interpret(p.requests[0], changes, Response(401, "{\"meta\":{\"error\":\"Unauthorized\"}}"));
    EXPECT_EQ(denied.kind, Verdict::Kind::Fatal);
    EXPECT_NE(denied.error.find("site id"), std::string::npos);
    EXPECT_EQ(denied.error.find("cio-secret-key"), std::string::npos);
    EXPECT_EQ(c.Interpret(p.requests[0], changes, Response(404)).kind, Verdict::Kind::Fatal);
}

TEST(CustomerIoConnector, TargetsAndRegions) {
    EXPECT_THROW(CustomerIoConnector(Settings(), Target("upsert", "user_id")), Error);
    SyncTarget t;
    t.mode = "insert";
    EXPECT_THROW(CheckSyncTarget(CustomerIoSpec(), {{"type", "customerio"}}, t, "s1", "cio"), Error);
    SyncTarget m;
    m.mode = "mirror";
    EXPECT_NO_THROW(CheckSyncTarget(CustomerIoSpec(), {{"type", "customerio"}}, m, "s1", "cio"));
    EXPECT_EQ(m.match_on, "id");
    EXPECT_EQ(ResolveDestinationSettings({{"type", "customerio"}}, {}).url, "https://track.customer.io");
    EXPECT_EQ(ResolveDestinationSettings({{"type", "customerio"}, {"region", "eu"}}, {}).url,
              "https://track-eu.customer.io");
    EXPECT_EQ(ResolveDestinationSettings(
                  {{"type", "customerio"}, {"region", "eu"}, {"url", "http://127.0.0.1:9"}}, {})
                  .url,
              "http://127.0.0.1:9");
    EXPECT_THROW(ResolveDestinationSettings({{"type", "customerio"}, {"region", "ap"}}, {}), Error);
}
