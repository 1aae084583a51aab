#include "core/planning/plan_query.hpp"

#include "test_util.hpp"

#include <gtest/gtest.h>

#include <string>

using namespace revetl;
using revetl_test::Contains;
using revetl_test::EndsWith;
using revetl_test::NotContains;

namespace {

PlanSpec RelationSpec() {
    PlanSpec spec;
    spec.model.kind = ModelRef::Kind::Relation;
    spec.model.schema = "public";
    spec.model.name = "users";
    spec.key_columns = {"id"};
    spec.shadow_schema = "revetl_shadow";
    spec.shadow_table = "sync_1";
    return spec;
}

size_t Count(const std::string &haystack, const std::string &needle) {
    size_t n = 0;
    for (size_t pos = haystack.find(needle); pos != std::string::npos; pos = haystack.find(needle, pos + 1))
        n++;
    return n;
}

} // namespace

TEST(ModelSource, RelationIsQualifiedAndQuoted) {
    ModelRef m;
    m.kind = ModelRef::Kind::Relation;
    m.schema = "Sales";
    m.name = "open \"deals\"";
    EXPECT_EQ(ModelSource(m), "\"Sales\".\"open \"\"deals\"\"\"");
}

TEST(ModelSource, QueryIsParenthesizedWithNewlineBeforeClose) {
    ModelRef m;
    m.kind = ModelRef::Kind::Query;
    m.query = "SELECT id FROM t -- trailing comment";
    EXPECT_EQ(ModelSource(m), "(SELECT id FROM t -- trailing comment\n)");
    // The query's fields are ignored for a query model.
    m.schema = "s";
    m.name = "n";
    EXPECT_EQ(ModelSource(m), "(SELECT id FROM t -- trailing comment\n)");
}

TEST(PayloadExpression, EmptyMapSendsWholeRow) {
    PlanSpec spec = RelationSpec();
    EXPECT_EQ(PayloadExpression(spec), "pg_catalog.to_jsonb(src.*)");
}

TEST(PayloadExpression, MapExpressionsAreParenthesizedAndFieldsQuoted) {
    PlanSpec spec = RelationSpec();
    spec.map = {{"email", "lower(email)"}, {"it's", "score + 1 -- c"}};
    EXPECT_EQ(PayloadExpression(spec),
              "revetl.object_jsonb('email', (lower(email)\n), 'it''s', (score + 1 -- c\n))");
}

TEST(PayloadExpression, BackslashInFieldNameUsesEString) {
    PlanSpec spec = RelationSpec();
    spec.map = {{"a\\b", "x"}};
    EXPECT_EQ(PayloadExpression(spec), "revetl.object_jsonb(E'a\\\\b', (x\n))");
}

