// OAuth 2.0, the pure parts: the token request, reading token answers
// (snake_case and camelCase, without expires_in, malformed and oversized
// ones), when a token is refreshed (an injected clock), fetching with
// retries against a scripted server, auth selection from user-mapping
// options, the engine's refresh-once-and-replay, and no secret in any
// message.
#include "core/connectors/auth.hpp"
#include "core/connectors/hubspot/hubspot.hpp"
#include "core/connectors/oauth.hpp"
#include "core/connectors/spec.hpp"
#include "core/delivery/delivery_engine.hpp"

#include "test_server.hpp"
#include "test_util.hpp"

#include <gtest/gtest.h>

#include <chrono>
#include <stdexcept>
#include <string>
#include <vector>

using namespace revetl;
using revetl_test::Contains;
using revetl_test::NotContains;
using revetl_test::ScriptedResponse;
using revetl_test::TestServer;

namespace {

const char *kSecret = "cs-VERY-secret-7781";
const char *kRefresh = "rt-refresh-secret-5521";

OAuthConfig Config(const std::string &url = "https://login.example.com/services/oauth2/token") {
    OAuthConfig c;
    c.token_url = url;
    c.client_id = "client-1";
    c.client_secret = kSecret;
    c.refresh_token = kRefresh;
    return c;
}

HttpResponse Response(long status, const std::string &body) {
    HttpResponse r;
    r.status = status;
    r.body = body;
    return r;
}

ScriptedResponse Answer(int status, const std::string &body) {
    ScriptedResponse r;
    r.status = status;
    r.body = body;
    r.headers = {{"Content-Type", "application/json"}};
    return r;
}

void ExpectNoSecret(const TokenResult &r) {
    for (const std::string &text : {r.error, r.hint}) {
        EXPECT_TRUE(NotContains(text, kSecret));
        EXPECT_TRUE(NotContains(text, kRefresh));
    }
}

TokenFetchHooks Hooks(std::vector<long> &sleeps) {
    TokenFetchHooks h;
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    h.check_interrupts = [deadline] {
        if (std::chrono::steady_clock::now() > deadline)
            throw std::runtime_error("test deadline passed");
    };
    h.sleep = [&sleeps](long ms) { sleeps.push_back(ms); };
    return h;
}

} // namespace

// ---------------------------------------------------------------------------
// The token request and its answer

TEST(OAuth, TokenRequestIsFormEncodedWithEveryParameterInTheBody) {
    OAuthConfig c = Config();
    c.refresh_token = "a b&c=d";
    c.scope = "crm.objects.contacts.write oauth";
    HttpRequest r = BuildTokenRequest(c, 5000, 2000);
    EXPECT_EQ(r.method, "POST");
    EXPECT_EQ(r.url, c.token_url);
    EXPECT_EQ(r.body, std::string("grant_type=refresh_token&refresh_token=a%20b%26c%3Dd&client_id=client-1&"
                                  "client_secret=") +
                          kSecret + "&scope=crm.objects.contacts.write%20oauth");
    EXPECT_EQ(r.headers.front(),
              std::make_pair(std::string("Content-Type"), std::string("application/x-www-form-urlencoded")));
    c.refresh_token.clear();
    c.scope.clear();
    EXPECT_EQ(BuildTokenRequest(c, 5000, 2000).body,
              std::string("grant_type=client_credentials&client_id=client-1&client_secret=") + kSecret);
}

TEST(OAuth, ReadsASnakeCaseAnswerWithRotationAndInstanceUrl) {
    TokenResult r = InterpretTokenAnswer(
        Response(200, R"({"access_token":"00D!AR8.tok","refresh_token":"rt-new","expires_in":1800,
                          "token_type":"Bearer","instance_url":"https://acme.my.salesforce.com","scope":"api"})"),
        Config(), "crm");
    ASSERT_EQ(r.failure, TokenFailure::None) << r.error;
    EXPECT_EQ(r.answer.access_token, "00D!AR8.tok");
    EXPECT_EQ(r.answer.refresh_token, "rt-new");
    EXPECT_EQ(r.answer.expires_in_s, 1800);
    EXPECT_EQ(r.answer.token_type, "bearer");
    EXPECT_EQ(r.answer.instance_url, "https://acme.my.salesforce.com");
}

