#include "core/connectors/marketo/marketo.hpp"

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

// Which call a request is: its flow state (the engine passes it back).
constexpr const char *kSync = "sync";
constexpr const char *kSyncById = "sync_by_id";
constexpr const char *kDelete = "delete";

// Marketo's documented wait for 606: its window is 20 seconds.
constexpr long kRateWindowMs = 20000;
// 615 (more than 10 calls at once): one of the others ends soon.
constexpr long kConcurrencyWaitMs = 2000;

std::string Lower(std::string s) {
    std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return std::tolower(c); });
    return s;
}

bool Digits(const std::string &s) {
    return !s.empty() && s.size() <= 19 &&
           std::all_of(s.begin(), s.end(), [](unsigned char c) { return std::isdigit(c); });
}

// The first code and message of an errors[] or reasons[] array.
void FirstReason(const rapidjson::Value &obj, const char *array, std::string &code, std::string &message) {
    if (!obj.IsObject() || !obj.HasMember(array) || !obj[array].IsArray())
        return;
    for (const auto &e : obj[array].GetArray()) {
        code = JsonMember(e, "code");
        message = JsonMember(e, "message");
        if (!code.empty() || !message.empty())
            return;
    }
}

void CheckMunchkinId(const std::string &id) {
    bool ok = !id.empty() && id.size() <= 63 && id.front() != '-' && id.back() != '-' &&
              std::all_of(id.begin(), id.end(), [](unsigned char c) { return std::isalnum(c) || c == '-'; });
    if (!ok)
        throw Error(sqlstate::kFdwInvalidOptionValue, "invalid value for option \"munchkin_id\"",
                    "A Munchkin id is the first label of the instance's REST host, such as 123-ABC-456 in "
                    "https://123-ABC-456.mktorest.com: letters, digits and hyphens.");
}

bool ValidFieldName(const std::string &name) {
    return !name.empty() && name.size() <= 255 &&
           std::all_of(name.begin(), name.end(), [](unsigned char c) { return std::isalnum(c) || c == '_'; });
}

} // namespace

MarketoConnector::MarketoConnector(DestinationSettings settings, SyncTarget target)
    : settings_(std::move(settings)), target_(std::move(target)) {
    if (target_.object.empty())
        target_.object = "leads";
    if (target_.match_on.empty())
        target_.match_on = "email";
}

std::string MarketoConnector::Action() const {
    if (target_.mode == "update")
        return "updateOnly";
    if (target_.mode == "insert")
        return "createOnly";
    return "createOrUpdate";
}

std::string MarketoConnector::Base() const {
    std::string base = settings_.url;
    while (!base.empty() && base.back() == '/')
        base.pop_back();
    return base;
}

HttpRequest MarketoConnector::Request(const std::string &path, std::string body, const char *method) const {
    HttpRequest req;
    req.method = method;
    req.url = Base() + path;
    req.timeout_ms = settings_.timeout_ms;
    req.connect_timeout_ms = settings_.connect_timeout_ms;
    req.body = std::move(body);
    // Marketo refuses any other content type with 612.
    req.headers.emplace_back("Content-Type", "application/json");
    req.headers.emplace_back("Accept", "application/json");
    for (const auto &h : settings_.headers)
        req.headers.push_back(h);
    ApplyAuth(settings_.credentials, req);
    return req;
}

std::string MarketoConnector::MatchValue(const std::string &payload) const {
    rapidjson::Document doc;
    doc.Parse<rapidjson::kParseNumbersAsStringsFlag>(payload.c_str(), payload.size());
    if (doc.HasParseError() || !doc.IsObject())
        return {};
    return JsonMember(doc, target_.match_on.c_str());
}

