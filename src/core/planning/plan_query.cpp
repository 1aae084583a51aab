#include "core/planning/plan_query.hpp"

#include <algorithm>

#include "core/common/sql_text.hpp"

namespace revetl {

namespace {

// Key and payload objects: jsonb_build_object's result, byte for byte,
// with each argument's conversion looked up once per query rather than
// once per row (src/pg/object_jsonb.cpp).
constexpr const char *kObjectJsonb = "revetl.object_jsonb(";

std::string KeyObject(const std::vector<std::string> &key_columns) {
    std::string out = kObjectJsonb;
    for (size_t i = 0; i < key_columns.size(); i++) {
        if (i > 0)
            out += ", ";
        out += QuoteLiteral(key_columns[i]) + ", src." + QuoteIdent(key_columns[i]);
    }
    out += ")";
    return out;
}

// The same object built from the key columns passed through the plan's
// subqueries as m.kc0, m.kc1, ...
std::string PassedKeyObject(const std::vector<std::string> &key_columns) {
    std::string out = kObjectJsonb;
    for (size_t i = 0; i < key_columns.size(); i++)
        out += (i ? ", " : "") + QuoteLiteral(key_columns[i]) + ", m.kc" + std::to_string(i);
    return out + ")";
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

namespace {

// The plan's key_json column: the key as jsonb, for the rows a run refuses
// (`refused`: NULL or duplicate keys, unhashed identifiers; their keys go to
// revetl.rejected_rows), or for every row returned when the spec asks
// (preview_sync). Built for every planned row, it was a second
// jsonb_build_object per add and a jsonb_in per removal, about 6% of a first
// run's process time, for a value the run never reads.
std::string KeyJsonColumn(const PlanSpec &spec, const std::string &refused) {
    const std::string object = PassedKeyObject(spec.key_columns);
    if (spec.key_json_for_every_row)
        return "CASE WHEN m.present THEN " + object + " ELSE s.key::pg_catalog.jsonb END";
    return "CASE WHEN m.present AND (" + refused + ") THEN " + object + " END";
}

} // namespace

std::string PayloadExpression(const PlanSpec &spec) {
    if (spec.map.empty())
        return "pg_catalog.to_jsonb(src.*)";
    std::string out = kObjectJsonb;
    for (size_t i = 0; i < spec.map.size(); i++) {
        if (i > 0)
            out += ", ";
        out += QuoteLiteral(spec.map[i].field) + ", (" + spec.map[i].expression + "\n)";
    }
    out += ")";
    return out;
}

namespace {

// The captured keys as typed values (cap.k0, cap.k1, ...): cast back from
// the key's JSON, so that the model can be filtered through its index and
// the shadow key text re-rendered canonically whatever the session that
// captured it had for TimeZone or DateStyle.
std::string CapturedKeys(const PlanSpec &spec) {
    const CaptureFilter &c = *spec.capture;
    std::string cols;
    for (size_t i = 0; i < spec.key_columns.size(); i++)
        cols += (i ? ", " : "") + std::string("(c.key::pg_catalog.jsonb OPERATOR(pg_catalog.->>) ") +
                QuoteLiteral(spec.key_columns[i]) + ")::" + c.key_types[i] + " AS k" + std::to_string(i);
    std::string due_cols;
    for (size_t i = 0; i < spec.key_columns.size(); i++)
        due_cols += (i ? ", " : "") + std::string("(v.key::pg_catalog.jsonb OPERATOR(pg_catalog.->>) ") +
                    QuoteLiteral(spec.key_columns[i]) + ")::" + c.key_types[i];
    // Captured keys, and keys whose delivery is due to be verified.
    return "SELECT " + cols + " FROM revetl.captured_changes c WHERE c.sync_id OPERATOR(pg_catalog.=) " +
           std::to_string(c.sync_id) + " AND c.id OPERATOR(pg_catalog.<=) " +
           std::to_string(c.max_capture_id) + " AND c.key IS NOT NULL UNION SELECT " + due_cols + " FROM " +
           QualifiedName(spec.shadow_schema, spec.shadow_table) +
           " AS v WHERE v.verify_after OPERATOR(pg_catalog.<=) pg_catalog.now()";
}

// MODE AUDIENCE: the identifiers' hash, from the payload (without MAP, or
// when the payload's text is hashed anyway).
std::string IdentifierHash(const PlanSpec &spec) {
    std::string out = "pg_catalog.hashtextextended(pg_catalog.jsonb_build_array(";
    for (size_t i = 0; i < spec.identifier_fields.size(); i++)
        out += (i ? ", " : "") + std::string("x.payload OPERATOR(pg_catalog.->) ") +
               QuoteLiteral(spec.identifier_fields[i]);
    return out + ")::pg_catalog.text, 0)";
}

// Whether the value is a SHA-256 hash in lower-case hex (NULL: no).
std::string IsSha256Hex(const std::string &text_value) {
    return "coalesce((" + text_value + ") OPERATOR(pg_catalog.~) '^[0-9a-f]{64}$', false)";
}

std::string RowHash(const PlanSpec &spec) {
    if (!spec.identifier_fields.empty())
        return IdentifierHash(spec);
    if (!spec.hash_values)
        return "pg_catalog.hashtextextended(x.payload::pg_catalog.text, 0)";
    return "pg_catalog.hash_record_extended(x.hash_row, 0)";
}

std::string HashRow(const PlanSpec &spec) {
    if (spec.map.empty())
        return "src";
    std::string out = "ROW(";
    for (size_t i = 0; i < spec.map.size(); i++)
        out += (i ? ", " : "") + std::string("(") + spec.map[i].expression + "\n)";
    return out + ")";
}

// `expr` compared as a typed key: in the "C" collation when the type has
// collations, so that text keys stay distinct byte for byte as their text
// once was, whatever collation the model's column has.
std::string TypedKey(const ShadowKeyType &t, const std::string &expr) {
    return t.collatable ? expr + " COLLATE pg_catalog.\"C\"" : expr;
}

// The plan over a shadow table with typed key columns (spec.typed_keys):
// the model's key columns are joined to key_1, key_2, ... as they are, so
// no key text is built for a model row the plan does not return, and the
// row hash is revetl.row_hash over the values. Same columns and the same
// decisions as the text-keyed plan below.
std::string BuildTypedPlanQuery(const PlanSpec &spec) {
    const std::string shadow = QualifiedName(spec.shadow_schema, spec.shadow_table);
    const std::string row_hash = QuoteIdent(spec.shadow_schema) + ".row_hash";
    const size_t nkeys = spec.key_columns.size();

    std::string key_list;
    for (size_t i = 0; i < nkeys; i++)
        key_list += (i ? ", " : "") + std::string("src.") + QuoteIdent(spec.key_columns[i]);

    std::string model_filter;
    std::string shadow_source = shadow;
    std::string with;
    if (spec.capture) {
        std::string cap_cols;
        std::string cap_match;
        for (size_t i = 0; i < nkeys; i++) {
            cap_cols += (i ? ", " : "") + std::string("cap.k") + std::to_string(i);
            cap_match += (i ? " AND " : "") + TypedKey(spec.typed_keys[i], "v." + ShadowKeyColumn(i)) + " " +
                         spec.typed_keys[i].eq_operator + " cap.k" + std::to_string(i);
        }
        with = "WITH cap AS MATERIALIZED (" + CapturedKeys(spec) + ") ";
        model_filter = " WHERE " + (nkeys == 1 ? key_list : "ROW(" + key_list + ")") +
                       " OPERATOR(pg_catalog.=) ANY (SELECT " + cap_cols + " FROM cap)";
        // The shadow rows are looked up key by key from the captured keys
        // (a nested loop over cap, an index scan of the typed key columns
        // each): OFFSET 0 keeps the lookup a subquery of its own, so that
        // the planner cannot turn it into a semi join over the whole shadow
        // table. It did, when the key columns had no statistics yet (right
        // after a first run filled the shadow): a sequential scan of every
        // shadow row at each of an ON CHANGE run's plans, many a second.
        // cap's rows are distinct (UNION), so no shadow row comes twice.
        shadow_source = "(SELECT v.* FROM cap, LATERAL (SELECT * FROM " + shadow + " AS v WHERE " +
                        cap_match + " OFFSET 0) AS v)";
    }

    std::string passed_keys;
    std::string passed_cols;
    std::string partition;
    std::string any_null;
    std::string join_on;
    for (size_t i = 0; i < nkeys; i++) {
        const std::string kc = "kc" + std::to_string(i);
        passed_keys += "src." + QuoteIdent(spec.key_columns[i]) + " AS " + kc + ", ";
        passed_cols += "x." + kc + ", ";
        partition += (i ? ", " : "") + TypedKey(spec.typed_keys[i], "x." + kc);
        any_null += (i ? " OR " : "") + std::string("m.") + kc + " IS NULL";
        join_on += (i ? " AND " : "") + TypedKey(spec.typed_keys[i], "s." + ShadowKeyColumn(i)) + " " +
                   spec.typed_keys[i].eq_operator + " " + TypedKey(spec.typed_keys[i], "m." + kc);
    }
    any_null = "(" + any_null + ")";

    // The mapped values are passed through as columns (v0, v1, ...), hashed
    // where the model is scanned, and built into the payload's jsonb in the
    // outer query, only for the rows the plan returns (see BuildPlanQuery).
    const bool map_values = !spec.map.empty() && spec.hash_values;
    std::string values;
    std::string passed_values;
    std::string payload = "m.payload";
    std::string hash;
    bool by_column = false;
    if (map_values) {
        std::string fields;
        std::string value_args;
        for (size_t i = 0; i < spec.map.size(); i++) {
            const std::string v = "v" + std::to_string(i);
            values += (i ? ", (" : "(") + spec.map[i].expression + "\n) AS " + v;
            passed_values += "x." + v + ", ";
            value_args += (i ? ", x." : "x.") + v;
            fields += (i ? ", " : "") + QuoteLiteral(spec.map[i].field) + ", m." + v;
        }
        payload = "CASE WHEN m.present THEN " + std::string(kObjectJsonb) + fields + ") END";
        // row_hash takes at most 100 arguments (FUNC_MAX_ARGS).
        hash = spec.map.size() <= 100 ? row_hash + "(" + value_args + ")"
                                      : "pg_catalog.hash_record_extended(ROW(" + value_args + "), 0)";
    } else if (!spec.hash_values) {
        hash = "pg_catalog.hashtextextended(x.payload::pg_catalog.text, 0)";
    } else if (!spec.model_columns.empty() && spec.model_columns.size() <= 50) {
        // The columns are passed through one by one, hashed, and built into
        // the payload in the outer query: an object of each column by its
        // name is the same jsonb as to_jsonb(src.*), without forming the
        // whole-row value for every model row (the object takes at most 100
        // arguments, two per column).
        std::string args;
        std::string fields;
        for (size_t i = 0; i < spec.model_columns.size(); i++) {
            const std::string c = "c" + std::to_string(i);
            args += (i ? ", x." : "x.") + c;
            values += (i ? ", src." : "src.") + QuoteIdent(spec.model_columns[i]) + " AS " + c;
            passed_values += "x." + c + ", ";
            fields += (i ? ", " : "") + QuoteLiteral(spec.model_columns[i]) + ", m." + c;
        }
        hash = row_hash + "(" + args + ")";
        payload = "CASE WHEN m.present THEN " + std::string(kObjectJsonb) + fields + ") END";
        by_column = true;
    } else {
        hash = "pg_catalog.hash_record_extended(x.hash_row, 0)";
        values = ", src AS hash_row";
    }
    std::string model_rows =
        "SELECT " + passed_keys +
        (map_values || by_column ? values : PayloadExpression(spec) + " AS payload" + values) + " FROM " +
        ModelSource(spec.model) + " AS src" + model_filter;

    std::string dups = spec.key_unique ? "1::pg_catalog.int8 AS dups"
                                       : "pg_catalog.count(*) OVER (PARTITION BY " + partition + ") AS dups";
    std::string m = "SELECT true AS present, " + passed_cols +
                    (map_values || by_column ? passed_values : std::string("x.payload, ")) + hash +
                    " AS h, " + dups + " FROM (" + model_rows + ") AS x";

    std::string join = spec.include_removals ? "FULL JOIN" : "LEFT JOIN";

    return with +
           "SELECT (CASE WHEN m.present IS NULL THEN 'r' "
           "WHEN " +
           any_null +
           " THEN 'n' "
           "WHEN m.dups OPERATOR(pg_catalog.>) 1 THEN 'd' "
           "WHEN s.key IS NULL OR s.removed THEN 'a' "
           "ELSE 'c' END)::pg_catalog.\"char\" AS op, "
           // A key the shadow state holds keeps its text there (the row the
           // delivery updates), even if the model's values render it
           // differently now (numeric scale, a key type changed).
           "coalesce(s.key, " +
           PassedKeyObject(spec.key_columns) + "::pg_catalog.text) AS key, " +
           KeyJsonColumn(spec, any_null + " OR m.dups OPERATOR(pg_catalog.>) 1") + " AS key_json, " +
           payload +
           " AS payload, m.h AS row_hash, "
           "CASE WHEN m.present AND s.removed THEN NULL ELSE s.dest_id END AS dest_id, m.dups, " +
           (spec.resync
                ? "CASE WHEN m.present THEN " + std::to_string(-spec.run_id) +
                      "::pg_catalog.int8 ELSE s.version END AS version "
                : "coalesce(s.version, " + std::to_string(-spec.run_id) + "::pg_catalog.int8) AS version ") +
           "FROM (" + m + ") AS m " + join + " " + shadow_source + " AS s ON " + join_on +
           // A key the model no longer has is planned only as a removal, and
           // a tombstone only once its verify_after has passed; the model's
           // side is NULL there, so its tests must not decide for it.
           " WHERE CASE WHEN m.present IS NULL THEN NOT s.removed OR s.verify_after OPERATOR(pg_catalog.<=) "
           "pg_catalog.now() ELSE " +
           any_null + " OR m.dups OPERATOR(pg_catalog.>) 1 OR s.key IS NULL OR s.removed" +
           std::string(spec.resync ? " OR m.present" : "") +
           std::string(spec.include_changes
                           ? " OR s.row_hash OPERATOR(pg_catalog.<>) m.h OR (s.row_hash IS NULL) "
                             "OPERATOR(pg_catalog.<>) "
                             "(m.h IS NULL) OR s.verify_after OPERATOR(pg_catalog.<=) pg_catalog.now()"
                           : "") +
           " END";
}

} // namespace

std::string BuildPlanQuery(const PlanSpec &spec) {
    // MODE AUDIENCE (identifier hashes, the hashed-identifier rule) is
    // planned by the text-keyed query alone for now.
    if (!spec.typed_keys.empty() && spec.typed_keys.size() == spec.key_columns.size() &&
        spec.identifier_fields.empty())
        return BuildTypedPlanQuery(spec);
    const std::string key_json = KeyObject(spec.key_columns);
    const std::string shadow = QualifiedName(spec.shadow_schema, spec.shadow_table);

    std::string key_list;
    for (size_t i = 0; i < spec.key_columns.size(); i++)
        key_list += (i ? ", " : "") + std::string("src.") + QuoteIdent(spec.key_columns[i]);

    std::string model_filter;
    std::string shadow_source = shadow;
    std::string with;
    if (spec.capture) {
        std::string cap_cols;
        std::string cap_json;
        for (size_t i = 0; i < spec.key_columns.size(); i++) {
            cap_cols += (i ? ", " : "") + std::string("cap.k") + std::to_string(i);
            cap_json += (i ? ", " : "") + QuoteLiteral(spec.key_columns[i]) + ", cap.k" + std::to_string(i);
        }
        with = "WITH cap AS MATERIALIZED (" + CapturedKeys(spec) + ") ";
        model_filter = " WHERE " + (spec.key_columns.size() == 1 ? key_list : "ROW(" + key_list + ")") +
                       " OPERATOR(pg_catalog.=) ANY (SELECT " + cap_cols + " FROM cap)";
        shadow_source = "(SELECT * FROM " + shadow + " WHERE key OPERATOR(pg_catalog.=) ANY (SELECT " +
                        kObjectJsonb + cap_json + ")::pg_catalog.text COLLATE pg_catalog.\"C\" FROM cap))";
    }

    // The key's text form (canonical jsonb rendering of {column: value}) is what
    // the shadow table is keyed by; "C" collation keeps comparisons bytewise.
    // A row whose key has a NULL gets no key text, so it can never match.
    //
    // The key's jsonb is built in the outer query, from the key columns
    // passed through as they are, so only for the rows the plan returns:
    // under a FULL JOIN the model's side is nullable, and PostgreSQL
    // evaluates a non-strict expression of it (revetl.object_jsonb is one)
    // for every model row, at the scan.
    std::string passed_keys;
    std::string passed_cols;
    for (size_t i = 0; i < spec.key_columns.size(); i++) {
        const std::string kc = "kc" + std::to_string(i);
        passed_keys += "src." + QuoteIdent(spec.key_columns[i]) + " AS " + kc + ", ";
        passed_cols += "x." + kc + ", ";
    }
    //
    // For the same reason a MAP's values are passed through as columns
    // (v0, v1, ...), hashed as a row, and built into the payload's jsonb in
    // the outer query. (Without MAP the payload, to_jsonb(src.*), is strict
    // and costs nothing for rows that are not returned; with the payload-text
    // hash the payload is needed for every row anyway.)
    const bool map_values = !spec.map.empty() && spec.hash_values;
    const bool audience = !spec.identifier_fields.empty();
    auto identifies = [&](const std::string &field) {
        for (const auto &f : spec.identifier_fields)
            if (f == field)
                return true;
        return false;
    };
    std::string values;
    std::string passed_values;
    std::string value_row;
    std::string payload = "m.payload";
    // MODE AUDIENCE with hashed identifiers: whether any identifier is not
    // a SHA-256 hash (the row is then invalid and never sent).
    std::string bad_id;
    if (audience && spec.hashed_identifiers) {
        for (size_t i = 0; i < spec.identifier_fields.size(); i++) {
            std::string value;
            for (size_t j = 0; map_values && j < spec.map.size(); j++)
                if (spec.map[j].field == spec.identifier_fields[i])
                    value = "x.v" + std::to_string(j) + "::pg_catalog.text";
            if (value.empty())
                value = "x.payload OPERATOR(pg_catalog.->>) " + QuoteLiteral(spec.identifier_fields[i]);
            const bool unhashed = std::find(spec.unhashed_fields.begin(), spec.unhashed_fields.end(),
                                            spec.identifier_fields[i]) != spec.unhashed_fields.end();
            bad_id +=
                (i ? " AND " : "") + (unhashed ? "coalesce((" + value + ") OPERATOR(pg_catalog.<>) '', false)"
                                               : IsSha256Hex(value));
        }
        bad_id = "NOT (" + bad_id + ")";
    }
    if (map_values) {
        std::string fields;
        for (size_t i = 0; i < spec.map.size(); i++) {
            const std::string v = "v" + std::to_string(i);
            values += (i ? ", (" : "(") + spec.map[i].expression + "\n) AS " + v;
            passed_values += "x." + v + ", ";
            // MODE AUDIENCE hashes the identifiers alone.
            if (!audience || identifies(spec.map[i].field))
                value_row += (value_row.empty() ? "x." : ", x.") + v;
            fields += (i ? ", " : "") + QuoteLiteral(spec.map[i].field) + ", m." + v;
        }
        // An identifier field that is not mapped hashes as NULL (CREATE SYNC
        // refuses such a definition).
        if (value_row.empty())
            value_row = "NULL::pg_catalog.text";
        payload = "CASE WHEN m.present THEN " + std::string(kObjectJsonb) + fields + ") END";
    }
    std::string model_rows =
        "SELECT CASE WHEN " + AnyKeyNull(spec.key_columns) + " THEN NULL ELSE " + key_json +
        "::pg_catalog.text END COLLATE pg_catalog.\"C\" AS k, " + passed_keys +
        (map_values ? values
                    : PayloadExpression(spec) + " AS payload" +
                          (spec.hash_values ? ", " + HashRow(spec) + " AS hash_row" : std::string())) +
        " FROM " + ModelSource(spec.model) + " AS src" + model_filter;

    // With a unique index on the key there can be no duplicates: no need for
    // the window, which would sort the whole model.
    std::string dups = spec.key_unique ? "1::pg_catalog.int8 AS dups"
                                       : "pg_catalog.count(*) OVER (PARTITION BY x.k) AS dups";
    std::string m = "SELECT true AS present, x.k, " + passed_cols +
                    (map_values ? passed_values + "pg_catalog.hash_record_extended(ROW(" + value_row + "), 0)"
                                : "x.payload, " + RowHash(spec)) +
                    " AS h, " + dups + (bad_id.empty() ? std::string() : ", " + bad_id + " AS bad_id") +
                    " FROM (" + model_rows + ") AS x";

    std::string join = spec.include_removals ? "FULL JOIN" : "LEFT JOIN";

    return with +
           "SELECT (CASE WHEN m.present IS NULL THEN 'r' "
           "WHEN m.k IS NULL THEN 'n' "
           "WHEN m.dups OPERATOR(pg_catalog.>) 1 THEN 'd' " +
           std::string(bad_id.empty() ? "" : "WHEN m.bad_id THEN 'h' ") +
           "WHEN s.key IS NULL OR s.removed THEN 'a' "
           "ELSE 'c' END)::pg_catalog.\"char\" AS op, "
           "coalesce(m.k, s.key, " +
           PassedKeyObject(spec.key_columns) + "::pg_catalog.text) AS key, " +
           KeyJsonColumn(spec, "m.k IS NULL OR m.dups OPERATOR(pg_catalog.>) 1" +
                                   std::string(bad_id.empty() ? "" : " OR m.bad_id")) +
           " AS key_json, " + payload +
           " AS payload, m.h AS row_hash, "
           // A re-added key does not reuse the id of the record it removed.
           "CASE WHEN m.present AND s.removed THEN NULL ELSE s.dest_id END AS dest_id, m.dups, " +
           (spec.resync
                ? "CASE WHEN m.present THEN " + std::to_string(-spec.run_id) +
                      "::pg_catalog.int8 ELSE s.version END AS version "
                : "coalesce(s.version, " + std::to_string(-spec.run_id) + "::pg_catalog.int8) AS version ") +
           "FROM (" + m + ") AS m " + join + " " + shadow_source +
           " AS s ON s.key OPERATOR(pg_catalog.=) m.k "
           "WHERE CASE WHEN m.present IS NULL THEN NOT s.removed OR s.verify_after OPERATOR(pg_catalog.<=) "
           "pg_catalog.now() ELSE m.k IS NULL OR m.dups OPERATOR(pg_catalog.>) 1 OR s.key IS NULL OR "
           "s.removed" +
           std::string(bad_id.empty() ? "" : " OR m.bad_id") +
           std::string(spec.resync ? " OR m.present" : "") +
           std::string(spec.include_changes
                           ? " OR s.row_hash OPERATOR(pg_catalog.<>) m.h OR (s.row_hash IS NULL) "
                             "OPERATOR(pg_catalog.<>) "
                             "(m.h IS NULL) OR s.verify_after OPERATOR(pg_catalog.<=) pg_catalog.now()"
                           : "") +
           " END";
}

std::string BadIdentifierReason(const PlanSpec &spec) {
    std::string fields;
    for (size_t i = 0; i < spec.identifier_fields.size(); i++)
        fields += (i ? ", " : "") + spec.identifier_fields[i];
    std::string unhashed;
    for (size_t i = 0; i < spec.unhashed_fields.size(); i++)
        unhashed += (i ? ", " : "") + spec.unhashed_fields[i];
    return "an identifier is not a SHA-256 hash in lower-case hex (64 characters) or is NULL: this "
           "destination "
           "takes hashed identifiers only (identifier fields: " +
           fields + ")" +
           (unhashed.empty() ? std::string()
                             : "; " + unhashed + " " + (spec.unhashed_fields.size() > 1 ? "are" : "is") +
                                   " sent unhashed and must only be present");
}

std::string BuildPayloadColumnsQuery(const PlanSpec &spec) {
    if (spec.map.empty())
        return "SELECT * FROM " + ModelSource(spec.model) + " AS src LIMIT 0";
    std::string out = "SELECT ";
    for (size_t i = 0; i < spec.map.size(); i++)
        out += (i ? ", " : "") + std::string("(") + spec.map[i].expression + "\n)";
    return out + " FROM " + ModelSource(spec.model) + " AS src LIMIT 0";
}

std::string BuildValidationQuery(const PlanSpec &spec) {
    return "SELECT " + KeyObject(spec.key_columns) + " AS key_json, " + PayloadExpression(spec) +
           " AS payload FROM " + ModelSource(spec.model) + " AS src LIMIT 0";
}

std::string BuildShadowTableDdl(const std::string &schema, const std::string &table) {
    // verify_after: the destination may apply an older request for this row
    // late (a timeout, a lost connection, a killed run); after this time the
    // row is sent again once (its row, or its delete), so that the latest
    // version is the one that stays. removed: a tombstone, kept only until
    // then. version: the run that last recorded the key (Change::version).
    // (The upgrade script adds the last two columns to 0.1.0's tables, in
    // this order: keep both in step.)
    return "CREATE TABLE " + QualifiedName(schema, table) +
           " (key text COLLATE \"C\" PRIMARY KEY, row_hash bigint NOT NULL, dest_id text, "
           "run_id bigint NOT NULL, synced_at timestamptz NOT NULL DEFAULT pg_catalog.now(), verify_after "
           "timestamptz, version bigint NOT NULL DEFAULT 0, removed boolean NOT NULL DEFAULT false); "
           "CREATE INDEX ON " +
           QualifiedName(schema, table) + " (verify_after) WHERE verify_after IS NOT NULL";
}

std::string ShadowKeyColumn(size_t i) {
    return "key_" + std::to_string(i + 1);
}

std::string BuildShadowKeyColumnsDdl(const PlanSpec &spec, const std::vector<std::string> &old_columns) {
    const std::string shadow = QualifiedName(spec.shadow_schema, spec.shadow_table);
    std::string alter;
    for (const auto &c : old_columns)
        alter += (alter.empty() ? "" : ", ") + std::string("DROP COLUMN ") + QuoteIdent(c);
    std::string index_cols;
    for (size_t i = 0; i < spec.typed_keys.size(); i++) {
        const ShadowKeyType &t = spec.typed_keys[i];
        alter += (alter.empty() ? "" : ", ") + std::string("ADD COLUMN ") + ShadowKeyColumn(i) + " " +
                 t.type + (t.collatable ? " COLLATE pg_catalog.\"C\"" : "") + " GENERATED ALWAYS AS (" +
                 QuoteIdent(spec.shadow_schema) + ".key_field(key, " + QuoteLiteral(spec.key_columns[i]) +
                 ", NULL::" + t.type + ")) STORED";
        index_cols += (i ? ", " : "") + ShadowKeyColumn(i);
    }
    std::string out = "ALTER TABLE " + shadow + " " + alter;
    if (!spec.typed_keys.empty())
        out += "; CREATE INDEX ON " + shadow + " (" + index_cols + ")";
    return out;
}

} // namespace revetl
