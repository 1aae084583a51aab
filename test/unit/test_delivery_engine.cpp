#include "core/delivery/delivery_engine.hpp"

#include "core/connectors/hubspot/hubspot.hpp"
#include "core/connectors/webhook/webhook.hpp"

#include "test_server.hpp"
#include "test_util.hpp"

#include <gtest/gtest.h>
#include <rapidjson/document.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <optional>
#include <set>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

using namespace revetl;
using revetl_test::ReceivedRequest;
using revetl_test::ScriptedResponse;
using revetl_test::TestServer;

namespace {

constexpr int kDeadlineMs = 10000;
constexpr int64_t kT0 = 1000000; // the fake clock's start

ScriptedResponse Answer(int status, const std::string &body = "", revetl_test::HeaderList headers = {}) {
    ScriptedResponse r;
    r.status = status;
    r.body = body;
    r.headers = std::move(headers);
    return r;
}

ScriptedResponse Hang() {
    ScriptedResponse r;
    r.hang = true;
    return r;
}

// `rows` changes, sequence numbers from first_seq; the payload of a row is
// {"email": "u<seq>@x.com", "name": "<name>"}.
EngineBatch Batch(int64_t number, int rows, int64_t first_seq = 1, std::map<int, std::string> names = {}) {
    EngineBatch b;
    b.number = number;
    for (int i = 0; i < rows; i++) {
        Change c;
        c.seq = first_seq + i;
        c.op = Change::Op::Add;
        c.key = "{\"id\": " + std::to_string(c.seq) + "}";
        std::string name = names.count(i) ? names[i] : "ok-" + std::to_string(c.seq);
        c.payload = "{\"email\": \"u" + std::to_string(c.seq) + "@x.com\", \"name\": \"" + name + "\"}";
        c.row_hash = c.seq * 7;
        b.changes.push_back(c);
    }
    return b;
}

DestinationSettings Settings(const std::string &url) {
    DestinationSettings s;
    s.url = url;
    s.timeout_ms = 5000;
    s.connect_timeout_ms = 5000;
    return s;
}

DestinationSettings HubSpotSettings(const std::string &url) {
    DestinationSettings s = Settings(url);
    s.type = "hubspot";
    s.credentials.token = "pat-test";
    return s;
}

BatchContext Context() {
    BatchContext c;
    c.sync_id = 3;
    c.sync_name = "people";
    c.run_id = 12;
    return c;
}

EngineConfig Config(int max_in_flight, int max_attempts = 5) {
    EngineConfig c;
    c.max_in_flight = max_in_flight;
    c.retry.max_attempts = max_attempts;
    c.retry.base_delay_ms = 250;
    c.retry.max_delay_ms = 30000;
    return c;
}

rapidjson::Document Parse(const std::string &body) {
    rapidjson::Document doc;
    doc.Parse(body.c_str(), body.size());
    return doc;
}

size_t RecordCount(const ReceivedRequest &r) {
    rapidjson::Document doc = Parse(r.body);
    if (doc.HasParseError() || !doc.IsObject() || !doc.HasMember("records") || !doc["records"].IsArray())
        return SIZE_MAX;
    return doc["records"].Size();
}

// The engine's hooks, recording what the engine asks for. Time is a fake
// clock that only the sleep hook advances, so waits cost nothing and their
// lengths are exact. check_interrupts enforces a real deadline.
class Harness {
public:
    explicit Harness(HttpClient &client) : client_(client) {
        hooks.next_batch = [this]() -> std::optional<EngineBatch> {
            next_calls++;
            if (batches.empty())
                return std::nullopt;
            EngineBatch b = std::move(batches.front());
            batches.pop_front();
            return b;
        };
        hooks.batch_done = [this](const EngineBatch &batch, const std::vector<RowOutcome> &outcomes) {
            if (on_done)
                on_done(batch, outcomes);
            done.emplace_back(batch, outcomes);
        };
        hooks.check_interrupts = [this] {
            if (on_check)
                on_check();
            if (std::chrono::steady_clock::now() > deadline_)
                throw std::runtime_error("test deadline passed");
        };
        hooks.sleep = [this](long ms) {
            sleeps.push_back(ms);
            clock += ms;
        };
        hooks.rate_delay_ms = [this]() -> long {
            rate_calls++;
            long delay = rate ? rate() : 0;
            if (delay <= 0) {
                start_times.push_back(clock);
                peak_client = std::max(peak_client, static_cast<int>(client_.InFlight()) + 1);
            }
            return delay;
        };
        hooks.throttle = [this](long ms) { throttles.push_back(ms); };
        hooks.random = [] { return 0.5; };
        hooks.now_ms = [this] { return clock; };
    }
    Harness(const Harness &) = delete;
    Harness &operator=(const Harness &) = delete;

    long SleptMs() const {
        long total = 0;
        for (long s : sleeps)
            total += s;
        return total;
    }
    std::vector<int64_t> BatchNumbersDone() const {
        std::vector<int64_t> out;
        for (const auto &d : done)
            out.push_back(d.first.number);
        std::sort(out.begin(), out.end());
        return out;
    }

    EngineHooks hooks;
    std::deque<EngineBatch> batches;
    int next_calls = 0;
    std::vector<std::pair<EngineBatch, std::vector<RowOutcome>>> done;
    std::function<void(const EngineBatch &, const std::vector<RowOutcome> &)> on_done;
    std::function<void()> on_check;
    std::function<long()> rate;
    int rate_calls = 0;
    std::vector<int64_t> start_times; // fake time of each request start
    int peak_client = 0;              // most transfers in the client at a start
    std::vector<long> sleeps;
    std::vector<long> throttles;
    int64_t clock = kT0;

private:
    HttpClient &client_;
    std::chrono::steady_clock::time_point deadline_ =
        std::chrono::steady_clock::now() + std::chrono::milliseconds(kDeadlineMs);
};

std::vector<int64_t> Gaps(const std::vector<int64_t> &times) {
    std::vector<int64_t> out;
    for (size_t i = 1; i < times.size(); i++)
        out.push_back(times[i] - times[i - 1]);
    return out;
}

} // namespace

// ---------------------------------------------------------------------------
// Pulling batches and reporting outcomes

