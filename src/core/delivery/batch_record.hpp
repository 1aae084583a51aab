// A delivered group of batches as the SQL that records it reads it: the
// accepted upserts and removals as columns (passed as arrays and unnested,
// the hot path), and the refused rows, which are rare and carry free-form
// payloads and messages, as one JSON array (jsonb_to_recordset).
#pragma once

#include "core/delivery/change.hpp"

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace revetl {

// Accepted rows that set their shadow row, one entry per row in each
// vector. dest_id is the destination's new record id, else the stored one,
// else none.
struct ShadowRows {
    std::vector<std::string> keys;
    std::vector<int64_t> row_hashes;
    std::vector<std::optional<std::string>> dest_ids;
    std::vector<bool> uncertain;
};

struct BatchRecord {
    // Adds of keys the shadow state did not hold (version < 0): recorded
    // with a plain INSERT, which costs less than the upsert of changes. An
    // add over a tombstone is recorded as a change.
    ShadowRows added;
    ShadowRows changed;
    // Accepted removals, and whether an earlier attempt of each was lost
    // (it keeps a tombstone until the settle time has passed).
    std::vector<std::string> removal_keys;
    std::vector<bool> removal_uncertain;
    // Refused removals that no run could send (RowOutcome::
    // unresolvable_removal, a removal without a record id): also in
    // `rejected`, once; their shadow rows are forgotten.
    std::vector<std::string> forgotten_keys;
    std::string rejected; // [{"key":{..}, "operation":..., "reason":..., "hint":..., ...}]
    int64_t delivered = 0;
    int64_t rejected_count = 0;
};

BatchRecord BuildBatchRecord(const std::vector<Change> &changes, const std::vector<RowOutcome> &outcomes,
                             int attempts);

} // namespace revetl
