#include "core/connectors/spec.hpp"

#include "core/common/error.hpp"
#include "core/connectors/registry.hpp"

#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <set>

namespace revetl {

namespace {

const std::vector<std::string> kModes = {"upsert", "update", "insert", "mirror", "audience"};

// Names that are credentials wherever they appear: refused on a server with
// a pointer to user mappings rather than with "Perhaps you meant".
const std::vector<std::string> kSecretNames = {"token",         "password",      "api_key",        "secret",
                                               "client_secret", "refresh_token", "oauth_token_url"};

// The OAuth options of a user mapping (see oauth.hpp).
bool IsOAuthOption(const std::string &name) {
    return name == "oauth_token_url" || name == "client_id" || name == "client_secret" ||
           name == "refresh_token" || name == "scope";
}

void SetOAuthOption(OAuthConfig &c, const std::string &name, const std::string &value) {
    if (name == "oauth_token_url")
        c.token_url = value;
    else if (name == "client_id")
        c.client_id = value;
    else if (name == "client_secret")
        c.client_secret = value;
    else if (name == "refresh_token")
        c.refresh_token = value;
    else if (name == "scope")
        c.scope = value;
}

std::string Join(const std::vector<std::string> &items, const std::string &last = ", ") {
    std::string out;
    for (size_t i = 0; i < items.size(); i++) {
        if (i > 0)
            out += i + 1 == items.size() ? last : ", ";
        out += items[i];
    }
    return out;
}

bool Contains(const std::vector<std::string> &items, const std::string &item) {
    return std::find(items.begin(), items.end(), item) != items.end();
}

std::vector<std::string> Names(const std::vector<OptionSpec> &options) {
    std::vector<std::string> out;
    for (const auto &o : options)
        out.push_back(o.name);
    return out;
}

std::vector<std::string> TypeNames() {
    std::vector<std::string> out;
    for (const ConnectorSpec *s : Registry())
        out.push_back(s->type);
    return out;
}

// Every server option any type takes, in registry order, for name checks
// before the type is known.
std::vector<std::string> AllServerOptionNames() {
    std::vector<std::string> out;
    for (const ConnectorSpec *s : Registry())
        for (const auto &o : s->server_options)
            if (!Contains(out, o.name))
                out.push_back(o.name);
    return out;
}

[[noreturn]] void RejectUnknown(const std::string &name, const std::vector<std::string> &valid,
                                const char *where) {
    std::string hint = "Valid options in this context are: " + Join(valid) + ".";
    std::string close = ClosestMatch(name, valid);
    if (!close.empty())
        hint = "Perhaps you meant the option \"" + close + "\". " + hint;
    throw Error(sqlstate::kFdwInvalidOptionName, "invalid option \"" + name + "\" for " + where, {}, hint);
}

void CheckSecretText(const OptionSpec &spec, const std::string &value) {
    if (value.empty() || value.find_first_of("\r\n") != std::string::npos ||
        value.find('\0') != std::string::npos || value.size() > 8192)
        throw Error(sqlstate::kFdwInvalidOptionValue, "invalid value for option \"" + spec.name + "\"",
                    "The " + spec.name + " must be non-empty, at most 8192 bytes, without line breaks.");
}

// Checks one value against its declared kind (and parses it, so that what
// passes here also resolves).
void CheckValue(const OptionSpec &spec, const std::string &value, bool secret_context) {
    switch (spec.kind) {
    case OptionKind::Text:
        if (value.size() > 8192 || value.find_first_of("\r\n") != std::string::npos)
            throw Error(sqlstate::kFdwInvalidOptionValue, "invalid value for option \"" + spec.name + "\"",
                        "The value may not contain line breaks and is limited to 8192 bytes.");
        return;
    case OptionKind::Choice:
        if (!Contains(spec.choices, value))
            throw Error(sqlstate::kFdwInvalidOptionValue,
                        "invalid value for option \"" + spec.name + "\": \"" + value + "\"",
                        "The " + spec.name + " must be " + Join(spec.choices, " or ") + ".");
        return;
    case OptionKind::Url:
        UrlHost(value);
        return;
    case OptionKind::Duration:
        ParseDurationMs(spec.name, value, spec.min, spec.max);
        return;
    case OptionKind::Integer:
        ParseBoundedInt(spec.name, value, spec.min, spec.max);
        return;
    case OptionKind::RateLimit:
        ParseRateLimit(spec.name, value);
        return;
    case OptionKind::Headers:
        ParseHeaderObject(spec.name, value, secret_context);
        return;
    case OptionKind::Secret:
        CheckSecretText(spec, value);
        return;
    case OptionKind::HeaderName:
        if (!IsHttpToken(value))
            throw Error(sqlstate::kFdwInvalidOptionValue, "invalid value for option \"" + spec.name + "\"",
                        "The value must be an HTTP header name.");
        return;
    }
}

OptionSpec Opt(std::string name, OptionKind kind, std::string default_value, long min, long max,
               std::string description) {
    OptionSpec o;
    o.name = std::move(name);
    o.kind = kind;
    o.default_value = std::move(default_value);
    o.min = min;
    o.max = max;
    o.description = std::move(description);
    return o;
}

const char *KindName(OptionKind kind) {
    switch (kind) {
    case OptionKind::Text:
        return "text";
    case OptionKind::Choice:
        return "choice";
    case OptionKind::Url:
        return "url";
    case OptionKind::Duration:
        return "duration";
    case OptionKind::Integer:
        return "integer";
    case OptionKind::RateLimit:
        return "rate_limit";
    case OptionKind::Headers:
        return "headers";
    case OptionKind::Secret:
        return "secret";
    case OptionKind::HeaderName:
        return "header_name";
    }
    return "text";
}

} // namespace

const OptionSpec *ConnectorSpec::ServerOption(const std::string &name) const {
    for (const auto &o : server_options)
        if (o.name == name)
            return &o;
    return nullptr;
}

bool ConnectorSpec::AcceptsAuth(AuthKind kind) const {
    return std::find(auth.begin(), auth.end(), kind) != auth.end();
}

std::string DestinationSettings::Option(const std::string &name) const {
    for (const auto &o : server_options)
        if (o.first == name)
            return o.second;
    return {};
}

std::vector<OptionSpec> CommonServerOptions() {
    // Checked by ValidateServer against the registry (this list is part of
    // the registry's own specs, so it cannot name the registered types).
    OptionSpec type = Opt("type", OptionKind::Text, "", 0, 0, "The destination type.");
    type.required = true;
    OptionSpec url = Opt("url", OptionKind::Url, "", 0, 0, "Where requests go: an http:// or https:// URL.");
    url.required = true;
    return {type,
            url,
            Opt("headers", OptionKind::Headers, "", 0, 0, "Extra request headers, as a JSON object."),
            Opt("timeout", OptionKind::Duration, "30s", 1, 600000, "The whole request, per attempt."),
            Opt("connect_timeout", OptionKind::Duration, "10s", 1, 120000, "Connecting, per attempt."),
            Opt("batch_size", OptionKind::Integer, "100", 1, 10000, "Rows per batch."),
            Opt("max_attempts", OptionKind::Integer, "5", 1, 20, "Attempts per request in one run."),
            Opt("max_in_flight", OptionKind::Integer, "4", 1, 64, "Requests of one run in flight at once."),
            Opt("rate_limit", OptionKind::RateLimit, "none", 0, 0, "Requests per period to this server."),
            Opt("settle_time", OptionKind::Duration, "60s", 1000, 86400000,
                "How long the destination may still apply a request revetl gave up on.")};
}

const std::vector<OptionSpec> &UserMappingOptions() {
    static const std::vector<OptionSpec> options = [] {
        std::vector<OptionSpec> o = {
            Opt("token", OptionKind::Secret, "", 0, 0, "Bearer token: Authorization: Bearer <token>."),
            Opt("user", OptionKind::Secret, "", 0, 0, "Basic auth user name (with password)."),
            Opt("password", OptionKind::Secret, "", 0, 0, "Basic auth password (with user)."),
            Opt("api_key", OptionKind::Secret, "", 0, 0,
                "API key, sent in the server's api_key_header or api_key_param."),
            Opt("headers", OptionKind::Headers, "", 0, 0, "Secret request headers, as a JSON object.")};
        for (auto &x : o)
            x.secret = true;
        // OAuth 2.0: the token endpoint and the client are not secret; the
        // client secret and the refresh token are.
        OptionSpec secret = Opt("client_secret", OptionKind::Secret, "", 0, 0, "OAuth client secret.");
        secret.secret = true;
        OptionSpec refresh = Opt("refresh_token", OptionKind::Secret, "", 0, 0,
                                 "OAuth refresh token (refresh-token grant; without it revetl uses the "
                                 "client-credentials grant). revetl stores a rotated one here.");
        refresh.secret = true;
        o.push_back(Opt("oauth_token_url", OptionKind::Url, "", 0, 0,
                        "OAuth 2.0 token endpoint; selects OAuth (checked against revetl.allowed_hosts)."));
        o.push_back(Opt("client_id", OptionKind::Text, "", 0, 0, "OAuth client id."));
        o.push_back(secret);
        o.push_back(refresh);
        o.push_back(Opt("scope", OptionKind::Text, "", 0, 0, "OAuth scope to ask for (optional)."));
        return o;
    }();
    return options;
}

OAuthConfig OAuthConfigFromOptions(const OptionList &user_mapping) {
    OAuthConfig c;
    for (const auto &o : user_mapping)
        if (IsOAuthOption(o.first))
            SetOAuthOption(c, o.first, o.second);
    return c;
}

bool SecretUserMappingOption(const std::string &name) {
    for (const auto &o : UserMappingOptions())
        if (o.name == name)
            return o.secret;
    return true; // unknown: treated as a secret
}

const ConnectorSpec &ValidateServer(const OptionList &options) {
    std::string type;
    bool has_type = false;
    for (const auto &o : options)
        if (o.first == "type") {
            type = o.second;
            has_type = true;
        }
    const ConnectorSpec *spec = has_type ? FindSpec(type) : nullptr;
    const std::vector<std::string> valid = spec ? Names(spec->server_options) : AllServerOptionNames();

    for (const auto &o : options) {
        if (!Contains(valid, o.first)) {
            if (Contains(kSecretNames, o.first))
                throw Error(sqlstate::kFdwInvalidOptionName,
                            "invalid option \"" + o.first + "\" for a revetl server",
                            "Secrets belong in a user mapping, where other roles cannot read them.",
                            "Use CREATE USER MAPPING FOR role SERVER name OPTIONS (token '...').");
            std::vector<std::string> owners;
            for (const ConnectorSpec *s : Registry())
                if (s->ServerOption(o.first))
                    owners.push_back(s->type);
            if (spec && !owners.empty())
                throw Error(sqlstate::kFdwInvalidOptionName,
                            "invalid option \"" + o.first + "\" for a revetl server of type \"" + type + "\"",
                            "Only servers of type " + Join(owners, " or ") + " take this option.",
                            "Valid options for type \"" + type + "\" are: " + Join(valid) + ".");
            RejectUnknown(o.first, valid, "a revetl server");
        }
        if (o.first == "type")
            continue;
        const OptionSpec *os = spec ? spec->ServerOption(o.first) : nullptr;
        if (!os) // type not known yet: check the value as the first type declaring it does
            for (const ConnectorSpec *s : Registry())
                if ((os = s->ServerOption(o.first)))
                    break;
        if (os->required && o.second.empty())
            continue; // reported as missing below
        CheckValue(*os, o.second, false);
    }
    const std::vector<std::string> types = TypeNames();
    if (!has_type || type.empty())
        throw Error(sqlstate::kFdwInvalidOptionValue, "a revetl server needs the option \"type\"", {},
                    "Valid types are: " + Join(types) + ". For example: " + Registry().front()->example +
                        ".");
    if (!spec) {
        std::string hint = "Valid types are: " + Join(types) + ".";
        std::string close = ClosestMatch(type, types);
        if (!close.empty())
            hint = "Perhaps you meant \"" + close + "\". " + hint;
        throw Error(sqlstate::kFdwInvalidOptionValue, "unknown destination type \"" + type + "\"", {}, hint);
    }
    for (const auto &os : spec->server_options) {
        if (!os.required || os.name == "type")
            continue;
        bool present = std::any_of(options.begin(), options.end(),
                                   [&](const auto &o) { return o.first == os.name && !o.second.empty(); });
        if (!present)
            throw Error(sqlstate::kFdwInvalidOptionValue,
                        "a revetl server of type \"" + type + "\" needs the option \"" + os.name + "\"", {},
                        spec->example.empty() ? std::string() : "For example: " + spec->example + ".");
    }
    if (spec->check_server)
        spec->check_server(options);
    return *spec;
}

void ValidateOptions(OptionContext context, const OptionList &options) {
    switch (context) {
    case OptionContext::Wrapper:
        if (!options.empty())
            throw Error(sqlstate::kFdwInvalidOptionName,
                        "invalid option \"" + options.front().first + "\" for foreign data wrapper revetl",
                        "The revetl foreign data wrapper takes no options.",
                        "Set destination options on the server (CREATE SERVER ... OPTIONS).");
        return;
    case OptionContext::Other:
        if (!options.empty())
            throw Error(sqlstate::kFdwInvalidOptionName, "invalid option \"" + options.front().first + "\"",
                        "revetl destinations take options on servers and user mappings only.");
        return;
    case OptionContext::UserMapping: {
        const auto &valid = UserMappingOptions();
        Credentials c;
        for (const auto &o : options) {
            auto it =
                std::find_if(valid.begin(), valid.end(), [&](const auto &v) { return v.name == o.first; });
            if (it == valid.end())
                RejectUnknown(o.first, Names(valid), "a revetl user mapping");
            CheckValue(*it, o.second, true);
            if (o.first == "token")
                c.token = o.second;
            else if (o.first == "user")
                c.user = o.second;
            else if (o.first == "password")
                c.password = o.second;
            else if (o.first == "api_key")
                c.api_key = o.second;
            else if (IsOAuthOption(o.first))
                SetOAuthOption(c.oauth, o.first, o.second);
        }
        SelectedAuth(c); // refuses mixed schemes now rather than at the first run
        return;
    }
    case OptionContext::Server:
        ValidateServer(options);
        return;
    }
}

long JobPolling::DelayMs(int poll) const {
    long delay = std::max(1L, first_poll_ms);
    for (int i = 1; i < poll && delay < max_poll_interval_ms; i++)
        delay *= 2;
    return std::min(delay, std::max(1L, max_poll_interval_ms));
}

DestinationSettings ResolveDestinationSettings(const OptionList &server, const OptionList &user_mapping) {
    const ConnectorSpec &spec = ValidateServer(server);
    DestinationSettings s;
    s.type = spec.type;
    s.server_options = server;
    s.job_polling = spec.jobs;
    // Declared defaults first, then the server's own values.
    OptionList effective;
    for (const auto &os : spec.server_options)
        if (!os.default_value.empty())
            effective.emplace_back(os.name, os.default_value);
    for (const auto &o : server)
        effective.push_back(o);
    for (const auto &o : effective) {
        const std::string &n = o.first;
        if (n == "url")
            s.url = o.second;
        else if (n == "method")
            s.method = o.second;
        else if (n == "headers")
            for (auto &h : ParseHeaderObject(n, o.second, false))
                s.headers.push_back(std::move(h));
        else if (n == "timeout")
            s.timeout_ms = ParseDurationMs(n, o.second, 1, 600000);
        else if (n == "connect_timeout")
            s.connect_timeout_ms = ParseDurationMs(n, o.second, 1, 120000);
        else if (n == "batch_size")
            s.batch_size = static_cast<int>(ParseBoundedInt(n, o.second, 1, 10000));
        else if (n == "max_attempts")
            s.max_attempts = static_cast<int>(ParseBoundedInt(n, o.second, 1, 20));
        else if (n == "max_in_flight")
            s.max_in_flight = static_cast<int>(ParseBoundedInt(n, o.second, 1, 64));
        else if (n == "rate_limit")
            s.rate_limit = ParseRateLimit(n, o.second);
        else if (n == "settle_time")
            s.settle_time_ms = ParseDurationMs(n, o.second, 1000, 86400000);
        else if (n == "job_poll_interval")
            s.job_polling.first_poll_ms = ParseDurationMs(n, o.second, 10, 60000);
        else if (n == "max_open_jobs")
            s.job_polling.max_open_jobs = static_cast<int>(ParseBoundedInt(n, o.second, 1, 100));
        else if (n == "api_key_header")
            s.credentials.api_key_header = o.second;
        else if (n == "api_key_param")
            s.credentials.api_key_param = o.second;
    }
    if (s.url.empty() && !spec.url_template.empty()) {
        std::string url = spec.url_template;
        for (size_t open = url.find('{'); open != std::string::npos; open = url.find('{')) {
            size_t close = url.find('}', open);
            if (close == std::string::npos)
                break;
            url.replace(open, close - open + 1, s.Option(url.substr(open + 1, close - open - 1)));
        }
        s.url = url;
    }
    if (s.url.empty() && spec.default_url)
        s.url = spec.default_url(server);
    // A destination's own cap on records per call wins over a larger
    // batch_size (the connector could not send it in one call anyway).
    s.batch_size = std::min(s.batch_size, spec.max_batch_size);
    for (const auto &o : user_mapping) {
        if (o.first == "token")
            s.credentials.token = o.second;
        else if (o.first == "user")
            s.credentials.user = o.second;
        else if (o.first == "password")
            s.credentials.password = o.second;
        else if (o.first == "api_key")
            s.credentials.api_key = o.second;
        else if (IsOAuthOption(o.first))
            SetOAuthOption(s.credentials.oauth, o.first, o.second);
        else if (o.first == "headers") {
            for (auto &h : ParseHeaderObject(o.first, o.second, true)) {
                auto same = [&](const auto &x) {
                    return x.first.size() == h.first.size() &&
                           std::equal(x.first.begin(), x.first.end(), h.first.begin(),
                                      [](char a, char b) { return std::tolower(a) == std::tolower(b); });
                };
                s.headers.erase(std::remove_if(s.headers.begin(), s.headers.end(), same), s.headers.end());
                s.headers.push_back(std::move(h));
            }
        }
    }
    if (s.url.empty() && spec.url_from_credentials)
        s.url = spec.url_from_credentials(server, s.credentials);
    if (s.credentials.oauth.Configured())
        s.credentials.oauth_token = std::make_shared<OAuthToken>();
    return s;
}

void CheckSyncTarget(const ConnectorSpec &spec, const OptionList &server, SyncTarget &target,
                     const std::string &sync_name, const std::string &server_name) {
    const std::string who = "sync \"" + sync_name + "\"";
    const std::string where = "server \"" + server_name + "\" (type " + spec.type + ")";
    if (target.object.empty())
        target.object = spec.default_object;
    const ObjectSpec *object = nullptr;
    for (const auto &o : spec.objects)
        if (o.name == target.object) {
            object = &o;
            break;
        }
    if (!object)
        for (const auto &o : spec.objects)
            if (o.name == "*") {
                object = &o;
                break;
            }
    if (!object) {
        std::vector<std::string> names;
        for (const auto &o : spec.objects)
            names.push_back(o.name);
        std::string hint = "Objects of type " + spec.type + " are: " + Join(names) + ".";
        std::string close = ClosestMatch(target.object, names);
        if (!close.empty())
            hint = "Perhaps you meant OBJECT " + close + ". " + hint;
        throw Error(sqlstate::kFeatureNotSupported,
                    who + " cannot write object \"" + target.object + "\" to " + where, {}, hint);
    }
    if (target.mode == "audience" && !spec.audience.supported)
        throw Error(sqlstate::kFeatureNotSupported, who + " cannot use mode audience with " + where,
                    "Type " + spec.type + " has no lists, tags or audiences that revetl writes.",
                    "Use MODE UPSERT or MIRROR, or a destination type that lists \"audience\" among its "
                    "modes in revetl.destination_types.");
    if (target.mode == "audience") {
        if (target.audience.empty())
            throw Error(sqlstate::kInvalidParameterValue, who + " has mode audience but no audience", {},
                        "Write MODE AUDIENCE '...' with the " + spec.audience.names + ".");
        if (spec.audience.numeric && (target.audience.size() > 18 ||
                                      target.audience.find_first_not_of("0123456789") != std::string::npos ||
                                      target.audience.find_first_not_of('0') == std::string::npos))
            throw Error(sqlstate::kInvalidParameterValue,
                        who + " names audience \"" + target.audience + "\", which is not a valid " +
                            spec.audience.names,
                        "The " + spec.audience.names + " is a positive integer.",
                        "Write MODE AUDIENCE '12345' with the id the destination shows for the list.");
    }
    if (!Contains(object->modes, target.mode))
        throw Error(
            sqlstate::kFeatureNotSupported, who + " cannot use mode " + target.mode + " with " + where,
            (target.object.empty() ? std::string("This destination") : "Object \"" + target.object + "\"") +
                " takes the modes " + Join(object->modes, " and ") + ".",
            "Choose one of those modes with ALTER SYNC ... MODE.");
    if (target.match_on.empty() && target.mode != "insert") {
        target.match_on = object->default_match_on;
        if (target.match_on.empty() && object->match_on_needed)
            throw Error(
                sqlstate::kInvalidParameterValue,
                who + " needs MATCH ON to write object \"" + target.object + "\" to " + where,
                "Mode " + target.mode + " finds records by a unique field, and this object has no default.",
                object->match_on_hint.empty() ? "Add MATCH ON with a unique field." : object->match_on_hint);
    }
    if (spec.check_target)
        spec.check_target(target, server, sync_name, server_name);
}

void CheckSyncTarget(const OptionList &server, SyncTarget &target, const std::string &sync_name,
                     const std::string &server_name) {
    CheckSyncTarget(ValidateServer(server), server, target, sync_name, server_name);
}

std::optional<MatchChangeNotice> MatchValueChangeNotice(const OptionList &server, const SyncTarget &target,
                                                        const std::string &sync_name,
                                                        const std::string &server_name) {
    const ConnectorSpec &spec = ValidateServer(server);
    std::string lower = target.match_on;
    std::transform(lower.begin(), lower.end(), lower.begin(),
                   [](unsigned char c) { return std::tolower(c); });
    // Matching on the destination's own record id (MATCH ON Id) has no other
    // record to go to.
    if (!spec.returns_ids || spec.updates_by_record_id || target.mode == "insert" ||
        target.mode == "audience" || target.match_on.empty() || lower == "id")
        return std::nullopt;
    // Only where the destination itself finds records by MATCH ON (a
    // generic HTTP receiver decides for itself).
    const ObjectSpec *object = nullptr;
    for (const auto &o : spec.objects)
        if (o.name == target.object || (!object && o.name == "*"))
            object = &o;
    if (!object || (object->default_match_on.empty() && !object->match_on_needed))
        return std::nullopt;
    MatchChangeNotice n;
    n.message = "sync \"" + sync_name + "\" finds records of server \"" + server_name + "\" (type " +
                spec.type + ") by \"" + target.match_on + "\" alone";
    n.detail = "A row whose " + target.match_on +
               " changes is written to the record holding the new value (a new record when none does); the "
               "record with the old value is left as it was" +
               (target.mode == "mirror" ? ", and MIRROR will not remove it." : ".");
    n.hint =
        "MATCH ON a value that never changes for a record, such as an external id made from the model's key.";
    return n;
}

std::vector<std::string> AudienceIdentifierFields(const ConnectorSpec &spec, const SyncTarget &target,
                                                  const std::vector<std::string> &map_fields) {
    if (target.mode != "audience" || !spec.audience.supported)
        return {};
    if (spec.audience.every_field_identifies && !map_fields.empty())
        return map_fields;
    if (target.match_on.empty())
        return {};
    return {target.match_on};
}

std::string DestinationTypesJson() {
    rapidjson::StringBuffer buf;
    rapidjson::Writer<rapidjson::StringBuffer> w(buf);
    auto str = [&](const std::string &s) { w.String(s.c_str(), static_cast<rapidjson::SizeType>(s.size())); };
    auto option = [&](const OptionSpec &o, const char *on) {
        w.StartObject();
        w.Key("name");
        str(o.name);
        w.Key("on");
        w.String(on);
        w.Key("kind");
        w.String(KindName(o.kind));
        w.Key("required");
        w.Bool(o.required);
        w.Key("secret");
        w.Bool(o.secret);
        w.Key("default");
        if (o.default_value.empty())
            w.Null();
        else
            str(o.default_value);
        if (o.kind == OptionKind::Integer || o.kind == OptionKind::Duration) {
            w.Key(o.kind == OptionKind::Duration ? "min_ms" : "min");
            w.Int64(o.min);
            w.Key(o.kind == OptionKind::Duration ? "max_ms" : "max");
            w.Int64(o.max);
        }
        if (!o.choices.empty()) {
            w.Key("values");
            w.StartArray();
            for (const auto &c : o.choices)
                str(c);
            w.EndArray();
        }
        w.Key("description");
        str(o.description);
        w.EndObject();
    };
    w.StartArray();
    for (const ConnectorSpec *s : Registry()) {
        w.StartObject();
        w.Key("type");
        str(s->type);
        w.Key("summary");
        str(s->summary);
        w.Key("options");
        w.StartArray();
        for (const auto &o : s->server_options)
            option(o, "server");
        for (const auto &o : UserMappingOptions()) {
            // A type lists the credentials of the schemes it accepts.
            bool used = o.name == "headers" || (o.name == "token" && s->AcceptsAuth(AuthKind::Bearer)) ||
                        ((o.name == "user" || o.name == "password") && s->AcceptsAuth(AuthKind::Basic)) ||
                        (o.name == "api_key" &&
                         (s->AcceptsAuth(AuthKind::ApiKeyHeader) || s->AcceptsAuth(AuthKind::ApiKeyQuery))) ||
                        (IsOAuthOption(o.name) && s->AcceptsAuth(AuthKind::OAuth));
            if (used)
                option(o, "user mapping");
        }
        w.EndArray();
        w.Key("auth");
        w.StartArray();
        for (AuthKind a : s->auth)
            w.String(AuthName(a));
        w.EndArray();
        w.Key("objects");
        w.StartArray();
        std::set<std::string> modes;
        for (const auto &o : s->objects) {
            w.StartObject();
            w.Key("object");
            str(o.name);
            w.Key("modes");
            w.StartArray();
            for (const auto &m : o.modes) {
                str(m);
                modes.insert(m);
            }
            w.EndArray();
            w.Key("match_on");
            if (!o.default_match_on.empty())
                str(o.default_match_on);
            else if (o.match_on_needed)
                w.String("required");
            else
                w.Null();
            w.EndObject();
        }
        w.EndArray();
        w.Key("modes");
        w.StartArray();
        for (const auto &m : kModes)
            if (modes.count(m))
                str(m);
        w.EndArray();
        w.Key("limits");
        w.StartObject();
        w.Key("max_batch_size");
        w.Int(s->max_batch_size);
        w.Key("default_batch_size");
        const OptionSpec *batch = s->ServerOption("batch_size");
        w.Int(batch ? std::min(std::atoi(batch->default_value.c_str()), s->max_batch_size)
                    : s->max_batch_size);
        w.Key("default_rate_limit");
        const OptionSpec *rate = s->ServerOption("rate_limit");
        str(rate ? rate->default_value : std::string("none"));
        w.EndObject();
        w.Key("returns_ids");
        w.Bool(s->returns_ids);
        w.Key("idempotency_keys");
        w.Bool(s->idempotency_keys);
        // What the AUDIENCE string names; null for a type without the mode.
        w.Key("audience");
        if (s->audience.supported)
            str(s->audience.names);
        else
            w.Null();
        w.EndObject();
    }
    w.EndArray();
    return std::string(buf.GetString(), buf.GetSize());
}

} // namespace revetl
