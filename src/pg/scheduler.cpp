// What the database's scheduler decides, apart from starting processes:
// which scheduled syncs are due, which syncs follow a finished one, which
// alerts to send, and pruning old history. Everything here runs in the
// scheduler ("revetl worker") between its own short transactions.
#include "pg/scheduler.hpp"

#include "core/common/sql_text.hpp"
#include "core/delivery/alerts.hpp"
#include "core/language/schedule.hpp"
#include "pg/catalog.hpp"
#include "pg/module.hpp"
#include "pg/planning.hpp"
#include "pg/session.hpp"
#include "pg/spi.hpp"

#include <algorithm>
#include <cmath>
#include <ctime>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace revetl::pg {

namespace {

// How often old runs and rejected rows are pruned, and how many rows one
// prune transaction deletes at most (short transactions, short locks).
constexpr long kPruneEveryMs = 10L * 60 * 1000;
constexpr int kPruneBatch = 5000;

TimestampTz g_last_prune = 0;

} // namespace

std::vector<PendingAlert> pending_alerts;

namespace {

std::time_t Now() {
    return std::time(nullptr);
}

// When a schedule is next due after a slot at `due` was run (or missed) and
// it is now `now`. A schedule that missed several slots (the server was down)
// runs once, and its next slot is in the future.
std::time_t NextDue(const dsl::Schedule &schedule, double every_seconds, std::time_t due, std::time_t now) {
    if (schedule.kind == dsl::Schedule::Kind::Every) {
        if (every_seconds <= 0)
            return now + 60;
        double next = static_cast<double>(due) + every_seconds;
        if (next <= static_cast<double>(now)) {
            double missed = std::floor((static_cast<double>(now) - next) / every_seconds) + 1;
            next += missed * every_seconds;
        }
        return static_cast<std::time_t>(next);
    }
    return ParseCron(schedule.value).NextAfter(now);
}

void InsertRun(int64 sync_id, const std::string &sync_name, const char *trigger) {
    Sql("INSERT INTO revetl.runs (sync_id, sync_name, trigger, requested_by) VALUES ($1, $2, $3, "
        "'revetl')",
        {SqlArg::Int8(sync_id), SqlArg::Text(sync_name), SqlArg::Text(trigger)});
}

std::optional<DestinationSettings> AlertSettings(const SyncDefinition &def) {
    if (!def.options.alert_to)
        return std::nullopt;
    Destination dest = LookupDestination(*def.options.alert_to);
    CheckServerUsage(dest, def.owner);
    LoadUserMapping(dest, def.owner);
    return ResolveDestinationSettings(dest.server_options, dest.user_mapping_options);
}

HttpClient &AlertClient() {
    static HttpClient client;
    return client;
}

// An alert may take this long at most; it never holds up the scheduler,
// which starts it and collects the answer on a later pass of its loop.
constexpr long kAlertTimeoutMs = 5000;

struct AlertInFlight {
    std::string sync;
    std::string database;
    std::string where;
};
std::map<uint64_t, AlertInFlight> g_alerts_in_flight;

// Starts one alert, sent once: a failure is logged and the alert is not
// retried (the state change is recorded either way, so that a broken alert
// endpoint cannot make alerts repeat on every run).
void Send(const DestinationSettings &settings, const AlertEvent &event) {
    HttpRequest req = BuildAlertRequest(settings, event);
    req.timeout_ms = std::min(req.timeout_ms, kAlertTimeoutMs);
    req.connect_timeout_ms = std::min(req.connect_timeout_ms, kAlertTimeoutMs);
    std::string allowed = g_allowed_hosts ? g_allowed_hosts : "";
    std::string host = UrlHost(settings.url);
    if (!HostAllowed(host, allowed)) {
        PgGuard([&] {
            ereport(WARNING,
                    (errmsg("revetl: alert for sync \"%s\" in database \"%s\" not sent: host \"%s\" is not "
                            "in revetl.allowed_hosts",
                            event.sync.c_str(), event.database.c_str(), host.c_str())));
        });
        return;
    }
    HttpClient &client = AlertClient();
    client.SetAddressPolicy(std::make_shared<HostPolicy>(allowed));
    static uint64_t next_id = 1;
    uint64_t id = next_id++;
    client.Start(id, req);
    g_alerts_in_flight[id] = {event.sync, event.database, RedactUrl(settings.url)};
}

} // namespace

