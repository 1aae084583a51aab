#include "core/connectors/hubspot/hubspot.hpp"

#include "core/connectors/distinct_calls.hpp"
#include "core/connectors/json_text.hpp"

#include "core/common/error.hpp"
#include "core/delivery/retry_policy.hpp"

#include <rapidjson/document.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include <algorithm>
#include <cctype>
#include <map>
#include <optional>
#include <set>
#include <strings.h>

namespace revetl {

namespace {

using Writer = rapidjson::Writer<rapidjson::StringBuffer>;

std::string Lower(std::string s) {
    std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return std::tolower(c); });
    return s;
}

// Payloads are parsed with numbers kept as their text (jsonb's rendering of
// a numeric is exact: 92.50 stays "92.50", 1234567890123456.7891 is not
// rounded through a double).
constexpr unsigned kExactNumbers = rapidjson::kParseNumbersAsStringsFlag;

bool IsScalar(const rapidjson::Value &v) {
    return v.IsString() || v.IsBool() || v.IsNumber() || v.IsNull();
}

// HubSpot property values are strings: numbers as their exact text,
// booleans as "true"/"false", NULL as "" (which clears the property), arrays
// of scalars (text[], int[]) as "a;b" (how multi-select properties take
// several values; NULL elements are left out), and other objects and arrays
// as JSON.
std::string PropertyText(const rapidjson::Value &v) {
    if (v.IsNull())
        return "";
    if (v.IsString())
        return std::string(v.GetString(), v.GetStringLength());
    if (v.IsBool())
        return v.GetBool() ? "true" : "false";
    if (v.IsArray() &&
        std::all_of(v.Begin(), v.End(), [](const rapidjson::Value &x) { return IsScalar(x); })) {
        std::string out;
        bool first = true;
        for (const auto &x : v.GetArray()) {
            if (x.IsNull())
                continue;
            out += (first ? "" : ";") + PropertyText(x);
            first = false;
        }
        return out;
    }
    rapidjson::StringBuffer buf;
    rapidjson::Writer<rapidjson::StringBuffer> w(buf);
    v.Accept(w);
    return std::string(buf.GetString(), buf.GetSize());
}

// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's
// days_from_civil), so that no time zone database is involved.
int64_t DaysFromCivil(int64_t y, unsigned m, unsigned d) {
    y -= m <= 2;
    const int64_t era = (y >= 0 ? y : y - 399) / 400;
    const unsigned yoe = static_cast<unsigned>(y - era * 400);
    const unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + static_cast<int64_t>(doe) - 719468;
}

bool Digits(const std::string &s, size_t at, size_t n, int &out) {
    if (at + n > s.size())
        return false;
    out = 0;
    for (size_t i = at; i < at + n; i++) {
        if (!std::isdigit(static_cast<unsigned char>(s[i])))
            return false;
        out = out * 10 + (s[i] - '0');
    }
    return true;
}

} // namespace

std::optional<int64_t> HubSpotEpochMillis(const std::string &text, bool *date_only) {
    // YYYY-MM-DD[(T| )HH:MM[:SS[.fff...]]][Z|(+|-)HH[:MM]], as jsonb renders
    // date, timestamp and timestamptz values (revetl renders them in UTC).
    int y, mo, d, h = 0, mi = 0, sec = 0, ms = 0;
    if (!Digits(text, 0, 4, y) || text.size() < 10 || text[4] != '-' || !Digits(text, 5, 2, mo) ||
        text[7] != '-' || !Digits(text, 8, 2, d) || mo < 1 || mo > 12 || d < 1 || d > 31)
        return std::nullopt;
    size_t at = 10;
    if (date_only)
        *date_only = at == text.size();
    if (at < text.size()) {
        if ((text[at] != 'T' && text[at] != ' ') || !Digits(text, at + 1, 2, h) || text.size() < at + 6 ||
            text[at + 3] != ':' || !Digits(text, at + 4, 2, mi) || h > 23 || mi > 59)
            return std::nullopt;
        at += 6;
        if (at < text.size() && text[at] == ':') {
            if (!Digits(text, at + 1, 2, sec) || sec > 60)
                return std::nullopt;
            at += 3;
            if (at < text.size() && text[at] == '.') {
                at++;
                int scale = 100;
                size_t start = at;
                for (; at < text.size() && std::isdigit(static_cast<unsigned char>(text[at])); at++) {
                    ms += (text[at] - '0') * scale;
                    scale /= 10;
                }
                if (at == start)
                    return std::nullopt;
            }
        }
        int offset_min = 0;
        if (at < text.size() && text[at] == 'Z') {
            at++;
        } else if (at < text.size() && (text[at] == '+' || text[at] == '-')) {
            int oh = 0, om = 0;
            const int sign = text[at] == '-' ? -1 : 1;
            if (!Digits(text, at + 1, 2, oh))
                return std::nullopt;
            at += 3;
            if (at < text.size() && text[at] == ':')
                at++;
            if (at < text.size()) {
                if (!Digits(text, at, 2, om))
                    return std::nullopt;
                at += 2;
            }
            offset_min = sign * (oh * 60 + om);
        }
        if (at != text.size())
            return std::nullopt;
        sec -= offset_min * 60;
    }
    return (DaysFromCivil(y, static_cast<unsigned>(mo), static_cast<unsigned>(d)) * 86400 + h * 3600 +
            mi * 60 + sec) *
               1000 +
           ms;
}

