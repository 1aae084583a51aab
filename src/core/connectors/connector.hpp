// A destination's protocol: how a batch of changes becomes HTTP requests,
// and what each response means for each row. The delivery engine does the
// rest (concurrency, rate limits, retries, splitting), the same for every
// destination.
#pragma once

#include "core/connectors/spec.hpp"
#include "core/delivery/change.hpp"
#include "core/delivery/http_client.hpp"

#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace revetl {

struct BatchContext {
    int64_t sync_id = 0;
    std::string sync_name;
    int64_t run_id = 0;
    int64_t batch_no = 0;
    // The op sent for added and changed rows: "upsert", "insert" or
    // "update", after the sync's mode.
    std::string write_op = "upsert";
    // Changes the run planned in all (0: unknown), for connectors that
    // choose an API by the size of a run (a bulk job API above a threshold,
    // per-record calls below).
    int64_t planned_rows = 0;
    // The run has handed out all its batches: a job that takes the rows of
    // several batches (Verdict::park) must be finished now, not parked.
    // Set while the host resumes kept jobs.
    bool final_pass = false;
};

// A key for one change of one record: (sync, record key, the version the
// change is based on, delete or the row's hash). Every retry of the change,
// in its run or in the run that takes it over after a failure, carries the
// same key; any other change of the record, even back to an earlier
// content, carries another (see Change::version).
std::string RecordIdempotencyKey(int64_t sync_id, const Change &change);

// 64-bit FNV-1a: stable across builds and machines, unlike std::hash.
uint64_t Fnv1a(const std::string &data, uint64_t seed);

// Bounded, single-line text for messages stored in the database.
std::string Truncate(const std::string &text, size_t max_bytes);

// Where a request stands in a flow of more than one call: a lookup before a
// write (find a record's id, then update it), or an asynchronous job (write,
// then poll the job until it is done). The connector names its steps and
// carries what the next call needs; the engine passes it back untouched, and
// the host keeps a job's (job ids are state: a run killed while a job is
// pending resumes polling it, see Connector::Resume).
struct FlowStep {
    std::string step;   // the connector's name for this call; "" for a first call
    std::string job_id; // the destination's job id, when this call polls a job
    std::string state;  // anything else the next call needs (bounded text, no secrets)
};

struct PreparedRequest {
    HttpRequest http;
    std::vector<size_t> rows; // indices into the batch's changes
    FlowStep flow;
};

struct Verdict {
    enum class Kind {
        Done,      // final: `rows` has one outcome per request row
        Retry,     // transient failure: try again later (an attempt)
        Throttled, // the destination asked to slow down: wait, not an attempt
        Split,     // the whole request was refused: try the rows in halves
        Fatal,     // stop the run (credentials refused, daily quota spent)
        // The flow goes on: send `next` (a poll of a job not yet done, the
        // write after a lookup). Rows of the request that `next` does not
        // carry get their outcome from `rows` (aligned with the request's).
        Continue,
        // The flow is lost (the destination no longer knows the job): the
        // rows are prepared and sent again, which is safe because writes
        // match records by key. Counts as an attempt.
        Resend,
        // The credentials expired (401, or a vendor's own signal such as
        // an HTTP 200 whose body says the token expired): the host refreshes them once
        // and the request is replayed once; without a way to refresh (no
        // OAuth), or on a second such answer, it is Fatal with `error`.
        AuthExpired,
    };
    Kind kind = Kind::Done;
    std::vector<RowOutcome> rows;
    long wait_ms = -1; // Retry / Throttled / Continue: how long the destination asked to wait
    std::string error; // Retry / Fatal / Resend / AuthExpired: why, without secrets
    // Continue: the next call. Its rows default to the request's.
    std::optional<PreparedRequest> next;
    // Continue: the destination accepted the rows as a job just now, and
    // `next` polls it: the host keeps the job before the engine polls.
    bool job_accepted = false;
    // Continue with job_accepted: the job takes more rows until the run has
    // handed out every batch (one job a run rather than one a batch), and
    // `next` is the call that finishes it. The engine records the carried
    // rows as parked in the kept job (RowOutcome::parked_job) and sends
    // nothing more for them; the host resumes the kept job after the run's
    // last batch, with BatchContext::final_pass set. A host that keeps no
    // jobs gets the flow continued at once instead.
    bool park = false;
};