bool PumpAlerts() {
    if (g_alerts_in_flight.empty())
        return false;
    for (auto &done : AlertClient().Poll(0)) {
        auto it = g_alerts_in_flight.find(done.first);
        if (it == g_alerts_in_flight.end())
            continue;
        const HttpResponse &r = done.second;
        if (r.status < 200 || r.status >= 300) {
            std::string why = r.status == 0 ? r.transport_error : "HTTP " + std::to_string(r.status);
            const AlertInFlight &a = it->second;
            PgGuard([&] {
                ereport(WARNING, (errmsg("revetl: alert for sync \"%s\" in database \"%s\" to %s failed: %s",
                                         a.sync.c_str(), a.database.c_str(), a.where.c_str(), why.c_str())));
            });
        }
        g_alerts_in_flight.erase(it);
    }
    return !g_alerts_in_flight.empty();
}

namespace {

// Compares the alert state stored for a sync with `now_state` and sends one
// alert per change; stores the new state.
// backlog_text: what the backlog is over, for the alert sent when it
// crosses a limit.
void UpdateAlerts(const SyncDefinition &def, const AlertState &now_state, int64 run_id,
                  const std::string &run_error, int64 refused, const std::string &backlog_text = "") {
    // The sync may have been dropped since its run ended.
    Sql("INSERT INTO revetl.sync_state (sync_id) SELECT id FROM revetl.syncs WHERE id = $1 "
        "ON CONFLICT (sync_id) DO NOTHING",
        {SqlArg::Int8(def.id)});
    SqlResult r = Sql("SELECT alert_failed, alert_rejected, alert_stale, coalesce(alert_backlog, '') "
                      "FROM revetl.sync_state WHERE sync_id = $1",
                      {SqlArg::Int8(def.id)});
    if (r.rows.empty())
        return;
    AlertState before{r.Bool(0, 0), r.Bool(0, 1), r.Bool(0, 2), r.Text(0, 3)};
    if (before.failed == now_state.failed && before.rejected == now_state.rejected &&
        before.stale == now_state.stale && before.backlog == now_state.backlog)
        return;
    // (NULLIF is syntax, not a function in pg_catalog.)
    Sql("UPDATE revetl.sync_state SET alert_failed = $2, alert_rejected = $3, alert_stale = $4, "
        "alert_backlog = NULLIF($5, '') WHERE sync_id = $1",
        {SqlArg::Int8(def.id), SqlArg::Bool(now_state.failed), SqlArg::Bool(now_state.rejected),
         SqlArg::Bool(now_state.stale), SqlArg::Text(now_state.backlog)});
    std::optional<DestinationSettings> settings;
    try {
        settings = AlertSettings(def);
    } catch (const std::exception &e) {
        std::string why = e.what();
        PgGuard([&] {
            ereport(WARNING, (errmsg("revetl: alerts of sync \"%s\" cannot be sent: %s", def.name.c_str(),
                                     why.c_str())));
        });
        return;
    }
    if (!settings)
        return;
    std::vector<AlertEvent> events;
    const std::string db = DatabaseName();
    auto add = [&](const char *kind, const std::string &text) {
        events.push_back({db, def.name, kind,
                          "revetl: sync \"" + def.name + "\" in database \"" + db + "\" " + text, run_id});
    };
    if (!before.failed && now_state.failed)
        add("run_failed", "failed (run " + std::to_string(run_id) + "): " + run_error);
    if (!before.rejected && now_state.rejected)
        add("rejected_rows", "could not deliver " + std::to_string(refused) + " rows in run " +
                                 std::to_string(run_id) + "; see revetl.rejected_rows");
    if (!before.stale && now_state.stale)
        add("no_success", "has had no successful run for longer than its alert_no_success_for");
    // A backlog that goes over a second limit while over the first is the
    // same state: one alert per crossing, not per limit.
    if (before.backlog.empty() && !now_state.backlog.empty())
        add("backlog", backlog_text);
    const bool was_bad = before.failed || before.rejected || before.stale || !before.backlog.empty();
    const bool is_bad =
        now_state.failed || now_state.rejected || now_state.stale || !now_state.backlog.empty();
    if (was_bad && !is_bad)
        add("recovered",
            "is healthy again" + (run_id > 0 ? " (run " + std::to_string(run_id) + ")" : std::string()));
    // Sent after this transaction's writes are decided but with no network
    // I/O inside it: the caller commits right after, and HTTP runs outside.
    for (const auto &e : events)
        pending_alerts.push_back({*settings, e});
}

bool IsStale(const SyncDefinition &def) {
    if (!def.options.alert_no_success_for_ms)
        return false;
    SqlResult r = Sql("SELECT coalesce((SELECT max(finished_at) FROM revetl.runs WHERE sync_id = $1 AND "
                      "status = 'succeeded'), (SELECT created_at FROM revetl.syncs WHERE id = $1)) "
                      "< pg_catalog.now() - pg_catalog.make_interval(secs => $2::bigint / 1000.0)",
                      {SqlArg::Int8(def.id), SqlArg::Int8(*def.options.alert_no_success_for_ms)});
    return r.Bool(0, 0);
}

} // namespace

