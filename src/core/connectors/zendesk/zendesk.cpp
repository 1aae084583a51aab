#include "core/connectors/zendesk/zendesk.hpp"

#include "core/connectors/distinct_calls.hpp"
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
#include <map>
#include <set>

namespace revetl {

namespace {

// The poll steps: which call the job came from decides how its results map
// back to rows.
constexpr const char *kUpsertJob = "users_upsert";
constexpr const char *kDestroyJob = "users_destroy";

std::string Lower(std::string s) {
    std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return std::tolower(c); });
    return s;
}

// Zendesk's error texts: "description" with "details" ({"email":
// [{"description": "...", "error": "DuplicateValue"}]}) flattened, or a job
// result's "details" string.
std::string Details(const rapidjson::Value &details) {
    if (details.IsString())
        return JsonText(details);
    if (!details.IsObject())
        return {};
    std::string out;
    for (auto f = details.MemberBegin(); f != details.MemberEnd(); ++f) {
        if (!f->value.IsArray())
            continue;
        for (const auto &d : f->value.GetArray()) {
            std::string text = JsonMember(d, "description");
            if (text.empty())
                text = JsonMember(d, "error");
            if (!text.empty())
                out += (out.empty() ? "" : "; ") + text;
        }
    }
    return out;
}

std::string ErrorText(const rapidjson::Value &doc, const std::string &fallback) {
    std::string text = JsonMember(doc, "description");
    if (text.empty())
        text = JsonMember(doc, "message");
    if (text.empty() && doc.IsObject() && doc.HasMember("error") && doc["error"].IsObject())
        text = JsonMember(doc["error"], "message");
    if (doc.IsObject() && doc.HasMember("details")) {
        std::string details = Details(doc["details"]);
        if (!details.empty())
            text += (text.empty() ? "" : ": ") + details;
    }
    return text.empty() ? fallback : text;
}

// The first code a detail names (DuplicateValue, InvalidFormat, ...).
std::string DetailCode(const rapidjson::Value &doc) {
    if (!doc.IsObject() || !doc.HasMember("details") || !doc["details"].IsObject())
        return {};
    for (auto f = doc["details"].MemberBegin(); f != doc["details"].MemberEnd(); ++f)
        if (f->value.IsArray())
            for (const auto &d : f->value.GetArray()) {
                std::string code = JsonMember(d, "error");
                if (!code.empty())
                    return code;
            }
    return {};
}

// Zendesk's job ids are hex-like tokens: anything else is not put into a
// URL path.
bool ValidJobId(const std::string &id) {
    return !id.empty() && id.size() <= 64 && std::all_of(id.begin(), id.end(), [](unsigned char c) {
        return std::isalnum(c) || c == '-' || c == '_';
    });
}

void CheckSubdomain(const std::string &subdomain) {
    bool ok = !subdomain.empty() && subdomain.size() <= 63 && subdomain.front() != '-' &&
              subdomain.back() != '-' && std::all_of(subdomain.begin(), subdomain.end(), [](unsigned char c) {
                  return std::islower(c) || std::isdigit(c) || c == '-';
              });
    if (!ok)
        throw Error(sqlstate::kFdwInvalidOptionValue, "invalid value for option \"subdomain\"",
                    "A Zendesk subdomain is the first label of https://<subdomain>.zendesk.com: lower-case "
                    "letters, digits and hyphens.");
}

} // namespace

ZendeskConnector::ZendeskConnector(DestinationSettings settings, SyncTarget target)
    : settings_(std::move(settings)), target_(std::move(target)) {
    if (target_.object.empty())
        target_.object = "users";
    if (target_.match_on.empty())
        target_.match_on = "email";
    // API token auth is Basic with "{email}/token" as the user name.
    Credentials &c = settings_.credentials;
    if (!c.user.empty() && (c.user.size() < 6 || c.user.compare(c.user.size() - 6, 6, "/token") != 0))
        c.user += "/token";
}

std::string ZendeskConnector::Base() const {
    std::string base = settings_.url;
    while (!base.empty() && base.back() == '/')
        base.pop_back();
    return base;
}

