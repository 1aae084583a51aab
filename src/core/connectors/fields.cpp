#include "core/connectors/fields.hpp"

#include "core/common/error.hpp"
#include "core/connectors/connector.hpp"
#include "core/connectors/options.hpp"

#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include <algorithm>

namespace revetl {

namespace {

// A name a destination gave: bounded, and without the bytes that would let
// it break a message or an identifier (NUL, line breaks).
bool Clean(const std::string &text) {
    return std::none_of(text.begin(), text.end(), [](char c) { return c == '\0' || c == '\n' || c == '\r'; });
}

} // namespace

std::vector<DestinationField> ReadDescribedFields(const FieldDescriber &describer, const HttpRequest &request,
                                                  const HttpResponse &response,
                                                  const std::string &server_name) {
    const std::string what = "the fields of server \"" + server_name + "\"";
    if (auto failure = ConnectionFailure(response, request.url, false))
        throw Error(sqlstate::kFdwUnableToEstablishConnection, "could not fetch " + what,
                    Truncate(failure->error, 1000) + ".");
    const long s = response.status;
    if (s == 0)
        throw Error(
            sqlstate::kFdwUnableToEstablishConnection, "could not fetch " + what,
            std::string("No answer from ") + RedactUrl(request.url) + ": " +
                (response.timed_out ? "the request timed out" : Truncate(response.transport_error, 300)) +
                ".",
            "Try again later; check the server's url and timeout options.");
    if (s < 200 || s >= 300)
        throw Error(sqlstate::kFdwUnableToEstablishConnection, "could not fetch " + what,
                    "The destination " + RedactUrl(request.url) + " answered HTTP " + std::to_string(s) + ".",
                    s == 429 || s >= 500 ? "Try again later."
                                         : "Check the object name and the server's options.");
    if (response.body_truncated)
        throw Error(sqlstate::kFdwUnableToEstablishConnection, "could not fetch " + what,
                    "The answer is larger than " + std::to_string(HttpClient::kMaxResponseBody) +
                        " bytes, the most revetl reads.");
    std::vector<DestinationField> fields = describer.parse(response.body);
    if (fields.size() > kMaxDescribedFields)
        throw Error(sqlstate::kFdwUnableToEstablishConnection, "could not fetch " + what,
                    "The destination described " + std::to_string(fields.size()) + " fields; at most " +
                        std::to_string(kMaxDescribedFields) + " are kept.");
    std::vector<DestinationField> out;
    out.reserve(fields.size());
    for (auto &f : fields) {
        // A name that could not be a MAP target is left out rather than
        // truncated into some other field's name.
        if (f.name.empty() || f.name.size() > kMaxFieldNameBytes || !Clean(f.name))
            continue;
        f.label = Truncate(f.label, kMaxFieldLabelBytes);
        f.type = Truncate(f.type, kMaxFieldTypeBytes);
        f.field_type = Truncate(f.field_type, kMaxFieldTypeBytes);
        if (f.options.size() > kMaxFieldOptions)
            f.options.resize(kMaxFieldOptions);
        for (auto &o : f.options) {
            o.first = Truncate(o.first, kMaxFieldLabelBytes);
            o.second = Truncate(o.second, kMaxFieldLabelBytes);
        }
        if (!FindField(out, f.name))
            out.push_back(std::move(f));
    }
    return out;
}

const DestinationField *FindField(const std::vector<DestinationField> &fields, const std::string &name) {
    for (const auto &f : fields)
        if (f.name == name)
            return &f;
    return nullptr;
}

std::vector<FieldFinding> CheckTargetFields(const std::vector<DestinationField> &fields,
                                            const std::vector<std::string> &map_targets,
                                            const std::string &match_on, const std::string &object,
                                            const std::string &server_name) {
    std::vector<FieldFinding> out;
    std::vector<std::string> names;
    names.reserve(fields.size());
    for (const auto &f : fields)
        names.push_back(f.name);
    const std::string where = "object \"" + object + "\" of server \"" + server_name + "\"";
    auto unknown = [&](const std::string &target, const std::string &clause) {
        FieldFinding finding;
        finding.field = target;
        finding.unknown = true;
        finding.closest = ClosestMatch(target, names);
        finding.message = clause + " field \"" + target + "\" does not exist in " + where;
        finding.hint = !finding.closest.empty()
                           ? "Perhaps you meant \"" + finding.closest + "\"."
                           : "revetl.destination_fields lists the fields of " + where + ".";
        out.push_back(std::move(finding));
    };
    for (const auto &target : map_targets) {
        const DestinationField *f = FindField(fields, target);
        if (!f) {
            unknown(target, "MAP");
        } else if (f->read_only) {
            FieldFinding finding;
            finding.field = target;
            finding.message = "field \"" + target + "\" of " + where + " is read-only";
            finding.hint = "The destination computes or owns its value; remove it from MAP.";
            out.push_back(std::move(finding));
        }
    }
    if (!match_on.empty() && !FindField(fields, match_on))
        unknown(match_on, "MATCH ON");
    return out;
}

std::string FieldOptionsJson(const DestinationField &field) {
    rapidjson::StringBuffer buf;
    rapidjson::Writer<rapidjson::StringBuffer> w(buf);
    w.StartArray();
    for (const auto &o : field.options) {
        w.StartObject();
        w.Key("value");
        w.String(o.first.c_str(), static_cast<rapidjson::SizeType>(o.first.size()));
        w.Key("label");
        w.String(o.second.c_str(), static_cast<rapidjson::SizeType>(o.second.size()));
        w.EndObject();
    }
    w.EndArray();
    return std::string(buf.GetString(), buf.GetSize());
}

} // namespace revetl
