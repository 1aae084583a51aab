#include "core/connectors/iterable/iterable.hpp"

#include "core/connectors/distinct_calls.hpp"
#include "core/connectors/json_text.hpp"

#include "core/common/encoding.hpp"
#include "core/common/error.hpp"

#include <rapidjson/document.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include <algorithm>
#include <map>
#include <set>

namespace revetl {

namespace {

using Writer = rapidjson::Writer<rapidjson::StringBuffer>;

// Numbers are kept as their text (jsonb's rendering is exact) and written
// back raw, so that 92.50 or a 20-digit id is not rounded through a double.
constexpr unsigned kExactNumbers = rapidjson::kParseNumbersAsStringsFlag;

// What each failedUpdates list means, for the rejected row's reason.
std::string FailureReason(const std::string &category) {
    static const std::map<std::string, std::string> reasons = {
        {"invalidEmails", "Iterable found the email address malformed"},
        {"invalidUserIds", "Iterable found the userId malformed"},
        {"notFoundEmails", "Iterable has no user with this email address"},
        {"notFoundUserIds", "Iterable has no user with this userId"},
        {"conflictEmails", "another Iterable user already has this email address"},
        {"conflictUserIds", "another Iterable user already has this userId"},
        {"forgottenEmails", "the Iterable user was forgotten (GDPR) and is not updated"},
        {"forgottenUserIds", "the Iterable user was forgotten (GDPR) and is not updated"},
        {"invalidDataEmails", "Iterable refused a value of dataFields (a field's type cannot change)"},
        {"invalidDataUserIds", "Iterable refused a value of dataFields (a field's type cannot change)"},
    };
    auto it = reasons.find(category);
    return it == reasons.end() ? "Iterable refused the user (" + category + ")" : it->second;
}

bool NotFound(const std::string &category) {
    return category == "notFoundEmails" || category == "notFoundUserIds";
}

// The identifiers failedUpdates names, with the list naming each: the
// documented lists, and the deprecated top-level invalidEmails and
// invalidUserIds that older answers carry.
std::map<std::string, std::string> FailedIdentifiers(const rapidjson::Document &doc) {
    std::map<std::string, std::string> out;
    auto add = [&](const rapidjson::Value &lists) {
        if (!lists.IsObject())
            return;
        for (auto m = lists.MemberBegin(); m != lists.MemberEnd(); ++m) {
            if (!m->value.IsArray())
                continue;
            std::string category(m->name.GetString(), m->name.GetStringLength());
            if (category.size() > 64)
                continue;
            for (const auto &id : m->value.GetArray())
                if (id.IsString())
                    out.emplace(std::string(id.GetString(), id.GetStringLength()), category);
        }
    };
    auto failed = doc.FindMember("failedUpdates");
    if (failed != doc.MemberEnd())
        add(failed->value);
    for (const char *name : {"invalidEmails", "invalidUserIds"}) {
        auto it = doc.FindMember(name);
        if (it != doc.MemberEnd() && it->value.IsArray())
            for (const auto &id : it->value.GetArray())
                if (id.IsString())
                    out.emplace(std::string(id.GetString(), id.GetStringLength()), name);
    }
    return out;
}

void CheckIterableTarget(const SyncTarget &target, const std::string &sync_name) {
    if (target.match_on != "email" && target.match_on != "userId")
        throw Error(sqlstate::kFeatureNotSupported,
                    "sync \"" + sync_name + "\" cannot match Iterable users on \"" + target.match_on + "\"",
                    "Iterable identifies a user by email or by userId.",
                    "Use MATCH ON email (the default) or MATCH ON \"userId\".");
}

} // namespace

IterableConnector::IterableConnector(DestinationSettings settings, SyncTarget target)
    : settings_(std::move(settings)), target_(std::move(target)) {
    if (target_.object.empty())
        target_.object = "users";
    if (target_.match_on.empty())
        target_.match_on = "email";
    // Iterable takes its key in this header only (not Authorization).
    settings_.credentials.api_key_header = "Api-Key";
    CheckIterableTarget(target_, "?");
}

HttpRequest IterableConnector::Request(const std::string &method, const std::string &path,
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
    if (!req.body.empty())
        req.headers.emplace_back("Content-Type", "application/json");
    for (const auto &h : settings_.headers)
        req.headers.push_back(h);
    ApplyAuth(settings_.credentials, req);
    return req;
}

std::string IterableConnector::Identifier(const std::string &payload) const {
    rapidjson::Document doc;
    doc.Parse<kExactNumbers>(payload.c_str(), payload.size());
    if (doc.HasParseError() || !doc.IsObject())
        return {};
    return JsonMember(doc, target_.match_on.c_str());
}

PreparedRequest IterableConnector::ListCall(const char *step, const std::vector<Change> &changes,
                                            const std::vector<size_t> &rows, bool old_identifiers) const {
    const bool subscribe = std::string(step) == kSubscribe;
    rapidjson::StringBuffer buf;
    Writer w(buf);
    w.StartObject();
    w.Key("listId");
    // CheckSyncTarget made sure the list id is a positive integer.
    w.RawValue(target_.audience.c_str(), target_.audience.size(), rapidjson::kNumberType);
    w.Key("subscribers");
    w.StartArray();
    PreparedRequest req;
    for (size_t i : rows) {
        w.StartObject();
        w.Key(target_.match_on.c_str());
        WriteJsonString(w, old_identifiers ? changes[i].dest_id : Identifier(changes[i].payload));
        // An email-based project makes a user for an unknown userId only
        // when asked to.
        if (subscribe && ByUserId()) {
            w.Key("preferUserId");
            w.Bool(true);
        }
        w.EndObject();
        req.rows.push_back(i);
    }
    w.EndArray();
    w.EndObject();
    req.http = Request("POST", subscribe ? "/api/lists/subscribe" : "/api/lists/unsubscribe",
                       std::string(buf.GetString(), buf.GetSize()));
    req.flow.step = step;
    return req;
}

std::vector<PreparedRequest>
IterableConnector::Prepare(const BatchContext &, const std::vector<Change> &changes,
                           const std::vector<size_t> &rows,
                           std::vector<std::pair<size_t, RowOutcome>> &immediate) {
    const bool audience = target_.mode == "audience";
    std::vector<PreparedRequest> out;
    // Writes (or subscriptions), in calls of at most kMaxUsers naming
    // distinct users (two entries for one user in a call would leave the
    // result to Iterable's order of applying them).
    DistinctValueCalls calls(kMaxUsers);
    std::vector<size_t> removals;
    std::vector<size_t> swaps;
    for (size_t i : rows) {
        const Change &c = changes[i];
        if (c.op == Change::Op::Remove) {
            if (c.dest_id.empty())
                immediate.emplace_back(i, UnresolvableRemoval("Iterable", "Iterable " + target_.match_on,
                                                              "removed", target_.match_on));
            else
                removals.push_back(i);
            continue;
        }
        std::string id = Identifier(c.payload);
        if (id.empty()) {
            immediate.emplace_back(
                i,
                RejectedRow(0, "the payload has no value for the MATCH ON field \"" + target_.match_on + "\"",
                            "NO_MATCH_VALUE"));
            continue;
        }
        // A member whose identifier changed leaves the list under its old
        // identifier before it joins under the new one.
        if (audience && c.op == Change::Op::Change && !c.dest_id.empty() && c.dest_id != id) {
            swaps.push_back(i);
            continue;
        }
        calls.Add(i, id);
    }

    if (audience) {
        for (const auto &call : calls.calls())
            out.push_back(ListCall(kSubscribe, changes, call, false));
        for (const std::vector<size_t> *list : {&removals, &swaps})
            for (size_t start = 0; start < list->size(); start += kMaxUsers) {
                std::vector<size_t> part(list->begin() + start,
                                         list->begin() + std::min(list->size(), start + kMaxUsers));
                out.push_back(ListCall(list == &removals ? kUnsubscribe : kSwap, changes, part, true));
            }
        return out;
    }

    for (const auto &call : calls.calls()) {
        rapidjson::StringBuffer buf;
        Writer w(buf);
        w.StartObject();
        w.Key("users");
        w.StartArray();
        PreparedRequest req;
        for (size_t i : call) {
            rapidjson::Document doc;
            const std::string &p = changes[i].payload;
            doc.Parse<kExactNumbers>(p.c_str(), p.size());
            rapidjson::Document typed;
            typed.Parse(p.c_str(), p.size());
            w.StartObject();
            w.Key(target_.match_on.c_str());
            WriteJsonString(w, JsonMember(doc, target_.match_on.c_str()));
            if (ByUserId()) {
                // A new userId makes a user (in email-based projects too).
                w.Key("preferUserId");
                w.Bool(true);
            }
            w.Key("dataFields");
            w.StartObject();
            for (auto m = doc.MemberBegin(); m != doc.MemberEnd(); ++m) {
                std::string name(m->name.GetString(), m->name.GetStringLength());
                if (name == target_.match_on)
                    continue;
                w.Key(name.c_str(), static_cast<rapidjson::SizeType>(name.size()));
                auto t = typed.FindMember(m->name);
                if (t != typed.MemberEnd() && t->value.IsNumber())
                    w.RawValue(m->value.GetString(), m->value.GetStringLength(), rapidjson::kNumberType);
                else
                    (t != typed.MemberEnd() ? t->value : m->value).Accept(w);
            }
            w.EndObject();
            w.EndObject();
            req.rows.push_back(i);
        }
        w.EndArray();
        w.EndObject();
        req.http = Request("POST", "/api/users/bulkUpdate", std::string(buf.GetString(), buf.GetSize()));
        req.flow.step = kUpdate;
        out.push_back(std::move(req));
    }
    // Iterable deletes one user per call.
    for (size_t i : removals) {
        PreparedRequest req;
        const std::string path = ByUserId() ? "/api/users/byUserId/" + UrlEncode(changes[i].dest_id)
                                            : "/api/users/" + UrlEncode(changes[i].dest_id);
        req.http = Request("DELETE", path, "");
        req.rows = {i};
        req.flow.step = kDelete;
        out.push_back(std::move(req));
    }
    return out;
}

Verdict IterableConnector::Interpret(const PreparedRequest &request, const std::vector<Change> &changes,
                                     const HttpResponse &response) {
    Verdict v;
    rapidjson::Document doc;
    doc.Parse(response.body.c_str(), response.body.size());
    const bool json = !doc.HasParseError() && doc.IsObject();
    const std::string code = json ? JsonMember(doc, "code") : std::string();
    std::string message = json ? JsonMember(doc, "msg") : Truncate(response.body, 300);
    if (!code.empty() && code != "Success")
        message = code + (message.empty() ? "" : ": " + message);
    const long status = response.status;
    const std::string &step = request.flow.step;

    if (status == 429 || code == "RateLimitExceeded") {
        // Iterable sends no rate-limit headers: its limits are per second.
        v.kind = Verdict::Kind::Throttled;
        v.wait_ms = 1000;
        v.error = "Iterable rate limit: " + Truncate(message.empty() ? "HTTP 429" : message, 300);
        return v;
    }
    if (auto transient = TransientFailure(response, "Iterable", message))
        return *transient;
    if (status == 401 || status == 403 || (status == 404 && step != kDelete)) {
        // 401: the API key is refused (BadApiKey); 403: the key's type
        // lacks the permission (a mobile or JavaScript key); 404: the url
        // is not Iterable's API. Every row would fail the same way.
        v.kind = status == 401 ? Verdict::Kind::AuthExpired : Verdict::Kind::Fatal;
        v.error = "Iterable refused the request (HTTP " + std::to_string(status) +
                  "): " + Truncate(message, 300) + (status == 403 ? " (use a server-side API key)" : "");
        return v;
    }
    if (step == kDelete) {
        // A user Iterable does not know is already where MIRROR wants it.
        const bool gone = status == 404 || code == "NotFound" || code == "UnknownEmailError" ||
                          code == "UnknownUserIdError";
        if ((status >= 200 && status < 300) || gone) {
            v.rows.assign(request.rows.size(), AcceptedRow(status));
            return v;
        }
        v.rows.assign(request.rows.size(),
                      RejectedRow(status, message.empty() ? "refused by Iterable" : message,
                                  code.empty() ? "HTTP_" + std::to_string(status) : code));
        return v;
    }
    if (status >= 400 || status < 200 || status >= 300) {
        if (status < 400) {
            v.kind = Verdict::Kind::Retry;
            v.error = "Iterable answered HTTP " + std::to_string(status);
            return v;
        }
        // The whole call was refused (BatchTooLarge, BadJsonBody,
        // BadParams, ...): halves find the row at fault; a lone row is
        // refused with Iterable's message.
        if (request.rows.size() > 1) {
            v.kind = Verdict::Kind::Split;
            return v;
        }
        v.rows.assign(request.rows.size(),
                      RejectedRow(status, message.empty() ? "refused by Iterable" : message,
                                  code.empty() ? "HTTP_" + std::to_string(status) : code));
        return v;
    }

    const bool removing = step == kUnsubscribe || step == kSwap;
    const std::map<std::string, std::string> failed =
        json ? FailedIdentifiers(doc) : std::map<std::string, std::string>();
    std::vector<RowOutcome> outcomes(request.rows.size());
    PreparedRequest next;
    for (size_t j = 0; j < outcomes.size(); j++) {
        const Change &c = changes[request.rows[j]];
        const std::string id = removing ? c.dest_id : Identifier(c.payload);
        auto f = failed.find(id);
        // Leaving a list one is not on (or that a deleted user left) is done.
        if (f != failed.end() && !(removing && NotFound(f->second))) {
            outcomes[j] = RejectedRow(status, FailureReason(f->second), f->second);
            continue;
        }
        // The identifier is kept as the record id: it is what a later
        // removal (or unsubscribe) names.
        outcomes[j] = AcceptedRow(status, removing ? std::string() : id);
        if (step == kSwap)
            next.rows.push_back(request.rows[j]);
    }
    if (step == kSwap && !next.rows.empty()) {
        v.kind = Verdict::Kind::Continue;
        v.rows = outcomes;
        v.next = ListCall(kSubscribe, changes, next.rows, false);
        return v;
    }
    v.rows = outcomes;
    return v;
}

const ConnectorSpec &IterableSpec() {
    static const ConnectorSpec spec = [] {
        ConnectorSpec s;
        s.type = "iterable";
        s.summary = "Iterable users through /api/users/bulkUpdate, deletes, and list membership (MODE "
                    "AUDIENCE).";
        s.server_options = CommonServerOptions();
        for (auto &o : s.server_options) {
            if (o.name == "url") {
                // The US data centre; EU projects use https://api.eu.iterable.com.
                o.required = false;
                o.default_value = "https://api.iterable.com";
            } else if (o.name == "rate_limit") {
                // bulkUpdate allows 5 requests per second per project.
                o.default_value = "5 per 1s";
            } else if (o.name == "batch_size") {
                o.default_value = "1000";
            }
        }
        s.auth = {AuthKind::ApiKeyHeader}; // a server-side API key, in Api-Key
        s.default_object = "users";
        ObjectSpec users;
        users.name = "users";
        // No insert or update: bulkUpdate cannot refuse to make or to touch a user.
        users.modes = {"upsert", "mirror", "audience"};
        users.default_match_on = "email";
        s.objects = {users};
        s.max_batch_size = static_cast<int>(IterableConnector::kMaxUsers);
        s.returns_ids = true;
        s.idempotency_keys = false;
        s.audience.supported = true;
        s.audience.names = "Iterable list id";
        s.audience.numeric = true;
        s.example = "OPTIONS (type 'iterable')";
        s.check_target = [](const SyncTarget &target, const OptionList &, const std::string &sync_name,
                            const std::string &) { CheckIterableTarget(target, sync_name); };
        s.make = [](const DestinationSettings &settings,
                    const SyncTarget &target) -> std::unique_ptr<Connector> {
            return std::make_unique<IterableConnector>(settings, target);
        };
        return s;
    }();
    return spec;
}

} // namespace revetl
