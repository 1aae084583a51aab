// Schedules: parsing the function form's schedule text, and 5-field cron
// expressions (minute hour day-of-month month day-of-week, in UTC) with the
// usual ranges, steps, lists and names, plus @hourly, @daily, @weekly,
// @monthly and @yearly.
#pragma once

#include "core/language/sync_language.hpp"

#include <bitset>
#include <ctime>
#include <string>

namespace revetl {

// "manual", "every 15 minutes", "cron */5 * * * *", "on change", "after other_sync".
dsl::Schedule ParseScheduleText(const std::string &text);

// The text form of a schedule, as ParseScheduleText reads it back.
std::string ScheduleText(const dsl::Schedule &schedule);

struct CronSchedule {
    std::bitset<60> minutes;
    std::bitset<24> hours;
    std::bitset<32> days_of_month; // 1..31
    std::bitset<13> months;        // 1..12
    std::bitset<7> days_of_week;   // 0..6, Sunday = 0
    bool dom_restricted = false;   // cron's rule: when both day fields are
    bool dow_restricted = false;   // restricted, either one matching is enough

    // The first minute strictly after `after` (UTC) that matches, or -1 when
    // none does within five years (e.g. 30 February).
    std::time_t NextAfter(std::time_t after) const;
};

// Throws revetl::Error (22023) naming the bad field.
CronSchedule ParseCron(const std::string &expression);

} // namespace revetl