TEST(BuildPlanQuery, RelationSourceAndLeftJoinForUpsert) {
    PlanSpec spec = RelationSpec();
    std::string sql = BuildPlanQuery(spec);
    EXPECT_TRUE(Contains(sql, "FROM \"public\".\"users\" AS src"));
    EXPECT_TRUE(Contains(
        sql, ") AS m LEFT JOIN \"revetl_shadow\".\"sync_1\" AS s ON s.key OPERATOR(pg_catalog.=) m.k "));
    EXPECT_TRUE(NotContains(sql, "FULL JOIN"));
    EXPECT_TRUE(Contains(sql, "pg_catalog.to_jsonb(src.*) AS payload"));
    EXPECT_TRUE(Contains(sql, "revetl.object_jsonb('id', src.\"id\")"));
    EXPECT_TRUE(
        Contains(sql, "CASE WHEN (src.\"id\" IS NULL) THEN NULL ELSE revetl.object_jsonb('id', "
                      "src.\"id\")::pg_catalog.text END COLLATE pg_catalog.\"C\" AS k, src.\"id\" AS kc0, "));
    // The key's jsonb is not built per model row (see BuildPlanQuery).
    EXPECT_TRUE(NotContains(sql, "AS key_json, to_jsonb"));
    EXPECT_TRUE(Contains(sql, "SELECT true AS present, x.k, x.kc0, x.payload, "));
    // By default the hash is over the values themselves (the whole row here).
    EXPECT_TRUE(Contains(sql, "pg_catalog.hash_record_extended(x.hash_row, 0) AS h"));
    EXPECT_TRUE(Contains(sql, "pg_catalog.to_jsonb(src.*) AS payload, src AS hash_row FROM"));
    EXPECT_TRUE(NotContains(sql, "WITH cap"));
    EXPECT_TRUE(Contains(sql, "count(*) OVER (PARTITION BY x.k) AS dups"));
    // Output columns, in the documented order.
    EXPECT_EQ(
        sql.rfind(
            "SELECT (CASE WHEN m.present IS NULL THEN 'r' WHEN m.k IS NULL THEN 'n' "
            "WHEN m.dups OPERATOR(pg_catalog.>) 1 THEN 'd' WHEN s.key IS NULL OR s.removed THEN 'a' ELSE 'c' "
            "END)::pg_catalog.\"char\" AS op, "
            "coalesce(m.k, s.key, revetl.object_jsonb('id', m.kc0)::pg_catalog.text) AS key, "
            "CASE WHEN m.present AND (m.k IS NULL OR m.dups OPERATOR(pg_catalog.>) 1) THEN "
            "revetl.object_jsonb('id', m.kc0) END "
            "AS key_json, "
            "m.payload AS payload, m.h AS row_hash, CASE WHEN m.present AND s.removed THEN NULL ELSE "
            "s.dest_id END "
            "AS dest_id, m.dups, coalesce(s.version, 0::pg_catalog.int8) AS version FROM (",
            0),
        0u);
    EXPECT_TRUE(Contains(
        sql,
        "WHERE CASE WHEN m.present IS NULL THEN NOT s.removed OR s.verify_after OPERATOR(pg_catalog.<=) "
        "pg_catalog.now() ELSE m.k IS NULL OR m.dups OPERATOR(pg_catalog.>) 1 OR s.key IS NULL OR s.removed "
        "OR s.row_hash OPERATOR(pg_catalog.<>) m.h OR (s.row_hash IS NULL) OPERATOR(pg_catalog.<>) (m.h "
        "IS NULL)"));
}

TEST(BuildPlanQuery, FullJoinOnlyWithRemovals) {
    PlanSpec spec = RelationSpec();
    spec.include_removals = true;
    std::string sql = BuildPlanQuery(spec);
    EXPECT_TRUE(Contains(
        sql, ") AS m FULL JOIN \"revetl_shadow\".\"sync_1\" AS s ON s.key OPERATOR(pg_catalog.=) m.k "));
    EXPECT_TRUE(NotContains(sql, "LEFT JOIN"));
}

TEST(BuildPlanQuery, QueryModelIsWrappedSoCommentsCannotSwallowTheParen) {
    PlanSpec spec = RelationSpec();
    spec.model.kind = ModelRef::Kind::Query;
    spec.model.query = "SELECT 1 AS id -- the end";
    std::string sql = BuildPlanQuery(spec);
    EXPECT_TRUE(Contains(sql, "FROM (SELECT 1 AS id -- the end\n) AS src"));
    EXPECT_TRUE(NotContains(sql, "\"public\".\"users\""));
    // The comment runs to the end of its line only: everything after the
    // newline is still there.
    size_t nl = sql.find('\n');
    ASSERT_NE(nl, std::string::npos);
    EXPECT_EQ(sql.substr(nl + 1, 9), ") AS src)");
}

