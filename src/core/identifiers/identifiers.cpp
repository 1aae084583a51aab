#include "core/identifiers/identifiers.hpp"

#include "core/connectors/options.hpp"
#include "core/common/error.hpp"

#include <phonenumbers/phonenumberutil.h>
#include <unicode/locid.h>
#include <unicode/uchar.h>
#include <unicode/unistr.h>
#include <unicode/utf8.h>

#include <algorithm>
#include <vector>

namespace revetl::identifiers {

namespace {

// Text as Unicode code points: every rule is stated in characters (white
// space, punctuation, letters), never in bytes.
using CodePoints = std::vector<UChar32>;

std::optional<CodePoints> Decode(std::string_view s) {
    CodePoints out;
    out.reserve(s.size());
    const auto n = static_cast<int32_t>(s.size());
    int32_t i = 0;
    while (i < n) {
        UChar32 c;
        U8_NEXT(s.data(), i, n, c);
        if (c < 0)
            return std::nullopt;
        out.push_back(c);
    }
    return out;
}

std::string Encode(const CodePoints &cps) {
    std::string out;
    out.reserve(cps.size());
    for (UChar32 c : cps) {
        if (c < 0x80) {
            out.push_back(static_cast<char>(c));
            continue;
        }
        // Every code point here came from valid UTF-8 or from ICU.
        uint8_t buf[U8_MAX_LENGTH];
        int32_t len = 0;
        U8_APPEND_UNSAFE(buf, len, c);
        out.append(reinterpret_cast<const char *>(buf), static_cast<size_t>(len));
    }
    return out;
}

bool IsAscii(const CodePoints &cps) {
    return std::all_of(cps.begin(), cps.end(), [](UChar32 c) { return c < 0x80; });
}

// Unicode's White_Space property: also the no-break and ideographic spaces
// that copy and paste brings in, which isspace() in the C locale misses.
bool IsWhiteSpace(UChar32 c) {
    return u_isUWhiteSpace(c);
}

bool IsPunctuation(UChar32 c) {
    return (U_GET_GC_MASK(c) & U_GC_P_MASK) != 0;
}

// Letters with their combining marks, so that a decomposed "é" keeps its
// accent when everything else is dropped.
bool IsLetterOrMark(UChar32 c) {
    return (U_GET_GC_MASK(c) & (U_GC_L_MASK | U_GC_M_MASK)) != 0;
}

CodePoints Trim(const CodePoints &cps) {
    auto begin = std::find_if_not(cps.begin(), cps.end(), IsWhiteSpace);
    auto end = std::find_if_not(cps.rbegin(), std::make_reverse_iterator(begin), IsWhiteSpace).base();
    return CodePoints(begin, end);
}

template <typename Pred>
CodePoints RemoveIf(CodePoints cps, Pred pred) {
    cps.erase(std::remove_if(cps.begin(), cps.end(), pred), cps.end());
    return cps;
}

// Unicode's full default case mapping (ICU's root locale), the same for
// every database whatever its lc_ctype: lower() in SQL would give a
// different hash under a different locale.
CodePoints Lower(const CodePoints &cps) {
    if (IsAscii(cps)) {
        CodePoints out(cps);
        for (auto &c : out)
            if (c >= 'A' && c <= 'Z')
                c += 'a' - 'A';
        return out;
    }
    icu::UnicodeString u = icu::UnicodeString::fromUTF32(cps.data(), static_cast<int32_t>(cps.size()));
    u.toLower(icu::Locale::getRoot());
    CodePoints out(static_cast<size_t>(u.countChar32()));
    UErrorCode status = U_ZERO_ERROR;
    u.toUTF32(out.data(), static_cast<int32_t>(out.size()), status);
    if (U_FAILURE(status))
        throw Error(sqlstate::kInternalError,
                    std::string("could not lower-case text: ") + u_errorName(status));
    return out;
}

std::optional<std::string> NonEmpty(const CodePoints &cps) {
    if (cps.empty())
        return std::nullopt;
    return Encode(cps);
}

bool IsAsciiLetter(char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

bool IsDigit(char c) {
    return c >= '0' && c <= '9';
}

bool AllDigits(std::string_view s) {
    return !s.empty() && std::all_of(s.begin(), s.end(), IsDigit);
}

// A UK outward code: one or two letters, a digit, then an optional digit or
// letter (A9, A99, A9A, AA9, AA99, AA9A).
bool IsUkOutwardCode(const std::string &o) {
    size_t i = 0;
    while (i < o.size() && i < 2 && IsAsciiLetter(o[i]))
        i++;
    if (i == 0 || i >= o.size() || !IsDigit(o[i]))
        return false;
    i++;
    if (i < o.size() && (IsDigit(o[i]) || IsAsciiLetter(o[i])))
        i++;
    return i == o.size();
}

// The names in the order of enum Rule and enum Kind: ParseRule and
// ParseKind return the index as the enumerator.
const std::vector<std::string> &RuleNames() {
    static const std::vector<std::string> names = {"default", "google", "meta"};
    return names;
}

const std::vector<std::string> &KindNames() {
    static const std::vector<std::string> names = {
        "email",   "phone",  "first_name",    "last_name",  "city",        "state",     "zip",
        "country", "gender", "date_of_birth", "birth_year", "birth_month", "birth_day",
    };
    return names;
}

std::string ListNames(const std::vector<std::string> &names) {
    std::string out;
    for (size_t i = 0; i < names.size(); i++) {
        if (i > 0)
            out += i + 1 == names.size() ? " and " : ", ";
        out += names[i];
    }
    return out;
}

// Rule and kind names are matched ignoring case, as date_trunc() matches
// its field names, and ignoring white space, which a name never contains.
std::string Canonical(std::string_view name) {
    std::string out;
    for (char c : name) {
        if (c == ' ' || c == '\t' || c == '\n' || c == '\r')
            continue;
        out.push_back(c >= 'A' && c <= 'Z' ? static_cast<char>(c + ('a' - 'A')) : c);
    }
    return out;
}

size_t LookUp(std::string_view name, const std::vector<std::string> &names, const char *what) {
    std::string canonical = Canonical(name);
    for (size_t i = 0; i < names.size(); i++)
        if (names[i] == canonical)
            return i;
    std::string hint = std::string("The ") + what + "s are " + ListNames(names) + ".";
    std::string close = ClosestMatch(canonical, names);
    if (!close.empty())
        hint = "Perhaps you meant \"" + close + "\". " + hint;
    throw Error(sqlstate::kInvalidParameterValue,
                std::string("unknown identifier ") + what + " \"" + std::string(name) + "\"", {}, hint);
}

// Meta: "Use the 2-character ANSI abbreviation code" for US states. The
// names are compared after normalisation (lower case, letters only), so
// "New York", "new-york" and "NEW YORK" all become "ny".
const char *UsStateCode(const std::string &letters) {
    static const std::pair<const char *, const char *> states[] = {
        {"alabama", "al"},
        {"alaska", "ak"},
        {"arizona", "az"},
        {"arkansas", "ar"},
        {"california", "ca"},
        {"colorado", "co"},
        {"connecticut", "ct"},
        {"delaware", "de"},
        {"districtofcolumbia", "dc"},
        {"florida", "fl"},
        {"georgia", "ga"},
        {"hawaii", "hi"},
        {"idaho", "id"},
        {"illinois", "il"},
        {"indiana", "in"},
        {"iowa", "ia"},
        {"kansas", "ks"},
        {"kentucky", "ky"},
        {"louisiana", "la"},
        {"maine", "me"},
        {"maryland", "md"},
        {"massachusetts", "ma"},
        {"michigan", "mi"},
        {"minnesota", "mn"},
        {"mississippi", "ms"},
        {"missouri", "mo"},
        {"montana", "mt"},
        {"nebraska", "ne"},
        {"nevada", "nv"},
        {"newhampshire", "nh"},
        {"newjersey", "nj"},
        {"newmexico", "nm"},
        {"newyork", "ny"},
        {"northcarolina", "nc"},
        {"northdakota", "nd"},
        {"ohio", "oh"},
        {"oklahoma", "ok"},
        {"oregon", "or"},
        {"pennsylvania", "pa"},
        {"rhodeisland", "ri"},
        {"southcarolina", "sc"},
        {"southdakota", "sd"},
        {"tennessee", "tn"},
        {"texas", "tx"},
        {"utah", "ut"},
        {"vermont", "vt"},
        {"virginia", "va"},
        {"washington", "wa"},
        {"westvirginia", "wv"},
        {"wisconsin", "wi"},
        {"wyoming", "wy"},
        {"americansamoa", "as"},
        {"guam", "gu"},
        {"northernmarianaislands", "mp"},
        {"puertorico", "pr"},
        {"usvirginislands", "vi"},
        {"virginislands", "vi"},
    };
    for (const auto &[name, code] : states)
        if (letters == name)
            return code;
    return nullptr;
}

std::optional<std::string> NormalizeName(const CodePoints &cps, Rule rule) {
    if (rule == Rule::kMeta)
        // Meta: "Lowercase only with no punctuation"; accents and other
        // scripts stay (its vectors: "Valéry" -> "valéry", "정" -> "정").
        // Trimmed last, so "Mary ." loses the space the dot left behind.
        return NonEmpty(Trim(RemoveIf(Lower(cps), IsPunctuation)));
    // Google (Data Manager API, given_name / family_name): lower-case, trim
    // leading and trailing white space. Prefixes and suffixes ("Mrs.",
    // "Jr.") are to be left out by the caller; guessing them is not safe.
    return NonEmpty(Lower(Trim(cps)));
}

// Meta ZIP: "lowercase, no white space; only the first 5 digits for U.S.;
// Area/District/Sector format for the UK".
std::optional<std::string> NormalizeZip(const CodePoints &cps) {
    std::optional<std::string> text = NonEmpty(Lower(RemoveIf(cps, IsWhiteSpace)));
    if (!text)
        return text;
    const std::string &z = *text;
    // US ZIP or ZIP+4.
    if ((z.size() == 5 && AllDigits(z)) ||
        (z.size() == 10 && AllDigits(z.substr(0, 5)) && z[5] == '-' && AllDigits(z.substr(6))))
        return z.substr(0, 5);
    // A full UK postcode (outward code of 2 to 4 characters, inward code of a
    // digit and two letters) becomes its sector: the outward code and the
    // inward code's digit ("SW1A 1AA" -> "sw1a1"). A sector stays as it is.
    if (z.size() >= 5 && z.size() <= 7) {
        const std::string outward = z.substr(0, z.size() - 3), inward = z.substr(z.size() - 3);
        if (IsUkOutwardCode(outward) && IsDigit(inward[0]) && IsAsciiLetter(inward[1]) &&
            IsAsciiLetter(inward[2]))
            return outward + inward[0];
    }
    return text;
}

struct Date {
    int year = 0, month = 0, day = 0;
};

int DaysInMonth(int year, int month) {
    static const int days[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    bool leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    return month == 2 && leap ? 29 : days[month - 1];
}

// Meta accepts dates of birth "in the YYYYMMDD format ... with or without
// punctuation", years from 1900. Accepted here: YYYYMMDD, or year, month and
// day separated by "-", "/" or "." (in that order: a day-first or
// month-first date is ambiguous, so it is refused rather than guessed).
std::optional<Date> ParseDate(const std::string &s) {
    Date d;
    if (s.size() == 8 && AllDigits(s)) {
        d = {std::stoi(s.substr(0, 4)), std::stoi(s.substr(4, 2)), std::stoi(s.substr(6, 2))};
    } else {
        size_t sep = s.find_first_of("-/.");
        if (sep != 4 || !AllDigits(s.substr(0, 4)))
            return std::nullopt;
        size_t sep2 = s.find(s[sep], sep + 1);
        if (sep2 == std::string::npos)
            return std::nullopt;
        std::string month = s.substr(sep + 1, sep2 - sep - 1), day = s.substr(sep2 + 1);
        if (month.size() > 2 || day.size() > 2 || !AllDigits(month) || !AllDigits(day))
            return std::nullopt;
        d = {std::stoi(s.substr(0, 4)), std::stoi(month), std::stoi(day)};
    }
    if (d.year < 1900 || d.month < 1 || d.month > 12 || d.day < 1 || d.day > DaysInMonth(d.year, d.month))
        return std::nullopt;
    return d;
}

// n is a month or a day: 1 to 31.
std::string TwoDigits(int n) {
    return {static_cast<char>('0' + n / 10), static_cast<char>('0' + n % 10)};
}

std::optional<std::string> NormalizeDate(Kind kind, const CodePoints &cps) {
    CodePoints trimmed = Trim(cps);
    if (!IsAscii(trimmed))
        return std::nullopt;
    std::string s = Encode(trimmed);
    // A bare year, month or day is accepted for its own kind, so that
    // normalising a normalised value changes nothing.
    if (kind == Kind::kBirthYear && s.size() == 4 && AllDigits(s))
        return std::stoi(s) >= 1900 ? std::optional<std::string>(s) : std::nullopt;
    if ((kind == Kind::kBirthMonth || kind == Kind::kBirthDay) && s.size() <= 2 && AllDigits(s)) {
        int n = std::stoi(s);
        int max = kind == Kind::kBirthMonth ? 12 : 31;
        return n >= 1 && n <= max ? std::optional<std::string>(TwoDigits(n)) : std::nullopt;
    }
    std::optional<Date> d = ParseDate(s);
    if (!d)
        return std::nullopt;
    std::string year = std::to_string(d->year), month = TwoDigits(d->month), day = TwoDigits(d->day);
    switch (kind) {
    case Kind::kBirthYear:
        return year;
    case Kind::kBirthMonth:
        return month;
    case Kind::kBirthDay:
        return day;
    default:
        return year + month + day;
    }
}

} // namespace

Rule ParseRule(std::string_view name) {
    return static_cast<Rule>(LookUp(name, RuleNames(), "rule"));
}

Kind ParseKind(std::string_view name) {
    return static_cast<Kind>(LookUp(name, KindNames(), "kind"));
}

const char *RuleName(Rule rule) {
    return RuleNames()[static_cast<size_t>(rule)].c_str();
}

const char *KindName(Kind kind) {
    return KindNames()[static_cast<size_t>(kind)].c_str();
}

void CheckSupported(Kind kind, Rule rule) {
    switch (kind) {
    case Kind::kEmail:
    case Kind::kPhone:
    case Kind::kFirstName:
    case Kind::kLastName:
        return;
    default:
        break;
    }
    if (rule == Rule::kMeta)
        return;
    std::string detail =
        rule == Rule::kGoogle
            ? "Google Customer Match hashes only emails, phone numbers, first and last names; it takes the "
              "country and postal code unhashed."
            : "The default rule covers what Google and Meta both normalise: emails, phone numbers, first and "
              "last names.";
    throw Error(sqlstate::kInvalidParameterValue,
                std::string("rule \"") + RuleName(rule) + "\" does not hash identifiers of kind \"" +
                    KindName(kind) + "\"",
                detail,
                std::string("Only Meta documents a hashed ") + KindName(kind) + ": use rule => 'meta'.");
}

std::string ParseRegion(std::string_view region) {
    std::string code;
    for (char c : region)
        if (c != ' ' && c != '\t' && c != '\n' && c != '\r')
            code.push_back(c >= 'a' && c <= 'z' ? static_cast<char>(c - ('a' - 'A')) : c);
    if (code.empty())
        return code;
    // libphonenumber knows every region that has its own phone numbering; a
    // code it does not know would turn every national number into NULL, so
    // it is an error rather than a silent empty audience.
    if (code.size() != 2 || !IsAsciiLetter(code[0]) || !IsAsciiLetter(code[1]) ||
        i18n::phonenumbers::PhoneNumberUtil::GetInstance()->GetCountryCodeForRegion(code) == 0)
        throw Error(
            sqlstate::kInvalidParameterValue, "unknown region code \"" + std::string(region) + "\"",
            "default_region is the ISO 3166-1 alpha-2 code of the country whose numbers are written "
            "without a country code.",
            "Use a code such as 'US' or 'GB', or NULL when every number starts with + and its country "
            "code.");
    return code;
}

std::optional<std::string> NormalizeEmail(std::string_view email, Rule rule) {
    std::optional<CodePoints> cps = Decode(email);
    if (!cps)
        return std::nullopt;
    // Google: "Trim leading, trailing and intermediate whitespace"; Meta:
    // "Trim any leading and trailing spaces".
    CodePoints v = Lower(rule == Rule::kGoogle ? RemoveIf(*cps, IsWhiteSpace) : Trim(*cps));
    // The domain follows the last "@": a quoted local part may hold one.
    auto at = std::find(v.rbegin(), v.rend(), UChar32('@'));
    if (at == v.rend())
        return std::nullopt;
    size_t at_pos = static_cast<size_t>(v.rend() - at) - 1;
    CodePoints local(v.begin(), v.begin() + static_cast<std::ptrdiff_t>(at_pos));
    CodePoints domain(v.begin() + static_cast<std::ptrdiff_t>(at_pos) + 1, v.end());
    if (local.empty() || domain.empty())
        return std::nullopt;
    std::string domain_text = Encode(domain);
    if (rule == Rule::kGoogle && (domain_text == "gmail.com" || domain_text == "googlemail.com")) {
        // Gmail ignores dots and "+tags" in addresses, and Google matches
        // on the address without them: "remove all dots (.) before the @
        // symbol; remove the plus sign (+) from the local part and all
        // characters that follow it".
        local.erase(std::find(local.begin(), local.end(), UChar32('+')), local.end());
        local = RemoveIf(std::move(local), [](UChar32 c) { return c == '.'; });
        if (local.empty())
            return std::nullopt;
    }
    return Encode(local) + "@" + domain_text;
}

std::optional<std::string> E164(std::string_view phone, const std::string &region) {
    // libphonenumber expects UTF-8 and would make something of anything.
    if (!Decode(phone))
        return std::nullopt;
    using i18n::phonenumbers::PhoneNumber;
    using i18n::phonenumbers::PhoneNumberUtil;
    const PhoneNumberUtil *util = PhoneNumberUtil::GetInstance();
    PhoneNumber number;
    // "ZZ" is libphonenumber's unknown region: only "+<country code>..."
    // parses then.
    if (util->Parse(std::string(phone), region.empty() ? "ZZ" : region, &number) !=
        PhoneNumberUtil::NO_PARSING_ERROR)
        return std::nullopt;
    // Valid, not merely possible: the number must fall in a range its
    // country has assigned, as libphonenumber's metadata knows it.
    if (!util->IsValidNumber(number))
        return std::nullopt;
    std::string out;
    util->Format(number, PhoneNumberUtil::E164, &out);
    return out;
}

std::optional<std::string> Normalize(Kind kind, std::string_view value, Rule rule,
                                     const std::string &region) {
    CheckSupported(kind, rule);
    switch (kind) {
    case Kind::kEmail:
        return NormalizeEmail(value, rule);
    case Kind::kPhone: {
        std::optional<std::string> e164 = E164(value, region);
        // Meta reads the digits of a number as country code and number
        // ("Phone numbers must include a country code"), which is also the
        // form it normalises to: a number that is not valid as written (or
        // in the default region) is tried once more as if it began with "+".
        if (!e164 && rule == Rule::kMeta && value.find('+') == std::string_view::npos)
            e164 = E164("+" + std::string(value), "");
        // Meta: "Remove symbols, letters, and any leading zeros" with the
        // country code: E.164 without its "+". Google: E.164 with it.
        if (e164 && rule == Rule::kMeta)
            e164->erase(0, 1);
        return e164;
    }
    default:
        break;
    }
    std::optional<CodePoints> cps = Decode(value);
    if (!cps)
        return std::nullopt;
    switch (kind) {
    case Kind::kFirstName:
    case Kind::kLastName:
        return NormalizeName(*cps, rule);
    case Kind::kCity:
        // Meta: "a-z only. Lowercase only, no punctuation, no special
        // characters, no white space"; letters of other scripts stay, as
        // for names.
        return NonEmpty(RemoveIf(Lower(*cps), [](UChar32 c) { return !IsLetterOrMark(c); }));
    case Kind::kState: {
        std::optional<std::string> state =
            NonEmpty(RemoveIf(Lower(*cps), [](UChar32 c) { return !IsLetterOrMark(c); }));
        if (state)
            if (const char *code = UsStateCode(*state))
                return std::string(code);
        return state;
    }
    case Kind::kZip:
        return NormalizeZip(*cps);
    case Kind::kCountry: {
        // Meta: "lowercase, 2-letter country codes in ISO 3166-1 alpha-2".
        std::string c = Encode(Lower(Trim(*cps)));
        if (c.size() == 2 && IsAsciiLetter(c[0]) && IsAsciiLetter(c[1]))
            return c;
        return std::nullopt;
    }
    case Kind::kGender: {
        // Meta: "m for male and f for female".
        std::string g = Encode(Lower(Trim(*cps)));
        if (g == "m" || g == "male")
            return std::string("m");
        if (g == "f" || g == "female")
            return std::string("f");
        return std::nullopt;
    }
    case Kind::kDateOfBirth:
    case Kind::kBirthYear:
    case Kind::kBirthMonth:
    case Kind::kBirthDay:
        return NormalizeDate(kind, *cps);
    default:
        return std::nullopt;
    }
}

} // namespace revetl::identifiers
