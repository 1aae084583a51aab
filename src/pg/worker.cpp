// The per-database worker: takes queued runs in order and executes them, and
// otherwise sleeps on its latch until a committed run_sync() wakes it.
#include "pg/catalog.hpp"
#include "pg/module.hpp"
#include "pg/runner.hpp"
#include "pg/shared_state.hpp"
#include "pg/spi.hpp"

#include <cstring>

extern "C" {
PGDLLEXPORT void revetl_worker_main(Datum main_arg);
}

namespace revetl::pg {

namespace {

// A safety net only: every run request sets the latch. The timeout lets the
// worker notice DROP EXTENSION, which nothing announces.
constexpr long kWorkerNaptimeMs = 60000;

// For log lines; read once, in a transaction, because the syscache needs one.
char g_dbname[NAMEDATALEN];

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
        slot->worker_procno = MyProc->pgprocno;
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

bool ExtensionPresent() {
    bool present = false;
    BeginTransaction("revetl: checking extension");
    PgGuard([&] {
        present = OidIsValid(get_extension_oid("revetl", true));
        if (g_dbname[0] == '\0') {
            char *name = get_database_name(MyDatabaseId);
            strlcpy(g_dbname, name ? name : "?", sizeof g_dbname);
        }
    });
    CommitTransaction();
    return present;
}

// Fixed session settings: payloads and row hashes must not depend on
// whatever postgresql.conf says about dates, intervals or float output.
void SetSessionSettings() {
    PgGuard([] {
        SetConfigOption("TimeZone", "UTC", PGC_SUSET, PGC_S_OVERRIDE);
        SetConfigOption("DateStyle", "ISO, YMD", PGC_SUSET, PGC_S_OVERRIDE);
        SetConfigOption("IntervalStyle", "postgres", PGC_SUSET, PGC_S_OVERRIDE);
        SetConfigOption("extra_float_digits", "1", PGC_SUSET, PGC_S_OVERRIDE);
        SetConfigOption("application_name", "revetl worker", PGC_SUSET, PGC_S_OVERRIDE);
        pgstat_report_appname("revetl worker");
    });
}

// Runs left 'running' by a worker that died are marked failed and queued
// again, so their rows are planned anew rather than lost.
void RecoverInterruptedRuns() {
    BeginTransaction("revetl: recovering");
    SqlResult r = Sql("UPDATE revetl.sync_runs SET status = 'failed', finished_at = clock_timestamp(), "
                      "error = 'the revetl worker stopped during this run; a new run was queued' "
                      "WHERE status = 'running' RETURNING id, sync_id, sync_name");
    for (size_t i = 0; i < r.rows.size(); i++) {
        Sql("SELECT pg_catalog.pg_notify('revetl_runs', json_build_object('sync', $1::text, 'run_id', "
            "$2::bigint, "
            "'status', 'failed')::text)",
            {SqlArg::Text(r.Text(i, 2)), SqlArg::Int8(r.Int8(i, 0))});
        // A paused or dropped sync is not run again.
        Sql("INSERT INTO revetl.sync_runs (sync_id, sync_name, trigger, requested_by) "
            "SELECT id, name, 'retry', 'revetl' FROM revetl.syncs WHERE id = $1 AND NOT paused",
            {SqlArg::Int8(r.Int8(i, 1))});
    }
    Sql("DELETE FROM revetl.changes c WHERE NOT EXISTS "
        "(SELECT 1 FROM revetl.sync_runs r WHERE r.id = c.run_id AND r.status IN ('queued', 'running'))");
    CommitTransaction();
    if (r.processed > 0)
        PgGuard([&] {
            ereport(LOG, (errmsg("revetl worker for database \"%s\" queued %llu interrupted runs again",
                                 g_dbname, (unsigned long long)r.processed)));
        });
}

// Turns run_sync(wait => true) requests into queued runs. The requesting
// backend could not commit them itself: it is waiting inside its statement.
void ClaimWaitRequests() {
    struct Claim {
        int slot;
        int64 sync_id;
        int64 run_id;
        char sync_name[NAMEDATALEN];
        char requested_by[NAMEDATALEN];
    };
    std::vector<Claim> claims;
    LWLockAcquire(g_shared->lock, LW_SHARED);
    for (int i = 0; i < kMaxWaitSlots; i++) {
        WaitSlot *w = &g_shared->waits[i];
        if (w->state == WaitState::Pending && w->dboid == MyDatabaseId) {
            Claim c;
            c.slot = i;
            c.sync_id = w->sync_id;
            c.run_id = w->run_id;
            memcpy(c.sync_name, w->sync_name, NAMEDATALEN);
            memcpy(c.requested_by, w->requested_by, NAMEDATALEN);
            claims.push_back(c);
        }
    }
    LWLockRelease(g_shared->lock);
    if (claims.empty())
        return;
    BeginTransaction("revetl: queueing requested runs");
    for (const Claim &c : claims)
        Sql("INSERT INTO revetl.sync_runs (id, sync_id, sync_name, trigger, requested_by) "
            "VALUES ($1, $2, $3, 'manual', $4) ON CONFLICT (id) DO NOTHING",
            {SqlArg::Int8(c.run_id), SqlArg::Int8(c.sync_id), SqlArg::Text(c.sync_name),
             SqlArg::Text(c.requested_by)});
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
    std::vector<int64> run_ids;
    LWLockAcquire(g_shared->lock, LW_SHARED);
    for (int i = 0; i < kMaxWaitSlots; i++) {
        WaitSlot *w = &g_shared->waits[i];
        if (w->state == WaitState::Queued && w->dboid == MyDatabaseId)
            run_ids.push_back(w->run_id);
    }
    LWLockRelease(g_shared->lock);
    if (run_ids.empty())
        return;
    bool any = false;
    for (int64 run_id : run_ids) {
        BeginTransaction("revetl: checking run");
        SqlResult r = Sql("SELECT status, coalesce(error, '') FROM revetl.sync_runs WHERE id = $1",
                          {SqlArg::Int8(run_id)}, true);
        CommitTransaction();
        std::string status = r.rows.empty() ? "failed" : r.Text(0, 0);
        std::string error = r.rows.empty() ? "the run disappeared" : r.Text(0, 1);
        if (status == "queued" || status == "running")
            continue;
        LWLockAcquire(g_shared->lock, LW_EXCLUSIVE);
        for (int i = 0; i < kMaxWaitSlots; i++) {
            WaitSlot *w = &g_shared->waits[i];
            if (w->state != WaitState::Queued || w->run_id != run_id || w->dboid != MyDatabaseId)
                continue;
            if (w->abandoned) {
                memset(w, 0, sizeof *w);
            } else {
                strlcpy(w->status, status.c_str(), sizeof w->status);
                strlcpy(w->error, error.c_str(), sizeof w->error);
                w->state = WaitState::Done;
            }
            any = true;
        }
        LWLockRelease(g_shared->lock);
    }
    if (any)
        ConditionVariableBroadcast(&g_shared->run_finished);
}

int64 NextQueuedRun() {
    BeginTransaction("revetl: looking for runs");
    SqlResult r =
        Sql("SELECT id FROM revetl.sync_runs WHERE status = 'queued' ORDER BY id LIMIT 1", {}, true);
    CommitTransaction();
    return r.rows.empty() ? 0 : r.Int8(0, 0);
}

void WorkerLoop(Oid dboid) {
    MemoryContext loop_cxt =
        AllocSetContextCreate(TopMemoryContext, "revetl worker loop", ALLOCSET_DEFAULT_SIZES);
    context_between_transactions = loop_cxt;
    SetSessionSettings();
    if (!ExtensionPresent()) {
        MarkNoExtension(dboid);
        proc_exit(0);
    }
    PgGuard([] { ereport(LOG, (errmsg("revetl worker started for database \"%s\"", g_dbname))); });
    RecoverInterruptedRuns();
    CompleteWaits();

    for (;;) {
        PgGuard([] {
            CHECK_FOR_INTERRUPTS();
            if (ConfigReloadPending) {
                ConfigReloadPending = false;
                ProcessConfigFile(PGC_SIGHUP);
            }
        });
        PgGuard([&] { MemoryContextSwitchTo(loop_cxt); });
        ClaimWaitRequests();
        int64 run_id = NextQueuedRun();
        if (run_id != 0) {
            ExecuteRun(run_id);
            CompleteWaits();
            PgGuard([&] {
                MemoryContextSwitchTo(TopMemoryContext);
                MemoryContextReset(loop_cxt);
                MemoryContextSwitchTo(loop_cxt);
            });
            continue;
        }
        int rc = 0;
        PgGuard([&] {
            rc = WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH, kWorkerNaptimeMs,
                           PG_WAIT_EXTENSION);
            ResetLatch(MyLatch);
        });
        if ((rc & WL_TIMEOUT) && !ExtensionPresent()) {
            MarkNoExtension(dboid);
            PgGuard([] {
                ereport(LOG, (errmsg("revetl worker for database \"%s\" exiting: the extension was dropped",
                                     g_dbname)));
            });
            proc_exit(0);
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
    ereport(FATAL,
            (errcode(edata->sqlerrcode),
             errmsg("revetl worker for database \"%s\" failed: %s", revetl::pg::g_dbname, edata->message),
             edata->detail ? errdetail("%s", edata->detail) : 0));
}
