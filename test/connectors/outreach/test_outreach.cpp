// The Outreach connector's per-row flows (lookup by filter, then PATCH the
// hit or POST a new record; PATCH by the kept id, falling back to the lookup
// on 404; DELETE by the kept id), its JSON:API documents, and how answers
// map back: JSON:API error objects, 401 auth expired, 429 with Retry-After
// or X-RateLimit-Reset. The whole path against the mock is test_outreach.py.
#include "core/connectors/outreach/outreach.hpp"

#include "core/common/error.hpp"
#include "core/connectors/registry.hpp"

#include "test_util.hpp"

#include <gtest/gtest.h>

#include <string>
#include <vector>

using namespace revetl;
using revetl_test::Contains;

namespace {

DestinationSettings Settings() {
    DestinationSettings s = ResolveDestinationSettings({{"type", "outreach"}}, {});
    s.credentials.oauth.client_id = "id";
    s.credentials.oauth.client_secret = "client-secret";
    s.credentials.oauth.refresh_token = "refresh-secret";
    s.credentials.oauth.token_url = "https://api.outreach.io/oauth/token";
    s.credentials.oauth_token = std::make_shared<OAuthToken>();
    s.credentials.oauth_token->access_token = "access-1";
    return s;
}

SyncTarget Target(const std::string &mode = "upsert", const std::string &object = "prospects",
                  const std::string &match_on = "") {
    SyncTarget t;
    t.object = object;
    t.mode = mode;
    t.match_on = match_on;
    return t;
}

Change Row(int64_t seq, const std::string &payload, Change::Op op = Change::Op::Add,
           const std::string &dest_id = "") {
    Change c;
    c.seq = seq;
    c.op = op;
    c.key = "{\"id\": " + std::to_string(seq) + "}";
    c.payload = payload;
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

} // namespace

TEST(Outreach, LookupThenCreateOrPatchByTheHit) {
    OutreachConnector o(Settings(), Target());
    std::vector<Change> changes = {Row(1, "{\"emails\": \"ada@example.com\", \"firstName\": \"Ada\"}")};
    std::vector<std::pair<size_t, RowOutcome>> immediate;
    auto reqs = o.Prepare(BatchContext{}, changes, All(changes), immediate);
    ASSERT_EQ(reqs.size(), 1u);
    const HttpRequest &lookup = reqs[0].http;
    EXPECT_EQ(lookup.method, "GET");
    EXPECT_EQ(
        lookup.url,
        "https://api.outreach.io/api/v2/prospects?filter%5Bemails%5D=ada%40example.com&page%5Bsize%5D=1");
    EXPECT_EQ(HeaderOf(lookup, "Accept"), "application/vnd.api+json");
    EXPECT_EQ(HeaderOf(lookup, "Authorization"), "Bearer access-1");

    // A miss: create, with emails as an array.
    Verdict miss = o.Interpret(reqs[0], changes, Answer(200, "{\"data\":[],\"meta\":{\"count\":0}}"));
    ASSERT_EQ(miss.kind, Verdict::Kind::Continue);
    EXPECT_EQ(miss.next->http.method, "POST");
    EXPECT_EQ(miss.next->http.url, "https://api.outreach.io/api/v2/prospects");
    EXPECT_EQ(HeaderOf(miss.next->http, "Content-Type"), "application/vnd.api+json");
    EXPECT_EQ(miss.next->http.body,
              "{\"data\":{\"type\":\"prospect\",\"attributes\":{\"emails\":[\"ada@example.com\"],"
              "\"firstName\":\"Ada\"}}}");
    PreparedRequest create = *miss.next;
    create.rows = {0};
    Verdict created = o.Interpret(
        create, changes, Answer(201, "{\"data\":{\"type\":\"prospect\",\"id\":23,\"attributes\":{}}}"));
    ASSERT_EQ(created.rows.size(), 1u);
    EXPECT_TRUE(created.rows[0].accepted);
    EXPECT_EQ(created.rows[0].dest_id, "23");

    // A hit: PATCH it by its id.
    Verdict hit = o.Interpret(reqs[0], changes, Answer(200, "{\"data\":[{\"type\":\"prospect\",\"id\":7}]}"));
    ASSERT_EQ(hit.kind, Verdict::Kind::Continue);
    EXPECT_EQ(hit.next->http.method, "PATCH");
    EXPECT_EQ(hit.next->http.url, "https://api.outreach.io/api/v2/prospects/7");
    EXPECT_TRUE(Contains(hit.next->http.body, "{\"data\":{\"type\":\"prospect\",\"id\":7,\"attributes\":"));

    // MODE UPDATE: a miss refuses the row.
    OutreachConnector u(Settings(), Target("update"));
    Verdict none = u.Interpret(reqs[0], changes, Answer(200, "{\"data\":[]}"));
    ASSERT_EQ(none.rows.size(), 1u);
    EXPECT_EQ(none.rows[0].error_code, "NOT_FOUND");
}

TEST(Outreach, KeptIdsPatchAndDeleteAndFallBackOn404) {
    OutreachConnector o(Settings(), Target("mirror", "accounts"));
    std::vector<Change> changes = {
        Row(1, "{\"customId\": \"c-1\", \"name\": \"New name\"}", Change::Op::Change, "95"),
        Row(2, "", Change::Op::Remove, "96"), Row(3, "", Change::Op::Remove, ""),
        Row(4, "{\"name\": \"no custom id\"}")};
    std::vector<std::pair<size_t, RowOutcome>> immediate;
    auto reqs = o.Prepare(BatchContext{}, changes, All(changes), immediate);
    ASSERT_EQ(reqs.size(), 2u);
    EXPECT_EQ(reqs[0].http.method, "PATCH");
    EXPECT_EQ(reqs[0].http.url, "https://api.outreach.io/api/v2/accounts/95");
    EXPECT_EQ(reqs[0].http.body,
              "{\"data\":{\"type\":\"account\",\"id\":95,\"attributes\":{\"customId\": \"c-1\", "
              "\"name\": \"New name\"}}}");
    EXPECT_EQ(reqs[1].http.method, "DELETE");
    EXPECT_EQ(reqs[1].http.url, "https://api.outreach.io/api/v2/accounts/96");
    ASSERT_EQ(immediate.size(), 2u);
    EXPECT_EQ(immediate[0].second.error_code, "NO_RECORD_ID");
    EXPECT_TRUE(immediate[0].second.unresolvable_removal);
    EXPECT_EQ(immediate[1].second.error_code, "NO_MATCH_VALUE");
    EXPECT_FALSE(immediate[1].second.unresolvable_removal);

    const std::string not_found =
        "{\"errors\":[{\"id\":\"resourceNotFound\",\"title\":\"Resource Not Found\"}]}";
    Verdict gone = o.Interpret(reqs[1], changes, Answer(404, not_found));
    ASSERT_EQ(gone.rows.size(), 1u);
    EXPECT_TRUE(gone.rows[0].accepted);
    Verdict again = o.Interpret(reqs[0], changes, Answer(404, not_found));
    ASSERT_EQ(again.kind, Verdict::Kind::Continue);
    EXPECT_EQ(again.next->http.url,
              "https://api.outreach.io/api/v2/accounts?filter%5BcustomId%5D=c-1&page%5Bsize%5D=1");
    Verdict deleted = o.Interpret(reqs[1], changes, Answer(204, ""));
    EXPECT_TRUE(deleted.rows[0].accepted);
}

TEST(Outreach, ErrorsRateLimitsAndAuth) {
    OutreachConnector o(Settings(), Target("insert"));
    std::vector<Change> changes = {Row(1, "{\"emails\": [\"a@x.com\"]}")};
    std::vector<std::pair<size_t, RowOutcome>> immediate;
    auto reqs = o.Prepare(BatchContext{}, changes, All(changes), immediate);
    ASSERT_EQ(reqs.size(), 1u);
    EXPECT_EQ(reqs[0].http.method, "POST"); // MODE INSERT does not look up
    Verdict invalid = o.Interpret(
        reqs[0], changes,
        Answer(
            422,
            "{\"errors\":[{\"id\":\"validationError\",\"title\":\"Validation Error\",\"detail\":\"Contact "
            "email hash has already been taken.\",\"source\":{\"pointer\":\"/data/attributes/emails\"}}]}"));
    ASSERT_EQ(invalid.rows.size(), 1u);
    EXPECT_EQ(invalid.rows[0].error_code, "validationError");
    EXPECT_EQ(invalid.rows[0].reason, "Contact email hash has already been taken. (/data/attributes/emails)");

    Verdict retry_after = o.Interpret(
        reqs[0], changes,
        Answer(429, "{\"errors\":[{\"id\":\"rateLimitExceeded\"}]}",
               {{"retry-after", "7"}, {"x-ratelimit-limit", "10000"}, {"x-ratelimit-remaining", "0"}}));
    EXPECT_EQ(retry_after.kind, Verdict::Kind::Throttled);
    EXPECT_EQ(retry_after.wait_ms, 7000);
    EXPECT_EQ(o.RunNote(), "Outreach X-RateLimit-Remaining 0/10000");
    Verdict reset = o.Interpret(reqs[0], changes, Answer(429, "{}", {{"x-ratelimit-reset", "30"}}));
    EXPECT_EQ(reset.wait_ms, 30000);

    Verdict expired = o.Interpret(reqs[0], changes, Answer(401, "{\"errors\":[{\"id\":\"unauthorized\"}]}"));
    EXPECT_EQ(expired.kind, Verdict::Kind::AuthExpired);
    EXPECT_FALSE(Contains(expired.error, "refresh-secret"));
    EXPECT_EQ(
        o.Interpret(reqs[0], changes, Answer(403, "{\"errors\":[{\"id\":\"unauthorizedOauthScope\"}]}")).kind,
        Verdict::Kind::Fatal);
    EXPECT_EQ(o.Interpret(reqs[0], changes, Answer(503, "{}")).kind, Verdict::Kind::Retry);
}

TEST(Outreach, SpecObjectsAndMatchOn) {
    OptionList server = {{"type", "outreach"}};
    DestinationSettings s = ResolveDestinationSettings(server, {});
    EXPECT_EQ(s.url, "https://api.outreach.io/api/v2");
    EXPECT_EQ(s.rate_limit.count, 10000);
    SyncTarget prospects = Target("upsert", "");
    EXPECT_NO_THROW(CheckSyncTarget(server, prospects, "s", "or"));
    EXPECT_EQ(prospects.object, "prospects");
    EXPECT_EQ(prospects.match_on, "emails");
    SyncTarget accounts = Target("mirror", "accounts");
    EXPECT_NO_THROW(CheckSyncTarget(server, accounts, "s", "or"));
    EXPECT_EQ(accounts.match_on, "customId");
    SyncTarget by_id = Target("upsert", "prospects", "id");
    EXPECT_THROW(CheckSyncTarget(server, by_id, "s", "or"), Error);
    SyncTarget bad = Target("upsert", "prospects", "emails]&x");
    EXPECT_THROW(CheckSyncTarget(server, bad, "s", "or"), Error);
    SyncTarget sequences = Target("upsert", "sequences");
    EXPECT_THROW(CheckSyncTarget(server, sequences, "s", "or"), Error);
}
