// Customer.io people through the Track API's v2 batch endpoint:
//  - writes (MODE UPSERT / UPDATE / MIRROR): POST /api/v2/batch with
//    {"type": "person", "identifiers": {<id or email>}, "action":
//    "identify", "attributes": {...}} items; UPDATE sets attributes._update
//    so that no person is created
//  - removals (MODE MIRROR): "action": "delete" items naming the identifier
//    kept in the shadow state
// A request stays under 500 KB and each item at most 32 KB (a larger row is
// refused without being sent); one person appears once per request, so that
// its result does not depend on the order Customer.io applies items in.
// 200 applies every item; 207 names refused items by batch_index (the other
// items apply); a 400 refuses the whole request, which is split until the
// row at fault stands alone. A 429 waits out Retry-After (one second when
// none is given; not an attempt). Auth: Basic with the site id as user and
// the Track API key as password; 401 stops the run. The region option picks
// track.customer.io (us) or track-eu.customer.io (eu). See
// docs/destinations.md.
#pragma once

#include "core/connectors/connector.hpp"

namespace revetl {

class CustomerIoConnector : public Connector {
public:
    static constexpr size_t kMaxRequestBytes = 500 * 1000; // "smaller than 500kb", read as decimal
    static constexpr size_t kMaxItemBytes = 32 * 1000;     // "32kb or smaller", read as decimal
    static constexpr size_t kMaxIdentifierBytes = 150;     // person id / email
    static constexpr int kMaxItems = 1000;                 // revetl's cap per request

    CustomerIoConnector(DestinationSettings settings, SyncTarget target);

    std::vector<PreparedRequest> Prepare(const BatchContext &context, const std::vector<Change> &changes,
                                         const std::vector<size_t> &rows,
                                         std::vector<std::pair<size_t, RowOutcome>> &immediate) override;
    Verdict Interpret(const PreparedRequest &request, const std::vector<Change> &changes,
                      const HttpResponse &response) override;

    // The identifier of a payload (the MATCH ON field as text), or "".
    std::string Identifier(const std::string &payload) const;
    // One batch item for a change (identify or delete), as JSON text.
    std::string Item(const Change &change) const;

private:
    HttpRequest Request(std::string body) const;

    DestinationSettings settings_;
    SyncTarget target_;
};

const ConnectorSpec &CustomerIoSpec();

// The Track API host of a region ("us", "eu"; "" is "us").
std::string CustomerIoRegionUrl(const std::string &region);

} // namespace revetl
