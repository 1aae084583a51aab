#include "core/delivery/delivery_engine.hpp"

#include <algorithm>
#include <chrono>
#include <deque>
#include <map>
#include <memory>

namespace revetl {

namespace {

struct BatchState {
    EngineBatch batch;
    std::vector<std::optional<RowOutcome>> outcomes;
    size_t remaining = 0;
};

struct Work {
    size_t batch = 0; // index into the open batches
    PreparedRequest request;
    int attempt = 1;
    int throttles = 0;
    int64_t ready_at = 0;
    bool uncertain = false;     // an attempt ended without a clear answer
    bool auth_replayed = false; // sent again after refreshing the credentials
    int polls = 0;              // polls of this job so far
    int64_t job = 0;            // the host's handle of the job this flow waits on (0: none)

    // A poll waits on the destination's work, not on a slot of ours.
    bool Polls() const { return !request.flow.job_id.empty(); }
};

int64_t SteadyNowMs() {
    return std::chrono::duration_cast<std::chrono::milliseconds>(
               std::chrono::steady_clock::now().time_since_epoch())
        .count();
}

} // namespace

EngineResult RunEngine(HttpClient &client, Connector &connector, const BatchContext &context,
                       const EngineConfig &config, EngineHooks &hooks) {
    EngineResult result;
    // Whatever way this function is left (an exception from a hook
    // included), no transfer of this run stays behind in the client.
    struct CancelOnExit {
        HttpClient &client;
        ~CancelOnExit() { client.CancelAll(); }
    } cancel_on_exit{client};
    client.CancelAll();
    auto now = [&] { return hooks.now_ms ? hooks.now_ms() : SteadyNowMs(); };
    std::map<size_t, BatchState> open;
    size_t next_batch_index = 0;
    std::deque<Work> pending;
    std::map<uint64_t, Work> in_flight;
    uint64_t next_request_id = 1;
    bool more_batches = true;
    bool stopping = false;

    auto record = [&](size_t b, size_t row, const RowOutcome &o) {
        BatchState &st = open[b];
        if (!st.outcomes[row]) {
            st.outcomes[row] = o;
            // Forgetting a key is for a refused removal that no run could
            // send: never for a write, an accepted row, or a removal whose
            // record id is known (that one is sent again by a later run).
            const Change &c = st.batch.changes[row];
            if (o.accepted || c.op != Change::Op::Remove || !c.dest_id.empty())
                st.outcomes[row]->unresolvable_removal = false;
            st.remaining--;
        }
    };
    auto finish_complete = [&] {
        for (auto it = open.begin(); it != open.end();) {
            // Complete batches are handed back even when the run is stopping:
            // what the destination accepted must be recorded.
            if (it->second.remaining == 0) {
                std::vector<RowOutcome> outcomes;
                outcomes.reserve(it->second.outcomes.size());
                for (auto &o : it->second.outcomes)
                    outcomes.push_back(*o);
                if (hooks.live_stats)
                    *hooks.live_stats = result.stats;
                if (hooks.stats_changed)
                    hooks.stats_changed();
                hooks.batch_done(it->second.batch, outcomes);
                it = open.erase(it);
            } else {
                ++it;
            }
        }
    };
    auto enqueue = [&](size_t b, const std::vector<size_t> &rows, int attempt) {
        std::vector<std::pair<size_t, RowOutcome>> immediate;
        BatchContext ctx = context;
        ctx.batch_no = open[b].batch.number;
        for (auto &req : connector.Prepare(ctx, open[b].batch.changes, rows, immediate)) {
            Work w;
            w.batch = b;
            w.request = std::move(req);
            w.attempt = attempt;
            w.ready_at = now();
            pending.push_back(std::move(w));
        }
        for (auto &im : immediate)
            record(b, im.first, im.second);
    };

    // A job waiting to be polled holds no slot: other batches keep flowing
    // meanwhile, up to the cap on open jobs.
    auto has_room = [&] {
        size_t busy = in_flight.size(), jobs = 0;
        for (const auto &w : pending)
            (w.Polls() ? jobs : busy)++;
        for (const auto &f : in_flight)
            jobs += f.second.Polls() ? 1 : 0;
        return busy < static_cast<size_t>(config.max_in_flight) &&
               jobs < static_cast<size_t>(std::max(1, config.jobs.max_open_jobs));
    };
    auto stop = [&](const std::string &error) {
        stopping = true;
        result.ok = false;
        result.error = error;
    };

    // The next call of a flow (a job's poll, the write after a lookup), for
    // the rows the connector carries on; the others are final now.
    auto continue_flow = [&](Work &w, Verdict &v, const BatchState &st, long status) {
        if (!v.next) {
            stop("the connector continued a flow without a next call");
            return;
        }
        Work next;
        next.batch = w.batch;
        next.request = std::move(*v.next);
        if (next.request.rows.empty())
            next.request.rows = w.request.rows;
        next.uncertain = w.uncertain;
        next.job = w.job;
        std::vector<bool> carried(w.request.rows.size(), false);
        for (size_t j = 0; j < w.request.rows.size(); j++)
            carried[j] = std::find(next.request.rows.begin(), next.request.rows.end(), w.request.rows[j]) !=
                         next.request.rows.end();
        for (size_t j = 0; j < w.request.rows.size(); j++) {
            if (carried[j])
                continue;
            RowOutcome o;
            if (j < v.rows.size()) {
                o = v.rows[j];
            } else {
                o.http_status = status;
                o.reason = "the destination's answer did not cover this row";
                o.error_code = "NO_RESULT";
            }
            o.uncertain = w.uncertain;
            record(w.batch, w.request.rows[j], o);
        }
        if (v.job_accepted) {
            // Job ids are state: kept before the first poll, so that a run
            // killed from here on resumes the job instead of sending again.
            result.stats.jobs++;
            next.job = hooks.job_accepted(st.batch, next.request);
            next.polls = 0;
            if (v.park && next.job != 0) {
                // The job waits for the run's other batches: its rows are
                // the host's to resume once they are all out.
                RowOutcome parked;
                parked.parked_job = next.job;
                for (size_t row : next.request.rows)
                    record(w.batch, row, parked);
                return;
            }
        } else {
            next.polls =
                next.Polls() && w.Polls() && next.request.flow.job_id == w.request.flow.job_id ? w.polls : 0;
        }
        long delay = 0;
        if (next.Polls()) {
            if (++next.polls > config.jobs.max_polls) {
                stop("job " + Truncate(next.request.flow.job_id, 100) +
                     " of the destination was not done after " + std::to_string(config.jobs.max_polls) +
                     " polls; it stays recorded and the sync's next run polls it again");
                return;
            }
            delay = config.jobs.DelayMs(next.polls);
        }
        if (v.wait_ms >= 0)
            delay = std::min(v.wait_ms, config.jobs.max_poll_interval_ms);
        next.ready_at = now() + delay;
        pending.push_back(std::move(next));
    };

    for (;;) {
        hooks.check_interrupts();
        // Keep the pipeline full: pull batches while there is room.
        while (!stopping && more_batches && has_room()) {
            std::optional<EngineBatch> batch = hooks.next_batch();
            if (!batch) {
                more_batches = false;
                break;
            }
            if (batch->changes.empty()) {
                hooks.batch_done(*batch, {});
                continue;
            }
            size_t b = next_batch_index++;
            BatchState st;
            st.outcomes.resize(batch->changes.size());
            st.remaining = batch->changes.size();
            st.batch = std::move(*batch);
            open[b] = std::move(st);
            std::vector<size_t> rows(open[b].batch.changes.size());
            for (size_t i = 0; i < rows.size(); i++)
                rows[i] = i;
            if (open[b].batch.resume) {
                // A job an interrupted run left: poll it at once.
                const KeptJob &kept = *open[b].batch.resume;
                BatchContext ctx = context;
                ctx.batch_no = open[b].batch.number;
                std::optional<PreparedRequest> poll = connector.Resume(ctx, open[b].batch.changes, kept.step);
                if (poll) {
                    Work w;
                    w.batch = b;
                    w.request = std::move(*poll);
                    if (w.request.rows.empty())
                        w.request.rows = rows;
                    w.job = kept.handle;
                    w.ready_at = now();
                    result.stats.jobs_resumed++;
                    pending.push_back(std::move(w));
                    continue;
                }
                hooks.job_lost(kept.handle, "the destination type cannot resume this job");
                result.stats.jobs_resent++;
            }
            enqueue(b, rows, 1);
        }

        // Start what is ready, within the in-flight and rate limits.
        int64_t next_ready = -1;
        bool started = false;
        if (!stopping) {
            for (auto it = pending.begin();
                 it != pending.end() && in_flight.size() < static_cast<size_t>(config.max_in_flight);) {
                if (it->ready_at > now()) {
                    next_ready = next_ready < 0 ? it->ready_at : std::min(next_ready, it->ready_at);
                    ++it;
                    continue;
                }
                long delay = hooks.rate_delay_ms();
                if (delay > 0) {
                    it->ready_at = now() + delay;
                    next_ready = next_ready < 0 ? it->ready_at : std::min(next_ready, it->ready_at);
                    break;
                }
                uint64_t id = next_request_id++;
                if (hooks.authorize)
                    hooks.authorize(it->request.http);
                client.Start(id, it->request.http);
                started = true;
                result.stats.requests++;
                if (!it->request.flow.step.empty())
                    result.stats.polls++;
                if (hooks.live_stats)
                    *hooks.live_stats = result.stats;
                if (hooks.stats_changed)
                    hooks.stats_changed();
                in_flight.emplace(id, std::move(*it));
                it = pending.erase(it);
            }
        }

        // Complete batches are handed back once the requests that could
        // start are on the wire (sent now: starting one does no I/O): the
        // host records them (a transaction) while the destination works on
        // those, instead of with nothing in flight.
        if (started)
            client.Kick();
        finish_complete();
        if (in_flight.empty() && (pending.empty() || stopping) && (!more_batches || stopping))
            break;

        // With requests on the wire, wait for their answers, but no longer
        // than until the next request is due (a rate limit's next slot, a
        // backoff, a job's poll): it must not wait for an answer that may
        // be a long round trip away. With none on the wire, the sleep below
        // does the waiting.
        int wait = config.poll_slice_ms;
        if (next_ready >= 0)
            wait = static_cast<int>(std::clamp<int64_t>(next_ready - now(), 0, config.poll_slice_ms));
        for (auto &done : client.Poll(in_flight.empty() ? 0 : wait)) {
            auto it = in_flight.find(done.first);
            if (it == in_flight.end())
                continue;
            Work w = std::move(it->second);
            in_flight.erase(it);
            // libcurl sent the request more than once by itself (a reused
            // connection died before any answer): each copy is a request
            // and a retry, and the destination may apply the first copy, so
            // the rows are uncertain, as after any lost answer.
            if (done.second.sends > 1) {
                const int64_t again = done.second.sends - 1;
                result.stats.requests += again;
                result.stats.retries += again;
                result.stats.rows_retried += again * static_cast<int64_t>(w.request.rows.size());
                w.uncertain = true;
            }
            if (hooks.live_stats)
                *hooks.live_stats = result.stats;
            if (hooks.stats_changed)
                hooks.stats_changed();
            auto batch_it = open.find(w.batch);
            if (batch_it == open.end())
                continue; // its batch was already handed back
            // A connection the address policy refused is a configuration
            // problem, the same for every request: the run stops.
            Verdict v;
            if (done.second.address_refused) {
                v.kind = Verdict::Kind::Fatal;
                v.error = done.second.transport_error;
            } else if (done.second.body_truncated && done.second.status >= 200 && done.second.status < 300) {
                // A success whose answer was cut at the request's limit: the
                // rows' outcomes in it cannot be read, and sending again
                // could apply the request twice. The run stops; as after any
                // failed run, its rows are verified by a later one.
                v.kind = Verdict::Kind::Fatal;
                v.error =
                    "the destination answered HTTP " + std::to_string(done.second.status) +
                    " with more than " + std::to_string(w.request.http.max_response_body) +
                    " bytes, the most revetl reads of an answer to this request, so the outcome of its " +
                    std::to_string(w.request.rows.size()) + (w.request.rows.size() == 1 ? " row" : " rows") +
                    " cannot be read";
            } else {
                v = connector.Interpret(w.request, batch_it->second.batch.changes, done.second);
            }
            if (v.kind == Verdict::Kind::AuthExpired) {
                // Refresh once, replay once: a second expiry of the same
                // request (or no way to refresh) stops the run.
                std::string why;
                if (!hooks.refresh_auth)
                    why = v.error;
                else if (w.auth_replayed)
                    why = v.error + " (again, after refreshing the token)";
                else
                    why = hooks.refresh_auth(w.request.http);
                if (why.empty()) {
                    result.stats.auth_replays++;
                    w.auth_replayed = true;
                    w.ready_at = now();
                    pending.push_front(std::move(w));
                    continue;
                }
                v.kind = Verdict::Kind::Fatal;
                v.error = why;
            }
            if (v.kind == Verdict::Kind::Split && w.request.rows.size() <= 1)
                v.kind = Verdict::Kind::Done; // nothing left to split: the row is refused below
            switch (v.kind) {
            case Verdict::Kind::Done:
                // A connector that answers for fewer rows than it sent leaves
                // no row without an outcome: the rest count as refused.
                while (v.rows.size() < w.request.rows.size()) {
                    RowOutcome missing;
                    missing.http_status = done.second.status;
                    missing.reason = "the destination's answer did not cover this row";
                    missing.error_code = "NO_RESULT";
                    v.rows.push_back(missing);
                }
                for (size_t j = 0; j < w.request.rows.size() && j < v.rows.size(); j++) {
                    RowOutcome o = v.rows[j];
                    o.uncertain = w.uncertain;
                    record(w.batch, w.request.rows[j], o);
                }
                break;
            case Verdict::Kind::Retry: {
                // No answer, a server error, or a success the connector
                // could not read (a 2xx without the job id or the results it
                // needs): the destination may have applied the request, and
                // may still apply it late, so sending it again may apply it
                // twice. (A poll applies nothing.)
                const long status = done.second.status;
                const bool may_have_applied =
                    status == 0 || status >= 500 || status == 408 || (status >= 200 && status < 300);
                if (!w.Polls() && may_have_applied)
                    w.uncertain = true;
                if (w.attempt >= config.retry.max_attempts) {
                    stopping = true;
                    result.ok = false;
                    result.error = v.error + " (after " + std::to_string(w.attempt) +
                                   (w.attempt == 1 ? " attempt)" : " attempts)");
                    break;
                }
                result.stats.retries++;
                result.stats.rows_retried += static_cast<int64_t>(w.request.rows.size());
                w.attempt++;
                w.ready_at = now() + (v.wait_ms >= 0 ? std::min(v.wait_ms, config.retry.max_retry_after_ms)
                                                     : config.retry.BackoffMs(w.attempt, hooks.random()));
                pending.push_back(std::move(w));
                break;
            }
            case Verdict::Kind::Throttled: {
                result.stats.throttled++;
                if (++w.throttles > config.max_throttles_per_request) {
                    stopping = true;
                    result.ok = false;
                    result.error =
                        v.error + " (still throttled after " + std::to_string(w.throttles - 1) + " waits)";
                    break;
                }
                long ms = v.wait_ms >= 0 ? std::min(v.wait_ms, config.retry.max_retry_after_ms) : 1000;
                hooks.throttle(ms);
                w.ready_at = now() + ms;
                pending.push_back(std::move(w));
                break;
            }
            case Verdict::Kind::Split: {
                result.stats.splits++;
                const auto &rows = w.request.rows;
                size_t half = rows.size() / 2;
                size_t first = pending.size();
                enqueue(w.batch, std::vector<size_t>(rows.begin(), rows.begin() + half), w.attempt);
                enqueue(w.batch, std::vector<size_t>(rows.begin() + half, rows.end()), w.attempt);
                for (size_t q = first; q < pending.size(); q++)
                    pending[q].uncertain = w.uncertain;
                break;
            }
            case Verdict::Kind::Fatal:
            case Verdict::Kind::AuthExpired: // made Fatal above
                stopping = true;
                result.ok = false;
                result.error = v.error;
                break;
            case Verdict::Kind::Continue:
                continue_flow(w, v, batch_it->second, done.second.status);
                break;
            case Verdict::Kind::Resend: {
                // The job is gone: its rows go again (writes match by key, so
                // a second write of a row the lost job applied is harmless).
                if (w.job)
                    hooks.job_lost(w.job, v.error);
                result.stats.jobs_resent++;
                if (w.attempt >= config.retry.max_attempts) {
                    stop(v.error + " (after " + std::to_string(w.attempt) +
                         (w.attempt == 1 ? " attempt)" : " attempts)"));
                    break;
                }
                size_t first = pending.size();
                enqueue(w.batch, w.request.rows, w.attempt + 1);
                for (size_t q = first; q < pending.size(); q++)
                    pending[q].uncertain = w.uncertain;
                break;
            }
            }
        }
        if (in_flight.empty() && !pending.empty() && next_ready > now() && !stopping) {
            // Nothing on the wire: sleep until the next request is due.
            hooks.sleep(static_cast<long>(std::clamp<int64_t>(next_ready - now(), 1, config.poll_slice_ms)));
        }
    }
    if (hooks.live_stats)
        *hooks.live_stats = result.stats;
    if (hooks.stats_changed)
        hooks.stats_changed();
    return result;
}

} // namespace revetl