TEST(DeliveryEngine, PullsEveryBatchAndReportsEachOnce) {
    TestServer server;
    server.SetDefault(Answer(200, "{}"));
    HttpClient client;
    Harness h(client);
    for (int b = 1; b <= 10; b++)
        h.batches.push_back(Batch(b, 3, b * 10));
    WebhookConnector connector(Settings(server.Url("/hook")), "upsert");

    EngineResult r = RunEngine(client, connector, Context(), Config(4), h.hooks);
    EXPECT_TRUE(r.ok) << r.error;
    EXPECT_EQ(r.error, "");
    EXPECT_EQ(h.next_calls, 11); // ten batches, then the end
    EXPECT_EQ(h.BatchNumbersDone(), (std::vector<int64_t>{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}));
    for (const auto &[batch, outcomes] : h.done) {
        SCOPED_TRACE(batch.number);
        ASSERT_EQ(batch.changes.size(), 3u);
        EXPECT_EQ(batch.changes[0].seq, batch.number * 10);
        ASSERT_EQ(outcomes.size(), 3u);
        for (const auto &o : outcomes) {
            EXPECT_TRUE(o.accepted);
            EXPECT_EQ(o.http_status, 200);
            EXPECT_FALSE(o.uncertain);
        }
    }
    EXPECT_EQ(r.stats.requests, 10);
    EXPECT_EQ(r.stats.retries, 0);
    EXPECT_EQ(r.stats.rows_retried, 0);
    EXPECT_EQ(r.stats.throttled, 0);
    EXPECT_EQ(r.stats.splits, 0);
    EXPECT_TRUE(h.throttles.empty());
    EXPECT_EQ(client.InFlight(), 0u);

    // Each request carries its batch's number and rows.
    auto reqs = server.Requests();
    ASSERT_EQ(reqs.size(), 10u);
    std::set<int64_t> numbers;
    for (const auto &req : reqs) {
        rapidjson::Document doc = Parse(req.body);
        ASSERT_TRUE(doc.IsObject()) << req.body;
        EXPECT_EQ(std::string(doc["sync"].GetString()), "people");
        EXPECT_EQ(doc["run_id"].GetInt64(), 12);
        int64_t n = doc["batch"].GetInt64();
        numbers.insert(n);
        ASSERT_EQ(doc["records"].Size(), 3u);
        EXPECT_EQ(doc["records"][0]["key"]["id"].GetInt64(), n * 10);
    }
    EXPECT_EQ(numbers.size(), 10u);
}

TEST(DeliveryEngine, HandsBatchesBackWithTheNextRequestOnTheWire) {
    // The host records a finished batch in a transaction: the engine hands
    // it back once the next request is started, so that the destination
    // works on that one meanwhile, instead of with nothing in flight.
    TestServer server;
    server.SetDefault(Answer(200, "{}"));
    HttpClient client;
    Harness h(client);
    for (int b = 1; b <= 5; b++)
        h.batches.push_back(Batch(b, 1, b));
    std::vector<size_t> in_flight_at_done;
    std::vector<bool> next_arrived_at_done;
    h.on_done = [&](const EngineBatch &batch, const std::vector<RowOutcome> &) {
        in_flight_at_done.push_back(client.InFlight());
        // Not only started: sent. (The server thread reads it meanwhile;
        // the wait is bounded, and the engine does not poll during it.)
        if (batch.number < 5)
            next_arrived_at_done.push_back(
                server.WaitForRequests(static_cast<size_t>(batch.number) + 1, 1000));
    };
    WebhookConnector connector(Settings(server.Url("/hook")), "upsert");

    EngineResult r = RunEngine(client, connector, Context(), Config(1), h.hooks);
    EXPECT_TRUE(r.ok) << r.error;
    EXPECT_EQ(h.BatchNumbersDone(), (std::vector<int64_t>{1, 2, 3, 4, 5}));
    // Batches 1 to 4 with the next one's request in flight; the last alone.
    EXPECT_EQ(in_flight_at_done, (std::vector<size_t>{1, 1, 1, 1, 0}));
    EXPECT_EQ(next_arrived_at_done, (std::vector<bool>{true, true, true, true}));
}

TEST(DeliveryEngine, NoBatchesNoRequests) {
    TestServer server;
    HttpClient client;
    Harness h(client);
    WebhookConnector connector(Settings(server.Url("/hook")), "upsert");
    EngineResult r = RunEngine(client, connector, Context(), Config(4), h.hooks);
    EXPECT_TRUE(r.ok);
    EXPECT_EQ(h.next_calls, 1);
    EXPECT_TRUE(h.done.empty());
    EXPECT_EQ(r.stats.requests, 0);
    EXPECT_EQ(server.Requests().size(), 0u);
}

TEST(DeliveryEngine, EmptyBatchIsReportedOnce) {
    TestServer server;
    server.SetDefault(Answer(200, "{}"));
    HttpClient client;
    Harness h(client);
    h.batches.push_back(Batch(1, 0));
    h.batches.push_back(Batch(2, 2));
    WebhookConnector connector(Settings(server.Url("/hook")), "upsert");
    EngineResult r = RunEngine(client, connector, Context(), Config(1), h.hooks);
    EXPECT_TRUE(r.ok) << r.error;
    std::string reported;
    for (const auto &d : h.done)
        reported += " #" + std::to_string(d.first.number) + " (" + std::to_string(d.second.size()) + " rows)";
    SCOPED_TRACE("batch_done was called for" + reported);
    EXPECT_EQ(h.BatchNumbersDone(), (std::vector<int64_t>{1, 2}));
    ASSERT_EQ(h.done.size(), 2u);
    for (const auto &d : h.done)
        EXPECT_EQ(d.second.size(), d.first.changes.size());
}

// ---------------------------------------------------------------------------
// Concurrency

class DeliveryEngineInFlight : public ::testing::TestWithParam<int> {};

TEST_P(DeliveryEngineInFlight, NeverMoreThanMaxInFlightAndReachesIt) {
    const int max_in_flight = GetParam();
    TestServer server;
    server.SetDefault(Answer(200, "{}"));
    // The server holds its answers until one more request than allowed is
    // waiting (which must not happen) or 100 ms passed: whatever the engine
    // keeps in flight at once is in flight at the server at once.
    server.HoldAnswers(max_in_flight + 1, 100);
    HttpClient client;
    Harness h(client);
    const int batches = 2 * max_in_flight + 1;
    for (int b = 1; b <= batches; b++)
        h.batches.push_back(Batch(b, 2, b * 10));
    WebhookConnector connector(Settings(server.Url("/hook")), "upsert");

    EngineResult r = RunEngine(client, connector, Context(), Config(max_in_flight), h.hooks);
    EXPECT_TRUE(r.ok) << r.error;
    EXPECT_EQ(static_cast<int>(h.done.size()), batches);
    EXPECT_EQ(r.stats.requests, batches);
    EXPECT_EQ(server.PeakOutstanding(), max_in_flight);
    EXPECT_EQ(h.peak_client, max_in_flight);
    EXPECT_LE(server.Connections(), max_in_flight);
    EXPECT_EQ(static_cast<int>(server.Requests().size()), batches);
}

