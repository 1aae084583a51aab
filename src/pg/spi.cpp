#include "pg/spi.hpp"

namespace revetl::pg {

MemoryContext context_between_transactions = nullptr;

std::string SqlResult::Text(size_t row, size_t col) const {
    const auto &v = At(row, col);
    return v ? *v : std::string();
}

int64_t SqlResult::Int8(size_t row, size_t col) const {
    const auto &v = At(row, col);
    return v ? std::stoll(*v) : 0;
}

bool SqlResult::Bool(size_t row, size_t col) const {
    const auto &v = At(row, col);
    return v && *v == "t";
}

void SpiConnect() {
    PgGuard([] {
        if (SPI_connect() != SPI_OK_CONNECT)
            elog(ERROR, "revetl: SPI_connect failed");
    });
}

std::optional<SubtransactionFailure> InSubtransaction(const std::function<void()> &f) {
    MemoryContext oldcxt = CurrentMemoryContext;
    ResourceOwner oldowner = CurrentResourceOwner;
    PgGuard([&] {
        BeginInternalSubTransaction(nullptr);
        MemoryContextSwitchTo(oldcxt);
    });
    std::optional<SubtransactionFailure> failure;
    try {
        f();
    } catch (const PgError &e) {
        failure = SubtransactionFailure{e.message, e.hint, {}};
    } catch (const Error &e) {
        failure = SubtransactionFailure{e.what(), e.hint(), e.source()};
    } catch (const std::exception &e) {
        failure = SubtransactionFailure{e.what(), {}, {}};
    }
    PgGuard([&] {
        if (failure)
            RollbackAndReleaseCurrentSubTransaction();
        else
            ReleaseCurrentSubTransaction();
        MemoryContextSwitchTo(oldcxt);
        CurrentResourceOwner = oldowner;
    });
    return failure;
}

void SpiFinish() {
    PgGuard([] { SPI_finish(); });
}

namespace {

Oid ArgType(const SqlArg &a) {
    switch (a.kind) {
    case SqlArg::Kind::Null:
        return a.null_type;
    case SqlArg::Kind::Text:
        return TEXTOID;
    case SqlArg::Kind::Int8:
        return INT8OID;
    case SqlArg::Kind::Int4:
        return INT4OID;
    case SqlArg::Kind::Bool:
        return BOOLOID;
    case SqlArg::Kind::TextArray:
        return TEXTARRAYOID;
    case SqlArg::Kind::Int8Array:
        return INT8ARRAYOID;
    case SqlArg::Kind::BoolArray:
        return BOOLARRAYOID;
    }
    return InvalidOid;
}

// Arguments as SPI takes them, allocated in the current memory context.
struct SpiArgs {
    int n;
    Oid *types;
    Datum *values;
    char *nulls;
};

// Called inside PgGuard only.
SpiArgs ToSpiArgs(const std::vector<SqlArg> &args) {
    const int n = static_cast<int>(args.size());
    SpiArgs out{n, n ? static_cast<Oid *>(palloc(sizeof(Oid) * n)) : nullptr,
                n ? static_cast<Datum *>(palloc(sizeof(Datum) * n)) : nullptr,
                n ? static_cast<char *>(palloc(n)) : nullptr};
    for (size_t i = 0; i < args.size(); i++) {
        const SqlArg &a = args[i];
        out.types[i] = ArgType(a);
        out.nulls[i] = ' ';
        switch (a.kind) {
        case SqlArg::Kind::Null:
            out.values[i] = (Datum)0;
            out.nulls[i] = 'n';
            break;
        case SqlArg::Kind::Text:
            out.values[i] = PointerGetDatum(cstring_to_text_with_len(a.text.data(), (int)a.text.size()));
            break;
        case SqlArg::Kind::Int8:
            out.values[i] = Int64GetDatum(a.i64);
            break;
        case SqlArg::Kind::Int4:
            out.values[i] = Int32GetDatum((int32)a.i64);
            break;
        case SqlArg::Kind::Bool:
            out.values[i] = BoolGetDatum(a.b);
            break;
        case SqlArg::Kind::TextArray: {
            int count = (int)a.texts.size();
            Datum *elems = (Datum *)palloc(sizeof(Datum) * (count ? count : 1));
            bool *elem_nulls = (bool *)palloc(sizeof(bool) * (count ? count : 1));
            for (int e = 0; e < count; e++) {
                elem_nulls[e] = !a.texts[e].has_value();
                elems[e] = elem_nulls[e] ? (Datum)0
                                         : PointerGetDatum(cstring_to_text_with_len(a.texts[e]->data(),
                                                                                    (int)a.texts[e]->size()));
            }
            int dims[1] = {count};
            int lbs[1] = {1};
            out.values[i] = PointerGetDatum(
                construct_md_array(elems, elem_nulls, 1, dims, lbs, TEXTOID, -1, false, TYPALIGN_INT));
            break;
        }
        case SqlArg::Kind::Int8Array: {
            int count = (int)a.i64s.size();
            Datum *elems = (Datum *)palloc(sizeof(Datum) * (count ? count : 1));
            for (int e = 0; e < count; e++)
                elems[e] = Int64GetDatum(a.i64s[e]);
            out.values[i] =
                PointerGetDatum(construct_array(elems, count, INT8OID, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));
            break;
        }
        case SqlArg::Kind::BoolArray: {
            int count = (int)a.bools.size();
            Datum *elems = (Datum *)palloc(sizeof(Datum) * (count ? count : 1));
            for (int e = 0; e < count; e++)
                elems[e] = BoolGetDatum(a.bools[e]);
            out.values[i] = PointerGetDatum(construct_array(elems, count, BOOLOID, 1, true, TYPALIGN_CHAR));
            break;
        }
        }
    }
    return out;
}

// Copies the last statement's rows out of SPI, one guarded value at a time.
SqlResult CopyResult() {
    const int nrows = SPI_tuptable ? static_cast<int>(SPI_processed) : 0;
    const int ncols = SPI_tuptable ? SPI_tuptable->tupdesc->natts : 0;
    SqlResult result;
    result.processed = SPI_processed;
    result.rows.resize(nrows);
    for (int r = 0; r < nrows; r++) {
        result.rows[r].resize(ncols);
        for (int c = 0; c < ncols; c++) {
            char *value = nullptr;
            PgGuard([&] { value = SPI_getvalue(SPI_tuptable->vals[r], SPI_tuptable->tupdesc, c + 1); });
            if (value)
                result.rows[r][c] = std::string(value);
        }
    }
    return result;
}

} // namespace

SqlResult Sql(const std::string &sql, const std::vector<SqlArg> &args, bool read_only) {
    // Execute. Nothing with a destructor is created inside.
    PgGuard([&] {
        SpiArgs a = ToSpiArgs(args);
        int rc = SPI_execute_with_args(sql.c_str(), a.n, a.types, a.values, a.nulls, read_only, 0);
        if (rc < 0)
            elog(ERROR, "revetl: SPI_execute failed: %s", SPI_result_code_string(rc));
    });
    return CopyResult();
}

PreparedSql::~PreparedSql() {
    if (!plan_)
        return;
    try {
        PgGuard([&] { SPI_freeplan(plan_); });
    } catch (...) {
        // Freeing memory does not fail in practice; a destructor must not throw.
    }
}

void PreparedSql::Execute(const std::vector<SqlArg> &args, bool read_only) {
    PgGuard([&] {
        SpiArgs a = ToSpiArgs(args);
        if (!plan_) {
            SPIPlanPtr plan =
                SPI_prepare_cursor(sql_.c_str(), a.n, a.types, custom_plan_ ? CURSOR_OPT_CUSTOM_PLAN : 0);
            if (!plan)
                elog(ERROR, "revetl: SPI_prepare failed: %s", SPI_result_code_string(SPI_result));
            if (SPI_keepplan(plan) != 0)
                elog(ERROR, "revetl: SPI_keepplan failed");
            plan_ = plan;
        }
        int rc = SPI_execute_plan(plan_, a.values, a.nulls, read_only, 0);
        if (rc < 0)
            elog(ERROR, "revetl: SPI_execute_plan failed: %s", SPI_result_code_string(rc));
    });
}

SqlResult PreparedSql::Run(const std::vector<SqlArg> &args, bool read_only) {
    Execute(args, read_only);
    return CopyResult();
}

SpiRows PreparedSql::RunForRows(const std::vector<SqlArg> &args, bool read_only) {
    Execute(args, read_only);
    SpiRows rows;
    rows.count_ = SPI_tuptable ? SPI_processed : 0;
    return rows;
}

Datum SpiRows::Value(size_t row, int col, bool *isnull) const {
    Datum d = 0;
    PgGuard([&] { d = SPI_getbinval(SPI_tuptable->vals[row], SPI_tuptable->tupdesc, col + 1, isnull); });
    return d;
}

int64_t SpiRows::Int8(size_t row, int col) const {
    bool isnull = false;
    Datum d = Value(row, col, &isnull);
    return isnull ? 0 : DatumGetInt64(d);
}

char SpiRows::Char(size_t row, int col) const {
    bool isnull = false;
    Datum d = Value(row, col, &isnull);
    return isnull ? 0 : DatumGetChar(d);
}

std::string SpiRows::Text(size_t row, int col) const {
    bool isnull = false;
    Datum d = Value(row, col, &isnull);
    if (isnull)
        return std::string();
    const char *data = nullptr;
    size_t len = 0;
    PgGuard([&] {
        struct varlena *t = pg_detoast_datum_packed(reinterpret_cast<struct varlena *>(DatumGetPointer(d)));
        data = VARDATA_ANY(t);
        len = VARSIZE_ANY_EXHDR(t);
    });
    return std::string(data, len);
}

void BeginTransaction(const char *activity, bool repeatable_read) {
    PgGuard([&] {
        SetCurrentStatementStartTimestamp();
        StartTransactionCommand();
        if (repeatable_read)
            XactIsoLevel = XACT_REPEATABLE_READ;
        PushActiveSnapshot(GetTransactionSnapshot());
        pgstat_report_activity(STATE_RUNNING, activity);
        if (SPI_connect() != SPI_OK_CONNECT)
            elog(ERROR, "revetl: SPI_connect failed");
    });
}

void CommitTransaction() {
    PgGuard([] {
        SPI_finish();
        if (ActiveSnapshotSet())
            PopActiveSnapshot();
        CommitTransactionCommand();
        if (context_between_transactions)
            MemoryContextSwitchTo(context_between_transactions);
        pgstat_report_activity(STATE_IDLE, nullptr);
        pgstat_report_stat(false);
    });
}

void AbortTransaction() {
    PgGuard([] {
        // A no-op when no transaction is open.
        AbortCurrentTransaction();
        if (context_between_transactions)
            MemoryContextSwitchTo(context_between_transactions);
        pgstat_report_activity(STATE_IDLE, nullptr);
    });
}

} // namespace revetl::pg
