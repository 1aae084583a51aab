// The launcher: one per cluster. It starts one worker per database that has
// the extension, restarts a worker that exited with an error, and otherwise
// sleeps on its latch (woken by CREATE EXTENSION, by run requests for a
// database with no worker, and by worker exits through bgw_notify_pid).
//
// It cannot tell which databases have revetl without connecting to them, so
// it starts a worker in each connectable database once; a worker that finds
// no extension records that in shared memory and exits, and is not started
// again until something wakes the launcher for that database.
#include "pg/module.hpp"
#include "pg/shared_state.hpp"

#include <cstring>

extern "C" {
PGDLLEXPORT void revetl_launcher_main(Datum main_arg);
}

namespace revetl::pg {

namespace {

struct LocalWorker {
    Oid dboid;
    BackgroundWorkerHandle *handle;
    TimestampTz last_start;
};

constexpr int kMaxLocal = 4096;
LocalWorker g_local[kMaxLocal];
int g_local_count = 0;

LocalWorker *FindLocal(Oid dboid) {
    for (int i = 0; i < g_local_count; i++)
        if (g_local[i].dboid == dboid)
            return &g_local[i];
    return nullptr;
}

// Connectable, valid databases, read from the shared catalog pg_database.
int ListDatabases(Oid *out, int max) {
    int n = 0;
    SetCurrentStatementStartTimestamp();
    StartTransactionCommand();
    (void)GetTransactionSnapshot();
    Relation rel = table_open(DatabaseRelationId, AccessShareLock);
    TableScanDesc scan = table_beginscan_catalog(rel, 0, nullptr);
    HeapTuple tup;
    while ((tup = heap_getnext(scan, ForwardScanDirection)) != nullptr && n < max) {
        Form_pg_database db = (Form_pg_database)GETSTRUCT(tup);
        // datconnlimit -2 marks a database left invalid by an interrupted DROP.
        if (!db->datallowconn || db->datistemplate || db->datconnlimit == -2)
            continue;
        out[n++] = db->oid;
    }
    table_endscan(scan);
    table_close(rel, AccessShareLock);
    CommitTransactionCommand();
    return n;
}

bool StartWorker(Oid dboid, LocalWorker *local) {
    BackgroundWorker worker;
    memset(&worker, 0, sizeof worker);
    worker.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
    worker.bgw_start_time = BgWorkerStart_RecoveryFinished;
    worker.bgw_restart_time = BGW_NEVER_RESTART;
    snprintf(worker.bgw_library_name, BGW_MAXLEN, "revetl");
    snprintf(worker.bgw_function_name, BGW_MAXLEN, "revetl_worker_main");
    snprintf(worker.bgw_name, BGW_MAXLEN, "revetl worker for database %u", dboid);
    snprintf(worker.bgw_type, BGW_MAXLEN, "revetl worker");
    worker.bgw_main_arg = ObjectIdGetDatum(dboid);
    worker.bgw_notify_pid = MyProcPid;
    BackgroundWorkerHandle *handle = nullptr;
    if (!RegisterDynamicBackgroundWorker(&worker, &handle)) {
        ereport(WARNING, (errmsg("revetl launcher could not start a worker for database %u", dboid),
                          errhint("Raise max_worker_processes: revetl needs one for the launcher and one per "
                                  "database that uses it.")));
        return false;
    }
    local->handle = handle;
    local->last_start = GetCurrentTimestamp();
    return true;
}

// One pass: start what should run. Returns milliseconds until the next pass
// that a pending restart or block needs, or -1.
long Reconcile() {
    static Oid dbs[kMaxLocal];
    int ndbs = ListDatabases(dbs, kMaxLocal);

    // Forget databases that are gone, so their slots can be reused.
    LWLockAcquire(g_shared->lock, LW_EXCLUSIVE);
    for (int s = 0; s < g_shared->max_databases; s++) {
        DatabaseSlot *slot = &g_shared->databases[s];
        if (slot->dboid == InvalidOid || slot->worker_pid != 0)
            continue;
        bool exists = false;
        for (int i = 0; i < ndbs && !exists; i++)
            exists = dbs[i] == slot->dboid;
        if (!exists) {
            slot->dboid = InvalidOid;
            slot->no_extension = false;
        }
    }
    LWLockRelease(g_shared->lock);

    long next_ms = -1;
    TimestampTz now = GetCurrentTimestamp();
    for (int i = 0; i < ndbs; i++) {
        Oid dboid = dbs[i];
        LocalWorker *local = FindLocal(dboid);
        if (local && local->handle) {
            pid_t pid;
            if (GetBackgroundWorkerPid(local->handle, &pid) != BGWH_STOPPED)
                continue; // starting or running
            pfree(local->handle);
            local->handle = nullptr;
        }
        LWLockAcquire(g_shared->lock, LW_EXCLUSIVE);
        DatabaseSlot *slot = FindOrAddDatabaseSlot(dboid);
        bool skip = !slot || slot->no_extension || slot->worker_pid != 0;
        TimestampTz blocked_until = slot ? slot->blocked_until : 0;
        LWLockRelease(g_shared->lock);
        if (!slot) {
            ereport(WARNING, (errmsg("revetl has no room for another database"),
                              errhint("Raise revetl.max_databases (currently %d) and restart the server.",
                                      g_max_databases)));
            continue;
        }
        if (skip)
            continue;
        TimestampTz not_before = blocked_until;
        if (local) {
            TimestampTz restart_at =
                TimestampTzPlusMilliseconds(local->last_start, g_worker_restart_delay_s * 1000L);
            if (restart_at > not_before)
                not_before = restart_at;
        }
        if (not_before > now) {
            long wait_ms = (long)((not_before - now) / 1000) + 1;
            if (next_ms < 0 || wait_ms < next_ms)
                next_ms = wait_ms;
            continue;
        }
        if (!local) {
            if (g_local_count >= kMaxLocal)
                continue;
            local = &g_local[g_local_count++];
            local->dboid = dboid;
            local->handle = nullptr;
        }
        StartWorker(dboid, local);
    }
    return next_ms;
}

void LauncherMain() {
    pqsignal(SIGHUP, SignalHandlerForConfigReload);
    pqsignal(SIGTERM, die);
    BackgroundWorkerUnblockSignals();
    BackgroundWorkerInitializeConnection(nullptr, nullptr, 0);
    pgstat_report_appname("revetl launcher");

    LWLockAcquire(g_shared->lock, LW_EXCLUSIVE);
    g_shared->launcher_pid = MyProcPid;
    g_shared->launcher_procno = compat::MyProcIndex();
    // After a crash restart, nothing from before is true any more.
    for (int i = 0; i < g_shared->max_databases; i++) {
        g_shared->databases[i].no_extension = false;
    }
    LWLockRelease(g_shared->lock);

    ereport(LOG, (errmsg("revetl launcher started")));
    for (;;) {
        CHECK_FOR_INTERRUPTS();
        if (ConfigReloadPending) {
            ConfigReloadPending = false;
            ProcessConfigFile(PGC_SIGHUP);
        }
        LWLockAcquire(g_shared->lock, LW_EXCLUSIVE);
        g_shared->rescan_requested = false;
        LWLockRelease(g_shared->lock);

        // Each pass re-reads pg_database: it is small, and a pass happens only
        // when something woke the launcher, a restart is due, or naptime passed.
        long next_ms = Reconcile();
        long naptime_ms = g_launcher_naptime_s * 1000L;
        long wait_ms = next_ms >= 0 && next_ms < naptime_ms ? next_ms : naptime_ms;
        (void)WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH, wait_ms, PG_WAIT_EXTENSION);
        ResetLatch(MyLatch);
    }
}

} // namespace
} // namespace revetl::pg

void revetl_launcher_main(Datum) {
    // The launcher holds no C++ object with a destructor across PostgreSQL
    // calls; errors end the process and the postmaster restarts it.
    revetl::pg::LauncherMain();
}
