// What a run's process and its recorder process say to each other.
//
// A big run records delivered rows in a second process (the "revetl
// recorder", src/pg/recorder.cpp), so that writing the shadow state and
// taking rows off the queue, about half of a large first run, happens on
// another core while the run reads and sends the next batches. The run
// sends the recorder each group of finished batches as it would have
// recorded it itself; the recorder commits it and answers, in order.
//
// The messages cross a shared-memory queue between two processes of the
// same server and build: the encoding is a plain length-prefixed binary
// form, not a stable format. Decoding still checks every length against
// what is left, so that a truncated or corrupt message is refused rather
// than read past its end.
#pragma once

#include "core/delivery/batch_record.hpp"

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace revetl {

// Sent once, first: what every group of the run is recorded with.
struct RecordingSetup {
    int64_t run_id = 0;
    int64_t sync_id = 0;
    std::string sync_name;
    std::string shadow_table; // in schema revetl
    std::string mode;         // the sync's mode: "upsert", "mirror", "insert", ...
    bool tracked = false;     // changes captured by triggers: refused keys are captured again
    bool resync = false;      // adds may be over tombstones: upserted
    bool bulk_insert = true;  // revetl.shadow_bulk_insert, as the run's process read it
    int64_t settle_time_ms = 0;
};

// One group of finished batches: everything the run's own commit of them
// wrote (SyncRun::Flush before there was a recorder).
struct RecordingGroup {
    BatchRecord record;
    std::vector<int64_t> seqs; // the queue rows the group takes off, ascending
    std::vector<int64_t> jobs; // revetl.delivery_jobs rows that are done
    // What the run's counters grew by since the previous group.
    int64_t requests = 0;
    int64_t retries = 0;
    int64_t rows_retried = 0;
    int64_t throttled = 0;
    int64_t version_id = 0;
    std::optional<int64_t> sent_after;
};

// A planned change for the queue (a row of revetl.changes): the plan's
// values as PostgreSQL stores them (the key and dest_id as text), each
// possibly NULL where the table allows it. Its payload stays with the run's
// process (src/pg/payload_store.hpp).
struct QueuedChange {
    int64_t seq = 0;
    char op = 'a';
    std::string key;
    std::optional<int64_t> row_hash;
    std::optional<std::string> dest_id;
    std::optional<int64_t> version;
};

// A chunk of the plan's changes for the recorder to queue, in a transaction
// of its own that stays open until the plan asks it to commit (QueueCommit).
struct QueueChunk {
    int64_t run_id = 0;
    std::vector<QueuedChange> changes;
};

// The recorder's answer to each message after the setup, in order (none to
// the setup itself, Ready or Declined).
struct RecordingReply {
    enum class Kind : uint8_t {
        Ready = 1, // (answer to the setup) the recorder holds its slot and takes groups
        Declined,  // (answer to the setup) no slot: the run records its groups itself
        Recorded,  // committed
        Dropped,   // the sync was dropped: nothing of the group was written
        Failed,    // a PostgreSQL error: nothing of the group was written; the recorder has stopped
        Queued,    // a chunk of the plan's changes written (not committed yet)
        Committed, // the plan's changes the recorder queued are committed
    };
    Kind kind = Kind::Recorded;
    int64_t dequeued = 0; // queue rows the commit deleted
    int sqlerrcode = 0;   // Failed: PostgreSQL's packed SQLSTATE
    std::string message;
    std::string detail;
};

// The run's process ends the groups by detaching from the queue: there is
// no message for it.
enum class RecordingMessageType : uint8_t { Setup = 'S', Group = 'G', Queue = 'Q', QueueCommit = 'C' };

// The type of a message from the run's process; nullopt for an empty or
// unknown one.
std::optional<RecordingMessageType> MessageType(std::string_view message);

std::string EncodeSetup(const RecordingSetup &setup);
std::string EncodeGroup(const RecordingGroup &group);
std::string EncodeReply(const RecordingReply &reply);
std::string EncodeQueueChunk(const QueueChunk &chunk);
std::string EncodeQueueCommit();

// False (leaving the output unspecified) for a message that is not one
// of its kind, is truncated or has bytes left over.
bool DecodeSetup(std::string_view message, RecordingSetup *setup);
bool DecodeGroup(std::string_view message, RecordingGroup *group);
bool DecodeReply(std::string_view message, RecordingReply *reply);
bool DecodeQueueChunk(std::string_view message, QueueChunk *chunk);

} // namespace revetl