PreparedRequest MarketoConnector::SyncCall(const std::vector<Change> &changes,
                                           const std::vector<size_t> &rows, bool by_id) const {
    // Each payload is a JSON object rendered by PostgreSQL (jsonb): it goes
    // as it is, so that numbers keep their exact text; a by-id update puts
    // the kept lead id in front of its fields.
    std::string body = "{\"action\":\"";
    body += by_id ? "updateOnly" : Action();
    body += "\",\"lookupField\":";
    rapidjson::StringBuffer field;
    rapidjson::Writer<rapidjson::StringBuffer> w(field);
    w.String(by_id ? "id" : target_.match_on.c_str());
    body.append(field.GetString(), field.GetSize());
    std::string partition = settings_.Option("partition");
    if (!partition.empty() && !by_id && Action() != "updateOnly") {
        // partitionName goes with create actions only.
        rapidjson::StringBuffer p;
        rapidjson::Writer<rapidjson::StringBuffer> pw(p);
        pw.String(partition.c_str(), static_cast<rapidjson::SizeType>(partition.size()));
        body += ",\"partitionName\":";
        body.append(p.GetString(), p.GetSize());
    }
    body += ",\"input\":[";
    for (size_t j = 0; j < rows.size(); j++) {
        const Change &c = changes[rows[j]];
        if (j)
            body += ",";
        if (by_id) {
            size_t open = c.payload.find('{');
            std::string rest = c.payload.substr(open + 1);
            size_t first = rest.find_first_not_of(" \t\r\n");
            bool empty = first != std::string::npos && rest[first] == '}';
            body += "{\"id\":" + c.dest_id + (empty ? "}" : "," + rest);
        } else {
            body += c.payload;
        }
    }
    body += "]}";
    PreparedRequest req;
    req.http = Request("/rest/v1/leads.json", std::move(body));
    req.rows = rows;
    req.flow.state = by_id ? kSyncById : kSync;
    return req;
}

PreparedRequest MarketoConnector::LeadLookup(const std::vector<Change> &changes,
                                             const std::vector<size_t> &rows) const {
    // The lookup field alone: membership is what this mode writes (an
    // UPSERT sync writes the leads' fields), and createOrUpdate with no
    // other field leaves an existing lead as it is.
    rapidjson::StringBuffer buf;
    rapidjson::Writer<rapidjson::StringBuffer> w(buf);
    w.StartObject();
    w.Key("action");
    w.String("createOrUpdate");
    w.Key("lookupField");
    w.String(target_.match_on.c_str(), static_cast<rapidjson::SizeType>(target_.match_on.size()));
    std::string partition = settings_.Option("partition");
    if (!partition.empty()) {
        w.Key("partitionName");
        w.String(partition.c_str(), static_cast<rapidjson::SizeType>(partition.size()));
    }
    w.Key("input");
    w.StartArray();
    for (size_t i : rows) {
        const std::string value = MatchValue(changes[i].payload);
        w.StartObject();
        w.Key(target_.match_on.c_str(), static_cast<rapidjson::SizeType>(target_.match_on.size()));
        w.String(value.c_str(), static_cast<rapidjson::SizeType>(value.size()));
        w.EndObject();
    }
    w.EndArray();
    w.EndObject();
    PreparedRequest req;
    req.http = Request("/rest/v1/leads.json", std::string(buf.GetString(), buf.GetSize()));
    req.rows = rows;
    req.flow.step = kLeadLookup;
    return req;
}

PreparedRequest MarketoConnector::ListCall(const char *step, const std::vector<size_t> &rows,
                                           const std::vector<std::string> &ids) const {
    // The ids go both as repeated id query parameters (the form Marketo's
    // list membership guide shows) and as the ListOperationRequest body
    // (which its contract requires on the DELETE): the same ids, in order.
    // At most 300 ids of at most 19 digits keep the URL under Marketo's 8 KB.
    std::string query, body = "{\"input\":[";
    for (size_t j = 0; j < ids.size(); j++) {
        query += (j ? "&id=" : "?id=") + ids[j];
        body += (j ? ",{\"id\":" : "{\"id\":") + ids[j] + "}";
    }
    body += "]}";
    PreparedRequest req;
    // CheckSyncTarget made sure the list id is a positive integer.
    req.http = Request("/rest/v1/lists/" + target_.audience + "/leads.json" + query, std::move(body),
                       std::string(step) == kListAdd ? "POST" : "DELETE");
    req.rows = rows;
    req.flow.step = step;
    return req;
}

