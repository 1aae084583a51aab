#include "core/delivery/http_client.hpp"
#include "core/delivery/retry_policy.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <ctime>
#include <string>

using namespace revetl;

namespace {

HttpResponse Status(long status) {
    HttpResponse r;
    r.status = status;
    return r;
}

HttpResponse WithRetryAfter(long status, const std::string &value) {
    HttpResponse r = Status(status);
    r.headers.emplace_back("retry-after", value);
    return r;
}

// Sun, 06 Nov 1994 08:49:00 GMT
constexpr std::time_t kNow = 784111740;

} // namespace

TEST(ClassifyResponse, ByStatus) {
    EXPECT_EQ(ClassifyResponse(Status(0)), ResponseClass::Transient);
    EXPECT_EQ(ClassifyResponse(Status(200)), ResponseClass::Success);
    EXPECT_EQ(ClassifyResponse(Status(201)), ResponseClass::Success);
    EXPECT_EQ(ClassifyResponse(Status(204)), ResponseClass::Success);
    EXPECT_EQ(ClassifyResponse(Status(207)), ResponseClass::Success);
    EXPECT_EQ(ClassifyResponse(Status(299)), ResponseClass::Success);
    EXPECT_EQ(ClassifyResponse(Status(100)), ResponseClass::Permanent);
    EXPECT_EQ(ClassifyResponse(Status(301)), ResponseClass::Permanent);
    EXPECT_EQ(ClassifyResponse(Status(302)), ResponseClass::Permanent);
    EXPECT_EQ(ClassifyResponse(Status(400)), ResponseClass::Permanent);
    EXPECT_EQ(ClassifyResponse(Status(401)), ResponseClass::Permanent);
    EXPECT_EQ(ClassifyResponse(Status(404)), ResponseClass::Permanent);
    EXPECT_EQ(ClassifyResponse(Status(408)), ResponseClass::Transient);
    EXPECT_EQ(ClassifyResponse(Status(409)), ResponseClass::Permanent);
    EXPECT_EQ(ClassifyResponse(Status(422)), ResponseClass::Permanent);
    EXPECT_EQ(ClassifyResponse(Status(425)), ResponseClass::Transient);
    EXPECT_EQ(ClassifyResponse(Status(429)), ResponseClass::Transient);
    EXPECT_EQ(ClassifyResponse(Status(499)), ResponseClass::Permanent);
    EXPECT_EQ(ClassifyResponse(Status(500)), ResponseClass::Transient);
    EXPECT_EQ(ClassifyResponse(Status(502)), ResponseClass::Transient);
    EXPECT_EQ(ClassifyResponse(Status(503)), ResponseClass::Transient);
    EXPECT_EQ(ClassifyResponse(Status(599)), ResponseClass::Transient);
}

TEST(ClassifyResponse, TransportFailureIsTransient) {
    HttpResponse r;
    r.status = 0;
    r.timed_out = true;
    r.transport_error = "Timeout was reached";
    EXPECT_EQ(ClassifyResponse(r), ResponseClass::Transient);
}

TEST(ParseRetryAfterSeconds, DeltaSeconds) {
    EXPECT_EQ(ParseRetryAfterSeconds("0", kNow), 0L);
    EXPECT_EQ(ParseRetryAfterSeconds("2", kNow), 2L);
    EXPECT_EQ(ParseRetryAfterSeconds("120", kNow), 120L);
    EXPECT_EQ(ParseRetryAfterSeconds("007", kNow), 7L);
    EXPECT_EQ(ParseRetryAfterSeconds("999999999", kNow), 999999999L);
    // Absurdly long values saturate instead of overflowing.
    EXPECT_EQ(ParseRetryAfterSeconds("99999999999999999999999", kNow), 999999999L);
}

TEST(ParseRetryAfterSeconds, Whitespace) {
    EXPECT_EQ(ParseRetryAfterSeconds("  5", kNow), 5L);
    EXPECT_EQ(ParseRetryAfterSeconds("5 \t\r\n", kNow), 5L);
    EXPECT_EQ(ParseRetryAfterSeconds(" Sun, 06 Nov 1994 08:49:37 GMT\r\n", kNow), 37L);
    EXPECT_EQ(ParseRetryAfterSeconds("", kNow), std::nullopt);
    EXPECT_EQ(ParseRetryAfterSeconds("   \t", kNow), std::nullopt);
}

TEST(ParseRetryAfterSeconds, HttpDate) {
    EXPECT_EQ(ParseRetryAfterSeconds("Sun, 06 Nov 1994 08:49:37 GMT", kNow), 37L);
    EXPECT_EQ(ParseRetryAfterSeconds("Sun, 06 Nov 1994 09:49:00 GMT", kNow), 3600L);
    EXPECT_EQ(ParseRetryAfterSeconds("Mon, 07 Nov 1994 08:49:00 GMT", kNow), 86400L);
    // A date in the past means "now".
    EXPECT_EQ(ParseRetryAfterSeconds("Sat, 05 Nov 1994 08:49:00 GMT", kNow), 0L);
    EXPECT_EQ(ParseRetryAfterSeconds("Sun, 06 Nov 1994 08:49:00 GMT", kNow), 0L);
}

