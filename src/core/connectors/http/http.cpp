#include "core/connectors/http/http.hpp"

#include "core/common/encoding.hpp"
#include "core/common/error.hpp"
#include "core/delivery/retry_policy.hpp"

#include <rapidjson/document.h>
#include <rapidjson/pointer.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include <cctype>
#include <ctime>

namespace revetl {

namespace {

const char *kJson = "application/json";

OptionSpec Option(std::string name, OptionKind kind, std::string default_value, std::string description,
                  std::vector<std::string> choices = {}, long min = 0, long max = 0) {
    OptionSpec o;
    o.name = std::move(name);
    o.kind = kind;
    o.default_value = std::move(default_value);
    o.description = std::move(description);
    o.choices = std::move(choices);
    o.min = min;
    o.max = max;
    return o;
}

std::string Get(const OptionList &options, const std::string &name, const std::string &fallback = {}) {
    for (const auto &o : options)
        if (o.first == name)
            return o.second;
    return fallback;
}

// A path template: empty, or starting with "/" or "?" (so it can never move
// the request to another host than url's), without white space, with
// balanced {column} placeholders.
void CheckPathTemplate(const std::string &option, const std::string &path) {
    bool ok = path.empty() || path[0] == '/' || path[0] == '?';
    bool open = false;
    std::string name;
    for (char c : path) {
        if (!ok)
            break;
        if (std::isspace(static_cast<unsigned char>(c)))
            ok = false;
        else if (c == '{') {
            ok = !open;
            open = true;
            name.clear();
        } else if (c == '}') {
            ok = open && !name.empty();
            open = false;
        } else if (open) {
            ok = std::isalnum(static_cast<unsigned char>(c)) || c == '_';
            name += c;
        }
    }
    if (!ok || open)
        throw Error(sqlstate::kFdwInvalidOptionValue,
                    "invalid value for option \"" + option + "\": \"" + path + "\"",
                    "A path starts with / or ? and may name key columns in braces, without white space.",
                    "For example: '/v1/users/{id}'.");
}

std::string JsonText(const rapidjson::Value &v) {
    rapidjson::StringBuffer buf;
    rapidjson::Writer<rapidjson::StringBuffer> w(buf);
    v.Accept(w);
    return std::string(buf.GetString(), buf.GetSize());
}

// A form field's value: strings as they are, numbers as their exact text,
// NULL as empty, objects and arrays as JSON.
std::string FormValue(const rapidjson::Value &v) {
    if (v.IsNull())
        return "";
    if (v.IsString())
        return std::string(v.GetString(), v.GetStringLength());
    if (v.IsBool())
        return v.GetBool() ? "true" : "false";
    return JsonText(v);
}

std::string Field(const rapidjson::Value &obj, const char *name) {
    if (!obj.IsObject())
        return {};
    auto it = obj.FindMember(name);
    if (it == obj.MemberEnd())
        return {};
    if (it->value.IsString())
        return std::string(it->value.GetString(), it->value.GetStringLength());
    if (it->value.IsNumber() || it->value.IsBool())
        return JsonText(it->value);
    return {};
}

RowOutcome Refused(long status, const std::string &reason, const std::string &code) {
    RowOutcome o;
    o.accepted = false;
    o.http_status = status;
    o.reason = Truncate(reason.empty() ? "refused by the destination" : reason, 1000);
    o.error_code = Truncate(code, 100);
    return o;
}

} // namespace

bool StatusSet::Contains(long status) const {
    for (const auto &r : ranges)
        if (status >= r.first && status <= r.second)
            return true;
    return false;
}

StatusSet ParseStatusSet(const std::string &option, const std::string &text) {
    StatusSet set;
    size_t pos = 0;
    bool ok = !text.empty();
    while (ok && pos <= text.size()) {
        size_t comma = text.find(',', pos);
        std::string item = text.substr(pos, comma == std::string::npos ? std::string::npos : comma - pos);
        size_t dash = item.find('-');
        try {
            size_t used = 0;
            long low = std::stol(item.substr(0, dash), &used);
            ok = used == item.substr(0, dash).size();
            long high = low;
            if (ok && dash != std::string::npos) {
                std::string rest = item.substr(dash + 1);
                high = std::stol(rest, &used);
                ok = used == rest.size();
            }
            ok = ok && low >= 100 && high <= 599 && low <= high;
            set.ranges.emplace_back(low, high);
        } catch (const std::exception &) {
            ok = false;
        }
        if (comma == std::string::npos)
            break;
        pos = comma + 1;
    }
    if (!ok)
        throw Error(sqlstate::kFdwInvalidOptionValue,
                    "invalid value for option \"" + option + "\": \"" + text + "\"",
                    "A status list is comma-separated codes or ranges from 100 to 599.",
                    "For example: '200-299,304'.");
    return set;
}

std::string ExpandPathTemplate(const std::string &path, const std::string &key_json) {
    if (path.find('{') == std::string::npos)
        return path;
    rapidjson::Document key;
    key.Parse<rapidjson::kParseNumbersAsStringsFlag>(key_json.c_str(), key_json.size());
    std::string out;
    size_t i = 0;
    while (i < path.size()) {
        size_t open = path.find('{', i);
        if (open == std::string::npos) {
            out += path.substr(i);
            break;
        }
        size_t close = path.find('}', open);
        out += path.substr(i, open - i);
        std::string name = path.substr(open + 1, close - open - 1);
        auto it = key.IsObject() ? key.FindMember(name.c_str()) : key.MemberEnd();
        if (!key.IsObject() || it == key.MemberEnd() || it->value.IsNull())
            throw Error(sqlstate::kInvalidParameterValue,
                        "the path template names {" + name + "}, which is not a key column with a value");
        out += UrlEncode(FormValue(it->value));
        i = close + 1;
    }
    return out;
}

HttpConnector::HttpConnector(DestinationSettings settings, SyncTarget target)
    : settings_(std::move(settings)), target_(std::move(target)) {
    const OptionList &o = settings_.server_options;
    add_ = {Get(o, "add_method", "POST"), Get(o, "add_path")};
    change_ = {Get(o, "change_method", add_.method), Get(o, "change_path", add_.path)};
    remove_ = {Get(o, "remove_method"), Get(o, "remove_path", add_.path)};
    body_ = Get(o, "body", "array");
    body_key_ = Get(o, "body_key", "records");
    per_request_ = body_ == "record" || body_ == "form"
                       ? 1
                       : static_cast<int>(ParseBoundedInt("records_per_request",
                                                          Get(o, "records_per_request", "100"), 1, 10000));
    success_ = ParseStatusSet("success_statuses", Get(o, "success_statuses", "200-299"));
    retry_ = ParseStatusSet("retry_statuses", Get(o, "retry_statuses", "408,425,429,500-599"));
    errors_pointer_ = Get(o, "errors_pointer");
}

const HttpConnector::Operation *HttpConnector::OperationFor(Change::Op op) const {
    if (op == Change::Op::Remove)
        return remove_.method.empty() ? nullptr : &remove_;
    // MODE UPDATE changes records the destination has, whatever the plan
    // calls the row.
    if (op == Change::Op::Change || target_.mode == "update")
        return &change_;
    return &add_;
}

HttpRequest HttpConnector::Request(const Operation &op, const std::string &url, std::string body,
                                   const char *content_type) const {
    HttpRequest req;
    req.method = op.method;
    req.url = url;
    req.timeout_ms = settings_.timeout_ms;
    req.connect_timeout_ms = settings_.connect_timeout_ms;
    req.body = std::move(body);
    if (content_type)
        req.headers.emplace_back("Content-Type", content_type);
    for (const auto &h : settings_.headers)
        req.headers.push_back(h);
    ApplyAuth(settings_.credentials, req);
    return req;
}

std::vector<PreparedRequest> HttpConnector::Prepare(const BatchContext &, const std::vector<Change> &changes,
                                                    const std::vector<size_t> &rows,
                                                    std::vector<std::pair<size_t, RowOutcome>> &immediate) {
    std::string base = settings_.url;
    // One request per (operation, URL), in plan order, up to per_request_ rows.
    struct Group {
        const Operation *op;
        std::string url;
        std::vector<size_t> rows;
    };
    std::vector<Group> groups;
    for (size_t i : rows) {
        const Change &c = changes[i];
        const Operation *op = OperationFor(c.op);
        if (!op) {
            immediate.emplace_back(i,
                                   Refused(0, "the server has no remove_method, so removed rows are not sent",
                                           "NO_REMOVE_OPERATION"));
            continue;
        }
        std::string url;
        try {
            url = base + ExpandPathTemplate(op->path, c.key);
        } catch (const Error &e) {
            immediate.emplace_back(i, Refused(0, e.what(), "PATH_TEMPLATE"));
            continue;
        }
        // Rows going with the same method to the same URL share a request
        // (an added and a changed row alike, when both operations agree);
        // removals, which send keys, never share one with writes.
        if (groups.empty() || groups.back().op->method != op->method || groups.back().url != url ||
            (groups.back().op == &remove_) != (op == &remove_) ||
            groups.back().rows.size() >= static_cast<size_t>(per_request_))
            groups.push_back({op, url, {}});
        groups.back().rows.push_back(i);
    }

    std::vector<PreparedRequest> out;
    for (const Group &g : groups) {
        PreparedRequest req;
        req.rows = g.rows;
        // What a record sends: its payload, or its key when it is removed.
        auto item = [&](size_t i) -> const std::string & {
            return changes[i].op == Change::Op::Remove ? changes[i].key : changes[i].payload;
        };
        if (body_ == "record") {
            bool no_body = g.op->method == "DELETE";
            req.http =
                Request(*g.op, g.url, no_body ? std::string() : item(g.rows[0]), no_body ? nullptr : kJson);
        } else if (body_ == "form") {
            rapidjson::Document doc;
            const std::string &text = item(g.rows[0]);
            doc.Parse<rapidjson::kParseNumbersAsStringsFlag>(text.c_str(), text.size());
            std::string form;
            if (doc.IsObject())
                for (auto it = doc.MemberBegin(); it != doc.MemberEnd(); ++it) {
                    if (!form.empty())
                        form += '&';
                    form += UrlEncode(std::string(it->name.GetString(), it->name.GetStringLength())) + "=" +
                            UrlEncode(FormValue(it->value));
                }
            req.http = Request(*g.op, g.url, form, "application/x-www-form-urlencoded");
        } else if (body_ == "ndjson") {
            std::string body;
            for (size_t i : g.rows)
                body += item(i) + "\n";
            req.http = Request(*g.op, g.url, body, "application/x-ndjson");
        } else {
            // array, or object: {"<body_key>": [...]}. Payloads and keys are
            // jsonb renderings, valid JSON already: copied in as they are.
            std::string body =
                body_ == "object"
                    ? "{" +
                          JsonText(rapidjson::Value(body_key_.c_str(),
                                                    static_cast<rapidjson::SizeType>(body_key_.size()))) +
                          ":["
                    : "[";
            for (size_t j = 0; j < g.rows.size(); j++)
                body += (j ? "," : "") + item(g.rows[j]);
            body += body_ == "object" ? "]}" : "]";
            req.http = Request(*g.op, g.url, body, kJson);
        }
        out.push_back(std::move(req));
    }
    return out;
}

Verdict HttpConnector::Interpret(const PreparedRequest &request, const std::vector<Change> &changes,
                                 const HttpResponse &response) {
    Verdict v;
    const long status = response.status;
    // The shared rule for answers about the connection (credentials,
    // redirects, a URL with nothing behind it, DNS, TLS), unless the
    // server's own status lists say what such a status means. A 404 of a
    // path built from the record's key is about that record.
    if (status == 0 || (!success_.Contains(status) && !retry_.Contains(status))) {
        bool names_a_record = false;
        if (!request.rows.empty())
            if (const Operation *op = OperationFor(changes[request.rows[0]].op))
                names_a_record = op->path.find('{') != std::string::npos;
        if (auto failure = ConnectionFailure(response, request.http.url, names_a_record))
            return *failure;
    }
    rapidjson::Document doc;
    doc.Parse(response.body.c_str(), response.body.size());
    const bool json = !doc.HasParseError();

    if (status == 0 || retry_.Contains(status)) {
        v.kind = status == 429 ? Verdict::Kind::Throttled : Verdict::Kind::Retry;
        if (auto ra = response.Header("retry-after"))
            if (auto seconds = ParseRetryAfterSeconds(*ra, std::time(nullptr)))
                v.wait_ms = *seconds * 1000L;
        v.error = status == 0 ? "could not reach " + RedactUrl(request.http.url) + ": " +
                                    (response.timed_out ? std::string("timed out") : response.transport_error)
                              : "destination " + RedactUrl(request.http.url) + " answered HTTP " +
                                    std::to_string(status) +
                                    (response.body.empty() ? "" : ": " + Truncate(response.body, 300));
        return v;
    }
    v.kind = Verdict::Kind::Done;
    if (!success_.Contains(status)) {
        // A refused request of several records may be refused for one of
        // them: halves find it, and the rest still go through.
        if (request.rows.size() > 1 && (status == 400 || status == 413 || status == 422)) {
            v.kind = Verdict::Kind::Split;
            return v;
        }
        std::string reason = json ? Field(doc, "error") : std::string();
        if (reason.empty() && json)
            reason = Field(doc, "message");
        if (reason.empty())
            reason = response.body.empty() ? "HTTP " + std::to_string(status) : response.body;
        v.rows.assign(request.rows.size(),
                      Refused(status, reason, json ? Field(doc, "code") : std::string()));
        return v;
    }
    v.rows.resize(request.rows.size());
    for (auto &o : v.rows) {
        o.accepted = true;
        o.http_status = status;
    }
    if (errors_pointer_.empty() || !json)
        return v;
    const rapidjson::Value *errors = rapidjson::Pointer(errors_pointer_.c_str()).Get(doc);
    if (!errors || !errors->IsArray())
        return v;
    // Element i is record i's outcome: null, false, "" or an object without
    // error/message mean accepted; anything else refuses it.
    for (rapidjson::SizeType i = 0; i < errors->Size() && i < v.rows.size(); i++) {
        const rapidjson::Value &e = (*errors)[i];
        std::string reason, code;
        bool refused = false;
        if (e.IsString()) {
            reason = std::string(e.GetString(), e.GetStringLength());
            refused = !reason.empty();
        } else if (e.IsBool()) {
            refused = e.GetBool();
        } else if (e.IsObject()) {
            reason = Field(e, "error");
            if (reason.empty())
                reason = Field(e, "message");
            code = Field(e, "code");
            refused = !reason.empty() || !code.empty();
        } else if (!e.IsNull()) {
            refused = true;
            reason = JsonText(e);
        }
        if (refused)
            v.rows[i] = Refused(status, reason, code);
    }
    return v;
}

const ConnectorSpec &HttpSpec() {
    static const ConnectorSpec spec = [] {
        ConnectorSpec s;
        s.type = "http";
        s.summary =
            "Any HTTP API: per operation a method and a path template, a body shape, and status rules.";
        s.server_options = CommonServerOptions();
        const std::vector<std::string> writes = {"POST", "PUT", "PATCH"};
        for (auto o : {
                 Option("add_method", OptionKind::Choice, "POST", "Method for added rows.", writes),
                 Option("add_path", OptionKind::Text, "",
                        "Path template after url for added rows, e.g. /users/{id}."),
                 Option("change_method", OptionKind::Choice, "",
                        "Method for changed rows (default: add_method).", writes),
                 Option("change_path", OptionKind::Text, "",
                        "Path template for changed rows (default: add_path)."),
                 Option("remove_method", OptionKind::Choice, "",
                        "Method for removed rows; unset, removals are not sent (and MODE MIRROR is refused).",
                        {"POST", "PUT", "PATCH", "DELETE"}),
                 Option("remove_path", OptionKind::Text, "",
                        "Path template for removed rows (default: add_path)."),
                 Option("body", OptionKind::Choice, "array", "Body shape.",
                        {"record", "array", "object", "ndjson", "form"}),
                 Option("body_key", OptionKind::Text, "records",
                        "For body 'object': the member holding the array."),
                 Option("records_per_request", OptionKind::Integer, "100",
                        "Records per request for array, object and ndjson bodies.", {}, 1, 10000),
                 Option("success_statuses", OptionKind::Text, "200-299", "Statuses that mean success."),
                 Option("retry_statuses", OptionKind::Text, "408,425,429,500-599",
                        "Statuses that are retried (429 waits, not an attempt); others refuse the records."),
                 Option("errors_pointer", OptionKind::Text, "",
                        "JSON pointer to an array of per-record errors in a successful answer."),
                 Option("api_key_header", OptionKind::HeaderName, "X-API-Key",
                        "Header that carries the user mapping's api_key."),
                 Option("api_key_param", OptionKind::Text, "",
                        "Query parameter that carries the api_key instead of a header."),
             })
            s.server_options.push_back(o);
        s.auth = {AuthKind::None,         AuthKind::Bearer,      AuthKind::Basic,
                  AuthKind::ApiKeyHeader, AuthKind::ApiKeyQuery, AuthKind::OAuth};
        ObjectSpec any;
        any.name = "*";
        any.modes = {"upsert", "update", "insert", "mirror"};
        s.objects = {any};
        s.max_batch_size = 10000;
        s.returns_ids = false;
        s.idempotency_keys = false;
        s.example = "OPTIONS (type 'http', url 'https://api.example.com', add_path '/v1/users/{id}', "
                    "add_method 'PUT', body 'record')";
        s.check_server = [](const OptionList &options) {
            for (const char *path : {"add_path", "change_path", "remove_path"})
                CheckPathTemplate(path, Get(options, path));
            ParseStatusSet("success_statuses", Get(options, "success_statuses", "200-299"));
            ParseStatusSet("retry_statuses", Get(options, "retry_statuses", "408,425,429,500-599"));
            std::string pointer = Get(options, "errors_pointer");
            if (!pointer.empty() && (pointer[0] != '/' || !rapidjson::Pointer(pointer.c_str()).IsValid()))
                throw Error(sqlstate::kFdwInvalidOptionValue, "invalid value for option \"errors_pointer\"",
                            "The value must be a JSON pointer (RFC 6901), for example '/errors'.");
            if (Get(options, "remove_method") == "DELETE" && Get(options, "body", "array") != "record")
                throw Error(
                    sqlstate::kFdwInvalidOptionValue, "remove_method 'DELETE' needs body 'record'",
                    "A DELETE request carries no body here: one record per request, its key in the path.",
                    "Set body 'record' and a remove_path such as '/v1/users/{id}'.");
        };
        s.check_target = [](const SyncTarget &target, const OptionList &server, const std::string &sync_name,
                            const std::string &server_name) {
            if (target.mode == "mirror" && Get(server, "remove_method").empty())
                throw Error(sqlstate::kFeatureNotSupported,
                            "sync \"" + sync_name + "\" cannot use mode mirror with server \"" + server_name +
                                "\" (type http)",
                            "Mode mirror removes records, and the server has no remove_method.",
                            "Declare the removal: ALTER SERVER " + server_name +
                                " OPTIONS (ADD remove_method 'DELETE', ADD remove_path '/v1/users/{id}').");
        };
        s.make = [](const DestinationSettings &settings,
                    const SyncTarget &target) -> std::unique_ptr<Connector> {
            return std::make_unique<HttpConnector>(settings, target);
        };
        return s;
    }();
    return spec;
}

} // namespace revetl
