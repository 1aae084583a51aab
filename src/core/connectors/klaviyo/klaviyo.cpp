#include "core/connectors/klaviyo/klaviyo.hpp"

#include "core/connectors/distinct_calls.hpp"
#include "core/connectors/json_text.hpp"

#include "core/common/error.hpp"
#include "core/delivery/retry_policy.hpp"

#include <rapidjson/document.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include <algorithm>
#include <cctype>
#include <ctime>
#include <map>
#include <set>

namespace revetl {

namespace {

using Writer = rapidjson::Writer<rapidjson::StringBuffer>;

// The flow's steps: a bulk import job's status, then its import errors.
constexpr const char *kJobStep = "profiles_job";
constexpr const char *kErrorsStep = "import_errors";
constexpr const char *kDeletion = "deletion";
constexpr const char *kJobsPath = "/api/profile-bulk-import-jobs";
constexpr const char *kDeletionPath = "/api/data-privacy-deletion-jobs";

// Numbers are kept as their text (jsonb's rendering is exact) and written
// back raw.
constexpr unsigned kExactNumbers = rapidjson::kParseNumbersAsStringsFlag;

// The profile attributes Klaviyo names; every other payload field is a
// custom property.
const std::set<std::string> &StandardAttributes() {
    static const std::set<std::string> names = {"email",      "phone_number", "external_id",  "_kx",
                                                "first_name", "last_name",    "organization", "locale",
                                                "title",      "image",        "location"};
    return names;
}

const rapidjson::Value *Object(const rapidjson::Value &obj, const char *name) {
    if (!obj.IsObject())
        return nullptr;
    auto it = obj.FindMember(name);
    return it != obj.MemberEnd() && it->value.IsObject() ? &it->value : nullptr;
}

std::string Lower(std::string s) {
    std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return std::tolower(c); });
    return s;
}

// A member's value: numbers as their exact text, the rest as parsed.
void WriteValue(Writer &w, const rapidjson::Value &exact, const rapidjson::Value *typed) {
    if (typed && typed->IsNumber() && exact.IsString())
        w.RawValue(exact.GetString(), exact.GetStringLength(), rapidjson::kNumberType);
    else
        (typed ? *typed : exact).Accept(w);
}

// Klaviyo's error envelope: {"errors": [{"id", "code", "title", "detail",
// "source": {"pointer"}}]}.
std::string ErrorText(const rapidjson::Document &doc, std::string *code) {
    if (!doc.IsObject() || !doc.HasMember("errors") || !doc["errors"].IsArray())
        return {};
    std::string text;
    for (const auto &e : doc["errors"].GetArray()) {
        std::string one = JsonMember(e, "detail");
        if (one.empty())
            one = JsonMember(e, "title");
        if (const rapidjson::Value *source = Object(e, "source")) {
            std::string pointer = JsonMember(*source, "pointer");
            if (!pointer.empty())
                one += " (" + pointer + ")";
        }
        if (code && code->empty())
            *code = JsonMember(e, "code");
        text += (text.empty() ? "" : "; ") + one;
    }
    return text;
}

bool ValidJobId(const std::string &id) {
    return !id.empty() && id.size() <= 128 && std::all_of(id.begin(), id.end(), [](unsigned char c) {
        return std::isalnum(c) || c == '-' || c == '_';
    });
}

// The query of a next-page link, when it is only a cursor's kind of text:
// the link's host is not followed, only its query is sent to our own path.
std::string PageQuery(const std::string &link) {
    size_t q = link.find('?');
    if (q == std::string::npos)
        return {};
    std::string query = link.substr(q + 1);
    if (query.empty() || query.size() > 2000 || !std::all_of(query.begin(), query.end(), [](unsigned char c) {
            return std::isalnum(c) ||
                   std::string("%._~=&-[]+/").find(static_cast<char>(c)) != std::string::npos;
        }))
        return {};
    return query;
}

