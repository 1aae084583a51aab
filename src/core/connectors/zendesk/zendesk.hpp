// Zendesk Support users, written through Zendesk's asynchronous jobs:
//  - upsert (MODE UPSERT / MIRROR): POST /api/v2/users/create_or_update_many
//    with at most 100 users, matched by Zendesk on email or external_id
//    (MATCH ON, default email); never the same match value twice in a call
//  - removals (MODE MIRROR): DELETE /api/v2/users/destroy_many?ids=... by the
//    user ids Zendesk gave (kept in the shadow state), at most 100
// Both answer with a job_status; the engine polls
// GET /api/v2/job_statuses/{id} (queued, working, completed, failed) with
// bounded backoff, and the completed job's results (in request order:
// Created, Updated or Failed with error and details) become the rows'
// outcomes. Job ids are kept by the host, so a run killed while a job is
// pending resumes polling it; a job Zendesk no longer knows (404: Zendesk
// keeps only recent jobs) is sent again. A 429 waits out Retry-After; a 403
// (bulk import not enabled, or not an admin) stops the run. Auth: Basic
// "{email}/token" with the API token, or an OAuth bearer token.
// See docs/destinations.md.
#pragma once

#include "core/connectors/connector.hpp"

namespace revetl {

class ZendeskConnector : public Connector {
public:
    static constexpr size_t kMaxUsers = 100;

    ZendeskConnector(DestinationSettings settings, SyncTarget target);

    std::vector<PreparedRequest> Prepare(const BatchContext &context, const std::vector<Change> &changes,
                                         const std::vector<size_t> &rows,
                                         std::vector<std::pair<size_t, RowOutcome>> &immediate) override;
    Verdict Interpret(const PreparedRequest &request, const std::vector<Change> &changes,
                      const HttpResponse &response) override;
    std::optional<PreparedRequest> Resume(const BatchContext &context, const std::vector<Change> &changes,
                                          const FlowStep &step) override;

    // The match value of a payload (the MATCH ON field as text), or "".
    std::string MatchValue(const std::string &payload) const;

private:
    std::string Base() const;
    HttpRequest Request(const std::string &method, const std::string &url, std::string body) const;
    PreparedRequest Poll(const std::string &kind, const std::string &job_id) const;
    Verdict JobResults(const PreparedRequest &request, const std::vector<Change> &changes,
                       const HttpResponse &response) const;

    DestinationSettings settings_;
    SyncTarget target_;
};

const ConnectorSpec &ZendeskSpec();

} // namespace revetl