namespace {

std::string HubSpotFieldValue(const DestinationField *field, const rapidjson::Value &v) {
    if (!field || v.IsNull())
        return PropertyText(v);
    const std::string &type = field->type;
    if (type == "bool") {
        // HubSpot takes "true" and "false"; the usual spellings of a boolean
        // in a model's text or numbers are turned into them.
        if (v.IsBool())
            return v.GetBool() ? "true" : "false";
        std::string t = Lower(PropertyText(v));
        if (t == "t" || t == "true" || t == "yes" || t == "y" || t == "on" || t == "1")
            return "true";
        if (t == "f" || t == "false" || t == "no" || t == "n" || t == "off" || t == "0")
            return "false";
        return PropertyText(v);
    }
    if ((type == "date" || type == "datetime") && v.IsString()) {
        // date: YYYY-MM-DD (HubSpot stores midnight UTC of that day);
        // datetime: milliseconds since the epoch, which HubSpot documents
        // and which leaves no doubt about the zone. A value that is no date
        // goes as written, and HubSpot's answer refuses that row alone.
        std::string text(v.GetString(), v.GetStringLength());
        bool date_only = false;
        auto ms = HubSpotEpochMillis(text, &date_only);
        if (!ms)
            return text;
        if (type == "date")
            return text.substr(0, 10);
        return std::to_string(*ms);
    }
    if (type == "enumeration" && v.IsBool())
        return v.GetBool() ? "true" : "false";
    // Numbers keep their exact text; arrays become "a;b" (multi-select).
    return PropertyText(v);
}

std::string Member(const rapidjson::Value &obj, const char *name) {
    if (!obj.IsObject())
        return {};
    auto it = obj.FindMember(name);
    if (it == obj.MemberEnd())
        return {};
    return PropertyText(it->value);
}

void CheckHubSpotObject(const std::string &object) {
    for (char c : object)
        if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-'))
            throw Error(sqlstate::kInvalidParameterValue, "invalid HubSpot object \"" + object + "\"",
                        "Objects are named like contacts, companies, deals or 2-1234567.");
}

} // namespace

HubSpotConnector::HubSpotConnector(DestinationSettings settings, SyncTarget target)
    : settings_(std::move(settings)), target_(std::move(target)) {
    // The spec's defaults, for callers that did not go through
    // CheckSyncTarget (MakeConnector does).
    if (target_.object.empty())
        target_.object = "contacts";
    if (target_.match_on.empty() && (target_.object == "contacts" || target_.object == "0-1"))
        target_.match_on = "email";
    // The object is part of the URL path: checked here as well as at CREATE
    // SYNC, so that no path can reach a request.
    CheckHubSpotObject(target_.object);
}

std::string HubSpotConnector::Endpoint(const char *action) const {
    std::string base = settings_.url;
    while (!base.empty() && base.back() == '/')
        base.pop_back();
    return base + "/crm/v3/objects/" + target_.object + "/batch/" + action;
}

HttpRequest HubSpotConnector::Request(const std::string &url, std::string body) const {
    HttpRequest req;
    req.method = "POST";
    req.url = url;
    req.timeout_ms = settings_.timeout_ms;
    req.connect_timeout_ms = settings_.connect_timeout_ms;
    req.body = std::move(body);
    req.headers.emplace_back("Content-Type", "application/json");
    for (const auto &h : settings_.headers)
        req.headers.push_back(h);
    // The token wins over an Authorization header from the headers options.
    ApplyAuth(settings_.credentials, req);
    return req;
}

