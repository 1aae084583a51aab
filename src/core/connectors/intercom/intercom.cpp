#include "core/connectors/intercom/intercom.hpp"

#include "core/connectors/json_text.hpp"

#include "core/common/error.hpp"
#include "core/connectors/hubspot/hubspot.hpp"
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

// The call a request is (FlowStep::state; the step stays empty, since
// these are no job polls).
constexpr const char *kSearch = "search";
constexpr const char *kCreate = "create";
constexpr const char *kUpdateKept = "update_kept";   // PUT by the shadow state's id
constexpr const char *kUpdateFound = "update_found"; // PUT by an id Intercom just named
constexpr const char *kRemove = "remove";

// Intercom's standard attributes (create_contact_request and
// create_or_update_company_request in its OpenAPI contract); every other
// column is a custom attribute.
const std::set<std::string> kContactFields = {
    "role",         "external_id",  "email",    "email_verified",          "phone", "name", "avatar",
    "signed_up_at", "last_seen_at", "owner_id", "unsubscribed_from_emails"};
const std::set<std::string> kCompanyFields = {"name",          "company_id",        "plan",
                                              "size",          "website",           "industry",
                                              "monthly_spend", "remote_created_at", "update_last_request_at"};
// Unix-seconds attributes: a date or timestamp column is converted.
const std::set<std::string> kTimestamps = {"signed_up_at", "last_seen_at", "remote_created_at"};
// Identifiers Intercom does not take as null (not nullable in its contract).
const std::set<std::string> kNotNull = {"role", "external_id", "email", "company_id", "name"};

using Writer = rapidjson::Writer<rapidjson::StringBuffer>;

// Intercom's error list: {"type": "error.list", "request_id": ...,
// "errors": [{"code", "message", "field"?}]}. The first code is the row's
// code; the messages (with their fields) are its reason.
void ErrorList(const rapidjson::Value &doc, std::string &code, std::string &message) {
    if (!doc.IsObject() || !doc.HasMember("errors") || !doc["errors"].IsArray())
        return;
    for (const auto &e : doc["errors"].GetArray()) {
        std::string c = JsonMember(e, "code"), m = JsonMember(e, "message"), f = JsonMember(e, "field");
        if (code.empty())
            code = c;
        std::string text = m.empty() ? c : m;
        if (!f.empty())
            text = f + ": " + text;
        if (!text.empty())
            message += (message.empty() ? "" : "; ") + text;
    }
    std::string request_id = JsonMember(doc, "request_id");
    if (!message.empty() && !request_id.empty())
        message += " [request_id " + request_id + "]";
}

// The id in a 409's message: "A contact matching those details already
// exists with id=5da6...".
std::string ConflictId(const std::string &message) {
    size_t at = message.find("id=");
    if (at == std::string::npos)
        return {};
    std::string id;
    for (size_t i = at + 3; i < message.size() && std::isalnum(static_cast<unsigned char>(message[i])); i++)
        id += message[i];
    return IntercomValidId(id) ? id : std::string();
}

} // namespace

bool IntercomValidId(const std::string &id) {
    return !id.empty() && id.size() <= 64 && std::all_of(id.begin(), id.end(), [](unsigned char c) {
        return std::isalnum(c) || c == '_' || c == '-';
    });
}

IntercomConnector::IntercomConnector(DestinationSettings settings, SyncTarget target)
    : settings_(std::move(settings)), target_(std::move(target)) {
    if (target_.object.empty())
        target_.object = "contacts";
    if (target_.match_on.empty())
        target_.match_on = Companies() ? "company_id" : "email";
    version_ = settings_.Option("intercom_version");
    if (version_.empty())
        version_ = "2.16";
    role_ = settings_.Option("contact_role");
    if (role_.empty())
        role_ = "user";
    delete_contacts_ = settings_.Option("contact_removal") == "delete";
}

