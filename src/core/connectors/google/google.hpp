// Google Customer Match (MODE AUDIENCE only), through either of Google's
// two APIs, chosen by the server's `api` option:
//  - the Data Manager API (`data_manager`, the default; Google requires it
//    for most new Customer Match integrations): POST /v1/audienceMembers:ingest
//    and :remove, at most 10,000 members a call, identifiers as HEX; each
//    call answers a requestId, whose outcome RetrieveRequestStatus reports
//    later (a job, polled through the framework's job flow);
//  - the Google Ads API (`google_ads`): an OfflineUserDataJob per run and
//    direction: created by the run's first batch, addOperations in chunks
//    from every batch (enablePartialFailure, the failures mapped back to
//    rows by operation index); after the run's last batch, run and polled
//    through googleAds:search, the removals' job to its end first.
// The sync's AUDIENCE is the Customer Match user list id. The MAP's targets
// are revetl's identifier keys (email, phone, first_name, last_name,
// country_code, postal_code, user_id); email, phone and the names are SHA-256
// hashes (the plan makes a row with anything else invalid before it reaches
// the connector), country and postal code and user_id go as they are.
//
// One batch is one flow: removals first (the old identifiers of a row
// whose identifiers changed, with the removed rows), then additions. Data
// Manager: the request ids are kept (revetl.delivery_jobs) when the flow's
// last call is accepted. Ads: the flow is kept, and parked (Verdict::park),
// when its operations are all in the run's jobs; the host resumes it after
// the run's last batch (BatchContext::final_pass). Either way a run killed
// while Google processes a job resumes it instead of sending again.
// Errors use Google's envelope {"error":{"code","message","status",
// "details"}}: 401 UNAUTHENTICATED refreshes the OAuth token once, other
// credential refusals fail the run, 429 RESOURCE_EXHAUSTED waits the
// retryDelay Google names, CONCURRENT_MODIFICATION is retried with backoff.
#pragma once

#include "core/connectors/connector.hpp"

#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

namespace revetl {

class GoogleConnector : public Connector {
public:
    enum class Api { DataManager, Ads };
    static constexpr size_t kMaxMembers = 10000;    // Data Manager: members a call
    static constexpr size_t kMaxOperations = 10000; // Ads: operations an addOperations call
    static constexpr size_t kMaxBatch = 10000;      // rows a batch
    static constexpr const char *kDefaultAdsVersion = "v25";

    GoogleConnector(DestinationSettings settings, SyncTarget target);

    std::vector<PreparedRequest> Prepare(const BatchContext &context, const std::vector<Change> &changes,
                                         const std::vector<size_t> &rows,
                                         std::vector<std::pair<size_t, RowOutcome>> &immediate) override;
    Verdict Interpret(const PreparedRequest &request, const std::vector<Change> &changes,
                      const HttpResponse &response) override;
    std::optional<PreparedRequest> Resume(const BatchContext &context, const std::vector<Change> &changes,
                                          const FlowStep &step) override;
    std::string RunNote() const override;

    // Flow steps.
    static constexpr const char *kDmRemove = "dm_remove"; // POST :remove (a chunk)
    static constexpr const char *kDmIngest = "dm_ingest"; // POST :ingest (a chunk)
    static constexpr const char *kDmStatus = "dm_status"; // GET requestStatus:retrieve
    static constexpr const char *kAdsCreate = "ads_create";
    static constexpr const char *kAdsAdd = "ads_add"; // addOperations (a chunk)
    static constexpr const char *kAdsRun = "ads_run";
    static constexpr const char *kAdsPoll = "ads_poll"; // googleAds:search, after the run
    // googleAds:search before the run: a job still PENDING is run (once);
    // the step a batch's flow is kept and parked at.
    static constexpr const char *kAdsReady = "ads_ready";

