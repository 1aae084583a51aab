// Intercom contacts (users and leads) and companies. Intercom has no bulk
// write, so each row is its own short flow of calls:
//  - contacts, a row with a kept record id (the shadow state's dest_id):
//    PUT /contacts/{id}; a 404 there (the contact was deleted or merged away)
//    falls back to the search below
//  - contacts, a row without one: POST /contacts/search on the MATCH ON
//    field (email or external_id), then PUT /contacts/{id} on a hit, or
//    POST /contacts on a miss (MODE UPSERT, MIRROR; MODE UPDATE refuses the
//    row NOT_FOUND). A 409 conflict on the create (the search had not seen
//    the contact yet) updates the contact Intercom names.
//    MODE INSERT creates without searching.
//  - companies: PUT /companies/{id} by the kept id, else POST /companies,
//    which Intercom itself matches on company_id (MATCH ON company_id)
//  - removals (MODE MIRROR): POST /contacts/{id}/archive (or DELETE
//    /contacts/{id} with contact_removal 'delete'); DELETE /companies/{id}
// Every call sends Intercom-Version (the intercom_version option). A 429
// waits until X-RateLimit-Reset (unix seconds). Per-record refusals carry
// Intercom's error list (code and message) into revetl.rejected_rows;
// answers about the connection (401, 403, 404 of a URL naming no record)
// fail the run through ConnectionFailure. See docs/destinations.md.
#pragma once

#include "core/connectors/connector.hpp"

namespace revetl {

class IntercomConnector : public Connector {
public:
    IntercomConnector(DestinationSettings settings, SyncTarget target);

    std::vector<PreparedRequest> Prepare(const BatchContext &context, const std::vector<Change> &changes,
                                         const std::vector<size_t> &rows,
                                         std::vector<std::pair<size_t, RowOutcome>> &immediate) override;
    Verdict Interpret(const PreparedRequest &request, const std::vector<Change> &changes,
                      const HttpResponse &response) override;

    // The MATCH ON value of a payload as text, or "".
    std::string MatchValue(const std::string &payload) const;
    // The JSON body written for a payload: Intercom's standard attributes at
    // the top level, every other column in custom_attributes. `create`
    // adds the default role (contacts) and keeps company_id (companies).
    std::string Body(const std::string &payload, bool create) const;

private:
    bool Companies() const { return target_.object == "companies"; }
    std::string Base() const;
    HttpRequest Request(const std::string &method, const std::string &path, std::string body) const;
    PreparedRequest Search(const Change &change) const;
    PreparedRequest Create(const Change &change) const;
    PreparedRequest Update(const Change &change, const std::string &id, const char *state) const;

    DestinationSettings settings_;
    SyncTarget target_;
    std::string version_;
    std::string role_;
    bool delete_contacts_ = false;
};

const ConnectorSpec &IntercomSpec();

// Intercom record ids are hex or decimal tokens: anything else is not put
// into a URL path.
bool IntercomValidId(const std::string &id);

} // namespace revetl
