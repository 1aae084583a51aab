// When to try a request again and how long to wait first: capped exponential
// backoff with equal jitter, and the destination's own Retry-After when it
// sends one.
#pragma once

#include <cstdint>
#include <ctime>
#include <optional>
#include <string>

namespace revetl {

struct HttpResponse;

enum class ResponseClass {
    Success,   // 2xx: look at the body for per-record results
    Transient, // connection error, timeout, 408, 425, 429, 5xx: retry
    Permanent, // other 4xx (and 3xx: redirects are not followed): the rows are refused
};

ResponseClass ClassifyResponse(const HttpResponse &response);

// Seconds from a Retry-After header: delta-seconds or an HTTP-date (RFC 9110).
std::optional<long> ParseRetryAfterSeconds(const std::string &value, std::time_t now);

struct RetryPolicy {
    int max_attempts = 5; // attempts per batch in one run, first included
    long base_delay_ms = 250;
    long max_delay_ms = 30000;

    // Delay before attempt number `attempt` (2 for the first retry). `random`
    // is uniform in [0, 1); passing it in keeps this function testable.
    long BackoffMs(int attempt, double random) const;

    // The delay to wait before retrying after `response`: Retry-After when
    // given (bounded by max_retry_after_ms), else the backoff.
    long DelayMs(const HttpResponse &response, int attempt, double random, std::time_t now) const;

    long max_retry_after_ms = 300000;
};

} // namespace revetl
