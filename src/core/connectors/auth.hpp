// Auth schemes shared by every connector. A connector's spec lists the
// schemes it accepts; the user mapping's options choose one by which of them
// are present (token: bearer; user and password: basic; api_key: an API key
// in a header or a query parameter, named by the server's api_key_header or
// api_key_param option; oauth_token_url, client_id, client_secret and
// optionally refresh_token and scope: OAuth 2.0, see oauth.hpp).
// Credentials are secrets: nothing here puts them in a message.
#pragma once

#include "core/connectors/oauth.hpp"
#include "core/delivery/http_client.hpp"

#include <memory>

#include <string>

namespace revetl {

enum class AuthKind { None, Bearer, Basic, ApiKeyHeader, ApiKeyQuery, OAuth };

struct Credentials {
    std::string token;    // bearer
    std::string user;     // basic
    std::string password; // basic
    std::string api_key;
    // Where the API key goes (server options, not secret): a header name,
    // or a query parameter name when api_key_param is set.
    std::string api_key_header = "X-API-Key";
    std::string api_key_param;
    OAuthConfig oauth;
    // OAuth: the access token in use, filled in by the host before requests
    // go (shared by every copy of these credentials); nullptr otherwise.
    std::shared_ptr<OAuthToken> oauth_token;
};

// The scheme the credentials select. Throws revetl::Error when they mix
// schemes (a token and a password, ...), which no server can resolve.
AuthKind SelectedAuth(const Credentials &credentials);

// "none", "bearer", "basic", "api_key_header", "api_key_query", "oauth".
const char *AuthName(AuthKind kind);

// The user-mapping options that select `kind`, as a sentence fragment for
// hints: "token", "user and password", "api_key", "oauth_token_url, ...".
const char *AuthOptions(AuthKind kind);

// Adds the credentials to `request`: an Authorization header (replacing one
// from the headers options), the API key's header (replacing one of the same
// name), or the API key as a query parameter. OAuth: Authorization: Bearer
// with the current access token (nothing while there is none yet).
void ApplyAuth(const Credentials &credentials, HttpRequest &request);

} // namespace revetl