INSTANTIATE_TEST_SUITE_P(MaxInFlight, DeliveryEngineInFlight, ::testing::Values(1, 3));

// ---------------------------------------------------------------------------
// Retries

TEST(DeliveryEngine, RetryThenSuccess) {
    TestServer server;
    server.Enqueue(Answer(503, "busy"));
    server.SetDefault(Answer(200, R"({"ids": ["r1", "r2", "r3"]})"));
    HttpClient client;
    Harness h(client);
    h.batches.push_back(Batch(1, 3));
    WebhookConnector connector(Settings(server.Url("/hook")), "upsert");

    EngineResult r = RunEngine(client, connector, Context(), Config(4), h.hooks);
    EXPECT_TRUE(r.ok) << r.error;
    EXPECT_EQ(r.stats.requests, 2);
    EXPECT_EQ(r.stats.retries, 1);
    EXPECT_EQ(r.stats.rows_retried, 3);
    EXPECT_EQ(r.stats.throttled, 0);
    EXPECT_TRUE(h.throttles.empty());
    // Backoff before attempt 2 with random 0.5: 125 + 62.5, slept in slices
    // of at most poll_slice_ms.
    EXPECT_EQ(Gaps(h.start_times), std::vector<int64_t>{187});
    EXPECT_EQ(h.SleptMs(), 187);
    for (long s : h.sleeps)
        EXPECT_LE(s, 100);
    ASSERT_EQ(h.done.size(), 1u);
    const auto &outcomes = h.done[0].second;
    ASSERT_EQ(outcomes.size(), 3u);
    for (size_t i = 0; i < 3; i++) {
        EXPECT_TRUE(outcomes[i].accepted);
        EXPECT_EQ(outcomes[i].dest_id, "r" + std::to_string(i + 1));
        // The 503 may have been applied: the rows are marked uncertain.
        EXPECT_TRUE(outcomes[i].uncertain);
    }
    auto reqs = server.Requests();
    ASSERT_EQ(reqs.size(), 2u);
    EXPECT_EQ(reqs[0].body, reqs[1].body);
    EXPECT_EQ(reqs[0].Header("idempotency-key"), reqs[1].Header("idempotency-key"));
}

TEST(DeliveryEngine, RetryWaitsForRetryAfterWithinTheCap) {
    TestServer server;
    server.Enqueue(Answer(503, "", {{"Retry-After", "2"}}));
    server.Enqueue(Answer(503, "", {{"Retry-After", "3600"}}));
    server.SetDefault(Answer(200, "{}"));
    HttpClient client;
    Harness h(client);
    h.batches.push_back(Batch(1, 1));
    WebhookConnector connector(Settings(server.Url("/hook")), "upsert");
    EngineConfig config = Config(2);
    config.retry.max_retry_after_ms = 5000;

    EngineResult r = RunEngine(client, connector, Context(), config, h.hooks);
    EXPECT_TRUE(r.ok) << r.error;
    EXPECT_EQ(r.stats.requests, 3);
    EXPECT_EQ(r.stats.retries, 2);
    EXPECT_EQ(Gaps(h.start_times), (std::vector<int64_t>{2000, 5000}));
    EXPECT_EQ(h.SleptMs(), 7000);
}

TEST(DeliveryEngine, TimedOutAttemptMakesTheRowsUncertain) {
    TestServer server;
    server.Enqueue(Hang());
    server.SetDefault(Answer(200, "{}"));
    HttpClient client;
    Harness h(client);
    h.batches.push_back(Batch(1, 2));
    DestinationSettings s = Settings(server.Url("/hook"));
    s.timeout_ms = 300;
    WebhookConnector connector(s, "upsert");

    EngineResult r = RunEngine(client, connector, Context(), Config(1), h.hooks);
    EXPECT_TRUE(r.ok) << r.error;
    EXPECT_EQ(r.stats.requests, 2);
    EXPECT_EQ(r.stats.retries, 1);
    ASSERT_EQ(h.done.size(), 1u);
    for (const auto &o : h.done[0].second) {
        EXPECT_TRUE(o.accepted);
        EXPECT_TRUE(o.uncertain);
    }
}

TEST(DeliveryEngine, RetriesExhaustedStopTheRun) {
    TestServer server;
    server.Enqueue(Answer(200, "{}"));
    server.SetDefault(Answer(503, "down"));
    HttpClient client;
    Harness h(client);
    for (int b = 1; b <= 4; b++)
        h.batches.push_back(Batch(b, 2, b * 10));
    WebhookConnector connector(Settings(server.Url("/hook")), "upsert");

    EngineResult r = RunEngine(client, connector, Context(), Config(1, 3), h.hooks);
    EXPECT_FALSE(r.ok);
    EXPECT_EQ(r.error, "destination " + server.Url("/hook") + " answered HTTP 503: down (after 3 attempts)");
    // Batch 1 went through before batch 2 failed: it is still reported; no
    // batch is pulled after the failure.
    EXPECT_EQ(h.BatchNumbersDone(), std::vector<int64_t>{1});
    ASSERT_EQ(h.done.size(), 1u);
    ASSERT_EQ(h.done[0].second.size(), 2u);
    EXPECT_TRUE(h.done[0].second[0].accepted);
    EXPECT_EQ(h.next_calls, 2);
    EXPECT_EQ(r.stats.requests, 4);
    EXPECT_EQ(r.stats.retries, 2);
    EXPECT_EQ(r.stats.rows_retried, 4);
    // Backoff before attempts 2 and 3: 187 and 250 + 125.
    EXPECT_EQ(Gaps(h.start_times), (std::vector<int64_t>{0, 187, 375}));
    EXPECT_EQ(server.Requests().size(), 4u);
    EXPECT_EQ(client.InFlight(), 0u);
}

TEST(DeliveryEngine, OneAttemptOnly) {
    TestServer server;
    server.SetDefault(Answer(500, ""));
    HttpClient client;
    Harness h(client);
    h.batches.push_back(Batch(1, 1));
    WebhookConnector connector(Settings(server.Url("/hook")), "upsert");
    EngineResult r = RunEngine(client, connector, Context(), Config(1, 1), h.hooks);
    EXPECT_FALSE(r.ok);
    EXPECT_EQ(r.error, "destination " + server.Url("/hook") + " answered HTTP 500 (after 1 attempt)");
    EXPECT_EQ(r.stats.requests, 1);
    EXPECT_EQ(r.stats.retries, 0);
    EXPECT_TRUE(h.done.empty());
}

