#include "core/connectors/registry.hpp"

#include "core/connectors/braze/braze.hpp"
#include "core/connectors/customerio/customerio.hpp"
#include "core/connectors/google/google.hpp"
#include "core/connectors/http/http.hpp"
#include "core/connectors/hubspot/hubspot.hpp"
#include "core/connectors/intercom/intercom.hpp"
#include "core/connectors/pipedrive/pipedrive.hpp"
#include "core/connectors/iterable/iterable.hpp"
#include "core/connectors/mailchimp/mailchimp.hpp"
#include "core/connectors/marketo/marketo.hpp"
#include "core/connectors/meta/meta.hpp"
#include "core/connectors/outreach/outreach.hpp"
#include "core/connectors/klaviyo/klaviyo.hpp"
#include "core/connectors/salesforce/salesforce.hpp"
#include "core/connectors/segment/segment.hpp"
#include "core/connectors/webhook/webhook.hpp"
#include "core/connectors/zendesk/zendesk.hpp"

namespace revetl {

const std::vector<const ConnectorSpec *> &Registry() {
    // One line per destination type.
    // clang-format off
    static const std::vector<const ConnectorSpec *> specs = {
        &WebhookSpec(),
        &HubSpotSpec(),
        &HttpSpec(),
        &ZendeskSpec(),
        &SalesforceSpec(),
        &BrazeSpec(),
        &SegmentSpec(),
        &IntercomSpec(),
        &PipedriveSpec(),
        &IterableSpec(),
        &MarketoSpec(),
        &OutreachSpec(),
        &CustomerIoSpec(),
        &KlaviyoSpec(),
        &MailchimpSpec(),
        &MetaSpec(),
        &GoogleSpec(),
    };
    // clang-format on
    return specs;
}

const ConnectorSpec *FindSpec(const std::string &type) {
    for (const ConnectorSpec *s : Registry())
        if (s->type == type)
            return s;
    return nullptr;
}

} // namespace revetl
