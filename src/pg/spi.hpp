// C++-facing SPI: every function here runs its PostgreSQL calls under
// PgGuard, so callers may hold C++ objects freely. Callers must be inside a
// transaction and connected with SpiConnect.
#pragma once

#include "pg/guard.hpp"

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

namespace revetl::pg {

struct SqlArg {
    enum class Kind { Null, Text, Int8, Int4, Bool, TextArray, Int8Array, BoolArray };
    Kind kind = Kind::Null;
    Oid null_type = TEXTOID;
    std::string text;
    int64_t i64 = 0;
    bool b = false;
    // Arrays pass a batch's rows as columns (unnest), which costs less than
    // building a JSON document and parsing it again on the server.
    std::vector<std::optional<std::string>> texts;
    std::vector<int64_t> i64s;
    std::vector<bool> bools;

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
    static SqlArg TextArray(std::vector<std::optional<std::string>> v) {
        SqlArg a;
        a.kind = Kind::TextArray;
        a.texts = std::move(v);
        return a;
    }
    static SqlArg TextArray(const std::vector<std::string> &v) {
        SqlArg a;
        a.kind = Kind::TextArray;
        a.texts.assign(v.begin(), v.end());
        return a;
    }
    static SqlArg Int8Array(std::vector<int64_t> v) {
        SqlArg a;
        a.kind = Kind::Int8Array;
        a.i64s = std::move(v);
        return a;
    }
    static SqlArg BoolArray(std::vector<bool> v) {
        SqlArg a;
        a.kind = Kind::BoolArray;
        a.bools = std::move(v);
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

// What went wrong in a subtransaction: the message and the hint.
struct SubtransactionFailure {
    std::string message;
    std::string hint;
    std::string source; // revetl::Error's: the text its position points into
};

// Runs f in a subtransaction of its own: an error (PostgreSQL's or C++'s)
// rolls back what f did and is returned, and the caller's transaction goes
// on (a check made inside someone's DDL must never fail that DDL).
std::optional<SubtransactionFailure> InSubtransaction(const std::function<void()> &f);

// Runs one statement. Result columns are copied as text.
SqlResult Sql(const std::string &sql, const std::vector<SqlArg> &args = {}, bool read_only = false);

// A statement parsed and planned once, on its first execution, and run
// many times: a run records each group of delivered batches with the same
// few statements, and for small groups parsing and planning them cost more
// than executing them. The plan outlives transactions (SPI_keepplan) and is
// freed with the object; PostgreSQL replans it if a table it uses changes.
// Every execution must pass arguments of the kinds of the first.
// The rows of the statement just run, read as binary values rather than
// rendered as text: for the statements that read many rows per run. Valid
// until the next statement or the end of the transaction.
class SpiRows {
public:
    size_t Count() const { return count_; }
    int64_t Int8(size_t row, int col) const;     // bigint
    char Char(size_t row, int col) const;        // "char"
    std::string Text(size_t row, int col) const; // text; NULL reads as ""

private:
    friend class PreparedSql;
    Datum Value(size_t row, int col, bool *isnull) const;
    size_t count_ = 0;
};

class PreparedSql {
public:
    // custom_plan: plan each execution with its arguments' values (parsing
    // is still saved), for a statement whose best plan depends on them.
    explicit PreparedSql(std::string sql, bool custom_plan = false)
        : sql_(std::move(sql)), custom_plan_(custom_plan) {}
    ~PreparedSql();
    PreparedSql(const PreparedSql &) = delete;
    PreparedSql &operator=(const PreparedSql &) = delete;

    SqlResult Run(const std::vector<SqlArg> &args, bool read_only = false);
    SpiRows RunForRows(const std::vector<SqlArg> &args, bool read_only = false);

private:
    void Execute(const std::vector<SqlArg> &args, bool read_only);
    std::string sql_;
    bool custom_plan_ = false;
    SPIPlanPtr plan_ = nullptr;
};

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