std::string HubSpotConnector::Normalize(const std::string &v) const {
    // HubSpot matches emails without regard to case.
    return target_.match_on == "email" ? Lower(v) : v;
}

std::string HubSpotConnector::MatchValue(const std::string &payload) const {
    rapidjson::Document doc;
    doc.Parse<kExactNumbers>(payload.c_str(), payload.size());
    if (doc.HasParseError() || !doc.IsObject())
        return {};
    return Member(doc, target_.match_on.c_str());
}

PreparedRequest HubSpotConnector::WriteCall(const std::vector<Change> &changes,
                                            const std::vector<size_t> &call, const char *action,
                                            bool by_id) const {
    const bool create = std::string(action) == "create";
    rapidjson::StringBuffer buf;
    Writer w(buf);
    w.StartObject();
    w.Key("inputs");
    w.StartArray();
    for (size_t i : call) {
        const Change &c = changes[i];
        rapidjson::Document payload;
        payload.Parse<kExactNumbers>(c.payload.c_str(), c.payload.size());
        // Objects and arrays of objects go as JSON text; they are written
        // from a plain parse so that their numbers stay JSON numbers.
        rapidjson::Document plain;
        bool plain_parsed = false;
        w.StartObject();
        if (by_id) {
            w.Key("id");
            WriteJsonString(w, c.dest_id);
        } else if (!create) {
            w.Key("idProperty");
            WriteJsonString(w, target_.match_on);
            w.Key("id");
            WriteJsonString(w, MatchValue(c.payload));
        }
        w.Key("objectWriteTraceId");
        WriteJsonString(w, std::to_string(c.seq));
        w.Key("properties");
        w.StartObject();
        if (payload.IsObject())
            for (auto it = payload.MemberBegin(); it != payload.MemberEnd(); ++it) {
                std::string name(it->name.GetString(), it->name.GetStringLength());
                // hs_object_id is HubSpot's read-only record id: it may
                // identify the record (MATCH ON), never be written.
                if (name == "hs_object_id")
                    continue;
                w.Key(name.c_str(), static_cast<rapidjson::SizeType>(name.size()));
                const rapidjson::Value &value = it->value;
                bool nested =
                    value.IsObject() ||
                    (value.IsArray() && !std::all_of(value.Begin(), value.End(),
                                                     [](const rapidjson::Value &x) { return IsScalar(x); }));
                if (nested) {
                    if (!plain_parsed) {
                        plain.Parse(c.payload.c_str(), c.payload.size());
                        plain_parsed = true;
                    }
                    auto m = plain.FindMember(
                        rapidjson::Value(name.c_str(), static_cast<rapidjson::SizeType>(name.size())));
                    WriteJsonString(w, m == plain.MemberEnd() ? std::string() : PropertyText(m->value));
                } else {
                    WriteJsonString(w, HubSpotFieldValue(FindField(target_.fields, name), value));
                }
            }
        w.EndObject();
        if (create) {
            // batch/create requires associations (HubSpot's contract):
            // revetl creates records without any.
            w.Key("associations");
            w.StartArray();
            w.EndArray();
        }
        w.EndObject();
    }
    w.EndArray();
    w.EndObject();
    PreparedRequest req;
    req.http = Request(Endpoint(action), std::string(buf.GetString(), buf.GetSize()));
    req.rows = call;
    if (by_id)
        req.flow.step = kUpdateByIdStep;
    return req;
}

