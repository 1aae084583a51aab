#include "core/delivery/rate_budget.hpp"

namespace revetl {

namespace {

RateBudget *Find(RateBudgetTable table, const RateBudgetId &id, int64_t now_us, bool create,
                 bool *overflowed) {
    RateBudget *reusable = nullptr;
    for (int i = 0; i < *table.used; i++) {
        RateBudget *b = &table.slots[i];
        if (b->id == id)
            return b;
        if (!reusable && (b->id.server == 0 || b->next_us <= now_us))
            reusable = b;
    }
    if (!create)
        return nullptr;
    RateBudget *b = reusable;
    if (!b && *table.used < table.size)
        b = &table.slots[(*table.used)++];
    if (!b) {
        *overflowed = true;
        b = table.fallback;
        if (b->id == id)
            return b;
    }
    b->id = id;
    b->next_us = 0;
    return b;
}

} // namespace

long PaceRequest(RateBudgetTable table, const RateBudgetId &id, int64_t now_us, int count, long period_ms,
                 bool *overflowed) {
    const bool limited = count > 0 && period_ms > 0;
    // An unlimited destination has a budget only while it is held off.
    RateBudget *b = Find(table, id, now_us, limited, overflowed);
    if (!b)
        return 0;
    if (b->next_us > now_us)
        return static_cast<long>((b->next_us - now_us + 999) / 1000);
    if (limited) {
        const auto interval_us =
            static_cast<int64_t>(static_cast<double>(period_ms) * 1000.0 / count * kRateMargin);
        b->next_us = now_us + interval_us;
    }
    return 0;
}

void HoldOff(RateBudgetTable table, const RateBudgetId &id, int64_t now_us, long ms, bool *overflowed) {
    RateBudget *b = Find(table, id, now_us, true, overflowed);
    const int64_t until = now_us + static_cast<int64_t>(ms) * 1000;
    if (b->next_us < until)
        b->next_us = until;
}

} // namespace revetl
