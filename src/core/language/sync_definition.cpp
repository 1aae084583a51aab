#include "core/language/sync_definition.hpp"

#include "core/connectors/options.hpp"
#include "core/common/error.hpp"

#include <rapidjson/document.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

namespace revetl {

namespace {

const std::vector<std::string> kSyncOptions = {
    "batch_size",          "max_attempts",         "timeout",           "alert_to",
    "alert_rejected_rows", "alert_no_success_for", "run_after_failure", "track_changes",
    "max_in_flight",       "rate_limit",           "plan_timeout",      "max_removals",
    "alert_backlog_age",   "alert_wal_retained"};

std::string ValidOptionsHint() {
    std::string out = "Valid sync options are: ";
    for (size_t i = 0; i < kSyncOptions.size(); i++)
        out += (i ? ", " : "") + kSyncOptions[i];
    return out + ".";
}

// The option parsers report in FDW terms (they serve server options too);
// sync options are plain parameters, so their errors say so.
template <typename F>
auto AsSyncOption(const std::string &name, F &&f) {
    try {
        return f();
    } catch (const Error &e) {
        throw Error(sqlstate::kInvalidParameterValue, "invalid value for sync option \"" + name + "\"",
                    e.detail(), e.hint());
    }
}

int IntOption(const rapidjson::Value &v, const std::string &name, int min, int max) {
    if (v.IsInt() && v.GetInt() >= min && v.GetInt() <= max)
        return v.GetInt();
    if (v.IsString())
        return AsSyncOption(name,
                            [&] { return static_cast<int>(ParseBoundedInt(name, v.GetString(), min, max)); });
    throw Error(sqlstate::kInvalidParameterValue, "invalid value for sync option \"" + name + "\"",
                "The value must be an integer from " + std::to_string(min) + " to " + std::to_string(max) +
                    ".");
}

// A size as PostgreSQL's memory settings write it: an integer and an
// optional unit (B, kB, MB, GB, TB; bytes without one), from 1kB to 1PB.
int64_t SizeOption(const rapidjson::Value &v, const std::string &name) {
    const int64_t min = 1024, max = 1LL << 50;
    auto bad = [&] {
        return Error(sqlstate::kInvalidParameterValue, "invalid value for sync option \"" + name + "\"",
                     "The value must be a size from 1kB to 1PB such as '512MB', or 'none'.");
    };
    if (v.IsInt64()) {
        if (v.GetInt64() < min || v.GetInt64() > max)
            throw bad();
        return v.GetInt64();
    }
    if (!v.IsString())
        throw bad();
    const std::string text(v.GetString(), v.GetStringLength());
    size_t i = 0;
    while (i < text.size() && i < 19 && text[i] >= '0' && text[i] <= '9')
        i++;
    if (i == 0 || (i < text.size() && text[i] >= '0' && text[i] <= '9'))
        throw bad();
    const int64_t n = std::stoll(text.substr(0, i));
    size_t u = i;
    while (u < text.size() && text[u] == ' ')
        u++;
    const std::string unit = text.substr(u);
    int shift = 0;
    if (unit == "" || unit == "B")
        shift = 0;
    else if (unit == "kB")
        shift = 10;
    else if (unit == "MB")
        shift = 20;
    else if (unit == "GB")
        shift = 30;
    else if (unit == "TB")
        shift = 40;
    else
        throw bad();
    if (n > (max >> shift))
        throw bad();
    const int64_t bytes = n << shift;
    if (bytes < min)
        throw bad();
    return bytes;
}

bool IsNone(const rapidjson::Value &v) {
    return v.IsString() && std::string(v.GetString(), v.GetStringLength()) == "none";
}

} // namespace

long BacklogAgeLimitMs(const SyncOptions &options, bool tracked, bool on_change) {
    if (options.alert_backlog_age_ms)
        return *options.alert_backlog_age_ms;
    return tracked && on_change ? kDefaultBacklogAgeLimitMs : -1;
}

int64_t WalRetainedLimitBytes(const SyncOptions &options, bool wal_tracked) {
    if (!wal_tracked)
        return -1;
    return options.alert_wal_retained_bytes ? *options.alert_wal_retained_bytes
                                            : kDefaultWalRetainedLimitBytes;
}

SyncOptions ParseSyncOptions(const std::string &json) {
    SyncOptions out;
    rapidjson::Document doc;
    doc.Parse(json.c_str(), json.size());
    if (doc.HasParseError() || !doc.IsObject())
        throw Error(sqlstate::kInvalidParameterValue, "sync options must be a JSON object", {},
                    "For example: '{\"batch_size\": 500}'.");
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
            out.timeout_ms =
                AsSyncOption(name, [&] { return ParseDurationMs(name, it->value.GetString(), 1, 600000); });
        } else if (name == "plan_timeout") {
            if (!it->value.IsString())
                throw Error(sqlstate::kInvalidParameterValue,
                            "invalid value for sync option \"plan_timeout\"",
                            "The value must be a duration string such as '10min'.");
            out.plan_timeout_ms = AsSyncOption(
                name, [&] { return ParseDurationMs(name, it->value.GetString(), 1000, 24L * 3600 * 1000); });
        } else if (name == "alert_to") {
            if (!it->value.IsString() || it->value.GetStringLength() == 0 || it->value.GetStringLength() > 63)
                throw Error(sqlstate::kInvalidParameterValue, "invalid value for sync option \"alert_to\"",
                            "The value must be the name of a revetl webhook server, in a string.");
            out.alert_to = std::string(it->value.GetString(), it->value.GetStringLength());
        } else if (name == "alert_rejected_rows") {
            out.alert_rejected_rows = IntOption(it->value, name, 1, 1000000000);
        } else if (name == "alert_no_success_for") {
            if (!it->value.IsString())
                throw Error(sqlstate::kInvalidParameterValue,
                            "invalid value for sync option \"alert_no_success_for\"",
                            "The value must be a duration string such as '6h'.");
            out.alert_no_success_for_ms = AsSyncOption(name, [&] {
                return ParseDurationMs(name, it->value.GetString(), 60000, 90L * 24 * 3600 * 1000);
            });
        } else if (name == "alert_backlog_age") {
            if (IsNone(it->value))
                out.alert_backlog_age_ms = -1;
            else if (!it->value.IsString())
                throw Error(sqlstate::kInvalidParameterValue,
                            "invalid value for sync option \"alert_backlog_age\"",
                            "The value must be a duration string such as '15min', or 'none'.");
            else
                out.alert_backlog_age_ms = AsSyncOption(name, [&] {
                    return ParseDurationMs(name, it->value.GetString(), 1000, 90L * 24 * 3600 * 1000);
                });
        } else if (name == "alert_wal_retained") {
            out.alert_wal_retained_bytes = IsNone(it->value) ? -1 : SizeOption(it->value, name);
        } else if (name == "max_in_flight") {
            out.max_in_flight = IntOption(it->value, name, 1, 64);
        } else if (name == "rate_limit") {
            if (!it->value.IsString())
                throw Error(sqlstate::kInvalidParameterValue, "invalid value for sync option \"rate_limit\"",
                            "The value must be a string such as '100 per 10s'.");
            out.rate_limit = AsSyncOption(name, [&] { return ParseRateLimit(name, it->value.GetString()); });
        } else if (name == "track_changes") {
            // 'wal': captured by logical decoding instead of triggers.
            const bool wal = it->value.IsString() && std::string(it->value.GetString()) == "wal";
            if (!it->value.IsBool() && !wal)
                throw Error(sqlstate::kInvalidParameterValue,
                            "invalid value for sync option \"track_changes\"",
                            "The value must be true (capture triggers), 'wal' (logical decoding) or false.");
            out.track_changes = wal || it->value.GetBool();
            out.track_wal = wal;
        } else if (name == "max_removals") {
            SyncOptions::RemovalLimit limit;
            const std::string text = it->value.IsString()
                                         ? std::string(it->value.GetString(), it->value.GetStringLength())
                                         : std::string();
            auto bad = [&] {
                return Error(sqlstate::kInvalidParameterValue,
                             "invalid value for sync option \"max_removals\"",
                             "The value must be a share of the records delivered such as '10%', a number of "
                             "rows, or 'none'.",
                             "For example: max_removals = '5%', max_removals = 1000.");
            };
            if (it->value.IsInt64() && it->value.GetInt64() >= 0) {
                limit.kind = SyncOptions::RemovalLimit::Kind::Count;
                limit.value = it->value.GetInt64();
            } else if (text == "none") {
                limit.kind = SyncOptions::RemovalLimit::Kind::None;
            } else if (!text.empty() && text.back() == '%') {
                limit.kind = SyncOptions::RemovalLimit::Kind::Percent;
                try {
                    limit.value = ParseBoundedInt(name, text.substr(0, text.size() - 1), 0, 100);
                } catch (const Error &) {
                    throw bad();
                }
            } else if (!text.empty()) {
                limit.kind = SyncOptions::RemovalLimit::Kind::Count;
                try {
                    limit.value = ParseBoundedInt(name, text, 0, 1000000000000L);
                } catch (const Error &) {
                    throw bad();
                }
            } else {
                throw bad();
            }
            out.max_removals = limit;
        } else if (name == "run_after_failure") {
            if (!it->value.IsBool())
                throw Error(sqlstate::kInvalidParameterValue,
                            "invalid value for sync option \"run_after_failure\"",
                            "The value must be true or false.");
            out.run_after_failure = it->value.GetBool();
        } else {
            std::string hint = ValidOptionsHint();
            std::string close = ClosestMatch(name, kSyncOptions);
            if (!close.empty())
                hint = "Perhaps you meant \"" + close + "\". " + hint;
            throw Error(sqlstate::kInvalidParameterValue, "unknown sync option \"" + name + "\"", {}, hint);
        }
    }
    return out;
}

