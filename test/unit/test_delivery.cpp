#include "core/delivery/delivery.hpp"

#include "test_server.hpp"
#include "test_util.hpp"

#include <gtest/gtest.h>
#include <rapidjson/document.h>

#include <chrono>
#include <stdexcept>
#include <string>
#include <vector>

using namespace revetl;
using revetl_test::Contains;
using revetl_test::NotContains;
using revetl_test::RefusingPort;
using revetl_test::ScriptedResponse;
using revetl_test::TestServer;

namespace {

constexpr int kDeadlineMs = 15000;

ScriptedResponse Answer(int status, const std::string &body, revetl_test::HeaderList headers = {}) {
    ScriptedResponse r;
    r.status = status;
    r.body = body;
    r.headers = std::move(headers);
    return r;
}

std::vector<Change> Changes(int n) {
    std::vector<Change> out;
    for (int i = 0; i < n; i++) {
        Change c;
        c.seq = i + 1;
        c.op = i == 2 ? Change::Op::Remove : Change::Op::Add;
        c.key = "{\"id\": " + std::to_string(i + 1) + "}";
        c.payload =
            c.op == Change::Op::Remove ? "" : "{\"email\": \"u" + std::to_string(i + 1) + "@example.com\"}";
        c.row_hash = 1000 + i;
        out.push_back(c);
    }
    return out;
}

DestinationSettings Settings(const std::string &url) {
    DestinationSettings s;
    s.url = url;
    s.timeout_ms = 5000;
    s.connect_timeout_ms = 5000;
    return s;
}

BatchContext Context() {
    BatchContext c;
    c.sync_id = 5;
    c.sync_name = "contacts";
    c.run_id = 77;
    c.batch_no = 1;
    return c;
}

// Hooks that record the requested sleeps instead of sleeping, and abandon
// the batch (by throwing) if a test runs past its deadline.
struct Recorder {
    std::vector<long> sleeps;
    DeliveryHooks hooks;
    std::chrono::steady_clock::time_point deadline =
        std::chrono::steady_clock::now() + std::chrono::milliseconds(kDeadlineMs);

    explicit Recorder(bool with_random = true) {
        hooks.sleep = [this](long ms) { sleeps.push_back(ms); };
        if (with_random)
            hooks.random = [] { return 0.5; };
        hooks.check_interrupts = [this] {
            if (std::chrono::steady_clock::now() > deadline)
                throw std::runtime_error("test deadline passed");
        };
    }
};

RetryPolicy Policy(int max_attempts) {
    RetryPolicy p;
    p.max_attempts = max_attempts;
    p.base_delay_ms = 250;
    p.max_delay_ms = 30000;
    return p;
}

} // namespace

TEST(DeliverBatch, SuccessOnFirstAttempt) {
    TestServer server;
    server.Enqueue(Answer(200, R"({"ids": ["c-1", "c-2", "c-3"]})"));
    HttpClient client;
    Recorder rec;
    DestinationSettings s = Settings(server.Url("/hook"));
    s.credentials.token = "tok-xyz";
    s.headers = {{"X-Source", "revetl"}};
    BatchOutcome out = DeliverBatch(client, s, Context(), Changes(3), Policy(5), rec.hooks);
    EXPECT_TRUE(out.answered);
    EXPECT_EQ(out.requests, 1);
    EXPECT_EQ(out.retries, 0);
    EXPECT_EQ(out.last_status, 200);
    EXPECT_EQ(out.error, "");
    EXPECT_TRUE(rec.sleeps.empty());
    ASSERT_EQ(out.rows.size(), 3u);
    for (size_t i = 0; i < 3; i++) {
        EXPECT_TRUE(out.rows[i].accepted);
        EXPECT_EQ(out.rows[i].http_status, 200);
        EXPECT_EQ(out.rows[i].dest_id, "c-" + std::to_string(i + 1));
    }

    auto reqs = server.Requests();
    ASSERT_EQ(reqs.size(), 1u);
    EXPECT_EQ(reqs[0].method, "POST");
    EXPECT_EQ(reqs[0].target, "/hook");
    EXPECT_EQ(reqs[0].Header("authorization"), std::optional<std::string>("Bearer tok-xyz"));
    EXPECT_EQ(reqs[0].Header("x-source"), std::optional<std::string>("revetl"));
    EXPECT_EQ(reqs[0].Header("content-type"), std::optional<std::string>("application/json"));
    ASSERT_TRUE(reqs[0].Header("idempotency-key").has_value());
    rapidjson::Document doc;
    doc.Parse(reqs[0].body.c_str(), reqs[0].body.size());
    ASSERT_FALSE(doc.HasParseError()) << reqs[0].body;
    ASSERT_TRUE(doc.IsObject());
    EXPECT_STREQ(doc["sync"].GetString(), "contacts");
    EXPECT_EQ(doc["run_id"].GetInt64(), 77);
    ASSERT_EQ(doc["records"].Size(), 3u);
    EXPECT_STREQ(doc["records"][2]["op"].GetString(), "delete");
}

