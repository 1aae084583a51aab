#include "core/delivery/batch_record.hpp"

#include "core/connectors/connector.hpp"

#include "test_util.hpp"

#include <gtest/gtest.h>
#include <rapidjson/document.h>

#include <string>
#include <vector>

using namespace revetl;
using revetl_test::MakeChange;

namespace {

RowOutcome Accepted(const std::string &dest_id = {}) {
    RowOutcome o;
    o.accepted = true;
    o.http_status = 200;
    o.dest_id = dest_id;
    return o;
}

RowOutcome Rejected(long status, const std::string &reason, const std::string &code) {
    RowOutcome o;
    o.accepted = false;
    o.http_status = status;
    o.reason = reason;
    o.error_code = code;
    return o;
}

rapidjson::Document Parse(const std::string &json) {
    rapidjson::Document doc;
    doc.Parse(json.c_str(), json.size());
    EXPECT_FALSE(doc.HasParseError()) << json;
    return doc;
}

} // namespace

TEST(BuildBatchRecord, SplitsAcceptedUpsertsRemovalsAndRejected) {
    std::vector<Change> changes = {
        MakeChange(Change::Op::Add, "{\"id\": 1}", "{\"a\": 1}", 11, "stored-1"), // 0 accepted, new id
        MakeChange(Change::Op::Change, "{\"id\": 2}", "{\"a\": 2}", -22,
                   "stored-2"),                                           // 1 accepted, stored id kept
        MakeChange(Change::Op::Add, "{\"id\": 3}", "{\"a\": 3}", 33),     // 2 accepted, no id at all
        MakeChange(Change::Op::Remove, "{\"id\": 4}", "", 0, "stored-4"), // 3 accepted removal
        MakeChange(Change::Op::Add, "{\"id\": 5}", "{\"a\": 5}", 55),     // 4 rejected
        MakeChange(Change::Op::Remove, "{\"id\": 6}", "", 0),             // 5 rejected removal
        MakeChange(Change::Op::Change, "{\"id\": 7}", "{\"a\": \"q\\\"uote\"}", 77), // 6 rejected, no detail
    };
    std::vector<RowOutcome> outcomes = {
        Accepted("dest-1"),
        Accepted(),
        Accepted(),
        Accepted("ignored-for-removals"),
        Rejected(422, "invalid email", "E_EMAIL"),
        Rejected(404, "no such record", ""),
        Rejected(0, "", ""),
    };
    BatchRecord rec = BuildBatchRecord(changes, outcomes, 3);
    EXPECT_EQ(rec.delivered, 4);
    EXPECT_EQ(rec.rejected_count, 3);

    // Upserts: key as its text, the row hash, and the destination id (the
    // destination's new one first, else the stored one, else null); adds
    // apart from changes.
    EXPECT_EQ(rec.added.keys, (std::vector<std::string>{"{\"id\": 1}", "{\"id\": 3}"}));
    EXPECT_EQ(rec.added.row_hashes, (std::vector<int64_t>{11, 33}));
    EXPECT_EQ(rec.added.dest_ids, (std::vector<std::optional<std::string>>{"dest-1", std::nullopt}));
    EXPECT_EQ(rec.added.uncertain, (std::vector<bool>{false, false}));
    EXPECT_EQ(rec.changed.keys, (std::vector<std::string>{"{\"id\": 2}"}));
    EXPECT_EQ(rec.changed.row_hashes, (std::vector<int64_t>{-22}));
    EXPECT_EQ(rec.changed.dest_ids, (std::vector<std::optional<std::string>>{"stored-2"}));
    EXPECT_EQ(rec.changed.uncertain, (std::vector<bool>{false}));
    EXPECT_EQ(rec.removal_keys, (std::vector<std::string>{"{\"id\": 4}"}));

    rapidjson::Document rej = Parse(rec.rejected);
    ASSERT_TRUE(rej.IsArray());
    ASSERT_EQ(rej.Size(), 3u);

    const auto &r0 = rej[0];
    ASSERT_TRUE(r0["key"].IsObject());
    EXPECT_EQ(r0["key"]["id"].GetInt(), 5);
    EXPECT_STREQ(r0["operation"].GetString(), "upsert");
    EXPECT_STREQ(r0["reason"].GetString(), "invalid email");
    EXPECT_EQ(r0["http_status"].GetInt(), 422);
    EXPECT_STREQ(r0["error_code"].GetString(), "E_EMAIL");
    ASSERT_TRUE(r0["payload"].IsObject());
    EXPECT_EQ(r0["payload"]["a"].GetInt(), 5);
    EXPECT_EQ(r0["attempts"].GetInt(), 3);

    const auto &r1 = rej[1];
    EXPECT_EQ(r1["key"]["id"].GetInt(), 6);
    EXPECT_STREQ(r1["operation"].GetString(), "delete");
    EXPECT_STREQ(r1["reason"].GetString(), "no such record");
    EXPECT_EQ(r1["http_status"].GetInt(), 404);
    EXPECT_TRUE(r1["error_code"].IsNull());
    EXPECT_TRUE(r1["payload"].IsNull());

    const auto &r2 = rej[2];
    EXPECT_STREQ(r2["operation"].GetString(), "upsert");
    EXPECT_STREQ(r2["reason"].GetString(), "rejected by the destination");
    EXPECT_TRUE(r2["http_status"].IsNull());
    EXPECT_TRUE(r2["error_code"].IsNull());
    EXPECT_STREQ(r2["payload"]["a"].GetString(), "q\"uote");
}

