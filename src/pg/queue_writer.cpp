#include "pg/queue_writer.hpp"

#include "pg/guard.hpp"

namespace revetl::pg {

void OpenQueueWriter(QueueWriter *w, int max_rows) {
    Oid relid = get_relname_relid("changes", get_namespace_oid("revetl", false));
    if (!OidIsValid(relid))
        elog(ERROR, "revetl: the queue table revetl.changes is missing");
    w->rel = table_open(relid, RowExclusiveLock);
    // Columns by name: a table upgraded from an earlier version may have
    // dropped columns, so their numbers are not fixed.
    static const char *const kNames[QueueWriter::kColumns] = {"run_id",   "seq",     "op",     "key",
                                                              "row_hash", "dest_id", "version"};
    TupleDesc desc = RelationGetDescr(w->rel);
    for (int c = 0; c < QueueWriter::kColumns; c++)
        w->column[c] = -1;
    for (int a = 0; a < desc->natts; a++) {
        Form_pg_attribute att = TupleDescAttr(desc, a);
        if (att->attisdropped)
            continue;
        int found = -1;
        for (int c = 0; c < QueueWriter::kColumns; c++)
            if (strcmp(NameStr(att->attname), kNames[c]) == 0)
                found = c;
        if (found < 0)
            elog(ERROR, "revetl: revetl.changes has a column \"%s\" that runs do not write",
                 NameStr(att->attname));
        w->column[found] = a;
    }
    for (int c = 0; c < QueueWriter::kColumns; c++)
        if (w->column[c] < 0)
            elog(ERROR, "revetl: revetl.changes has no column \"%s\"", kNames[c]);
    w->estate = CreateExecutorState();
    w->rri = makeNode(ResultRelInfo);
    InitResultRelInfo(w->rri, w->rel, 1, nullptr, 0);
    ExecOpenIndices(w->rri, false);
    w->bistate = GetBulkInsertState();
    // The slots are made as chunks need them: an ON CHANGE run opens a
    // writer for each of its plans, many a second, most of a few rows, and
    // making a fetch's worth of slots each time was a tenth of its CPU.
    w->slots = static_cast<TupleTableSlot **>(palloc0(max_rows * sizeof(TupleTableSlot *)));
    w->nslots = max_rows;
    w->slot_cxt = CurrentMemoryContext;
    w->slot_owner = CurrentResourceOwner;
}

// Queues n changes; `values` and `nulls` hold them row by row, in the
// order of kNames.
void WriteQueueChunk(QueueWriter *w, int n, const Datum *values, const bool *nulls) {
    Assert(n <= w->nslots);
    const int natts = RelationGetDescr(w->rel)->natts;
    for (int i = 0; i < n; i++) {
        if (!w->slots[i]) {
            MemoryContext caller = MemoryContextSwitchTo(w->slot_cxt);
            ResourceOwner caller_owner = CurrentResourceOwner;
            CurrentResourceOwner = w->slot_owner;
            w->slots[i] = table_slot_create(w->rel, nullptr);
            CurrentResourceOwner = caller_owner;
            MemoryContextSwitchTo(caller);
        }
        TupleTableSlot *slot = w->slots[i];
        ExecClearTuple(slot);
        for (int a = 0; a < natts; a++) {
            slot->tts_values[a] = (Datum)0;
            slot->tts_isnull[a] = true;
        }
        const Datum *v = values + i * QueueWriter::kColumns;
        const bool *isnull = nulls + i * QueueWriter::kColumns;
        const char op = DatumGetChar(v[2]);
        if (isnull[0] || isnull[1] || isnull[2] || isnull[3] || isnull[6] ||
            (op != 'a' && op != 'c' && op != 'r'))
            elog(ERROR, "revetl: a planned change has no key or an unknown operation");
        for (int c = 0; c < QueueWriter::kColumns; c++) {
            slot->tts_values[w->column[c]] = v[c];
            slot->tts_isnull[w->column[c]] = isnull[c];
        }
        ExecStoreVirtualTuple(slot);
    }
    table_multi_insert(w->rel, w->slots, n, GetCurrentCommandId(true), 0, w->bistate);
    for (int i = 0; i < n; i++) {
        ResetPerTupleExprContext(w->estate);
        list_free(compat::InsertIndexTuples(w->rri, w->slots[i], w->estate));
    }
    // Later statements of the plan's transaction see the queued rows.
    CommandCounterIncrement();
}

void CloseQueueWriter(QueueWriter *w) {
    for (int i = 0; i < w->nslots && w->slots[i]; i++)
        ExecDropSingleTupleTableSlot(w->slots[i]);
    pfree(w->slots);
    FreeBulkInsertState(w->bistate);
    ExecCloseIndices(w->rri);
    FreeExecutorState(w->estate);
    table_close(w->rel, NoLock);
}

} // namespace revetl::pg
