// C++-facing SPI: every function here runs its PostgreSQL calls under
// PgGuard, so callers may hold C++ objects freely. Callers must be inside a
// transaction and connected with SpiConnect.
#pragma once

#include "pg/guard.hpp"

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace revetl::pg {

struct SqlArg {
    enum class Kind { Null, Text, Int8, Int4, Bool };
    Kind kind = Kind::Null;
    Oid null_type = TEXTOID;
    std::string text;
    int64_t i64 = 0;
    bool b = false;

    static SqlArg Text(std::string v) {
        SqlArg a;
        a.kind = Kind::Text;
        a.text = std::move(v);
        return a;
    }
    static SqlArg OptText(const std::optional<std::string> &v) { return v ? Text(*v) : Null(TEXTOID); }
    static SqlArg Int8(int64_t v) {
        SqlArg a;
        a.kind = Kind::Int8;
        a.i64 = v;
        return a;
    }
    static SqlArg Int4(int32_t v) {
        SqlArg a;
        a.kind = Kind::Int4;
        a.i64 = v;
        return a;
    }
    static SqlArg Bool(bool v) {
        SqlArg a;
        a.kind = Kind::Bool;
        a.b = v;
        return a;
    }
    static SqlArg Null(Oid type) {
        SqlArg a;
        a.null_type = type;
        return a;
    }
};

// A result copied out of SPI into C++ values (text rendering of each column).
struct SqlResult {
    std::vector<std::vector<std::optional<std::string>>> rows;
    uint64_t processed = 0;

    const std::optional<std::string> &At(size_t row, size_t col) const { return rows.at(row).at(col); }
    std::string Text(size_t row, size_t col) const;
    int64_t Int8(size_t row, size_t col) const;
    bool Bool(size_t row, size_t col) const;
};

void SpiConnect();
void SpiFinish();

// Runs one statement. Result columns are copied as text.
SqlResult Sql(const std::string &sql, const std::vector<SqlArg> &args = {}, bool read_only = false);

// Transactions for background workers. After a commit or abort the current
// memory context is `context_between_transactions` when set (the worker's
// loop context), not TopMemoryContext, so nothing leaks between runs.
extern MemoryContext context_between_transactions;
// `repeatable_read`: every statement of the transaction sees one snapshot
// (the plan reads captured keys, the model and the shadow state, and deletes
// the captured keys it planned, all as of one moment).
void BeginTransaction(const char *activity, bool repeatable_read = false);
void CommitTransaction();
// Safe to call whatever state the transaction is in, even none.
void AbortTransaction();

} // namespace revetl::pg
