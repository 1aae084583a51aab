// Destination options as DBAs write them on CREATE SERVER and CREATE USER
// MAPPING, checked by the FDW validator and resolved into the settings a run
// uses. Secrets (user-mapping options) are never put into error messages.
#pragma once

#include <string>
#include <utility>
#include <vector>

namespace revetl {

using OptionList = std::vector<std::pair<std::string, std::string>>;

enum class OptionContext { Wrapper, Server, UserMapping, Other };

// Throws revetl::Error naming the bad option; `has_type` tells whether a
// server's options must include type (always for CREATE SERVER).
void ValidateOptions(OptionContext context, const OptionList &options);

// At most `count` requests per `period_ms` to one destination (0: none).
struct RateLimit {
    int count = 0;
    long period_ms = 0;
};

// "100 per 10s"; "none". Throws naming `option`.
RateLimit ParseRateLimit(const std::string &option, const std::string &text);

// A destination's settings, whatever its type: where and how requests go,
// with the credentials of the user mapping. Holds secrets: never log it.
struct DestinationSettings {
    std::string type = "webhook";
    std::string url;
    std::string method = "POST";
    OptionList headers; // server headers, then user-mapping headers (which win)
    std::string token;  // bearer token, from the user mapping
    long timeout_ms = 30000;
    long connect_timeout_ms = 10000;
    int batch_size = 100;
    int max_attempts = 5;
    int max_in_flight = 4;
    RateLimit rate_limit;
    // How long the destination may still apply a request after revetl gave
    // up waiting for it; rows with such a request are sent again after this.
    long settle_time_ms = 60000;
};

// Server and user-mapping options (already validated) into settings.
DestinationSettings ResolveDestinationSettings(const OptionList &server, const OptionList &user_mapping);

// "250ms", "30s", "2min", "1h"; a bare number is milliseconds.
long ParseDurationMs(const std::string &option, const std::string &text, long min_ms, long max_ms);

long ParseBoundedInt(const std::string &option, const std::string &text, long min, long max);

// A JSON object of header names to string values. Names must be HTTP tokens
// and values may not hold CR or LF (header injection).
OptionList ParseHeaderObject(const std::string &option, const std::string &json, bool secret);

// The host part of an http(s) URL, lower-cased. Throws on anything else.
std::string UrlHost(const std::string &url);

// The URL without user info and query string, for messages and logs.
std::string RedactUrl(const std::string &url);

// allowlist: comma-separated hosts, "*" allows all, ".example.com" allows
// subdomains. Empty allows none.
bool HostAllowed(const std::string &host, const std::string &allowlist);

// Closest candidate by edit distance, or "" when none is close.
std::string ClosestMatch(const std::string &word, const std::vector<std::string> &candidates);

} // namespace revetl
