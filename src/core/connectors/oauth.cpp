#include "core/connectors/oauth.hpp"

#include "core/common/encoding.hpp"
#include "core/connectors/connector.hpp"
#include "core/connectors/options.hpp"
#include "core/delivery/retry_policy.hpp"

#include <rapidjson/document.h>

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <strings.h>

namespace revetl {

uint64_t OAuthCredentialHash(const OAuthConfig &c) {
    // Length-prefixed, so that no two different option sets join into the
    // same text.
    std::string material;
    for (const std::string *s : {&c.token_url, &c.client_id, &c.client_secret, &c.refresh_token, &c.scope})
        material += std::to_string(s->size()) + ":" + *s + ";";
    return Fnv1a(material, 0x6f61757468ULL); // "oauth"
}

HttpRequest BuildTokenRequest(const OAuthConfig &c, long timeout_ms, long connect_timeout_ms) {
    HttpRequest r;
    r.method = "POST";
    r.url = c.token_url;
    r.timeout_ms = timeout_ms;
    r.connect_timeout_ms = connect_timeout_ms;
    r.headers = {{"Content-Type", "application/x-www-form-urlencoded"}, {"Accept", "application/json"}};
    std::string body = std::string("grant_type=") + c.Grant();
    if (!c.refresh_token.empty())
        body += "&refresh_token=" + UrlEncode(c.refresh_token);
    body += "&client_id=" + UrlEncode(c.client_id) + "&client_secret=" + UrlEncode(c.client_secret);
    if (!c.scope.empty())
        body += "&scope=" + UrlEncode(c.scope);
    r.body = std::move(body);
    return r;
}

namespace {

const rapidjson::Value *Member(const rapidjson::Value &doc, const char *snake, const char *camel) {
    for (const char *name : {snake, camel}) {
        auto it = doc.FindMember(name);
        if (it != doc.MemberEnd() && !it->value.IsNull())
            return &it->value;
    }
    return nullptr;
}

// A token or URL revetl will put into a header or shared memory: printable
// ASCII only, so that no answer can smuggle a line break into a request.
bool Printable(const std::string &s) {
    return std::all_of(s.begin(), s.end(), [](char ch) {
        unsigned char u = static_cast<unsigned char>(ch);
        return u > 0x20 && u < 0x7f;
    });
}

// An OAuth error code (RFC 6749: printable ASCII without quotes and
// backslashes); anything else is not quoted back.
std::string ErrorCode(const std::string &code) {
    if (code.empty() || code.size() > 64)
        return {};
    for (char ch : code)
        if (!(std::isalnum(static_cast<unsigned char>(ch)) || ch == '_' || ch == '-' || ch == '.'))
            return {};
    return code;
}

} // namespace

TokenResult InterpretTokenAnswer(const HttpResponse &response, const OAuthConfig &config,
                                 const std::string &server_name) {
    TokenResult r;
    const std::string who =
        "the OAuth token endpoint " + RedactUrl(config.token_url) + " of server \"" + server_name + "\"";
    const long s = response.status;
    if (s == 0 || s == 408 || s == 425 || s == 429 || s >= 500) {
        r.failure = TokenFailure::Transient;
        r.error = s == 0 ? "could not reach " + who + ": " +
                               (response.timed_out ? std::string("timed out") : response.transport_error)
                         : who + " answered HTTP " + std::to_string(s);
        return r;
    }
    rapidjson::Document doc;
    const bool too_big = response.body_truncated || response.body.size() > kMaxTokenAnswerBytes;
    if (!too_big)
        doc.Parse(response.body.c_str(), response.body.size());
    const bool object = !too_big && !doc.HasParseError() && doc.IsObject();
    if (s < 200 || s >= 300) {
        std::string code;
        if (object)
            if (const rapidjson::Value *e = Member(doc, "error", "error"); e && e->IsString())
                code = ErrorCode(std::string(e->GetString(), e->GetStringLength()));
        if (code == "invalid_grant") {
            r.failure = TokenFailure::InvalidGrant;
            r.error = who + " refused the " + config.Grant() + " grant (invalid_grant): reconnect required";
            r.hint = config.refresh_token.empty()
                         ? "Check the client_id and client_secret of the user mapping, and that the vendor's "
                           "app allows the client-credentials grant."
                         : "The refresh token expired or was revoked. Authorize revetl again at the vendor "
                           "and store the new refresh token with ALTER USER MAPPING FOR <role> SERVER " +
                               server_name + " OPTIONS (SET refresh_token '...').";
            return r;
        }
        r.failure = TokenFailure::Refused;
        r.error = who + " refused the token request (HTTP " + std::to_string(s) +
                  (code.empty() ? std::string() : ", " + code) + ")";
        r.hint = "Check oauth_token_url, client_id, client_secret and scope in the user mapping.";
        return r;
    }
    auto malformed = [&](const std::string &why) {
        r.failure = TokenFailure::Malformed;
        r.error = who + " answered HTTP " + std::to_string(s) + " without a usable token: " + why;
        return r;
    };
    if (too_big)
        return malformed("the answer is larger than " + std::to_string(kMaxTokenAnswerBytes) + " bytes");
    if (!object)
        return malformed("the answer is not a JSON object");
    const rapidjson::Value *at = Member(doc, "access_token", "accessToken");
    if (!at || !at->IsString() || at->GetStringLength() == 0)
        return malformed("it has no access_token");
    r.answer.access_token.assign(at->GetString(), at->GetStringLength());
    if (r.answer.access_token.size() > kMaxAccessTokenBytes || !Printable(r.answer.access_token))
        return malformed("the access_token is longer than " + std::to_string(kMaxAccessTokenBytes) +
                         " bytes or not printable ASCII");
    if (const rapidjson::Value *e = Member(doc, "expires_in", "expiresIn")) {
        // A number, or a number in a string (some vendors quote it).
        long secs = -1;
        if (e->IsInt64())
            secs = static_cast<long>(std::min<int64_t>(e->GetInt64(), 366L * 86400));
        else if (e->IsNumber())
            secs = static_cast<long>(std::min(e->GetDouble(), 366.0 * 86400));
        else if (e->IsString()) {
            char *end = nullptr;
            long v = std::strtol(e->GetString(), &end, 10);
            if (end && *end == '\0' && end != e->GetString())
                secs = std::min(v, 366L * 86400);
        }
        if (secs > 0)
            r.answer.expires_in_s = secs;
    }
    if (const rapidjson::Value *rt = Member(doc, "refresh_token", "refreshToken"); rt && rt->IsString()) {
        std::string v(rt->GetString(), rt->GetStringLength());
        if (v.size() > kMaxRefreshTokenBytes || !Printable(v))
            return malformed("the refresh_token is longer than " + std::to_string(kMaxRefreshTokenBytes) +
                             " bytes or not printable ASCII");
        r.answer.refresh_token = std::move(v);
    }
    // Where later calls go: Salesforce's instance_url, or Pipedrive's
    // api_domain (the company's https://<company>.pipedrive.com).
    const rapidjson::Value *iu = Member(doc, "instance_url", "instanceUrl");
    if (!iu)
        iu = Member(doc, "api_domain", "apiDomain");
    if (iu && iu->IsString()) {
        std::string v(iu->GetString(), iu->GetStringLength());
        if (v.size() <= kMaxInstanceUrlBytes && Printable(v))
            r.answer.instance_url = std::move(v);
    }
    if (const rapidjson::Value *tt = Member(doc, "token_type", "tokenType"); tt && tt->IsString()) {
        std::string v(tt->GetString(), tt->GetStringLength());
        // Only bearer tokens are sent (RFC 6750); the type is case-insensitive.
        if (strcasecmp(v.c_str(), "bearer") != 0)
            return malformed("token_type \"" + Truncate(ErrorCode(v), 64) + "\" is not bearer");
        r.answer.token_type = "bearer";
    }
    return r;
}

int64_t TokenRefreshAtMs(int64_t issued_ms, long expires_in_s) {
    const int64_t lifetime_ms =
        static_cast<int64_t>(expires_in_s > 0 ? expires_in_s : kAssumedTokenLifetimeS) * 1000;
    const int64_t margin_ms = std::min<int64_t>(60000, lifetime_ms / 4);
    return issued_ms + lifetime_ms - margin_ms;
}

bool TokenNeedsRefresh(int64_t refresh_at_ms, int64_t now_ms) {
    return now_ms >= refresh_at_ms;
}

TokenResult FetchToken(HttpClient &client, const OAuthConfig &config, const std::string &server_name,
                       long timeout_ms, long connect_timeout_ms, const TokenFetchHooks &hooks) {
    RetryPolicy policy;
    policy.max_attempts = kTokenAttempts;
    policy.base_delay_ms = 500;
    policy.max_delay_ms = 8000;
    const HttpRequest request = BuildTokenRequest(config, timeout_ms, connect_timeout_ms);
    // An interrupt (an exception from a hook) leaves no transfer behind.
    struct CancelOnExit {
        HttpClient &client;
        ~CancelOnExit() { client.CancelAll(); }
    } cancel_on_exit{client};
    TokenResult result;
    for (int attempt = 1;; attempt++) {
        client.Start(static_cast<uint64_t>(attempt), request);
        std::optional<HttpResponse> response;
        while (!response) {
            hooks.check_interrupts();
            for (auto &done : client.Poll(100))
                if (done.first == static_cast<uint64_t>(attempt))
                    response = std::move(done.second);
        }
        if (response->address_refused) {
            result.failure = TokenFailure::Refused;
            result.error = "the OAuth token endpoint of server \"" + server_name +
                           "\" may not be reached: " + response->transport_error;
            result.hint = "A superuser can add its host to revetl.allowed_hosts.";
            return result;
        }
        result = InterpretTokenAnswer(*response, config, server_name);
        if (result.failure != TokenFailure::Transient)
            return result;
        if (attempt >= kTokenAttempts) {
            result.error += " (after " + std::to_string(attempt) + " attempts)";
            return result;
        }
        long wait = policy.BackoffMs(attempt + 1, hooks.random());
        if (auto ra = response->Header("retry-after"))
            if (auto secs = ParseRetryAfterSeconds(*ra, std::time(nullptr)))
                wait = std::min<long>(*secs * 1000, 30000);
        hooks.sleep(wait);
    }
}

} // namespace revetl
