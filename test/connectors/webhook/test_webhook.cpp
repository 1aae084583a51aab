#include "core/connectors/webhook/webhook.hpp"

#include "test_util.hpp"

#include <gtest/gtest.h>
#include <rapidjson/document.h>

#include <set>
#include <string>
#include <vector>

using namespace revetl;
using revetl_test::Contains;
using revetl_test::MakeChange;
using revetl_test::NotContains;

namespace {

std::vector<Change> SampleChanges() {
    return {
        MakeChange(Change::Op::Add, "{\"id\": 1}", "{\"email\": \"a@example.com\", \"n\": 1}", 111),
        MakeChange(Change::Op::Change, "{\"id\": 2}", "{\"email\": \"b@example.com\"}", -222, "crm-2"),
        MakeChange(Change::Op::Remove, "{\"id\": 3}", "", 0, "crm-3"),
    };
}

DestinationSettings Settings() {
    DestinationSettings s;
    s.url = "https://hooks.example.com/revetl?k=v";
    s.method = "PUT";
    s.timeout_ms = 1234;
    s.connect_timeout_ms = 567;
    s.headers = {{"X-Source", "revetl"}, {"X-Team", "data"}};
    return s;
}

BatchContext Context() {
    BatchContext c;
    c.sync_id = 42;
    c.sync_name = "crm \"contacts\" \xC3\xA9";
    c.run_id = 9000000000LL;
    c.batch_no = 3;
    return c;
}

std::vector<std::string> Values(const HttpRequest &r, const std::string &name) {
    std::vector<std::string> out;
    for (const auto &h : r.headers)
        if (h.first == name)
            out.push_back(h.second);
    return out;
}

HttpResponse Response(long status, const std::string &body) {
    HttpResponse r;
    r.status = status;
    r.body = body;
    return r;
}

} // namespace

TEST(OpName, Names) {
    EXPECT_STREQ(OpName(Change::Op::Add), "upsert");
    EXPECT_STREQ(OpName(Change::Op::Change), "upsert");
    EXPECT_STREQ(OpName(Change::Op::Remove), "delete");
}

TEST(BuildWebhookRequest, BodyIsValidJsonWithTheDocumentedShape) {
    std::vector<Change> changes = SampleChanges();
    HttpRequest req = BuildWebhookRequest(Settings(), Context(), changes);

    rapidjson::Document doc;
    doc.Parse(req.body.c_str(), req.body.size());
    ASSERT_FALSE(doc.HasParseError()) << req.body;
    ASSERT_TRUE(doc.IsObject());
    EXPECT_EQ(doc.MemberCount(), 4u);
    ASSERT_TRUE(doc["sync"].IsString());
    EXPECT_EQ(std::string(doc["sync"].GetString()), "crm \"contacts\" \xC3\xA9");
    ASSERT_TRUE(doc["run_id"].IsInt64());
    EXPECT_EQ(doc["run_id"].GetInt64(), 9000000000LL);
    ASSERT_TRUE(doc["batch"].IsInt64());
    EXPECT_EQ(doc["batch"].GetInt64(), 3);
    ASSERT_TRUE(doc["records"].IsArray());
    const auto &records = doc["records"];
    ASSERT_EQ(records.Size(), 3u);

    // Upsert with no destination id.
    const auto &r0 = records[0];
    EXPECT_STREQ(r0["op"].GetString(), "upsert");
    ASSERT_TRUE(r0["key"].IsObject());
    EXPECT_EQ(r0["key"]["id"].GetInt(), 1);
    ASSERT_TRUE(r0["data"].IsObject());
    EXPECT_STREQ(r0["data"]["email"].GetString(), "a@example.com");
    EXPECT_EQ(r0["data"]["n"].GetInt(), 1);
    EXPECT_FALSE(r0.HasMember("id"));
    ASSERT_TRUE(r0["idempotency_key"].IsString());
    EXPECT_EQ(std::string(r0["idempotency_key"].GetString()), RecordIdempotencyKey(42, changes[0]));
    EXPECT_EQ(r0.MemberCount(), 4u);

    // Upsert of a known record: its destination id as "id".
    const auto &r1 = records[1];
    EXPECT_STREQ(r1["op"].GetString(), "upsert");
    EXPECT_EQ(r1["key"]["id"].GetInt(), 2);
    EXPECT_STREQ(r1["data"]["email"].GetString(), "b@example.com");
    ASSERT_TRUE(r1.HasMember("id"));
    EXPECT_STREQ(r1["id"].GetString(), "crm-2");
    EXPECT_EQ(std::string(r1["idempotency_key"].GetString()), RecordIdempotencyKey(42, changes[1]));

    // Delete: no data.
    const auto &r2 = records[2];
    EXPECT_STREQ(r2["op"].GetString(), "delete");
    EXPECT_EQ(r2["key"]["id"].GetInt(), 3);
    EXPECT_FALSE(r2.HasMember("data"));
    EXPECT_STREQ(r2["id"].GetString(), "crm-3");
    EXPECT_EQ(std::string(r2["idempotency_key"].GetString()), RecordIdempotencyKey(42, changes[2]));
}

