#include "core/delivery/alerts.hpp"

#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

namespace revetl {

HttpRequest BuildAlertRequest(const DestinationSettings &settings, const AlertEvent &event) {
    rapidjson::StringBuffer buf;
    rapidjson::Writer<rapidjson::StringBuffer> w(buf);
    auto str = [&](const char *key, const std::string &value) {
        w.Key(key);
        w.String(value.c_str(), static_cast<rapidjson::SizeType>(value.size()));
    };
    w.StartObject();
    str("text", event.text);
    str("event", event.event);
    str("database", event.database);
    str("sync", event.sync);
    if (event.run_id > 0) {
        w.Key("run_id");
        w.Int64(event.run_id);
    }
    w.EndObject();
    HttpRequest req;
    req.method = "POST";
    req.url = settings.url;
    // An alert must not hold up the scheduler for long.
    req.timeout_ms = std::min<long>(settings.timeout_ms, 5000);
    req.connect_timeout_ms = std::min<long>(settings.connect_timeout_ms, 3000);
    req.body.assign(buf.GetString(), buf.GetSize());
    req.headers.emplace_back("Content-Type", "application/json");
    for (const auto &h : settings.headers)
        req.headers.push_back(h);
    ApplyAuth(settings.credentials, req);
    return req;
}

} // namespace revetl
