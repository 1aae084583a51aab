// The sync language: CREATE [OR REPLACE] SYNC, ALTER SYNC and DROP SYNC, as
// analytics engineers write them. PostgreSQL has no parser hook, so revetl
// parses these statements itself (pure C++, no PostgreSQL header) and runs
// them through the same code as the function forms.
//
// The lexer follows PostgreSQL's rules for what it needs to see: unquoted
// identifiers fold to lower case, "quoted" ones keep their case, strings may
// be '...', E'...' or $tag$...$tag$, and comments are skipped. SQL inside the
// statement (a FROM query, MAP expressions) is kept verbatim as source text;
// PostgreSQL's own parser checks it later.
#pragma once

#include "core/common/error.hpp"

#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

namespace revetl::dsl {

struct Token {
    enum class Kind { Ident, QuotedIdent, String, Number, Symbol, End };
    Kind kind = Kind::End;
    std::string value; // folded identifier, unescaped string, or the symbol text
    size_t begin = 0;  // byte offsets into the source
    size_t end = 0;

    bool IsKeyword(const char *word) const { return kind == Kind::Ident && value == word; }
    bool IsSymbol(const char *s) const { return kind == Kind::Symbol && value == s; }
};

// Throws revetl::Error (42601) positioned at the offending character.
std::vector<Token> Lex(std::string_view source);

struct Schedule {
    enum class Kind { Manual, Every, Cron, OnChange, After };
    Kind kind = Kind::Manual;
    std::string value; // interval text, cron expression or the other sync's name
};

std::string ScheduleKindName(Schedule::Kind kind); // "manual", "every", ...

struct MapItem {
    std::string expression; // SQL source text, verbatim
    std::string field;
    int position = 0; // of the expression, for error reports
    // The field as written, when an unquoted name was folded to lower case
    // (AS firstName is the field "firstname"); empty otherwise. Callers say
    // so with a NOTICE: destination field names are often mixed case.
    std::string folded_from;
};

struct OptionItem {
    std::string name;
    enum class Type { Number, String, Bool } type = Type::String;
    std::string value;
    int position = 0;
};

struct CreateSync {
    bool or_replace = false;
    std::string name;
    bool model_is_query = false;
    std::string model_schema; // may be empty: resolved by search_path
    std::string model_name;
    std::string model_query;
    std::string server;
    std::optional<std::string> object;
    std::vector<std::string> key;
    std::optional<std::string> match_on;
    std::string mode = "upsert";
    // MODE AUDIENCE 'audience': the list, tag or audience the rows are
    // members of (set only in that mode).
    std::optional<std::string> audience;
    std::vector<MapItem> map;
    std::optional<Schedule> schedule;
    std::vector<OptionItem> options;
    int position = 0;

    // The model as create_sync takes it: a quoted qualified name or the query.
    std::string ModelText() const;
};

struct AlterSync {
    enum class Action {
        Rename,
        Owner,
        Pause,
        Resume,
        SetMap,
        DropMap,
        SetMode,
        SetSchedule,
        SetOptions,
        ResetOptions,
        SetKey,
        SetModel,
        SetServer
    };
    std::string name;
    Action action = Action::Pause;
    std::string new_name;  // Rename
    std::string new_owner; // Owner
    CreateSync fields;     // the Set* actions fill the matching fields here
    std::vector<std::string> reset_options;
    int position = 0;
};

struct DropSync {
    bool if_exists = false;
    std::vector<std::string> names;
    int position = 0;
};

using Statement = std::variant<CreateSync, AlterSync, DropSync>;

// Parses one or more statements separated by semicolons. Nothing is
// returned unless every statement parses.
std::vector<Statement> Parse(std::string_view source);

// Identifier quoting as PostgreSQL's quote_identifier does it: bare when it
// is a plain lower-case name that is no keyword, double-quoted otherwise.
std::string QuoteIdentIfNeeded(std::string_view ident);

// The canonical CREATE SYNC text of a definition (for revetl.sync_ddl).
std::string FormatCreateSync(const CreateSync &sync);

// 1-based character (not byte) position of `byte_offset` in UTF-8 `source`.
int CharPosition(std::string_view source, size_t byte_offset);

} // namespace revetl::dsl