void SendPendingAlerts() {
    std::vector<PendingAlert> alerts;
    alerts.swap(pending_alerts);
    for (const auto &a : alerts)
        Send(a.settings, a.event);
}

int EnqueueDueRuns() {
    int queued = 0;
    BeginTransaction("revetl: scheduling");
    SqlResult due =
        Sql("SELECT s.id, s.name, s.schedule_kind, s.schedule_value, "
            "  CASE WHEN s.schedule_kind = 'every' THEN extract(epoch FROM s.schedule_value::interval) END, "
            "  pg_catalog.floor(extract(epoch FROM st.next_run_at))::bigint, st.next_run_at IS NULL, "
            "  EXISTS (SELECT 1 FROM revetl.runs r WHERE r.sync_id = s.id AND r.status IN ('queued', "
            "'running')) "
            "FROM revetl.syncs s LEFT JOIN revetl.sync_state st ON st.sync_id = s.id "
            "WHERE s.schedule_kind IN ('every', 'cron') AND NOT s.paused "
            "  AND (st.next_run_at IS NULL OR st.next_run_at <= pg_catalog.now())");
    // The slot is read rounded down. Rounded to the nearest second it could
    // move up to half a second later, and after missed slots the next one
    // (whole intervals on) could then fall a fraction of a second after
    // now: the catch-up run would be followed at once by another.
    std::time_t now = Now();
    for (size_t i = 0; i < due.rows.size(); i++) {
        int64 sync_id = due.Int8(i, 0);
        dsl::Schedule schedule;
        schedule.kind = due.Text(i, 2) == "every" ? dsl::Schedule::Kind::Every : dsl::Schedule::Kind::Cron;
        schedule.value = due.Text(i, 3);
        double every_seconds = due.At(i, 4) ? std::stod(*due.At(i, 4)) : 0;
        // A sync scheduled before revetl.min_schedule_interval was raised.
        if (schedule.kind == dsl::Schedule::Kind::Every)
            every_seconds = std::max(every_seconds, static_cast<double>(g_min_schedule_interval_s));
        bool first_time = due.Bool(i, 6);
        bool busy = due.Bool(i, 7);
        // A run of the sync is queued or in progress: the due slot waits for
        // it to end (the scheduler is woken then) and runs once after it.
        if (busy)
            continue;
        std::time_t next;
        bool run_now = false;
        try {
            if (first_time && schedule.kind == dsl::Schedule::Kind::Cron) {
                // A new cron schedule waits for its first slot.
                next = ParseCron(schedule.value).NextAfter(now);
            } else {
                run_now = true;
                std::time_t slot = first_time ? now : static_cast<std::time_t>(due.Int8(i, 5));
                next = NextDue(schedule, every_seconds, slot, now);
            }
        } catch (const Error &e) {
            next = now + 3600;
            std::string why = e.what();
            std::string name = due.Text(i, 1);
            PgGuard([&] {
                ereport(WARNING, (errmsg("revetl: schedule of sync \"%s\" in database \"%s\" is invalid: %s",
                                         name.c_str(), DatabaseName(), why.c_str())));
            });
        }
        if (next < 0)
            next = now + 365L * 24 * 3600; // a cron that never matches (refused at CREATE since)
        // The slot is taken by moving next_run_at on from the value read, and
        // only then is the run queued: should two schedulers ever see the
        // same due slot (a worker restarting while another still ends), the
        // second finds next_run_at moved (it waits for the first's row lock,
        // then re-reads it) and queues nothing.
        SqlResult taken =
            Sql("INSERT INTO revetl.sync_state AS st (sync_id, next_run_at) SELECT id, "
                "pg_catalog.to_timestamp($2) "
                "FROM revetl.syncs WHERE id = $1 "
                "ON CONFLICT (sync_id) DO UPDATE SET next_run_at = excluded.next_run_at "
                "WHERE st.next_run_at IS NULL OR st.next_run_at <= pg_catalog.now() RETURNING 1",
                {SqlArg::Int8(sync_id), SqlArg::Int8(static_cast<int64_t>(next))});
        if (run_now && !taken.rows.empty()) {
            InsertRun(sync_id, due.Text(i, 1), "schedule");
            queued++;
        }
    }
    // Syncs whose schedule is not EVERY or CRON have no next run.
    Sql("UPDATE revetl.sync_state st SET next_run_at = NULL FROM revetl.syncs s "
        "WHERE s.id = st.sync_id AND st.next_run_at IS NOT NULL "
        "AND (s.schedule_kind NOT IN ('every', 'cron') OR s.paused)");
    CommitTransaction();
    return queued;
}

