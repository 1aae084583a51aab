#include "core/connectors/segment/segment.hpp"

#include "core/common/encoding.hpp"
#include "core/common/error.hpp"

#include <gtest/gtest.h>
#include <rapidjson/document.h>

#include <string>
#include <vector>

using namespace revetl;

namespace {

DestinationSettings Settings() {
    DestinationSettings s;
    s.type = "segment";
    s.url = "https://api.segment.io";
    s.credentials.token = "write-key-secret";
    return s;
}

SyncTarget Target(const std::string &object = "identify", const std::string &mode = "upsert") {
    SyncTarget t;
    t.object = object;
    t.mode = mode;
    t.match_on = "user_id";
    return t;
}

Change Write(int64_t seq, const std::string &payload, int64_t version = 7) {
    Change c;
    c.seq = seq;
    c.op = Change::Op::Add;
    c.key = "{\"id\": " + std::to_string(seq) + "}";
    c.payload = payload;
    c.row_hash = seq * 31;
    c.version = version;
    return c;
}

BatchContext Context() {
    BatchContext b;
    b.sync_id = 42;
    return b;
}

struct Prepared {
    std::vector<PreparedRequest> requests;
    std::vector<std::pair<size_t, RowOutcome>> immediate;
};

Prepared PrepareAll(SegmentConnector &c, const std::vector<Change> &changes) {
    Prepared p;
    std::vector<size_t> rows;
    for (size_t i = 0; i < changes.size(); i++)
        rows.push_back(i);
    p.requests = c.Prepare(Context(), changes, rows, p.immediate);
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

HttpResponse Response(long status, const std::string &body = "") {
    HttpResponse r;
    r.status = status;
    r.body = body;
    return r;
}

} // namespace

TEST(SegmentConnector, IdentifyBatchShape) {
    SegmentConnector c(Settings(), Target());
    std::vector<Change> changes = {Write(1, "{\"user_id\": \"u1\", \"plan\": \"pro\", \"score\": 92.50}"),
                                   Write(2, "{\"user_id\": 2, \"plan\": null}")};
    auto p = PrepareAll(c, changes);
    ASSERT_EQ(p.requests.size(), 1u);
    const auto &r = p.requests[0].http;
    EXPECT_EQ(r.url, "https://api.segment.io/v1/batch");
    EXPECT_EQ(r.method, "POST");
    EXPECT_EQ(HeaderOf(r, "Authorization"), "Basic " + Base64("write-key-secret:"));
    EXPECT_EQ(HeaderOf(r, "Content-Type"), "application/json");
    EXPECT_NE(r.body.find("\"score\":92.50"), std::string::npos) << r.body;
    auto doc = Parse(r.body);
    ASSERT_EQ(doc["batch"].Size(), 2u);
    const auto &m = doc["batch"][0];
    EXPECT_STREQ(m["type"].GetString(), "identify");
    EXPECT_STREQ(m["userId"].GetString(), "u1");
    EXPECT_STREQ(m["traits"]["plan"].GetString(), "pro");
    EXPECT_FALSE(m["traits"].HasMember("user_id"));
    EXPECT_STREQ(doc["batch"][1]["userId"].GetString(), "2"); // userId is a string
    EXPECT_EQ(std::string(m["messageId"].GetString()), RecordIdempotencyKey(42, changes[0]));
    EXPECT_LE(m["messageId"].GetStringLength(), SegmentConnector::kMaxMessageIdBytes);
}

TEST(SegmentConnector, MessageIdSameOnRetryNewForANewChange) {
    SegmentConnector c(Settings(), Target());
    Change a = Write(1, "{\"user_id\": \"u1\", \"plan\": \"pro\"}", 7);
    std::string why;
    std::string first = c.Message(Context(), a, &why);
    std::string again = c.Message(Context(), a, &why);
    EXPECT_EQ(Parse(first)["messageId"], Parse(again)["messageId"]);
    Change changed = a;
    changed.row_hash += 1;
    changed.version = 9;
    EXPECT_NE(Parse(first)["messageId"], Parse(c.Message(Context(), changed, &why))["messageId"]);
}

TEST(SegmentConnector, TrackTakesTheEventField) {
    SegmentConnector c(Settings(), Target("track", "insert"));
    auto p =
        PrepareAll(c, {Write(1, "{\"user_id\": \"u1\", \"event\": \"Plan Upgraded\", \"plan\": \"pro\"}"),
                       Write(2, "{\"user_id\": \"u2\", \"plan\": \"pro\"}")});
    ASSERT_EQ(p.requests.size(), 1u);
    auto doc = Parse(p.requests[0].http.body);
    const auto &m = doc["batch"][0];
    EXPECT_STREQ(m["type"].GetString(), "track");
    EXPECT_STREQ(m["event"].GetString(), "Plan Upgraded");
    EXPECT_STREQ(m["properties"]["plan"].GetString(), "pro");
    EXPECT_FALSE(m["properties"].HasMember("event"));
    ASSERT_EQ(p.immediate.size(), 1u);
    EXPECT_EQ(p.immediate[0].first, 1u);
    EXPECT_EQ(p.immediate[0].second.error_code, "INVALID_MESSAGE");
}

TEST(SegmentConnector, MissingUserIdRefusedAndMatchOnRequired) {
    SegmentConnector c(Settings(), Target());
    auto p = PrepareAll(c, {Write(1, "{\"plan\": \"pro\"}")});
    EXPECT_TRUE(p.requests.empty());
    ASSERT_EQ(p.immediate.size(), 1u);
    SyncTarget t = Target("track", "insert");
    t.match_on = "";
    EXPECT_THROW(SegmentConnector(Settings(), t), Error);
}

TEST(SegmentConnector, OversizedMessageRefusedForItsRowAlone) {
    SegmentConnector c(Settings(), Target());
    std::string big(SegmentConnector::kMaxMessageBytes, 'x');
    auto p = PrepareAll(
        c, {Write(1, "{\"user_id\": \"u1\", \"bio\": \"" + big + "\"}"), Write(2, "{\"user_id\": \"u2\"}")});
    ASSERT_EQ(p.immediate.size(), 1u);
    EXPECT_EQ(p.immediate[0].first, 0u);
    EXPECT_EQ(p.immediate[0].second.error_code, "MESSAGE_TOO_LARGE");
    EXPECT_NE(p.immediate[0].second.reason.find("32 KB"), std::string::npos);
    ASSERT_EQ(p.requests.size(), 1u);
    EXPECT_EQ(p.requests[0].rows, std::vector<size_t>{1});
}

TEST(SegmentConnector, BatchesAreCutBySize) {
    SegmentConnector c(Settings(), Target());
    std::string filler(20 * 1024, 'y'); // 20 KB per call: 24 fit in 500 KB
    std::vector<Change> changes;
    for (int i = 0; i < 60; i++)
        changes.push_back(
            Write(i, "{\"user_id\": \"u" + std::to_string(i) + "\", \"f\": \"" + filler + "\"}"));
    auto p = PrepareAll(c, changes);
    EXPECT_TRUE(p.immediate.empty());
    ASSERT_EQ(p.requests.size(), 3u);
    size_t total = 0;
    for (const auto &r : p.requests) {
        EXPECT_LE(r.http.body.size(), SegmentConnector::kMaxBatchBytes);
        EXPECT_EQ(Parse(r.http.body)["batch"].Size(), r.rows.size());
        total += r.rows.size();
    }
    EXPECT_EQ(total, changes.size());
    EXPECT_EQ(p.requests[0].rows.size(), 24u);
}

TEST(SegmentConnector, Answers) {
    SegmentConnector c(Settings(), Target());
    std::vector<Change> changes = {Write(1, "{\"user_id\": \"u1\"}"), Write(2, "{\"user_id\": \"u2\"}")};
    auto p = PrepareAll(c, changes);
    auto ok = c.Interpret(p.requests[0], changes, Response(200, "{\"success\": true}"));
    ASSERT_EQ(ok.kind, Verdict::Kind::Done);
    EXPECT_TRUE(ok.rows[0].accepted && ok.rows[1].accepted);
    EXPECT_EQ(c.Interpret(p.requests[0], changes, Response(400, "too big")).kind, Verdict::Kind::Split);
    PreparedRequest one = p.requests[0];
    one.rows = {0};
    auto refused = c.Interpret(one, changes, Response(400, "{\"error\": \"message too large\"}"));
    ASSERT_EQ(refused.kind, Verdict::Kind::Done);
    EXPECT_FALSE(refused.rows[0].accepted);
    EXPECT_EQ(refused.rows[0].error_code, "HTTP_400");
    auto denied = c.Interpret(p.requests[0], changes, Response(401, "unauthorized"));
    EXPECT_EQ(denied.kind, Verdict::Kind::Fatal);
    EXPECT_EQ(denied.error.find("write-key-secret"), std::string::npos);
    EXPECT_EQ(c.Interpret(p.requests[0], changes, Response(503)).kind, Verdict::Kind::Retry);
    EXPECT_EQ(c.Interpret(p.requests[0], changes, Response(429)).kind, Verdict::Kind::Throttled);
}