TEST(BuildBatchRecord, ExactRejectedText) {
    BatchRecord rec = BuildBatchRecord({MakeChange(Change::Op::Remove, "{\"k\": \"x\"}", "", 0)},
                                       {Rejected(400, "bad\"one", "C1")}, 1);
    EXPECT_EQ(rec.rejected,
              R"([{"key":{"k": "x"},"operation":"delete","reason":"bad\"one","http_status":400,)"
              R"("error_code":"C1","hint":null,"payload":null,"attempts":1}])");
    EXPECT_TRUE(rec.added.keys.empty());
    EXPECT_TRUE(rec.changed.keys.empty());
    EXPECT_TRUE(rec.removal_keys.empty());
}

TEST(BuildBatchRecord, EmptyBatch) {
    BatchRecord rec = BuildBatchRecord({}, {}, 1);
    for (const ShadowRows *rows : {&rec.added, &rec.changed}) {
        EXPECT_TRUE(rows->keys.empty());
        EXPECT_TRUE(rows->row_hashes.empty());
        EXPECT_TRUE(rows->dest_ids.empty());
        EXPECT_TRUE(rows->uncertain.empty());
    }
    EXPECT_TRUE(rec.removal_keys.empty());
    EXPECT_EQ(rec.rejected, "[]");
    EXPECT_EQ(rec.delivered, 0);
    EXPECT_EQ(rec.rejected_count, 0);
}

TEST(BuildBatchRecord, AllAccepted) {
    std::vector<Change> changes;
    std::vector<RowOutcome> outcomes;
    for (int i = 0; i < 10; i++) {
        changes.push_back(MakeChange(i % 2 ? Change::Op::Remove : Change::Op::Add,
                                     "{\"id\": " + std::to_string(i) + "}", "{}", i));
        outcomes.push_back(Accepted());
    }
    BatchRecord rec = BuildBatchRecord(changes, outcomes, 1);
    EXPECT_EQ(rec.delivered, 10);
    EXPECT_EQ(rec.rejected_count, 0);
    EXPECT_EQ(rec.rejected, "[]");
    ASSERT_EQ(rec.added.keys.size(), 5u);
    ASSERT_EQ(rec.added.row_hashes.size(), 5u);
    ASSERT_EQ(rec.added.dest_ids.size(), 5u);
    ASSERT_EQ(rec.added.uncertain.size(), 5u);
    EXPECT_TRUE(rec.changed.keys.empty());
    ASSERT_EQ(rec.removal_keys.size(), 5u);
    EXPECT_EQ(rec.removal_keys[0], "{\"id\": 1}");
    EXPECT_EQ(rec.added.keys[4], "{\"id\": 8}");
    EXPECT_EQ(rec.added.row_hashes[4], 8);
}

