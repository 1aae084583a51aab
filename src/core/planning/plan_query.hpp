// Builds the SQL that plans a run: a full diff of the model against the sync's
// shadow state. PostgreSQL does the heavy lifting (a hash join over two
// streams); revetl only writes the query, quoting every name it did not make.
// The query runs as the sync's owner with the owner's search_path: every
// function, operator, type and collation revetl itself names is qualified
// with pg_catalog, so that a schema in that path (which may come before
// pg_catalog) cannot change what revetl's own parts of the query do.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace revetl {

struct ModelRef {
    enum class Kind { Relation, Query };
    Kind kind = Kind::Relation;
    std::string schema; // Relation
    std::string name;   // Relation
    std::string query;  // Query: one SELECT, already checked by the caller
};

// One mapped field: a SQL expression over the model's columns (checked by
// the caller to be exactly one expression) and the destination field name.
struct MapEntry {
    std::string field;
    std::string expression;
};

// Restricts a plan to the keys captured by triggers (an incremental run):
// both the model and the shadow state are read only for those keys, so the
// cost follows the change, not the table.
struct CaptureFilter {
    int64_t sync_id = 0;
    int64_t max_capture_id = 0;         // captured rows up to this id
    std::vector<std::string> key_types; // SQL type of each key column, as format_type gives it
};

// A typed key column of a shadow table.
struct ShadowKeyType {
    std::string type;        // as format_type gives it: safe to splice into SQL
    std::string eq_operator; // the type's equality operator, qualified: OPERATOR(schema.=)
    bool collatable = false; // compared with the "C" collation (bytewise, as the key's text was)
};

struct PlanSpec {
    ModelRef model;
    std::vector<std::string> key_columns;
    std::vector<MapEntry> map; // empty: every model column, by its own name
    bool include_removals = false;
    bool include_changes = true; // false in INSERT mode: only new rows are sent
    // The model has a unique index on exactly the key columns: duplicate
    // keys are impossible, and the plan skips looking for them.
    bool key_unique = false;
    std::optional<CaptureFilter> capture;
    // How the row hash is computed: from the mapped values themselves
    // (hash_record_extended), or, when a mapped type has no hash function,
    // from the payload's text.
    bool hash_values = true;
    std::string shadow_schema;
    std::string shadow_table;
    // The shadow table's typed key columns (key_1, key_2, ..., see
    // BuildShadowKeyColumnsDdl), one per key column, in the model's key
    // types: the plan joins the model's key columns to them directly. Empty:
    // the plan joins on the key's text, built for every model row (a key
    // type whose jsonb form its input function cannot read back, or a sync
    // whose shadow table has not been given typed keys yet).
    std::vector<ShadowKeyType> typed_keys;
    // Without MAP: the model's columns, hashed as values with row_hash
    // (which equals hash_record_extended over the whole row). Empty: the
    // whole-row value is hashed (duplicate column names, too many columns).
    std::vector<std::string> model_columns;
    // The planning run: a key the shadow state does not hold gets the
    // version -run_id (see Change::version).
    int64_t run_id = 0;
    // Every row of the model is planned (an add, or a change where the
    // shadow state holds the key), based on -run_id so that each carries a
    // new idempotency key; removals as usual.
    bool resync = false;
    // MODE AUDIENCE: the payload fields that identify a member. The row hash
    // covers these alone, so a change of any other value plans nothing (a
    // member stays a member), and a change of an identifier plans a change
    // that the connector sends as a removal of the old member (the shadow
    // state's dest_id) and an addition of the new one.
    std::vector<std::string> identifier_fields;
    // The identifiers must be SHA-256 hashes in lower-case hex: a row with
    // any other value (or NULL) is planned as invalid (plan_op::kBadIdentifier).
    bool hashed_identifiers = false;
    // Identifier fields exempt from that rule (taken unhashed, such as an
    // external id): a NULL or empty value still makes the row invalid.
    std::vector<std::string> unhashed_fields;
    // The plan's key_json column (the key as jsonb) for every row it
    // returns (preview_sync shows it). Otherwise only for the rows it
    // refuses (op n, d or h), the only ones a run reads it for: built for
    // every add and removal too, it cost about 6% of a first run.
    bool key_json_for_every_row = false;
};

// Single-letter operation codes produced by the plan query's "op" column.
namespace plan_op {
inline constexpr char kAdd = 'a';
inline constexpr char kChange = 'c';
inline constexpr char kRemove = 'r';
inline constexpr char kNullKey = 'n';
inline constexpr char kDuplicateKey = 'd';
inline constexpr char kBadIdentifier = 'h'; // see PlanSpec::hashed_identifiers
} // namespace plan_op

// The reason recorded for a row planned as kBadIdentifier.
std::string BadIdentifierReason(const PlanSpec &spec);

// FROM-clause text for the model: "schema"."name" or ( query ).
std::string ModelSource(const ModelRef &model);

// The jsonb expression that renders one model row (alias src) as the payload.
std::string PayloadExpression(const PlanSpec &spec);

// The plan query. Columns, in order:
//   op "char", key text, key_json jsonb, payload jsonb, row_hash int8, dest_id text,
//   dups int8 (rows of the model sharing this key), version int8
// Only rows that need an action (or are invalid) are returned.
//
// A shadow row is live (the destination has the record as of row_hash) or a
// tombstone (`removed`: the record should not be there, but a request sent
// earlier may still be applied late, until verify_after). A model row whose
// key has a tombstone is an add; a tombstone whose key is not in the model
// is planned as a removal again once its verify_after has passed.
std::string BuildPlanQuery(const PlanSpec &spec);

// SELECT over the model that touches every key column and map expression and
// returns no row: run as the would-be owner at CREATE time, it proves the
// definition is valid and readable.
std::string BuildValidationQuery(const PlanSpec &spec);

// The expressions that make up the payload, one per mapped field (or every
// model column when there is no map), for type checks.
std::string BuildPayloadColumnsQuery(const PlanSpec &spec);

// DDL for a sync's shadow table.
std::string BuildShadowTableDdl(const std::string &schema, const std::string &table);

// The shadow table's typed key column for key column i (0-based): key_1, ...
std::string ShadowKeyColumn(size_t i);

// ALTER TABLE that gives a shadow table the typed key columns of `spec`
// (spec.typed_keys, one per spec.key_columns) generated from its key text,
// after dropping `old_columns` (typed key columns it had before), and the
// index the plan's join and the capture filter use.
std::string BuildShadowKeyColumnsDdl(const PlanSpec &spec, const std::vector<std::string> &old_columns);

} // namespace revetl
