#include "pg/planning.hpp"

#include "core/common/sql_text.hpp"
#include "core/connectors/spec.hpp"
#include "pg/catalog.hpp"
#include "pg/spi.hpp"

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
    CheckSyncTarget(type, dest.server_options, target, def.name, dest.server_name);
    std::vector<std::string> fields;
    for (const auto &m : def.map)
        fields.push_back(m.field);
    spec.identifier_fields = AudienceIdentifierFields(type, target, fields);
    spec.hashed_identifiers = type.audience.hashed_identifiers;
}

PlanSpec PreparePlan(const SyncDefinition &def) {
    PlanSpec spec = def.Plan(kSchema);
    AddAudienceFields(def, spec);
    Oid relid = ModelRelid(def);
    spec.key_unique = HasUniqueIndexOn(relid, def.key_columns);
    // Hash the values themselves when every mapped type has an extended hash
    // function; otherwise hash the payload's text (which the worker's fixed
    // session settings keep stable).
    std::string sql = BuildPayloadColumnsQuery(spec);
    bool hashable = true;
    AsSyncOwner(def.owner, def.search_path, [&] {
        PgGuard([&] {
            SPIPlanPtr plan = SPI_prepare(sql.c_str(), 0, nullptr);
            if (!plan)
                elog(ERROR, "revetl: could not prepare the payload of sync \"%s\"", def.name.c_str());
            List *sources = SPI_plan_get_plan_sources(plan);
            CachedPlanSource *source = static_cast<CachedPlanSource *>(linitial(sources));
            TupleDesc desc = source->resultDesc;
            for (int i = 0; desc && i < desc->natts; i++) {
                Form_pg_attribute att = TupleDescAttr(desc, i);
                if (att->attisdropped)
                    continue;
                TypeCacheEntry *tc = lookup_type_cache(att->atttypid, TYPECACHE_HASH_EXTENDED_PROC);
                if (!OidIsValid(tc->hash_extended_proc))
                    hashable = false;
            }
            SPI_freeplan(plan);
        });
    });
    spec.hash_values = hashable;
    return spec;
}

} // namespace revetl::pg
