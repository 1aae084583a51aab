// The MAP targets of an audience destination whose members are sent as a
// set of named identifiers (an ad platform's schema or identifier keys):
// each target must be one of the destination's keys, at most once. One
// check, so that every such destination refuses a wrong MAP with the same
// kind of message and "Perhaps you meant" hint.
#pragma once

#include <string>
#include <vector>

namespace revetl {

struct AudienceKeys {
    std::vector<std::string> keys; // the keys as the destination spells them
    bool upper_case = false;       // the keys are spelled in upper case (else lower case)
    // The wording of the refusals, e.g. "a key of <vendor>'s audience
    // schema", "<vendor>'s schema keys", "Name one of <vendor>'s schema keys
    // as the MAP target.", "<vendor>'s key", "Each key of <vendor>'s schema
    // is one column of the upload."
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
