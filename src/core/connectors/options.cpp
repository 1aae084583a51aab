#include "core/connectors/options.hpp"

#include "core/delivery/host_policy.hpp"

#include "core/common/error.hpp"

#include <rapidjson/document.h>

#include <algorithm>
#include <cctype>
#include <climits>

namespace revetl {

namespace {

std::string Lower(std::string s) {
    std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return std::tolower(c); });
    return s;
}

} // namespace

bool IsHttpToken(const std::string &name) {
    if (name.empty() || name.size() > 256)
        return false;
    static const std::string kExtra = "!#$%&'*+-.^_`|~";
    return std::all_of(name.begin(), name.end(), [](unsigned char c) {
        return std::isalnum(c) || kExtra.find(static_cast<char>(c)) != std::string::npos;
    });
}

long ParseBoundedInt(const std::string &option, const std::string &text, long min, long max) {
    bool ok = !text.empty() && text.size() <= 12 &&
              std::all_of(text.begin(), text.end(), [](unsigned char c) { return std::isdigit(c); });
    long value = ok ? std::stol(text) : 0;
    if (!ok || value < min || value > max)
        throw Error(
            sqlstate::kFdwInvalidOptionValue, "invalid value for option \"" + option + "\": \"" + text + "\"",
            "The value must be an integer from " + std::to_string(min) + " to " + std::to_string(max) + ".");
    return value;
}

long ParseDurationMs(const std::string &option, const std::string &text, long min_ms, long max_ms) {
    size_t i = 0;
    while (i < text.size() && std::isdigit(static_cast<unsigned char>(text[i])))
        i++;
    std::string digits = text.substr(0, i);
    std::string unit = Lower(text.substr(i));
    unit.erase(std::remove_if(unit.begin(), unit.end(), [](unsigned char c) { return std::isspace(c); }),
               unit.end());
    // The short forms, and the unit words PostgreSQL's interval input takes
    // ('15 minutes'), so that a duration is written the same way in a
    // sync's options as in its schedule. (Not "m": minutes to an interval,
    // months to ISO 8601.)
    static const std::pair<const char *, long> kUnits[] = {
        {"", 1},           {"ms", 1},          {"msec", 1},
        {"msecs", 1},      {"millisecond", 1}, {"milliseconds", 1},
        {"s", 1000},       {"sec", 1000},      {"secs", 1000},
        {"second", 1000},  {"seconds", 1000},  {"min", 60000},
        {"mins", 60000},   {"minute", 60000},  {"minutes", 60000},
        {"h", 3600000},    {"hr", 3600000},    {"hrs", 3600000},
        {"hour", 3600000}, {"hours", 3600000}, {"d", 86400000},
        {"day", 86400000}, {"days", 86400000}};
    long factor = -1;
    for (const auto &u : kUnits)
        if (unit == u.first)
            factor = u.second;
    bool ok = !digits.empty() && digits.size() <= 9 && factor > 0 && std::stol(digits) <= max_ms / factor;
    long ms = ok ? std::stol(digits) * factor : 0;
    if (!ok || ms < min_ms || ms > max_ms)
        throw Error(sqlstate::kFdwInvalidOptionValue,
                    "invalid value for option \"" + option + "\": \"" + text + "\"",
                    "The value must be a duration from " + std::to_string(min_ms) + "ms to " +
                        std::to_string(max_ms / 1000) + "s.",
                    "Write a number with a unit: ms, s, min, h or d (or their words, as in an interval), "
                    "for example '30s' or '15 minutes'.");
    return ms;
}

OptionList ParseHeaderObject(const std::string &option, const std::string &json, bool secret) {
    rapidjson::Document doc;
    doc.Parse(json.c_str(), json.size());
    if (doc.HasParseError() || !doc.IsObject())
        throw Error(sqlstate::kFdwInvalidOptionValue, "invalid value for option \"" + option + "\"",
                    "The value must be a JSON object of header names to string values.",
                    "For example: '{\"X-Source\": \"revetl\"}'.");
    OptionList out;
    for (auto it = doc.MemberBegin(); it != doc.MemberEnd(); ++it) {
        std::string name(it->name.GetString(), it->name.GetStringLength());
        if (!IsHttpToken(name))
            throw Error(sqlstate::kFdwInvalidOptionValue, "invalid header name in option \"" + option + "\"",
                        secret ? std::string("A header name is not a valid HTTP token.")
                               : "\"" + name + "\" is not a valid HTTP header name.");
        if (!it->value.IsString())
            throw Error(sqlstate::kFdwInvalidOptionValue,
                        "invalid value for header \"" + name + "\" in option \"" + option + "\"",
                        "Header values must be JSON strings.");
        std::string value(it->value.GetString(), it->value.GetStringLength());
        if (value.find_first_of("\r\n", 0) != std::string::npos || value.find('\0') != std::string::npos ||
            value.size() > 8192)
            throw Error(sqlstate::kFdwInvalidOptionValue,
                        "invalid value for header \"" + name + "\" in option \"" + option + "\"",
                        "Header values may not contain line breaks or NUL and are limited to 8192 bytes.");
        std::string lower = Lower(name);
        if (lower == "content-length" || lower == "host" || lower == "transfer-encoding" ||
            lower == "content-type" || lower == "idempotency-key")
            throw Error(sqlstate::kFdwInvalidOptionValue,
                        "header \"" + name + "\" in option \"" + option + "\" cannot be set",
                        "revetl sets this header itself.");
        if (lower == "authorization" && !secret)
            throw Error(sqlstate::kFdwInvalidOptionValue, "header \"" + name + "\" cannot be set on a server",
                        "Server options are visible to every role; credentials belong in a user mapping.",
                        "Use CREATE USER MAPPING ... OPTIONS (token '...').");
        out.emplace_back(std::move(name), std::move(value));
    }
    return out;
}