TEST(BuildPlanQuery, EveryUserNameIsQuoted) {
    PlanSpec spec;
    spec.model.kind = ModelRef::Kind::Relation;
    spec.model.schema = "sch\"ema";
    spec.model.name = "ta'ble";
    spec.key_columns = {"a\"b", "Tenant Id"};
    spec.map = {{"fi'eld", "\"a\"\"b\""}};
    spec.shadow_schema = "sha\"dow";
    spec.shadow_table = "s\"1";
    std::string sql = BuildPlanQuery(spec);

    EXPECT_TRUE(Contains(sql, "FROM \"sch\"\"ema\".\"ta'ble\" AS src"));
    EXPECT_TRUE(Contains(sql, "revetl.object_jsonb('a\"b', src.\"a\"\"b\", 'Tenant Id', src.\"Tenant Id\")"));
    EXPECT_TRUE(Contains(sql, "(src.\"a\"\"b\" IS NULL OR src.\"Tenant Id\" IS NULL)"));
    EXPECT_TRUE(Contains(sql, "JOIN \"sha\"\"dow\".\"s\"\"1\" AS s"));
    EXPECT_TRUE(Contains(sql, "(\"a\"\"b\"\n) AS v0"));
    EXPECT_TRUE(Contains(sql, "revetl.object_jsonb('fi''eld', m.v0)"));
    // The bare, unquoted forms never appear.
    EXPECT_TRUE(NotContains(sql, "src.a\"b"));
    EXPECT_TRUE(NotContains(sql, " sha\"dow"));
    EXPECT_TRUE(NotContains(sql, "'fi'eld'"));
    // Key object: the text key per model row, and key text and key_json
    // from the passed-through columns for returned rows; null check once.
    EXPECT_EQ(Count(sql, "revetl.object_jsonb('a\"b'"), 3u);
    EXPECT_EQ(Count(sql, "'a\"b', m.kc0, 'Tenant Id', m.kc1)"), 2u);
    EXPECT_EQ(Count(sql, "IS NULL OR src.\"Tenant Id\" IS NULL"), 1u);
}

TEST(BuildValidationQuery, ExactText) {
    PlanSpec spec = RelationSpec();
    EXPECT_EQ(BuildValidationQuery(spec), "SELECT revetl.object_jsonb('id', src.\"id\") AS "
                                          "key_json, pg_catalog.to_jsonb(src.*) AS payload "
                                          "FROM \"public\".\"users\" AS src LIMIT 0");
    spec.model.kind = ModelRef::Kind::Query;
    spec.model.query = "SELECT 1 AS id --";
    spec.key_columns = {"id", "o\"rg"};
    spec.map = {{"n", "id * 2"}};
    EXPECT_EQ(BuildValidationQuery(spec),
              "SELECT revetl.object_jsonb('id', src.\"id\", 'o\"rg', src.\"o\"\"rg\") AS key_json, "
              "revetl.object_jsonb('n', (id * 2\n)) AS payload FROM (SELECT 1 AS id --\n) AS src "
              "LIMIT 0");
}

TEST(BuildShadowTableDdl, ExactText) {
    EXPECT_EQ(BuildShadowTableDdl("revetl_shadow", "sync_42"),
              "CREATE TABLE \"revetl_shadow\".\"sync_42\" (key text COLLATE \"C\" PRIMARY KEY, "
              "row_hash bigint NOT NULL, dest_id text, run_id bigint NOT NULL, "
              "synced_at timestamptz NOT NULL DEFAULT pg_catalog.now(), verify_after timestamptz, "
              "version bigint NOT NULL DEFAULT 0, removed boolean NOT NULL DEFAULT false); "
              "CREATE INDEX ON \"revetl_shadow\".\"sync_42\" (verify_after) WHERE verify_after IS NOT NULL");
    EXPECT_TRUE(Contains(BuildShadowTableDdl("we\"ird", "t\"t"), "CREATE TABLE \"we\"\"ird\".\"t\"\"t\" ("));
}

TEST(BuildPlanQuery, InsertModeSkipsChangedRows) {
    PlanSpec spec = RelationSpec();
    EXPECT_TRUE(spec.include_changes); // the default
    std::string with_changes = BuildPlanQuery(spec);
    EXPECT_TRUE(EndsWith(
        with_changes,
        " OR s.key IS NULL OR s.removed OR s.row_hash OPERATOR(pg_catalog.<>) m.h OR (s.row_hash IS NULL) "
        "OPERATOR(pg_catalog.<>) (m.h IS NULL) OR s.verify_after OPERATOR(pg_catalog.<=) pg_catalog.now() "
        "END"));
    spec.include_changes = false;
    std::string sql = BuildPlanQuery(spec);
    EXPECT_TRUE(NotContains(sql, "row_hash IS DISTINCT FROM"));
    // New, removed and invalid rows are still reported.
    EXPECT_TRUE(EndsWith(
        sql,
        " AS s ON s.key OPERATOR(pg_catalog.=) m.k WHERE CASE WHEN m.present IS NULL THEN NOT s.removed OR "
        "s.verify_after OPERATOR(pg_catalog.<=) pg_catalog.now() ELSE m.k IS NULL OR m.dups "
        "OPERATOR(pg_catalog.>) 1 "
        "OR s.key IS NULL OR s.removed END"));
}