std::vector<PreparedRequest>
HubSpotConnector::Prepare(const BatchContext &, const std::vector<Change> &changes,
                          const std::vector<size_t> &rows,
                          std::vector<std::pair<size_t, RowOutcome>> &immediate) {
    std::vector<PreparedRequest> out;
    const bool create = target_.mode == "insert";
    const char *action = create ? "create" : target_.mode == "update" ? "update" : "upsert";

    // Writes, in calls of at most 100 inputs with distinct match values.
    DistinctValueCalls calls(kMaxInputs);
    std::vector<size_t> archives;
    // Changes of records whose id revetl kept: updated by that id, so that a
    // changed match value (a contact's new email) renames the record instead
    // of upserting a second one beside it.
    DistinctValueCalls by_id_calls(kMaxInputs);
    for (size_t i : rows) {
        const Change &c = changes[i];
        if (!create && c.op == Change::Op::Change && !c.dest_id.empty()) {
            by_id_calls.Add(i, c.dest_id);
            continue;
        }
        if (c.op == Change::Op::Remove) {
            if (c.dest_id.empty())
                immediate.emplace_back(
                    i, UnresolvableRemoval("HubSpot", "HubSpot record id", "archived", target_.match_on));
            else
                archives.push_back(i);
            continue;
        }
        std::string match;
        if (!create) {
            match = Normalize(MatchValue(c.payload));
            if (match.empty()) {
                immediate.emplace_back(i,
                                       RejectedRow(0,
                                                   "the payload has no value for the MATCH ON property \"" +
                                                       target_.match_on + "\"",
                                                   "NO_MATCH_VALUE"));
                continue;
            }
        }
        // A create names no existing record (match stays "").
        calls.Add(i, match);
    }

    for (const auto &call : calls.calls())
        out.push_back(WriteCall(changes, call, action, false));
    for (const auto &call : by_id_calls.calls())
        out.push_back(WriteCall(changes, call, "update", true));

    for (size_t start = 0; start < archives.size(); start += kMaxInputs) {
        rapidjson::StringBuffer buf;
        Writer w(buf);
        w.StartObject();
        w.Key("inputs");
        w.StartArray();
        PreparedRequest req;
        for (size_t j = start; j < archives.size() && j < start + kMaxInputs; j++) {
            w.StartObject();
            w.Key("id");
            WriteJsonString(w, changes[archives[j]].dest_id);
            w.EndObject();
            req.rows.push_back(archives[j]);
        }
        w.EndArray();
        w.EndObject();
        req.http = Request(Endpoint("archive"), std::string(buf.GetString(), buf.GetSize()));
        out.push_back(std::move(req));
    }
    return out;
}

namespace {

// An error's message with what HubSpot adds to it: the details of errors[]
// (the field and its message) and the correlationId HubSpot support asks for.
std::string ErrorText(const rapidjson::Value &e, const std::string &fallback) {
    std::string text = Member(e, "message");
    if (text.empty())
        text = fallback;
    if (e.IsObject() && e.HasMember("errors") && e["errors"].IsArray()) {
        std::string details;
        for (const auto &d : e["errors"].GetArray()) {
            std::string m = Member(d, "message");
            if (m.empty())
                continue;
            std::string in = Member(d, "in");
            details += (details.empty() ? "" : "; ") + (in.empty() ? m : in + ": " + m);
        }
        if (!details.empty() && details != text)
            text += " (" + details + ")";
    }
    std::string correlation = Member(e, "correlationId");
    if (!correlation.empty())
        text += " [correlationId " + correlation + "]";
    return text;
}

std::string ErrorCode(const rapidjson::Value &e) {
    std::string code = Member(e, "category");
    std::string sub = Member(e, "subCategory");
    return sub.empty() ? code : code + "." + sub;
}

bool ContainsNoCase(const std::string &text, const std::string &needle) {
    return Lower(text).find(needle) != std::string::npos;
}

} // namespace

