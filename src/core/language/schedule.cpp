#include "core/language/schedule.hpp"

#include "core/common/error.hpp"

#include <algorithm>
#include <cctype>
#include <vector>

namespace revetl {

namespace {

std::string Trim(const std::string &s) {
    size_t a = s.find_first_not_of(" \t\r\n");
    if (a == std::string::npos)
        return {};
    size_t b = s.find_last_not_of(" \t\r\n");
    return s.substr(a, b - a + 1);
}

std::string Lower(std::string s) {
    std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return std::tolower(c); });
    return s;
}

[[noreturn]] void BadCron(const std::string &expression, const std::string &detail) {
    throw Error(sqlstate::kInvalidParameterValue, "invalid cron expression \"" + expression + "\"", detail,
                "A cron expression has five fields: minute hour day-of-month month day-of-week, for example "
                "'*/15 * * * *' or '0 6 * * mon-fri'.");
}

int ParseValue(const std::string &expression, const std::string &token, int min, int max,
               const std::vector<std::string> &names, const char *field) {
    std::string t = Lower(token);
    for (size_t i = 0; i < names.size(); i++)
        if (t == names[i])
            return static_cast<int>(i) + min;
    if (t.empty() || t.size() > 4 ||
        !std::all_of(t.begin(), t.end(), [](unsigned char c) { return std::isdigit(c); }))
        BadCron(expression, std::string("\"") + token + "\" is not a valid " + field + ".");
    int v = std::stoi(t);
    if (v < min || v > max)
        BadCron(expression, std::string("The ") + field + " must be from " + std::to_string(min) + " to " +
                                std::to_string(max) + ", not " + token + ".");
    return v;
}

// One field: "*", "5", "1-5", "*/15", "10-40/10", "mon,wed,fri".
template <size_t N>
bool ParseField(const std::string &expression, const std::string &text, int min, int max,
                const std::vector<std::string> &names, const char *field, std::bitset<N> &out) {
    if (text.empty())
        BadCron(expression, std::string("The ") + field + " field is empty.");
    // As in Vixie cron, a field that starts with "*" (even "*/2") does not
    // restrict the day: that matters when both day fields are given.
    bool restricted = text[0] != '*';
    size_t pos = 0;
    while (pos <= text.size()) {
        size_t comma = text.find(',', pos);
        std::string part = text.substr(pos, comma == std::string::npos ? std::string::npos : comma - pos);
        if (part.empty())
            BadCron(expression, std::string("The ") + field + " field has an empty list item.");
        int step = 1;
        size_t slash = part.find('/');
        if (slash != std::string::npos) {
            step = ParseValue(expression, part.substr(slash + 1), 1, max, {}, "step");
            part = part.substr(0, slash);
        }
        int lo, hi;
        if (part == "*") {
            lo = min;
            hi = max;
        } else {
            size_t dash = part.find('-');
            if (dash != std::string::npos) {
                lo = ParseValue(expression, part.substr(0, dash), min, max, names, field);
                hi = ParseValue(expression, part.substr(dash + 1), min, max, names, field);
                if (lo > hi)
                    BadCron(expression,
                            std::string("The range ") + part + " in the " + field + " field is backwards.");
            } else {
                lo = ParseValue(expression, part, min, max, names, field);
                hi = slash != std::string::npos ? max : lo;
            }
        }
        for (int v = lo; v <= hi; v += step)
            out.set(static_cast<size_t>(v));
        if (comma == std::string::npos)
            break;
        pos = comma + 1;
    }
    return restricted;
}

} // namespace

