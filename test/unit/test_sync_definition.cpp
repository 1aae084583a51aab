#include "core/common/error.hpp"
#include "core/language/sync_definition.hpp"

#include "test_util.hpp"

#include <gtest/gtest.h>
#include <rapidjson/document.h>

#include <functional>
#include <string>

using namespace revetl;
using revetl_test::Catch;
using revetl_test::Contains;
using revetl_test::EndsWith;

namespace {} // namespace

TEST(ParseSyncOptions, EmptyObject) {
    SyncOptions o = ParseSyncOptions("{}");
    EXPECT_FALSE(o.batch_size.has_value());
    EXPECT_FALSE(o.max_attempts.has_value());
    EXPECT_FALSE(o.timeout_ms.has_value());
}

TEST(ParseSyncOptions, NumbersAndStrings) {
    SyncOptions o = ParseSyncOptions(R"({"batch_size": 500, "max_attempts": "3", "timeout": "30s"})");
    ASSERT_TRUE(o.batch_size.has_value());
    EXPECT_EQ(*o.batch_size, 500);
    ASSERT_TRUE(o.max_attempts.has_value());
    EXPECT_EQ(*o.max_attempts, 3);
    ASSERT_TRUE(o.timeout_ms.has_value());
    EXPECT_EQ(*o.timeout_ms, 30000);

    o = ParseSyncOptions(R"({"batch_size": "10000", "max_attempts": 20, "timeout": "10min"})");
    EXPECT_EQ(o.batch_size, 10000);
    EXPECT_EQ(o.max_attempts, 20);
    EXPECT_EQ(o.timeout_ms, 600000L);

    o = ParseSyncOptions(R"({"batch_size": 1, "max_attempts": 1, "timeout": "1"})");
    EXPECT_EQ(o.batch_size, 1);
    EXPECT_EQ(o.max_attempts, 1);
    EXPECT_EQ(o.timeout_ms, 1L);
}

TEST(ParseSyncOptions, OutOfRangeNumbers) {
    for (const char *json : {R"({"batch_size": 0})", R"({"batch_size": 10001})", R"({"batch_size": -1})",
                             R"({"max_attempts": 21})", R"({"max_attempts": 0})", R"({"batch_size": 1.5})",
                             R"({"batch_size": 5000000000})", R"({"batch_size": true})",
                             R"({"batch_size": null})", R"({"batch_size": [1]})"}) {
        SCOPED_TRACE(json);
        Error e = Catch([&] { ParseSyncOptions(json); });
        EXPECT_EQ(e.sqlstate(), "22023");
        EXPECT_TRUE(Contains(e.what(), "invalid value for sync option \""));
    }
    Error e = Catch([] { ParseSyncOptions(R"({"batch_size": 0})"); });
    EXPECT_STREQ(e.what(), "invalid value for sync option \"batch_size\"");
    EXPECT_EQ(e.detail(), "The value must be an integer from 1 to 10000.");
    e = Catch([] { ParseSyncOptions(R"({"max_attempts": 21})"); });
    EXPECT_EQ(e.detail(), "The value must be an integer from 1 to 20.");
}

TEST(ParseSyncOptions, OutOfRangeStrings) {
    for (const char *json :
         {R"({"batch_size": "0"})", R"({"batch_size": "10001"})", R"({"batch_size": "ten"})",
          R"({"max_attempts": "21"})", R"({"batch_size": ""})", R"({"batch_size": " 5"})"}) {
        SCOPED_TRACE(json);
        Error e = Catch([&] { ParseSyncOptions(json); });
        // Sync options are plain parameters, not FDW options: 22023, and the
        // message names a sync option.
        EXPECT_EQ(e.sqlstate(), "22023");
        EXPECT_TRUE(Contains(e.what(), "invalid value for sync option \""));
        EXPECT_TRUE(Contains(e.detail(), "The value must be an integer from 1 to "));
    }
    Error e = Catch([] { ParseSyncOptions(R"({"max_attempts": "21"})"); });
    EXPECT_STREQ(e.what(), "invalid value for sync option \"max_attempts\"");
    EXPECT_EQ(e.detail(), "The value must be an integer from 1 to 20.");
}

