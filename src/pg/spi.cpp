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

void SpiFinish() {
    PgGuard([] { SPI_finish(); });
}

SqlResult Sql(const std::string &sql, const std::vector<SqlArg> &args, bool read_only) {
    SqlResult result;
    int nrows = 0, ncols = 0;
    // Phase 1: execute. Nothing with a destructor is created inside.
    PgGuard([&] {
        int n = static_cast<int>(args.size());
        Oid *types = n ? static_cast<Oid *>(palloc(sizeof(Oid) * n)) : nullptr;
        Datum *values = n ? static_cast<Datum *>(palloc(sizeof(Datum) * n)) : nullptr;
        char *nulls = n ? static_cast<char *>(palloc(n)) : nullptr;
        for (int i = 0; i < n; i++) {
            const SqlArg &a = args[i];
            nulls[i] = ' ';
            switch (a.kind) {
            case SqlArg::Kind::Null:
                types[i] = a.null_type;
                values[i] = (Datum)0;
                nulls[i] = 'n';
                break;
            case SqlArg::Kind::Text:
                types[i] = TEXTOID;
                values[i] = PointerGetDatum(cstring_to_text_with_len(a.text.data(), (int)a.text.size()));
                break;
            case SqlArg::Kind::Int8:
                types[i] = INT8OID;
                values[i] = Int64GetDatum(a.i64);
                break;
            case SqlArg::Kind::Int4:
                types[i] = INT4OID;
                values[i] = Int32GetDatum((int32)a.i64);
                break;
            case SqlArg::Kind::Bool:
                types[i] = BOOLOID;
                values[i] = BoolGetDatum(a.b);
                break;
            }
        }
        int rc = SPI_execute_with_args(sql.c_str(), n, types, values, nulls, read_only, 0);
        if (rc < 0)
            elog(ERROR, "revetl: SPI_execute failed: %s", SPI_result_code_string(rc));
        nrows = SPI_tuptable ? (int)SPI_processed : 0;
        ncols = SPI_tuptable ? SPI_tuptable->tupdesc->natts : 0;
    });
    result.processed = SPI_processed;
    result.rows.resize(nrows);
    // Phase 2: copy out, one guarded value at a time.
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
