// Delivers one batch of changes: sends it, retries what is transient, and
// returns one outcome per change. The host (the PostgreSQL worker) supplies
// the hooks for waiting and interrupt checks, so this module stays pure C++.
#pragma once

#include "core/delivery/change.hpp"
#include "core/delivery/http_client.hpp"
#include "core/delivery/retry_policy.hpp"
#include "core/connectors/webhook/webhook.hpp"

#include <functional>
#include <vector>

namespace revetl {

struct DeliveryHooks {
    // Called between curl steps; may throw to abandon the batch.
    std::function<void()> check_interrupts = [] {};
    // Waits about `ms` milliseconds (waking early is fine); may throw.
    std::function<void(long ms)> sleep;
    // Uniform random number in [0, 1) for backoff jitter.
    std::function<double()> random;
};

struct BatchOutcome {
    bool answered = false; // false: every attempt failed transiently
    std::vector<RowOutcome> rows;
    int requests = 0;
    int retries = 0;
    long last_status = 0;
    std::string error; // when !answered: why, without secrets
};

BatchOutcome DeliverBatch(HttpClient &client, const DestinationSettings &settings,
                          const BatchContext &context, const std::vector<Change> &changes,
                          const RetryPolicy &policy, const DeliveryHooks &hooks);

} // namespace revetl
