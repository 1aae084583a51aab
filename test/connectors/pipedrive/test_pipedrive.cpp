// The Pipedrive connector's requests (search on the MATCH ON field, then
// PATCH by id or POST; PATCH by the kept id; DELETE for removals), the body
// (emails and phones arrays, custom fields by key), the x-api-token and
// OAuth api_domain, and how Pipedrive's answers map to rows: its error
// envelope, a deleted kept id, 429 with x-ratelimit-reset or a spent daily
// budget, and answers about the connection. The whole path against the
// stateful mock is in test_pipedrive.py.
#include "core/connectors/pipedrive/pipedrive.hpp"

#include "core/common/error.hpp"
#include "core/connectors/oauth.hpp"
#include "core/connectors/registry.hpp"

#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <vector>

using namespace revetl;

namespace {

const std::string kKey = "0123456789abcdef0123456789abcdef01234567";

DestinationSettings Settings() {
    return ResolveDestinationSettings({{"type", "pipedrive"}}, {{"api_key", "pd-secret"}});
}

SyncTarget Target(const std::string &object = "persons", const std::string &match_on = "email",
                  const std::string &mode = "upsert") {
    SyncTarget t;
    t.object = object;
    t.match_on = match_on;
    t.mode = mode;
    return t;
}

Change Row(int64_t seq, const std::string &payload, const std::string &dest_id = "",
           Change::Op op = Change::Op::Add) {
    Change c;
    c.seq = seq;
    c.op = op;
    c.key = "{\"id\": " + std::to_string(seq) + "}";
    c.payload = payload;
    c.dest_id = dest_id;
    return c;
}

std::vector<PreparedRequest> Prepare(PipedriveConnector &c, const std::vector<Change> &changes,
                                     std::vector<std::pair<size_t, RowOutcome>> *immediate = nullptr) {
    std::vector<std::pair<size_t, RowOutcome>> ignored;
    std::vector<size_t> rows;
    for (size_t i = 0; i < changes.size(); i++)
        rows.push_back(i);
    return c.Prepare(BatchContext{}, changes, rows, immediate ? *immediate : ignored);
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

TEST(Pipedrive, SearchThenPatchOrPost) {
    PipedriveConnector c(Settings(), Target());
    std::vector<Change> changes = {
        Row(1, R"({"email": "ada+1@x.com", "name": "Ada", "phone": "+4412", "owner_id": 7, ")" + kKey +
                   R"(": "pro", "add_time": "2024-01-02 03:04:05"})")};
    auto reqs = Prepare(c, changes);
    ASSERT_EQ(reqs.size(), 1u);
    const HttpRequest &search = reqs[0].http;
    EXPECT_EQ(search.method, "GET");
    EXPECT_EQ(
        search.url,
        "https://api.pipedrive.com/api/v2/persons/search?term=ada%2B1%40x.com&fields=email&exact_match=true"
        "&limit=10");
    EXPECT_EQ(HeaderOf(search, "x-api-token"), "pd-secret");
    EXPECT_EQ(HeaderOf(search, "Authorization"), "");
    EXPECT_TRUE(reqs[0].flow.step.empty());

    Verdict hit = c.Interpret(reqs[0], changes, Answer(200, R"({"success": true, "data": {"items": [
        {"result_score": 1.0, "item": {"id": 42, "type": "person", "emails": ["ada+1@x.com"]}}]}})"));
    ASSERT_EQ(hit.kind, Verdict::Kind::Continue);
    EXPECT_EQ(hit.next->http.method, "PATCH");
    EXPECT_EQ(hit.next->http.url, "https://api.pipedrive.com/api/v2/persons/42");
    // emails and phones arrays; custom fields by key; no add_time on PATCH.
    EXPECT_EQ(hit.next->http.body,
              R"({"emails":[{"value":"ada+1@x.com","primary":true,"label":"work"}],"name":"Ada",)"
              R"("phones":[{"value":"+4412","primary":true,"label":"work"}],"owner_id":7,)"
              R"("custom_fields":{")" +
                  kKey + R"(":"pro"}})");
    Verdict done = c.Interpret(*hit.next, changes, Answer(200, R"({"success": true, "data": {"id": 42}})"));
    ASSERT_EQ(done.kind, Verdict::Kind::Done);
    EXPECT_TRUE(done.rows[0].accepted);
    EXPECT_EQ(done.rows[0].dest_id, "42");

    Verdict miss = c.Interpret(reqs[0], changes, Answer(200, R"({"success": true, "data": {"items": []}})"));
    ASSERT_EQ(miss.kind, Verdict::Kind::Continue);
    EXPECT_EQ(miss.next->http.method, "POST");
    EXPECT_EQ(miss.next->http.url, "https://api.pipedrive.com/api/v2/persons");
    EXPECT_NE(miss.next->http.body.find(R"("add_time":"2024-01-02 03:04:05")"), std::string::npos);

    PipedriveConnector upd(Settings(), Target("persons", "email", "update"));
    Verdict nf = upd.Interpret(reqs[0], changes, Answer(200, R"({"success": true, "data": {"items": []}})"));
    ASSERT_EQ(nf.kind, Verdict::Kind::Done);
    EXPECT_EQ(nf.rows[0].error_code, "NOT_FOUND");
    PipedriveConnector ins(Settings(), Target("persons", "email", "insert"));
    EXPECT_EQ(Prepare(ins, changes)[0].http.method, "POST");
}

