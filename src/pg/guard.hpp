// The C++ / PostgreSQL boundary.
//
// PostgreSQL reports errors by longjmp, which skips C++ destructors; C++
// exceptions must never unwind through PostgreSQL frames. Two tools keep the
// worlds apart:
//
//  - PgGuard(f) runs f, which calls PostgreSQL, under PG_TRY. A PostgreSQL
//    error becomes a PgError exception, thrown only after PG_END_TRY. A C++
//    exception escaping f is caught inside PG_TRY and rethrown after it, so
//    nothing is ever thrown across PG_TRY. f itself must hold no object with a
//    destructor while it calls PostgreSQL: the longjmp would skip it.
//
//  - InvokeCpp(body) is how every SQL-callable function and callback enters
//    C++. Any exception from body is turned into an ereport only once the
//    C++ scope has ended.
#pragma once

#include "pg/pg_includes.hpp"

#include "core/common/error.hpp"

#include <exception>
#include <string>

namespace revetl::pg {

// A PostgreSQL error caught by PgGuard, with everything needed to raise it
// again unchanged.
class PgError : public std::exception {
public:
    explicit PgError(const ErrorData *edata);
    const char *what() const noexcept override { return message.c_str(); }

    int sqlerrcode = 0;
    std::string message;
    std::string detail;
    std::string hint;
    std::string context;
    int cursorpos = 0;
    int internalpos = 0;
    std::string internalquery;
};

template <typename F>
void PgGuard(F &&f) {
    MemoryContext oldcxt = CurrentMemoryContext;
    ErrorData *volatile edata = nullptr;
    std::exception_ptr cpp_error;
    PG_TRY();
    {
        try {
            f();
        } catch (...) {
            cpp_error = std::current_exception();
        }
    }
    PG_CATCH();
    {
        MemoryContextSwitchTo(oldcxt);
        edata = CopyErrorData();
        FlushErrorState();
    }
    PG_END_TRY();
    if (edata) {
        PgError error(edata);
        FreeErrorData(edata);
        throw error;
    }
    if (cpp_error)
        std::rethrow_exception(cpp_error);
}

// Converts the exception being handled into a palloc'd ErrorData. Call only
// from a catch block.
ErrorData *CurrentExceptionToErrorData();

// Raises an ErrorData (from CurrentExceptionToErrorData) with ereport.
// Call only once no C++ object with a destructor is live in this frame.
[[noreturn]] void RaiseErrorData(ErrorData *edata);

template <typename Body>
Datum InvokeCpp(FunctionCallInfo fcinfo, Body body) {
    ErrorData *edata = nullptr;
    try {
        return body(fcinfo);
    } catch (...) {
        edata = CurrentExceptionToErrorData();
    }
    RaiseErrorData(edata);
}

// Builds a std::string from a text datum (detoasting as needed).
std::string TextToString(Datum text);

// ereport-compatible SQLSTATE from its five characters.
int SqlState(const std::string &code);

} // namespace revetl::pg

// Declares a SQL-callable function whose body is a C++ function
// `Datum name_impl(FunctionCallInfo)`.
#define REVETL_SQL_FUNCTION(name)                                                                            \
    static Datum name##_impl(FunctionCallInfo fcinfo);                                                       \
    extern "C" {                                                                                             \
    PG_FUNCTION_INFO_V1(name);                                                                               \
    Datum name(PG_FUNCTION_ARGS) {                                                                           \
        return revetl::pg::InvokeCpp(fcinfo, name##_impl);                                                   \
    }                                                                                                        \
    }                                                                                                        \
    static Datum name##_impl(FunctionCallInfo fcinfo)