Verdict HubSpotConnector::Interpret(const PreparedRequest &request, const std::vector<Change> &changes,
                                    const HttpResponse &response) {
    Verdict v;
    rapidjson::Document doc;
    doc.Parse(response.body.c_str(), response.body.size());
    const bool json = !doc.HasParseError() && doc.IsObject();
    const std::string message = json ? ErrorText(doc, "") : Truncate(response.body, 300);
    const std::string category = json ? ErrorCode(doc) : std::string();
    const long status = response.status;

    if (status == 429) {
        // The daily limit, recognised from what HubSpot documents: the
        // X-HubSpot-RateLimit-Daily-Remaining header at 0, or the message
        // ("You have reached your daily limit."), as well as policyName.
        std::string policy = json ? Member(doc, "policyName") : std::string();
        auto daily_remaining = response.Header("x-hubspot-ratelimit-daily-remaining");
        bool daily = policy == "DAILY" || (daily_remaining && *daily_remaining == "0") ||
                     ContainsNoCase(message, "daily limit");
        if (daily) {
            v.kind = Verdict::Kind::Fatal;
            v.error = "HubSpot's daily API limit is spent: " + Truncate(message, 300);
            return v;
        }
        // The ten-second window (or a secondly limit): wait for it to roll.
        v.kind = Verdict::Kind::Throttled;
        v.wait_ms = 10000;
        if (auto interval = response.Header("x-hubspot-ratelimit-interval-milliseconds"))
            try {
                v.wait_ms = std::clamp(std::stol(*interval), 100L, 60000L);
            } catch (const std::exception &) {
            }
        if (auto retry_after = response.Header("retry-after"))
            if (auto seconds = ParseRetryAfterSeconds(*retry_after, std::time(nullptr)))
                v.wait_ms = *seconds * 1000L;
        v.error = "HubSpot rate limit" + (category.empty() ? std::string() : " (" + category + ")") + ": " +
                  Truncate(message, 300);
        return v;
    }
    if (auto transient = TransientFailure(response, "HubSpot", message))
        return *transient;
    if (status == 401 || status == 403 || status == 404) {
        // 401 (EXPIRED_AUTHENTICATION with OAuth): an OAuth token is
        // refreshed once and the request replayed; otherwise the run stops.
        v.kind = status == 401 ? Verdict::Kind::AuthExpired : Verdict::Kind::Fatal;
        v.error = "HubSpot refused the request (HTTP " + std::to_string(status) +
                  (category.empty() ? "" : " " + category) + "): " + Truncate(message, 300);
        return v;
    }
    if (status >= 400) {
        if (request.rows.size() > 1) {
            v.kind = Verdict::Kind::Split;
            return v;
        }
        v.rows.assign(request.rows.size(),
                      RejectedRow(status, message.empty() ? "refused by HubSpot" : message, category));
        return v;
    }

    // 2xx. Archive answers 204 with no body: every record is archived (or
    // already was).
    std::vector<RowOutcome> outcomes(request.rows.size());
    if (request.http.url.size() >= 8 &&
        request.http.url.compare(request.http.url.size() - 8, 8, "/archive") == 0) {
        for (auto &o : outcomes) {
            o.accepted = true;
            o.http_status = status;
        }
        v.rows = outcomes;
        return v;
    }
    std::map<std::string, size_t> by_match, by_trace, by_dest;
    for (size_t j = 0; j < request.rows.size(); j++) {
        const Change &c = changes[request.rows[j]];
        by_trace[std::to_string(c.seq)] = j;
        std::string m = Normalize(MatchValue(c.payload));
        if (!m.empty())
            by_match[m] = j;
        if (!c.dest_id.empty())
            by_dest[c.dest_id] = j;
    }
    // A batch HubSpot did not complete (CANCELED, or still PENDING or
    // PROCESSING) has applied nothing revetl can count on: its rows are
    // refused with the status, and planned again by the next run.
    const std::string batch_status = json ? Member(doc, "status") : std::string();
    if (!batch_status.empty() && batch_status != "COMPLETE") {
        v.rows.assign(request.rows.size(),
                      RejectedRow(status, "HubSpot answered the batch with status " + batch_status,
                                  "BATCH_" + batch_status));
        return v;
    }
    std::vector<bool> answered(request.rows.size(), false);
    if (json && doc.HasMember("results") && doc["results"].IsArray()) {
        for (const auto &r : doc["results"].GetArray()) {
            std::string id = Member(r, "id");
            size_t j = SIZE_MAX;
            std::string trace = Member(r, "objectWriteTraceId");
            if (!trace.empty() && by_trace.count(trace))
                j = by_trace[trace];
            if (j == SIZE_MAX && r.IsObject() && r.HasMember("properties")) {
                std::string m = Normalize(Member(r["properties"], target_.match_on.c_str()));
                if (!m.empty() && by_match.count(m))
                    j = by_match[m];
            }
            if (j == SIZE_MAX && by_dest.count(id))
                j = by_dest[id];
            if (j == SIZE_MAX || answered[j])
                continue;
            answered[j] = true;
            if (r.IsObject() && r.HasMember("archived") && r["archived"].IsBool() &&
                r["archived"].GetBool()) {
                // The write landed on an archived record: not a live record
                // the sync can count as delivered.
                outcomes[j] =
                    RejectedRow(status, "HubSpot reports record " + id + " as archived", "ARCHIVED");
                continue;
            }
            outcomes[j].accepted = true;
            outcomes[j].http_status = status;
            outcomes[j].dest_id = Truncate(id, 200);
        }
    }
    // Errors that name neither ids nor an objectWriteTraceId apply to the
    // rows of the call no result or other error accounts for.
    std::string unattributed_reason, unattributed_code;
    if (json && doc.HasMember("errors") && doc["errors"].IsArray()) {
        for (const auto &e : doc["errors"].GetArray()) {
            std::string reason = ErrorText(e, "refused by HubSpot");
            std::string code = ErrorCode(e);
            std::vector<size_t> hit;
            bool named = false;
            if (e.IsObject() && e.HasMember("context") && e["context"].IsObject()) {
                const auto &ctx = e["context"];
                for (const char *field : {"objectWriteTraceId", "ids"}) {
                    if (!ctx.HasMember(field) || !ctx[field].IsArray())
                        continue;
                    for (const auto &x : ctx[field].GetArray()) {
                        named = true;
                        std::string value = PropertyText(x);
                        if (by_trace.count(value) && std::string(field) == "objectWriteTraceId")
                            hit.push_back(by_trace[value]);
                        else if (by_match.count(Normalize(value)))
                            hit.push_back(by_match[Normalize(value)]);
                        else if (by_dest.count(value))
                            hit.push_back(by_dest[value]);
                    }
                }
            }
            if (!named) {
                unattributed_reason += (unattributed_reason.empty() ? "" : "; ") + reason;
                if (unattributed_code.empty())
                    unattributed_code = code;
                continue;
            }
            for (size_t j : hit) {
                answered[j] = true;
                outcomes[j] = RejectedRow(status, reason, code);
            }
        }
    }
    for (size_t j = 0; j < outcomes.size(); j++)
        if (!answered[j])
            outcomes[j] =
                unattributed_reason.empty()
                    ? RejectedRow(status, "HubSpot's response did not mention this record", "NO_RESULT")
                    : RejectedRow(status, unattributed_reason, unattributed_code);
    v.rows = outcomes;
    if (request.flow.step == kUpdateByIdStep)
        WriteStaleIdsByMatchValue(request, changes, status, v);
    return v;
}

