#include "core/connectors/outreach/outreach.hpp"

#include "core/connectors/json_text.hpp"

#include "core/common/encoding.hpp"
#include "core/common/error.hpp"
#include "core/delivery/retry_policy.hpp"

#include <rapidjson/document.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include <algorithm>
#include <cctype>
#include <ctime>

namespace revetl {

namespace {

// The call a request is (its flow state, passed back by the engine).
constexpr const char *kLookup = "lookup";
constexpr const char *kCreate = "create";
constexpr const char *kUpdateKept = "update_kept";   // PATCH by the shadow state's id
constexpr const char *kUpdateFound = "update_found"; // PATCH by the lookup's hit
constexpr const char *kRemove = "remove";

constexpr const char *kMediaType = "application/vnd.api+json";

// Outreach's record ids are integers: nothing else goes into a URL path.
bool ValidId(const std::string &id) {
    return !id.empty() && id.size() <= 19 &&
           std::all_of(id.begin(), id.end(), [](unsigned char c) { return std::isdigit(c); });
}

bool ValidAttributeName(const std::string &name) {
    return !name.empty() && name.size() <= 100 &&
           std::all_of(name.begin(), name.end(), [](unsigned char c) { return std::isalnum(c) || c == '_'; });
}

RowOutcome Accepted(long status, const std::string &id) {
    RowOutcome o;
    o.accepted = true;
    o.http_status = status;
    if (ValidId(id))
        o.dest_id = id;
    return o;
}

// The first JSON:API error object: its id as the code, detail (else title)
// with the source pointer as the message.
void FirstError(const rapidjson::Value &doc, std::string &code, std::string &message) {
    if (!doc.IsObject() || !doc.HasMember("errors") || !doc["errors"].IsArray())
        return;
    for (const auto &e : doc["errors"].GetArray()) {
        code = JsonMember(e, "id");
        message = JsonMember(e, "detail");
        if (message.empty())
            message = JsonMember(e, "title");
        if (e.IsObject() && e.HasMember("source") && e["source"].IsObject()) {
            std::string pointer = JsonMember(e["source"], "pointer");
            if (!pointer.empty())
                message += " (" + pointer + ")";
        }
        if (!code.empty() || !message.empty())
            return;
    }
}

// Seconds to wait from X-RateLimit-Reset: a unix time, or seconds.
std::optional<long> ResetWaitMs(const std::string &value) {
    if (value.empty() || value.size() > 15 ||
        !std::all_of(value.begin(), value.end(), [](unsigned char c) { return std::isdigit(c); }))
        return std::nullopt;
    long n = std::stol(value);
    long now = static_cast<long>(std::time(nullptr));
    long seconds = n > 1000000000L ? n - now : n;
    return std::clamp(seconds * 1000L, 1000L, 3600000L);
}

std::string CleanHeader(const std::string &value) {
    std::string out;
    for (char c : value.substr(0, 40))
        if (std::isdigit(static_cast<unsigned char>(c)))
            out += c;
    return out;
}

} // namespace

OutreachConnector::OutreachConnector(DestinationSettings settings, SyncTarget target)
    : settings_(std::move(settings)), target_(std::move(target)) {
    if (target_.object.empty())
        target_.object = "prospects";
    if (target_.match_on.empty())
        target_.match_on = target_.object == "accounts" ? "customId" : "emails";
}

std::string OutreachConnector::ResourceType() const {
    return target_.object == "accounts" ? "account" : "prospect";
}

HttpRequest OutreachConnector::Request(const std::string &method, const std::string &path,
                                       std::string body) const {
    std::string base = settings_.url;
    while (!base.empty() && base.back() == '/')
        base.pop_back();
    HttpRequest req;
    req.method = method;
    req.url = base + path;
    req.timeout_ms = settings_.timeout_ms;
    req.connect_timeout_ms = settings_.connect_timeout_ms;
    req.body = std::move(body);
    // Outreach refuses any other content type with 415.
    if (!req.body.empty())
        req.headers.emplace_back("Content-Type", kMediaType);
    req.headers.emplace_back("Accept", kMediaType);
    for (const auto &h : settings_.headers)
        req.headers.push_back(h);
    ApplyAuth(settings_.credentials, req);
    return req;
}

std::string OutreachConnector::MatchValue(const std::string &payload) const {
    rapidjson::Document doc;
    doc.Parse<rapidjson::kParseNumbersAsStringsFlag>(payload.c_str(), payload.size());
    if (doc.HasParseError() || !doc.IsObject())
        return {};
    auto it = doc.FindMember(target_.match_on.c_str());
    if (it == doc.MemberEnd())
        return {};
    if (it->value.IsArray())
        return it->value.Empty() ? std::string() : JsonText(it->value[0]);
    return JsonText(it->value);
}

std::string OutreachConnector::Document(const std::string &payload, const std::string &id) const {
    rapidjson::Document doc;
    doc.Parse(payload.c_str(), payload.size());
    if (doc.HasParseError() || !doc.IsObject())
        return {};
    std::string attributes = payload;
    bool nulls = false;
    for (auto m = doc.MemberBegin(); m != doc.MemberEnd(); ++m)
        nulls = nulls || m->value.IsNull();
    const bool wrap = doc.HasMember("emails") && doc["emails"].IsString();
    if (wrap || (nulls && id.empty())) {
        // A prospect's emails are an array: one string becomes one element.
        if (wrap) {
            rapidjson::Value one(rapidjson::kArrayType);
            one.PushBack(rapidjson::Value(doc["emails"], doc.GetAllocator()), doc.GetAllocator());
            doc["emails"] = one;
        }
        // A new record has no value to clear: null attributes are left out
        // (Outreach's contract types them without null). A PATCH keeps
        // them, to clear the attribute.
        if (id.empty())
            for (auto m = doc.MemberBegin(); m != doc.MemberEnd();)
                m = m->value.IsNull() ? doc.EraseMember(m) : m + 1;
        rapidjson::StringBuffer buf;
        rapidjson::Writer<rapidjson::StringBuffer> w(buf);
        doc.Accept(w);
        attributes.assign(buf.GetString(), buf.GetSize());
    }
    std::string out = "{\"data\":{\"type\":\"" + ResourceType() + "\"";
    if (!id.empty())
        out += ",\"id\":" + id;
    out += ",\"attributes\":" + attributes + "}}";
    return out;
}

PreparedRequest OutreachConnector::Lookup(const Change &change) const {
    PreparedRequest p;
    p.http = Request("GET",
                     "/" + Collection() + "?" + UrlEncode("filter[" + target_.match_on + "]") + "=" +
                         UrlEncode(MatchValue(change.payload)) + "&" + UrlEncode("page[size]") + "=1",
                     "");
    p.flow.state = kLookup;
    return p;
}

PreparedRequest OutreachConnector::Create(const Change &change) const {
    PreparedRequest p;
    p.http = Request("POST", "/" + Collection(), Document(change.payload, ""));
    p.flow.state = kCreate;
    return p;
}

PreparedRequest OutreachConnector::Update(const Change &change, const std::string &id,
                                          const char *state) const {
    PreparedRequest p;
    p.http = Request("PATCH", "/" + Collection() + "/" + id, Document(change.payload, id));
    p.flow.state = state;
    return p;
}

std::vector<PreparedRequest>
OutreachConnector::Prepare(const BatchContext &, const std::vector<Change> &changes,
                           const std::vector<size_t> &rows,
                           std::vector<std::pair<size_t, RowOutcome>> &immediate) {
    std::vector<PreparedRequest> out;
    for (size_t i : rows) {
        const Change &c = changes[i];
        PreparedRequest p;
        if (c.op == Change::Op::Remove) {
            if (c.dest_id.empty()) {
                immediate.emplace_back(
                    i, UnresolvableRemoval("Outreach", "Outreach record id", "deleted", target_.match_on));
                continue;
            }
            if (!ValidId(c.dest_id)) {
                immediate.emplace_back(
                    i, UnusableRecordIdRemoval("Outreach",
                                               "the Outreach record id kept for this row is not one Outreach "
                                               "gives, so the record cannot be deleted",
                                               target_.match_on));
                continue;
            }
            p.http = Request("DELETE", "/" + Collection() + "/" + c.dest_id, "");
            p.flow.state = kRemove;
        } else if (Document(c.payload, "").empty()) {
            immediate.emplace_back(i, RejectedRow(0, "the payload is not a JSON object", "INVALID_PAYLOAD"));
            continue;
        } else if (target_.mode == "insert") {
            p = Create(c);
        } else if (ValidId(c.dest_id)) {
            p = Update(c, c.dest_id, kUpdateKept);
        } else if (MatchValue(c.payload).empty()) {
            immediate.emplace_back(
                i,
                RejectedRow(0, "the payload has no value for the MATCH ON field \"" + target_.match_on + "\"",
                            "NO_MATCH_VALUE"));
            continue;
        } else {
            p = Lookup(c);
        }
        p.rows = {i};
        out.push_back(std::move(p));
    }
    return out;
}

Verdict OutreachConnector::Interpret(const PreparedRequest &request, const std::vector<Change> &changes,
                                     const HttpResponse &response) {
    Verdict v;
    const long status = response.status;
    auto limit = response.Header("x-ratelimit-limit");
    auto remaining = response.Header("x-ratelimit-remaining");
    if (limit && remaining)
        rate_note_ = "X-RateLimit-Remaining " + CleanHeader(*remaining) + "/" + CleanHeader(*limit);
    rapidjson::Document doc;
    doc.Parse(response.body.c_str(), response.body.size());
    const bool json = !doc.HasParseError() && doc.IsObject();
    const std::string &state = request.flow.state;
    std::string code, message;
    if (json && status >= 300)
        FirstError(doc, code, message);
    if (message.empty() && !json && status >= 300)
        message = Truncate(response.body, 300);

    if (status == 429) {
        v.kind = Verdict::Kind::Throttled;
        v.wait_ms = 60000;
        if (auto retry_after = response.Header("retry-after")) {
            if (auto seconds = ParseRetryAfterSeconds(*retry_after, std::time(nullptr)))
                v.wait_ms = std::max(1L, *seconds) * 1000L;
        } else if (auto reset = response.Header("x-ratelimit-reset")) {
            if (auto ms = ResetWaitMs(*reset))
                v.wait_ms = *ms;
        }
        v.error =
            "Outreach rate limit: " + Truncate(message.empty() ? "429 Too Many Requests" : message, 300);
        return v;
    }
    // 503 scheduledServerMaintenance too.
    if (auto transient = TransientFailure(response, "Outreach", message))
        return *transient;
    const bool names_a_record = state == kUpdateKept || state == kUpdateFound || state == kRemove;
    if (auto failure = ConnectionFailure(response, request.http.url, names_a_record)) {
        if (!message.empty())
            failure->error +=
                " (Outreach: " + (code.empty() ? "" : code + ": ") + Truncate(message, 300) + ")";
        return *failure;
    }
    if (status == 415) {
        v.kind = Verdict::Kind::Fatal;
        v.error = "Outreach refused the content type (HTTP 415): " + Truncate(message, 300);
        return v;
    }
    const size_t row = request.rows.empty() ? 0 : request.rows.front();
    const Change *change = row < changes.size() ? &changes[row] : nullptr;
    if (status == 404 && state == kRemove) {
        v.rows.push_back(Accepted(status, "")); // already gone
        return v;
    }
    if (status == 404 && state == kUpdateKept && change) {
        // The kept record was deleted in Outreach: find it again by its
        // match value (or create it).
        if (MatchValue(change->payload).empty() || target_.mode == "insert") {
            v.rows.push_back(RejectedRow(status, "Outreach no longer knows record " + change->dest_id,
                                         code.empty() ? "resourceNotFound" : code));
            return v;
        }
        v.kind = Verdict::Kind::Continue;
        v.next = Lookup(*change);
        return v;
    }
    if (status >= 400) {
        v.rows.push_back(RejectedRow(status, message.empty() ? "refused by Outreach" : message,
                                     code.empty() ? "HTTP_" + std::to_string(status) : code));
        return v;
    }
    if (state == kRemove) {
        v.rows.push_back(Accepted(status, ""));
        return v;
    }
    if (!json || !doc.HasMember("data")) {
        v.kind = Verdict::Kind::Retry;
        v.error = "Outreach answered HTTP " + std::to_string(status) + " without a JSON:API document";
        return v;
    }
    const rapidjson::Value &data = doc["data"];
    if (state == kLookup && change) {
        std::string id;
        if (data.IsArray() && !data.Empty())
            id = JsonMember(data[0], "id");
        if (ValidId(id)) {
            v.kind = Verdict::Kind::Continue;
            v.next = Update(*change, id, kUpdateFound);
        } else if (target_.mode == "update") {
            v.rows.push_back(RejectedRow(status,
                                         "Outreach has no " + ResourceType() + " with " + target_.match_on +
                                             " " + Truncate(MatchValue(change->payload), 200),
                                         "NOT_FOUND"));
        } else {
            v.kind = Verdict::Kind::Continue;
            v.next = Create(*change);
        }
        return v;
    }
    v.rows.push_back(Accepted(status, JsonMember(data, "id")));
    return v;
}

std::string OutreachConnector::RunNote() const {
    return rate_note_.empty() ? std::string() : "Outreach " + rate_note_;
}

const ConnectorSpec &OutreachSpec() {
    static const ConnectorSpec spec = [] {
        ConnectorSpec s;
        s.type = "outreach";
        s.summary =
            "Outreach prospects and accounts through its JSON:API: looked up by a filterable field, then "
            "created or updated by id.";
        s.server_options = CommonServerOptions();
        for (auto &o : s.server_options) {
            if (o.name == "url") {
                o.required = false;
                o.default_value = "https://api.outreach.io/api/v2";
            } else if (o.name == "rate_limit") {
                // 10,000 requests an hour per user.
                o.default_value = "10000 per 1h";
            }
        }
        // OAuth 2.0 with the refresh token of an authorized user (Outreach
        // rotates it: the host stores the new one), or an access token.
        s.auth = {AuthKind::OAuth, AuthKind::Bearer};
        s.default_object = "prospects";
        ObjectSpec prospects;
        prospects.name = "prospects";
        prospects.modes = {"upsert", "update", "insert", "mirror"};
        prospects.default_match_on = "emails";
        prospects.match_on_hint =
            "Outreach looks prospects up by a filterable attribute: emails (the default), "
            "externalId or a custom field such as custom1.";
        ObjectSpec accounts;
        accounts.name = "accounts";
        accounts.modes = {"upsert", "update", "insert", "mirror"};
        accounts.default_match_on = "customId";
        accounts.match_on_hint =
            "Outreach looks accounts up by a filterable attribute: customId (the default), "
            "domain, name or a custom field.";
        s.objects = {prospects, accounts};
        // One row a call: Outreach has no batch write.
        s.max_batch_size = 100;
        s.returns_ids = true;
        s.updates_by_record_id = true; // a kept id is PATCHed by that id
        s.idempotency_keys = false;
        s.example = "OPTIONS (type 'outreach')";
        s.check_target = [](const SyncTarget &target, const OptionList &, const std::string &sync_name,
                            const std::string &) {
            if (!target.match_on.empty() && !ValidAttributeName(target.match_on))
                throw Error(sqlstate::kInvalidParameterValue,
                            "sync \"" + sync_name + "\" cannot look Outreach records up by \"" +
                                target.match_on + "\"",
                            {},
                            "Name a filterable attribute: MATCH ON emails, externalId, customId or custom1.");
            if (target.match_on == "id")
                throw Error(sqlstate::kInvalidParameterValue,
                            "sync \"" + sync_name + "\" cannot match Outreach records on id",
                            "Outreach gives records ids of its own; revetl keeps them and updates by them.",
                            "Match on an attribute of yours: MATCH ON emails, externalId or customId.");
        };
        s.make = [](const DestinationSettings &settings,
                    const SyncTarget &target) -> std::unique_ptr<Connector> {
            return std::make_unique<OutreachConnector>(settings, target);
        };
        return s;
    }();
    return spec;
}

} // namespace revetl
