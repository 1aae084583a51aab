// revetl.object_jsonb(VARIADIC "any"): the jsonb that jsonb_build_object
// returns for the same arguments, byte for byte, built faster.
//
// A full diff builds a key object and a payload object for every row it
// plans. jsonb_build_object looks up how to convert each argument's type
// again at every call (getBaseType, type_is_rowtype, get_element_type,
// getTypeOutputInfo, then an fmgr lookup of the output function), and
// turns every integer into text and back into numeric: about half the plan
// phase of a first run of 1M rows. Here each argument's conversion is
// looked up once per call site (fn_extra), and the common types take a
// direct path:
//
//   integers              int64_to_numeric (what numeric_in of their text gives)
//   text, varchar, bpchar the string itself (their output functions copy it)
//   boolean               a JSON boolean
//   date, timestamp(tz)   JsonEncodeDateTime, as jsonb does
//   floats, numeric       the output text, then a number or (NaN, Infinity) a string, as jsonb does
//   other built-in scalars their output text, as a string, as jsonb does
//
// Everything else (json, jsonb, arrays, composites, enums and other types
// an extension or user defined, which may have a cast to json) is converted
// by to_jsonb itself and its value spliced in: the same tokens reach the
// same object, so the result is the same. The payload's bytes matter: the
// shadow key is its text, and without hashed values the row hash is the
// hash of the payload's text. test/regress (object_jsonb) compares the two
// functions' binary output over every kind of value.
//
// Keys are the plan's field names: text, varchar or an untyped literal. A
// plain fmgr function run once per row: it holds no C++ object (see
// diff_functions.cpp).
#include "pg/pg_includes.hpp"

#include <cstring>

extern "C" {
#include "nodes/makefuncs.h"
#include "utils/fmgroids.h"
#include "utils/numeric.h"
}

