// Executes one queued run of a sync (plan -> deliver -> commit) in the
// worker. Never throws for a failure of the run itself: that is recorded in
// revetl.runs.
#pragma once

#include "pg/pg_includes.hpp"

#include <cstdint>
#include <string>

namespace revetl::pg {

struct RunResult {
    int64_t run_id = 0;
    std::string status; // succeeded, partial, failed, cancelled, skipped
    std::string error;
};

// Runs one queued run. Returns status "skipped" when the run is not queued
// any more or another run of the same sync holds the sync's lock.
RunResult ExecuteRun(int64_t run_id);

// A run that ended without recording every planned row (failed, cancelled,
// interrupted, or its process died) may have sent some of them in requests
// the destination applies late: each such key is marked in the shadow table
// `shadow_table` to be verified after `settle_ms` (a key the shadow state
// did not hold gets a tombstone), and recorded at this run's version, so the
// next attempt of its change carries a new idempotency key. Only the rows up
// to `last_sent_seq` can have been sent: the rest are left as they were (a
// key never sent stays unknown to the shadow state, and its next delivery is
// an add). Runs in the caller's transaction.
// `version` is what the marked keys are recorded at (0: run_id); a run that
// planned more than once (ON CHANGE) passes a fresh one.
void MarkPlannedRowsUncertain(const std::string &shadow_table, int64_t run_id, int64_t settle_ms,
                              int64_t last_sent_seq, int64_t version = 0);

// SIGTERM of a run process (a server shutdown, pg_terminate_backend): the
// run in progress stops at its next interrupt check, is recorded as
// 'interrupted' (not failed) and queued again, and the process exits.
extern "C" void HandleRunSigterm(REVETL_SIGNAL_PARAMS);

} // namespace revetl::pg