void CheckTarget(const SyncTarget &target, const std::string &sync_name) {
    const std::string who = "sync \"" + sync_name + "\"";
    const std::string &m = target.match_on;
    if (!m.empty() && m != "email" && m != "phone_number" && m != "external_id")
        throw Error(sqlstate::kFeatureNotSupported, who + " cannot match Klaviyo profiles on \"" + m + "\"",
                    "Klaviyo's bulk import matches profiles on email, phone_number or external_id.",
                    "Use MATCH ON email (the default), phone_number or external_id.");
    if (target.mode == "audience" && (target.audience.empty() || target.audience.size() > 64 ||
                                      !std::all_of(target.audience.begin(), target.audience.end(),
                                                   [](unsigned char c) { return std::isalnum(c); })))
        throw Error(sqlstate::kInvalidParameterValue,
                    who + " names audience \"" + target.audience + "\", which is not a valid Klaviyo list id",
                    "A Klaviyo list id is letters and digits, such as Y6nRLr.",
                    "Copy the list id from the list's settings in Klaviyo (or its URL).");
    if (target.mode == "mirror" && m == "external_id")
        throw Error(
            sqlstate::kFeatureNotSupported, who + " cannot mirror Klaviyo profiles matched on external_id",
            "Klaviyo deletes a profile only through a data privacy deletion request, which names it by "
            "email, phone_number or Klaviyo's own profile id, not by external_id.",
            "Use MATCH ON email or phone_number, or MODE UPSERT.");
}

} // namespace

bool ValidKlaviyoRevision(const std::string &r) {
    if (r.size() < 10 || r.size() > 40)
        return false;
    for (size_t i = 0; i < 10; i++)
        if ((i == 4 || i == 7) ? r[i] != '-' : !std::isdigit(static_cast<unsigned char>(r[i])))
            return false;
    if (r.size() == 10)
        return true;
    return r[10] == '.' && r.size() > 11 && std::all_of(r.begin() + 11, r.end(), [](unsigned char c) {
               return std::islower(c) || std::isdigit(c);
           });
}

KlaviyoConnector::KlaviyoConnector(DestinationSettings settings, SyncTarget target)
    : settings_(std::move(settings)), target_(std::move(target)) {
    if (target_.object.empty())
        target_.object = "profiles";
    if (target_.match_on.empty())
        target_.match_on = "email";
    CheckTarget(target_, "?");
    revision_ = settings_.Option("revision");
    if (revision_.empty())
        revision_ = kDefaultRevision;
}

std::string KlaviyoConnector::Base() const {
    std::string base = settings_.url;
    while (!base.empty() && base.back() == '/')
        base.pop_back();
    return base;
}

HttpRequest KlaviyoConnector::Request(const std::string &method, const std::string &url,
                                      std::string body) const {
    HttpRequest req;
    req.method = method;
    req.url = url;
    req.timeout_ms = settings_.timeout_ms;
    req.connect_timeout_ms = settings_.connect_timeout_ms;
    req.body = std::move(body);
    if (!req.body.empty())
        req.headers.emplace_back("Content-Type", "application/vnd.api+json");
    req.headers.emplace_back("Accept", "application/vnd.api+json");
    req.headers.emplace_back("revision", revision_);
    for (const auto &h : settings_.headers)
        req.headers.push_back(h);
    // Klaviyo's own scheme, not Bearer: the private key after
    // "Klaviyo-API-Key " (an Authorization from the headers options is
    // replaced).
    req.headers.erase(std::remove_if(req.headers.begin(), req.headers.end(),
                                     [](const auto &h) { return Lower(h.first) == "authorization"; }),
                      req.headers.end());
    req.headers.emplace_back("Authorization", "Klaviyo-API-Key " + settings_.credentials.api_key);
    return req;
}

PreparedRequest KlaviyoConnector::Poll(const std::string &job_id) const {
    PreparedRequest p;
    p.http = Request("GET", Base() + kJobsPath + "/" + job_id, "");
    p.flow.step = kJobStep;
    p.flow.job_id = job_id;
    return p;
}

std::string KlaviyoConnector::MatchValue(const std::string &payload) const {
    rapidjson::Document doc;
    doc.Parse<kExactNumbers>(payload.c_str(), payload.size());
    if (doc.HasParseError() || !doc.IsObject())
        return {};
    return JsonMember(doc, target_.match_on.c_str());
}

