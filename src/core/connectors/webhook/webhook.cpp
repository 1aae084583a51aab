#include "core/connectors/webhook/webhook.hpp"

#include "core/common/error.hpp"
#include "core/delivery/retry_policy.hpp"

#include <rapidjson/document.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include <cstdio>
#include <ctime>

namespace revetl {

namespace {

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
    for (const auto &h : settings.headers)
        req.headers.push_back(h);
    // Credentials win over a header of the same name from the headers options.
    ApplyAuth(settings.credentials, req);
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

std::vector<PreparedRequest> WebhookConnector::Prepare(const BatchContext &context,
                                                       const std::vector<Change> &changes,
                                                       const std::vector<size_t> &rows,
                                                       std::vector<std::pair<size_t, RowOutcome>> &) {
    std::vector<Change> subset;
    subset.reserve(rows.size());
    for (size_t i : rows)
        subset.push_back(changes[i]);
    BatchContext ctx = context;
    ctx.write_op = write_op_;
    PreparedRequest req;
    req.http = BuildWebhookRequest(settings_, ctx, subset);
    req.rows = rows;
    return {req};
}

Verdict WebhookConnector::Interpret(const PreparedRequest &request, const std::vector<Change> &,
                                    const HttpResponse &response) {
    // A webhook's URL names no record: its 404 is about the URL.
    if (auto failure = ConnectionFailure(response, settings_.url, false))
        return *failure;
    Verdict v;
    long retry_after_ms = -1;
    if (auto ra = response.Header("retry-after"))
        if (auto seconds = ParseRetryAfterSeconds(*ra, std::time(nullptr)))
            retry_after_ms = *seconds * 1000L;
    switch (ClassifyResponse(response)) {
    case ResponseClass::Transient:
        v.kind = response.status == 429 ? Verdict::Kind::Throttled : Verdict::Kind::Retry;
        v.wait_ms = retry_after_ms;
        v.error = response.status == 0
                      ? "could not reach " + RedactUrl(settings_.url) + ": " +
                            (response.timed_out ? std::string("timed out") : response.transport_error)
                      : "destination " + RedactUrl(settings_.url) + " answered HTTP " +
                            std::to_string(response.status) +
                            (response.body.empty() ? "" : ": " + Truncate(response.body, 300));
        return v;
    case ResponseClass::Permanent:
        // A refused request of several rows may be refused for one of them:
        // halves find it, and the rest still go through.
        if (request.rows.size() > 1 &&
            (response.status == 400 || response.status == 413 || response.status == 422)) {
            v.kind = Verdict::Kind::Split;
            return v;
        }
        break;
    case ResponseClass::Success:
        break;
    }
    v.kind = Verdict::Kind::Done;
    v.rows = InterpretWebhookResponse(response, request.rows.size());
    return v;
}

const ConnectorSpec &WebhookSpec() {
    static const ConnectorSpec spec = [] {
        ConnectorSpec s;
        s.type = "webhook";
        s.summary = "Any HTTP endpoint that accepts revetl's JSON batch format and answers per record.";
        s.server_options = CommonServerOptions();
        OptionSpec method;
        method.name = "method";
        method.kind = OptionKind::Choice;
        method.default_value = "POST";
        method.choices = {"POST", "PUT", "PATCH"};
        method.description = "The HTTP method of every request.";
        s.server_options.insert(s.server_options.begin() + 2, method);
        s.auth = {AuthKind::None, AuthKind::Bearer, AuthKind::Basic};
        // No objects: OBJECT, when given, is not sent; MATCH ON is not used.
        ObjectSpec any;
        any.name = "*";
        any.modes = {"upsert", "update", "insert", "mirror"};
        s.objects = {any};
        s.max_batch_size = 10000;
        s.returns_ids = true;
        s.idempotency_keys = true;
        s.example = "OPTIONS (type 'webhook', url 'https://hooks.example.com/revetl')";
        s.make = [](const DestinationSettings &settings,
                    const SyncTarget &target) -> std::unique_ptr<Connector> {
            return std::make_unique<WebhookConnector>(settings,
                                                      target.mode == "mirror" ? "upsert" : target.mode);
        };
        return s;
    }();
    return spec;
}

} // namespace revetl
