// The values of destination options as DBAs write them on CREATE SERVER and
// CREATE USER MAPPING: durations, bounded integers, rate limits, header
// objects, URLs. Which options a type takes is declared in its spec
// (spec.hpp). Secrets (user-mapping options) are never put into error
// messages.
#pragma once

#include <string>
#include <utility>
#include <vector>

namespace revetl {

using OptionList = std::vector<std::pair<std::string, std::string>>;

// At most `count` requests per `period_ms` to one destination (0: none).
struct RateLimit {
    int count = 0;
    long period_ms = 0;
};

// "100 per 10s"; "none". Throws naming `option`.
RateLimit ParseRateLimit(const std::string &option, const std::string &text);

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

// Whether a URL may name `host` under revetl.allowed_hosts (see
// core/host_policy.hpp for the rules; empty allows none).
bool HostAllowed(const std::string &host, const std::string &allowlist);

// Whether `name` is an HTTP token (a valid header name).
bool IsHttpToken(const std::string &name);

// Closest candidate by edit distance, or "" when none is close.
std::string ClosestMatch(const std::string &word, const std::vector<std::string> &candidates);

} // namespace revetl