std::string KlaviyoConnector::Profile(const std::string &payload) const {
    rapidjson::Document exact;
    exact.Parse<kExactNumbers>(payload.c_str(), payload.size());
    rapidjson::Document typed;
    typed.Parse(payload.c_str(), payload.size());
    rapidjson::StringBuffer buf;
    Writer w(buf);
    w.StartObject();
    w.Key("type");
    w.String("profile");
    w.Key("attributes");
    w.StartObject();
    bool any_property = false;
    auto typed_of = [&](const rapidjson::Value &name) -> const rapidjson::Value * {
        if (!typed.IsObject())
            return nullptr;
        auto t = typed.FindMember(name);
        return t == typed.MemberEnd() ? nullptr : &t->value;
    };
    if (exact.IsObject()) {
        for (auto m = exact.MemberBegin(); m != exact.MemberEnd(); ++m) {
            std::string name(m->name.GetString(), m->name.GetStringLength());
            if (!StandardAttributes().count(name)) {
                any_property = true;
                continue;
            }
            w.Key(name.c_str(), static_cast<rapidjson::SizeType>(name.size()));
            // Identifiers are strings to Klaviyo, whatever their SQL type.
            // (A number's exact text is a string in `exact` already.)
            const rapidjson::Value *t = typed_of(m->name);
            if ((name == "external_id" || name == "phone_number") && t && t->IsNumber())
                w.String(m->value.GetString(), m->value.GetStringLength());
            else
                WriteValue(w, m->value, typed_of(m->name));
        }
    }
    if (any_property) {
        // Custom properties: the payload's other fields, and the members of
        // a "properties" object.
        w.Key("properties");
        w.StartObject();
        for (auto m = exact.MemberBegin(); m != exact.MemberEnd(); ++m) {
            std::string name(m->name.GetString(), m->name.GetStringLength());
            if (StandardAttributes().count(name))
                continue;
            const rapidjson::Value *t = typed_of(m->name);
            if (name == "properties" && m->value.IsObject() && t && t->IsObject()) {
                for (auto p = m->value.MemberBegin(); p != m->value.MemberEnd(); ++p) {
                    w.Key(p->name.GetString(), p->name.GetStringLength());
                    auto tp = t->FindMember(p->name);
                    WriteValue(w, p->value, tp == t->MemberEnd() ? nullptr : &tp->value);
                }
                continue;
            }
            w.Key(name.c_str(), static_cast<rapidjson::SizeType>(name.size()));
            WriteValue(w, m->value, t);
        }
        w.EndObject();
    }
    w.EndObject();
    w.EndObject();
    return std::string(buf.GetString(), buf.GetSize());
}

std::string KlaviyoConnector::MatchKey(const std::string &payload) const {
    std::string m = MatchValue(payload);
    return target_.match_on == "email" ? Lower(m) : m;
}

PreparedRequest KlaviyoConnector::ListJob(const std::vector<Change> &changes,
                                          const std::vector<size_t> &rows) const {
    // The identifier alone: membership is what this mode writes (an UPSERT
    // sync writes the profiles' fields).
    rapidjson::StringBuffer buf;
    Writer w(buf);
    w.StartObject();
    w.Key("data");
    w.StartObject();
    w.Key("type");
    w.String("profile-bulk-import-job");
    w.Key("attributes");
    w.StartObject();
    w.Key("profiles");
    w.StartObject();
    w.Key("data");
    w.StartArray();
    for (size_t i : rows) {
        const std::string value = MatchValue(changes[i].payload);
        w.StartObject();
        w.Key("type");
        w.String("profile");
        w.Key("attributes");
        w.StartObject();
        w.Key(target_.match_on.c_str(), static_cast<rapidjson::SizeType>(target_.match_on.size()));
        w.String(value.c_str(), static_cast<rapidjson::SizeType>(value.size()));
        w.EndObject();
        w.EndObject();
    }
    w.EndArray();
    w.EndObject();
    w.EndObject();
    w.Key("relationships");
    w.StartObject();
    w.Key("lists");
    w.StartObject();
    w.Key("data");
    w.StartArray();
    w.StartObject();
    w.Key("type");
    w.String("list");
    w.Key("id");
    w.String(target_.audience.c_str(), static_cast<rapidjson::SizeType>(target_.audience.size()));
    w.EndObject();
    w.EndArray();
    w.EndObject();
    w.EndObject();
    w.EndObject();
    w.EndObject();
    PreparedRequest req;
    req.http = Request("POST", Base() + kJobsPath, std::string(buf.GetString(), buf.GetSize()));
    req.rows = rows;
    return req;
}

PreparedRequest KlaviyoConnector::ListRemoval(const char *state, const std::vector<Change> &changes,
                                              const std::vector<size_t> &rows) const {
    rapidjson::StringBuffer buf;
    Writer w(buf);
    w.StartObject();
    w.Key("data");
    w.StartArray();
    for (size_t i : rows) {
        w.StartObject();
        w.Key("type");
        w.String("profile");
        w.Key("id");
        w.String(changes[i].dest_id.c_str(), static_cast<rapidjson::SizeType>(changes[i].dest_id.size()));
        w.EndObject();
    }
    w.EndArray();
    w.EndObject();
    PreparedRequest req;
    // CheckTarget made sure the list id is letters and digits.
    req.http = Request("DELETE", Base() + "/api/lists/" + target_.audience + "/relationships/profiles",
                       std::string(buf.GetString(), buf.GetSize()));
    req.rows = rows;
    req.flow.state = state;
    return req;
}

