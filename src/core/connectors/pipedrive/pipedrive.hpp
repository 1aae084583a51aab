// Pipedrive persons and organizations through API v2. Pipedrive has no bulk
// or upsert write, so each row is its own short flow of calls:
//  - a row with a kept record id (the shadow state's dest_id):
//    PATCH /api/v2/{persons|organizations}/{id}; a 404 there (the record
//    was deleted) falls back to the search below
//  - a row without one: GET /api/v2/{object}/search?term=<value>&fields=
//    <field>&exact_match=true on the MATCH ON field (persons: email, phone,
//    name or a custom field's key; organizations: name or a custom field's
//    key), then PATCH the first hit, or POST /api/v2/{object} on a miss
//    (MODE UPDATE refuses the row NOT_FOUND; MODE INSERT creates without
//    searching)
//  - removals (MODE MIRROR): DELETE /api/v2/{object}/{id}
// Columns that are not Pipedrive's standard fields go in custom_fields (by
// their 40-character keys); email and phone columns become the emails and
// phones arrays. A 429 waits x-ratelimit-reset seconds (the 2-second burst
// window); a spent daily budget (x-daily-requests-left 0) stops the run.
// Auth: the API token in x-api-token, or OAuth (whose token answer's
// api_domain is where calls go). See docs/destinations.md.
#pragma once

#include "core/connectors/connector.hpp"

namespace revetl {

class PipedriveConnector : public Connector {
public:
    PipedriveConnector(DestinationSettings settings, SyncTarget target);

    std::vector<PreparedRequest> Prepare(const BatchContext &context, const std::vector<Change> &changes,
                                         const std::vector<size_t> &rows,
                                         std::vector<std::pair<size_t, RowOutcome>> &immediate) override;
    Verdict Interpret(const PreparedRequest &request, const std::vector<Change> &changes,
                      const HttpResponse &response) override;

    // The MATCH ON value of a payload as text, or "".
    std::string MatchValue(const std::string &payload) const;
    // The JSON body written for a payload (`create`: POST, else PATCH).
    std::string Body(const std::string &payload, bool create) const;

private:
    std::string Base() const;
    HttpRequest Request(const std::string &method, const std::string &path, std::string body) const;
    PreparedRequest Search(const Change &change) const;
    PreparedRequest Create(const Change &change) const;
    PreparedRequest Update(const Change &change, const std::string &id, const char *state) const;

    DestinationSettings settings_;
    SyncTarget target_;
};

const ConnectorSpec &PipedriveSpec();

// A custom field's key: 40 lower-case hex digits.
bool PipedriveCustomFieldKey(const std::string &name);

} // namespace revetl
