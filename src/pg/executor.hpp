// Run executors: one short-lived background worker ("revetl run") per run,
// started by the database's scheduler, so that a slow destination holds up
// only its own sync and the scheduler stays free to start others.
#pragma once

#include "pg/pg_includes.hpp"

#include <cstdint>
#include <string>

namespace revetl::pg {

// Registers a dynamic background worker of revetl's that works in this
// process's database (bgw_extra holds its oid) and reports to this process;
// nullptr when no background worker slot is free.
BackgroundWorkerHandle *StartDatabaseProcess(const char *function, const std::string &name, const char *type,
                                             Datum main_arg);

// Starts an executor for `run_id`; nullptr when no background worker slot is
// free (the run stays queued and is tried again).
BackgroundWorkerHandle *StartExecutor(int64_t run_id);

// Called by a process of revetl's that works in one database (a run, a
// field fetch) before it connects: DROP / RENAME DATABASE can then find and
// stop it. The entry goes when the process exits.
void RegisterRunProcess(Oid dboid);

} // namespace revetl::pg