PreparedRequest KlaviyoConnector::ProfilesPage(const std::string &job_id, const std::vector<size_t> &rows,
                                               const std::string &query) const {
    PreparedRequest p;
    p.http =
        Request("GET",
                Base() + kJobsPath + "/" + job_id + "/profiles?" +
                    (query.empty() ? "page%5Bsize%5D=100&fields%5Bprofile%5D=" + target_.match_on : query),
                "");
    p.flow.step = kProfilesStep;
    p.flow.job_id = job_id;
    p.rows = rows;
    return p;
}

std::vector<PreparedRequest>
KlaviyoConnector::PrepareAudience(const std::vector<Change> &changes, const std::vector<size_t> &rows,
                                  std::vector<std::pair<size_t, RowOutcome>> &immediate) {
    std::vector<PreparedRequest> out;
    DistinctValueCalls calls(kMaxProfiles);
    std::vector<size_t> removals, swaps;
    for (size_t i : rows) {
        const Change &c = changes[i];
        if (c.op == Change::Op::Remove) {
            if (c.dest_id.empty())
                immediate.emplace_back(i, UnresolvableRemoval("Klaviyo", "Klaviyo profile id",
                                                              "removed from the list", target_.match_on));
            else if (!ValidJobId(c.dest_id))
                immediate.emplace_back(
                    i, UnusableRecordIdRemoval("Klaviyo",
                                               "the Klaviyo profile id kept for this row is not one Klaviyo "
                                               "gives, so the profile cannot leave the list",
                                               target_.match_on));
            else
                removals.push_back(i);
            continue;
        }
        const std::string match = MatchKey(c.payload);
        if (match.empty()) {
            immediate.emplace_back(
                i,
                RejectedRow(0, "the payload has no value for the MATCH ON field \"" + target_.match_on + "\"",
                            "NO_MATCH_VALUE"));
            continue;
        }
        // The plan sends a change in this mode only when the identifier
        // changed: the old profile leaves the list, then the new one joins.
        if (c.op == Change::Op::Change && ValidJobId(c.dest_id)) {
            swaps.push_back(i);
            continue;
        }
        calls.Add(i, match);
    }
    for (const auto &call : calls.calls())
        out.push_back(ListJob(changes, call));
    for (const std::vector<size_t> *list : {&removals, &swaps})
        for (size_t start = 0; start < list->size(); start += kMaxListProfiles) {
            std::vector<size_t> part(list->begin() + start,
                                     list->begin() + std::min(list->size(), start + kMaxListProfiles));
            out.push_back(ListRemoval(list == &removals ? kListRemove : kListSwap, changes, part));
        }
    return out;
}