// ---------------------------------------------------------------------------
// Throttling

TEST(DeliveryEngine, ThrottledWaitsAndResendsWithoutUsingAnAttempt) {
    TestServer server;
    server.Enqueue(Answer(429, "slow down", {{"Retry-After", "1"}}));
    server.Enqueue(Answer(429, "slow down"));
    server.SetDefault(Answer(200, "{}"));
    HttpClient client;
    Harness h(client);
    h.batches.push_back(Batch(1, 2));
    WebhookConnector connector(Settings(server.Url("/hook")), "upsert");

    // One attempt only: a throttled request is not an attempt.
    EngineResult r = RunEngine(client, connector, Context(), Config(1, 1), h.hooks);
    EXPECT_TRUE(r.ok) << r.error;
    // Retry-After: 1, then no Retry-After (one second by default).
    EXPECT_EQ(h.throttles, (std::vector<long>{1000, 1000}));
    EXPECT_EQ(Gaps(h.start_times), (std::vector<int64_t>{1000, 1000}));
    EXPECT_EQ(r.stats.throttled, 2);
    EXPECT_EQ(r.stats.retries, 0);
    EXPECT_EQ(r.stats.rows_retried, 0);
    EXPECT_EQ(r.stats.requests, 3);
    ASSERT_EQ(h.done.size(), 1u);
    for (const auto &o : h.done[0].second) {
        EXPECT_TRUE(o.accepted);
        EXPECT_FALSE(o.uncertain);
    }
    auto reqs = server.Requests();
    ASSERT_EQ(reqs.size(), 3u);
    EXPECT_EQ(reqs[0].body, reqs[2].body);
}

TEST(DeliveryEngine, ThrottleWaitIsCapped) {
    TestServer server;
    server.Enqueue(Answer(429, "", {{"Retry-After", "86400"}}));
    server.SetDefault(Answer(200, "{}"));
    HttpClient client;
    Harness h(client);
    h.batches.push_back(Batch(1, 1));
    WebhookConnector connector(Settings(server.Url("/hook")), "upsert");
    EngineConfig config = Config(1);
    config.retry.max_retry_after_ms = 2500;
    EngineResult r = RunEngine(client, connector, Context(), config, h.hooks);
    EXPECT_TRUE(r.ok) << r.error;
    EXPECT_EQ(h.throttles, std::vector<long>{2500});
    EXPECT_EQ(Gaps(h.start_times), std::vector<int64_t>{2500});
}

TEST(DeliveryEngine, ThrottledTooOftenStopsTheRun) {
    TestServer server;
    server.SetDefault(Answer(429, "slow", {{"Retry-After", "1"}}));
    HttpClient client;
    Harness h(client);
    h.batches.push_back(Batch(1, 1));
    h.batches.push_back(Batch(2, 1, 5));
    WebhookConnector connector(Settings(server.Url("/hook")), "upsert");
    EngineConfig config = Config(1);
    config.max_throttles_per_request = 2;
    EngineResult r = RunEngine(client, connector, Context(), config, h.hooks);
    EXPECT_FALSE(r.ok);
    EXPECT_EQ(r.error, "destination " + server.Url("/hook") +
                           " answered HTTP 429: slow (still throttled after 2 waits)");
    EXPECT_EQ(h.throttles, (std::vector<long>{1000, 1000}));
    EXPECT_EQ(r.stats.throttled, 3);
    EXPECT_EQ(r.stats.requests, 3);
    EXPECT_TRUE(h.done.empty());
    EXPECT_EQ(h.next_calls, 1);
}

// ---------------------------------------------------------------------------
// Splitting

namespace {

// Answers 400 to any request whose body holds the marker, 200 otherwise.
void RefuseMarker(TestServer &server, const std::string &marker) {
    server.SetResponder([marker](const ReceivedRequest &req) -> std::optional<ScriptedResponse> {
        if (req.body.find(marker) != std::string::npos)
            return Answer(400, R"({"error": "row is bad", "code": "E_BAD"})");
        return Answer(200, "{}");
    });
}

std::multiset<size_t> RequestSizes(const TestServer &server) {
    std::multiset<size_t> out;
    for (const auto &req : server.Requests())
        out.insert(RecordCount(req));
    return out;
}

} // namespace

TEST(DeliveryEngine, SplitIsolatesOneBadRow) {
    TestServer server;
    RefuseMarker(server, "BAD-ROW");
    HttpClient client;
    Harness h(client);
    h.batches.push_back(Batch(1, 8, 1, {{5, "BAD-ROW"}}));
    WebhookConnector connector(Settings(server.Url("/hook")), "upsert");

    EngineResult r = RunEngine(client, connector, Context(), Config(4), h.hooks);
    EXPECT_TRUE(r.ok) << r.error;
    ASSERT_EQ(h.done.size(), 1u);
    const auto &outcomes = h.done[0].second;
    ASSERT_EQ(outcomes.size(), 8u);
    for (size_t i = 0; i < 8; i++) {
        SCOPED_TRACE(i);
        if (i == 5) {
            EXPECT_FALSE(outcomes[i].accepted);
            EXPECT_EQ(outcomes[i].http_status, 400);
            EXPECT_EQ(outcomes[i].reason, "row is bad");
            EXPECT_EQ(outcomes[i].error_code, "E_BAD");
        } else {
            EXPECT_TRUE(outcomes[i].accepted);
            EXPECT_EQ(outcomes[i].http_status, 200);
        }
        EXPECT_FALSE(outcomes[i].uncertain);
    }
    // 8 -> [0..3] ok, [4..7] refused -> [4,5] refused, [6,7] ok -> [4] ok,
    // [5] rejected: three splits, seven requests.
    EXPECT_EQ(r.stats.splits, 3);
    EXPECT_EQ(r.stats.requests, 7);
    EXPECT_EQ(r.stats.retries, 0);
    EXPECT_EQ(RequestSizes(server), (std::multiset<size_t>{8, 4, 4, 2, 2, 1, 1}));
}

