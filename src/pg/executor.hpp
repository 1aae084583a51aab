// Run executors: one short-lived background worker ("revetl run") per run,
// started by the database's scheduler, so that a slow destination holds up
// only its own sync and the scheduler stays free to start others.
#pragma once

#include "pg/pg_includes.hpp"

#include <cstdint>

namespace revetl::pg {

// Starts an executor for `run_id`; nullptr when no background worker slot is
// free (the run stays queued and is tried again).
BackgroundWorkerHandle *StartExecutor(int64_t run_id);

// Called by a process of revetl's that works in one database (a run, a
// field fetch) before it connects: DROP / RENAME DATABASE can then find and
// stop it. The entry goes when the process exits.
void RegisterRunProcess(Oid dboid);

} // namespace revetl::pg
