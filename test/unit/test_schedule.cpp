#include "core/common/error.hpp"
#include "core/language/schedule.hpp"

#include "test_util.hpp"

#include <gtest/gtest.h>

#include <ctime>
#include <functional>
#include <string>

using namespace revetl;
using revetl_test::Catch;
using revetl_test::Contains;

namespace {

std::time_t Utc(int year, int month, int day, int hour = 0, int minute = 0, int second = 0) {
    struct tm tm {};
    tm.tm_year = year - 1900;
    tm.tm_mon = month - 1;
    tm.tm_mday = day;
    tm.tm_hour = hour;
    tm.tm_min = minute;
    tm.tm_sec = second;
    return timegm(&tm);
}

std::string Show(std::time_t t) {
    if (t == -1)
        return "never";
    char buf[64];
    struct tm tm;
    gmtime_r(&t, &tm);
    std::strftime(buf, sizeof buf, "%Y-%m-%d %H:%M:%S %a", &tm);
    return buf;
}

template <size_t N>
std::string Bits(const std::bitset<N> &b) {
    std::string out;
    for (size_t i = 0; i < N; i++)
        if (b[i])
            out += (out.empty() ? "" : ",") + std::to_string(i);
    return out;
}

} // namespace

TEST(ParseCron, StarsAndSteps) {
    CronSchedule c = ParseCron("*/15 * * * *");
    EXPECT_EQ(Bits(c.minutes), "0,15,30,45");
    EXPECT_EQ(c.hours.count(), 24u);
    EXPECT_EQ(Bits(c.days_of_month),
              "1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30,31");
    EXPECT_EQ(Bits(c.months), "1,2,3,4,5,6,7,8,9,10,11,12");
    EXPECT_EQ(c.days_of_week.count(), 7u);
    EXPECT_FALSE(c.dom_restricted);
    EXPECT_FALSE(c.dow_restricted);

    EXPECT_EQ(Bits(ParseCron("10-40/10 * * * *").minutes), "10,20,30,40");
    EXPECT_EQ(Bits(ParseCron("5/20 * * * *").minutes), "5,25,45");
    EXPECT_EQ(Bits(ParseCron("1,2,59 * * * *").minutes), "1,2,59");
    EXPECT_EQ(Bits(ParseCron("0 */6 * * *").hours), "0,6,12,18");
    EXPECT_EQ(Bits(ParseCron("0 9-17/4 * * *").hours), "9,13,17");
}

TEST(ParseCron, NamesAndDayRules) {
    CronSchedule c = ParseCron("0 6 * * mon-fri");
    EXPECT_EQ(Bits(c.days_of_week), "1,2,3,4,5");
    EXPECT_TRUE(c.dow_restricted);
    EXPECT_FALSE(c.dom_restricted);

    c = ParseCron("0 0 1,15 JAN,jul *");
    EXPECT_EQ(Bits(c.months), "1,7");
    EXPECT_EQ(Bits(c.days_of_month), "1,15");
    EXPECT_TRUE(c.dom_restricted);
    EXPECT_FALSE(c.dow_restricted);

    // 7 is Sunday too.
    EXPECT_EQ(Bits(ParseCron("0 0 * * 7").days_of_week), "0");
    EXPECT_EQ(Bits(ParseCron("0 0 * * 5-7").days_of_week), "0,5,6");
    EXPECT_EQ(Bits(ParseCron("0 0 * * sun,sat").days_of_week), "0,6");
    EXPECT_EQ(Bits(ParseCron("0 0 * feb-apr *").months), "2,3,4");
}

TEST(ParseCron, Macros) {
    EXPECT_EQ(Bits(ParseCron("@hourly").minutes), "0");
    EXPECT_EQ(ParseCron("@hourly").hours.count(), 24u);
    CronSchedule daily = ParseCron("@daily");
    EXPECT_EQ(Bits(daily.minutes), "0");
    EXPECT_EQ(Bits(daily.hours), "0");
    EXPECT_EQ(Bits(ParseCron("@midnight").hours), "0");
    EXPECT_EQ(Bits(ParseCron("  @DAILY ").hours), "0");
    CronSchedule weekly = ParseCron("@weekly");
    EXPECT_EQ(Bits(weekly.days_of_week), "0");
    EXPECT_TRUE(weekly.dow_restricted);
    EXPECT_EQ(Bits(ParseCron("@monthly").days_of_month), "1");
    CronSchedule yearly = ParseCron("@yearly");
    EXPECT_EQ(Bits(yearly.months), "1");
    EXPECT_EQ(Bits(yearly.days_of_month), "1");
    EXPECT_EQ(Bits(ParseCron("@annually").months), "1");
}

TEST(ParseCron, Whitespace) {
    EXPECT_EQ(Bits(ParseCron("  5\t*  * *   *\n").minutes), "5");
}

