#include "core/connectors/salesforce/salesforce.hpp"

#include "core/connectors/distinct_calls.hpp"
#include "core/connectors/json_text.hpp"

#include "core/common/error.hpp"
#include "core/connectors/options.hpp"
#include "core/delivery/retry_policy.hpp"

#include <rapidjson/document.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include <algorithm>
#include <cctype>
#include <ctime>
#include <set>
#include <strings.h>

namespace revetl {

namespace {

// The steps of a Bulk API 2.0 job. Only bulk_poll is kept by the host (the
// job is closed by then, so polling it is all a resumed run has to do).
constexpr const char *kBulkCreate = "bulk_create";
constexpr const char *kBulkUpload = "bulk_upload";
constexpr const char *kBulkClose = "bulk_close";
constexpr const char *kBulkPoll = "bulk_poll";
constexpr const char *kBulkSuccess = "bulk_success";
constexpr const char *kBulkFailed = "bulk_failed";
constexpr const char *kDelete = "delete";
// The most of a Bulk job's results read: they repeat the uploaded columns
// (plus sf__Id and sf__Created or sf__Error) of every row, 10,000 rows of a
// few kB each at the largest batch_size.
constexpr size_t kJobResultsMaxBytes = 64u << 20;

// Salesforce's API names are case-insensitive (MATCH ON customer_id__c names
// the field Customer_Id__c): the payload's member is found the same way.
std::string MemberNoCase(const rapidjson::Value &obj, const std::string &name) {
    if (!obj.IsObject())
        return {};
    for (auto m = obj.MemberBegin(); m != obj.MemberEnd(); ++m)
        if (m->name.GetStringLength() == name.size() &&
            strncasecmp(m->name.GetString(), name.c_str(), name.size()) == 0)
            return JsonText(m->value);
    return {};
}

bool SameName(const std::string &a, const std::string &b) {
    return a.size() == b.size() && strncasecmp(a.c_str(), b.c_str(), a.size()) == 0;
}

std::string JsonString(const std::string &s) {
    rapidjson::StringBuffer buf;
    rapidjson::Writer<rapidjson::StringBuffer> w(buf);
    w.String(s.c_str(), static_cast<rapidjson::SizeType>(s.size()));
    return std::string(buf.GetString(), buf.GetSize());
}

// Salesforce record ids: 15 or 18 letters and digits. Anything else is not
// put into a URL.
bool ValidRecordId(const std::string &id) {
    return (id.size() == 15 || id.size() == 18) &&
           std::all_of(id.begin(), id.end(), [](unsigned char c) { return std::isalnum(c); });
}

// Bulk job ids are record ids too (750...), but allow a little more.
bool ValidJobId(const std::string &id) {
    return !id.empty() && id.size() <= 64 &&
           std::all_of(id.begin(), id.end(), [](unsigned char c) { return std::isalnum(c); });
}

// An API name (Lead, Foo__c, Customer_Id__c, ns__Bar__c): a letter, then
// letters, digits and underscores, at most 80 characters in all (what
// Salesforce allows), so it is safe in a URL path.
bool ValidApiName(const std::string &name) {
    return !name.empty() && name.size() <= 80 && std::isalpha(static_cast<unsigned char>(name[0])) &&
           std::all_of(name.begin(), name.end(), [](unsigned char c) { return std::isalnum(c) || c == '_'; });
}

// The errors of Salesforce's REST API: [{"message": ..., "errorCode": ...}]
// (or one such object). Per-record errors say statusCode instead.
void ErrorOf(const rapidjson::Value &doc, std::string &code, std::string &message) {
    const rapidjson::Value *e = &doc;
    if (doc.IsArray()) {
        if (doc.Empty())
            return;
        e = &doc[0];
    }
    if (!e->IsObject())
        return;
    code = JsonMember(*e, "errorCode");
    if (code.empty())
        code = JsonMember(*e, "statusCode");
    message = JsonMember(*e, "message");
}

// A record's errors ([{statusCode, message, fields}]) as one code and one
// text (every error, the first one's code).
void RecordErrors(const rapidjson::Value &record, std::string &code, std::string &message) {
    if (!record.IsObject() || !record.HasMember("errors") || !record["errors"].IsArray())
        return;
    for (const auto &e : record["errors"].GetArray()) {
        std::string c = JsonMember(e, "statusCode");
        std::string m = JsonMember(e, "message");
        std::string fields;
        if (e.IsObject() && e.HasMember("fields") && e["fields"].IsArray())
            for (const auto &f : e["fields"].GetArray())
                fields += (fields.empty() ? "" : ", ") + JsonText(f);
        if (code.empty())
            code = c;
        if (!fields.empty())
            m += " (fields: " + fields + ")";
        message += (message.empty() ? "" : "; ") + (c.empty() ? m : c + ": " + m);
    }
}

// Results of Bulk jobs are CSV.
void SetAccept(HttpRequest &request, const char *type) {
    for (auto &h : request.headers)
        if (h.first == "Accept")
            h.second = type;
}

std::string CsvValue(const rapidjson::Value &v) {
    // Bulk API 2.0: an empty field leaves the value as it is; #N/A sets it
    // to null, which is what a JSON null means in the model.
    if (v.IsNull())
        return "#N/A";
    return JsonText(v);
}

// Sforce-Limit-Info is Salesforce's: kept only as printable text.
std::string CleanHeader(const std::string &value) {
    std::string out;
    for (unsigned char c : value)
        if (std::isalnum(c) || c == '=' || c == '/' || c == '-' || c == '_' || c == ',' || c == '.' ||
            c == ' ')
            out += static_cast<char>(c);
    return Truncate(out, 100);
}

} // namespace

std::string CsvField(const std::string &value) {
    bool quote = !value.empty() && (value.front() == ' ' || value.back() == ' ');
    for (char c : value)
        if (c == ',' || c == '"' || c == '\n' || c == '\r') {
            quote = true;
            break;
        }
    if (!quote)
        return value;
    std::string out = "\"";
    for (char c : value) {
        if (c == '"')
            out += '"';
        out += c;
    }
    out += '"';
    return out;
}

std::optional<std::vector<std::vector<std::string>>> ParseCsv(const std::string &text, size_t max_rows) {
    std::vector<std::vector<std::string>> rows;
    std::vector<std::string> row;
    std::string field;
    bool quoted = false, was_quoted = false, any = false;
    size_t i = 0;
    auto end_row = [&]() -> bool {
        row.push_back(std::move(field));
        field.clear();
        rows.push_back(std::move(row));
        row.clear();
        was_quoted = false;
        any = false;
        return rows.size() <= max_rows;
    };
    while (i < text.size()) {
        char c = text[i];
        if (quoted) {
            if (c == '"') {
                if (i + 1 < text.size() && text[i + 1] == '"') {
                    field += '"';
                    i += 2;
                    continue;
                }
                quoted = false;
            } else {
                field += c;
            }
            i++;
            continue;
        }
        if (c == '"') {
            if (!field.empty() || was_quoted)
                return std::nullopt; // a quote inside an unquoted field
            quoted = was_quoted = any = true;
        } else if (c == ',') {
            row.push_back(std::move(field));
            field.clear();
            was_quoted = false;
            any = true;
        } else if (c == '\r' || c == '\n') {
            if (c == '\r' && i + 1 < text.size() && text[i + 1] == '\n')
                i++;
            if (!end_row())
                return std::nullopt;
        } else {
            if (was_quoted)
                return std::nullopt; // text after a closing quote
            field += c;
            any = true;
        }
        i++;
    }
    if (quoted)
        return std::nullopt;
    if (any || !field.empty() || !row.empty())
        if (!end_row())
            return std::nullopt;
    return rows;
}

SalesforceConnector::SalesforceConnector(DestinationSettings settings, SyncTarget target)
    : settings_(std::move(settings)), target_(std::move(target)) {
    api_version_ = settings_.Option("api_version");
    if (api_version_.empty())
        api_version_ = "60.0";
    std::string threshold = settings_.Option("bulk_threshold");
    bulk_threshold_ = threshold.empty() ? 2000 : std::stoll(threshold);
}

std::string SalesforceConnector::Base() const {
    std::string base;
    if (settings_.credentials.oauth_token)
        base = settings_.credentials.oauth_token->instance_url;
    if (base.empty())
        base = settings_.url;
    while (!base.empty() && base.back() == '/')
        base.pop_back();
    return base;
}

std::string SalesforceConnector::Path(const std::string &rest) const {
    return Base() + "/services/data/v" + api_version_ + rest;
}

HttpRequest SalesforceConnector::Request(const std::string &method, const std::string &path, std::string body,
                                         const char *content_type) const {
    HttpRequest req;
    req.method = method;
    req.url = path;
    req.timeout_ms = settings_.timeout_ms;
    req.connect_timeout_ms = settings_.connect_timeout_ms;
    req.body = std::move(body);
    if (!req.body.empty())
        req.headers.emplace_back("Content-Type", content_type);
    req.headers.emplace_back("Accept", "application/json");
    for (const auto &h : settings_.headers)
        req.headers.push_back(h);
    ApplyAuth(settings_.credentials, req);
    return req;
}

PreparedRequest SalesforceConnector::Poll(const std::string &job_id) const {
    PreparedRequest p;
    p.http = Request("GET", Path("/jobs/ingest/" + job_id), "");
    p.flow.step = kBulkPoll;
    p.flow.job_id = job_id;
    return p;
}

bool SalesforceConnector::UsesBulk(int64_t planned_rows) const {
    return bulk_threshold_ > 0 && planned_rows > bulk_threshold_;
}

std::string SalesforceConnector::MatchValue(const Change &change) const {
    rapidjson::Document doc;
    doc.Parse<rapidjson::kParseNumbersAsStringsFlag>(change.payload.c_str(), change.payload.size());
    if (doc.HasParseError() || !doc.IsObject())
        return {};
    return MemberNoCase(doc, target_.match_on);
}

std::string SalesforceConnector::Csv(const std::vector<Change> &changes,
                                     const std::vector<size_t> &rows) const {
    std::vector<rapidjson::Document> docs(rows.size());
    std::vector<std::string> columns;
    std::set<std::string> seen;
    for (size_t j = 0; j < rows.size(); j++) {
        const std::string &p = changes[rows[j]].payload;
        docs[j].Parse<rapidjson::kParseNumbersAsStringsFlag>(p.c_str(), p.size());
        if (docs[j].HasParseError() || !docs[j].IsObject())
            return {};
        for (auto m = docs[j].MemberBegin(); m != docs[j].MemberEnd(); ++m) {
            std::string name(m->name.GetString(), m->name.GetStringLength());
            if (seen.insert(name).second)
                columns.push_back(name);
        }
    }
    std::string out;
    for (size_t c = 0; c < columns.size(); c++)
        out += (c ? "," : "") + CsvField(columns[c]);
    out += '\n';
    for (auto &doc : docs) {
        for (size_t c = 0; c < columns.size(); c++) {
            if (c)
                out += ',';
            auto it = doc.FindMember(columns[c].c_str());
            if (it != doc.MemberEnd())
                out += CsvField(CsvValue(it->value));
        }
        out += '\n';
    }
    return out;
}

std::vector<PreparedRequest>
SalesforceConnector::Prepare(const BatchContext &context, const std::vector<Change> &changes,
                             const std::vector<size_t> &rows,
                             std::vector<std::pair<size_t, RowOutcome>> &immediate) {
    std::vector<PreparedRequest> out;
    // The sync's mode decides the call (MIRROR upserts, and deletes).
    const std::string op = target_.mode == "insert" || target_.mode == "update" ? target_.mode : "upsert";
    const bool by_id = SameName(target_.match_on, "Id");
    std::vector<size_t> removals, writes;
    std::vector<std::string> matches;
    for (size_t i : rows) {
        const Change &c = changes[i];
        if (c.op == Change::Op::Remove) {
            if (c.dest_id.empty())
                immediate.emplace_back(i, UnresolvableRemoval("Salesforce", "Salesforce record id", "deleted",
                                                              target_.match_on));
            else if (!ValidRecordId(c.dest_id))
                immediate.emplace_back(
                    i, UnusableRecordIdRemoval("Salesforce",
                                               "the Salesforce record id kept for this row is not one "
                                               "Salesforce gives, so the record cannot be deleted",
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
        std::string match;
        if (op != "insert") {
            match = MemberNoCase(doc, target_.match_on);
            if (match.empty() || (by_id && !ValidRecordId(match))) {
                immediate.emplace_back(
                    i, RejectedRow(0,
                                   "the payload has no " + std::string(by_id ? "valid " : "") +
                                       "value for the MATCH ON field \"" + target_.match_on + "\"",
                                   "NO_MATCH_VALUE"));
                continue;
            }
        }
        // An upsert names the record by its external id in the URL and
        // Salesforce refuses records that also carry an Id.
        if (op == "upsert" && !MemberNoCase(doc, "Id").empty()) {
            immediate.emplace_back(
                i, RejectedRow(0, "an upsert by external id cannot carry an Id field: drop Id from the model",
                               "ID_IN_PAYLOAD"));
            continue;
        }
        writes.push_back(i);
        matches.push_back(match);
    }

    // Calls (or jobs) of at most `cap` rows, never the same match value
    // twice in one: Salesforce refuses duplicates within a request
    // (DUPLICATE_VALUE), and results are mapped back by that value.
    const bool bulk = op != "insert" && UsesBulk(context.planned_rows);
    const size_t cap = bulk ? static_cast<size_t>(10000) : kMaxCollection;
    DistinctValueCalls spread(cap);
    for (size_t w = 0; w < writes.size(); w++)
        spread.Add(writes[w], matches[w]);
    std::vector<std::vector<size_t>> calls = spread.calls();

    if (bulk) {
        // A job's CSV must fit one upload: halve the rows until it does.
        std::vector<std::vector<size_t>> jobs;
        while (!calls.empty()) {
            std::vector<size_t> call = std::move(calls.back());
            calls.pop_back();
            if (call.size() > 1 && Csv(changes, call).size() > kMaxCsvBytes) {
                std::vector<size_t> half(call.begin() + static_cast<long>(call.size() / 2), call.end());
                call.resize(call.size() / 2);
                calls.push_back(std::move(call));
                calls.push_back(std::move(half));
                continue;
            }
            jobs.push_back(std::move(call));
        }
        std::reverse(jobs.begin(), jobs.end());
        for (auto &job : jobs) {
            std::string body = "{\"object\":" + JsonString(target_.object) +
                               ",\"operation\":" + JsonString(op == "update" ? "update" : "upsert");
            if (op != "update")
                body += ",\"externalIdFieldName\":" + JsonString(target_.match_on);
            body += ",\"contentType\":\"CSV\",\"columnDelimiter\":\"COMMA\",\"lineEnding\":\"LF\"}";
            PreparedRequest req;
            req.http = Request("POST", Path("/jobs/ingest"), std::move(body));
            req.rows = std::move(job);
            req.flow.step = kBulkCreate;
            out.push_back(std::move(req));
        }
    } else {
        const std::string type = "{\"attributes\":{\"type\":" + JsonString(target_.object) + "}";
        for (const auto &call : calls) {
            // Each payload is a JSON object rendered by PostgreSQL (jsonb):
            // it goes as it is after the attributes every record needs, so
            // that numbers keep their exact text.
            std::string body = "{\"allOrNone\":false,\"records\":[";
            for (size_t j = 0; j < call.size(); j++) {
                const std::string &p = changes[call[j]].payload;
                size_t open = p.find('{');
                std::string rest = p.substr(open + 1);
                size_t first = rest.find_first_not_of(" \t\r\n");
                body += (j ? "," : "") + type +
                        (first != std::string::npos && rest[first] == '}' ? "" : ",") + rest;
            }
            body += "]}";
            PreparedRequest req;
            if (op == "insert")
                req.http = Request("POST", Path("/composite/sobjects"), std::move(body));
            else if (by_id)
                req.http = Request("PATCH", Path("/composite/sobjects"), std::move(body));
            else
                req.http =
                    Request("PATCH", Path("/composite/sobjects/" + target_.object + "/" + target_.match_on),
                            std::move(body));
            req.rows = call;
            out.push_back(std::move(req));
        }
    }
    for (size_t start = 0; start < removals.size(); start += kMaxCollection) {
        PreparedRequest req;
        std::string ids;
        for (size_t j = start; j < removals.size() && j < start + kMaxCollection; j++) {
            ids += (ids.empty() ? "" : ",") + changes[removals[j]].dest_id;
            req.rows.push_back(removals[j]);
        }
        req.http = Request("DELETE", Path("/composite/sobjects?ids=" + ids + "&allOrNone=false"), "");
        req.flow.state = kDelete;
        out.push_back(std::move(req));
    }
    return out;
}

Verdict SalesforceConnector::Interpret(const PreparedRequest &request, const std::vector<Change> &changes,
                                       const HttpResponse &response) {
    if (auto info = response.Header("sforce-limit-info")) {
        std::string clean = CleanHeader(*info);
        if (!clean.empty())
            limit_info_ = clean;
    }
    Verdict v;
    rapidjson::Document doc;
    doc.Parse(response.body.c_str(), response.body.size());
    const bool json = !doc.HasParseError();
    const long status = response.status;
    const bool polling = !request.flow.job_id.empty();
    std::string code, message;
    if (json && status >= 300)
        ErrorOf(doc, code, message);
    if (message.empty() && status >= 300)
        message = Truncate(response.body, 300);
    const std::string usage = limit_info_.empty() ? "" : " (" + limit_info_ + ")";

    if (code == "REQUEST_LIMIT_EXCEEDED") {
        // The org's rolling 24-hour API request allowance is spent: every
        // further call would be refused the same way.
        v.kind = Verdict::Kind::Fatal;
        v.error = "Salesforce refused the call with REQUEST_LIMIT_EXCEEDED: the org's API request limit is "
                  "spent" +
                  usage + ": " + Truncate(message, 300);
        return v;
    }
    if (status == 401) {
        // INVALID_SESSION_ID: the access token expired or was revoked.
        v.kind = Verdict::Kind::AuthExpired;
        v.error = "Salesforce refused the session (HTTP 401 " + (code.empty() ? "" : code + ": ") +
                  Truncate(message, 300) + ")";
        return v;
    }
    if (status == 429) {
        v.kind = Verdict::Kind::Throttled;
        v.wait_ms = 60000;
        if (auto retry_after = response.Header("retry-after"))
            if (auto seconds = ParseRetryAfterSeconds(*retry_after, std::time(nullptr)))
                v.wait_ms = std::max(1L, *seconds) * 1000L;
        v.error = "Salesforce asked to slow down (HTTP 429)";
        return v;
    }
    if (auto transient = TransientFailure(response, "Salesforce", message))
        return *transient;
    if (polling && status == 404) {
        // Salesforce deletes jobs after 7 days: this one is gone.
        v.kind = Verdict::Kind::Resend;
        v.error = "Salesforce no longer knows job " + request.flow.job_id;
        return v;
    }
    if (status == 403 || status == 404 || (status >= 300 && status < 400)) {
        v.kind = Verdict::Kind::Fatal;
        v.error = "Salesforce answered HTTP " + std::to_string(status) + (code.empty() ? "" : " " + code) +
                  " for " + RedactUrl(request.http.url) + ": " + Truncate(message, 300) +
                  (status == 403 ? "; check the connected app's scopes and the user's permissions"
                                 : "; check the server's url, api_version and the sync's OBJECT");
        return v;
    }
    if (status >= 400) {
        // The request was malformed for Salesforce (a field it does not
        // know, a value of the wrong type in one record): isolate the
        // record by halves, then record Salesforce's code for it.
        if (request.rows.size() > 1 && request.flow.step.empty() && request.flow.state != kDelete) {
            v.kind = Verdict::Kind::Split;
            return v;
        }
        v.rows.assign(request.rows.size(),
                      RejectedRow(status, message.empty() ? "refused by Salesforce" : message,
                                  code.empty() ? "HTTP_" + std::to_string(status) : code));
        return v;
    }
    if (!request.flow.step.empty())
        return BulkStep(request, changes, response);
    return CollectionResults(request, changes, response);
}

Verdict SalesforceConnector::CollectionResults(const PreparedRequest &request, const std::vector<Change> &,
                                               const HttpResponse &response) const {
    Verdict v;
    rapidjson::Document doc;
    doc.Parse(response.body.c_str(), response.body.size());
    if (doc.HasParseError() || !doc.IsArray()) {
        v.kind = Verdict::Kind::Retry;
        v.error =
            "Salesforce answered HTTP " + std::to_string(response.status) + " without a list of results";
        return v;
    }
    const bool removal = request.flow.state == kDelete;
    // Results come in request order, one per record (or id).
    const size_t n = request.rows.size();
    for (size_t j = 0; j < n; j++) {
        if (j >= doc.Size()) {
            v.rows.push_back(
                RejectedRow(response.status, "Salesforce's answer did not mention this record", "NO_RESULT"));
            continue;
        }
        const rapidjson::Value &r = doc[static_cast<rapidjson::SizeType>(j)];
        std::string code, message;
        RecordErrors(r, code, message);
        const bool success = JsonMember(r, "success") == "true";
        // A record already deleted is what a removal wanted.
        if (success || (removal && code == "ENTITY_IS_DELETED")) {
            RowOutcome o;
            o.accepted = true;
            o.http_status = response.status;
            if (!removal) {
                std::string id = JsonMember(r, "id");
                if (ValidRecordId(id))
                    o.dest_id = id;
            }
            v.rows.push_back(o);
            continue;
        }
        v.rows.push_back(RejectedRow(response.status, message.empty() ? "refused by Salesforce" : message,
                                     code.empty() ? "UNKNOWN_ERROR" : code));
    }
    return v;
}

Verdict SalesforceConnector::BulkStep(const PreparedRequest &request, const std::vector<Change> &changes,
                                      const HttpResponse &response) const {
    Verdict v;
    const std::string &step = request.flow.step;
    const long status = response.status;
    if (step == kBulkCreate || step == kBulkUpload || step == kBulkClose || step == kBulkPoll) {
        rapidjson::Document doc;
        doc.Parse(response.body.c_str(), response.body.size());
        const bool json = !doc.HasParseError() && doc.IsObject();
        if (step == kBulkCreate) {
            std::string id = json ? JsonMember(doc, "id") : "";
            if (!ValidJobId(id)) {
                v.kind = Verdict::Kind::Fatal;
                v.error = "Salesforce answered the creation of an ingest job without a valid job id";
                return v;
            }
            std::string csv = Csv(changes, request.rows);
            PreparedRequest next;
            next.http = Request("PUT", Path("/jobs/ingest/" + id + "/batches"), std::move(csv), "text/csv");
            next.flow.step = kBulkUpload;
            next.flow.state = id;
            v.kind = Verdict::Kind::Continue;
            v.next = std::move(next);
            v.wait_ms = 0;
            return v;
        }
        if (step == kBulkUpload) {
            // The job starts only once its upload is declared complete.
            PreparedRequest next;
            next.http = Request("PATCH", Path("/jobs/ingest/" + request.flow.state),
                                "{\"state\":\"UploadComplete\"}");
            next.flow.step = kBulkClose;
            next.flow.state = request.flow.state;
            v.kind = Verdict::Kind::Continue;
            v.next = std::move(next);
            v.wait_ms = 0;
            return v;
        }
        if (step == kBulkClose) {
            // Closed: from here the job is kept, and a killed run polls it.
            v.kind = Verdict::Kind::Continue;
            v.next = Poll(request.flow.state);
            v.job_accepted = true;
            return v;
        }
        const std::string state = json ? JsonMember(doc, "state") : "";
        if (state == "Open" || state == "UploadComplete" || state == "InProgress") {
            v.kind = Verdict::Kind::Continue;
            v.next = request;
            return v;
        }
        if (state != "JobComplete") {
            std::string why = json ? JsonMember(doc, "errorMessage") : "";
            v.rows.assign(request.rows.size(),
                          RejectedRow(status,
                                      "Salesforce job " + request.flow.job_id + " ended " +
                                          (state.empty() ? "without a state" : state) +
                                          (why.empty() ? "" : ": " + why),
                                      state == "Aborted" ? "JOB_ABORTED" : "JOB_FAILED"));
            return v;
        }
        PreparedRequest next;
        next.http = Request("GET", Path("/jobs/ingest/" + request.flow.job_id + "/successfulResults/"), "");
        next.http.max_response_body = kJobResultsMaxBytes;
        SetAccept(next.http, "text/csv");
        next.flow.step = kBulkSuccess;
        next.flow.job_id = request.flow.job_id;
        v.kind = Verdict::Kind::Continue;
        v.next = std::move(next);
        v.wait_ms = 0;
        return v;
    }

    // The results: CSV with sf__Id and sf__Created (successful) or sf__Id
    // and sf__Error (failed) before the uploaded columns, mapped back to
    // rows by the MATCH ON column (external id, or Id for updates).
    const bool success = step == kBulkSuccess;
    const size_t n = request.rows.size();
    auto csv = ParseCsv(response.body, n + 1);
    if (!csv) {
        v.kind = Verdict::Kind::Retry;
        v.error = "Salesforce answered job " + request.flow.job_id + "'s results with malformed CSV";
        return v;
    }
    std::map<std::string, size_t> by_match;
    for (size_t j = 0; j < n; j++) {
        std::string m = MatchValue(changes[request.rows[j]]);
        if (!m.empty())
            by_match.emplace(m, j);
    }
    std::vector<std::optional<RowOutcome>> outcomes(n);
    if (!csv->empty()) {
        const auto &header = (*csv)[0];
        auto column = [&](const std::string &name) {
            auto it = std::find_if(header.begin(), header.end(),
                                   [&](const std::string &h) { return SameName(h, name); });
            return it == header.end() ? header.size() : static_cast<size_t>(it - header.begin());
        };
        const size_t id_col = column("sf__Id"), error_col = column("sf__Error");
        const size_t match_col = column(target_.match_on);
        for (size_t r = 1; r < csv->size(); r++) {
            const auto &row = (*csv)[r];
            std::string match = match_col < row.size() ? row[match_col] : "";
            // An update's results name the record in sf__Id as well.
            if (match.empty() && SameName(target_.match_on, "Id") && id_col < row.size())
                match = row[id_col];
            auto it = by_match.find(match);
            if (it == by_match.end() || outcomes[it->second])
                continue;
            if (success) {
                RowOutcome o;
                o.accepted = true;
                o.http_status = status;
                if (id_col < row.size() && ValidRecordId(row[id_col]))
                    o.dest_id = row[id_col];
                outcomes[it->second] = o;
            } else {
                // "REQUIRED_FIELD_MISSING:Required fields are missing: [LastName]:LastName --"
                std::string error = error_col < row.size() ? row[error_col] : "";
                size_t colon = error.find(':');
                std::string code = colon == std::string::npos ? "UNKNOWN_ERROR" : error.substr(0, colon);
                std::string text = colon == std::string::npos ? error : error.substr(colon + 1);
                outcomes[it->second] =
                    RejectedRow(status, text.empty() ? "refused by Salesforce" : text, code);
            }
        }
    }
    PreparedRequest next;
    if (success) {
        next.http = Request("GET", Path("/jobs/ingest/" + request.flow.job_id + "/failedResults/"), "");
        next.http.max_response_body = kJobResultsMaxBytes;
        SetAccept(next.http, "text/csv");
        next.flow.step = kBulkFailed;
        next.flow.job_id = request.flow.job_id;
    }
    for (size_t j = 0; j < n; j++) {
        if (outcomes[j])
            v.rows.push_back(*outcomes[j]);
        else if (success)
            next.rows.push_back(request.rows[j]), v.rows.emplace_back();
        else
            v.rows.push_back(
                RejectedRow(status,
                            "in neither the successful nor the failed results of Salesforce job " +
                                request.flow.job_id + " (unprocessed)",
                            "UNPROCESSED"));
    }
    if (success && !next.rows.empty()) {
        v.kind = Verdict::Kind::Continue;
        v.next = std::move(next);
        v.wait_ms = 0;
    }
    return v;
}

std::optional<PreparedRequest> SalesforceConnector::Resume(const BatchContext &, const std::vector<Change> &,
                                                           const FlowStep &step) {
    if (!ValidJobId(step.job_id) || step.step != kBulkPoll)
        return std::nullopt;
    return Poll(step.job_id);
}

std::string SalesforceConnector::RunNote() const {
    return limit_info_.empty() ? std::string() : "Salesforce Sforce-Limit-Info " + limit_info_;
}

const ConnectorSpec &SalesforceSpec() {
    static const ConnectorSpec spec = [] {
        ConnectorSpec s;
        s.type = "salesforce";
        s.summary = "Salesforce sObjects (Lead, Contact, custom objects), upserted by an external id field "
                    "through sObject Collections, or Bulk API 2.0 jobs for large runs.";
        s.server_options = CommonServerOptions();
        for (auto &o : s.server_options) {
            if (o.name == "url") {
                o.description = "The org's URL (https://<MyDomain>.my.salesforce.com); with OAuth the token "
                                "answer's instance_url is used instead.";
            } else if (o.name == "batch_size") {
                // One batch is one Bulk API job in large runs: larger than a
                // Collections call (200, which Prepare splits into).
                o.default_value = "2000";
            }
        }
        OptionSpec version;
        version.name = "api_version";
        version.kind = OptionKind::Text;
        version.default_value = "60.0";
        version.description = "The REST API version (46.0 or later: sObject Collections upsert).";
        OptionSpec threshold;
        threshold.name = "bulk_threshold";
        threshold.kind = OptionKind::Integer;
        threshold.default_value = "2000";
        threshold.min = 0;
        threshold.max = 1000000000;
        threshold.description = "Runs that plan more changes than this write through Bulk API 2.0 jobs; 0: "
                                "never.";
        OptionSpec interval;
        interval.name = "job_poll_interval";
        interval.kind = OptionKind::Duration;
        interval.default_value = "1s";
        interval.min = 10;
        interval.max = 60000;
        interval.description =
            "How long after a Bulk API job is closed its first poll goes out (then twice as "
            "late each time, up to 30s).";
        OptionSpec open_jobs;
        open_jobs.name = "max_open_jobs";
        open_jobs.kind = OptionKind::Integer;
        open_jobs.default_value = "8";
        open_jobs.min = 1;
        open_jobs.max = 100;
        open_jobs.description = "Bulk API jobs of one run open at Salesforce at once.";
        s.server_options.push_back(version);
        s.server_options.push_back(threshold);
        s.server_options.push_back(interval);
        s.server_options.push_back(open_jobs);
        // OAuth 2.0 (refresh token of a connected app), or a session id.
        s.auth = {AuthKind::OAuth, AuthKind::Bearer};
        s.default_object = "";
        ObjectSpec any;
        any.name = "*";
        any.modes = {"upsert", "update", "insert", "mirror"};
        any.default_match_on = "";
        any.match_on_needed = true;
        any.match_on_hint = "Salesforce upserts match on an external id field (MATCH ON Customer_Id__c); "
                            "MODE UPDATE may match on Id.";
        s.objects = {any};
        s.max_batch_size = 10000;
        s.returns_ids = true;
        s.idempotency_keys = false;
        s.example = "OPTIONS (type 'salesforce', url 'https://acme.my.salesforce.com')";
        s.check_server = [](const OptionList &server) {
            for (const auto &o : server) {
                if (o.first != "api_version")
                    continue;
                const std::string &v = o.second;
                size_t dot = v.find('.');
                bool ok = dot != std::string::npos && dot > 0 && dot <= 3 && dot + 1 < v.size() &&
                          v.size() <= 8 &&
                          std::all_of(v.begin(), v.end(),
                                      [](unsigned char c) { return std::isdigit(c) || c == '.'; }) &&
                          v.find('.', dot + 1) == std::string::npos;
                if (!ok || std::stod(v) < 46.0)
                    throw Error(sqlstate::kFdwInvalidOptionValue, "invalid value for option \"api_version\"",
                                {}, "Give a Salesforce API version of 46.0 or later, such as '60.0'.");
            }
        };
        s.check_target = [](const SyncTarget &target, const OptionList &, const std::string &sync_name,
                            const std::string &) {
            if (!ValidApiName(target.object))
                throw Error(sqlstate::kInvalidParameterValue,
                            "sync \"" + sync_name + "\" must name a Salesforce object", {},
                            "Give the object's API name: OBJECT Lead, OBJECT Contact or OBJECT Foo__c.");
            if (target.mode == "insert")
                return;
            if (target.match_on.empty() || !ValidApiName(target.match_on))
                throw Error(
                    sqlstate::kInvalidParameterValue,
                    "sync \"" + sync_name + "\" needs MATCH ON for Salesforce MODE " + target.mode, {},
                    "Name an external id field of the object: MATCH ON Customer_Id__c (or MATCH ON Id "
                    "with MODE UPDATE).");
            if (SameName(target.match_on, "Id") && target.mode != "update")
                throw Error(
                    sqlstate::kInvalidParameterValue,
                    "sync \"" + sync_name + "\" cannot " + target.mode + " Salesforce records by Id",
                    "Salesforce creates records with ids of its own, so an upsert matches on an "
                    "external id field.",
                    "Use an external id field (MATCH ON Customer_Id__c), or MODE UPDATE with MATCH ON Id.");
            if (!SameName(target.match_on, "Id") && target.mode == "update")
                throw Error(sqlstate::kInvalidParameterValue,
                            "sync \"" + sync_name + "\" can update Salesforce records only by Id", {},
                            "Use MODE UPDATE MATCH ON Id, or MODE UPSERT with an external id field.");
        };
        s.make = [](const DestinationSettings &settings,
                    const SyncTarget &target) -> std::unique_ptr<Connector> {
            return std::make_unique<SalesforceConnector>(settings, target);
        };
        return s;
    }();
    return spec;
}

} // namespace revetl
