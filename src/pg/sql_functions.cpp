// SQL-callable functions: the FDW validator and the sync API. Each body runs
// through InvokeCpp; PostgreSQL calls go through PgGuard or the SPI helpers.
#include "core/plan_query.hpp"
#include "core/sql_text.hpp"
#include "core/sync_definition.hpp"
#include "pg/catalog.hpp"
#include "pg/module.hpp"
#include "pg/run_requests.hpp"
#include "pg/shared_state.hpp"
#include "pg/spi.hpp"

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
            ereport(ERROR, (errcode(ERRCODE_ARRAY_SUBSCRIPT_ERROR), errmsg("key must be a one-dimensional array")));
        deconstruct_array(arr, TEXTOID, -1, false, TYPALIGN_INT, &elems, &nulls, &n);
    });
    for (int i = 0; i < n; i++) {
        if (nulls[i])
            throw Error("22004", "key columns must not be null");
        out.push_back(TextToString(elems[i]));
    }
    return out;
}

bool LooksLikeQuery(const std::string &model) {
    size_t i = model.find_first_not_of(" \t\r\n");
    if (i == std::string::npos)
        return false;
    if (model[i] == '(')
        return true;
    size_t j = i;
    while (j < model.size() && std::isalpha(static_cast<unsigned char>(model[j])))
        j++;
    std::string word = model.substr(i, j - i);
    std::transform(word.begin(), word.end(), word.begin(), [](unsigned char c) { return std::tolower(c); });
    return word == "select" || word == "with" || word == "values" || word == "table";
}

// A query model must be exactly one read-only SELECT.
// A syntax error in user text that revetl parsed on its own: point the
// caret into that text (psql shows it as QUERY) instead of into the
// statement that called revetl, and say which part of the definition it is.
[[noreturn]] void RethrowAsInternal(PgError error, const std::string &text, int offset, const std::string &where) {
    if (error.cursorpos > 0) {
        error.internalpos = std::max(1, error.cursorpos - offset);
        error.internalquery = text;
        error.cursorpos = 0;
    }
    error.context = where;
    throw error;
}

void CheckModelQuery(const std::string &query) {
    const char *problem = nullptr;
    try {
        PgGuard([&] { (void)raw_parser(query.c_str(), RAW_PARSE_DEFAULT); });
    } catch (const PgError &e) {
        RethrowAsInternal(e, query, 0, "model query");
    }
    PgGuard([&] {
        List *raw = raw_parser(query.c_str(), RAW_PARSE_DEFAULT);
        if (list_length(raw) != 1) {
            problem = "The model must be exactly one SELECT statement.";
            return;
        }
        Node *stmt = linitial_node(RawStmt, raw)->stmt;
        if (!IsA(stmt, SelectStmt)) {
            problem = "The model must be a SELECT statement.";
            return;
        }
        SelectStmt *select = castNode(SelectStmt, stmt);
        if (select->intoClause)
            problem = "SELECT INTO is not allowed in a model.";
        else if (select->lockingClause)
            problem = "FOR UPDATE and FOR SHARE are not allowed in a model.";
        else if (select->withClause) {
            ListCell *lc;
            foreach (lc, select->withClause->ctes) {
                CommonTableExpr *cte = lfirst_node(CommonTableExpr, lc);
                if (!IsA(cte->ctequery, SelectStmt))
                    problem = "Data-modifying statements in WITH are not allowed in a model.";
            }
        }
    });
    if (problem)
        throw Error(sqlstate::kInvalidParameterValue, "invalid model query", problem,
                    "A model is a table, a view, or one read-only SELECT.");
}

