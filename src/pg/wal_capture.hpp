// track_changes = 'wal': the scheduler's side of the WAL capture (the
// output plugin is src/pg/wal_decoding.cpp).
#pragma once

namespace revetl::pg {

// One pass of the database's scheduler: makes the slot revetl_<database oid>
// exist exactly while a sync needs it (created and dropped here, outside
// any DDL transaction), and moves the keys decoded since the last pass into
// revetl.captured_changes. Returns whether a sync is WAL-tracked (the
// scheduler then watches the WAL while it waits: WalToRead). `quick`: a
// read between passes, which leaves the checks of the slot and the server
// to the pass.
bool CaptureWalChanges(bool quick = false);

// Whether a pass has something to do: WAL flushed past what the reader has
// decoded, or queued keys now on disk that the slot may be confirmed past.
// Reads shared memory only, so the scheduler's wait can ask every
// revetl.wal_poll_interval.
bool WalToRead();

// The extension is gone: its slot goes too (it would keep WAL forever).
void DropWalSlot();

} // namespace revetl::pg
