// libFuzzer target for the sync language parser.
//
// Properties checked on every input, besides "no crash, no hang, no leak"
// (AddressSanitizer and LeakSanitizer watch those):
//  - the parser either returns statements or throws revetl::Error, never
//    anything else;
//  - every CREATE SYNC it accepts formats (FormatCreateSync) to text that
//    parses back to the same definition, so sync_ddl round-trips.
#include "core/language/sync_language.hpp"

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <variant>

namespace {

bool SameOptions(const std::vector<revetl::dsl::OptionItem> &a,
                 const std::vector<revetl::dsl::OptionItem> &b) {
    if (a.size() != b.size())
        return false;
    for (size_t i = 0; i < a.size(); i++)
        if (a[i].name != b[i].name || a[i].type != b[i].type || a[i].value != b[i].value)
            return false;
    return true;
}

bool Same(const revetl::dsl::CreateSync &a, const revetl::dsl::CreateSync &b) {
    if (a.name != b.name || a.model_is_query != b.model_is_query || a.model_schema != b.model_schema ||
        a.model_name != b.model_name || a.model_query != b.model_query || a.server != b.server ||
        a.object != b.object || a.key != b.key || a.match_on != b.match_on || a.mode != b.mode ||
        a.map.size() != b.map.size() || a.schedule.has_value() != b.schedule.has_value() ||
        !SameOptions(a.options, b.options))
        return false;
    for (size_t i = 0; i < a.map.size(); i++)
        if (a.map[i].field != b.map[i].field || a.map[i].expression != b.map[i].expression)
            return false;
    if (a.schedule && (a.schedule->kind != b.schedule->kind || a.schedule->value != b.schedule->value))
        return false;
    return true;
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    std::string input(reinterpret_cast<const char *>(data), size);
    std::vector<revetl::dsl::Statement> statements;
    try {
        statements = revetl::dsl::Parse(input);
    } catch (const revetl::Error &) {
        return 0;
    }
    for (const auto &s : statements) {
        const auto *create = std::get_if<revetl::dsl::CreateSync>(&s);
        if (!create)
            continue;
        std::string formatted = revetl::dsl::FormatCreateSync(*create);
        std::vector<revetl::dsl::Statement> again;
        try {
            again = revetl::dsl::Parse(formatted);
        } catch (const revetl::Error &e) {
            std::fprintf(stderr, "formatted statement does not parse: %s\n%s\n", e.what(), formatted.c_str());
            std::abort();
        }
        const auto *back = again.size() == 1 ? std::get_if<revetl::dsl::CreateSync>(&again[0]) : nullptr;
        revetl::dsl::CreateSync expected = *create;
        expected.or_replace = false;
        if (!back || !Same(expected, *back)) {
            std::fprintf(stderr, "round trip changed the definition:\n%s\n", formatted.c_str());
            std::abort();
        }
    }
    return 0;
}