std::vector<PreparedRequest>
MarketoConnector::PrepareAudience(const std::vector<Change> &changes, const std::vector<size_t> &rows,
                                  std::vector<std::pair<size_t, RowOutcome>> &immediate) {
    std::vector<PreparedRequest> out;
    DistinctValueCalls calls(kMaxLeads);
    std::vector<size_t> removals, swaps;
    const bool email = target_.match_on == "email";
    for (size_t i : rows) {
        const Change &c = changes[i];
        if (c.op == Change::Op::Remove) {
            if (c.dest_id.empty())
                immediate.emplace_back(i,
                                       UnresolvableRemoval("Marketo", "Marketo lead id",
                                                           "removed from the static list", target_.match_on));
            else if (!Digits(c.dest_id))
                immediate.emplace_back(
                    i, UnusableRecordIdRemoval("Marketo",
                                               "the Marketo lead id kept for this row is not one Marketo "
                                               "gives, so the lead cannot leave the static list",
                                               target_.match_on));
            else
                removals.push_back(i);
            continue;
        }
        std::string match = MatchValue(c.payload);
        if (email)
            match = Lower(match);
        if (match.empty()) {
            immediate.emplace_back(
                i,
                RejectedRow(0, "the payload has no value for the MATCH ON field \"" + target_.match_on + "\"",
                            "NO_MATCH_VALUE"));
            continue;
        }
        // The plan sends a change in this mode only when the lookup value
        // changed: the old lead leaves the list, then the new one joins.
        if (c.op == Change::Op::Change && Digits(c.dest_id)) {
            swaps.push_back(i);
            continue;
        }
        calls.Add(i, match);
    }
    for (const auto &call : calls.calls())
        out.push_back(LeadLookup(changes, call));
    for (const std::vector<size_t> *list : {&removals, &swaps})
        for (size_t start = 0; start < list->size(); start += kMaxLeads) {
            std::vector<size_t> part(list->begin() + start,
                                     list->begin() + std::min(list->size(), start + kMaxLeads));
            std::vector<std::string> ids;
            for (size_t i : part)
                ids.push_back(changes[i].dest_id);
            out.push_back(ListCall(list == &removals ? kListRemove : kListSwap, part, ids));
        }
    return out;
}

std::vector<PreparedRequest>
MarketoConnector::Prepare(const BatchContext &, const std::vector<Change> &changes,
                          const std::vector<size_t> &rows,
                          std::vector<std::pair<size_t, RowOutcome>> &immediate) {
    if (target_.mode == "audience")
        return PrepareAudience(changes, rows, immediate);
    std::vector<PreparedRequest> out;
    DistinctValueCalls calls(kMaxLeads);
    std::vector<size_t> by_id, removals;
    const bool email = target_.match_on == "email";
    for (size_t i : rows) {
        const Change &c = changes[i];
        if (c.op == Change::Op::Remove) {
            if (c.dest_id.empty())
                immediate.emplace_back(
                    i, UnresolvableRemoval("Marketo", "Marketo lead id", "deleted", target_.match_on));
            else if (!Digits(c.dest_id))
                immediate.emplace_back(
                    i, UnusableRecordIdRemoval("Marketo",
                                               "the Marketo lead id kept for this row is not one Marketo "
                                               "gives, so the lead cannot be deleted",
                                               target_.match_on));
            else
                removals.push_back(i);
            continue;
        }
        rapidjson::Document doc;
        doc.Parse<rapidjson::kParseNumbersAsStringsFlag>(c.payload.c_str(), c.payload.size());
        if (doc.HasParseError() || !doc.IsObject()) {
            immediate.emplace_back(i, RejectedRow(0, "the payload is not a JSON object", "INVALID_PAYLOAD"));
            continue;
        }
        // A changed row with a kept lead id is updated by that id, so that a
        // new match value lands on the same lead (not a new one). Not in
        // MODE INSERT (createOnly never takes ids), and not when the
        // payload maps a field named id itself.
        if (c.op == Change::Op::Change && Digits(c.dest_id) && target_.mode != "insert" &&
            !doc.HasMember("id")) {
            by_id.push_back(i);
            continue;
        }
        std::string match = JsonMember(doc, target_.match_on.c_str());
        if (email)
            match = Lower(match);
        if (match.empty()) {
            immediate.emplace_back(
                i,
                RejectedRow(0, "the payload has no value for the MATCH ON field \"" + target_.match_on + "\"",
                            "NO_MATCH_VALUE"));
            continue;
        }
        // One lookup value once per call: Marketo refuses a repeated one
        // (1036), and two upserts of one key in flight can both create.
        calls.Add(i, match);
    }
    for (const auto &call : calls.calls())
        out.push_back(SyncCall(changes, call, false));
    for (size_t start = 0; start < by_id.size(); start += kMaxLeads) {
        std::vector<size_t> part(by_id.begin() + start,
                                 by_id.begin() + std::min(by_id.size(), start + kMaxLeads));
        out.push_back(SyncCall(changes, part, true));
    }
    for (size_t start = 0; start < removals.size(); start += kMaxLeads) {
        PreparedRequest req;
        std::string body = "{\"input\":[";
        for (size_t j = start; j < removals.size() && j < start + kMaxLeads; j++) {
            body += (j > start ? "," : "") + std::string("{\"id\":") + changes[removals[j]].dest_id + "}";
            req.rows.push_back(removals[j]);
        }
        body += "]}";
        req.http = Request("/rest/v1/leads/delete.json", std::move(body));
        req.flow.state = kDelete;
        out.push_back(std::move(req));
    }
    return out;
}

