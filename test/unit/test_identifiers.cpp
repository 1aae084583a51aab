// The identifier rules of src/core/identifiers. The expected strings are the
// vendors' own examples where they give one (their hashes are pinned in
// sql/identifiers.sql); the rest follow the rule texts quoted in
// docs/identifiers.md.
#include "core/identifiers/identifiers.hpp"

#include "test_util.hpp"

#include <gtest/gtest.h>

#include <optional>
#include <string>
#include <vector>

using revetl::identifiers::CheckSupported;
using revetl::identifiers::E164;
using revetl::identifiers::Kind;
using revetl::identifiers::Normalize;
using revetl::identifiers::NormalizeEmail;
using revetl::identifiers::ParseKind;
using revetl::identifiers::ParseRegion;
using revetl::identifiers::ParseRule;
using revetl::identifiers::Rule;
using revetl_test::Catch;
using revetl_test::Contains;

namespace {

const std::optional<std::string> kNull = std::nullopt;

std::optional<std::string> N(Kind kind, const std::string &value, Rule rule = Rule::kMeta,
                             const std::string &region = "") {
    return Normalize(kind, value, rule, region);
}

} // namespace

TEST(IdentifierNames, RulesAndKindsParseCaseInsensitively) {
    EXPECT_EQ(ParseRule("default"), Rule::kDefault);
    EXPECT_EQ(ParseRule("Google"), Rule::kGoogle);
    EXPECT_EQ(ParseRule(" META "), Rule::kMeta);
    EXPECT_EQ(ParseKind("email"), Kind::kEmail);
    EXPECT_EQ(ParseKind("First_Name"), Kind::kFirstName);
    EXPECT_EQ(ParseKind("date_of_birth"), Kind::kDateOfBirth);
    EXPECT_EQ(ParseKind("birth_day"), Kind::kBirthDay);
}

TEST(IdentifierNames, UnknownRuleIsAnErrorListingTheRules) {
    revetl::Error e = Catch([] { ParseRule("gogle"); });
    EXPECT_EQ(e.sqlstate(), "22023");
    EXPECT_STREQ(e.what(), "unknown identifier rule \"gogle\"");
    EXPECT_EQ(e.hint(), "Perhaps you meant \"google\". The rules are default, google and meta.");
    e = Catch([] { ParseRule(""); });
    EXPECT_EQ(e.hint(), "The rules are default, google and meta.");
}

TEST(IdentifierNames, UnknownKindIsAnErrorListingTheKinds) {
    revetl::Error e = Catch([] { ParseKind("phones"); });
    EXPECT_EQ(e.sqlstate(), "22023");
    EXPECT_STREQ(e.what(), "unknown identifier kind \"phones\"");
    EXPECT_TRUE(Contains(e.hint(), "Perhaps you meant \"phone\"."));
    EXPECT_TRUE(Contains(e.hint(), "The kinds are email, phone, first_name, last_name, city, state, zip, "
                                   "country, gender, date_of_birth, birth_year, birth_month and birth_day."));
}

TEST(IdentifierNames, OnlyMetaHashesLocationsGenderAndBirthDates) {
    for (Rule rule : {Rule::kDefault, Rule::kGoogle, Rule::kMeta})
        for (Kind kind : {Kind::kEmail, Kind::kPhone, Kind::kFirstName, Kind::kLastName})
            CheckSupported(kind, rule);
    for (Kind kind : {Kind::kCity, Kind::kState, Kind::kZip, Kind::kCountry, Kind::kGender,
                      Kind::kDateOfBirth, Kind::kBirthYear, Kind::kBirthMonth, Kind::kBirthDay}) {
        CheckSupported(kind, Rule::kMeta);
        revetl::Error e = Catch([&] { CheckSupported(kind, Rule::kGoogle); });
        EXPECT_EQ(e.sqlstate(), "22023");
        EXPECT_TRUE(Contains(e.what(), "rule \"google\" does not hash identifiers of kind"));
        EXPECT_TRUE(Contains(e.hint(), "use rule => 'meta'"));
        e = Catch([&] { CheckSupported(kind, Rule::kDefault); });
        EXPECT_TRUE(Contains(e.what(), "rule \"default\" does not hash"));
    }
    // Normalize checks too, before looking at the value.
    revetl::Error e = Catch([] { Normalize(Kind::kZip, "", Rule::kGoogle, ""); });
    EXPECT_STREQ(e.what(), "rule \"google\" does not hash identifiers of kind \"zip\"");
}

