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
// an attempt; 607 (daily quota): the run stops.
//
// Static list membership (MODE AUDIENCE '<static list id>'): the lists
// take lead ids, so an added row's lead is first found or created by its
// lookup value (Sync Leads, createOrUpdate, the lookup field alone, at most
// 300), then the leads Marketo named are added to the list (POST
// /rest/v1/lists/{listId}/leads.json, at most 300 ids), a flow of two calls.
// The lead id is kept as the row's dest_id, so a removed row leaves the list
// by that id with no lookup (DELETE on the same path); a row whose lookup
// value changed leaves under its old lead id, then its new lead is found and
// added (three calls). Leads are never deleted in this mode. See
// docs/destinations.md.
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

    // Flow steps of MODE AUDIENCE, for requests (and tests).
    static constexpr const char *kLeadLookup = "lead_lookup"; // Sync Leads, then kListAdd
    static constexpr const char *kListAdd = "list_add";
    static constexpr const char *kListRemove = "list_remove";
    // The old lead ids of rows whose lookup value changed leave the list,
    // then kLeadLookup and kListAdd follow for their new values.
    static constexpr const char *kListSwap = "list_swap";

private:
    std::string Base() const;
    HttpRequest Request(const std::string &path, std::string body, const char *method = "POST") const;
    // A Sync Leads call for `rows`; by_id: updateOnly by the kept lead ids.
    PreparedRequest SyncCall(const std::vector<Change> &changes, const std::vector<size_t> &rows,
                             bool by_id) const;
    // MODE AUDIENCE: find or create the rows' leads by the lookup field alone.
    PreparedRequest LeadLookup(const std::vector<Change> &changes, const std::vector<size_t> &rows) const;
    // MODE AUDIENCE: add (or remove) the lead ids `ids` (aligned with `rows`)
    // to (or from) the static list; step is kListAdd, kListRemove or kListSwap.
    PreparedRequest ListCall(const char *step, const std::vector<size_t> &rows,
                             const std::vector<std::string> &ids) const;
    std::vector<PreparedRequest> PrepareAudience(const std::vector<Change> &changes,
                                                 const std::vector<size_t> &rows,
                                                 std::vector<std::pair<size_t, RowOutcome>> &immediate);
    // The per-lead results of a successful (success: true) audience call.
    Verdict AudienceResults(const PreparedRequest &request, const std::vector<Change> &changes,
                            const std::string &body) const;

    DestinationSettings settings_;
    SyncTarget target_;
};

const ConnectorSpec &MarketoSpec();

} // namespace revetl