TEST(ParseSyncOptions, Timeout) {
    Error e = Catch([] { ParseSyncOptions(R"({"timeout": 30})"); });
    EXPECT_EQ(e.sqlstate(), "22023");
    EXPECT_STREQ(e.what(), "invalid value for sync option \"timeout\"");
    EXPECT_EQ(e.detail(), "The value must be a duration string such as '30s'.");
    for (const char *json :
         {R"({"timeout": "601s"})", R"({"timeout": "5 parsecs"})", R"({"timeout": "0"})"}) {
        SCOPED_TRACE(json);
        e = Catch([&] { ParseSyncOptions(json); });
        EXPECT_EQ(e.sqlstate(), "22023");
        EXPECT_STREQ(e.what(), "invalid value for sync option \"timeout\"");
        EXPECT_EQ(e.detail(), "The value must be a duration from 1ms to 600s.");
        EXPECT_TRUE(Contains(e.hint(), "ms, s, min, h or d"));
    }
}

TEST(ParseSyncOptions, UnknownOptionWithSuggestion) {
    // The list of valid options grows; its beginning and shape are fixed.
    const std::string valid = "Valid sync options are: batch_size, max_attempts, timeout, ";
    Error e = Catch([] { ParseSyncOptions(R"({"batchsize": 10})"); });
    EXPECT_EQ(e.sqlstate(), "22023");
    EXPECT_STREQ(e.what(), "unknown sync option \"batchsize\"");
    EXPECT_EQ(e.hint().rfind("Perhaps you meant \"batch_size\". " + valid, 0), 0u) << e.hint();
    EXPECT_TRUE(EndsWith(e.hint(), "."));

    e = Catch([] { ParseSyncOptions(R"({"timout": "1s"})"); });
    EXPECT_EQ(e.hint().rfind("Perhaps you meant \"timeout\". " + valid, 0), 0u) << e.hint();

    e = Catch([] { ParseSyncOptions(R"({"alert_too": "ops"})"); });
    EXPECT_EQ(e.hint().rfind("Perhaps you meant \"alert_to\". " + valid, 0), 0u) << e.hint();

    e = Catch([] { ParseSyncOptions(R"({"colour": "blue"})"); });
    EXPECT_STREQ(e.what(), "unknown sync option \"colour\"");
    EXPECT_EQ(e.hint().rfind(valid, 0), 0u) << e.hint();
    for (const char *name :
         {"alert_to", "alert_rejected_rows", "alert_no_success_for", "run_after_failure", "track_changes"})
        EXPECT_TRUE(Contains(e.hint(), std::string(" ") + name)) << name;
}

TEST(ParseSyncOptions, BacklogAlertLimits) {
    SyncOptions o = ParseSyncOptions(R"({"alert_backlog_age": "90s", "alert_wal_retained": "512MB"})");
    EXPECT_EQ(o.alert_backlog_age_ms, 90000L);
    EXPECT_EQ(o.alert_wal_retained_bytes, 512LL << 20);
    EXPECT_EQ(ParseSyncOptions(R"({"alert_wal_retained": "2 GB"})").alert_wal_retained_bytes, 2LL << 30);
    EXPECT_EQ(ParseSyncOptions(R"({"alert_wal_retained": 4096})").alert_wal_retained_bytes, 4096);
    EXPECT_EQ(ParseSyncOptions(R"({"alert_wal_retained": "64kB"})").alert_wal_retained_bytes, 65536);
    EXPECT_EQ(ParseSyncOptions(R"({"alert_wal_retained": "1TB"})").alert_wal_retained_bytes, 1LL << 40);
    o = ParseSyncOptions(R"({"alert_backlog_age": "none", "alert_wal_retained": "none"})");
    EXPECT_EQ(o.alert_backlog_age_ms, -1L);
    EXPECT_EQ(o.alert_wal_retained_bytes, -1);

    // Defaults: a tracked ON CHANGE sync alerts after 15 minutes; a tracked
    // sync on another schedule lets keys wait for its run; only WAL-tracked
    // syncs watch the slot.
    SyncOptions none;
    EXPECT_EQ(BacklogAgeLimitMs(none, true, true), 15L * 60 * 1000);
    EXPECT_EQ(BacklogAgeLimitMs(none, true, false), -1L);
    EXPECT_EQ(BacklogAgeLimitMs(none, false, true), -1L);
    EXPECT_EQ(BacklogAgeLimitMs(o, true, true), -1L);
    EXPECT_EQ(BacklogAgeLimitMs(ParseSyncOptions(R"({"alert_backlog_age": "2s"})"), true, false), 2000L);
    EXPECT_EQ(WalRetainedLimitBytes(none, true), 1LL << 30);
    EXPECT_EQ(WalRetainedLimitBytes(none, false), -1);
    EXPECT_EQ(WalRetainedLimitBytes(o, true), -1);

    for (const char *bad :
         {R"({"alert_backlog_age": "0s"})", R"({"alert_backlog_age": "91d"})", R"({"alert_backlog_age": 60})",
          R"({"alert_wal_retained": "1000"})", R"({"alert_wal_retained": "2PB"})",
          R"({"alert_wal_retained": "5 mb"})", R"({"alert_wal_retained": "MB"})",
          R"({"alert_wal_retained": "-1MB"})", R"({"alert_wal_retained": "99999999999999999999"})",
          R"({"alert_wal_retained": true})", R"({"alert_wal_retained": 100})"}) {
        SCOPED_TRACE(bad);
        Error e = Catch([&] { ParseSyncOptions(bad); });
        EXPECT_EQ(e.sqlstate(), "22023");
        EXPECT_TRUE(Contains(e.what(), "invalid value for sync option \"alert_")) << e.what();
    }
}

