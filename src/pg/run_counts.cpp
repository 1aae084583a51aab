#include "pg/run_counts.hpp"

#include "pg/pg_includes.hpp"

#include <cerrno>
#include <fcntl.h>
#include <string>
#include <cstring>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

namespace revetl::pg {

namespace {

// On disk: a fixed record, rewritten in place. The run id is in it too, so
// that a file is never read for the wrong run.
struct Record {
    int64_t run_id;
    int64_t requests;
    int64_t retries;
    int64_t rows_retried;
    int64_t throttled;
};

std::string Directory() {
    return std::string(DataDir) + "/revetl";
}

std::string PathOf(uint32_t database, int64_t run_id) {
    return Directory() + "/run_" + std::to_string(database) + "_" + std::to_string(run_id) + ".counts";
}

} // namespace

RunCountsFile::~RunCountsFile() {
    Close();
}

void RunCountsFile::Close() {
    if (map_ != nullptr) {
        munmap(map_, sizeof(Record));
        map_ = nullptr;
    }
    if (fd_ >= 0) {
        close(fd_);
        fd_ = -1;
    }
}

void RunCountsFile::Write(const EngineStats &totals) {
    if (failed_)
        return;
    const Record r{run_id_, totals.requests, totals.retries, totals.rows_retried, totals.throttled};
    if (map_ != nullptr) {
        // Counts change with every request: a store into the file's page
        // (which outlives the process like a write) costs no system call.
        std::memcpy(map_, &r, sizeof r);
        return;
    }
    if (fd_ < 0) {
        if (mkdir(Directory().c_str(), S_IRWXU) != 0 && errno != EEXIST) {
            failed_ = true;
            return;
        }
        fd_ = open(PathOf(database_, run_id_).c_str(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC,
                   S_IRUSR | S_IWUSR);
        if (fd_ < 0) {
            failed_ = true;
            return;
        }
    }
    // The first write allocates the file's block (a full disk fails here, as
    // a write, rather than as a SIGBUS on a mapped page later); then the
    // page is mapped. Without a mapping, every count is written.
    if (pwrite(fd_, &r, sizeof r, 0) != static_cast<ssize_t>(sizeof r)) {
        failed_ = true;
        return;
    }
    void *map = mmap(nullptr, sizeof(Record), PROT_READ | PROT_WRITE, MAP_SHARED, fd_, 0);
    if (map != MAP_FAILED)
        map_ = map;
}

void RunCountsFile::Remove() {
    Close();
    RemoveRunCounts(database_, run_id_);
}

std::optional<EngineStats> ReadRunCounts(uint32_t database, int64_t run_id) {
    int fd = open(PathOf(database, run_id).c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return std::nullopt;
    Record r{};
    ssize_t n = pread(fd, &r, sizeof r, 0);
    close(fd);
    if (n != static_cast<ssize_t>(sizeof r) || r.run_id != run_id)
        return std::nullopt;
    EngineStats s;
    s.requests = r.requests;
    s.retries = r.retries;
    s.rows_retried = r.rows_retried;
    s.throttled = r.throttled;
    return s;
}

void RemoveRunCounts(uint32_t database, int64_t run_id) {
    (void)unlink(PathOf(database, run_id).c_str());
}

} // namespace revetl::pg