void HubSpotConnector::WriteStaleIdsByMatchValue(const PreparedRequest &request,
                                                 const std::vector<Change> &changes, long status,
                                                 Verdict &v) const {
    // A kept id HubSpot answers OBJECT_NOT_FOUND for names a record that was
    // deleted or merged in HubSpot. Its row is written again in this run by
    // its match value, as a new row's would be, and the id HubSpot answers
    // then replaces the stale one in the shadow state.
    std::vector<size_t> again;
    std::set<std::string> matches;
    for (size_t j = 0; j < v.rows.size() && j < request.rows.size(); j++) {
        RowOutcome &o = v.rows[j];
        if (o.accepted || o.error_code.rfind("OBJECT_NOT_FOUND", 0) != 0)
            continue;
        const Change &c = changes[request.rows[j]];
        const std::string match = Normalize(MatchValue(c.payload));
        if (match.empty()) {
            o = RejectedRow(status,
                            "HubSpot no longer has record " + Truncate(c.dest_id, 100) +
                                ", and the payload has no value for the MATCH ON property \"" +
                                target_.match_on + "\" to find or create it by",
                            "NO_MATCH_VALUE");
            continue;
        }
        // One call never holds a match value twice; a second row with the
        // same value keeps its refusal and is planned again by the next run.
        if (matches.insert(match).second)
            again.push_back(request.rows[j]);
    }
    if (again.empty())
        return;
    v.kind = Verdict::Kind::Continue;
    v.next = WriteCall(changes, again, target_.mode == "update" ? "update" : "upsert", false);
}

HttpRequest HubSpotPropertiesRequest(const DestinationSettings &settings, const std::string &object) {
    CheckHubSpotObject(object);
    std::string base = settings.url;
    while (!base.empty() && base.back() == '/')
        base.pop_back();
    HttpRequest req;
    req.method = "GET";
    // Archived properties cannot be written: only the live ones are asked for.
    req.url = base + "/crm/v3/properties/" + object + "?archived=false";
    req.timeout_ms = settings.timeout_ms;
    req.connect_timeout_ms = settings.connect_timeout_ms;
    for (const auto &h : settings.headers)
        req.headers.push_back(h);
    ApplyAuth(settings.credentials, req);
    return req;
}