TEST(DeliveryEngine, SplitIsolatesTwoBadRows) {
    TestServer server;
    RefuseMarker(server, "BAD-ROW");
    HttpClient client;
    Harness h(client);
    h.batches.push_back(Batch(1, 8, 1, {{1, "BAD-ROW"}, {6, "BAD-ROW"}}));
    WebhookConnector connector(Settings(server.Url("/hook")), "upsert");

    EngineResult r = RunEngine(client, connector, Context(), Config(2), h.hooks);
    EXPECT_TRUE(r.ok) << r.error;
    ASSERT_EQ(h.done.size(), 1u);
    const auto &outcomes = h.done[0].second;
    ASSERT_EQ(outcomes.size(), 8u);
    for (size_t i = 0; i < 8; i++)
        EXPECT_EQ(outcomes[i].accepted, i != 1 && i != 6) << i;
    // 8 -> 4+4 (both refused) -> [0,1] refused, [2,3] ok, [4,5] ok, [6,7]
    // refused -> four single rows: five splits, eleven requests.
    EXPECT_EQ(r.stats.splits, 5);
    EXPECT_EQ(r.stats.requests, 11);
    EXPECT_EQ(RequestSizes(server), (std::multiset<size_t>{8, 4, 4, 2, 2, 2, 2, 1, 1, 1, 1}));
}

TEST(DeliveryEngine, SplitOfAnOddBatch) {
    TestServer server;
    RefuseMarker(server, "BAD-ROW");
    HttpClient client;
    Harness h(client);
    h.batches.push_back(Batch(1, 5, 1, {{4, "BAD-ROW"}}));
    WebhookConnector connector(Settings(server.Url("/hook")), "upsert");
    EngineResult r = RunEngine(client, connector, Context(), Config(4), h.hooks);
    EXPECT_TRUE(r.ok) << r.error;
    ASSERT_EQ(h.done.size(), 1u);
    ASSERT_EQ(h.done[0].second.size(), 5u);
    for (size_t i = 0; i < 5; i++)
        EXPECT_EQ(h.done[0].second[i].accepted, i != 4) << i;
    // 5 -> [0,1] ok, [2,3,4] refused -> [2] ok, [3,4] refused -> [3] ok, [4].
    EXPECT_EQ(r.stats.splits, 3);
    EXPECT_EQ(RequestSizes(server), (std::multiset<size_t>{5, 2, 3, 1, 2, 1, 1}));
}

// ---------------------------------------------------------------------------
// Fatal answers

TEST(DeliveryEngine, FatalStopsPullingBatches) {
    TestServer server;
    server.SetDefault(Answer(401, R"({"status": "error", "message": "Authentication credentials not found.",
                                       "category": "INVALID_AUTHENTICATION"})"));
    HttpClient client;
    Harness h(client);
    for (int b = 1; b <= 5; b++)
        h.batches.push_back(Batch(b, 2, b * 10));
    HubSpotConnector connector(HubSpotSettings(server.Url("/")), SyncTarget{});

    EngineResult r = RunEngine(client, connector, Context(), Config(1), h.hooks);
    EXPECT_FALSE(r.ok);
    EXPECT_EQ(r.error, "HubSpot refused the request (HTTP 401 INVALID_AUTHENTICATION): Authentication "
                       "credentials not found.");
    EXPECT_EQ(h.next_calls, 1);
    EXPECT_TRUE(h.done.empty());
    EXPECT_EQ(r.stats.requests, 1);
    EXPECT_EQ(r.stats.retries, 0);
    auto reqs = server.Requests();
    ASSERT_EQ(reqs.size(), 1u);
    EXPECT_EQ(reqs[0].target, "/crm/v3/objects/contacts/batch/upsert");
    EXPECT_EQ(reqs[0].Header("authorization"), std::optional<std::string>("Bearer pat-test"));
    EXPECT_EQ(h.batches.size(), 4u);
}

// ---------------------------------------------------------------------------
// Rate limits

TEST(DeliveryEngine, RateDelayDefersRequests) {
    TestServer server;
    server.SetDefault(Answer(200, "{}"));
    HttpClient client;
    Harness h(client);
    h.batches.push_back(Batch(1, 2));
    int denials = 2;
    h.rate = [&]() -> long { return denials-- > 0 ? 40 : 0; };
    WebhookConnector connector(Settings(server.Url("/hook")), "upsert");

    EngineResult r = RunEngine(client, connector, Context(), Config(4), h.hooks);
    EXPECT_TRUE(r.ok) << r.error;
    EXPECT_EQ(h.rate_calls, 3);
    EXPECT_EQ(h.sleeps, (std::vector<long>{40, 40}));
    EXPECT_EQ(h.start_times, std::vector<int64_t>{kT0 + 80});
    EXPECT_EQ(r.stats.requests, 1);
    EXPECT_EQ(server.Requests().size(), 1u);
    ASSERT_EQ(h.done.size(), 1u);
}

TEST(DeliveryEngine, RateLimiterSpacesRequests) {
    TestServer server;
    server.SetDefault(Answer(200, "{}"));
    HttpClient client;
    Harness h(client);
    for (int b = 1; b <= 4; b++)
        h.batches.push_back(Batch(b, 1, b));
    // One request per 50 ms, as a shared limiter would hand out slots.
    int64_t next_slot = 0;
    h.rate = [&]() -> long {
        if (h.clock < next_slot)
            return static_cast<long>(next_slot - h.clock);
        next_slot = h.clock + 50;
        return 0;
    };
    WebhookConnector connector(Settings(server.Url("/hook")), "upsert");
    EngineResult r = RunEngine(client, connector, Context(), Config(2), h.hooks);
    EXPECT_TRUE(r.ok) << r.error;
    EXPECT_EQ(r.stats.requests, 4);
    ASSERT_EQ(h.start_times.size(), 4u);
    for (int64_t gap : Gaps(h.start_times))
        EXPECT_GE(gap, 50);
    EXPECT_EQ(h.done.size(), 4u);
}