Verdict MarketoConnector::Interpret(const PreparedRequest &request, const std::vector<Change> &changes,
                                    const HttpResponse &response) {
    Verdict v;
    const long status = response.status;
    rapidjson::Document doc;
    doc.Parse(response.body.c_str(), response.body.size());
    const bool json = !doc.HasParseError() && doc.IsObject();

    if (status == 429) {
        // Not documented (Marketo's signal is 606 in a 200), but honoured.
        v.kind = Verdict::Kind::Throttled;
        v.wait_ms = kRateWindowMs;
        if (auto retry_after = response.Header("retry-after"))
            if (auto seconds = ParseRetryAfterSeconds(*retry_after, std::time(nullptr)))
                v.wait_ms = std::max(1L, *seconds) * 1000L;
        v.error = "Marketo asked to slow down (HTTP 429)";
        return v;
    }
    if (auto failure = ConnectionFailure(response, request.http.url, false))
        return *failure;
    // 502 is Marketo's one documented real HTTP error to retry.
    if (auto transient = TransientFailure(response, "Marketo", ""))
        return *transient;
    if (status == 413 && request.rows.size() > 1) {
        // The body is over 1 MB: halves fit.
        v.kind = Verdict::Kind::Split;
        return v;
    }
    if (status != 200 || !json) {
        v.kind = status >= 400 ? Verdict::Kind::Done : Verdict::Kind::Retry;
        v.error = "Marketo answered HTTP " + std::to_string(status) + (json ? "" : " without a JSON body");
        if (status >= 400)
            v.rows.assign(request.rows.size(),
                          RejectedRow(status, "refused by Marketo: HTTP " + std::to_string(status),
                                      "HTTP_" + std::to_string(status)));
        return v;
    }
    if (JsonMember(doc, "success") != "true") {
        // A request-level error: nothing was executed (6xx, 7xx).
        std::string code, message;
        FirstReason(doc, "errors", code, message);
        const std::string what = "Marketo error " + (code.empty() ? std::string("(no code)") : code) +
                                 (message.empty() ? "" : ": " + Truncate(message, 300));
        if (code == "601" || code == "602") {
            v.kind = Verdict::Kind::AuthExpired;
            v.error = what;
        } else if (code == "606") {
            // The window is the rate_limit option's period (Marketo's 20 s
            // unless the server says otherwise).
            v.kind = Verdict::Kind::Throttled;
            v.wait_ms = settings_.rate_limit.period_ms > 0
                            ? std::min(settings_.rate_limit.period_ms, kRateWindowMs)
                            : kRateWindowMs;
            v.error = what;
        } else if (code == "615") {
            v.kind = Verdict::Kind::Throttled;
            v.wait_ms = kConcurrencyWaitMs;
            v.error = what;
        } else if (code == "607") {
            v.kind = Verdict::Kind::Fatal;
            v.error = what +
                      "; the subscription's daily API quota is spent (it resets at midnight US Central "
                      "time)";
        } else if (code == "603") {
            v.kind = Verdict::Kind::Fatal;
            v.error = what + "; the API user's role must allow Read-Write Lead access";
        } else if (code == "604" || code == "608" || code == "611" || code == "713") {
            v.kind = Verdict::Kind::Retry;
            v.error = what;
        } else {
            // Bad parameters (609 invalid JSON, 612, 7xx): about this call
            // and its rows, which are refused with Marketo's code.
            v.rows.assign(request.rows.size(),
                          RejectedRow(status, message.empty() ? "refused by Marketo" : message,
                                      code.empty() ? "MARKETO_ERROR" : code));
        }
        return v;
    }
    if (!request.flow.step.empty())
        return AudienceResults(request, changes, response.body);
    const bool deleting = request.flow.state == kDelete;
    const bool by_id = request.flow.state == kSyncById;
    const rapidjson::Value *results = nullptr;
    if (doc.HasMember("result") && doc["result"].IsArray())
        results = &doc["result"];
    const size_t n = request.rows.size();
    std::vector<size_t> again; // by-id updates of leads Marketo no longer knows
    for (size_t j = 0; j < n; j++) {
        if (!results || j >= results->Size()) {
            v.rows.push_back(RejectedRow(status, "Marketo's answer did not mention this lead", "NO_RESULT"));
            continue;
        }
        const rapidjson::Value &r = (*results)[static_cast<rapidjson::SizeType>(j)];
        const std::string state = JsonMember(r, "status");
        std::string code, message;
        FirstReason(r, "reasons", code, message);
        if (state == "created" || state == "updated" || state == "deleted" ||
            (deleting && state == "skipped" && code == "1004")) {
            // A lead already gone counts as deleted.
            RowOutcome o;
            o.accepted = true;
            o.http_status = status;
            std::string id = JsonMember(r, "id");
            if (!deleting && Digits(id))
                o.dest_id = id;
            v.rows.push_back(o);
            continue;
        }
        if (by_id && code == "1004") {
            // The kept lead was deleted in Marketo: write the row again by
            // its lookup field (outcome from that call).
            again.push_back(request.rows[j]);
            v.rows.push_back(RejectedRow(
                status, "Marketo no longer knows lead " + changes[request.rows[j]].dest_id, code));
            continue;
        }
        v.rows.push_back(RejectedRow(status,
                                     message.empty() ? "Marketo skipped the lead (status " +
                                                           (state.empty() ? std::string("none") : state) + ")"
                                                     : message,
                                     code.empty() ? "SKIPPED" : code));
    }
    if (!again.empty()) {
        // Those rows without a match value keep the rejection above.
        std::vector<size_t> send;
        for (size_t i : again)
            if (!MatchValue(changes[i].payload).empty())
                send.push_back(i);
        if (!send.empty()) {
            v.kind = Verdict::Kind::Continue;
            v.next = SyncCall(changes, send, false);
        }
    }
    return v;
}