TEST(ParseSyncOptions, TrackChanges) {
    EXPECT_FALSE(ParseSyncOptions("{}").track_changes.has_value());
    EXPECT_EQ(ParseSyncOptions(R"({"track_changes": true})").track_changes, std::optional<bool>(true));
    EXPECT_EQ(ParseSyncOptions(R"({"track_changes": false})").track_changes, std::optional<bool>(false));
    // 'wal': tracked, through logical decoding; true stays triggers.
    EXPECT_EQ(ParseSyncOptions(R"({"track_changes": "wal"})").track_changes, std::optional<bool>(true));
    EXPECT_TRUE(ParseSyncOptions(R"({"track_changes": "wal"})").track_wal);
    EXPECT_FALSE(ParseSyncOptions(R"({"track_changes": true})").track_wal);
    for (const char *json : {R"({"track_changes": "true"})", R"({"track_changes": 1})",
                             R"({"track_changes": null})", R"({"track_changes": "WAL"})"}) {
        SCOPED_TRACE(json);
        Error e = Catch([&] { ParseSyncOptions(json); });
        EXPECT_EQ(e.sqlstate(), "22023");
        EXPECT_STREQ(e.what(), "invalid value for sync option \"track_changes\"");
        EXPECT_EQ(e.detail(),
                  "The value must be true (capture triggers), 'wal' (logical decoding) or false.");
    }
}

TEST(SyncDefinition, TrackedByDefaultOnlyForOnChangeTableModels) {
    SyncDefinition d;
    d.model.kind = ModelRef::Kind::Relation;
    d.schedule.kind = dsl::Schedule::Kind::OnChange;
    EXPECT_TRUE(d.Tracked());
    d.schedule.kind = dsl::Schedule::Kind::Every;
    EXPECT_FALSE(d.Tracked());
    d.options.track_changes = true;
    EXPECT_TRUE(d.Tracked());
    d.schedule.kind = dsl::Schedule::Kind::OnChange;
    d.options.track_changes = false;
    EXPECT_FALSE(d.Tracked());
    // Query models cannot carry triggers.
    d.model.kind = ModelRef::Kind::Query;
    d.options.track_changes = true;
    EXPECT_FALSE(d.Tracked());
    d.options.track_changes.reset();
    EXPECT_FALSE(d.Tracked());
}

