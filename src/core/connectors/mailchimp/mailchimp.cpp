#include "core/connectors/mailchimp/mailchimp.hpp"

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
#include <cstdint>
#include <cstdio>
#include <ctime>
#include <map>
#include <set>

namespace revetl {

namespace {

using Writer = rapidjson::Writer<rapidjson::StringBuffer>;

// Numbers are kept as their text (jsonb's rendering is exact) and written
// back raw, so that 92.50 or a 20-digit id is not rounded through a double.
constexpr unsigned kExactNumbers = rapidjson::kParseNumbersAsStringsFlag;
// The most of a batch call's answer read: 500 members (the largest batch)
// echoed in full are a few MB.
constexpr size_t kBatchAnswerMaxBytes = 32u << 20;

// The statuses Mailchimp's member schema allows.
const std::set<std::string> kStatuses = {"subscribed", "unsubscribed", "cleaned", "pending", "transactional"};

// Member fields written as themselves, not as merge fields (the other
// top-level fields of the schema need shapes a column rarely has).
bool MemberField(const std::string &name) {
    return name == "status" || name == "email_type" || name == "language" || name == "vip";
}

std::string Lower(std::string s) {
    for (char &c : s)
        c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return s;
}

std::string Upper(std::string s) {
    for (char &c : s)
        c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    return s;
}

// MD5 (RFC 1321): Mailchimp names a member by the MD5 of its lower-cased
// email. Not used for security.
std::string Md5Hex(const std::string &message) {
    static const uint32_t k[64] = {
        0xd76aa478, 0xe8c7b756, 0x242070db, 0xc1bdceee, 0xf57c0faf, 0x4787c62a, 0xa8304613, 0xfd469501,
        0x698098d8, 0x8b44f7af, 0xffff5bb1, 0x895cd7be, 0x6b901122, 0xfd987193, 0xa679438e, 0x49b40821,
        0xf61e2562, 0xc040b340, 0x265e5a51, 0xe9b6c7aa, 0xd62f105d, 0x02441453, 0xd8a1e681, 0xe7d3fbc8,
        0x21e1cde6, 0xc33707d6, 0xf4d50d87, 0x455a14ed, 0xa9e3e905, 0xfcefa3f8, 0x676f02d9, 0x8d2a4c8a,
        0xfffa3942, 0x8771f681, 0x6d9d6122, 0xfde5380c, 0xa4beea44, 0x4bdecfa9, 0xf6bb4b60, 0xbebfbc70,
        0x289b7ec6, 0xeaa127fa, 0xd4ef3085, 0x04881d05, 0xd9d4d039, 0xe6db99e5, 0x1fa27cf8, 0xc4ac5665,
        0xf4292244, 0x432aff97, 0xab9423a7, 0xfc93a039, 0x655b59c3, 0x8f0ccc92, 0xffeff47d, 0x85845dd1,
        0x6fa87e4f, 0xfe2ce6e0, 0xa3014314, 0x4e0811a1, 0xf7537e82, 0xbd3af235, 0x2ad7d2bb, 0xeb86d391};
    static const int r[64] = {7, 12, 17, 22, 7, 12, 17, 22, 7, 12, 17, 22, 7, 12, 17, 22,
                              5, 9,  14, 20, 5, 9,  14, 20, 5, 9,  14, 20, 5, 9,  14, 20,
                              4, 11, 16, 23, 4, 11, 16, 23, 4, 11, 16, 23, 4, 11, 16, 23,
                              6, 10, 15, 21, 6, 10, 15, 21, 6, 10, 15, 21, 6, 10, 15, 21};
    std::string data = message;
    const uint64_t bits = static_cast<uint64_t>(message.size()) * 8;
    data.push_back(static_cast<char>(0x80));
    while (data.size() % 64 != 56)
        data.push_back('\0');
    for (int i = 0; i < 8; i++)
        data.push_back(static_cast<char>((bits >> (8 * i)) & 0xff));
    uint32_t h[4] = {0x67452301, 0xefcdab89, 0x98badcfe, 0x10325476};
    for (size_t off = 0; off < data.size(); off += 64) {
        uint32_t m[16];
        for (int i = 0; i < 16; i++) {
            const auto *p = reinterpret_cast<const unsigned char *>(data.data() + off + 4 * i);
            m[i] = static_cast<uint32_t>(p[0]) | static_cast<uint32_t>(p[1]) << 8 |
                   static_cast<uint32_t>(p[2]) << 16 | static_cast<uint32_t>(p[3]) << 24;
        }
        uint32_t a = h[0], b = h[1], c = h[2], d = h[3];
        for (int i = 0; i < 64; i++) {
            uint32_t f;
            int g;
            if (i < 16) {
                f = (b & c) | (~b & d);
                g = i;
            } else if (i < 32) {
                f = (d & b) | (~d & c);
                g = (5 * i + 1) % 16;
            } else if (i < 48) {
                f = b ^ c ^ d;
                g = (3 * i + 5) % 16;
            } else {
                f = c ^ (b | ~d);
                g = (7 * i) % 16;
            }
            const uint32_t next = d;
            d = c;
            c = b;
            const uint32_t x = a + f + k[i] + m[g];
            b = b + ((x << r[i]) | (x >> (32 - r[i])));
            a = next;
        }
        h[0] += a;
        h[1] += b;
        h[2] += c;
        h[3] += d;
    }
    std::string out;
    char buf[3];
    for (uint32_t word : h)
        for (int i = 0; i < 4; i++) {
            std::snprintf(buf, sizeof buf, "%02x", static_cast<unsigned>((word >> (8 * i)) & 0xff));
            out += buf;
        }
    return out;
}

// An audience id names a path segment: letters and digits only.
void CheckListId(const std::string &id) {
    bool ok = !id.empty() && id.size() <= 64;
    for (char c : id)
        ok = ok && std::isalnum(static_cast<unsigned char>(c));
    if (!ok)
        throw Error(sqlstate::kFdwInvalidOptionValue,
                    "invalid value for option \"list_id\": not a Mailchimp audience id",
                    "An audience id is letters and digits (Audience > Settings > Audience name and "
                    "defaults shows it), at most 64 characters.");
}

// A data centre becomes part of a host name: a few letters, then digits.
bool ValidDataCentre(const std::string &dc) {
    size_t i = 0;
    while (i < dc.size() && std::islower(static_cast<unsigned char>(dc[i])))
        i++;
    if (i == 0 || i > 8 || i == dc.size() || dc.size() > 16)
        return false;
    for (; i < dc.size(); i++)
        if (!std::isdigit(static_cast<unsigned char>(dc[i])))
            return false;
    return true;
}

void CheckMailchimpTarget(const SyncTarget &target, const std::string &sync_name) {
    const std::string who = "sync \"" + sync_name + "\"";
    if (target.mode == "audience") {
        const std::string &tag = target.audience;
        bool printable = true;
        for (char c : tag)
            printable = printable && static_cast<unsigned char>(c) >= 0x20 && c != 0x7f;
        if (tag.empty() || tag.size() > 100 || !printable || tag.front() == ' ' || tag.back() == ' ')
            throw Error(sqlstate::kFeatureNotSupported,
                        who + ": \"" + Truncate(tag, 120) + "\" is not a valid Mailchimp tag name",
                        "A tag name is 1 to 100 printable characters without leading or trailing spaces.",
                        "Write the tag as Mailchimp shows it: MODE AUDIENCE 'VIP customers'.");
    }
}

} // namespace

std::string MailchimpSubscriberHash(const std::string &email) {
    return Md5Hex(Lower(email));
}

std::string MailchimpDataCentre(const std::string &api_key) {
    const size_t dash = api_key.rfind('-');
    if (dash == std::string::npos)
        return {};
    std::string dc = api_key.substr(dash + 1);
    return ValidDataCentre(dc) ? dc : std::string();
}

MailchimpConnector::MailchimpConnector(DestinationSettings settings, SyncTarget target)
    : settings_(std::move(settings)), target_(std::move(target)) {
    if (target_.object.empty())
        target_.object = "members";
    if (target_.match_on.empty())
        target_.match_on = "email_address";
    CheckMailchimpTarget(target_, "?");
    list_id_ = settings_.Option("list_id");
    CheckListId(list_id_);
    status_ = settings_.Option("member_status");
    if (status_.empty())
        status_ = "subscribed";
    // An API key is sent as Basic auth, with any user name.
    Credentials &c = settings_.credentials;
    if (!c.api_key.empty()) {
        c.user = "anystring";
        c.password = c.api_key;
        c.api_key.clear();
    }
    if (settings_.url.empty())
        throw Error(sqlstate::kFdwInvalidOptionValue, "the Mailchimp server names no data centre",
                    "The user mapping's API key has no -usNN suffix, and the server has no dc or url option.",
                    "Use the API key as Mailchimp shows it (ending in -us6 or similar), or give the server "
                    "OPTIONS (dc 'us6') (an OAuth token needs it: the dc of the account's metadata).");
}

std::string MailchimpConnector::ListPath() const {
    return "/3.0/lists/" + list_id_;
}

HttpRequest MailchimpConnector::Request(const std::string &method, const std::string &path,
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

std::string MailchimpConnector::Email(const std::string &payload) const {
    rapidjson::Document doc;
    doc.Parse<kExactNumbers>(payload.c_str(), payload.size());
    if (doc.HasParseError() || !doc.IsObject())
        return {};
    return JsonMember(doc, target_.match_on.c_str());
}

namespace {

// A member's fields from a payload: the email (when asked), status (the
// row's own or the server's), the other member fields, and merge_fields
// named by upper-cased field names (merge tags are upper case). NULL merge
// values are sent as "", which is how Mailchimp clears a merge field.
void WriteMember(Writer &w, const std::string &payload, const std::string &match_on, bool with_email,
                 const std::string &default_status) {
    rapidjson::Document doc;
    doc.Parse<kExactNumbers>(payload.c_str(), payload.size());
    rapidjson::Document typed;
    typed.Parse(payload.c_str(), payload.size());
    w.StartObject();
    if (with_email) {
        w.Key("email_address");
        WriteJsonString(w, JsonMember(doc, match_on.c_str()));
    }
    const std::string status = JsonMember(doc, "status");
    if (!default_status.empty() || !status.empty()) {
        w.Key("status");
        WriteJsonString(w, status.empty() ? default_status : status);
    }
    bool merge = false;
    for (int pass = 0; pass < 2; pass++) {
        for (auto m = doc.MemberBegin(); m != doc.MemberEnd(); ++m) {
            std::string name(m->name.GetString(), m->name.GetStringLength());
            if (name == match_on || name == "status")
                continue;
            auto t = typed.FindMember(m->name);
            const rapidjson::Value &value = t != typed.MemberEnd() ? t->value : m->value;
            if (pass == 0 && MemberField(name)) {
                if (value.IsNull())
                    continue;
                w.Key(name.c_str(), static_cast<rapidjson::SizeType>(name.size()));
                if (name == "vip")
                    w.Bool(value.IsBool() ? value.GetBool() : JsonText(value) == "true");
                else
                    WriteJsonString(w, JsonText(value));
            } else if (pass == 1 && !MemberField(name)) {
                if (!merge) {
                    w.Key("merge_fields");
                    w.StartObject();
                    merge = true;
                }
                const std::string tag = Upper(name);
                w.Key(tag.c_str(), static_cast<rapidjson::SizeType>(tag.size()));
                if (value.IsNull())
                    w.String("");
                else if (value.IsNumber())
                    w.RawValue(m->value.GetString(), m->value.GetStringLength(), rapidjson::kNumberType);
                else
                    value.Accept(w);
            }
        }
    }
    if (merge)
        w.EndObject();
    w.EndObject();
}

} // namespace

PreparedRequest MailchimpConnector::TagCall(const char *step, const std::vector<Change> &changes,
                                            size_t row) const {
    const Change &c = changes[row];
    const bool active = std::string(step) == kTag;
    // A removal (or the first call of a swap) names the member kept in the
    // shadow state; an add names the row's email.
    const std::string hash = active ? MailchimpSubscriberHash(Email(c.payload)) : c.dest_id;
    rapidjson::StringBuffer buf;
    Writer w(buf);
    w.StartObject();
    w.Key("tags");
    w.StartArray();
    w.StartObject();
    w.Key("name");
    WriteJsonString(w, target_.audience);
    w.Key("status");
    w.String(active ? "active" : "inactive");
    w.EndObject();
    w.EndArray();
    w.EndObject();
    PreparedRequest req;
    req.http = Request("POST", ListPath() + "/members/" + UrlEncode(hash) + "/tags",
                       std::string(buf.GetString(), buf.GetSize()));
    req.rows = {row};
    req.flow.step = step;
    return req;
}

std::vector<PreparedRequest>
MailchimpConnector::Prepare(const BatchContext &, const std::vector<Change> &changes,
                            const std::vector<size_t> &rows,
                            std::vector<std::pair<size_t, RowOutcome>> &immediate) {
    const bool audience = target_.mode == "audience";
    std::vector<PreparedRequest> out;
    DistinctValueCalls calls(kMaxMembers);
    for (size_t i : rows) {
        const Change &c = changes[i];
        if (c.op == Change::Op::Remove) {
            if (c.dest_id.empty()) {
                immediate.emplace_back(i, UnresolvableRemoval("Mailchimp", "Mailchimp subscriber hash",
                                                              "removed", target_.match_on));
                continue;
            }
            if (audience) {
                out.push_back(TagCall(kUntag, changes, i));
            } else {
                PreparedRequest req;
                req.http = Request("DELETE", ListPath() + "/members/" + UrlEncode(c.dest_id), "");
                req.rows = {i};
                req.flow.step = kArchive;
                out.push_back(std::move(req));
            }
            continue;
        }
        const std::string email = Email(c.payload);
        if (email.empty()) {
            immediate.emplace_back(
                i,
                RejectedRow(0, "the payload has no value for the MATCH ON field \"" + target_.match_on + "\"",
                            "NO_MATCH_VALUE"));
            continue;
        }
        const std::string hash = MailchimpSubscriberHash(email);
        if (audience) {
            // A member whose email changed leaves the tag under its old
            // member before the new member joins it.
            const bool swap = c.op == Change::Op::Change && !c.dest_id.empty() && c.dest_id != hash;
            out.push_back(TagCall(swap ? kSwap : kTag, changes, i));
            continue;
        }
        rapidjson::Document doc;
        doc.Parse<kExactNumbers>(c.payload.c_str(), c.payload.size());
        const std::string status = JsonMember(doc, "status");
        if (!status.empty() && !kStatuses.count(status)) {
            immediate.emplace_back(i, RejectedRow(0,
                                                  "\"" + Truncate(status, 40) +
                                                      "\" is not a Mailchimp member status (subscribed, "
                                                      "unsubscribed, cleaned, pending or transactional)",
                                                  "INVALID_STATUS"));
            continue;
        }
        if (target_.mode == "update") {
            // Only PATCH refuses to create a member (404).
            rapidjson::StringBuffer buf;
            Writer w(buf);
            WriteMember(w, c.payload, target_.match_on, false, "");
            PreparedRequest req;
            req.http = Request("PATCH", ListPath() + "/members/" + hash,
                               std::string(buf.GetString(), buf.GetSize()));
            req.rows = {i};
            req.flow.step = kPatch;
            out.push_back(std::move(req));
            continue;
        }
        // Calls of at most kMaxMembers distinct members: one email twice in
        // a call would leave the result to Mailchimp's order.
        const std::string lower = Lower(email);
        calls.Add(i, lower);
    }
    for (const auto &call : calls.calls()) {
        rapidjson::StringBuffer buf;
        Writer w(buf);
        w.StartObject();
        w.Key("members");
        w.StartArray();
        for (size_t i : call)
            WriteMember(w, changes[i].payload, target_.match_on, true, status_);
        w.EndArray();
        // INSERT: an existing member is refused (ERROR_CONTACT_EXISTS).
        w.Key("update_existing");
        w.Bool(target_.mode != "insert");
        w.EndObject();
        PreparedRequest req;
        req.http = Request("POST", ListPath(), std::string(buf.GetString(), buf.GetSize()));
        // The answer echoes every new and updated member in full (links,
        // stats, location: a few kB each), past the default limit for a
        // batch of a few hundred.
        req.http.max_response_body = kBatchAnswerMaxBytes;
        req.rows = call;
        req.flow.step = kBatch;
        out.push_back(std::move(req));
    }
    return out;
}

Verdict MailchimpConnector::Interpret(const PreparedRequest &request, const std::vector<Change> &changes,
                                      const HttpResponse &response) {
    Verdict v;
    rapidjson::Document doc;
    doc.Parse(response.body.c_str(), response.body.size());
    const bool json = !doc.HasParseError() && doc.IsObject();
    // RFC 7807: title and detail.
    const std::string title = json ? JsonMember(doc, "title") : std::string();
    const std::string detail = json ? JsonMember(doc, "detail") : std::string();
    std::string message = title;
    if (!detail.empty())
        message += (message.empty() ? "" : ": ") + detail;
    if (message.empty() && !json)
        message = Truncate(response.body, 300);
    message = Truncate(message, 600);
    const long status = response.status;
    const std::string &step = request.flow.step;

    // 429 (over 10 connections) and a 403 without a problem body (what
    // Mailchimp answers under heavy load) are throttling.
    if (status == 429 || (status == 403 && title.empty())) {
        v.kind = Verdict::Kind::Throttled;
        v.wait_ms = 1000L << std::min(throttle_streak_, 5);
        throttle_streak_++;
        if (auto retry_after = response.Header("retry-after"))
            if (auto seconds = ParseRetryAfterSeconds(*retry_after, std::time(nullptr)))
                v.wait_ms = std::clamp(*seconds * 1000L, 100L, 3600000L);
        v.error = "Mailchimp is throttling (HTTP " + std::to_string(status) +
                  (message.empty() ? std::string(", no body") : ": " + Truncate(message, 300)) +
                  "): at most " + std::to_string(kMaxConnections) +
                  " connections per account at once, shared with its other integrations";
        return v;
    }
    throttle_streak_ = 0;
    if (status == 0 || status == 408 || status >= 500) {
        if (auto failure = ConnectionFailure(response, request.http.url, false))
            return *failure;
        return *TransientFailure(response, "Mailchimp", message);
    }
    if (status == 401 || status == 403) {
        // 401: the key is wrong, revoked, or of another data centre; 403
        // with a problem body: the key's user may not do this. Every row
        // would fail the same way: the run stops.
        v.kind = status == 401 ? Verdict::Kind::AuthExpired : Verdict::Kind::Fatal;
        v.error =
            "Mailchimp refused the credentials (HTTP " + std::to_string(status) +
            (message.empty() ? "" : ": " + message) + "): " +
            (status == 401 ? "check the api_key (or token) in the user mapping for this server, and that "
                             "the server's data centre (dc, or the key's -usNN suffix) is the account's"
                           : "check that the user mapping's API key (or OAuth token) belongs to a user "
                             "allowed to manage audience " +
                                 list_id_);
        return v;
    }
    if (status >= 300 && status < 400) {
        if (auto failure = ConnectionFailure(response, request.http.url, false))
            return *failure;
    }
    const bool per_member =
        step == kPatch || step == kArchive || step == kTag || step == kUntag || step == kSwap;
    if (status == 404 && !per_member) {
        v.kind = Verdict::Kind::Fatal;
        v.error = "Mailchimp has no audience \"" + list_id_ + "\" at " + RedactUrl(request.http.url) +
                  " (HTTP 404" + (message.empty() ? "" : ": " + message) +
                  "): check the server's list_id option and its data centre";
        return v;
    }
    const std::string code = title.empty() ? "HTTP_" + std::to_string(status) : title;
    if (per_member) {
        const size_t row = request.rows.empty() ? 0 : request.rows.front();
        const Change *c = row < changes.size() ? &changes[row] : nullptr;
        const bool removing = step == kArchive || step == kUntag || step == kSwap;
        if (status == 404 && removing) {
            // A member Mailchimp does not have is neither on the list nor
            // tagged: where MIRROR and AUDIENCE want it.
            if (step == kSwap) {
                v.kind = Verdict::Kind::Continue;
                v.next = TagCall(kTag, changes, row);
                return v;
            }
            v.rows.push_back(AcceptedRow(status));
            return v;
        }
        if (status == 404) {
            v.rows.push_back(RejectedRow(status,
                                         step == kTag ? "the email is not a member of audience " + list_id_ +
                                                            ": a tag holds existing members only (add them "
                                                            "with a sync in MODE UPSERT first)"
                                                      : "the email is not a member of audience " + list_id_,
                                         "MEMBER_NOT_FOUND"));
            return v;
        }
        if (status >= 400 || status < 200) {
            v.rows.push_back(RejectedRow(status, message.empty() ? "refused by Mailchimp" : message, code));
            return v;
        }
        if (step == kSwap) {
            v.kind = Verdict::Kind::Continue;
            v.next = TagCall(kTag, changes, row);
            return v;
        }
        std::string id;
        if (step == kTag || step == kPatch)
            id = c ? MailchimpSubscriberHash(Email(c->payload)) : std::string();
        v.rows.push_back(AcceptedRow(status, id));
        return v;
    }

    if (status >= 400 || status < 200 || status >= 300) {
        // The whole call was refused (a malformed member, a body too
        // large): halves find the row at fault; a lone row is refused with
        // Mailchimp's problem detail.
        if (status < 400) {
            v.kind = Verdict::Kind::Retry;
            v.error = "Mailchimp answered HTTP " + std::to_string(status);
            return v;
        }
        if (request.rows.size() > 1) {
            v.kind = Verdict::Kind::Split;
            return v;
        }
        v.rows.assign(request.rows.size(),
                      RejectedRow(status, message.empty() ? "refused by Mailchimp" : message, code));
        return v;
    }
    if (!json) {
        v.kind = Verdict::Kind::Retry;
        v.error = "Mailchimp answered HTTP " + std::to_string(status) + " with a body that is not JSON";
        return v;
    }
    // errors[] names the members that failed by email_address.
    std::map<std::string, std::pair<std::string, std::string>> failed;
    auto errors = doc.FindMember("errors");
    if (errors != doc.MemberEnd() && errors->value.IsArray())
        for (const auto &e : errors->value.GetArray()) {
            const std::string email = Lower(JsonMember(e, "email_address"));
            if (!email.empty())
                failed.emplace(email, std::make_pair(JsonMember(e, "error"), JsonMember(e, "error_code")));
        }
    for (size_t row : request.rows) {
        const std::string email = Email(changes[row].payload);
        auto f = failed.find(Lower(email));
        if (f != failed.end()) {
            v.rows.push_back(RejectedRow(status,
                                         f->second.first.empty() ? "refused by Mailchimp" : f->second.first,
                                         f->second.second.empty() ? "ERROR_GENERIC" : f->second.second));
            continue;
        }
        v.rows.push_back(AcceptedRow(status, MailchimpSubscriberHash(email)));
    }
    return v;
}

const ConnectorSpec &MailchimpSpec() {
    static const ConnectorSpec spec = [] {
        ConnectorSpec s;
        s.type = "mailchimp";
        s.summary = "Mailchimp audience members through the batch endpoint (merge fields), archived for "
                    "MIRROR, and tag membership (MODE AUDIENCE).";
        s.server_options = CommonServerOptions();
        for (auto &o : s.server_options) {
            if (o.name == "url") {
                o.required = false;
                o.description = "Where requests go; by default https://<dc>.api.mailchimp.com, the data "
                                "centre of the dc option or of the API key's -usNN suffix.";
            } else if (o.name == "batch_size") {
                o.default_value = "500";
            } else if (o.name == "max_in_flight") {
                // At most 10 connections at once per account (429 beyond),
                // shared with the account's other integrations.
                o.default_value = "4";
                o.max = MailchimpConnector::kMaxConnections;
            }
        }
        OptionSpec list;
        list.name = "list_id";
        list.kind = OptionKind::Text;
        list.required = true;
        list.description = "The audience (list) id members are written to.";
        OptionSpec dc;
        dc.name = "dc";
        dc.kind = OptionKind::Text;
        dc.description = "The data centre (us6, ...): needed with an OAuth token; by default the API key's "
                         "suffix.";
        OptionSpec member_status;
        member_status.name = "member_status";
        member_status.kind = OptionKind::Choice;
        member_status.choices = {"subscribed", "unsubscribed", "pending", "transactional"};
        member_status.default_value = "subscribed";
        member_status.description =
            "The status sent for members whose row maps no status column (existing members too).";
        s.server_options.push_back(list);
        s.server_options.push_back(dc);
        s.server_options.push_back(member_status);
        s.url_from_credentials = [](const OptionList &server, const Credentials &credentials) {
            std::string dc;
            for (const auto &o : server)
                if (o.first == "dc")
                    dc = o.second;
            if (dc.empty())
                dc = MailchimpDataCentre(!credentials.api_key.empty() ? credentials.api_key
                                                                      : credentials.password);
            return dc.empty() ? std::string() : "https://" + dc + ".api.mailchimp.com";
        };
        // An API key (sent as Basic "anystring:<key>"), the key as a Basic
        // password, or an OAuth access token (which does not expire).
        s.auth = {AuthKind::ApiKeyHeader, AuthKind::Basic, AuthKind::Bearer};
        s.default_object = "members";
        ObjectSpec members;
        members.name = "members";
        members.modes = {"upsert", "update", "insert", "mirror", "audience"};
        members.default_match_on = "email_address";
        members.match_on_hint = "Mailchimp identifies a member by its email address: MATCH ON names the "
                                "field holding it (email_address by default).";
        s.objects = {members};
        s.max_batch_size = static_cast<int>(MailchimpConnector::kMaxMembers);
        s.returns_ids = true;
        s.idempotency_keys = false;
        s.audience.supported = true;
        s.audience.names = "Mailchimp tag name";
        s.example = "OPTIONS (type 'mailchimp', list_id 'a1b2c3d4e5')";
        s.check_server = [](const OptionList &server) {
            for (const auto &o : server) {
                if (o.first == "list_id")
                    CheckListId(o.second);
                else if (o.first == "dc" && !ValidDataCentre(o.second))
                    throw Error(sqlstate::kFdwInvalidOptionValue,
                                "invalid value for option \"dc\": not a Mailchimp data centre",
                                "A data centre is a few letters then digits, as in us6.",
                                "Use the suffix of the API key, or the dc of the OAuth account's metadata.");
            }
        };
        s.check_target = [](const SyncTarget &target, const OptionList &, const std::string &sync_name,
                            const std::string &) { CheckMailchimpTarget(target, sync_name); };
        s.make = [](const DestinationSettings &settings,
                    const SyncTarget &target) -> std::unique_ptr<Connector> {
            return std::make_unique<MailchimpConnector>(settings, target);
        };
        return s;
    }();
    return spec;
}

} // namespace revetl
