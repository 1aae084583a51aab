// Alerts about a sync, sent to a webhook server in a shape Slack's incoming
// webhooks accept ({"text": ...}) with the details as extra fields.
#pragma once

#include "core/connectors/spec.hpp"
#include "core/delivery/http_client.hpp"

#include <cstdint>
#include <string>

namespace revetl {

struct AlertEvent {
    std::string database;
    std::string sync;
    std::string event; // run_failed, rejected_rows, no_success, backlog, recovered
    std::string text;  // one human sentence
    int64_t run_id = 0;
};

// The alert state a sync is in after its latest finished run.
struct AlertState {
    bool failed = false;
    bool rejected = false;
    bool stale = false;
    // The back-pressure limits the sync's backlog is over ("backlog age",
    // "WAL retained"); empty when within them.
    std::string backlog;
};

HttpRequest BuildAlertRequest(const DestinationSettings &settings, const AlertEvent &event);

} // namespace revetl