TEST(BuildPlanQuery, TombstonesAndVersions) {
    PlanSpec spec = RelationSpec();
    spec.run_id = 41;
    std::string sql = BuildPlanQuery(spec);
    // A key without a shadow row is based on minus the planning run.
    EXPECT_TRUE(Contains(sql, "coalesce(s.version, -41::pg_catalog.int8) AS version"));
    // A re-added key does not take the removed record's id.
    EXPECT_TRUE(Contains(sql, "CASE WHEN m.present AND s.removed THEN NULL ELSE s.dest_id END AS dest_id"));
    // A tombstone is removed again only once its verify_after has passed:
    // for a key the model does not have, no test of the model's (NULL) side
    // may plan it earlier.
    EXPECT_TRUE(Contains(sql, "WHERE CASE WHEN m.present IS NULL THEN NOT s.removed OR s.verify_after "
                              "OPERATOR(pg_catalog.<=) pg_catalog.now() ELSE "));
}

TEST(BuildPlanQuery, HashOverMappedValuesOrPayloadText) {
    PlanSpec spec = RelationSpec();
    spec.map = {{"email", "lower(email)"}, {"n", "score -- c"}};
    std::string sql = BuildPlanQuery(spec);
    // The mapped values pass through as columns, are hashed as a row, and
    // the payload is built from them in the outer query (for returned rows).
    EXPECT_TRUE(Contains(sql, "src.\"id\" AS kc0, (lower(email)\n) AS v0, (score -- c\n) AS v1 FROM "));
    EXPECT_TRUE(
        Contains(sql, "x.kc0, x.v0, x.v1, pg_catalog.hash_record_extended(ROW(x.v0, x.v1), 0) AS h, "));
    EXPECT_TRUE(Contains(sql, "CASE WHEN m.present THEN revetl.object_jsonb('email', m.v0, 'n', m.v1) END "
                              "AS payload, "));
    EXPECT_TRUE(NotContains(sql, "hash_row"));

    // A mapped type without a hash function: hash the payload's text.
    spec.hash_values = false;
    sql = BuildPlanQuery(spec);
    EXPECT_TRUE(Contains(sql, "pg_catalog.hashtextextended(x.payload::pg_catalog.text, 0) AS h"));
    EXPECT_TRUE(NotContains(sql, "hash_row"));
    EXPECT_TRUE(NotContains(sql, "hash_record_extended"));
}

TEST(BuildPlanQuery, UniqueKeySkipsTheDuplicateWindow) {
    PlanSpec spec = RelationSpec();
    EXPECT_FALSE(spec.key_unique);
    spec.key_unique = true;
    std::string sql = BuildPlanQuery(spec);
    EXPECT_TRUE(Contains(sql, " AS h, 1::pg_catalog.int8 AS dups FROM ("));
    EXPECT_TRUE(NotContains(sql, "OVER (PARTITION BY"));
}