int64_t MaxRemovals(const SyncOptions &options, int64_t delivered) {
    if (!options.max_removals)
        return std::max(kRemovalFloor, delivered / 10);
    switch (options.max_removals->kind) {
    case SyncOptions::RemovalLimit::Kind::None:
        return -1;
    case SyncOptions::RemovalLimit::Kind::Count:
        return options.max_removals->value;
    case SyncOptions::RemovalLimit::Kind::Percent:
        break;
    }
    return delivered / 100 * options.max_removals->value +
           delivered % 100 * options.max_removals->value / 100;
}

std::string DescribeMaxRemovals(const SyncOptions &options, int64_t delivered) {
    const std::string of = " of the " + std::to_string(delivered) + " records delivered";
    if (!options.max_removals)
        return "the default, 10%" + of + " and at least " + std::to_string(kRemovalFloor);
    switch (options.max_removals->kind) {
    case SyncOptions::RemovalLimit::Kind::None:
        return "no limit";
    case SyncOptions::RemovalLimit::Kind::Count:
        return std::to_string(options.max_removals->value) + " rows";
    case SyncOptions::RemovalLimit::Kind::Percent:
        break;
    }
    return std::to_string(options.max_removals->value) + "%" + of;
}

std::vector<MapEntry> ParseMap(const std::string &json) {
    rapidjson::Document doc;
    doc.Parse(json.c_str(), json.size());
    std::vector<MapEntry> out;
    auto add = [&](std::string field, const rapidjson::Value &expr) {
        if (field.empty() || field.size() > 255)
            throw Error(sqlstate::kInvalidParameterValue, "invalid destination field name in map",
                        "Field names must be 1 to 255 bytes long.");
        if (!expr.IsString() || expr.GetStringLength() == 0)
            throw Error(sqlstate::kInvalidParameterValue,
                        "map entry for field \"" + field + "\" must be a SQL expression in a string");
        for (const auto &e : out)
            if (e.field == field)
                throw Error(sqlstate::kInvalidParameterValue,
                            "destination field \"" + field + "\" is mapped twice");
        out.push_back({std::move(field), std::string(expr.GetString(), expr.GetStringLength())});
    };
    if (!doc.HasParseError() && doc.IsObject()) {
        for (auto it = doc.MemberBegin(); it != doc.MemberEnd(); ++it)
            add(std::string(it->name.GetString(), it->name.GetStringLength()), it->value);
    } else if (!doc.HasParseError() && doc.IsArray()) {
        for (const auto &item : doc.GetArray()) {
            if (!item.IsObject() || !item.HasMember("field") || !item["field"].IsString() ||
                !item.HasMember("expression"))
                throw Error(sqlstate::kInvalidParameterValue, "invalid map entry",
                            "Each entry of a map array is {\"field\": ..., \"expression\": ...}.");
            add(item["field"].GetString(), item["expression"]);
        }
    } else {
        throw Error(sqlstate::kInvalidParameterValue,
                    "map must be a JSON object of destination fields to SQL expressions", {},
                    "For example: '{\"email\": \"lower(email)\", \"score\": \"lead_score\"}'.");
    }
    if (out.empty())
        throw Error(sqlstate::kInvalidParameterValue, "map must name at least one field", {},
                    "Leave map NULL to send every column of the model.");
    return out;
}

