#include "pg/planning.hpp"

#include "core/common/sql_text.hpp"
#include "core/connectors/spec.hpp"
#include "pg/catalog.hpp"
#include "pg/module.hpp"
#include "pg/session.hpp"
#include "pg/spi.hpp"

extern "C" {
#include "catalog/pg_operator.h"
#include "utils/guc.h"
}

namespace revetl::pg {

namespace {

std::string KeysJson(const std::vector<std::string> &keys) {
    std::string out = "[";
    for (size_t i = 0; i < keys.size(); i++) {
        out += i ? "," : "";
        out += "\"";
        for (char c : keys[i]) {
            if (c == '"' || c == '\\')
                out += '\\';
            out += c;
        }
        out += "\"";
    }
    return out + "]";
}

} // namespace

Oid ModelRelid(const SyncDefinition &def) {
    if (def.model.kind != ModelRef::Kind::Relation)
        return InvalidOid;
    SqlResult r = Sql("SELECT pg_catalog.to_regclass($1)::oid", {SqlArg::Text(ModelSource(def.model))}, true);
    return r.At(0, 0) ? static_cast<Oid>(std::stoul(*r.At(0, 0))) : InvalidOid;
}

bool HasUniqueIndexOn(Oid relid, const std::vector<std::string> &keys) {
    if (!OidIsValid(relid))
        return false;
    SqlResult r =
        Sql("SELECT 1 FROM pg_catalog.pg_index i WHERE i.indrelid = $1::oid AND i.indisunique "
            "AND i.indpred IS NULL AND i.indexprs IS NULL AND "
            "(SELECT pg_catalog.array_agg(a.attname::text ORDER BY a.attname) FROM pg_catalog.pg_attribute a "
            " WHERE a.attrelid = i.indrelid AND a.attnum = ANY (i.indkey)) = "
            "(SELECT pg_catalog.array_agg(x ORDER BY x) FROM pg_catalog.jsonb_array_elements_text($2::jsonb) "
            "x) LIMIT 1",
            {SqlArg::Int8(relid), SqlArg::Text(KeysJson(keys))}, true);
    return !r.rows.empty();
}

std::vector<std::string> KeyColumnTypes(Oid relid, const std::vector<std::string> &keys) {
    std::vector<std::string> out;
    for (const auto &k : keys) {
        SqlResult r = Sql("SELECT pg_catalog.format_type(atttypid, atttypmod) FROM pg_catalog.pg_attribute "
                          "WHERE attrelid = $1::oid AND attname = $2 AND attnum > 0 AND NOT attisdropped",
                          {SqlArg::Int8(relid), SqlArg::Text(k)}, true);
        if (r.rows.empty())
            throw Error(sqlstate::kUndefinedColumn, "key column \"" + k + "\" is missing from the model",
                        "The model was changed after the sync was created.");
        out.push_back(r.Text(0, 0));
    }
    return out;
}

void AddAudienceFields(const SyncDefinition &def, PlanSpec &spec) {
    if (def.mode != "audience")
        return;
    // Which fields identify a member, and whether they must be hashed, is
    // the destination type's to say.
    Destination dest = LookupDestination(def.destination);
    const ConnectorSpec &type = ValidateServer(dest.server_options);
    SyncTarget target;
    target.mode = def.mode;
    target.object = def.object.value_or("");
    target.match_on = def.match_on.value_or("");
    target.audience = def.audience.value_or("");
    std::vector<std::string> fields;
    for (const auto &m : def.map)
        fields.push_back(m.field);
    target.map_fields = fields;
    CheckSyncTarget(type, dest.server_options, target, def.name, dest.server_name);
    spec.identifier_fields = AudienceIdentifierFields(type, target, fields);
    spec.hashed_identifiers = type.audience.hashed_identifiers;
    if (type.audience.unhashed)
        for (const auto &f : spec.identifier_fields)
            if (type.audience.unhashed(f))
                spec.unhashed_fields.push_back(f);
}

namespace {

// A key column's type as the model gives it now.
struct ModelKeyType {
    Oid type = InvalidOid;
    int32 typmod = -1;
    ShadowKeyType shadow; // shadow.type empty: not usable as a typed key
};

// Whether a key of this type can be a typed shadow key column: its value
// must read back exactly from the key's jsonb text (key_field), and it must
// have a default equality operator to join on. Arrays, composites, json,
// intervals (whose text follows IntervalStyle) and money (lc_monetary) keep
// the text-keyed plan. Called inside PgGuard.
void DescribeKeyType(ModelKeyType *k) {
    // A domain's key is stored as its base type: the shadow's generated
    // columns are computed by revetl's own statements, which must never run
    // a domain's CHECK (the owner's code) with revetl's rights. The join
    // compares the domain's values as their base type anyway.
    k->type = getBaseTypeAndTypmod(k->type, &k->typmod);
    Oid base = k->type;
    char category = 0;
    bool preferred = false;
    get_type_category_preferred(base, &category, &preferred);
    bool usable = base == UUIDOID || ((category == TYPCATEGORY_NUMERIC || category == TYPCATEGORY_STRING ||
                                       category == TYPCATEGORY_DATETIME || category == TYPCATEGORY_BOOLEAN ||
                                       category == TYPCATEGORY_ENUM || category == TYPCATEGORY_NETWORK) &&
                                      base != CASHOID && !type_is_array(base));
    if (!usable)
        return;
    TypeCacheEntry *tc = lookup_type_cache(k->type, TYPECACHE_EQ_OPR);
    if (!OidIsValid(tc->eq_opr))
        return;
    HeapTuple tup = SearchSysCache1(OPEROID, ObjectIdGetDatum(tc->eq_opr));
    if (!HeapTupleIsValid(tup))
        return;
    Form_pg_operator op = reinterpret_cast<Form_pg_operator>(GETSTRUCT(tup));
    const char *nsp = quote_identifier(get_namespace_name(op->oprnamespace));
    const char *opname = pstrdup(NameStr(op->oprname));
    ReleaseSysCache(tup);
    const char *type =
        format_type_extended(k->type, k->typmod, FORMAT_TYPE_TYPEMOD_GIVEN | FORMAT_TYPE_FORCE_QUALIFY);
    bool collatable = type_is_collatable(k->type);
    // No PostgreSQL call from here on (this runs inside PgGuard).
    // Operator names are never quoted; the schema is.
    k->shadow.eq_operator = std::string("OPERATOR(") + nsp + "." + opname + ")";
    k->shadow.type = type;
    k->shadow.collatable = collatable;
}

// The result columns of `sql` prepared as the sync's owner.
template <typename F>
void WithResultDesc(const SyncDefinition &def, const std::string &sql, F &&f) {
    AsSyncOwner(def.owner, def.search_path, [&] {
        PgGuard([&] {
            SPIPlanPtr plan = SPI_prepare(sql.c_str(), 0, nullptr);
            if (!plan)
                elog(ERROR, "revetl: could not prepare the model of sync \"%s\"", def.name.c_str());
            List *sources = SPI_plan_get_plan_sources(plan);
            CachedPlanSource *source = static_cast<CachedPlanSource *>(linitial(sources));
            f(source->resultDesc);
            SPI_freeplan(plan);
        });
    });
}

} // namespace

namespace {

// The shadow table's typed key columns: name, type, typmod, comment (the
// key column's name).
SqlResult ShadowKeyColumns(const SyncDefinition &def) {
    // Read before each plan, many a second in an ON CHANGE run: planned
    // once per process (the plan is kept for its life).
    static PreparedSql *const columns =
        new PreparedSql("SELECT a.attname::text, a.atttypid::pg_catalog.int8, a.atttypmod, "
                        "pg_catalog.col_description(a.attrelid, a.attnum) FROM pg_catalog.pg_attribute a "
                        "WHERE a.attrelid = $1::pg_catalog.regclass AND a.attnum > 0 AND NOT a.attisdropped "
                        "AND a.attname OPERATOR(pg_catalog.~) '^key_[0-9]+$' ORDER BY a.attnum");
    return columns->Run({SqlArg::Text(QualifiedName(kSchema, def.shadow_table))}, true);
}

bool SameKeys(const SqlResult &have, const SyncDefinition &def, const std::vector<ModelKeyType> &keys) {
    bool same = have.rows.size() == keys.size();
    for (size_t i = 0; same && i < keys.size(); i++)
        same = have.Text(i, 0) == ShadowKeyColumn(i) &&
               have.Int8(i, 1) == static_cast<int64_t>(keys[i].type) && have.Int8(i, 2) == keys[i].typmod &&
               have.At(i, 3) && *have.At(i, 3) == def.key_columns[i];
    return same;
}

// The key columns' types as the model has them now; empty when one of them
// cannot be a typed shadow key.
std::vector<ModelKeyType> ModelKeyTypes(const SyncDefinition &def) {
    std::string key_sql = "SELECT ";
    for (size_t i = 0; i < def.key_columns.size(); i++)
        key_sql += (i ? ", src." : "src.") + QuoteIdent(def.key_columns[i]);
    key_sql += " FROM " + ModelSource(def.model) + " AS src LIMIT 0";
    std::vector<ModelKeyType> keys(def.key_columns.size());
    bool typed = !keys.empty();
    WithResultDesc(def, key_sql, [&](TupleDesc desc) {
        for (size_t i = 0; i < keys.size() && desc && static_cast<int>(i) < desc->natts; i++) {
            keys[i].type = TupleDescAttr(desc, i)->atttypid;
            keys[i].typmod = TupleDescAttr(desc, i)->atttypmod;
            DescribeKeyType(&keys[i]);
            typed = typed && !keys[i].shadow.type.empty();
        }
    });
    if (!typed)
        keys.clear();
    return keys;
}

} // namespace

void EnsureShadowKeys(const SyncDefinition &def) {
    std::vector<ModelKeyType> keys = ModelKeyTypes(def);
    PlanSpec spec = def.Plan(kSchema);
    for (const auto &k : keys)
        spec.typed_keys.push_back(k.shadow);
    const std::string shadow = QualifiedName(kSchema, def.shadow_table);
    AsExtensionOwner([&] {
        SqlResult have = ShadowKeyColumns(def);
        if (SameKeys(have, def, keys))
            return;
        std::vector<std::string> old;
        for (size_t i = 0; i < have.rows.size(); i++)
            old.push_back(have.Text(i, 0));
        // The new columns are computed from every shadow row's key text (a
        // rewrite of the table): in a subtransaction, so that keys which do
        // not read as the new type leave the shadow state as it was.
        std::optional<SubtransactionFailure> failure = InSubtransaction([&] {
            Sql(BuildShadowKeyColumnsDdl(spec, old));
            for (size_t i = 0; i < keys.size(); i++)
                Sql("COMMENT ON COLUMN " + shadow + "." + ShadowKeyColumn(i) + " IS " +
                    QuoteLiteral(def.key_columns[i]));
        });
        if (!failure)
            return;
        // The old typed columns would refuse key texts of the new type.
        if (!old.empty()) {
            spec.typed_keys.clear();
            Sql(BuildShadowKeyColumnsDdl(spec, old));
        }
        std::string name = def.name;
        std::string why = failure->message;
        PgGuard([&] {
            ereport(
                WARNING,
                (errmsg("sync \"%s\" plans by its keys' text: its shadow state's keys do not read as the "
                        "model's key types",
                        name.c_str()),
                 errdetail("%s", why.c_str()),
                 errhint("A key column of the model changed type. Keys recorded before are matched by their "
                         "text as the new type renders it; once no such key is left, the plan uses the "
                         "key's type again.")));
        });
    });
}

PlanSpec PreparePlan(const SyncDefinition &def, bool for_run) {
    PlanSpec spec = def.Plan(kSchema);
    AddAudienceFields(def, spec);
    Oid relid = ModelRelid(def);
    spec.key_unique = HasUniqueIndexOn(relid, def.key_columns);
    // Hash the values themselves when every mapped type has an extended hash
    // function; otherwise hash the payload's text (which the worker's fixed
    // session settings keep stable).
    bool hashable = true;
    std::vector<std::string> columns;
    bool unique_names = true;
    WithResultDesc(def, BuildPayloadColumnsQuery(spec), [&](TupleDesc desc) {
        for (int i = 0; desc && i < desc->natts; i++) {
            Form_pg_attribute att = TupleDescAttr(desc, i);
            if (att->attisdropped)
                continue;
            TypeCacheEntry *tc = lookup_type_cache(att->atttypid, TYPECACHE_HASH_EXTENDED_PROC);
            if (!OidIsValid(tc->hash_extended_proc))
                hashable = false;
            std::string name = NameStr(att->attname);
            for (const auto &c : columns)
                unique_names = unique_names && c != name;
            columns.push_back(name);
        }
    });
    spec.hash_values = hashable;
    // Without MAP the row hash is over the model's columns by name (the same
    // value as over the whole row), unless a name is ambiguous.
    if (spec.map.empty() && unique_names)
        spec.model_columns = columns;
    // Typed keys when the shadow table has them as the model's key types
    // are now (EnsureShadowKeys); otherwise the key's text.
    std::vector<ModelKeyType> keys = ModelKeyTypes(def);
    if (!keys.empty() && SameKeys(ShadowKeyColumns(def), def, keys))
        for (const auto &k : keys)
            spec.typed_keys.push_back(k.shadow);
    if (for_run && g_plan_work_mem_kb > 0) {
        std::string value = std::to_string(g_plan_work_mem_kb);
        PgGuard([&] { SetLocalSetting("work_mem", value.c_str()); });
    }
    // With a unique index on the model's key and typed keys compared in the
    // type's own order (no "C" collation to re-sort by), the join is a
    // merge of two ordered index scans: no hash table of a million rows to
    // build or spill, and memory flat in the model's size. The planner,
    // costing the index scans' heap visits high, would rather hash; measured
    // end to end the merge is faster (docs/benchmarks.md).
    bool mergeable = for_run && spec.key_unique && !spec.typed_keys.empty();
    for (const auto &k : spec.typed_keys)
        mergeable = mergeable && !k.collatable;
    if (mergeable)
        PgGuard([] { SetLocalSetting("enable_hashjoin", "off"); });
    return spec;
}

} // namespace revetl::pg
