// The webhook destination: batches of records as JSON, per-record results
// read back from the response. The contract is documented in
// docs/destinations.md.
#pragma once

#include "core/delivery/change.hpp"
#include "core/connectors/options.hpp"
#include "core/delivery/http_client.hpp"

#include <vector>

namespace revetl {

struct BatchContext {
    int64_t sync_id = 0;
    std::string sync_name;
    int64_t run_id = 0;
    int64_t batch_no = 0;
    // The op sent for added and changed rows: "upsert", "insert" or
    // "update", after the sync's mode.
    std::string write_op = "upsert";
};

// A stable key for (sync, record key, row version): a resend of the same row
// version carries the same key, a new version a new one.
std::string RecordIdempotencyKey(int64_t sync_id, const Change &change);

HttpRequest BuildWebhookRequest(const DestinationSettings &settings, const BatchContext &context,
                                const std::vector<Change> &changes);

// For a final (non-transient) response: one outcome per change, in order.
std::vector<RowOutcome> InterpretWebhookResponse(const HttpResponse &response, size_t count);

// Bounded, single-line text for messages stored in the database.
std::string Truncate(const std::string &text, size_t max_bytes);

} // namespace revetl
