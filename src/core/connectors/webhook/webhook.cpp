#include "core/connectors/webhook/webhook.hpp"

#include "core/delivery/retry_policy.hpp"

#include <rapidjson/document.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include <cstdio>
#include <strings.h>

namespace revetl {

namespace {

// 64-bit FNV-1a: stable across builds and machines, unlike std::hash.
uint64_t Fnv1a(const std::string &data, uint64_t seed) {
    uint64_t h = 1469598103934665603ULL ^ seed;
    for (unsigned char c : data) {
        h ^= c;
        h *= 1099511628211ULL;
    }
    return h;
}

std::string StringMember(const rapidjson::Value &obj, const char *name) {
    if (!obj.IsObject())
        return {};
    auto it = obj.FindMember(name);
    if (it == obj.MemberEnd())
        return {};
    if (it->value.IsString())
        return std::string(it->value.GetString(), it->value.GetStringLength());
    if (it->value.IsInt64())
        return std::to_string(it->value.GetInt64());
    return {};
}

} // namespace

const char *OpName(Change::Op op) {
    return op == Change::Op::Remove ? "delete" : "upsert";
}

std::string Truncate(const std::string &text, size_t max_bytes) {
    size_t cut = std::min(max_bytes, text.size());
    // Back up to the start of a UTF-8 sequence when the cut falls inside one.
    while (cut > 0 && cut < text.size() && (static_cast<unsigned char>(text[cut]) & 0xC0) == 0x80)
        cut--;
    std::string out = text.substr(0, cut);
    for (char &c : out)
        if (c == '\n' || c == '\r' || c == '\0')
            c = ' ';
    return out;
}

std::string RecordIdempotencyKey(int64_t sync_id, const Change &change) {
    std::string material =
        std::to_string(sync_id) + "\x1f" + change.key + "\x1f" +
        (change.op == Change::Op::Remove ? std::string("delete") : std::to_string(change.row_hash));
    char buf[40];
    std::snprintf(buf, sizeof buf, "%016llx%016llx", static_cast<unsigned long long>(Fnv1a(material, 0)),
                  static_cast<unsigned long long>(Fnv1a(material, 0x9e3779b97f4a7c15ULL)));
    return buf;
}

HttpRequest BuildWebhookRequest(const DestinationSettings &settings, const BatchContext &context,
                                const std::vector<Change> &changes) {
    rapidjson::StringBuffer buffer;
    rapidjson::Writer<rapidjson::StringBuffer> w(buffer);
    std::string batch_material = std::to_string(context.sync_id);
    w.StartObject();
    w.Key("sync");
    w.String(context.sync_name.c_str(), static_cast<rapidjson::SizeType>(context.sync_name.size()));
    w.Key("run_id");
    w.Int64(context.run_id);
    w.Key("batch");
    w.Int64(context.batch_no);
    w.Key("records");
    w.StartArray();
    for (const Change &c : changes) {
        std::string idem = RecordIdempotencyKey(context.sync_id, c);
        batch_material += idem;
        w.StartObject();
        w.Key("op");
        if (c.op == Change::Op::Remove)
            w.String("delete");
        else
            w.String(context.write_op.c_str(), static_cast<rapidjson::SizeType>(context.write_op.size()));
        // Key and payload are jsonb renderings from PostgreSQL: already valid
        // JSON, so they are copied in as they are rather than re-parsed.
        w.Key("key");
        w.RawValue(c.key.data(), c.key.size(), rapidjson::kObjectType);
        if (c.op != Change::Op::Remove) {
            w.Key("data");
            w.RawValue(c.payload.data(), c.payload.size(), rapidjson::kObjectType);
        }
        if (!c.dest_id.empty()) {
            w.Key("id");
            w.String(c.dest_id.c_str(), static_cast<rapidjson::SizeType>(c.dest_id.size()));
        }
        w.Key("idempotency_key");
        w.String(idem.c_str(), static_cast<rapidjson::SizeType>(idem.size()));
        w.EndObject();
    }
    w.EndArray();
    w.EndObject();

    HttpRequest req;
    req.method = settings.method;
    req.url = settings.url;
    req.timeout_ms = settings.timeout_ms;
    req.connect_timeout_ms = settings.connect_timeout_ms;
    req.body.assign(buffer.GetString(), buffer.GetSize());
    req.headers.emplace_back("Content-Type", "application/json");
    char idem[40];
    std::snprintf(idem, sizeof idem, "%016llx%016llx",
                  static_cast<unsigned long long>(Fnv1a(batch_material, 1)),
                  static_cast<unsigned long long>(Fnv1a(batch_material, 2)));
    req.headers.emplace_back("Idempotency-Key", idem);
    for (const auto &h : settings.headers) {
        // A token wins over an Authorization header from the user mapping.
        bool is_auth = strcasecmp(h.first.c_str(), "authorization") == 0;
        if (!(is_auth && !settings.token.empty()))
            req.headers.push_back(h);
    }
    if (!settings.token.empty())
        req.headers.emplace_back("Authorization", "Bearer " + settings.token);
    return req;
}

std::vector<RowOutcome> InterpretWebhookResponse(const HttpResponse &response, size_t count) {
    std::vector<RowOutcome> out(count);
    rapidjson::Document doc;
    doc.Parse(response.body.c_str(), response.body.size());
    bool json = !doc.HasParseError() && doc.IsObject();

    if (ClassifyResponse(response) != ResponseClass::Success) {
        std::string reason = json ? StringMember(doc, "error") : std::string();
        if (reason.empty() && json)
            reason = StringMember(doc, "message");
        if (reason.empty())
            reason = response.body.empty() ? "HTTP " + std::to_string(response.status) : response.body;
        std::string code = json ? StringMember(doc, "code") : std::string();
        for (auto &o : out) {
            o.accepted = false;
            o.http_status = response.status;
            o.reason = Truncate(reason, 1000);
            o.error_code = Truncate(code, 100);
        }
        return out;
    }

    for (auto &o : out) {
        o.accepted = true;
        o.http_status = response.status;
    }
    if (!json)
        return out;
    auto rejected = doc.FindMember("rejected");
    if (rejected != doc.MemberEnd() && rejected->value.IsArray()) {
        for (const auto &r : rejected->value.GetArray()) {
            if (!r.IsObject())
                continue;
            auto idx = r.FindMember("index");
            if (idx == r.MemberEnd() || !idx->value.IsUint64() || idx->value.GetUint64() >= count)
                continue;
            RowOutcome &o = out[idx->value.GetUint64()];
            o.accepted = false;
            o.reason = Truncate(StringMember(r, "reason"), 1000);
            if (o.reason.empty())
                o.reason = "rejected by the destination";
            o.error_code = Truncate(StringMember(r, "code"), 100);
        }
    }
    auto ids = doc.FindMember("ids");
    if (ids != doc.MemberEnd() && ids->value.IsArray()) {
        size_t i = 0;
        for (const auto &id : ids->value.GetArray()) {
            if (i >= count)
                break;
            if (id.IsString())
                out[i].dest_id = Truncate(std::string(id.GetString(), id.GetStringLength()), 200);
            else if (id.IsInt64())
                out[i].dest_id = std::to_string(id.GetInt64());
            i++;
        }
    }
    return out;
}

} // namespace revetl