TEST(OAuth, ReadsACamelCaseAnswer) {
    TokenResult r = InterpretTokenAnswer(
        Response(200, R"({"accessToken":"CJSP5","refreshToken":"rt-2","expiresIn":1800,"tokenType":"bearer",
                          "hubId":62515})"),
        Config(), "crm");
    ASSERT_EQ(r.failure, TokenFailure::None) << r.error;
    EXPECT_EQ(r.answer.access_token, "CJSP5");
    EXPECT_EQ(r.answer.refresh_token, "rt-2");
    EXPECT_EQ(r.answer.expires_in_s, 1800);
}

TEST(OAuth, AnswerWithoutExpiresInAssumesTheDocumentedLifetime) {
    // Salesforce sends no expires_in.
    TokenResult r = InterpretTokenAnswer(
        Response(
            200,
            R"({"access_token":"00D!x","instance_url":"https://a.example","issued_at":"1699999999999"})"),
        Config(), "crm");
    ASSERT_EQ(r.failure, TokenFailure::None);
    EXPECT_EQ(r.answer.expires_in_s, -1);
    EXPECT_EQ(TokenRefreshAtMs(1000, -1), 1000 + kAssumedTokenLifetimeS * 1000 - 60000);
    // A quoted number is read; nonsense and non-positive values are ignored.
    EXPECT_EQ(
        InterpretTokenAnswer(Response(200, R"({"access_token":"t","expires_in":"3599"})"), Config(), "crm")
            .answer.expires_in_s,
        3599);
    EXPECT_EQ(
        InterpretTokenAnswer(Response(200, R"({"access_token":"t","expires_in":"soon"})"), Config(), "crm")
            .answer.expires_in_s,
        -1);
    EXPECT_EQ(InterpretTokenAnswer(Response(200, R"({"access_token":"t","expires_in":0})"), Config(), "crm")
                  .answer.expires_in_s,
              -1);
}

TEST(OAuth, UnusableAnswersAreRefusedWithoutQuotingThem) {
    const std::vector<std::string> bodies = {"not json",
                                             R"(["access_token"])",
                                             R"({"token":"x"})",
                                             R"({"access_token":""})",
                                             R"({"access_token":"a\r\nX-Injected: 1"})",
                                             R"({"access_token":"t","token_type":"mac"})",
                                             R"({"access_token":"t","refresh_token":"bad\nline"})",
                                             R"({"access_token":")" +
                                                 std::string(kMaxAccessTokenBytes + 1, 'a') + R"("})"};
    for (const auto &body : bodies) {
        TokenResult r = InterpretTokenAnswer(Response(200, body), Config(), "crm");
        EXPECT_EQ(r.failure, TokenFailure::Malformed) << body;
        EXPECT_TRUE(Contains(r.error, "without a usable token")) << r.error;
        EXPECT_TRUE(NotContains(r.error, "X-Injected"));
    }
    HttpResponse big =
        Response(200, R"({"access_token":"t","pad":")" + std::string(kMaxTokenAnswerBytes, 'x') + "\"}");
    EXPECT_EQ(InterpretTokenAnswer(big, Config(), "crm").failure, TokenFailure::Malformed);
    HttpResponse cut = Response(200, R"({"access_token":"t"})");
    cut.body_truncated = true;
    EXPECT_EQ(InterpretTokenAnswer(cut, Config(), "crm").failure, TokenFailure::Malformed);
}

TEST(OAuth, InvalidGrantMeansReconnectRequired) {
    OAuthConfig c = Config("https://api.hubapi.com/oauth/v1/token?secret=" + std::string(kSecret));
    TokenResult r = InterpretTokenAnswer(
        Response(400, std::string(R"({"error":"invalid_grant","error_description":"refresh token )") +
                          kRefresh + R"( expired"})"),
        c, "hubspot_oauth");
    EXPECT_EQ(r.failure, TokenFailure::InvalidGrant);
    EXPECT_TRUE(Contains(r.error, "server \"hubspot_oauth\""));
    EXPECT_TRUE(Contains(r.error, "invalid_grant"));
    EXPECT_TRUE(Contains(r.error, "reconnect required"));
    EXPECT_TRUE(
        Contains(r.hint, "ALTER USER MAPPING FOR <role> SERVER hubspot_oauth OPTIONS (SET refresh_token"));
    ExpectNoSecret(r);
}

