#include "pg/field_refresh.hpp"

#include "core/common/error.hpp"
#include "core/common/sql_text.hpp"
#include "core/connectors/options.hpp"
#include "core/connectors/spec.hpp"
#include "core/delivery/redaction.hpp"
#include "pg/catalog.hpp"
#include "pg/executor.hpp"
#include "pg/guard.hpp"
#include "pg/module.hpp"
#include "pg/run_requests.hpp"
#include "pg/session.hpp"
#include "pg/shared_state.hpp"
#include "pg/spi.hpp"

#include <map>

extern "C" {
PGDLLEXPORT void revetl_fields_main(Datum main_arg);
}

namespace revetl::pg {

namespace {

// At most this many fetches at once per database: each is a process.
constexpr size_t kMaxRefreshProcesses = 2;
// Finished refresh requests are kept this long (for the waiting caller).
constexpr const char *kRefreshRetention = "1 day";

// The user mapping in effect for `role` on the server: its own, else
// PUBLIC's; InvalidOid when neither exists.
Oid MappingInEffect(Oid server_oid, Oid role) {
    // Also called before any switch of role: the operators are named in full.
    SqlResult r = Sql("SELECT umid FROM pg_catalog.pg_user_mappings WHERE srvid OPERATOR(pg_catalog.=) "
                      "$1::pg_catalog.oid "
                      "AND umuser OPERATOR(pg_catalog.=) ANY (ARRAY[$2::pg_catalog.oid, 0::pg_catalog.oid]) "
                      "ORDER BY umuser OPERATOR(pg_catalog.=) 0::pg_catalog.oid LIMIT 1",
                      {SqlArg::Int8(server_oid), SqlArg::Int8(role)}, true);
    return r.rows.empty() ? InvalidOid : static_cast<Oid>(r.Int8(0, 0));
}

Oid RequireMapping(const Destination &dest, Oid role) {
    Oid mapping = MappingInEffect(dest.server_oid, role);
    if (!OidIsValid(mapping))
        throw Error(sqlstate::kUndefinedObject,
                    "user mapping for \"" + RoleName(role) + "\" does not exist for server \"" +
                        dest.server_name + "\"",
                    {},
                    "Fields are fetched with the credentials of your user mapping: CREATE USER MAPPING FOR " +
                        RoleName(role) + " SERVER " + dest.server_name + " OPTIONS (token '...').");
    return mapping;
}

const ConnectorSpec &DescribingSpec(const Destination &dest) {
    const ConnectorSpec &spec = ValidateServer(dest.server_options);
    if (!spec.DescribesFields())
        throw Error(sqlstate::kFeatureNotSupported,
                    "server \"" + dest.server_name + "\" cannot describe its fields",
                    "Destinations of type " + spec.type + " do not describe their fields.");
    return spec;
}

std::string ObjectOrDefault(const ConnectorSpec &spec, const std::string &object, const Destination &dest) {
    std::string out = object.empty() ? spec.default_object : object;
    if (out.empty())
        throw Error(sqlstate::kInvalidParameterValue,
                    "name the object whose fields server \"" + dest.server_name + "\" should describe",
                    "Destinations of type " + spec.type + " have no default object.");
    if (out.size() > 255)
        throw Error(sqlstate::kInvalidParameterValue, "invalid destination object name",
                    "Object names are 1 to 255 bytes long.");
    // The spec's own check of the object (it becomes part of a URL).
    (void)spec.describe_fields.request(ResolveDestinationSettings(dest.server_options, {}), out);
    return out;
}

std::map<int64, BackgroundWorkerHandle *> g_refreshing;

BackgroundWorkerHandle *StartRefresher(int64_t refresh_id) {
    return StartDatabaseProcess("revetl_fields_main", "revetl fields " + std::to_string(refresh_id),
                                "revetl fields", Int64GetDatum(refresh_id));
}

void MarkFailed(int64_t refresh_id, const std::string &error) {
    Sql("UPDATE revetl.field_refreshes SET status = 'failed', error = $2, finished_at = "
        "pg_catalog.clock_timestamp() WHERE id = $1 AND status IN ('queued', 'running')",
        {SqlArg::Int8(refresh_id), SqlArg::Text(error)});
}

// The fetch itself, in the "revetl fields" process. Returns the number of
// fields cached; throws with a message that names no secret.
int FetchFields(int64_t refresh_id, Oid server_oid, Oid role, const std::string &object, Redactor &redactor) {
    BeginTransaction("revetl: resolving destination");
    ForeignServer *server = nullptr;
    PgGuard([&] { server = GetForeignServerExtended(server_oid, FSV_MISSING_OK); });
    if (!server)
        throw Error(
            sqlstate::kUndefinedObject, "the server does not exist for revetl's processes",
            "It was dropped, or it was created in a transaction that had not committed when the fetch "
            "began.");
    Destination dest = LookupDestination(server->servername);
    // The requester's rights, judged again now: they may have been revoked
    // since the request.
    CheckServerUsage(dest, role);
    Oid mapping = RequireMapping(dest, role);
    LoadUserMapping(dest, role);
    CommitTransaction();
    for (const auto &o : dest.user_mapping_options) {
        if (o.first == "headers")
            for (const auto &h : ParseHeaderObject(o.first, o.second, true))
                redactor.AddSecret(h.second);
        else
            redactor.AddSecret(o.second);
    }
    const ConnectorSpec &spec = DescribingSpec(dest);
    DestinationSettings settings = ResolveDestinationSettings(dest.server_options, dest.user_mapping_options);
    AuthKind auth = SelectedAuth(settings.credentials);
    if (!spec.AcceptsAuth(auth))
        throw Error(
            sqlstate::kInvalidAuthorizationSpecification,
            "server \"" + dest.server_name + "\" of type " + spec.type + " does not accept " +
                (auth == AuthKind::None ? std::string("requests without credentials")
                                        : std::string("auth scheme ") + AuthName(auth)),
            "The user mapping in effect for the role that asked selects the auth scheme by its options.");
    const std::string allowed = g_allowed_hosts ? g_allowed_hosts : "";
    std::string host = UrlHost(settings.url);
    if (!HostAllowed(host, allowed))
        throw Error(sqlstate::kInsufficientPrivilege, "destination host \"" + host + "\" of server \"" +
                                                          dest.server_name +
                                                          "\" is not in revetl.allowed_hosts");
    HttpRequest request = spec.describe_fields.request(settings, object);
    HttpClient client;
    client.SetAddressPolicy(std::make_shared<HostPolicy>(allowed));
    client.Start(1, request);
    HttpResponse response;
    for (bool done = false; !done;) {
        PgGuard([] { CHECK_FOR_INTERRUPTS(); });
        for (auto &r : client.Poll(100)) {
            response = std::move(r.second);
            done = true;
        }
    }
    std::vector<DestinationField> fields =
        ReadDescribedFields(spec.describe_fields, request, response, dest.server_name);
    std::vector<std::string> names, labels, types, field_types, options;
    std::vector<bool> read_only;
    for (const auto &f : fields) {
        names.push_back(f.name);
        labels.push_back(f.label);
        types.push_back(f.type);
        field_types.push_back(f.field_type);
        read_only.push_back(f.read_only);
        options.push_back(FieldOptionsJson(f));
    }
    BeginTransaction("revetl: caching destination fields");
    const std::vector<SqlArg> key = {SqlArg::Int8(server_oid), SqlArg::Int8(mapping), SqlArg::Text(object)};
    Sql("DELETE FROM revetl.field_cache WHERE server_id = $1::oid AND mapping_id = $2::oid AND object = $3",
        key);
    Sql("INSERT INTO revetl.field_cache (server_id, mapping_id, object, name, label, type, field_type, "
        "read_only, options, fetched_at) "
        "SELECT $1::oid, $2::oid, $3, u.name, u.label, u.type, u.field_type, u.read_only, "
        "CASE WHEN u.options = '[]' THEN NULL ELSE u.options::jsonb END, pg_catalog.clock_timestamp() "
        "FROM unnest($4::text[], $5::text[], $6::text[], $7::text[], $8::boolean[], $9::text[]) "
        "AS u(name, label, type, field_type, read_only, options)",
        {SqlArg::Int8(server_oid), SqlArg::Int8(mapping), SqlArg::Text(object), SqlArg::TextArray(names),
         SqlArg::TextArray(labels), SqlArg::TextArray(types), SqlArg::TextArray(field_types),
         SqlArg::BoolArray(read_only), SqlArg::TextArray(options)});
    // Rows of user mappings and servers that are gone go with them.
    Sql("DELETE FROM revetl.field_cache c WHERE NOT EXISTS (SELECT 1 FROM pg_catalog.pg_user_mappings m "
        "WHERE m.umid = c.mapping_id AND m.srvid = c.server_id)");
    Sql("UPDATE revetl.field_refreshes SET status = 'succeeded', fields = $2, error = NULL, "
        "finished_at = pg_catalog.clock_timestamp() WHERE id = $1",
        {SqlArg::Int8(refresh_id), SqlArg::Int4(static_cast<int32_t>(fields.size()))});
    CommitTransaction();
    return static_cast<int>(fields.size());
}

void RunRefresh(int64_t refresh_id) {
    BeginTransaction("revetl: starting field refresh");
    SqlResult r =
        Sql("UPDATE revetl.field_refreshes SET status = 'running' WHERE id = $1 AND status = 'queued' "
            "RETURNING server_id::bigint, role_id::bigint, object",
            {SqlArg::Int8(refresh_id)});
    CommitTransaction();
    if (r.rows.empty())
        return;
    Redactor redactor;
    std::string error;
    try {
        (void)FetchFields(refresh_id, static_cast<Oid>(r.Int8(0, 0)), static_cast<Oid>(r.Int8(0, 1)),
                          r.Text(0, 2), redactor);
        return;
    } catch (const Error &e) {
        error = e.detail().empty() ? std::string(e.what()) : std::string(e.what()) + ": " + e.detail();
    } catch (const PgError &e) {
        error = e.detail.empty() ? e.message : e.message + ": " + e.detail;
    }
    AbortTransaction();
    BeginTransaction("revetl: recording field refresh failure");
    MarkFailed(refresh_id, redactor.Apply(error, 1000));
    CommitTransaction();
}

} // namespace

CachedFields LoadCachedFields(Oid server_oid, Oid role, const std::string &object) {
    CachedFields out;
    AsExtensionOwner([&] {
        Oid mapping = MappingInEffect(server_oid, role);
        if (!OidIsValid(mapping))
            return;
        SqlResult r = Sql("SELECT name, label, type, field_type, read_only, "
                          "pg_catalog.date_part('epoch', pg_catalog.now() - fetched_at)::float8::text "
                          "FROM revetl.field_cache WHERE server_id = $1::pg_catalog.oid "
                          "AND mapping_id = $2::pg_catalog.oid AND object = $3 ORDER BY name",
                          {SqlArg::Int8(server_oid), SqlArg::Int8(mapping), SqlArg::Text(object)}, true);
        for (size_t i = 0; i < r.rows.size(); i++) {
            DestinationField f;
            f.name = r.Text(i, 0);
            f.label = r.Text(i, 1);
            f.type = r.Text(i, 2);
            f.field_type = r.Text(i, 3);
            f.read_only = r.Bool(i, 4);
            out.age_s = std::max(out.age_s, std::stod(r.Text(i, 5)));
            out.fields.push_back(std::move(f));
        }
        out.present = !out.fields.empty();
    });
    return out;
}

void CheckTargetsAgainstCache(const SyncDefinition &def, Oid role) {
    Destination dest = LookupDestination(def.destination);
    const ConnectorSpec &spec = ValidateServer(dest.server_options);
    if (!spec.DescribesFields())
        return;
    SyncTarget target;
    target.mode = def.mode;
    target.object = def.object.value_or("");
    target.match_on = def.match_on.value_or("");
    target.audience = def.audience.value_or("");
    for (const auto &m : def.map)
        target.map_fields.push_back(m.field);
    CheckSyncTarget(spec, dest.server_options, target, def.name, dest.server_name);
    CachedFields cached = LoadCachedFields(dest.server_oid, role, target.object);
    if (!cached.present) {
        // Nothing to judge by: the definition is accepted as written, with a
        // warning (as for a stale cache) that its targets are unchecked.
        PgGuard([&] {
            ereport(
                WARNING,
                (errmsg("MAP targets of sync \"%s\" were not checked: no fields of object \"%s\" of server "
                        "\"%s\" are cached",
                        def.name.c_str(), target.object.c_str(), dest.server_name.c_str()),
                 errhint("SELECT revetl.refresh_destination_fields(%s, %s) fetches them.",
                         QuoteLiteral(dest.server_name).c_str(), QuoteLiteral(target.object).c_str())));
        });
        return;
    }
    std::vector<std::string> targets;
    for (const auto &entry : def.map)
        targets.push_back(entry.field);
    std::vector<FieldFinding> findings =
        CheckTargetFields(cached.fields, targets, target.mode == "insert" ? "" : target.match_on,
                          target.object, dest.server_name);
    if (findings.empty())
        return;
    const bool fresh = cached.age_s <= g_destination_fields_max_age_min * 60.0;
    if (fresh) {
        const FieldFinding &f = findings.front();
        throw Error(f.unknown ? sqlstate::kUndefinedColumn : sqlstate::kInvalidParameterValue,
                    "sync \"" + def.name + "\": " + f.message,
                    "The fields of the object were fetched " +
                        std::to_string(static_cast<long>(cached.age_s)) +
                        " seconds ago (revetl.destination_fields).",
                    f.hint);
    }
    for (const auto &f : findings)
        PgGuard([&] {
            ereport(WARNING,
                    (errmsg("sync \"%s\": %s", def.name.c_str(), f.message.c_str()),
                     errdetail("The cached fields are older than revetl.destination_fields_max_age, so the "
                               "definition was accepted."),
                     errhint("%s Refresh them with SELECT revetl.refresh_destination_fields(%s, %s).",
                             f.hint.c_str(), QuoteLiteral(dest.server_name).c_str(),
                             QuoteLiteral(target.object).c_str())));
        });
}

bool StartFieldRefreshes() {
    bool failed = false;
    if (g_refreshing.size() >= kMaxRefreshProcesses)
        return false;
    BeginTransaction("revetl: looking for field refreshes");
    Sql(std::string("DELETE FROM revetl.field_refreshes WHERE status IN ('succeeded', 'failed') AND "
                    "finished_at < pg_catalog.now() - interval '") +
        kRefreshRetention + "'");
    SqlResult r = Sql("SELECT id FROM revetl.field_refreshes WHERE status = 'queued' ORDER BY id LIMIT 16");
    CommitTransaction();
    for (size_t i = 0; i < r.rows.size() && g_refreshing.size() < kMaxRefreshProcesses; i++) {
        int64 id = r.Int8(i, 0);
        if (g_refreshing.count(id))
            continue;
        BackgroundWorkerHandle *handle = StartRefresher(id);
        if (!handle) {
            BeginTransaction("revetl: field refresh not started");
            MarkFailed(id, "no background worker was free to fetch the fields: raise max_worker_processes");
            CommitTransaction();
            failed = true;
            continue;
        }
        g_refreshing[id] = handle;
    }
    return failed;
}

bool ReapFieldRefreshes() {
    std::vector<int64> ended;
    for (auto &entry : g_refreshing) {
        pid_t pid;
        BgwHandleStatus st = BGWH_STARTED;
        PgGuard([&] { st = GetBackgroundWorkerPid(entry.second, &pid); });
        if (st == BGWH_STOPPED)
            ended.push_back(entry.first);
    }
    if (ended.empty())
        return false;
    BeginTransaction("revetl: field refreshes ended");
    for (int64 id : ended) {
        // A process that ended without recording how (it crashed, or was
        // terminated) leaves its request failed, so no caller waits forever.
        MarkFailed(id, "the revetl process fetching the fields stopped");
        PgGuard([&] { pfree(g_refreshing[id]); });
        g_refreshing.erase(id);
    }
    CommitTransaction();
    return true;
}

void RecoverFieldRefreshes() {
    BeginTransaction("revetl: recovering field refreshes");
    Sql("UPDATE revetl.field_refreshes SET status = 'failed', finished_at = pg_catalog.clock_timestamp(), "
        "error = 'the revetl process fetching the fields stopped' WHERE status = 'running'");
    CommitTransaction();
}

} // namespace revetl::pg