TEST(ParseCron, Errors) {
    struct Case {
        const char *expression;
        const char *detail;
    };
    const Case cases[] = {
        {"* * * *", "It has 4 fields, not 5."},
        {"* * * * * *", "It has 6 fields, not 5."},
        {"", "It has 0 fields, not 5."},
        {"60 * * * *", "The minute must be from 0 to 59, not 60."},
        {"* 24 * * *", "The hour must be from 0 to 23, not 24."},
        {"* * 0 * *", "The day of month must be from 1 to 31, not 0."},
        {"* * 32 * *", "The day of month must be from 1 to 31, not 32."},
        {"* * * 13 *", "The month must be from 1 to 12, not 13."},
        {"* * * * 8", "The day of week must be from 0 to 7, not 8."},
        {"5-1 * * * *", "The range 5-1 in the minute field is backwards."},
        {"1,,2 * * * *", "The minute field has an empty list item."},
        {"1, * * * *", "The minute field has an empty list item."},
        {"*/0 * * * *", "The step must be from 1 to 59, not 0."},
        {"mon * * * *", "\"mon\" is not a valid minute."},
        {"* * * * monday", "\"monday\" is not a valid day of week."},
        {"-1 * * * *", "\"\" is not a valid minute."},
        {"1.5 * * * *", "\"1.5\" is not a valid minute."},
        {"@every", "It has 1 fields, not 5."},
    };
    for (const auto &c : cases) {
        SCOPED_TRACE(c.expression);
        Error e = Catch([&] { ParseCron(c.expression); });
        EXPECT_EQ(e.sqlstate(), "22023");
        EXPECT_EQ(std::string(e.what()), std::string("invalid cron expression \"") + c.expression + "\"");
        EXPECT_EQ(e.detail(), c.detail);
        EXPECT_TRUE(Contains(e.hint(), "five fields"));
    }
    Error e = Catch([] { ParseCron(std::string(201, '*')); });
    EXPECT_EQ(e.detail(), "The expression is too long.");
    EXPECT_EQ(std::string(e.what()), "invalid cron expression \"" + std::string(40, '*') + "...\"");
}

TEST(CronNextAfter, Basics) {
    CronSchedule q = ParseCron("*/15 * * * *");
    EXPECT_EQ(Show(q.NextAfter(Utc(2024, 1, 1, 0, 7, 30))), "2024-01-01 00:15:00 Mon");
    // Strictly after.
    EXPECT_EQ(Show(q.NextAfter(Utc(2024, 1, 1, 0, 15, 0))), "2024-01-01 00:30:00 Mon");
    EXPECT_EQ(Show(q.NextAfter(Utc(2024, 1, 1, 23, 59, 59))), "2024-01-02 00:00:00 Tue");

    CronSchedule weekdays = ParseCron("0 6 * * mon-fri");
    EXPECT_EQ(Show(weekdays.NextAfter(Utc(2024, 1, 6, 12, 0))), "2024-01-08 06:00:00 Mon");
    EXPECT_EQ(Show(weekdays.NextAfter(Utc(2024, 1, 8, 5, 59, 59))), "2024-01-08 06:00:00 Mon");
    EXPECT_EQ(Show(weekdays.NextAfter(Utc(2024, 1, 8, 6, 0))), "2024-01-09 06:00:00 Tue");

    EXPECT_EQ(Show(ParseCron("@hourly").NextAfter(Utc(2024, 3, 10, 10, 0))), "2024-03-10 11:00:00 Sun");
    EXPECT_EQ(Show(ParseCron("@monthly").NextAfter(Utc(2024, 1, 31, 12, 0))), "2024-02-01 00:00:00 Thu");
    EXPECT_EQ(Show(ParseCron("30 23 31 12 *").NextAfter(Utc(2024, 12, 31, 23, 30))),
              "2025-12-31 23:30:00 Wed");
}

TEST(CronNextAfter, DayOfMonthOrDayOfWeekWhenBothRestricted) {
    // Cron's rule: "on the 13th, and on Fridays".
    CronSchedule c = ParseCron("0 0 13 * fri");
    std::time_t t = c.NextAfter(Utc(2024, 1, 1));
    EXPECT_EQ(Show(t), "2024-01-05 00:00:00 Fri");
    t = c.NextAfter(t);
    EXPECT_EQ(Show(t), "2024-01-12 00:00:00 Fri");
    t = c.NextAfter(t);
    EXPECT_EQ(Show(t), "2024-01-13 00:00:00 Sat");
    t = c.NextAfter(t);
    EXPECT_EQ(Show(t), "2024-01-19 00:00:00 Fri");
    // Only one restricted: both must match ("Fridays in January").
    CronSchedule jan_fridays = ParseCron("0 0 * 1 fri");
    EXPECT_EQ(Show(jan_fridays.NextAfter(Utc(2024, 1, 27))), "2025-01-03 00:00:00 Fri");
}

