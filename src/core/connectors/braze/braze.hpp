// Braze user attributes through the REST API of a Braze instance:
//  - writes (MODE UPSERT / UPDATE / MIRROR): POST /users/track with an
//    attributes array of at most 75 objects, each naming its user by the
//    MATCH ON identifier (external_id by default, or braze_id, or email);
//    UPDATE sets _update_existing_only so that no profile is created
//  - removals (MODE MIRROR): POST /users/delete with the identifiers kept in
//    the shadow state (external_ids or braze_ids), at most 50 per call
// /users/track answers 201 with "message": "success" and an errors[] array
// whose entries name the refused object by input_array and index: those
// rows are refused, every other row is delivered. A 400 (or other 4xx) with
// a message other than "success" refuses the whole request: it is split
// until the row at fault stands alone. A 429 is waited out until the time
// X-RateLimit-Reset names (not an attempt). Braze publishes no
// machine-readable contract: the mock enforces the documented shapes and
// limits (see docs/destinations.md).
#pragma once

#include "core/connectors/connector.hpp"

#include <ctime>
#include <optional>

namespace revetl {

class BrazeConnector : public Connector {
public:
    static constexpr size_t kMaxAttributes = 75; // objects per /users/track call
    static constexpr size_t kMaxDeletes = 50;    // identifiers per /users/delete call

    BrazeConnector(DestinationSettings settings, SyncTarget target);

    std::vector<PreparedRequest> Prepare(const BatchContext &context, const std::vector<Change> &changes,
                                         const std::vector<size_t> &rows,
                                         std::vector<std::pair<size_t, RowOutcome>> &immediate) override;
    Verdict Interpret(const PreparedRequest &request, const std::vector<Change> &changes,
                      const HttpResponse &response) override;

    // The identifier of a payload (the MATCH ON field as text), or "".
    std::string Identifier(const std::string &payload) const;

private:
    HttpRequest Request(const char *path, std::string body) const;

    DestinationSettings settings_;
    SyncTarget target_;
};

const ConnectorSpec &BrazeSpec();

// A value as Braze takes it: a date-time (as jsonb renders timestamps, or
// as text) becomes ISO 8601 in UTC with milliseconds
// ("2024-05-01T12:00:00.000Z"); a date alone stays YYYY-MM-DD (what dob
// takes); any other text stays as it is.
std::string BrazeTime(const std::string &text);

// How long a 429 asks to wait, in milliseconds: until X-RateLimit-Reset
// (unix seconds) when given, else Retry-After, else one second; bounded.
long BrazeThrottleWaitMs(const HttpResponse &response, std::time_t now);

} // namespace revetl