namespace {

// ON CHANGE syncs holding keys that a failed or partial run left for retry,
// and when their retry is due (the view revetl._change_retries, which
// sync_status shows as next_retry_at). Without this a quiet table would keep
// those rows waiting for its next change, however long the destination has
// been back.
const char *kRetryDue = "SELECT s.id, s.name, d.due_at AS due FROM revetl._change_retries d "
                        "JOIN revetl.syncs s ON s.id = d.sync_id";

// A row of the shadow state with a verify_after is one whose delivery is
// uncertain (a request that may be applied late, rows a killed run may have
// sent): at that time its key is sent again, its row or its removal, by the
// next plan (incremental plans take every key due then). A scheduled sync
// has a next run; an ON CHANGE sync only a next change, which may never
// come: after a crash, the run queued again plans the killed run's keys at
// once, before they are due (a key the model no longer has is then
// planned as nothing, and a record the killed run sent stays at the
// destination). So each ON CHANGE sync without a run in progress gets a run
// once its earliest verification that no plan has seen yet (one after the
// first plan of its last run) is due: milliseconds until then, per sync.
// A run that ended without a plan (it failed first) counts from its end:
// a sync that fails before planning does not get a run every pass.
struct PendingVerification {
    int64_t sync_id;
    std::string name;
    long due_in_ms;
};

std::vector<PendingVerification> PendingVerifications() {
    // Not before the retry of a sync whose runs fail is due (the backoff of
    // revetl._change_retries): re-verifying against a failing destination
    // every settle_time would defeat it.
    SqlResult syncs = Sql(
        "SELECT s.id, s.name, s.shadow_table, coalesce((SELECT max(coalesce(r.planned_at, r.finished_at)) "
        "FROM revetl.runs r WHERE r.sync_id = s.id AND r.trigger <> 'test'), '-infinity')::pg_catalog.text, "
        "coalesce(f.last_end + "
        "pg_catalog.current_setting('revetl.change_retry_interval')::pg_catalog.interval "
        "* pg_catalog.power(2, least(greatest(f.n - 1, 0), 6)), '-infinity')::pg_catalog.text "
        "FROM revetl.syncs s CROSS JOIN LATERAL (SELECT max(r.finished_at) AS last_end, count(*) AS n "
        "FROM revetl.runs r WHERE r.sync_id = s.id AND r.status IN ('failed', 'partial') "
        "AND r.trigger NOT IN ('test', 'manual') AND r.id > coalesce((SELECT max(ok.id) FROM revetl.runs ok "
        "WHERE ok.sync_id = s.id AND ok.status = 'succeeded' AND ok.trigger <> 'test'), 0)) f "
        "WHERE s.schedule_kind = 'on change' AND NOT s.paused "
        "AND NOT EXISTS (SELECT 1 FROM revetl.runs r WHERE r.sync_id = s.id "
        "AND r.status IN ('queued', 'running') AND r.trigger <> 'test') "
        "AND pg_catalog.to_regclass(pg_catalog.quote_ident('revetl') || '.' || "
        "pg_catalog.quote_ident(s.shadow_table)) IS NOT NULL");
    std::vector<PendingVerification> out;
    for (size_t i = 0; i < syncs.rows.size(); i++) {
        // (The shadow table's index on verify_after finds the earliest.)
        SqlResult due = Sql("SELECT pg_catalog.ceil(extract(epoch FROM greatest(min(v.verify_after), "
                            "$2::pg_catalog.timestamptz) - pg_catalog.now()) * 1000)::bigint FROM " +
                                QualifiedName(kSchema, syncs.Text(i, 2)) +
                                " AS v WHERE v.verify_after > $1::pg_catalog.timestamptz HAVING "
                                "min(v.verify_after) IS NOT NULL",
                            {SqlArg::Text(syncs.Text(i, 3)), SqlArg::Text(syncs.Text(i, 4))});
        if (!due.rows.empty() && due.At(0, 0))
            out.push_back({syncs.Int8(i, 0), syncs.Text(i, 1), std::max<long>(0, std::stol(*due.At(0, 0)))});
    }
    return out;
}

} // namespace

