#include "core/delivery/rate_budget.hpp"

#include <gtest/gtest.h>

#include <vector>

using namespace revetl;

namespace {

struct Table {
    explicit Table(int n) : slots(n) {}
    std::vector<RateBudget> slots;
    int used = 0;
    RateBudget fallback{};
    RateBudgetTable View() {
        return RateBudgetTable{slots.data(), static_cast<int>(slots.size()), &used, &fallback};
    }
};

constexpr int64_t kSecond = 1000000;

RateBudgetId Id(uint32_t server, int64_t sync_id = 0, uint32_t database = 1) {
    return RateBudgetId{database, server, sync_id};
}

} // namespace

TEST(RateBudget, SpacesRequestsEvenlyWithMargin) {
    Table t(4);
    bool overflowed = false;
    // 100 per 10 s: one request every 100 ms, plus the 2% margin.
    EXPECT_EQ(PaceRequest(t.View(), Id(7), 0, 100, 10000, &overflowed), 0);
    EXPECT_EQ(PaceRequest(t.View(), Id(7), 1000, 100, 10000, &overflowed), 101);
    EXPECT_EQ(PaceRequest(t.View(), Id(7), 102000, 100, 10000, &overflowed), 0);
    EXPECT_EQ(PaceRequest(t.View(), Id(7), 102000, 100, 10000, &overflowed), 102);
    EXPECT_FALSE(overflowed);
}

TEST(RateBudget, NoWindowHoldsMoreThanTheLimit) {
    Table t(2);
    bool overflowed = false;
    std::vector<int64_t> sent;
    int64_t now = 0;
    while (sent.size() < 500) {
        long wait = PaceRequest(t.View(), Id(1), now, 100, 10000, &overflowed);
        if (wait == 0)
            sent.push_back(now);
        now += wait == 0 ? 1000 : wait * 1000; // a busy sender asks again at once
    }
    for (size_t i = 0; i + 100 < sent.size(); i++)
        EXPECT_GE(sent[i + 100] - sent[i], 10 * kSecond) << "window from request " << i;
    // ...and it runs within 2% of the limit.
    double per_10s = 499.0 / (static_cast<double>(sent.back() - sent.front()) / (10 * kSecond));
    EXPECT_GT(per_10s, 97.0);
    EXPECT_LE(per_10s, 100.0);
}

TEST(RateBudget, BudgetsAreSeparateByDatabaseServerAndSync) {
    Table t(8);
    bool overflowed = false;
    EXPECT_EQ(PaceRequest(t.View(), Id(5, 0, 1), 0, 1, 1000, &overflowed), 0);
    // Same server OID in another database, the server's budget and a sync's own.
    EXPECT_EQ(PaceRequest(t.View(), Id(5, 0, 2), 0, 1, 1000, &overflowed), 0);
    EXPECT_EQ(PaceRequest(t.View(), Id(5, 42, 1), 0, 1, 1000, &overflowed), 0);
    EXPECT_EQ(PaceRequest(t.View(), Id(6, 0, 1), 0, 1, 1000, &overflowed), 0);
    EXPECT_GT(PaceRequest(t.View(), Id(5, 0, 1), 0, 1, 1000, &overflowed), 0);
    EXPECT_GT(PaceRequest(t.View(), Id(5, 0, 2), 0, 1, 1000, &overflowed), 0);
    EXPECT_FALSE(overflowed);
}

TEST(RateBudget, ExpiredSlotsAreReused) {
    // Far more budgets over time than slots: each is busy only while pacing.
    Table t(2);
    bool overflowed = false;
    int64_t now = 0;
    for (uint32_t server = 1; server <= 1000; server++) {
        EXPECT_EQ(PaceRequest(t.View(), Id(server), now, 10, 1000, &overflowed), 0);
        now += 200 * 1000; // the budget's 102 ms has passed before the next one needs a slot
    }
    EXPECT_FALSE(overflowed);
    // Slots were reused rather than spread over the table.
    EXPECT_EQ(t.used, 1);
}

TEST(RateBudget, BusySlotsAreNotTakenAndOverflowPacesAlone) {
    Table t(2);
    bool overflowed = false;
    EXPECT_EQ(PaceRequest(t.View(), Id(1), 0, 1, 10000, &overflowed), 0);
    EXPECT_EQ(PaceRequest(t.View(), Id(2), 0, 1, 10000, &overflowed), 0);
    EXPECT_FALSE(overflowed);
    // Both slots are pacing: a third budget goes to the caller's fallback...
    EXPECT_EQ(PaceRequest(t.View(), Id(3), 0, 1, 10000, &overflowed), 0);
    EXPECT_TRUE(overflowed);
    // ...which still paces it, and the shared budgets were not disturbed.
    EXPECT_GT(PaceRequest(t.View(), Id(3), 1000, 1, 10000, &overflowed), 0);
    EXPECT_GT(PaceRequest(t.View(), Id(1), 1000, 1, 10000, &overflowed), 0);
    EXPECT_GT(PaceRequest(t.View(), Id(2), 1000, 1, 10000, &overflowed), 0);
}

TEST(RateBudget, HoldOffStopsEveryoneOnTheBudgetEvenWithoutALimit) {
    Table t(4);
    bool overflowed = false;
    // No limit known: nothing waits, and no slot is taken.
    EXPECT_EQ(PaceRequest(t.View(), Id(9), 0, 0, 0, &overflowed), 0);
    EXPECT_EQ(t.used, 0);
    // A 429 said wait 10 s.
    HoldOff(t.View(), Id(9), 0, 10000, &overflowed);
    EXPECT_EQ(PaceRequest(t.View(), Id(9), 4 * kSecond, 0, 0, &overflowed), 6000);
    EXPECT_EQ(PaceRequest(t.View(), Id(9), 10 * kSecond, 0, 0, &overflowed), 0);
    // A shorter hold-off never shortens a longer one.
    HoldOff(t.View(), Id(9), 10 * kSecond, 5000, &overflowed);
    HoldOff(t.View(), Id(9), 10 * kSecond, 1000, &overflowed);
    EXPECT_EQ(PaceRequest(t.View(), Id(9), 10 * kSecond, 0, 0, &overflowed), 5000);
    EXPECT_FALSE(overflowed);
}
