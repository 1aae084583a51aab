#include "pg/sync_commands.hpp"

#include "core/planning/plan_query.hpp"
#include "core/language/schedule.hpp"
#include "core/common/sql_text.hpp"
#include "pg/catalog.hpp"
#include "pg/module.hpp"
#include "pg/planning.hpp"
#include "pg/field_refresh.hpp"
#include "pg/run_requests.hpp"
#include "pg/shared_state.hpp"
#include "pg/spi.hpp"

#include <algorithm>
#include <ctime>
#include <cctype>

namespace revetl::pg {

// True while revetl runs DDL of its own (the shadow table of a new sync).
static bool g_own_ddl = false;

namespace {

bool LooksLikeQuery(const std::string &model) {
    size_t i = 0;
    // Leading whitespace and SQL comments do not decide what the model is.
    for (;;) {
        i = model.find_first_not_of(" \t\r\n", i);
        if (i == std::string::npos)
            return false;
        if (model.compare(i, 2, "--") == 0) {
            i = model.find('\n', i);
            if (i == std::string::npos)
                return false;
            continue;
        }
        if (model.compare(i, 2, "/*") == 0) {
            i = model.find("*/", i + 2);
            if (i == std::string::npos)
                return false;
            i += 2;
            continue;
        }
        break;
    }
    if (model[i] == '(')
        return true;
    size_t j = i;
    while (j < model.size() && std::isalpha(static_cast<unsigned char>(model[j])))
        j++;
    // "select_leads" is a relation name, not a query.
    if (j < model.size() &&
        (std::isalnum(static_cast<unsigned char>(model[j])) || model[j] == '_' || model[j] == '$'))
        return false;
    std::string word = model.substr(i, j - i);
    std::transform(word.begin(), word.end(), word.begin(), [](unsigned char c) { return std::tolower(c); });
    return word == "select" || word == "with" || word == "values" || word == "table";
}

// A query model must be exactly one read-only SELECT.
// A syntax error in user text that revetl parsed on its own: point the
// caret into that text (psql shows it as QUERY) instead of into the
// statement that called revetl, and say which part of the definition it is.
[[noreturn]] void RethrowAsInternal(PgError error, const std::string &text, int offset,
                                    const std::string &where) {
    if (error.cursorpos > 0) {
        error.internalpos = std::max(1, error.cursorpos - offset);
        error.internalquery = text;
        error.cursorpos = 0;
    }
    error.context = where;
    throw error;
}

// Returns the statement's own text: without a trailing semicolon (or what
// follows it), which would break the query once revetl wraps it.
std::string CheckModelQuery(const std::string &query) {
    const char *problem = nullptr;
    std::string statement = query;
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
        RawStmt *rawstmt = linitial_node(RawStmt, raw);
        Node *stmt = rawstmt->stmt;
        if (rawstmt->stmt_location >= 0)
            statement = query.substr(static_cast<size_t>(rawstmt->stmt_location),
                                     rawstmt->stmt_len > 0 ? static_cast<size_t>(rawstmt->stmt_len)
                                                           : std::string::npos);
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
    return statement;
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
        out.ref.kind = ModelRef::Kind::Query;
        out.ref.query = CheckModelQuery(model);
        return out;
    }
    Oid relid = InvalidOid;
    char relkind = 0;
    char *nspname = nullptr;
    char *relname = nullptr;
    try {
        PgGuard([&] { (void)compat::StringToQualifiedNameList(model.c_str()); });
    } catch (const PgError &) {
        // Neither a name nor a SELECT: say so, not "invalid name syntax".
        std::string first = model.substr(0, model.find_first_of(" \t\r\n("));
        std::transform(first.begin(), first.end(), first.begin(),
                       [](unsigned char c) { return std::tolower(c); });
        const bool writes = first == "insert" || first == "update" || first == "delete" || first == "merge";
        throw Error(
            sqlstate::kInvalidParameterValue, "model \"" + model + "\" is neither a relation nor a query",
            writes ? "A model is read, never written: INSERT, UPDATE, DELETE and MERGE cannot be models."
                   : "",
            "A model is a table, a view, or one read-only SELECT.");
    }
    PgGuard([&] {
        List *names = compat::StringToQualifiedNameList(model.c_str());
        RangeVar *rv = makeRangeVarFromNameList(names);
        relid = RangeVarGetRelid(rv, AccessShareLock, true);
        if (OidIsValid(relid)) {
            relkind = get_rel_relkind(relid);
            nspname = get_namespace_name(get_rel_namespace(relid));
            relname = get_rel_name(relid);
        }
    });
    if (!OidIsValid(relid)) {
        std::vector<std::string> names;
        SqlResult r =
            Sql("SELECT c.relname FROM pg_catalog.pg_class c WHERE c.relkind IN ('r', 'v', 'm', 'p', 'f') "
                "AND pg_catalog.pg_table_is_visible(c.oid) ORDER BY 1 LIMIT 5000",
                {}, true);
        for (size_t i = 0; i < r.rows.size(); i++)
            names.push_back(r.Text(i, 0));
        std::string bare = model.substr(model.rfind('.') == std::string::npos ? 0 : model.rfind('.') + 1);
        std::string close = ClosestMatch(bare, names);
        throw Error("42P01", "relation \"" + model + "\" does not exist", {},
                    !close.empty() ? "Perhaps you meant the relation \"" + close + "\"."
                                   : "A model is a table, a view or a query such as 'SELECT ... FROM ...'.");
    }
    if (relkind != RELKIND_RELATION && relkind != RELKIND_VIEW && relkind != RELKIND_MATVIEW &&
        relkind != RELKIND_PARTITIONED_TABLE && relkind != RELKIND_FOREIGN_TABLE)
        throw Error(
            "42809", "\"" + model + "\" cannot be a model",
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
                throw Error(sqlstate::kInvalidParameterValue,
                            "key column \"" + keys[i] + "\" is listed twice");
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

// A key that is not unique in the model cannot identify destination
// records. Tables with a unique index on exactly the key columns are known to
// be fine; anything else is checked once, here, with one aggregate query.
// A duplicate is a WARNING, not an error: the model's data can change either
// way after the check, runs report each duplicate key as invalid rows, and a
// deploy must not be blocked by data (an identical CREATE OR REPLACE SYNC
// on every dbt run). The check runs only when the key or the model changes.
void CheckKeyUnique(const SyncDefinition &def, Oid relid) {
    if (OidIsValid(relid)) {
        SqlResult r = Sql(
            "SELECT 1 FROM pg_catalog.pg_index i WHERE i.indrelid = $1::oid AND i.indisunique "
            "AND i.indpred IS NULL AND i.indexprs IS NULL AND "
            "(SELECT pg_catalog.array_agg(a.attname::text ORDER BY a.attname) FROM pg_catalog.pg_attribute a "
            " WHERE a.attrelid = i.indrelid AND a.attnum = ANY (i.indkey)) = "
            "(SELECT pg_catalog.array_agg(x ORDER BY x) FROM pg_catalog.jsonb_array_elements_text($2::jsonb) "
            "x) LIMIT 1",
            {SqlArg::Int8(relid), SqlArg::Text(KeyColumnsJson(def.key_columns))}, true);
        if (!r.rows.empty())
            return;
    }
    std::string key_list, key_object, not_null, key_names;
    for (size_t i = 0; i < def.key_columns.size(); i++) {
        const std::string col = "src." + QuoteIdent(def.key_columns[i]);
        key_names += (i ? ", " : "") + QuoteIdent(def.key_columns[i]);
        key_list += (i ? ", " : "") + col;
        key_object += (i ? ", " : "") + QuoteLiteral(def.key_columns[i]) + ", " + col;
        not_null += (i ? " AND " : "") + col + " IS NOT NULL";
    }
    // Rows with a NULL key are reported as invalid at run time, one by one;
    // they do not make the key "not unique".
    SqlResult dup = Sql("SELECT pg_catalog.jsonb_build_object(" + key_object + ")::text, count(*) FROM " +
                            ModelSource(def.model) + " AS src WHERE " + not_null + " GROUP BY " + key_list +
                            " HAVING count(*) > 1 LIMIT 1",
                        {}, true);
    if (!dup.rows.empty()) {
        const std::string message = "key (" + key_names + ") of sync \"" + def.name +
                                    "\" is not unique in model " + def.ModelDisplayName();
        const std::string detail = dup.Text(0, 1) + " rows have the key " + dup.Text(0, 0) +
                                   ". Runs send none of the rows of a duplicate key: they are recorded as "
                                   "invalid in revetl.rejected_rows.";
        PgGuard([&] {
            ereport(WARNING, (errcode(ERRCODE_UNIQUE_VIOLATION), errmsg("%s", message.c_str()),
                              errdetail("%s", detail.c_str()),
                              errhint("Choose key columns that identify one row of the model.")));
        });
    }
}

bool SameModelAndKey(const SyncDefinition &a, const SyncDefinition &b) {
    return a.key_columns == b.key_columns && a.model.kind == b.model.kind &&
           a.model.schema == b.model.schema && a.model.name == b.model.name && a.model.query == b.model.query;
}

// Everything about a request that can be checked before touching the
// catalog, as the current user: destination, model, key, map, options,
// schedule. Returns the definition to store (name, owner and shadow table
// are filled in by the caller).
// track_changes = 'wal': what logical decoding needs of the server and of
// the table. The key must be in the WAL of every change: the new row has it,
// an old row (a delete, an update of the key) only its replica identity.
void CheckWalCapture(const SyncDefinition &def, Oid relid) {
    if (Sql("SELECT pg_catalog.current_setting('wal_level') <> 'logical'").Bool(0, 0))
        throw Error(sqlstate::kObjectNotInPrerequisiteState,
                    "track_changes = 'wal' needs wal_level = logical",
                    "The server runs with wal_level = " +
                        Sql("SELECT pg_catalog.current_setting('wal_level')").Text(0, 0) +
                        ": its WAL does not carry what logical decoding reads.",
                    "Set wal_level = logical (and restart the server), or use track_changes = true "
                    "(capture triggers).");
    char relkind = 0;
    bool partition = false;
    PgGuard([&] {
        relkind = get_rel_relkind(relid);
        partition = get_rel_relispartition(relid);
    });
    bool inherits = Sql("SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_inherits i JOIN pg_catalog.pg_class c "
                        "ON c.oid = i.inhrelid WHERE (i.inhrelid = $1::oid OR i.inhparent = $1::oid) "
                        "AND NOT c.relispartition)",
                        {SqlArg::Int8(relid)})
                        .Bool(0, 0);
    if (partition || inherits)
        throw Error(sqlstate::kFeatureNotSupported,
                    "changes to " + def.ModelDisplayName() + " cannot be captured",
                    partition ? "The table is a partition: its changes are decoded as changes to the "
                                "partitioned table at the root."
                              : "The table has inheritance parents or children: writes through the other "
                                "tables would be missed.",
                    partition ? "Name the root partitioned table as the model."
                              : "Schedule the sync with EVERY or CRON: full diffs see every row.");
    if (relkind != RELKIND_RELATION && relkind != RELKIND_PARTITIONED_TABLE)
        throw Error(sqlstate::kInvalidParameterValue,
                    "changes to " + def.ModelDisplayName() + " cannot be captured",
                    "Capturing changes (SCHEDULE ON CHANGE or track_changes) needs a table model.",
                    "Schedule a view with EVERY or CRON instead.");
    // REPLICA IDENTITY FULL logs every old column; DEFAULT the primary
    // key's, USING INDEX that index's.
    bool covered =
        Sql("SELECT c.relreplident = 'f' OR EXISTS (SELECT 1 FROM pg_catalog.pg_index x "
            "WHERE x.indrelid = c.oid AND ((c.relreplident = 'd' AND x.indisprimary) OR "
            "(c.relreplident = 'i' AND x.indisreplident)) AND (SELECT pg_catalog.array_agg(a.attnum) "
            "FROM pg_catalog.pg_attribute a WHERE a.attrelid = c.oid AND a.attname IN "
            "(SELECT pg_catalog.jsonb_array_elements_text($2::jsonb))) "
            "OPERATOR(pg_catalog.<@) x.indkey::int2[]) "
            "FROM pg_catalog.pg_class c WHERE c.oid = $1::oid",
            {SqlArg::Int8(relid), SqlArg::Text(KeyColumnsJson(def.key_columns))})
            .Bool(0, 0);
    if (!covered)
        throw Error(
            sqlstate::kObjectNotInPrerequisiteState,
            "the key of sync \"" + def.name + "\" is not in the replica identity of " +
                def.ModelDisplayName(),
            "A deleted row's key is read from the WAL, which holds only the replica identity's columns "
            "of an old row.",
            "Make the key the primary key, or ALTER TABLE ... REPLICA IDENTITY USING INDEX (a unique "
            "index on the key columns) or REPLICA IDENTITY FULL.");
}

SyncDefinition ResolveAsOwner(const SyncRequest &req, Oid role, const SyncDefinition *existing) {
    if (req.name.empty() || req.name.size() >= NAMEDATALEN)
        throw Error(sqlstate::kInvalidParameterValue, "invalid sync name \"" + req.name + "\"",
                    "A sync name must be 1 to 63 bytes long.");
    if (req.mode != "upsert" && req.mode != "mirror" && req.mode != "insert" && req.mode != "update" &&
        req.mode != "audience") {
        std::string hint;
        std::string close = ClosestMatch(req.mode, {"upsert", "update", "insert", "mirror", "audience"});
        if (!close.empty() && close != req.mode)
            hint = "Perhaps you meant \"" + close + "\".";
        throw Error(sqlstate::kInvalidParameterValue, "invalid sync mode \"" + req.mode + "\"",
                    "Valid modes are upsert (send added and changed rows), insert (added rows only), update "
                    "(changes to records the destination has), mirror (upsert, and delete removed rows) and "
                    "audience (the rows are the members of a list, tag or audience).",
                    hint);
    }
    if (req.mode == "audience" && !req.audience)
        throw Error(sqlstate::kInvalidParameterValue,
                    "sync \"" + req.name + "\" has mode audience but no audience",
                    "MODE AUDIENCE names the list, tag or audience the rows are members of.",
                    "Write MODE AUDIENCE 'list-id' (function form: audience => 'list-id').");
    if (req.mode != "audience" && req.audience)
        throw Error(sqlstate::kInvalidParameterValue,
                    "sync \"" + req.name + "\" names an audience but its mode is " + req.mode,
                    "Only MODE AUDIENCE writes list, tag or audience membership.",
                    "Use mode => 'audience', or leave audience out.");
    if (req.audience && (req.audience->empty() || req.audience->size() > 255))
        throw Error(sqlstate::kInvalidParameterValue, "invalid audience",
                    "An audience is 1 to 255 bytes long: the destination's list id, tag or audience id.");
    SyncOptions options = ParseSyncOptions(req.options_json);
    for (const auto &entry : req.map)
        CheckMapExpression(entry);
    if (req.object && (req.object->empty() || req.object->size() > 255))
        throw Error(sqlstate::kInvalidParameterValue, "invalid destination object name",
                    "Object names are 1 to 255 bytes long.");
    if (req.match_on && (req.match_on->empty() || req.match_on->size() > 255))
        throw Error(sqlstate::kInvalidParameterValue, "invalid MATCH ON field name",
                    "Field names are 1 to 255 bytes long.");

    Destination dest = LookupDestination(req.destination);
    CheckServerUsage(dest, role);
    // What the destination's type cannot serve (a mode, an object, a missing
    // MATCH ON) is refused now rather than at the first run.
    SyncTarget target;
    target.mode = req.mode;
    target.object = req.object.value_or("");
    target.match_on = req.match_on.value_or("");
    target.audience = req.audience.value_or("");
    for (const auto &m : req.map)
        target.map_fields.push_back(m.field);
    CheckSyncTarget(dest.server_options, target, req.name, dest.server_name);
    // Said once, when the sync starts matching that way, not on every
    // identical CREATE OR REPLACE of a deploy.
    if (!existing || existing->destination != dest.server_name || existing->match_on != req.match_on ||
        existing->mode != req.mode)
        if (auto notice = MatchValueChangeNotice(dest.server_options, target, req.name, dest.server_name))
            PgGuard([&] {
                ereport(NOTICE,
                        (errmsg("%s", notice->message.c_str()), errdetail("%s", notice->detail.c_str()),
                         errhint("%s", notice->hint.c_str())));
            });
    if (options.alert_to) {
        Destination alerts = LookupDestination(*options.alert_to);
        CheckServerUsage(alerts, role);
    }

    ResolvedModel resolved = ResolveModel(req.model);
    SyncDefinition def;
    def.name = req.name;
    def.owner = role;
    def.model = resolved.ref;
    def.destination = dest.server_name;
    def.object = req.object;
    def.match_on = req.match_on;
    def.key_columns = req.key;
    def.mode = req.mode;
    def.audience = req.audience;
    def.map = req.map;
    def.options_json = req.options_json;
    def.options = ParseSyncOptions(req.options_json);
    def.schedule = req.schedule;
    CheckKeyColumns(req.key, ModelColumns(resolved.ref), def.ModelDisplayName());
    if (def.mode == "audience") {
        // A member is named by its identifier fields: each must be in the
        // payload, or every row would be sent without one.
        std::vector<std::string> fields;
        for (const auto &m : def.map)
            fields.push_back(m.field);
        const std::vector<std::string> payload = fields.empty() ? ModelColumns(resolved.ref) : fields;
        for (const auto &id : AudienceIdentifierFields(ValidateServer(dest.server_options), target, fields))
            if (std::find(payload.begin(), payload.end(), id) == payload.end())
                throw Error(sqlstate::kInvalidParameterValue,
                            "sync \"" + req.name + "\" identifies audience members by field \"" + id +
                                "\", which its " +
                                (fields.empty() ? "model does not have" : "MAP does not name"),
                            "MODE AUDIENCE sends each member by its identifier fields.",
                            "Add an expression AS " + dsl::QuoteIdentIfNeeded(id) +
                                " to the MAP, or choose another field with MATCH ON.");
    }

    // Each map expression, then the whole payload, evaluated against the
    // model as the would-be owner: wrong types, unknown columns and missing
    // privileges all surface here rather than in the first run. An error in
    // one expression points into that expression.
    for (const auto &entry : def.map) {
        const std::string prefix = "SELECT (";
        try {
            Sql(prefix + entry.expression + "\n) FROM " + ModelSource(def.model) + " AS src LIMIT 0", {},
                true);
        } catch (const PgError &e) {
            char *state = nullptr;
            PgGuard([&] { state = unpack_sql_state(e.sqlerrcode); });
            int pos = e.internalpos > static_cast<int>(prefix.size())
                          ? e.internalpos - static_cast<int>(prefix.size())
                          : 1;
            // PostgreSQL's hints name revetl's alias for the model ("src.x").
            std::string hint = e.hint;
            for (size_t at = hint.find("\"src."); at != std::string::npos; at = hint.find("\"src.", at))
                hint.erase(at + 1, 4);
            throw Error(state, e.message, e.detail,
                        hint.empty() ? "In the map expression for field \"" + entry.field + "\"." : hint)
                .At(std::min<int>(pos, static_cast<int>(entry.expression.size())), entry.expression);
        }
        // An entry is computed from one row: an aggregate, a window function
        // or a set-returning function would otherwise fail only in the
        // combined query, with revetl's generated SQL in the message. A
        // WHERE clause admits none of them, and PostgreSQL says which.
        const std::string where = "SELECT 1 FROM " + ModelSource(def.model) + " AS src WHERE (";
        try {
            Sql(where + entry.expression + "\n) IS NULL LIMIT 0", {}, true);
        } catch (const PgError &e) {
            char *state = nullptr;
            PgGuard([&] { state = unpack_sql_state(e.sqlerrcode); });
            const std::string code = state;
            const char *what = code == "42803"   ? "an aggregate function"
                               : code == "42P20" ? "a window function"
                               : code == "0A000" ? "a set-returning function"
                                                 : nullptr;
            if (!what)
                throw;
            int pos = e.internalpos > static_cast<int>(where.size())
                          ? e.internalpos - static_cast<int>(where.size())
                          : 1;
            throw Error(code, "the map expression for field \"" + entry.field + "\" uses " + what,
                        "A map expression is computed from one row of the model at a time.",
                        "Compute it in the model (a view or a query with GROUP BY or a window) and map its "
                        "column.")
                .At(std::min<int>(pos, static_cast<int>(entry.expression.size())), entry.expression);
        }
    }
    Sql(BuildValidationQuery(def.Plan(kSchema)), {}, true);
    if (!existing || !SameModelAndKey(*existing, def))
        CheckKeyUnique(def, resolved.relid);

    switch (req.schedule.kind) {
    case dsl::Schedule::Kind::Every: {
        bool positive = false;
        try {
            SqlResult r = Sql("SELECT $1::interval > interval '0'", {SqlArg::Text(req.schedule.value)}, true);
            positive = r.Bool(0, 0);
        } catch (const PgError &e) {
            throw Error(sqlstate::kInvalidParameterValue,
                        "invalid schedule interval \"" + req.schedule.value + "\"", e.message + ".",
                        "Write an interval such as '15 minutes' or '1 hour'.");
        }
        if (!positive)
            throw Error(sqlstate::kInvalidParameterValue,
                        "invalid schedule interval \"" + req.schedule.value + "\"",
                        "The interval must be positive.");
        // Every run is a process, a plan and a commit: a role must not be
        // able to start hundreds a second.
        double seconds = std::stod(Sql("SELECT pg_catalog.date_part('epoch', $1::interval)",
                                       {SqlArg::Text(req.schedule.value)}, true)
                                       .Text(0, 0));
        if (seconds < g_min_schedule_interval_s)
            throw Error(sqlstate::kInvalidParameterValue,
                        "schedule interval \"" + req.schedule.value + "\" of sync \"" + req.name +
                            "\" is shorter than revetl.min_schedule_interval (" +
                            std::to_string(g_min_schedule_interval_s) + "s)",
                        {},
                        "Schedule the sync EVERY '" + std::to_string(g_min_schedule_interval_s) +
                            " seconds' or longer, or ON CHANGE to send every change as it commits.");
        break;
    }
    case dsl::Schedule::Kind::Cron:
        if (ParseCron(req.schedule.value).NextAfter(std::time(nullptr)) < 0)
            throw Error(sqlstate::kInvalidParameterValue,
                        "cron expression \"" + req.schedule.value + "\" never matches",
                        "No minute in the next five years fits every field, for example 30 February.");
        break;
    case dsl::Schedule::Kind::After:
        if (req.schedule.value == req.name)
            throw Error(sqlstate::kInvalidParameterValue,
                        "sync \"" + req.name + "\" cannot run after itself");
        if (auto upstream = LoadSyncByName(req.schedule.value)) {
            // Following a sync ties this one to its owner's runs: only a
            // member of that owner's role may (another role could otherwise
            // block the owner's DROP SYNC or learn when its syncs run).
            bool member = false;
            PgGuard([&] { member = has_privs_of_role(role, upstream->owner); });
            if (!member)
                throw Error(
                    sqlstate::kInsufficientPrivilege,
                    "permission denied to schedule sync \"" + req.name + "\" after sync \"" + upstream->name +
                        "\"",
                    "Only members of role " + upstream->owner_name + " may schedule syncs after its syncs.",
                    "Schedule the sync with EVERY, CRON or ON CHANGE instead, or ask the owner of \"" +
                        upstream->name + "\" to grant you membership in role " + upstream->owner_name + ".");
        } else {
            throw Error(sqlstate::kUndefinedObject, "sync \"" + req.schedule.value + "\" does not exist",
                        "SCHEDULE AFTER names the sync whose successful runs start this one.");
        }
        // A chain that leads back to this sync would run for ever.
        {
            std::string next = req.schedule.value;
            for (int depth = 0; depth < 1000; depth++) {
                auto other = LoadSyncByName(next);
                if (!other || other->schedule.kind != dsl::Schedule::Kind::After)
                    break;
                if (other->schedule.value == req.name)
                    throw Error(sqlstate::kInvalidParameterValue,
                                "SCHEDULE AFTER " + req.schedule.value + " would make a cycle",
                                "Sync \"" + next + "\" already runs after \"" + req.name + "\".");
                next = other->schedule.value;
            }
        }
        break;
    case dsl::Schedule::Kind::OnChange:
        if (resolved.ref.kind != ModelRef::Kind::Relation)
            throw Error(
                sqlstate::kInvalidParameterValue, "SCHEDULE ON CHANGE needs a table model",
                "Changes are captured on tables; a query or view model can be scheduled with EVERY or "
                "CRON instead.");
        break;
    case dsl::Schedule::Kind::Manual:
        break;
    }
    if (req.schedule.kind == dsl::Schedule::Kind::OnChange && options.track_changes &&
        !*options.track_changes)
        throw Error(
            sqlstate::kInvalidParameterValue, "SCHEDULE ON CHANGE needs track_changes",
            "An ON CHANGE sync runs when its captured changes commit; with track_changes = false it would "
            "never run.");
    if (options.track_changes.value_or(false) && resolved.ref.kind != ModelRef::Kind::Relation)
        throw Error(sqlstate::kInvalidParameterValue, "changes to a query model cannot be captured",
                    "track_changes needs a table model.",
                    "Schedule a query model with EVERY or CRON instead.");
    if (def.TrackedByWal())
        CheckWalCapture(def, resolved.relid);
    else if (def.Tracked()) {
        char relkind = 0;
        PgGuard([&] { relkind = get_rel_relkind(resolved.relid); });
        bool partition_or_parent = Sql("SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_inherits WHERE inhrelid = "
                                       "$1::oid OR inhparent = $1::oid)",
                                       {SqlArg::Int8(resolved.relid)})
                                       .Bool(0, 0);
        if (partition_or_parent && relkind == RELKIND_RELATION)
            throw Error(
                sqlstate::kFeatureNotSupported,
                "changes to " + def.ModelDisplayName() + " cannot be captured",
                "The table is a partition or has inheritance children: writes through the other tables "
                "would not fire its triggers, so changes could be missed.",
                "Schedule the sync with EVERY or CRON: full diffs see every row.");
        if (relkind == RELKIND_PARTITIONED_TABLE)
            throw Error(
                sqlstate::kFeatureNotSupported,
                "changes to partitioned table " + def.ModelDisplayName() + " cannot be captured",
                "Writes made directly to a partition do not fire the partitioned table's triggers, so "
                "changes could be missed.",
                "Schedule the sync with EVERY or CRON: full diffs see every partition.");
        if (relkind != RELKIND_RELATION)
            throw Error(sqlstate::kInvalidParameterValue,
                        "changes to " + def.ModelDisplayName() + " cannot be captured",
                        "Capturing changes (SCHEDULE ON CHANGE or track_changes) needs a table model.",
                        "Schedule a view with EVERY or CRON instead.");
    }
    return def;
}

// Resolves and checks a definition as its (would-be) owner would run it:
// every piece of owner code it evaluates (the model, MAP expressions, the
// key check) runs as `role`, with the sync's `search_path`, in a
// security-restricted operation whose settings are rolled back afterwards,
// also when a superuser alters someone else's sync.
SyncDefinition Resolve(const SyncRequest &req, Oid role, const std::string &search_path,
                       const SyncDefinition *existing) {
    SyncDefinition def;
    AsSyncOwner(role, search_path, [&] { def = ResolveAsOwner(req, role, existing); });
    // MAP and MATCH ON targets against the destination's cached fields (read
    // as the extension's owner, for the owner's user mapping).
    CheckTargetsAgainstCache(def, role);
    return def;
}

// The search_path a sync's owner code runs with: the stored one, or for a
// new sync (or one stored without) the caller's.
std::string SyncSearchPath(const SyncDefinition *existing);

std::vector<SqlArg> DefinitionArgs(const SyncDefinition &def, const std::string &search_path) {
    bool relation = def.model.kind == ModelRef::Kind::Relation;
    return {SqlArg::Text(def.name),
            SqlArg::Text(relation ? "relation" : "query"),
            relation ? SqlArg::Text(def.model.schema) : SqlArg::Null(TEXTOID),
            relation ? SqlArg::Text(def.model.name) : SqlArg::Null(TEXTOID),
            relation ? SqlArg::Null(TEXTOID) : SqlArg::Text(def.model.query),
            SqlArg::Text(def.destination),
            SqlArg::Text(KeyColumnsJson(def.key_columns)),
            SqlArg::Text(def.mode),
            def.map.empty() ? SqlArg::Null(TEXTOID) : SqlArg::Text(MapToJson(def.map)),
            SqlArg::Text(def.options_json),
            SqlArg::OptText(def.object),
            SqlArg::OptText(def.match_on),
            SqlArg::Text(dsl::ScheduleKindName(def.schedule.kind)),
            def.schedule.value.empty() ? SqlArg::Null(TEXTOID) : SqlArg::Text(def.schedule.value),
            SqlArg::Text(search_path),
            SqlArg::OptText(def.audience)};
}

// $1..$16 in the order of DefinitionArgs.
constexpr const char *kDefinitionColumns =
    "name, model_kind, model_schema, model_name, model_query, destination, key_columns, mode, map, options, "
    "object, match_on, schedule_kind, schedule_value, search_path, audience";
constexpr const char *kDefinitionValues =
    "$1, $2, $3, $4, $5, $6, "
    "ARRAY(SELECT e FROM pg_catalog.jsonb_array_elements_text($7::jsonb) WITH ORDINALITY AS t(e, o) ORDER BY "
    "o), "
    "$8, $9::jsonb, $10::jsonb, $11, $12, $13, $14, $15, $16";

std::string CurrentSearchPath() {
    std::string out;
    PgGuard([&] { out = GetConfigOption("search_path", false, false); });
    return out;
}

std::string SyncSearchPath(const SyncDefinition *existing) {
    return existing && !existing->search_path.empty() ? existing->search_path : CurrentSearchPath();
}

void GrantShadow(const std::string &shadow, const std::string &role_name, bool grant) {
    // GRANT takes no lock on the table, and a run may be re-typing the
    // shadow table's keys (ALTER TABLE, EnsureShadowKeys) at this moment:
    // both update its pg_class row, and the second would fail with "tuple
    // concurrently updated". Any lock waits for that ALTER to commit, and
    // keeps the next one waiting until this transaction does.
    Sql("LOCK TABLE " + QualifiedName(kSchema, shadow) + " IN ACCESS SHARE MODE");
    Sql(std::string(grant ? "GRANT" : "REVOKE") + " SELECT ON " + QualifiedName(kSchema, shadow) +
        (grant ? " TO " : " FROM ") + QuoteIdent(role_name));
}

// Writes `def` over the stored sync `old`. The shadow state is kept unless
// what identifies a destination record changed.
void ReplaceDefinition(const SyncDefinition &old, SyncDefinition def) {
    std::vector<std::string> reasons;
    if (old.key_columns != def.key_columns)
        reasons.push_back("its key changed");
    if (old.destination != def.destination)
        reasons.push_back("its destination changed");
    if (old.object != def.object)
        reasons.push_back("its destination object changed");
    if (old.match_on != def.match_on)
        reasons.push_back("its MATCH ON field changed");
    // The shadow state of an audience sync holds members, not records: it
    // means nothing for another audience or another mode.
    if ((old.mode == "audience") != (def.mode == "audience"))
        reasons.push_back(def.mode == "audience" ? "its mode changed to AUDIENCE"
                                                 : "its mode changed from AUDIENCE");
    else if (old.audience != def.audience)
        reasons.push_back("its audience changed");

    std::vector<SqlArg> args = DefinitionArgs(def, SyncSearchPath(&old));
    args.push_back(SqlArg::Int8(old.id));
    // IS DISTINCT FROM on the whole row: an identical definition changes
    // nothing, not even updated_at.
    std::string sql = "UPDATE revetl.syncs s SET (" + std::string(kDefinitionColumns) + ") = (" +
                      kDefinitionValues + "), updated_at = pg_catalog.now() WHERE id = $17 AND (" +
                      kDefinitionColumns + ") IS DISTINCT FROM (" + kDefinitionValues + ")";
    bool schedule_changed =
        old.schedule.kind != def.schedule.kind || old.schedule.value != def.schedule.value;
    AsExtensionOwner([&] {
        // The new definition was just checked against the database.
        Sql("UPDATE revetl.sync_state SET model_problem = NULL WHERE sync_id = $1 AND model_problem IS NOT "
            "NULL",
            {SqlArg::Int8(old.id)});
        if (schedule_changed)
            Sql("UPDATE revetl.sync_state SET next_run_at = NULL WHERE sync_id = $1", {SqlArg::Int8(old.id)});
        SqlResult r = Sql(sql, args);
        if (r.processed > 0) {
            // Anything about the payload or key may have changed: the next
            // run of a tracked sync diffs everything once.
            Sql("UPDATE revetl.sync_state SET incremental_ready = false WHERE sync_id = $1",
                {SqlArg::Int8(old.id)});
            SyncDefinition stored = def;
            stored.id = old.id;
            EnsureCapture(stored, true);
            // An ON CHANGE sync sends its new definition without waiting for
            // the next write: a NULL key means "diff everything".
            if (stored.Tracked() && stored.schedule.kind == dsl::Schedule::Kind::OnChange)
                Sql("INSERT INTO revetl.captured_changes (sync_id, key) SELECT $1, NULL WHERE NOT EXISTS "
                    "(SELECT 1 FROM revetl.captured_changes WHERE sync_id = $1 AND key IS NULL AND NOT "
                    "retry)",
                    {SqlArg::Int8(old.id)});
        }
        if (r.processed > 0 && !reasons.empty()) {
            Sql("TRUNCATE " + QualifiedName(kSchema, old.shadow_table));
            std::string why;
            for (size_t i = 0; i < reasons.size(); i++)
                why += (i ? (i + 1 == reasons.size() ? " and " : ", ") : "") + reasons[i];
            std::string name = def.name;
            PgGuard([&] {
                ereport(NOTICE,
                        (errmsg("sync \"%s\" starts afresh: %s", name.c_str(), why.c_str()),
                         errdetail("Its shadow state was cleared, so the next run sends every row of the "
                                   "model again.")));
            });
        }
    });
}

} // namespace

// revetl.max_syncs_per_role: each sync is a shadow table, perhaps a capture
// function and triggers, and runs; one role must not fill the database.
void CheckSyncQuota(Oid role) {
    bool exempt = false;
    PgGuard([&] { exempt = superuser_arg(role); });
    if (exempt)
        return;
    // Not read-only: a DROP SYNC earlier in the same revetl.execute counts.
    int64_t owned = Sql("SELECT pg_catalog.count(*) FROM revetl.syncs WHERE owner::pg_catalog.oid "
                        "OPERATOR(pg_catalog.=) $1::pg_catalog.oid",
                        {SqlArg::Int8(role)})
                        .Int8(0, 0);
    if (owned >= g_max_syncs_per_role)
        throw Error("53400",
                    "role \"" + RoleName(role) + "\" already owns " + std::to_string(owned) + " syncs",
                    "revetl.max_syncs_per_role is " + std::to_string(g_max_syncs_per_role) + ".",
                    "Drop syncs that are no longer needed, or ask a superuser to raise "
                    "revetl.max_syncs_per_role.");
}

void RequireOwnership(const SyncDefinition &def, const char *action) {
    bool ok = false;
    PgGuard([&] { ok = has_privs_of_role(GetUserId(), def.owner); });
    if (!ok)
        throw Error(sqlstate::kInsufficientPrivilege, "must be owner of sync \"" + def.name + "\"",
                    std::string("Only members of role ") + def.owner_name + " may " + action + " this sync.");
}

SyncRequest RequestFromStatement(const dsl::CreateSync &c) {
    SyncRequest r;
    r.name = c.name;
    r.model = c.ModelText();
    r.destination = c.server;
    r.key = c.key;
    r.mode = c.mode;
    r.audience = c.audience;
    for (const auto &m : c.map)
        r.map.push_back({m.field, m.expression});
    r.options_json = OptionsToJson(c.options);
    r.object = c.object;
    r.match_on = c.match_on;
    if (c.schedule)
        r.schedule = *c.schedule;
    return r;
}

SyncRequest RequestFromDefinition(const SyncDefinition &def) {
    return RequestFromStatement(def.ToStatement());
}

int64_t CreateSync(const SyncRequest &request, bool replace) {
    auto existing = LoadSyncByName(request.name);
    if (existing && !replace)
        throw Error(sqlstate::kDuplicateObject, "sync \"" + request.name + "\" already exists", {},
                    "Use CREATE OR REPLACE SYNC to change it, or drop it first.");
    if (existing) {
        RequireOwnership(*existing, "replace");
        SyncDefinition def = Resolve(request, existing->owner, SyncSearchPath(&*existing), &*existing);
        ReplaceDefinition(*existing, def);
        WakeWorkerAtCommit();
        return existing->id;
    }

    Oid caller = GetUserId();
    CheckSyncQuota(caller);
    SyncDefinition def = Resolve(request, caller, SyncSearchPath(nullptr), nullptr);
    std::string owner_name = RoleName(caller);
    int64_t id = 0;
    std::string search_path = CurrentSearchPath();
    // The shadow table's CREATE TABLE fires revetl's own DDL watch: it has
    // nothing to do for DDL revetl runs itself.
    g_own_ddl = true;
    try {
        AsExtensionOwner([&] {
            id = Sql("SELECT pg_catalog.nextval(pg_catalog.pg_get_serial_sequence('revetl.syncs', 'id'))")
                     .Int8(0, 0);
            std::string shadow = "shadow_" + std::to_string(id);
            std::vector<SqlArg> args = DefinitionArgs(def, search_path);
            args.push_back(SqlArg::Int8(id));
            args.push_back(SqlArg::Int8(caller));
            args.push_back(SqlArg::Text(shadow));
            // The sync is made in this installation (revetl.instance).
            Sql("INSERT INTO revetl.syncs (" + std::string(kDefinitionColumns) +
                    ", id, owner, shadow_table, instance_token) VALUES (" + kDefinitionValues +
                    ", $17, $18::oid::regrole, $19, (SELECT i.token FROM revetl.instance i))",
                args);
            // A table of this name that no sync uses is left over from an
            // installation dropped without CASCADE: it holds nothing of value.
            if (Sql("SELECT pg_catalog.to_regclass($1) IS NOT NULL",
                    {SqlArg::Text(QualifiedName(kSchema, shadow))})
                    .Bool(0, 0))
                Sql("DROP TABLE " + QualifiedName(kSchema, shadow));
            Sql(BuildShadowTableDdl(kSchema, shadow));
            // The plan query runs as the owner and joins the shadow table: the
            // owner may read it, never write it.
            GrantShadow(shadow, owner_name, true);
            Sql("COMMENT ON TABLE " + QualifiedName(kSchema, shadow) + " IS " +
                QuoteLiteral("revetl shadow state of a sync: what its destination was last told"));
            SyncDefinition stored = def;
            stored.id = id;
            EnsureCapture(stored, true);
        });
    } catch (...) {
        g_own_ddl = false;
        throw;
    }
    g_own_ddl = false;
    // The scheduler learns of a new schedule at commit.
    WakeWorkerAtCommit();
    return id;
}

void AlterSync(const std::string &name, const SyncRequest &request) {
    SyncDefinition existing = RequireSync(name);
    RequireOwnership(existing, "alter");
    SyncDefinition def = Resolve(request, existing.owner, SyncSearchPath(&existing), &existing);
    ReplaceDefinition(existing, def);
    WakeWorkerAtCommit();
}

void DropSync(const std::string &name, bool if_exists) {
    auto def = LoadSyncByName(name);
    if (!def) {
        if (!if_exists)
            throw Error(sqlstate::kUndefinedObject, "sync \"" + name + "\" does not exist");
        PgGuard([&] { ereport(NOTICE, (errmsg("sync \"%s\" does not exist, skipping", name.c_str()))); });
        return;
    }
    RequireOwnership(*def, "drop");
    // A run in progress stops now rather than holding the sync's tables
    // (and this statement) until its plan or delivery ends.
    PgGuard([&] { (void)CancelSyncRun(MyDatabaseId, def->id, kCancelledByDrop); });
    AsExtensionOwner([&] {
        // Syncs scheduled AFTER this one never block its owner: they stay,
        // and run only when asked from now on.
        SqlResult followers =
            Sql("UPDATE revetl.syncs SET schedule_kind = 'manual', schedule_value = NULL, updated_at = "
                "pg_catalog.now() WHERE schedule_kind = 'after' AND schedule_value = $1 AND id <> $2 "
                "RETURNING name",
                {SqlArg::Text(def->name), SqlArg::Int8(def->id)});
        for (size_t i = 0; i < followers.rows.size(); i++) {
            std::string follower = followers.Text(i, 0);
            PgGuard([&] {
                ereport(
                    NOTICE,
                    (errmsg("sync \"%s\" no longer runs after sync \"%s\"", follower.c_str(), name.c_str()),
                     errdetail("Sync \"%s\" was dropped; \"%s\" now runs only when requested.", name.c_str(),
                               follower.c_str()),
                     errhint("Give it a new schedule with ALTER SYNC %s SET SCHEDULE.", follower.c_str())));
            });
        }
    });
    AsExtensionOwner([&] {
        DropCapture(def->id);
        Sql("DELETE FROM revetl.captured_changes WHERE sync_id = $1", {SqlArg::Int8(def->id)});
        Sql("DELETE FROM revetl.syncs WHERE id = $1", {SqlArg::Int8(def->id)});
        Sql("DROP TABLE IF EXISTS " + QualifiedName(kSchema, def->shadow_table));
        CancelQueuedRuns(def->id, 0, "the sync was dropped");
    });
}

void CancelQueuedRuns(int64_t sync_id, int64_t run_id, const std::string &why) {
    AsExtensionOwner([&] {
        Sql("WITH cancelled AS (UPDATE revetl.runs SET status = 'cancelled', finished_at = pg_catalog.now(), "
            "error = $3 WHERE sync_id = $1 AND ($2 = 0 OR id = $2) AND status = 'queued' RETURNING id, "
            "sync_name) "
            "SELECT pg_catalog.pg_notify('revetl_runs', pg_catalog.json_build_object('sync', sync_name, "
            "'run_id', id, 'status', 'cancelled')::text) FROM cancelled",
            {SqlArg::Int8(sync_id), SqlArg::Int8(run_id), SqlArg::Text(why)});
    });
}

void RenameSync(const std::string &name, const std::string &new_name) {
    SyncDefinition def = RequireSync(name);
    RequireOwnership(def, "rename");
    if (new_name.empty() || new_name.size() >= NAMEDATALEN)
        throw Error(sqlstate::kInvalidParameterValue, "invalid sync name \"" + new_name + "\"",
                    "A sync name must be 1 to 63 bytes long.");
    if (LoadSyncByName(new_name))
        throw Error(sqlstate::kDuplicateObject, "sync \"" + new_name + "\" already exists");
    AsExtensionOwner([&] {
        Sql("UPDATE revetl.syncs SET name = $2, updated_at = pg_catalog.now() WHERE id = $1",
            {SqlArg::Int8(def.id), SqlArg::Text(new_name)});
        // Syncs scheduled AFTER this one follow the rename.
        Sql("UPDATE revetl.syncs SET schedule_value = $2 WHERE schedule_kind = 'after' AND schedule_value = "
            "$1",
            {SqlArg::Text(name), SqlArg::Text(new_name)});
    });
}

void AlterSyncOwner(const std::string &name, const std::string &new_owner) {
    SyncDefinition def = RequireSync(name);
    RequireOwnership(def, "change the owner of");
    Oid role = InvalidOid;
    PgGuard([&] { role = get_role_oid(new_owner.c_str(), true); });
    if (!OidIsValid(role))
        throw Error(sqlstate::kUndefinedObject, "role \"" + new_owner + "\" does not exist");
    bool member = false;
    PgGuard([&] { member = has_privs_of_role(GetUserId(), role); });
    if (!member)
        throw Error(sqlstate::kInsufficientPrivilege, "must be able to SET ROLE \"" + new_owner + "\"",
                    "Only a member of the new owner role can give it a sync.");
    // The new owner must itself be allowed everything the sync does.
    if (role != def.owner)
        CheckSyncQuota(role);
    (void)Resolve(RequestFromDefinition(def), role, SyncSearchPath(&def), &def);
    std::string old_name = def.owner_name;
    AsExtensionOwner([&] {
        Sql("UPDATE revetl.syncs SET owner = $2::oid::regrole, updated_at = pg_catalog.now() WHERE id = $1",
            {SqlArg::Int8(def.id), SqlArg::Int8(role)});
        if (role != def.owner) {
            GrantShadow(def.shadow_table, new_owner, true);
            GrantShadow(def.shadow_table, old_name, false);
        }
    });
}

void SetSyncPaused(const std::string &name, bool paused) {
    SyncDefinition def = RequireSync(name);
    RequireOwnership(def, paused ? "pause" : "resume");
    if (paused)
        PgGuard([&] { (void)CancelSyncRun(MyDatabaseId, def.id, kCancelledByPause); });
    AsExtensionOwner([&] {
        Sql("UPDATE revetl.syncs SET paused = $2, updated_at = pg_catalog.now() WHERE id = $1 AND paused <> "
            "$2",
            {SqlArg::Int8(def.id), SqlArg::Bool(paused)});
    });
    WakeWorkerAtCommit();
}

namespace {

std::string RoleOidList(List *roles) {
    std::string out;
    ListCell *lc;
    foreach (lc, roles) {
        Oid oid = InvalidOid;
        RoleSpec *spec = lfirst_node(RoleSpec, lc);
        PgGuard([&] { oid = get_rolespec_oid(spec, false); });
        out += (out.empty() ? "" : ",") + std::to_string(oid);
    }
    return "{" + out + "}";
}

void AfterOwnedStatementCpp(Node *statement) {
    bool installed = false;
    PgGuard([&] { installed = OidIsValid(get_extension_oid("revetl", true)); });
    if (!installed)
        return;
    SpiConnect();
    if (IsA(statement, ReassignOwnedStmt)) {
        ReassignOwnedStmt *stmt = castNode(ReassignOwnedStmt, statement);
        std::string old_roles = RoleOidList(stmt->roles);
        Oid new_role = InvalidOid;
        PgGuard([&] { new_role = get_rolespec_oid(stmt->newrole, false); });
        std::string new_name = RoleName(new_role);
        AsExtensionOwner([&] {
            SqlResult moved =
                Sql("UPDATE revetl.syncs SET owner = $2::oid::regrole, updated_at = pg_catalog.now() "
                    "WHERE owner::oid = ANY ($1::oid[]) RETURNING shadow_table, "
                    "(SELECT pg_catalog.string_agg(pg_catalog.quote_ident(rolname), ', ') FROM "
                    "pg_catalog.pg_roles "
                    " WHERE oid = ANY ($1::oid[]))",
                    {SqlArg::Text(old_roles), SqlArg::Int8(new_role)});
            for (size_t i = 0; i < moved.rows.size(); i++) {
                GrantShadow(moved.Text(i, 0), new_name, true);
                Sql("REVOKE SELECT ON " + QualifiedName(kSchema, moved.Text(i, 0)) + " FROM " +
                    moved.Text(i, 1));
            }
        });
    } else {
        DropOwnedStmt *stmt = castNode(DropOwnedStmt, statement);
        SqlResult owned =
            Sql("SELECT name FROM revetl.syncs WHERE owner::oid = ANY ($1::oid[]) ORDER BY name",
                {SqlArg::Text(RoleOidList(stmt->roles))});
        // Dependent syncs (SCHEDULE AFTER) of the same owner go first.
        for (int pass = 0; pass < 2; pass++)
            for (size_t i = 0; i < owned.rows.size(); i++) {
                if (!LoadSyncByName(owned.Text(i, 0)))
                    continue;
                try {
                    DropSync(owned.Text(i, 0), true);
                } catch (const Error &) {
                    if (pass == 1)
                        throw;
                }
            }
    }
    SpiFinish();
}

} // namespace

void AfterOwnedStatement(Node *statement) {
    ErrorData *edata = nullptr;
    try {
        AfterOwnedStatementCpp(statement);
        return;
    } catch (...) {
        edata = CurrentExceptionToErrorData();
    }
    RaiseErrorData(edata);
}

namespace {

std::string CaptureFunction(int64_t sync_id) {
    return QualifiedName(kSchema, "capture_" + std::to_string(sync_id));
}

// A sync's capture trigger function: LANGUAGE c over revetl_capture
// (src/pg/capture.cpp), which reads the sync id, the model's schema and
// name, whether to wake the sync's run, and the key columns from its
// triggers' arguments (CaptureTriggerArguments). It runs with the extension
// owner's rights (writers of the table need no access to revetl's tables)
// and calls no code a user could provide: key values are rendered with the
// types' output functions, never casts to json or text that a user may have
// defined. The planner casts the text back to the key's type, as the sync's
// owner.
std::string CaptureFunctionDdl(const SyncDefinition &def) {
    return "CREATE OR REPLACE FUNCTION " + CaptureFunction(def.id) +
           "() RETURNS trigger LANGUAGE c SECURITY DEFINER SET search_path = pg_catalog, pg_temp "
           // The rendering of dates, times and floats must not depend on the
           // writer's session: the planner reads these keys back.
           "SET DateStyle = 'ISO, YMD' SET TimeZone = 'UTC' SET IntervalStyle = 'postgres' "
           "SET extra_float_digits = 3 AS '$libdir/revetl', 'revetl_capture'";
}

// The arguments of a sync's capture triggers, as SQL literals: what the
// C function needs to know of the sync. Every value is a string literal, so
// nothing in a schema, table or column name can end the trigger's
// definition early.
std::string CaptureTriggerArguments(const SyncDefinition &def) {
    std::string out = QuoteLiteral(std::to_string(def.id)) + ", " + QuoteLiteral(def.model.schema) + ", " +
                      QuoteLiteral(def.model.name) + ", " +
                      QuoteLiteral(def.schedule.kind == dsl::Schedule::Kind::OnChange ? "wake" : "");
    for (const auto &k : def.key_columns)
        out += ", " + QuoteLiteral(k);
    return out;
}

} // namespace

void DropCapture(int64_t sync_id) {
    AsExtensionOwner([&] {
        // The triggers depend on the function: they go first.
        bool exists = Sql("SELECT pg_catalog.to_regprocedure($1) IS NOT NULL",
                          {SqlArg::Text(CaptureFunction(sync_id) + "()")})
                          .Bool(0, 0);
        if (!exists)
            return;
        SqlResult triggers = Sql(
            "SELECT pg_catalog.quote_ident(t.tgname), t.tgrelid::regclass::text FROM pg_catalog.pg_trigger t "
            "WHERE t.tgfoid = pg_catalog.to_regprocedure($1)",
            {SqlArg::Text(CaptureFunction(sync_id) + "()")});
        for (size_t i = 0; i < triggers.rows.size(); i++)
            Sql("DROP TRIGGER " + triggers.Text(i, 0) + " ON " + triggers.Text(i, 1));
        Sql("DROP FUNCTION " + CaptureFunction(sync_id) + "()");
    });
}

static bool EnsureCaptureImpl(const SyncDefinition &def, bool definition_changed);

bool EnsureCapture(const SyncDefinition &def, bool definition_changed) {
    // The DDL below fires revetl's own DDL watch; it has nothing to do then.
    bool saved = g_own_ddl;
    g_own_ddl = true;
    try {
        bool attached = EnsureCaptureImpl(def, definition_changed);
        g_own_ddl = saved;
        return attached;
    } catch (...) {
        g_own_ddl = saved;
        throw;
    }
}

static bool EnsureCaptureImpl(const SyncDefinition &def, bool definition_changed) {
    if (!def.Tracked()) {
        DropCapture(def.id);
        AsExtensionOwner(
            [&] { Sql("DELETE FROM revetl.captured_changes WHERE sync_id = $1", {SqlArg::Int8(def.id)}); });
        return false;
    }
    if (def.TrackedByWal()) {
        // Logical decoding: no triggers (the worker's slot decodes the
        // table). A table the WAL capture has not seen under this sync (a
        // new sync, a rebuilt model, a switch from triggers) holds unknown
        // contents: the next run diffs all of it, once the slot exists.
        DropCapture(def.id);
        bool changed = false;
        AsExtensionOwner([&] {
            Oid relid = ModelRelid(def);
            SqlResult r =
                Sql("INSERT INTO revetl.sync_state AS st (sync_id, incremental_ready, wal_relid) "
                    "VALUES ($1, false, $2::pg_catalog.oid) ON CONFLICT (sync_id) DO UPDATE SET "
                    "incremental_ready = "
                    "false, wal_relid = excluded.wal_relid WHERE st.wal_relid IS DISTINCT FROM "
                    "excluded.wal_relid OR $3",
                    {SqlArg::Int8(def.id), OidIsValid(relid) ? SqlArg::Int8(relid) : SqlArg::Null(INT8OID),
                     SqlArg::Bool(definition_changed)});
            changed = r.processed > 0 && OidIsValid(relid);
        });
        return changed;
    }
    bool attached = false;
    AsExtensionOwner([&] {
        Oid relid = ModelRelid(def);
        bool function_exists = Sql("SELECT pg_catalog.to_regprocedure($1) IS NOT NULL",
                                   {SqlArg::Text(CaptureFunction(def.id) + "()")})
                                   .Bool(0, 0);
        // The triggers carry the definition (CaptureTriggerArguments): when
        // it may have changed, they are made again, in this transaction, so
        // that no write goes uncaptured in between.
        std::vector<std::string> remade;
        if (!function_exists || definition_changed) {
            if (OidIsValid(relid)) {
                SqlResult old =
                    Sql("SELECT t.tgname, pg_catalog.quote_ident(t.tgname) FROM pg_catalog.pg_trigger t "
                        "WHERE t.tgrelid = $1::oid AND t.tgfoid = pg_catalog.to_regprocedure($2)",
                        {SqlArg::Int8(relid), SqlArg::Text(CaptureFunction(def.id) + "()")});
                for (size_t i = 0; i < old.rows.size(); i++) {
                    Sql("DROP TRIGGER " + old.Text(i, 1) + " ON " + ModelSource(def.model));
                    remade.push_back(old.Text(i, 0));
                }
            }
            Sql(CaptureFunctionDdl(def));
            // It runs with the extension owner's rights: no role may attach
            // it to a table of its own, or call it (CREATE TRIGGER needs
            // EXECUTE on the function; revetl creates the triggers itself).
            Sql("REVOKE ALL ON FUNCTION " + CaptureFunction(def.id) + "() FROM PUBLIC");
        }
        // Triggers left on a table that is no longer the model (or on the
        // model after its key columns went) would capture the wrong thing, or
        // make the table's writes fail: they go.
        // Only a plain table can carry the triggers: a model rebuilt as a
        // view (or anything else) is left to full diffs.
        char relkind = 0;
        if (OidIsValid(relid))
            PgGuard([&] { relkind = get_rel_relkind(relid); });
        bool keys_present = OidIsValid(relid) && relkind == RELKIND_RELATION;
        for (const auto &k : def.key_columns) {
            if (!keys_present)
                break;
            keys_present =
                !Sql("SELECT 1 FROM pg_catalog.pg_attribute WHERE attrelid = $1::oid AND attname = $2 "
                     "AND attnum > 0 AND NOT attisdropped",
                     {SqlArg::Int8(relid), SqlArg::Text(k)})
                     .rows.empty();
        }
        SqlResult stale = Sql(
            "SELECT pg_catalog.quote_ident(t.tgname), t.tgrelid::regclass::text FROM pg_catalog.pg_trigger t "
            "WHERE t.tgfoid = pg_catalog.to_regprocedure($1) AND (t.tgrelid <> $2::oid OR NOT $3)",
            {SqlArg::Text(CaptureFunction(def.id) + "()"), SqlArg::Int8(relid), SqlArg::Bool(keys_present)});
        for (size_t i = 0; i < stale.rows.size(); i++)
            Sql("DROP TRIGGER " + stale.Text(i, 0) + " ON " + stale.Text(i, 1));
        if (!keys_present) {
            // The model is being rebuilt (the event trigger attaches the
            // triggers to the new table), or it lost a key column (the next
            // run says so).
            Sql("INSERT INTO revetl.sync_state (sync_id, incremental_ready) VALUES ($1, false) "
                "ON CONFLICT (sync_id) DO UPDATE SET incremental_ready = false",
                {SqlArg::Int8(def.id)});
            return;
        }
        const std::string table = ModelSource(def.model);
        struct Trigger {
            const char *suffix;
            const char *event;
            const char *referencing;
        };
        const Trigger triggers[] = {
            {"ins", "INSERT", "REFERENCING NEW TABLE AS revetl_new"},
            {"upd", "UPDATE", "REFERENCING OLD TABLE AS revetl_old NEW TABLE AS revetl_new"},
            {"del", "DELETE", "REFERENCING OLD TABLE AS revetl_old"},
            {"trunc", "TRUNCATE", ""},
        };
        for (const Trigger &t : triggers) {
            std::string name = "revetl_capture_" + std::to_string(def.id) + "_" + t.suffix;
            bool exists = !Sql("SELECT 1 FROM pg_catalog.pg_trigger WHERE tgrelid = $1::oid AND tgname = $2",
                               {SqlArg::Int8(relid), SqlArg::Text(name)})
                               .rows.empty();
            if (exists)
                continue;
            Sql("CREATE TRIGGER " + QuoteIdent(name) + " AFTER " + t.event + " ON " + table + " " +
                t.referencing + " FOR EACH STATEMENT EXECUTE FUNCTION " + CaptureFunction(def.id) + "(" +
                CaptureTriggerArguments(def) + ")");
            // Also for sessions running with session_replication_role =
            // replica (PostgreSQL's own logical replication apply fires row
            // triggers only: tables it fills need full diffs).
            Sql("ALTER TABLE " + table + " ENABLE ALWAYS TRIGGER " + QuoteIdent(name));
            // A trigger made again on the same table missed no write.
            if (std::find(remade.begin(), remade.end(), name) == remade.end())
                attached = true;
        }
        if (attached) {
            // The table is new to the triggers: what it holds is unknown, so
            // the next run diffs all of it once.
            Sql("INSERT INTO revetl.sync_state (sync_id, incremental_ready) VALUES ($1, false) "
                "ON CONFLICT (sync_id) DO UPDATE SET incremental_ready = false",
                {SqlArg::Int8(def.id)});
        }
    });
    return attached;
}

namespace {

// What is wrong with a stored sync against the database as it is now (the
// model dropped or renamed, a key or mapped column dropped or retyped, a
// privilege revoked): the check CREATE SYNC makes, as the owner, in a
// subtransaction, so that nothing fails the statement that asked. nullopt:
// nothing is wrong.
std::optional<std::string> DefinitionProblemOf(const SyncDefinition &def) {
    std::optional<SubtransactionFailure> failure = InSubtransaction([&] {
        SyncRequest req = RequestFromDefinition(def);
        AsSyncOwner(def.owner, SyncSearchPath(&def), [&] { (void)ResolveAsOwner(req, def.owner, &def); });
    });
    if (!failure)
        return std::nullopt;
    std::string text = failure->message;
    // A map expression's error points into the expression: name its field.
    for (const auto &entry : def.map)
        if (!failure->source.empty() && entry.expression == failure->source) {
            text += " (in the map expression for field \"" + entry.field + "\")";
            break;
        }
    return text;
}

// After DDL: the relation-model syncs whose model this statement touched,
// whose model no longer resolves, or that had a problem before, are checked
// again. A new problem is a WARNING at the DDL itself, naming the sync (and
// the map entry), and is kept in sync_state.model_problem (shown by
// sync_status) until the model or the sync is fixed.
void CheckModelsAfterDdl() {
    SqlResult touched =
        Sql("SELECT coalesce(pg_catalog.array_agg(DISTINCT c.objid), '{}')::pg_catalog.text FROM "
            "pg_catalog.pg_event_trigger_ddl_commands() c WHERE c.classid OPERATOR(pg_catalog.=) "
            "'pg_catalog.pg_class'::pg_catalog.regclass");
    // The model is looked up in the catalogs, not by to_regclass: the role
    // running the DDL may have no USAGE on another owner's schema, and its
    // statement must not fail for that.
    SqlResult candidates =
        Sql("SELECT s.id, st.model_problem FROM revetl.syncs s LEFT JOIN revetl.sync_state st "
            "ON st.sync_id OPERATOR(pg_catalog.=) s.id "
            "LEFT JOIN (pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) "
            "c.relnamespace) ON n.nspname OPERATOR(pg_catalog.=) s.model_schema::pg_catalog.name "
            "AND c.relname OPERATOR(pg_catalog.=) s.model_name::pg_catalog.name "
            "WHERE s.model_kind OPERATOR(pg_catalog.=) 'relation' AND (st.model_problem IS NOT NULL OR c.oid "
            "IS NULL "
            "OR c.oid OPERATOR(pg_catalog.=) ANY ($1::pg_catalog.oid[])) ORDER BY s.id",
            {SqlArg::Text(touched.Text(0, 0))});
    for (size_t i = 0; i < candidates.rows.size(); i++) {
        auto def = LoadSyncById(candidates.Int8(i, 0));
        if (!def)
            continue;
        std::optional<std::string> problem = DefinitionProblemOf(*def);
        const std::optional<std::string> &recorded = candidates.At(i, 1);
        if (problem == recorded)
            continue;
        AsExtensionOwner([&] {
            Sql("INSERT INTO revetl.sync_state (sync_id, model_problem) VALUES ($1, $2) "
                "ON CONFLICT (sync_id) DO UPDATE SET model_problem = excluded.model_problem",
                {SqlArg::Int8(def->id), problem ? SqlArg::Text(*problem) : SqlArg::Null(TEXTOID)});
        });
        if (!problem)
            continue;
        const std::string name = def->name;
        const std::string text = *problem;
        PgGuard([&] {
            ereport(WARNING,
                    (errmsg("sync \"%s\" no longer fits its model after this statement: %s", name.c_str(),
                            text.c_str()),
                     errdetail("Its runs fail until the model or the sync is changed to fit again; "
                               "revetl.sync_status.model_problem says the same."),
                     errhint("Change the sync with ALTER SYNC %s SET FROM, SET KEY or SET MAP, or undo this "
                             "change.",
                             dsl::QuoteIdentIfNeeded(name).c_str())));
        });
    }
}

void AfterTableDdlCpp() {
    if (g_own_ddl)
        return;
    // A restore (pg_restore, or psql running pg_dump's output, which both
    // turn check_function_bodies off) creates the capture triggers itself,
    // from the dump, after the tables: attaching them here first would make
    // its CREATE TRIGGER fail, and a single-transaction restore roll back.
    // (DDL on a tracked table run with check_function_bodies off for another
    // reason leaves the triggers as they are: the next DDL on the table with
    // it on attaches what is missing; docs/operations.md says so.)
    if (!check_function_bodies)
        return;
    SpiConnect();
    SqlResult tracked = Sql(std::string("SELECT s.id FROM revetl.syncs s WHERE ") + kTrackedPredicate);
    for (size_t i = 0; i < tracked.rows.size(); i++) {
        auto def = LoadSyncById(tracked.Int8(i, 0));
        if (!def)
            continue;
        // A rebuilt model under an ON CHANGE sync is a change: the scheduler
        // queues the run (triggers just attached mean a full diff).
        bool attached = false;
        try {
            attached = EnsureCapture(*def, false);
        } catch (const std::exception &e) {
            // Another sync's trouble must not fail the user's DDL.
            std::string why = e.what();
            std::string name = def->name;
            PgGuard([&] {
                ereport(WARNING, (errmsg("revetl could not attach the capture triggers of sync \"%s\": %s",
                                         name.c_str(), why.c_str())));
            });
            continue;
        }
        if (attached && def->schedule.kind == dsl::Schedule::Kind::OnChange)
            AsExtensionOwner([&] {
                Sql("INSERT INTO revetl.captured_changes (sync_id, key) VALUES ($1, NULL)",
                    {SqlArg::Int8(def->id)});
            });
    }
    CheckModelsAfterDdl();
    SpiFinish();
}

void RequestRunOnChangeCpp(int64_t sync_id) {
    // The scheduler queues the run when it sees captured keys and no run in
    // progress or queued: deciding there, after the capturing transaction
    // committed, means no change can slip between a run's start and its end.
    // A run in progress is woken instead: it plans the new keys itself.
    WakeSyncAtCommit(sync_id);
}

} // namespace

void AfterTableDdl() {
    ErrorData *edata = nullptr;
    try {
        AfterTableDdlCpp();
        return;
    } catch (...) {
        edata = CurrentExceptionToErrorData();
    }
    RaiseErrorData(edata);
}

void RequestRunOnChange(int64_t sync_id) {
    bool connected_here = false;
    ErrorData *edata = nullptr;
    try {
        SpiConnect();
        connected_here = true;
        RequestRunOnChangeCpp(sync_id);
        SpiFinish();
        return;
    } catch (...) {
        (void)connected_here;
        edata = CurrentExceptionToErrorData();
    }
    RaiseErrorData(edata);
}

std::optional<std::string> DefinitionProblem(const SyncDefinition &def) {
    return DefinitionProblemOf(def);
}

} // namespace revetl::pg