std::string MapToJson(const std::vector<MapEntry> &map) {
    rapidjson::StringBuffer buf;
    rapidjson::Writer<rapidjson::StringBuffer> w(buf);
    w.StartArray();
    for (const auto &e : map) {
        w.StartObject();
        w.Key("field");
        w.String(e.field.c_str(), static_cast<rapidjson::SizeType>(e.field.size()));
        w.Key("expression");
        w.String(e.expression.c_str(), static_cast<rapidjson::SizeType>(e.expression.size()));
        w.EndObject();
    }
    w.EndArray();
    return std::string(buf.GetString(), buf.GetSize());
}

std::string OptionsToJson(const std::vector<dsl::OptionItem> &options) {
    rapidjson::StringBuffer buf;
    rapidjson::Writer<rapidjson::StringBuffer> w(buf);
    w.StartObject();
    for (const auto &o : options) {
        w.Key(o.name.c_str(), static_cast<rapidjson::SizeType>(o.name.size()));
        switch (o.type) {
        case dsl::OptionItem::Type::Number: {
            bool integral = !o.value.empty() && o.value.size() <= 15 &&
                            o.value.find_first_not_of("0123456789") == std::string::npos;
            if (integral)
                w.Int64(std::stoll(o.value));
            else
                w.String(o.value.c_str(), static_cast<rapidjson::SizeType>(o.value.size()));
            break;
        }
        case dsl::OptionItem::Type::Bool:
            w.Bool(o.value == "true");
            break;
        case dsl::OptionItem::Type::String:
            w.String(o.value.c_str(), static_cast<rapidjson::SizeType>(o.value.size()));
            break;
        }
    }
    w.EndObject();
    return std::string(buf.GetString(), buf.GetSize());
}