TEST(NormalizeEmail, DefaultAndMetaTrimAndLowerCase) {
    // Meta's example: John_Smith@gmail.com -> john_smith@gmail.com.
    EXPECT_EQ(NormalizeEmail("John_Smith@gmail.com", Rule::kMeta), "john_smith@gmail.com");
    EXPECT_EQ(NormalizeEmail("  John.Smith@Gmail.COM\t\n", Rule::kMeta), "john.smith@gmail.com");
    EXPECT_EQ(NormalizeEmail("  John.Smith+tag@Gmail.COM ", Rule::kDefault), "john.smith+tag@gmail.com");
    // Only surrounding white space goes.
    EXPECT_EQ(NormalizeEmail(" a b@example.com ", Rule::kDefault), "a b@example.com");
    // Unicode white space (no-break space, ideographic space) is white space.
    EXPECT_EQ(NormalizeEmail("\xC2\xA0user@example.com\xE3\x80\x80", Rule::kDefault), "user@example.com");
}

TEST(NormalizeEmail, GoogleDropsGmailDotsAndPlusTagsAndAllWhiteSpace) {
    // Google's examples (Data Manager API, "Format user data").
    EXPECT_EQ(NormalizeEmail("cloudy.sanfrancisco+shopping@gmail.com", Rule::kGoogle),
              "cloudysanfrancisco@gmail.com");
    EXPECT_EQ(NormalizeEmail("user.name+NYC@Example.com", Rule::kGoogle), "user.name+nyc@example.com");
    EXPECT_EQ(NormalizeEmail("cloudySanFrancisco@GMAIL.com", Rule::kGoogle), "cloudysanfrancisco@gmail.com");
    EXPECT_EQ(NormalizeEmail(" baklavainthebalkans@gmail.com  ", Rule::kGoogle),
              "baklavainthebalkans@gmail.com");
    EXPECT_EQ(NormalizeEmail("J.o.h.n@GoogleMail.com", Rule::kGoogle), "john@googlemail.com");
    EXPECT_EQ(NormalizeEmail("j ohn @ example.com", Rule::kGoogle), "john@example.com");
    // Other domains keep dots and tags, even Google Workspace ones.
    EXPECT_EQ(NormalizeEmail("first.last@google.com", Rule::kGoogle), "first.last@google.com");
    EXPECT_EQ(NormalizeEmail("first.last@mail.gmail.com", Rule::kGoogle), "first.last@mail.gmail.com");
    // Meta and the default rule keep Gmail's dots.
    EXPECT_EQ(NormalizeEmail("j.ohn@gmail.com", Rule::kMeta), "j.ohn@gmail.com");
    EXPECT_EQ(NormalizeEmail("j.ohn@gmail.com", Rule::kDefault), "j.ohn@gmail.com");
}

TEST(NormalizeEmail, NotAnEmailIsNull) {
    for (Rule rule : {Rule::kDefault, Rule::kGoogle, Rule::kMeta}) {
        EXPECT_EQ(NormalizeEmail("", rule), kNull);
        EXPECT_EQ(NormalizeEmail("   ", rule), kNull);
        EXPECT_EQ(NormalizeEmail("john.example.com", rule), kNull);
        EXPECT_EQ(NormalizeEmail("@example.com", rule), kNull);
        EXPECT_EQ(NormalizeEmail("john@", rule), kNull);
        EXPECT_EQ(NormalizeEmail(" @ ", rule), kNull);
        EXPECT_EQ(NormalizeEmail("jo\xFFhn@example.com", rule), kNull); // not UTF-8
    }
    // A Gmail address with nothing left of its local part.
    EXPECT_EQ(NormalizeEmail("...+x@gmail.com", Rule::kGoogle), kNull);
    // The domain follows the last "@".
    EXPECT_EQ(NormalizeEmail("\"a@b\"@Example.com", Rule::kMeta), "\"a@b\"@example.com");
}

