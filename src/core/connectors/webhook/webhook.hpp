// The webhook destination: batches of records as JSON, per-record results
// read back from the response. The contract is documented in
// docs/destinations.md.
#pragma once

#include "core/connectors/connector.hpp"

#include <vector>

namespace revetl {

HttpRequest BuildWebhookRequest(const DestinationSettings &settings, const BatchContext &context,
                                const std::vector<Change> &changes);

// For a final (non-transient) response: one outcome per change, in order.
std::vector<RowOutcome> InterpretWebhookResponse(const HttpResponse &response, size_t count);

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

const ConnectorSpec &WebhookSpec();

} // namespace revetl