using namespace revetl;
using namespace revetl::pg;

void revetl_fields_main(Datum main_arg) {
    int64 refresh_id = DatumGetInt64(main_arg);
    Oid dboid;
    memcpy(&dboid, MyBgworkerEntry->bgw_extra, sizeof(Oid));
    pqsignal(SIGHUP, SignalHandlerForConfigReload);
    pqsignal(SIGTERM, die);
    BackgroundWorkerUnblockSignals();
    RegisterRunProcess(dboid);
    BackgroundWorkerInitializeConnectionByOid(dboid, InvalidOid, 0);
    ErrorData *edata = nullptr;
    try {
        context_between_transactions =
            AllocSetContextCreate(TopMemoryContext, "revetl fields", ALLOCSET_DEFAULT_SIZES);
        SetSessionSettings("revetl fields");
        RunRefresh(refresh_id);
        proc_exit(0);
    } catch (...) {
        edata = CurrentExceptionToErrorData();
    }
    ereport(FATAL, (errcode(edata->sqlerrcode),
                    errmsg("revetl field refresh %lld in database \"%s\" failed: %s",
                           static_cast<long long>(refresh_id), DatabaseName(), edata->message)));
}

// revetl.refresh_destination_fields(server name, object text, wait boolean)
REVETL_SQL_FUNCTION(revetl_refresh_destination_fields) {
    if (PG_ARGISNULL(0))
        throw Error("22004", "server name must not be null");
    std::string server_name = NameStr(*PG_GETARG_NAME(0));
    std::string object = PG_ARGISNULL(1) ? std::string() : TextToString(PG_GETARG_DATUM(1));
    const bool wait = PG_ARGISNULL(2) || PG_GETARG_BOOL(2);
    Oid role = InvalidOid;
    PgGuard([&] { role = GetUserId(); });

    SpiConnect();
    Destination dest = LookupDestination(server_name);
    CheckServerUsage(dest, role);
    const ConnectorSpec &spec = DescribingSpec(dest);
    object = ObjectOrDefault(spec, object, dest);
    (void)RequireMapping(dest, role);
    const std::string requested_by = RoleName(role);
    int64_t id = 0;
    if (!wait) {
        AsExtensionOwner([&] {
            // A request already queued for the same role, server and object
            // will fetch what this one would: a loop of calls queues one
            // fetch, not thousands.
            (void)Sql("INSERT INTO revetl.field_refreshes (server_id, role_id, object, requested_by) "
                      "SELECT $1::pg_catalog.oid, $2::pg_catalog.oid, $3, $4 WHERE NOT EXISTS ("
                      "SELECT 1 FROM revetl.field_refreshes WHERE status = 'queued' AND server_id = "
                      "$1::pg_catalog.oid AND role_id = $2::pg_catalog.oid AND object = $3)",
                      {SqlArg::Int8(dest.server_oid), SqlArg::Int8(role), SqlArg::Text(object),
                       SqlArg::Text(requested_by)});
        });
        SpiFinish();
        WakeWorkerAtCommit();
        PG_RETURN_NULL();
    }
    AsExtensionOwner([&] {
        id = Sql("SELECT pg_catalog.nextval(pg_catalog.pg_get_serial_sequence('revetl.field_refreshes', "
                 "'id'))")
                 .Int8(0, 0);
    });
    SpiFinish();
    WaitResult result = RequestFieldRefreshAndWait(id, dest.server_oid, role, object, requested_by);
    if (result.status != "succeeded")
        throw Error(sqlstate::kFdwUnableToEstablishConnection,
                    "could not fetch the fields of object \"" + object + "\" of server \"" +
                        dest.server_name + "\"",
                    result.error.empty() ? std::string() : result.error + ".");
    int32_t n = 0;
    SpiConnect();
    AsExtensionOwner([&] {
        // Not read-only: a fresh snapshot, which sees what the refresh process
        // committed while this statement waited.
        SqlResult r = Sql("SELECT fields FROM revetl.field_refreshes WHERE id = $1", {SqlArg::Int8(id)});
        n = r.rows.empty() || !r.At(0, 0) ? 0 : static_cast<int32_t>(r.Int8(0, 0));
    });
    SpiFinish();
    PG_RETURN_INT32(n);
}
