// The scheduler's decisions (see scheduler.cpp). Each function opens and
// commits its own short transactions; network I/O (alerts) happens outside
// them.
#pragma once

#include "core/delivery/alerts.hpp"

#include <cstdint>
#include <vector>

namespace revetl::pg {

// EVERY and CRON syncs that are due get one queued run each (not one per
// missed slot), unless a run of theirs is already queued or running.
// Returns how many runs were queued.
int EnqueueDueRuns();

// ON CHANGE syncs with captured changes and no run queued or in progress
// get one. Returns how many runs were queued.
int EnqueueCapturedRuns();

// Forget a sync's next run time, so that it is computed afresh.
void ResetSchedule(int64_t sync_id);

// Milliseconds until the next scheduled run is due, 0 when one is due now,
// -1 when nothing is scheduled.
long MillisUntilNextDue();

// After a run ended: queue the syncs scheduled AFTER it, and send the
// alerts its outcome calls for.
void AfterRunFinished(int64_t run_id);

// Alerts for syncs with no successful run for longer than they allow.
void CheckStaleSyncs();

// Back-pressure alerts: tracked syncs whose oldest captured key is older
// than their alert_backlog_age, or (WAL-tracked) whose database's slot
// retains more WAL than their alert_wal_retained, paused syncs included.
// One alert when a limit is crossed, one (recovered) when the backlog is
// back under half of it. Returns whether any sync has such a limit (the
// scheduler then checks again within revetl's backlog check interval).
bool CheckBacklogs();

// Deletes runs and rejected rows older than their retention settings, in
// small batches. Does nothing if it ran recently, unless `force`.
void PruneHistory(bool force);

// One batch of pruning in the current transaction: runs (or rejected rows)
// older than `minutes`, at most `limit`; -1 minutes prunes nothing.
uint64_t PruneBatch(bool runs, int minutes, int limit);

struct PendingAlert {
    DestinationSettings settings;
    AlertEvent event;
};
extern std::vector<PendingAlert> pending_alerts;
// Starts the pending alerts' requests and returns at once: alerts travel
// while the scheduler goes on with its work (PumpAlerts finishes them).
void SendPendingAlerts();

// Collects finished alert requests (without waiting) and logs failures.
// Returns whether alerts are still in flight (the scheduler then looks
// again soon).
bool PumpAlerts();

} // namespace revetl::pg
