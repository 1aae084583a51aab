// The recorder: a second process for a big run ("revetl recorder", a
// dynamic background worker the run's process starts), which records the
// run's groups of delivered batches (GroupRecorder, shadow_recording.hpp)
// while the run's process reads and sends the next ones. Recording, the
// shadow rows with their index entries and the queue rows' deletion, was
// about half of a large first run's time on one core; here it takes the
// other.
//
// The two talk through a pair of shared-memory queues (shm_mq) in one
// dynamic shared memory segment: groups one way (recording_messages.hpp),
// one answer per group the other, in order. The run's process keeps at
// most a few groups unanswered (SyncRun::Flush), so that a crash leaves
// little delivered and unrecorded, which the next run re-verifies as it
// would any row in flight.
//
// The recorder holds a slot of the database's run processes, claimed for
// the run's sync (ClaimRecorderSlot): no other run of the sync starts, and
// the scheduler does not take the run as interrupted, until it has exited.
// It stops when the run's process detaches from its queue, after
// answering every group sent before that; the run's process waits for its
// exit before it records the run's outcome (RecorderProcess::Finish).
#pragma once

#include "core/delivery/recording_messages.hpp"
#include "pg/pg_includes.hpp"

extern "C" {
#include "storage/dsm.h"
#include "storage/shm_mq.h"
}

#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

namespace revetl::pg {

// The recorder stopped (an error of its own it could not report, a
// shutdown, pg_terminate_backend) with groups unanswered.
class RecorderStopped : public std::runtime_error {
public:
    RecorderStopped()
        : std::runtime_error("the run's recorder process (revetl recorder) stopped before recording every "
                             "delivered batch") {}
};

class RecorderProcess {
public:
    // Starts a recorder for the run and sends it the setup; nullptr when
    // none can be (no free background worker or shared memory segment):
    // the run then records its groups itself.
    static std::unique_ptr<RecorderProcess> Start(const RecordingSetup &setup);
    ~RecorderProcess();
    RecorderProcess(const RecorderProcess &) = delete;
    RecorderProcess &operator=(const RecorderProcess &) = delete;

    // Sends one message, waiting while the queue is full. Throws
    // RecorderStopped, or PgError on an interrupt (query cancel).
    void Send(const std::string &message);
    // The next answer: waits for it with `wait`, else nullopt when none has
    // come. Throws RecorderStopped when the recorder has stopped and every
    // answer it sent was read, and PgError on an interrupt.
    std::optional<RecordingReply> Receive(bool wait);
    // Sends nothing more: the recorder answers what it was sent and exits.
    // Returns the answers not read yet, once the process has exited. Called
    // with cancel interrupts held (a run's end), it cannot be interrupted.
    std::vector<RecordingReply> Finish();

private:
    RecorderProcess() = default;
    dsm_segment *segment_ = nullptr;
    shm_mq_handle *to_recorder_ = nullptr;
    shm_mq_handle *from_recorder_ = nullptr;
    BackgroundWorkerHandle *worker_ = nullptr;
};

} // namespace revetl::pg
