// The WAL capture's consumer (docs/change-tracking.md, "WAL capture").
//
// The slot is read with pg_logical_slot_peek_changes, which does not move
// it, the keys are inserted and committed (synchronously), and only then is
// the slot advanced: a crash between the two decodes the same changes again
// (their keys are queued twice, which plans them once), never loses them.
// A pass reads up to the WAL flush position taken BEFORE it reads the list
// of WAL-tracked syncs, so that a sync committed before that position is in
// the list: the slot is never advanced past a change of a sync it did not
// decode for.
#include "pg/wal_capture.hpp"

#include "core/common/sql_text.hpp"

#include "pg/guard.hpp"
#include "pg/planning.hpp"
#include "pg/pg_includes.hpp"
#include "pg/run_requests.hpp"
#include "pg/spi.hpp"

extern "C" {
#include "replication/slot.h"
#include "storage/standby.h"
}

#include <string>
#include <vector>

namespace revetl::pg {

namespace {

std::string SlotName() {
    return "revetl_" + std::to_string(MyDatabaseId);
}

bool g_told_wal_level = false;

// A logical slot's restart_lsn moves only to a running-transactions record
// decoded since the last confirm, and the background writer logs one every
// 15 seconds: each read would decode up to 15 s of WAL again (7 MB a read
// at 1,000 commits/s). One is logged after a confirm at most this often.
constexpr long kRunningXactsIntervalMs = 250;
TimestampTz g_last_running_xacts = 0;

// Every transaction that loads the plugin (creating, reading or advancing
// the slot): the server lets a library decode only if it is listed in
// output_plugin_libraries, a superuser setting; the worker lists revetl for
// its own transaction alone, so no REPLICATION user gains it.
void AllowPlugin() {
    // (A server without the setting loads any plugin.)
    Sql("SELECT pg_catalog.set_config(name, 'revetl', true) FROM pg_catalog.pg_settings "
        "WHERE name = 'output_plugin_libraries'");
    // Decoding logs its start at LOG level, which would be every pass.
    Sql("SET LOCAL log_min_messages = warning");
}

// A background worker's error recovery is revetl's own: a slot the failed
// statement held must be let go, or it stays active (and unusable) until the
// worker exits.
void ReleaseSlot() {
    PgGuard([] {
        if (MyReplicationSlot != nullptr)
            ReplicationSlotRelease();
        compat::CleanupReplicationSlots();
    });
}

bool CaptureWalChangesImpl();

// The server invalidated the slot (it retained more than
// max_slot_wal_keep_size): the changes it had not yet decoded are gone from
// the WAL. Every WAL-tracked sync is no longer incremental-ready (stored, so
// that a crash before the new slot exists forgets nothing); the slot is
// dropped here, and the pass that creates the new one queues each such
// sync's full diff (FullDiffsAfterNewSlot). Nothing is lost, and the WARNING
// says so once.
bool SlotLost(const std::string &slot, const std::string &database) {
    BeginTransaction("revetl: replacing an invalidated WAL slot");
    SqlResult syncs =
        Sql(std::string("WITH w AS (SELECT s.id, s.name FROM revetl.syncs s WHERE ") + kWalTrackedPredicate +
            "), "
            "r AS (INSERT INTO revetl.sync_state (sync_id, incremental_ready) "
            "SELECT id, false FROM w ON CONFLICT (sync_id) DO UPDATE SET incremental_ready = "
            "false) "
            "SELECT id, name FROM w ORDER BY name");
    std::string names;
    for (size_t i = 0; i < syncs.rows.size(); i++)
        names += (i ? ", " : "") + QuoteIdent(syncs.Text(i, 1));
    CommitTransaction();
    DropWalSlot();
    PgGuard([&] {
        ereport(
            WARNING,
            (errmsg("revetl worker for database \"%s\": replication slot \"%s\" was invalidated",
                    database.c_str(), slot.c_str()),
             errdetail("The slot retained more WAL than max_slot_wal_keep_size allows, and the changes it "
                       "had not yet read are no longer in the WAL. The slot is created again, and then "
                       "each WAL-tracked sync (%s) runs a full diff, which finds them.",
                       names.empty() ? "none" : names.c_str()),
             errhint("Raise max_slot_wal_keep_size, or find what held the slot back (see "
                     "revetl.sync_status.wal_retained_bytes).")));
    });
    return true;
}

// Right after the slot was created: a WAL-tracked sync that has run but is
// not incremental-ready (its slot was invalidated, or its first full diff
// ran before the slot existed) gets a NULL key, so that its next run is a
// full diff whose snapshot follows the slot. Creating the slot waited for
// the transactions running then, so whatever committed before the slot's
// starting point is in that snapshot, and whatever commits later is decoded:
// a change cannot fall between the two. Without this it would wait for the
// table's next change.
void FullDiffsAfterNewSlot() {
    BeginTransaction("revetl: full diffs after a new WAL slot");
    SqlResult woken =
        Sql(std::string("INSERT INTO revetl.captured_changes (sync_id, key) SELECT s.id, NULL "
                        "FROM revetl.syncs s JOIN revetl.sync_state st ON st.sync_id = s.id "
                        "WHERE ") +
            kWalTrackedPredicate +
            " AND NOT st.incremental_ready AND EXISTS (SELECT 1 FROM revetl.runs r "
            "WHERE r.sync_id = s.id AND r.status IN ('succeeded', 'partial')) RETURNING sync_id");
    for (size_t i = 0; i < woken.rows.size(); i++)
        WakeSyncAtCommit(woken.Int8(i, 0));
    CommitTransaction();
}

} // namespace

bool CaptureWalChanges() {
    try {
        return CaptureWalChangesImpl();
    } catch (...) {
        AbortTransaction();
        ReleaseSlot();
        throw;
    }
}

void DropWalSlot() {
    BeginTransaction("revetl: dropping the WAL slot");
    Sql("SELECT pg_catalog.pg_drop_replication_slot(slot_name) FROM pg_catalog.pg_replication_slots "
        "WHERE slot_name = $1 AND NOT active",
        {SqlArg::Text(SlotName())});
    CommitTransaction();
}

namespace {

bool CaptureWalChangesImpl() {
    const std::string slot = SlotName();
    BeginTransaction("revetl: reading the WAL");
    SqlResult pos = Sql("SELECT pg_catalog.pg_current_wal_flush_lsn()::text, "
                        "pg_catalog.current_setting('wal_level') = 'logical', "
                        "EXISTS (SELECT 1 FROM pg_catalog.pg_replication_slots WHERE slot_name = $1), "
                        "pg_catalog.to_regclass('revetl.syncs') IS NOT NULL, pg_catalog.pg_is_in_recovery(), "
                        "pg_catalog.current_database(), "
                        "EXISTS (SELECT 1 FROM pg_catalog.pg_replication_slots WHERE slot_name = $1 "
                        "AND wal_status = 'lost')",
                        {SqlArg::Text(slot)}, true);
    CommitTransaction();
    if (pos.Bool(0, 6) && pos.Bool(0, 3) && !pos.Bool(0, 4))
        return SlotLost(slot, pos.Text(0, 5));
    const std::string upto = pos.Text(0, 0);
    const bool logical = pos.Bool(0, 1);
    const bool slot_exists = pos.Bool(0, 2);
    const std::string database = pos.Text(0, 5);
    if (pos.Bool(0, 4))
        return false; // a standby: its primary's worker captures
    if (!pos.Bool(0, 3)) {
        if (slot_exists)
            DropWalSlot();
        return false;
    }
    // The list of syncs, read after the position (see above): each as the
    // plugin's option '<sync id>:<table oid>:<key attnums>'.
    BeginTransaction("revetl: reading the WAL");
    SqlResult syncs =
        Sql(std::string("SELECT t.target FROM (SELECT s.id::text || ':' || c.oid::text || ':' || "
                        "(SELECT CASE WHEN count(*) = pg_catalog.cardinality(s.key_columns) THEN "
                        "pg_catalog.string_agg(a.attnum::text, ',' ORDER BY k.o) END "
                        "FROM pg_catalog.unnest(s.key_columns) WITH ORDINALITY AS k(name, o) "
                        "JOIN pg_catalog.pg_attribute a ON a.attrelid = c.oid AND a.attname = "
                        "k.name AND a.attnum > 0 AND NOT a.attisdropped) AS target "
                        "FROM revetl.syncs s JOIN pg_catalog.pg_namespace n ON n.nspname = "
                        "s.model_schema JOIN pg_catalog.pg_class c ON c.relnamespace = n.oid "
                        "AND c.relname = s.model_name WHERE ") +
                kWalTrackedPredicate + ") t WHERE t.target IS NOT NULL",
            {}, true);
    CommitTransaction();
    if (syncs.rows.empty()) {
        if (slot_exists)
            DropWalSlot();
        return false;
    }
    if (!logical) {
        // CREATE SYNC refuses this; a server restarted with a lower
        // wal_level after it gets here.
        if (!g_told_wal_level)
            PgGuard([&] {
                ereport(WARNING,
                        (errmsg("revetl worker for database \"%s\" cannot capture changes from the WAL",
                                database.c_str()),
                         errdetail("wal_level is not logical; syncs with track_changes = 'wal' plan "
                                   "by full diff until it is."),
                         errhint("Set wal_level = logical and restart the server.")));
            });
        g_told_wal_level = true;
        return true;
    }
    g_told_wal_level = false;
    if (!slot_exists) {
        // Outside any transaction that wrote: PostgreSQL refuses otherwise.
        // It waits for the transactions running now to end.
        BeginTransaction("revetl: creating the WAL slot");
        AllowPlugin();
        Sql("SELECT pg_catalog.pg_create_logical_replication_slot($1, 'revetl')", {SqlArg::Text(slot)});
        CommitTransaction();
        PgGuard([&] {
            ereport(LOG, (errmsg("revetl worker for database \"%s\" created replication slot \"%s\"",
                                 database.c_str(), slot.c_str())));
        });
        FullDiffsAfterNewSlot();
        return true;
    }
    std::vector<std::optional<std::string>> options;
    for (size_t i = 0; i < syncs.rows.size(); i++) {
        options.push_back(std::string("sync"));
        options.push_back(syncs.Text(i, 0));
    }
    BeginTransaction("revetl: reading the WAL");
    // Keys render as the capture function renders them; the keys must be on
    // disk before the slot moves.
    Sql("SET LOCAL DateStyle = 'ISO, YMD'");
    Sql("SET LOCAL TimeZone = 'UTC'");
    Sql("SET LOCAL IntervalStyle = 'postgres'");
    Sql("SET LOCAL extra_float_digits = 3");
    Sql("SET LOCAL synchronous_commit = on");
    AllowPlugin();
    // Keys decoded in one pass are queued once each (coalesced by key).
    SqlResult woken =
        Sql("WITH d AS (SELECT DISTINCT pg_catalog.split_part(data, E'\\t', 1)::bigint AS sync_id, "
            "CASE WHEN pg_catalog.strpos(data, E'\\t') > 0 THEN pg_catalog.substr(data, "
            "pg_catalog.strpos(data, E'\\t') + 1) END AS key "
            "FROM pg_catalog.pg_logical_slot_peek_changes($1, $2::pg_catalog.pg_lsn, NULL, VARIADIC $3)), "
            "ins AS (INSERT INTO revetl.captured_changes (sync_id, key) SELECT d.sync_id, d.key FROM d "
            "JOIN revetl.syncs s ON s.id = d.sync_id RETURNING sync_id) "
            "SELECT DISTINCT sync_id FROM ins",
            {SqlArg::Text(slot), SqlArg::Text(upto), SqlArg::TextArray(options)});
    // An ON CHANGE run in progress plans the new keys at once; otherwise
    // this scheduler queues one.
    for (size_t i = 0; i < woken.rows.size(); i++)
        WakeSyncAtCommit(woken.Int8(i, 0));
    CommitTransaction();
    BeginTransaction("revetl: confirming the WAL read");
    AllowPlugin();
    Sql("SELECT pg_catalog.pg_replication_slot_advance(slot_name, $2::pg_catalog.pg_lsn) "
        "FROM pg_catalog.pg_replication_slots WHERE slot_name = $1 AND confirmed_flush_lsn < "
        "$2::pg_catalog.pg_lsn",
        {SqlArg::Text(slot), SqlArg::Text(upto)});
    CommitTransaction();
    PgGuard([] {
        const TimestampTz now = GetCurrentTimestamp();
        if (TimestampDifferenceExceeds(g_last_running_xacts, now, kRunningXactsIntervalMs)) {
            (void)LogStandbySnapshot();
            g_last_running_xacts = now;
        }
    });
    return true;
}

} // namespace
} // namespace revetl::pg
