// A destination's protocol: how a batch of changes becomes HTTP requests,
// and what each response means for each row. The delivery engine does the
// rest (concurrency, rate limits, retries, splitting), the same for every
// destination.
#pragma once

#include "core/delivery/change.hpp"
#include "core/connectors/options.hpp"
#include "core/delivery/http_client.hpp"
#include "core/connectors/webhook/webhook.hpp"

#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace revetl {

struct PreparedRequest {
    HttpRequest http;
    std::vector<size_t> rows; // indices into the batch's changes
};

struct Verdict {
    enum class Kind {
        Done,      // final: `rows` has one outcome per request row
        Retry,     // transient failure: try again later (an attempt)
        Throttled, // the destination asked to slow down: wait, not an attempt
        Split,     // the whole request was refused: try the rows in halves
        Fatal,     // stop the run (credentials refused, daily quota spent)
    };
    Kind kind = Kind::Done;
    std::vector<RowOutcome> rows;
    long wait_ms = -1; // Retry / Throttled: how long the destination asked to wait
    std::string error; // Retry / Fatal: why, without secrets
};

// Where a sync sends and how: the parts of a sync's definition a connector
// needs besides the server's settings.
struct SyncTarget {
    std::string mode = "upsert"; // upsert, update, insert, mirror
    std::string object;          // OBJECT clause ("contacts", ...)
    std::string match_on;        // MATCH ON clause
};

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
};

// Throws revetl::Error when the target does not suit the destination type
// (for example a HubSpot sync without MATCH ON).
std::unique_ptr<Connector> MakeConnector(const DestinationSettings &settings, const SyncTarget &target);

// The webhook destination as a connector.
class WebhookConnector : public Connector {
public:
    WebhookConnector(DestinationSettings settings, std::string write_op)
        : settings_(std::move(settings)), write_op_(std::move(write_op)) {}
    std::vector<PreparedRequest> Prepare(const BatchContext &context, const std::vector<Change> &changes,
                                         const std::vector<size_t> &rows,
                                         std::vector<std::pair<size_t, RowOutcome>> &immediate) override;
    Verdict Interpret(const PreparedRequest &request, const std::vector<Change> &changes,
                      const HttpResponse &response) override;

private:
    DestinationSettings settings_;
    std::string write_op_;
};

} // namespace revetl