TEST(NormalizeEmail, LowerCasesBeyondAscii) {
    EXPECT_EQ(NormalizeEmail("J\xC3\x96RG@Example.DE", Rule::kMeta), "j\xC3\xB6rg@example.de"); // JÖRG
    EXPECT_EQ(NormalizeEmail("\xC3\x89LODIE@exemple.fr", Rule::kGoogle), "\xC3\xA9lodie@exemple.fr");
}

TEST(E164, FormatsValidNumbers) {
    // Meta's example (650)555-1212 in the US, Google's (800)555-0100.
    EXPECT_EQ(E164("(650)555-1212", "US"), "+16505551212");
    EXPECT_EQ(E164("(800)555-0100", "US"), "+18005550100");
    EXPECT_EQ(E164("+44 844 412 4653", ""), "+448444124653");
    EXPECT_EQ(E164("020 7946 0018", "GB"), "+442079460018");
    EXPECT_EQ(E164("+1 (650) 253-0000", "GB"), "+16502530000");  // the + wins over the region
    EXPECT_EQ(E164("0044 20 7946 0018", "DE"), "+442079460018"); // international prefix from Germany
    EXPECT_EQ(E164("1-800-FLOWERS", "US"), "+18003569377");
    EXPECT_EQ(E164("  +16505551212  ", ""), "+16505551212");
}

TEST(E164, UnparseableOrInvalidIsNull) {
    EXPECT_EQ(E164("", ""), kNull);
    EXPECT_EQ(E164("abc", "US"), kNull);
    EXPECT_EQ(E164("6505551212", ""), kNull);            // no country code, no region
    EXPECT_EQ(E164("+1 555 555 5555", ""), kNull);       // not a valid area code
    EXPECT_EQ(E164("+1 650 555", ""), kNull);            // too short
    EXPECT_EQ(E164("+999 1234 5678", ""), kNull);        // no such country code
    EXPECT_EQ(E164(std::string(300, '1'), "US"), kNull); // too long to parse
    EXPECT_EQ(E164("+1 650\xFF 555 1212", ""), kNull);   // not UTF-8
}

TEST(E164, NormalisingTwiceChangesNothing) {
    const std::pair<const char *, const char *> phones[] = {
        {"(650)555-1212", "US"}, {"+44 844 412 4653", ""}, {"020 7946 0018", "GB"}, {"+49 30 123456", "FR"}};
    for (const auto &[phone, region] : phones) {
        std::optional<std::string> once = E164(phone, region);
        ASSERT_TRUE(once) << phone;
        EXPECT_EQ(E164(*once, ""), once);
        EXPECT_EQ(E164(*once, region), once);
        EXPECT_EQ(E164(*once, "JP"), once);
    }
}

TEST(ParseRegion, AcceptsKnownAlpha2Codes) {
    EXPECT_EQ(ParseRegion("US"), "US");
    EXPECT_EQ(ParseRegion(" gb "), "GB");
    EXPECT_EQ(ParseRegion(""), "");
    for (const char *bad : {"USA", "XX", "ZZ", "U", "1A", "United States"}) {
        revetl::Error e = Catch([&] { ParseRegion(bad); });
        EXPECT_EQ(e.sqlstate(), "22023");
        EXPECT_EQ(std::string(e.what()), std::string("unknown region code \"") + bad + "\"");
        EXPECT_TRUE(Contains(e.hint(), "'US' or 'GB'"));
    }
}

TEST(NormalizePhone, GoogleKeepsThePlusMetaDropsIt) {
    EXPECT_EQ(N(Kind::kPhone, "(650)555-1212", Rule::kGoogle, "US"), "+16505551212");
    EXPECT_EQ(N(Kind::kPhone, "(650)555-1212", Rule::kDefault, "US"), "+16505551212");
    // Meta's example: normalised format 16505551212.
    EXPECT_EQ(N(Kind::kPhone, "(650)555-1212", Rule::kMeta, "US"), "16505551212");
    EXPECT_EQ(N(Kind::kPhone, "+44 844 412 4653", Rule::kMeta), "448444124653");
    EXPECT_EQ(N(Kind::kPhone, "not a phone", Rule::kMeta, "US"), kNull);
    // Meta's digits, read back with a "+", are the same number.
    EXPECT_EQ(N(Kind::kPhone, "+16505551212", Rule::kMeta), "16505551212");
    // Meta reads digits as country code and number, so its own normalised
    // form normalises to itself, with or without a default region.
    EXPECT_EQ(N(Kind::kPhone, "16505551212", Rule::kMeta), "16505551212");
    EXPECT_EQ(N(Kind::kPhone, "448444124653", Rule::kMeta, "US"), "448444124653");
    EXPECT_EQ(N(Kind::kPhone, "16505551212", Rule::kGoogle), kNull); // Google wants the "+"
    EXPECT_EQ(N(Kind::kPhone, "+1 555 555 5555", Rule::kMeta), kNull);
}

