// The per-database worker, the database's scheduler: it queues scheduled
// runs, starts one executor process ("revetl run") per queued run (never two
// for one sync, at most revetl.max_parallel_runs at once), notices when they
// end, follows SCHEDULE AFTER chains, sends alerts and prunes history. It
// sleeps on its latch, woken by committed run requests, executor exits and
// the next scheduled time.
#include "core/common/sql_text.hpp"
#include "pg/catalog.hpp"
#include "pg/executor.hpp"
#include "pg/field_refresh.hpp"
#include "pg/module.hpp"
#include "pg/planning.hpp"
#include "pg/run_counts.hpp"
#include "pg/runner.hpp"
#include "pg/scheduler.hpp"
#include "pg/session.hpp"
#include "pg/shared_state.hpp"
#include "pg/spi.hpp"
#include "pg/sync_commands.hpp"
#include "pg/wal_capture.hpp"

#include <algorithm>
#include <cstring>
#include <map>

extern "C" {
PGDLLEXPORT void revetl_worker_main(Datum main_arg);
}

namespace revetl::pg {

namespace {

// A safety net only: every run request sets the latch. The timeout lets the
// worker notice DROP EXTENSION, which nothing announces, and check alerts
// about syncs that have not succeeded for too long.
constexpr long kWorkerNaptimeMs = 60000;
// While runs are in progress that this scheduler did not start (it was
// restarted), it looks at them this often.
constexpr long kAdoptedPollMs = 1000;
// While alerts are in flight, the loop collects their answers this often.
constexpr long kAlertPollMs = 50;
// How often the back-pressure limits (alert_backlog_age, alert_wal_retained)
// are compared with the backlogs, while a sync has one: the smallest
// backlog age limit is a second.
constexpr long kBacklogCheckMs = 1000;
// How often a worker waiting for ALTER EXTENSION revetl UPDATE looks again.
constexpr long kUpgradePollMs = 2000;

// Executors in progress: run id -> (sync id, handle; nullptr for a run
// adopted from an earlier scheduler).
struct Executing {
    int64 sync_id;
    BackgroundWorkerHandle *handle;
};
std::map<int64, Executing> g_executing;

void ClearSlot(int, Datum arg) {
    Oid dboid = DatumGetObjectId(arg);
    LWLockAcquire(g_shared->lock, LW_EXCLUSIVE);
    DatabaseSlot *slot = FindDatabaseSlot(dboid);
    if (slot && slot->worker_pid == MyProcPid) {
        slot->worker_pid = 0;
        slot->worker_procno = -1;
    }
    LWLockRelease(g_shared->lock);
}

// Returns false when another worker already serves this database or the
// database is being dropped or renamed.
bool RegisterSelf(Oid dboid) {
    LWLockAcquire(g_shared->lock, LW_EXCLUSIVE);
    DatabaseSlot *slot = FindOrAddDatabaseSlot(dboid);
    bool ok = slot && slot->worker_pid == 0 && slot->blocked_until <= GetCurrentTimestamp();
    if (ok) {
        slot->worker_pid = MyProcPid;
        slot->worker_procno = compat::MyProcIndex();
        slot->no_extension = false;
    }
    LWLockRelease(g_shared->lock);
    return ok;
}

void MarkNoExtension(Oid dboid) {
    LWLockAcquire(g_shared->lock, LW_EXCLUSIVE);
    if (DatabaseSlot *slot = FindDatabaseSlot(dboid))
        slot->no_extension = true;
    LWLockRelease(g_shared->lock);
}

enum class ExtensionState { Absent, OtherVersion, Ready };

// Whether this database has the extension, at the version of this library.
// Between the installation of a new library and ALTER EXTENSION revetl
// UPDATE, the catalog is the old version's: the worker leaves it alone.
ExtensionState CheckExtension(std::string *version) {
    bool present = false;
    BeginTransaction("revetl: checking extension");
    PgGuard([&] { present = OidIsValid(get_extension_oid("revetl", true)); });
    if (present)
        *version = Sql("SELECT extversion FROM pg_catalog.pg_extension WHERE extname = 'revetl'", {}, true)
                       .Text(0, 0);
    CommitTransaction();
    (void)DatabaseName();
    if (!present)
        return ExtensionState::Absent;
    return *version == REVETL_VERSION ? ExtensionState::Ready : ExtensionState::OtherVersion;
}

// Waits for ALTER EXTENSION revetl UPDATE (or DROP EXTENSION); returns
// whether the extension is there, at this library's version.
bool AwaitExtension() {
    std::string version;
    bool told = false;
    for (;;) {
        ExtensionState state = CheckExtension(&version);
        if (state != ExtensionState::OtherVersion)
            return state == ExtensionState::Ready;
        if (!told) {
            told = true;
            PgGuard([&] {
                ereport(LOG,
                        (errmsg("revetl worker for database \"%s\" is waiting: the extension is at version "
                                "%s and the library at version %s",
                                DatabaseName(), version.c_str(), REVETL_VERSION),
                         errhint("Run ALTER EXTENSION revetl UPDATE in that database.")));
            });
        }
        PgGuard([] {
            (void)WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH, kUpgradePollMs,
                            PG_WAIT_EXTENSION);
            ResetLatch(MyLatch);
            CHECK_FOR_INTERRUPTS();
            if (ConfigReloadPending) {
                ConfigReloadPending = false;
                ProcessConfigFile(PGC_SIGHUP);
            }
        });
    }
}

// A run marked 'running' whose sync no run process holds has no process behind
// it: the executor died (crash, pg_terminate_backend). It is marked failed
// and queued again, so its rows are planned anew rather than lost. A run
// whose sync is held is still in progress: it is adopted and watched.
// Queued changes no run will deliver are deleted when a run was recovered
// and when the scheduler starts (an earlier one may have left some). Not on
// every reap: a run that ended deleted its own in the commit that ended it,
// and the sweep reads the whole queue, which after a big run is a million
// rows just deleted (about half a second, in the scheduler's loop).
void RecoverInterruptedRuns(bool at_start) {
    BeginTransaction("revetl: recovering");
    SqlResult running =
        Sql("SELECT id, sync_id, sync_name, trigger FROM revetl.runs WHERE status = 'running'");
    std::vector<int64> counted_runs;
    int recovered = 0;
    for (size_t i = 0; i < running.rows.size(); i++) {
        int64 run_id = running.Int8(i, 0);
        int64 sync_id = running.Int8(i, 1);
        if (g_executing.count(run_id))
            continue;
        bool busy = false;
        PgGuard([&] { busy = SyncRunInProgress(MyDatabaseId, sync_id); });
        if (busy) {
            g_executing[run_id] = {sync_id, nullptr};
            continue;
        }
        SqlResult marked =
            Sql("UPDATE revetl.runs SET status = 'failed', finished_at = pg_catalog.clock_timestamp(), "
                "error = 'the revetl process running this run stopped; a new run was queued' "
                "WHERE id = $1 AND status = 'running' RETURNING id",
                {SqlArg::Int8(run_id)});
        if (marked.rows.empty())
            continue;
        recovered++;
        // The requests the process made after its last commit, from the
        // file it kept them in.
        if (auto counts = ReadRunCounts(MyDatabaseId, run_id)) {
            Sql("UPDATE revetl.runs SET requests = greatest(requests, $2), retries = greatest(retries, $3), "
                "rows_retried = greatest(rows_retried, $4), throttled = greatest(throttled, $5) WHERE id = "
                "$1",
                {SqlArg::Int8(run_id), SqlArg::Int8(counts->requests), SqlArg::Int8(counts->retries),
                 SqlArg::Int8(counts->rows_retried), SqlArg::Int8(counts->throttled)});
            counted_runs.push_back(run_id);
        }
        // What was in flight when the process died may still be applied by
        // the destination: those rows are checked again after its settle time.
        auto def = LoadSyncById(sync_id);
        if (def && def->mode != "insert") {
            long settle_ms = 60000;
            try {
                Destination dest = LookupDestination(def->destination);
                settle_ms = ResolveDestinationSettings(dest.server_options, {}).settle_time_ms;
            } catch (const std::exception &) {
                // The server is gone or broken: the default settle time will do.
            }
            // How far the process got is unknown: every planned row may
            // have been sent.
            // An ON CHANGE run may have recorded keys at its own id (its
            // first plan): the marks take a fresh version, so that the next
            // attempt of a change is a new one (src/pg/runner.cpp,
            // NextRecordingId).
            const int64 version =
                running.Text(i, 3) == "on change"
                    ? Sql("SELECT pg_catalog.nextval(pg_catalog.pg_get_serial_sequence('revetl.runs', 'id'))")
                          .Int8(0, 0)
                    : run_id;
            MarkPlannedRowsUncertain(def->shadow_table, run_id, settle_ms, INT64_MAX, version);
        }
        // Rows of a trigger-tracked sync that were planned and not delivered
        // are captured again for the next run.
        Sql(std::string("INSERT INTO revetl.captured_changes (sync_id, key, retry) SELECT s.id, c.key, true "
                        "FROM revetl.changes c "
                        "JOIN revetl.syncs s ON s.id = $2 WHERE c.run_id = $1 AND ") +
                kTrackedPredicate,
            {SqlArg::Int8(run_id), SqlArg::Int8(sync_id)});
        Sql("SELECT pg_catalog.pg_notify('revetl_runs', pg_catalog.json_build_object('sync', $1::text, "
            "'run_id', "
            "$2::bigint, "
            "'status', 'failed')::text)",
            {SqlArg::Text(running.Text(i, 2)), SqlArg::Int8(run_id)});
        // A paused or dropped sync is not run again.
        Sql("INSERT INTO revetl.runs (sync_id, sync_name, trigger, requested_by) "
            "SELECT id, name, 'retry', 'revetl' FROM revetl.syncs WHERE id = $1 AND NOT paused",
            {SqlArg::Int8(sync_id)});
    }
    if (at_start || recovered > 0)
        Sql("DELETE FROM revetl.changes c WHERE NOT EXISTS "
            "(SELECT 1 FROM revetl.runs r WHERE r.id = c.run_id AND r.status IN ('queued', 'running'))");
    CommitTransaction();
    for (int64 run_id : counted_runs)
        RemoveRunCounts(MyDatabaseId, run_id);
    if (recovered > 0)
        PgGuard([&] {
            ereport(LOG, (errmsg("revetl worker for database \"%s\" queued %d interrupted runs again",
                                 DatabaseName(), recovered)));
        });
}

// Capture functions made by an older version (before 0.2.0 they were
// plpgsql, and did not check which table and trigger called them) are made
// again, once, by the first scheduler of the updated version, in C, with
// their triggers (in one transaction: no write goes uncaptured).
void RefreshOldCaptureFunctions() {
    BeginTransaction("revetl: refreshing capture functions");
    SqlResult old = Sql("SELECT s.id FROM revetl.syncs s JOIN pg_catalog.pg_proc p "
                        "ON p.pronamespace = 'revetl'::pg_catalog.regnamespace "
                        "AND p.proname = 'capture_' || s.id::text WHERE p.prolang <> "
                        "(SELECT l.oid FROM pg_catalog.pg_language l WHERE l.lanname = 'c')");
    for (size_t i = 0; i < old.rows.size(); i++)
        if (auto def = LoadSyncById(old.Int8(i, 0)))
            (void)EnsureCapture(*def, true);
    CommitTransaction();
}

// Turns run_sync(wait => true) requests into queued runs. The requesting
// backend could not commit them itself: it is waiting inside its statement.
void ClaimWaitRequests() {
    struct Claim {
        int slot;
        WaitKind kind;
        Oid server_oid;
        Oid role_oid;
        char object[kWaitObjectLen];
        int64 sync_id;
        int64 run_id;
        char sync_name[NAMEDATALEN];
        char requested_by[NAMEDATALEN];
        int32 row_limit;
        bool full_diff;
        bool resync;
        bool allow_removals;
    };
    std::vector<Claim> claims;
    LWLockAcquire(g_shared->lock, LW_SHARED);
    for (int i = 0; i < kMaxWaitSlots; i++) {
        WaitSlot *w = &g_shared->waits[i];
        if (w->state == WaitState::Pending && w->dboid == MyDatabaseId) {
            Claim c;
            c.slot = i;
            c.kind = w->kind;
            c.server_oid = w->server_oid;
            c.role_oid = w->role_oid;
            memcpy(c.object, w->object, kWaitObjectLen);
            c.sync_id = w->sync_id;
            c.run_id = w->run_id;
            memcpy(c.sync_name, w->sync_name, NAMEDATALEN);
            memcpy(c.requested_by, w->requested_by, NAMEDATALEN);
            c.row_limit = w->row_limit;
            c.full_diff = w->full_diff;
            c.resync = w->resync;
            c.allow_removals = w->allow_removals;
            claims.push_back(c);
        }
    }
    LWLockRelease(g_shared->lock);
    if (claims.empty())
        return;
    BeginTransaction("revetl: queueing requested runs");
    for (const Claim &c : claims) {
        if (c.kind == WaitKind::Fields) {
            // The requester's rights were checked when it asked, and are
            // checked again by the process that fetches.
            Sql("INSERT INTO revetl.field_refreshes (id, server_id, role_id, object, requested_by) "
                "VALUES ($1, $2::pg_catalog.oid, $3::pg_catalog.oid, $4, $5) ON CONFLICT (id) DO NOTHING",
                {SqlArg::Int8(c.run_id), SqlArg::Int8(c.server_oid), SqlArg::Int8(c.role_oid),
                 SqlArg::Text(c.object), SqlArg::Text(c.requested_by)});
            continue;
        }
        Sql("INSERT INTO revetl.runs (id, sync_id, sync_name, trigger, requested_by, row_limit, "
            "full_diff, resync, allow_removals) "
            "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT (id) DO NOTHING",
            {SqlArg::Int8(c.run_id), SqlArg::Int8(c.sync_id), SqlArg::Text(c.sync_name),
             SqlArg::Text(c.row_limit >= 0 ? "test" : "manual"), SqlArg::Text(c.requested_by),
             c.row_limit >= 0 ? SqlArg::Int4(c.row_limit) : SqlArg::Null(INT4OID), SqlArg::Bool(c.full_diff),
             SqlArg::Bool(c.resync), SqlArg::Bool(c.allow_removals)});
    }
    CommitTransaction();
    LWLockAcquire(g_shared->lock, LW_EXCLUSIVE);
    for (const Claim &c : claims) {
        WaitSlot *w = &g_shared->waits[c.slot];
        if (w->state == WaitState::Pending && w->run_id == c.run_id)
            w->state = WaitState::Queued;
    }
    LWLockRelease(g_shared->lock);
}

// Tells waiting backends about runs that have ended (also runs that a
// previous worker of this database left behind).
void CompleteWaits() {
    std::vector<std::pair<int64, WaitKind>> run_ids;
    LWLockAcquire(g_shared->lock, LW_SHARED);
    for (int i = 0; i < kMaxWaitSlots; i++) {
        WaitSlot *w = &g_shared->waits[i];
        if (w->state == WaitState::Queued && w->dboid == MyDatabaseId)
            run_ids.emplace_back(w->run_id, w->kind);
    }
    LWLockRelease(g_shared->lock);
    if (run_ids.empty())
        return;
    bool any = false;
    for (const auto &[run_id, kind] : run_ids) {
        BeginTransaction("revetl: checking run");
        SqlResult r = Sql(kind == WaitKind::Fields
                              ? "SELECT status, coalesce(error, '') FROM revetl.field_refreshes WHERE id = $1"
                              : "SELECT status, coalesce(error, '') FROM revetl.runs WHERE id = $1",
                          {SqlArg::Int8(run_id)}, true);
        CommitTransaction();
        std::string status = r.rows.empty() ? "failed" : r.Text(0, 0);
        std::string error = r.rows.empty() ? "the run disappeared" : r.Text(0, 1);
        if (status == "queued" || status == "running")
            continue;
        bool told = false;
        PgGuard([&] { told = MarkWaitsDone(run_id, kind, status, error); });
        any = any || told;
    }
    if (any)
        ConditionVariableBroadcast(&g_shared->run_finished);
}

// Executors that ended: their runs get their follow-ups. A run still
// marked 'running' after its executor ended was interrupted.
bool ReapExecutors() {
    std::vector<int64> ended;
    std::vector<int64> adopted;
    for (auto &entry : g_executing) {
        if (!entry.second.handle) {
            adopted.push_back(entry.first);
            continue;
        }
        pid_t pid;
        BgwHandleStatus st = BGWH_STARTED;
        PgGuard([&] { st = GetBackgroundWorkerPid(entry.second.handle, &pid); });
        if (st == BGWH_STOPPED)
            ended.push_back(entry.first);
    }
    if (!adopted.empty()) {
        BeginTransaction("revetl: watching runs");
        for (int64 run_id : adopted) {
            SqlResult r = Sql("SELECT status FROM revetl.runs WHERE id = $1", {SqlArg::Int8(run_id)});
            // Still 'running' with no process of the sync left: its process
            // died while another (its recorder, recorder.hpp) was still
            // exiting. Recovered below, as any interrupted run.
            bool busy = true;
            PgGuard([&] { busy = SyncRunInProgress(MyDatabaseId, g_executing[run_id].sync_id); });
            if (r.rows.empty() || r.Text(0, 0) != "running" || !busy)
                ended.push_back(run_id);
        }
        CommitTransaction();
    }
    if (ended.empty())
        return false;
    for (int64 run_id : ended) {
        if (g_executing[run_id].handle)
            PgGuard([&] { pfree(g_executing[run_id].handle); });
        g_executing.erase(run_id);
    }
    RecoverInterruptedRuns(false);
    for (int64 run_id : ended)
        AfterRunFinished(run_id);
    CompleteWaits();
    return true;
}

// Starts executors for queued runs, oldest first, one per sync.
void StartExecutors() {
    int room = g_max_parallel_runs - static_cast<int>(g_executing.size());
    if (room <= 0)
        return;
    BeginTransaction("revetl: looking for runs");
    SqlResult r = Sql("SELECT DISTINCT ON (sync_id) id, sync_id FROM revetl.runs WHERE status = 'queued' "
                      "ORDER BY sync_id, id",
                      {}, true);
    CommitTransaction();
    std::vector<std::pair<int64, int64>> queued;
    for (size_t i = 0; i < r.rows.size(); i++)
        queued.emplace_back(r.Int8(i, 0), r.Int8(i, 1));
    std::sort(queued.begin(), queued.end());
    for (const auto &q : queued) {
        if (room <= 0)
            break;
        bool busy = false;
        for (const auto &e : g_executing)
            busy = busy || e.second.sync_id == q.second;
        if (busy)
            continue;
        BackgroundWorkerHandle *handle = StartExecutor(q.first);
        if (!handle) {
            PgGuard([] {
                ereport(WARNING,
                        (errmsg("revetl worker for database \"%s\" could not start a run", DatabaseName()),
                         errhint("Raise max_worker_processes: each run in progress is a background "
                                 "worker.")));
            });
            break;
        }
        g_executing[q.first] = {q.second, handle};
        room--;
    }
}

// One step of the scheduler's loop. An error in it (a sync dropped in the
// middle, a run process terminated at the same moment) is logged and the
// transaction rolled back; the scheduler goes on, and the next pass sees the
// new state. Only a shutdown (FATAL) ends the process.
template <typename F>
void Step(const char *what, F &&f) {
    try {
        f();
    } catch (const std::exception &e) {
        AbortTransaction();
        std::string why = e.what();
        PgGuard([&] {
            ereport(WARNING, (errmsg("revetl worker for database \"%s\": error while %s: %s", DatabaseName(),
                                     what, why.c_str())));
        });
    }
}

void WorkerLoop(Oid dboid) {
    MemoryContext loop_cxt =
        AllocSetContextCreate(TopMemoryContext, "revetl worker loop", ALLOCSET_DEFAULT_SIZES);
    context_between_transactions = loop_cxt;
    SetSessionSettings("revetl worker");
    if (!AwaitExtension()) {
        MarkNoExtension(dboid);
        proc_exit(0);
    }
    PgGuard([] { ereport(LOG, (errmsg("revetl worker started for database \"%s\"", DatabaseName()))); });
    RecoverInterruptedRuns(true);
    Step("recovering field refreshes", [] { RecoverFieldRefreshes(); });
    Step("refreshing capture functions", [] { RefreshOldCaptureFunctions(); });
    CompleteWaits();

    TimestampTz last_periodic = 0;
    PgGuard([&] { last_periodic = GetCurrentTimestamp(); });
    bool told_copy = false;
    TimestampTz last_backlog_check = 0;
    bool backlogs_watched = true;
    for (;;) {
        PgGuard([] {
            CHECK_FOR_INTERRUPTS();
            if (ConfigReloadPending) {
                ConfigReloadPending = false;
                ProcessConfigFile(PGC_SIGHUP);
            }
        });
        PgGuard([&] {
            MemoryContextSwitchTo(TopMemoryContext);
            MemoryContextReset(loop_cxt);
            MemoryContextSwitchTo(loop_cxt);
        });
        // A copy of a database (a template copy, a restored dump) holds
        // every sync until revetl.confirm_copy(): checked on every round, as
        // a restore brings its syncs in while this worker already runs.
        bool held = false;
        Step("checking whether this database is a copy", [&] {
            BeginTransaction("revetl: checking for a copy");
            std::optional<std::string> why = CopyOfAnotherDatabase();
            CommitTransaction();
            held = why.has_value();
            if (held && !told_copy)
                PgGuard([&] {
                    ereport(LOG, (errmsg("revetl worker for database \"%s\" holds every sync: this database "
                                         "is a copy (it %s)",
                                         DatabaseName(), why->c_str()),
                                  errhint("Run SELECT revetl.confirm_copy() in it if it is meant to send.")));
                });
            else if (!held && told_copy)
                PgGuard([&] {
                    ereport(LOG, (errmsg("revetl worker for database \"%s\" releases its syncs: the copy was "
                                         "confirmed",
                                         DatabaseName())));
                });
            told_copy = held;
        });
        // Before queueing ON CHANGE runs, so that they see the keys. Also
        // for a held copy and paused syncs: the keys queue in the database
        // rather than the WAL piling up behind the slot.
        bool wal_capture = false;
        Step("capturing changes from the WAL", [&] { wal_capture = CaptureWalChanges(); });
        Step("claiming waited-for runs", [] { ClaimWaitRequests(); });
        Step("reaping run processes", [] { ReapExecutors(); });
        if (!held) {
            Step("queueing scheduled runs", [] { EnqueueDueRuns(); });
            Step("queueing ON CHANGE runs", [] { EnqueueCapturedRuns(); });
            Step("starting runs", [] { StartExecutors(); });
        }
        // A refresh process's start and exit set this worker's latch
        // (bgw_notify_pid), as a run process's do.
        Step("fetching destination fields", [] {
            bool ended = ReapFieldRefreshes();
            if (StartFieldRefreshes() || ended)
                CompleteWaits();
        });
        Step("pruning history", [] { PruneHistory(false); });
        // Not in a held copy, which sends nothing.
        if (!held) {
            TimestampTz now = 0;
            PgGuard([&] { now = GetCurrentTimestamp(); });
            if (now - last_backlog_check >= kBacklogCheckMs * 1000L) {
                last_backlog_check = now;
                Step("checking backlogs", [&] { backlogs_watched = CheckBacklogs(); });
            }
        }
        const bool alerts_in_flight = PumpAlerts();

        long wait_ms = kWorkerNaptimeMs;
        long due = MillisUntilNextDue();
        if (due >= 0 && due < wait_ms)
            wait_ms = std::max<long>(due, 10);
        bool adopted = false;
        for (const auto &e : g_executing)
            adopted = adopted || !e.second.handle;
        if (adopted)
            wait_ms = std::min(wait_ms, kAdoptedPollMs);
        if (alerts_in_flight)
            wait_ms = std::min(wait_ms, kAlertPollMs);
        if (backlogs_watched && !held)
            wait_ms = std::min(wait_ms, kBacklogCheckMs);
        // Writers do not wake the scheduler for WAL-captured syncs. While it
        // waits for its next pass, the scheduler is the WAL's reader: every
        // revetl.wal_poll_interval it compares the flush position with what
        // it decoded (shared memory, no transaction) and reads the slot
        // alone when the WAL moved, without the pass's other steps.
        // The pass itself still comes at least every second (it checks the
        // backlogs of syncs that may have come since the last check).
        if (wal_capture)
            wait_ms = std::min(wait_ms, kBacklogCheckMs);
        TimestampTz wait_start = 0;
        PgGuard([&] { wait_start = GetCurrentTimestamp(); });
        for (;;) {
            TimestampTz at = 0;
            PgGuard([&] { at = GetCurrentTimestamp(); });
            const long left = wait_ms - static_cast<long>((at - wait_start) / 1000);
            if (left <= 0)
                break;
            const long nap = wal_capture ? std::min<long>(left, g_wal_poll_interval_ms) : left;
            int rc = 0;
            PgGuard([&] {
                rc = WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH, nap,
                               PG_WAIT_EXTENSION);
                ResetLatch(MyLatch);
                CHECK_FOR_INTERRUPTS();
            });
            if ((rc & WL_LATCH_SET) || !wal_capture)
                break;
            if (WalToRead())
                Step("capturing changes from the WAL", [&] { wal_capture = CaptureWalChanges(true); });
        }
        // Once a naptime, however busy the schedule keeps the loop: is the
        // extension still there, and has a sync gone without success too long?
        TimestampTz now = 0;
        PgGuard([&] { now = GetCurrentTimestamp(); });
        if (now - last_periodic >= kWorkerNaptimeMs * 1000L) {
            last_periodic = now;
            if (!AwaitExtension()) {
                MarkNoExtension(dboid);
                Step("dropping the WAL slot", [] { DropWalSlot(); });
                PgGuard([] {
                    ereport(LOG,
                            (errmsg("revetl worker for database \"%s\" exiting: the extension was dropped",
                                    DatabaseName())));
                });
                proc_exit(0);
            }
            CheckStaleSyncs();
        }
    }
}

} // namespace
} // namespace revetl::pg

void revetl_worker_main(Datum main_arg) {
    using namespace revetl::pg;
    Oid dboid = DatumGetObjectId(main_arg);
    pqsignal(SIGHUP, SignalHandlerForConfigReload);
    pqsignal(SIGTERM, die);
    BackgroundWorkerUnblockSignals();
    if (!RegisterSelf(dboid))
        proc_exit(0);
    before_shmem_exit(ClearSlot, ObjectIdGetDatum(dboid));
    BackgroundWorkerInitializeConnectionByOid(dboid, InvalidOid, 0);

    ErrorData *edata = nullptr;
    try {
        WorkerLoop(dboid);
    } catch (...) {
        edata = CurrentExceptionToErrorData();
    }
    // Out of the C++ scope: report and exit with an error, so the launcher
    // restarts this worker after revetl.worker_restart_delay.
    ereport(FATAL, (errcode(edata->sqlerrcode),
                    errmsg("revetl worker for database \"%s\" failed: %s", DatabaseName(), edata->message),
                    edata->detail ? errdetail("%s", edata->detail) : 0));
}