TEST(ParseSyncOptions, AlertOptions) {
    SyncOptions o = ParseSyncOptions(
        R"({"alert_to": "slack", "alert_rejected_rows": 10, "alert_no_success_for": "6h", "run_after_failure": true})");
    EXPECT_EQ(o.alert_to, std::optional<std::string>("slack"));
    EXPECT_EQ(o.alert_rejected_rows, 10);
    EXPECT_EQ(o.alert_no_success_for_ms, 6L * 3600 * 1000);
    EXPECT_TRUE(o.run_after_failure);

    o = ParseSyncOptions("{}");
    EXPECT_FALSE(o.alert_to.has_value());
    EXPECT_FALSE(o.alert_rejected_rows.has_value());
    EXPECT_FALSE(o.alert_no_success_for_ms.has_value());
    EXPECT_FALSE(o.run_after_failure);

    o = ParseSyncOptions(R"({"alert_rejected_rows": "1000000000", "alert_no_success_for": "90d",
                            "run_after_failure": false, "alert_to": ")" +
                         std::string(63, 'a') + "\"}");
    EXPECT_EQ(o.alert_rejected_rows, 1000000000);
    EXPECT_EQ(o.alert_no_success_for_ms, 90L * 24 * 3600 * 1000);
    EXPECT_EQ(o.alert_to, std::optional<std::string>(std::string(63, 'a')));
    EXPECT_EQ(ParseSyncOptions(R"({"alert_no_success_for": "1min"})").alert_no_success_for_ms, 60000L);

    struct Case {
        std::string json;
        std::string message;
    };
    const Case cases[] = {
        {R"({"alert_to": ""})", "invalid value for sync option \"alert_to\""},
        {R"({"alert_to": 5})", "invalid value for sync option \"alert_to\""},
        {"{\"alert_to\": \"" + std::string(64, 'a') + "\"}", "invalid value for sync option \"alert_to\""},
        {R"({"alert_rejected_rows": 0})", "invalid value for sync option \"alert_rejected_rows\""},
        {R"({"alert_rejected_rows": "1000000001"})", "invalid value for sync option \"alert_rejected_rows\""},
        {R"({"alert_no_success_for": "59s"})", "invalid value for sync option \"alert_no_success_for\""},
        {R"({"alert_no_success_for": "91d"})", "invalid value for sync option \"alert_no_success_for\""},
        {R"({"alert_no_success_for": 3600})", "invalid value for sync option \"alert_no_success_for\""},
        {R"({"run_after_failure": "true"})", "invalid value for sync option \"run_after_failure\""},
        {R"({"run_after_failure": 1})", "invalid value for sync option \"run_after_failure\""},
    };
    for (const auto &c : cases) {
        SCOPED_TRACE(c.json);
        Error e = Catch([&] { ParseSyncOptions(c.json); });
        EXPECT_EQ(e.sqlstate(), "22023");
        EXPECT_EQ(std::string(e.what()), c.message);
    }
}

TEST(ParseSyncOptions, NotAnObject) {
    for (const char *json : {"[]", "\"batch_size\"", "1", "null", "", "{", "{\"batch_size\": 1} {}"}) {
        SCOPED_TRACE(json);
        Error e = Catch([&] { ParseSyncOptions(json); });
        EXPECT_EQ(e.sqlstate(), "22023");
        EXPECT_STREQ(e.what(), "sync options must be a JSON object");
        EXPECT_TRUE(Contains(e.hint(), "batch_size"));
    }
}