std::string UrlHost(const std::string &url) {
    std::string lower = Lower(url);
    size_t start;
    if (lower.rfind("http://", 0) == 0)
        start = 7;
    else if (lower.rfind("https://", 0) == 0)
        start = 8;
    else
        throw Error(sqlstate::kFdwInvalidOptionValue, "invalid value for option \"url\"",
                    "The URL must start with http:// or https://.");
    if (url.size() > 2048 || url.find_first_of(" \r\n\t", 0) != std::string::npos)
        throw Error(sqlstate::kFdwInvalidOptionValue, "invalid value for option \"url\"",
                    "The URL may not contain whitespace and is limited to 2048 bytes.");
    size_t end = lower.find_first_of("/?#", start);
    std::string authority = lower.substr(start, end == std::string::npos ? std::string::npos : end - start);
    size_t at = authority.rfind('@');
    if (at != std::string::npos)
        authority = authority.substr(at + 1);
    std::string host;
    if (!authority.empty() && authority[0] == '[') {
        size_t close = authority.find(']');
        host = close == std::string::npos ? std::string() : authority.substr(0, close + 1);
    } else {
        host = authority.substr(0, authority.find(':'));
    }
    if (host.empty())
        throw Error(sqlstate::kFdwInvalidOptionValue, "invalid value for option \"url\"",
                    "The URL has no host.");
    return host;
}

std::string RedactUrl(const std::string &url) {
    std::string out = url;
    size_t scheme = out.find("://");
    if (scheme != std::string::npos) {
        size_t auth_start = scheme + 3;
        size_t auth_end = out.find_first_of("/?#", auth_start);
        size_t at = out.rfind('@', auth_end == std::string::npos ? out.size() : auth_end);
        if (at != std::string::npos && at >= auth_start)
            out = out.substr(0, auth_start) + "***@" + out.substr(at + 1);
    }
    size_t q = out.find_first_of("?#");
    if (q != std::string::npos)
        out = out.substr(0, q) + "?***";
    return out;
}

bool HostAllowed(const std::string &host, const std::string &allowlist) {
    return HostPolicy(allowlist).NameAllowed(host);
}

std::string ClosestMatch(const std::string &word, const std::vector<std::string> &candidates) {
    std::string best;
    size_t best_distance = SIZE_MAX;
    for (const auto &c : candidates) {
        std::vector<size_t> prev(c.size() + 1), cur(c.size() + 1);
        for (size_t j = 0; j <= c.size(); j++)
            prev[j] = j;
        for (size_t i = 1; i <= word.size(); i++) {
            cur[0] = i;
            for (size_t j = 1; j <= c.size(); j++) {
                size_t cost = std::tolower(static_cast<unsigned char>(word[i - 1])) ==
                                      std::tolower(static_cast<unsigned char>(c[j - 1]))
                                  ? 0
                                  : 1;
                cur[j] = std::min({prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + cost});
            }
            std::swap(prev, cur);
        }
        if (prev[c.size()] < best_distance) {
            best_distance = prev[c.size()];
            best = c;
        }
    }
    // Close means: at most a third of the word wrong, and at least one letter right.
    if (best_distance == SIZE_MAX || best_distance > std::max<size_t>(1, word.size() / 3) ||
        best_distance >= word.size())
        return {};
    return best;
}

RateLimit ParseRateLimit(const std::string &option, const std::string &text) {
    // "<count> per <duration>", e.g. "100 per 10s"; "none" for no limit.
    RateLimit r;
    std::string t = Lower(text);
    if (t == "none")
        return r;
    size_t per = t.find(" per ");
    bool ok = per != std::string::npos;
    if (ok) {
        std::string count = t.substr(0, per);
        count.erase(
            std::remove_if(count.begin(), count.end(), [](unsigned char c) { return std::isspace(c); }),
            count.end());
        std::string period = t.substr(per + 5);
        period.erase(
            std::remove_if(period.begin(), period.end(), [](unsigned char c) { return std::isspace(c); }),
            period.end());
        // "10 per second": one of the unit.
        if (!period.empty() && std::isalpha(static_cast<unsigned char>(period[0])))
            period = "1" + period;
        try {
            r.count = static_cast<int>(ParseBoundedInt(option, count, 1, 1000000));
            r.period_ms = ParseDurationMs(option, period.empty() ? "x" : period, 1, 86400000);
        } catch (const Error &) {
            ok = false;
        }
    }
    if (!ok)
        throw Error(sqlstate::kFdwInvalidOptionValue,
                    "invalid value for option \"" + option + "\": \"" + text + "\"",
                    "A rate limit is written as a number of requests per duration.",
                    "For example: '100 per 10s', '10 per second', '3000 per minute' or 'none'.");
    return r;
}

} // namespace revetl
