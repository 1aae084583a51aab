// A run's request counters kept in a small file under $PGDATA/revetl as they
// grow, besides the run's row. The row is updated with each commit; a run
// process killed outright (SIGKILL, an out-of-memory kill, a backend crash)
// loses its uncommitted counts and, with the crash restart, shared memory,
// but not this file (written without fsync, then through a shared mapping
// of its page: it outlives the process, which is what matters here, not the
// machine). The worker's recovery of the run
// reads it, so that revetl.sync_runs counts every request the run made.
#pragma once

#include "core/delivery/delivery_engine.hpp"

#include <cstdint>
#include <optional>

namespace revetl::pg {

class RunCountsFile {
public:
    RunCountsFile(uint32_t database, int64_t run_id) : database_(database), run_id_(run_id) {}
    ~RunCountsFile();
    RunCountsFile(const RunCountsFile &) = delete;
    RunCountsFile &operator=(const RunCountsFile &) = delete;

    // The run's totals so far (opens the file on first use). Best effort:
    // a file that cannot be written costs only the counts after a crash.
    void Write(const EngineStats &totals);
    // The run's row has every count now: the file goes.
    void Remove();

private:
    void Close();

    uint32_t database_;
    int64_t run_id_;
    int fd_ = -1;
    void *map_ = nullptr; // the file's record, mapped after its first write
    bool failed_ = false;
};

// The totals a run process left in its file, if any.
std::optional<EngineStats> ReadRunCounts(uint32_t database, int64_t run_id);
void RemoveRunCounts(uint32_t database, int64_t run_id);

} // namespace revetl::pg