TEST(ParseMap, ObjectOfStrings) {
    std::vector<MapEntry> m =
        ParseMap(R"j({"email": "lower(email)", "score": "lead_score", "it's": "x \"y\""})j");
    ASSERT_EQ(m.size(), 3u);
    EXPECT_EQ(m[0].field, "email");
    EXPECT_EQ(m[0].expression, "lower(email)");
    EXPECT_EQ(m[1].field, "score");
    EXPECT_EQ(m[1].expression, "lead_score");
    EXPECT_EQ(m[2].field, "it's");
    EXPECT_EQ(m[2].expression, "x \"y\"");
}

TEST(ParseMap, EmptyObjectRejected) {
    Error e = Catch([] { ParseMap("{}"); });
    EXPECT_EQ(e.sqlstate(), "22023");
    EXPECT_STREQ(e.what(), "map must name at least one field");
    EXPECT_TRUE(Contains(e.hint(), "NULL"));
}

TEST(ParseMap, NonStringOrEmptyExpressionRejected) {
    for (const char *json : {R"({"a": 1})", R"({"a": null})", R"({"a": ["x"]})", R"({"a": {"b": "c"}})",
                             R"({"a": ""})", R"({"ok": "x", "a": true})"}) {
        SCOPED_TRACE(json);
        Error e = Catch([&] { ParseMap(json); });
        EXPECT_EQ(e.sqlstate(), "22023");
        EXPECT_STREQ(e.what(), "map entry for field \"a\" must be a SQL expression in a string");
    }
}

TEST(ParseMap, FieldNameLength) {
    Error e = Catch([] { ParseMap(R"({"": "x"})"); });
    EXPECT_EQ(e.sqlstate(), "22023");
    EXPECT_STREQ(e.what(), "invalid destination field name in map");
    EXPECT_EQ(e.detail(), "Field names must be 1 to 255 bytes long.");
    std::string ok(255, 'f');
    EXPECT_EQ(ParseMap("{\"" + ok + "\": \"x\"}")[0].field, ok);
    e = Catch([&] { ParseMap("{\"" + ok + "f\": \"x\"}"); });
    EXPECT_STREQ(e.what(), "invalid destination field name in map");
}

TEST(ParseMap, NotAnObjectOrArray) {
    for (const char *json : {"\"a\"", "", "{", "1", "null", "{\"a\": \"x\"} x"}) {
        SCOPED_TRACE(json);
        Error e = Catch([&] { ParseMap(json); });
        EXPECT_EQ(e.sqlstate(), "22023");
        EXPECT_STREQ(e.what(), "map must be a JSON object of destination fields to SQL expressions");
    }
}

TEST(ParseMap, StoredArrayFormKeepsOrder) {
    std::vector<MapEntry> m = ParseMap(
        R"j([{"field": "z", "expression": "lower(email)"}, {"field": "a", "expression": "score + 1"}])j");
    ASSERT_EQ(m.size(), 2u);
    EXPECT_EQ(m[0].field, "z");
    EXPECT_EQ(m[0].expression, "lower(email)");
    EXPECT_EQ(m[1].field, "a");
    EXPECT_EQ(m[1].expression, "score + 1");
}

TEST(ParseMap, BadArrayEntries) {
    for (const char *json : {R"(["a"])", R"([{"field": "a"}])", R"([{"expression": "x"}])",
                             R"([{"field": 1, "expression": "x"}])", R"([null])"}) {
        SCOPED_TRACE(json);
        Error e = Catch([&] { ParseMap(json); });
        EXPECT_EQ(e.sqlstate(), "22023");
        EXPECT_STREQ(e.what(), "invalid map entry");
    }
    Error e = Catch([] { ParseMap("[]"); });
    EXPECT_STREQ(e.what(), "map must name at least one field");
    e = Catch([] { ParseMap(R"([{"field": "a", "expression": 5}])"); });
    EXPECT_STREQ(e.what(), "map entry for field \"a\" must be a SQL expression in a string");
    e = Catch([] { ParseMap(R"([{"field": "", "expression": "x"}])"); });
    EXPECT_STREQ(e.what(), "invalid destination field name in map");
}

TEST(ParseMap, FieldMappedTwice) {
    Error e = Catch([] { ParseMap(R"({"a": "x", "a": "y"})"); });
    EXPECT_EQ(e.sqlstate(), "22023");
    EXPECT_STREQ(e.what(), "destination field \"a\" is mapped twice");
    e = Catch([] { ParseMap(R"([{"field": "b", "expression": "x"}, {"field": "b", "expression": "y"}])"); });
    EXPECT_STREQ(e.what(), "destination field \"b\" is mapped twice");
    // Field names are case-sensitive.
    EXPECT_EQ(ParseMap(R"({"a": "x", "A": "y"})").size(), 2u);
}

TEST(MapToJson, RoundTripsThroughParseMap) {
    std::vector<MapEntry> m = {{"z\"q", "lower(\"E-mail\")"}, {"a", "x -- c\n"}, {"\xC3\xA9", "1"}};
    std::string json = MapToJson(m);
    EXPECT_EQ(json,
              R"j([{"field":"z\"q","expression":"lower(\"E-mail\")"},{"field":"a","expression":"x -- c\n"},)j"
              "{\"field\":\"\xC3\xA9\",\"expression\":\"1\"}]");
    std::vector<MapEntry> back = ParseMap(json);
    ASSERT_EQ(back.size(), m.size());
    for (size_t i = 0; i < m.size(); i++) {
        EXPECT_EQ(back[i].field, m[i].field);
        EXPECT_EQ(back[i].expression, m[i].expression);
    }
    EXPECT_EQ(MapToJson({}), "[]");
}

