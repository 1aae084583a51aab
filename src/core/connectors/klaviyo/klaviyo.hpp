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
// ids are kept by the host, so a killed run resumes polling.
//
// List membership (MODE AUDIENCE '<list id>'): added rows go through the
// same bulk import job, with the identifier alone as the profile and the list
// in the job's relationships.lists (profiles created or found, and listed, in
// one job); once the job is complete (and its import errors read), the job's
// profiles (GET .../{id}/profiles, pages of 100) give each row's Klaviyo
// profile id, kept as its dest_id. A removed row leaves by that id through
// DELETE /api/lists/{id}/relationships/profiles (at most 1,000 ids a call,
// 204); a row whose identifier changed leaves under its old profile id, then
// joins through a job under its new identifier. Profiles are never deleted
// in this mode. See docs/destinations.md.
#pragma once

#include "core/connectors/connector.hpp"

namespace revetl {

class KlaviyoConnector : public Connector {
public:
    static constexpr size_t kMaxProfiles = 10000;
    static constexpr size_t kMaxBodyBytes = 5 * 1000 * 1000; // "5 MB", read as decimal
    static constexpr size_t kMaxProfileBytes = 100 * 1000;   // "100 KB", read as decimal
    static constexpr const char *kDefaultRevision = "2026-07-15";
    static constexpr size_t kMaxListProfiles = 1000; // profile ids per list call

    // Flow steps of MODE AUDIENCE (request.flow.step or .state), for tests.
    static constexpr const char *kProfilesStep = "job_profiles"; // a page of the job's profiles
    static constexpr const char *kListRemove = "list_remove";    // state of a list removal
    static constexpr const char *kListSwap = "list_swap";        // ... then a job for the new identifier

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
    // MODE AUDIENCE: a bulk import job of the rows' identifiers into the list.
    PreparedRequest ListJob(const std::vector<Change> &changes, const std::vector<size_t> &rows) const;
    // MODE AUDIENCE: the rows' kept profile ids out of the list.
    PreparedRequest ListRemoval(const char *state, const std::vector<Change> &changes,
                                const std::vector<size_t> &rows) const;
    // MODE AUDIENCE: a page of a complete job's profiles (query "" : the first).
    PreparedRequest ProfilesPage(const std::string &job_id, const std::vector<size_t> &rows,
                                 const std::string &query) const;
    std::vector<PreparedRequest> PrepareAudience(const std::vector<Change> &changes,
                                                 const std::vector<size_t> &rows,
                                                 std::vector<std::pair<size_t, RowOutcome>> &immediate);
    // The match value as rows are compared on it (email lower-cased).
    std::string MatchKey(const std::string &payload) const;

    DestinationSettings settings_;
    SyncTarget target_;
    std::string revision_;
};

const ConnectorSpec &KlaviyoSpec();

// Whether `revision` has Klaviyo's form, YYYY-MM-DD with an optional
// .suffix (2026-07-15, 2024-10-15.pre).
bool ValidKlaviyoRevision(const std::string &revision);

} // namespace revetl
