#include "core/delivery/recording_messages.hpp"

#include <gtest/gtest.h>

#include <cstring>
#include <string>

using namespace revetl;

namespace {

RecordingGroup SampleGroup() {
    RecordingGroup g;
    g.record.added.keys = {"{\"id\": 1}", "{\"id\": 2}"};
    g.record.added.row_hashes = {-5, INT64_MAX};
    g.record.added.dest_ids = {std::nullopt, std::string("rec-2")};
    g.record.added.uncertain = {false, true};
    g.record.changed.keys = {std::string("{\"id\": \"a\\u0000b\"}", 17)}; // any byte, NUL included
    g.record.changed.row_hashes = {INT64_MIN};
    g.record.changed.dest_ids = {std::string()};
    g.record.changed.uncertain = {true};
    g.record.removal_keys = {"{\"id\": 9}"};
    g.record.removal_uncertain = {true};
    g.record.forgotten_keys = {"{\"id\": 10}"};
    g.record.rejected = "[{\"key\":{\"id\":3},\"reason\":\"bad\"}]";
    g.record.delivered = 4;
    g.record.rejected_count = 1;
    g.seqs = {1, 2, 3, 7};
    g.jobs = {42};
    g.requests = 3;
    g.retries = 1;
    g.rows_retried = 2;
    g.throttled = 0;
    g.version_id = 77;
    g.sent_after = 123456789;
    return g;
}

void ExpectSameRows(const ShadowRows &a, const ShadowRows &b) {
    EXPECT_EQ(a.keys, b.keys);
    EXPECT_EQ(a.row_hashes, b.row_hashes);
    EXPECT_EQ(a.dest_ids, b.dest_ids);
    EXPECT_EQ(a.uncertain, b.uncertain);
}

} // namespace

TEST(RecordingMessages, SetupRoundTrips) {
    RecordingSetup s;
    s.run_id = 12;
    s.sync_id = 3;
    s.sync_name = "crm \"contacts\"";
    s.shadow_table = "shadow_3";
    s.mode = "mirror";
    s.tracked = true;
    s.resync = false;
    s.bulk_insert = false;
    s.settle_time_ms = 60000;
    const std::string m = EncodeSetup(s);
    RecordingSetup d;
    ASSERT_TRUE(DecodeSetup(m, &d));
    EXPECT_EQ(d.run_id, 12);
    EXPECT_EQ(d.sync_id, 3);
    EXPECT_EQ(d.sync_name, s.sync_name);
    EXPECT_EQ(d.shadow_table, "shadow_3");
    EXPECT_EQ(d.mode, "mirror");
    EXPECT_TRUE(d.tracked);
    EXPECT_FALSE(d.resync);
    EXPECT_FALSE(d.bulk_insert);
    EXPECT_EQ(d.settle_time_ms, 60000);
}

TEST(RecordingMessages, GroupRoundTrips) {
    const RecordingGroup g = SampleGroup();
    const std::string m = EncodeGroup(g);
    RecordingGroup d;
    ASSERT_TRUE(DecodeGroup(m, &d));
    ExpectSameRows(d.record.added, g.record.added);
    ExpectSameRows(d.record.changed, g.record.changed);
    EXPECT_EQ(d.record.changed.keys[0].size(), 17u);
    EXPECT_EQ(d.record.removal_keys, g.record.removal_keys);
    EXPECT_EQ(d.record.removal_uncertain, g.record.removal_uncertain);
    EXPECT_EQ(d.record.forgotten_keys, g.record.forgotten_keys);
    EXPECT_EQ(d.record.rejected, g.record.rejected);
    EXPECT_EQ(d.record.delivered, 4);
    EXPECT_EQ(d.record.rejected_count, 1);
    EXPECT_EQ(d.seqs, g.seqs);
    EXPECT_EQ(d.jobs, g.jobs);
    EXPECT_EQ(d.requests, 3);
    EXPECT_EQ(d.retries, 1);
    EXPECT_EQ(d.rows_retried, 2);
    EXPECT_EQ(d.throttled, 0);
    EXPECT_EQ(d.version_id, 77);
    EXPECT_EQ(d.sent_after, std::optional<int64_t>(123456789));

    RecordingGroup none = g;
    none.sent_after.reset();
    ASSERT_TRUE(DecodeGroup(EncodeGroup(none), &d));
    EXPECT_FALSE(d.sent_after.has_value());
}

TEST(RecordingMessages, EmptyGroupRoundTrips) {
    RecordingGroup d;
    ASSERT_TRUE(DecodeGroup(EncodeGroup(RecordingGroup{}), &d));
    EXPECT_TRUE(d.record.added.keys.empty());
    EXPECT_TRUE(d.seqs.empty());
    EXPECT_EQ(d.record.rejected, "");
}

TEST(RecordingMessages, RepliesRoundTrip) {
    for (auto kind :
         {RecordingReply::Kind::Ready, RecordingReply::Kind::Declined, RecordingReply::Kind::Recorded,
          RecordingReply::Kind::Dropped, RecordingReply::Kind::Failed}) {
        RecordingReply r;
        r.kind = kind;
        r.dequeued = 5000;
        r.sqlerrcode = 0x1234;
        r.message = "duplicate key value violates unique constraint \"shadow_1_pkey\"";
        r.detail = "Key (key)=({\"id\": 1}) already exists.";
        RecordingReply d;
        ASSERT_TRUE(DecodeReply(EncodeReply(r), &d));
        EXPECT_EQ(d.kind, kind);
        EXPECT_EQ(d.dequeued, 5000);
        EXPECT_EQ(d.sqlerrcode, 0x1234);
        EXPECT_EQ(d.message, r.message);
        EXPECT_EQ(d.detail, r.detail);
    }
}

