#include "core/delivery/retry_policy.hpp"

#include "core/delivery/http_client.hpp"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstring>

namespace revetl {

ResponseClass ClassifyResponse(const HttpResponse &response) {
    long s = response.status;
    if (s == 0)
        return ResponseClass::Transient;
    if (s >= 200 && s < 300)
        return ResponseClass::Success;
    if (s == 408 || s == 425 || s == 429 || s >= 500)
        return ResponseClass::Transient;
    return ResponseClass::Permanent;
}

std::optional<long> ParseRetryAfterSeconds(const std::string &value, std::time_t now) {
    std::string v = value;
    while (!v.empty() && std::isspace(static_cast<unsigned char>(v.back())))
        v.pop_back();
    size_t start = 0;
    while (start < v.size() && std::isspace(static_cast<unsigned char>(v[start])))
        start++;
    v = v.substr(start);
    if (v.empty())
        return std::nullopt;
    if (std::all_of(v.begin(), v.end(), [](unsigned char c) { return std::isdigit(c); })) {
        if (v.size() > 9)
            return 999999999L;
        return std::stol(v);
    }
    // IMF-fixdate: "Sun, 06 Nov 1994 08:49:37 GMT"
    struct tm tm;
    std::memset(&tm, 0, sizeof tm);
    const char *end = strptime(v.c_str(), "%a, %d %b %Y %H:%M:%S GMT", &tm);
    if (!end || *end != '\0')
        return std::nullopt;
    std::time_t when = timegm(&tm);
    if (when == static_cast<std::time_t>(-1))
        return std::nullopt;
    return std::max<long>(0, static_cast<long>(when - now));
}

long RetryPolicy::BackoffMs(int attempt, double random) const {
    int exponent = std::clamp(attempt - 2, 0, 30);
    double ceiling =
        std::min<double>(static_cast<double>(max_delay_ms), base_delay_ms * std::pow(2.0, exponent));
    // "Equal jitter": half the ceiling fixed, half random. The random half
    // spreads the retries of many workers; the fixed half keeps a retry from
    // firing at once against a destination that just failed.
    double delay = ceiling / 2 + (ceiling / 2) * std::clamp(random, 0.0, 1.0);
    return static_cast<long>(delay);
}

long RetryPolicy::DelayMs(const HttpResponse &response, int attempt, double random, std::time_t now) const {
    if (auto ra = response.Header("retry-after")) {
        if (auto seconds = ParseRetryAfterSeconds(*ra, now))
            return std::min<long>(max_retry_after_ms, *seconds * 1000L);
    }
    return BackoffMs(attempt, random);
}

} // namespace revetl