std::vector<PreparedRequest>
KlaviyoConnector::Prepare(const BatchContext &, const std::vector<Change> &changes,
                          const std::vector<size_t> &rows,
                          std::vector<std::pair<size_t, RowOutcome>> &immediate) {
    if (target_.mode == "audience")
        return PrepareAudience(changes, rows, immediate);
    struct Call {
        std::vector<size_t> rows;
        std::vector<std::string> profiles;
        std::set<std::string> seen;
        size_t bytes = 0;
    };
    static const size_t kEnvelope = 128;
    std::vector<Call> calls;
    std::vector<PreparedRequest> out;
    for (size_t i : rows) {
        const Change &c = changes[i];
        if (c.op == Change::Op::Remove) {
            if (c.dest_id.empty()) {
                immediate.emplace_back(i, UnresolvableRemoval("Klaviyo", "Klaviyo " + target_.match_on,
                                                              "deleted", target_.match_on));
                continue;
            }
            // One profile per deletion request, as the Data Privacy API takes.
            rapidjson::StringBuffer buf;
            Writer w(buf);
            w.StartObject();
            w.Key("data");
            w.StartObject();
            w.Key("type");
            w.String("data-privacy-deletion-job");
            w.Key("attributes");
            w.StartObject();
            w.Key("profile");
            w.StartObject();
            w.Key("data");
            w.StartObject();
            w.Key("type");
            w.String("profile");
            w.Key("attributes");
            w.StartObject();
            w.Key(target_.match_on.c_str());
            w.String(c.dest_id.c_str(), static_cast<rapidjson::SizeType>(c.dest_id.size()));
            w.EndObject();
            w.EndObject();
            w.EndObject();
            w.EndObject();
            w.EndObject();
            w.EndObject();
            PreparedRequest req;
            req.http = Request("POST", Base() + kDeletionPath, std::string(buf.GetString(), buf.GetSize()));
            req.rows = {i};
            req.flow.state = kDeletion;
            out.push_back(std::move(req));
            continue;
        }
        std::string match = MatchValue(c.payload);
        if (match.empty()) {
            immediate.emplace_back(
                i,
                RejectedRow(0, "the payload has no value for the MATCH ON field \"" + target_.match_on + "\"",
                            "NO_MATCH_VALUE"));
            continue;
        }
        std::string profile = Profile(c.payload);
        if (profile.size() > kMaxProfileBytes) {
            immediate.emplace_back(
                i, RejectedRow(0,
                               "the row is " + std::to_string(profile.size()) +
                                   " bytes as a profile; Klaviyo's bulk import takes at most " +
                                   std::to_string(kMaxProfileBytes),
                               "PROFILE_TOO_LARGE"));
            continue;
        }
        // A job upserts its profiles in no documented order: one profile
        // per job, so its result does not depend on that order.
        if (target_.match_on == "email")
            match = Lower(match);
        size_t k = 0;
        while (k < calls.size() && (calls[k].rows.size() >= kMaxProfiles || calls[k].seen.count(match) ||
                                    calls[k].bytes + profile.size() + 1 + kEnvelope > kMaxBodyBytes))
            k++;
        if (k == calls.size())
            calls.emplace_back();
        calls[k].rows.push_back(i);
        calls[k].seen.insert(match);
        calls[k].bytes += profile.size() + 1;
        calls[k].profiles.push_back(std::move(profile));
    }
    for (auto &call : calls) {
        std::string body =
            "{\"data\":{\"type\":\"profile-bulk-import-job\",\"attributes\":{\"profiles\":{\"data\":[";
        for (size_t j = 0; j < call.profiles.size(); j++)
            body += (j ? "," : "") + call.profiles[j];
        body += "]}}}}";
        PreparedRequest req;
        req.http = Request("POST", Base() + kJobsPath, std::move(body));
        req.rows = std::move(call.rows);
        out.push_back(std::move(req));
    }
    return out;
}

