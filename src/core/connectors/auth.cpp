#include "core/connectors/auth.hpp"

#include "core/common/encoding.hpp"
#include "core/common/error.hpp"

#include <algorithm>
#include <strings.h>

namespace revetl {

AuthKind SelectedAuth(const Credentials &c) {
    int schemes = !c.token.empty() + (!c.user.empty() || !c.password.empty()) + !c.api_key.empty() +
                  c.oauth.Configured();
    if (schemes > 1)
        throw Error(
            sqlstate::kFdwInvalidOptionName,
            "the user mapping's credentials select more than one auth scheme",
            "A user mapping holds a token, or a user and password, or an api_key, or OAuth options "
            "(oauth_token_url, client_id, client_secret, refresh_token, scope): one of them.",
            "Drop the options of the schemes not used, with ALTER USER MAPPING ... OPTIONS (DROP ...).");
    if (c.oauth.Configured()) {
        std::string missing;
        for (auto [name, value] :
             {std::pair<const char *, const std::string *>{"oauth_token_url", &c.oauth.token_url},
              {"client_id", &c.oauth.client_id},
              {"client_secret", &c.oauth.client_secret}})
            if (value->empty())
                missing += std::string(missing.empty() ? "" : ", ") + "\"" + name + "\"";
        if (!missing.empty())
            throw Error(
                sqlstate::kFdwInvalidOptionName, "OAuth needs " + missing + " in the user mapping",
                "OAuth takes oauth_token_url, client_id and client_secret, with refresh_token for the "
                "refresh-token grant (without it: the client-credentials grant) and an optional scope.");
        return AuthKind::OAuth;
    }
    if (!c.token.empty())
        return AuthKind::Bearer;
    if (!c.user.empty() || !c.password.empty()) {
        if (c.user.empty() || c.password.empty())
            throw Error(sqlstate::kFdwInvalidOptionName, "basic auth needs both \"user\" and \"password\"",
                        "The user mapping has only one of them.");
        return AuthKind::Basic;
    }
    if (!c.api_key.empty())
        return c.api_key_param.empty() ? AuthKind::ApiKeyHeader : AuthKind::ApiKeyQuery;
    return AuthKind::None;
}

const char *AuthName(AuthKind kind) {
    switch (kind) {
    case AuthKind::None:
        return "none";
    case AuthKind::Bearer:
        return "bearer";
    case AuthKind::Basic:
        return "basic";
    case AuthKind::ApiKeyHeader:
        return "api_key_header";
    case AuthKind::ApiKeyQuery:
        return "api_key_query";
    case AuthKind::OAuth:
        return "oauth";
    }
    return "none";
}

const char *AuthOptions(AuthKind kind) {
    switch (kind) {
    case AuthKind::None:
        return "no credentials";
    case AuthKind::Bearer:
        return "token";
    case AuthKind::Basic:
        return "user and password";
    case AuthKind::ApiKeyHeader:
        return "api_key (with the server's api_key_header)";
    case AuthKind::ApiKeyQuery:
        return "api_key (with the server's api_key_param)";
    case AuthKind::OAuth:
        return "oauth_token_url, client_id and client_secret (and refresh_token for the refresh-token grant)";
    }
    return "";
}

namespace {

void ReplaceHeader(HttpRequest &request, const std::string &name, std::string value) {
    auto &h = request.headers;
    h.erase(std::remove_if(h.begin(), h.end(),
                           [&](const auto &x) { return strcasecmp(x.first.c_str(), name.c_str()) == 0; }),
            h.end());
    h.emplace_back(name, std::move(value));
}

} // namespace

void ApplyAuth(const Credentials &c, HttpRequest &request) {
    switch (SelectedAuth(c)) {
    case AuthKind::None:
        return;
    case AuthKind::Bearer:
        ReplaceHeader(request, "Authorization", "Bearer " + c.token);
        return;
    case AuthKind::Basic:
        ReplaceHeader(request, "Authorization", "Basic " + Base64(c.user + ":" + c.password));
        return;
    case AuthKind::ApiKeyHeader:
        ReplaceHeader(request, c.api_key_header, c.api_key);
        return;
    case AuthKind::OAuth:
        if (c.oauth_token && !c.oauth_token->access_token.empty())
            ReplaceHeader(request, "Authorization", "Bearer " + c.oauth_token->access_token);
        return;
    case AuthKind::ApiKeyQuery: {
        size_t hash = request.url.find('#');
        std::string fragment = hash == std::string::npos ? std::string() : request.url.substr(hash);
        std::string base = request.url.substr(0, hash);
        base += base.find('?') == std::string::npos ? '?' : '&';
        request.url = base + UrlEncode(c.api_key_param) + "=" + UrlEncode(c.api_key) + fragment;
        return;
    }
    }
}

} // namespace revetl