int EnqueueCapturedRuns() {
    BeginTransaction("revetl: captured changes");
    SqlResult r =
        Sql("INSERT INTO revetl.runs (sync_id, sync_name, trigger, requested_by) "
            "SELECT s.id, s.name, 'on change', 'revetl' FROM revetl.syncs s "
            "WHERE s.schedule_kind = 'on change' AND NOT s.paused "
            "AND EXISTS (SELECT 1 FROM revetl.captured_changes c WHERE c.sync_id = s.id AND NOT c.retry) "
            "AND NOT EXISTS (SELECT 1 FROM revetl.runs r WHERE r.sync_id = s.id "
            "AND r.status IN ('queued', 'running') AND r.trigger <> 'test')");
    SqlResult retried = Sql(std::string("INSERT INTO revetl.runs (sync_id, sync_name, trigger, requested_by) "
                                        "SELECT d.id, d.name, 'retry', 'revetl' FROM (") +
                            kRetryDue + ") d WHERE d.due <= pg_catalog.now()");
    int queued = static_cast<int>(r.processed + retried.processed);
    for (const PendingVerification &v : PendingVerifications())
        if (v.due_in_ms == 0) {
            Sql("INSERT INTO revetl.runs (sync_id, sync_name, trigger, requested_by) "
                "VALUES ($1, $2, 'retry', 'revetl')",
                {SqlArg::Int8(v.sync_id), SqlArg::Text(v.name)});
            queued++;
        }
    CommitTransaction();
    return queued;
}