// The shared response rule for answers about the connection rather than a
// row: credentials refused (401, 403), a redirect (3xx; revetl follows
// none), the destination's URL itself not found (404, when the URL names no
// record), a host name that does not resolve, a TLS failure. Such an answer
// fails the run with one error saying what to check, instead of refusing
// every row of the model run after run. nullopt: not such an answer.
std::optional<Verdict> ConnectionFailure(const HttpResponse &response, const std::string &url,
                                         bool url_names_a_record);

// The shared rule for an answer that may be gone by the next attempt: no
// answer at all (status 0: a timeout or a lost connection), 408, or any 5xx.
// The engine retries the request with backoff; the error names `vendor` and
// says what happened, with the vendor's `message` (bounded) when it gave one.
// nullopt: not such an answer.
std::optional<Verdict> TransientFailure(const HttpResponse &response, const std::string &vendor,
                                        const std::string &message);

// The outcome of a removal that cannot be sent because no record id was
// ever learned for its row (Change::dest_id is empty) and `vendor` removes
// records only by that id (`id_name`, what the destination calls it:
// "<vendor> record id", "<vendor> external_id"): refused once with
// NO_RECORD_ID and marked unresolvable, so that the run forgets the key
// instead of refusing it again on every run.
// `done` is what the removal would have done ("archived", "deleted");
// `match_on` the sync's MATCH ON field ("" when it has none), named in the
// hint that says how to find the record by hand, if the destination has it.
RowOutcome UnresolvableRemoval(const std::string &vendor, const std::string &id_name, const std::string &done,
                               const std::string &match_on);

// The same for a removal whose kept id cannot be used: not one the
// destination could have given, or not readable (a shadow row written by
// hand or by another version). `problem` says which and what cannot be done
// ("the <vendor> record id kept for this row is not one <vendor> gives, so
// the record cannot be deleted"). Refused once with INVALID_RECORD_ID and
// forgotten, since no later run could send it either.
RowOutcome UnusableRecordIdRemoval(const std::string &vendor, const std::string &problem,
                                   const std::string &match_on);

class Connector {
public:
    virtual ~Connector() = default;

    // Requests for `rows` (indices into `changes`). Rows that cannot be sent
    // at all get an outcome in `immediate` instead.
    virtual std::vector<PreparedRequest> Prepare(const BatchContext &context,
                                                 const std::vector<Change> &changes,
                                                 const std::vector<size_t> &rows,
                                                 std::vector<std::pair<size_t, RowOutcome>> &immediate) = 0;

    virtual Verdict Interpret(const PreparedRequest &request, const std::vector<Change> &changes,
                              const HttpResponse &response) = 0;

    // The call that resumes a flow kept by an interrupted run (the poll of
    // its job) for all of `changes`, in the order they were sent; nullopt
    // when this connector cannot resume it (the rows are then sent again).
    virtual std::optional<PreparedRequest> Resume(const BatchContext &context,
                                                  const std::vector<Change> &changes, const FlowStep &step) {
        (void)context;
        (void)changes;
        (void)step;
        return std::nullopt;
    }
    // A line about the destination for the run's log (the API usage a
    // vendor reports in its answers); "" for none. Read after delivery;
    // never a secret.
    virtual std::string RunNote() const { return {}; }
};

// The connector of settings.type for `target`. Judges again what CREATE SYNC
// judged (the server's type may have changed since): the target against the
// type's spec (filling in its defaults), and the user mapping's credentials
// against the auth schemes the type accepts. The names are for messages.
std::unique_ptr<Connector> MakeConnector(const DestinationSettings &settings, SyncTarget target,
                                         const std::string &sync_name = "?",
                                         const std::string &server_name = "?");

} // namespace revetl