TEST(ParseRetryAfterSeconds, GarbageIsNullopt) {
    for (const char *bad : {"soon", "-5", "+5", "1.5", "5s", "1e3", "0x10", "5 5",
                            "Sun, 06 Nov 1994 08:49:37",          // no zone
                            "Sun, 06 Nov 1994 08:49:37 GMT junk", // trailing text
                            "Sunday, 06-Nov-94 08:49:37 GMT"}) {  // obsolete RFC 850 form: not accepted
        SCOPED_TRACE(bad);
        EXPECT_EQ(ParseRetryAfterSeconds(bad, kNow), std::nullopt);
    }
}

TEST(RetryPolicy, BackoffGrowsAndIsCapped) {
    RetryPolicy p;
    p.base_delay_ms = 250;
    p.max_delay_ms = 30000;
    // random = 1 gives the ceiling itself, random = 0 half of it.
    EXPECT_EQ(p.BackoffMs(2, 1.0), 250);
    EXPECT_EQ(p.BackoffMs(3, 1.0), 500);
    EXPECT_EQ(p.BackoffMs(4, 1.0), 1000);
    EXPECT_EQ(p.BackoffMs(5, 1.0), 2000);
    EXPECT_EQ(p.BackoffMs(8, 1.0), 16000);
    EXPECT_EQ(p.BackoffMs(9, 1.0), 30000);
    EXPECT_EQ(p.BackoffMs(20, 1.0), 30000);
    EXPECT_EQ(p.BackoffMs(1000, 1.0), 30000);
    EXPECT_EQ(p.BackoffMs(2, 0.0), 125);
    EXPECT_EQ(p.BackoffMs(3, 0.0), 250);
    EXPECT_EQ(p.BackoffMs(1000, 0.0), 15000);
    EXPECT_EQ(p.BackoffMs(2, 0.5), 187);
    // Attempt numbers below 2 behave like the first retry.
    EXPECT_EQ(p.BackoffMs(1, 1.0), 250);
    EXPECT_EQ(p.BackoffMs(0, 1.0), 250);
    EXPECT_EQ(p.BackoffMs(-5, 1.0), 250);
}

TEST(RetryPolicy, BackoffStaysWithinHalfCeilingAndCeiling) {
    RetryPolicy p;
    p.base_delay_ms = 100;
    p.max_delay_ms = 5000;
    for (int attempt = 2; attempt <= 40; attempt++) {
        double ceiling = std::min(5000.0, 100.0 * static_cast<double>(1L << std::min(attempt - 2, 30)));
        long prev = -1;
        for (double r : {0.0, 0.1, 0.25, 0.5, 0.75, 0.9, 0.999999}) {
            long d = p.BackoffMs(attempt, r);
            EXPECT_GE(d, static_cast<long>(ceiling / 2)) << "attempt " << attempt << " r " << r;
            EXPECT_LE(d, static_cast<long>(ceiling)) << "attempt " << attempt << " r " << r;
            EXPECT_GE(d, prev) << "not monotonic in random";
            prev = d;
        }
    }
    // Out-of-range random values are clamped.
    EXPECT_EQ(p.BackoffMs(2, -3.0), 50);
    EXPECT_EQ(p.BackoffMs(2, 7.0), 100);
}

TEST(RetryPolicy, DelayPrefersRetryAfter) {
    RetryPolicy p;
    EXPECT_EQ(p.DelayMs(WithRetryAfter(503, "2"), 2, 0.5, kNow), 2000);
    EXPECT_EQ(p.DelayMs(WithRetryAfter(429, "0"), 5, 0.5, kNow), 0);
    EXPECT_EQ(p.DelayMs(WithRetryAfter(429, "Sun, 06 Nov 1994 08:49:37 GMT"), 2, 0.5, kNow), 37000);
    // Without it (or with garbage), the backoff.
    EXPECT_EQ(p.DelayMs(Status(503), 2, 1.0, kNow), p.BackoffMs(2, 1.0));
    EXPECT_EQ(p.DelayMs(Status(503), 4, 0.3, kNow), p.BackoffMs(4, 0.3));
    EXPECT_EQ(p.DelayMs(WithRetryAfter(503, "later"), 3, 1.0, kNow), 500);
    // Only the lower-cased name is looked up (HttpClient lower-cases names).
    HttpResponse upper = Status(503);
    upper.headers.emplace_back("Retry-After", "9");
    EXPECT_EQ(p.DelayMs(upper, 2, 1.0, kNow), 250);
}

TEST(RetryPolicy, RetryAfterIsCapped) {
    RetryPolicy p;
    EXPECT_EQ(p.max_retry_after_ms, 300000);
    EXPECT_EQ(p.DelayMs(WithRetryAfter(503, "300"), 2, 0.5, kNow), 300000);
    EXPECT_EQ(p.DelayMs(WithRetryAfter(503, "301"), 2, 0.5, kNow), 300000);
    EXPECT_EQ(p.DelayMs(WithRetryAfter(503, "99999999999999"), 2, 0.5, kNow), 300000);
    p.max_retry_after_ms = 1500;
    EXPECT_EQ(p.DelayMs(WithRetryAfter(503, "1"), 2, 0.5, kNow), 1000);
    EXPECT_EQ(p.DelayMs(WithRetryAfter(503, "2"), 2, 0.5, kNow), 1500);
    EXPECT_EQ(p.DelayMs(WithRetryAfter(503, "Mon, 07 Nov 1994 08:49:00 GMT"), 2, 0.5, kNow), 1500);
}

TEST(RetryPolicy, Defaults) {
    RetryPolicy p;
    EXPECT_EQ(p.max_attempts, 5);
    EXPECT_EQ(p.base_delay_ms, 250);
    EXPECT_EQ(p.max_delay_ms, 30000);
}