// A request held back by the rate limit goes out when its slot comes, not
// when the requests already on the wire are answered: the engine's wait for
// answers ends at the next request's due time. Here the server answers only
// once both requests wait (or after 3 s), and the poll slice is longer than
// that: an engine that waited the slice for an answer would see the first
// answer alone, after 3 s, before sending the second request.
TEST(DeliveryEngine, ARequestDueWhileOthersAreInFlightIsNotHeldForTheirAnswers) {
    TestServer server;
    server.SetDefault(Answer(200, "{}"));
    HttpClient client;
    // A connection already open, as in a run past its first requests: a new
    // one would leave libcurl a connection timer of its own (about 200 ms)
    // that ends any wait early and would hide a wait for the whole slice.
    HttpRequest warm;
    warm.url = server.Url("/warm");
    warm.body = "{}";
    client.Start(1000, warm);
    ASSERT_TRUE(revetl_test::Await(client, 1000, kDeadlineMs).has_value());
    server.HoldAnswers(2, 3000);
    Harness h(client);
    // Real time here: the wait under test is a real one.
    auto real_ms = [] {
        return std::chrono::duration_cast<std::chrono::milliseconds>(
                   std::chrono::steady_clock::now().time_since_epoch())
            .count();
    };
    h.hooks.now_ms = real_ms;
    h.hooks.sleep = [](long ms) { std::this_thread::sleep_for(std::chrono::milliseconds(ms)); };
    h.batches.push_back(Batch(1, 1, 1));
    h.batches.push_back(Batch(2, 1, 2));
    int calls = 0;
    h.rate = [&]() -> long { return ++calls == 2 ? 30 : 0; }; // the second request waits 30 ms
    WebhookConnector connector(Settings(server.Url("/hook")), "upsert");
    EngineConfig config = Config(4);
    config.poll_slice_ms = 8000;

    EngineResult r = RunEngine(client, connector, Context(), config, h.hooks);
    EXPECT_TRUE(r.ok) << r.error;
    EXPECT_EQ(r.stats.requests, 2);
    EXPECT_EQ(h.rate_calls, 3);
    EXPECT_EQ(server.PeakOutstanding(), 2); // the second went out while the first waited
    EXPECT_EQ(h.done.size(), 2u);
}

// A success the connector cannot read is retried, and the destination may
// have applied it (as with a 202 from Klaviyo without a job id): the rows
// are uncertain, so the run records them for re-verification.
class RetriesAnUnreadableSuccess : public WebhookConnector {
public:
    using WebhookConnector::WebhookConnector;
    Verdict Interpret(const PreparedRequest &request, const std::vector<Change> &changes,
                      const HttpResponse &response) override {
        if (response.status == 202) {
            Verdict v;
            v.kind = Verdict::Kind::Retry;
            v.error = "the destination's answer could not be read";
            return v;
        }
        return WebhookConnector::Interpret(request, changes, response);
    }
};

TEST(DeliveryEngine, RetryAfterAnUnreadableSuccessMakesTheRowsUncertain) {
    TestServer server;
    server.Enqueue(Answer(202, "not what the connector expects"));
    server.SetDefault(Answer(200, "{}"));
    HttpClient client;
    Harness h(client);
    h.batches.push_back(Batch(1, 2));
    RetriesAnUnreadableSuccess connector(Settings(server.Url("/hook")), "upsert");

    EngineResult r = RunEngine(client, connector, Context(), Config(1), h.hooks);
    EXPECT_TRUE(r.ok) << r.error;
    EXPECT_EQ(r.stats.requests, 2);
    EXPECT_EQ(r.stats.retries, 1);
    ASSERT_EQ(h.done.size(), 1u);
    ASSERT_EQ(h.done[0].second.size(), 2u);
    for (const auto &o : h.done[0].second) {
        EXPECT_TRUE(o.accepted);
        EXPECT_TRUE(o.uncertain);
    }
}

// A success whose answer is cut at the request's limit cannot be read, and
// sending it again could apply it twice: the run stops, no row recorded.
TEST(DeliveryEngine, ASuccessTooLargeToReadStopsTheRun) {
    TestServer server;
    server.SetDefault(Answer(200, "{\"ids\": [\"" + std::string(kDefaultMaxResponseBody, 'x') + "\"]}"));
    HttpClient client;
    Harness h(client);
    h.batches.push_back(Batch(1, 3));
    h.batches.push_back(Batch(2, 3, 4));
    WebhookConnector connector(Settings(server.Url("/hook")), "upsert");

    EngineResult r = RunEngine(client, connector, Context(), Config(1), h.hooks);
    EXPECT_FALSE(r.ok);
    EXPECT_EQ(r.error,
              "the destination answered HTTP 200 with more than 1048576 bytes, the most revetl reads of "
              "an answer to this request, so the outcome of its 3 rows cannot be read");
    EXPECT_EQ(r.stats.requests, 1);
    EXPECT_EQ(r.stats.retries, 0);
    EXPECT_TRUE(h.done.empty());
}

// ---------------------------------------------------------------------------
// Leaving early

TEST(DeliveryEngine, ExceptionFromBatchDonePropagatesAndCancels) {
    TestServer server;
    server.Enqueue(Answer(200, "{}"));
    server.SetDefault(Hang());
    HttpClient client;
    Harness h(client);
    for (int b = 1; b <= 3; b++)
        h.batches.push_back(Batch(b, 1, b));
    size_t in_flight_at_throw = 99;
    h.on_done = [&](const EngineBatch &, const std::vector<RowOutcome> &) {
        in_flight_at_throw = client.InFlight();
        throw std::runtime_error("commit failed");
    };
    WebhookConnector connector(Settings(server.Url("/hook")), "upsert");

    try {
        RunEngine(client, connector, Context(), Config(3), h.hooks);
        FAIL() << "expected the exception from batch_done";
    } catch (const std::runtime_error &e) {
        EXPECT_STREQ(e.what(), "commit failed");
    }
    EXPECT_EQ(in_flight_at_throw, 2u); // the other two batches hang
    EXPECT_EQ(client.InFlight(), 0u);

    // The client still works for the next run.
    server.SetDefault(Answer(200, "{}"));
    Harness again(client);
    again.batches.push_back(Batch(7, 1));
    EngineResult r = RunEngine(client, connector, Context(), Config(3), again.hooks);
    EXPECT_TRUE(r.ok) << r.error;
    EXPECT_EQ(again.BatchNumbersDone(), std::vector<int64_t>{7});
}

TEST(DeliveryEngine, InterruptPropagatesAndCancels) {
    TestServer server;
    server.SetDefault(Hang());
    HttpClient client;
    Harness h(client);
    h.batches.push_back(Batch(1, 1));
    h.batches.push_back(Batch(2, 1, 2));
    h.on_check = [&] {
        if (client.InFlight() == 2 && server.Requests().size() == 2)
            throw std::runtime_error("canceling statement due to user request");
    };
    WebhookConnector connector(Settings(server.Url("/hook")), "upsert");
    EXPECT_THROW(RunEngine(client, connector, Context(), Config(2), h.hooks), std::runtime_error);
    EXPECT_EQ(client.InFlight(), 0u);
    EXPECT_TRUE(h.done.empty());
}

// ---------------------------------------------------------------------------
// With the HubSpot connector

