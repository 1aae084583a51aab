#include "core/connectors/meta/meta.hpp"

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
#include <map>
#include <optional>

namespace revetl {

namespace {

using Writer = rapidjson::Writer<rapidjson::StringBuffer>;

// An unhashed value (EXTERN_ID, MADID) longer than this is refused: it is
// kept whole as part of the member's dest_id.
constexpr size_t kMaxUnhashedValue = 1000;

std::string Upper(std::string s) {
    for (auto &c : s)
        c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    return s;
}

// An integer member that Meta may write as a number or as a string.
std::optional<int64_t> Count(const rapidjson::Value &obj, const char *name) {
    if (!obj.IsObject())
        return std::nullopt;
    auto it = obj.FindMember(name);
    if (it == obj.MemberEnd())
        return std::nullopt;
    if (it->value.IsInt64())
        return it->value.GetInt64();
    if (it->value.IsString()) {
        const std::string s(it->value.GetString(), it->value.GetStringLength());
        if (s.empty() || s.size() > 18 || s.find_first_not_of("0123456789") != std::string::npos)
            return std::nullopt;
        return std::stoll(s);
    }
    return std::nullopt;
}

// The Graph API's error envelope.
struct GraphError {
    bool present = false;
    std::string message, type, fbtrace_id;
    long code = 0, subcode = 0;
    bool transient = false;
};

GraphError ReadGraphError(const rapidjson::Document &doc) {
    GraphError e;
    if (!doc.IsObject())
        return e;
    auto it = doc.FindMember("error");
    if (it == doc.MemberEnd() || !it->value.IsObject())
        return e;
    const rapidjson::Value &err = it->value;
    e.present = true;
    auto str = [&](const char *name) {
        auto m = err.FindMember(name);
        return m == err.MemberEnd() ? std::string() : Truncate(JsonText(m->value), 300);
    };
    auto num = [&](const char *name) -> long {
        auto m = err.FindMember(name);
        if (m == err.MemberEnd())
            return 0;
        if (m->value.IsInt64())
            return static_cast<long>(m->value.GetInt64());
        if (m->value.IsString()) {
            const std::string s(m->value.GetString(), m->value.GetStringLength());
            if (!s.empty() && s.size() < 12 && s.find_first_not_of("0123456789") == std::string::npos)
                return std::stol(s);
        }
        return 0;
    };
    e.message = str("message");
    e.type = str("type");
    e.fbtrace_id = str("fbtrace_id");
    e.code = num("code");
    e.subcode = num("error_subcode");
    auto t = err.FindMember("is_transient");
    e.transient = t != err.MemberEnd() && t->value.IsBool() && t->value.GetBool();
    return e;
}

std::string Describe(const GraphError &e) {
    std::string s = "Meta error " + std::to_string(e.code);
    if (e.subcode)
        s += "/" + std::to_string(e.subcode);
    if (!e.type.empty())
        s += " (" + e.type + ")";
    if (!e.message.empty())
        s += ": " + e.message;
    if (!e.fbtrace_id.empty())
        s += " [fbtrace_id " + e.fbtrace_id + "]";
    return s;
}

// Rate limiting, as Meta's rate-limiting page lists it: the app (4), the
// user (17), a page (32), a call type (613), and the Business Use Case
// limits (80000-80014; 80003 is the custom audience one), with the
// subcodes of the same throttles answered under other codes.
bool Throttling(const GraphError &e) {
    return e.code == 4 || e.code == 17 || e.code == 32 || e.code == 613 ||
           (e.code >= 80000 && e.code <= 80014) || e.subcode == 2446079 || e.subcode == 1487742;
}

// The access token is refused, expired or lacks a permission: every call
// would be refused the same way.
bool AuthFailure(const GraphError &e) {
    return e.code == 190 || e.code == 102 || e.code == 10 || (e.code >= 200 && e.code <= 299);
}

// The audience itself cannot take the edit: it does not exist (or the
// token cannot see it), or Meta flagged it (operation_status 471).
bool AudienceFailure(const GraphError &e) {
    return e.code == 803 || (e.code == 100 && e.subcode == 33) || e.subcode == 1713230;
}

int64_t PositiveBelow53(uint64_t h) {
    int64_t v = static_cast<int64_t>(h & ((uint64_t(1) << 53) - 1));
    return v == 0 ? 1 : v;
}

} // namespace

const AudienceKeys &MetaAudienceKeys() {
    // The multi-key schema of Meta's docs and SDK (customaudiencemixin),
    // less APPUID (which needs app_ids) and LOOKALIKE_VALUE (value-based
    // audiences, not an identifier).
    static const AudienceKeys set{{"EMAIL", "PHONE", "FN", "LN", "FI", "GEN", "DOBY", "DOBM", "DOBD", "CT",
                                   "ST", "ZIP", "COUNTRY", "MADID", "EXTERN_ID"},
                                  true,
                                  "a key of Meta's audience schema",
                                  "Meta's schema keys",
                                  "Name one of Meta's schema keys as the MAP target.",
                                  "Meta's key",
                                  "Each key of Meta's schema is one column of the upload."};
    return set;
}

const std::vector<std::string> &MetaSchemaKeys() {
    return MetaAudienceKeys().keys;
}

bool MetaUnhashedKey(const std::string &key) {
    // Meta's hashing table: an external id and a mobile advertiser id go
    // as they are (they are not personal data Meta matches by hash).
    const std::string k = Upper(key);
    return k == "EXTERN_ID" || k == "MADID";
}

std::string MetaSchemaKey(const std::string &field) {
    return CanonicalAudienceKey(MetaAudienceKeys(), field);
}

int64_t MetaConnector::SessionId(int64_t sync_id, int64_t run_id, const std::string &kind) {
    return PositiveBelow53(Fnv1a(
        "revetl meta session " + std::to_string(sync_id) + " " + std::to_string(run_id) + " " + kind, 0));
}

namespace {

void CheckMetaTarget(const SyncTarget &target, const std::string &sync_name) {
    if (target.mode != "audience")
        throw Error(
            sqlstate::kFeatureNotSupported,
            "sync \"" + sync_name + "\" cannot use mode " + target.mode + " with Meta",
            "Meta Custom Audiences take membership only: the model's rows are the audience's members.",
            "Use MODE AUDIENCE '<custom audience id>'.");
    if (target.map_fields.empty())
        throw Error(sqlstate::kInvalidParameterValue,
                    "sync \"" + sync_name + "\" to Meta needs a MAP naming Meta's schema keys",
                    "Each MAP target is a key of Meta's schema (EMAIL, PHONE, FN, ...), its value a SHA-256 "
                    "hash in lower-case hex (EXTERN_ID and MADID unhashed).",
                    "For example MAP (revetl.hashed_identifier('email', email, 'meta') AS \"EMAIL\").");
    CheckAudienceKeys(MetaAudienceKeys(), target.map_fields, sync_name);
}

} // namespace

MetaConnector::MetaConnector(DestinationSettings settings, SyncTarget target)
    : settings_(std::move(settings)), target_(std::move(target)) {
    CheckMetaTarget(target_, "?");
    for (const auto &f : target_.map_fields) {
        schema_.push_back(MetaSchemaKey(f));
        fields_.push_back(f);
    }
}

std::string MetaConnector::Path() const {
    std::string base = settings_.url;
    while (!base.empty() && base.back() == '/')
        base.pop_back();
    std::string version = settings_.Option("api_version");
    if (version.empty())
        version = kDefaultVersion;
    // check_server made sure the version is "v<digits>.<digits>" and
    // CheckSyncTarget that the audience is a positive integer.
    return base + "/" + version + "/" + target_.audience + "/users";
}

std::string MetaConnector::MemberId(const std::string &payload) const {
    rapidjson::Document doc;
    doc.Parse<rapidjson::kParseNumbersAsStringsFlag>(payload.c_str(), payload.size());
    if (doc.HasParseError() || !doc.IsObject())
        return {};
    rapidjson::StringBuffer buf;
    Writer w(buf);
    w.StartObject();
    for (size_t k = 0; k < schema_.size(); k++) {
        auto it = doc.FindMember(fields_[k].c_str());
        const std::string value = it == doc.MemberEnd() ? std::string() : JsonText(it->value);
        if (value.empty() || value.size() > kMaxUnhashedValue)
            return {};
        WriteJsonString(w, schema_[k]);
        WriteJsonString(w, value);
    }
    w.EndObject();
    return std::string(buf.GetString(), buf.GetSize());
}

PreparedRequest MetaConnector::Call(const char *step, const std::string &method, const Body &body,
                                    Session *session, bool last, const std::vector<size_t> &rows) const {
    rapidjson::StringBuffer buf;
    Writer w(buf);
    w.StartObject();
    w.Key("schema");
    w.StartArray();
    for (const auto &k : body.keys)
        WriteJsonString(w, k);
    w.EndArray();
    w.Key("data");
    w.StartArray();
    for (const auto &row : body.rows) {
        w.StartArray();
        for (const auto &v : row)
            WriteJsonString(w, v);
        w.EndArray();
    }
    w.EndArray();
    w.EndObject();
    std::string form = "payload=" + UrlEncode(std::string(buf.GetString(), buf.GetSize()));
    if (session && session->used) {
        rapidjson::StringBuffer sb;
        Writer s(sb);
        s.StartObject();
        s.Key("session_id");
        s.Int64(session->id);
        s.Key("batch_seq");
        s.Int(session->next_seq++);
        s.Key("last_batch_flag");
        s.Bool(last);
        s.Key("estimated_num_total");
        s.Int64(std::max<int64_t>(estimated_total_, 1));
        s.EndObject();
        form += "&session=" + UrlEncode(std::string(sb.GetString(), sb.GetSize()));
    }
    PreparedRequest req;
    req.http.method = method;
    req.http.url = Path();
    req.http.timeout_ms = settings_.timeout_ms;
    req.http.connect_timeout_ms = settings_.connect_timeout_ms;
    req.http.body = std::move(form);
    req.http.headers.emplace_back("Content-Type", "application/x-www-form-urlencoded");
    for (const auto &h : settings_.headers)
        req.http.headers.push_back(h);
    // The access token goes in Authorization, never in the URL (which
    // messages and logs may show).
    ApplyAuth(settings_.credentials, req.http);
    req.rows = rows;
    req.flow.step = step;
    return req;
}

std::vector<PreparedRequest> MetaConnector::Prepare(const BatchContext &context,
                                                    const std::vector<Change> &changes,
                                                    const std::vector<size_t> &rows,
                                                    std::vector<std::pair<size_t, RowOutcome>> &immediate) {
    // Which rows are added, which removed (by the identifiers kept), and
    // which swapped (removed under their old identifiers, then added).
    std::vector<size_t> adds, removals, swaps;
    std::vector<std::string> new_ids(changes.size()), old_ids(changes.size());
    bool final = false;
    for (size_t i : rows) {
        const Change &c = changes[i];
        if (context.planned_rows > 0 && c.seq == context.planned_rows)
            final = true;
        if (c.op == Change::Op::Remove) {
            if (c.dest_id.empty()) {
                immediate.emplace_back(i, UnresolvableRemoval("Meta", "Meta member identifier",
                                                              "removed from the audience", ""));
                continue;
            }
            old_ids[i] = c.dest_id;
            removals.push_back(i);
            continue;
        }
        new_ids[i] = MemberId(c.payload);
        if (new_ids[i].empty()) {
            immediate.emplace_back(i, RejectedRow(0,
                                                  "a Meta identifier is missing, or longer than " +
                                                      std::to_string(kMaxUnhashedValue) + " bytes",
                                                  "BAD_IDENTIFIER"));
            continue;
        }
        if (c.op == Change::Op::Change && !c.dest_id.empty() && c.dest_id != new_ids[i]) {
            old_ids[i] = c.dest_id;
            swaps.push_back(i);
        } else {
            adds.push_back(i);
        }
    }

    // Removals are grouped by the keys they were added with (the MAP may
    // have changed since), as a call has one schema.
    std::map<std::vector<std::string>, Body> groups;
    std::map<std::vector<std::string>, std::vector<size_t>> group_rows;
    auto parse_old = [&](size_t i, std::vector<std::string> &keys, std::vector<std::string> &values) {
        rapidjson::Document d;
        d.Parse(old_ids[i].c_str(), old_ids[i].size());
        if (d.HasParseError() || !d.IsObject() || d.MemberCount() == 0)
            return false;
        for (auto m = d.MemberBegin(); m != d.MemberEnd(); ++m) {
            if (!m->value.IsString())
                return false;
            keys.emplace_back(m->name.GetString(), m->name.GetStringLength());
            values.emplace_back(m->value.GetString(), m->value.GetStringLength());
        }
        return true;
    };
    for (const std::vector<size_t> *list : {&removals, &swaps})
        for (size_t i : *list) {
            std::vector<std::string> keys, values;
            if (!parse_old(i, keys, values)) {
                immediate.emplace_back(
                    i, UnusableRecordIdRemoval("Meta",
                                               "the Meta member identifiers kept for this row cannot be "
                                               "read, so the member cannot be removed from the audience",
                                               ""));
                continue;
            }
            groups[keys].keys = keys;
            groups[keys].rows.push_back(values);
            group_rows[keys].push_back(i);
        }

    // Calls of this Prepare, per kind.
    size_t n_delete = 0;
    for (const auto &g : group_rows)
        n_delete += (g.second.size() + kMaxRows - 1) / kMaxRows;
    size_t n_swap_adds = swaps.empty() ? 0 : n_delete; // each DELETE with swaps continues to a POST
    const size_t n_add = (adds.size() + kMaxRows - 1) / kMaxRows;
    if (first_prepare_) {
        first_prepare_ = false;
        planned_rows_ = context.planned_rows;
        estimated_total_ = context.planned_rows;
        single_batch_ = final;
        add_.id = SessionId(context.sync_id, context.run_id, "add");
        remove_.id = SessionId(context.sync_id, context.run_id, "remove");
        // One upload of several calls is a session; a run of one call of
        // a kind needs none.
        add_.used = !single_batch_ || n_add + n_swap_adds > 1;
        remove_.used = !single_batch_ || n_delete > 1;
    }
    const bool closing = final && !final_prepared_;
    if (final)
        final_prepared_ = true;

    std::vector<PreparedRequest> out;
    // Removals first: a member whose identifiers changed must leave under
    // the old ones before it joins under the new ones (Meta may match both
    // to one person).
    size_t deletes_left = n_delete;
    size_t swap_calls = 0;
    for (const auto &g : group_rows) {
        const Body &all = groups[g.first];
        for (size_t start = 0; start < g.second.size(); start += kMaxRows) {
            const size_t end = std::min(g.second.size(), start + kMaxRows);
            Body part;
            part.keys = all.keys;
            part.rows.assign(all.rows.begin() + start, all.rows.begin() + end);
            std::vector<size_t> part_rows(g.second.begin() + start, g.second.begin() + end);
            bool has_swap = false;
            for (size_t i : part_rows)
                has_swap = has_swap || std::find(swaps.begin(), swaps.end(), i) != swaps.end();
            swap_calls += has_swap ? 1 : 0;
            out.push_back(Call(has_swap ? kSwap : kRemove, "DELETE", part, &remove_,
                               closing && --deletes_left == 0, part_rows));
        }
    }
    if (closing)
        swaps_pending_ = static_cast<int>(swap_calls);
    size_t adds_left = n_add;
    for (size_t start = 0; start < adds.size(); start += kMaxRows) {
        const size_t end = std::min(adds.size(), start + kMaxRows);
        Body part;
        part.keys = schema_;
        std::vector<size_t> part_rows(adds.begin() + start, adds.begin() + end);
        for (size_t i : part_rows) {
            rapidjson::Document d;
            d.Parse(new_ids[i].c_str(), new_ids[i].size());
            std::vector<std::string> values;
            for (const auto &k : schema_)
                values.push_back(d[k.c_str()].GetString());
            part.rows.push_back(std::move(values));
        }
        out.push_back(
            Call(kAdd, "POST", part, &add_, closing && --adds_left == 0 && swap_calls == 0, part_rows));
    }
    return out;
}

void MetaConnector::ReadUsage(const HttpResponse &response) {
    // {"<business id>": [{"type": "custom_audience", "call_count": 28,
    //  "total_cputime": 25, "total_time": 25, "estimated_time_to_regain_access": 0}]}
    auto header = response.Header("x-business-use-case-usage");
    if (!header || header->size() > 16384)
        return;
    rapidjson::Document d;
    d.Parse(header->c_str(), header->size());
    if (d.HasParseError() || !d.IsObject())
        return;
    for (auto b = d.MemberBegin(); b != d.MemberEnd(); ++b) {
        if (!b->value.IsArray())
            continue;
        for (const auto &u : b->value.GetArray()) {
            for (const char *name : {"call_count", "total_cputime", "total_time"}) {
                auto v = Count(u, name);
                if (v && *v > usage_peak_ && *v <= 10000) {
                    usage_peak_ = static_cast<int>(*v);
                    auto t = u.FindMember("type");
                    usage_type_ =
                        t != u.MemberEnd() && t->value.IsString()
                            ? Truncate(std::string(t->value.GetString(), t->value.GetStringLength()), 60)
                            : std::string();
                }
            }
        }
    }
}

namespace {

// The wait X-Business-Use-Case-Usage announces (its
// estimated_time_to_regain_access is in minutes), or -1.
long RegainAccessMs(const HttpResponse &response) {
    auto header = response.Header("x-business-use-case-usage");
    if (!header || header->size() > 16384)
        return -1;
    rapidjson::Document d;
    d.Parse(header->c_str(), header->size());
    if (d.HasParseError() || !d.IsObject())
        return -1;
    long best = -1;
    for (auto b = d.MemberBegin(); b != d.MemberEnd(); ++b)
        if (b->value.IsArray())
            for (const auto &u : b->value.GetArray()) {
                auto v = Count(u, "estimated_time_to_regain_access");
                if (v && *v > 0 && *v <= 24 * 60)
                    best = std::max(best, static_cast<long>(*v) * 60000L);
            }
    return best;
}

} // namespace

Verdict MetaConnector::Interpret(const PreparedRequest &request, const std::vector<Change> &changes,
                                 const HttpResponse &response) {
    Verdict v;
    ReadUsage(response);
    const long status = response.status;
    rapidjson::Document doc;
    doc.Parse(response.body.c_str(), response.body.size());
    const bool json = !doc.HasParseError() && doc.IsObject();
    const GraphError err = json ? ReadGraphError(doc) : GraphError{};
    const std::string &step = request.flow.step;

    if (err.present && Throttling(err)) {
        throttles_++;
        v.kind = Verdict::Kind::Throttled;
        long ms = RegainAccessMs(response);
        if (ms < 0) {
            // No announced wait: back off, doubling from 2 s up to 5 min.
            ms = std::min(300000L, 2000L << std::min(consecutive_throttles_, 8));
        }
        consecutive_throttles_++;
        v.wait_ms = ms;
        v.error = "Meta rate limit: " + Describe(err);
        return v;
    }
    if (err.present && AuthFailure(err)) {
        v.kind = Verdict::Kind::Fatal;
        v.error = "Meta refused the access token: " + Describe(err) +
                  ". Check the token in the user mapping for this server: a system user's token with the "
                  "ads_management permission, not expired, with access to the ad account of custom "
                  "audience " +
                  target_.audience;
        return v;
    }
    if (err.present && AudienceFailure(err)) {
        v.kind = Verdict::Kind::Fatal;
        v.error = "Meta cannot edit custom audience " + target_.audience + ": " + Describe(err) +
                  ". Check the sync's AUDIENCE id and that the audience is a customer list the token's ad "
                  "account owns";
        return v;
    }
    if (status == 0 || status == 408 || status >= 500 ||
        (err.present && (err.transient || err.code == 1 || err.code == 2))) {
        v.kind = Verdict::Kind::Retry;
        v.error = status == 0 ? "could not reach Meta: " +
                                    (response.timed_out ? std::string("timed out") : response.transport_error)
                              : "Meta answered HTTP " + std::to_string(status) +
                                    (err.present ? ": " + Describe(err) : std::string());
        return v;
    }
    if (!err.present)
        if (auto failure = ConnectionFailure(response, request.http.url, false))
            return *failure;
    if (err.present || status < 200 || status >= 300) {
        // The call as a whole was refused (code 100, invalid parameter, and
        // the like); Meta names no row, so every row of the call carries
        // Meta's message.
        const std::string code = err.present ? "GRAPH_" + std::to_string(err.code) +
                                                   (err.subcode ? "_" + std::to_string(err.subcode) : "")
                                             : "HTTP_" + std::to_string(status);
        v.rows.assign(
            request.rows.size(),
            RejectedRow(status, err.present ? Describe(err) : "Meta answered HTTP " + std::to_string(status),
                        code));
        return v;
    }
    consecutive_throttles_ = 0;
    const auto received = json ? Count(doc, "num_received") : std::nullopt;
    const auto invalid = json ? Count(doc, "num_invalid_entries") : std::nullopt;
    if (!received || *received != static_cast<int64_t>(request.rows.size())) {
        // Meta received fewer rows than were sent (or said nothing): send
        // the call again; adding or removing a member twice is harmless.
        v.kind = Verdict::Kind::Retry;
        v.error = "Meta received " +
                  (received ? std::to_string(*received) : std::string("an unknown number")) + " of the " +
                  std::to_string(request.rows.size()) + " rows sent";
        return v;
    }
    received_ += *received;
    invalid_ += invalid.value_or(0);
    // Meta counts invalid entries without naming them: the rows count as
    // delivered (their format was checked before sending), and the run's
    // note says how many Meta could not use.
    const bool removing = step == kRemove || step == kSwap;
    std::vector<RowOutcome> outcomes(request.rows.size());
    std::vector<size_t> next_rows;
    for (size_t j = 0; j < request.rows.size(); j++) {
        const Change &c = changes[request.rows[j]];
        outcomes[j] = AcceptedRow(status, removing ? std::string() : MemberId(c.payload));
        if (step == kSwap && c.op == Change::Op::Change)
            next_rows.push_back(request.rows[j]);
    }
    v.rows = outcomes;
    if (step == kSwap && !next_rows.empty()) {
        Body body;
        body.keys = schema_;
        for (size_t i : next_rows) {
            rapidjson::Document d;
            const std::string id = MemberId(changes[i].payload);
            d.Parse(id.c_str(), id.size());
            std::vector<std::string> values;
            for (const auto &k : schema_)
                values.push_back(d.IsObject() && d.HasMember(k.c_str()) ? d[k.c_str()].GetString() : "");
            body.rows.push_back(std::move(values));
        }
        bool last = false;
        if (swaps_pending_ > 0 && final_prepared_)
            last = --swaps_pending_ == 0;
        v.kind = Verdict::Kind::Continue;
        v.next = Call(kAdd, "POST", body, &add_, last, next_rows);
    }
    return v;
}

std::string MetaConnector::RunNote() const {
    std::string note;
    if (received_ > 0)
        note = "Meta received " + std::to_string(received_) + " rows, of which it counted " +
               std::to_string(invalid_) + " as invalid entries (Meta does not say which)";
    if (throttles_ > 0)
        note += (note.empty() ? "" : "; ") + std::string("Meta throttled ") + std::to_string(throttles_) +
                " calls";
    if (usage_peak_ >= 0)
        note += (note.empty() ? "" : "; ") + std::string("business use case usage peaked at ") +
                std::to_string(usage_peak_) + "%" + (usage_type_.empty() ? "" : " (" + usage_type_ + ")");
    return note;
}

const ConnectorSpec &MetaSpec() {
    static const ConnectorSpec spec = [] {
        ConnectorSpec s;
        s.type = "meta";
        s.summary = "Meta Custom Audiences membership (MODE AUDIENCE) through the Graph API's "
                    "/{audience_id}/users, with hashed identifiers.";
        s.server_options = CommonServerOptions();
        for (auto &o : s.server_options) {
            if (o.name == "url") {
                o.required = false;
                o.default_value = "https://graph.facebook.com";
            } else if (o.name == "batch_size") {
                o.default_value = "10000";
            } else if (o.name == "max_in_flight") {
                // The calls of a session go in order.
                o.default_value = "1";
            } else if (o.name == "rate_limit") {
                // The Business Use Case limits are Meta's to announce
                // (X-Business-Use-Case-Usage, code 80003): no fixed rate.
                o.default_value = "none";
            }
        }
        OptionSpec version;
        version.name = "api_version";
        version.kind = OptionKind::Text;
        version.default_value = MetaConnector::kDefaultVersion;
        version.description = "The Graph API version in the path, such as v25.0.";
        s.server_options.push_back(version);
        s.auth = {AuthKind::Bearer}; // an access token (a system user's), in Authorization
        s.default_object = "audience";
        ObjectSpec audience;
        audience.name = "audience";
        audience.modes = {"audience"};
        s.objects = {audience};
        s.max_batch_size = static_cast<int>(MetaConnector::kMaxRows);
        s.returns_ids = true;
        s.audience.supported = true;
        s.audience.names = "Meta custom audience id";
        s.audience.numeric = true;
        s.audience.every_field_identifies = true;
        s.audience.hashed_identifiers = true;
        s.audience.unhashed = [](const std::string &field) { return MetaUnhashedKey(field); };
        s.example = "OPTIONS (type 'meta')";
        s.check_server = [](const OptionList &server) {
            for (const auto &o : server)
                if (o.first == "api_version") {
                    const std::string &v = o.second;
                    const size_t dot = v.find('.');
                    const bool ok = v.size() >= 4 && v.size() <= 8 && v[0] == 'v' &&
                                    dot != std::string::npos && dot > 1 && dot + 1 < v.size() &&
                                    v.find_first_not_of("0123456789", 1) == dot &&
                                    v.find_first_not_of("0123456789", dot + 1) == std::string::npos;
                    if (!ok)
                        throw Error(sqlstate::kInvalidParameterValue,
                                    "invalid value for option \"api_version\": \"" + Truncate(v, 40) + "\"",
                                    "A Graph API version is written v<major>.<minor>.",
                                    std::string("For example api_version '") +
                                        MetaConnector::kDefaultVersion + "'.");
                }
        };
        s.check_target = [](const SyncTarget &target, const OptionList &, const std::string &sync_name,
                            const std::string &) { CheckMetaTarget(target, sync_name); };
        s.make = [](const DestinationSettings &settings,
                    const SyncTarget &target) -> std::unique_ptr<Connector> {
            return std::make_unique<MetaConnector>(settings, target);
        };
        return s;
    }();
    return spec;
}

} // namespace revetl
