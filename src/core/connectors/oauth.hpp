// OAuth 2.0 as a shared auth scheme: the refresh-token grant (a user
// authorized revetl once at the vendor; the user mapping holds the refresh
// token) and the client-credentials grant (server to server, no refresh
// token). This file is the pure part: the token request, the reading of the
// token endpoint's answer, when a token is due for a refresh, and fetching a
// token with bounded retries. Where the token is kept (shared memory, one per
// credential set) and how a rotated refresh token is stored is src/pg's.
// Nothing here puts a secret (client secret, refresh or access token) into a
// message.
#pragma once

#include "core/delivery/http_client.hpp"

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

namespace revetl {

// The user mapping's OAuth options (secrets: never log).
struct OAuthConfig {
    std::string token_url;     // oauth_token_url
    std::string client_id;     // client_id
    std::string client_secret; // client_secret
    std::string refresh_token; // refresh_token: "" selects the client-credentials grant
    std::string scope;         // scope: optional

    bool Configured() const {
        return !token_url.empty() || !client_id.empty() || !client_secret.empty() || !refresh_token.empty() ||
               !scope.empty();
    }
    const char *Grant() const { return refresh_token.empty() ? "client_credentials" : "refresh_token"; }
};

// A stable hash of every credential value: a cached token is only reused by
// runs with the same values, so that a changed user mapping (another client,
// a new refresh token after a reconnect) never gets the old account's token.
uint64_t OAuthCredentialHash(const OAuthConfig &config);

// The access token in use, shared by the run and the copies of its settings
// (connectors read it when they prepare a request; the engine applies it
// again before each send, so a replay carries the refreshed one).
struct OAuthToken {
    std::string access_token;
    // Where Salesforce wants later calls to go (its answer's instance_url;
    // Pipedrive's api_domain);
    // "" when the vendor sent none. A connector that uses it must check it
    // against the host policy like any destination URL.
    std::string instance_url;
    std::string token_type;
};

// Bounds of what revetl accepts from a token endpoint. Access tokens are
// kept in shared memory slots of this size (HubSpot asks for 300 bytes,
// Google's are about 200, Salesforce's about 120).
constexpr size_t kMaxTokenAnswerBytes = 64 * 1024;
constexpr size_t kMaxAccessTokenBytes = 2048;
constexpr size_t kMaxRefreshTokenBytes = 2048;
constexpr size_t kMaxInstanceUrlBytes = 512;

struct TokenAnswer {
    std::string access_token;
    std::string refresh_token; // "" unless the vendor rotated it
    std::string instance_url;
    std::string token_type;
    long expires_in_s = -1; // -1: the answer had none (Salesforce)
};

enum class TokenFailure {
    None,
    InvalidGrant, // the refresh token (or grant) is dead: reconnect required
    Transient,    // 5xx, 408, 429, no answer: retried with backoff
    Refused,      // any other refusal (invalid_client, ...): configuration
    Malformed,    // 2xx without a usable token
};

struct TokenResult {
    TokenFailure failure = TokenFailure::None;
    TokenAnswer answer;
    std::string error; // names the server, never a secret
    std::string hint;
};

// The token request: POST, form-encoded, every parameter in the body (what
// HubSpot, Salesforce, Google and Marketo all accept).
HttpRequest BuildTokenRequest(const OAuthConfig &config, long timeout_ms, long connect_timeout_ms);

// Reads one answer of the token endpoint of `server_name`'s user mapping.
// Snake_case and camelCase field names are both read (HubSpot's newer OAuth
// API answers accessToken, expiresIn).
TokenResult InterpretTokenAnswer(const HttpResponse &response, const OAuthConfig &config,
                                 const std::string &server_name);

// An answer without expires_in (Salesforce: the lifetime is the connected
// app's session timeout, 2 hours by default, configurable down to 15
// minutes) is assumed to live this long; a shorter real lifetime costs one
// 401, a refresh and a replay.
constexpr long kAssumedTokenLifetimeS = 15 * 60;

// When a token issued at `issued_ms` with `expires_in_s` (-1: none) should
// be refreshed: a margin before it expires (60 s, or a quarter of a shorter
// lifetime), so that no request goes out with a token about to expire.
int64_t TokenRefreshAtMs(int64_t issued_ms, long expires_in_s);

bool TokenNeedsRefresh(int64_t refresh_at_ms, int64_t now_ms);

struct TokenFetchHooks {
    std::function<void()> check_interrupts = [] {};
    std::function<void(long ms)> sleep;
    std::function<double()> random = [] { return 0.5; };
};

constexpr int kTokenAttempts = 4;

// Asks the token endpoint for a token, retrying transient failures (5xx,
// timeouts, 429) with capped backoff up to kTokenAttempts; invalid_grant and
// other refusals end at once. `client` must have no other transfer.
TokenResult FetchToken(HttpClient &client, const OAuthConfig &config, const std::string &server_name,
                       long timeout_ms, long connect_timeout_ms, const TokenFetchHooks &hooks);

} // namespace revetl