TEST(OptionsToJson, TypesAndValues) {
    std::vector<dsl::OptionItem> items(5);
    items[0].name = "batch_size";
    items[0].type = dsl::OptionItem::Type::Number;
    items[0].value = "500";
    items[1].name = "ratio";
    items[1].type = dsl::OptionItem::Type::Number;
    items[1].value = "1.5";
    items[2].name = "flag";
    items[2].type = dsl::OptionItem::Type::Bool;
    items[2].value = "true";
    items[3].name = "timeout";
    items[3].type = dsl::OptionItem::Type::String;
    items[3].value = "30s";
    items[4].name = "big";
    items[4].type = dsl::OptionItem::Type::Number;
    items[4].value = "1234567890123456";
    EXPECT_EQ(OptionsToJson(items),
              R"({"batch_size":500,"ratio":"1.5","flag":true,"timeout":"30s","big":"1234567890123456"})");
    EXPECT_EQ(OptionsToJson({}), "{}");
}

TEST(OptionsFromJson, TypesAndValues) {
    auto items =
        OptionsFromJson(R"({"batch_size": 500, "flag": false, "timeout": "30s", "skip": 1.5, "n": null})");
    ASSERT_EQ(items.size(), 3u);
    EXPECT_EQ(items[0].name, "batch_size");
    EXPECT_EQ(items[0].type, dsl::OptionItem::Type::Number);
    EXPECT_EQ(items[0].value, "500");
    EXPECT_EQ(items[1].name, "flag");
    EXPECT_EQ(items[1].type, dsl::OptionItem::Type::Bool);
    EXPECT_EQ(items[1].value, "false");
    EXPECT_EQ(items[2].name, "timeout");
    EXPECT_EQ(items[2].type, dsl::OptionItem::Type::String);
    EXPECT_EQ(items[2].value, "30s");
    EXPECT_TRUE(OptionsFromJson("[]").empty());
    EXPECT_TRUE(OptionsFromJson("").empty());
    // And back.
    EXPECT_EQ(OptionsToJson(OptionsFromJson(R"({"a":1,"b":"x","c":true})")), R"({"a":1,"b":"x","c":true})");
}

TEST(MergeOptions, SetsReplacesAndRemoves) {
    rapidjson::Document d;
    std::string merged = MergeOptions(R"({"batch_size": 100, "timeout": "30s"})",
                                      R"({"batch_size": 500, "max_attempts": 3, "timeout": null})");
    d.Parse(merged.c_str());
    ASSERT_TRUE(d.IsObject()) << merged;
    EXPECT_EQ(d.MemberCount(), 2u);
    EXPECT_EQ(d["batch_size"].GetInt(), 500);
    EXPECT_EQ(d["max_attempts"].GetInt(), 3);
    EXPECT_FALSE(d.HasMember("timeout"));

    EXPECT_EQ(MergeOptions("{}", "{}"), "{}");
    EXPECT_EQ(MergeOptions("not json", R"({"a": 1})"), R"({"a":1})");
    EXPECT_EQ(MergeOptions(R"({"a": 1})", R"({"b": null})"), R"({"a":1})");
    Error e = Catch([] { MergeOptions("{}", "[1]"); });
    EXPECT_EQ(e.sqlstate(), "22023");
    EXPECT_STREQ(e.what(), "sync options must be a JSON object");
}

