// The MAP targets of an audience destination whose members are sent as a
// set of named identifiers (Meta's schema keys, Google's identifier keys):
// each target must be one of the destination's keys, at most once. One
// check, so that every such destination refuses a wrong MAP with the same
// kind of message and "Perhaps you meant" hint.
#pragma once

#include <string>
#include <vector>

namespace revetl {

struct AudienceKeys {
    std::vector<std::string> keys; // the keys as the destination spells them
    bool upper_case = false;       // spelled in upper case (Meta) or lower case (Google)
    // The wording of the refusals, e.g. for Meta: "a key of Meta's audience
    // schema", "Meta's schema keys", "Name one of Meta's schema keys as the
    // MAP target.", "Meta's key", "Each key of Meta's schema is one column
    // of the upload."
    std::string not_a_key;
    std::string list_label;
    std::string name_hint;
    std::string key_label;
    std::string twice_detail;
};

// `field` as the destination spells its key (compared without case); ""
// when it names none.
std::string CanonicalAudienceKey(const AudienceKeys &set, const std::string &field);

// The keys `map_fields` name, in their order; throws a PostgreSQL-style
// error naming `sync_name` for a target that is no key (with the closest
// key) or a key named twice.
std::vector<std::string> CheckAudienceKeys(const AudienceKeys &set,
                                           const std::vector<std::string> &map_fields,
                                           const std::string &sync_name);

} // namespace revetl
