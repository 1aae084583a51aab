// A connector's declared spec: everything about a destination type that is
// data rather than code (its options, the auth schemes it accepts, the
// objects and modes it writes, its limits), and the shared code that reads
// it: the FDW validator's checks, the resolution of a server and a user
// mapping into the settings of a run, and the check of a sync's target.
// Nothing here names a vendor; each connector's folder declares its spec and
// src/core/connectors/registry.cpp lists them.
#pragma once

#include "core/connectors/auth.hpp"
#include "core/connectors/fields.hpp"
#include "core/connectors/options.hpp"

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace revetl {

enum class OptionKind {
    Text,      // any text of at most 8192 bytes, no line breaks
    Choice,    // one of `choices`
    Url,       // http(s) URL with a host
    Duration,  // "30s"; bounds in milliseconds
    Integer,   // bounds
    RateLimit, // "100 per 10s" or "none"
    Headers,   // JSON object of header names to strings
    Secret,    // credential: never echoed in messages
    HeaderName // an HTTP token
};

struct OptionSpec {
    std::string name;
    OptionKind kind = OptionKind::Text;
    bool required = false;
    bool secret = false;
    std::string default_value; // as the user would write it; "" for none
    long min = 0, max = 0;     // Integer: values; Duration: milliseconds
    std::vector<std::string> choices;
    std::string description; // one sentence, for revetl.destination_types
};

// One object a destination writes (a CRM's contacts, ...). The name "*"
// stands for any object name, and for none.
struct ObjectSpec {
    std::string name;
    std::vector<std::string> modes; // upsert, update, insert, mirror, audience
    // The field that identifies a record for upsert, update and mirror:
    // "" when the object has no default and MATCH ON must name one.
    std::string default_match_on;
    bool match_on_needed = false; // for modes other than insert
    std::string match_on_hint;    // how to choose MATCH ON, as a sentence
};

// MODE AUDIENCE: the model's rows are the members of a list, a tag or an
// ad audience, named by the AUDIENCE string of the sync. An added row is
// added to it, a removed row removed, and a changed row is removed and added
// when its identifiers changed (and needs no request otherwise): the plan
// hashes only the identifier fields, and the shadow state keeps each
// member's identifier as its dest_id, which is what a removal names. A
// connector that has lists writes membership this way only.
struct AudienceSpec {
    bool supported = false;
    // What the AUDIENCE string names, for messages ("<vendor> list id").
    std::string names;
    // The string must be a positive integer (numeric list or audience ids).
    bool numeric = false;
    // Which payload fields identify a member: the MATCH ON field (an email,
    // a user id), or every mapped field (ad audiences take several hashed
    // identifiers per member).
    bool every_field_identifies = false;
    // The identifiers must be SHA-256 hashes as 64 lower-case hex characters
    // (ad audiences): a row with any other value, or NULL, is invalid: it is
    // recorded in rejected_rows and never sent.
    bool hashed_identifiers = false;
    // With hashed_identifiers: the identifier fields the destination takes
    // as they are (an ad platform's external id): such a value must only be present
    // (not NULL, not empty). Unset: every identifier is hashed.
    std::function<bool(const std::string &field)> unhashed;
};

// Where a sync sends and how: the parts of a sync's definition a connector
// needs besides the server's settings.
struct SyncTarget {
    std::string mode = "upsert"; // upsert, update, insert, mirror, audience
    std::string audience;        // MODE AUDIENCE: the list, tag or audience
    std::string object;          // OBJECT clause ("contacts", ...)
    std::string match_on;        // MATCH ON clause
    // The destination's description of the object's fields as cached when
    // the run started (revetl.destination_fields), for connectors that
    // format values by field type; empty when none is cached.
    std::vector<DestinationField> fields;
    // The MAP's target fields in the MAP's order (empty without a MAP), for
    // types whose fields are a fixed vocabulary checked at CREATE SYNC.
    std::vector<std::string> map_fields;
};

// How jobs are polled: the first poll after first_poll_ms, each next one
// twice as late up to max_poll_interval_ms, at most max_polls per job
// (then the run stops; the job stays kept and the next run resumes it).
// Jobs waiting to be polled hold no in-flight slot, but no new batch is
// started while max_open_jobs are open (vendors cap queued jobs; writes
// already in flight may add up to max_in_flight more).
struct JobPolling {
    long first_poll_ms = 1000;
    long max_poll_interval_ms = 30000;
    int max_polls = 120;
    int max_open_jobs = 8;

    long DelayMs(int poll) const; // before poll number `poll` (1, 2, ...)
};

struct DestinationSettings;
class Connector;

struct ConnectorSpec {
    std::string type;
    std::string summary; // one sentence
    std::vector<OptionSpec> server_options;
    // Auth schemes accepted, chosen by the user mapping's options (see
    // auth.hpp); AuthKind::None means requests may go without credentials.
    std::vector<AuthKind> auth;
    std::string default_object; // OBJECT when a sync names none ("" : none)
    std::vector<ObjectSpec> objects;
    // Records per call the destination takes: a larger batch_size is capped
    // to this. (The default rate limit is the rate_limit option's default.)
    int max_batch_size = 10000;
    bool returns_ids = false;      // keeps the destination's record ids
    bool idempotency_keys = false; // sends idempotency keys it honours
    // A change of a row whose record id is kept is written to that record by
    // its id, so a changed MATCH ON value renames the record. Without it, a
    // changed match value writes to the record holding the new value.
    bool updates_by_record_id = false;
    std::string example; // CREATE SERVER ... OPTIONS (...) text, for hints
    // Where requests go when the server names no url: {option} stands for
    // that server option's value ("https://{account}.vendor.example"); the
    // spec's check_server makes sure the value is safe in a host name.
    std::string url_template;
    // As url_template, for a type whose default URL is a choice rather than
    // a substitution (a region option picking a host); unset for the others.
    std::function<std::string(const OptionList &server)> default_url;
    // As default_url, for a type whose host is named by its credentials
    // (an API key whose suffix names the data centre); "" when they name
    // none. The result must be safe as a URL (the spec checks what it puts
    // in a host name).
    std::function<std::string(const OptionList &server, const Credentials &credentials)> url_from_credentials;
    // How its asynchronous jobs are polled (for types that write through
    // jobs; the job_poll_interval and max_open_jobs options adjust it).
    JobPolling jobs;
    // MODE AUDIENCE, for types that have lists, tags or audiences (an object
    // lists "audience" among its modes too).
    AudienceSpec audience;

    // Code only where the vendor truly differs: further checks of a
    // server's options (after the declared ones) and of a sync's target.
    std::function<void(const OptionList &server)> check_server;
    std::function<void(const SyncTarget &target, const OptionList &server, const std::string &sync_name,
                       const std::string &server_name)>
        check_target;
    std::function<std::unique_ptr<Connector>(const DestinationSettings &, const SyncTarget &)> make;
    // Optional: how the destination describes an object's fields (see
    // fields.hpp); unset for destinations that cannot.
    FieldDescriber describe_fields;
    bool DescribesFields() const { return describe_fields.request && describe_fields.parse; }

    const OptionSpec *ServerOption(const std::string &name) const;
    bool AcceptsAuth(AuthKind kind) const;
};

// The server options every HTTP destination shares (url, headers, timeouts,
// batching, retries, rate limit, settle time), with these defaults; a spec
// starts from them and adds or adjusts its own.
std::vector<OptionSpec> CommonServerOptions();

// The options of a user mapping: the same for every type, because
// PostgreSQL validates a user mapping without telling which server it is
// for. Which auth scheme they select is judged against the server's type
// when a run starts (and shown by revetl.destination_types).
const std::vector<OptionSpec> &UserMappingOptions();

// The OAuth options of a user mapping's options (see oauth.hpp).
OAuthConfig OAuthConfigFromOptions(const OptionList &user_mapping);

// Whether `name` is one of the user-mapping options that hold a secret
// (token, password, client_secret, ...; headers: each value). The others
// (oauth_token_url, client_id, scope) may be named in messages.
bool SecretUserMappingOption(const std::string &name);

// A destination's settings, whatever its type: where and how requests go,
// with the credentials of the user mapping. Holds secrets: never log it.
struct DestinationSettings {
    std::string type; // a registered type
    std::string url;
    std::string method = "POST";
    OptionList headers; // server headers, then user-mapping headers (which win)
    Credentials credentials;
    long timeout_ms = 30000;
    long connect_timeout_ms = 10000;
    int batch_size = 100;
    int max_attempts = 5;
    int max_in_flight = 4;
    RateLimit rate_limit;
    // How long the destination may still apply a request after revetl gave
    // up waiting for it; rows with such a request are sent again after this.
    long settle_time_ms = 60000;
    JobPolling job_polling;
    // Every server option as given, for the options only one type reads.
    OptionList server_options;

    std::string Option(const std::string &name) const; // "" when absent
};

enum class OptionContext { Wrapper, Server, UserMapping, Other };

// The FDW validator: throws revetl::Error naming the bad option. For a
// server this is ValidateServer.
void ValidateOptions(OptionContext context, const OptionList &options);

// The one judgement of a server's whole option list, used by CREATE SERVER,
// ALTER SERVER (PostgreSQL passes the resulting list) and at the start of
// every run. Returns the type's spec.
const ConnectorSpec &ValidateServer(const OptionList &server);

// Server and user-mapping options into settings (the server is validated
// first, the type's defaults and caps applied). Does not require
// credentials: MakeConnector judges them against the type.
DestinationSettings ResolveDestinationSettings(const OptionList &server, const OptionList &user_mapping);

// Refuses, at CREATE / ALTER SYNC, a target the server's type cannot serve
// (a mode, an object, a missing MATCH ON); fills in the type's defaults.
void CheckSyncTarget(const OptionList &server, SyncTarget &target, const std::string &sync_name,
                     const std::string &server_name);

// As above with the spec in hand (run start).
void CheckSyncTarget(const ConnectorSpec &spec, const OptionList &server, SyncTarget &target,
                     const std::string &sync_name, const std::string &server_name);

// What CREATE SYNC tells the user when a changed MATCH ON value of a row
// would not follow the record (the type keeps record ids, but writes by the
// match value): nullopt when it would, or when the mode never matches.
struct MatchChangeNotice {
    std::string message;
    std::string detail;
    std::string hint;
};
std::optional<MatchChangeNotice> MatchValueChangeNotice(const OptionList &server, const SyncTarget &target,
                                                        const std::string &sync_name,
                                                        const std::string &server_name);
// The payload fields that identify a member of an audience sync's audience
// (see AudienceSpec): `map_fields` when every field identifies, else the
// MATCH ON field. Empty for other modes.
std::vector<std::string> AudienceIdentifierFields(const ConnectorSpec &spec, const SyncTarget &target,
                                                  const std::vector<std::string> &map_fields);

// Every registered spec as a JSON array, for revetl.destination_types.
std::string DestinationTypesJson();

} // namespace revetl
