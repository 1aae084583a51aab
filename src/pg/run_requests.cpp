#include "pg/run_requests.hpp"

#include "pg/guard.hpp"
#include "pg/shared_state.hpp"

namespace revetl::pg {

namespace {

bool g_wake_worker_at_commit = false;
bool g_wake_launcher_at_commit = false;
// ON CHANGE syncs whose captured keys this transaction wrote: at commit the
// process running one (its run delivers new commits as they come) is woken,
// and the scheduler only for the others. A few distinct syncs are kept; a
// transaction writing to more wakes the scheduler as well.
constexpr int kMaxWakeSyncs = 8;
int64 g_wake_syncs[kMaxWakeSyncs];
int g_wake_sync_count = 0;
bool g_wake_syncs_overflowed = false;

void ForgetWakeSyncs() {
    g_wake_sync_count = 0;
    g_wake_syncs_overflowed = false;
}

// How long a waiting run_sync() tolerates having no worker to take its
// request before it gives up with an error.
constexpr long kNoWorkerTimeoutMs = 30000;

void OnXactEvent(XactEvent event, void *) {
    switch (event) {
    case XACT_EVENT_COMMIT:
    case XACT_EVENT_PARALLEL_COMMIT:
        // Both wake this database's worker; with no worker yet (a new
        // CREATE EXTENSION), the launcher is woken to start one.
        // A sync whose run is in progress needs no scheduler: that run's
        // process plans the new keys, or, if it has just ended, exits, which
        // wakes the scheduler (bgw_notify_pid) after this commit.
        if (g_shared) {
            for (int i = 0; i < g_wake_sync_count; i++)
                if (!WakeSyncRun(MyDatabaseId, g_wake_syncs[i]))
                    g_wake_worker_at_commit = true;
            if (g_wake_syncs_overflowed)
                g_wake_worker_at_commit = true;
        }
        if ((g_wake_launcher_at_commit || g_wake_worker_at_commit) && g_shared)
            WakeWorkerOrLauncher(MyDatabaseId);
        g_wake_worker_at_commit = false;
        g_wake_launcher_at_commit = false;
        ForgetWakeSyncs();
        break;
    case XACT_EVENT_ABORT:
    case XACT_EVENT_PARALLEL_ABORT:
        g_wake_worker_at_commit = false;
        g_wake_launcher_at_commit = false;
        ForgetWakeSyncs();
        break;
    default:
        break;
    }
}

struct WaitArgs {
    WaitKind kind;
    Oid server_oid;
    Oid role_oid;
    const char *object;
    int64 sync_id;
    int64 run_id;
    const char *sync_name;
    const char *requested_by;
    int32 row_limit;
    bool full_diff;
    bool resync;
    bool allow_removals;
    int slot;
    char status[16];
    char error[kWaitErrorLen];
};

// On error (cancel, timeout) the waiter leaves; the worker frees the slot.
void AbandonWait(int, Datum arg) {
    WaitArgs *args = reinterpret_cast<WaitArgs *>(DatumGetPointer(arg));
    if (args->slot < 0)
        return;
    LWLockAcquire(g_shared->lock, LW_EXCLUSIVE);
    WaitSlot *w = &g_shared->waits[args->slot];
    if (w->run_id == args->run_id) {
        if (w->state == WaitState::Pending || w->state == WaitState::Done)
            memset(w, 0, sizeof *w);
        else
            w->abandoned = true;
    }
    LWLockRelease(g_shared->lock);
    ConditionVariableCancelSleep();
}

// Progress NOTICEs for run_sync(wait => true): one when the plan is done,
// then one each time another tenth of the planned rows is done, at most one
// a second, so a long run says where it is without flooding the client.
constexpr long kProgressCheckMs = 500;
constexpr long kProgressNoticeMs = 1000;
constexpr int kProgressStepPercent = 10;

struct ProgressState {
    bool plan_reported = false;
    int last_step = 0; // tenths reported so far
    TimestampTz last_check = 0;
    TimestampTz last_notice = 0;
};

// Reads the run's row in revetl.sync_progress (counts only, readable by
// every role, committed by the worker as the run goes) and says what is new.
// Qualified names and operators: the caller's search_path is not trusted.
void ReportProgress(const WaitArgs *args, ProgressState *st) {
    TimestampTz now = GetCurrentTimestamp();
    if (st->last_check != 0 && !TimestampDifferenceExceeds(st->last_check, now, kProgressCheckMs))
        return;
    st->last_check = now;
    if (SPI_connect() != SPI_OK_CONNECT)
        return;
    Oid types[1] = {INT8OID};
    Datum values[1] = {Int64GetDatum(args->run_id)};
    int rc = SPI_execute_with_args("SELECT phase, rows_planned, rows_done, rows_delivered, rows_rejected "
                                   "FROM revetl.sync_progress WHERE run_id OPERATOR(pg_catalog.=) $1",
                                   1, types, values, nullptr, false, 1); // not read-only: a fresh snapshot
    bool have = rc == SPI_OK_SELECT && SPI_processed == 1;
    bool delivering = false, planned_null = true, isnull = false;
    int64 planned = 0, done = 0, delivered = 0, rejected = 0;
    if (have) {
        HeapTuple tup = SPI_tuptable->vals[0];
        TupleDesc desc = SPI_tuptable->tupdesc;
        char *phase = SPI_getvalue(tup, desc, 1);
        delivering = phase && strcmp(phase, "delivering") == 0;
        Datum d = SPI_getbinval(tup, desc, 2, &planned_null);
        if (!planned_null)
            planned = DatumGetInt64(d);
        d = SPI_getbinval(tup, desc, 3, &isnull);
        done = isnull ? 0 : DatumGetInt64(d);
        d = SPI_getbinval(tup, desc, 4, &isnull);
        delivered = isnull ? 0 : DatumGetInt64(d);
        d = SPI_getbinval(tup, desc, 5, &isnull);
        rejected = isnull ? 0 : DatumGetInt64(d);
    }
    SPI_finish();
    if (!have || !delivering || planned_null)
        return;
    if (!st->plan_reported) {
        st->plan_reported = true;
        st->last_notice = now;
        ereport(NOTICE, (errmsg("run %lld of sync \"%s\": plan done, %lld rows to send",
                                (long long)args->run_id, args->sync_name, (long long)planned)));
        return;
    }
    if (planned <= 0)
        return;
    int step = static_cast<int>((done * 100 / planned) / kProgressStepPercent);
    if (step <= st->last_step || step >= 100 / kProgressStepPercent)
        return; // nothing new, or the end (the run's result says that)
    if (st->last_notice != 0 && !TimestampDifferenceExceeds(st->last_notice, now, kProgressNoticeMs))
        return;
    st->last_step = step;
    st->last_notice = now;
    ereport(NOTICE,
            (errmsg("run %lld of sync \"%s\": %d%% done, %lld of %lld rows (%lld delivered, %lld refused)",
                    (long long)args->run_id, args->sync_name, (int)(done * 100 / planned), (long long)done,
                    (long long)planned, (long long)delivered, (long long)rejected)));
}

// Plain C-style: it sleeps and may be cancelled with an ERROR.
void WaitForRun(WaitArgs *args) {
    args->slot = -1;
    LWLockAcquire(g_shared->lock, LW_EXCLUSIVE);
    for (int i = 0; i < kMaxWaitSlots; i++) {
        WaitSlot *w = &g_shared->waits[i];
        if (w->state == WaitState::Free) {
            memset(w, 0, sizeof *w);
            w->state = WaitState::Pending;
            w->kind = args->kind;
            w->server_oid = args->server_oid;
            w->role_oid = args->role_oid;
            if (args->object)
                strlcpy(w->object, args->object, sizeof w->object);
            w->dboid = MyDatabaseId;
            w->sync_id = args->sync_id;
            w->run_id = args->run_id;
            w->row_limit = args->row_limit;
            w->full_diff = args->full_diff;
            w->resync = args->resync;
            w->allow_removals = args->allow_removals;
            strlcpy(w->sync_name, args->sync_name, NAMEDATALEN);
            strlcpy(w->requested_by, args->requested_by, NAMEDATALEN);
            args->slot = i;
            break;
        }
    }
    LWLockRelease(g_shared->lock);
    if (args->slot < 0)
        ereport(ERROR, (errcode(ERRCODE_CONFIGURATION_LIMIT_EXCEEDED),
                        errmsg("too many sessions are waiting for sync runs"),
                        errdetail("At most %d run_sync(wait => true) calls can wait at once.", kMaxWaitSlots),
                        errhint("Call revetl.run_sync without wait and watch revetl.sync_runs instead.")));

    WakeWorkerOrLauncher(MyDatabaseId);
    TimestampTz no_worker_since = 0;
    ProgressState progress;
    PG_ENSURE_ERROR_CLEANUP(AbandonWait, PointerGetDatum(args));
    {
        ConditionVariablePrepareToSleep(&g_shared->run_finished);
        for (;;) {
            LWLockAcquire(g_shared->lock, LW_EXCLUSIVE);
            WaitSlot *w = &g_shared->waits[args->slot];
            bool done = w->state == WaitState::Done;
            bool pending = w->state == WaitState::Pending;
            if (done) {
                strlcpy(args->status, w->status, sizeof args->status);
                strlcpy(args->error, w->error, sizeof args->error);
                memset(w, 0, sizeof *w);
            }
            DatabaseSlot *db = FindDatabaseSlot(MyDatabaseId);
            bool have_worker = db && db->worker_pid != 0;
            LWLockRelease(g_shared->lock);
            if (done)
                break;
            if (pending && !have_worker) {
                TimestampTz now = GetCurrentTimestamp();
                if (no_worker_since == 0)
                    no_worker_since = now;
                else if (TimestampDifferenceExceeds(no_worker_since, now, kNoWorkerTimeoutMs))
                    ereport(ERROR,
                            (errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
                             errmsg("no revetl worker is running for database \"%s\"",
                                    get_database_name(MyDatabaseId)),
                             errhint("Check that revetl is in shared_preload_libraries and that "
                                     "max_worker_processes leaves room for its workers; the server log "
                                     "says why a worker stopped.")));
            } else {
                no_worker_since = 0;
            }
            if (args->kind == WaitKind::Run && !pending)
                ReportProgress(args, &progress);
            // Waking on the broadcast is the normal path; the timeout only
            // lets this loop notice a missing worker.
            (void)ConditionVariableTimedSleep(&g_shared->run_finished, 1000, PG_WAIT_EXTENSION);
        }
        ConditionVariableCancelSleep();
    }
    PG_END_ENSURE_ERROR_CLEANUP(AbandonWait, PointerGetDatum(args));
}

} // namespace

void InitRunRequests() {
    RegisterXactCallback(OnXactEvent, nullptr);
}

void WakeWorkerAtCommit() {
    g_wake_worker_at_commit = true;
}

void WakeSyncAtCommit(int64_t sync_id) {
    for (int i = 0; i < g_wake_sync_count; i++)
        if (g_wake_syncs[i] == sync_id)
            return;
    if (g_wake_sync_count < kMaxWakeSyncs)
        g_wake_syncs[g_wake_sync_count++] = sync_id;
    else
        g_wake_syncs_overflowed = true;
}

void WakeLauncherAtCommit() {
    g_wake_launcher_at_commit = true;
}

WaitResult RequestFieldRefreshAndWait(int64_t refresh_id, Oid server_oid, Oid role_oid,
                                      const std::string &object, const std::string &requested_by) {
    WaitArgs args;
    memset(&args, 0, sizeof args);
    args.kind = WaitKind::Fields;
    args.server_oid = server_oid;
    args.role_oid = role_oid;
    args.object = object.c_str();
    args.run_id = refresh_id;
    args.sync_name = "";
    args.requested_by = requested_by.c_str();
    args.row_limit = -1;
    PgGuard([&] { WaitForRun(&args); });
    WaitResult result;
    result.status = args.status;
    result.error = args.error;
    return result;
}

WaitResult RequestRunAndWait(int64_t sync_id, const std::string &sync_name, int64_t run_id,
                             const std::string &requested_by, int32_t row_limit, bool full_diff, bool resync,
                             bool allow_removals) {
    WaitArgs args;
    memset(&args, 0, sizeof args);
    args.sync_id = sync_id;
    args.run_id = run_id;
    args.sync_name = sync_name.c_str();
    args.requested_by = requested_by.c_str();
    args.row_limit = row_limit;
    args.full_diff = full_diff;
    args.resync = resync;
    args.allow_removals = allow_removals;
    PgGuard([&] { WaitForRun(&args); });
    WaitResult result;
    result.status = args.status;
    result.error = args.error;
    return result;
}

} // namespace revetl::pg