long MillisUntilNextDue() {
    BeginTransaction("revetl: scheduling");
    SqlResult r = Sql(
        "SELECT pg_catalog.ceil(extract(epoch FROM min(st.next_run_at) - pg_catalog.now()) * 1000)::bigint "
        "FROM revetl.sync_state st JOIN revetl.syncs s ON s.id = st.sync_id "
        "WHERE s.schedule_kind IN ('every', 'cron') AND NOT s.paused AND NOT EXISTS "
        "(SELECT 1 FROM revetl.runs r WHERE r.sync_id = s.id AND r.status IN ('queued', 'running'))",
        {}, true);
    SqlResult retry = Sql(std::string("SELECT CASE WHEN min(d.due) = '-infinity' THEN 0 "
                                      "ELSE pg_catalog.ceil(extract(epoch FROM min(d.due) - "
                                      "pg_catalog.now()) * 1000)::bigint END FROM (") +
                              kRetryDue + ") d",
                          {}, true);
    SqlResult fresh = Sql("SELECT EXISTS (SELECT 1 FROM revetl.syncs s LEFT JOIN revetl.sync_state st "
                          "ON st.sync_id = s.id WHERE s.schedule_kind IN ('every', 'cron') AND NOT s.paused "
                          "AND st.next_run_at IS NULL AND NOT EXISTS (SELECT 1 FROM revetl.runs r "
                          "WHERE r.sync_id = s.id AND r.status IN ('queued', 'running')))",
                          {}, true);
    std::vector<PendingVerification> verifications = PendingVerifications();
    CommitTransaction();
    if (fresh.Bool(0, 0))
        return 0;
    long due = -1;
    for (const SqlResult *q : {&r, &retry}) {
        if (!q->At(0, 0))
            continue;
        long ms = std::max<long>(0, std::stol(*q->At(0, 0)));
        due = due < 0 ? ms : std::min(due, ms);
    }
    for (const PendingVerification &v : verifications)
        due = due < 0 ? v.due_in_ms : std::min(due, v.due_in_ms);
    return due;
}

void AfterRunFinished(int64_t run_id) {
    BeginTransaction("revetl: after run");
    SqlResult run = Sql("SELECT sync_id, status, coalesce(error, ''), rows_rejected + rows_invalid, trigger "
                        "FROM revetl.runs WHERE id = $1",
                        {SqlArg::Int8(run_id)});
    if (run.rows.empty()) {
        CommitTransaction();
        return;
    }
    int64 sync_id = run.Int8(0, 0);
    std::string status = run.Text(0, 1);
    auto def = LoadSyncById(sync_id);
    if (!def || status == "queued" || status == "running" || status == "cancelled") {
        CommitTransaction();
        return;
    }
    bool ok = status == "succeeded" || status == "partial";
    // SCHEDULE AFTER: the syncs that follow this one.
    SqlResult followers = Sql("SELECT id, name, options FROM revetl.syncs WHERE schedule_kind = 'after' "
                              "AND schedule_value = $1 AND NOT paused AND id <> $2 ORDER BY id",
                              {SqlArg::Text(def->name), SqlArg::Int8(sync_id)});
    for (size_t i = 0; i < followers.rows.size(); i++) {
        bool run_anyway = ParseSyncOptions(followers.Text(i, 2)).run_after_failure;
        if (!ok && !run_anyway)
            continue;
        // A test run (max_rows) starts no chain.
        if (run.Text(0, 4) == "test")
            continue;
        SqlResult busy = Sql("SELECT 1 FROM revetl.runs WHERE sync_id = $1 AND status = 'queued'",
                             {SqlArg::Int8(followers.Int8(i, 0))});
        if (busy.rows.empty())
            InsertRun(followers.Int8(i, 0), followers.Text(i, 1), "after");
    }
    AlertState state;
    state.failed = status == "failed";
    int64 refused = run.Int8(0, 3);
    state.rejected = def->options.alert_rejected_rows && refused >= *def->options.alert_rejected_rows;
    state.stale = IsStale(*def);
    // The backlog's state is CheckBacklogs' alone (it compares with the
    // limits; a run ending does not say where the backlog stands).
    state.backlog =
        Sql("SELECT coalesce((SELECT alert_backlog FROM revetl.sync_state WHERE sync_id = $1), '')",
            {SqlArg::Int8(sync_id)})
            .Text(0, 0);
    UpdateAlerts(*def, state, run_id, run.Text(0, 2), refused);
    CommitTransaction();
    SendPendingAlerts();
}

