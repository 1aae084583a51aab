// Meta Custom Audiences through the Graph API (MODE AUDIENCE only):
//  - the sync's AUDIENCE is the numeric custom audience id; the MAP's
//    targets are Meta's schema keys (EMAIL, PHONE, FN, ..., EXTERN_ID,
//    MADID), sent in the MAP's order as the payload's `schema`, each row's
//    values as one `data` row;
//  - added rows: POST {version}/{audience}/users with the form field
//    payload={"schema":[...],"data":[[...]]}, at most 10,000 rows a call;
//  - removed rows: DELETE on the same path with the same payload, naming
//    the member by the identifiers kept in the shadow state (dest_id);
//  - a row whose identifiers changed: a DELETE of the old ones, then a POST
//    of the new ones (a flow of two calls);
//  - a run that sends more than one call of a kind sends them as one
//    upload: a `session` (session_id, batch_seq, last_batch_flag,
//    estimated_num_total) per kind and run.
// Every value but EXTERN_ID and MADID is a SHA-256 hash (the plan makes a
// row with anything else invalid before it reaches the connector). Meta
// answers num_received and num_invalid_entries without saying which rows
// were invalid: a call whose rows were all received is delivered, and the
// invalid entries Meta counted are reported in the run's note. Errors use
// the Graph envelope {"error":{"message","type","code","error_subcode",
// "fbtrace_id"}}: an access token refused (190, 102, 10, 200-299) fails
// the run, throttling codes (4, 17, 32, 613, 80000-80014) are waited out,
// with the wait X-Business-Use-Case-Usage announces or a growing backoff.
#pragma once

#include "core/connectors/connector.hpp"

#include <cstdint>
#include <string>
#include <vector>

namespace revetl {

class MetaConnector : public Connector {
public:
    static constexpr size_t kMaxRows = 10000; // rows per call (Meta's limit)
    static constexpr const char *kDefaultVersion = "v25.0";

    MetaConnector(DestinationSettings settings, SyncTarget target);

    std::vector<PreparedRequest> Prepare(const BatchContext &context, const std::vector<Change> &changes,
                                         const std::vector<size_t> &rows,
                                         std::vector<std::pair<size_t, RowOutcome>> &immediate) override;
    Verdict Interpret(const PreparedRequest &request, const std::vector<Change> &changes,
                      const HttpResponse &response) override;
    std::string RunNote() const override;

    // The schema keys sent, in the MAP's order.
    const std::vector<std::string> &Schema() const { return schema_; }

    // Flow steps.
    static constexpr const char *kAdd = "add";       // POST users
    static constexpr const char *kRemove = "remove"; // DELETE users
    // DELETE of the old identifiers of rows whose identifiers changed (with
    // plain removals of the same schema), then kAdd of the new ones.
    static constexpr const char *kSwap = "swap";

    // A member's identifiers as kept in dest_id: a JSON object of schema
    // key to value, so that a removal can name the member even after the
    // MAP changed. "" when a value is missing.
    std::string MemberId(const std::string &payload) const;

    // The session id of one kind of call ("add", "remove") of one run of a
    // sync: positive, below 2^53 (exact in any JSON reader).
    static int64_t SessionId(int64_t sync_id, int64_t run_id, const std::string &kind);

private:
    struct Session {
        int64_t id = 0;
        int next_seq = 1;
        bool used = false; // a run sends this kind more than once
    };
    struct Body {
        std::vector<std::string> keys;
        std::vector<std::vector<std::string>> rows;
    };
    PreparedRequest Call(const char *step, const std::string &method, const Body &body, Session *session,
                         bool last, const std::vector<size_t> &rows) const;
    std::string Path() const;
    void ReadUsage(const HttpResponse &response);

    DestinationSettings settings_;
    SyncTarget target_;
    std::vector<std::string> schema_; // Meta keys, MAP order
    std::vector<std::string> fields_; // the payload field of each key
    int64_t planned_rows_ = 0;
    int64_t estimated_total_ = 0;
    bool first_prepare_ = true;
    bool single_batch_ = false;
    bool final_prepared_ = false;
    Session add_, remove_;
    int swaps_pending_ = 0; // continuation POSTs of the final batch still to come
    // For the run's note.
    int64_t received_ = 0, invalid_ = 0, throttles_ = 0;
    int consecutive_throttles_ = 0;
    int usage_peak_ = -1;
    std::string usage_type_;
};

const ConnectorSpec &MetaSpec();

// The Meta schema key a MAP target names (case-insensitive), or "".
std::string MetaSchemaKey(const std::string &field);
// Meta's schema keys revetl sends, and those sent unhashed.
const std::vector<std::string> &MetaSchemaKeys();
bool MetaUnhashedKey(const std::string &key);

} // namespace revetl
