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

RateSlot *FindRateSlot(Oid server, int64 sync_id, bool create = true) {
    RateSlot *free_slot = nullptr;
    for (int i = 0; i < kMaxRateSlots; i++) {
        RateSlot *r = &g_shared->rates[i];
        if (r->server == server && r->sync_id == sync_id)
            return r;
        if (!free_slot && r->server == InvalidOid)
            free_slot = r;
    }
    if (free_slot && create) {
        free_slot->server = server;
        free_slot->sync_id = sync_id;
        free_slot->tat_us = 0;
    }
    return create ? free_slot : nullptr;
}

// A small margin under the limit: clocks and networks are not exact, and a
// 429 costs more than 2% of the rate.
constexpr double kRateMargin = 1.02;

} // namespace

long RateDelayMs(Oid server, int64 sync_id, int count, long period_ms) {
    if (!g_shared)
        return 0;
    bool limited = count > 0 && period_ms > 0;
    int64 interval_us =
        limited ? static_cast<int64>(static_cast<double>(period_ms) * 1000.0 / count * kRateMargin) : 0;
    TimestampTz now = GetCurrentTimestamp();
    long delay = 0;
    LWLockAcquire(g_shared->lock, LW_EXCLUSIVE);
    // An unlimited destination has a slot only while it is throttled.
    RateSlot *slot = FindRateSlot(server, sync_id, limited);
    if (slot) {
        if (slot->tat_us > now)
            delay = static_cast<long>((slot->tat_us - now + 999) / 1000);
        else if (limited)
            slot->tat_us = now + interval_us;
    }
    LWLockRelease(g_shared->lock);
    return delay;
}

void ThrottleDestination(Oid server, int64 sync_id, long ms) {
    if (!g_shared)
        return;
    TimestampTz until = GetCurrentTimestamp() + static_cast<int64>(ms) * 1000;
    LWLockAcquire(g_shared->lock, LW_EXCLUSIVE);
    RateSlot *slot = FindRateSlot(server, sync_id);
    if (slot && slot->tat_us < until)
        slot->tat_us = until;
    LWLockRelease(g_shared->lock);
}

} // namespace revetl::pg