Verdict KlaviyoConnector::Interpret(const PreparedRequest &request, const std::vector<Change> &changes,
                                    const HttpResponse &response) {
    Verdict v;
    rapidjson::Document doc;
    doc.Parse(response.body.c_str(), response.body.size());
    const bool json = !doc.HasParseError() && doc.IsObject();
    std::string code;
    const std::string message = json ? ErrorText(doc, &code) : Truncate(response.body, 300);
    const long status = response.status;
    const bool polling = !request.flow.job_id.empty();
    const bool deletion = request.flow.state == kDeletion;
    const bool list_removal = request.flow.state == kListRemove || request.flow.state == kListSwap;
    const bool audience = target_.mode == "audience";

    if (status == 429) {
        // Burst (1 s) and steady (1 min) windows: the 429 carries
        // Retry-After in seconds (the RateLimit-* headers are not sent on it).
        v.kind = Verdict::Kind::Throttled;
        v.wait_ms = 1000;
        if (auto retry_after = response.Header("retry-after"))
            if (auto seconds = ParseRetryAfterSeconds(*retry_after, std::time(nullptr)))
                v.wait_ms = std::clamp(*seconds * 1000L, 100L, 3600000L);
        v.error = "Klaviyo rate limit: " + Truncate(message.empty() ? "HTTP 429" : message, 300);
        return v;
    }
    if (auto transient = TransientFailure(response, "Klaviyo", message))
        return *transient;
    if (status == 401 || status == 403) {
        v.kind = Verdict::Kind::Fatal;
        v.error = "Klaviyo refused the API key (HTTP " + std::to_string(status) +
                  "): " + Truncate(message.empty() ? "not authorized" : message, 300) +
                  "; the user mapping's api_key must be a private key with the profiles:write scope (and "
                  "data-privacy:write for MIRROR, lists:write for AUDIENCE)";
        return v;
    }
    if (polling && status == 404) {
        // The job is gone (Klaviyo expires jobs): its rows are sent again.
        v.kind = Verdict::Kind::Resend;
        v.error = "Klaviyo no longer knows job " + request.flow.job_id;
        return v;
    }
    if (list_removal && status == 404) {
        // The list is not (or no longer) Klaviyo's: its rows are refused.
        v.rows.assign(request.rows.size(),
                      RejectedRow(status,
                                  message.empty() ? "Klaviyo has no list " + target_.audience : message,
                                  code.empty() ? "not_found" : code));
        return v;
    }
    if (status == 404 || (status >= 300 && status < 400)) {
        v.kind = Verdict::Kind::Fatal;
        v.error = "Klaviyo answered HTTP " + std::to_string(status) + " for " + RedactUrl(request.http.url) +
                  ": check the server's url";
        return v;
    }
    if (status >= 400) {
        if (polling) {
            v.kind = Verdict::Kind::Fatal;
            v.error = "Klaviyo refused a poll of job " + request.flow.job_id + " (HTTP " +
                      std::to_string(status) + "): " + Truncate(message, 300) +
                      (code == "invalid_revision" ? "; check the server's revision" : "");
            return v;
        }
        // The whole job (or deletion) was refused: halves find the row at
        // fault; a lone row is refused with Klaviyo's words.
        if (request.rows.size() > 1) {
            v.kind = Verdict::Kind::Split;
            return v;
        }
        v.rows.assign(request.rows.size(),
                      RejectedRow(status, message.empty() ? "refused by Klaviyo" : message,
                                  code.empty() ? "HTTP_" + std::to_string(status) : code));
        return v;
    }
    if (status < 200 || status >= 300) {
        v.kind = Verdict::Kind::Retry;
        v.error = "Klaviyo answered HTTP " + std::to_string(status);
        return v;
    }
    auto accepted = [&](size_t row) {
        RowOutcome o;
        o.accepted = true;
        o.http_status = status;
        if (changes[row].op != Change::Op::Remove) {
            std::string match = MatchValue(changes[row].payload);
            o.dest_id = Truncate(target_.match_on == "email" ? Lower(match) : match, 200);
        }
        return o;
    };
    if (deletion) {
        for (size_t r : request.rows)
            v.rows.push_back(accepted(r));
        return v;
    }
    if (list_removal) {
        // 204: out of the list (a profile that was not in it too).
        RowOutcome out;
        out.accepted = true;
        out.http_status = status;
        v.rows.assign(request.rows.size(), out);
        if (request.flow.state == kListSwap) {
            v.kind = Verdict::Kind::Continue;
            v.wait_ms = 0;
            v.next = ListJob(changes, request.rows);
        }
        return v;
    }
    if (request.flow.step == kProfilesStep) {
        // A page of the job's profiles: each row's profile id, by its
        // identifier.
        std::map<std::string, std::string> ids; // match value -> profile id
        if (json && doc.HasMember("data") && doc["data"].IsArray())
            for (const auto &p : doc["data"].GetArray()) {
                const std::string id = JsonMember(p, "id");
                const rapidjson::Value *attrs = Object(p, "attributes");
                std::string m = attrs ? JsonMember(*attrs, target_.match_on.c_str()) : std::string();
                if (target_.match_on == "email")
                    m = Lower(m);
                if (!m.empty() && ValidJobId(id))
                    ids.emplace(m, id);
            }
        std::string query;
        if (json && doc.HasMember("links") && doc["links"].IsObject())
            query = PageQuery(JsonMember(doc["links"], "next"));
        std::vector<size_t> open;
        for (size_t r : request.rows) {
            auto it = ids.find(MatchKey(changes[r].payload));
            RowOutcome o;
            o.accepted = true;
            o.http_status = status;
            if (it != ids.end())
                o.dest_id = it->second;
            else if (!query.empty())
                open.push_back(r);
            v.rows.push_back(o);
        }
        if (!open.empty()) {
            v.kind = Verdict::Kind::Continue;
            v.wait_ms = 0;
            v.next = ProfilesPage(request.flow.job_id, open, query);
        }
        // A row the last page did not name is a member without a kept id:
        // its removal will be unresolvable.
        return v;
    }
    const rapidjson::Value *data = json ? Object(doc, "data") : nullptr;
    if (!polling) {
        std::string id = data ? JsonMember(*data, "id") : std::string();
        if (!ValidJobId(id)) {
            v.kind = Verdict::Kind::Retry;
            v.error = "Klaviyo answered HTTP " + std::to_string(status) + " without a valid job id";
            return v;
        }
        v.kind = Verdict::Kind::Continue;
        v.next = Poll(id);
        v.job_accepted = true;
        return v;
    }
    if (request.flow.step == kJobStep) {
        const rapidjson::Value *attributes = data ? Object(*data, "attributes") : nullptr;
        std::string state = attributes ? JsonMember(*attributes, "status") : std::string();
        if (state == "queued" || state == "processing") {
            v.kind = Verdict::Kind::Continue;
            v.next = request;
            return v;
        }
        if (state != "complete") {
            v.rows.assign(request.rows.size(),
                          RejectedRow(status,
                                      "Klaviyo job " + request.flow.job_id + " ended with status " +
                                          (state.empty() ? "(none)" : state),
                                      "JOB_" + (state.empty() ? std::string("unknown") : state)));
            return v;
        }
        std::string failed = JsonMember(*attributes, "failed_count");
        if (failed.empty() || failed == "0") {
            if (audience) {
                v.kind = Verdict::Kind::Continue;
                v.wait_ms = 0;
                v.next = ProfilesPage(request.flow.job_id, request.rows, "");
                v.rows.assign(request.rows.size(), RowOutcome{});
                return v;
            }
            for (size_t r : request.rows)
                v.rows.push_back(accepted(r));
            return v;
        }
        // Some profiles failed: read which from the job's import errors.
        PreparedRequest next;
        next.http = Request("GET", Base() + kJobsPath + "/" + request.flow.job_id + "/import-errors", "");
        next.flow.step = kErrorsStep;
        next.flow.job_id = request.flow.job_id;
        next.rows = request.rows;
        v.kind = Verdict::Kind::Continue;
        v.next = std::move(next);
        v.wait_ms = 0;
        return v;
    }
    // A page of import errors: each names its profile by original_payload.
    std::map<std::string, std::vector<size_t>> by_match; // match value -> positions in request.rows
    for (size_t j = 0; j < request.rows.size(); j++) {
        std::string m = MatchValue(changes[request.rows[j]].payload);
        by_match[target_.match_on == "email" ? Lower(m) : m].push_back(j);
    }
    std::vector<std::optional<RowOutcome>> outcomes(request.rows.size());
    if (json && doc.HasMember("data") && doc["data"].IsArray()) {
        for (const auto &e : doc["data"].GetArray()) {
            const rapidjson::Value *attrs = Object(e, "attributes");
            if (!attrs)
                continue;
            const rapidjson::Value *payload = Object(*attrs, "original_payload");
            if (!payload)
                continue;
            const rapidjson::Value *profile_attrs = Object(*payload, "attributes");
            std::string m = JsonMember(profile_attrs ? *profile_attrs : *payload, target_.match_on.c_str());
            if (target_.match_on == "email")
                m = Lower(m);
            auto it = by_match.find(m);
            if (m.empty() || it == by_match.end())
                continue;
            std::string detail = JsonMember(*attrs, "detail");
            if (detail.empty())
                detail = JsonMember(*attrs, "title");
            if (const rapidjson::Value *source = Object(*attrs, "source")) {
                std::string pointer = JsonMember(*source, "pointer");
                if (!pointer.empty())
                    detail += " (" + pointer + ")";
            }
            std::string error_code = JsonMember(*attrs, "code");
            for (size_t j : it->second)
                outcomes[j] = RejectedRow(status, detail.empty() ? "refused by Klaviyo" : detail,
                                          error_code.empty() ? "IMPORT_ERROR" : error_code);
        }
    }
    std::vector<size_t> open;
    for (size_t j = 0; j < outcomes.size(); j++)
        if (!outcomes[j])
            open.push_back(request.rows[j]);
    std::string query;
    if (json && doc.HasMember("links") && doc["links"].IsObject())
        query = PageQuery(JsonMember(doc["links"], "next"));
    if (!query.empty() && !open.empty()) {
        // More pages: the rows not yet refused go on to the next one.
        for (size_t j = 0; j < outcomes.size(); j++)
            v.rows.push_back(outcomes[j] ? *outcomes[j] : RowOutcome{});
        PreparedRequest next;
        next.http =
            Request("GET", Base() + kJobsPath + "/" + request.flow.job_id + "/import-errors?" + query, "");
        next.flow.step = kErrorsStep;
        next.flow.job_id = request.flow.job_id;
        next.rows = open;
        v.kind = Verdict::Kind::Continue;
        v.next = std::move(next);
        v.wait_ms = 0;
        return v;
    }
    // The last page: the profiles no error named were imported.
    if (audience && !open.empty()) {
        // ... and listed: their profile ids come from the job's profiles.
        for (size_t j = 0; j < outcomes.size(); j++)
            v.rows.push_back(outcomes[j] ? *outcomes[j] : RowOutcome{});
        v.kind = Verdict::Kind::Continue;
        v.wait_ms = 0;
        v.next = ProfilesPage(request.flow.job_id, open, "");
        return v;
    }
    for (size_t j = 0; j < outcomes.size(); j++)
        v.rows.push_back(outcomes[j] ? *outcomes[j] : accepted(request.rows[j]));
    return v;
}