TEST(DeliverBatch, RetriesTransientThenSucceeds) {
    TestServer server;
    server.Enqueue(Answer(503, "busy"));
    server.Enqueue(Answer(200, "{}"));
    HttpClient client;
    Recorder rec;
    BatchOutcome out =
        DeliverBatch(client, Settings(server.Url("/hook")), Context(), Changes(2), Policy(5), rec.hooks);
    EXPECT_TRUE(out.answered);
    EXPECT_EQ(out.requests, 2);
    EXPECT_EQ(out.retries, 1);
    EXPECT_EQ(out.last_status, 200);
    // Backoff before attempt 2 with random 0.5: 125 + 62.5.
    EXPECT_EQ(rec.sleeps, std::vector<long>{187});
    ASSERT_EQ(out.rows.size(), 2u);
    EXPECT_TRUE(out.rows[0].accepted);
    EXPECT_TRUE(out.rows[1].accepted);

    // The retry is the same request: same body, same idempotency key.
    auto reqs = server.Requests();
    ASSERT_EQ(reqs.size(), 2u);
    EXPECT_EQ(reqs[0].body, reqs[1].body);
    ASSERT_TRUE(reqs[0].Header("idempotency-key").has_value());
    EXPECT_EQ(reqs[0].Header("idempotency-key"), reqs[1].Header("idempotency-key"));
}

TEST(DeliverBatch, WithoutRandomHookUsesMidpointJitter) {
    TestServer server;
    server.Enqueue(Answer(500, ""));
    server.Enqueue(Answer(502, ""));
    server.Enqueue(Answer(200, ""));
    HttpClient client;
    Recorder rec(false);
    BatchOutcome out =
        DeliverBatch(client, Settings(server.Url("/")), Context(), Changes(1), Policy(5), rec.hooks);
    EXPECT_TRUE(out.answered);
    EXPECT_EQ(out.requests, 3);
    EXPECT_EQ(out.retries, 2);
    EXPECT_EQ(rec.sleeps, (std::vector<long>{187, 375}));
}

TEST(DeliverBatch, HonoursRetryAfter) {
    TestServer server;
    server.Enqueue(Answer(429, "slow down", {{"Retry-After", "2"}}));
    server.Enqueue(Answer(200, "{}"));
    HttpClient client;
    Recorder rec;
    BatchOutcome out =
        DeliverBatch(client, Settings(server.Url("/")), Context(), Changes(1), Policy(5), rec.hooks);
    EXPECT_TRUE(out.answered);
    EXPECT_EQ(out.requests, 2);
    EXPECT_EQ(out.retries, 1);
    EXPECT_EQ(rec.sleeps, std::vector<long>{2000});
}

