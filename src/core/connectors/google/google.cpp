#include "core/connectors/google/google.hpp"

#include "core/connectors/audience_keys.hpp"
#include "core/connectors/json_text.hpp"

#include "core/common/encoding.hpp"
#include "core/common/error.hpp"
#include "core/connectors/options.hpp"

#include <rapidjson/document.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include <algorithm>
#include <cctype>
#include <set>

namespace revetl {

namespace {

using Writer = rapidjson::Writer<rapidjson::StringBuffer>;

// An unhashed value (user_id, postal code) longer than this is refused: it
// is kept whole in the member's dest_id.
constexpr size_t kMaxUnhashedValue = 1000;
// Request ids and job resource names are kept as flow state: bounded and
// of a plain alphabet.
constexpr size_t kMaxId = 200;

std::string Lower(std::string s) {
    for (auto &c : s)
        c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return s;
}

bool PlainId(const std::string &s) {
    if (s.empty() || s.size() > kMaxId)
        return false;
    for (char c : s)
        if (!std::isalnum(static_cast<unsigned char>(c)) && c != '/' && c != '_' && c != '-' && c != '.')
            return false;
    return true;
}

bool Digits(const std::string &s, size_t max) {
    return !s.empty() && s.size() <= max && s.find_first_not_of("0123456789") == std::string::npos;
}

// Google's error envelope, shared by both APIs:
// {"error":{"code":400,"message","status":"INVALID_ARGUMENT","details":[...]}}
// with GoogleAdsFailure details (errors[].errorCode {"<kind>": "<VALUE>"},
// quotaErrorDetails.retryDelay) for the Ads API, google.rpc.BadRequest
// (fieldViolations[].field / description / reason), ErrorInfo and RetryInfo
// for the Data Manager API.
struct GoogleError {
    bool present = false;
    long code = 0;
    std::string status, message, error_code, request_id;
    long retry_ms = -1;
    struct Violation {
        long member = -1; // index in audienceMembers / operations, -1: none
        std::string field, reason, description;
    };
    std::vector<Violation> violations;
};

// "30s", "1.5s" (a google.protobuf.Duration in JSON) as milliseconds.
long DurationMs(const rapidjson::Value &v) {
    if (v.IsObject()) { // {"seconds": "30", "nanos": 0} (the proto form)
        const std::string s = JsonMember(v, "seconds");
        if (Digits(s, 9))
            return std::stol(s) * 1000;
        return -1;
    }
    if (!v.IsString())
        return -1;
    std::string s(v.GetString(), v.GetStringLength());
    if (s.size() < 2 || s.size() > 20 || s.back() != 's')
        return -1;
    s.pop_back();
    const size_t dot = s.find('.');
    const std::string whole = s.substr(0, dot);
    if (!Digits(whole, 9))
        return -1;
    long ms = std::stol(whole) * 1000;
    if (dot != std::string::npos) {
        std::string frac = s.substr(dot + 1) + "000";
        if (frac.find_first_not_of("0123456789") != std::string::npos)
            return -1;
        ms += std::stol(frac.substr(0, 3));
    }
    return ms;
}

// The index after `name[` at the start of a field path ("audience_members[3]
// .user_data", "audienceMembers[3]", "operations[2].create"), or -1.
long PathIndex(const std::string &field) {
    for (const char *prefix : {"audience_members[", "audienceMembers[", "operations["}) {
        const std::string p = prefix;
        if (field.compare(0, p.size(), p) != 0)
            continue;
        const size_t end = field.find(']', p.size());
        if (end == std::string::npos)
            return -1;
        const std::string n = field.substr(p.size(), end - p.size());
        return Digits(n, 9) ? std::stol(n) : -1;
    }
    return -1;
}

void ReadAdsFailure(const rapidjson::Value &detail, GoogleError &e) {
    auto errors = detail.FindMember("errors");
    if (errors == detail.MemberEnd() || !errors->value.IsArray())
        return;
    if (e.request_id.empty())
        e.request_id = Truncate(JsonMember(detail, "requestId"), 100);
    for (const auto &err : errors->value.GetArray()) {
        if (!err.IsObject())
            continue;
        GoogleError::Violation v;
        auto code = err.FindMember("errorCode");
        if (code != err.MemberEnd() && code->value.IsObject() && code->value.MemberCount() > 0) {
            auto first = code->value.MemberBegin();
            v.reason = Truncate(JsonText(first->value), 100);
            if (e.error_code.empty())
                e.error_code = v.reason;
        }
        v.description = Truncate(JsonMember(err, "message"), 300);
        auto details = err.FindMember("details");
        if (details != err.MemberEnd() && details->value.IsObject()) {
            auto q = details->value.FindMember("quotaErrorDetails");
            if (q != details->value.MemberEnd() && q->value.IsObject()) {
                auto d = q->value.FindMember("retryDelay");
                if (d != q->value.MemberEnd())
                    e.retry_ms = std::max(e.retry_ms, DurationMs(d->value));
            }
        }
        auto loc = err.FindMember("location");
        if (loc != err.MemberEnd() && loc->value.IsObject()) {
            auto path = loc->value.FindMember("fieldPathElements");
            if (path != loc->value.MemberEnd() && path->value.IsArray() && !path->value.Empty()) {
                const auto &first = path->value[0];
                const std::string name = JsonMember(first, "fieldName");
                auto idx = first.IsObject() ? first.FindMember("index") : first.MemberEnd();
                if (name == "operations" && first.IsObject() && idx != first.MemberEnd() &&
                    idx->value.IsInt64() && idx->value.GetInt64() >= 0)
                    v.member = static_cast<long>(idx->value.GetInt64());
                for (const auto &el : path->value.GetArray())
                    v.field += (v.field.empty() ? "" : ".") + Truncate(JsonMember(el, "fieldName"), 60);
            }
        }
        if (e.violations.size() < 100000)
            e.violations.push_back(std::move(v));
    }
}

GoogleError ReadStatus(const rapidjson::Value &err) {
    GoogleError e;
    if (!err.IsObject())
        return e;
    e.present = true;
    auto code = err.FindMember("code");
    if (code != err.MemberEnd() && code->value.IsInt64())
        e.code = static_cast<long>(code->value.GetInt64());
    e.status = Truncate(JsonMember(err, "status"), 60);
    e.message = Truncate(JsonMember(err, "message"), 300);
    auto details = err.FindMember("details");
    if (details == err.MemberEnd() || !details->value.IsArray())
        return e;
    for (const auto &d : details->value.GetArray()) {
        if (!d.IsObject())
            continue;
        const std::string type = JsonMember(d, "@type");
        if (type.find("GoogleAdsFailure") != std::string::npos) {
            ReadAdsFailure(d, e);
        } else if (type.find("google.rpc.BadRequest") != std::string::npos) {
            auto fv = d.FindMember("fieldViolations");
            if (fv != d.MemberEnd() && fv->value.IsArray())
                for (const auto &f : fv->value.GetArray()) {
                    GoogleError::Violation v;
                    v.field = Truncate(JsonMember(f, "field"), 200);
                    v.reason = Truncate(JsonMember(f, "reason"), 100);
                    v.description = Truncate(JsonMember(f, "description"), 300);
                    v.member = PathIndex(v.field);
                    if (e.error_code.empty())
                        e.error_code = v.reason;
                    if (e.violations.size() < 100000)
                        e.violations.push_back(std::move(v));
                }
        } else if (type.find("google.rpc.ErrorInfo") != std::string::npos) {
            if (e.error_code.empty())
                e.error_code = Truncate(JsonMember(d, "reason"), 100);
        } else if (type.find("google.rpc.RetryInfo") != std::string::npos) {
            auto r = d.FindMember("retryDelay");
            if (r != d.MemberEnd())
                e.retry_ms = std::max(e.retry_ms, DurationMs(r->value));
        } else if (type.find("google.rpc.RequestInfo") != std::string::npos) {
            if (e.request_id.empty())
                e.request_id = Truncate(JsonMember(d, "requestId"), 100);
        }
    }
    return e;
}

GoogleError ReadError(const rapidjson::Document &doc) {
    if (!doc.IsObject())
        return {};
    auto it = doc.FindMember("error");
    if (it == doc.MemberEnd() || !it->value.IsObject())
        return {};
    return ReadStatus(it->value);
}

std::string Describe(const GoogleError &e) {
    std::string s = "Google error " + std::to_string(e.code);
    if (!e.status.empty())
        s += " " + e.status;
    if (!e.error_code.empty())
        s += " (" + e.error_code + ")";
    if (!e.message.empty())
        s += ": " + e.message;
    if (!e.request_id.empty())
        s += " [request-id " + e.request_id + "]";
    return s;
}

bool HasCode(const GoogleError &e, const std::string &code) {
    if (e.error_code == code)
        return true;
    for (const auto &v : e.violations)
        if (v.reason == code)
            return true;
    return false;
}

// The flow's cursor as FlowStep::state: "<r|a> <offset> <resource or ->
// <ids or ->", ids comma-separated, each "r:<id>" or "a:<id>".
struct State {
    bool add = false;
    size_t offset = 0;
    std::string resource;
    std::vector<std::string> ids;
};

std::string Encode(const State &s) {
    std::string ids;
    for (const auto &id : s.ids)
        ids += (ids.empty() ? "" : ",") + id;
    return std::string(s.add ? "a" : "r") + " " + std::to_string(s.offset) + " " +
           (s.resource.empty() ? "-" : s.resource) + " " + (ids.empty() ? "-" : ids);
}

std::optional<State> Decode(const std::string &text) {
    if (text.size() > 8192)
        return std::nullopt;
    std::vector<std::string> parts;
    size_t start = 0;
    while (start <= text.size()) {
        const size_t sp = text.find(' ', start);
        parts.push_back(text.substr(start, sp == std::string::npos ? std::string::npos : sp - start));
        if (sp == std::string::npos)
            break;
        start = sp + 1;
    }
    if (parts.size() != 4 || (parts[0] != "a" && parts[0] != "r") || !Digits(parts[1], 9))
        return std::nullopt;
    State s;
    s.add = parts[0] == "a";
    s.offset = std::stoul(parts[1]);
    if (parts[2] != "-") {
        if (!PlainId(parts[2]))
            return std::nullopt;
        s.resource = parts[2];
    }
    if (parts[3] != "-") {
        size_t p = 0;
        while (p <= parts[3].size()) {
            const size_t comma = parts[3].find(',', p);
            const std::string id =
                parts[3].substr(p, comma == std::string::npos ? std::string::npos : comma - p);
            if (id.size() < 3 || (id[0] != 'a' && id[0] != 'r') || id[1] != ':' || !PlainId(id.substr(2)))
                return std::nullopt;
            s.ids.push_back(id);
            if (comma == std::string::npos)
                break;
            p = comma + 1;
        }
    }
    return s;
}

bool ValidJobResource(const std::string &r) {
    // customers/<digits>/offlineUserDataJobs/<digits>
    const std::string a = "customers/", b = "/offlineUserDataJobs/";
    if (r.compare(0, a.size(), a) != 0)
        return false;
    const size_t mid = r.find(b, a.size());
    return mid != std::string::npos && Digits(r.substr(a.size(), mid - a.size()), 20) &&
           Digits(r.substr(mid + b.size()), 20);
}

} // namespace

const AudienceKeys &GoogleAudienceKeys() {
    // The identifiers both APIs take for Customer Match (UserIdentifier):
    // hashed email and phone, the address (hashed names, plain country and
    // postal code), and a third-party user id (Data Manager's user_id_data).
    static const AudienceKeys set{
        {"email", "phone", "first_name", "last_name", "country_code", "postal_code", "user_id"},
        false,
        "a Customer Match identifier key",
        "Customer Match identifier keys",
        "Name one of the identifier keys as the MAP target.",
        "the identifier key",
        "Each identifier key is one identifier of a member."};
    return set;
}

const std::vector<std::string> &GoogleKeys() {
    return GoogleAudienceKeys().keys;
}

bool GoogleUnhashedKey(const std::string &field) {
    const std::string k = Lower(field);
    return k == "country_code" || k == "postal_code" || k == "user_id";
}

std::string GoogleKey(const std::string &field) {
    return CanonicalAudienceKey(GoogleAudienceKeys(), field);
}

namespace {

const char *kAddressKeys[] = {"first_name", "last_name", "country_code", "postal_code"};

void CheckGoogleTarget(const SyncTarget &target, const std::string &sync_name) {
    if (target.mode != "audience")
        throw Error(sqlstate::kFeatureNotSupported,
                    "sync \"" + sync_name + "\" cannot use mode " + target.mode +
                        " with Google Customer Match",
                    "Customer Match takes membership only: the model's rows are the user list's members.",
                    "Use MODE AUDIENCE '<user list id>'.");
    if (target.map_fields.empty())
        throw Error(
            sqlstate::kInvalidParameterValue,
            "sync \"" + sync_name + "\" to Google Customer Match needs a MAP naming identifier keys",
            "Each MAP target is one of email, phone, first_name, last_name, country_code, postal_code "
            "or user_id; email, phone and the names are SHA-256 hashes in lower-case hex.",
            "For example MAP (revetl.hashed_identifier('email', email, 'google') AS email).");
    const std::vector<std::string> seen =
        CheckAudienceKeys(GoogleAudienceKeys(), target.map_fields, sync_name);
    int address = 0;
    for (const char *k : kAddressKeys)
        address += std::find(seen.begin(), seen.end(), k) != seen.end() ? 1 : 0;
    if (address != 0 && address != 4)
        throw Error(sqlstate::kInvalidParameterValue, "sync \"" + sync_name + "\" maps part of an address",
                    "Google matches an address only as first_name, last_name, country_code and postal_code "
                    "together.",
                    "Map all four, or none of them.");
    const bool user_id = std::find(seen.begin(), seen.end(), "user_id") != seen.end();
    if (user_id && seen.size() > 1)
        throw Error(sqlstate::kInvalidParameterValue,
                    "sync \"" + sync_name + "\" maps user_id together with contact information",
                    "A Customer Match list is either a contact-information list or a user id (CRM id) list; "
                    "Google takes a member's user id alone.",
                    "Map user_id alone, or only contact information keys.");
}

} // namespace

GoogleConnector::GoogleConnector(DestinationSettings settings, SyncTarget target)
    : settings_(std::move(settings)), target_(std::move(target)) {
    CheckGoogleTarget(target_, "?");
    for (const auto &f : target_.map_fields) {
        keys_.push_back(GoogleKey(f));
        fields_.push_back(f);
    }
    api_ = settings_.Option("api") == "google_ads" ? Api::Ads : Api::DataManager;
    customer_id_ = settings_.Option("customer_id");
    login_customer_id_ = settings_.Option("login_customer_id");
    account_type_ = settings_.Option("account_type");
    if (account_type_.empty())
        account_type_ = "google_ads";
    version_ = settings_.Option("api_version");
    if (version_.empty())
        version_ = api_ == Api::Ads ? kDefaultAdsVersion : "v1";
    consent_user_data_ = settings_.Option("consent_ad_user_data");
    consent_personalization_ = settings_.Option("consent_ad_personalization");
    terms_ = settings_.Option("customer_match_terms");
    if (api_ == Api::Ads) {
        bool token = false;
        for (const auto &h : settings_.headers)
            token = token || Lower(h.first) == "developer-token";
        if (!token)
            throw Error(
                sqlstate::kInvalidAuthorizationSpecification, "the Google Ads API needs a developer token",
                "Every Google Ads API call carries the developer-token header.",
                "Add it to the user mapping: OPTIONS (ADD headers '{\"developer-token\": \"...\"}').");
    }
}

std::string GoogleConnector::Base() const {
    std::string base = settings_.url;
    while (!base.empty() && base.back() == '/')
        base.pop_back();
    return base + "/" + version_;
}

std::string GoogleConnector::MemberId(const std::string &payload) const {
    rapidjson::Document doc;
    doc.Parse<rapidjson::kParseNumbersAsStringsFlag>(payload.c_str(), payload.size());
    if (doc.HasParseError() || !doc.IsObject())
        return {};
    rapidjson::StringBuffer buf;
    Writer w(buf);
    w.StartObject();
    // revetl's key order, whatever the MAP's: the same member has the same
    // dest_id after a MAP is reordered.
    for (const auto &key : GoogleKeys()) {
        const auto at = std::find(keys_.begin(), keys_.end(), key);
        if (at == keys_.end())
            continue;
        const std::string &field = fields_[static_cast<size_t>(at - keys_.begin())];
        auto it = doc.FindMember(field.c_str());
        if (it == doc.MemberEnd() || it->value.IsNull())
            return {};
        std::string value = JsonText(it->value);
        if (key == "country_code") {
            for (auto &c : value)
                c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
            if (value.size() != 2 || !std::isalpha(static_cast<unsigned char>(value[0])) ||
                !std::isalpha(static_cast<unsigned char>(value[1])))
                return {};
        }
        if (value.empty() || value.size() > kMaxUnhashedValue)
            return {};
        WriteJsonString(w, key);
        WriteJsonString(w, value);
    }
    w.EndObject();
    return std::string(buf.GetString(), buf.GetSize());
}

namespace {

// A dest_id kept for a member: a JSON object of identifier keys to
// strings, which is what a removal sends back. Anything else (a dest_id
// written by another type before the server's type changed) cannot name
// the member.
bool ReadableMemberId(const std::string &id) {
    rapidjson::Document d;
    d.Parse(id.c_str(), id.size());
    if (d.HasParseError() || !d.IsObject() || d.MemberCount() == 0)
        return false;
    for (auto m = d.MemberBegin(); m != d.MemberEnd(); ++m) {
        const std::string key(m->name.GetString(), m->name.GetStringLength());
        if (!m->value.IsString() || m->value.GetStringLength() == 0 || GoogleKey(key) != key)
            return false;
    }
    return true;
}

} // namespace

bool GoogleConnector::Swapped(const Change &c) const {
    // (Old identifiers that cannot be read are not removed: the row is added.)
    return c.op == Change::Op::Change && !c.dest_id.empty() && c.dest_id != MemberId(c.payload) &&
           ReadableMemberId(c.dest_id);
}

std::vector<size_t> GoogleConnector::Members(const std::vector<Change> &changes,
                                             const std::vector<size_t> &rows, Dir dir) const {
    std::vector<size_t> out;
    for (size_t i : rows) {
        const Change &c = changes[i];
        const bool remove = c.op == Change::Op::Remove || Swapped(c);
        const bool add = c.op != Change::Op::Remove;
        if ((dir == Dir::Remove && remove) || (dir == Dir::Add && add))
            out.push_back(i);
    }
    return out;
}

std::string GoogleConnector::Identifiers(const Change &c, Dir dir) const {
    return dir == Dir::Remove ? c.dest_id : MemberId(c.payload);
}

// Writes a member's identifiers (`ids`, a dest_id) as the API's
// userIdentifiers array (or, for Data Manager, the member's data object).
void GoogleConnector::UserIdentifiers(void *writer, const std::string &ids) const {
    Writer &w = *static_cast<Writer *>(writer);
    rapidjson::Document d;
    d.Parse(ids.c_str(), ids.size());
    auto get = [&](const char *k) { return JsonMember(d, k); };
    const bool ads = api_ == Api::Ads;
    if (!ads && d.IsObject() && d.HasMember("user_id")) {
        w.Key("userIdData");
        w.StartObject();
        w.Key("userId");
        WriteJsonString(w, get("user_id"));
        w.EndObject();
        return;
    }
    if (!ads) {
        w.Key("userData");
        w.StartObject();
    }
    w.Key("userIdentifiers");
    w.StartArray();
    auto one = [&](const char *name, const std::string &value) {
        w.StartObject();
        w.Key(name);
        WriteJsonString(w, value);
        w.EndObject();
    };
    if (d.IsObject()) {
        if (d.HasMember("email"))
            one(ads ? "hashedEmail" : "emailAddress", get("email"));
        if (d.HasMember("phone"))
            one(ads ? "hashedPhoneNumber" : "phoneNumber", get("phone"));
        if (d.HasMember("first_name")) {
            w.StartObject();
            w.Key(ads ? "addressInfo" : "address");
            w.StartObject();
            w.Key(ads ? "hashedFirstName" : "givenName");
            WriteJsonString(w, get("first_name"));
            w.Key(ads ? "hashedLastName" : "familyName");
            WriteJsonString(w, get("last_name"));
            w.Key(ads ? "countryCode" : "regionCode");
            WriteJsonString(w, get("country_code"));
            w.Key("postalCode");
            WriteJsonString(w, get("postal_code"));
            w.EndObject();
            w.EndObject();
        }
        if (ads && d.HasMember("user_id"))
            one("thirdPartyUserId", get("user_id"));
    }
    w.EndArray();
    if (!ads)
        w.EndObject();
}

PreparedRequest GoogleConnector::Call(const std::string &method, const std::string &url,
                                      const std::string &body, const char *step,
                                      const std::vector<size_t> &rows, const std::string &state,
                                      const std::string &job_id) const {
    PreparedRequest req;
    req.http.method = method;
    req.http.url = url;
    req.http.timeout_ms = settings_.timeout_ms;
    req.http.connect_timeout_ms = settings_.connect_timeout_ms;
    req.http.body = body;
    if (method != "GET")
        req.http.headers.emplace_back("Content-Type", "application/json");
    if (api_ == Api::Ads && !login_customer_id_.empty())
        req.http.headers.emplace_back("login-customer-id", login_customer_id_);
    // The user mapping's headers carry the developer token (a secret).
    for (const auto &h : settings_.headers)
        req.http.headers.push_back(h);
    ApplyAuth(settings_.credentials, req.http);
    req.rows = rows;
    req.flow.step = step;
    req.flow.state = state;
    req.flow.job_id = job_id;
    return req;
}

namespace {

std::string AccountType(const std::string &option) {
    std::string s = option;
    for (auto &c : s)
        c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    return s;
}

} // namespace

PreparedRequest GoogleConnector::DmCall(const std::vector<Change> &changes, const std::vector<size_t> &rows,
                                        const Cursor &cursor) const {
    const Dir dir = cursor.dir;
    const std::vector<size_t> members = Members(changes, rows, dir);
    const size_t end = std::min(members.size(), cursor.offset + kMaxMembers);
    rapidjson::StringBuffer buf;
    Writer w(buf);
    w.StartObject();
    w.Key("destinations");
    w.StartArray();
    w.StartObject();
    w.Key("operatingAccount");
    w.StartObject();
    w.Key("accountId");
    WriteJsonString(w, customer_id_);
    w.Key("accountType");
    WriteJsonString(w, AccountType(account_type_));
    w.EndObject();
    if (!login_customer_id_.empty()) {
        w.Key("loginAccount");
        w.StartObject();
        w.Key("accountId");
        WriteJsonString(w, login_customer_id_);
        w.Key("accountType");
        WriteJsonString(w, "GOOGLE_ADS");
        w.EndObject();
    }
    w.Key("productDestinationId");
    WriteJsonString(w, target_.audience);
    w.EndObject();
    w.EndArray();
    w.Key("audienceMembers");
    w.StartArray();
    for (size_t k = cursor.offset; k < end; k++) {
        w.StartObject();
        UserIdentifiers(&w, Identifiers(changes[members[k]], dir));
        w.EndObject();
    }
    w.EndArray();
    w.Key("encoding");
    WriteJsonString(w, "HEX");
    if (dir == Dir::Add) {
        if (!consent_user_data_.empty() || !consent_personalization_.empty()) {
            w.Key("consent");
            w.StartObject();
            if (!consent_user_data_.empty()) {
                w.Key("adUserData");
                WriteJsonString(w, consent_user_data_ == "granted" ? "CONSENT_GRANTED" : "CONSENT_DENIED");
            }
            if (!consent_personalization_.empty()) {
                w.Key("adPersonalization");
                WriteJsonString(w,
                                consent_personalization_ == "granted" ? "CONSENT_GRANTED" : "CONSENT_DENIED");
            }
            w.EndObject();
        }
        if (!terms_.empty()) {
            w.Key("termsOfService");
            w.StartObject();
            w.Key("customerMatchTermsOfServiceStatus");
            WriteJsonString(w, terms_ == "accepted" ? "ACCEPTED" : "REJECTED");
            w.EndObject();
        }
    }
    w.EndObject();
    State s;
    s.add = dir == Dir::Add;
    s.offset = cursor.offset;
    s.ids = cursor.ids;
    return Call("POST",
                settings_.url.substr(0, settings_.url.find_last_not_of('/') + 1) +
                    "/v1/audienceMembers:" + (dir == Dir::Add ? "ingest" : "remove"),
                std::string(buf.GetString(), buf.GetSize()), dir == Dir::Add ? kDmIngest : kDmRemove, rows,
                Encode(s));
}

PreparedRequest GoogleConnector::DmPoll(const std::vector<size_t> &rows, const Cursor &cursor) const {
    // cursor.ids: the request ids still to check, the first polled now.
    State s;
    s.ids = cursor.ids;
    const std::string id = cursor.ids.front().substr(2);
    return Call("GET",
                settings_.url.substr(0, settings_.url.find_last_not_of('/') + 1) +
                    "/v1/requestStatus:retrieve?requestId=" + UrlEncode(id),
                "", kDmStatus, rows, Encode(s), id);
}

PreparedRequest GoogleConnector::AdsCreate(const std::vector<size_t> &rows, const Cursor &cursor) const {
    const Dir dir = cursor.dir;
    rapidjson::StringBuffer buf;
    Writer w(buf);
    w.StartObject();
    w.Key("job");
    w.StartObject();
    w.Key("type");
    WriteJsonString(w, "CUSTOMER_MATCH_USER_LIST");
    w.Key("customerMatchUserListMetadata");
    w.StartObject();
    w.Key("userList");
    WriteJsonString(w, "customers/" + customer_id_ + "/userLists/" + target_.audience);
    // Consent goes with the jobs that add members; removals need none.
    if (dir == Dir::Add && (!consent_user_data_.empty() || !consent_personalization_.empty())) {
        w.Key("consent");
        w.StartObject();
        if (!consent_user_data_.empty()) {
            w.Key("adUserData");
            WriteJsonString(w, consent_user_data_ == "granted" ? "GRANTED" : "DENIED");
        }
        if (!consent_personalization_.empty()) {
            w.Key("adPersonalization");
            WriteJsonString(w, consent_personalization_ == "granted" ? "GRANTED" : "DENIED");
        }
        w.EndObject();
    }
    w.EndObject();
    w.EndObject();
    w.EndObject();
    State s;
    s.add = dir == Dir::Add;
    s.ids = cursor.ids;
    return Call("POST", Base() + "/customers/" + customer_id_ + "/offlineUserDataJobs:create",
                std::string(buf.GetString(), buf.GetSize()), kAdsCreate, rows, Encode(s));
}

PreparedRequest GoogleConnector::AdsOperations(const std::vector<Change> &changes,
                                               const std::vector<size_t> &rows, const Cursor &cursor) const {
    const std::vector<size_t> members = Members(changes, rows, cursor.dir);
    const size_t end = std::min(members.size(), cursor.offset + kMaxOperations);
    rapidjson::StringBuffer buf;
    Writer w(buf);
    w.StartObject();
    w.Key("enablePartialFailure");
    w.Bool(true);
    w.Key("operations");
    w.StartArray();
    for (size_t k = cursor.offset; k < end; k++) {
        w.StartObject();
        w.Key(cursor.dir == Dir::Add ? "create" : "remove");
        w.StartObject();
        UserIdentifiers(&w, Identifiers(changes[members[k]], cursor.dir));
        w.EndObject();
        w.EndObject();
    }
    w.EndArray();
    w.EndObject();
    State s;
    s.add = cursor.dir == Dir::Add;
    s.offset = cursor.offset;
    s.resource = cursor.resource;
    s.ids = cursor.ids;
    return Call("POST", Base() + "/" + cursor.resource + ":addOperations",
                std::string(buf.GetString(), buf.GetSize()), kAdsAdd, rows, Encode(s));
}

PreparedRequest GoogleConnector::AdsRun(const std::vector<size_t> &rows, const Cursor &cursor) const {
    State s;
    s.add = cursor.dir == Dir::Add;
    s.resource = cursor.resource;
    s.ids = cursor.ids;
    return Call("POST", Base() + "/" + cursor.resource + ":run", "{}", kAdsRun, rows, Encode(s));
}

std::string GoogleConnector::JobResource(const std::string &id) const {
    return "customers/" + customer_id_ + "/offlineUserDataJobs/" + id.substr(2);
}

PreparedRequest GoogleConnector::AdsStatus(const std::vector<size_t> &rows, const Cursor &cursor,
                                           const char *step) const {
    // The job asked about: the first of the flow's jobs still to finish
    // (cursor.ids), or, in a flow kept by an earlier version, its one job.
    const std::string resource = cursor.ids.empty() ? cursor.resource : JobResource(cursor.ids.front());
    rapidjson::StringBuffer buf;
    Writer w(buf);
    w.StartObject();
    w.Key("query");
    // The resource name is digits and slashes (ValidJobResource, Digits).
    WriteJsonString(w, "SELECT offline_user_data_job.resource_name, offline_user_data_job.status, "
                       "offline_user_data_job.failure_reason FROM offline_user_data_job WHERE "
                       "offline_user_data_job.resource_name = '" +
                           resource + "'");
    w.EndObject();
    State s;
    s.add = cursor.ids.empty() ? cursor.dir == Dir::Add : cursor.ids.front()[0] == 'a';
    s.resource = resource;
    s.ids = cursor.ids;
    return Call("POST", Base() + "/customers/" + customer_id_ + "/googleAds:search",
                std::string(buf.GetString(), buf.GetSize()), step, rows, Encode(s), resource);
}

std::optional<PreparedRequest> GoogleConnector::Next(const std::vector<Change> &changes,
                                                     const std::vector<size_t> &rows, Cursor cursor) const {
    for (;;) {
        const size_t n = Members(changes, rows, cursor.dir).size();
        if (api_ == Api::DataManager) {
            if (cursor.offset < n)
                return DmCall(changes, rows, cursor);
        } else if (n > 0) {
            if (cursor.resource.empty())
                return AdsCreate(rows, cursor);
            if (cursor.offset < n)
                return AdsOperations(changes, rows, cursor);
            // This direction's members are all in the job: it is one of
            // the jobs the flow waits for, run after the run's last batch.
            const std::string &r = cursor.resource;
            cursor.ids.push_back(std::string(cursor.dir == Dir::Add ? "a:" : "r:") +
                                 r.substr(r.find_last_of('/') + 1));
        }
        if (cursor.dir == Dir::Add)
            break;
        cursor.dir = Dir::Add;
        cursor.offset = 0;
        cursor.resource = api_ == Api::Ads && !final_pass_ ? open_jobs_[1] : std::string();
    }
    // Ads: the jobs are run and polled in order, removals first (a member
    // whose identifiers changed leaves under the old ones before it joins
    // under the new).
    if (api_ == Api::Ads && !cursor.ids.empty())
        return AdsStatus(rows, cursor, kAdsReady);
    return std::nullopt;
}

std::vector<PreparedRequest> GoogleConnector::Prepare(const BatchContext &context,
                                                      const std::vector<Change> &changes,
                                                      const std::vector<size_t> &rows,
                                                      std::vector<std::pair<size_t, RowOutcome>> &immediate) {
    final_pass_ = context.final_pass;
    std::vector<size_t> pending;
    for (size_t i : rows) {
        const Change &c = changes[i];
        if (c.op == Change::Op::Remove) {
            if (c.dest_id.empty()) {
                immediate.emplace_back(i, UnresolvableRemoval("Google", "Google member identifier",
                                                              "removed from the user list", ""));
                continue;
            }
            if (!ReadableMemberId(c.dest_id)) {
                immediate.emplace_back(
                    i, UnusableRecordIdRemoval("Google",
                                               "the Google member identifiers kept for this row cannot be "
                                               "read, so the member cannot be removed from the user list",
                                               ""));
                continue;
            }
        }
        if (c.op == Change::Op::Remove) {
            pending.push_back(i);
            continue;
        }
        if (MemberId(c.payload).empty()) {
            immediate.emplace_back(i, RejectedRow(0,
                                                  "a Customer Match identifier is missing, longer than " +
                                                      std::to_string(kMaxUnhashedValue) +
                                                      " bytes, or a country_code that is not two letters",
                                                  "BAD_IDENTIFIER"));
            continue;
        }
        pending.push_back(i);
    }
    std::vector<PreparedRequest> out;
    if (pending.empty())
        return out;
    // One flow for the batch: removals first (a member whose identifiers
    // changed leaves under the old ones before it joins under the new).
    // Ads: into the run's open job of each direction, when there is one.
    Cursor first;
    if (api_ == Api::Ads && !final_pass_)
        first.resource = open_jobs_[0];
    if (auto call = Next(changes, pending, first))
        out.push_back(std::move(*call));
    return out;
}

Verdict GoogleConnector::Finish(const PreparedRequest &request, const std::vector<Change> &changes,
                                long status, std::vector<std::optional<RowOutcome>> outcomes,
                                std::optional<PreparedRequest> next) const {
    Verdict v;
    v.rows.resize(request.rows.size());
    std::vector<size_t> carried;
    for (size_t j = 0; j < request.rows.size(); j++) {
        if (outcomes[j]) {
            v.rows[j] = *outcomes[j];
            continue;
        }
        carried.push_back(request.rows[j]);
        const Change &c = changes[request.rows[j]];
        RowOutcome o;
        o.accepted = true;
        o.http_status = status;
        o.dest_id = c.op == Change::Op::Remove ? std::string() : MemberId(c.payload);
        v.rows[j] = o;
    }
    if (next) {
        next->rows = carried;
        if (carried.empty()) {
            v.kind = Verdict::Kind::Done;
            return v;
        }
        v.kind = Verdict::Kind::Continue;
        v.next = std::move(next);
    }
    return v;
}

Verdict GoogleConnector::AfterDmCall(const PreparedRequest &request, const std::vector<Change> &changes,
                                     long status, std::vector<std::optional<RowOutcome>> outcomes,
                                     const std::vector<size_t> &left, const Cursor &cursor) const {
    std::optional<PreparedRequest> next;
    if (!left.empty())
        next = Next(changes, left, cursor);
    if (next) {
        // The next call's state carries the request ids so far.
        auto ns = Decode(next->flow.state);
        ns->ids = cursor.ids;
        next->flow.state = Encode(*ns);
        return Finish(request, changes, status, std::move(outcomes), std::move(next));
    }
    if (cursor.ids.empty() || left.empty())
        return Finish(request, changes, status, std::move(outcomes), std::nullopt);
    // Every call of the flow is sent: its requests are a job, kept before
    // the first poll, so that a killed run polls instead of sending again.
    Verdict out = Finish(request, changes, status, std::move(outcomes), DmPoll(left, cursor));
    out.job_accepted = out.kind == Verdict::Kind::Continue;
    return out;
}

std::optional<PreparedRequest> GoogleConnector::Resume(const BatchContext &context,
                                                       const std::vector<Change> &, const FlowStep &step) {
    final_pass_ = context.final_pass;
    auto s = Decode(step.state);
    if (!s)
        return std::nullopt;
    Cursor c;
    c.dir = s->add ? Dir::Add : Dir::Remove;
    c.offset = s->offset;
    c.resource = s->resource;
    c.ids = s->ids;
    if (api_ == Api::DataManager && step.step == kDmStatus && !c.ids.empty() && PlainId(step.job_id))
        return DmPoll({}, c);
    if (api_ == Api::Ads && step.step == kAdsPoll && c.ids.empty() && ValidJobResource(c.resource))
        return AdsStatus({}, c, kAdsPoll); // kept by an earlier version: its one job, already run
    if (api_ == Api::Ads && (step.step == kAdsReady || step.step == kAdsPoll) && !c.ids.empty()) {
        for (const auto &id : c.ids)
            if (!Digits(id.substr(2), 20))
                return std::nullopt;
        return AdsStatus({}, c, step.step == kAdsReady ? kAdsReady : kAdsPoll);
    }
    return std::nullopt;
}

Verdict GoogleConnector::Interpret(const PreparedRequest &request, const std::vector<Change> &changes,
                                   const HttpResponse &response) {
    Verdict v;
    const long status = response.status;
    rapidjson::Document doc;
    doc.Parse(response.body.c_str(), response.body.size());
    const bool json = !doc.HasParseError() && doc.IsObject();
    const GoogleError err = json ? ReadError(doc) : GoogleError{};
    const std::string &step = request.flow.step;
    const bool polling = step == kDmStatus || step == kAdsPoll || step == kAdsReady;
    auto state = Decode(request.flow.state);
    if (!state) {
        v.kind = Verdict::Kind::Fatal;
        v.error = "the Google flow state of this request cannot be read";
        return v;
    }
    Cursor cursor;
    cursor.dir = state->add ? Dir::Add : Dir::Remove;
    cursor.offset = state->offset;
    cursor.resource = state->resource;
    cursor.ids = state->ids;

    // Quota: 429 RESOURCE_EXHAUSTED, waited out for the retryDelay Google
    // names (a daily quota spent names hours: the run stops instead).
    if (status == 429 || err.status == "RESOURCE_EXHAUSTED") {
        throttles_++;
        long ms = err.retry_ms;
        if (ms > 15L * 60 * 1000) {
            v.kind = Verdict::Kind::Fatal;
            v.error = "Google's quota is spent for now: " + Describe(err) + "; it asks to wait " +
                      std::to_string(ms / 60000) + " minutes, so the sync's next run goes on";
            return v;
        }
        if (ms < 0)
            ms = std::min(300000L, 2000L << std::min(consecutive_throttles_, 8));
        consecutive_throttles_++;
        v.kind = Verdict::Kind::Throttled;
        v.wait_ms = ms;
        v.error = "Google rate limit: " + Describe(err);
        return v;
    }
    if (status == 401 || err.status == "UNAUTHENTICATED") {
        v.kind = Verdict::Kind::AuthExpired;
        v.error =
            "Google refused the access token: " + Describe(err) +
            ". Check the OAuth options of the user mapping for this server (a refresh token granted the " +
            (api_ == Api::Ads ? std::string("https://www.googleapis.com/auth/adwords")
                              : std::string("https://www.googleapis.com/auth/datamanager")) +
            " scope)";
        return v;
    }
    if (status == 403 || err.status == "PERMISSION_DENIED") {
        v.kind = Verdict::Kind::Fatal;
        v.error =
            "Google refused the call: " + Describe(err) +
            (api_ == Api::Ads ? ". Check the developer-token header of the user mapping, the server's "
                                "customer_id and login_customer_id, and that the OAuth user can reach "
                                "user list " +
                                    target_.audience
                              : ". Check the server's customer_id, account_type and login_customer_id, and "
                                "that the OAuth user can reach user list " +
                                    target_.audience);
        return v;
    }
    if (HasCode(err, "CONCURRENT_MODIFICATION") || err.status == "ABORTED") {
        // Another job is editing the same user list: wait and send again.
        concurrent_++;
        v.kind = Verdict::Kind::Retry;
        v.wait_ms = std::min(60000L, 1000L << std::min(concurrent_, 6));
        v.error = "Google: " + Describe(err);
        return v;
    }
    if (status == 0 || status == 408 || status >= 500 || err.status == "UNAVAILABLE" ||
        err.status == "INTERNAL" || err.status == "DEADLINE_EXCEEDED") {
        v.kind = Verdict::Kind::Retry;
        v.error = status == 0 ? "could not reach Google: " +
                                    (response.timed_out ? std::string("timed out") : response.transport_error)
                              : "Google answered HTTP " + std::to_string(status) +
                                    (err.present ? ": " + Describe(err) : std::string());
        return v;
    }
    if (polling && (status == 404 || err.status == "NOT_FOUND")) {
        v.kind = Verdict::Kind::Resend;
        v.error = "Google no longer knows " + Truncate(request.flow.job_id, 100);
        return v;
    }
    if (!err.present)
        if (auto failure = ConnectionFailure(response, request.http.url, false))
            return *failure;

    std::vector<std::optional<RowOutcome>> outcomes(request.rows.size());
    auto reject_dir = [&](Dir dir, const std::string &reason, const std::string &code) {
        const auto members = Members(changes, request.rows, dir);
        for (size_t j = 0; j < request.rows.size(); j++)
            if (std::find(members.begin(), members.end(), request.rows[j]) != members.end())
                outcomes[j] = RejectedRow(status, reason, code);
    };

    if (err.present || status < 200 || status >= 300) {
        const std::string code = !err.error_code.empty() ? err.error_code
                                 : !err.status.empty()   ? err.status
                                                         : "HTTP_" + std::to_string(status);
        const std::string reason =
            err.present ? Describe(err) : "Google answered HTTP " + std::to_string(status);
        // Data Manager refuses a whole call for a malformed member and names
        // it (audience_members[i]): those rows are refused, the rest sent again.
        if ((step == kDmIngest || step == kDmRemove) && !err.violations.empty()) {
            const auto members = Members(changes, request.rows, cursor.dir);
            std::set<size_t> named;
            bool all_named = true;
            for (const auto &viol : err.violations) {
                const size_t k = cursor.offset + static_cast<size_t>(viol.member);
                if (viol.member < 0 || k >= members.size()) {
                    all_named = false;
                    continue;
                }
                if (named.insert(members[k]).second)
                    for (size_t j = 0; j < request.rows.size(); j++)
                        if (request.rows[j] == members[k])
                            outcomes[j] =
                                RejectedRow(status,
                                            "Google refused " + viol.field + ": " +
                                                (viol.description.empty() ? err.message : viol.description),
                                            viol.reason.empty() ? code : viol.reason);
            }
            if (all_named && !named.empty()) {
                std::vector<size_t> left;
                for (size_t j = 0; j < request.rows.size(); j++)
                    if (!outcomes[j])
                        left.push_back(request.rows[j]);
                rejected_ += static_cast<int64_t>(named.size());
                return AfterDmCall(request, changes, status, std::move(outcomes), left, cursor);
            }
        }
        // The call as a whole was refused (a user list that does not exist,
        // a policy): every row of the flow carries Google's message.
        for (auto &o : outcomes)
            o = RejectedRow(status, reason, code);
        rejected_ += static_cast<int64_t>(request.rows.size());
        return Finish(request, changes, status, std::move(outcomes), std::nullopt);
    }
    consecutive_throttles_ = 0;
    concurrent_ = 0;

    if (step == kDmIngest || step == kDmRemove) {
        const std::string id = json ? JsonMember(doc, "requestId") : std::string();
        if (!PlainId(id)) {
            v.kind = Verdict::Kind::Retry;
            v.error = "Google answered no usable requestId";
            return v;
        }
        const size_t n = Members(changes, request.rows, cursor.dir).size();
        sent_ += static_cast<int64_t>(std::min(n, cursor.offset + kMaxMembers) - cursor.offset);
        cursor.ids.push_back(std::string(cursor.dir == Dir::Add ? "a:" : "r:") + id);
        cursor.offset = std::min(n, cursor.offset + kMaxMembers);
        return AfterDmCall(request, changes, status, std::move(outcomes), request.rows, cursor);
    }
    if (step == kDmStatus) {
        std::string rs;
        auto per = json ? doc.FindMember("requestStatusPerDestination") : doc.MemberEnd();
        const rapidjson::Value *dest = nullptr;
        if (json && per != doc.MemberEnd() && per->value.IsArray() && !per->value.Empty())
            dest = &per->value[0];
        if (dest)
            rs = JsonMember(*dest, "requestStatus");
        const bool add = cursor.ids.front()[0] == 'a';
        if (rs == "SUCCESS" || rs == "PARTIAL_SUCCESS" || rs == "FAILED") {
            std::string reasons;
            int64_t failed = 0;
            auto info = dest->FindMember("errorInfo");
            if (info != dest->MemberEnd() && info->value.IsObject()) {
                auto counts = info->value.FindMember("errorCounts");
                if (counts != info->value.MemberEnd() && counts->value.IsArray())
                    for (const auto &c : counts->value.GetArray()) {
                        const std::string n = JsonMember(c, "recordCount");
                        if (Digits(n, 12))
                            failed += std::stoll(n);
                        reasons += (reasons.empty() ? "" : ", ") + Truncate(JsonMember(c, "reason"), 80) +
                                   " (" + Truncate(n, 12) + ")";
                    }
            }
            if (add && rs != "FAILED") {
                const auto status_obj = dest->FindMember("audienceMembersIngestionStatus");
                if (status_obj != dest->MemberEnd() && status_obj->value.IsObject())
                    for (auto m = status_obj->value.MemberBegin(); m != status_obj->value.MemberEnd(); ++m) {
                        const std::string r = JsonMember(m->value, "uploadMatchRateRange");
                        if (!r.empty())
                            match_rate_ = Truncate(r, 60);
                    }
            }
            if (rs == "PARTIAL_SUCCESS") {
                // Google counts the failed members by reason without naming
                // them: the rows count as delivered and the note says so.
                partial_requests_++;
                failed_counts_ += failed;
            }
            if (rs == "FAILED") {
                reject_dir(add ? Dir::Add : Dir::Remove,
                           "Google could not process the request " + cursor.ids.front().substr(2) +
                               (reasons.empty() ? std::string() : ": " + reasons),
                           "REQUEST_FAILED");
                for (const auto &o : outcomes)
                    rejected_ += o ? 1 : 0;
            }
            cursor.ids.erase(cursor.ids.begin());
            if (cursor.ids.empty())
                return Finish(request, changes, status, std::move(outcomes), std::nullopt);
            return Finish(request, changes, status, std::move(outcomes), DmPoll(request.rows, cursor));
        }
        // PROCESSING (or not yet known): poll again.
        v.kind = Verdict::Kind::Continue;
        v.next = DmPoll(request.rows, cursor);
        return v;
    }
    if (step == kAdsCreate) {
        const std::string resource = json ? JsonMember(doc, "resourceName") : std::string();
        if (!ValidJobResource(resource)) {
            v.kind = Verdict::Kind::Retry;
            v.error = "Google answered no usable job resourceName";
            return v;
        }
        cursor.resource = resource;
        cursor.offset = 0;
        // The run's later batches add to this job rather than making their own.
        if (!final_pass_)
            open_jobs_[cursor.dir == Dir::Add ? 1 : 0] = resource;
        return Finish(request, changes, status, std::move(outcomes), Next(changes, request.rows, cursor));
    }
    if (step == kAdsAdd) {
        const auto members = Members(changes, request.rows, cursor.dir);
        const size_t end = std::min(members.size(), cursor.offset + kMaxOperations);
        size_t refused = 0;
        auto pf = json ? doc.FindMember("partialFailureError") : doc.MemberEnd();
        if (json && pf != doc.MemberEnd() && pf->value.IsObject()) {
            const GoogleError e = ReadStatus(pf->value);
            std::set<size_t> named;
            for (const auto &viol : e.violations) {
                const size_t k = cursor.offset + static_cast<size_t>(viol.member);
                if (viol.member < 0 || k >= end || !named.insert(members[k]).second)
                    continue;
                for (size_t j = 0; j < request.rows.size(); j++)
                    if (request.rows[j] == members[k])
                        outcomes[j] = RejectedRow(status,
                                                  "Google refused operation " + std::to_string(viol.member) +
                                                      " (" + viol.field + "): " + viol.description,
                                                  viol.reason.empty() ? "PARTIAL_FAILURE" : viol.reason);
                refused++;
            }
            rejected_ += static_cast<int64_t>(refused);
        }
        sent_ += static_cast<int64_t>(end - cursor.offset);
        // Refused members leave the flow; those after them move up.
        cursor.offset = end - refused;
        std::vector<size_t> left;
        for (size_t j = 0; j < request.rows.size(); j++)
            if (!outcomes[j])
                left.push_back(request.rows[j]);
        // (A job all of whose members were refused is left unrun: Google
        // drops a job never run.)
        Verdict out = Finish(request, changes, status, std::move(outcomes),
                             left.empty() ? std::nullopt : Next(changes, left, cursor));
        if (out.kind == Verdict::Kind::Continue && out.next->flow.step == kAdsReady) {
            // The batch's operations are all in the run's jobs: they are
            // kept (a run killed from here on finishes them rather than
            // sending again) and, until the run's last batch, parked.
            out.job_accepted = true;
            out.park = !final_pass_;
        }
        return out;
    }
    if (step == kAdsRun) {
        // The job runs at Google: poll it until it is done.
        v.kind = Verdict::Kind::Continue;
        v.next = AdsStatus(request.rows, cursor, kAdsPoll);
        return v;
    }
    if (step == kAdsReady || step == kAdsPoll) {
        auto results = json ? doc.FindMember("results") : doc.MemberEnd();
        if (!json || results == doc.MemberEnd() || !results->value.IsArray() || results->value.Empty()) {
            v.kind = Verdict::Kind::Resend;
            v.error = "Google no longer knows job " + cursor.resource;
            return v;
        }
        const rapidjson::Value &r = results->value[0];
        auto job = r.IsObject() ? r.FindMember("offlineUserDataJob") : r.MemberEnd();
        const std::string st =
            r.IsObject() && job != r.MemberEnd() ? JsonMember(job->value, "status") : std::string();
        if (st == "PENDING" && step == kAdsReady && !run_sent_.count(cursor.resource)) {
            // Still taking operations: run it, once (the other batches of
            // the run wait on the same job), and close it to later batches.
            run_sent_.insert(cursor.resource);
            for (auto &open : open_jobs_)
                if (open == cursor.resource)
                    open.clear();
            v.kind = Verdict::Kind::Continue;
            v.next = AdsRun(request.rows, cursor);
            return v;
        }
        if (st == "SUCCESS" || st == "FAILED") {
            const Dir dir = cursor.ids.empty()             ? cursor.dir
                            : cursor.ids.front()[0] == 'a' ? Dir::Add
                                                           : Dir::Remove;
            if (st == "FAILED") {
                const std::string why = JsonMember(job->value, "failureReason");
                reject_dir(dir,
                           "Google's job " + cursor.resource + " failed" +
                               (why.empty() ? std::string() : ": " + Truncate(why, 100)),
                           why.empty() ? "JOB_FAILED" : Truncate(why, 100));
                for (const auto &o : outcomes)
                    rejected_ += o ? 1 : 0;
            }
            if (!cursor.ids.empty())
                cursor.ids.erase(cursor.ids.begin());
            std::vector<size_t> left;
            for (size_t j = 0; j < request.rows.size(); j++)
                if (!outcomes[j])
                    left.push_back(request.rows[j]);
            return Finish(request, changes, status, std::move(outcomes),
                          left.empty() || cursor.ids.empty()
                              ? std::nullopt
                              : std::optional<PreparedRequest>(AdsStatus(left, cursor, kAdsReady)));
        }
        // Running (or run and not started yet): poll again.
        v.kind = Verdict::Kind::Continue;
        v.next = AdsStatus(request.rows, cursor, step == kAdsReady && st == "PENDING" ? kAdsReady : kAdsPoll);
        return v;
    }
    v.kind = Verdict::Kind::Fatal;
    v.error = "unknown Google flow step \"" + Truncate(step, 40) + "\"";
    return v;
}

std::string GoogleConnector::RunNote() const {
    std::string note;
    if (sent_ > 0)
        note = "Google took " + std::to_string(sent_) + " members" +
               (rejected_ > 0 ? ", refused " + std::to_string(rejected_) : std::string());
    if (partial_requests_ > 0)
        note += (note.empty() ? "" : "; ") + std::to_string(partial_requests_) +
                " requests partly failed at Google, " + std::to_string(failed_counts_) +
                " members (Google does not say which)";
    if (!match_rate_.empty())
        note += (note.empty() ? "" : "; ") + std::string("match rate ") + match_rate_;
    if (throttles_ > 0)
        note += (note.empty() ? "" : "; ") + std::string("Google throttled ") + std::to_string(throttles_) +
                " calls";
    return note;
}

const ConnectorSpec &GoogleSpec() {
    static const ConnectorSpec spec = [] {
        ConnectorSpec s;
        s.type = "google";
        s.summary = "Google Customer Match user list membership (MODE AUDIENCE) through the Data Manager API "
                    "or the Google Ads API's offline user data jobs, with hashed identifiers.";
        s.server_options = CommonServerOptions();
        for (auto &o : s.server_options) {
            if (o.name == "url") {
                o.required = false;
            } else if (o.name == "batch_size") {
                o.default_value = "10000";
            } else if (o.name == "max_in_flight") {
                // Jobs on one user list go one at a time (Google answers
                // CONCURRENT_MODIFICATION otherwise).
                o.default_value = "1";
            } else if (o.name == "rate_limit") {
                // Google's quotas answer 429 with the wait: no fixed rate.
                o.default_value = "none";
            }
        }
        auto opt = [&](const char *name, OptionKind kind, const char *def, std::vector<std::string> choices,
                       const char *description) {
            OptionSpec o;
            o.name = name;
            o.kind = kind;
            o.default_value = def;
            o.choices = std::move(choices);
            o.description = description;
            s.server_options.push_back(o);
            return &s.server_options.back();
        };
        opt("api", OptionKind::Choice, "data_manager", {"data_manager", "google_ads"},
            "Which Google API writes the list: data_manager (the Data Manager API) or google_ads (the Google "
            "Ads API's offline user data jobs).");
        opt("customer_id", OptionKind::Text, "", {},
            "The Google Ads account (customer id, digits only) that owns the user list.")
            ->required = true;
        opt("login_customer_id", OptionKind::Text, "", {},
            "The manager account (digits only) the OAuth user reaches the account through, if any.");
        opt("account_type", OptionKind::Choice, "google_ads",
            {"google_ads", "display_video_advertiser", "display_video_partner", "data_partner"},
            "Data Manager API: the kind of account customer_id names.");
        opt("api_version", OptionKind::Text, "", {},
            "Google Ads API: the version in the path, such as v25 (default v25; Data Manager is v1).");
        opt("consent_ad_user_data", OptionKind::Choice, "", {"granted", "denied"},
            "The EU user consent for ad user data sent with added members (omitted when unset).");
        opt("consent_ad_personalization", OptionKind::Choice, "", {"granted", "denied"},
            "The EU user consent for ad personalization sent with added members (omitted when unset).");
        opt("customer_match_terms", OptionKind::Choice, "", {"accepted", "rejected"},
            "Data Manager API: the Customer Match terms of service status sent with added members.");
        {
            OptionSpec *o = opt("job_poll_interval", OptionKind::Duration, "5s", {},
                                "How long after a request or job is accepted its first status poll goes out "
                                "(then twice as late each time, up to 60s).");
            o->min = 10;
            o->max = 60000;
        }
        // OAuth 2.0 refresh token (the OAuth user's, with the datamanager or
        // adwords scope); a bearer token for tests and short-lived tokens.
        s.auth = {AuthKind::OAuth, AuthKind::Bearer};
        s.default_url = [](const OptionList &server) -> std::string {
            for (const auto &o : server)
                if (o.first == "api" && o.second == "google_ads")
                    return "https://googleads.googleapis.com";
            return "https://datamanager.googleapis.com";
        };
        s.default_object = "audience";
        ObjectSpec audience;
        audience.name = "audience";
        audience.modes = {"audience"};
        s.objects = {audience};
        s.max_batch_size = static_cast<int>(GoogleConnector::kMaxBatch);
        s.returns_ids = true;
        s.audience.supported = true;
        s.audience.names = "Google Customer Match user list id";
        s.audience.numeric = true;
        s.audience.every_field_identifies = true;
        s.audience.hashed_identifiers = true;
        s.audience.unhashed = [](const std::string &field) { return GoogleUnhashedKey(field); };
        s.jobs.first_poll_ms = 5000;
        s.jobs.max_poll_interval_ms = 60000;
        s.example = "OPTIONS (type 'google', customer_id '1234567890')";
        s.check_server = [](const OptionList &server) {
            for (const auto &o : server) {
                if ((o.first == "customer_id" || o.first == "login_customer_id") && !Digits(o.second, 20))
                    throw Error(sqlstate::kInvalidParameterValue,
                                "invalid value for option \"" + o.first + "\": \"" + Truncate(o.second, 40) +
                                    "\"",
                                "A Google Ads customer id is written with digits only.",
                                "Drop the dashes: 123-456-7890 is '1234567890'.");
                if (o.first == "api_version") {
                    const std::string &v = o.second;
                    if (v.size() < 2 || v.size() > 5 || v[0] != 'v' || !Digits(v.substr(1), 4))
                        throw Error(sqlstate::kInvalidParameterValue,
                                    "invalid value for option \"api_version\": \"" + Truncate(v, 40) + "\"",
                                    "A Google Ads API version is written v<major>.",
                                    std::string("For example api_version '") +
                                        GoogleConnector::kDefaultAdsVersion + "'.");
                }
            }
            bool ads = false, dm_only = false;
            std::string which;
            for (const auto &o : server) {
                ads = ads || (o.first == "api" && o.second == "google_ads");
                if (o.first == "customer_match_terms" || o.first == "account_type") {
                    dm_only = true;
                    which = o.first;
                }
            }
            if (ads && dm_only)
                throw Error(sqlstate::kInvalidParameterValue,
                            "option \"" + which + "\" applies to the Data Manager API only",
                            "This server uses api 'google_ads'.",
                            "Drop the option, or use api 'data_manager'.");
        };
        s.check_target = [](const SyncTarget &target, const OptionList &, const std::string &sync_name,
                            const std::string &) { CheckGoogleTarget(target, sync_name); };
        s.make = [](const DestinationSettings &settings,
                    const SyncTarget &target) -> std::unique_ptr<Connector> {
            return std::make_unique<GoogleConnector>(settings, target);
        };
        return s;
    }();
    return spec;
}

} // namespace revetl
