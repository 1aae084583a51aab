#include "pg/guard.hpp"

#include <new>

namespace revetl::pg {

namespace {

char *DupOrNull(const std::string &s) {
    return s.empty() ? nullptr : pstrdup(s.c_str());
}

ErrorData *NewErrorData(int sqlerrcode, const std::string &message) {
    auto *edata = static_cast<ErrorData *>(palloc0(sizeof(ErrorData)));
    edata->elevel = ERROR;
    edata->output_to_server = true;
    edata->output_to_client = true;
    edata->sqlerrcode = sqlerrcode;
    edata->message = pstrdup(message.c_str());
    edata->filename = __FILE__;
    edata->lineno = __LINE__;
    edata->funcname = "revetl";
    edata->assoc_context = CurrentMemoryContext;
    return edata;
}

} // namespace

PgError::PgError(const ErrorData *edata) {
    sqlerrcode = edata->sqlerrcode;
    message = edata->message ? edata->message : "unknown error";
    detail = edata->detail ? edata->detail : "";
    hint = edata->hint ? edata->hint : "";
    context = edata->context ? edata->context : "";
    cursorpos = edata->cursorpos;
    internalpos = edata->internalpos;
    internalquery = edata->internalquery ? edata->internalquery : "";
}

int SqlState(const std::string &code) {
    if (code.size() != 5)
        return ERRCODE_INTERNAL_ERROR;
    return MAKE_SQLSTATE(code[0], code[1], code[2], code[3], code[4]);
}

ErrorData *CurrentExceptionToErrorData() {
    try {
        throw;
    } catch (const PgError &e) {
        ErrorData *edata = NewErrorData(e.sqlerrcode, e.message);
        edata->detail = DupOrNull(e.detail);
        edata->hint = DupOrNull(e.hint);
        edata->context = DupOrNull(e.context);
        edata->cursorpos = e.cursorpos;
        edata->internalpos = e.internalpos;
        edata->internalquery = DupOrNull(e.internalquery);
        return edata;
    } catch (const Error &e) {
        ErrorData *edata = NewErrorData(SqlState(e.sqlstate()), e.what());
        edata->detail = DupOrNull(e.detail());
        edata->hint = DupOrNull(e.hint());
        if (e.position() > 0) {
            edata->internalpos = e.position();
            edata->internalquery = pstrdup(e.source().c_str());
        }
        return edata;
    } catch (const std::bad_alloc &) {
        return NewErrorData(ERRCODE_OUT_OF_MEMORY, "out of memory in revetl");
    } catch (const std::exception &e) {
        return NewErrorData(ERRCODE_INTERNAL_ERROR, std::string("revetl internal error: ") + e.what());
    } catch (...) {
        return NewErrorData(ERRCODE_INTERNAL_ERROR, "revetl internal error: unknown exception");
    }
}

void RaiseErrorData(ErrorData *edata) {
    ReThrowError(edata);
}

std::string TextToString(Datum datum) {
    text *t = DatumGetTextPP(datum);
    return std::string(VARDATA_ANY(t), VARSIZE_ANY_EXHDR(t));
}

} // namespace revetl::pg
