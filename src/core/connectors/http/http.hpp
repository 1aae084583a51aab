// The generic HTTP destination (type 'http'), for APIs no dedicated
// connector serves. Everything is declared on the server:
//  - per operation (add, change, remove) its method and a path template
//    appended to url, with {column} replaced by that key column's value,
//    URL-encoded (change defaults to add's; remove is not sent unless
//    remove_method is set, which MODE MIRROR needs);
//  - the body shape: one record (JSON object), a JSON array, an object
//    wrapping an array (body_key), NDJSON, or form-encoded fields; records
//    per request (records_per_request; record and form are one per request);
//  - response rules: which statuses mean success (success_statuses) and
//    which retry (retry_statuses; 429 waits as throttling), the rest refuse
//    the request's records; an optional JSON pointer (errors_pointer) to an
//    array of per-record errors in a successful answer, matched to the
//    request's records by position.
// Payloads are shaped in SQL by MAP; there is no template language.
#pragma once

#include "core/connectors/connector.hpp"

#include <string>
#include <vector>

namespace revetl {

// Statuses as written in success_statuses / retry_statuses: "200-299,304".
struct StatusSet {
    std::vector<std::pair<long, long>> ranges;
    bool Contains(long status) const;
};
StatusSet ParseStatusSet(const std::string &option, const std::string &text);

// "/users/{id}" with {id} from the key object (canonical JSON), URL-encoded.
// Throws revetl::Error naming the placeholder when the key has no such column.
std::string ExpandPathTemplate(const std::string &path, const std::string &key_json);

class HttpConnector : public Connector {
public:
    HttpConnector(DestinationSettings settings, SyncTarget target);

    std::vector<PreparedRequest> Prepare(const BatchContext &context, const std::vector<Change> &changes,
                                         const std::vector<size_t> &rows,
                                         std::vector<std::pair<size_t, RowOutcome>> &immediate) override;
    Verdict Interpret(const PreparedRequest &request, const std::vector<Change> &changes,
                      const HttpResponse &response) override;

private:
    struct Operation {
        std::string method;
        std::string path;
    };
    const Operation *OperationFor(Change::Op op) const;
    HttpRequest Request(const Operation &op, const std::string &url, std::string body,
                        const char *content_type) const;

    DestinationSettings settings_;
    SyncTarget target_;
    Operation add_, change_, remove_;
    std::string body_;     // record, array, object, ndjson, form
    std::string body_key_; // object: the member holding the array
    int per_request_ = 100;
    StatusSet success_, retry_;
    std::string errors_pointer_;
};

const ConnectorSpec &HttpSpec();

} // namespace revetl
