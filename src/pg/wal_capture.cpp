// The WAL capture's consumer (docs/change-tracking.md, "WAL capture").
//
// The scheduler decodes the slot with a logical decoding context it keeps
// from pass to pass (the reader below), queues the decoded keys in
// revetl.captured_changes and commits without waiting for the flush; the
// slot is confirmed past those keys only on a later pass, once that commit
// is on disk. A crash in between decodes the same changes again (their keys
// are queued twice, which plans them once), never loses them. A pass reads
// up to the WAL flush position taken BEFORE it reads the list of
// WAL-tracked syncs, so that a sync committed before that position is in
// the list: the slot is never confirmed past a change of a sync it did not
// decode for (a new list makes a new context, which decodes again from the
// confirmed position).
#include "pg/wal_capture.hpp"

#include "core/common/sql_text.hpp"

#include "pg/guard.hpp"
#include "pg/planning.hpp"
#include "pg/pg_includes.hpp"
#include "pg/run_requests.hpp"
#include "pg/session.hpp"
#include "pg/spi.hpp"

extern "C" {
#include "access/xlogutils.h"
#include "nodes/makefuncs.h"
#include "replication/decode.h"
#include "replication/logical.h"
#include "replication/slot.h"
#include "storage/lmgr.h"
#include "storage/standby.h"
#include "utils/inval.h"
#include "utils/resowner.h"
#include "utils/snapmgr.h"
#include "utils/syscache.h"
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
// Not after a confirm that moved less than kRunningXactsMinBytes: the record
// itself would be the next pass's only WAL, and so on, on an idle server.
constexpr long kRunningXactsIntervalMs = 250;
constexpr XLogRecPtr kRunningXactsMinBytes = 8192;
TimestampTz g_last_running_xacts = 0;
XLogRecPtr g_last_running_xacts_lsn = InvalidXLogRecPtr;

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

// The reader: one logical decoding context kept from pass to pass, as a
// walsender keeps its own, instead of a pg_logical_slot_peek_changes per
// pass, which set a context up, decoded again from the slot's restart_lsn
// up to the position already confirmed, and took a transaction of its own
// to advance the slot. The context decodes each WAL record once; the slot is
// acquired only for the length of a pass, so that between passes it is
// inactive as before (DropWalSlot, an invalidation at a checkpoint).
struct Reader {
    MemoryContext cxt = nullptr; // the plugin's options and the batch
    LogicalDecodingContext *ctx = nullptr;
    std::string targets;    // the options it decodes for, '\n'-joined
    StringInfoData batch{}; // the lines decoded and not yet queued
    // The transactions the batch's lines come from (see ReadSlot).
    TransactionId *xids = nullptr;
    int nxids = 0;
    int xids_room = 0;
    XLogRecPtr read_upto = InvalidXLogRecPtr;
    // Decoded and queued (committed, perhaps not flushed yet: the keys are
    // committed asynchronously), and the end of the commit record that
    // must be flushed before the slot may be confirmed up to there.
    XLogRecPtr queued_upto = InvalidXLogRecPtr;
    XLogRecPtr queued_commit_end = InvalidXLogRecPtr;
    XLogRecPtr confirmed_upto = InvalidXLogRecPtr;
};
Reader g_reader;
// Whether the scheduler's wait should look for new WAL: a WAL-tracked sync
// and its slot exist (set by the pass that finds them).
bool g_reading = false;
// A failed pass is not tried again by the wait before this much time.
constexpr long kRetryAfterErrorMs = 1000;
TimestampTz g_failed_at = 0;

// A pass queues at most this much of decoded keys; the rest is the next
// pass's (the reader goes on from where it stopped).
constexpr int kMaxBatchBytes = 8 * 1024 * 1024;

void PrepareWrite(LogicalDecodingContext *ctx, XLogRecPtr, TransactionId, bool) {
    resetStringInfo(ctx->out);
}

// One line per changed key; a key never holds a raw newline (JSON text).
void Write(LogicalDecodingContext *ctx, XLogRecPtr, TransactionId xid, bool) {
    if (g_reader.batch.len > 0)
        appendStringInfoChar(&g_reader.batch, '\n');
    appendBinaryStringInfo(&g_reader.batch, ctx->out->data, ctx->out->len);
    if (!TransactionIdIsValid(xid) || (g_reader.nxids > 0 && g_reader.xids[g_reader.nxids - 1] == xid))
        return;
    if (g_reader.nxids == g_reader.xids_room) {
        g_reader.xids_room = Max(64, g_reader.xids_room * 2);
        g_reader.xids = static_cast<TransactionId *>(
            g_reader.xids == nullptr
                ? MemoryContextAlloc(g_reader.cxt, g_reader.xids_room * sizeof(TransactionId))
                : repalloc(g_reader.xids, g_reader.xids_room * sizeof(TransactionId)));
    }
    g_reader.xids[g_reader.nxids++] = xid;
}

// Forgets the context: the next pass decodes again from the slot's
// confirmed position (keys queued since and not yet confirmed are queued
// twice, which plans them once). Never throws.
void FreeReader() {
    LogicalDecodingContext *ctx = g_reader.ctx;
    g_reader.ctx = nullptr;
    g_reader.targets.clear();
    g_reader.read_upto = InvalidXLogRecPtr;
    try {
        PgGuard([&] {
            if (ctx != nullptr) {
                if (MyReplicationSlot != nullptr && MyReplicationSlot == ctx->slot) {
                    FreeDecodingContext(ctx);
                } else {
                    // FreeDecodingContext needs the slot (for the files it
                    // spilled, which the next context's start removes).
                    if (ctx->reader->seg.ws_file >= 0)
                        ctx->reader->routine.segment_close(ctx->reader);
                    MemoryContextDelete(ctx->context);
                }
            }
            if (g_reader.cxt != nullptr) {
                MemoryContextReset(g_reader.cxt);
                g_reader.batch = StringInfoData{};
                g_reader.xids = nullptr;
                g_reader.nxids = g_reader.xids_room = 0;
            }
        });
    } catch (...) {
        // A context that cannot be freed is left behind (its memory); the
        // next pass creates a new one.
    }
}

// Decoding reads the catalogs as they were when each decoded transaction
// committed (a historic snapshot), this process's other work reads them as
// they are, and both fill the same caches: pg_logical_slot_peek_changes
// empties them all before and after decoding. Here that would be most of a
// read's cost (every following statement rebuilds the relation and catalog
// entries it uses), and the two views differ only where a catalog changed
// after the position decoded from. Every catalog change reaches this
// process as an invalidation, whether committed by another session (at the
// next transaction start or lock) or replayed by the decoding itself: the
// callbacks below note the WAL insert position then, past any such commit.
// The caches are emptied around a read that starts at or before that
// position (and around the first read of a new context), as the SQL
// interface does; otherwise the entries of both views are the same.
XLogRecPtr g_catalog_changed_at = InvalidXLogRecPtr;
bool g_emptying_caches = false;
bool g_callbacks_registered = false;

void NoteRelationChange(Datum, Oid) {
    if (!g_emptying_caches)
        g_catalog_changed_at = GetXLogInsertRecPtr();
}

void NoteTypeChange(Datum, compat::SyscacheId, uint32) {
    if (!g_emptying_caches)
        g_catalog_changed_at = GetXLogInsertRecPtr();
}

void EmptyCaches() {
    g_emptying_caches = true;
    InvalidateSystemCaches();
    g_emptying_caches = false;
}

// Confirms the slot up to what is queued, once its commit is on disk: a
// crash can then lose no key the slot has moved past. The acquired slot.
void ConfirmQueued() {
    if (g_reader.queued_upto == InvalidXLogRecPtr || g_reader.queued_upto <= g_reader.confirmed_upto)
        return;
    if (g_reader.queued_upto <= MyReplicationSlot->data.confirmed_flush) {
        g_reader.confirmed_upto = g_reader.queued_upto;
        return;
    }
    if (GetFlushRecPtr(nullptr) < g_reader.queued_commit_end)
        return;
    LogicalConfirmReceivedLocation(g_reader.queued_upto);
    ReplicationSlotMarkDirty();
    g_reader.confirmed_upto = g_reader.queued_upto;
    const TimestampTz now = GetCurrentTimestamp();
    if (TimestampDifferenceExceeds(g_last_running_xacts, now, kRunningXactsIntervalMs) &&
        g_reader.confirmed_upto >= g_last_running_xacts_lsn + kRunningXactsMinBytes) {
        g_last_running_xacts_lsn = LogStandbySnapshot();
        g_last_running_xacts = now;
    }
}

// Decodes from where the reader stopped up to `upto` (the flush position
// taken before `targets` were read), queues the keys in the caller's
// transaction and commits it. A new context when the targets changed.
void ReadSlot(const std::string &slot, const std::string &targets, XLogRecPtr upto) {
    // Keys render as the capture function renders them. The commit need not
    // wait for its flush: the slot is confirmed only once it is flushed
    // (ConfirmQueued, on a later pass).
    // Local to the read's transaction.
    PgGuard([] {
        static const char *const kSettings[][2] = {{"DateStyle", "ISO, YMD"},
                                                   {"TimeZone", "UTC"},
                                                   {"IntervalStyle", "postgres"},
                                                   {"extra_float_digits", "3"},
                                                   {"synchronous_commit", "off"}};
        for (const auto &setting : kSettings)
            SetLocalSetting(setting[0], setting[1]);
    });
    const bool create = g_reader.ctx == nullptr || g_reader.targets != targets;
    if (create) {
        FreeReader();
        AllowPlugin();
    }
    bool lost = false;
    bool created = false;
    PgGuard([&] {
        ResourceOwner owner = CurrentResourceOwner;
        MemoryContext caller = CurrentMemoryContext;
        compat::AcquireSlot(slot.c_str());
        // Invalidated since this pass's check: the next pass replaces it.
        if (MyReplicationSlot->data.restart_lsn == InvalidXLogRecPtr) {
            lost = true;
            return;
        }
        ConfirmQueued();
        if (g_reader.ctx != nullptr && g_reader.ctx->slot != MyReplicationSlot)
            lost = true; // dropped and made again by hand: a new context
        if (g_reader.cxt == nullptr)
            g_reader.cxt =
                AllocSetContextCreate(TopMemoryContext, "revetl WAL reader", ALLOCSET_DEFAULT_SIZES);
        if (g_reader.batch.data == nullptr) {
            MemoryContextSwitchTo(g_reader.cxt);
            initStringInfo(&g_reader.batch);
        }
        if (g_reader.ctx == nullptr && !lost) {
            MemoryContextSwitchTo(g_reader.cxt);
            List *options = NIL;
            for (size_t at = 0; at < targets.size();) {
                size_t nl = targets.find('\n', at);
                if (nl == std::string::npos)
                    nl = targets.size();
                char *one = pnstrdup(targets.data() + at, nl - at);
                options = lappend(options, makeDefElem(pstrdup("sync"), (Node *)makeString(one), -1));
                at = nl + 1;
            }
            XLogReaderRoutine routine{};
            routine.page_read = read_local_xlog_page;
            routine.segment_open = wal_segment_open;
            routine.segment_close = wal_segment_close;
            compat::CheckLogicalDecodingRequirements();
            // From the slot's confirmed position, decoding from its
            // restart_lsn so that transactions committed after the former
            // are whole.
            g_reader.ctx = CreateDecodingContext(InvalidXLogRecPtr, options, false, &routine, PrepareWrite,
                                                 Write, nullptr);
            XLogBeginRead(g_reader.ctx->reader, MyReplicationSlot->data.restart_lsn);
            g_reader.confirmed_upto = MyReplicationSlot->data.confirmed_flush;
            created = true;
        }
        if (!g_callbacks_registered) {
            // (Relations' changes include their columns'; a key's type
            // output function is found through pg_type.)
            CacheRegisterRelcacheCallback(NoteRelationChange, (Datum)0);
            CacheRegisterSyscacheCallback(TYPEOID, NoteTypeChange, (Datum)0);
            g_callbacks_registered = true;
        }
        if (!lost) {
            LogicalDecodingContext *ctx = g_reader.ctx;
            // See g_catalog_changed_at.
            const XLogRecPtr from = ctx->reader->EndRecPtr;
            g_emptying_caches = false;
            if (created || g_catalog_changed_at >= from)
                EmptyCaches();
            while (ctx->reader->EndRecPtr < upto && g_reader.batch.len < kMaxBatchBytes) {
                char *errm = nullptr;
                XLogRecord *record = XLogReadRecord(ctx->reader, &errm);
                if (errm)
                    elog(ERROR, "could not find record for logical decoding: %s", errm);
                if (record != nullptr)
                    LogicalDecodingProcessRecord(ctx, ctx->reader);
                CHECK_FOR_INTERRUPTS();
            }
            // (Decoding's internal transactions may have changed it.)
            CurrentResourceOwner = owner;
            if (created || g_catalog_changed_at >= from)
                EmptyCaches();
            g_reader.read_upto = ctx->reader->EndRecPtr;
        }
        MemoryContextSwitchTo(caller);
    });
    if (lost) {
        FreeReader();
        PgGuard([] { ReplicationSlotRelease(); });
        CommitTransaction();
        return;
    }
    PgGuard([] { ReplicationSlotRelease(); });
    if (created)
        g_reader.targets = targets;
    if (g_reader.batch.len > 0) {
        std::string lines(g_reader.batch.data, g_reader.batch.len);
        // A transaction's commit record is flushed before the transaction
        // shows as committed to other snapshots: a run woken now could plan
        // the key without seeing the row yet (as a removal, or nothing) and
        // use the key up. Its lock goes after it shows, so waiting for it
        // (at once, almost always) makes every decoded change visible to
        // any plan that sees its key.
        // (One snapshot first: a transaction it does not show as running
        // ended before it, as almost all have: no lock to take.)
        PgGuard([] {
            Snapshot now = GetLatestSnapshot();
            for (int i = 0; i < g_reader.nxids; i++)
                if (XidInMVCCSnapshot(g_reader.xids[i], now))
                    XactLockTableWait(g_reader.xids[i], nullptr, nullptr, XLTW_None);
            g_reader.nxids = 0;
            resetStringInfo(&g_reader.batch);
        });
        // Keys decoded in one pass are queued once each (coalesced by key).
        static PreparedSql *const queue_keys = new PreparedSql(
            "WITH d AS (SELECT DISTINCT pg_catalog.split_part(l, E'\\t', 1)::bigint AS sync_id, "
            "CASE WHEN pg_catalog.strpos(l, E'\\t') > 0 THEN pg_catalog.substr(l, "
            "pg_catalog.strpos(l, E'\\t') + 1) END AS key "
            "FROM pg_catalog.unnest(pg_catalog.string_to_array($1, E'\\n')) AS l), "
            "ins AS (INSERT INTO revetl.captured_changes (sync_id, key) SELECT d.sync_id, d.key FROM d "
            "JOIN revetl.syncs s ON s.id = d.sync_id RETURNING sync_id) "
            "SELECT DISTINCT i.sync_id FROM ins i JOIN revetl.syncs s ON s.id = i.sync_id "
            "WHERE s.schedule_kind = 'on change'");
        SqlResult woken = queue_keys->Run({SqlArg::Text(lines)});
        // An ON CHANGE run in progress plans the new keys at once; otherwise
        // this scheduler queues one. Only ON CHANGE syncs wake anyone, as
        // with the capture triggers: a MANUAL or scheduled sync's keys wait
        // for its next run, and waking the scheduler for them made it run a
        // whole pass at every read of the slot (about 200 µs of the server's
        // CPU per write to a busy table).
        for (size_t i = 0; i < woken.rows.size(); i++)
            WakeSyncAtCommit(woken.Int8(i, 0));
        CommitTransaction();
        PgGuard([] { g_reader.queued_commit_end = Max(g_reader.queued_commit_end, XactLastCommitEnd); });
    } else {
        CommitTransaction();
    }
    g_reader.queued_upto = g_reader.read_upto;
}

// The WAL-tracked syncs, each as the plugin's option
// '<sync id>:<table oid>:<key attnums>', in a stable order.
std::string WalTargetsQuery() {
    return std::string("SELECT t.target FROM (SELECT s.id::text || ':' || c.oid::text || ':' || "
                       "(SELECT CASE WHEN count(*) = pg_catalog.cardinality(s.key_columns) THEN "
                       "pg_catalog.string_agg(a.attnum::text, ',' ORDER BY k.o) END "
                       "FROM pg_catalog.unnest(s.key_columns) WITH ORDINALITY AS k(name, o) "
                       "JOIN pg_catalog.pg_attribute a ON a.attrelid = c.oid AND a.attname = "
                       "k.name AND a.attnum > 0 AND NOT a.attisdropped) AS target "
                       "FROM revetl.syncs s JOIN pg_catalog.pg_namespace n ON n.nspname = "
                       "s.model_schema JOIN pg_catalog.pg_class c ON c.relnamespace = n.oid "
                       "AND c.relname = s.model_name WHERE ") +
           kWalTrackedPredicate + ") t WHERE t.target IS NOT NULL ORDER BY 1";
}

bool CaptureWalChangesImpl();

// The scheduler reads the targets before each read of the slot, up to
// every revetl.wal_poll_interval under load: the statement is planned once
// per process (planning it was most of a read's cost). The plan is kept for
// the life of the process, so it is never freed.
SqlResult WalTargets() {
    static PreparedSql *const targets = new PreparedSql(WalTargetsQuery());
    return targets->Run({});
}

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

namespace {

// A read between the scheduler's passes, by a reader that has its context:
// the list of syncs and the read, without the pass's checks of the slot and
// the server (an error here, such as a slot dropped by hand, is the next
// pass's to sort out, at most a second later).
bool ReadAgain() {
    XLogRecPtr upto = InvalidXLogRecPtr;
    PgGuard([&] { upto = GetFlushRecPtr(nullptr); });
    BeginTransaction("revetl: reading the WAL");
    SqlResult syncs = WalTargets();
    if (syncs.rows.empty()) {
        CommitTransaction();
        return CaptureWalChangesImpl();
    }
    std::string targets;
    for (size_t i = 0; i < syncs.rows.size(); i++)
        targets += (i ? "\n" : "") + syncs.Text(i, 0);
    ReadSlot(SlotName(), targets, upto);
    g_failed_at = 0;
    return true;
}

} // namespace

bool WalToRead() {
    if (!g_reading)
        return false;
    bool read = false;
    PgGuard([&] {
        if (RecoveryInProgress())
            return;
        if (g_failed_at != 0 &&
            !TimestampDifferenceExceeds(g_failed_at, GetCurrentTimestamp(), kRetryAfterErrorMs))
            return;
        const XLogRecPtr flush = GetFlushRecPtr(nullptr);
        read = g_reader.ctx == nullptr || flush > g_reader.read_upto ||
               (g_reader.queued_upto > g_reader.confirmed_upto && flush >= g_reader.queued_commit_end);
    });
    return read;
}

bool CaptureWalChanges(bool quick) {
    try {
        if (quick && g_reader.ctx != nullptr)
            return ReadAgain();
        return CaptureWalChangesImpl();
    } catch (...) {
        // The keys decoded and not queued are gone with the context: the
        // next one decodes them again from the slot's confirmed position.
        AbortTransaction();
        FreeReader();
        ReleaseSlot();
        PgGuard([] { g_failed_at = GetCurrentTimestamp(); });
        throw;
    }
}

void DropWalSlot() {
    FreeReader();
    BeginTransaction("revetl: dropping the WAL slot");
    Sql("SELECT pg_catalog.pg_drop_replication_slot(slot_name) FROM pg_catalog.pg_replication_slots "
        "WHERE slot_name = $1 AND NOT active",
        {SqlArg::Text(SlotName())});
    CommitTransaction();
}

namespace {

bool CaptureWalChangesImpl() {
    const std::string slot = SlotName();
    // Taken before the list of syncs is read (see the top of the file).
    XLogRecPtr upto = InvalidXLogRecPtr;
    PgGuard([&] { upto = RecoveryInProgress() ? InvalidXLogRecPtr : GetFlushRecPtr(nullptr); });
    // One transaction for the checks, the list, the read and the queueing:
    // most passes find the slot and the list as they were.
    BeginTransaction("revetl: reading the WAL");
    SqlResult pos = Sql("SELECT pg_catalog.current_setting('wal_level') = 'logical', "
                        "EXISTS (SELECT 1 FROM pg_catalog.pg_replication_slots WHERE slot_name = $1), "
                        "pg_catalog.to_regclass('revetl.syncs') IS NOT NULL, pg_catalog.pg_is_in_recovery(), "
                        "pg_catalog.current_database(), "
                        "EXISTS (SELECT 1 FROM pg_catalog.pg_replication_slots WHERE slot_name = $1 "
                        "AND wal_status = 'lost')",
                        {SqlArg::Text(slot)}, true);
    const bool logical = pos.Bool(0, 0);
    const bool slot_exists = pos.Bool(0, 1);
    const std::string database = pos.Text(0, 4);
    if (pos.Bool(0, 5) && pos.Bool(0, 2) && !pos.Bool(0, 3)) {
        CommitTransaction();
        FreeReader();
        g_reading = false;
        return SlotLost(slot, database);
    }
    if (pos.Bool(0, 3)) {
        CommitTransaction();
        FreeReader();
        g_reading = false;
        return false; // a standby: its primary's worker captures
    }
    if (!pos.Bool(0, 2)) {
        CommitTransaction();
        FreeReader();
        g_reading = false;
        if (slot_exists)
            DropWalSlot();
        return false;
    }
    // The list of syncs, read after the position (see above) with a
    // snapshot of its own (not read-only: SPI takes a new one): each as the
    // plugin's option '<sync id>:<table oid>:<key attnums>'.
    SqlResult syncs = WalTargets();
    if (syncs.rows.empty()) {
        CommitTransaction();
        FreeReader();
        g_reading = false;
        if (slot_exists)
            DropWalSlot();
        return false;
    }
    if (!logical) {
        CommitTransaction();
        FreeReader();
        g_reading = false;
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
        CommitTransaction();
        FreeReader();
        g_reading = false;
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
        g_reading = true;
        return true;
    }
    std::string targets;
    for (size_t i = 0; i < syncs.rows.size(); i++)
        targets += (i ? "\n" : "") + syncs.Text(i, 0);
    g_reading = true;
    ReadSlot(slot, targets, upto);
    g_failed_at = 0;
    return true;
}

} // namespace
} // namespace revetl::pg
