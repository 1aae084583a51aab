// A destination's description of its own fields (a CRM's properties): what
// a connector may declare it can fetch, the shared judgement of the answer
// (the connection rule, size bounds), the check of a sync's MAP targets
// against a cached description, and the closest-name hint. Nothing here
// names a vendor: a connector's spec supplies the request and the parser.
#pragma once

#include "core/delivery/http_client.hpp"

#include <cstddef>
#include <functional>
#include <string>
#include <utility>
#include <vector>

namespace revetl {

struct DestinationSettings;

// One field of a destination object, as the destination describes it.
struct DestinationField {
    std::string name;  // what a MAP target names
    std::string label; // for people
    // The destination's value type, in its own words (HubSpot: string,
    // number, date, datetime, enumeration, bool, ...); the connector that
    // formats values reads it.
    std::string type;
    std::string field_type; // how the vendor's UI edits it (select, checkbox, ...); "" if none
    bool read_only = false; // the destination refuses writes to it
    // Enumeration values (value, label), where the vendor lists them.
    std::vector<std::pair<std::string, std::string>> options;
};

// Bounds on what a destination may answer: a description larger than these
// is refused rather than cached (the cache is read at every CREATE SYNC).
inline constexpr size_t kMaxDescribedFields = 10000;
inline constexpr size_t kMaxFieldNameBytes = 255;
inline constexpr size_t kMaxFieldLabelBytes = 1000;
inline constexpr size_t kMaxFieldTypeBytes = 100;
inline constexpr size_t kMaxFieldOptions = 2000;

// The optional capability of a connector spec: how to ask for an object's
// fields and how to read the answer. Both are pure; the glue sends the
// request with the run's HTTP client and address policy.
struct FieldDescriber {
    std::function<HttpRequest(const DestinationSettings &settings, const std::string &object)> request;
    // The fields in a successful answer's body; throws revetl::Error when the
    // body is not the expected shape. Values are bounded by the caller.
    std::function<std::vector<DestinationField>(const std::string &body)> parse;
};

// Judges the destination's answer to `request` and returns its fields:
// the shared connection rule (refused credentials, redirects, a missing
// URL, DNS, TLS) and any other failure become an Error that says what to
// check, never quoting a secret; an answer over HttpClient's body limit or
// kMaxDescribedFields is refused; texts are bounded.
std::vector<DestinationField> ReadDescribedFields(const FieldDescriber &describer, const HttpRequest &request,
                                                  const HttpResponse &response,
                                                  const std::string &server_name);

// What a MAP or MATCH ON target is, judged against a cached description.
struct FieldFinding {
    std::string field;    // the target as written
    bool unknown = false; // no such field (else: read-only)
    std::string closest;  // unknown: the nearest known name, or ""
    std::string message;  // lower-case, PostgreSQL style
    std::string hint;
};

// Targets absent from `fields` or read-only there. MATCH ON targets may be
// read-only (they identify a record, nothing writes them).
std::vector<FieldFinding> CheckTargetFields(const std::vector<DestinationField> &fields,
                                            const std::vector<std::string> &map_targets,
                                            const std::string &match_on, const std::string &object,
                                            const std::string &server_name);

const DestinationField *FindField(const std::vector<DestinationField> &fields, const std::string &name);

} // namespace revetl

namespace revetl {

// A field's options as a JSON array of {"value", "label"} objects, for the
// cache's jsonb column.
std::string FieldOptionsJson(const DestinationField &field);

} // namespace revetl
