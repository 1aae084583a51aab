// JSON documents that carry a delivered batch's outcome back into SQL
// (jsonb_to_recordset), so that one statement per table records a batch.
#pragma once

#include "core/change.hpp"

#include <string>
#include <vector>

namespace revetl {

struct BatchRecord {
    std::string accepted_upserts;  // [{"key":..., "row_hash":..., "dest_id":...}]
    std::string accepted_removals; // ["key text", ...]
    std::string rejected;          // [{"key":{..}, "operation":..., "reason":..., ...}]
    int64_t delivered = 0;
    int64_t rejected_count = 0;
};

BatchRecord BuildBatchRecord(const std::vector<Change> &changes, const std::vector<RowOutcome> &outcomes,
                             int attempts);

} // namespace revetl
