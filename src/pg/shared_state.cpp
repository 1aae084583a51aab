#include "pg/shared_state.hpp"

namespace revetl::pg {

SharedState *g_shared = nullptr;
int g_max_databases = 256;

namespace {

Size SharedStateSize() {
    return add_size(offsetof(SharedState, databases), mul_size(sizeof(DatabaseSlot), g_max_databases));
}

void SetProcLatch(int procno) {
    if (procno >= 0 && static_cast<uint32>(procno) < ProcGlobal->allProcCount)
        SetLatch(&ProcGlobal->allProcs[procno].procLatch);
}

} // namespace

void RequestSharedState() {
    RequestAddinShmemSpace(SharedStateSize());
    RequestNamedLWLockTranche("revetl", 1);
}

void InitSharedState() {
    bool found = false;
    LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
    g_shared = static_cast<SharedState *>(ShmemInitStruct("revetl", SharedStateSize(), &found));
    if (!found) {
        memset(g_shared, 0, SharedStateSize());
        g_shared->lock = &(GetNamedLWLockTranche("revetl"))->lock;
        g_shared->launcher_procno = -1;
        g_shared->max_databases = g_max_databases;
        ConditionVariableInit(&g_shared->run_finished);
        ConditionVariableInit(&g_shared->token_refreshed);
        for (int i = 0; i < g_max_databases; i++)
            g_shared->databases[i].worker_procno = -1;
    }
    LWLockRelease(AddinShmemInitLock);
}

DatabaseSlot *FindDatabaseSlot(Oid dboid) {
    for (int i = 0; i < g_shared->max_databases; i++)
        if (g_shared->databases[i].dboid == dboid)
            return &g_shared->databases[i];
    return nullptr;
}

DatabaseSlot *FindOrAddDatabaseSlot(Oid dboid) {
    if (DatabaseSlot *slot = FindDatabaseSlot(dboid))
        return slot;
    for (int i = 0; i < g_shared->max_databases; i++) {
        DatabaseSlot *slot = &g_shared->databases[i];
        if (slot->dboid == InvalidOid) {
            memset(slot, 0, sizeof *slot);
            slot->dboid = dboid;
            slot->worker_procno = -1;
            return slot;
        }
    }
    return nullptr;
}

void WakeLauncher() {
    LWLockAcquire(g_shared->lock, LW_EXCLUSIVE);
    g_shared->rescan_requested = true;
    int procno = g_shared->launcher_procno;
    LWLockRelease(g_shared->lock);
    SetProcLatch(procno);
}

void WakeWorkerOrLauncher(Oid dboid) {
    LWLockAcquire(g_shared->lock, LW_EXCLUSIVE);
    DatabaseSlot *slot = FindDatabaseSlot(dboid);
    int procno = -1;
    if (slot && slot->worker_pid != 0) {
        procno = slot->worker_procno;
    } else {
        if (slot)
            slot->no_extension = false;
        g_shared->rescan_requested = true;
        procno = g_shared->launcher_procno;
    }
    LWLockRelease(g_shared->lock);
    SetProcLatch(procno);
}

namespace {

// This process's own budget for when every shared slot is busy: a run then
// still never exceeds its limit, though runs sharing a server's budget may
// add up over it.
RateBudget g_fallback_budget;

RateBudgetTable Budgets() {
    return RateBudgetTable{g_shared->rates, kMaxRateSlots, &g_shared->rates_used, &g_fallback_budget};
}

void WarnOverflow() {
    static bool warned = false;
    if (warned)
        return;
    warned = true;
    ereport(WARNING, (errmsg("revetl: all %d shared rate-limit budgets are in use", kMaxRateSlots),
                      errdetail("This run paces its own requests; other runs sending to the same destination "
                                "are not counted against its limit.")));
}

} // namespace

long RateDelayMs(Oid server, int64 sync_id, int count, long period_ms) {
    if (!g_shared)
        return 0;
    bool overflowed = false;
    TimestampTz now = GetCurrentTimestamp();
    LWLockAcquire(g_shared->lock, LW_EXCLUSIVE);
    long delay = PaceRequest(Budgets(), RateBudgetId{MyDatabaseId, server, sync_id}, now, count, period_ms,
                             &overflowed);
    LWLockRelease(g_shared->lock);
    if (overflowed)
        WarnOverflow();
    return delay;
}

void ThrottleDestination(Oid server, int64 sync_id, long ms) {
    if (!g_shared)
        return;
    bool overflowed = false;
    TimestampTz now = GetCurrentTimestamp();
    LWLockAcquire(g_shared->lock, LW_EXCLUSIVE);
    HoldOff(Budgets(), RateBudgetId{MyDatabaseId, server, sync_id}, now, ms, &overflowed);
    LWLockRelease(g_shared->lock);
    if (overflowed)
        WarnOverflow();
}

} // namespace revetl::pg

