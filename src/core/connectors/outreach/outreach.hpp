// Outreach prospects and accounts through its JSON:API (API v2,
// Content-Type application/vnd.api+json). Outreach has no upsert, so each
// row is its own short flow of calls:
//  - a row with a kept record id (the shadow state's dest_id): PATCH
//    /{prospects|accounts}/{id}; so a changed match value (a new email) is
//    written onto the same record. A 404 there (deleted in Outreach) falls
//    back to the lookup below;
//  - a row without one: GET /{prospects|accounts}?filter[<MATCH ON>]=<value>,
//    then PATCH the first hit by its id, or POST a new record on a miss
//    (MODE UPSERT, MIRROR; MODE UPDATE refuses the row NOT_FOUND);
//    MODE INSERT creates without looking up;
//  - removals (MODE MIRROR): DELETE /{prospects|accounts}/{id} by the kept
//    id (a 404: already gone).
// The payload's columns are the record's attributes; a prospect's `emails`
// given as one string is sent as a one-element array. JSON:API error objects
// (id, title, detail, source.pointer) become the rows' codes and reasons.
// 401: the host refreshes the OAuth token once (Outreach rotates refresh
// tokens: the host writes the new one back) and replays. 429 waits
// Retry-After, else X-RateLimit-Reset; X-RateLimit-Remaining/Limit is
// reported in the run's log. See docs/destinations.md.
#pragma once

#include "core/connectors/connector.hpp"

namespace revetl {

class OutreachConnector : public Connector {
public:
    OutreachConnector(DestinationSettings settings, SyncTarget target);

    std::vector<PreparedRequest> Prepare(const BatchContext &context, const std::vector<Change> &changes,
                                         const std::vector<size_t> &rows,
                                         std::vector<std::pair<size_t, RowOutcome>> &immediate) override;
    Verdict Interpret(const PreparedRequest &request, const std::vector<Change> &changes,
                      const HttpResponse &response) override;
    std::string RunNote() const override;

    // The MATCH ON value of a payload as text (a prospect's first email when
    // `emails` is an array), or "".
    std::string MatchValue(const std::string &payload) const;
    // The JSON:API document for a payload: {"data":{"type":..,("id":..,)
    // "attributes":{...}}}; "" when the payload is not a JSON object.
    std::string Document(const std::string &payload, const std::string &id) const;

private:
    std::string Collection() const { return target_.object; } // prospects, accounts
    std::string ResourceType() const;                         // prospect, account
    HttpRequest Request(const std::string &method, const std::string &path, std::string body) const;
    PreparedRequest Lookup(const Change &change) const;
    PreparedRequest Create(const Change &change) const;
    PreparedRequest Update(const Change &change, const std::string &id, const char *state) const;

    DestinationSettings settings_;
    SyncTarget target_;
    std::string rate_note_;
};

const ConnectorSpec &OutreachSpec();

} // namespace revetl
