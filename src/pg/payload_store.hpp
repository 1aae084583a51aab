// The payloads of a run's planned changes, kept in the run's own process
// instead of the queue table (revetl.changes).
//
// Only the run that planned a change ever sends it: recovery after a crash
// needs the queued keys (which rows may have been sent), never their
// payloads, and the run queued again after a failure plans afresh. Kept in
// the queue, a payload was written with its WAL, read back through shared
// buffers and dirtied again by the row's deletion, most of the queue's
// volume (267 MB of a 1M-row first run). Here it goes into a tuplestore:
// in memory up to `work_mem`, then a temporary file (no WAL, no shared
// buffers, removed when the process exits however it exits).
#pragma once

#include "pg/pg_includes.hpp"

namespace revetl::pg {

// Plain data (no destructor), as QueueWriter: an error unwinds past it with
// longjmp. The store's memory is a context of its own under
// TopMemoryContext and its file is not tied to a transaction, so it lives
// across the run's transactions until ClosePayloadStore.
struct PayloadStore {
    MemoryContext cxt = nullptr;
    Tuplestorestate *store = nullptr;
    TupleDesc desc = nullptr; // (seq int8, payload): the jsonb described as text, see OpenPayloadStore
    TupleTableSlot *slot = nullptr;
    int64 last_appended = 0; // the seq appended last
    int64 current = 0;       // the seq of the row in `slot`, 0 before the first read
};

// Opens an empty store (closing what it held). Payloads beyond `max_kbytes`
// of memory go to a temporary file.
void OpenPayloadStore(PayloadStore *s, int max_kbytes);
// Appends the payload of change `seq`, which must be above every seq
// appended before (the plan numbers its changes in order).
void AppendPayload(PayloadStore *s, int64 seq, Datum payload, bool isnull);
// Renders the payload of change `seq` as jsonb's text into `out`, which it
// initializes (in the caller's memory context); false, and `out` left
// untouched, when the payload is NULL, as every removal's is: a queue chunk
// of removals then allocates no buffers. Seqs are asked for in ascending
// order (as the delivery reads the queue); one never appended is an
// internal error.
bool ReadPayload(PayloadStore *s, int64 seq, StringInfo out);
// Releases the store and removes its file. Writing the file's last buffer
// can fail (temp_file_limit, a full disk): the store is then half closed,
// and DropPayloadStore releases the rest.
void ClosePayloadStore(PayloadStore *s);
// Releases the store's memory without closing its file, which stays open,
// unreferenced, until the process exits (PostgreSQL closes and removes every
// temporary file then). For a store whose closing failed.
void DropPayloadStore(PayloadStore *s);

} // namespace revetl::pg
