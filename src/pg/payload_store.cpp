#include "pg/payload_store.hpp"

namespace revetl::pg {

void OpenPayloadStore(PayloadStore *s, int max_kbytes) {
    ClosePayloadStore(s);
    s->cxt = AllocSetContextCreate(TopMemoryContext, "revetl run payloads", ALLOCSET_DEFAULT_SIZES);
    MemoryContext old = MemoryContextSwitchTo(s->cxt);
    // Described without the catalogs (the store is opened outside any
    // transaction), which know only a few built-in types: the payload, a
    // jsonb, is held as a variable-length, int-aligned value described as
    // text (jsonb's own storage), and read back as the jsonb it is.
    s->desc = CreateTemplateTupleDesc(2);
    TupleDescInitBuiltinEntry(s->desc, 1, "seq", INT8OID, -1, 0);
    TupleDescInitBuiltinEntry(s->desc, 2, "payload", TEXTOID, -1, 0);
    compat::FinalizeTupleDesc(s->desc);
    // Read once, forwards: no random access. interXact: the run commits
    // many transactions between the plan that writes and the batches that
    // read. Opened outside a transaction, the file it may need is tied to
    // no resource owner.
    s->store = tuplestore_begin_heap(false, true, max_kbytes);
    s->slot = MakeSingleTupleTableSlot(s->desc, &TTSOpsMinimalTuple);
    MemoryContextSwitchTo(old);
    s->last_appended = 0;
    s->current = 0;
}

void AppendPayload(PayloadStore *s, int64 seq, Datum payload, bool isnull) {
    if (seq <= s->last_appended)
        elog(ERROR, "revetl: planned change %lld was kept after change %lld", static_cast<long long>(seq),
             static_cast<long long>(s->last_appended));
    // The plan's payloads are built in memory, never toasted; a value from
    // a table could be a pointer into its TOAST data, which must not be
    // kept past the plan's snapshot: it is expanded here (a check only for
    // an in-memory value).
    if (!isnull)
        payload = PointerGetDatum(
            pg_detoast_datum_packed(reinterpret_cast<struct varlena *>(DatumGetPointer(payload))));
    Datum values[2] = {Int64GetDatum(seq), payload};
    bool nulls[2] = {false, isnull};
    tuplestore_putvalues(s->store, s->desc, values, nulls);
    s->last_appended = seq;
}

bool ReadPayload(PayloadStore *s, int64 seq, StringInfo out) {
    if (!s->store || seq <= s->current || seq > s->last_appended)
        elog(ERROR,
             "revetl: the payload of planned change %lld is not kept (changes up to %lld were, %lld read)",
             static_cast<long long>(seq), static_cast<long long>(s->last_appended),
             static_cast<long long>(s->current));
    // Rows read from the file are allocated in the store's context and
    // freed by the slot at its next clear: in the transaction's context
    // they would be gone at its commit, while the slot still held them.
    // Rows of seqs not asked for (none, as the queue is read in full) are
    // passed over.
    MemoryContext caller = MemoryContextSwitchTo(s->cxt);
    do {
        ExecClearTuple(s->slot);
        if (!tuplestore_gettupleslot(s->store, true, false, s->slot))
            elog(ERROR, "revetl: the payload store ended before planned change %lld",
                 static_cast<long long>(seq));
        bool isnull;
        s->current = DatumGetInt64(slot_getattr(s->slot, 1, &isnull));
    } while (s->current < seq);
    MemoryContextSwitchTo(caller);
    if (s->current != seq)
        elog(ERROR, "revetl: the payload of planned change %lld is not kept", static_cast<long long>(seq));
    bool isnull;
    Datum payload = slot_getattr(s->slot, 2, &isnull);
    if (!isnull) {
        // What jsonb_out returns, without making a text datum of it.
        Jsonb *jb = DatumGetJsonbP(payload);
        initStringInfo(out);
        (void)JsonbToCString(out, &jb->root, VARSIZE(jb));
    }
    ExecClearTuple(s->slot);
    return !isnull;
}

void ClosePayloadStore(PayloadStore *s) {
    // Each part is forgotten before it is released: closing the file writes
    // its last buffer, which can fail (temp_file_limit, a full disk), and
    // the caller may then drop the rest (DropPayloadStore).
    if (TupleTableSlot *slot = s->slot) {
        s->slot = nullptr;
        ExecDropSingleTupleTableSlot(slot);
    }
    if (Tuplestorestate *store = s->store) {
        s->store = nullptr;
        tuplestore_end(store);
    }
    DropPayloadStore(s);
}

void DropPayloadStore(PayloadStore *s) {
    if (s->cxt)
        MemoryContextDelete(s->cxt);
    *s = PayloadStore();
}

} // namespace revetl::pg