TEST(BuildWebhookRequest, WriteOpNamesAddedAndChangedRows) {
    EXPECT_EQ(BatchContext().write_op, "upsert");
    for (const char *op : {"insert", "update"}) {
        SCOPED_TRACE(op);
        BatchContext ctx = Context();
        ctx.write_op = op;
        HttpRequest req = BuildWebhookRequest(Settings(), ctx, SampleChanges());
        rapidjson::Document doc;
        doc.Parse(req.body.c_str(), req.body.size());
        ASSERT_FALSE(doc.HasParseError()) << req.body;
        const auto &records = doc["records"];
        ASSERT_EQ(records.Size(), 3u);
        EXPECT_STREQ(records[0]["op"].GetString(), op);
        EXPECT_STREQ(records[1]["op"].GetString(), op);
        // Removals are always deletes.
        EXPECT_STREQ(records[2]["op"].GetString(), "delete");
    }
}

TEST(BuildWebhookRequest, EmptyBatch) {
    HttpRequest req = BuildWebhookRequest(Settings(), Context(), {});
    rapidjson::Document doc;
    doc.Parse(req.body.c_str(), req.body.size());
    ASSERT_FALSE(doc.HasParseError()) << req.body;
    ASSERT_TRUE(doc["records"].IsArray());
    EXPECT_EQ(doc["records"].Size(), 0u);
}

TEST(BuildWebhookRequest, RequestSettings) {
    HttpRequest req = BuildWebhookRequest(Settings(), Context(), SampleChanges());
    EXPECT_EQ(req.method, "PUT");
    EXPECT_EQ(req.url, "https://hooks.example.com/revetl?k=v");
    EXPECT_EQ(req.timeout_ms, 1234);
    EXPECT_EQ(req.connect_timeout_ms, 567);
}

TEST(BuildWebhookRequest, Headers) {
    DestinationSettings s = Settings();
    s.credentials.token = "tok-abc";
    HttpRequest req = BuildWebhookRequest(s, Context(), SampleChanges());
    ASSERT_EQ(req.headers.size(), 5u);
    EXPECT_EQ(req.headers[0], std::make_pair(std::string("Content-Type"), std::string("application/json")));
    EXPECT_EQ(req.headers[1].first, "Idempotency-Key");
    EXPECT_EQ(req.headers[1].second.size(), 32u);
    EXPECT_EQ(req.headers[1].second.find_first_not_of("0123456789abcdef"), std::string::npos);
    EXPECT_EQ(req.headers[2], std::make_pair(std::string("X-Source"), std::string("revetl")));
    EXPECT_EQ(req.headers[3], std::make_pair(std::string("X-Team"), std::string("data")));
    EXPECT_EQ(req.headers[4], std::make_pair(std::string("Authorization"), std::string("Bearer tok-abc")));
    // The token is a header, never part of the body.
    EXPECT_TRUE(NotContains(req.body, "tok-abc"));
}

TEST(BuildWebhookRequest, NoAuthorizationWithoutToken) {
    DestinationSettings s = Settings();
    s.credentials.token.clear();
    HttpRequest req = BuildWebhookRequest(s, Context(), SampleChanges());
    EXPECT_TRUE(Values(req, "Authorization").empty());
    EXPECT_EQ(req.headers.size(), 4u);
    for (const auto &h : req.headers)
        EXPECT_TRUE(NotContains(h.second, "Bearer"));
}

TEST(BuildWebhookRequest, BatchIdempotencyKeyIsStableAndContentBound) {
    std::vector<Change> changes = SampleChanges();
    auto key = [](const DestinationSettings &s, const BatchContext &ctx, const std::vector<Change> &ch) {
        auto v = Values(BuildWebhookRequest(s, ctx, ch), "Idempotency-Key");
        return v.size() == 1 ? v[0] : std::string("<missing>");
    };
    std::string k = key(Settings(), Context(), changes);
    EXPECT_EQ(k, key(Settings(), Context(), changes));
    // A retry in a later run of the same rows is the same request.
    BatchContext later = Context();
    later.run_id++;
    later.batch_no = 7;
    EXPECT_EQ(k, key(Settings(), later, changes));
    // Different rows, a different key.
    std::vector<Change> changed = changes;
    changed[0].row_hash++;
    EXPECT_NE(k, key(Settings(), Context(), changed));
    changed = changes;
    changed.pop_back();
    EXPECT_NE(k, key(Settings(), Context(), changed));
    BatchContext other_sync = Context();
    other_sync.sync_id = 43;
    EXPECT_NE(k, key(Settings(), other_sync, changes));
}

