// State shared between the launcher, the per-database workers and the
// backends that request runs. Everything durable lives in tables; this holds
// only who is running where (to wake them) and the hand-off for
// run_sync(wait => true), whose request cannot be committed before it waits.
#pragma once

#include "core/delivery/rate_budget.hpp"

#include "pg/pg_includes.hpp"

namespace revetl::pg {

constexpr int kMaxWaitSlots = 256;
constexpr int kWaitErrorLen = 512;

constexpr int kMaxExecutorsPerDatabase = 64;

struct DatabaseSlot {
    Oid dboid;                                 // InvalidOid: slot unused
    pid_t executors[kMaxExecutorsPerDatabase]; // "revetl run" processes (0: free)
    pid_t worker_pid;                          // 0 when no worker runs
    int worker_procno;                         // for SetLatch; -1 when none
    bool no_extension;                         // worker found no revetl here; do not restart until woken
    TimestampTz blocked_until;                 // DROP/RENAME DATABASE in progress: stay away until then
};

enum class WaitState : int { Free = 0, Pending, Queued, Done };

struct WaitSlot {
    WaitState state;
    bool abandoned; // the waiter left (cancelled); the worker frees the slot
    Oid dboid;
    int64 sync_id;
    int64 run_id;
    int32 row_limit; // -1: not a test run
    bool full_diff;
    char sync_name[NAMEDATALEN];
    char requested_by[NAMEDATALEN];
    char status[16];
    char error[kWaitErrorLen];
};

// Rate budgets pacing requests at one moment, cluster-wide (see
// core/rate_budget.hpp: a budget whose time has passed frees its slot).
constexpr int kMaxRateSlots = 1024;

struct SharedState {
    LWLock *lock;
    pid_t launcher_pid;
    int launcher_procno;
    bool rescan_requested;
    ConditionVariable run_finished;
    int max_databases;
    WaitSlot waits[kMaxWaitSlots];
    int rates_used; // see RateBudgetTable
    RateBudget rates[kMaxRateSlots];
    DatabaseSlot databases[FLEXIBLE_ARRAY_MEMBER];
};

extern SharedState *g_shared;
extern int g_max_databases;

void RequestSharedState();
void InitSharedState();

// Callers hold g_shared->lock. Returns nullptr when not found / no room.
DatabaseSlot *FindDatabaseSlot(Oid dboid);
DatabaseSlot *FindOrAddDatabaseSlot(Oid dboid);

// Wakes the worker of `dboid`, or the launcher (asking it to look at this
// database again) when the database has no worker.
void WakeWorkerOrLauncher(Oid dboid);
void WakeLauncher();

// Milliseconds until a request to `server` (of this database) may go (0: go
// now, and the slot is taken). `count` requests per `period_ms`; count 0
// means no limit.
long RateDelayMs(Oid server, int64 sync_id, int count, long period_ms);
// The destination asked to wait: nobody sends to it for `ms`.
void ThrottleDestination(Oid server, int64 sync_id, long ms);

} // namespace revetl::pg
