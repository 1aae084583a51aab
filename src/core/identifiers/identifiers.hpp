// Normalisation of the identifiers that ad platforms match audiences on
// (emails, phone numbers, names, location and birth dates), by the rules each
// vendor documents, before they are hashed with SHA-256.
//
// Pure C++: the SQL functions in src/pg/identifier_functions.cpp hand in
// UTF-8 text and get UTF-8 text back; the hashing itself is PostgreSQL's
// sha256(). Phone numbers are parsed and validated by Google's libphonenumber
// (never by a hand-written parser), Unicode case mapping and character classes
// come from ICU, so the result does not depend on the database's locale.
//
// The rules are public API: changing one changes the hash of every member of
// every audience built with it. docs/identifiers.md lists each rule with its
// source; test/unit/test_identifiers.cpp and sql/identifiers.sql pin them.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace revetl::identifiers {

// Whose documented normalisation to follow.
enum class Rule {
    kDefault, // what both vendors agree on: trim and lower-case, phones in E.164
    kGoogle,  // Google Customer Match (Data Manager API)
    kMeta,    // Meta Custom Audiences and Conversions API
};

enum class Kind {
    kEmail,
    kPhone,
    kFirstName,
    kLastName,
    kCity,
    kState,
    kZip,
    kCountry,
    kGender,
    kDateOfBirth,
    kBirthYear,
    kBirthMonth,
    kBirthDay,
};

// Parse a rule or kind name (case-insensitive, surrounding blanks ignored).
// An unknown name is an Error (22023) whose hint lists the known ones.
Rule ParseRule(std::string_view name);
Kind ParseKind(std::string_view name);
const char *RuleName(Rule rule);
const char *KindName(Kind kind);

// Throws an Error (22023) when `rule`'s vendor does not take a hashed
// identifier of `kind` (Google takes no hashed city, for example), so that a
// wrong combination fails even on a column that is all NULL.
void CheckSupported(Kind kind, Rule rule);

// A default region for phone numbers written without a country code: an
// ISO 3166-1 alpha-2 code libphonenumber knows, returned upper-case. Empty
// input means "no default region" and gives "". Anything else is an Error.
std::string ParseRegion(std::string_view region);

// Trim and lower-case; for Google, also remove all white space and, for
// gmail.com and googlemail.com, the dots and any "+suffix" of the local part.
// nullopt when the input is not an email (no "@", an empty local part or
// domain) or not valid UTF-8.
std::optional<std::string> NormalizeEmail(std::string_view email, Rule rule);

// The number in E.164 ("+" and digits) when libphonenumber can parse it and
// finds it a valid number; nullopt otherwise. `region` comes from
// ParseRegion ("" for none: then the number must start with "+").
std::optional<std::string> E164(std::string_view phone, const std::string &region);

// The value of `kind` normalised as `rule`'s vendor documents it (the text
// that gets hashed), or nullopt when it cannot be normalised. Throws as
// CheckSupported does. `region` (from ParseRegion) is used for phones only.
std::optional<std::string> Normalize(Kind kind, std::string_view value, Rule rule, const std::string &region);

} // namespace revetl::identifiers