std::string IntercomConnector::Base() const {
    std::string base = settings_.url;
    while (!base.empty() && base.back() == '/')
        base.pop_back();
    return base;
}

HttpRequest IntercomConnector::Request(const std::string &method, const std::string &path,
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
    // Intercom answers in the shapes of the version asked for; without the
    // header it uses the app's default version, which its owner may change.
    req.headers.emplace_back("Intercom-Version", version_);
    for (const auto &h : settings_.headers)
        req.headers.push_back(h);
    ApplyAuth(settings_.credentials, req);
    return req;
}

std::string IntercomConnector::MatchValue(const std::string &payload) const {
    rapidjson::Document doc;
    doc.Parse<rapidjson::kParseNumbersAsStringsFlag>(payload.c_str(), payload.size());
    if (doc.HasParseError() || !doc.IsObject())
        return {};
    return JsonMember(doc, target_.match_on.c_str());
}

std::string IntercomConnector::Body(const std::string &payload, bool create) const {
    rapidjson::Document doc;
    // Full precision: a numeric column keeps its value (Intercom's numbers
    // are doubles or integers; no exact decimal text is needed).
    doc.Parse<rapidjson::kParseFullPrecisionFlag>(payload.c_str(), payload.size());
    rapidjson::StringBuffer buf;
    Writer w(buf);
    w.StartObject();
    const std::set<std::string> &standard = Companies() ? kCompanyFields : kContactFields;
    std::vector<std::pair<std::string, const rapidjson::Value *>> custom;
    bool has_role = false;
    if (doc.IsObject()) {
        for (auto it = doc.MemberBegin(); it != doc.MemberEnd(); ++it) {
            std::string name(it->name.GetString(), it->name.GetStringLength());
            const rapidjson::Value &v = it->value;
            if (name == "custom_attributes" && v.IsObject()) {
                for (auto c = v.MemberBegin(); c != v.MemberEnd(); ++c)
                    custom.emplace_back(std::string(c->name.GetString(), c->name.GetStringLength()),
                                        &c->value);
                continue;
            }
            if (!standard.count(name)) {
                custom.emplace_back(name, &v);
                continue;
            }
            if (v.IsNull() && kNotNull.count(name))
                continue;
            // A company's company_id cannot change after creation, and an
            // update by id does not take it (update_company_request).
            if (Companies() && name == "company_id" && !create)
                continue;
            if (name == "role")
                has_role = true;
            w.Key(name.c_str(), static_cast<rapidjson::SizeType>(name.size()));
            if (kTimestamps.count(name) && v.IsString()) {
                auto ms = HubSpotEpochMillis(JsonText(v));
                if (ms) {
                    w.Int64(*ms / 1000);
                    continue;
                }
            }
            // Ids Intercom documents as strings (external_id, owner_id):
            // a numeric column is sent as its text.
            if ((name == "external_id" || name == "owner_id" || name == "company_id") && v.IsNumber()) {
                std::string t = JsonText(v);
                w.String(t.c_str(), static_cast<rapidjson::SizeType>(t.size()));
                continue;
            }
            v.Accept(w);
        }
    }
    if (create && !Companies() && !has_role) {
        w.Key("role");
        w.String(role_.c_str(), static_cast<rapidjson::SizeType>(role_.size()));
    }
    if (!custom.empty()) {
        w.Key("custom_attributes");
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

PreparedRequest IntercomConnector::Search(const Change &change) const {
    rapidjson::StringBuffer buf;
    Writer w(buf);
    std::string value = MatchValue(change.payload);
    w.StartObject();
    w.Key("query");
    w.StartObject();
    w.Key("field");
    w.String(target_.match_on.c_str(), static_cast<rapidjson::SizeType>(target_.match_on.size()));
    w.Key("operator");
    w.String("=");
    w.Key("value");
    w.String(value.c_str(), static_cast<rapidjson::SizeType>(value.size()));
    w.EndObject();
    w.EndObject();
    PreparedRequest p;
    p.http = Request("POST", "/contacts/search", std::string(buf.GetString(), buf.GetSize()));
    p.flow.state = kSearch;
    return p;
}

PreparedRequest IntercomConnector::Create(const Change &change) const {
    PreparedRequest p;
    p.http = Request("POST", Companies() ? "/companies" : "/contacts", Body(change.payload, true));
    p.flow.state = kCreate;
    return p;
}

PreparedRequest IntercomConnector::Update(const Change &change, const std::string &id,
                                          const char *state) const {
    PreparedRequest p;
    p.http = Request("PUT", (Companies() ? "/companies/" : "/contacts/") + id, Body(change.payload, false));
    p.flow.state = state;
    return p;
}

std::vector<PreparedRequest>
IntercomConnector::Prepare(const BatchContext &, const std::vector<Change> &changes,
                           const std::vector<size_t> &rows,
                           std::vector<std::pair<size_t, RowOutcome>> &immediate) {
    std::vector<PreparedRequest> out;
    const std::string &mode = target_.mode;
    for (size_t i : rows) {
        const Change &c = changes[i];
        PreparedRequest p;
        if (c.op == Change::Op::Remove) {
            if (c.dest_id.empty()) {
                immediate.emplace_back(
                    i, UnresolvableRemoval("Intercom", "Intercom record id", "removed", target_.match_on));
                continue;
            }
            if (!IntercomValidId(c.dest_id)) {
                immediate.emplace_back(
                    i, UnusableRecordIdRemoval("Intercom",
                                               "the Intercom record id kept for this row is not one Intercom "
                                               "gives, so the record cannot be removed",
                                               target_.match_on));
                continue;
            }
            if (Companies())
                p.http = Request("DELETE", "/companies/" + c.dest_id, "");
            else if (delete_contacts_)
                p.http = Request("DELETE", "/contacts/" + c.dest_id, "");
            else
                p.http = Request("POST", "/contacts/" + c.dest_id + "/archive", "");
            p.flow.state = kRemove;
        } else if (mode == "insert") {
            p = Create(c);
        } else if (IntercomValidId(c.dest_id)) {
            // The kept id: the record is updated even when its match value
            // changed (a new email is written onto the same contact).
            p = Update(c, c.dest_id, kUpdateKept);
        } else if (MatchValue(c.payload).empty()) {
            immediate.emplace_back(
                i,
                RejectedRow(0, "the payload has no value for the MATCH ON field \"" + target_.match_on + "\"",
                            "NO_MATCH_VALUE"));
            continue;
        } else if (Companies()) {
            // POST /companies is Intercom's own upsert by company_id.
            p = Create(c);
        } else {
            p = Search(c);
        }
        p.rows = {i};
        out.push_back(std::move(p));
    }
    return out;
}

Verdict IntercomConnector::Interpret(const PreparedRequest &request, const std::vector<Change> &changes,
                                     const HttpResponse &response) {
    Verdict v;
    rapidjson::Document doc;
    doc.Parse(response.body.c_str(), response.body.size());
    const bool json = !doc.HasParseError() && doc.IsObject();
    const long status = response.status;
    const std::string &state = request.flow.state;
    std::string code, message;
    if (json)
        ErrorList(doc, code, message);
    if (message.empty() && !json)
        message = Truncate(response.body, 300);

    if (status == 429) {
        // Intercom counts in 10-second windows; X-RateLimit-Reset is the
        // unix second the window resets at.
        v.kind = Verdict::Kind::Throttled;
        v.wait_ms = 10000;
        if (auto reset = response.Header("x-ratelimit-reset")) {
            try {
                long at = std::stol(*reset);
                long now = static_cast<long>(std::time(nullptr));
                v.wait_ms = std::clamp((at - now) * 1000L, 500L, 60000L);
            } catch (const std::exception &) {
            }
        } else if (auto retry_after = response.Header("retry-after")) {
            if (auto seconds = ParseRetryAfterSeconds(*retry_after, std::time(nullptr)))
                v.wait_ms = std::max(1L, *seconds) * 1000L;
        }
        v.error =
            "Intercom rate limit: " + Truncate(message.empty() ? "429 Too Many Requests" : message, 300);
        return v;
    }
    if (auto transient = TransientFailure(response, "Intercom", message))
        return *transient;
    const bool names_a_record = state == kUpdateKept || state == kUpdateFound || state == kRemove;
    if (auto failure = ConnectionFailure(response, request.http.url, names_a_record)) {
        if (!message.empty())
            failure->error += " (Intercom: " + Truncate(message, 300) + ")";
        return *failure;
    }
    const size_t row = request.rows.empty() ? 0 : request.rows.front();
    const Change *change = row < changes.size() ? &changes[row] : nullptr;
    if (status == 404) { // of a URL naming a record
        if (state == kRemove) {
            // Already deleted (or merged away): nothing is left to remove.
            v.rows.push_back(AcceptedRow(status, ""));
            return v;
        }
        if (state == kUpdateKept && change) {
            // The kept id is gone: find the record again by its match value
            // (contacts), or let Intercom match it on company_id.
            if (MatchValue(change->payload).empty()) {
                v.rows.push_back(RejectedRow(status, "Intercom no longer knows record " + change->dest_id,
                                             code.empty() ? "not_found" : code));
                return v;
            }
            v.kind = Verdict::Kind::Continue;
            v.next = Companies() ? Create(*change) : Search(*change);
            return v;
        }
    }
    if (status >= 400) {
        if (status == 409 && state == kCreate && !Companies() && change) {
            // The search did not see the contact yet (Intercom's search is
            // eventually consistent): update the one Intercom names.
            std::string id = ConflictId(message);
            if (!id.empty()) {
                v.kind = Verdict::Kind::Continue;
                v.next = Update(*change, id, kUpdateFound);
                return v;
            }
        }
        v.rows.push_back(RejectedRow(status, message.empty() ? "refused by Intercom" : message,
                                     code.empty() ? "HTTP_" + std::to_string(status) : code));
        return v;
    }
    if (state == kRemove) {
        v.rows.push_back(AcceptedRow(status, ""));
        return v;
    }
    if (!json) {
        v.kind = Verdict::Kind::Retry;
        v.error = "Intercom answered HTTP " + std::to_string(status) + " without a JSON object";
        return v;
    }
    if (state == kSearch && change) {
        // The first hit of the role the row writes (a lead and a user may
        // share an email), else the first hit.
        std::string want = role_;
        rapidjson::Document payload;
        payload.Parse(change->payload.c_str(), change->payload.size());
        if (payload.IsObject() && !JsonMember(payload, "role").empty())
            want = JsonMember(payload, "role");
        std::string id, any;
        if (doc.HasMember("data") && doc["data"].IsArray())
            for (const auto &c : doc["data"].GetArray()) {
                std::string cid = JsonMember(c, "id");
                if (!IntercomValidId(cid))
                    continue;
                if (any.empty())
                    any = cid;
                if (id.empty() && JsonMember(c, "role") == want)
                    id = cid;
            }
        if (id.empty())
            id = any;
        if (!id.empty()) {
            v.kind = Verdict::Kind::Continue;
            v.next = Update(*change, id, kUpdateFound);
            return v;
        }
        if (target_.mode == "update") {
            v.rows.push_back(RejectedRow(status,
                                         "no Intercom contact has " + target_.match_on + " \"" +
                                             Truncate(MatchValue(change->payload), 200) + "\"",
                                         "NOT_FOUND"));
            return v;
        }
        v.kind = Verdict::Kind::Continue;
        v.next = Create(*change);
        return v;
    }
    std::string id = JsonMember(doc, "id");
    if (id.empty()) {
        v.rows.push_back(RejectedRow(status, "Intercom's answer named no record id", "NO_RESULT"));
        return v;
    }
    v.rows.push_back(AcceptedRow(status, id));
    return v;
}

const ConnectorSpec &IntercomSpec() {
    static const ConnectorSpec spec = [] {
        ConnectorSpec s;
        s.type = "intercom";
        s.summary = "Intercom contacts (users and leads) and companies, matched by search, written by id.";
        s.server_options = CommonServerOptions();
        for (auto &o : s.server_options) {
            if (o.name == "url") {
                o.required = false;
                o.default_value = "https://api.intercom.io";
            } else if (o.name == "rate_limit") {
                // Intercom's documented 1,000 calls a minute, counted in
                // 10-second windows (167 per 10 s).
                o.default_value = "166 per 10s";
            }
        }
        OptionSpec version;
        version.name = "intercom_version";
        version.kind = OptionKind::Choice;
        version.default_value = "2.16";
        version.choices = {"2.7", "2.8", "2.9", "2.10", "2.11", "2.12", "2.13", "2.14", "2.15", "2.16"};
        version.description = "The Intercom-Version header sent with every call.";
        OptionSpec role;
        role.name = "contact_role";
        role.kind = OptionKind::Choice;
        role.default_value = "user";
        role.choices = {"user", "lead"};
        role.description = "The role of contacts created without a role column.";
        OptionSpec removal;
        removal.name = "contact_removal";
        removal.kind = OptionKind::Choice;
        removal.default_value = "archive";
        removal.choices = {"archive", "delete"};
        removal.description = "How MODE MIRROR removes a contact: archive it, or delete it.";
        s.server_options.push_back(version);
        s.server_options.push_back(role);
        s.server_options.push_back(removal);
        // An access token (of the workspace's app, or from Intercom's OAuth
        // flow: those do not expire).
        s.auth = {AuthKind::Bearer};
        s.default_object = "contacts";
        ObjectSpec contacts;
        contacts.name = "contacts";
        contacts.modes = {"upsert", "update", "insert", "mirror"};
        contacts.default_match_on = "email";
        contacts.match_on_hint = "Intercom contacts are found by email or external_id.";
        ObjectSpec companies;
        companies.name = "companies";
        companies.modes = {"upsert", "mirror"};
        companies.default_match_on = "company_id";
        companies.match_on_hint = "Intercom matches companies on company_id.";
        s.objects = {contacts, companies};
        s.max_batch_size = 100;
        s.returns_ids = true;
        s.updates_by_record_id = true; // a kept id is written by that id (a changed match value renames)
        s.idempotency_keys = false;
        s.example = "OPTIONS (type 'intercom')";
        s.check_target = [](const SyncTarget &target, const OptionList &, const std::string &sync_name,
                            const std::string &) {
            if (target.object == "companies" && !target.match_on.empty() && target.match_on != "company_id")
                throw Error(sqlstate::kInvalidParameterValue,
                            "sync \"" + sync_name + "\" cannot match Intercom companies on \"" +
                                target.match_on + "\"",
                            {}, "Intercom matches companies on company_id: MATCH ON company_id.");
            if (target.object != "companies" && !target.match_on.empty() && target.match_on != "email" &&
                target.match_on != "external_id")
                throw Error(
                    sqlstate::kInvalidParameterValue,
                    "sync \"" + sync_name + "\" cannot match Intercom contacts on \"" + target.match_on +
                        "\"",
                    {},
                    "Intercom contacts are searched by email or external_id: MATCH ON email or MATCH ON "
                    "external_id.");
        };
        s.make = [](const DestinationSettings &settings,
                    const SyncTarget &target) -> std::unique_ptr<Connector> {
            return std::make_unique<IntercomConnector>(settings, target);
        };
        return s;
    }();
    return spec;
}

} // namespace revetl
