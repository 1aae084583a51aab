#include "core/connectors/braze/braze.hpp"

#include "core/common/error.hpp"

#include <gtest/gtest.h>
#include <rapidjson/document.h>

#include <set>
#include <string>
#include <vector>

using namespace revetl;

namespace {

DestinationSettings Settings() {
    DestinationSettings s;
    s.type = "braze";
    s.url = "https://rest.iad-01.braze.com/";
    s.credentials.token = "braze-rest-secret";
    return s;
}

SyncTarget Target(const std::string &mode = "upsert", const std::string &match_on = "external_id") {
    SyncTarget t;
    t.object = "users";
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

Change User(int64_t seq, const std::string &id) {
    return Write(seq, "{\"external_id\": \"" + id + "\", \"first_name\": \"F" + std::to_string(seq) + "\"}");
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

Prepared PrepareAll(BrazeConnector &c, const std::vector<Change> &changes) {
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

TEST(BrazeConnector, TrackRequestShape) {
    BrazeConnector c(Settings(), Target());
    std::vector<Change> changes = {
        Write(1, "{\"external_id\": \"u1\", \"email\": \"a@x.com\", \"score\": 92.50, "
                 "\"big\": 12345678901234567890, \"vip\": true, \"seen\": \"2024-05-01T12:00:00+02:00\", "
                 "\"dob\": \"1990-02-03\", \"tags\": [\"a\", \"b\"], \"gone\": null}")};
    auto p = PrepareAll(c, changes);
    ASSERT_EQ(p.requests.size(), 1u);
    const auto &r = p.requests[0].http;
    EXPECT_EQ(r.method, "POST");
    EXPECT_EQ(r.url, "https://rest.iad-01.braze.com/users/track");
    EXPECT_EQ(HeaderOf(r, "Authorization"), "Bearer braze-rest-secret");
    EXPECT_EQ(HeaderOf(r, "Content-Type"), "application/json");
    // Numbers keep their exact text.
    EXPECT_NE(r.body.find("\"score\":92.50"), std::string::npos) << r.body;
    EXPECT_NE(r.body.find("\"big\":12345678901234567890"), std::string::npos) << r.body;
    auto doc = Parse(r.body);
    ASSERT_TRUE(doc["attributes"].IsArray());
    ASSERT_EQ(doc["attributes"].Size(), 1u);
    const auto &a = doc["attributes"][0];
    EXPECT_STREQ(a["external_id"].GetString(), "u1");
    EXPECT_TRUE(a["vip"].IsBool());
    EXPECT_STREQ(a["seen"].GetString(), "2024-05-01T10:00:00.000Z");
    EXPECT_STREQ(a["dob"].GetString(), "1990-02-03");
    EXPECT_TRUE(a["tags"].IsArray());
    EXPECT_TRUE(a["gone"].IsNull()); // null removes the attribute in Braze
    EXPECT_FALSE(a["_update_existing_only"].GetBool());
    EXPECT_FALSE(doc.HasMember("events"));
}

TEST(BrazeConnector, UpdateModeNeverCreates) {
    BrazeConnector c(Settings(), Target("update"));
    auto p = PrepareAll(c, {User(1, "u1")});
    ASSERT_EQ(p.requests.size(), 1u);
    EXPECT_TRUE(Parse(p.requests[0].http.body)["attributes"][0]["_update_existing_only"].GetBool());
}

TEST(BrazeConnector, BrazeIdAndEmailIdentifiers) {
    BrazeConnector c(Settings(), Target("upsert", "braze_id"));
    auto p = PrepareAll(c, {Write(1, "{\"braze_id\": 123, \"x\": 1}")});
    ASSERT_EQ(p.requests.size(), 1u);
    // Braze ids are strings, even when the model's column is a number.
    EXPECT_STREQ(Parse(p.requests[0].http.body)["attributes"][0]["braze_id"].GetString(), "123");
    BrazeConnector e(Settings(), Target("upsert", "email"));
    auto q = PrepareAll(e, {Write(1, "{\"email\": \"a@x.com\"}")});
    EXPECT_STREQ(Parse(q.requests[0].http.body)["attributes"][0]["email"].GetString(), "a@x.com");
}

TEST(BrazeConnector, UnknownIdentifierAndMirrorByEmailRefused) {
    EXPECT_THROW(BrazeConnector(Settings(), Target("upsert", "user_id")), Error);
    EXPECT_THROW(BrazeConnector(Settings(), Target("mirror", "email")), Error);
    EXPECT_NO_THROW(BrazeConnector(Settings(), Target("mirror", "braze_id")));
}

TEST(BrazeConnector, AtMost75ObjectsAndDistinctUsersPerCall) {
    BrazeConnector c(Settings(), Target());
    std::vector<Change> changes;
    for (int i = 0; i < 160; i++)
        changes.push_back(User(i, "u" + std::to_string(i)));
    changes.push_back(User(200, "u0")); // the same user again: another call
    auto p = PrepareAll(c, changes);
    ASSERT_EQ(p.requests.size(), 3u);
    size_t total = 0;
    for (const auto &r : p.requests) {
        auto doc = Parse(r.http.body);
        EXPECT_LE(doc["attributes"].Size(), BrazeConnector::kMaxAttributes);
        EXPECT_EQ(doc["attributes"].Size(), r.rows.size());
        std::set<std::string> ids;
        for (const auto &a : doc["attributes"].GetArray())
            EXPECT_TRUE(ids.insert(a["external_id"].GetString()).second);
        total += r.rows.size();
    }
    EXPECT_EQ(total, changes.size());
}

TEST(BrazeConnector, MissingIdentifierRefusedBeforeSending) {
    BrazeConnector c(Settings(), Target());
    auto p = PrepareAll(c, {Write(1, "{\"first_name\": \"x\"}"), User(2, "u2")});
    ASSERT_EQ(p.immediate.size(), 1u);
    EXPECT_EQ(p.immediate[0].first, 0u);
    EXPECT_EQ(p.immediate[0].second.error_code, "NO_MATCH_VALUE");
    ASSERT_EQ(p.requests.size(), 1u);
}

TEST(BrazeConnector, DeletesAtMost50ByKeptIdentifier) {
    BrazeConnector c(Settings(), Target("mirror"));
    std::vector<Change> changes;
    for (int i = 0; i < 120; i++)
        changes.push_back(Removal(i, "u" + std::to_string(i)));
    changes.push_back(Removal(500, "")); // never delivered: no identifier known
    auto p = PrepareAll(c, changes);
    ASSERT_EQ(p.requests.size(), 3u);
    ASSERT_EQ(p.immediate.size(), 1u);
    EXPECT_EQ(p.immediate[0].second.error_code, "NO_RECORD_ID");
    for (const auto &r : p.requests) {
        EXPECT_EQ(r.http.url, "https://rest.iad-01.braze.com/users/delete");
        auto doc = Parse(r.http.body);
        ASSERT_TRUE(doc["external_ids"].IsArray());
        EXPECT_LE(doc["external_ids"].Size(), BrazeConnector::kMaxDeletes);
        EXPECT_EQ(doc.MemberCount(), 1u); // one identifier kind per request
    }
    auto ok =
        c.Interpret(p.requests[0], changes, Response(201, "{\"deleted\": 50, \"message\": \"success\"}"));
    EXPECT_EQ(ok.kind, Verdict::Kind::Done);
    for (const auto &o : ok.rows)
        EXPECT_TRUE(o.accepted);
    BrazeConnector b(Settings(), Target("mirror", "braze_id"));
    auto q = PrepareAll(b, {Removal(1, "abc")});
    EXPECT_TRUE(Parse(q.requests[0].http.body).HasMember("braze_ids"));
}

TEST(BrazeConnector, PartialErrorsMappedByIndex) {
    BrazeConnector c(Settings(), Target());
    std::vector<Change> changes = {User(1, "u1"), User(2, "u2"), User(3, "u3")};
    auto p = PrepareAll(c, changes);
    auto v =
        c.Interpret(p.requests[0], changes,
                    Response(201, "{\"message\": \"success\", \"attributes_processed\": 2, \"errors\": "
                                  "[{\"type\": \"Invalid value for country\", \"input_array\": "
                                  "\"attributes\", \"index\": 1}, {\"type\": \"bogus\", \"index\": 99}]}"));
    ASSERT_EQ(v.kind, Verdict::Kind::Done);
    ASSERT_EQ(v.rows.size(), 3u);
    EXPECT_TRUE(v.rows[0].accepted);
    EXPECT_EQ(v.rows[0].dest_id, "u1"); // kept for deletes
    EXPECT_FALSE(v.rows[1].accepted);
    EXPECT_EQ(v.rows[1].reason, "Invalid value for country");
    EXPECT_EQ(v.rows[1].http_status, 201);
    EXPECT_TRUE(v.rows[2].accepted);
}

TEST(BrazeConnector, MalformedRequestSplitsThenRefusesTheRow) {
    BrazeConnector c(Settings(), Target());
    std::vector<Change> changes = {User(1, "u1"), User(2, "u2")};
    auto p = PrepareAll(c, changes);
    const std::string body =
        "{\"message\": \"Invalid request\", \"errors\": [\"attributes must be an array\"]}";
    EXPECT_EQ(c.Interpret(p.requests[0], changes, Response(400, body)).kind, Verdict::Kind::Split);
    PreparedRequest one = p.requests[0];
    one.rows = {0};
    auto v = c.Interpret(one, changes, Response(400, body));
    ASSERT_EQ(v.kind, Verdict::Kind::Done);
    EXPECT_FALSE(v.rows[0].accepted);
    EXPECT_EQ(v.rows[0].reason, "Invalid request: attributes must be an array");
    EXPECT_EQ(v.rows[0].error_code, "HTTP_400");
}

TEST(BrazeConnector, RateLimitWaitsUntilReset) {
    BrazeConnector c(Settings(), Target());
    std::vector<Change> changes = {User(1, "u1")};
    auto p = PrepareAll(c, changes);
    const std::time_t now = std::time(nullptr);
    auto v = c.Interpret(p.requests[0], changes,
                         Response(429, "{\"message\": \"rate limited\"}",
                                  {{"x-ratelimit-limit", "3000"},
                                   {"x-ratelimit-remaining", "0"},
                                   {"x-ratelimit-reset", std::to_string(now + 30)}}));
    EXPECT_EQ(v.kind, Verdict::Kind::Throttled);
    EXPECT_GE(v.wait_ms, 28000);
    EXPECT_LE(v.wait_ms, 31000);
    HttpResponse r = Response(429, "", {{"x-ratelimit-reset", std::to_string(now + 5)}});
    EXPECT_EQ(BrazeThrottleWaitMs(r, now), 5100);
    EXPECT_EQ(BrazeThrottleWaitMs(Response(429, "", {{"x-ratelimit-reset", std::to_string(now - 5)}}), now),
              100);
    EXPECT_EQ(BrazeThrottleWaitMs(Response(429), now), 1000);
    EXPECT_EQ(
        BrazeThrottleWaitMs(Response(429, "", {{"x-ratelimit-reset", std::to_string(now + 99999)}}), now),
        3600000);
}

TEST(BrazeConnector, ConnectionAnswers) {
    BrazeConnector c(Settings(), Target());
    std::vector<Change> changes = {User(1, "u1")};
    auto p = PrepareAll(c, changes);
    EXPECT_EQ(c.Interpret(p.requests[0], changes, Response(401, "{\"message\": \"Invalid API key\"}")).kind,
              Verdict::Kind::AuthExpired);
    auto forbidden = c.Interpret(p.requests[0], changes, Response(403, "{\"message\": \"no permission\"}"));
    EXPECT_EQ(forbidden.kind, Verdict::Kind::Fatal);
    EXPECT_EQ(forbidden.error.find("braze-rest-secret"), std::string::npos);
    EXPECT_EQ(c.Interpret(p.requests[0], changes, Response(503)).kind, Verdict::Kind::Retry);
    EXPECT_EQ(c.Interpret(p.requests[0], changes, Response(0)).kind, Verdict::Kind::Retry);
}

TEST(BrazeTime, FormatsDateTimesInUtc) {
    EXPECT_EQ(BrazeTime("2024-05-01 12:00:00+00"), "2024-05-01T12:00:00.000Z");
    EXPECT_EQ(BrazeTime("2024-01-01T01:30:00.25-02:00"), "2024-01-01T03:30:00.250Z");
    EXPECT_EQ(BrazeTime("1969-12-31T23:59:59Z"), "1969-12-31T23:59:59.000Z");
    EXPECT_EQ(BrazeTime("2024-05-01"), "2024-05-01");
    EXPECT_EQ(BrazeTime("hello"), "hello");
    EXPECT_EQ(BrazeTime("2024-13-01T00:00:00Z"), "2024-13-01T00:00:00Z");
}
