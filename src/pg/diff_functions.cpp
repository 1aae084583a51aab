// SQL-callable functions of the full-diff plan (see docs/change-tracking.md):
//
//  - revetl.row_hash(VARIADIC "any"): the row hash of the mapped values,
//    computed from the values as they are. It returns exactly what
//    hash_record_extended(ROW(v1, v2, ...), 0) returns (so shadow tables
//    written by earlier versions stay valid), without building the row
//    value: forming and taking apart a composite per model row cost about
//    as much as the hashing itself.
//  - revetl.key_field(key, field, NULL::type): one field of a shadow key's
//    text (the canonical jsonb rendering of {column: value}) read back as
//    the key column's own type. The shadow's typed key columns are generated
//    from it, so that the plan joins on the key's values instead of building
//    the key's text for every model row.
//
// Both run once per row in the plan or per shadow write, so they are plain
// fmgr functions: they hold no C++ object and call nothing that throws a
// C++ exception, and a PostgreSQL error leaves them by longjmp as it would
// any built-in function (there is nothing for InvokeCpp to unwind).
#include "pg/pg_includes.hpp"

#include <algorithm>

extern "C" {
#include "nodes/nodeFuncs.h"
}

namespace revetl::pg {

namespace {

// Per call site: the hash function (and collation) of each argument.
struct RowHashArg {
    Oid type;
    Oid collation;
    FmgrInfo *hash;
};

struct RowHashCache {
    int nargs;
    RowHashArg args[FLEXIBLE_ARRAY_MEMBER];
};

RowHashCache *BuildRowHashCache(FunctionCallInfo fcinfo) {
    int nargs = PG_NARGS();
    auto *cache = static_cast<RowHashCache *>(MemoryContextAllocZero(
        fcinfo->flinfo->fn_mcxt, offsetof(RowHashCache, args) + sizeof(RowHashArg) * std::max(nargs, 1)));
    cache->nargs = nargs;
    List *exprs = nullptr;
    if (fcinfo->flinfo->fn_expr && IsA(fcinfo->flinfo->fn_expr, FuncExpr))
        exprs = reinterpret_cast<FuncExpr *>(fcinfo->flinfo->fn_expr)->args;
    for (int i = 0; i < nargs; i++) {
        Oid type = get_fn_expr_argtype(fcinfo->flinfo, i);
        if (!OidIsValid(type))
            ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
                            errmsg("revetl.row_hash: the type of argument %d is unknown", i + 1)));
        // hash_record_extended hashes each column with the column's
        // collation, which for ROW(...) is the expression's own.
        Oid collation = exprs && i < list_length(exprs)
                            ? exprCollation(static_cast<Node *>(list_nth(exprs, i)))
                            : InvalidOid;

        TypeCacheEntry *tc = lookup_type_cache(type, TYPECACHE_HASH_EXTENDED_PROC_FINFO);
        if (!OidIsValid(tc->hash_extended_proc_finfo.fn_oid))
            ereport(ERROR, (errcode(ERRCODE_UNDEFINED_FUNCTION),
                            errmsg("could not identify an extended hash function for type %s",
                                   format_type_be(type))));
        cache->args[i].type = type;
        cache->args[i].collation = collation;
        cache->args[i].hash = &tc->hash_extended_proc_finfo;
    }
    return cache;
}

} // namespace

extern "C" {

PG_FUNCTION_INFO_V1(revetl_row_hash);
Datum revetl_row_hash(PG_FUNCTION_ARGS) {
    // Called with VARIADIC ARRAY[...] the arguments would be one array: the
    // hash would then differ from the row's, so that form is refused.
    if (get_fn_expr_variadic(fcinfo->flinfo))
        ereport(ERROR,
                (errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
                 errmsg("revetl.row_hash takes its values as separate arguments, not as a VARIADIC array")));
    auto *cache = static_cast<RowHashCache *>(fcinfo->flinfo->fn_extra);
    if (!cache || cache->nargs != PG_NARGS()) {
        cache = BuildRowHashCache(fcinfo);
        fcinfo->flinfo->fn_extra = cache;
    }
    // The combination of hash_record_extended (utils/adt/rowtypes.c): a NULL
    // contributes 0, every value its type's extended hash with seed 0.
    uint64 result = 0;
    for (int i = 0; i < cache->nargs; i++) {
        uint64 element_hash = 0;
        if (!PG_ARGISNULL(i)) {
            LOCAL_FCINFO(locfcinfo, 2);
            InitFunctionCallInfoData(*locfcinfo, cache->args[i].hash, 2, cache->args[i].collation, nullptr,
                                     nullptr);
            locfcinfo->args[0].value = PG_GETARG_DATUM(i);
            locfcinfo->args[0].isnull = false;
            locfcinfo->args[1].value = Int64GetDatum(0);
            locfcinfo->args[1].isnull = false;
            element_hash = DatumGetUInt64(FunctionCallInvoke(locfcinfo));
        }
        result = (result << 5) - result + element_hash;
    }
    PG_RETURN_INT64(static_cast<int64>(result));
}

namespace {

struct KeyFieldCache {
    Oid type;
    Oid ioparam;
    FmgrInfo input;
};

} // namespace

PG_FUNCTION_INFO_V1(revetl_key_field);
Datum revetl_key_field(PG_FUNCTION_ARGS) {
    if (PG_ARGISNULL(0) || PG_ARGISNULL(1))
        PG_RETURN_NULL();
    Oid type = get_fn_expr_argtype(fcinfo->flinfo, 2);
    if (!OidIsValid(type))
        ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
                        errmsg("revetl.key_field: the key type is unknown")));
    auto *cache = static_cast<KeyFieldCache *>(fcinfo->flinfo->fn_extra);
    if (!cache || cache->type != type) {
        cache = static_cast<KeyFieldCache *>(
            MemoryContextAllocZero(fcinfo->flinfo->fn_mcxt, sizeof(KeyFieldCache)));
        Oid input = InvalidOid;
        getTypeInputInfo(type, &input, &cache->ioparam);
        fmgr_info_cxt(input, &cache->input, fcinfo->flinfo->fn_mcxt);
        cache->type = type;
        fcinfo->flinfo->fn_extra = cache;
    }
    // The key's text is what jsonb_build_object(...)::text rendered: its
    // fields read back with ->> are the values' text forms (jsonb writes
    // dates and timestamps in ISO form with their offset, whatever DateStyle
    // or TimeZone is), which the type's input function reads exactly.
    // The field is read from the text as json (json ->> scans it once and
    // builds nothing; this runs for every shadow row written): jsonb's
    // rendering has no duplicate names, and its numbers, strings and nested
    // values read back through json ->> as the text jsonb ->> would give.
    LOCAL_FCINFO(field_fcinfo, 2);
    InitFunctionCallInfoData(*field_fcinfo, nullptr, 2, InvalidOid, nullptr, nullptr);
    field_fcinfo->args[0].value = PG_GETARG_DATUM(0);
    field_fcinfo->args[0].isnull = false;
    field_fcinfo->args[1].value = PG_GETARG_DATUM(1);
    field_fcinfo->args[1].isnull = false;
    Datum value = json_object_field_text(field_fcinfo);
    if (field_fcinfo->isnull)
        PG_RETURN_NULL();
    char *str = text_to_cstring(DatumGetTextPP(value));
    PG_RETURN_DATUM(InputFunctionCall(&cache->input, str, cache->ioparam, -1));
}

} // extern "C"

} // namespace revetl::pg
