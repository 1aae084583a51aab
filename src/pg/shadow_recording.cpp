// Recording a group of delivered batches: the shadow state of the rows the
// destination accepted, the refused rows, the run's counters, the finished
// jobs, and the rows taken off the queue, in one transaction. The run's own
// process does it for small runs; the recorder process (recorder.cpp) for
// big ones, with exactly this code.
#include "pg/shadow_recording.hpp"

#include "core/common/sql_text.hpp"
#include "pg/catalog.hpp"
#include "pg/guard.hpp"

extern "C" {
#include "executor/nodeModifyTable.h"
}

#include <algorithm>
#include <memory>

namespace revetl::pg {

namespace {

// The shadow rows of a flush group's adds are written the same way: one
// multi-insert, then each row's index entries (the key's primary key, which
// raises the plain INSERT's unique violation should a row be there after
// all, and the typed key's). The typed key columns are generated: their
// values come from the table's own generation expressions
// (ExecComputeStoredGenerated), so they are exactly what an INSERT would
// store. Through SQL (INSERT ... SELECT FROM unnest) each row also cost a
// function scan, the executor's projection and a heap WAL record of its
// own (the statement was about a quarter of a first run's process time,
// most of it the index entries, which remain). Nothing but the run holding
// the sync's claim writes the table; a table that something else could
// act on (a trigger, a rule, row security) or with a column this code does
// not know (a later layout) is left to the SQL statement (returns false,
// before writing anything). Plain data, as QueueWriter.
constexpr int kShadowColumns = 8;
constexpr int kShadowChunkRows = 1000;

bool InsertShadowAdds(const char *shadow_table, int n, const Datum *keys, const int64 *hashes,
                      const Datum *dest_ids, const bool *dest_null, const bool *uncertain, int64 run_id,
                      int64 settle_ms, int64 version) {
    Oid relid = get_relname_relid(shadow_table, get_namespace_oid("revetl", false));
    if (!OidIsValid(relid))
        elog(ERROR, "revetl: the shadow table revetl.%s is missing", shadow_table);
    Relation rel = table_open(relid, RowExclusiveLock);
    static const char *const kNames[kShadowColumns] = {"key",       "row_hash",     "dest_id", "run_id",
                                                       "synced_at", "verify_after", "version", "removed"};
    int column[kShadowColumns];
    for (int c = 0; c < kShadowColumns; c++)
        column[c] = -1;
    TupleDesc desc = RelationGetDescr(rel);
    bool plain = rel->trigdesc == nullptr && rel->rd_rules == nullptr && !rel->rd_rel->relrowsecurity &&
                 rel->rd_rel->relkind == RELKIND_RELATION;
    for (int a = 0; a < desc->natts && plain; a++) {
        Form_pg_attribute att = TupleDescAttr(desc, a);
        if (att->attisdropped || att->attgenerated == ATTRIBUTE_GENERATED_STORED)
            continue;
        int found = -1;
        for (int c = 0; c < kShadowColumns; c++)
            if (strcmp(NameStr(att->attname), kNames[c]) == 0)
                found = c;
        if (found < 0)
            plain = false;
        else
            column[found] = a;
    }
    for (int c = 0; c < kShadowColumns && plain; c++)
        plain = column[c] >= 0;
    if (!plain) {
        table_close(rel, NoLock);
        return false;
    }
    const bool generated = desc->constr && desc->constr->has_generated_stored;
    EState *estate = CreateExecutorState();
    ResultRelInfo *rri = makeNode(ResultRelInfo);
    InitResultRelInfo(rri, rel, 1, nullptr, 0);
    ExecOpenIndices(rri, false);
    BulkInsertState bistate = GetBulkInsertState();
    const int nslots = Min(n, kShadowChunkRows);
    TupleTableSlot **slots = static_cast<TupleTableSlot **>(palloc0(nslots * sizeof(TupleTableSlot *)));
    for (int i = 0; i < nslots; i++)
        slots[i] = table_slot_create(rel, nullptr);
    // now() of the flush's transaction, and verify_after as the SQL path
    // computes it: now() + make_interval(secs => settle_ms / 1000.0), which
    // is settle_ms * 1000 microseconds exactly.
    const TimestampTz now = GetCurrentTransactionStartTimestamp();
    const TimestampTz verify_after = now + settle_ms * INT64CONST(1000);
    const CommandId cid = GetCurrentCommandId(true);
    for (int start = 0; start < n; start += nslots) {
        const int count = Min(nslots, n - start);
        for (int j = 0; j < count; j++) {
            const int i = start + j;
            TupleTableSlot *slot = slots[j];
            ExecClearTuple(slot);
            for (int a = 0; a < desc->natts; a++) {
                slot->tts_values[a] = (Datum)0;
                slot->tts_isnull[a] = true;
            }
            Datum v[kShadowColumns] = {keys[i],
                                       Int64GetDatum(hashes[i]),
                                       dest_ids[i],
                                       Int64GetDatum(run_id),
                                       TimestampTzGetDatum(now),
                                       TimestampTzGetDatum(verify_after),
                                       Int64GetDatum(version),
                                       BoolGetDatum(false)};
            bool isnull[kShadowColumns] = {false, false,         dest_null[i], false,
                                           false, !uncertain[i], false,        false};
            for (int c = 0; c < kShadowColumns; c++) {
                slot->tts_values[column[c]] = v[c];
                slot->tts_isnull[column[c]] = isnull[c];
            }
            ExecStoreVirtualTuple(slot);
            if (generated) {
                ResetPerTupleExprContext(estate);
                // Stores the row again, with the typed keys, materialized
                // in the slot's own memory.
                ExecComputeStoredGenerated(rri, estate, slot, CMD_INSERT);
            }
        }
        table_multi_insert(rel, slots, count, cid, 0, bistate);
        for (int j = 0; j < count; j++) {
            ResetPerTupleExprContext(estate);
            list_free(compat::InsertIndexTuples(rri, slots[j], estate));
        }
    }
    for (int i = 0; i < nslots; i++)
        ExecDropSingleTupleTableSlot(slots[i]);
    pfree(slots);
    FreeBulkInsertState(bistate);
    ExecCloseIndices(rri);
    FreeExecutorState(estate);
    table_close(rel, NoLock);
    // Later statements of the flush see the rows.
    CommandCounterIncrement();
    return true;
}

// The time in parameter $n (RecordingGroup::sent_after), or -infinity when
// it is unknown, which keeps every pending verification.
std::string SentAfterSql(int n) {
    return "coalesce('2000-01-01 00:00:00+00'::pg_catalog.timestamptz + pg_catalog.make_interval(secs => $" +
           std::to_string(n) + "::bigint / 1000000.0), '-infinity'::pg_catalog.timestamptz)";
}

} // namespace

// The statements every group runs, planned once per run.
struct GroupRecorder::Statements {
    PreparedSql insert_shadow;
    PreparedSql upsert_shadow;
    PreparedSql update_shadow;
    PreparedSql delete_shadow;
    PreparedSql tombstone_shadow;
    PreparedSql delete_queued;
    PreparedSql delete_queued_range;
    PreparedSql count_delivered;
};

GroupRecorder::GroupRecorder(RecordingSetup setup) : setup_(std::move(setup)) {}

GroupRecorder::~GroupRecorder() = default;

int64_t GroupRecorder::Record(const RecordingGroup &group) {
    const BatchRecord &rec = group.record;
    const SqlArg sent_after = group.sent_after ? SqlArg::Int8(*group.sent_after) : SqlArg::Null(INT8OID);
    BeginTransaction("revetl: recording batches");
    SqlResult alive =
        Sql("SELECT 1 FROM revetl.syncs WHERE id = $1 FOR SHARE", {SqlArg::Int8(setup_.sync_id)});
    if (alive.rows.empty()) {
        CommitTransaction();
        throw SyncDropped();
    }
    if (!sql_) {
        const std::string shadow = QualifiedName(kSchema, setup_.shadow_table);
        // Adds get a plain INSERT, which costs about 40% less than an
        // upsert: the plan saw no shadow row for their keys, and nothing else
        // writes this sync's shadow table while its run holds the sync's
        // claim on the sync. (Were one there after all, the flush would fail and
        // the run with it; the next run plans the key again, as a change.)
        const std::string insert_rows = "INSERT INTO " + shadow +
                                        " AS s (key, row_hash, dest_id, run_id, verify_after, version) "
                                        "SELECT r.key, r.row_hash, r.dest_id, $5, "
                                        "CASE WHEN r.uncertain THEN pg_catalog.now() + "
                                        "pg_catalog.make_interval(secs => $6 / 1000.0) END, "
                                        "$7 FROM unnest($1::text[], $2::bigint[], $3::text[], $4::boolean[]) "
                                        "AS r(key, row_hash, dest_id, uncertain)";
        sql_.reset(new Statements{
            PreparedSql(insert_rows),
            PreparedSql(
                insert_rows +
                " ON CONFLICT (key) DO UPDATE SET row_hash = excluded.row_hash, "
                // Over a tombstone, the removed record's id is not the new one's.
                "dest_id = CASE WHEN s.removed THEN excluded.dest_id ELSE coalesce(excluded.dest_id, "
                "s.dest_id) "
                "END, run_id = excluded.run_id, version = excluded.version, removed = false, "
                "synced_at = pg_catalog.now(), "
                // A key still to be verified stays so if this row's request
                // may have been applied before a late one landed: it was sent
                // (after the plan's snapshot, $8) before verify_after. Compared
                // with the flush's own time instead, a request sent just
                // before verify_after and recorded just after it would end
                // the verification that the late request can still undo.
                "verify_after = CASE WHEN excluded.verify_after IS NOT NULL THEN excluded.verify_after "
                "WHEN s.verify_after > " +
                SentAfterSql(8) + " THEN s.verify_after END"),
            // Changed rows have a shadow row (the plan compared it, and only
            // this run writes the table): the upsert's update, as a plain
            // UPDATE. It costs about half the upsert, which first tries an
            // insert (the generated typed keys computed twice, the row locked
            // with a WAL record of its own) before it updates. It says how
            // many rows it found; if one is missing the upsert runs after it.
            PreparedSql("WITH u AS (UPDATE " + shadow +
                        " AS s SET row_hash = r.row_hash, "
                        "dest_id = CASE WHEN s.removed THEN r.dest_id ELSE coalesce(r.dest_id, s.dest_id) "
                        "END, run_id = $5, version = $7, removed = false, synced_at = pg_catalog.now(), "
                        "verify_after = CASE WHEN r.uncertain THEN pg_catalog.now() + "
                        "pg_catalog.make_interval(secs => $6 / 1000.0) "
                        "WHEN s.verify_after > " +
                        SentAfterSql(8) +
                        " THEN s.verify_after END "
                        "FROM unnest($1::text[], $2::bigint[], $3::text[], $4::boolean[]) "
                        "AS r(key, row_hash, dest_id, uncertain) WHERE s.key = r.key RETURNING 1) "
                        "SELECT pg_catalog.count(*) FROM u"),
            // A removal leaves nothing behind unless a request for the key
            // may still be applied late: one of its own attempts was lost,
            // or the key is still to be verified. Then its row becomes a
            // tombstone until verify_after, when the removal is sent again.
            PreparedSql("DELETE FROM " + shadow +
                        " AS s USING unnest($1::text[], $2::boolean[]) AS r(key, uncertain) "
                        "WHERE s.key = r.key AND NOT r.uncertain AND (s.verify_after IS NULL OR "
                        "s.verify_after <= " +
                        SentAfterSql(3) + ")"),
            PreparedSql("UPDATE " + shadow +
                        " AS s SET removed = true, row_hash = 0, run_id = $3, version = $5, "
                        "synced_at = pg_catalog.now(), verify_after = CASE WHEN r.uncertain THEN "
                        "greatest(s.verify_after, pg_catalog.now() + pg_catalog.make_interval(secs => $4 / "
                        "1000.0)) ELSE s.verify_after END "
                        "FROM unnest($1::text[], $2::boolean[]) AS r(key, uncertain) WHERE s.key = r.key"),
            // Bounded by the group's lowest and highest seq, so that no plan
            // visits more of the run's queue than the group spans, and planned
            // with the array's value, which makes `seq = ANY` an index
            // condition with a hashed recheck. (With the array cast from
            // text at run time it had been a filter comparing each queued row
            // of the run with each element.)
            PreparedSql("DELETE FROM revetl.changes "
                        "WHERE run_id = $1 AND seq = ANY ($2::bigint[]) AND seq BETWEEN $3 AND $4",
                        true),
            PreparedSql("DELETE FROM revetl.changes WHERE run_id = $1 AND seq BETWEEN $2 AND $3"),
            PreparedSql(
                "UPDATE revetl.runs SET rows_delivered = rows_delivered + $2, "
                "rows_rejected = rows_rejected + $3, requests = requests + $4, retries = retries + $5, "
                "rows_retried = rows_retried + $6, throttled = throttled + $7 WHERE id = $1"),
        });
    }
    for (bool added : {true, false}) {
        const ShadowRows &rows = added ? rec.added : rec.changed;
        if (rows.keys.empty())
            continue;
        // A resync's adds may be over tombstones (their version does not
        // tell, being -run_id for every row): they are upserted too.
        const std::vector<SqlArg> args{SqlArg::TextArray(rows.keys),     SqlArg::Int8Array(rows.row_hashes),
                                       SqlArg::TextArray(rows.dest_ids), SqlArg::BoolArray(rows.uncertain),
                                       SqlArg::Int8(setup_.run_id),      SqlArg::Int8(setup_.settle_time_ms),
                                       SqlArg::Int8(group.version_id),   sent_after};
        if (added && !setup_.resync) {
            if (!WriteShadowAdds(rows, group.version_id))
                sql_->insert_shadow.Run(args);
            continue;
        }
        // Changed rows are updated in place; an upsert only if one had no
        // shadow row after all (the upsert's update of the rows the UPDATE
        // found writes what it wrote).
        if (!added && sql_->update_shadow.Run(args).Int8(0, 0) == static_cast<int64_t>(rows.keys.size()))
            continue;
        sql_->upsert_shadow.Run(args);
    }
    if (!rec.removal_keys.empty()) {
        sql_->delete_shadow.Run(
            {SqlArg::TextArray(rec.removal_keys), SqlArg::BoolArray(rec.removal_uncertain), sent_after});
        sql_->tombstone_shadow.Run({SqlArg::TextArray(rec.removal_keys),
                                    SqlArg::BoolArray(rec.removal_uncertain), SqlArg::Int8(setup_.run_id),
                                    SqlArg::Int8(setup_.settle_time_ms), SqlArg::Int8(group.version_id)});
    }
    // A removal no run could send (no record id was ever learned, and the
    // connector deletes by id) is refused once, above, with a hint; then
    // the key is forgotten, so that later runs do not plan it again and
    // stay partial forever. Only a key whose shadow row still has no
    // record id, and only in MIRROR mode, the one that removes. A key
    // still waiting for re-verification keeps a tombstone until then: a
    // request of an earlier run may yet create the record, and the removal
    // is planned (and reported) once more after that time.
    if (!rec.forgotten_keys.empty() && setup_.mode == "mirror") {
        const std::string shadow = QualifiedName(kSchema, setup_.shadow_table);
        Sql("DELETE FROM " + shadow +
                " AS s WHERE s.key = ANY ($1::text[]) AND coalesce(s.dest_id, '') = '' "
                "AND (s.verify_after IS NULL OR s.verify_after <= pg_catalog.now())",
            {SqlArg::TextArray(rec.forgotten_keys)});
        Sql("UPDATE " + shadow +
                " AS s SET removed = true, row_hash = 0, run_id = $2, version = $3, "
                "synced_at = pg_catalog.now() WHERE s.key = ANY ($1::text[]) AND coalesce(s.dest_id, '') = "
                "''",
            {SqlArg::TextArray(rec.forgotten_keys), SqlArg::Int8(setup_.run_id),
             SqlArg::Int8(group.version_id)});
    }
    if (rec.rejected != "[]" && setup_.tracked)
        Sql("INSERT INTO revetl.captured_changes (sync_id, key, retry) SELECT $2, r.key::text, true "
            "FROM pg_catalog.jsonb_to_recordset($1::jsonb) AS r(key jsonb)",
            {SqlArg::Text(rec.rejected), SqlArg::Int8(setup_.sync_id)});
    if (rec.rejected != "[]")
        Sql("INSERT INTO revetl.rejected_rows (run_id, sync_id, sync_name, kind, key, operation, reason, "
            "http_status, error_code, payload, attempts, hint) "
            "SELECT $2, $3, $4, 'rejected', r.key, r.operation, r.reason, r.http_status, r.error_code, "
            "r.payload, "
            "r.attempts, r.hint FROM pg_catalog.jsonb_to_recordset($1::jsonb) AS r(key jsonb, operation "
            "text, "
            "reason text, http_status integer, error_code text, payload jsonb, attempts integer, hint text)",
            {SqlArg::Text(rec.rejected), SqlArg::Int8(setup_.run_id), SqlArg::Int8(setup_.sync_id),
             SqlArg::Text(setup_.sync_name)});
    const std::vector<int64_t> &seqs = group.seqs;
    // Groups are usually a run of consecutive sequence numbers (batches are
    // handed out in order and most finish in order): then the range alone
    // names them, and the statement needs no array nor a plan of its own
    // (the array's plan cost milliseconds a group).
    bool consecutive = true;
    for (size_t i = 1; i < seqs.size() && consecutive; i++)
        consecutive = seqs[i] == seqs[i - 1] + 1;
    const uint64_t dequeued =
        seqs.empty() ? 0
        : consecutive
            ? sql_->delete_queued_range
                  .Run({SqlArg::Int8(setup_.run_id), SqlArg::Int8(seqs.front()), SqlArg::Int8(seqs.back())})
                  .processed
            : sql_->delete_queued
                  .Run({SqlArg::Int8(setup_.run_id), SqlArg::Int8Array(seqs), SqlArg::Int8(seqs.front()),
                        SqlArg::Int8(seqs.back())})
                  .processed;
    sql_->count_delivered.Run({SqlArg::Int8(setup_.run_id), SqlArg::Int8(rec.delivered),
                               SqlArg::Int8(rec.rejected_count), SqlArg::Int8(group.requests),
                               SqlArg::Int8(group.retries), SqlArg::Int8(group.rows_retried),
                               SqlArg::Int8(group.throttled)});
    // The jobs of these rows are done: their outcomes are recorded above, in
    // the same transaction.
    if (!group.jobs.empty())
        Sql("DELETE FROM revetl.delivery_jobs WHERE id = ANY ($1::bigint[])",
            {SqlArg::Int8Array(group.jobs)});
    CommitTransaction();
    return static_cast<int64_t>(dequeued);
}

bool GroupRecorder::WriteShadowAdds(const ShadowRows &rows, int64_t version) {
    if (!setup_.bulk_insert)
        return false;
    const int n = static_cast<int>(rows.keys.size());
    std::vector<int64> hashes(rows.row_hashes.begin(), rows.row_hashes.end());
    std::unique_ptr<bool[]> dest_null(new bool[n]);
    std::unique_ptr<bool[]> uncertain(new bool[n]);
    for (int i = 0; i < n; i++) {
        dest_null[i] = !rows.dest_ids[i].has_value();
        uncertain[i] = rows.uncertain[i];
    }
    const std::string &table = setup_.shadow_table;
    bool written = false;
    PgGuard([&] {
        Datum *keys = static_cast<Datum *>(palloc(n * sizeof(Datum)));
        Datum *dest_ids = static_cast<Datum *>(palloc(n * sizeof(Datum)));
        for (int i = 0; i < n; i++) {
            keys[i] = PointerGetDatum(cstring_to_text_with_len(rows.keys[i].data(), rows.keys[i].size()));
            dest_ids[i] = dest_null[i] ? (Datum)0
                                       : PointerGetDatum(cstring_to_text_with_len(rows.dest_ids[i]->data(),
                                                                                  rows.dest_ids[i]->size()));
        }
        written = InsertShadowAdds(table.c_str(), n, keys, hashes.data(), dest_ids, dest_null.get(),
                                   uncertain.get(), setup_.run_id, setup_.settle_time_ms, version);
        pfree(keys);
        pfree(dest_ids);
    });
    return written;
}

} // namespace revetl::pg