Verdict MarketoConnector::AudienceResults(const PreparedRequest &request, const std::vector<Change> &changes,
                                          const std::string &body) const {
    Verdict v;
    rapidjson::Document doc;
    doc.Parse(body.c_str(), body.size());
    const rapidjson::Value *results = nullptr;
    if (doc.IsObject() && doc.HasMember("result") && doc["result"].IsArray())
        results = &doc["result"];
    const std::string &step = request.flow.step;
    const size_t n = request.rows.size();
    const long status = 200;
    auto skipped = [&](const std::string &state, const std::string &code, const std::string &message) {
        return RejectedRow(status,
                           message.empty() ? "Marketo skipped the lead (status " +
                                                 (state.empty() ? std::string("none") : state) + ")"
                                           : message,
                           code.empty() ? "SKIPPED" : code);
    };

    if (step == kLeadLookup) {
        // Results in input order: each found or created lead's id goes on
        // to the list.
        std::vector<size_t> next_rows;
        std::vector<std::string> ids;
        for (size_t j = 0; j < n; j++) {
            if (!results || j >= results->Size()) {
                v.rows.push_back(
                    RejectedRow(status, "Marketo's answer did not mention this lead", "NO_RESULT"));
                continue;
            }
            const rapidjson::Value &r = (*results)[static_cast<rapidjson::SizeType>(j)];
            const std::string state = JsonMember(r, "status"), id = JsonMember(r, "id");
            std::string code, message;
            FirstReason(r, "reasons", code, message);
            if ((state == "created" || state == "updated") && Digits(id)) {
                next_rows.push_back(request.rows[j]);
                ids.push_back(id);
                v.rows.emplace_back(); // the list call decides
                continue;
            }
            v.rows.push_back(skipped(state, code, message));
        }
        if (!next_rows.empty()) {
            v.kind = Verdict::Kind::Continue;
            v.wait_ms = 0;
            v.next = ListCall(kListAdd, next_rows, ids);
        }
        return v;
    }

    // A list call: the ids it sent, in order, from its own body.
    std::vector<std::string> sent;
    rapidjson::Document mine;
    mine.Parse(request.http.body.c_str(), request.http.body.size());
    if (mine.IsObject() && mine.HasMember("input") && mine["input"].IsArray())
        for (const auto &e : mine["input"].GetArray())
            sent.push_back(JsonMember(e, "id"));
    // Marketo names each lead of the answer by id.
    std::map<std::string, const rapidjson::Value *> by_id;
    if (results)
        for (const auto &r : results->GetArray())
            by_id.emplace(JsonMember(r, "id"), &r);
    const bool adding = step == kListAdd;
    std::vector<size_t> again;
    for (size_t j = 0; j < n; j++) {
        const std::string id = j < sent.size() ? sent[j] : std::string();
        auto it = by_id.find(id);
        if (id.empty() || it == by_id.end()) {
            v.rows.push_back(RejectedRow(status, "Marketo's answer did not mention lead " + id, "NO_RESULT"));
            continue;
        }
        const std::string state = JsonMember(*it->second, "status");
        std::string code, message;
        FirstReason(*it->second, "reasons", code, message);
        // A lead not in the list (1015) or no longer in Marketo (1004) has
        // left it already.
        const bool left = state == "removed" || (state == "skipped" && (code == "1015" || code == "1004"));
        if (adding ? state == "added" : left) {
            RowOutcome o;
            o.accepted = true;
            o.http_status = status;
            // The member's lead id: what a later removal names.
            if (adding)
                o.dest_id = id;
            v.rows.push_back(o);
            if (step == kListSwap)
                again.push_back(request.rows[j]);
            continue;
        }
        v.rows.push_back(skipped(state, code, message));
    }
    if (!again.empty()) {
        v.kind = Verdict::Kind::Continue;
        v.wait_ms = 0;
        v.next = LeadLookup(changes, again);
    }
    return v;
}