TEST(BuildPlanQuery, CaptureFilterRestrictsModelAndShadowToCapturedKeys) {
    PlanSpec spec = RelationSpec();
    spec.key_columns = {"tenant", "o'id"};
    spec.include_removals = true;
    CaptureFilter cap;
    cap.sync_id = 12;
    cap.max_capture_id = 3456;
    cap.key_types = {"integer", "text"};
    spec.capture = cap;
    std::string sql = BuildPlanQuery(spec);
    EXPECT_EQ(sql.rfind("WITH cap AS MATERIALIZED (SELECT (c.key::pg_catalog.jsonb OPERATOR(pg_catalog.->>) "
                        "'tenant')::integer AS k0, "
                        "(c.key::pg_catalog.jsonb OPERATOR(pg_catalog.->>) 'o''id')::text AS k1 FROM "
                        "revetl.captured_changes c "
                        "WHERE c.sync_id OPERATOR(pg_catalog.=) 12 AND c.id OPERATOR(pg_catalog.<=) 3456 AND "
                        "c.key IS NOT NULL UNION SELECT "
                        "(v.key::pg_catalog.jsonb OPERATOR(pg_catalog.->>) 'tenant')::integer, "
                        "(v.key::pg_catalog.jsonb OPERATOR(pg_catalog.->>) 'o''id')::text FROM "
                        "\"revetl_shadow\".\"sync_1\" "
                        "AS v WHERE v.verify_after OPERATOR(pg_catalog.<=) pg_catalog.now()) SELECT (CASE",
                        0),
              0u)
        << sql;
    EXPECT_TRUE(Contains(sql, "FROM \"public\".\"users\" AS src WHERE ROW(src.\"tenant\", src.\"o'id\") "
                              "OPERATOR(pg_catalog.=) ANY (SELECT cap.k0, cap.k1 FROM cap)) AS x"));
    EXPECT_TRUE(Contains(sql, ") AS m FULL JOIN (SELECT * FROM \"revetl_shadow\".\"sync_1\" WHERE key "
                              "OPERATOR(pg_catalog.=) ANY (SELECT revetl.object_jsonb('tenant', cap.k0, "
                              "'o''id', cap.k1)::pg_catalog.text COLLATE pg_catalog.\"C\" "
                              "FROM cap)) AS s ON s.key OPERATOR(pg_catalog.=) m.k "));
}

TEST(BuildPayloadColumnsQuery, ExactText) {
    PlanSpec spec = RelationSpec();
    EXPECT_EQ(BuildPayloadColumnsQuery(spec), "SELECT * FROM \"public\".\"users\" AS src LIMIT 0");
    spec.map = {{"a", "lower(email)"}, {"b", "x -- c"}};
    spec.model.kind = ModelRef::Kind::Query;
    spec.model.query = "SELECT 1 AS x";
    EXPECT_EQ(BuildPayloadColumnsQuery(spec),
              "SELECT (lower(email)\n), (x -- c\n) FROM (SELECT 1 AS x\n) AS src LIMIT 0");
}

TEST(BuildPlanQuery, ResyncPlansEveryModelRowWithNewKeys) {
    PlanSpec spec = RelationSpec();
    spec.run_id = 9;
    spec.resync = true;
    std::string sql = BuildPlanQuery(spec);
    EXPECT_TRUE(Contains(sql, " OR s.removed OR m.present"));
    EXPECT_TRUE(Contains(sql, "CASE WHEN m.present THEN -9::pg_catalog.int8 ELSE s.version END AS version"));
    spec.resync = false;
    EXPECT_TRUE(NotContains(BuildPlanQuery(spec), "OR m.present"));
}

// MODE AUDIENCE: the row hash covers the identifier fields alone, so a
// change of any other mapped value plans nothing; removals are planned.
TEST(BuildPlanQuery, AudienceHashesTheIdentifiersAlone) {
    PlanSpec spec = RelationSpec();
    spec.map = {{"email", "lower(email)"}, {"plan", "plan"}};
    spec.include_removals = true;
    std::string plain = BuildPlanQuery(spec);
    EXPECT_TRUE(Contains(plain, "hash_record_extended(ROW(x.v0, x.v1), 0)"));
    spec.identifier_fields = {"email"};
    std::string sql = BuildPlanQuery(spec);
    EXPECT_TRUE(Contains(sql, "hash_record_extended(ROW(x.v0), 0)"));
    EXPECT_TRUE(Contains(sql, "FULL JOIN"));
    // The payload still carries every mapped field.
    EXPECT_TRUE(Contains(sql, "object_jsonb('email', m.v0, 'plan', m.v1)"));
    // Without hashing rules no row is judged by its identifier.
    EXPECT_TRUE(NotContains(sql, "bad_id"));
    EXPECT_TRUE(NotContains(sql, "'h'"));
}