TEST(BuildBatchRecord, StoredDestIdUsedWhenDestinationGivesNone) {
    BatchRecord rec =
        BuildBatchRecord({MakeChange(Change::Op::Change, "{\"id\": 1}", "{}", 5, "old")}, {Accepted("")}, 1);
    EXPECT_EQ(rec.changed.dest_ids, (std::vector<std::optional<std::string>>{"old"}));
    EXPECT_EQ(rec.changed.uncertain, (std::vector<bool>{false}));
    rec = BuildBatchRecord({MakeChange(Change::Op::Change, "{\"id\": 1}", "{}", 5, "old")}, {Accepted("new")},
                           1);
    EXPECT_EQ(rec.changed.dest_ids, (std::vector<std::optional<std::string>>{"new"}));
    // A row whose delivery was uncertain says so, for verify_after.
    RowOutcome uncertain = Accepted("new");
    uncertain.uncertain = true;
    rec = BuildBatchRecord({MakeChange(Change::Op::Change, "{\"id\": 1}", "{}", 5, "")}, {uncertain}, 1);
    EXPECT_EQ(rec.changed.dest_ids, (std::vector<std::optional<std::string>>{"new"}));
    EXPECT_EQ(rec.changed.uncertain, (std::vector<bool>{true}));
    EXPECT_EQ(rec.changed.row_hashes, (std::vector<int64_t>{5}));
}

TEST(BuildBatchRecord, AddOverATombstoneIsRecordedAsAChange) {
    // The plan saw a tombstone for the key (version > 0): its shadow row is
    // there, so the add must update it (keeping a pending verify_after), not
    // insert a new one.
    Change over_tombstone = MakeChange(Change::Op::Add, "{\"id\": 1}", "{}", 3);
    over_tombstone.version = 12;
    Change fresh = MakeChange(Change::Op::Add, "{\"id\": 2}", "{}", 4);
    BatchRecord rec = BuildBatchRecord({over_tombstone, fresh}, {Accepted(), Accepted()}, 1);
    EXPECT_EQ(rec.changed.keys, (std::vector<std::string>{"{\"id\": 1}"}));
    EXPECT_EQ(rec.added.keys, (std::vector<std::string>{"{\"id\": 2}"}));
}

TEST(BuildBatchRecord, RemovalsSayWhetherAnEarlierAttemptWasLost) {
    RowOutcome lost = Accepted();
    lost.uncertain = true;
    BatchRecord rec = BuildBatchRecord({MakeChange(Change::Op::Remove, "{\"id\": 1}", "", 0),
                                        MakeChange(Change::Op::Remove, "{\"id\": 2}", "", 0)},
                                       {lost, Accepted()}, 1);
    EXPECT_EQ(rec.removal_keys, (std::vector<std::string>{"{\"id\": 1}", "{\"id\": 2}"}));
    EXPECT_EQ(rec.removal_uncertain, (std::vector<bool>{true, false}));
}

TEST(BuildBatchRecord, UnresolvableRemovalIsRejectedOnceAndItsKeyForgotten) {
    std::vector<Change> changes = {
        MakeChange(Change::Op::Remove, "{\"id\": 1}", "", 0),          // no record id: forgotten
        MakeChange(Change::Op::Remove, "{\"id\": 2}", "", 0, "rec-2"), // id known: never forgotten
        MakeChange(Change::Op::Add, "{\"id\": 3}", "{\"a\": 3}", 33),  // a write: never forgotten
        MakeChange(Change::Op::Remove, "{\"id\": 4}", "", 0),          // an ordinary refusal
    };
    RowOutcome unresolvable = UnresolvableRemoval("Acme", "Acme record id", "deleted", "email");
    std::vector<RowOutcome> outcomes = {unresolvable, unresolvable, unresolvable,
                                        Rejected(0, "no id", "NO_RECORD_ID")};
    BatchRecord rec = BuildBatchRecord(changes, outcomes, 1);
    EXPECT_EQ(rec.forgotten_keys, std::vector<std::string>{"{\"id\": 1}"});
    EXPECT_EQ(rec.rejected_count, 4);
    EXPECT_EQ(rec.delivered, 0);
    EXPECT_TRUE(rec.removal_keys.empty());
    rapidjson::Document doc = Parse(rec.rejected);
    ASSERT_TRUE(doc.IsArray());
    ASSERT_EQ(doc.Size(), 4u);
    EXPECT_STREQ(doc[0]["error_code"].GetString(), "NO_RECORD_ID");
    EXPECT_STREQ(doc[0]["operation"].GetString(), "delete");
    ASSERT_TRUE(doc[0]["hint"].IsString());
    EXPECT_NE(std::string(doc[0]["hint"].GetString()).find("remove it there by hand"), std::string::npos);
    EXPECT_NE(std::string(doc[0]["reason"].GetString()).find("reports this once"), std::string::npos);
    EXPECT_TRUE(doc[3]["hint"].IsNull());
}