void CheckStaleSyncs() {
    BeginTransaction("revetl: checking alerts");
    SqlResult syncs =
        Sql("SELECT s.id, coalesce(st.alert_failed, false), coalesce(st.alert_rejected, false), "
            "(SELECT max(id) FROM revetl.runs r WHERE r.sync_id = s.id), coalesce(st.alert_backlog, '') "
            "FROM revetl.syncs s LEFT JOIN revetl.sync_state st ON st.sync_id = s.id "
            "WHERE s.options ? 'alert_no_success_for' AND NOT s.paused");
    for (size_t i = 0; i < syncs.rows.size(); i++) {
        auto def = LoadSyncById(syncs.Int8(i, 0));
        if (!def)
            continue;
        AlertState state{syncs.Bool(i, 1), syncs.Bool(i, 2), IsStale(*def), syncs.Text(i, 4)};
        UpdateAlerts(*def, state, syncs.At(i, 3) ? syncs.Int8(i, 3) : 0, "", 0);
    }
    CommitTransaction();
    SendPendingAlerts();
}

namespace {

std::string Seconds(long ms) {
    return std::to_string(ms / 1000) + (ms % 1000 ? "." + std::to_string(1000 + ms % 1000).substr(1) : "") +
           " s";
}

} // namespace

bool CheckBacklogs() {
    BeginTransaction("revetl: checking backlogs");
    // A standby's worker writes nothing (its primary's alerts).
    if (Sql("SELECT pg_catalog.pg_is_in_recovery()", {}, true).Bool(0, 0)) {
        CommitTransaction();
        return false;
    }
    // Tracked syncs, and any whose backlog was over a limit when its
    // tracking was turned off since (so that it recovers). The oldest key
    // is the lowest id's (the index's order; keys are appended).
    SqlResult syncs = Sql(
        std::string(
            "SELECT s.id, coalesce(st.alert_backlog, ''), "
            "(SELECT pg_catalog.floor(extract(epoch FROM pg_catalog.now() - c.captured_at) * 1000)::bigint "
            "FROM revetl.captured_changes c WHERE c.sync_id = s.id ORDER BY c.id LIMIT 1), "
            "(SELECT pg_catalog.pg_wal_lsn_diff(pg_catalog.pg_current_wal_lsn(), sl.restart_lsn)::bigint "
            "FROM pg_catalog.pg_replication_slots sl WHERE sl.slot_name = 'revetl_' || $1::text), "
            "coalesce(st.alert_failed, false), coalesce(st.alert_rejected, false), "
            "coalesce(st.alert_stale, false), (SELECT max(id) FROM revetl.runs r WHERE r.sync_id = s.id) "
            "FROM revetl.syncs s LEFT JOIN revetl.sync_state st ON st.sync_id = s.id WHERE ") +
            kTrackedPredicate + " OR st.alert_backlog IS NOT NULL ORDER BY s.id",
        {SqlArg::Int8(MyDatabaseId)});
    bool watched = false;
    for (size_t i = 0; i < syncs.rows.size(); i++) {
        auto def = LoadSyncById(syncs.Int8(i, 0));
        if (!def)
            continue;
        const long age_limit = BacklogAgeLimitMs(def->options, def->Tracked(),
                                                 def->schedule.kind == dsl::Schedule::Kind::OnChange);
        const int64_t wal_limit = WalRetainedLimitBytes(def->options, def->TrackedByWal());
        watched = watched || age_limit > 0 || wal_limit > 0;
        const std::string before = syncs.Text(i, 1);
        const long age = syncs.At(i, 2) ? static_cast<long>(syncs.Int8(i, 2)) : 0;
        const int64_t retained = syncs.At(i, 3) ? syncs.Int8(i, 3) : 0;
        // Over a limit: crossed it. Once over, it recovers only under half
        // of every limit, so that a backlog hovering at a limit does not
        // alert on every check.
        const bool over_age = age_limit > 0 && age >= (before.empty() ? age_limit : age_limit / 2);
        const bool over_wal = wal_limit > 0 && retained >= (before.empty() ? wal_limit : wal_limit / 2);
        std::string now_backlog;
        std::string text;
        if (over_age) {
            now_backlog = "backlog age";
            text = "has captured changes waiting for " + Seconds(age) +
                   ", longer than its alert_backlog_age (" + Seconds(age_limit) + ")";
        }
        if (over_wal) {
            now_backlog += std::string(now_backlog.empty() ? "" : ", ") + "WAL retained";
            text += std::string(text.empty() ? "" : "; ") + "has its database's WAL slot retaining " +
                    std::to_string(retained) + " bytes of WAL, more than its alert_wal_retained (" +
                    std::to_string(wal_limit) + " bytes)";
        }
        if (def->paused && !now_backlog.empty())
            text += " (the sync is paused)";
        // Still over a limit: the state stays as it was (the reason first found).
        if (!before.empty() && !now_backlog.empty())
            continue;
        if (before == now_backlog)
            continue;
        AlertState state{syncs.Bool(i, 4), syncs.Bool(i, 5), syncs.Bool(i, 6), now_backlog};
        UpdateAlerts(*def, state, syncs.At(i, 7) ? syncs.Int8(i, 7) : 0, "", 0, text);
    }
    CommitTransaction();
    SendPendingAlerts();
    return watched;
}

