#include "core/sync_definition.hpp"

#include "core/destination_options.hpp"
#include "core/error.hpp"

#include <rapidjson/document.h>

namespace revetl {

namespace {

const std::vector<std::string> kSyncOptions = {"batch_size", "max_attempts", "timeout"};

int IntOption(const rapidjson::Value &v, const std::string &name, int min, int max) {
    if (v.IsInt() && v.GetInt() >= min && v.GetInt() <= max)
        return v.GetInt();
    if (v.IsString())
        return static_cast<int>(ParseBoundedInt(name, v.GetString(), min, max));
    throw Error(sqlstate::kInvalidParameterValue, "invalid value for sync option \"" + name + "\"",
                "The value must be an integer from " + std::to_string(min) + " to " + std::to_string(max) + ".");
}

} // namespace

SyncOptions ParseSyncOptions(const std::string &json) {
    SyncOptions out;
    rapidjson::Document doc;
    doc.Parse(json.c_str(), json.size());
    if (doc.HasParseError() || !doc.IsObject())
        throw Error(sqlstate::kInvalidParameterValue, "sync options must be a JSON object",
                    {}, "For example: '{\"batch_size\": 500}'.");
    for (auto it = doc.MemberBegin(); it != doc.MemberEnd(); ++it) {
        std::string name(it->name.GetString(), it->name.GetStringLength());
        if (name == "batch_size")
            out.batch_size = IntOption(it->value, name, 1, 10000);
        else if (name == "max_attempts")
            out.max_attempts = IntOption(it->value, name, 1, 20);
        else if (name == "timeout") {
            if (!it->value.IsString())
                throw Error(sqlstate::kInvalidParameterValue, "invalid value for sync option \"timeout\"",
                            "The value must be a duration string such as '30s'.");
            out.timeout_ms = ParseDurationMs(name, it->value.GetString(), 1, 600000);
        } else {
            std::string hint = "Valid sync options are: batch_size, max_attempts, timeout.";
            std::string close = ClosestMatch(name, kSyncOptions);
            if (!close.empty())
                hint = "Perhaps you meant \"" + close + "\". " + hint;
            throw Error(sqlstate::kInvalidParameterValue, "unknown sync option \"" + name + "\"", {}, hint);
        }
    }
    return out;
}

std::vector<MapEntry> ParseMap(const std::string &json) {
    rapidjson::Document doc;
    doc.Parse(json.c_str(), json.size());
    if (doc.HasParseError() || !doc.IsObject())
        throw Error(sqlstate::kInvalidParameterValue, "map must be a JSON object of destination fields to SQL expressions",
                    {}, "For example: '{\"email\": \"lower(email)\", \"score\": \"lead_score\"}'.");
    std::vector<MapEntry> out;
    for (auto it = doc.MemberBegin(); it != doc.MemberEnd(); ++it) {
        std::string field(it->name.GetString(), it->name.GetStringLength());
        if (field.empty() || field.size() > 255)
            throw Error(sqlstate::kInvalidParameterValue, "invalid destination field name in map",
                        "Field names must be 1 to 255 bytes long.");
        if (!it->value.IsString() || it->value.GetStringLength() == 0)
            throw Error(sqlstate::kInvalidParameterValue,
                        "map entry for field \"" + field + "\" must be a SQL expression in a string");
        out.push_back({field, std::string(it->value.GetString(), it->value.GetStringLength())});
    }
    if (out.empty())
        throw Error(sqlstate::kInvalidParameterValue, "map must name at least one field",
                    {}, "Leave map NULL to send every column of the model.");
    return out;
}

std::vector<std::string> ParseStringArray(const std::string &json) {
    rapidjson::Document doc;
    doc.Parse(json.c_str(), json.size());
    std::vector<std::string> out;
    if (doc.HasParseError() || !doc.IsArray())
        return out;
    for (const auto &v : doc.GetArray())
        if (v.IsString())
            out.emplace_back(v.GetString(), v.GetStringLength());
    return out;
}

PlanSpec SyncDefinition::Plan(const std::string &shadow_schema) const {
    PlanSpec spec;
    spec.model = model;
    spec.key_columns = key_columns;
    spec.map = map;
    spec.include_removals = mode == "mirror";
    spec.shadow_schema = shadow_schema;
    spec.shadow_table = shadow_table;
    return spec;
}

std::string SyncDefinition::ModelDisplayName() const {
    if (model.kind == ModelRef::Kind::Relation)
        return model.schema + "." + model.name;
    return "(query)";
}

} // namespace revetl
