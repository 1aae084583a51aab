#include "core/connectors/audience_keys.hpp"

#include "core/common/error.hpp"
#include "core/connectors/connector.hpp"
#include "core/connectors/options.hpp"

#include <algorithm>
#include <cctype>

namespace revetl {

namespace {

std::string Folded(const AudienceKeys &set, std::string s) {
    for (char &c : s)
        c = static_cast<char>(set.upper_case ? std::toupper(static_cast<unsigned char>(c))
                                             : std::tolower(static_cast<unsigned char>(c)));
    return s;
}

} // namespace

std::string CanonicalAudienceKey(const AudienceKeys &set, const std::string &field) {
    const std::string k = Folded(set, field);
    for (const auto &key : set.keys)
        if (key == k)
            return key;
    return {};
}

std::vector<std::string> CheckAudienceKeys(const AudienceKeys &set,
                                           const std::vector<std::string> &map_fields,
                                           const std::string &sync_name) {
    std::vector<std::string> seen;
    for (const auto &f : map_fields) {
        const std::string key = CanonicalAudienceKey(set, f);
        if (key.empty()) {
            const std::string close = ClosestMatch(Folded(set, f), set.keys);
            std::string keys;
            for (const auto &k : set.keys)
                keys += (keys.empty() ? "" : ", ") + k;
            throw Error(sqlstate::kInvalidParameterValue,
                        "sync \"" + sync_name + "\" maps to \"" + Truncate(f, 100) + "\", which is not " +
                            set.not_a_key,
                        set.list_label + ": " + keys + ".",
                        close.empty() ? set.name_hint : "Perhaps you meant \"" + close + "\".");
        }
        if (std::find(seen.begin(), seen.end(), key) != seen.end())
            throw Error(sqlstate::kInvalidParameterValue,
                        "sync \"" + sync_name + "\" maps to " + set.key_label + " " + key + " twice",
                        set.twice_detail,
                        "Keep one MAP target per key (MAP targets are compared without case).");
        seen.push_back(key);
    }
    return seen;
}

} // namespace revetl
