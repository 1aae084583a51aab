#include "pg/catalog.hpp"

#include "pg/session.hpp"
#include "pg/spi.hpp"

namespace revetl::pg {

namespace {

// audience is read through to_jsonb: with a new library on a catalog not yet
// updated (0.1.0's has no such column) the load must not fail before the
// version check that tells the user to run ALTER EXTENSION revetl UPDATE.
constexpr const char *kSelectSync =
    "SELECT s.id, s.name, s.owner::oid, s.owner::text, s.model_kind, s.model_schema, s.model_name, "
    "s.model_query, s.destination, pg_catalog.array_to_json(s.key_columns)::text, s.mode, s.map::text, "
    "s.options::text, s.paused, s.shadow_table, s.search_path, s.object, s.match_on, s.schedule_kind, "
    "s.schedule_value, pg_catalog.to_jsonb(s.*) OPERATOR(pg_catalog.->>) 'audience' FROM revetl.syncs s ";

SyncDefinition FromRow(const SqlResult &r) {
    SyncDefinition d;
    d.id = r.Int8(0, 0);
    d.name = r.Text(0, 1);
    d.owner = static_cast<unsigned int>(std::stoul(r.Text(0, 2)));
    d.owner_name = r.Text(0, 3);
    if (r.Text(0, 4) == "relation") {
        d.model.kind = ModelRef::Kind::Relation;
        d.model.schema = r.Text(0, 5);
        d.model.name = r.Text(0, 6);
    } else {
        d.model.kind = ModelRef::Kind::Query;
        d.model.query = r.Text(0, 7);
    }
    d.destination = r.Text(0, 8);
    d.key_columns = ParseStringArray(r.Text(0, 9));
    d.mode = r.Text(0, 10);
    if (r.At(0, 11))
        d.map = ParseMap(*r.At(0, 11));
    d.options_json = r.Text(0, 12);
    d.options = ParseSyncOptions(d.options_json);
    d.paused = r.Bool(0, 13);
    d.shadow_table = r.Text(0, 14);
    d.search_path = r.Text(0, 15);
    if (r.At(0, 16))
        d.object = *r.At(0, 16);
    if (r.At(0, 17))
        d.match_on = *r.At(0, 17);
    if (r.At(0, 20))
        d.audience = *r.At(0, 20);
    std::string kind = r.Text(0, 18);
    d.schedule.value = r.Text(0, 19);
    d.schedule.kind = kind == "every"       ? dsl::Schedule::Kind::Every
                      : kind == "cron"      ? dsl::Schedule::Kind::Cron
                      : kind == "on change" ? dsl::Schedule::Kind::OnChange
                      : kind == "after"     ? dsl::Schedule::Kind::After
                                            : dsl::Schedule::Kind::Manual;
    return d;
}

OptionList ToOptionList(List *options) {
    OptionList out;
    ListCell *lc;
    foreach (lc, options) {
        DefElem *def = static_cast<DefElem *>(lfirst(lc));
        char *value = nullptr;
        PgGuard([&] { value = defGetString(def); });
        out.emplace_back(def->defname, value ? value : "");
    }
    return out;
}

} // namespace

std::optional<SyncDefinition> LoadSyncById(int64_t id) {
    SqlResult r = Sql(std::string(kSelectSync) + "WHERE s.id OPERATOR(pg_catalog.=) $1", {SqlArg::Int8(id)});
    if (r.rows.empty())
        return std::nullopt;
    return FromRow(r);
}

std::optional<SyncDefinition> LoadSyncByName(const std::string &name) {
    SqlResult r =
        Sql(std::string(kSelectSync) + "WHERE s.name OPERATOR(pg_catalog.=) $1", {SqlArg::Text(name)});
    if (r.rows.empty())
        return std::nullopt;
    return FromRow(r);
}

std::optional<std::string> CopyOfAnotherDatabase() {
    SqlResult r;
    AsExtensionOwner([&] {
        r = Sql("SELECT coalesce(bool_or(i.database_oid OPERATOR(pg_catalog.<>) $1::pg_catalog.oid), true), "
                "EXISTS (SELECT 1 FROM revetl.syncs s WHERE s.instance_token IS DISTINCT FROM "
                "(SELECT i2.token FROM revetl.instance i2 LIMIT 1)) FROM revetl.instance i",
                {SqlArg::Int8(MyDatabaseId)}, true);
    });
    if (r.Bool(0, 0))
        return std::string("was created from another database as its template");
    if (r.Bool(0, 1))
        return std::string("was restored from a dump of another database");
    return std::nullopt;
}

Error CopyError(const std::string &why) {
    return Error(sqlstate::kObjectNotInPrerequisiteState,
                 "database \"" + std::string(DatabaseName()) + "\" is a copy: it " + why +
                     ", so its syncs do not send",
                 "A copy would send to the original's destinations.",
                 "If this database is meant to send (it replaces the original), run SELECT "
                 "revetl.confirm_copy() in it; otherwise drop or pause its syncs, or point their servers "
                 "elsewhere first.");
}

SyncDefinition RequireSync(const std::string &name) {
    auto def = LoadSyncByName(name);
    if (!def) {
        // Sync names are visible to every role (revetl.syncs), so the closest
        // one may be suggested.
        std::vector<std::string> names;
        SqlResult r = Sql("SELECT s.name FROM revetl.syncs s ORDER BY 1 LIMIT 5000");
        for (size_t i = 0; i < r.rows.size(); i++)
            names.push_back(r.Text(i, 0));
        std::string close = ClosestMatch(name, names);
        throw Error(sqlstate::kUndefinedObject, "sync \"" + name + "\" does not exist", {},
                    close.empty() ? "SELECT name FROM revetl.syncs lists the syncs of this database."
                                  : "Perhaps you meant the sync \"" + close + "\".");
    }
    return *def;
}

Destination LookupDestination(const std::string &server_name) {
    Destination dest;
    ForeignServer *server = nullptr;
    Oid revetl_fdw = InvalidOid;
    PgGuard([&] {
        server = GetForeignServerByName(server_name.c_str(), true);
        revetl_fdw = get_foreign_data_wrapper_oid("revetl", true);
    });
    if (!server) {
        std::vector<std::string> names;
        SqlResult r = Sql("SELECT s.srvname FROM pg_catalog.pg_foreign_server s "
                          "JOIN pg_catalog.pg_foreign_data_wrapper w ON w.oid = s.srvfdw "
                          "WHERE w.fdwname = 'revetl' ORDER BY 1 LIMIT 1000",
                          {}, true);
        for (size_t i = 0; i < r.rows.size(); i++)
            names.push_back(r.Text(i, 0));
        std::string close = ClosestMatch(server_name, names);
        throw Error(sqlstate::kUndefinedObject, "server \"" + server_name + "\" does not exist", {},
                    !close.empty() ? "Perhaps you meant the revetl server \"" + close + "\"."
                                   : "Create it with CREATE SERVER " + server_name +
                                         " FOREIGN DATA WRAPPER revetl OPTIONS (type 'webhook', url '...').");
    }
    if (server->fdwid != revetl_fdw)
        throw Error(sqlstate::kInvalidParameterValue,
                    "server \"" + server_name + "\" is not a revetl destination",
                    "Its foreign data wrapper is not revetl.",
                    "Use a server created with FOREIGN DATA WRAPPER revetl.");
    dest.server_oid = server->serverid;
    dest.server_name = server->servername;
    dest.server_options = ToOptionList(server->options);
    for (const auto &o : dest.server_options)
        if (o.first == "type")
            dest.type = o.second;
    return dest;
}

void LoadUserMapping(Destination &dest, Oid role) {
    // GetUserMapping raises an error when there is none; a mapping is
    // optional here, so look it up directly: the role's own, else PUBLIC's.
    List *options = NIL;
    bool found = false;
    PgGuard([&] {
        HeapTuple tp =
            SearchSysCache2(USERMAPPINGUSERSERVER, ObjectIdGetDatum(role), ObjectIdGetDatum(dest.server_oid));
        if (!HeapTupleIsValid(tp))
            tp = SearchSysCache2(USERMAPPINGUSERSERVER, ObjectIdGetDatum(InvalidOid),
                                 ObjectIdGetDatum(dest.server_oid));
        if (HeapTupleIsValid(tp)) {
            found = true;
            dest.user_mapping_oid = ((Form_pg_user_mapping)GETSTRUCT(tp))->oid;
            bool isnull;
            Datum datum = SysCacheGetAttr(USERMAPPINGUSERSERVER, tp, Anum_pg_user_mapping_umoptions, &isnull);
            if (!isnull)
                options = untransformRelOptions(datum);
            ReleaseSysCache(tp);
        }
    });
    if (found)
        dest.user_mapping_options = ToOptionList(options);
}

std::optional<OptionList> LoadUserMappingById(Oid umid) {
    List *options = NIL;
    bool found = false;
    PgGuard([&] {
        HeapTuple tp = SearchSysCache1(USERMAPPINGOID, ObjectIdGetDatum(umid));
        if (HeapTupleIsValid(tp)) {
            found = true;
            bool isnull;
            Datum datum = SysCacheGetAttr(USERMAPPINGOID, tp, Anum_pg_user_mapping_umoptions, &isnull);
            if (!isnull)
                options = untransformRelOptions(datum);
            ReleaseSysCache(tp);
        }
    });
    if (!found)
        return std::nullopt;
    return ToOptionList(options);
}

bool StoreRotatedRefreshToken(Oid umid, const std::string &used, const std::string &rotated) {
    bool stored = false;
    PgGuard([&] {
        Relation rel = table_open(UserMappingRelationId, RowExclusiveLock);
        HeapTuple tp = SearchSysCacheCopy1(USERMAPPINGOID, ObjectIdGetDatum(umid));
        if (!HeapTupleIsValid(tp)) {
            table_close(rel, RowExclusiveLock);
            return;
        }
        bool isnull;
        Datum datum = SysCacheGetAttr(USERMAPPINGOID, tp, Anum_pg_user_mapping_umoptions, &isnull);
        if (isnull) {
            table_close(rel, RowExclusiveLock);
            return;
        }
        // umoptions is a text[] of "name=value"; only refresh_token changes.
        Datum *elems;
        bool *nulls;
        int n;
        deconstruct_array(DatumGetArrayTypeP(datum), TEXTOID, -1, false, TYPALIGN_INT, &elems, &nulls, &n);
        const std::string prefix = "refresh_token=";
        bool matched = false;
        for (int i = 0; i < n; i++) {
            if (nulls[i])
                continue;
            char *item = TextDatumGetCString(elems[i]);
            if (strncmp(item, prefix.c_str(), prefix.size()) == 0) {
                if (used == item + prefix.size()) {
                    elems[i] = CStringGetTextDatum((prefix + rotated).c_str());
                    matched = true;
                }
                // Not a copy kept anywhere: the old secret leaves this
                // process's memory with the context.
                memset(item, 0, strlen(item));
            }
            pfree(item);
        }
        if (matched) {
            Datum values[Natts_pg_user_mapping] = {};
            bool value_nulls[Natts_pg_user_mapping] = {};
            bool replace[Natts_pg_user_mapping] = {};
            values[Anum_pg_user_mapping_umoptions - 1] =
                PointerGetDatum(construct_array(elems, n, TEXTOID, -1, false, TYPALIGN_INT));
            replace[Anum_pg_user_mapping_umoptions - 1] = true;
            HeapTuple updated = heap_modify_tuple(tp, RelationGetDescr(rel), values, value_nulls, replace);
            CatalogTupleUpdate(rel, &updated->t_self, updated);
            if (object_access_hook)
                RunObjectPostAlterHook(UserMappingRelationId, umid, 0, InvalidOid, false);
            heap_freetuple(updated);
            stored = true;
        }
        heap_freetuple(tp);
        table_close(rel, RowExclusiveLock);
    });
    return stored;
}

void CheckServerUsage(const Destination &dest, Oid role) {
    AclResult acl = ACLCHECK_OK;
    PgGuard([&] { acl = compat::ForeignServerAclcheck(dest.server_oid, role, ACL_USAGE); });
    if (acl != ACLCHECK_OK)
        throw Error(sqlstate::kInsufficientPrivilege,
                    "permission denied for foreign server " + dest.server_name,
                    "Role " + RoleName(role) + " has no USAGE privilege on the destination.",
                    "A superuser or the server's owner can run GRANT USAGE ON FOREIGN SERVER " +
                        dest.server_name + " TO " + RoleName(role) + ".");
}

Oid ExtensionOwner() {
    SqlResult r =
        // Runs before any switch of role, under the caller's search_path:
        // the operator is named in full, so a role's own "=" cannot choose
        // whose rights revetl's statements get.
        Sql("SELECT extowner, extversion FROM pg_catalog.pg_extension "
            "WHERE extname OPERATOR(pg_catalog.=) 'revetl'::pg_catalog.name",
            {}, true);
    if (r.rows.empty())
        throw Error(sqlstate::kObjectNotInPrerequisiteState,
                    "extension \"revetl\" is not installed in this database", {},
                    "Run CREATE EXTENSION revetl.");
    // The library was replaced by a newer build and the catalog not yet
    // updated (or the reverse): the code would misread the catalog. The
    // update script itself runs while creating_extension is set.
    bool updating = false;
    PgGuard([&] { updating = creating_extension; });
    if (r.Text(0, 1) != REVETL_VERSION && !updating)
        throw Error(sqlstate::kObjectNotInPrerequisiteState,
                    "extension \"revetl\" is at version " + r.Text(0, 1) + " but its library is version " +
                        REVETL_VERSION,
                    "The server loaded a newer (or older) build of revetl than the one this database was "
                    "created or last updated with.",
                    "Run ALTER EXTENSION revetl UPDATE.");
    return static_cast<Oid>(std::stoul(r.Text(0, 0)));
}

void EnterOwnerContext(Oid role, const char *search_path, bool restricted, OwnerContext *ctx) {
    GetUserIdAndSecContext(&ctx->save_user, &ctx->save_sec);
    ctx->nest = NewGUCNestLevel();
    (void)set_config_option("search_path", search_path, PGC_USERSET, PGC_S_SESSION, GUC_ACTION_SAVE, true, 0,
                            false);
    SetUserIdAndSecContext(role, ctx->save_sec | SECURITY_LOCAL_USERID_CHANGE |
                                     (restricted ? SECURITY_RESTRICTED_OPERATION : 0));
}

void LeaveOwnerContext(const OwnerContext *ctx) {
    SetUserIdAndSecContext(ctx->save_user, ctx->save_sec);
    // false: as at the end of a failed subtransaction, also plain SETs made
    // inside are undone (a function's SET clause alone would keep them).
    AtEOXact_GUC(false, ctx->nest);
}

std::string OwnerSearchPath(const std::string &stored) {
    return stored.empty() ? std::string("\"$user\", public") : stored;
}

std::string RoleName(Oid role) {
    char *name = nullptr;
    PgGuard([&] { name = GetUserNameFromId(role, true); });
    return name ? std::string(name) : std::to_string(role);
}

} // namespace revetl::pg
