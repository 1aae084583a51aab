#include "core/connectors/json_text.hpp"

#include "core/connectors/connector.hpp"

namespace revetl {

std::string JsonText(const rapidjson::Value &value) {
    if (value.IsString())
        return std::string(value.GetString(), value.GetStringLength());
    if (value.IsNull())
        return {};
    if (value.IsBool())
        return value.GetBool() ? "true" : "false";
    rapidjson::StringBuffer buffer;
    rapidjson::Writer<rapidjson::StringBuffer> writer(buffer);
    value.Accept(writer);
    return std::string(buffer.GetString(), buffer.GetSize());
}

std::string JsonMember(const rapidjson::Value &object, const char *name) {
    if (!object.IsObject())
        return {};
    auto it = object.FindMember(name);
    return it == object.MemberEnd() ? std::string() : JsonText(it->value);
}

void WriteJsonString(rapidjson::Writer<rapidjson::StringBuffer> &writer, const std::string &text) {
    writer.String(text.c_str(), static_cast<rapidjson::SizeType>(text.size()));
}

RowOutcome RejectedRow(long http_status, const std::string &reason, const std::string &code) {
    RowOutcome outcome;
    outcome.accepted = false;
    outcome.http_status = http_status;
    outcome.reason = Truncate(reason, 1000);
    outcome.error_code = Truncate(code, 100);
    return outcome;
}

RowOutcome AcceptedRow(long http_status, const std::string &dest_id) {
    RowOutcome outcome;
    outcome.accepted = true;
    outcome.http_status = http_status;
    outcome.dest_id = Truncate(dest_id, 200);
    return outcome;
}

} // namespace revetl