TEST(NormalizeName, DefaultAndGoogleTrimAndLowerCase) {
    EXPECT_EQ(N(Kind::kFirstName, "  Mary ", Rule::kGoogle), "mary");
    EXPECT_EQ(N(Kind::kLastName, " O'Brien-Smith ", Rule::kGoogle), "o'brien-smith");
    EXPECT_EQ(N(Kind::kFirstName, "Mary Ann", Rule::kDefault), "mary ann");
    EXPECT_EQ(N(Kind::kFirstName, "\xC3\x89LODIE", Rule::kDefault), "\xC3\xA9lodie");
    EXPECT_EQ(N(Kind::kFirstName, " \t", Rule::kGoogle), kNull);
}

TEST(NormalizeName, MetaAlsoDropsPunctuationAndKeepsOtherScripts) {
    // Meta's examples: Mary -> mary, 정 -> 정, Valéry -> valéry.
    EXPECT_EQ(N(Kind::kFirstName, "Mary"), "mary");
    EXPECT_EQ(N(Kind::kFirstName, "\xEC\xA0\x95"), "\xEC\xA0\x95");
    EXPECT_EQ(N(Kind::kFirstName, "Val\xC3\xA9ry"), "val\xC3\xA9ry");
    EXPECT_EQ(N(Kind::kLastName, " O'Brien-Smith. "), "obriensmith");
    EXPECT_EQ(N(Kind::kLastName, "St. John"), "st john");
    EXPECT_EQ(N(Kind::kLastName, "Mary ."), "mary");
    EXPECT_EQ(N(Kind::kLastName, "\xE2\x80\x9C"
                                 "Doe"
                                 "\xE2\x80\x9D"),
              "doe"); // curly quotes
    EXPECT_EQ(N(Kind::kFirstName, "..."), kNull);
}

TEST(NormalizeLocation, MetaCityStateZipCountry) {
    EXPECT_EQ(N(Kind::kCity, "Menlo Park"), "menlopark");
    EXPECT_EQ(N(Kind::kCity, "Winston-Salem, NC 27101"), "winstonsalemnc");
    EXPECT_EQ(N(Kind::kCity, "M\xC3\xBCnchen"), "m\xC3\xBCnchen");
    EXPECT_EQ(N(Kind::kCity, "123"), kNull);
    EXPECT_EQ(N(Kind::kState, "CA"), "ca");
    EXPECT_EQ(N(Kind::kState, "California"), "ca");
    EXPECT_EQ(N(Kind::kState, " new york "), "ny");
    EXPECT_EQ(N(Kind::kState, "District of Columbia"), "dc");
    EXPECT_EQ(N(Kind::kState, "N.Y."), "ny");
    EXPECT_EQ(N(Kind::kState, "Bavaria"), "bavaria");
    EXPECT_EQ(N(Kind::kZip, "94025"), "94025");
    EXPECT_EQ(N(Kind::kZip, " 94025-1234 "), "94025");
    EXPECT_EQ(N(Kind::kZip, "SW1A 1AA"), "sw1a1");
    EXPECT_EQ(N(Kind::kZip, "M1 1AE"), "m11");
    EXPECT_EQ(N(Kind::kZip, "EC1A 1BB"), "ec1a1");
    EXPECT_EQ(N(Kind::kZip, "K1A 0B1"), "k1a0b1"); // Canadian: lower case, no white space
    EXPECT_EQ(N(Kind::kZip, "1234 AB"), "1234ab");
    EXPECT_EQ(N(Kind::kZip, "  "), kNull);
    EXPECT_EQ(N(Kind::kCountry, " US "), "us");
    EXPECT_EQ(N(Kind::kCountry, "gb"), "gb");
    EXPECT_EQ(N(Kind::kCountry, "USA"), kNull);
    EXPECT_EQ(N(Kind::kCountry, "u1"), kNull);
}

