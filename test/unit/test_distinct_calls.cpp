#include "core/connectors/distinct_calls.hpp"

#include <gtest/gtest.h>

namespace revetl {
namespace {

using Calls = std::vector<std::vector<size_t>>;

TEST(DistinctValueCalls, CallsHoldAtMostTheCapAndNoValueTwice) {
    DistinctValueCalls calls(3);
    const char *values[] = {"a", "b", "a", "c", "d", "a", "b"};
    for (size_t i = 0; i < 7; i++)
        calls.Add(i, values[i]);
    // Row 2 ("a" again) opens a second call; row 4 finds the first full; row
    // 5 ("a" a third time) a third call; row 6 ("b") the second call's room.
    EXPECT_EQ(calls.calls(), (Calls{{0, 1, 3}, {2, 4, 6}, {5}}));
}

TEST(DistinctValueCalls, AnEmptyValueConstrainsNothing) {
    DistinctValueCalls calls(2);
    calls.Add(0, "");
    calls.Add(1, "");
    calls.Add(2, "");
    EXPECT_EQ(calls.calls(), (Calls{{0, 1}, {2}}));
    EXPECT_TRUE(DistinctValueCalls(5).calls().empty());
}

TEST(DistinctValueCalls, ARecordsRowsKeepTheirOrderAcrossCalls) {
    // The same record's rows land in calls opened one after the other, so
    // a vendor applying calls in order applies its rows in order.
    DistinctValueCalls calls(100);
    for (size_t i = 0; i < 4; i++)
        calls.Add(i, "same");
    EXPECT_EQ(calls.calls(), (Calls{{0}, {1}, {2}, {3}}));
}

} // namespace
} // namespace revetl