TEST(RecordIdempotencyKey, StableForEqualInputs) {
    Change a = MakeChange(Change::Op::Add, "{\"id\": 1}", "{\"x\": 1}", 7);
    Change b = a;
    std::string ka = RecordIdempotencyKey(1, a);
    EXPECT_EQ(ka, RecordIdempotencyKey(1, b));
    EXPECT_EQ(ka.size(), 32u);
    EXPECT_EQ(ka.find_first_not_of("0123456789abcdef"), std::string::npos);
    // The payload text and the destination id are not part of it: the
    // row_hash stands for the row version.
    b.payload = "{\"x\": 2}";
    b.dest_id = "d";
    EXPECT_EQ(ka, RecordIdempotencyKey(1, b));
    // Add and Change are both upserts of the same version.
    b.op = Change::Op::Change;
    EXPECT_EQ(ka, RecordIdempotencyKey(1, b));
}

TEST(RecordIdempotencyKey, DiffersWhenAnyPartChanges) {
    Change base = MakeChange(Change::Op::Add, "{\"id\": 1}", "{}", 7);
    std::set<std::string> keys;
    keys.insert(RecordIdempotencyKey(1, base));

    Change c = base;
    c.row_hash = 8;
    keys.insert(RecordIdempotencyKey(1, c));
    c = base;
    c.key = "{\"id\": 2}";
    keys.insert(RecordIdempotencyKey(1, c));
    c = base;
    c.op = Change::Op::Remove;
    keys.insert(RecordIdempotencyKey(1, c));
    keys.insert(RecordIdempotencyKey(2, base));
    EXPECT_EQ(keys.size(), 5u);

    // A delete does not depend on the (meaningless) row hash.
    Change d1 = MakeChange(Change::Op::Remove, "{\"id\": 1}", "", 1);
    Change d2 = MakeChange(Change::Op::Remove, "{\"id\": 1}", "", 2);
    EXPECT_EQ(RecordIdempotencyKey(1, d1), RecordIdempotencyKey(1, d2));
    // The separator keeps sync id and key from running together.
    Change k1 = MakeChange(Change::Op::Add, "2{}", "{}", 0);
    Change k2 = MakeChange(Change::Op::Add, "{}", "{}", 0);
    EXPECT_NE(RecordIdempotencyKey(1, k1), RecordIdempotencyKey(12, k2));
}

TEST(InterpretWebhookResponse, OkAcceptsAll) {
    auto out = InterpretWebhookResponse(Response(200, "{}"), 3);
    ASSERT_EQ(out.size(), 3u);
    for (const auto &o : out) {
        EXPECT_TRUE(o.accepted);
        EXPECT_EQ(o.http_status, 200);
        EXPECT_EQ(o.reason, "");
        EXPECT_EQ(o.error_code, "");
        EXPECT_EQ(o.dest_id, "");
    }
    // Any 2xx, and a body that is not JSON (or empty), is still success.
    out = InterpretWebhookResponse(Response(204, ""), 2);
    ASSERT_EQ(out.size(), 2u);
    EXPECT_TRUE(out[0].accepted && out[1].accepted);
    EXPECT_EQ(out[1].http_status, 204);
    out = InterpretWebhookResponse(Response(200, "OK"), 1);
    EXPECT_TRUE(out[0].accepted);
    EXPECT_TRUE(InterpretWebhookResponse(Response(200, "{}"), 0).empty());
}

TEST(InterpretWebhookResponse, MultiStatusRejectsListedIndices) {
    std::string body = R"({"rejected": [
        {"index": 1, "reason": "invalid email", "code": "E_EMAIL"},
        {"index": 3},
        {"index": 99, "reason": "out of range"},
        {"index": 4, "reason": "one past the end"},
        {"index": -1, "reason": "negative"},
        {"index": "0", "reason": "string index"},
        {"index": 1.5, "reason": "fraction"},
        {"reason": "no index"},
        "not an object",
        7,
        {"index": 2, "reason": 12, "code": 409}
    ]})";
    auto out = InterpretWebhookResponse(Response(207, body), 4);
    ASSERT_EQ(out.size(), 4u);
    EXPECT_TRUE(out[0].accepted);
    EXPECT_EQ(out[0].reason, "");
    EXPECT_FALSE(out[1].accepted);
    EXPECT_EQ(out[1].reason, "invalid email");
    EXPECT_EQ(out[1].error_code, "E_EMAIL");
    EXPECT_EQ(out[1].http_status, 207);
    EXPECT_FALSE(out[2].accepted);
    EXPECT_EQ(out[2].reason, "12");
    EXPECT_EQ(out[2].error_code, "409");
    EXPECT_FALSE(out[3].accepted);
    EXPECT_EQ(out[3].reason, "rejected by the destination");
    EXPECT_EQ(out[3].error_code, "");
}