TEST(RecordingMessages, EveryTruncationIsRefused) {
    const std::string m = EncodeGroup(SampleGroup());
    RecordingGroup d;
    for (size_t n = 0; n < m.size(); n++)
        EXPECT_FALSE(DecodeGroup(std::string_view(m.data(), n), &d))
            << "accepted " << n << " of " << m.size();
    EXPECT_FALSE(DecodeGroup(m + "x", &d)) << "bytes left over";
    const std::string s = EncodeSetup(RecordingSetup{});
    RecordingSetup ds;
    for (size_t n = 0; n < s.size(); n++)
        EXPECT_FALSE(DecodeSetup(std::string_view(s.data(), n), &ds));
    const std::string r = EncodeReply(RecordingReply{});
    RecordingReply dr;
    for (size_t n = 0; n < r.size(); n++)
        EXPECT_FALSE(DecodeReply(std::string_view(r.data(), n), &dr));
}

TEST(RecordingMessages, WrongTypesAndCorruptCountsAreRefused) {
    RecordingGroup d;
    RecordingSetup s;
    RecordingReply r;
    EXPECT_FALSE(DecodeGroup(EncodeSetup(RecordingSetup{}), &d));
    EXPECT_FALSE(DecodeSetup(EncodeGroup(RecordingGroup{}), &s));
    EXPECT_FALSE(DecodeReply("", &r));
    EXPECT_FALSE(DecodeReply("Z", &r));
    EXPECT_FALSE(DecodeReply(std::string(1, '\0') + EncodeReply(RecordingReply{}).substr(1), &r));
    EXPECT_FALSE(DecodeReply(std::string(1, '\10') + EncodeReply(RecordingReply{}).substr(1), &r));
    EXPECT_EQ(MessageType(""), std::nullopt);
    EXPECT_EQ(MessageType("x"), std::nullopt);
    EXPECT_EQ(MessageType(EncodeQueueCommit()), RecordingMessageType::QueueCommit);

    // A count far larger than the message: refused, not allocated.
    std::string m = EncodeGroup(RecordingGroup{});
    const uint64_t huge = UINT64_MAX / 2;
    std::memcpy(&m[1], &huge, sizeof huge);
    EXPECT_FALSE(DecodeGroup(m, &d));

    // A bool that is neither 0 nor 1.
    std::string setup = EncodeSetup(RecordingSetup{});
    setup[setup.size() - sizeof(int64_t) - 1] = 2;
    EXPECT_FALSE(DecodeSetup(setup, &s));

    // Columns of different lengths.
    RecordingGroup bad = SampleGroup();
    bad.record.added.uncertain.pop_back();
    EXPECT_FALSE(DecodeGroup(EncodeGroup(bad), &d));
    RecordingGroup bad_removals = SampleGroup();
    bad_removals.record.removal_uncertain.push_back(false);
    EXPECT_FALSE(DecodeGroup(EncodeGroup(bad_removals), &d));
}

namespace {

QueueChunk SampleChunk() {
    QueueChunk chunk;
    chunk.run_id = 41;
    QueuedChange add;
    add.seq = 1;
    add.op = 'a';
    add.key = "{\"id\": 1}";
    // Bytes, not C strings: a NUL included is kept.
    add.dest_id = std::string("rec\0-1", 6);
    add.row_hash = -7;
    add.version = -41;
    QueuedChange removal;
    removal.seq = 2;
    removal.op = 'r';
    removal.key = "{\"id\": 2}";
    removal.dest_id = "rec-2";
    removal.version = 39;
    chunk.changes = {add, removal};
    return chunk;
}

} // namespace

TEST(RecordingMessages, QueueChunksRoundTrip) {
    const QueueChunk chunk = SampleChunk();
    const std::string m = EncodeQueueChunk(chunk);
    EXPECT_EQ(MessageType(m), RecordingMessageType::Queue);
    QueueChunk d;
    ASSERT_TRUE(DecodeQueueChunk(m, &d));
    EXPECT_EQ(d.run_id, 41);
    ASSERT_EQ(d.changes.size(), 2u);
    EXPECT_EQ(d.changes[0].seq, 1);
    EXPECT_EQ(d.changes[0].op, 'a');
    EXPECT_EQ(d.changes[0].key, chunk.changes[0].key);
    EXPECT_EQ(d.changes[0].row_hash, std::optional<int64_t>(-7));
    EXPECT_EQ(d.changes[0].dest_id, chunk.changes[0].dest_id);
    EXPECT_EQ(d.changes[0].dest_id->size(), 6u);
    EXPECT_EQ(d.changes[0].version, std::optional<int64_t>(-41));
    EXPECT_EQ(d.changes[1].op, 'r');
    EXPECT_EQ(d.changes[1].row_hash, std::nullopt);
    EXPECT_EQ(d.changes[1].dest_id, std::optional<std::string>("rec-2"));

    for (size_t n = 0; n < m.size(); n++)
        EXPECT_FALSE(DecodeQueueChunk(std::string_view(m.data(), n), &d))
            << "accepted " << n << " of " << m.size();
    EXPECT_FALSE(DecodeQueueChunk(m + "x", &d));
    EXPECT_FALSE(DecodeQueueChunk(EncodeGroup(RecordingGroup{}), &d));
    RecordingGroup g;
    EXPECT_FALSE(DecodeGroup(m, &g));
}
