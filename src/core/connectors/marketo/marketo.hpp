// Marketo Engage leads, through the REST API of one instance
// (https://<munchkin_id>.mktorest.com, or the server's url):
//  - writes: POST /rest/v1/leads.json (Sync Leads) with at most 300 leads,
//    action from the sync's mode (UPSERT / MIRROR: createOrUpdate, UPDATE:
//    updateOnly, INSERT: createOnly) and lookupField = MATCH ON (default
//    email); never the same lookup value twice in a call (Marketo refuses
//    the second with 1036, and two upserts of one key can both create);
//  - a changed row whose lead id is kept in the shadow state goes as
//    updateOnly with lookupField id, so that a changed match value (a new
//    email) is written onto the same lead; a kept id Marketo no longer knows
//    (1004) is written again by the lookup field (a Continue);
//  - removals (MODE MIRROR): POST /rest/v1/leads/delete.json by the kept
//    lead ids, at most 300.
// Marketo answers HTTP 200 for almost everything: the body's success,
// errors[].code (request level, 6xx/7xx) and result[].status/reasons
// (per lead, 1xxx, in input order) decide. 601/602 (token invalid or
// expired): the host mints a new token (client credentials) and replays
// once; 606 (100 calls per 20 s) and 615 (10 concurrent calls): wait, not
// an attempt; 607 (daily quota): the run stops. Static list membership is
// not here: it belongs to MODE AUDIENCE. See docs/destinations.md.
#pragma once

#include "core/connectors/connector.hpp"

namespace revetl {

class MarketoConnector : public Connector {
public:
    static constexpr size_t kMaxLeads = 300;

    MarketoConnector(DestinationSettings settings, SyncTarget target);

    std::vector<PreparedRequest> Prepare(const BatchContext &context, const std::vector<Change> &changes,
                                         const std::vector<size_t> &rows,
                                         std::vector<std::pair<size_t, RowOutcome>> &immediate) override;
    Verdict Interpret(const PreparedRequest &request, const std::vector<Change> &changes,
                      const HttpResponse &response) override;

    // The sync action of the target's mode (createOrUpdate, updateOnly,
    // createOnly).
    std::string Action() const;
    // The match value of a payload (the MATCH ON field as text), or "".
    std::string MatchValue(const std::string &payload) const;

private:
    std::string Base() const;
    HttpRequest Request(const std::string &path, std::string body) const;
    // A Sync Leads call for `rows`; by_id: updateOnly by the kept lead ids.
    PreparedRequest SyncCall(const std::vector<Change> &changes, const std::vector<size_t> &rows,
                             bool by_id) const;

    DestinationSettings settings_;
    SyncTarget target_;
};

const ConnectorSpec &MarketoSpec();

} // namespace revetl