TEST(InterpretWebhookResponse, RejectedNotAnArrayIsIgnored) {
    auto out = InterpretWebhookResponse(Response(200, R"({"rejected": {"index": 0}})"), 2);
    EXPECT_TRUE(out[0].accepted);
    EXPECT_TRUE(out[1].accepted);
    out = InterpretWebhookResponse(Response(200, R"([{"index": 0}])"), 1);
    EXPECT_TRUE(out[0].accepted);
}

TEST(InterpretWebhookResponse, IdsFillDestinationIds) {
    auto out = InterpretWebhookResponse(Response(200, R"({"ids": ["a-1", 42, null, "d-4", "extra"]})"), 4);
    ASSERT_EQ(out.size(), 4u);
    EXPECT_EQ(out[0].dest_id, "a-1");
    EXPECT_EQ(out[1].dest_id, "42");
    EXPECT_EQ(out[2].dest_id, "");
    EXPECT_EQ(out[3].dest_id, "d-4");
    for (const auto &o : out)
        EXPECT_TRUE(o.accepted);
    // Fewer ids than records.
    out = InterpretWebhookResponse(Response(200, R"({"ids": ["only"]})"), 3);
    EXPECT_EQ(out[0].dest_id, "only");
    EXPECT_EQ(out[1].dest_id, "");
    // Ids are bounded.
    std::string long_id(500, 'i');
    out = InterpretWebhookResponse(Response(200, "{\"ids\": [\"" + long_id + "\"]}"), 1);
    EXPECT_EQ(out[0].dest_id, std::string(200, 'i'));
}

TEST(InterpretWebhookResponse, ClientErrorWithJsonRejectsAllWithReasonAndCode) {
    auto out =
        InterpretWebhookResponse(Response(400, R"({"error": "schema mismatch", "code": "E_SCHEMA"})"), 3);
    ASSERT_EQ(out.size(), 3u);
    for (const auto &o : out) {
        EXPECT_FALSE(o.accepted);
        EXPECT_EQ(o.http_status, 400);
        EXPECT_EQ(o.reason, "schema mismatch");
        EXPECT_EQ(o.error_code, "E_SCHEMA");
    }
    out = InterpretWebhookResponse(Response(422, R"({"message": "bad things", "code": 17})"), 1);
    EXPECT_EQ(out[0].reason, "bad things");
    EXPECT_EQ(out[0].error_code, "17");
    EXPECT_EQ(out[0].http_status, 422);
    // "error" wins over "message".
    out = InterpretWebhookResponse(Response(400, R"({"message": "m", "error": "e"})"), 1);
    EXPECT_EQ(out[0].reason, "e");
    // A 4xx never accepts rows, even if the body lists ids.
    out = InterpretWebhookResponse(Response(409, R"({"error": "x", "ids": ["1"]})"), 1);
    EXPECT_FALSE(out[0].accepted);
    EXPECT_EQ(out[0].dest_id, "");
}

TEST(InterpretWebhookResponse, NonJsonClientErrorBodyIsTheReason) {
    auto out = InterpretWebhookResponse(Response(404, "Not Found\r\nno such hook"), 2);
    for (const auto &o : out) {
        EXPECT_FALSE(o.accepted);
        EXPECT_EQ(o.http_status, 404);
        EXPECT_EQ(o.reason, "Not Found  no such hook");
        EXPECT_EQ(o.error_code, "");
    }
    // JSON without error/message: the whole body.
    out = InterpretWebhookResponse(Response(400, R"({"detail": "x"})"), 1);
    EXPECT_EQ(out[0].reason, R"({"detail": "x"})");
    // No body at all.
    out = InterpretWebhookResponse(Response(403, ""), 1);
    EXPECT_EQ(out[0].reason, "HTTP 403");
    // A redirect is not followed; it is a refusal.
    out = InterpretWebhookResponse(Response(301, ""), 1);
    EXPECT_FALSE(out[0].accepted);
    EXPECT_EQ(out[0].reason, "HTTP 301");
}

