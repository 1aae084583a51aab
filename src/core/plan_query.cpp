#include "core/plan_query.hpp"

#include "core/sql_text.hpp"

namespace revetl {

namespace {

std::string KeyObject(const std::vector<std::string> &key_columns) {
    std::string out = "jsonb_build_object(";
    for (size_t i = 0; i < key_columns.size(); i++) {
        if (i > 0)
            out += ", ";
        out += QuoteLiteral(key_columns[i]) + ", src." + QuoteIdent(key_columns[i]);
    }
    out += ")";
    return out;
}

std::string AnyKeyNull(const std::vector<std::string> &key_columns) {
    std::string out = "(";
    for (size_t i = 0; i < key_columns.size(); i++) {
        if (i > 0)
            out += " OR ";
        out += "src." + QuoteIdent(key_columns[i]) + " IS NULL";
    }
    out += ")";
    return out;
}

} // namespace

std::string ModelSource(const ModelRef &model) {
    if (model.kind == ModelRef::Kind::Relation)
        return QualifiedName(model.schema, model.name);
    // The newline keeps a trailing "--" comment in the query from swallowing
    // the closing parenthesis.
    return "(" + model.query + "\n)";
}

std::string PayloadExpression(const PlanSpec &spec) {
    if (spec.map.empty())
        return "to_jsonb(src.*)";
    std::string out = "jsonb_build_object(";
    for (size_t i = 0; i < spec.map.size(); i++) {
        if (i > 0)
            out += ", ";
        out += QuoteLiteral(spec.map[i].field) + ", (" + spec.map[i].expression + "\n)";
    }
    out += ")";
    return out;
}

std::string BuildPlanQuery(const PlanSpec &spec) {
    const std::string key_json = KeyObject(spec.key_columns);
    const std::string shadow = QualifiedName(spec.shadow_schema, spec.shadow_table);

    // The key's text form (canonical jsonb rendering of {column: value}) is what
    // the shadow table is keyed by; "C" collation keeps comparisons bytewise.
    // A row whose key has a NULL gets no key text, so it can never match.
    std::string model_rows = "SELECT CASE WHEN " + AnyKeyNull(spec.key_columns) + " THEN NULL ELSE " +
                             key_json + "::text END COLLATE \"C\" AS k, " + key_json + " AS key_json, " +
                             PayloadExpression(spec) + " AS payload FROM " + ModelSource(spec.model) +
                             " AS src";

    std::string m = "SELECT true AS present, x.k, x.key_json, x.payload, "
                    "hashtextextended(x.payload::text, 0) AS h, "
                    "count(*) OVER (PARTITION BY x.k) AS dups FROM (" +
                    model_rows + ") AS x";

    std::string join = spec.include_removals ? "FULL JOIN" : "LEFT JOIN";

    return "SELECT (CASE WHEN m.present IS NULL THEN 'r' "
           "WHEN m.k IS NULL THEN 'n' "
           "WHEN m.dups > 1 THEN 'd' "
           "WHEN s.key IS NULL THEN 'a' "
           "ELSE 'c' END)::\"char\" AS op, "
           "coalesce(m.k, s.key, m.key_json::text) AS key, "
           "coalesce(m.key_json, s.key::jsonb) AS key_json, "
           "m.payload, m.h AS row_hash, s.dest_id, m.dups "
           "FROM (" +
           m + ") AS m " + join + " " + shadow +
           " AS s ON s.key = m.k "
           "WHERE m.present IS NULL OR m.k IS NULL OR m.dups > 1 OR s.key IS NULL" +
           std::string(spec.include_changes ? " OR s.row_hash IS DISTINCT FROM m.h" : "");
}

std::string BuildValidationQuery(const PlanSpec &spec) {
    return "SELECT " + KeyObject(spec.key_columns) + " AS key_json, " + PayloadExpression(spec) +
           " AS payload FROM " + ModelSource(spec.model) + " AS src LIMIT 0";
}

std::string BuildShadowTableDdl(const std::string &schema, const std::string &table) {
    return "CREATE TABLE " + QualifiedName(schema, table) +
           " (key text COLLATE \"C\" PRIMARY KEY, row_hash bigint NOT NULL, dest_id text, "
           "run_id bigint NOT NULL, synced_at timestamptz NOT NULL DEFAULT now())";
}

} // namespace revetl
