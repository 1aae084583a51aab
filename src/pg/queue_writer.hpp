// Writing planned changes into the queue (revetl.changes): by the plan in
// the run's process, and by its recorder (recorder.hpp), which queues a big
// plan's changes for it.
#pragma once

#include "pg/pg_includes.hpp"

namespace revetl::pg {

// The queue of planned changes is written the way COPY writes a table:
// each fetched chunk of the plan goes in with one multi-insert (one WAL
// record per heap page rather than per row), then its primary key entries.
// (An INSERT ... SELECT FROM unnest of arrays of the chunk cost about as
// much as the plan query itself: the arrays built and taken apart again,
// the executor's function scan, a WAL record per row.) Only the run's own
// code writes this table, with values it checked: no trigger, rule or
// policy applies to it, and its CHECK holds by construction (the op is one
// of 'a', 'c', 'r'; the key is never NULL), which WriteQueueChunk verifies.
// Plain data (no destructor): an error unwinds past it with longjmp, and
// the transaction's abort releases the relation, its indexes and memory.
struct QueueWriter {
    static constexpr int kColumns = 7;
    Relation rel;
    int column[kColumns];
    EState *estate;
    ResultRelInfo *rri;
    BulkInsertState bistate;
    TupleTableSlot **slots;
    int nslots;
    // Where the slots are made, as chunks need them: the writer's memory
    // context and resource owner, exactly as if made when it was opened
    // (not the batch's context, reset after each fetch).
    MemoryContext slot_cxt;
    ResourceOwner slot_owner;
};

// Opens the writer for chunks of at most `max_rows` rows, in the current
// transaction.
void OpenQueueWriter(QueueWriter *w, int max_rows);
// Queues n changes; `values` and `nulls` hold them row by row, in the
// order run_id, seq, op, key, row_hash, dest_id, version (the payloads
// stay with the run's process: payload_store.hpp).
void WriteQueueChunk(QueueWriter *w, int n, const Datum *values, const bool *nulls);
void CloseQueueWriter(QueueWriter *w);

} // namespace revetl::pg