namespace revetl::pg {

namespace {

enum class KeyKind { Text, Unknown };

enum class ValueKind { Integer, Text, Bool, DateTime, Number, Output, ToJsonb };

struct ObjectArg {
    Oid base_type; // the argument's type, below any domain
    KeyKind key;   // even arguments
    ValueKind value;
    FmgrInfo convert; // Number and Output: the output function; ToJsonb: to_jsonb
};

struct ObjectCache {
    int nargs;
    ObjectArg args[FLEXIBLE_ARRAY_MEMBER];
};

// The object under construction, across the change of pushJsonbValue's
// state argument in PostgreSQL 19. Plain data: it lives in a frame a
// PostgreSQL error can leave by longjmp.
#if PG_VERSION_NUM >= 190000
struct ObjectState {
    JsonbInState in;
};

void Push(ObjectState *s, JsonbIteratorToken token, JsonbValue *value) {
    pushJsonbValue(&s->in, token, value);
}

JsonbValue *Result(ObjectState *s) {
    return s->in.result;
}
#else
struct ObjectState {
    JsonbParseState *parse;
    JsonbValue *result;
};

void Push(ObjectState *s, JsonbIteratorToken token, JsonbValue *value) {
    s->result = pushJsonbValue(&s->parse, token, value);
}

JsonbValue *Result(ObjectState *s) {
    return s->result;
}
#endif

// How jsonb converts a value of a built-in scalar type, or ToJsonb where it
// may do something this file does not (see the top of the file).
ValueKind ValueKindOf(Oid base_type) {
    switch (base_type) {
    case INT2OID:
    case INT4OID:
    case INT8OID:
        return ValueKind::Integer;
    case TEXTOID:
    case VARCHAROID:
    case BPCHAROID:
        return ValueKind::Text;
    case BOOLOID:
        return ValueKind::Bool;
    case DATEOID:
    case TIMESTAMPOID:
    case TIMESTAMPTZOID:
        return ValueKind::DateTime;
    case FLOAT4OID:
    case FLOAT8OID:
    case NUMERICOID:
        return ValueKind::Number;
    case JSONOID:
    case JSONBOID:
        return ValueKind::ToJsonb;
    default:
        break;
    }
    // A type made after initdb may have a cast to json, which jsonb uses.
    if (base_type >= FirstNormalObjectId || OidIsValid(get_element_type(base_type)) ||
        base_type == ANYARRAYOID || base_type == ANYCOMPATIBLEARRAYOID || base_type == RECORDARRAYOID ||
        type_is_rowtype(base_type))
        return ValueKind::ToJsonb;
    return ValueKind::Output;
}

ObjectCache *BuildObjectCache(FunctionCallInfo fcinfo) {
    const int nargs = PG_NARGS();
    MemoryContext cxt = fcinfo->flinfo->fn_mcxt;
    auto *cache = static_cast<ObjectCache *>(MemoryContextAllocZero(
        cxt, offsetof(ObjectCache, args) + sizeof(ObjectArg) * (nargs > 0 ? nargs : 1)));
    cache->nargs = nargs;
    for (int i = 0; i < nargs; i++) {
        ObjectArg *a = &cache->args[i];
        const Oid type = get_fn_expr_argtype(fcinfo->flinfo, i);
        if (!OidIsValid(type))
            ereport(ERROR,
                    (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
                     errmsg("revetl.object_jsonb: could not determine the data type of argument %d", i + 1)));
        a->base_type = getBaseType(type);
        if (i % 2 == 0) {
            if (a->base_type == TEXTOID || a->base_type == VARCHAROID)
                a->key = KeyKind::Text;
            else if (a->base_type == UNKNOWNOID)
                a->key = KeyKind::Unknown;
            else
                ereport(ERROR,
                        (errcode(ERRCODE_DATATYPE_MISMATCH),
                         errmsg("revetl.object_jsonb: argument %d, a key, is of type %s", i + 1,
                                format_type_be(type)),
                         errhint("Keys are field names: text. jsonb_build_object takes other types.")));
            continue;
        }
        a->value = ValueKindOf(a->base_type);
        if (a->value == ValueKind::Number || a->value == ValueKind::Output) {
            Oid output = InvalidOid;
            bool varlena = false;
            getTypeOutputInfo(a->base_type, &output, &varlena);
            fmgr_info_cxt(output, &a->convert, cxt);
        } else if (a->value == ValueKind::ToJsonb) {
            // to_jsonb(anyelement) reads its argument's type from the call's
            // expression: give it one of the argument's own type.
            fmgr_info_cxt(F_TO_JSONB, &a->convert, cxt);
            MemoryContext old = MemoryContextSwitchTo(cxt);
            Node *arg = reinterpret_cast<Node *>(makeNullConst(type, -1, InvalidOid));
            a->convert.fn_expr = reinterpret_cast<Node *>(makeFuncExpr(
                F_TO_JSONB, JSONBOID, list_make1(arg), InvalidOid, InvalidOid, COERCE_EXPLICIT_CALL));
            MemoryContextSwitchTo(old);
        }
    }
    return cache;
}

void SetString(JsonbValue *v, char *data, size_t len) {
    v->type = jbvString;
    v->val.string.val = data;
    v->val.string.len = static_cast<int>(len);
}

void PushKey(ObjectState *s, const ObjectArg *a, Datum datum) {
    JsonbValue v;
    if (a->key == KeyKind::Unknown) {
        char *str = DatumGetCString(datum);
        SetString(&v, str, strlen(str));
    } else {
        text *t = DatumGetTextPP(datum);
        SetString(&v, VARDATA_ANY(t), VARSIZE_ANY_EXHDR(t));
    }
    Push(s, WJB_KEY, &v);
}

void PushValue(ObjectState *s, ObjectArg *a, Datum datum, bool isnull) {
    JsonbValue v;
    if (isnull) {
        v.type = jbvNull;
        Push(s, WJB_VALUE, &v);
        return;
    }
    switch (a->value) {
    case ValueKind::Integer: {
        int64 n = a->base_type == INT2OID   ? DatumGetInt16(datum)
                  : a->base_type == INT4OID ? DatumGetInt32(datum)
                                            : DatumGetInt64(datum);
        v.type = jbvNumeric;
        v.val.numeric = int64_to_numeric(n);
        break;
    }
    case ValueKind::Text: {
        text *t = DatumGetTextPP(datum);
        SetString(&v, VARDATA_ANY(t), VARSIZE_ANY_EXHDR(t));
        break;
    }
    case ValueKind::Bool:
        v.type = jbvBool;
        v.val.boolean = DatumGetBool(datum);
        break;
    case ValueKind::DateTime: {
        char *str = JsonEncodeDateTime(nullptr, datum, a->base_type, nullptr);
        SetString(&v, str, strlen(str));
        break;
    }
    case ValueKind::Number: {
        char *str = OutputFunctionCall(&a->convert, datum);
        // jsonb's rule: what is not a JSON number (NaN, Infinity) is a string.
        if (strpbrk(str, "Nn") != nullptr) {
            SetString(&v, str, strlen(str));
        } else {
            v.type = jbvNumeric;
            v.val.numeric = DatumGetNumeric(DirectFunctionCall3(
                numeric_in, CStringGetDatum(str), ObjectIdGetDatum(InvalidOid), Int32GetDatum(-1)));
        }
        break;
    }
    case ValueKind::Output: {
        char *str = OutputFunctionCall(&a->convert, datum);
        SetString(&v, str, strlen(str));
        break;
    }
    case ValueKind::ToJsonb: {
        Jsonb *jb = DatumGetJsonbP(FunctionCall1(&a->convert, datum));
        if (JB_ROOT_IS_SCALAR(jb)) {
            (void)JsonbExtractScalar(&jb->root, &v);
        } else {
            // pushJsonbValue takes a container apart into its tokens, as
            // jsonb_build_object's own conversion pushes them.
            v.type = jbvBinary;
            v.val.binary.data = &jb->root;
            v.val.binary.len = static_cast<int>(VARSIZE(jb) - VARHDRSZ);
        }
        break;
    }
    }
    Push(s, WJB_VALUE, &v);
}

} // namespace

extern "C" {

PG_FUNCTION_INFO_V1(revetl_object_jsonb);
Datum revetl_object_jsonb(PG_FUNCTION_ARGS) {
    if (get_fn_expr_variadic(fcinfo->flinfo))
        ereport(ERROR,
                (errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
                 errmsg("revetl.object_jsonb takes its keys and values as separate arguments, not as a "
                        "VARIADIC array")));
    if (PG_NARGS() % 2 != 0)
        ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
                        errmsg("argument list must have even number of elements"),
                        errhint("The arguments of revetl.object_jsonb() must consist of alternating keys and "
                                "values.")));
    auto *cache = static_cast<ObjectCache *>(fcinfo->flinfo->fn_extra);
    if (!cache || cache->nargs != PG_NARGS()) {
        cache = BuildObjectCache(fcinfo);
        fcinfo->flinfo->fn_extra = cache;
    }
    ObjectState state;
    memset(&state, 0, sizeof state);
    Push(&state, WJB_BEGIN_OBJECT, nullptr);
    for (int i = 0; i < cache->nargs; i += 2) {
        if (PG_ARGISNULL(i))
            ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
                            errmsg("argument %d: key must not be null", i + 1)));
        PushKey(&state, &cache->args[i], PG_GETARG_DATUM(i));
        PushValue(&state, &cache->args[i + 1], PG_GETARG_DATUM(i + 1), PG_ARGISNULL(i + 1));
    }
    Push(&state, WJB_END_OBJECT, nullptr);
    PG_RETURN_POINTER(JsonbValueToJsonb(Result(&state)));
}

} // extern "C"

} // namespace revetl::pg