std::vector<DestinationField> ParseHubSpotProperties(const std::string &body) {
    rapidjson::Document doc;
    // Invalid UTF-8 is refused here rather than by the cache's text columns.
    doc.Parse<rapidjson::kParseValidateEncodingFlag>(body.c_str(), body.size());
    if (doc.HasParseError() || !doc.IsObject() || !doc.HasMember("results") || !doc["results"].IsArray())
        throw Error(sqlstate::kFdwUnableToEstablishConnection,
                    "HubSpot's properties answer is not understood",
                    "Expected a JSON object with a results array.");
    auto text = [](const rapidjson::Value &obj, const char *name) -> std::string {
        auto it = obj.FindMember(name);
        if (it == obj.MemberEnd() || !it->value.IsString())
            return {};
        return std::string(it->value.GetString(), it->value.GetStringLength());
    };
    auto flag = [](const rapidjson::Value &obj, const char *name) {
        auto it = obj.FindMember(name);
        return it != obj.MemberEnd() && it->value.IsBool() && it->value.GetBool();
    };
    std::vector<DestinationField> out;
    for (const auto &p : doc["results"].GetArray()) {
        if (!p.IsObject())
            continue;
        DestinationField f;
        f.name = text(p, "name");
        if (f.name.empty())
            continue;
        f.label = text(p, "label");
        f.type = text(p, "type");
        f.field_type = text(p, "fieldType");
        // A property's value is read-only when HubSpot says so, and when
        // HubSpot computes it (calculated properties ignore writes).
        auto meta = p.FindMember("modificationMetadata");
        f.read_only = flag(p, "calculated") ||
                      (meta != p.MemberEnd() && meta->value.IsObject() && flag(meta->value, "readOnlyValue"));
        auto options = p.FindMember("options");
        if (options != p.MemberEnd() && options->value.IsArray())
            for (const auto &o : options->value.GetArray())
                if (o.IsObject() && !text(o, "value").empty())
                    f.options.emplace_back(text(o, "value"), text(o, "label"));
        out.push_back(std::move(f));
    }
    return out;
}

const ConnectorSpec &HubSpotSpec() {
    static const ConnectorSpec spec = [] {
        ConnectorSpec s;
        s.type = "hubspot";
        s.summary =
            "HubSpot CRM v3 objects (contacts, companies, deals, custom objects) through the batch APIs.";
        s.server_options = CommonServerOptions();
        for (auto &o : s.server_options) {
            if (o.name == "url") {
                o.required = false;
                o.default_value = "https://api.hubapi.com";
            } else if (o.name == "rate_limit") {
                // HubSpot's lowest tier allows 100 requests per 10 seconds per
                // app; a server on a higher tier says so with its own option.
                o.default_value = "100 per 10s";
            }
        }
        // A private app's access token.
        s.auth = {AuthKind::Bearer, AuthKind::OAuth}; // private-app token, or an OAuth app's
        s.default_object = "contacts";
        ObjectSpec contacts;
        contacts.name = "contacts";
        contacts.modes = {"upsert", "update", "insert", "mirror"};
        contacts.default_match_on = "email";
        ObjectSpec any;
        any.name = "*";
        any.modes = contacts.modes;
        any.match_on_needed = true;
        any.match_on_hint =
            "Only contacts have a unique property by default (email); name a property created "
            "with hasUniqueValue, for example MATCH ON domain_id.";
        s.objects = {contacts, any};
        s.max_batch_size = static_cast<int>(HubSpotConnector::kMaxInputs);
        s.returns_ids = true;
        s.updates_by_record_id = true;
        s.idempotency_keys = false;
        s.example = "OPTIONS (type 'hubspot')";
        s.check_target = [](const SyncTarget &target, const OptionList &, const std::string &,
                            const std::string &) { CheckHubSpotObject(target.object); };
        s.describe_fields.request = HubSpotPropertiesRequest;
        s.describe_fields.parse = ParseHubSpotProperties;
        s.make = [](const DestinationSettings &settings,
                    const SyncTarget &target) -> std::unique_ptr<Connector> {
            return std::make_unique<HubSpotConnector>(settings, target);
        };
        return s;
    }();
    return spec;
}

} // namespace revetl
