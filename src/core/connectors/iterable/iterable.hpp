// Iterable users and lists through Iterable's REST API (header Api-Key):
//  - writes (MODE UPSERT / MIRROR): POST /api/users/bulkUpdate with at most
//    1,000 users per call (the body stays under Iterable's 4 MB), each named
//    by the MATCH ON identifier (email by default, or userId, sent with
//    preferUserId so that a new userId makes a user); the other mapped
//    fields go in dataFields, which Iterable merges
//  - removals (MODE MIRROR): DELETE /api/users/{email} or
//    /api/users/byUserId/{userId}, one call per user, by the identifier kept
//    in the shadow state (Iterable deletes asynchronously)
//  - membership (MODE AUDIENCE 'list id'): POST /api/lists/subscribe for
//    added rows, /api/lists/unsubscribe for removed ones, and for a row
//    whose identifier changed an unsubscribe of the old identifier, then a
//    subscribe of the new one (a flow of two calls)
// bulkUpdate and the list calls answer 200 with successCount, failCount and
// failedUpdates naming the identifiers that failed by reason (invalidEmails,
// conflictUserIds, ...): those rows are refused, the others delivered. 429
// (code RateLimitExceeded, no rate-limit headers) is waited out; 400
// BatchTooLarge and other refusals of the whole call split it until the row
// at fault stands alone.
#pragma once

#include "core/connectors/connector.hpp"

#include <string>

namespace revetl {

class IterableConnector : public Connector {
public:
    static constexpr size_t kMaxUsers = 1000; // users (or subscribers) per call

    IterableConnector(DestinationSettings settings, SyncTarget target);

    std::vector<PreparedRequest> Prepare(const BatchContext &context, const std::vector<Change> &changes,
                                         const std::vector<size_t> &rows,
                                         std::vector<std::pair<size_t, RowOutcome>> &immediate) override;
    Verdict Interpret(const PreparedRequest &request, const std::vector<Change> &changes,
                      const HttpResponse &response) override;

    // The identifier of a payload (the MATCH ON field as text), or "".
    std::string Identifier(const std::string &payload) const;

    // Flow steps, for requests (and tests).
    static constexpr const char *kUpdate = "update";           // bulkUpdate
    static constexpr const char *kDelete = "delete";           // DELETE one user
    static constexpr const char *kSubscribe = "subscribe";     // lists/subscribe
    static constexpr const char *kUnsubscribe = "unsubscribe"; // lists/unsubscribe
    // lists/unsubscribe of the old identifiers of rows whose identifier
    // changed, followed by kSubscribe of their new ones.
    static constexpr const char *kSwap = "swap";

private:
    HttpRequest Request(const std::string &method, const std::string &path, std::string body) const;
    PreparedRequest ListCall(const char *step, const std::vector<Change> &changes,
                             const std::vector<size_t> &rows, bool old_identifiers) const;
    bool ByUserId() const { return target_.match_on == "userId"; }

    DestinationSettings settings_;
    SyncTarget target_;
};

const ConnectorSpec &IterableSpec();

} // namespace revetl
