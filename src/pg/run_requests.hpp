// Getting run requests to the worker: a latch set at commit (so a rolled-back
// request never runs), and for run_sync(wait => true) a hand-off through
// shared memory that the worker turns into a committed run.
#pragma once

#include "pg/pg_includes.hpp"

#include <cstdint>
#include <string>

namespace revetl::pg {

void InitRunRequests(); // from _PG_init

// At commit: wakes the process running a run of the sync (an ON CHANGE
// run waiting for new commits), or the database's scheduler if none does.
void WakeSyncAtCommit(int64_t sync_id);
void WakeWorkerAtCommit();
void WakeLauncherAtCommit();

struct WaitResult {
    std::string status;
    std::string error;
};

// Blocks (interruptibly) until the worker has finished run `run_id`.
// Blocks (interruptibly) until the worker has performed field refresh
// `refresh_id` (which it records in revetl.field_refreshes).
WaitResult RequestFieldRefreshAndWait(int64_t refresh_id, Oid server_oid, Oid role_oid,
                                      const std::string &object, const std::string &requested_by);

WaitResult RequestRunAndWait(int64_t sync_id, const std::string &sync_name, int64_t run_id,
                             const std::string &requested_by, int32_t row_limit, bool full_diff, bool resync,
                             bool allow_removals);

} // namespace revetl::pg