namespace {

std::string Json(const rapidjson::Value &v) {
    rapidjson::StringBuffer buf;
    rapidjson::Writer<rapidjson::StringBuffer> w(buf);
    v.Accept(w);
    return std::string(buf.GetString(), buf.GetSize());
}

// A HubSpot stand-in: upserts answer 200 with one result per input (in
// reverse order, emails upper-cased, id "hs-<trace id>"), archives 204.
std::optional<ScriptedResponse> FakeHubSpot(const ReceivedRequest &req) {
    if (req.target.size() >= 8 && req.target.compare(req.target.size() - 8, 8, "/archive") == 0)
        return Answer(204, "");
    rapidjson::Document in = Parse(req.body);
    if (in.HasParseError() || !in.IsObject() || !in.HasMember("inputs"))
        return Answer(400, R"({"message": "bad body", "category": "VALIDATION_ERROR"})");
    rapidjson::Document out;
    out.SetObject();
    auto &a = out.GetAllocator();
    rapidjson::Value results(rapidjson::kArrayType);
    const auto &inputs = in["inputs"].GetArray();
    for (rapidjson::SizeType k = inputs.Size(); k-- > 0;) {
        const auto &input = inputs[k];
        std::string email = input["properties"]["email"].GetString();
        std::transform(email.begin(), email.end(), email.begin(),
                       [](unsigned char c) { return std::toupper(c); });
        std::string id = std::string("hs-") + input["objectWriteTraceId"].GetString();
        rapidjson::Value props(rapidjson::kObjectType);
        props.AddMember("email", rapidjson::Value(email.c_str(), a), a);
        rapidjson::Value r(rapidjson::kObjectType);
        r.AddMember("id", rapidjson::Value(id.c_str(), a), a);
        r.AddMember("properties", props, a);
        results.PushBack(r, a);
    }
    out.AddMember("status", "COMPLETE", a);
    out.AddMember("results", results, a);
    return Answer(200, Json(out));
}

} // namespace

TEST(DeliveryEngine, HubSpotBatchOfManyRows) {
    TestServer server;
    server.SetResponder(FakeHubSpot);
    HttpClient client;
    Harness h(client);
    EngineBatch batch = Batch(1, 250);
    Change no_email;
    no_email.seq = 900;
    no_email.key = "{\"id\": 900}";
    no_email.payload = "{\"name\": \"nobody\"}";
    batch.changes.push_back(no_email);
    Change removal;
    removal.seq = 901;
    removal.op = Change::Op::Remove;
    removal.key = "{\"id\": 901}";
    removal.dest_id = "hs-77";
    batch.changes.push_back(removal);
    Change unknown_removal = removal;
    unknown_removal.seq = 902;
    unknown_removal.dest_id = "";
    batch.changes.push_back(unknown_removal);
    h.batches.push_back(batch);
    SyncTarget target;
    target.mode = "mirror";
    HubSpotConnector connector(HubSpotSettings(server.Url("/")), target);

    EngineResult r = RunEngine(client, connector, Context(), Config(2), h.hooks);
    EXPECT_TRUE(r.ok) << r.error;
    EXPECT_EQ(r.stats.requests, 4); // 100 + 100 + 50 upserts, one archive
    ASSERT_EQ(h.done.size(), 1u);
    const auto &outcomes = h.done[0].second;
    ASSERT_EQ(outcomes.size(), 253u);
    for (size_t i = 0; i < 250; i++) {
        SCOPED_TRACE(i);
        EXPECT_TRUE(outcomes[i].accepted);
        EXPECT_EQ(outcomes[i].http_status, 200);
        EXPECT_EQ(outcomes[i].dest_id, "hs-" + std::to_string(i + 1));
    }
    EXPECT_FALSE(outcomes[250].accepted);
    EXPECT_EQ(outcomes[250].error_code, "NO_MATCH_VALUE");
    EXPECT_TRUE(outcomes[251].accepted);
    EXPECT_EQ(outcomes[251].http_status, 204);
    EXPECT_FALSE(outcomes[252].accepted);
    EXPECT_EQ(outcomes[252].error_code, "NO_RECORD_ID");
    // A removal without a record id can never be sent: final, with a hint;
    // the other refusal is an ordinary one, tried again by the next run.
    EXPECT_TRUE(outcomes[252].unresolvable_removal);
    EXPECT_NE(outcomes[252].hint.find("by hand"), std::string::npos);
    EXPECT_FALSE(outcomes[250].unresolvable_removal);
    EXPECT_FALSE(outcomes[251].unresolvable_removal);

    std::multiset<size_t> upsert_sizes;
    int archives = 0;
    for (const auto &req : server.Requests()) {
        EXPECT_EQ(req.method, "POST");
        EXPECT_EQ(req.Header("authorization"), std::optional<std::string>("Bearer pat-test"));
        EXPECT_EQ(req.Header("content-type"), std::optional<std::string>("application/json"));
        if (req.target == "/crm/v3/objects/contacts/batch/archive") {
            archives++;
            EXPECT_EQ(req.body, R"({"inputs":[{"id":"hs-77"}]})");
        } else {
            EXPECT_EQ(req.target, "/crm/v3/objects/contacts/batch/upsert");
            upsert_sizes.insert(Parse(req.body)["inputs"].Size());
        }
    }
    EXPECT_EQ(archives, 1);
    EXPECT_EQ(upsert_sizes, (std::multiset<size_t>{100, 100, 50}));
}

TEST(DeliveryEngine, HubSpotTenSecondlyLimitWaitsTheInterval) {
    TestServer server;
    server.Enqueue(Answer(
        429, R"({"status": "error", "message": "ten secondly limit", "policyName": "TEN_SECONDLY_ROLLING"})",
        {{"X-HubSpot-RateLimit-Interval-Milliseconds", "1500"}}));
    server.SetDefault(Answer(200, R"({"results": [{"id": "5", "properties": {"email": "u1@x.com"}}]})"));
    HttpClient client;
    Harness h(client);
    h.batches.push_back(Batch(1, 1));
    HubSpotConnector connector(HubSpotSettings(server.Url("")), SyncTarget{});
    EngineResult r = RunEngine(client, connector, Context(), Config(4, 1), h.hooks);
    EXPECT_TRUE(r.ok) << r.error;
    EXPECT_EQ(h.throttles, std::vector<long>{1500});
    EXPECT_EQ(Gaps(h.start_times), std::vector<int64_t>{1500});
    EXPECT_EQ(r.stats.throttled, 1);
    EXPECT_EQ(r.stats.retries, 0);
    ASSERT_EQ(h.done.size(), 1u);
    ASSERT_EQ(h.done[0].second.size(), 1u);
    EXPECT_TRUE(h.done[0].second[0].accepted);
    EXPECT_EQ(h.done[0].second[0].dest_id, "5");
}