TEST(InterpretWebhookResponse, ReasonsAndCodesAreBounded) {
    std::string huge(5000, 'r');
    auto out = InterpretWebhookResponse(Response(400, huge), 1);
    EXPECT_EQ(out[0].reason, std::string(1000, 'r'));
    out = InterpretWebhookResponse(
        Response(400, "{\"error\": \"" + huge + "\", \"code\": \"" + std::string(300, 'c') + "\"}"), 1);
    EXPECT_EQ(out[0].reason, std::string(1000, 'r'));
    EXPECT_EQ(out[0].error_code, std::string(100, 'c'));
    out =
        InterpretWebhookResponse(Response(207, "{\"rejected\": [{\"index\": 0, \"reason\": \"" + huge +
                                                   "\\nx\", \"code\": \"" + std::string(300, 'c') + "\"}]}"),
                                 1);
    EXPECT_EQ(out[0].reason, std::string(1000, 'r'));
    EXPECT_EQ(out[0].error_code, std::string(100, 'c'));
}

TEST(Truncate, ShortTextUnchanged) {
    EXPECT_EQ(Truncate("hello", 10), "hello");
    EXPECT_EQ(Truncate("hello", 5), "hello");
    EXPECT_EQ(Truncate("", 5), "");
    EXPECT_EQ(Truncate("hello", 0), "");
    EXPECT_EQ(Truncate("hello", 3), "hel");
    EXPECT_EQ(Truncate("caf\xC3\xA9", 5), "caf\xC3\xA9");
}

TEST(Truncate, RemovesLineBreaksAndNul) {
    EXPECT_EQ(Truncate("a\nb\r\nc", 100), "a b  c");
    EXPECT_EQ(Truncate(std::string("a\0b", 3), 100), "a b");
    EXPECT_EQ(Truncate("line1\nline2", 6), "line1 ");
}

TEST(Truncate, DoesNotCutUtf8Sequences) {
    // "é" = C3 A9, "€" = E2 82 AC, "😀" = F0 9F 98 80
    EXPECT_EQ(Truncate("ab\xC3\xA9", 3), "ab");
    EXPECT_EQ(Truncate("a\xE2\x82\xAC", 2), "a");
    EXPECT_EQ(Truncate("a\xE2\x82\xAC", 3), "a");
    EXPECT_EQ(Truncate("a\xF0\x9F\x98\x80", 2), "a");
    EXPECT_EQ(Truncate("a\xF0\x9F\x98\x80", 3), "a");
    EXPECT_EQ(Truncate("a\xF0\x9F\x98\x80", 4), "a");
    EXPECT_EQ(Truncate("a\xF0\x9F\x98\x80", 5), "a\xF0\x9F\x98\x80");
    EXPECT_EQ(Truncate("\xE2\x82\xAC", 1), "");
}

// Every cut must leave valid UTF-8 and must keep every complete character
// that fits in max_bytes.
TEST(Truncate, KeepsCompleteCharactersThatFit) {
    // A character that ends exactly at max_bytes is kept.
    EXPECT_EQ(Truncate("\xC3\xA9z", 2), "\xC3\xA9");
    EXPECT_EQ(Truncate("a\xE2\x82\xAC!", 4), "a\xE2\x82\xAC");
    EXPECT_EQ(Truncate("a\xF0\x9F\x98\x80!", 5), "a\xF0\x9F\x98\x80");
}

TEST(Truncate, ResultIsAlwaysValidUtf8Prefix) {
    std::string text = "x\xC3\xA9y\xE2\x82\xAC\xF0\x9F\x98\x80z";
    auto valid = [](const std::string &s) {
        size_t i = 0;
        while (i < s.size()) {
            unsigned char c = static_cast<unsigned char>(s[i]);
            size_t len = c < 0x80             ? 1
                         : (c & 0xE0) == 0xC0 ? 2
                         : (c & 0xF0) == 0xE0 ? 3
                         : (c & 0xF8) == 0xF0 ? 4
                                              : 0;
            if (len == 0 || i + len > s.size())
                return false;
            for (size_t k = 1; k < len; k++)
                if ((static_cast<unsigned char>(s[i + k]) & 0xC0) != 0x80)
                    return false;
            i += len;
        }
        return true;
    };
    for (size_t n = 0; n <= text.size() + 1; n++) {
        std::string t = Truncate(text, n);
        EXPECT_LE(t.size(), n);
        EXPECT_TRUE(valid(t)) << "max_bytes " << n;
        EXPECT_EQ(text.compare(0, t.size(), t), 0) << "not a prefix at max_bytes " << n;
    }
}