namespace revetl::pg {

bool ClaimSyncRun(Oid dboid, int64 sync_id, int64 run_id) {
    bool ok = false;
    LWLockAcquire(g_shared->lock, LW_EXCLUSIVE);
    if (DatabaseSlot *slot = FindDatabaseSlot(dboid)) {
        ExecutorSlot *mine = nullptr;
        bool taken = false;
        for (int i = 0; i < kMaxExecutorsPerDatabase; i++) {
            ExecutorSlot *e = &slot->executors[i];
            if (e->pid == MyProcPid)
                mine = e;
            else if (e->pid != 0 && e->sync_id == sync_id)
                taken = true;
        }
        if (mine && !taken) {
            mine->sync_id = sync_id;
            mine->run_id = run_id;
            mine->cancel_reason[0] = '\0';
            ok = true;
        }
    }
    LWLockRelease(g_shared->lock);
    return ok;
}

bool ClaimRecorderSlot(Oid dboid, int64 sync_id, int64 run_id) {
    bool ok = false;
    LWLockAcquire(g_shared->lock, LW_EXCLUSIVE);
    if (DatabaseSlot *slot = FindDatabaseSlot(dboid))
        for (int i = 0; i < kMaxExecutorsPerDatabase && !ok; i++) {
            ExecutorSlot *e = &slot->executors[i];
            if (e->pid == MyProcPid) {
                e->sync_id = sync_id;
                e->run_id = run_id;
                e->recorder = true;
                ok = true;
            }
        }
    LWLockRelease(g_shared->lock);
    return ok;
}

bool SyncRunInProgress(Oid dboid, int64 sync_id) {
    bool busy = false;
    LWLockAcquire(g_shared->lock, LW_SHARED);
    if (DatabaseSlot *slot = FindDatabaseSlot(dboid))
        for (int i = 0; i < kMaxExecutorsPerDatabase && !busy; i++)
            busy = slot->executors[i].pid != 0 && slot->executors[i].sync_id == sync_id;
    LWLockRelease(g_shared->lock);
    return busy;
}

bool WakeSyncRun(Oid dboid, int64 sync_id) {
    int procno = -1;
    LWLockAcquire(g_shared->lock, LW_SHARED);
    if (DatabaseSlot *slot = FindDatabaseSlot(dboid))
        for (int i = 0; i < kMaxExecutorsPerDatabase && procno < 0; i++)
            if (slot->executors[i].pid != 0 && slot->executors[i].sync_id == sync_id &&
                !slot->executors[i].recorder)
                procno = slot->executors[i].procno;
    LWLockRelease(g_shared->lock);
    if (procno < 0)
        return false;
    SetProcLatch(procno);
    return true;
}

bool CancelSyncRun(Oid dboid, int64 sync_id, const char *reason) {
    pid_t pid = 0;
    LWLockAcquire(g_shared->lock, LW_EXCLUSIVE);
    if (DatabaseSlot *slot = FindDatabaseSlot(dboid))
        for (int i = 0; i < kMaxExecutorsPerDatabase; i++) {
            ExecutorSlot *e = &slot->executors[i];
            if (e->pid != 0 && e->sync_id == sync_id && !e->recorder) {
                strlcpy(e->cancel_reason, reason, sizeof e->cancel_reason);
                pid = e->pid;
            }
        }
    LWLockRelease(g_shared->lock);
    // SIGINT is a query cancel for a background worker connected to a
    // database: the statement or wait in progress ends with an error.
    if (pid != 0)
        kill(pid, SIGINT);
    return pid != 0;
}

bool MarkWaitsDone(int64 run_id, WaitKind kind, const std::string &status, const std::string &error) {
    bool any = false;
    LWLockAcquire(g_shared->lock, LW_EXCLUSIVE);
    for (int i = 0; i < kMaxWaitSlots; i++) {
        WaitSlot *w = &g_shared->waits[i];
        if (w->state != WaitState::Queued || w->run_id != run_id || w->kind != kind ||
            w->dboid != MyDatabaseId)
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
    return any;
}

std::string CancelReason() {
    std::string reason;
    LWLockAcquire(g_shared->lock, LW_SHARED);
    if (DatabaseSlot *slot = FindDatabaseSlot(MyDatabaseId))
        for (int i = 0; i < kMaxExecutorsPerDatabase; i++)
            if (slot->executors[i].pid == MyProcPid)
                reason = slot->executors[i].cancel_reason;
    LWLockRelease(g_shared->lock);
    return reason;
}

} // namespace revetl::pg