// A map entry must be exactly one expression, so it cannot smuggle clauses
// or statements into the SQL revetl builds around it.
void CheckMapExpression(const MapEntry &entry) {
    bool ok = false;
    std::string sql = "SELECT " + entry.expression;
    try {
        PgGuard([&] { (void)raw_parser(sql.c_str(), RAW_PARSE_DEFAULT); });
    } catch (const PgError &e) {
        RethrowAsInternal(e, entry.expression, 7, "map expression for field \"" + entry.field + "\"");
    }
    PgGuard([&] {
        List *raw = raw_parser(sql.c_str(), RAW_PARSE_DEFAULT);
        if (list_length(raw) != 1)
            return;
        Node *stmt = linitial_node(RawStmt, raw)->stmt;
        if (!IsA(stmt, SelectStmt))
            return;
        SelectStmt *s = castNode(SelectStmt, stmt);
        if (s->op != SETOP_NONE || s->fromClause || s->whereClause || s->groupClause || s->havingClause ||
            s->windowClause || s->sortClause || s->limitCount || s->limitOffset || s->lockingClause ||
            s->withClause || s->intoClause || s->distinctClause || s->valuesLists ||
            list_length(s->targetList) != 1)
            return;
        ResTarget *target = linitial_node(ResTarget, s->targetList);
        if (target->name)
            return;
        if (IsA(target->val, ColumnRef) && IsA(llast(castNode(ColumnRef, target->val)->fields), A_Star))
            return;
        ok = true;
    });
    if (!ok)
        throw Error(sqlstate::kSyntaxError, "invalid map expression for field \"" + entry.field + "\"",
                    "A map entry must be exactly one SQL expression over the model's columns.",
                    "For example: '{\"email\": \"lower(email)\"}'.");
}

struct ResolvedModel {
    ModelRef ref;
    Oid relid = InvalidOid;
};

ResolvedModel ResolveModel(const std::string &model) {
    ResolvedModel out;
    if (LooksLikeQuery(model)) {
        CheckModelQuery(model);
        out.ref.kind = ModelRef::Kind::Query;
        out.ref.query = model;
        return out;
    }
    Oid relid = InvalidOid;
    char relkind = 0;
    char *nspname = nullptr;
    char *relname = nullptr;
    PgGuard([&] {
        List *names = stringToQualifiedNameList(model.c_str());
        RangeVar *rv = makeRangeVarFromNameList(names);
        relid = RangeVarGetRelid(rv, AccessShareLock, true);
        if (OidIsValid(relid)) {
            relkind = get_rel_relkind(relid);
            nspname = get_namespace_name(get_rel_namespace(relid));
            relname = get_rel_name(relid);
        }
    });
    if (!OidIsValid(relid))
        throw Error("42P01", "relation \"" + model + "\" does not exist", {},
                    "A model is a table, a view or a query such as 'SELECT ... FROM ...'.");
    if (relkind != RELKIND_RELATION && relkind != RELKIND_VIEW && relkind != RELKIND_MATVIEW &&
        relkind != RELKIND_PARTITIONED_TABLE && relkind != RELKIND_FOREIGN_TABLE)
        throw Error("42809", "\"" + model + "\" cannot be a model",
                    "Only tables, partitioned tables, views, materialized views and foreign tables can be models.");
    out.ref.kind = ModelRef::Kind::Relation;
    out.ref.schema = nspname;
    out.ref.name = relname;
    out.relid = relid;
    return out;
}

std::vector<std::string> ModelColumns(const ModelRef &model) {
    std::vector<std::string> cols;
    std::string sql = "SELECT * FROM " + ModelSource(model) + " AS src LIMIT 0";
    int natts = 0;
    TupleDesc desc = nullptr;
    PgGuard([&] {
        if (SPI_execute(sql.c_str(), true, 0) != SPI_OK_SELECT)
            elog(ERROR, "revetl: could not read the model's columns");
        desc = SPI_tuptable->tupdesc;
        natts = desc->natts;
    });
    for (int i = 0; i < natts; i++) {
        Form_pg_attribute att = TupleDescAttr(desc, i);
        if (!att->attisdropped)
            cols.emplace_back(NameStr(att->attname));
    }
    return cols;
}

void CheckKeyColumns(const std::vector<std::string> &keys, const std::vector<std::string> &columns,
                     const std::string &model_display) {
    if (keys.empty())
        throw Error(sqlstate::kInvalidParameterValue, "a sync needs at least one key column", {},
                    "Pass the columns that identify a row, for example key => ARRAY['id'].");
    for (size_t i = 0; i < keys.size(); i++) {
        for (size_t j = 0; j < i; j++)
            if (keys[i] == keys[j])
                throw Error(sqlstate::kInvalidParameterValue, "key column \"" + keys[i] + "\" is listed twice");
        if (std::find(columns.begin(), columns.end(), keys[i]) == columns.end()) {
            std::string hint;
            std::string close = ClosestMatch(keys[i], columns);
            if (!close.empty())
                hint = "Perhaps you meant the column \"" + close + "\".";
            throw Error(sqlstate::kUndefinedColumn,
                        "column \"" + keys[i] + "\" does not exist in model " + model_display, {}, hint);
        }
    }
}