TEST(DeliveryEngine, HubSpotDailyLimitIsFatal) {
    TestServer server;
    server.SetDefault(Answer(429, R"({"status": "error", "message": "daily limit", "policyName": "DAILY"})"));
    HttpClient client;
    Harness h(client);
    h.batches.push_back(Batch(1, 1));
    h.batches.push_back(Batch(2, 1, 2));
    HubSpotConnector connector(HubSpotSettings(server.Url("/")), SyncTarget{});
    EngineResult r = RunEngine(client, connector, Context(), Config(1), h.hooks);
    EXPECT_FALSE(r.ok);
    EXPECT_EQ(r.error, "HubSpot's daily API limit is spent: daily limit");
    EXPECT_TRUE(h.throttles.empty());
    EXPECT_EQ(r.stats.requests, 1);
    EXPECT_EQ(h.next_calls, 1);
}

TEST(DeliveryEngine, RowsRejectedBeforeSendingNeedNoRequest) {
    TestServer server;
    HttpClient client;
    Harness h(client);
    EngineBatch batch;
    batch.number = 1;
    for (int i = 0; i < 2; i++) {
        Change c;
        c.seq = i + 1;
        c.key = "{\"id\": " + std::to_string(i + 1) + "}";
        c.payload = "{\"name\": \"no email\"}";
        batch.changes.push_back(c);
    }
    h.batches.push_back(batch);
    HubSpotConnector connector(HubSpotSettings(server.Url("/")), SyncTarget{});
    EngineResult r = RunEngine(client, connector, Context(), Config(4), h.hooks);
    EXPECT_TRUE(r.ok) << r.error;
    EXPECT_EQ(r.stats.requests, 0);
    EXPECT_EQ(server.Requests().size(), 0u);
    ASSERT_EQ(h.done.size(), 1u);
    ASSERT_EQ(h.done[0].second.size(), 2u);
    for (const auto &o : h.done[0].second) {
        EXPECT_FALSE(o.accepted);
        EXPECT_EQ(o.error_code, "NO_MATCH_VALUE");
    }
}

TEST(DeliveryEngine, HubSpotSplitFindsTheRefusedRow) {
    TestServer server;
    server.SetResponder([](const ReceivedRequest &req) -> std::optional<ScriptedResponse> {
        if (req.body.find("BAD-ROW") != std::string::npos)
            return Answer(400, R"({"status": "error", "message": "Property values were not valid",
                                   "category": "VALIDATION_ERROR"})");
        return FakeHubSpot(req);
    });
    HttpClient client;
    Harness h(client);
    h.batches.push_back(Batch(1, 4, 1, {{2, "BAD-ROW"}}));
    HubSpotConnector connector(HubSpotSettings(server.Url("/")), SyncTarget{});
    EngineResult r = RunEngine(client, connector, Context(), Config(4), h.hooks);
    EXPECT_TRUE(r.ok) << r.error;
    ASSERT_EQ(h.done.size(), 1u);
    const auto &outcomes = h.done[0].second;
    ASSERT_EQ(outcomes.size(), 4u);
    for (size_t i = 0; i < 4; i++) {
        SCOPED_TRACE(i);
        if (i == 2) {
            EXPECT_FALSE(outcomes[i].accepted);
            EXPECT_EQ(outcomes[i].http_status, 400);
            EXPECT_EQ(outcomes[i].error_code, "VALIDATION_ERROR");
            EXPECT_EQ(outcomes[i].reason, "Property values were not valid");
        } else {
            EXPECT_TRUE(outcomes[i].accepted);
            EXPECT_EQ(outcomes[i].dest_id, "hs-" + std::to_string(i + 1));
        }
    }
    // 4 -> [0,1] ok, [2,3] refused -> [2] rejected, [3] ok.
    EXPECT_EQ(r.stats.splits, 2);
    EXPECT_EQ(r.stats.requests, 5);
}

namespace {

// A connector that sends nothing and refuses every row at once, each
// marked as an unresolvable removal, whatever the row is: the engine keeps
// the mark only where it may apply.
class MarksEveryRowUnresolvable : public Connector {
public:
    std::vector<PreparedRequest> Prepare(const BatchContext &, const std::vector<Change> &,
                                         const std::vector<size_t> &rows,
                                         std::vector<std::pair<size_t, RowOutcome>> &immediate) override {
        for (size_t i : rows)
            immediate.emplace_back(i, UnresolvableRemoval("Acme", "Acme record id", "deleted", "email"));
        return {};
    }
    Verdict Interpret(const PreparedRequest &, const std::vector<Change> &, const HttpResponse &) override {
        return Verdict();
    }
};

} // namespace

TEST(DeliveryEngine, UnresolvableRemovalOnlyForARemovalWithoutRecordId) {
    HttpClient client;
    Harness h(client);
    EngineBatch batch = Batch(1, 1); // an add
    Change no_id;
    no_id.seq = 2;
    no_id.op = Change::Op::Remove;
    no_id.key = "{\"id\": 2}";
    batch.changes.push_back(no_id);
    Change known = no_id; // a removal whose record id is known
    known.seq = 3;
    known.key = "{\"id\": 3}";
    known.dest_id = "rec-3";
    batch.changes.push_back(known);
    Change update = known; // a change of a record with a known id
    update.seq = 4;
    update.op = Change::Op::Change;
    update.key = "{\"id\": 4}";
    update.payload = "{\"email\": \"u4@x.com\"}";
    batch.changes.push_back(update);
    h.batches.push_back(batch);
    MarksEveryRowUnresolvable connector;

    EngineResult r = RunEngine(client, connector, Context(), Config(2), h.hooks);
    EXPECT_TRUE(r.ok) << r.error;
    EXPECT_EQ(r.stats.requests, 0);
    ASSERT_EQ(h.done.size(), 1u);
    const auto &outcomes = h.done[0].second;
    ASSERT_EQ(outcomes.size(), 4u);
    for (size_t i = 0; i < 4; i++) {
        SCOPED_TRACE(i);
        // Every row is refused, once, with the same code and hint.
        EXPECT_FALSE(outcomes[i].accepted);
        EXPECT_EQ(outcomes[i].error_code, "NO_RECORD_ID");
        EXPECT_NE(outcomes[i].hint.find("look it up by the email value"), std::string::npos);
    }
    EXPECT_FALSE(outcomes[0].unresolvable_removal); // an add
    EXPECT_TRUE(outcomes[1].unresolvable_removal);  // a removal, no record id
    EXPECT_FALSE(outcomes[2].unresolvable_removal); // a removal whose id is known
    EXPECT_FALSE(outcomes[3].unresolvable_removal); // a change
}
