// SQL-callable functions: the FDW validator and the sync API. Each body runs
// through InvokeCpp; PostgreSQL calls go through PgGuard or the SPI helpers.
#include "core/planning/plan_query.hpp"
#include "core/language/schedule.hpp"
#include "core/common/sql_text.hpp"
#include "core/language/sync_definition.hpp"
#include "core/language/sync_language.hpp"
#include "pg/catalog.hpp"
#include "pg/module.hpp"
#include "pg/planning.hpp"
#include "pg/run_requests.hpp"
#include "pg/scheduler.hpp"
#include "pg/shared_state.hpp"
#include "pg/spi.hpp"
#include "pg/sync_commands.hpp"

#include <algorithm>
#include <cctype>

namespace revetl::pg {

namespace {

std::string RequiredText(FunctionCallInfo fcinfo, int arg, const char *what) {
    if (PG_ARGISNULL(arg))
        throw Error("22004", std::string(what) + " must not be null");
    return TextToString(PG_GETARG_DATUM(arg));
}

std::vector<std::string> TextArray(Datum array_datum) {
    std::vector<std::string> out;
    Datum *elems = nullptr;
    bool *nulls = nullptr;
    int n = 0;
    PgGuard([&] {
        ArrayType *arr = DatumGetArrayTypeP(array_datum);
        if (ARR_NDIM(arr) > 1)
            ereport(ERROR,
                    (errcode(ERRCODE_ARRAY_SUBSCRIPT_ERROR), errmsg("key must be a one-dimensional array")));
        deconstruct_array(arr, TEXTOID, -1, false, TYPALIGN_INT, &elems, &nulls, &n);
    });
    for (int i = 0; i < n; i++) {
        if (nulls[i])
            throw Error("22004", "key columns must not be null");
        out.push_back(TextToString(elems[i]));
    }
    return out;
}

std::optional<std::string> JsonbArg(FunctionCallInfo fcinfo, int arg) {
    if (PG_ARGISNULL(arg))
        return std::nullopt;
    std::string out;
    PgGuard([&] { out = JsonbToCString(nullptr, &PG_GETARG_JSONB_P(arg)->root, 0); });
    return out;
}

std::optional<std::string> OptTextArg(FunctionCallInfo fcinfo, int arg) {
    if (PG_ARGISNULL(arg))
        return std::nullopt;
    return TextToString(PG_GETARG_DATUM(arg));
}

std::vector<MapEntry> MapArg(const std::string &json) {
    // '[]' and '{}' mean "no map" in alter_sync.
    if (json == "[]" || json == "{}")
        return {};
    return ParseMap(json);
}

Datum CreateSyncFn(FunctionCallInfo fcinfo) {
    SyncRequest req;
    req.name = RequiredText(fcinfo, 0, "sync name");
    req.model = RequiredText(fcinfo, 1, "model");
    req.destination = RequiredText(fcinfo, 2, "destination");
    if (PG_ARGISNULL(3))
        throw Error("22004", "key must not be null", {},
                    "Pass the columns that identify a row, for example key => ARRAY['id'].");
    req.key = TextArray(PG_GETARG_DATUM(3));
    req.mode = PG_ARGISNULL(4) ? "upsert" : TextToString(PG_GETARG_DATUM(4));
    if (auto map = JsonbArg(fcinfo, 5))
        req.map = ParseMap(*map);
    req.options_json = JsonbArg(fcinfo, 6).value_or("{}");
    req.object = OptTextArg(fcinfo, 7);
    req.match_on = OptTextArg(fcinfo, 8);
    req.schedule = ParseScheduleText(OptTextArg(fcinfo, 9).value_or("manual"));
    bool replace = !PG_ARGISNULL(10) && PG_GETARG_BOOL(10);
    if (PG_NARGS() > 11)
        req.audience = OptTextArg(fcinfo, 11);
    SpiConnect();
    int64_t id = CreateSync(req, replace);
    SpiFinish();
    PG_RETURN_INT64(id);
}

Datum DropSyncFn(FunctionCallInfo fcinfo) {
    std::string name = RequiredText(fcinfo, 0, "sync name");
    bool if_exists = !PG_ARGISNULL(1) && PG_GETARG_BOOL(1);
    SpiConnect();
    DropSync(name, if_exists);
    SpiFinish();
    PG_RETURN_VOID();
}

Datum AlterSyncFn(FunctionCallInfo fcinfo) {
    std::string name = RequiredText(fcinfo, 0, "sync name");
    SpiConnect();
    SyncDefinition def = RequireSync(name);
    SyncRequest req = RequestFromDefinition(def);
    if (auto v = OptTextArg(fcinfo, 1))
        req.model = *v;
    if (auto v = OptTextArg(fcinfo, 2))
        req.destination = *v;
    if (!PG_ARGISNULL(3))
        req.key = TextArray(PG_GETARG_DATUM(3));
    if (auto v = OptTextArg(fcinfo, 4))
        req.mode = *v;
    if (auto v = JsonbArg(fcinfo, 5))
        req.map = MapArg(*v);
    if (auto v = JsonbArg(fcinfo, 6))
        req.options_json = MergeOptions(req.options_json, *v);
    if (auto v = OptTextArg(fcinfo, 7))
        req.object = v->empty() ? std::nullopt : v;
    if (auto v = OptTextArg(fcinfo, 8))
        req.match_on = v->empty() ? std::nullopt : v;
    if (auto v = OptTextArg(fcinfo, 9))
        req.schedule = ParseScheduleText(*v);
    // audience => '' leaves the audience mode's list unset (for a change of
    // mode away from AUDIENCE); a mode other than audience drops it.
    if (auto v = PG_NARGS() > 10 ? OptTextArg(fcinfo, 10) : std::nullopt)
        req.audience = v->empty() ? std::nullopt : v;
    else if (req.mode != "audience")
        req.audience.reset();
    AlterSync(name, req);
    SpiFinish();
    PG_RETURN_VOID();
}

Datum RenameSyncFn(FunctionCallInfo fcinfo) {
    std::string name = RequiredText(fcinfo, 0, "sync name");
    std::string new_name = RequiredText(fcinfo, 1, "new sync name");
    SpiConnect();
    RenameSync(name, new_name);
    SpiFinish();
    PG_RETURN_VOID();
}

Datum AlterSyncOwnerFn(FunctionCallInfo fcinfo) {
    std::string name = RequiredText(fcinfo, 0, "sync name");
    if (PG_ARGISNULL(1))
        throw Error("22004", "new owner must not be null");
    std::string role = NameStr(*PG_GETARG_NAME(1));
    SpiConnect();
    AlterSyncOwner(name, role);
    SpiFinish();
    PG_RETURN_VOID();
}

Datum SetPausedFn(FunctionCallInfo fcinfo, bool paused) {
    std::string name = RequiredText(fcinfo, 0, "sync name");
    SpiConnect();
    SetSyncPaused(name, paused);
    SpiFinish();
    PG_RETURN_VOID();
}

// Runs one parsed statement; returns its command tag.
std::string ExecuteStatement(const dsl::Statement &statement) {
    if (auto *c = std::get_if<dsl::CreateSync>(&statement)) {
        CreateSync(RequestFromStatement(*c), c->or_replace);
        return "CREATE SYNC " + c->name;
    }
    if (auto *d = std::get_if<dsl::DropSync>(&statement)) {
        for (const auto &name : d->names)
            DropSync(name, d->if_exists);
        return "DROP SYNC";
    }
    const auto &a = std::get<dsl::AlterSync>(statement);
    using Action = dsl::AlterSync::Action;
    switch (a.action) {
    case Action::Rename:
        RenameSync(a.name, a.new_name);
        return "ALTER SYNC " + a.new_name;
    case Action::Owner:
        AlterSyncOwner(a.name, a.new_owner);
        break;
    case Action::Pause:
        SetSyncPaused(a.name, true);
        break;
    case Action::Resume:
        SetSyncPaused(a.name, false);
        break;
    default: {
        SyncDefinition def = RequireSync(a.name);
        SyncRequest req = RequestFromDefinition(def);
        switch (a.action) {
        case Action::SetMap:
            req.map.clear();
            for (const auto &m : a.fields.map)
                req.map.push_back({m.field, m.expression});
            break;
        case Action::DropMap:
            req.map.clear();
            break;
        case Action::SetMode:
            req.mode = a.fields.mode;
            req.audience = a.fields.audience;
            break;
        case Action::SetSchedule:
            req.schedule = *a.fields.schedule;
            break;
        case Action::SetOptions:
            req.options_json = MergeOptions(req.options_json, OptionsToJson(a.fields.options));
            break;
        case Action::ResetOptions: {
            std::string nulls = "{";
            for (size_t i = 0; i < a.reset_options.size(); i++) {
                std::vector<dsl::OptionItem> one{{a.reset_options[i], dsl::OptionItem::Type::String, "", 0}};
                std::string key = OptionsToJson(one); // {"name":""}
                nulls += (i ? "," : "") + key.substr(1, key.find(':') - 1) + ":null";
            }
            nulls += "}";
            req.options_json = MergeOptions(req.options_json, nulls);
            break;
        }
        case Action::SetKey:
            req.key = a.fields.key;
            break;
        case Action::SetModel:
            req.model = a.fields.ModelText();
            break;
        case Action::SetServer:
            req.destination = a.fields.server;
            break;
        default:
            break;
        }
        AlterSync(a.name, req);
    }
    }
    return "ALTER SYNC " + a.name;
}

Datum ExecuteFn(FunctionCallInfo fcinfo) {
    std::string text = RequiredText(fcinfo, 0, "statements");
    // Every statement parses before any runs.
    std::vector<dsl::Statement> statements = dsl::Parse(text);
    std::vector<std::string> tags;
    SpiConnect();
    for (const auto &statement : statements) {
        const std::vector<dsl::MapItem> *map = nullptr;
        if (auto *c = std::get_if<dsl::CreateSync>(&statement))
            map = &c->map;
        else if (auto *a = std::get_if<dsl::AlterSync>(&statement))
            map = &a->fields.map;
        for (size_t i = 0; map && i < map->size(); i++) {
            const dsl::MapItem &item = (*map)[i];
            if (item.folded_from.empty())
                continue;
            PgGuard([&] {
                ereport(NOTICE, (errmsg("destination field name %s is folded to lower case: \"%s\"",
                                        item.folded_from.c_str(), item.field.c_str()),
                                 errhint("Write AS \"%s\" (in double quotes) to keep its case.",
                                         item.folded_from.c_str())));
            });
        }
        try {
            tags.push_back(ExecuteStatement(statement));
        } catch (Error &e) {
            // Point at the statement that failed, or into its map expression
            // when the error is about one.
            int pos = std::visit([](const auto &s) { return s.position; }, statement);
            if (e.position() > 0 && e.source() != text) {
                const std::vector<dsl::MapItem> *items = nullptr;
                if (auto *c = std::get_if<dsl::CreateSync>(&statement))
                    items = &c->map;
                else if (auto *a = std::get_if<dsl::AlterSync>(&statement))
                    items = &a->fields.map;
                bool found = false;
                for (size_t i = 0; items && i < items->size() && !found; i++)
                    if ((*items)[i].expression == e.source()) {
                        e.At((*items)[i].position + e.position() - 1, text);
                        found = true;
                    }
                if (!found)
                    e.At(pos, text);
            } else if (e.position() == 0) {
                e.At(pos, text);
            }
            throw;
        }
    }
    SpiFinish();
    PgGuard([&] { InitMaterializedSRF(fcinfo, MAT_SRF_USE_EXPECTED_DESC); });
    ReturnSetInfo *rsinfo = reinterpret_cast<ReturnSetInfo *>(fcinfo->resultinfo);
    for (const auto &tag : tags)
        PgGuard([&] {
            Datum value = CStringGetTextDatum(tag.c_str());
            bool isnull = false;
            tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, &value, &isnull);
        });
    return (Datum)0;
}

Datum SyncDdlFn(FunctionCallInfo fcinfo) {
    std::string name = TextToString(PG_GETARG_DATUM(0));
    SpiConnect();
    SyncDefinition def = RequireSync(name);
    SpiFinish();
    std::string ddl = dsl::FormatCreateSync(def.ToStatement());
    if (def.paused)
        ddl += "\nALTER SYNC " + dsl::QuoteIdentIfNeeded(def.name) + " PAUSE;";
    text *result = nullptr;
    PgGuard([&] { result = cstring_to_text_with_len(ddl.data(), static_cast<int>(ddl.size())); });
    PG_RETURN_TEXT_P(result);
}

Datum RunSync(FunctionCallInfo fcinfo) {
    std::string name = RequiredText(fcinfo, 0, "sync name");
    bool wait = !PG_ARGISNULL(1) && PG_GETARG_BOOL(1);
    int32_t row_limit = PG_ARGISNULL(2) ? -1 : PG_GETARG_INT32(2);
    bool full = !PG_ARGISNULL(3) && PG_GETARG_BOOL(3);
    bool resync = PG_NARGS() > 4 && !PG_ARGISNULL(4) && PG_GETARG_BOOL(4);
    bool allow_removals = PG_NARGS() > 5 && !PG_ARGISNULL(5) && PG_GETARG_BOOL(5);
    if (!PG_ARGISNULL(2) && row_limit < 1)
        throw Error(sqlstate::kInvalidParameterValue, "max_rows must be at least 1", {},
                    "Leave max_rows NULL for a full run.");
    if (resync && row_limit >= 0)
        throw Error(sqlstate::kInvalidParameterValue, "max_rows cannot be combined with resync", {},
                    "A resync sends every row of the model; a test run sends a few. Choose one.");

    bool in_block = false;
    PgGuard([&] { in_block = IsTransactionBlock(); });
    if (wait && in_block)
        throw Error(
            sqlstate::kActiveSqlTransaction,
            "cannot wait for a run of sync \"" + name + "\" inside a transaction block",
            "A run request takes effect when the transaction commits, so a wait here would never end.",
            "Call revetl.run_sync('" + name +
                "') without wait inside the transaction, or call "
                "revetl.run_sync('" +
                name + "', wait => true) on its own, outside BEGIN ... COMMIT.");

    SpiConnect();
    SyncDefinition def = RequireSync(name);
    RequireOwnership(def, "run");
    if (def.paused)
        throw Error(sqlstate::kObjectNotInPrerequisiteState, "sync \"" + name + "\" is paused", {},
                    "Resume it with ALTER SYNC " + dsl::QuoteIdentIfNeeded(name) + " RESUME.");
    if (auto copy = CopyOfAnotherDatabase())
        throw CopyError(*copy);
    if (resync && def.mode == "insert")
        throw Error(sqlstate::kObjectNotInPrerequisiteState,
                    "sync \"" + name + "\" cannot be resynced: it is in INSERT mode",
                    "A resync sends every row again, and in INSERT mode every row already delivered would be "
                    "refused as existing.",
                    "Use ALTER SYNC " + dsl::QuoteIdentIfNeeded(name) +
                        " SET MODE UPSERT first, if the "
                        "destination can update records.");
    std::string requested_by = RoleName(GetUserId());
    int64_t run_id = 0;
    if (!wait) {
        AsExtensionOwner([&] {
            run_id =
                Sql("INSERT INTO revetl.runs (sync_id, sync_name, requested_by, trigger, row_limit, "
                    "full_diff, resync, allow_removals) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING id",
                    {SqlArg::Int8(def.id), SqlArg::Text(def.name), SqlArg::Text(requested_by),
                     SqlArg::Text(row_limit >= 0 ? "test" : "manual"),
                     row_limit >= 0 ? SqlArg::Int4(row_limit) : SqlArg::Null(INT4OID), SqlArg::Bool(full),
                     SqlArg::Bool(resync), SqlArg::Bool(allow_removals)})
                    .Int8(0, 0);
        });
        SpiFinish();
        WakeWorkerAtCommit();
        PG_RETURN_INT64(run_id);
    }
    AsExtensionOwner([&] {
        run_id = Sql("SELECT pg_catalog.nextval(pg_catalog.pg_get_serial_sequence('revetl.runs', 'id'))")
                     .Int8(0, 0);
    });
    SpiFinish();
    WaitResult result =
        RequestRunAndWait(def.id, def.name, run_id, requested_by, row_limit, full, resync, allow_removals);
    if (result.status == "failed" || result.status == "cancelled")
        throw Error(sqlstate::kSyncRunFailed,
                    "run " + std::to_string(run_id) + " of sync \"" + name + "\" " + result.status,
                    result.error.empty() ? std::string() : "The run ended with: " + result.error,
                    "SELECT * FROM revetl.sync_runs WHERE id = " + std::to_string(run_id) +
                        " shows the run.");
    if (result.status == "partial")
        PgGuard([&] {
            ereport(
                WARNING,
                (errmsg("run %lld of sync \"%s\" did not deliver every row", (long long)run_id, name.c_str()),
                 errhint("SELECT * FROM revetl.rejected_rows WHERE run_id = %lld shows the rows and why.",
                         (long long)run_id)));
        });
    PG_RETURN_INT64(run_id);
}

const char *ActionName(const std::string &op) {
    if (op == "a")
        return "add";
    if (op == "c")
        return "change";
    if (op == "r")
        return "remove";
    return "invalid";
}

// Cancels a queued or running run. A queued run never starts; a running one
// stops at its next interrupt check (a statement in progress is cancelled):
// rows whose requests were in flight are re-verified later, rows not yet
// sent stay planned for the next run, and the run ends 'cancelled'.
Datum CancelRunFn(FunctionCallInfo fcinfo) {
    if (PG_ARGISNULL(0))
        throw Error("22004", "run id must not be null");
    const int64_t run_id = PG_GETARG_INT64(0);
    SpiConnect();
    SqlResult run = Sql("SELECT r.sync_id, r.sync_name, r.status FROM revetl.sync_runs r WHERE r.id = $1",
                        {SqlArg::Int8(run_id)});
    if (run.rows.empty())
        throw Error(sqlstate::kUndefinedObject, "run " + std::to_string(run_id) + " does not exist", {},
                    "SELECT id, sync_name, status FROM revetl.sync_runs lists the runs.");
    const int64_t sync_id = run.Int8(0, 0);
    const std::string sync_name = run.Text(0, 1);
    const std::string status = run.Text(0, 2);
    auto def = LoadSyncById(sync_id);
    if (def) {
        RequireOwnership(*def, "cancel runs of");
    } else {
        bool super = false;
        PgGuard([&] { super = superuser(); });
        if (!super)
            throw Error(sqlstate::kInsufficientPrivilege,
                        "must be superuser to cancel run " + std::to_string(run_id),
                        "Its sync \"" + sync_name + "\" was dropped.");
    }
    const std::string who = RoleName(GetUserId());
    if (status == "queued") {
        CancelQueuedRuns(sync_id, run_id, "cancelled by revetl.cancel_run (role " + who + ")");
    } else if (status == "running") {
        const char *reason = "cancelled by revetl.cancel_run";
        bool asked = false;
        PgGuard([&] { asked = CancelSyncRun(MyDatabaseId, sync_id, reason); });
        if (!asked)
            PgGuard([&] {
                ereport(NOTICE, (errmsg("run %lld has no process any more", (long long)run_id),
                                 errdetail("The scheduler records how it ended.")));
            });
    } else {
        PgGuard([&] {
            ereport(NOTICE, (errmsg("run %lld of sync \"%s\" already ended (%s)", (long long)run_id,
                                    sync_name.c_str(), status.c_str())));
        });
    }
    SpiFinish();
    PG_RETURN_VOID();
}

Datum PreviewSync(FunctionCallInfo fcinfo) {
    std::string name = RequiredText(fcinfo, 0, "sync name");
    int max_rows = PG_ARGISNULL(1) ? 10 : PG_GETARG_INT32(1);
    if (max_rows < 0)
        throw Error(sqlstate::kInvalidParameterValue, "max_rows must not be negative");

    SpiConnect();
    SyncDefinition def = RequireSync(name);
    RequireOwnership(def, "preview");
    // Ordered, so that a preview of a few rows is the same every time.
    PlanSpec plan = PreparePlan(def);
    plan.key_json_for_every_row = true; // shown for every row
    std::string sql = BuildPlanQuery(plan) + " ORDER BY op, key LIMIT " + std::to_string(max_rows);
    SqlResult rows;
    // The model and MAP are the owner's code: they run as the owner, in a
    // restricted operation, and nothing they set survives into the caller's
    // session, whoever the caller is.
    AsSyncOwner(def.owner, def.search_path, [&] { rows = Sql(sql, {}, true); });
    SpiFinish();

    std::string key_columns;
    for (const auto &k : def.key_columns)
        key_columns += (key_columns.empty() ? "" : ", ") + k;
    PgGuard([&] { InitMaterializedSRF(fcinfo, 0); });
    ReturnSetInfo *rsinfo = reinterpret_cast<ReturnSetInfo *>(fcinfo->resultinfo);
    for (size_t i = 0; i < rows.rows.size(); i++) {
        std::string op = rows.Text(i, 0);
        std::string reason;
        if (op == "n")
            reason = "the key has a NULL value (key columns: " + key_columns + ")";
        else if (op == "d")
            reason = "duplicate key: " + rows.Text(i, 6) + " rows of the model have this key";
        else if (op == std::string(1, plan_op::kBadIdentifier))
            reason = BadIdentifierReason(plan);
        const std::optional<std::string> &key = rows.At(i, 2);
        const std::optional<std::string> &payload = rows.At(i, 3);
        PgGuard([&] {
            Datum values[4];
            bool nulls[4] = {false, key == std::nullopt, payload == std::nullopt, reason.empty()};
            values[0] = CStringGetTextDatum(ActionName(op));
            values[1] = key ? DirectFunctionCall1(jsonb_in, CStringGetDatum(key->c_str())) : (Datum)0;
            values[2] = payload ? DirectFunctionCall1(jsonb_in, CStringGetDatum(payload->c_str())) : (Datum)0;
            values[3] = reason.empty() ? (Datum)0 : CStringGetTextDatum(reason.c_str());
            tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
        });
    }
    return (Datum)0;
}

Datum FdwValidator(FunctionCallInfo fcinfo) {
    OptionList options;
    List *list = NIL;
    Oid catalog = PG_GETARG_OID(1);
    PgGuard([&] { list = untransformRelOptions(PG_GETARG_DATUM(0)); });
    ListCell *lc;
    foreach (lc, list) {
        DefElem *def = static_cast<DefElem *>(lfirst(lc));
        char *value = nullptr;
        PgGuard([&] { value = defGetString(def); });
        options.emplace_back(def->defname, value ? value : "");
    }
    OptionContext context = catalog == ForeignDataWrapperRelationId ? OptionContext::Wrapper
                            : catalog == ForeignServerRelationId    ? OptionContext::Server
                            : catalog == UserMappingRelationId      ? OptionContext::UserMapping
                                                                    : OptionContext::Other;
    ValidateOptions(context, options);
    if (context == OptionContext::Server) {
        // The URL the server would really send to, defaults included (a
        // HubSpot server without url goes to HubSpot's API): CREATE SERVER
        // and ALTER SERVER (whose validator sees the whole resulting option
        // list) judge it alike, as the run does.
        // A type whose host only its credentials name (Mailchimp's API key
        // ends with its data centre) has none yet: every run checks it.
        const std::string url = ResolveDestinationSettings(options, {}).url;
        const std::string host = url.empty() ? std::string() : UrlHost(url);
        if (!url.empty() && !HostAllowed(host, g_allowed_hosts ? g_allowed_hosts : ""))
            throw Error(sqlstate::kInsufficientPrivilege,
                        "destination host \"" + host + "\" is not in revetl.allowed_hosts", {},
                        "A superuser can add it to revetl.allowed_hosts in postgresql.conf and reload.");
    }
    if (context == OptionContext::UserMapping) {
        // An OAuth token endpoint is a destination too: the same policy,
        // here and again at every run.
        const OAuthConfig oauth = OAuthConfigFromOptions(options);
        if (!oauth.token_url.empty()) {
            std::string host = UrlHost(oauth.token_url);
            if (!HostAllowed(host, g_allowed_hosts ? g_allowed_hosts : ""))
                throw Error(sqlstate::kInsufficientPrivilege,
                            "OAuth token endpoint host \"" + host + "\" is not in revetl.allowed_hosts", {},
                            "A superuser can add it to revetl.allowed_hosts in postgresql.conf and reload.");
        }
    }
    PG_RETURN_VOID();
}

// revetl.destination_types: the registered connector specs as one JSON array.
Datum DestinationTypesFn(FunctionCallInfo) {
    std::string json = DestinationTypesJson();
    Datum result = (Datum)0;
    PgGuard([&] { result = DirectFunctionCall1(jsonb_in, CStringGetDatum(json.c_str())); });
    return result;
}

// Prunes now what the worker would prune on its own schedule.
Datum PruneHistoryFn(FunctionCallInfo fcinfo) {
    bool superuser = false;
    PgGuard([&] { superuser = ::superuser(); });
    if (!superuser)
        throw Error(sqlstate::kInsufficientPrivilege, "permission denied to prune revetl history", {},
                    "Only superusers may prune history; the worker prunes it on its own.");
    SpiConnect();
    int64_t runs = 0, rejected = 0;
    for (uint64_t n; (n = PruneBatch(false, g_rejected_rows_retention_min, 5000)) > 0;)
        rejected += static_cast<int64_t>(n);
    for (uint64_t n; (n = PruneBatch(true, g_run_history_retention_min, 5000)) > 0;)
        runs += static_cast<int64_t>(n);
    SpiFinish();
    TupleDesc desc = nullptr;
    HeapTuple tuple = nullptr;
    PgGuard([&] {
        if (get_call_result_type(fcinfo, nullptr, &desc) != TYPEFUNC_COMPOSITE)
            elog(ERROR, "revetl: prune_history must return a record");
        desc = BlessTupleDesc(desc);
        Datum values[2] = {Int64GetDatum(runs), Int64GetDatum(rejected)};
        bool nulls[2] = {false, false};
        tuple = heap_form_tuple(desc, values, nulls);
    });
    return HeapTupleGetDatum(tuple);
}

Datum CaptureWakeFn(FunctionCallInfo fcinfo) {
    RequestRunOnChange(PG_GETARG_INT64(0));
    PG_RETURN_VOID();
}

Datum DdlWatchFn(FunctionCallInfo fcinfo) {
    if (!CALLED_AS_EVENT_TRIGGER(fcinfo))
        throw Error(sqlstate::kObjectNotInPrerequisiteState,
                    "revetl._ddl_watch() is an event trigger function");
    AfterTableDdl();
    PG_RETURN_VOID();
}

Datum WakeLauncherFn(FunctionCallInfo) {
    WakeLauncherAtCommit();
    PG_RETURN_VOID();
}

} // namespace
} // namespace revetl::pg