void RequireOwnership(const SyncDefinition &def, const char *action) {
    bool ok = false;
    PgGuard([&] { ok = has_privs_of_role(GetUserId(), def.owner); });
    if (!ok)
        throw Error(sqlstate::kInsufficientPrivilege, "must be owner of sync \"" + def.name + "\"",
                    std::string("Only members of role ") + def.owner_name + " may " + action + " this sync.");
}

std::string KeyColumnsJson(const std::vector<std::string> &keys) {
    std::string out = "[";
    for (size_t i = 0; i < keys.size(); i++) {
        if (i > 0)
            out += ",";
        out += "\"";
        for (char c : keys[i]) {
            if (c == '"' || c == '\\')
                out += '\\';
            if (static_cast<unsigned char>(c) < 0x20) {
                char buf[8];
                snprintf(buf, sizeof buf, "\\u%04x", c);
                out += buf;
                continue;
            }
            out += c;
        }
        out += "\"";
    }
    return out + "]";
}

Datum CreateSync(FunctionCallInfo fcinfo) {
    std::string name = RequiredText(fcinfo, 0, "sync name");
    std::string model = RequiredText(fcinfo, 1, "model");
    std::string destination = RequiredText(fcinfo, 2, "destination");
    if (PG_ARGISNULL(3))
        throw Error("22004", "key must not be null", {},
                    "Pass the columns that identify a row, for example key => ARRAY['id'].");
    std::vector<std::string> keys = TextArray(PG_GETARG_DATUM(3));
    std::string mode = PG_ARGISNULL(4) ? "upsert" : TextToString(PG_GETARG_DATUM(4));
    std::optional<std::string> map_json;
    if (!PG_ARGISNULL(5))
        PgGuard([&] { map_json = std::string(JsonbToCString(nullptr, &PG_GETARG_JSONB_P(5)->root, 0)); });
    std::string options_json = "{}";
    if (!PG_ARGISNULL(6))
        PgGuard([&] { options_json = std::string(JsonbToCString(nullptr, &PG_GETARG_JSONB_P(6)->root, 0)); });

    if (name.empty() || name.size() >= NAMEDATALEN)
        throw Error(sqlstate::kInvalidParameterValue, "invalid sync name \"" + name + "\"",
                    "A sync name must be 1 to 63 bytes long.");
    if (mode != "upsert" && mode != "mirror")
        throw Error(sqlstate::kInvalidParameterValue, "invalid sync mode \"" + mode + "\"",
                    "Valid modes are upsert (send added and changed rows) and mirror (also delete removed rows).");
    ParseSyncOptions(options_json);
    std::vector<MapEntry> map;
    if (map_json) {
        map = ParseMap(*map_json);
        for (const auto &entry : map)
            CheckMapExpression(entry);
    }

    Oid caller = GetUserId();
    Destination dest = LookupDestination(destination);
    CheckServerUsage(dest, caller);

    SpiConnect();
    ResolvedModel resolved = ResolveModel(model);
    SyncDefinition def;
    def.name = name;
    def.model = resolved.ref;
    def.key_columns = keys;
    def.map = map;
    def.mode = mode;
    CheckKeyColumns(keys, ModelColumns(resolved.ref), def.ModelDisplayName());

    // Every key column and map expression, evaluated against the model as
    // the caller: wrong types, unknown columns and missing privileges all
    // surface here rather than in the first run.
    Sql(BuildValidationQuery(def.Plan(kSchema)), {}, true);

    if (LoadSyncByName(name))
        throw Error(sqlstate::kDuplicateObject, "sync \"" + name + "\" already exists", {},
                    "Drop it first with revetl.drop_sync('" + name + "').");

    std::string search_path;
    PgGuard([&] { search_path = GetConfigOption("search_path", false, false); });
    int64_t id = 0;
    Oid ext_owner = ExtensionOwner();
    std::string owner_name = RoleName(caller);
    AsRole(ext_owner, false, [&] {
        id = Sql("SELECT nextval(pg_catalog.pg_get_serial_sequence('revetl.syncs', 'id'))").Int8(0, 0);
        std::string shadow = "shadow_" + std::to_string(id);
        Sql("INSERT INTO revetl.syncs (id, name, owner, model_kind, model_schema, model_name, model_query, "
            "destination, key_columns, mode, map, options, shadow_table, search_path) "
            "VALUES ($1, $2, $3::oid::regrole, $4, $5, $6, $7, $8, "
            "ARRAY(SELECT e FROM jsonb_array_elements_text($9::jsonb) WITH ORDINALITY AS t(e, o) ORDER BY o), "
            "$10, $11::jsonb, $12::jsonb, $13, $14)",
            {SqlArg::Int8(id), SqlArg::Text(name), SqlArg::Int8(caller),
             SqlArg::Text(resolved.ref.kind == ModelRef::Kind::Relation ? "relation" : "query"),
             resolved.ref.kind == ModelRef::Kind::Relation ? SqlArg::Text(resolved.ref.schema) : SqlArg::Null(TEXTOID),
             resolved.ref.kind == ModelRef::Kind::Relation ? SqlArg::Text(resolved.ref.name) : SqlArg::Null(TEXTOID),
             resolved.ref.kind == ModelRef::Kind::Query ? SqlArg::Text(resolved.ref.query) : SqlArg::Null(TEXTOID),
             SqlArg::Text(dest.server_name), SqlArg::Text(KeyColumnsJson(keys)), SqlArg::Text(mode),
             SqlArg::OptText(map_json), SqlArg::Text(options_json), SqlArg::Text(shadow),
             SqlArg::Text(search_path)});
        Sql(BuildShadowTableDdl(kSchema, shadow));
        // The plan query runs as the owner and joins the shadow table: the
        // owner may read it, never write it.
        Sql("GRANT SELECT ON " + QualifiedName(kSchema, shadow) + " TO " + QuoteIdent(owner_name));
        Sql("COMMENT ON TABLE " + QualifiedName(kSchema, shadow) + " IS " +
            QuoteLiteral("revetl shadow state of sync " + name + ": what the destination was last told"));
    });
    SpiFinish();
    PG_RETURN_INT64(id);
}

