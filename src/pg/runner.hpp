// Executes one queued run of a sync (plan -> deliver -> commit) in the
// worker. Never throws for a failure of the run itself: that is recorded in
// revetl.sync_runs.
#pragma once

#include <cstdint>
#include <string>

namespace revetl::pg {

struct RunResult {
    int64_t run_id = 0;
    std::string status; // succeeded, partial, failed, cancelled, skipped
    std::string error;
};

RunResult ExecuteRun(int64_t run_id);

} // namespace revetl::pg
