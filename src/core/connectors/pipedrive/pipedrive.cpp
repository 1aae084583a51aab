#include "core/connectors/pipedrive/pipedrive.hpp"

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
#include <set>

namespace revetl {

namespace {

// The call a request is (FlowStep::state; these are no job polls).
constexpr const char *kSearch = "search";
constexpr const char *kCreate = "create";
constexpr const char *kUpdateKept = "update_kept";   // PATCH by the shadow state's id
constexpr const char *kUpdateFound = "update_found"; // PATCH by the id a search found
constexpr const char *kRemove = "remove";

// The standard fields of the v2 request bodies (addPerson, addOrganization
// in Pipedrive's OpenAPI contract); every other column is a custom field.
const std::set<std::string> kPersonFields = {
    "name",   "owner_id",   "org_id",    "add_time",         "emails",
    "phones", "visible_to", "label_ids", "postal_address",   "notes",
    "im",     "birthday",   "job_title", "marketing_status", "custom_fields"};
const std::set<std::string> kOrganizationFields = {
    "name",    "owner_id", "add_time", "visible_to",     "label_ids",      "address",
    "website", "linkedin", "industry", "annual_revenue", "employee_count", "custom_fields"};

using Writer = rapidjson::Writer<rapidjson::StringBuffer>;

bool Digits(const std::string &s) {
    return !s.empty() && s.size() <= 19 &&
           std::all_of(s.begin(), s.end(), [](unsigned char c) { return std::isdigit(c); });
}

// One email or phone as Pipedrive's array of {value, primary, label}.
void ContactArray(Writer &w, const rapidjson::Value &v) {
    w.StartArray();
    if (!v.IsNull()) {
        w.StartObject();
        w.Key("value");
        WriteJsonString(w, JsonText(v));
        w.Key("primary");
        w.Bool(true);
        w.Key("label");
        w.String("work");
        w.EndObject();
    }
    w.EndArray();
}

} // namespace

bool PipedriveCustomFieldKey(const std::string &name) {
    return name.size() == 40 && std::all_of(name.begin(), name.end(), [](unsigned char c) {
               return std::isdigit(c) || (c >= 'a' && c <= 'f');
           });
}

PipedriveConnector::PipedriveConnector(DestinationSettings settings, SyncTarget target)
    : settings_(std::move(settings)), target_(std::move(target)) {
    if (target_.object.empty())
        target_.object = "persons";
    if (target_.match_on.empty())
        target_.match_on = target_.object == "organizations" ? "name" : "email";
    // Pipedrive's API token header (its contract's api_key scheme).
    settings_.credentials.api_key_header = "x-api-token";
    settings_.credentials.api_key_param.clear();
}

std::string PipedriveConnector::Base() const {
    std::string base;
    // An OAuth token answer names the company's domain (api_domain); the
    // host checks it against revetl.allowed_hosts before any call goes.
    if (settings_.credentials.oauth_token)
        base = settings_.credentials.oauth_token->instance_url;
    if (base.empty())
        base = settings_.url;
    while (!base.empty() && base.back() == '/')
        base.pop_back();
    return base + "/api/v2/" + target_.object;
}

HttpRequest PipedriveConnector::Request(const std::string &method, const std::string &path,
                                        std::string body) const {
    HttpRequest req;
    req.method = method;
    req.url = Base() + path;
    req.timeout_ms = settings_.timeout_ms;
    req.connect_timeout_ms = settings_.connect_timeout_ms;
    req.body = std::move(body);
    if (!req.body.empty())
        req.headers.emplace_back("Content-Type", "application/json");
    req.headers.emplace_back("Accept", "application/json");
    for (const auto &h : settings_.headers)
        req.headers.push_back(h);
    ApplyAuth(settings_.credentials, req);
    return req;
}

std::string PipedriveConnector::MatchValue(const std::string &payload) const {
    rapidjson::Document doc;
    doc.Parse<rapidjson::kParseNumbersAsStringsFlag>(payload.c_str(), payload.size());
    if (doc.HasParseError() || !doc.IsObject())
        return {};
    std::string v = JsonMember(doc, target_.match_on.c_str());
    if (v.empty() && doc.HasMember("custom_fields"))
        v = JsonMember(doc["custom_fields"], target_.match_on.c_str());
    return v;
}

std::string PipedriveConnector::Body(const std::string &payload, bool create) const {
    rapidjson::Document doc;
    doc.Parse<rapidjson::kParseFullPrecisionFlag>(payload.c_str(), payload.size());
    const bool persons = target_.object == "persons";
    const std::set<std::string> &standard = persons ? kPersonFields : kOrganizationFields;
    rapidjson::StringBuffer buf;
    Writer w(buf);
    w.StartObject();
    std::vector<std::pair<std::string, const rapidjson::Value *>> custom;
    if (doc.IsObject()) {
        for (auto it = doc.MemberBegin(); it != doc.MemberEnd(); ++it) {
            std::string name(it->name.GetString(), it->name.GetStringLength());
            const rapidjson::Value &v = it->value;
            if (name == "custom_fields" && v.IsObject()) {
                for (auto c = v.MemberBegin(); c != v.MemberEnd(); ++c)
                    custom.emplace_back(std::string(c->name.GetString(), c->name.GetStringLength()),
                                        &c->value);
                continue;
            }
            if (persons && (name == "email" || name == "phone")) {
                // A single address or number: the person's primary one.
                w.Key(name == "email" ? "emails" : "phones");
                ContactArray(w, v);
                continue;
            }
            if (!standard.count(name)) {
                custom.emplace_back(name, &v);
                continue;
            }
            // add_time is set once, at creation (PATCH does not take it).
            if (name == "add_time" && !create)
                continue;
            w.Key(name.c_str(), static_cast<rapidjson::SizeType>(name.size()));
            v.Accept(w);
        }
    }
    if (!custom.empty()) {
        w.Key("custom_fields");
        w.StartObject();
        for (const auto &c : custom) {
            w.Key(c.first.c_str(), static_cast<rapidjson::SizeType>(c.first.size()));
            c.second->Accept(w);
        }
        w.EndObject();
    }
    w.EndObject();
    return std::string(buf.GetString(), buf.GetSize());
}

PreparedRequest PipedriveConnector::Search(const Change &change) const {
    const std::string &m = target_.match_on;
    const std::string field = PipedriveCustomFieldKey(m) ? "custom_fields" : m;
    PreparedRequest p;
    // exact_match: a whole, case-insensitive match (one character suffices).
    p.http = Request("GET",
                     "/search?term=" + UrlEncode(MatchValue(change.payload)) + "&fields=" + field +
                         "&exact_match=true&limit=10",
                     "");
    p.flow.state = kSearch;
    return p;
}

PreparedRequest PipedriveConnector::Create(const Change &change) const {
    PreparedRequest p;
    p.http = Request("POST", "", Body(change.payload, true));
    p.flow.state = kCreate;
    return p;
}

PreparedRequest PipedriveConnector::Update(const Change &change, const std::string &id,
                                           const char *state) const {
    PreparedRequest p;
    p.http = Request("PATCH", "/" + id, Body(change.payload, false));
    p.flow.state = state;
    return p;
}

std::vector<PreparedRequest>
PipedriveConnector::Prepare(const BatchContext &, const std::vector<Change> &changes,
                            const std::vector<size_t> &rows,
                            std::vector<std::pair<size_t, RowOutcome>> &immediate) {
    std::vector<PreparedRequest> out;
    for (size_t i : rows) {
        const Change &c = changes[i];
        PreparedRequest p;
        if (c.op == Change::Op::Remove) {
            if (c.dest_id.empty()) {
                immediate.emplace_back(
                    i, UnresolvableRemoval("Pipedrive", "Pipedrive record id", "deleted", target_.match_on));
                continue;
            }
            if (!Digits(c.dest_id)) {
                immediate.emplace_back(
                    i, UnusableRecordIdRemoval("Pipedrive",
                                               "the Pipedrive record id kept for this row is not one "
                                               "Pipedrive gives, so the record cannot be deleted",
                                               target_.match_on));
                continue;
            }
            p.http = Request("DELETE", "/" + c.dest_id, "");
            p.flow.state = kRemove;
        } else if (target_.mode == "insert") {
            p = Create(c);
        } else if (Digits(c.dest_id)) {
            // The kept id: the same record, even when its match value changed.
            p = Update(c, c.dest_id, kUpdateKept);
        } else if (MatchValue(c.payload).empty()) {
            immediate.emplace_back(
                i,
                RejectedRow(0, "the payload has no value for the MATCH ON field \"" + target_.match_on + "\"",
                            "NO_MATCH_VALUE"));
            continue;
        } else {
            p = Search(c);
        }
        p.rows = {i};
        out.push_back(std::move(p));
    }
    return out;
}

Verdict PipedriveConnector::Interpret(const PreparedRequest &request, const std::vector<Change> &changes,
                                      const HttpResponse &response) {
    Verdict v;
    rapidjson::Document doc;
    doc.Parse(response.body.c_str(), response.body.size());
    const bool json = !doc.HasParseError() && doc.IsObject();
    const long status = response.status;
    const std::string &state = request.flow.state;
    // Pipedrive's envelope: {"success": false, "error": "...", "error_info":
    // "...", "code"?: "..."}.
    std::string message = json ? JsonMember(doc, "error") : Truncate(response.body, 300);
    std::string code = json ? JsonMember(doc, "code") : std::string();
    if (code.empty() && json)
        code = JsonMember(doc, "errorCode");

    if (status == 429) {
        auto daily = response.Header("x-daily-requests-left");
        if (daily && *daily == "0") {
            // The company's daily budget stays spent until it resets.
            v.kind = Verdict::Kind::Fatal;
            v.error = "Pipedrive's daily API budget is spent (x-daily-requests-left 0)" +
                      (message.empty() ? std::string() : ": " + Truncate(message, 300));
            return v;
        }
        // The 2-second burst window: x-ratelimit-reset is the seconds left.
        v.kind = Verdict::Kind::Throttled;
        v.wait_ms = 2000;
        if (auto reset = response.Header("x-ratelimit-reset")) {
            try {
                v.wait_ms = std::clamp(std::stol(*reset) * 1000L, 100L, 60000L);
            } catch (const std::exception &) {
            }
        } else if (auto retry_after = response.Header("retry-after")) {
            if (auto seconds = ParseRetryAfterSeconds(*retry_after, std::time(nullptr)))
                v.wait_ms = std::max(1L, *seconds) * 1000L;
        }
        v.error =
            "Pipedrive rate limit: " + Truncate(message.empty() ? "429 Too Many Requests" : message, 300);
        return v;
    }
    if (auto transient = TransientFailure(response, "Pipedrive", message))
        return *transient;
    const bool names_a_record = state == kUpdateKept || state == kUpdateFound || state == kRemove;
    if (auto failure = ConnectionFailure(response, request.http.url, names_a_record)) {
        if (!message.empty())
            failure->error += " (Pipedrive: " + Truncate(message, 300) + ")";
        return *failure;
    }
    const size_t row = request.rows.empty() ? 0 : request.rows.front();
    const Change *change = row < changes.size() ? &changes[row] : nullptr;
    if (status == 404 || status == 410) { // of a URL naming a record
        if (state == kRemove) {
            v.rows.push_back(AcceptedRow(status, ""));
            return v;
        }
        if (state == kUpdateKept && change && !MatchValue(change->payload).empty()) {
            // The kept id was deleted: find the record again, or create it.
            v.kind = Verdict::Kind::Continue;
            v.next = target_.mode == "insert" ? Create(*change) : Search(*change);
            return v;
        }
    }
    const bool refused = status >= 400 || (json && doc.HasMember("success") && doc["success"].IsFalse());
    if (refused) {
        v.rows.push_back(RejectedRow(status, message.empty() ? "refused by Pipedrive" : message,
                                     code.empty() ? "HTTP_" + std::to_string(status) : code));
        return v;
    }
    if (state == kRemove) {
        v.rows.push_back(AcceptedRow(status, ""));
        return v;
    }
    if (!json || !doc.HasMember("data")) {
        v.kind = Verdict::Kind::Retry;
        v.error = "Pipedrive answered HTTP " + std::to_string(status) + " without data";
        return v;
    }
    const rapidjson::Value &data = doc["data"];
    if (state == kSearch && change) {
        std::string id;
        if (data.IsObject() && data.HasMember("items") && data["items"].IsArray())
            for (const auto &hit : data["items"].GetArray()) {
                if (!hit.IsObject() || !hit.HasMember("item"))
                    continue;
                std::string hid = JsonMember(hit["item"], "id");
                if (Digits(hid)) {
                    id = hid;
                    break;
                }
            }
        if (!id.empty()) {
            v.kind = Verdict::Kind::Continue;
            v.next = Update(*change, id, kUpdateFound);
            return v;
        }
        if (target_.mode == "update") {
            v.rows.push_back(
                RejectedRow(status,
                            "no Pipedrive " + target_.object.substr(0, target_.object.size() - 1) + " has " +
                                target_.match_on + " \"" + Truncate(MatchValue(change->payload), 200) + "\"",
                            "NOT_FOUND"));
            return v;
        }
        v.kind = Verdict::Kind::Continue;
        v.next = Create(*change);
        return v;
    }
    std::string id = JsonMember(data, "id");
    if (!Digits(id)) {
        v.rows.push_back(RejectedRow(status, "Pipedrive's answer named no record id", "NO_RESULT"));
        return v;
    }
    v.rows.push_back(AcceptedRow(status, id));
    return v;
}

const ConnectorSpec &PipedriveSpec() {
    static const ConnectorSpec spec = [] {
        ConnectorSpec s;
        s.type = "pipedrive";
        s.summary = "Pipedrive persons and organizations (API v2), matched by search, written by id.";
        s.server_options = CommonServerOptions();
        for (auto &o : s.server_options) {
            if (o.name == "url") {
                o.required = false;
                o.default_value = "https://api.pipedrive.com";
            } else if (o.name == "rate_limit") {
                // The lowest plan's burst limit for an API token: 20
                // requests per 2-second window.
                o.default_value = "20 per 2s";
            }
        }
        // The personal API token (api_key, sent in x-api-token), or OAuth
        // (a refresh token; or an access token given as token).
        s.auth = {AuthKind::ApiKeyHeader, AuthKind::OAuth, AuthKind::Bearer};
        s.default_object = "persons";
        ObjectSpec persons;
        persons.name = "persons";
        persons.modes = {"upsert", "update", "insert", "mirror"};
        persons.default_match_on = "email";
        persons.match_on_hint = "Pipedrive finds persons by email, phone, name or a custom field's key.";
        ObjectSpec organizations;
        organizations.name = "organizations";
        organizations.modes = persons.modes;
        organizations.default_match_on = "name";
        organizations.match_on_hint = "Pipedrive finds organizations by name or a custom field's key.";
        s.objects = {persons, organizations};
        s.max_batch_size = 100;
        s.returns_ids = true;
        s.updates_by_record_id = true; // a kept id is written by that id (a changed match value renames)
        s.idempotency_keys = false;
        s.example = "OPTIONS (type 'pipedrive')";
        s.check_target = [](const SyncTarget &target, const OptionList &, const std::string &sync_name,
                            const std::string &) {
            const std::string &m = target.match_on;
            if (m.empty() || PipedriveCustomFieldKey(m))
                return;
            const bool persons = target.object != "organizations";
            if (persons ? (m == "email" || m == "phone" || m == "name") : m == "name")
                return;
            throw Error(
                sqlstate::kInvalidParameterValue,
                "sync \"" + sync_name + "\" cannot match Pipedrive " + target.object + " on \"" + m + "\"",
                {},
                persons ? "Pipedrive searches persons by email, phone, name or a custom field's "
                          "40-character key."
                        : "Pipedrive searches organizations by name or a custom field's 40-character key.");
        };
        s.make = [](const DestinationSettings &settings,
                    const SyncTarget &target) -> std::unique_ptr<Connector> {
            return std::make_unique<PipedriveConnector>(settings, target);
        };
        return s;
    }();
    return spec;
}

} // namespace revetl
