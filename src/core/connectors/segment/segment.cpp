#include "core/connectors/segment/segment.hpp"

#include "core/connectors/json_text.hpp"

#include "core/common/encoding.hpp"
#include "core/common/error.hpp"
#include "core/delivery/retry_policy.hpp"

#include <rapidjson/document.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include <algorithm>
#include <ctime>

namespace revetl {

namespace {

using Writer = rapidjson::Writer<rapidjson::StringBuffer>;

void CheckSegmentTarget(const SyncTarget &target, const std::string &sync_name) {
    // Both calls need a userId (revetl sends no anonymousId), including
    // track syncs in MODE INSERT, for which MATCH ON is otherwise optional.
    if (target.match_on.empty())
        throw Error(
            sqlstate::kInvalidParameterValue,
            "sync \"" + sync_name + "\" needs MATCH ON to send Segment " + target.object + " calls",
            "Every Segment call names its user: MATCH ON names the payload field that holds the userId.",
            "Add MATCH ON user_id (with a user_id field in MAP).");
}

} // namespace

SegmentConnector::SegmentConnector(DestinationSettings settings, SyncTarget target)
    : settings_(std::move(settings)), target_(std::move(target)) {
    if (target_.object.empty())
        target_.object = "identify";
    CheckSegmentTarget(target_, "?");
}

HttpRequest SegmentConnector::Request(std::string body) const {
    std::string base = settings_.url;
    while (!base.empty() && base.back() == '/')
        base.pop_back();
    HttpRequest req;
    req.method = "POST";
    req.url = base + "/v1/batch";
    req.timeout_ms = settings_.timeout_ms;
    req.connect_timeout_ms = settings_.connect_timeout_ms;
    req.body = std::move(body);
    req.headers.emplace_back("Content-Type", "application/json");
    for (const auto &h : settings_.headers)
        req.headers.push_back(h);
    // The write key is the Basic user with an empty password, which the
    // generic basic scheme (user and password both required) cannot say:
    // the user mapping gives it as `token`. It replaces any Authorization
    // header from the headers options.
    req.headers.erase(std::remove_if(req.headers.begin(), req.headers.end(),
                                     [](const auto &h) {
                                         std::string n = h.first;
                                         std::transform(n.begin(), n.end(), n.begin(),
                                                        [](unsigned char c) { return std::tolower(c); });
                                         return n == "authorization";
                                     }),
                      req.headers.end());
    req.headers.emplace_back("Authorization", "Basic " + Base64(settings_.credentials.token + ":"));
    return req;
}

std::string SegmentConnector::Message(const BatchContext &context, const Change &change,
                                      std::string *why) const {
    rapidjson::Document doc;
    // Numbers are kept as their exact text and written back raw.
    doc.Parse<rapidjson::kParseNumbersAsStringsFlag>(change.payload.c_str(), change.payload.size());
    rapidjson::Document typed;
    typed.Parse(change.payload.c_str(), change.payload.size());
    if (doc.HasParseError() || !doc.IsObject() || typed.HasParseError()) {
        *why = "the payload is not a JSON object";
        return {};
    }
    auto user = doc.FindMember(target_.match_on.c_str());
    const std::string user_id = user == doc.MemberEnd() ? std::string() : JsonText(user->value);
    if (user_id.empty()) {
        *why = "the payload has no value for the MATCH ON field \"" + target_.match_on + "\" (the userId)";
        return {};
    }
    const bool track = target_.object == "track";
    std::string event;
    if (track) {
        auto e = doc.FindMember("event");
        if (e == doc.MemberEnd() || !e->value.IsString() || e->value.GetStringLength() == 0) {
            *why = "a track call needs a non-empty text field \"event\" (the event name) in the payload";
            return {};
        }
        event = JsonText(e->value);
    }
    std::string message_id = RecordIdempotencyKey(context.sync_id, change);
    if (message_id.size() > kMaxMessageIdBytes)
        message_id.resize(kMaxMessageIdBytes);

    rapidjson::StringBuffer buf;
    Writer w(buf);
    w.StartObject();
    w.Key("type");
    w.String(track ? "track" : "identify");
    w.Key("userId");
    WriteJsonString(w, user_id);
    if (track) {
        w.Key("event");
        WriteJsonString(w, event);
    }
    w.Key("messageId");
    WriteJsonString(w, message_id);
    w.Key(track ? "properties" : "traits");
    w.StartObject();
    for (auto m = doc.MemberBegin(); m != doc.MemberEnd(); ++m) {
        std::string name(m->name.GetString(), m->name.GetStringLength());
        if (name == target_.match_on || (track && name == "event"))
            continue;
        w.Key(name.c_str(), static_cast<rapidjson::SizeType>(name.size()));
        auto t = typed.FindMember(m->name);
        if (t != typed.MemberEnd() && t->value.IsNumber())
            w.RawValue(m->value.GetString(), m->value.GetStringLength(), rapidjson::kNumberType);
        else if (t != typed.MemberEnd())
            t->value.Accept(w);
        else
            m->value.Accept(w);
    }
    w.EndObject();
    w.EndObject();
    return std::string(buf.GetString(), buf.GetSize());
}

std::vector<PreparedRequest>
SegmentConnector::Prepare(const BatchContext &context, const std::vector<Change> &changes,
                          const std::vector<size_t> &rows,
                          std::vector<std::pair<size_t, RowOutcome>> &immediate) {
    std::vector<PreparedRequest> out;
    static const std::string head = "{\"batch\":[";
    static const std::string tail = "]}";
    std::string body;
    PreparedRequest req;
    auto flush = [&] {
        if (req.rows.empty())
            return;
        req.http = Request(body + tail);
        out.push_back(std::move(req));
        req = PreparedRequest();
        body.clear();
    };
    for (size_t i : rows) {
        const Change &c = changes[i];
        if (c.op == Change::Op::Remove) {
            // Not reachable through CREATE SYNC (no MIRROR); refused rather
            // than dropped if a definition got here another way.
            immediate.emplace_back(i, RejectedRow(0, "Segment's Tracking API deletes nothing", "NO_DELETES"));
            continue;
        }
        std::string why;
        std::string message = Message(context, c, &why);
        if (message.empty()) {
            immediate.emplace_back(i, RejectedRow(0, why, "INVALID_MESSAGE"));
            continue;
        }
        if (message.size() > kMaxMessageBytes) {
            immediate.emplace_back(i, RejectedRow(0,
                                                  "the " + target_.object + " call is " +
                                                      std::to_string(message.size()) +
                                                      " bytes, over Segment's limit of 32 KB per call",
                                                  "MESSAGE_TOO_LARGE"));
            continue;
        }
        // A batch is cut before it would pass 500 KB with this message.
        if (!req.rows.empty() &&
            head.size() + body.size() + 1 + message.size() + tail.size() > kMaxBatchBytes)
            flush();
        body += body.empty() ? head : std::string(",");
        body += message;
        req.rows.push_back(i);
    }
    flush();
    return out;
}

Verdict SegmentConnector::Interpret(const PreparedRequest &request, const std::vector<Change> &,
                                    const HttpResponse &response) {
    Verdict v;
    const long status = response.status;
    const std::string message = Truncate(response.body, 300);
    if (status == 429) {
        // Segment publishes no hard limit; a 429 is waited out all the same.
        v.kind = Verdict::Kind::Throttled;
        v.wait_ms = 1000;
        if (auto retry_after = response.Header("retry-after"))
            if (auto seconds = ParseRetryAfterSeconds(*retry_after, std::time(nullptr)))
                v.wait_ms = *seconds * 1000L;
        v.error = "Segment rate limit: " + message;
        return v;
    }
    if (auto transient = TransientFailure(response, "Segment", message))
        return *transient;
    if (status == 401 || status == 403 || status == 404 || (status >= 300 && status < 400)) {
        v.kind = Verdict::Kind::Fatal;
        v.error = "Segment refused the request (HTTP " + std::to_string(status) + "): " + message +
                  (status == 404 || status < 400 ? " (check url)" : " (check the source's write key)");
        return v;
    }
    if (status >= 400) {
        // Oversized or malformed: nothing was taken. Halves find the row.
        if (request.rows.size() > 1) {
            v.kind = Verdict::Kind::Split;
            return v;
        }
        v.rows.assign(request.rows.size(),
                      RejectedRow(status, message.empty() ? "refused by Segment" : message,
                                  "HTTP_" + std::to_string(status)));
        return v;
    }
    // 200: Segment took every call; events it finds invalid later show
    // only in its debugger, which is why Prepare checks what it can.
    v.rows.assign(request.rows.size(), RowOutcome());
    for (auto &o : v.rows) {
        o.accepted = true;
        o.http_status = status;
    }
    return v;
}

const ConnectorSpec &SegmentSpec() {
    static const ConnectorSpec spec = [] {
        ConnectorSpec s;
        s.type = "segment";
        s.summary = "Segment identify and track calls through the HTTP Tracking API's /v1/batch.";
        s.server_options = CommonServerOptions();
        for (auto &o : s.server_options) {
            if (o.name == "url") {
                // EU workspaces use https://events.eu1.segmentapis.com.
                o.required = false;
                o.default_value = "https://api.segment.io";
            } else if (o.name == "rate_limit") {
                // Segment asks to stay under 500 requests per second.
                o.default_value = "500 per 1s";
            }
        }
        s.auth = {AuthKind::Bearer}; // the write key, as `token`; sent as Basic
        s.default_object = "identify";
        ObjectSpec identify;
        identify.name = "identify";
        identify.modes = {"upsert"};
        identify.match_on_needed = true;
        identify.match_on_hint =
            "MATCH ON names the payload field holding the userId, e.g. MATCH ON user_id.";
        ObjectSpec track = identify;
        track.name = "track";
        // Each added or changed row is an event: insert sends added rows
        // only, upsert added and changed rows.
        track.modes = {"insert", "upsert"};
        s.objects = {identify, track};
        s.returns_ids = false;
        s.idempotency_keys = true;
        s.example = "OPTIONS (type 'segment')";
        s.check_target = [](const SyncTarget &target, const OptionList &, const std::string &sync_name,
                            const std::string &) { CheckSegmentTarget(target, sync_name); };
        s.make = [](const DestinationSettings &settings,
                    const SyncTarget &target) -> std::unique_ptr<Connector> {
            return std::make_unique<SegmentConnector>(settings, target);
        };
        return s;
    }();
    return spec;
}

} // namespace revetl
