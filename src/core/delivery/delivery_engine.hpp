// The delivery engine: keeps up to max_in_flight requests going to one
// destination, pulls batches as it has room, respects the destination's
// rate limit before each request, retries transient failures with capped
// backoff, waits out throttling (not counted as an attempt), splits refused
// batches to isolate bad rows, and hands each batch's outcomes back as soon
// as the batch is complete. Pure C++: the host supplies batches, commits
// outcomes, checks interrupts and keeps the shared rate limiter.
#pragma once

#include "core/connectors/connector.hpp"
#include "core/delivery/retry_policy.hpp"

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

namespace revetl {

// A job an interrupted run left pending at the destination (kept by the
// host): its batch is resumed by polling it rather than sending it again.
struct KeptJob {
    int64_t handle = 0; // the host's id for the job
    FlowStep step;      // what the connector's Resume needs
};

struct EngineBatch {
    int64_t number = 0;
    std::vector<Change> changes;
    std::optional<KeptJob> resume; // set: poll this job for all the changes
};

struct EngineStats {
    int64_t requests = 0;
    int64_t retries = 0;      // requests sent again after a transient failure
    int64_t rows_retried = 0; // rows in those requests
    int64_t throttled = 0;    // throttling answers (429) waited out
    int64_t splits = 0;       // refused requests split in halves
    int64_t jobs = 0;         // asynchronous jobs the destination accepted
    int64_t polls = 0;        // follow-up calls of flows (job polls, writes after lookups)
    int64_t jobs_resumed = 0; // kept jobs of an interrupted run polled again
    int64_t jobs_resent = 0;  // jobs the destination no longer knew, their rows sent again
    int64_t auth_replays = 0; // requests replayed after refreshing expired credentials
};

struct EngineHooks {
    std::function<std::optional<EngineBatch>()> next_batch;
    // All rows of `batch` have an outcome; may throw to stop the run.
    std::function<void(const EngineBatch &batch, const std::vector<RowOutcome> &outcomes)> batch_done;
    std::function<void()> check_interrupts = [] {};
    // Waits about `ms` (nothing in flight, the next request not yet due).
    std::function<void(long ms)> sleep;
    // Milliseconds to wait before a request may go out; 0 means go now (and
    // the slot is taken).
    std::function<long()> rate_delay_ms = [] { return 0L; };
    // The destination asked everyone to wait this long.
    std::function<void(long ms)> throttle = [](long) {};
    // Auth that changes during a run (OAuth): applied to every request just
    // before it goes, first attempt and replays alike. Empty: none.
    std::function<void(HttpRequest &request)> authorize;
    // A request sent as `sent` was answered AuthExpired: make fresh
    // credentials (a no-op when another request already did since `sent`
    // went). Returns "" when the request may be replayed, else why the run
    // stops (no secrets). Empty: credentials cannot be refreshed.
    std::function<std::string(const HttpRequest &sent)> refresh_auth;
    std::function<double()> random = [] { return 0.5; };
    std::function<int64_t()> now_ms;
    // The destination accepted rows of `batch` (poll.rows) as a job that
    // `poll` polls: the host keeps it (a short transaction, before the
    // first poll) and returns its handle for the calls below.
    std::function<int64_t(const EngineBatch &batch, const PreparedRequest &poll)> job_accepted =
        [](const EngineBatch &, const PreparedRequest &) { return int64_t{0}; };
    // A kept job will not give results (the destination no longer knows it):
    // its rows are sent again. `why` may quote the destination.
    std::function<void(int64_t handle, const std::string &why)> job_lost = [](int64_t, const std::string &) {
    };
    // When set, kept equal to the run's counters as they grow (before each
    // batch_done), so that the host records them with each commit and a
    // run stopped half-way still counts the requests it made.
    EngineStats *live_stats = nullptr;
    // Called after *live_stats changed (a request started, a copy resent,
    // a batch done): the host may keep the counts somewhere that outlives
    // the process.
    std::function<void()> stats_changed;
};

struct EngineConfig {
    int max_in_flight = 4;
    RetryPolicy retry;
    int max_throttles_per_request = 60; // bounded: waiting forever is not an option
    int poll_slice_ms = 100;            // interrupts are checked at least this often
    JobPolling jobs;
};

struct EngineResult {
    bool ok = true;
    std::string error; // when !ok: why the run stopped (no secrets)
    EngineStats stats;
};

EngineResult RunEngine(HttpClient &client, Connector &connector, const BatchContext &context,
                       const EngineConfig &config, EngineHooks &hooks);

} // namespace revetl