const ConnectorSpec &MarketoSpec() {
    static const ConnectorSpec spec = [] {
        ConnectorSpec s;
        s.type = "marketo";
        s.summary =
            "Marketo Engage leads, synced by a lookup field (createOrUpdate, updateOnly or createOnly) "
            "through the REST API with OAuth client credentials, and static list membership (MODE AUDIENCE).";
        s.server_options = CommonServerOptions();
        for (auto &o : s.server_options) {
            if (o.name == "url") {
                o.required = false;
                o.description = "Where requests go; by default https://<munchkin_id>.mktorest.com.";
            } else if (o.name == "rate_limit") {
                // Marketo allows 100 calls per 20 seconds per instance.
                o.default_value = "100 per 20s";
            } else if (o.name == "batch_size") {
                o.default_value = "300";
            } else if (o.name == "max_in_flight") {
                // At most 10 calls at once per instance (615 beyond), shared
                // with every other integration of the instance.
                o.default_value = "4";
                o.max = 10;
            }
        }
        OptionSpec munchkin;
        munchkin.name = "munchkin_id";
        munchkin.kind = OptionKind::Text;
        munchkin.description =
            "The instance's Munchkin id: requests go to https://<munchkin_id>.mktorest.com.";
        OptionSpec partition;
        partition.name = "partition";
        partition.kind = OptionKind::Text;
        partition.description = "The lead partition new leads go to (partitionName); by default Marketo's.";
        s.server_options.push_back(munchkin);
        s.server_options.push_back(partition);
        s.url_template = "https://{munchkin_id}.mktorest.com";
        // A LaunchPoint custom service's client id and secret, through the
        // instance's Identity endpoint (oauth_token_url); or an access token
        // minted elsewhere (it lives an hour: 602 then stops the run).
        s.auth = {AuthKind::OAuth, AuthKind::Bearer};
        s.default_object = "leads";
        ObjectSpec leads;
        leads.name = "leads";
        leads.modes = {"upsert", "update", "insert", "mirror", "audience"};
        leads.default_match_on = "email";
        leads.match_on_hint = "Marketo looks leads up by a lookup field: email (the default), id or a custom "
                              "dedupe field such as externalId__c.";
        s.objects = {leads};
        s.max_batch_size = static_cast<int>(MarketoConnector::kMaxLeads);
        s.returns_ids = true;
        s.updates_by_record_id = true; // a kept lead id is written by that id (updateOnly, lookupField id)
        s.idempotency_keys = false;
        s.audience.supported = true;
        s.audience.names = "Marketo static list id";
        s.audience.numeric = true;
        s.example = "OPTIONS (type 'marketo', munchkin_id '123-ABC-456')";
        s.check_server = [](const OptionList &server) {
            std::string url, munchkin;
            for (const auto &o : server) {
                if (o.first == "url")
                    url = o.second;
                else if (o.first == "munchkin_id")
                    munchkin = o.second;
            }
            if (url.empty() && munchkin.empty())
                throw Error(sqlstate::kFdwInvalidOptionValue,
                            "a revetl server of type \"marketo\" needs the option \"munchkin_id\" or \"url\"",
                            {}, "For example: OPTIONS (type 'marketo', munchkin_id '123-ABC-456').");
            if (!munchkin.empty())
                CheckMunchkinId(munchkin);
        };
        s.check_target = [](const SyncTarget &target, const OptionList &, const std::string &sync_name,
                            const std::string &) {
            if (!target.match_on.empty() && !ValidFieldName(target.match_on))
                throw Error(
                    sqlstate::kInvalidParameterValue,
                    "sync \"" + sync_name + "\" cannot look Marketo leads up by \"" + target.match_on + "\"",
                    {}, "Name a lead field's REST API name: MATCH ON email or MATCH ON externalId__c.");
            if (target.match_on == "id" && target.mode == "audience")
                throw Error(
                    sqlstate::kInvalidParameterValue,
                    "sync \"" + sync_name + "\" cannot find Marketo leads for a static list by id",
                    "MODE AUDIENCE finds or creates each member's lead by its lookup field, and Marketo "
                    "creates leads with ids of its own.",
                    "Use a lookup field such as MATCH ON email (the default) or externalId__c.");
            if (target.match_on == "id" && target.mode != "update")
                throw Error(
                    sqlstate::kInvalidParameterValue,
                    "sync \"" + sync_name + "\" cannot " + target.mode + " Marketo leads by id",
                    "Marketo creates leads with ids of its own: a lookup by id works for updates only.",
                    "Use MODE UPDATE with MATCH ON id, or another lookup field such as email.");
        };
        s.make = [](const DestinationSettings &settings,
                    const SyncTarget &target) -> std::unique_ptr<Connector> {
            return std::make_unique<MarketoConnector>(settings, target);
        };
        return s;
    }();
    return spec;
}

} // namespace revetl