TEST(ParseStringArray, Values) {
    EXPECT_EQ(ParseStringArray(R"(["id", "tenant \"x\"", ""])"),
              (std::vector<std::string>{"id", "tenant \"x\"", ""}));
    EXPECT_TRUE(ParseStringArray("[]").empty());
    // Non-strings are skipped; anything not an array is empty.
    EXPECT_EQ(ParseStringArray(R"(["a", 1, null, "b"])"), (std::vector<std::string>{"a", "b"}));
    EXPECT_TRUE(ParseStringArray(R"({"a": "b"})").empty());
    EXPECT_TRUE(ParseStringArray("\"a\"").empty());
    EXPECT_TRUE(ParseStringArray("").empty());
    EXPECT_TRUE(ParseStringArray("[\"a\"").empty());
}

TEST(SyncDefinition, PlanCarriesTheDefinition) {
    SyncDefinition d;
    d.model.kind = ModelRef::Kind::Relation;
    d.model.schema = "public";
    d.model.name = "users";
    d.key_columns = {"id", "org"};
    d.map = {{"email", "lower(email)"}};
    d.shadow_table = "sync_7";
    d.mode = "upsert";
    PlanSpec spec = d.Plan("revetl_shadow");
    EXPECT_FALSE(spec.include_removals);
    EXPECT_EQ(spec.model.kind, ModelRef::Kind::Relation);
    EXPECT_EQ(spec.model.schema, "public");
    EXPECT_EQ(spec.model.name, "users");
    EXPECT_EQ(spec.key_columns, (std::vector<std::string>{"id", "org"}));
    ASSERT_EQ(spec.map.size(), 1u);
    EXPECT_EQ(spec.map[0].field, "email");
    EXPECT_EQ(spec.map[0].expression, "lower(email)");
    EXPECT_EQ(spec.shadow_schema, "revetl_shadow");
    EXPECT_EQ(spec.shadow_table, "sync_7");
}

TEST(SyncDefinition, IncludeRemovalsOnlyForMirror) {
    SyncDefinition d;
    d.mode = "mirror";
    EXPECT_TRUE(d.Plan("s").include_removals);
    d.mode = "upsert";
    EXPECT_FALSE(d.Plan("s").include_removals);
    d.mode = "MIRROR";
    EXPECT_FALSE(d.Plan("s").include_removals);
    d.mode = "";
    EXPECT_FALSE(d.Plan("s").include_removals);
}

TEST(SyncDefinition, IncludeChangesExceptInInsertMode) {
    SyncDefinition d;
    for (const char *mode : {"upsert", "update", "mirror"}) {
        d.mode = mode;
        EXPECT_TRUE(d.Plan("s").include_changes) << mode;
    }
    d.mode = "insert";
    EXPECT_FALSE(d.Plan("s").include_changes);
    EXPECT_FALSE(d.Plan("s").include_removals);
}

TEST(SyncDefinition, ToStatement) {
    SyncDefinition d;
    d.name = "crm";
    d.model.kind = ModelRef::Kind::Relation;
    d.model.schema = "public";
    d.model.name = "Users";
    d.destination = "hubspot";
    d.object = "contacts";
    d.match_on = "email";
    d.key_columns = {"id"};
    d.mode = "mirror";
    d.map = {{"email", "lower(email)"}, {"score", "lead_score"}};
    d.options_json = R"({"batch_size": 50, "timeout": "10s"})";
    d.schedule.kind = dsl::Schedule::Kind::Every;
    d.schedule.value = "15 minutes";
    dsl::CreateSync c = d.ToStatement();
    EXPECT_EQ(c.name, "crm");
    EXPECT_FALSE(c.model_is_query);
    EXPECT_EQ(c.model_schema, "public");
    EXPECT_EQ(c.model_name, "Users");
    EXPECT_EQ(c.server, "hubspot");
    EXPECT_EQ(c.object, std::optional<std::string>("contacts"));
    EXPECT_EQ(c.match_on, std::optional<std::string>("email"));
    EXPECT_EQ(c.key, (std::vector<std::string>{"id"}));
    EXPECT_EQ(c.mode, "mirror");
    ASSERT_EQ(c.map.size(), 2u);
    EXPECT_EQ(c.map[0].expression, "lower(email)");
    EXPECT_EQ(c.map[0].field, "email");
    EXPECT_EQ(c.map[1].field, "score");
    ASSERT_TRUE(c.schedule.has_value());
    EXPECT_EQ(c.schedule->kind, dsl::Schedule::Kind::Every);
    EXPECT_EQ(c.schedule->value, "15 minutes");
    ASSERT_EQ(c.options.size(), 2u);
    EXPECT_EQ(c.options[0].name, "batch_size");
    EXPECT_EQ(c.options[0].value, "50");
    EXPECT_EQ(c.options[1].name, "timeout");
    EXPECT_EQ(c.options[1].value, "10s");

    d.model.kind = ModelRef::Kind::Query;
    d.model.query = "SELECT 1 AS id";
    c = d.ToStatement();
    EXPECT_TRUE(c.model_is_query);
    EXPECT_EQ(c.model_query, "SELECT 1 AS id");
    EXPECT_EQ(c.ModelText(), "SELECT 1 AS id");
}