TEST(BuildPlanQuery, AudienceWithoutMapHashesTheIdentifiersOfThePayload) {
    PlanSpec spec = RelationSpec();
    spec.identifier_fields = {"email", "it's"};
    std::string sql = BuildPlanQuery(spec);
    EXPECT_TRUE(Contains(sql, "pg_catalog.hashtextextended(pg_catalog.jsonb_build_array(x.payload "
                              "OPERATOR(pg_catalog.->) 'email', x.payload OPERATOR(pg_catalog.->) 'it''s')"
                              "::pg_catalog.text, 0)"));
    EXPECT_TRUE(NotContains(sql, "hash_record_extended(x.hash_row"));
    // The payload's text hash (types without a hash function) takes the same way.
    spec.hash_values = false;
    spec.map = {{"email", "email"}};
    spec.identifier_fields = {"email"};
    EXPECT_TRUE(
        Contains(BuildPlanQuery(spec), "jsonb_build_array(x.payload OPERATOR(pg_catalog.->) 'email')"));
}

TEST(BuildPlanQuery, HashedIdentifiersMakeOtherValuesInvalid) {
    PlanSpec spec = RelationSpec();
    spec.map = {{"name", "name"}, {"email_sha256", "revetl.hashed_identifier('email', email)"}};
    spec.identifier_fields = {"email_sha256"};
    spec.hashed_identifiers = true;
    spec.include_removals = true;
    std::string sql = BuildPlanQuery(spec);
    // The mapped value itself, as text, must be 64 lower-case hex characters.
    EXPECT_TRUE(Contains(sql, "NOT (coalesce((x.v1::pg_catalog.text) OPERATOR(pg_catalog.~) "
                              "'^[0-9a-f]{64}$', false)) AS bad_id"));
    EXPECT_TRUE(Contains(sql, "WHEN m.bad_id THEN 'h' "));
    // Such rows are returned (as invalid), whatever the shadow state says.
    EXPECT_TRUE(Contains(sql, " OR m.bad_id"));
    // Judged after NULL and duplicate keys, before adds.
    EXPECT_LT(sql.find("THEN 'd'"), sql.find("THEN 'h'"));
    EXPECT_LT(sql.find("THEN 'h'"), sql.find("THEN 'a'"));

    spec.map.clear();
    spec.identifier_fields = {"email_sha256", "phone_sha256"};
    sql = BuildPlanQuery(spec);
    EXPECT_TRUE(Contains(sql, "NOT (coalesce((x.payload OPERATOR(pg_catalog.->>) 'email_sha256') "
                              "OPERATOR(pg_catalog.~) '^[0-9a-f]{64}$', false) AND coalesce((x.payload "
                              "OPERATOR(pg_catalog.->>) 'phone_sha256') OPERATOR(pg_catalog.~) "
                              "'^[0-9a-f]{64}$', false)) AS bad_id"));
    EXPECT_TRUE(Contains(BadIdentifierReason(spec), "identifier fields: email_sha256, phone_sha256"));
}

// Fields a vendor takes unhashed (Meta's EXTERN_ID) must only be present.
TEST(BuildPlanQuery, UnhashedIdentifiersMustOnlyBePresent) {
    PlanSpec spec = RelationSpec();
    spec.map = {{"EMAIL", "revetl.hashed_identifier('email', email, 'meta')"}, {"EXTERN_ID", "id::text"}};
    spec.identifier_fields = {"EMAIL", "EXTERN_ID"};
    spec.hashed_identifiers = true;
    spec.unhashed_fields = {"EXTERN_ID"};
    std::string sql = BuildPlanQuery(spec);
    EXPECT_TRUE(Contains(sql,
                         "NOT (coalesce((x.v0::pg_catalog.text) OPERATOR(pg_catalog.~) '^[0-9a-f]{64}$', "
                         "false) AND coalesce((x.v1::pg_catalog.text) OPERATOR(pg_catalog.<>) '', false)) "
                         "AS bad_id"));
    EXPECT_TRUE(Contains(BadIdentifierReason(spec), "; EXTERN_ID is sent unhashed and must only be present"));
}

