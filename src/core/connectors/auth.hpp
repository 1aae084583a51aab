// Auth schemes shared by every connector. A connector's spec lists the
// schemes it accepts; the user mapping's options choose one by which of them
// are present (token: bearer; user and password: basic; api_key: an API key
// in a header or a query parameter, named by the server's api_key_header or
// api_key_param option). Credentials are secrets: nothing here puts them in
// a message.
#pragma once

#include "core/delivery/http_client.hpp"

#include <string>

namespace revetl {

enum class AuthKind { None, Bearer, Basic, ApiKeyHeader, ApiKeyQuery };

struct Credentials {
    std::string token;    // bearer
    std::string user;     // basic
    std::string password; // basic
    std::string api_key;
    // Where the API key goes (server options, not secret): a header name,
    // or a query parameter name when api_key_param is set.
    std::string api_key_header = "X-API-Key";
    std::string api_key_param;
};

// The scheme the credentials select. Throws revetl::Error when they mix
// schemes (a token and a password, ...), which no server can resolve.
AuthKind SelectedAuth(const Credentials &credentials);

// "none", "bearer", "basic", "api_key_header", "api_key_query".
const char *AuthName(AuthKind kind);

// The user-mapping options that select `kind`, as a sentence fragment for
// hints: "token", "user and password", "api_key".
const char *AuthOptions(AuthKind kind);

// Adds the credentials to `request`: an Authorization header (replacing one
// from the headers options), the API key's header (replacing one of the same
// name), or the API key as a query parameter.
void ApplyAuth(const Credentials &credentials, HttpRequest &request);

} // namespace revetl