HttpRequest ZendeskConnector::Request(const std::string &method, const std::string &url,
                                      std::string body) const {
    HttpRequest req;
    req.method = method;
    req.url = url;
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

PreparedRequest ZendeskConnector::Poll(const std::string &kind, const std::string &job_id) const {
    PreparedRequest p;
    p.http = Request("GET", Base() + "/api/v2/job_statuses/" + job_id, "");
    p.flow.step = kind;
    p.flow.job_id = job_id;
    return p;
}

std::string ZendeskConnector::MatchValue(const std::string &payload) const {
    rapidjson::Document doc;
    doc.Parse<rapidjson::kParseNumbersAsStringsFlag>(payload.c_str(), payload.size());
    if (doc.HasParseError() || !doc.IsObject())
        return {};
    return JsonMember(doc, target_.match_on.c_str());
}

std::vector<PreparedRequest>
ZendeskConnector::Prepare(const BatchContext &, const std::vector<Change> &changes,
                          const std::vector<size_t> &rows,
                          std::vector<std::pair<size_t, RowOutcome>> &immediate) {
    std::vector<PreparedRequest> out;
    DistinctValueCalls calls(kMaxUsers);
    std::vector<size_t> removals;
    for (size_t i : rows) {
        const Change &c = changes[i];
        if (c.op == Change::Op::Remove) {
            if (c.dest_id.empty())
                immediate.emplace_back(
                    i, UnresolvableRemoval("Zendesk", "Zendesk user id", "deleted", target_.match_on));
            else if (!std::all_of(c.dest_id.begin(), c.dest_id.end(),
                                  [](unsigned char x) { return std::isdigit(x); }))
                immediate.emplace_back(
                    i, RejectedRow(0, "no Zendesk user id is known for this row, so it cannot be deleted",
                                   "NO_RECORD_ID"));
            else
                removals.push_back(i);
            continue;
        }
        std::string match = MatchValue(c.payload);
        if (target_.match_on == "email")
            match = Lower(match);
        if (match.empty()) {
            immediate.emplace_back(
                i,
                RejectedRow(0, "the payload has no value for the MATCH ON field \"" + target_.match_on + "\"",
                            "NO_MATCH_VALUE"));
            continue;
        }
        // Zendesk applies a job's users one after the other: the same user
        // twice in one call would make its results depend on that order.
        calls.Add(i, match);
    }
    for (const auto &call : calls.calls()) {
        // Each payload is a JSON object rendered by PostgreSQL (jsonb): it
        // goes as it is, so that numbers keep their exact text.
        std::string body = "{\"users\":[";
        for (size_t j = 0; j < call.size(); j++)
            body += (j ? "," : "") + changes[call[j]].payload;
        body += "]}";
        PreparedRequest req;
        req.http = Request("POST", Base() + "/api/v2/users/create_or_update_many", std::move(body));
        req.rows = call;
        out.push_back(std::move(req));
    }
    for (size_t start = 0; start < removals.size(); start += kMaxUsers) {
        PreparedRequest req;
        std::string ids;
        for (size_t j = start; j < removals.size() && j < start + kMaxUsers; j++) {
            ids += (ids.empty() ? "" : ",") + changes[removals[j]].dest_id;
            req.rows.push_back(removals[j]);
        }
        req.http = Request("DELETE", Base() + "/api/v2/users/destroy_many?ids=" + UrlEncode(ids), "");
        req.flow.state = kDestroyJob;
        out.push_back(std::move(req));
    }
    return out;
}

Verdict ZendeskConnector::Interpret(const PreparedRequest &request, const std::vector<Change> &changes,
                                    const HttpResponse &response) {
    Verdict v;
    rapidjson::Document doc;
    doc.Parse(response.body.c_str(), response.body.size());
    const bool json = !doc.HasParseError() && doc.IsObject();
    const long status = response.status;
    const bool polling = !request.flow.job_id.empty();
    const std::string message = json ? ErrorText(doc, "") : Truncate(response.body, 300);

    if (status == 429) {
        // The per-minute limit: Retry-After says when the window rolls.
        v.kind = Verdict::Kind::Throttled;
        v.wait_ms = 60000;
        if (auto retry_after = response.Header("retry-after"))
            if (auto seconds = ParseRetryAfterSeconds(*retry_after, std::time(nullptr)))
                v.wait_ms = std::max(1L, *seconds) * 1000L;
        v.error = "Zendesk rate limit: " + Truncate(message.empty() ? "429 Too Many Requests" : message, 300);
        return v;
    }
    if (auto transient = TransientFailure(response, "Zendesk", message))
        return *transient;
    if (polling && status == 404) {
        // Zendesk keeps only recent jobs: this one is gone, with its results.
        v.kind = Verdict::Kind::Resend;
        v.error = "Zendesk no longer knows job " + request.flow.job_id;
        return v;
    }
    if (status == 401) {
        v.kind = Verdict::Kind::Fatal;
        v.error = "Zendesk refused the credentials (HTTP 401): " + Truncate(message, 300);
        return v;
    }
    if (status == 403) {
        v.kind = Verdict::Kind::Fatal;
        v.error = "Zendesk refused the bulk user import (HTTP 403): " +
                  Truncate(message.empty() ? "Forbidden" : message, 300) +
                  "; the account owner must enable bulk user import (Admin Center), and the API user must "
                  "be an admin";
        return v;
    }
    if (status == 404 || (status >= 300 && status < 400)) {
        v.kind = Verdict::Kind::Fatal;
        v.error = "Zendesk answered HTTP " + std::to_string(status) + " for " + RedactUrl(request.http.url) +
                  ": check the server's subdomain or url";
        return v;
    }
    if (status >= 400) {
        // 422 RecordInvalid and other refusals of the request: isolate the
        // refused user by halves, then record Zendesk's code for it.
        if (request.rows.size() > 1 && !polling) {
            v.kind = Verdict::Kind::Split;
            return v;
        }
        std::string code = json ? DetailCode(doc) : std::string();
        std::string error = json ? JsonMember(doc, "error") : std::string();
        if (code.empty())
            code = error.empty() ? "HTTP_" + std::to_string(status) : error;
        else if (!error.empty())
            code = error + "." + code;
        v.rows.assign(request.rows.size(),
                      RejectedRow(status, message.empty() ? "refused by Zendesk" : message, code));
        return v;
    }
    if (!json || !doc.HasMember("job_status") || !doc["job_status"].IsObject()) {
        v.kind = Verdict::Kind::Retry;
        v.error = "Zendesk answered HTTP " + std::to_string(status) + " without a job_status";
        return v;
    }
    const rapidjson::Value &job = doc["job_status"];
    if (!polling) {
        // The write was accepted as a job: poll it (its id is kept first).
        std::string id = JsonMember(job, "id");
        if (!ValidJobId(id)) {
            v.kind = Verdict::Kind::Fatal;
            v.error = "Zendesk answered with an invalid job id";
            return v;
        }
        v.kind = Verdict::Kind::Continue;
        v.next = Poll(request.flow.state == kDestroyJob ? kDestroyJob : kUpsertJob, id);
        v.job_accepted = true;
        return v;
    }
    return JobResults(request, changes, response);
}

Verdict ZendeskConnector::JobResults(const PreparedRequest &request, const std::vector<Change> &changes,
                                     const HttpResponse &response) const {
    Verdict v;
    rapidjson::Document doc;
    doc.Parse(response.body.c_str(), response.body.size());
    const rapidjson::Value &job = doc["job_status"];
    const long status = response.status;
    const std::string state = JsonMember(job, "status");
    if (state == "queued" || state == "working") {
        v.kind = Verdict::Kind::Continue;
        v.next = request;
        return v;
    }
    if (state != "completed") {
        // failed (or killed): the job applied nothing revetl can count on.
        std::string why = JsonMember(job, "message");
        v.rows.assign(request.rows.size(),
                      RejectedRow(status,
                                  "Zendesk job " + request.flow.job_id + " ended with status " +
                                      (state.empty() ? "(none)" : state) + (why.empty() ? "" : ": " + why),
                                  "JOB_" + Lower(state.empty() ? "unknown" : state)));
        return v;
    }
    const size_t n = request.rows.size();
    std::vector<std::optional<RowOutcome>> outcomes(n);
    const bool destroy = request.flow.step == kDestroyJob;
    std::map<std::string, size_t> by_id;
    if (destroy)
        for (size_t j = 0; j < n; j++)
            by_id[changes[request.rows[j]].dest_id] = j;
    const rapidjson::Value *results = nullptr;
    if (job.HasMember("results") && job["results"].IsArray())
        results = &job["results"];
    if (results) {
        size_t position = 0;
        for (const auto &r : results->GetArray()) {
            size_t j = position++;
            // Results are in request order; an index, where Zendesk gives
            // one, says so explicitly. A destroy job's results name ids.
            if (r.IsObject() && r.HasMember("index") && r["index"].IsUint64() && r["index"].GetUint64() < n)
                j = static_cast<size_t>(r["index"].GetUint64());
            if (destroy) {
                auto it = by_id.find(JsonMember(r, "id"));
                if (it != by_id.end())
                    j = it->second;
            }
            if (j >= n || outcomes[j])
                continue;
            const std::string result_status = JsonMember(r, "status");
            const std::string success = JsonMember(r, "success");
            const std::string error = JsonMember(r, "error");
            bool failed = result_status == "Failed" || success == "false" || !error.empty();
            if (failed) {
                std::string details = r.IsObject() && r.HasMember("details") ? Details(r["details"]) : "";
                outcomes[j] = RejectedRow(
                    status, details.empty() ? (error.empty() ? "refused by Zendesk" : error) : details,
                    error.empty() ? "Failed" : error);
                continue;
            }
            RowOutcome o;
            o.accepted = true;
            o.http_status = status;
            if (!destroy)
                o.dest_id = Truncate(JsonMember(r, "id"), 200);
            outcomes[j] = o;
        }
    }
    for (size_t j = 0; j < n; j++) {
        if (outcomes[j]) {
            v.rows.push_back(*outcomes[j]);
        } else if (destroy) {
            // A completed destroy job names only the users it could not
            // delete (or none): the others are gone.
            RowOutcome o;
            o.accepted = true;
            o.http_status = status;
            v.rows.push_back(o);
        } else {
            v.rows.push_back(
                RejectedRow(status, "Zendesk's job results did not mention this user", "NO_RESULT"));
        }
    }
    return v;
}

std::optional<PreparedRequest> ZendeskConnector::Resume(const BatchContext &, const std::vector<Change> &,
                                                        const FlowStep &step) {
    if (!ValidJobId(step.job_id) || (step.step != kUpsertJob && step.step != kDestroyJob))
        return std::nullopt;
    return Poll(step.step, step.job_id);
}

const ConnectorSpec &ZendeskSpec() {
    static const ConnectorSpec spec = [] {
        ConnectorSpec s;
        s.type = "zendesk";
        s.summary = "Zendesk Support users, upserted by email or external_id through bulk jobs.";
        s.server_options = CommonServerOptions();
        for (auto &o : s.server_options) {
            if (o.name == "url") {
                o.required = false;
                o.description = "Where requests go; by default https://<subdomain>.zendesk.com.";
            } else if (o.name == "rate_limit") {
                // The lowest plan (Team) allows 200 requests a minute.
                o.default_value = "200 per 1min";
            }
        }
        OptionSpec subdomain;
        subdomain.name = "subdomain";
        subdomain.kind = OptionKind::Text;
        subdomain.description = "The account's subdomain: requests go to https://<subdomain>.zendesk.com.";
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
        open_jobs.max = 30;
        open_jobs.description = "Jobs of one run queued at Zendesk at once (Zendesk allows 30 per account).";
        s.server_options.push_back(subdomain);
        s.server_options.push_back(interval);
        s.server_options.push_back(open_jobs);
        s.url_template = "https://{subdomain}.zendesk.com";
        // An agent's API token (user is the agent's email, password the
        // token), or an OAuth access token.
        s.auth = {AuthKind::Basic, AuthKind::Bearer};
        s.default_object = "users";
        ObjectSpec users;
        users.name = "users";
        users.modes = {"upsert", "mirror"};
        users.default_match_on = "email";
        users.match_on_hint = "Zendesk matches users on email or external_id.";
        s.objects = {users};
        s.max_batch_size = static_cast<int>(ZendeskConnector::kMaxUsers);
        s.returns_ids = true;
        s.idempotency_keys = false;
        s.example = "OPTIONS (type 'zendesk', subdomain 'acme')";
        s.check_server = [](const OptionList &server) {
            std::string url, sub;
            for (const auto &o : server) {
                if (o.first == "url")
                    url = o.second;
                else if (o.first == "subdomain")
                    sub = o.second;
            }
            if (url.empty() && sub.empty())
                throw Error(sqlstate::kFdwInvalidOptionValue,
                            "a revetl server of type \"zendesk\" needs the option \"subdomain\" or \"url\"",
                            {}, "For example: OPTIONS (type 'zendesk', subdomain 'acme').");
            if (!sub.empty())
                CheckSubdomain(sub);
        };
        s.check_target = [](const SyncTarget &target, const OptionList &, const std::string &sync_name,
                            const std::string &) {
            if (!target.match_on.empty() && target.match_on != "email" && target.match_on != "external_id")
                throw Error(
                    sqlstate::kInvalidParameterValue,
                    "sync \"" + sync_name + "\" cannot match Zendesk users on \"" + target.match_on + "\"",
                    {},
                    "Zendesk matches users on email or external_id: MATCH ON email or MATCH ON external_id.");
        };
        s.make = [](const DestinationSettings &settings,
                    const SyncTarget &target) -> std::unique_ptr<Connector> {
            return std::make_unique<ZendeskConnector>(settings, target);
        };
        return s;
    }();
    return spec;
}

} // namespace revetl
