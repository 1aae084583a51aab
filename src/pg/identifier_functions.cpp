// SQL-callable identifier helpers: revetl.normalize_email, revetl.e164,
// revetl.normalize_identifier and the bytes revetl.hashed_identifier hashes.
// The rules live in src/core/identifiers; this file only moves text between
// the database's encoding and the UTF-8 the rules (and the vendors' hashes)
// are defined on. Each body runs through InvokeCpp, and every PostgreSQL call
// goes through PgGuard, so neither libphonenumber's allocations nor a C++
// exception ever meet a PostgreSQL longjmp.
#include "core/identifiers/identifiers.hpp"
#include "pg/guard.hpp"

#include <cstring>

namespace revetl::pg {

namespace {

namespace ids = revetl::identifiers;

// A text argument as UTF-8. In a UTF-8 database (the usual case) that is
// the text itself; otherwise PostgreSQL converts it, and a character UTF-8
// cannot hold is PostgreSQL's own error.
std::string Utf8Arg(FunctionCallInfo fcinfo, int arg) {
    const char *data = nullptr;
    size_t len = 0;
    PgGuard([&] {
        text *t = PG_GETARG_TEXT_PP(arg);
        data = VARDATA_ANY(t);
        len = VARSIZE_ANY_EXHDR(t);
        if (GetDatabaseEncoding() != PG_UTF8) {
            char *converted = pg_server_to_any(data, static_cast<int>(len), PG_UTF8);
            if (converted != data) {
                data = converted;
                len = strlen(converted);
            }
        }
    });
    return std::string(data, len);
}

Datum TextResult(const std::string &utf8) {
    Datum out = 0;
    PgGuard([&] {
        const char *data = utf8.data();
        size_t len = utf8.size();
        if (GetDatabaseEncoding() != PG_UTF8) {
            char *converted = pg_any_to_server(data, static_cast<int>(len), PG_UTF8);
            if (converted != data) {
                data = converted;
                len = strlen(converted);
            }
        }
        out = PointerGetDatum(cstring_to_text_with_len(data, static_cast<int>(len)));
    });
    return out;
}

// The UTF-8 bytes themselves, whatever the database's encoding: the vendors
// define their hashes on UTF-8.
Datum ByteaResult(const std::string &utf8) {
    Datum out = 0;
    PgGuard([&] {
        bytea *b = static_cast<bytea *>(palloc(VARHDRSZ + utf8.size()));
        SET_VARSIZE(b, VARHDRSZ + utf8.size());
        memcpy(VARDATA(b), utf8.data(), utf8.size());
        out = PointerGetDatum(b);
    });
    return out;
}

// normalize_identifier(kind, value, rule, default_region) and its bytea
// twin. Not STRICT (default_region is NULL by default), so NULLs are handled
// here: a NULL kind or rule gives NULL, as a strict function would; a known
// kind and rule are checked even when the value is NULL, so that a wrong
// combination fails on a sparse column at once rather than on its first
// non-NULL row.
std::optional<std::string> NormalizeIdentifierArgs(FunctionCallInfo fcinfo) {
    if (PG_ARGISNULL(0) || PG_ARGISNULL(2))
        return std::nullopt;
    ids::Kind kind = ids::ParseKind(Utf8Arg(fcinfo, 0));
    ids::Rule rule = ids::ParseRule(Utf8Arg(fcinfo, 2));
    ids::CheckSupported(kind, rule);
    std::string region;
    if (kind == ids::Kind::kPhone && !PG_ARGISNULL(3))
        region = ids::ParseRegion(Utf8Arg(fcinfo, 3));
    if (PG_ARGISNULL(1))
        return std::nullopt;
    return ids::Normalize(kind, Utf8Arg(fcinfo, 1), rule, region);
}

} // namespace

} // namespace revetl::pg

using revetl::pg::ByteaResult;
using revetl::pg::NormalizeIdentifierArgs;
using revetl::pg::TextResult;
using revetl::pg::Utf8Arg;

// STRICT: both arguments are non-NULL here.
REVETL_SQL_FUNCTION(revetl_normalize_email) {
    std::string email = Utf8Arg(fcinfo, 0);
    auto rule = revetl::identifiers::ParseRule(Utf8Arg(fcinfo, 1));
    std::optional<std::string> out = revetl::identifiers::NormalizeEmail(email, rule);
    if (!out)
        PG_RETURN_NULL();
    return TextResult(*out);
}

REVETL_SQL_FUNCTION(revetl_e164) {
    std::string region;
    if (!PG_ARGISNULL(1))
        region = revetl::identifiers::ParseRegion(Utf8Arg(fcinfo, 1));
    if (PG_ARGISNULL(0))
        PG_RETURN_NULL();
    std::optional<std::string> out = revetl::identifiers::E164(Utf8Arg(fcinfo, 0), region);
    if (!out)
        PG_RETURN_NULL();
    return TextResult(*out);
}

REVETL_SQL_FUNCTION(revetl_normalize_identifier) {
    std::optional<std::string> out = NormalizeIdentifierArgs(fcinfo);
    if (!out)
        PG_RETURN_NULL();
    return TextResult(*out);
}

REVETL_SQL_FUNCTION(revetl_identifier_bytes) {
    std::optional<std::string> out = NormalizeIdentifierArgs(fcinfo);
    if (!out)
        PG_RETURN_NULL();
    return ByteaResult(*out);
}
