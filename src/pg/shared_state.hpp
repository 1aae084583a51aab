// State shared between the launcher, the per-database workers and the
// backends that request runs. Everything durable lives in tables; this holds
// only who is running where (to wake them) and the hand-off for
// run_sync(wait => true), whose request cannot be committed before it waits.
#pragma once

#include "core/delivery/rate_budget.hpp"

#include "pg/pg_includes.hpp"

#include <string>

namespace revetl::pg {

constexpr int kMaxWaitSlots = 256;
constexpr int kWaitErrorLen = 512;

constexpr int kMaxExecutorsPerDatabase = 64;

// A "revetl run" process and the sync whose run it holds. Runs of one sync
// never overlap: a process claims its sync here (not with an advisory lock,
// which any session could take, or release from inside a model's code).
// The entry goes when the process exits; a crash resets shared memory.
struct ExecutorSlot {
    pid_t pid;     // 0: free
    int64 sync_id; // 0 until the process has claimed its sync
    int64 run_id;
    int procno; // for SetLatch: an ON CHANGE run waits on its latch for new commits
    // Set by DROP SYNC or PAUSE (then the process is sent SIGINT): the run
    // ends 'cancelled' with this reason.
    char cancel_reason[64];
    // A run's recorder process (recorder.hpp): it holds the sync like the
    // run's process (no other run of the sync starts until both are gone),
    // but is neither woken nor cancelled as the run.
    bool recorder;
};

struct DatabaseSlot {
    Oid dboid;                                        // InvalidOid: slot unused
    ExecutorSlot executors[kMaxExecutorsPerDatabase]; // "revetl run" processes
    pid_t worker_pid;                                 // 0 when no worker runs
    int worker_procno;                                // for SetLatch; -1 when none
    bool no_extension;         // worker found no revetl here; do not restart until woken
    TimestampTz blocked_until; // DROP/RENAME DATABASE in progress: stay away until then
};

enum class WaitState : int { Free = 0, Pending, Queued, Done };

// What a waiting backend asked for: a sync run (run_sync) or a fetch of a
// destination's fields (refresh_destination_fields; run_id is then the
// revetl.field_refreshes id).
enum class WaitKind : int { Run = 0, Fields };

constexpr int kWaitObjectLen = 256;

struct WaitSlot {
    WaitState state;
    WaitKind kind;
    bool abandoned; // the waiter left (cancelled); the worker frees the slot
    Oid dboid;
    int64 sync_id;
    int64 run_id;
    int32 row_limit; // -1: not a test run
    bool full_diff;
    bool resync;
    bool allow_removals;
    char sync_name[NAMEDATALEN];
    char requested_by[NAMEDATALEN];
    Oid server_oid;              // Fields: the server
    Oid role_oid;                // Fields: whose rights and user mapping
    char object[kWaitObjectLen]; // Fields: the object
    char status[16];
    char error[kWaitErrorLen];
};

// OAuth access tokens, one per credential set (database, server, user
// mapping and a hash of the mapping's OAuth values), shared by every run so
// that runs do not each ask the token endpoint. Shared memory only: a
// token is never written to a table or a log, and a restart forgets it.
constexpr int kMaxTokenSlots = 64;
constexpr int kTokenErrorLen = 512;

struct OAuthTokenSlot {
    Oid dboid; // InvalidOid: slot unused
    Oid server;
    Oid umid; // the user mapping's oid
    uint64 cred_hash;
    // The hash before revetl stored a rotated refresh token: runs that read
    // the old options still find the token (and re-read the mapping before
    // they refresh).
    uint64 prev_hash;
    bool has_token;
    char access_token[2049]; // kMaxAccessTokenBytes + 1
    char instance_url[513];  // kMaxInstanceUrlBytes + 1
    // Times in milliseconds since the PostgreSQL epoch.
    int64 refresh_at_ms; // refresh from this moment on
    pid_t refresher;     // the process refreshing now; 0: none
    int64 refresh_started_ms;
    int64 last_refresh_ms; // when the last refresh ended (rate limit)
    // The last refresh failed: runs with the same credentials get this
    // error instead of asking the endpoint again, until failed_until_ms.
    int64 failed_until_ms;
    char failure[kTokenErrorLen];
    int64 last_used_ms;
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
    ConditionVariable token_refreshed; // a refresh of some slot ended
    OAuthTokenSlot tokens[kMaxTokenSlots];
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

// The run process claims `sync_id` for `run_id`; false when another process
// of this database holds a run of that sync.
bool ClaimSyncRun(Oid dboid, int64 sync_id, int64 run_id);

// The recorder of run `run_id` claims `sync_id` beside the run's process;
// false when it has no slot.
bool ClaimRecorderSlot(Oid dboid, int64 sync_id, int64 run_id);

// Whether a process of this database holds a run of `sync_id`.
bool SyncRunInProgress(Oid dboid, int64 sync_id);
// Sets the latch of the process running a run of the sync, if one does;
// returns whether one does.
bool WakeSyncRun(Oid dboid, int64 sync_id);

// Asks the process running `sync_id` (if any) to stop: its current
// statement or wait is interrupted and the run ends 'cancelled' with
// `reason`. Returns whether a process was asked.
bool CancelSyncRun(Oid dboid, int64 sync_id, const char *reason);

// The reasons DROP SYNC and PAUSE give; a run cancelled by DROP SYNC leaves
// the sync's tables alone (they are being dropped).
inline constexpr const char *kCancelledByDrop = "cancelled: the sync was dropped";
inline constexpr const char *kCancelledByPause = "cancelled: the sync was paused";

// The reason this process was asked to cancel its run, or "" (own run only).
std::string CancelReason();

// Tells the backends waiting on run (or field refresh) `run_id` of this
// database how it ended, and frees the slots of waiters that left. Called by
// the process that committed the outcome, so that a waiting run_sync returns
// as soon as the outcome is visible (not when the scheduler has reaped the
// process, which a big run's exit and the reaping's own work delayed by up
// to a second), and by the scheduler for runs whose process died. Returns
// whether a slot was for it; the caller broadcasts run_finished.
bool MarkWaitsDone(int64 run_id, WaitKind kind, const std::string &status, const std::string &error);

// Milliseconds until a request to `server` (of this database) may go (0: go
// now, and the slot is taken). `count` requests per `period_ms`; count 0
// means no limit.
long RateDelayMs(Oid server, int64 sync_id, int count, long period_ms);
// The destination asked to wait: nobody sends to it for `ms`.
void ThrottleDestination(Oid server, int64 sync_id, long ms);

} // namespace revetl::pg