TEST(OAuth, OtherRefusalsAndTransientFailures) {
    TokenResult refused = InterpretTokenAnswer(
        Response(401,
                 std::string(R"({"error":"invalid_client","error_description":"secret )") + kSecret + "\"}"),
        Config(), "crm");
    EXPECT_EQ(refused.failure, TokenFailure::Refused);
    EXPECT_TRUE(Contains(refused.error, "HTTP 401, invalid_client"));
    ExpectNoSecret(refused);
    // An error code that is not a plain token is not quoted back.
    TokenResult odd = InterpretTokenAnswer(Response(400, std::string(R"({"error":"x )") + kSecret + "\"}"),
                                           Config(), "crm");
    EXPECT_EQ(odd.failure, TokenFailure::Refused);
    ExpectNoSecret(odd);
    for (long s : {0L, 408L, 429L, 500L, 503L}) {
        TokenResult r = InterpretTokenAnswer(Response(s, "oops"), Config(), "crm");
        EXPECT_EQ(r.failure, TokenFailure::Transient) << s;
        ExpectNoSecret(r);
    }
}

// ---------------------------------------------------------------------------
// When to refresh (an injected clock)

TEST(OAuth, RefreshesAMarginBeforeExpiry) {
    const int64_t t0 = 5000000;
    // HubSpot: 1800 s, refreshed 60 s early.
    int64_t at = TokenRefreshAtMs(t0, 1800);
    EXPECT_EQ(at, t0 + 1740000);
    EXPECT_FALSE(TokenNeedsRefresh(at, t0));
    EXPECT_FALSE(TokenNeedsRefresh(at, at - 1));
    EXPECT_TRUE(TokenNeedsRefresh(at, at));
    EXPECT_TRUE(TokenNeedsRefresh(at, t0 + 1800000));
    // A short lifetime keeps three quarters of it.
    EXPECT_EQ(TokenRefreshAtMs(t0, 8), t0 + 6000);
    EXPECT_EQ(TokenRefreshAtMs(t0, 3599), t0 + 3539000); // Marketo, Google
}

// ---------------------------------------------------------------------------
// Fetching, with retries

TEST(OAuth, FetchRetriesServerErrorsWithBackoff) {
    TestServer server;
    server.Enqueue(Answer(503, "{}"));
    server.Enqueue(Answer(500, "{}"));
    server.SetDefault(Answer(200, R"({"access_token":"tok-1","expires_in":60})"));
    HttpClient client;
    std::vector<long> sleeps;
    TokenResult r = FetchToken(client, Config(server.Url("/oauth/token")), "crm", 5000, 5000, Hooks(sleeps));
    ASSERT_EQ(r.failure, TokenFailure::None) << r.error;
    EXPECT_EQ(r.answer.access_token, "tok-1");
    EXPECT_EQ(server.Requests().size(), 3u);
    EXPECT_EQ(sleeps.size(), 2u);
    EXPECT_LT(sleeps[0], sleeps[1]);
    auto req = server.Requests()[0];
    EXPECT_EQ(req.target, "/oauth/token");
    EXPECT_TRUE(Contains(req.body, "grant_type=refresh_token"));
    EXPECT_EQ(req.Header("content-type"), std::optional<std::string>("application/x-www-form-urlencoded"));
}

TEST(OAuth, FetchGivesUpAfterBoundedAttemptsAndNeverRetriesInvalidGrant) {
    TestServer server;
    server.SetDefault(Answer(502, "{}"));
    HttpClient client;
    std::vector<long> sleeps;
    TokenResult r = FetchToken(client, Config(server.Url("/t")), "crm", 5000, 5000, Hooks(sleeps));
    EXPECT_EQ(r.failure, TokenFailure::Transient);
    EXPECT_EQ(server.Requests().size(), static_cast<size_t>(kTokenAttempts));
    EXPECT_TRUE(Contains(r.error, "after 4 attempts"));

    TestServer dead;
    dead.SetDefault(Answer(400, R"({"error":"invalid_grant"})"));
    sleeps.clear();
    r = FetchToken(client, Config(dead.Url("/t")), "crm", 5000, 5000, Hooks(sleeps));
    EXPECT_EQ(r.failure, TokenFailure::InvalidGrant);
    EXPECT_EQ(dead.Requests().size(), 1u);
    EXPECT_TRUE(sleeps.empty());
}

TEST(OAuth, FetchHonoursTheAddressPolicy) {
    TestServer server;
    server.SetDefault(Answer(200, R"({"access_token":"t"})"));
    HttpClient client;
    client.SetAddressPolicy(std::make_shared<HostPolicy>("*")); // loopback not named: refused
    std::vector<long> sleeps;
    TokenResult r = FetchToken(client, Config(server.Url("/t")), "crm", 5000, 5000, Hooks(sleeps));
    EXPECT_EQ(r.failure, TokenFailure::Refused);
    EXPECT_TRUE(Contains(r.error, "may not be reached"));
    EXPECT_TRUE(server.Requests().empty());
}

// ---------------------------------------------------------------------------
// Auth selection from user-mapping options

