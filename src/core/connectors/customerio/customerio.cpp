#include "core/connectors/customerio/customerio.hpp"

#include "core/connectors/json_text.hpp"

#include "core/common/error.hpp"
#include "core/delivery/retry_policy.hpp"

#include <rapidjson/document.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include <algorithm>
#include <ctime>
#include <set>

namespace revetl {

namespace {

using Writer = rapidjson::Writer<rapidjson::StringBuffer>;

// Numbers are kept as their text (jsonb's rendering is exact) and written
// back raw, so that 92.50 or a 20-digit id is not rounded through a double.
constexpr unsigned kExactNumbers = rapidjson::kParseNumbersAsStringsFlag;

void CheckTarget(const SyncTarget &target, const std::string &sync_name) {
    if (!target.match_on.empty() && target.match_on != "id" && target.match_on != "email")
        throw Error(sqlstate::kFeatureNotSupported,
                    "sync \"" + sync_name + "\" cannot match Customer.io people on \"" + target.match_on +
                        "\"",
                    "The Track API identifies a person by id or email.",
                    "Use MATCH ON id (the default) or MATCH ON email.");
}

// Customer.io's error bodies: {"meta": {"error": "..."}} or {"meta":
// {"errors": ["..."]}}; 207's entries {"batch_index", "reason", "field",
// "message"}.
std::string ErrorText(const rapidjson::Document &doc) {
    if (!doc.IsObject())
        return {};
    if (doc.HasMember("meta") && doc["meta"].IsObject()) {
        const rapidjson::Value &meta = doc["meta"];
        std::string text = JsonMember(meta, "error");
        if (meta.HasMember("errors") && meta["errors"].IsArray())
            for (const auto &e : meta["errors"].GetArray())
                text += (text.empty() ? "" : "; ") + JsonText(e);
        if (!text.empty())
            return text;
    }
    std::string text;
    if (doc.HasMember("errors") && doc["errors"].IsArray())
        for (const auto &e : doc["errors"].GetArray()) {
            std::string one = e.IsObject() ? JsonMember(e, "message") : JsonText(e);
            if (one.empty())
                one = JsonMember(e, "reason");
            text += (text.empty() ? "" : "; ") + one;
        }
    return text;
}

} // namespace

std::string CustomerIoRegionUrl(const std::string &region) {
    return region == "eu" ? "https://track-eu.customer.io" : "https://track.customer.io";
}

CustomerIoConnector::CustomerIoConnector(DestinationSettings settings, SyncTarget target)
    : settings_(std::move(settings)), target_(std::move(target)) {
    if (target_.object.empty())
        target_.object = "people";
    if (target_.match_on.empty())
        target_.match_on = "id";
    CheckTarget(target_, "?");
}

HttpRequest CustomerIoConnector::Request(std::string body) const {
    std::string base = settings_.url;
    while (!base.empty() && base.back() == '/')
        base.pop_back();
    HttpRequest req;
    req.method = "POST";
    req.url = base + "/api/v2/batch";
    req.timeout_ms = settings_.timeout_ms;
    req.connect_timeout_ms = settings_.connect_timeout_ms;
    req.body = std::move(body);
    req.headers.emplace_back("Content-Type", "application/json");
    for (const auto &h : settings_.headers)
        req.headers.push_back(h);
    ApplyAuth(settings_.credentials, req);
    return req;
}

std::string CustomerIoConnector::Identifier(const std::string &payload) const {
    rapidjson::Document doc;
    doc.Parse<kExactNumbers>(payload.c_str(), payload.size());
    if (doc.HasParseError() || !doc.IsObject())
        return {};
    return JsonMember(doc, target_.match_on.c_str());
}

std::string CustomerIoConnector::Item(const Change &change) const {
    rapidjson::StringBuffer buf;
    Writer w(buf);
    w.StartObject();
    w.Key("type");
    w.String("person");
    w.Key("identifiers");
    w.StartObject();
    w.Key(target_.match_on.c_str());
    if (change.op == Change::Op::Remove) {
        WriteJsonString(w, change.dest_id);
        w.EndObject();
        w.Key("action");
        w.String("delete");
        w.EndObject();
        return std::string(buf.GetString(), buf.GetSize());
    }
    // Parsed twice: once with numbers as their exact text (to write them
    // back raw) and once typed (to tell numbers from strings).
    const std::string &p = change.payload;
    rapidjson::Document exact;
    exact.Parse<kExactNumbers>(p.c_str(), p.size());
    rapidjson::Document typed;
    typed.Parse(p.c_str(), p.size());
    WriteJsonString(w, JsonMember(exact, target_.match_on.c_str()));
    w.EndObject();
    w.Key("action");
    w.String("identify");
    w.Key("attributes");
    w.StartObject();
    for (auto m = exact.MemberBegin(); m != exact.MemberEnd(); ++m) {
        std::string name(m->name.GetString(), m->name.GetStringLength());
        // The identifier travels in identifiers; _update is revetl's to set
        // (after the sync's mode), never the model's.
        if (name == target_.match_on || name == "_update")
            continue;
        w.Key(name.c_str(), static_cast<rapidjson::SizeType>(name.size()));
        auto t = typed.FindMember(m->name);
        if (t != typed.MemberEnd() && t->value.IsNumber())
            w.RawValue(m->value.GetString(), m->value.GetStringLength(), rapidjson::kNumberType);
        else
            (t != typed.MemberEnd() ? t->value : m->value).Accept(w);
    }
    if (target_.mode == "update") {
        w.Key("_update");
        w.Bool(true);
    }
    w.EndObject();
    w.EndObject();
    return std::string(buf.GetString(), buf.GetSize());
}

std::vector<PreparedRequest>
CustomerIoConnector::Prepare(const BatchContext &, const std::vector<Change> &changes,
                             const std::vector<size_t> &rows,
                             std::vector<std::pair<size_t, RowOutcome>> &immediate) {
    struct Call {
        std::vector<size_t> rows;
        std::vector<std::string> items;
        std::set<std::string> seen;
        size_t bytes = 0;
    };
    std::vector<Call> calls;
    static const size_t kEnvelope = sizeof("{\"batch\":[]}");
    for (size_t i : rows) {
        const Change &c = changes[i];
        std::string id;
        if (c.op == Change::Op::Remove) {
            id = c.dest_id;
            if (id.empty()) {
                immediate.emplace_back(i,
                                       UnresolvableRemoval("Customer.io", "Customer.io " + target_.match_on,
                                                           "deleted", target_.match_on));
                continue;
            }
        } else {
            id = Identifier(c.payload);
            if (id.empty()) {
                immediate.emplace_back(i, RejectedRow(0,
                                                      "the payload has no value for the MATCH ON field \"" +
                                                          target_.match_on + "\"",
                                                      "NO_MATCH_VALUE"));
                continue;
            }
        }
        if (id.size() > kMaxIdentifierBytes) {
            immediate.emplace_back(i,
                                   RejectedRow(0,
                                               "the " + target_.match_on + " is longer than Customer.io's " +
                                                   std::to_string(kMaxIdentifierBytes) + " bytes",
                                               "IDENTIFIER_TOO_LONG"));
            continue;
        }
        std::string item = Item(c);
        if (item.size() > kMaxItemBytes) {
            immediate.emplace_back(i, RejectedRow(0,
                                                  "the row is " + std::to_string(item.size()) +
                                                      " bytes as a batch item; Customer.io takes at most " +
                                                      std::to_string(kMaxItemBytes),
                                                  "ITEM_TOO_LARGE"));
            continue;
        }
        const std::string key = target_.match_on == "email" ? [&] {
            std::string l = id;
            std::transform(l.begin(), l.end(), l.begin(), [](unsigned char x) { return std::tolower(x); });
            return l;
        }()
                                                            : id;
        size_t k = 0;
        while (k < calls.size() &&
               (calls[k].rows.size() >= static_cast<size_t>(kMaxItems) || calls[k].seen.count(key) ||
                calls[k].bytes + item.size() + 1 + kEnvelope > kMaxRequestBytes))
            k++;
        if (k == calls.size())
            calls.emplace_back();
        calls[k].rows.push_back(i);
        calls[k].seen.insert(key);
        calls[k].bytes += item.size() + 1;
        calls[k].items.push_back(std::move(item));
    }
    std::vector<PreparedRequest> out;
    for (auto &call : calls) {
        std::string body = "{\"batch\":[";
        for (size_t j = 0; j < call.items.size(); j++)
            body += (j ? "," : "") + call.items[j];
        body += "]}";
        PreparedRequest req;
        req.http = Request(std::move(body));
        req.rows = std::move(call.rows);
        out.push_back(std::move(req));
    }
    return out;
}

Verdict CustomerIoConnector::Interpret(const PreparedRequest &request, const std::vector<Change> &changes,
                                       const HttpResponse &response) {
    Verdict v;
    rapidjson::Document doc;
    doc.Parse(response.body.c_str(), response.body.size());
    const bool json = !doc.HasParseError() && doc.IsObject();
    const std::string message = json ? ErrorText(doc) : Truncate(response.body, 300);
    const long status = response.status;

    if (status == 429) {
        // Fair use (about 100 requests a second): Customer.io documents no
        // reset header, so Retry-After when it comes, else a second.
        v.kind = Verdict::Kind::Throttled;
        v.wait_ms = 1000;
        if (auto retry_after = response.Header("retry-after"))
            if (auto seconds = ParseRetryAfterSeconds(*retry_after, std::time(nullptr)))
                v.wait_ms = std::clamp(*seconds * 1000L, 100L, 3600000L);
        v.error = "Customer.io rate limit: " + Truncate(message.empty() ? "HTTP 429" : message, 300);
        return v;
    }
    if (auto transient = TransientFailure(response, "Customer.io", message))
        return *transient;
    if (status == 401 || status == 403) {
        v.kind = Verdict::Kind::Fatal;
        v.error = "Customer.io refused the credentials (HTTP " + std::to_string(status) +
                  "): check the user mapping's user (the site id) and password (a Track API key of that "
                  "workspace and region)";
        return v;
    }
    if (status == 404 || (status >= 300 && status < 400)) {
        v.kind = Verdict::Kind::Fatal;
        v.error = "Customer.io answered HTTP " + std::to_string(status) + " for " +
                  RedactUrl(request.http.url) + ": check the server's url or region";
        return v;
    }
    if (status >= 400) {
        // 400 (or 413): Customer.io applied none of the request. Halves find
        // the row at fault; a lone row is refused with Customer.io's words.
        if (request.rows.size() > 1) {
            v.kind = Verdict::Kind::Split;
            return v;
        }
        v.rows.assign(request.rows.size(),
                      RejectedRow(status, message.empty() ? "refused by Customer.io" : message,
                                  "HTTP_" + std::to_string(status)));
        return v;
    }
    if (status < 200 || status >= 300) {
        v.kind = Verdict::Kind::Retry;
        v.error = "Customer.io answered HTTP " + std::to_string(status);
        return v;
    }
    std::vector<RowOutcome> outcomes(request.rows.size());
    for (size_t j = 0; j < outcomes.size(); j++) {
        const Change &c = changes[request.rows[j]];
        outcomes[j].accepted = true;
        outcomes[j].http_status = status;
        // The identifier is kept as the record id: a later removal deletes
        // by it.
        if (c.op != Change::Op::Remove)
            outcomes[j].dest_id = Truncate(Identifier(c.payload), 200);
    }
    // 207: the items errors[] names were refused; every other item applied.
    if (json && doc.HasMember("errors") && doc["errors"].IsArray()) {
        for (const auto &e : doc["errors"].GetArray()) {
            if (!e.IsObject() || !e.HasMember("batch_index") || !e["batch_index"].IsUint() ||
                e["batch_index"].GetUint() >= outcomes.size())
                continue;
            size_t j = e["batch_index"].GetUint();
            std::string reason = JsonMember(e, "reason");
            std::string field = JsonMember(e, "field");
            std::string text = JsonMember(e, "message");
            if (text.empty())
                text = reason.empty() ? "refused by Customer.io" : reason;
            if (!field.empty())
                text = field + ": " + text;
            outcomes[j] = RejectedRow(status, text, reason.empty() ? "HTTP_207" : reason);
        }
    }
    v.rows = std::move(outcomes);
    return v;
}

const ConnectorSpec &CustomerIoSpec() {
    static const ConnectorSpec spec = [] {
        ConnectorSpec s;
        s.type = "customerio";
        s.summary = "Customer.io people through the Track API's v2 batch endpoint (identify and delete).";
        s.server_options = CommonServerOptions();
        for (auto &o : s.server_options) {
            if (o.name == "url") {
                o.required = false;
                o.description = "Where requests go; by default the Track API host of the region.";
            } else if (o.name == "rate_limit") {
                // Fair use is about 100 requests a second across v1 and v2.
                o.default_value = "100 per 1s";
            }
        }
        OptionSpec region;
        region.name = "region";
        region.kind = OptionKind::Choice;
        region.choices = {"us", "eu"};
        region.default_value = "us";
        region.description =
            "The workspace's data centre: us (track.customer.io) or eu (track-eu.customer.io).";
        s.server_options.push_back(region);
        s.default_url = [](const OptionList &server) {
            std::string region;
            for (const auto &o : server)
                if (o.first == "region")
                    region = o.second;
            return CustomerIoRegionUrl(region);
        };
        s.auth = {AuthKind::Basic}; // the site id as user, the Track API key as password
        s.default_object = "people";
        ObjectSpec people;
        people.name = "people";
        // No insert: identify cannot refuse to touch an existing person.
        people.modes = {"upsert", "update", "mirror"};
        people.default_match_on = "id";
        people.match_on_hint = "Customer.io identifies a person by id or email.";
        s.objects = {people};
        s.max_batch_size = CustomerIoConnector::kMaxItems;
        s.returns_ids = true;
        s.idempotency_keys = false;
        s.example = "OPTIONS (type 'customerio', region 'us')";
        s.check_target = [](const SyncTarget &target, const OptionList &, const std::string &sync_name,
                            const std::string &) { CheckTarget(target, sync_name); };
        s.make = [](const DestinationSettings &settings,
                    const SyncTarget &target) -> std::unique_ptr<Connector> {
            return std::make_unique<CustomerIoConnector>(settings, target);
        };
        return s;
    }();
    return spec;
}

} // namespace revetl
