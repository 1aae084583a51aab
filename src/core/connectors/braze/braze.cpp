#include "core/connectors/braze/braze.hpp"

#include "core/connectors/distinct_calls.hpp"
#include "core/connectors/json_text.hpp"

#include "core/common/error.hpp"
#include "core/connectors/hubspot/hubspot.hpp"
#include "core/delivery/retry_policy.hpp"

#include <rapidjson/document.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include <algorithm>
#include <cstdio>
#include <map>
#include <set>

namespace revetl {

namespace {

using Writer = rapidjson::Writer<rapidjson::StringBuffer>;

// Numbers are kept as their text (jsonb's rendering is exact) and written
// back raw, so that 92.50 or a 20-digit id is not rounded through a double.
constexpr unsigned kExactNumbers = rapidjson::kParseNumbersAsStringsFlag;

// A payload value as Braze takes it: strings that are date-times in ISO
// 8601 (UTC), numbers exact, objects and arrays (nested and array custom
// attributes) as they are, with their strings formatted the same way.
void WriteValue(Writer &w, const rapidjson::Value &v) {
    if (v.IsString()) {
        WriteJsonString(w, BrazeTime(std::string(v.GetString(), v.GetStringLength())));
    } else if (v.IsObject()) {
        w.StartObject();
        for (const auto &m : v.GetObject()) {
            w.Key(m.name.GetString(), m.name.GetStringLength());
            WriteValue(w, m.value);
        }
        w.EndObject();
    } else if (v.IsArray()) {
        w.StartArray();
        for (const auto &x : v.GetArray())
            WriteValue(w, x);
        w.EndArray();
    } else {
        v.Accept(w);
    }
}

bool Deletes(const PreparedRequest &request) {
    const std::string &url = request.http.url;
    static const std::string tail = "/users/delete";
    return url.size() >= tail.size() && url.compare(url.size() - tail.size(), tail.size(), tail) == 0;
}

// Civil date of a day count since 1970-01-01 (Howard Hinnant's
// civil_from_days), so that no time zone database is involved.
void CivilFromDays(int64_t z, int64_t &y, unsigned &m, unsigned &d) {
    z += 719468;
    const int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    const unsigned doe = static_cast<unsigned>(z - era * 146097);
    const unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    y = static_cast<int64_t>(yoe) + era * 400;
    const unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    const unsigned mp = (5 * doy + 2) / 153;
    d = doy - (153 * mp + 2) / 5 + 1;
    m = mp < 10 ? mp + 3 : mp - 9;
    y += m <= 2;
}

const std::set<std::string> &Identifiers() {
    static const std::set<std::string> ids = {"external_id", "braze_id", "email"};
    return ids;
}

void CheckBrazeTarget(const SyncTarget &target, const std::string &sync_name) {
    const std::string who = "sync \"" + sync_name + "\"";
    if (!Identifiers().count(target.match_on))
        throw Error(sqlstate::kFeatureNotSupported,
                    who + " cannot match Braze users on \"" + target.match_on + "\"",
                    "Braze identifies a user in /users/track by external_id, braze_id or email.",
                    "Use MATCH ON external_id (the default), braze_id or email.");
    if (target.mode == "mirror" && target.match_on == "email")
        throw Error(sqlstate::kFeatureNotSupported, who + " cannot mirror Braze users matched on email",
                    "Braze deletes users by external_id or braze_id; deleting by email needs a "
                    "prioritization revetl does not choose for you.",
                    "Use MATCH ON external_id or braze_id, or MODE UPSERT.");
}

} // namespace

std::string BrazeTime(const std::string &text) {
    bool date_only = false;
    // Only what looks like a date is parsed: most text is not.
    if (text.size() < 10 || text.size() > 40 || text[4] != '-')
        return text;
    auto ms = HubSpotEpochMillis(text, &date_only);
    if (!ms || date_only)
        return text;
    int64_t total = *ms;
    int64_t days = total >= 0 ? total / 86400000 : -((-total + 86399999) / 86400000);
    int64_t rest = total - days * 86400000;
    int64_t y;
    unsigned m, d;
    CivilFromDays(days, y, m, d);
    char buf[64];
    std::snprintf(buf, sizeof buf, "%04lld-%02u-%02uT%02lld:%02lld:%02lld.%03lldZ", static_cast<long long>(y),
                  m, d, static_cast<long long>(rest / 3600000), static_cast<long long>(rest / 60000 % 60),
                  static_cast<long long>(rest / 1000 % 60), static_cast<long long>(rest % 1000));
    return buf;
}

long BrazeThrottleWaitMs(const HttpResponse &response, std::time_t now) {
    long wait_ms = 1000;
    if (auto reset = response.Header("x-ratelimit-reset")) {
        try {
            long long at = std::stoll(*reset);
            // Reset is the unix time the window rolls over; a small value is
            // read as seconds to wait, as some Braze endpoints send.
            long long seconds = at > 1000000000LL ? at - static_cast<long long>(now) : at;
            wait_ms = static_cast<long>(std::max(0LL, seconds) * 1000 + 100);
        } catch (const std::exception &) {
        }
    } else if (auto retry_after = response.Header("retry-after")) {
        if (auto seconds = ParseRetryAfterSeconds(*retry_after, now))
            wait_ms = *seconds * 1000L;
    }
    // Braze's windows are seconds to a minute long: a Reset beyond an hour
    // is not believed.
    return std::clamp(wait_ms, 100L, 3600000L);
}

BrazeConnector::BrazeConnector(DestinationSettings settings, SyncTarget target)
    : settings_(std::move(settings)), target_(std::move(target)) {
    if (target_.object.empty())
        target_.object = "users";
    if (target_.match_on.empty())
        target_.match_on = "external_id";
    CheckBrazeTarget(target_, "?");
}

HttpRequest BrazeConnector::Request(const char *path, std::string body) const {
    std::string base = settings_.url;
    while (!base.empty() && base.back() == '/')
        base.pop_back();
    HttpRequest req;
    req.method = "POST";
    req.url = base + path;
    req.timeout_ms = settings_.timeout_ms;
    req.connect_timeout_ms = settings_.connect_timeout_ms;
    req.body = std::move(body);
    req.headers.emplace_back("Content-Type", "application/json");
    for (const auto &h : settings_.headers)
        req.headers.push_back(h);
    ApplyAuth(settings_.credentials, req);
    return req;
}

std::string BrazeConnector::Identifier(const std::string &payload) const {
    rapidjson::Document doc;
    doc.Parse<kExactNumbers>(payload.c_str(), payload.size());
    if (doc.HasParseError() || !doc.IsObject())
        return {};
    return JsonMember(doc, target_.match_on.c_str());
}

std::vector<PreparedRequest> BrazeConnector::Prepare(const BatchContext &, const std::vector<Change> &changes,
                                                     const std::vector<size_t> &rows,
                                                     std::vector<std::pair<size_t, RowOutcome>> &immediate) {
    std::vector<PreparedRequest> out;
    // Writes, in calls of at most 75 objects naming distinct users (two
    // objects for one user in a call would leave the result to Braze's
    // order of applying them).
    DistinctValueCalls calls(kMaxAttributes);
    std::vector<size_t> removals;
    for (size_t i : rows) {
        const Change &c = changes[i];
        if (c.op == Change::Op::Remove) {
            if (c.dest_id.empty())
                immediate.emplace_back(i, UnresolvableRemoval("Braze", "Braze " + target_.match_on, "deleted",
                                                              target_.match_on));
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
        calls.Add(i, id);
    }

    const bool update_only = target_.mode == "update";
    for (const auto &call : calls.calls()) {
        rapidjson::StringBuffer buf;
        Writer w(buf);
        w.StartObject();
        w.Key("attributes");
        w.StartArray();
        PreparedRequest req;
        for (size_t i : call) {
            // Parsed twice: once with numbers as their exact text (to write
            // them back raw) and once typed (to tell numbers from strings,
            // which kParseNumbersAsStrings alone cannot).
            rapidjson::Document doc;
            const std::string &p = changes[i].payload;
            doc.Parse<kExactNumbers>(p.c_str(), p.size());
            rapidjson::Document typed;
            typed.Parse(p.c_str(), p.size());
            w.StartObject();
            // The identifier first, as text (Braze ids are strings).
            w.Key(target_.match_on.c_str());
            WriteJsonString(w, JsonMember(doc, target_.match_on.c_str()));
            for (auto m = doc.MemberBegin(); m != doc.MemberEnd(); ++m) {
                std::string name(m->name.GetString(), m->name.GetStringLength());
                if (name == target_.match_on || name == "_update_existing_only")
                    continue;
                w.Key(name.c_str(), static_cast<rapidjson::SizeType>(name.size()));
                auto t = typed.FindMember(m->name);
                if (t != typed.MemberEnd() && t->value.IsNumber())
                    w.RawValue(m->value.GetString(), m->value.GetStringLength(), rapidjson::kNumberType);
                else
                    WriteValue(w, t != typed.MemberEnd() ? t->value : m->value);
            }
            // Explicit both ways: Braze's default differs by identifier
            // (alias-only profiles are not created unless it is false).
            w.Key("_update_existing_only");
            w.Bool(update_only);
            w.EndObject();
            req.rows.push_back(i);
        }
        w.EndArray();
        w.EndObject();
        req.http = Request("/users/track", std::string(buf.GetString(), buf.GetSize()));
        out.push_back(std::move(req));
    }

    // One identifier kind per call, as Braze requires.
    const char *kind = target_.match_on == "braze_id" ? "braze_ids" : "external_ids";
    for (size_t start = 0; start < removals.size(); start += kMaxDeletes) {
        rapidjson::StringBuffer buf;
        Writer w(buf);
        w.StartObject();
        w.Key(kind);
        w.StartArray();
        PreparedRequest req;
        for (size_t j = start; j < removals.size() && j < start + kMaxDeletes; j++) {
            WriteJsonString(w, changes[removals[j]].dest_id);
            req.rows.push_back(removals[j]);
        }
        w.EndArray();
        w.EndObject();
        req.http = Request("/users/delete", std::string(buf.GetString(), buf.GetSize()));
        out.push_back(std::move(req));
    }
    return out;
}

namespace {

// Braze's error entries: {"type": "<what is wrong>", "input_array":
// "attributes", "index": n}, or a bare string.
std::string ErrorType(const rapidjson::Value &e) {
    if (e.IsString())
        return JsonText(e);
    std::string type = JsonMember(e, "type");
    return type.empty() ? JsonText(e) : type;
}

std::string ErrorsText(const rapidjson::Document &doc) {
    std::string out = JsonMember(doc, "message");
    auto it = doc.FindMember("errors");
    if (it != doc.MemberEnd() && it->value.IsArray()) {
        std::string details;
        for (const auto &e : it->value.GetArray())
            details += (details.empty() ? "" : "; ") + ErrorType(e);
        if (!details.empty())
            out += (out.empty() ? "" : ": ") + details;
    }
    return out;
}

} // namespace

Verdict BrazeConnector::Interpret(const PreparedRequest &request, const std::vector<Change> &changes,
                                  const HttpResponse &response) {
    Verdict v;
    rapidjson::Document doc;
    doc.Parse(response.body.c_str(), response.body.size());
    const bool json = !doc.HasParseError() && doc.IsObject();
    const std::string message = json ? ErrorsText(doc) : Truncate(response.body, 300);
    const long status = response.status;

    if (status == 429) {
        v.kind = Verdict::Kind::Throttled;
        v.wait_ms = BrazeThrottleWaitMs(response, std::time(nullptr));
        v.error = "Braze rate limit: " + Truncate(message.empty() ? "HTTP 429" : message, 300);
        return v;
    }
    if (auto transient = TransientFailure(response, "Braze", message))
        return *transient;
    if (status == 401 || status == 403 || status == 404) {
        // 401: the REST key is invalid; 403: it lacks the permission the
        // endpoint needs (users.track, users.delete); 404: the url is not a
        // Braze REST endpoint. Every row would fail the same way.
        v.kind = status == 401 ? Verdict::Kind::AuthExpired : Verdict::Kind::Fatal;
        v.error = "Braze refused the request to " +
                  std::string(Deletes(request) ? "/users/delete" : "/users/track") + " (HTTP " +
                  std::to_string(status) + "): " + Truncate(message, 300) +
                  (status == 403 ? " (check that the REST API key has the users.track and users.delete "
                                   "permissions)"
                                 : "");
        return v;
    }
    const bool fatal_message = json && doc.HasMember("message") && JsonMember(doc, "message") != "success";
    if (status >= 400 || (status >= 200 && status < 300 && fatal_message)) {
        // A malformed request: Braze applied none of it. Halves find the
        // row at fault; a lone row is refused with Braze's message.
        if (request.rows.size() > 1) {
            v.kind = Verdict::Kind::Split;
            return v;
        }
        v.rows.assign(request.rows.size(), RejectedRow(status, message.empty() ? "refused by Braze" : message,
                                                       "HTTP_" + std::to_string(status)));
        return v;
    }
    if (status < 200 || status >= 300) {
        v.kind = Verdict::Kind::Retry;
        v.error = "Braze answered HTTP " + std::to_string(status);
        return v;
    }

    std::vector<RowOutcome> outcomes(request.rows.size());
    for (size_t j = 0; j < outcomes.size(); j++) {
        outcomes[j].accepted = true;
        outcomes[j].http_status = status;
        if (Deletes(request))
            continue;
        // The identifier is kept as the record id: it is what a later
        // removal deletes by.
        outcomes[j].dest_id = Truncate(Identifier(changes[request.rows[j]].payload), 200);
    }
    // Braze documents that items errors[] does not name still apply: an
    // entry without an index of ours refuses no row.
    if (!Deletes(request) && json && doc.HasMember("errors") && doc["errors"].IsArray()) {
        for (const auto &e : doc["errors"].GetArray()) {
            std::string array = JsonMember(e, "input_array");
            auto index = e.IsObject() ? e.FindMember("index") : doc.MemberEnd();
            if ((array.empty() || array == "attributes") && e.IsObject() && index != e.MemberEnd() &&
                index->value.IsUint() && index->value.GetUint() < outcomes.size()) {
                outcomes[index->value.GetUint()] = RejectedRow(status, ErrorType(e), "BRAZE_ERROR");
            }
        }
    }
    v.rows = outcomes;
    return v;
}

const ConnectorSpec &BrazeSpec() {
    static const ConnectorSpec spec = [] {
        ConnectorSpec s;
        s.type = "braze";
        s.summary = "Braze user attributes through /users/track, deletes through /users/delete.";
        s.server_options = CommonServerOptions();
        for (auto &o : s.server_options) {
            if (o.name == "url") {
                // The REST endpoint of the instance (https://rest.iad-01.braze.com,
                // https://rest.fra-01.braze.eu, ...): there is no default.
                o.required = true;
                o.default_value = "";
            } else if (o.name == "rate_limit") {
                // /users/track allows 3,000 requests per 3 seconds.
                o.default_value = "3000 per 3s";
            } else if (o.name == "batch_size") {
                o.default_value = "75"; // the objects one /users/track call takes
            }
        }
        s.auth = {AuthKind::Bearer}; // the REST API key
        s.default_object = "users";
        ObjectSpec users;
        users.name = "users";
        // No insert: /users/track cannot refuse to touch an existing user.
        users.modes = {"upsert", "update", "mirror"};
        users.default_match_on = "external_id";
        s.objects = {users};
        s.max_batch_size = static_cast<int>(BrazeConnector::kMaxAttributes);
        s.returns_ids = true;
        s.idempotency_keys = false;
        s.example = "OPTIONS (type 'braze', url 'https://rest.iad-01.braze.com')";
        s.check_target = [](const SyncTarget &target, const OptionList &, const std::string &sync_name,
                            const std::string &) { CheckBrazeTarget(target, sync_name); };
        s.make = [](const DestinationSettings &settings,
                    const SyncTarget &target) -> std::unique_ptr<Connector> {
            return std::make_unique<BrazeConnector>(settings, target);
        };
        return s;
    }();
    return spec;
}

} // namespace revetl
