// A planned change to one destination record, and what became of it.
#pragma once

#include <cstdint>
#include <string>

namespace revetl {

struct Change {
    enum class Op { Add, Change, Remove };
    int64_t seq = 0;
    Op op = Op::Add;
    std::string key;     // canonical JSON object of the key columns
    std::string payload; // JSON object of mapped values; empty for Remove
    int64_t row_hash = 0;
    std::string dest_id; // the destination's record id, when it gave one
    // The key's version this change is based on: the id of the run that
    // last recorded the key in the shadow state (delivered, removed, or left
    // uncertain), or minus the planning run's id for a key the shadow state
    // does not hold. Every recording takes a newer run id, so two different
    // changes of one key never share (version, op, content), and the
    // idempotency key derived from them is unique per change while staying
    // the same for every retry of it.
    int64_t version = 0;
};

struct RowOutcome {
    bool accepted = false;
    long http_status = 0;
    std::string reason;     // destination's message, bounded
    std::string error_code; // destination's code, when it gave one
    std::string dest_id;
    // An earlier attempt for this row timed out or lost its connection: the
    // destination may still apply that older request late.
    bool uncertain = false;
    // What the sync's owner can do about a refusal (stored beside the
    // reason); "" for none.
    std::string hint;
    // A refused removal that no later run could send either: no record id
    // was ever learned for the key (an earlier request whose answer was
    // lost may or may not have created the record), and the connector
    // deletes by id. Final: the refusal is recorded once and the key's
    // shadow row forgotten, instead of the removal being refused on every
    // run. Honoured only for a refused removal whose change carries no
    // record id (the engine clears it otherwise).
    bool unresolvable_removal = false;
    // Not an outcome yet: the row waits in the kept job with this handle
    // (Verdict::park) for the run's last batch. Its change stays queued
    // and unrecorded until the host resumes that job.
    int64_t parked_job = 0;
};

const char *OpName(Change::Op op); // "upsert" or "delete"

} // namespace revetl