// An audience sync is planned by the text-keyed query even where the
// shadow table has typed keys: only it carries the identifier rules.
TEST(BuildPlanQuery, AudienceKeepsTheTextKeyedPlan) {
    PlanSpec spec = RelationSpec();
    spec.identifier_fields = {"email"};
    spec.typed_keys = {ShadowKeyType{"pg_catalog.int4", "OPERATOR(pg_catalog.=)", false}};
    std::string sql = BuildPlanQuery(spec);
    EXPECT_TRUE(Contains(sql, "AS s ON s.key OPERATOR(pg_catalog.=) m.k"));
}

namespace {

PlanSpec TypedSpec() {
    PlanSpec spec = RelationSpec();
    spec.key_columns = {"Tenant", "email"};
    spec.typed_keys = {{"integer", "OPERATOR(pg_catalog.=)", false}, {"text", "OPERATOR(\"my\".=)", true}};
    spec.include_removals = true;
    return spec;
}

} // namespace

TEST(BuildPlanQuery, TypedKeysJoinOnTheValuesWithTheTypesOperatorsAndTextInC) {
    PlanSpec spec = TypedSpec();
    spec.model_columns = {"Tenant", "email", "sc'ore"};
    std::string sql = BuildPlanQuery(spec);
    EXPECT_TRUE(Contains(sql,
                         " AS s ON s.key_1 OPERATOR(pg_catalog.=) m.kc0 AND s.key_2 COLLATE pg_catalog.\"C\" "
                         "OPERATOR(\"my\".=) m.kc1 COLLATE pg_catalog.\"C\" WHERE "))
        << sql;
    // No key text or jsonb per model row: only the two outputs (and the
    // payload), built from the passed-through columns for the rows that
    // come out.
    EXPECT_EQ(Count(sql, "object_jsonb('Tenant'"), 3u) << sql;
    EXPECT_EQ(Count(sql, "revetl.object_jsonb('Tenant', m.kc0, 'email', m.kc1)"), 2u);
    EXPECT_TRUE(Contains(sql, "coalesce(s.key, revetl.object_jsonb("));
    EXPECT_TRUE(NotContains(sql, "m.k "));
    // The row hash over the values, qualified; the payload per column in
    // the outer query (no whole-row value).
    EXPECT_TRUE(Contains(sql, "\"revetl_shadow\".row_hash(x.c0, x.c1, x.c2) AS h"));
    EXPECT_TRUE(Contains(sql, "src.\"Tenant\" AS c0, src.\"email\" AS c1, src.\"sc'ore\" AS c2 FROM"));
    EXPECT_TRUE(Contains(sql, "CASE WHEN m.present THEN revetl.object_jsonb('Tenant', m.c0, 'email', "
                              "m.c1, 'sc''ore', m.c2) END AS payload"));
    EXPECT_TRUE(NotContains(sql, "to_jsonb"));
    EXPECT_TRUE(NotContains(sql, "hash_record_extended"));
    // NULL keys and duplicates: on the typed columns, duplicates in "C".
    EXPECT_TRUE(Contains(sql, "WHEN (m.kc0 IS NULL OR m.kc1 IS NULL) THEN 'n'"));
    EXPECT_TRUE(
        Contains(sql, "pg_catalog.count(*) OVER (PARTITION BY x.kc0, x.kc1 COLLATE pg_catalog.\"C\")"));
}

TEST(BuildPlanQuery, KeyJsonOnlyForRefusedRowsUnlessAskedForEveryRow) {
    // A run reads key_json only for the rows it refuses (revetl.rejected_rows).
    PlanSpec spec = TypedSpec();
    std::string sql = BuildPlanQuery(spec);
    EXPECT_TRUE(Contains(sql, "CASE WHEN m.present AND ((m.kc0 IS NULL OR m.kc1 IS NULL) OR m.dups "
                              "OPERATOR(pg_catalog.>) 1) THEN revetl.object_jsonb('Tenant', m.kc0, "
                              "'email', m.kc1) END AS key_json"))
        << sql;
    EXPECT_TRUE(NotContains(sql, "s.key::pg_catalog.jsonb"));
    spec = RelationSpec();
    sql = BuildPlanQuery(spec);
    EXPECT_TRUE(Contains(sql, "CASE WHEN m.present AND (m.k IS NULL OR m.dups OPERATOR(pg_catalog.>) 1) THEN "
                              "revetl.object_jsonb('id', m.kc0) END AS key_json"))
        << sql;
    // preview_sync shows every row's key.
    for (PlanSpec asked : {TypedSpec(), RelationSpec()}) {
        asked.key_json_for_every_row = true;
        sql = BuildPlanQuery(asked);
        EXPECT_TRUE(Contains(sql, "CASE WHEN m.present THEN revetl.object_jsonb("));
        EXPECT_TRUE(Contains(sql, " ELSE s.key::pg_catalog.jsonb END AS key_json")) << sql;
    }
}

