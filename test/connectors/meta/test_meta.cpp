// The Meta Custom Audiences connector without a network: the target checks
// (AUDIENCE only, Meta's schema keys), the form bodies of adds, removals and
// the DELETE-then-POST of a changed member, sessions across the calls of a
// run, and what it makes of Meta's answers (num_received, the Graph error
// envelope: token refused, throttling codes, an audience it cannot edit).
#include "core/connectors/meta/meta.hpp"

#include "core/common/encoding.hpp"
#include "core/common/error.hpp"
#include "core/connectors/registry.hpp"

#include <gtest/gtest.h>
#include <rapidjson/document.h>

#include <string>
#include <vector>

using namespace revetl;

namespace {

const std::string kA(64, 'a');
const std::string kB(64, 'b');
const std::string kC(64, 'c');

DestinationSettings Settings() {
    DestinationSettings s;
    s.type = "meta";
    s.url = "https://graph.facebook.com/";
    s.credentials.token = "EAAB-meta-secret-token";
    return s;
}

SyncTarget Target(std::vector<std::string> fields = {"EMAIL", "extern_id"}) {
    SyncTarget t;
    t.mode = "audience";
    t.audience = "23851234567890";
    t.map_fields = std::move(fields);
    return t;
}

Change Member(int64_t seq, const std::string &email, const std::string &extern_id,
              Change::Op op = Change::Op::Add, const std::string &dest_id = "") {
    Change c;
    c.seq = seq;
    c.op = op;
    c.key = "{\"id\": " + std::to_string(seq) + "}";
    c.payload = "{\"EMAIL\": \"" + email + "\", \"extern_id\": \"" + extern_id + "\"}";
    c.dest_id = dest_id;
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

std::string Id(const std::string &email, const std::string &extern_id) {
    return "{\"EMAIL\":\"" + email + "\",\"EXTERN_ID\":\"" + extern_id + "\"}";
}

// The decoded form field `name` of a body.
std::string Field(const std::string &body, const std::string &name) {
    size_t at = 0;
    while (at < body.size()) {
        size_t amp = body.find('&', at);
        if (amp == std::string::npos)
            amp = body.size();
        std::string pair = body.substr(at, amp - at);
        size_t eq = pair.find('=');
        if (pair.substr(0, eq) == name) {
            std::string v = pair.substr(eq + 1), out;
            for (size_t i = 0; i < v.size(); i++) {
                if (v[i] == '%' && i + 2 < v.size()) {
                    out += static_cast<char>(std::stoi(v.substr(i + 1, 2), nullptr, 16));
                    i += 2;
                } else {
                    out += v[i] == '+' ? ' ' : v[i];
                }
            }
            return out;
        }
        at = amp + 1;
    }
    return {};
}

struct Prepared {
    std::vector<PreparedRequest> requests;
    std::vector<std::pair<size_t, RowOutcome>> immediate;
};

Prepared PrepareAll(MetaConnector &c, const std::vector<Change> &changes, int64_t planned = 0,
                    int64_t run_id = 7) {
    Prepared p;
    std::vector<size_t> rows;
    for (size_t i = 0; i < changes.size(); i++)
        rows.push_back(i);
    BatchContext ctx;
    ctx.sync_id = 3;
    ctx.run_id = run_id;
    ctx.planned_rows = planned;
    p.requests = c.Prepare(ctx, changes, rows, p.immediate);
    return p;
}

HttpResponse Answer(long status, const std::string &body) {
    HttpResponse r;
    r.status = status;
    r.body = body;
    return r;
}

std::string Received(size_t n, size_t invalid = 0) {
    return "{\"audience_id\":\"23851234567890\",\"num_received\":" + std::to_string(n) +
           ",\"num_invalid_entries\":" + std::to_string(invalid) + ",\"invalid_entry_samples\":{}}";
}

std::string GraphError(int code, int subcode = 0, const std::string &type = "OAuthException") {
    return "{\"error\":{\"message\":\"(#" + std::to_string(code) + ") refused\",\"type\":\"" + type +
           "\",\"code\":" + std::to_string(code) +
           (subcode ? ",\"error_subcode\":" + std::to_string(subcode) : std::string()) +
           ",\"fbtrace_id\":\"AbC123\"}}";
}

} // namespace

TEST(Meta, Registered) {
    const ConnectorSpec *spec = FindSpec("meta");
    ASSERT_NE(spec, nullptr);
    EXPECT_TRUE(spec->audience.supported);
    EXPECT_TRUE(spec->audience.numeric);
    EXPECT_TRUE(spec->audience.every_field_identifies);
    EXPECT_TRUE(spec->audience.hashed_identifiers);
    EXPECT_TRUE(spec->audience.unhashed("extern_id"));
    EXPECT_TRUE(spec->audience.unhashed("MADID"));
    EXPECT_FALSE(spec->audience.unhashed("EMAIL"));
    EXPECT_EQ(spec->max_batch_size, 10000);
    ASSERT_NE(spec->ServerOption("api_version"), nullptr);
    EXPECT_EQ(spec->ServerOption("api_version")->default_value, "v25.0");
}

TEST(Meta, TargetChecks) {
    const ConnectorSpec &spec = MetaSpec();
    SyncTarget t = Target();
    EXPECT_NO_THROW(spec.check_target(t, {}, "s", "srv"));
    t.mode = "upsert";
    try {
        spec.check_target(t, {}, "s", "srv");
        FAIL();
    } catch (const Error &e) {
        EXPECT_NE(std::string(e.what()).find("cannot use mode upsert"), std::string::npos);
        EXPECT_NE(e.hint().find("MODE AUDIENCE"), std::string::npos);
    }
    t = Target({"EMAIL", "external_id"});
    try {
        spec.check_target(t, {}, "s", "srv");
        FAIL();
    } catch (const Error &e) {
        EXPECT_NE(std::string(e.what()).find("not a key of Meta's audience schema"), std::string::npos);
        EXPECT_EQ(e.hint(), "Perhaps you meant \"EXTERN_ID\".");
    }
    EXPECT_THROW(spec.check_target(Target({"email", "EMAIL"}), {}, "s", "srv"), Error);
    EXPECT_THROW(spec.check_target(Target({}), {}, "s", "srv"), Error);
    // The version option.
    EXPECT_NO_THROW(spec.check_server({{"type", "meta"}, {"api_version", "v26.0"}}));
    EXPECT_THROW(spec.check_server({{"type", "meta"}, {"api_version", "25"}}), Error);
    EXPECT_THROW(spec.check_server({{"type", "meta"}, {"api_version", "v25.0/../x"}}), Error);
}

TEST(Meta, AddsGoInOnePostWithoutSession) {
    MetaConnector c(Settings(), Target());
    std::vector<Change> changes = {Member(1, kA, "c1"), Member(2, kB, "c2")};
    Prepared p = PrepareAll(c, changes, 2);
    ASSERT_EQ(p.requests.size(), 1u);
    const HttpRequest &r = p.requests[0].http;
    EXPECT_EQ(r.method, "POST");
    EXPECT_EQ(r.url, "https://graph.facebook.com/v25.0/23851234567890/users");
    EXPECT_EQ(Field(r.body, "payload"), "{\"schema\":[\"EMAIL\",\"EXTERN_ID\"],\"data\":[[\"" + kA +
                                            "\",\"c1\"],[\"" + kB + "\",\"c2\"]]}");
    EXPECT_EQ(Field(r.body, "session"), "");
    // The token goes in Authorization, never in the URL or body.
    bool bearer = false;
    for (const auto &h : r.headers)
        bearer = bearer || (h.first == "Authorization" && h.second == "Bearer EAAB-meta-secret-token");
    EXPECT_TRUE(bearer);
    EXPECT_EQ(r.body.find("EAAB"), std::string::npos);

    Verdict v = c.Interpret(p.requests[0], changes, Answer(200, Received(2)));
    EXPECT_EQ(v.kind, Verdict::Kind::Done);
    ASSERT_EQ(v.rows.size(), 2u);
    EXPECT_TRUE(v.rows[0].accepted);
    EXPECT_EQ(v.rows[0].dest_id, Id(kA, "c1"));
}

TEST(Meta, RemovalsByKeptIdentifiersAndChangedMembersSwap) {
    MetaConnector c(Settings(), Target());
    std::vector<Change> changes = {
        Removal(1, Id(kA, "c1")), Member(2, kC, "c2", Change::Op::Change, Id(kB, "c2")), Member(3, kA, "c3")};
    Prepared p = PrepareAll(c, changes, 3);
    ASSERT_EQ(p.requests.size(), 2u);
    EXPECT_EQ(p.requests[0].http.method, "DELETE");
    EXPECT_EQ(p.requests[0].flow.step, MetaConnector::kSwap);
    EXPECT_EQ(Field(p.requests[0].http.body, "payload"),
              "{\"schema\":[\"EMAIL\",\"EXTERN_ID\"],\"data\":[[\"" + kA + "\",\"c1\"],[\"" + kB +
                  "\",\"c2\"]]}");
    EXPECT_EQ(p.requests[1].http.method, "POST");
    // Two POSTs in this run (the add, and the swap's): they form a session.
    rapidjson::Document s;
    const std::string session = Field(p.requests[1].http.body, "session");
    s.Parse(session.c_str());
    ASSERT_TRUE(s.IsObject()) << session;
    EXPECT_EQ(s["session_id"].GetInt64(), MetaConnector::SessionId(3, 7, "add"));
    EXPECT_EQ(s["batch_seq"].GetInt(), 1);
    EXPECT_FALSE(s["last_batch_flag"].GetBool());
    EXPECT_EQ(s["estimated_num_total"].GetInt(), 3);
    // One DELETE: no session.
    EXPECT_EQ(Field(p.requests[0].http.body, "session"), "");

    Verdict v = c.Interpret(p.requests[0], changes, Answer(200, Received(2)));
    ASSERT_EQ(v.kind, Verdict::Kind::Continue);
    ASSERT_TRUE(v.next);
    EXPECT_EQ(v.next->rows, std::vector<size_t>{1});
    EXPECT_EQ(v.next->http.method, "POST");
    EXPECT_EQ(Field(v.next->http.body, "payload"),
              "{\"schema\":[\"EMAIL\",\"EXTERN_ID\"],\"data\":[[\"" + kC + "\",\"c2\"]]}");
    s.Parse(Field(v.next->http.body, "session").c_str());
    EXPECT_EQ(s["batch_seq"].GetInt(), 2);
    EXPECT_TRUE(s["last_batch_flag"].GetBool());
    Verdict after = c.Interpret(*v.next, changes, Answer(200, Received(1)));
    EXPECT_EQ(after.kind, Verdict::Kind::Done);
    EXPECT_EQ(after.rows[0].dest_id, Id(kC, "c2"));
}

TEST(Meta, RunOfManyBatchesIsOneSessionPerKind) {
    MetaConnector c(Settings(), Target());
    // Batch 1 of a run of 3 rows.
    std::vector<Change> first = {Member(1, kA, "c1"), Removal(2, Id(kB, "c2"))};
    Prepared p1 = PrepareAll(c, first, 3);
    ASSERT_EQ(p1.requests.size(), 2u);
    std::vector<Change> second = {Member(3, kC, "c3")};
    Prepared p2 = PrepareAll(c, second, 3);
    ASSERT_EQ(p2.requests.size(), 1u);
    rapidjson::Document a, b, d;
    a.Parse(Field(p1.requests[1].http.body, "session").c_str());
    b.Parse(Field(p2.requests[0].http.body, "session").c_str());
    d.Parse(Field(p1.requests[0].http.body, "session").c_str());
    ASSERT_TRUE(a.IsObject() && b.IsObject() && d.IsObject());
    EXPECT_EQ(a["session_id"].GetInt64(), b["session_id"].GetInt64());
    EXPECT_NE(a["session_id"].GetInt64(), d["session_id"].GetInt64());
    EXPECT_EQ(a["batch_seq"].GetInt(), 1);
    EXPECT_FALSE(a["last_batch_flag"].GetBool());
    EXPECT_EQ(b["batch_seq"].GetInt(), 2);
    EXPECT_TRUE(b["last_batch_flag"].GetBool());
    EXPECT_GT(a["session_id"].GetInt64(), 0);
    EXPECT_LT(a["session_id"].GetInt64(), int64_t(1) << 53);
    // Another run, another session.
    EXPECT_NE(MetaConnector::SessionId(3, 7, "add"), MetaConnector::SessionId(3, 8, "add"));
}

TEST(Meta, TenThousandRowsACall) {
    MetaConnector c(Settings(), Target({"EMAIL"}));
    std::vector<Change> changes;
    for (int i = 1; i <= 10001; i++) {
        Change ch;
        ch.seq = i;
        ch.op = Change::Op::Add;
        ch.payload = "{\"EMAIL\": \"" + kA + "\"}";
        changes.push_back(ch);
    }
    Prepared p = PrepareAll(c, changes, 10001);
    ASSERT_EQ(p.requests.size(), 2u);
    EXPECT_EQ(p.requests[0].rows.size(), 10000u);
    EXPECT_EQ(p.requests[1].rows.size(), 1u);
    rapidjson::Document s;
    s.Parse(Field(p.requests[1].http.body, "session").c_str());
    ASSERT_TRUE(s.IsObject());
    EXPECT_EQ(s["batch_seq"].GetInt(), 2);
    EXPECT_TRUE(s["last_batch_flag"].GetBool());
}

TEST(Meta, RowsThatCannotBeSent) {
    MetaConnector c(Settings(), Target());
    std::vector<Change> changes = {Removal(1, ""), Member(2, kA, "")};
    Prepared p = PrepareAll(c, changes);
    EXPECT_TRUE(p.requests.empty());
    ASSERT_EQ(p.immediate.size(), 2u);
    EXPECT_EQ(p.immediate[0].second.error_code, "NO_RECORD_ID");
    EXPECT_EQ(p.immediate[1].second.error_code, "BAD_IDENTIFIER");
}

TEST(Meta, GraphErrors) {
    MetaConnector c(Settings(), Target());
    std::vector<Change> changes = {Member(1, kA, "c1")};
    Prepared p = PrepareAll(c, changes);
    ASSERT_EQ(p.requests.size(), 1u);
    const PreparedRequest &r = p.requests[0];

    Verdict v = c.Interpret(r, changes, Answer(400, GraphError(190, 463)));
    EXPECT_EQ(v.kind, Verdict::Kind::Fatal);
    EXPECT_NE(v.error.find("Meta error 190/463"), std::string::npos);
    EXPECT_NE(v.error.find("user mapping"), std::string::npos);
    EXPECT_NE(v.error.find("fbtrace_id AbC123"), std::string::npos);
    EXPECT_EQ(v.error.find("EAAB"), std::string::npos);
    EXPECT_EQ(c.Interpret(r, changes, Answer(403, GraphError(200))).kind, Verdict::Kind::Fatal);

    for (int code : {4, 17, 32, 613, 80003}) {
        Verdict t = c.Interpret(r, changes, Answer(400, GraphError(code)));
        EXPECT_EQ(t.kind, Verdict::Kind::Throttled) << code;
        EXPECT_GT(t.wait_ms, 0);
    }
    EXPECT_EQ(c.Interpret(r, changes, Answer(400, GraphError(100, 2446079))).kind, Verdict::Kind::Throttled);
    // The wait Meta announces wins over the backoff.
    HttpResponse usage = Answer(400, GraphError(80003, 2446079));
    usage.headers.emplace_back(
        "x-business-use-case-usage",
        "{\"99\":[{\"type\":\"custom_audience\",\"call_count\":100,\"total_cputime\":3,"
        "\"total_time\":4,\"estimated_time_to_regain_access\":2}]}");
    Verdict announced = c.Interpret(r, changes, usage);
    EXPECT_EQ(announced.kind, Verdict::Kind::Throttled);
    EXPECT_EQ(announced.wait_ms, 120000);
    EXPECT_NE(c.RunNote().find("peaked at 100% (custom_audience)"), std::string::npos);

    Verdict audience = c.Interpret(r, changes, Answer(400, GraphError(100, 33, "GraphMethodException")));
    EXPECT_EQ(audience.kind, Verdict::Kind::Fatal);
    EXPECT_NE(audience.error.find("custom audience 23851234567890"), std::string::npos);
    EXPECT_EQ(c.Interpret(r, changes, Answer(400, GraphError(2650, 1713230))).kind, Verdict::Kind::Fatal);

    EXPECT_EQ(c.Interpret(r, changes, Answer(500, GraphError(2))).kind, Verdict::Kind::Retry);
    EXPECT_EQ(c.Interpret(r, changes, Answer(0, "")).kind, Verdict::Kind::Retry);
    // A refusal of the call: every row carries Meta's message and code.
    Verdict refused = c.Interpret(r, changes, Answer(400, GraphError(100)));
    EXPECT_EQ(refused.kind, Verdict::Kind::Done);
    ASSERT_EQ(refused.rows.size(), 1u);
    EXPECT_FALSE(refused.rows[0].accepted);
    EXPECT_EQ(refused.rows[0].error_code, "GRAPH_100");
}

TEST(Meta, ReceivedCounts) {
    MetaConnector c(Settings(), Target());
    std::vector<Change> changes = {Member(1, kA, "c1"), Member(2, kB, "c2")};
    Prepared p = PrepareAll(c, changes);
    // Fewer received than sent: sent again.
    EXPECT_EQ(c.Interpret(p.requests[0], changes, Answer(200, Received(1))).kind, Verdict::Kind::Retry);
    EXPECT_EQ(c.Interpret(p.requests[0], changes, Answer(200, "{}")).kind, Verdict::Kind::Retry);
    // Invalid entries are counted, not mapped to rows (Meta names none).
    Verdict v = c.Interpret(p.requests[0], changes, Answer(200, Received(2, 1)));
    EXPECT_EQ(v.kind, Verdict::Kind::Done);
    EXPECT_TRUE(v.rows[0].accepted && v.rows[1].accepted);
    EXPECT_NE(c.RunNote().find("received 2 rows, of which it counted 1 as invalid"), std::string::npos);
    // Counts written as strings are read too.
    EXPECT_EQ(c.Interpret(p.requests[0], changes,
                          Answer(200, "{\"num_received\":\"2\",\"num_invalid_entries\":\"0\"}"))
                  .kind,
              Verdict::Kind::Done);
}

TEST(Meta, SchemaKeys) {
    EXPECT_EQ(MetaSchemaKey("email"), "EMAIL");
    EXPECT_EQ(MetaSchemaKey("Extern_Id"), "EXTERN_ID");
    EXPECT_EQ(MetaSchemaKey("APPUID"), ""); // needs app_ids: not offered
    EXPECT_EQ(MetaSchemaKey("email_sha256"), "");
    EXPECT_FALSE(MetaUnhashedKey("PHONE"));
}