TEST(SyncDefinition, ModelDisplayName) {
    SyncDefinition d;
    d.model.kind = ModelRef::Kind::Relation;
    d.model.schema = "sales";
    d.model.name = "deals";
    EXPECT_EQ(d.ModelDisplayName(), "sales.deals");
    d.model.kind = ModelRef::Kind::Query;
    d.model.query = "SELECT 1";
    EXPECT_EQ(d.ModelDisplayName(), "(query)");
}

TEST(ParseSyncOptions, MaxRemovals) {
    using Kind = SyncOptions::RemovalLimit::Kind;
    SyncOptions o = ParseSyncOptions(R"({"max_removals": "5%"})");
    ASSERT_TRUE(o.max_removals);
    EXPECT_EQ(o.max_removals->kind, Kind::Percent);
    EXPECT_EQ(o.max_removals->value, 5);
    o = ParseSyncOptions(R"({"max_removals": 1000})");
    EXPECT_EQ(o.max_removals->kind, Kind::Count);
    EXPECT_EQ(o.max_removals->value, 1000);
    o = ParseSyncOptions(R"({"max_removals": "250"})");
    EXPECT_EQ(o.max_removals->kind, Kind::Count);
    EXPECT_EQ(o.max_removals->value, 250);
    o = ParseSyncOptions(R"({"max_removals": "none"})");
    EXPECT_EQ(o.max_removals->kind, Kind::None);
    for (const char *bad :
         {R"({"max_removals": "101%"})", R"({"max_removals": "-1"})", R"({"max_removals": -5})",
          R"({"max_removals": "lots"})", R"({"max_removals": true})", R"({"max_removals": "%"})"}) {
        SCOPED_TRACE(bad);
        Error e = Catch([&] { ParseSyncOptions(bad); });
        EXPECT_EQ(e.sqlstate(), "22023");
        EXPECT_STREQ(e.what(), "invalid value for sync option \"max_removals\"");
    }
    Error e = Catch([] { ParseSyncOptions(R"({"max_removal": 5})"); });
    EXPECT_EQ(e.hint().rfind("Perhaps you meant \"max_removals\".", 0), 0u);
}

TEST(MaxRemovals, DefaultIsTenPercentWithAFloor) {
    SyncOptions o;
    EXPECT_EQ(MaxRemovals(o, 0), 100);
    EXPECT_EQ(MaxRemovals(o, 500), 100);
    EXPECT_EQ(MaxRemovals(o, 5000), 500);
    o = ParseSyncOptions(R"({"max_removals": "50%"})");
    EXPECT_EQ(MaxRemovals(o, 300), 150);
    EXPECT_EQ(MaxRemovals(o, 0), 0);
    EXPECT_EQ(MaxRemovals(o, 5000000000000LL), 2500000000000LL); // no overflow
    o = ParseSyncOptions(R"({"max_removals": 7})");
    EXPECT_EQ(MaxRemovals(o, 1000000), 7);
    o = ParseSyncOptions(R"({"max_removals": "none"})");
    EXPECT_EQ(MaxRemovals(o, 10), -1);
    EXPECT_EQ(DescribeMaxRemovals(ParseSyncOptions(R"({"max_removals": "50%"})"), 300),
              "50% of the 300 records delivered");
    EXPECT_EQ(DescribeMaxRemovals(SyncOptions{}, 300),
              "the default, 10% of the 300 records delivered and at least 100");
}
