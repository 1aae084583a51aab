#include "core/connectors/connector.hpp"

#include "core/common/error.hpp"
#include "core/connectors/hubspot/hubspot.hpp"
#include "core/delivery/retry_policy.hpp"

#include <ctime>

namespace revetl {

std::unique_ptr<Connector> MakeConnector(const DestinationSettings &settings, const SyncTarget &target) {
    if (settings.type == "hubspot")
        return std::make_unique<HubSpotConnector>(settings, target);
    std::string op = target.mode == "mirror" ? "upsert" : target.mode;
    return std::make_unique<WebhookConnector>(settings, op);
}

std::vector<PreparedRequest> WebhookConnector::Prepare(const BatchContext &context,
                                                       const std::vector<Change> &changes,
                                                       const std::vector<size_t> &rows,
                                                       std::vector<std::pair<size_t, RowOutcome>> &) {
    std::vector<Change> subset;
    subset.reserve(rows.size());
    for (size_t i : rows)
        subset.push_back(changes[i]);
    BatchContext ctx = context;
    ctx.write_op = write_op_;
    PreparedRequest req;
    req.http = BuildWebhookRequest(settings_, ctx, subset);
    req.rows = rows;
    return {req};
}

Verdict WebhookConnector::Interpret(const PreparedRequest &request, const std::vector<Change> &,
                                    const HttpResponse &response) {
    Verdict v;
    long retry_after_ms = -1;
    if (auto ra = response.Header("retry-after"))
        if (auto seconds = ParseRetryAfterSeconds(*ra, std::time(nullptr)))
            retry_after_ms = *seconds * 1000L;
    switch (ClassifyResponse(response)) {
    case ResponseClass::Transient:
        v.kind = response.status == 429 ? Verdict::Kind::Throttled : Verdict::Kind::Retry;
        v.wait_ms = retry_after_ms;
        v.error = response.status == 0
                      ? "could not reach " + RedactUrl(settings_.url) + ": " +
                            (response.timed_out ? std::string("timed out") : response.transport_error)
                      : "destination " + RedactUrl(settings_.url) + " answered HTTP " +
                            std::to_string(response.status) +
                            (response.body.empty() ? "" : ": " + Truncate(response.body, 300));
        return v;
    case ResponseClass::Permanent:
        // A refused request of several rows may be refused for one of them:
        // halves find it, and the rest still go through.
        if (request.rows.size() > 1 &&
            (response.status == 400 || response.status == 413 || response.status == 422)) {
            v.kind = Verdict::Kind::Split;
            return v;
        }
        break;
    case ResponseClass::Success:
        break;
    }
    v.kind = Verdict::Kind::Done;
    v.rows = InterpretWebhookResponse(response, request.rows.size());
    return v;
}

} // namespace revetl
