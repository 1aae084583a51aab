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
};

const char *OpName(Change::Op op); // "upsert" or "delete"

} // namespace revetl