TEST(DeliverBatch, RetryAfterIsCappedByPolicy) {
    TestServer server;
    server.Enqueue(Answer(503, "", {{"Retry-After", "86400"}}));
    server.Enqueue(Answer(200, "{}"));
    HttpClient client;
    Recorder rec;
    RetryPolicy p = Policy(5);
    p.max_retry_after_ms = 4000;
    BatchOutcome out = DeliverBatch(client, Settings(server.Url("/")), Context(), Changes(1), p, rec.hooks);
    EXPECT_TRUE(out.answered);
    EXPECT_EQ(rec.sleeps, std::vector<long>{4000});
}

TEST(DeliverBatch, GivesUpAfterMaxAttemptsWithoutLeakingSecrets) {
    TestServer server;
    server.SetDefault(Answer(503, "temporarily unavailable"));
    HttpClient client;
    Recorder rec;
    std::string url = "http://hookuser:pw-SECRET1@127.0.0.1:" + std::to_string(server.port()) +
                      "/hook?api_key=q-SECRET2&x=1";
    DestinationSettings s = Settings(url);
    s.credentials.token = "tok-SECRET3";
    BatchOutcome out = DeliverBatch(client, s, Context(), Changes(2), Policy(3), rec.hooks);
    EXPECT_FALSE(out.answered);
    EXPECT_EQ(out.requests, 3);
    EXPECT_EQ(out.retries, 2);
    EXPECT_EQ(out.last_status, 503);
    EXPECT_TRUE(out.rows.empty());
    EXPECT_EQ(rec.sleeps, (std::vector<long>{187, 375}));
    EXPECT_EQ(out.error, "destination http://***@127.0.0.1:" + std::to_string(server.port()) +
                             "/hook?*** answered HTTP 503: temporarily unavailable (after 3 attempts)");
    for (const char *secret : {"SECRET", "api_key", "hookuser", "tok-", "Bearer"}) {
        SCOPED_TRACE(secret);
        EXPECT_TRUE(NotContains(out.error, secret));
    }
    auto reqs = server.Requests();
    ASSERT_EQ(reqs.size(), 3u);
    // The secrets were still sent where they belong.
    EXPECT_EQ(reqs[0].target, "/hook?api_key=q-SECRET2&x=1");
    EXPECT_EQ(reqs[0].Header("authorization"), std::optional<std::string>("Bearer tok-SECRET3"));
}

TEST(DeliverBatch, GivesUpWhenUnreachable) {
    RefusingPort refusing;
    HttpClient client;
    Recorder rec;
    std::string base = "http://127.0.0.1:" + std::to_string(refusing.port());
    BatchOutcome out =
        DeliverBatch(client, Settings(base + "/hook?token=abc"), Context(), Changes(1), Policy(2), rec.hooks);
    EXPECT_FALSE(out.answered);
    EXPECT_EQ(out.requests, 2);
    EXPECT_EQ(out.retries, 1);
    EXPECT_EQ(out.last_status, 0);
    EXPECT_EQ(rec.sleeps.size(), 1u);
    EXPECT_EQ(out.error.rfind("could not reach " + base + "/hook?***: ", 0), 0u) << out.error;
    EXPECT_TRUE(Contains(out.error, " (after 2 attempts)"));
    EXPECT_TRUE(NotContains(out.error, "abc"));

    Recorder once;
    out = DeliverBatch(client, Settings(base + "/"), Context(), Changes(1), Policy(1), once.hooks);
    EXPECT_FALSE(out.answered);
    EXPECT_EQ(out.requests, 1);
    EXPECT_EQ(out.retries, 0);
    EXPECT_TRUE(once.sleeps.empty());
    EXPECT_TRUE(Contains(out.error, " (after 1 attempt)")) << out.error;
}

TEST(DeliverBatch, TimeoutIsTransient) {
    TestServer server;
    ScriptedResponse hang;
    hang.hang = true;
    server.SetDefault(hang);
    HttpClient client;
    Recorder rec;
    DestinationSettings s = Settings(server.Url("/slow"));
    s.timeout_ms = 200;
    BatchOutcome out = DeliverBatch(client, s, Context(), Changes(1), Policy(2), rec.hooks);
    EXPECT_FALSE(out.answered);
    EXPECT_EQ(out.requests, 2);
    EXPECT_EQ(out.last_status, 0);
    EXPECT_EQ(out.error, "could not reach " + server.Url("/slow") + ": timed out (after 2 attempts)");
}