std::optional<PreparedRequest> KlaviyoConnector::Resume(const BatchContext &, const std::vector<Change> &,
                                                        const FlowStep &step) {
    if (!ValidJobId(step.job_id) ||
        (step.step != kJobStep && step.step != kErrorsStep && step.step != kProfilesStep))
        return std::nullopt;
    // From the job's status again: its import errors are read from the
    // first page on.
    return Poll(step.job_id);
}

const ConnectorSpec &KlaviyoSpec() {
    static const ConnectorSpec spec = [] {
        ConnectorSpec s;
        s.type = "klaviyo";
        s.summary =
            "Klaviyo profiles through bulk profile import jobs; deletes through data privacy requests; list "
            "membership (MODE AUDIENCE).";
        s.server_options = CommonServerOptions();
        for (auto &o : s.server_options) {
            if (o.name == "url") {
                o.required = false;
                o.default_value = "https://a.klaviyo.com";
            } else if (o.name == "rate_limit") {
                // The bulk import's burst window (10/s); its steady one
                // (150/min) is met by waiting out the 429s.
                o.default_value = "10 per 1s";
            } else if (o.name == "batch_size") {
                o.default_value = "1000";
            }
        }
        OptionSpec revision;
        revision.name = "revision";
        revision.kind = OptionKind::Text;
        revision.default_value = KlaviyoConnector::kDefaultRevision;
        revision.description = "The API revision sent in the revision header of every call (YYYY-MM-DD).";
        OptionSpec interval;
        interval.name = "job_poll_interval";
        interval.kind = OptionKind::Duration;
        interval.default_value = "1s";
        interval.min = 10;
        interval.max = 60000;
        interval.description = "How long after a job is accepted its first poll goes out (then twice as late "
                               "each time, up to 30s).";
        OptionSpec open_jobs;
        open_jobs.name = "max_open_jobs";
        open_jobs.kind = OptionKind::Integer;
        open_jobs.default_value = "8";
        open_jobs.min = 1;
        open_jobs.max = 100;
        open_jobs.description = "Bulk import jobs of one run open at Klaviyo at once.";
        s.server_options.push_back(revision);
        s.server_options.push_back(interval);
        s.server_options.push_back(open_jobs);
        s.auth = {AuthKind::ApiKeyHeader}; // the private key, as api_key
        s.default_object = "profiles";
        ObjectSpec profiles;
        profiles.name = "profiles";
        // The bulk import only upserts: no update-only or insert-only flag.
        profiles.modes = {"upsert", "mirror", "audience"};
        profiles.default_match_on = "email";
        profiles.match_on_hint = "Klaviyo matches profiles on email, phone_number or external_id.";
        s.objects = {profiles};
        s.max_batch_size = static_cast<int>(KlaviyoConnector::kMaxProfiles);
        s.returns_ids = true;
        s.idempotency_keys = false;
        s.audience.supported = true;
        s.audience.names = "Klaviyo list id";
        s.example = "OPTIONS (type 'klaviyo')";
        s.check_server = [](const OptionList &server) {
            for (const auto &o : server)
                if (o.first == "revision" && !ValidKlaviyoRevision(o.second))
                    throw Error(sqlstate::kFdwInvalidOptionValue, "invalid value for option \"revision\"",
                                "A Klaviyo API revision is a date, YYYY-MM-DD, with an optional .suffix.",
                                std::string("For example: revision '") + KlaviyoConnector::kDefaultRevision +
                                    "'.");
        };
        s.check_target = [](const SyncTarget &target, const OptionList &, const std::string &sync_name,
                            const std::string &) { CheckTarget(target, sync_name); };
        s.make = [](const DestinationSettings &settings,
                    const SyncTarget &target) -> std::unique_ptr<Connector> {
            return std::make_unique<KlaviyoConnector>(settings, target);
        };
        return s;
    }();
    return spec;
}

} // namespace revetl