Datum DropSync(FunctionCallInfo fcinfo) {
    std::string name = RequiredText(fcinfo, 0, "sync name");
    bool if_exists = !PG_ARGISNULL(1) && PG_GETARG_BOOL(1);
    SpiConnect();
    auto def = LoadSyncByName(name);
    if (!def) {
        SpiFinish();
        if (!if_exists)
            throw Error(sqlstate::kUndefinedObject, "sync \"" + name + "\" does not exist");
        PgGuard([&] { ereport(NOTICE, (errmsg("sync \"%s\" does not exist, skipping", name.c_str()))); });
        PG_RETURN_VOID();
    }
    RequireOwnership(*def, "drop");
    AsRole(ExtensionOwner(), false, [&] {
        Sql("DELETE FROM revetl.syncs WHERE id = $1", {SqlArg::Int8(def->id)});
        Sql("DROP TABLE IF EXISTS " + QualifiedName(kSchema, def->shadow_table));
        Sql("UPDATE revetl.sync_runs SET status = 'cancelled', finished_at = now(), error = 'the sync was dropped' "
            "WHERE sync_id = $1 AND status = 'queued'",
            {SqlArg::Int8(def->id)});
    });
    SpiFinish();
    PG_RETURN_VOID();
}

Datum RunSync(FunctionCallInfo fcinfo) {
    std::string name = RequiredText(fcinfo, 0, "sync name");
    bool wait = !PG_ARGISNULL(1) && PG_GETARG_BOOL(1);

    bool in_block = false;
    PgGuard([&] { in_block = IsTransactionBlock(); });
    if (wait && in_block)
        throw Error(sqlstate::kActiveSqlTransaction, "cannot wait for a run of sync \"" + name +
                                                         "\" inside a transaction block",
                    "A run request takes effect when the transaction commits, so a wait here would never end.",
                    "Call revetl.run_sync('" + name + "') without wait inside the transaction, or call "
                    "revetl.run_sync('" + name + "', wait => true) on its own, outside BEGIN ... COMMIT.");

    SpiConnect();
    SyncDefinition def = RequireSync(name);
    RequireOwnership(def, "run");
    if (def.paused)
        throw Error(sqlstate::kObjectNotInPrerequisiteState, "sync \"" + name + "\" is paused");
    std::string requested_by = RoleName(GetUserId());
    int64_t run_id = 0;
    Oid ext_owner = ExtensionOwner();
    if (!wait) {
        AsRole(ext_owner, false, [&] {
            run_id = Sql("INSERT INTO revetl.sync_runs (sync_id, sync_name, requested_by) VALUES ($1, $2, $3) "
                         "RETURNING id",
                         {SqlArg::Int8(def.id), SqlArg::Text(def.name), SqlArg::Text(requested_by)})
                         .Int8(0, 0);
        });
        SpiFinish();
        WakeWorkerAtCommit();
        PG_RETURN_INT64(run_id);
    }
    AsRole(ext_owner, false, [&] {
        run_id = Sql("SELECT nextval(pg_catalog.pg_get_serial_sequence('revetl.sync_runs', 'id'))").Int8(0, 0);
    });
    SpiFinish();
    WaitResult result = RequestRunAndWait(def.id, def.name, run_id, requested_by);
    if (result.status == "failed" || result.status == "cancelled")
        throw Error(sqlstate::kSyncRunFailed,
                    "run " + std::to_string(run_id) + " of sync \"" + name + "\" " + result.status,
                    result.error.empty() ? std::string() : "The run ended with: " + result.error,
                    "SELECT * FROM revetl.sync_runs WHERE id = " + std::to_string(run_id) + " shows the run.");
    if (result.status == "partial")
        PgGuard([&] {
            ereport(WARNING,
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

Datum PreviewSync(FunctionCallInfo fcinfo) {
    std::string name = RequiredText(fcinfo, 0, "sync name");
    int max_rows = PG_ARGISNULL(1) ? 10 : PG_GETARG_INT32(1);
    if (max_rows < 0)
        throw Error(sqlstate::kInvalidParameterValue, "max_rows must not be negative");

    SpiConnect();
    SyncDefinition def = RequireSync(name);
    RequireOwnership(def, "preview");
    std::string sql = BuildPlanQuery(def.Plan(kSchema)) + " LIMIT " + std::to_string(max_rows);
    SqlResult rows;
    int nest = 0;
    PgGuard([&] {
        nest = NewGUCNestLevel();
        if (!def.search_path.empty())
            (void)set_config_option("search_path", def.search_path.c_str(), PGC_USERSET, PGC_S_SESSION,
                                    GUC_ACTION_SAVE, true, 0, false);
    });
    AsRole(def.owner, true, [&] { rows = Sql(sql, {}, true); });
    PgGuard([&] { AtEOXact_GUC(true, nest); });
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
        for (const auto &o : options)
            if (o.first == "url") {
                std::string host = UrlHost(o.second);
                if (!HostAllowed(host, g_allowed_hosts ? g_allowed_hosts : ""))
                    throw Error(sqlstate::kInsufficientPrivilege,
                                "destination host \"" + host + "\" is not in revetl.allowed_hosts", {},
                                "A superuser can add it to revetl.allowed_hosts in postgresql.conf and reload.");
            }
    }
    PG_RETURN_VOID();
}

Datum WakeLauncherFn(FunctionCallInfo) {
    WakeLauncherAtCommit();
    PG_RETURN_VOID();
}

} // namespace
} // namespace revetl::pg

using namespace revetl::pg;

REVETL_SQL_FUNCTION(revetl_create_sync) { return CreateSync(fcinfo); }
REVETL_SQL_FUNCTION(revetl_drop_sync) { return DropSync(fcinfo); }
REVETL_SQL_FUNCTION(revetl_run_sync) { return RunSync(fcinfo); }
REVETL_SQL_FUNCTION(revetl_preview_sync) { return PreviewSync(fcinfo); }
REVETL_SQL_FUNCTION(revetl_fdw_validator) { return FdwValidator(fcinfo); }
REVETL_SQL_FUNCTION(revetl_wake_launcher) { return WakeLauncherFn(fcinfo); }