TEST(DeliverBatch, MultiStatusMapsToRows) {
    TestServer server;
    server.Enqueue(Answer(207, R"({"rejected": [{"index": 1, "reason": "invalid email", "code": "E_EMAIL"}],
                                  "ids": ["a", "b", "c"]})"));
    HttpClient client;
    Recorder rec;
    BatchOutcome out =
        DeliverBatch(client, Settings(server.Url("/")), Context(), Changes(3), Policy(5), rec.hooks);
    EXPECT_TRUE(out.answered);
    EXPECT_EQ(out.requests, 1);
    EXPECT_EQ(out.last_status, 207);
    ASSERT_EQ(out.rows.size(), 3u);
    EXPECT_TRUE(out.rows[0].accepted);
    EXPECT_EQ(out.rows[0].dest_id, "a");
    EXPECT_FALSE(out.rows[1].accepted);
    EXPECT_EQ(out.rows[1].reason, "invalid email");
    EXPECT_EQ(out.rows[1].error_code, "E_EMAIL");
    EXPECT_EQ(out.rows[1].http_status, 207);
    EXPECT_TRUE(out.rows[2].accepted);
    EXPECT_EQ(out.rows[2].dest_id, "c");
}

TEST(DeliverBatch, PermanentErrorIsNotRetried) {
    TestServer server;
    server.SetDefault(Answer(400, R"({"error": "schema mismatch", "code": "E_SCHEMA"})"));
    HttpClient client;
    Recorder rec;
    BatchOutcome out =
        DeliverBatch(client, Settings(server.Url("/")), Context(), Changes(2), Policy(5), rec.hooks);
    EXPECT_TRUE(out.answered);
    EXPECT_EQ(out.requests, 1);
    EXPECT_EQ(out.retries, 0);
    EXPECT_EQ(out.last_status, 400);
    EXPECT_TRUE(rec.sleeps.empty());
    ASSERT_EQ(out.rows.size(), 2u);
    for (const auto &r : out.rows) {
        EXPECT_FALSE(r.accepted);
        EXPECT_EQ(r.reason, "schema mismatch");
        EXPECT_EQ(r.error_code, "E_SCHEMA");
        EXPECT_EQ(r.http_status, 400);
    }
    EXPECT_EQ(server.Requests().size(), 1u);
}

TEST(DeliverBatch, InterruptAbandonsTheBatch) {
    TestServer server;
    ScriptedResponse hang;
    hang.hang = true;
    server.SetDefault(hang);
    HttpClient client;
    Recorder rec;
    int calls = 0;
    rec.hooks.check_interrupts = [&] {
        if (++calls >= 3)
            throw std::runtime_error("query canceled");
    };
    try {
        DeliverBatch(client, Settings(server.Url("/")), Context(), Changes(1), Policy(5), rec.hooks);
        ADD_FAILURE() << "DeliverBatch did not propagate the interrupt";
    } catch (const std::runtime_error &e) {
        EXPECT_STREQ(e.what(), "query canceled");
    }
    EXPECT_EQ(calls, 3);
    EXPECT_TRUE(rec.sleeps.empty());
}

TEST(DeliverBatch, SleepMayThrow) {
    TestServer server;
    server.SetDefault(Answer(503, ""));
    HttpClient client;
    Recorder rec;
    rec.hooks.sleep = [](long) { throw std::runtime_error("shutting down"); };
    EXPECT_THROW(DeliverBatch(client, Settings(server.Url("/")), Context(), Changes(1), Policy(5), rec.hooks),
                 std::runtime_error);
    EXPECT_EQ(server.Requests().size(), 1u);
}
