// Segment's HTTP Tracking API, through POST /v1/batch:
//  - OBJECT identify (the default): one identify call per added or changed
//    row, userId from the MATCH ON field, the other fields as traits
//  - OBJECT track: one track call per added or changed row, userId from the
//    MATCH ON field, the event name from the payload's `event` field, the
//    other fields as properties
// Every call carries the change's idempotency key as messageId, which
// Segment deduplicates on: a retry of a change is the same message, another
// change of the record a new one. A call is at most 32 KB (a larger one is
// refused for its row before sending) and a batch at most 500 KB (batches
// are cut by size). Segment deletes nothing through this API: MODE MIRROR is
// refused at CREATE SYNC. Auth: the source's write key as Basic user with an
// empty password. Segment answers 200 to every request it can parse, even
// with bad events, and 400 to an oversized or malformed one. Segment
// publishes no machine-readable contract for the Tracking API: the mock
// enforces the documented shapes and limits (see docs/destinations.md).
#pragma once

#include "core/connectors/connector.hpp"

namespace revetl {

class SegmentConnector : public Connector {
public:
    static constexpr size_t kMaxMessageBytes = 32 * 1024;
    static constexpr size_t kMaxBatchBytes = 500 * 1024;
    static constexpr size_t kMaxMessageIdBytes = 100;

    SegmentConnector(DestinationSettings settings, SyncTarget target);

    std::vector<PreparedRequest> Prepare(const BatchContext &context, const std::vector<Change> &changes,
                                         const std::vector<size_t> &rows,
                                         std::vector<std::pair<size_t, RowOutcome>> &immediate) override;
    Verdict Interpret(const PreparedRequest &request, const std::vector<Change> &changes,
                      const HttpResponse &response) override;

    // One call of the batch as JSON, or "" with *why set when the row
    // cannot become one (no userId, no event name).
    std::string Message(const BatchContext &context, const Change &change, std::string *why) const;

private:
    HttpRequest Request(std::string body) const;

    DestinationSettings settings_;
    SyncTarget target_;
};

const ConnectorSpec &SegmentSpec();

} // namespace revetl
