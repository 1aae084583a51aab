// Rate budgets: how a destination's limit (N requests per period) is shared
// by every process of a cluster that sends to it. Each budget is the
// theoretical arrival time of its next request (GCRA without burst), so
// requests are spaced evenly and no rolling window of the limit's length
// ever holds more than allowed. The table lives in shared memory; callers
// hold its lock. Pure C++ so that the slot rules are unit-tested.
#pragma once

#include <cstdint>

namespace revetl {

// Server OIDs are per database, so the database is part of the identity.
// sync_id 0 is the server's shared budget, else a sync's own override.
// Trivial types: they live in shared memory, which is zeroed at start.
struct RateBudgetId {
    uint32_t database;
    uint32_t server; // 0: the slot is free
    int64_t sync_id;

    bool operator==(const RateBudgetId &o) const {
        return database == o.database && server == o.server && sync_id == o.sync_id;
    }
};

struct RateBudget {
    RateBudgetId id;
    int64_t next_us; // the next request may go at this time
};

// A fixed table of budgets. A budget whose next_us has passed carries no
// state (it is the same as no budget), so its slot goes to the next budget
// that needs one: the table bounds the budgets pacing requests at the same
// moment, not the budgets ever used. When every slot is busy, the caller's
// own `fallback` budget paces it alone and `overflowed` is set.
// Slots at and above *used have never been taken, so a lookup, which every
// request makes, reads only as many slots as were ever busy at once.
struct RateBudgetTable {
    RateBudget *slots;
    int size;
    int *used;
    RateBudget *fallback;
};

// A small margin under the limit: clocks and networks are not exact, and a
// 429 costs more than 2% of the rate.
constexpr double kRateMargin = 1.02;

// Milliseconds to wait before a request under `id` may go; 0 means go now,
// and the request is counted. `count` requests per `period_ms`; count or
// period 0 means no limit, which only waits out a HoldOff.
long PaceRequest(RateBudgetTable table, const RateBudgetId &id, int64_t now_us, int count, long period_ms,
                 bool *overflowed);

// The destination asked to wait: no request under `id` goes for `ms`.
void HoldOff(RateBudgetTable table, const RateBudgetId &id, int64_t now_us, long ms, bool *overflowed);

} // namespace revetl