TEST(CronNextAfter, LeapDayAndImpossibleDates) {
    EXPECT_EQ(Show(ParseCron("0 0 29 2 *").NextAfter(Utc(2025, 3, 1))), "2028-02-29 00:00:00 Tue");
    EXPECT_EQ(ParseCron("0 0 30 2 *").NextAfter(Utc(2025, 3, 1)), -1);
    EXPECT_EQ(ParseCron("0 0 31 4,6,9,11 *").NextAfter(Utc(2025, 1, 1)), -1);
}

TEST(CronNextAfter, WalkMatchesEveryField) {
    CronSchedule c = ParseCron("*/7 9-17 * * mon-fri");
    std::time_t t = Utc(2024, 5, 3, 16, 50); // a Friday afternoon
    std::time_t prev = t;
    for (int i = 0; i < 200; i++) {
        t = c.NextAfter(t);
        ASSERT_GT(t, prev);
        prev = t;
        struct tm tm;
        gmtime_r(&t, &tm);
        EXPECT_EQ(tm.tm_sec, 0);
        EXPECT_EQ(tm.tm_min % 7, 0) << Show(t);
        EXPECT_GE(tm.tm_hour, 9) << Show(t);
        EXPECT_LE(tm.tm_hour, 17) << Show(t);
        EXPECT_GE(tm.tm_wday, 1) << Show(t);
        EXPECT_LE(tm.tm_wday, 5) << Show(t);
    }
    // The first one after Friday 16:50 is 16:56, then Monday 09:00.
    EXPECT_EQ(Show(c.NextAfter(Utc(2024, 5, 3, 16, 50))), "2024-05-03 16:56:00 Fri");
    EXPECT_EQ(Show(c.NextAfter(Utc(2024, 5, 3, 17, 56))), "2024-05-06 09:00:00 Mon");
}

TEST(ParseScheduleText, Kinds) {
    dsl::Schedule s = ParseScheduleText("manual");
    EXPECT_EQ(s.kind, dsl::Schedule::Kind::Manual);
    EXPECT_EQ(s.value, "");
    EXPECT_EQ(ParseScheduleText("  MANUAL \n").kind, dsl::Schedule::Kind::Manual);

    s = ParseScheduleText("every 15 minutes");
    EXPECT_EQ(s.kind, dsl::Schedule::Kind::Every);
    EXPECT_EQ(s.value, "15 minutes");
    s = ParseScheduleText("Every   1 Hour ");
    EXPECT_EQ(s.kind, dsl::Schedule::Kind::Every);
    EXPECT_EQ(s.value, "1 Hour");

    s = ParseScheduleText("cron */5 * * * *");
    EXPECT_EQ(s.kind, dsl::Schedule::Kind::Cron);
    EXPECT_EQ(s.value, "*/5 * * * *");
    s = ParseScheduleText("CRON @daily");
    EXPECT_EQ(s.value, "@daily");

    EXPECT_EQ(ParseScheduleText("on change").kind, dsl::Schedule::Kind::OnChange);
    EXPECT_EQ(ParseScheduleText("ON CHANGE").kind, dsl::Schedule::Kind::OnChange);

    s = ParseScheduleText("after load_users");
    EXPECT_EQ(s.kind, dsl::Schedule::Kind::After);
    EXPECT_EQ(s.value, "load_users");
}

TEST(ParseScheduleText, Errors) {
    for (const char *bad :
         {"hourly", "", "every", "after", "on", "on changes", "cronjob * * * * *", "manually"}) {
        SCOPED_TRACE(bad);
        Error e = Catch([&] { ParseScheduleText(bad); });
        EXPECT_EQ(e.sqlstate(), "22023");
        EXPECT_EQ(std::string(e.what()), std::string("invalid schedule \"") + bad + "\"");
        EXPECT_TRUE(Contains(e.hint(), "'every 15 minutes'"));
    }
    // A bad cron expression is reported as such.
    Error e = Catch([] { ParseScheduleText("cron 61 * * * *"); });
    EXPECT_EQ(e.sqlstate(), "22023");
    EXPECT_STREQ(e.what(), "invalid cron expression \"61 * * * *\"");
    EXPECT_EQ(e.detail(), "The minute must be from 0 to 59, not 61.");
}

TEST(ScheduleText, RoundTrips) {
    for (const char *text :
         {"manual", "every 15 minutes", "cron */5 * * * *", "on change", "after load_users"}) {
        SCOPED_TRACE(text);
        dsl::Schedule s = ParseScheduleText(text);
        EXPECT_EQ(ScheduleText(s), text);
        dsl::Schedule again = ParseScheduleText(ScheduleText(s));
        EXPECT_EQ(again.kind, s.kind);
        EXPECT_EQ(again.value, s.value);
    }
    EXPECT_EQ(dsl::ScheduleKindName(dsl::Schedule::Kind::OnChange), "on change");
    EXPECT_EQ(dsl::ScheduleKindName(dsl::Schedule::Kind::Cron), "cron");
}
