#include "core/delivery/delivery.hpp"

#include <ctime>

namespace revetl {

namespace {

// How long one Poll() may block: short, so interrupts are seen promptly.
constexpr int kPollSliceMs = 100;

HttpResponse SendOne(HttpClient &client, const HttpRequest &request, const DeliveryHooks &hooks) {
    static uint64_t next_id = 1;
    uint64_t id = next_id++;
    client.Start(id, request);
    for (;;) {
        hooks.check_interrupts();
        for (auto &done : client.Poll(kPollSliceMs))
            if (done.first == id)
                return std::move(done.second);
    }
}

std::string DescribeFailure(const HttpResponse &r, const DestinationSettings &settings) {
    std::string where = RedactUrl(settings.url);
    if (r.status == 0)
        return "could not reach " + where + ": " +
               (r.timed_out ? std::string("timed out") : r.transport_error);
    return "destination " + where + " answered HTTP " + std::to_string(r.status) +
           (r.body.empty() ? std::string() : ": " + Truncate(r.body, 300));
}

} // namespace

BatchOutcome DeliverBatch(HttpClient &client, const DestinationSettings &settings,
                          const BatchContext &context, const std::vector<Change> &changes,
                          const RetryPolicy &policy, const DeliveryHooks &hooks) {
    BatchOutcome outcome;
    HttpRequest request = BuildWebhookRequest(settings, context, changes);
    for (int attempt = 1;; attempt++) {
        HttpResponse response = SendOne(client, request, hooks);
        outcome.requests++;
        outcome.last_status = response.status;
        if (ClassifyResponse(response) != ResponseClass::Transient) {
            outcome.answered = true;
            outcome.rows = InterpretWebhookResponse(response, changes.size());
            return outcome;
        }
        if (attempt >= policy.max_attempts) {
            outcome.error = DescribeFailure(response, settings) + " (after " + std::to_string(attempt) +
                            (attempt == 1 ? " attempt)" : " attempts)");
            return outcome;
        }
        outcome.retries++;
        hooks.sleep(
            policy.DelayMs(response, attempt + 1, hooks.random ? hooks.random() : 0.5, std::time(nullptr)));
    }
}

} // namespace revetl