TEST(NormalizeOther, MetaGenderAndBirthDates) {
    EXPECT_EQ(N(Kind::kGender, "F"), "f");
    EXPECT_EQ(N(Kind::kGender, " male "), "m");
    EXPECT_EQ(N(Kind::kGender, "Female"), "f");
    EXPECT_EQ(N(Kind::kGender, "x"), kNull);
    EXPECT_EQ(N(Kind::kDateOfBirth, "1997-02-16"), "19970216");
    EXPECT_EQ(N(Kind::kDateOfBirth, "19970216"), "19970216");
    EXPECT_EQ(N(Kind::kDateOfBirth, "1997/2/6"), "19970206");
    EXPECT_EQ(N(Kind::kDateOfBirth, "2000-02-29"), "20000229");
    EXPECT_EQ(N(Kind::kDateOfBirth, "1900-02-29"), kNull); // not a leap year
    EXPECT_EQ(N(Kind::kDateOfBirth, "1997-13-01"), kNull);
    EXPECT_EQ(N(Kind::kDateOfBirth, "1899-12-31"), kNull); // Meta: years from 1900
    EXPECT_EQ(N(Kind::kDateOfBirth, "16/02/1997"), kNull); // day first: ambiguous
    EXPECT_EQ(N(Kind::kDateOfBirth, "1997-02/16"), kNull);
    EXPECT_EQ(N(Kind::kBirthYear, "1997-02-16"), "1997");
    EXPECT_EQ(N(Kind::kBirthYear, "1997"), "1997");
    EXPECT_EQ(N(Kind::kBirthMonth, "1997-02-16"), "02");
    EXPECT_EQ(N(Kind::kBirthMonth, "2"), "02");
    EXPECT_EQ(N(Kind::kBirthMonth, "13"), kNull);
    EXPECT_EQ(N(Kind::kBirthDay, "19970216"), "16");
    EXPECT_EQ(N(Kind::kBirthDay, "7"), "07");
    EXPECT_EQ(N(Kind::kBirthDay, "32"), kNull);
}

// Normalising a normalised value changes nothing, for every kind and rule,
// over inputs chosen to trip the rules up.
TEST(Normalize, TwiceIsOnce) {
    const std::vector<std::string> inputs = {
        "  John.Smith+Tag@GMail.com ",
        "J\xC3\x96RG.M\xC3\x9C"
        "LLER@Example.DE",
        "\xCE\x9F\xCE\x94\xCE\x9F\xCE\xA3@example.gr", // ΟΔΟΣ: final sigma
        "\xC4\xB0stanbul",                             // İ lower-cases to two code points
        "(650)555-1212",
        "+44 844 412 4653",
        "Mary-Ann O'Neil, Jr.",
        "New York",
        "SW1A 1AA",
        "94025-1234",
        "1997-02-16",
        "Female",
        "\xC2\xA0\xE3\x80\x80 x \xC2\xA0",
        "a@b@c",
        "...",
        "+",
        "",
    };
    const std::vector<Kind> kinds = {Kind::kEmail,   Kind::kPhone,       Kind::kFirstName, Kind::kLastName,
                                     Kind::kCity,    Kind::kState,       Kind::kZip,       Kind::kCountry,
                                     Kind::kGender,  Kind::kDateOfBirth, Kind::kBirthYear, Kind::kBirthMonth,
                                     Kind::kBirthDay};
    for (Kind kind : kinds)
        for (Rule rule : {Rule::kDefault, Rule::kGoogle, Rule::kMeta}) {
            if (rule != Rule::kMeta && kind > Kind::kLastName)
                continue;
            for (const std::string &input : inputs) {
                std::optional<std::string> once = Normalize(kind, input, rule, "US");
                if (!once)
                    continue;
                EXPECT_EQ(Normalize(kind, *once, rule, "US"), once)
                    << revetl::identifiers::KindName(kind) << " / " << revetl::identifiers::RuleName(rule)
                    << " / [" << input << "]";
            }
        }
}