uint64_t PruneBatch(bool runs, int minutes, int limit) {
    if (minutes < 0)
        return 0;
    // Only finished runs go, and never the latest finished run of a sync,
    // which sync_status reports.
    const std::string sql =
        runs ? "DELETE FROM revetl.runs WHERE id IN (SELECT id FROM revetl.runs "
               "WHERE finished_at < pg_catalog.now() - pg_catalog.make_interval(mins => $1) AND status NOT "
               "IN ('queued', 'running') "
               "AND id NOT IN (SELECT max(id) FROM revetl.runs r2 WHERE r2.status NOT IN ('queued', "
               "'running') "
               "GROUP BY r2.sync_id) ORDER BY id LIMIT $2)"
             : "DELETE FROM revetl.rejected_rows WHERE id IN (SELECT id FROM revetl.rejected_rows "
               "WHERE rejected_at < pg_catalog.now() - pg_catalog.make_interval(mins => $1) ORDER BY id "
               "LIMIT $2)";
    return Sql(sql, {SqlArg::Int4(minutes), SqlArg::Int4(limit)}).processed;
}

void PruneHistory(bool force) {
    TimestampTz now = 0;
    PgGuard([&] { now = GetCurrentTimestamp(); });
    if (!force && g_last_prune != 0 && now - g_last_prune < kPruneEveryMs * 1000L)
        return;
    g_last_prune = now;
    for (bool runs : {false, true}) {
        int minutes = runs ? g_run_history_retention_min : g_rejected_rows_retention_min;
        // One short transaction per batch: no long locks on busy tables.
        for (;;) {
            BeginTransaction("revetl: pruning history");
            uint64_t n = PruneBatch(runs, minutes, kPruneBatch);
            CommitTransaction();
            if (n < static_cast<uint64_t>(kPruneBatch))
                break;
            PgGuard([] { CHECK_FOR_INTERRUPTS(); });
        }
    }
}

} // namespace revetl::pg