    // A member's identifiers as kept in dest_id: a JSON object of key to
    // value in revetl's key order; "" when a value is missing.
    std::string MemberId(const std::string &payload) const;
    // The keys sent, in the MAP's order.
    const std::vector<std::string> &Keys() const { return keys_; }
    Api api() const { return api_; }

private:
    enum class Dir { Remove, Add };
    struct Cursor {
        Dir dir = Dir::Remove;
        size_t offset = 0;    // members of this direction already sent
        std::string resource; // Ads: the job
        // Data Manager: request ids to poll, in order. Ads: the jobs the
        // flow's operations went to ("r:<job id>", then "a:<job id>"), to
        // run and poll in that order.
        std::vector<std::string> ids;
    };
    Verdict Finish(const PreparedRequest &request, const std::vector<Change> &changes, long status,
                   std::vector<std::optional<RowOutcome>> outcomes,
                   std::optional<PreparedRequest> next) const;
    Verdict AfterDmCall(const PreparedRequest &request, const std::vector<Change> &changes, long status,
                        std::vector<std::optional<RowOutcome>> outcomes, const std::vector<size_t> &left,
                        const Cursor &cursor) const;
    std::vector<size_t> Members(const std::vector<Change> &changes, const std::vector<size_t> &rows,
                                Dir dir) const;
    bool Swapped(const Change &c) const;
    std::string Identifiers(const Change &c, Dir dir) const; // the dest_id-style JSON sent
    // The next call of a flow from `cursor` (nullopt: nothing left to send).
    std::optional<PreparedRequest> Next(const std::vector<Change> &changes, const std::vector<size_t> &rows,
                                        Cursor cursor) const;
    PreparedRequest Call(const std::string &method, const std::string &url, const std::string &body,
                         const char *step, const std::vector<size_t> &rows, const std::string &state,
                         const std::string &job_id = {}) const;
    PreparedRequest DmCall(const std::vector<Change> &changes, const std::vector<size_t> &rows,
                           const Cursor &cursor) const;
    PreparedRequest AdsCreate(const std::vector<size_t> &rows, const Cursor &cursor) const;
    PreparedRequest AdsOperations(const std::vector<Change> &changes, const std::vector<size_t> &rows,
                                  const Cursor &cursor) const;
    PreparedRequest AdsRun(const std::vector<size_t> &rows, const Cursor &cursor) const;
    // googleAds:search for the job a flow waits on (`step`: kAdsReady or kAdsPoll).
    PreparedRequest AdsStatus(const std::vector<size_t> &rows, const Cursor &cursor, const char *step) const;
    std::string
    JobResource(const std::string &id) const; // "a:<n>" -> customers/<cid>/offlineUserDataJobs/<n>
    PreparedRequest DmPoll(const std::vector<size_t> &rows, const Cursor &cursor) const;
    std::string Base() const;
    void UserIdentifiers(void *writer, const std::string &ids) const;

    DestinationSettings settings_;
    SyncTarget target_;
    Api api_ = Api::DataManager;
    std::string customer_id_, login_customer_id_, account_type_, version_;
    std::string consent_user_data_, consent_personalization_, terms_;
    std::vector<std::string> keys_;   // revetl keys, MAP order
    std::vector<std::string> fields_; // the payload field of each key
    // For the run's note.
    int64_t sent_ = 0, rejected_ = 0, throttles_ = 0, partial_requests_ = 0, failed_counts_ = 0;
    int consecutive_throttles_ = 0, concurrent_ = 0;
    // Ads, one job a run and direction: the jobs created this run that
    // still take operations (removals, additions), and those whose run was
    // sent (the run's batches all wait on them; each is run once).
    std::string open_jobs_[2];
    std::set<std::string> run_sent_;
    bool final_pass_ = false; // the run's batches are all out: no job is parked
    std::string match_rate_;
};

const ConnectorSpec &GoogleSpec();

// revetl's identifier key a MAP target names (case-insensitive), or "".
std::string GoogleKey(const std::string &field);
const std::vector<std::string> &GoogleKeys();
bool GoogleUnhashedKey(const std::string &field);

} // namespace revetl