TEST(Pipedrive, OrganizationsAndCustomFieldMatch) {
    PipedriveConnector c(Settings(), Target("organizations", kKey));
    std::vector<Change> changes = {
        Row(1, R"({"name": "Acme", ")" + kKey + R"(": "A-1", "website": "acme.io"})")};
    auto reqs = Prepare(c, changes);
    EXPECT_EQ(reqs[0].http.url,
              "https://api.pipedrive.com/api/v2/organizations/search?term=A-1&fields=custom_fields"
              "&exact_match=true&limit=10");
    Verdict miss = c.Interpret(reqs[0], changes, Answer(200, R"({"success": true, "data": {"items": []}})"));
    EXPECT_EQ(miss.next->http.body,
              R"({"name":"Acme","website":"acme.io","custom_fields":{")" + kKey + R"(":"A-1"}})");
}

TEST(Pipedrive, KeptIdAndRemovals) {
    PipedriveConnector c(Settings(), Target("persons", "email", "mirror"));
    std::vector<Change> changes = {Row(1, R"({"email": "new@x.com"})", "42", Change::Op::Change),
                                   Row(2, "", "43", Change::Op::Remove), Row(3, "", "", Change::Op::Remove),
                                   Row(4, "", "4/../x", Change::Op::Remove)};
    std::vector<std::pair<size_t, RowOutcome>> immediate;
    auto reqs = Prepare(c, changes, &immediate);
    ASSERT_EQ(reqs.size(), 2u);
    EXPECT_EQ(reqs[0].http.method, "PATCH");
    EXPECT_EQ(reqs[0].http.url, "https://api.pipedrive.com/api/v2/persons/42");
    EXPECT_EQ(reqs[1].http.method, "DELETE");
    EXPECT_EQ(reqs[1].http.url, "https://api.pipedrive.com/api/v2/persons/43");
    ASSERT_EQ(immediate.size(), 2u);
    EXPECT_EQ(immediate[0].second.error_code, "NO_RECORD_ID");
    // No id was ever learned for row 3: final (the run forgets the key);
    // row 4's stored id is not a Pipedrive id: reported once as unusable,
    // then forgotten.
    EXPECT_TRUE(immediate[0].second.unresolvable_removal);
    EXPECT_NE(immediate[0].second.hint.find("look it up by the email value"), std::string::npos);
    EXPECT_EQ(immediate[1].second.error_code, "INVALID_RECORD_ID");
    EXPECT_TRUE(immediate[1].second.unresolvable_removal);
    // The kept id was deleted: searched for again.
    Verdict gone = c.Interpret(
        reqs[0], changes, Answer(404, R"({"success": false, "error": "Person not found", "data": null})"));
    ASSERT_EQ(gone.kind, Verdict::Kind::Continue);
    EXPECT_EQ(gone.next->http.method, "GET");
    // Deleting what is gone is done.
    Verdict del =
        c.Interpret(reqs[1], changes, Answer(404, R"({"success": false, "error": "Person not found"})"));
    ASSERT_EQ(del.kind, Verdict::Kind::Done);
    EXPECT_TRUE(del.rows[0].accepted);
    Verdict deleted = c.Interpret(reqs[1], changes, Answer(200, R"({"success": true, "data": {"id": 43}})"));
    EXPECT_TRUE(deleted.rows[0].accepted);
}