TEST(BuildPlanQuery, TypedKeysFallBackToTheWholeRowAndToMappedValues) {
    PlanSpec spec = TypedSpec();
    spec.key_unique = true;
    std::string sql = BuildPlanQuery(spec);
    // Without the model's column names: the whole row, as before.
    EXPECT_TRUE(Contains(sql, "pg_catalog.to_jsonb(src.*) AS payload, src AS hash_row"));
    EXPECT_TRUE(Contains(sql, "pg_catalog.hash_record_extended(x.hash_row, 0) AS h"));
    EXPECT_TRUE(Contains(sql, "1::pg_catalog.int8 AS dups"));
    spec.map = {{"f", "lower(email)"}, {"g", "1"}};
    sql = BuildPlanQuery(spec);
    EXPECT_TRUE(Contains(sql, "\"revetl_shadow\".row_hash(x.v0, x.v1) AS h"));
    EXPECT_TRUE(Contains(sql, "revetl.object_jsonb('f', m.v0, 'g', m.v1)"));
    spec.hash_values = false;
    sql = BuildPlanQuery(spec);
    EXPECT_TRUE(Contains(sql, "pg_catalog.hashtextextended(x.payload::pg_catalog.text, 0) AS h"));
}

TEST(BuildPlanQuery, TypedKeysCaptureFilterMatchesTheTypedColumns) {
    PlanSpec spec = TypedSpec();
    CaptureFilter cap;
    cap.sync_id = 3;
    cap.max_capture_id = 9;
    cap.key_types = {"integer", "text"};
    spec.capture = cap;
    std::string sql = BuildPlanQuery(spec);
    EXPECT_TRUE(
        Contains(sql, "WHERE ROW(src.\"Tenant\", src.\"email\") OPERATOR(pg_catalog.=) ANY (SELECT cap.k0, "
                      "cap.k1 FROM cap)"));
    EXPECT_TRUE(Contains(
        sql, "FULL JOIN (SELECT v.* FROM cap, LATERAL (SELECT * FROM \"revetl_shadow\".\"sync_1\" AS v "
             "WHERE v.key_1 OPERATOR(pg_catalog.=) cap.k0 AND v.key_2 COLLATE pg_catalog.\"C\" "
             "OPERATOR(\"my\".=) cap.k1 OFFSET 0) AS v) AS s ON "))
        << sql;
}

TEST(BuildShadowKeyColumnsDdl, ExactText) {
    PlanSpec spec = TypedSpec();
    spec.key_columns = {"Tenant", "e'mail"};
    EXPECT_EQ(BuildShadowKeyColumnsDdl(spec, {"key_1"}),
              "ALTER TABLE \"revetl_shadow\".\"sync_1\" DROP COLUMN \"key_1\", ADD COLUMN key_1 integer "
              "GENERATED "
              "ALWAYS AS (\"revetl_shadow\".key_field(key, 'Tenant', NULL::integer)) STORED, ADD COLUMN "
              "key_2 text "
              "COLLATE pg_catalog.\"C\" GENERATED ALWAYS AS (\"revetl_shadow\".key_field(key, 'e''mail', "
              "NULL::text)) STORED; CREATE INDEX ON \"revetl_shadow\".\"sync_1\" (key_1, key_2)");
    spec.typed_keys.clear();
    EXPECT_EQ(BuildShadowKeyColumnsDdl(spec, {"key_1", "key_2"}),
              "ALTER TABLE \"revetl_shadow\".\"sync_1\" DROP COLUMN \"key_1\", DROP COLUMN \"key_2\"");
    EXPECT_EQ(ShadowKeyColumn(0), "key_1");
}
