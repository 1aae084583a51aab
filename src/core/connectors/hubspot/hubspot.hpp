// HubSpot CRM v3 batch APIs (contacts, companies and other objects):
//  - upsert (MODE UPSERT / MIRROR): POST .../batch/upsert by a unique
//    property (MATCH ON, default email for contacts); the record ids HubSpot
//    returns are kept in the shadow state
//  - update (MODE UPDATE): POST .../batch/update by the same property
//  - a change of a row whose record id is kept: POST .../batch/update by that
//    id, so that a changed match value (a new email) renames the record; an
//    id HubSpot no longer knows (OBJECT_NOT_FOUND: the record was deleted or
//    merged there) is dropped and the row written by its match value instead
//  - create (MODE INSERT): POST .../batch/create (with empty associations,
//    which HubSpot's contract requires)
//  - removals (MODE MIRROR): POST .../batch/archive by the kept record ids
// At most 100 inputs per call, never the same match value twice in one call
// (HubSpot refuses the whole batch). 207 responses are mapped back to rows by
// objectWriteTraceId (the change's sequence number) or by the match value.
// A 429 waits out the ten-secondly window (not an attempt); the daily limit
// (policyName DAILY, X-HubSpot-RateLimit-Daily-Remaining 0, or the message)
// stops the run. Requests are checked against HubSpot's published OpenAPI
// contract in the tests. See docs/destinations.md.
#pragma once

#include "core/connectors/connector.hpp"

#include <optional>

namespace revetl {

class HubSpotConnector : public Connector {
public:
    static constexpr size_t kMaxInputs = 100;
    // FlowStep::step of a batch/update addressed by kept record ids.
    static constexpr const char *kUpdateByIdStep = "update_by_id";

    HubSpotConnector(DestinationSettings settings, SyncTarget target);

    std::vector<PreparedRequest> Prepare(const BatchContext &context, const std::vector<Change> &changes,
                                         const std::vector<size_t> &rows,
                                         std::vector<std::pair<size_t, RowOutcome>> &immediate) override;
    Verdict Interpret(const PreparedRequest &request, const std::vector<Change> &changes,
                      const HttpResponse &response) override;

    // The match value of a payload (the MATCH ON field as a string), or "".
    std::string MatchValue(const std::string &payload) const;

private:
    std::string Endpoint(const char *action) const;
    // One batch call of `action` for rows `call`; by_id addresses each
    // record by its kept id rather than by its match value.
    PreparedRequest WriteCall(const std::vector<Change> &changes, const std::vector<size_t> &call,
                              const char *action, bool by_id) const;
    // After a batch/update by kept ids: rows whose id HubSpot no longer knows
    // continue with a write by their match value (v becomes Continue).
    void WriteStaleIdsByMatchValue(const PreparedRequest &request, const std::vector<Change> &changes,
                                   long status, Verdict &v) const;
    HttpRequest Request(const std::string &url, std::string body) const;
    std::string Normalize(const std::string &match_value) const;

    DestinationSettings settings_;
    SyncTarget target_;
};

const ConnectorSpec &HubSpotSpec();

// The fields of an object: GET /crm/v3/properties/{object} (the CRM
// properties API), read into name, label, type, fieldType, read-only
// (modificationMetadata.readOnlyValue, or calculated) and options.
HttpRequest HubSpotPropertiesRequest(const DestinationSettings &settings, const std::string &object);
std::vector<DestinationField> ParseHubSpotProperties(const std::string &body);

// A date or date-time as jsonb renders it (YYYY-MM-DD, with an optional
// time and offset) in milliseconds since the epoch; nullopt when the text
// is not one. *date_only tells whether it had no time part.
std::optional<int64_t> HubSpotEpochMillis(const std::string &text, bool *date_only = nullptr);

} // namespace revetl