TEST(OAuth, UserMappingOptionsSelectOAuth) {
    OptionList um = {{"oauth_token_url", "https://api.hubapi.com/oauth/v1/token"},
                     {"client_id", "c1"},
                     {"client_secret", kSecret},
                     {"refresh_token", kRefresh},
                     {"scope", "crm"}};
    EXPECT_NO_THROW(ValidateOptions(OptionContext::UserMapping, um));
    DestinationSettings s = ResolveDestinationSettings({{"type", "hubspot"}}, um);
    EXPECT_EQ(SelectedAuth(s.credentials), AuthKind::OAuth);
    EXPECT_EQ(s.credentials.oauth.client_id, "c1");
    EXPECT_EQ(s.credentials.oauth.refresh_token, kRefresh);
    EXPECT_STREQ(s.credentials.oauth.Grant(), "refresh_token");
    ASSERT_TRUE(s.credentials.oauth_token);
    // No header until the host has a token; then Bearer, replacing any other.
    HttpRequest req;
    req.headers = {{"authorization", "Basic old"}};
    ApplyAuth(s.credentials, req);
    EXPECT_EQ(req.headers.size(), 1u);
    s.credentials.oauth_token->access_token = "at-1";
    ApplyAuth(s.credentials, req);
    ASSERT_EQ(req.headers.size(), 1u);
    EXPECT_EQ(req.headers[0].second, "Bearer at-1");
    // A copy of the settings (a connector's) sees a refreshed token.
    DestinationSettings copy = s;
    s.credentials.oauth_token->access_token = "at-2";
    ApplyAuth(copy.credentials, req);
    EXPECT_EQ(req.headers[0].second, "Bearer at-2");

    um.erase(um.begin() + 3); // no refresh_token: client credentials
    EXPECT_STREQ(ResolveDestinationSettings({{"type", "http"}, {"url", "https://x.example"}}, um)
                     .credentials.oauth.Grant(),
                 "client_credentials");
}

TEST(OAuth, IncompleteOrMixedOptionsAreRefusedWithoutEchoingSecrets) {
    try {
        ValidateOptions(OptionContext::UserMapping,
                        {{"oauth_token_url", "https://t.example/token"}, {"refresh_token", kRefresh}});
        FAIL() << "accepted";
    } catch (const Error &e) {
        EXPECT_TRUE(Contains(e.what(), "\"client_id\", \"client_secret\""));
        EXPECT_TRUE(NotContains(e.what(), kRefresh));
    }
    try {
        ValidateOptions(OptionContext::UserMapping, {{"token", "tok-secret-99"}, {"client_secret", kSecret}});
        FAIL() << "accepted";
    } catch (const Error &e) {
        EXPECT_TRUE(Contains(e.what(), "more than one auth scheme"));
        EXPECT_TRUE(NotContains(e.what(), kSecret));
    }
    EXPECT_THROW(ValidateOptions(OptionContext::UserMapping, {{"oauth_token_url", "ftp://x"}}), Error);
    // A secret of OAuth on a server points to user mappings.
    try {
        ValidateServer({{"type", "http"}, {"url", "https://x.example"}, {"client_secret", kSecret}});
        FAIL() << "accepted";
    } catch (const Error &e) {
        EXPECT_TRUE(Contains(e.hint(), "CREATE USER MAPPING"));
    }
}

TEST(OAuth, WebhookDoesNotTakeOAuthButHttpAndHubSpotDo) {
    OptionList um = {
        {"oauth_token_url", "https://t.example/token"}, {"client_id", "c"}, {"client_secret", kSecret}};
    DestinationSettings s =
        ResolveDestinationSettings({{"type", "webhook"}, {"url", "https://x.example"}}, um);
    EXPECT_THROW(MakeConnector(s, SyncTarget{}, "s", "hook"), Error);
    s = ResolveDestinationSettings({{"type", "hubspot"}}, um);
    EXPECT_NO_THROW(MakeConnector(s, SyncTarget{}, "s", "crm"));
    const std::string json = DestinationTypesJson();
    EXPECT_TRUE(Contains(json, R"("auth":["bearer","oauth"])")); // hubspot
    EXPECT_TRUE(Contains(
        json,
        R"("name":"refresh_token","on":"user mapping","kind":"secret","required":false,"secret":true)"));
    EXPECT_TRUE(Contains(
        json,
        R"("name":"oauth_token_url","on":"user mapping","kind":"url","required":false,"secret":false)"));
}

// ---------------------------------------------------------------------------
// The engine: refresh once, replay once