CronSchedule ParseCron(const std::string &raw) {
    std::string expression = Trim(raw);
    if (expression.size() > 200)
        BadCron(expression.substr(0, 40) + "...", "The expression is too long.");
    std::string e = Lower(expression);
    if (e == "@hourly")
        e = "0 * * * *";
    else if (e == "@daily" || e == "@midnight")
        e = "0 0 * * *";
    else if (e == "@weekly")
        e = "0 0 * * 0";
    else if (e == "@monthly")
        e = "0 0 1 * *";
    else if (e == "@yearly" || e == "@annually")
        e = "0 0 1 1 *";
    std::vector<std::string> fields;
    size_t i = 0;
    while (i < e.size()) {
        while (i < e.size() && std::isspace(static_cast<unsigned char>(e[i])))
            i++;
        size_t start = i;
        while (i < e.size() && !std::isspace(static_cast<unsigned char>(e[i])))
            i++;
        if (i > start)
            fields.push_back(e.substr(start, i - start));
    }
    if (fields.size() != 5)
        BadCron(expression, "It has " + std::to_string(fields.size()) + " fields, not 5.");
    static const std::vector<std::string> kMonths = {"jan", "feb", "mar", "apr", "may", "jun",
                                                     "jul", "aug", "sep", "oct", "nov", "dec"};
    static const std::vector<std::string> kDays = {"sun", "mon", "tue", "wed", "thu", "fri", "sat"};
    CronSchedule c;
    ParseField(expression, fields[0], 0, 59, {}, "minute", c.minutes);
    ParseField(expression, fields[1], 0, 23, {}, "hour", c.hours);
    c.dom_restricted = ParseField(expression, fields[2], 1, 31, {}, "day of month", c.days_of_month);
    ParseField(expression, fields[3], 1, 12, kMonths, "month", c.months);
    std::bitset<8> dow;
    c.dow_restricted = ParseField(expression, fields[4], 0, 7, kDays, "day of week", dow);
    for (size_t d = 0; d < 7; d++)
        c.days_of_week[d] = dow[d];
    if (dow[7])
        c.days_of_week[0] = true; // 7 is Sunday too
    return c;
}

std::time_t CronSchedule::NextAfter(std::time_t after) const {
    std::time_t t = after - (after % 60) + 60;
    // Walk by days when the day cannot match, by hours when the hour cannot,
    // so a year of search costs a few thousand steps at most.
    const std::time_t limit = after + 5L * 366 * 24 * 3600;
    while (t <= limit) {
        struct tm tm;
        gmtime_r(&t, &tm);
        bool dom = days_of_month[static_cast<size_t>(tm.tm_mday)];
        bool dow = days_of_week[static_cast<size_t>(tm.tm_wday)];
        bool day_ok = (dom_restricted && dow_restricted) ? (dom || dow) : (dom && dow);
        if (!months[static_cast<size_t>(tm.tm_mon + 1)] || !day_ok) {
            t += (24 - tm.tm_hour) * 3600 - tm.tm_min * 60;
            continue;
        }
        if (!hours[static_cast<size_t>(tm.tm_hour)]) {
            t += (60 - tm.tm_min) * 60;
            continue;
        }
        if (!minutes[static_cast<size_t>(tm.tm_min)]) {
            t += 60;
            continue;
        }
        return t;
    }
    return -1;
}

dsl::Schedule ParseScheduleText(const std::string &raw) {
    std::string text = Trim(raw);
    std::string lower = Lower(text);
    dsl::Schedule s;
    auto rest_after = [&](size_t n) { return Trim(text.substr(n)); };
    if (lower == "manual") {
        s.kind = dsl::Schedule::Kind::Manual;
    } else if (lower.rfind("every ", 0) == 0) {
        s.kind = dsl::Schedule::Kind::Every;
        s.value = rest_after(6);
    } else if (lower.rfind("cron ", 0) == 0) {
        s.kind = dsl::Schedule::Kind::Cron;
        s.value = rest_after(5);
        ParseCron(s.value);
    } else if (lower == "on change") {
        s.kind = dsl::Schedule::Kind::OnChange;
    } else if (lower.rfind("after ", 0) == 0) {
        s.kind = dsl::Schedule::Kind::After;
        s.value = rest_after(6);
    } else {
        throw Error(
            sqlstate::kInvalidParameterValue, "invalid schedule \"" + text + "\"", {},
            "Write 'manual', 'every 15 minutes', 'cron */15 * * * *', 'on change' or 'after other_sync'.");
    }
    if ((s.kind == dsl::Schedule::Kind::Every || s.kind == dsl::Schedule::Kind::After) && s.value.empty())
        throw Error(sqlstate::kInvalidParameterValue, "invalid schedule \"" + text + "\"",
                    s.kind == dsl::Schedule::Kind::Every ? "EVERY needs an interval."
                                                         : "AFTER needs a sync name.");
    return s;
}

std::string ScheduleText(const dsl::Schedule &s) {
    switch (s.kind) {
    case dsl::Schedule::Kind::Manual:
        return "manual";
    case dsl::Schedule::Kind::Every:
        return "every " + s.value;
    case dsl::Schedule::Kind::Cron:
        return "cron " + s.value;
    case dsl::Schedule::Kind::OnChange:
        return "on change";
    case dsl::Schedule::Kind::After:
        return "after " + s.value;
    }
    return "manual";
}

} // namespace revetl