TEST(Pipedrive, ErrorsThrottlingAndConnection) {
    PipedriveConnector c(Settings(), Target());
    std::vector<Change> changes = {Row(1, R"({"email": "a@x.com"})", "42")};
    PreparedRequest patch = Prepare(c, changes)[0];
    Verdict bad = c.Interpret(patch, changes, Answer(400, R"({"success": false, "error": "Invalid email",
        "error_info": "Please check developers.pipedrive.com", "code": "ERR_SCHEMA_VALIDATION_FAILED"})"));
    ASSERT_EQ(bad.kind, Verdict::Kind::Done);
    EXPECT_EQ(bad.rows[0].error_code, "ERR_SCHEMA_VALIDATION_FAILED");
    EXPECT_EQ(bad.rows[0].reason, "Invalid email");
    EXPECT_EQ(bad.rows[0].http_status, 400);
    EXPECT_EQ(
        c.Interpret(patch, changes, Answer(422, R"({"success": false, "error": "x"})")).rows[0].error_code,
        "HTTP_422");

    Verdict burst = c.Interpret(patch, changes,
                                Answer(429, R"({"success": false, "error": "Request over limit"})",
                                       {{"x-ratelimit-reset", "2"}, {"x-ratelimit-remaining", "0"}}));
    ASSERT_EQ(burst.kind, Verdict::Kind::Throttled);
    EXPECT_EQ(burst.wait_ms, 2000);
    Verdict daily = c.Interpret(patch, changes,
                                Answer(429, R"({"success": false, "error": "Daily limit reached"})",
                                       {{"x-daily-requests-left", "0"}}));
    EXPECT_EQ(daily.kind, Verdict::Kind::Fatal);
    EXPECT_NE(daily.error.find("daily API budget"), std::string::npos);

    Verdict auth =
        c.Interpret(patch, changes, Answer(401, R"({"success": false, "error": "unauthorized access"})"));
    EXPECT_EQ(auth.kind, Verdict::Kind::AuthExpired);
    EXPECT_NE(auth.error.find("unauthorized access"), std::string::npos);
    EXPECT_EQ(auth.error.find("pd-secret"), std::string::npos);
    std::vector<Change> fresh = {Row(2, R"({"email": "b@x.com"})")};
    Verdict nowhere = c.Interpret(Prepare(c, fresh)[0], fresh, Answer(404, "Not Found"));
    EXPECT_EQ(nowhere.kind, Verdict::Kind::Fatal);
    EXPECT_EQ(c.Interpret(patch, changes, Answer(502, "")).kind, Verdict::Kind::Retry);
}

TEST(Pipedrive, OAuthApiDomainAndSpec) {
    // The token answer's api_domain is where calls go.
    HttpResponse token = Answer(200, R"({"access_token": "at", "token_type": "Bearer", "expires_in": 3600,
        "refresh_token": "rt2", "scope": "contacts:full", "api_domain": "https://acme.pipedrive.com"})");
    OAuthConfig config;
    config.token_url = "https://oauth.pipedrive.com/oauth/token";
    TokenResult r = InterpretTokenAnswer(token, config, "pd");
    ASSERT_EQ(r.failure, TokenFailure::None) << r.error;
    EXPECT_EQ(r.answer.instance_url, "https://acme.pipedrive.com");
    DestinationSettings s = Settings();
    s.credentials = Credentials{};
    s.credentials.oauth.token_url = config.token_url;
    s.credentials.oauth.client_id = "cid";
    s.credentials.oauth.client_secret = "cs";
    s.credentials.oauth_token = std::make_shared<OAuthToken>();
    s.credentials.oauth_token->access_token = "at";
    s.credentials.oauth_token->instance_url = r.answer.instance_url;
    PipedriveConnector c(s, Target());
    auto reqs = Prepare(c, {Row(1, R"({"email": "a@x.com"})", "5")});
    EXPECT_EQ(reqs[0].http.url, "https://acme.pipedrive.com/api/v2/persons/5");
    EXPECT_EQ(HeaderOf(reqs[0].http, "Authorization"), "Bearer at");

    OptionList server = {{"type", "pipedrive"}};
    DestinationSettings d = ResolveDestinationSettings(server, {{"api_key", "k"}});
    EXPECT_EQ(d.url, "https://api.pipedrive.com");
    EXPECT_EQ(d.rate_limit.count, 20);
    EXPECT_EQ(d.rate_limit.period_ms, 2000);
    SyncTarget ok = Target("persons", "phone", "mirror");
    EXPECT_NO_THROW(CheckSyncTarget(server, ok, "s", "pd"));
    SyncTarget custom = Target("organizations", kKey);
    EXPECT_NO_THROW(CheckSyncTarget(server, custom, "s", "pd"));
    SyncTarget org_email = Target("organizations", "email");
    EXPECT_THROW(CheckSyncTarget(server, org_email, "s", "pd"), Error);
    SyncTarget deals = Target("deals", "title");
    EXPECT_THROW(CheckSyncTarget(server, deals, "s", "pd"), Error);
    SyncTarget deflt;
    CheckSyncTarget(server, deflt, "s", "pd");
    EXPECT_EQ(deflt.object, "persons");
    EXPECT_EQ(deflt.match_on, "email");
    DestinationSettings basic = ResolveDestinationSettings(server, {{"user", "u"}, {"password", "p"}});
    EXPECT_THROW(MakeConnector(basic, Target()), Error);
}
