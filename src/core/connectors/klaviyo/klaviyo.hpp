// Klaviyo profiles through the bulk profile import jobs (JSON:API):
//  - writes (MODE UPSERT / MIRROR): POST /api/profile-bulk-import-jobs with
//    at most 10,000 profiles, 5 MB, 100 KB each; Klaviyo upserts them by
//    email, phone_number or external_id (MATCH ON, default email). The job
//    (202) is polled through GET /api/profile-bulk-import-jobs/{id}
//    (queued, processing, complete, cancelled); a complete job with failures
//    has its import errors read page by page from .../{id}/import-errors,
//    mapped back to rows by the match value in each error's
//    original_payload (Klaviyo gives no input index)
//  - removals (MODE MIRROR, MATCH ON email or phone_number): POST
//    /api/data-privacy-deletion-jobs, one profile per call (202)
// Every call carries `revision` (the server option) and `Authorization:
// Klaviyo-API-Key <private key>`. A 429 waits out Retry-After; 401/403 stop
// the run; a job Klaviyo no longer knows (404 on a poll) is sent again. Job
// ids are kept by the host, so a killed run resumes polling. List membership
// is MODE AUDIENCE's, not this connector's. See docs/destinations.md.
#pragma once

#include "core/connectors/connector.hpp"

namespace revetl {

class KlaviyoConnector : public Connector {
public:
    static constexpr size_t kMaxProfiles = 10000;
    static constexpr size_t kMaxBodyBytes = 5 * 1000 * 1000; // "5 MB", read as decimal
    static constexpr size_t kMaxProfileBytes = 100 * 1000;   // "100 KB", read as decimal
    static constexpr const char *kDefaultRevision = "2026-07-15";

    KlaviyoConnector(DestinationSettings settings, SyncTarget target);

    std::vector<PreparedRequest> Prepare(const BatchContext &context, const std::vector<Change> &changes,
                                         const std::vector<size_t> &rows,
                                         std::vector<std::pair<size_t, RowOutcome>> &immediate) override;
    Verdict Interpret(const PreparedRequest &request, const std::vector<Change> &changes,
                      const HttpResponse &response) override;
    std::optional<PreparedRequest> Resume(const BatchContext &context, const std::vector<Change> &changes,
                                          const FlowStep &step) override;

    // The match value of a payload (the MATCH ON field as text), or "".
    std::string MatchValue(const std::string &payload) const;
    // A payload as a JSON:API profile resource object.
    std::string Profile(const std::string &payload) const;

private:
    std::string Base() const;
    HttpRequest Request(const std::string &method, const std::string &url, std::string body) const;
    PreparedRequest Poll(const std::string &job_id) const;

    DestinationSettings settings_;
    SyncTarget target_;
    std::string revision_;
};

const ConnectorSpec &KlaviyoSpec();

// Whether `revision` has Klaviyo's form, YYYY-MM-DD with an optional
// .suffix (2026-07-15, 2024-10-15.pre).
bool ValidKlaviyoRevision(const std::string &revision);

} // namespace revetl