namespace {

EngineBatch OneBatch() {
    EngineBatch b;
    b.number = 1;
    Change c;
    c.seq = 1;
    c.op = Change::Op::Add;
    c.key = "{\"id\": 1}";
    c.payload = "{\"email\": \"a@x.com\"}";
    c.row_hash = 7;
    b.changes.push_back(c);
    return b;
}

struct EngineRun {
    EngineResult result;
    std::vector<std::string> refreshed_from; // the token each refresh was asked for
    std::vector<RowOutcome> outcomes;
};

EngineRun RunWithOAuth(TestServer &server, bool with_refresh) {
    DestinationSettings s = ResolveDestinationSettings(
        {{"type", "hubspot"}, {"url", server.Url("")}},
        {{"oauth_token_url", "https://t.example/token"}, {"client_id", "c"}, {"client_secret", kSecret}});
    auto token = s.credentials.oauth_token;
    token->access_token = "at-1";
    HubSpotConnector connector(s, SyncTarget{});
    HttpClient client;
    EngineRun run;
    EngineHooks hooks;
    bool given = false;
    hooks.next_batch = [&]() -> std::optional<EngineBatch> {
        if (given)
            return std::nullopt;
        given = true;
        return OneBatch();
    };
    hooks.batch_done = [&](const EngineBatch &, const std::vector<RowOutcome> &o) { run.outcomes = o; };
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    hooks.check_interrupts = [deadline] {
        if (std::chrono::steady_clock::now() > deadline)
            throw std::runtime_error("test deadline passed");
    };
    hooks.sleep = [](long) {};
    hooks.authorize = [&](HttpRequest &r) { ApplyAuth(s.credentials, r); };
    if (with_refresh)
        hooks.refresh_auth = [&](const HttpRequest &sent) {
            for (const auto &h : sent.headers)
                if (h.first == "Authorization")
                    run.refreshed_from.push_back(h.second);
            token->access_token = "at-" + std::to_string(run.refreshed_from.size() + 1);
            return std::string();
        };
    EngineConfig config;
    config.max_in_flight = 1;
    run.result = RunEngine(client, connector, BatchContext{}, config, hooks);
    return run;
}

const char *kExpired = R"({"status":"error","category":"EXPIRED_AUTHENTICATION","message":"expired"})";
const char *kOk = R"({"status":"COMPLETE","results":[{"id":"1","properties":{"email":"a@x.com"}}]})";

} // namespace

TEST(OAuthEngine, ExpiredTokenIsRefreshedOnceAndTheRequestReplayed) {
    TestServer server;
    server.Enqueue(Answer(401, kExpired));
    server.SetDefault(Answer(200, kOk));
    EngineRun run = RunWithOAuth(server, true);
    ASSERT_TRUE(run.result.ok) << run.result.error;
    EXPECT_EQ(run.result.stats.auth_replays, 1);
    EXPECT_EQ(run.result.stats.retries, 0); // not an attempt
    EXPECT_EQ(run.refreshed_from, std::vector<std::string>{"Bearer at-1"});
    auto reqs = server.Requests();
    ASSERT_EQ(reqs.size(), 2u);
    EXPECT_EQ(reqs[0].Header("authorization"), std::optional<std::string>("Bearer at-1"));
    EXPECT_EQ(reqs[1].Header("authorization"), std::optional<std::string>("Bearer at-2"));
    EXPECT_EQ(reqs[0].body, reqs[1].body);
    ASSERT_EQ(run.outcomes.size(), 1u);
    EXPECT_TRUE(run.outcomes[0].accepted);
}

TEST(OAuthEngine, ASecondExpiryOfTheSameRequestStopsTheRun) {
    TestServer server;
    server.SetDefault(Answer(401, kExpired));
    EngineRun run = RunWithOAuth(server, true);
    EXPECT_FALSE(run.result.ok);
    EXPECT_TRUE(Contains(run.result.error, "again, after refreshing the token"));
    EXPECT_EQ(run.refreshed_from.size(), 1u);
    EXPECT_EQ(server.Requests().size(), 2u);
    EXPECT_TRUE(run.outcomes.empty()); // no row refused for it
}

TEST(OAuthEngine, WithoutAWayToRefreshA401IsFatalAtOnce) {
    TestServer server;
    server.SetDefault(Answer(401, kExpired));
    EngineRun run = RunWithOAuth(server, false);
    EXPECT_FALSE(run.result.ok);
    EXPECT_TRUE(Contains(run.result.error, "HubSpot refused the request (HTTP 401"));
    EXPECT_EQ(server.Requests().size(), 1u);
}