std::vector<dsl::OptionItem> OptionsFromJson(const std::string &json) {
    rapidjson::Document doc;
    doc.Parse(json.c_str(), json.size());
    std::vector<dsl::OptionItem> out;
    if (doc.HasParseError() || !doc.IsObject())
        return out;
    for (auto it = doc.MemberBegin(); it != doc.MemberEnd(); ++it) {
        dsl::OptionItem o;
        o.name.assign(it->name.GetString(), it->name.GetStringLength());
        if (it->value.IsInt64()) {
            o.type = dsl::OptionItem::Type::Number;
            o.value = std::to_string(it->value.GetInt64());
        } else if (it->value.IsBool()) {
            o.type = dsl::OptionItem::Type::Bool;
            o.value = it->value.GetBool() ? "true" : "false";
        } else if (it->value.IsString()) {
            o.type = dsl::OptionItem::Type::String;
            o.value.assign(it->value.GetString(), it->value.GetStringLength());
        } else {
            continue;
        }
        out.push_back(std::move(o));
    }
    return out;
}

std::string MergeOptions(const std::string &base, const std::string &changes) {
    rapidjson::Document b, c;
    b.Parse(base.c_str(), base.size());
    c.Parse(changes.c_str(), changes.size());
    if (b.HasParseError() || !b.IsObject())
        b.SetObject();
    if (c.HasParseError() || !c.IsObject())
        throw Error(sqlstate::kInvalidParameterValue, "sync options must be a JSON object", {},
                    "For example: '{\"batch_size\": 500}'.");
    for (auto it = c.MemberBegin(); it != c.MemberEnd(); ++it) {
        if (b.HasMember(it->name))
            b.RemoveMember(it->name);
        if (!it->value.IsNull())
            b.AddMember(rapidjson::Value(it->name, b.GetAllocator()),
                        rapidjson::Value(it->value, b.GetAllocator()), b.GetAllocator());
    }
    rapidjson::StringBuffer buf;
    rapidjson::Writer<rapidjson::StringBuffer> w(buf);
    b.Accept(w);
    return std::string(buf.GetString(), buf.GetSize());
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
    // An audience's members leave it when their rows leave the model.
    spec.include_removals = mode == "mirror" || mode == "audience";
    spec.include_changes = mode != "insert";
    spec.shadow_schema = shadow_schema;
    spec.shadow_table = shadow_table;
    return spec;
}

dsl::CreateSync SyncDefinition::ToStatement() const {
    dsl::CreateSync c;
    c.name = name;
    if (model.kind == ModelRef::Kind::Relation) {
        c.model_schema = model.schema;
        c.model_name = model.name;
    } else {
        c.model_is_query = true;
        c.model_query = model.query;
    }
    c.server = destination;
    c.object = object;
    c.key = key_columns;
    c.match_on = match_on;
    c.mode = mode;
    c.audience = audience;
    for (const auto &e : map)
        c.map.push_back({e.expression, e.field, 0, {}});
    c.schedule = schedule;
    c.options = OptionsFromJson(options_json);
    return c;
}

std::string SyncDefinition::ModelDisplayName() const {
    if (model.kind == ModelRef::Kind::Relation)
        return model.schema + "." + model.name;
    return "(query)";
}

} // namespace revetl