using namespace revetl::pg;

REVETL_SQL_FUNCTION(revetl_create_sync) {
    return CreateSyncFn(fcinfo);
}
REVETL_SQL_FUNCTION(revetl_drop_sync) {
    return DropSyncFn(fcinfo);
}
REVETL_SQL_FUNCTION(revetl_alter_sync) {
    return AlterSyncFn(fcinfo);
}
REVETL_SQL_FUNCTION(revetl_rename_sync) {
    return RenameSyncFn(fcinfo);
}
REVETL_SQL_FUNCTION(revetl_alter_sync_owner) {
    return AlterSyncOwnerFn(fcinfo);
}
REVETL_SQL_FUNCTION(revetl_pause_sync) {
    return SetPausedFn(fcinfo, true);
}
REVETL_SQL_FUNCTION(revetl_resume_sync) {
    return SetPausedFn(fcinfo, false);
}
REVETL_SQL_FUNCTION(revetl_execute) {
    return ExecuteFn(fcinfo);
}
REVETL_SQL_FUNCTION(revetl_sync_ddl) {
    return SyncDdlFn(fcinfo);
}
REVETL_SQL_FUNCTION(revetl_run_sync) {
    return RunSync(fcinfo);
}
REVETL_SQL_FUNCTION(revetl_cancel_run) {
    return CancelRunFn(fcinfo);
}
REVETL_SQL_FUNCTION(revetl_preview_sync) {
    return PreviewSync(fcinfo);
}
REVETL_SQL_FUNCTION(revetl_fdw_validator) {
    return FdwValidator(fcinfo);
}
REVETL_SQL_FUNCTION(revetl_destination_types) {
    return DestinationTypesFn(fcinfo);
}
REVETL_SQL_FUNCTION(revetl_wake_launcher) {
    return WakeLauncherFn(fcinfo);
}
REVETL_SQL_FUNCTION(revetl_prune_history) {
    return PruneHistoryFn(fcinfo);
}
REVETL_SQL_FUNCTION(revetl_capture_wake) {
    return CaptureWakeFn(fcinfo);
}
REVETL_SQL_FUNCTION(revetl_ddl_watch) {
    return DdlWatchFn(fcinfo);
}
