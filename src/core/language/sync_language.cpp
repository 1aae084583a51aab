#include "core/language/sync_language.hpp"

#include "core/connectors/options.hpp"

#include <algorithm>
#include <cctype>
#include <set>

namespace revetl::dsl {

namespace {

// Longest identifier PostgreSQL keeps (NAMEDATALEN - 1).
constexpr size_t kMaxIdentifier = 63;
// Statements are bounded so a hostile input cannot make the parser work
// without end.
constexpr size_t kMaxSource = 1 << 20;

bool IsIdentStart(unsigned char c) {
    return std::isalpha(c) || c == '_' || c >= 0x80;
}
bool IsIdentChar(unsigned char c) {
    return std::isalnum(c) || c == '_' || c == '$' || c >= 0x80;
}

[[noreturn]] void Fail(std::string_view source, size_t offset, const std::string &message,
                       const std::string &hint = {}) {
    throw Error(sqlstate::kSyntaxError, message, {}, hint)
        .At(CharPosition(source, offset), std::string(source));
}

std::string FoldIdentifier(std::string_view raw) {
    std::string out(raw);
    // PostgreSQL folds ASCII letters only; other bytes are kept as they are.
    for (char &c : out)
        if (c >= 'A' && c <= 'Z')
            c = static_cast<char>(c - 'A' + 'a');
    return out;
}

const std::set<std::string> &ReservedWords() {
    // PostgreSQL's reserved keywords plus the words of the sync language, so
    // that a formatted statement always parses back the same way.
    static const std::set<std::string> words = {
        "all", "analyse", "analyze", "and", "any", "array", "as", "asc", "asymmetric", "authorization",
        "binary", "both", "case", "cast", "check", "collate", "collation", "column", "concurrently",
        "constraint", "create", "cross", "current_catalog", "current_date", "current_role", "current_schema",
        "current_time", "current_timestamp", "current_user", "default", "deferrable", "desc", "distinct",
        "do", "else", "end", "except", "false", "fetch", "for", "foreign", "freeze", "from", "full", "grant",
        "group", "having", "ilike", "in", "initially", "inner", "intersect", "into", "is", "isnull", "join",
        "lateral", "leading", "left", "like", "limit", "localtime", "localtimestamp", "natural", "not",
        "notnull", "null", "offset", "on", "only", "or", "order", "outer", "overlaps", "placing", "primary",
        "references", "returning", "right", "select", "session_user", "similar", "some", "symmetric", "table",
        "tablesample", "then", "to", "trailing", "true", "union", "unique", "user", "using", "variadic",
        "verbose", "when", "where", "window", "with",
        // sync language
        "sync", "key", "map", "mode", "match", "object", "schedule", "replace", "upsert", "update", "insert",
        "mirror", "audience", "manual", "every", "cron", "change", "after", "pause", "resume", "rename",
        "owner", "set", "reset", "exists", "if", "drop", "alter"};
    return words;
}

class Parser {
public:
    explicit Parser(std::string_view source) : source_(source), tokens_(Lex(source)) {}

    std::vector<Statement> ParseAll() {
        std::vector<Statement> out;
        for (;;) {
            while (Peek().IsSymbol(";"))
                Next();
            if (Peek().kind == Token::Kind::End)
                break;
            out.push_back(ParseStatement());
            if (!Peek().IsSymbol(";") && Peek().kind != Token::Kind::End)
                Fail(source_, Peek().begin, "syntax error at or near \"" + Text(Peek()) + "\"",
                     "Separate statements with a semicolon.");
        }
        if (out.empty())
            Fail(source_, source_.size(), "no sync statement found",
                 "Write CREATE SYNC, ALTER SYNC or DROP SYNC statements.");
        return out;
    }

private:
    const Token &Peek(size_t ahead = 0) const { return tokens_[std::min(pos_ + ahead, tokens_.size() - 1)]; }
    const Token &Next() {
        const Token &t = tokens_[pos_];
        if (pos_ + 1 < tokens_.size())
            pos_++;
        return t;
    }
    std::string Text(const Token &t) const {
        if (t.kind == Token::Kind::End)
            return "end of input";
        return std::string(source_.substr(t.begin, t.end - t.begin));
    }
    int Position(const Token &t) const { return CharPosition(source_, t.begin); }

    [[noreturn]] void Expected(const std::string &what) const {
        const Token &t = Peek();
        if (t.kind == Token::Kind::End)
            Fail(source_, t.begin, "syntax error at end of input", "Expected " + what + ".");
        Fail(source_, t.begin, "syntax error at or near \"" + Text(t) + "\"", "Expected " + what + ".");
    }

    void ExpectKeyword(const char *word) {
        if (!Peek().IsKeyword(word)) {
            std::string upper = word;
            std::transform(upper.begin(), upper.end(), upper.begin(),
                           [](unsigned char c) { return std::toupper(c); });
            Expected(upper);
        }
        Next();
    }
    bool AcceptKeyword(const char *word) {
        if (Peek().IsKeyword(word)) {
            Next();
            return true;
        }
        return false;
    }
    void ExpectSymbol(const char *s) {
        if (!Peek().IsSymbol(s))
            Expected(std::string("\"") + s + "\"");
        Next();
    }

    std::string Identifier(const std::string &what) {
        const Token &t = Peek();
        if (t.kind != Token::Kind::Ident && t.kind != Token::Kind::QuotedIdent)
            Expected(what);
        Next();
        return t.value;
    }

    // A destination field: an identifier or a string (for names with odd
    // characters that vendors use).
    std::string FieldName(const std::string &what) {
        const Token &t = Peek();
        if (t.kind == Token::Kind::String) {
            if (t.value.empty() || t.value.size() > 255)
                Fail(source_, t.begin, "invalid destination field name",
                     "Field names are 1 to 255 bytes long.");
            Next();
            return t.value;
        }
        return Identifier(what);
    }

    std::string StringLiteral(const std::string &what) {
        const Token &t = Peek();
        if (t.kind != Token::Kind::String)
            Expected(what);
        Next();
        return t.value;
    }

    // Index of the token that closes the parenthesis at `open`.
    size_t MatchingParen(size_t open) const {
        int depth = 0;
        for (size_t i = open; i < tokens_.size(); i++) {
            const Token &t = tokens_[i];
            if (t.IsSymbol("(") || t.IsSymbol("["))
                depth++;
            else if (t.IsSymbol(")") || t.IsSymbol("]")) {
                if (--depth == 0)
                    return i;
            } else if (t.kind == Token::Kind::End)
                break;
        }
        Fail(source_, tokens_[open].begin, "unterminated parenthesis", "Every \"(\" needs its \")\".");
    }

    Statement ParseStatement() {
        const Token &first = Peek();
        if (first.IsKeyword("create"))
            return ParseCreate();
        if (first.IsKeyword("alter"))
            return ParseAlter();
        if (first.IsKeyword("drop"))
            return ParseDrop();
        Expected("CREATE SYNC, ALTER SYNC or DROP SYNC");
    }

    void ParseModel(CreateSync &c) {
        if (Peek().IsSymbol("(")) {
            size_t open = pos_;
            size_t close = MatchingParen(open);
            size_t begin = tokens_[open].end;
            size_t end = tokens_[close].begin;
            std::string text(source_.substr(begin, end - begin));
            if (close == open + 1)
                Fail(source_, tokens_[open].begin, "empty model query",
                     "Write a SELECT inside the parentheses.");
            c.model_is_query = true;
            c.model_query = text;
            // Drop surrounding blank lines, keep everything else verbatim.
            size_t a = c.model_query.find_first_not_of(" \t\r\n");
            size_t b = c.model_query.find_last_not_of(" \t\r\n");
            c.model_query = c.model_query.substr(a, b - a + 1);
            pos_ = close;
            Next();
            return;
        }
        std::string first = Identifier("a table, a view or a parenthesized query");
        if (Peek().IsSymbol(".")) {
            Next();
            c.model_schema = first;
            c.model_name = Identifier("a relation name");
            if (Peek().IsSymbol("."))
                Fail(source_, Peek().begin, "cross-database references are not implemented",
                     "Name the model as schema.relation.");
        } else {
            c.model_name = first;
        }
    }

    std::vector<std::string> ColumnList(const std::string &what) {
        ExpectSymbol("(");
        std::vector<std::string> out;
        for (;;) {
            const Token &t = Peek();
            std::string name = Identifier(what);
            if (std::find(out.begin(), out.end(), name) != out.end())
                Fail(source_, t.begin, "column \"" + name + "\" appears twice in KEY");
            out.push_back(name);
            if (Peek().IsSymbol(",")) {
                Next();
                continue;
            }
            ExpectSymbol(")");
            return out;
        }
    }

    // MODE UPSERT | UPDATE | INSERT | MIRROR | AUDIENCE 'audience': the
    // audience (a list id, a tag, an ad audience's id) is part of the mode,
    // because it is what the rows are members of and only this mode has one.
    std::string Mode(std::optional<std::string> &audience) {
        static const std::vector<std::string> kModes = {"upsert", "update", "insert", "mirror", "audience"};
        const Token &t = Peek();
        for (const auto &m : kModes)
            if (t.IsKeyword(m.c_str())) {
                Next();
                audience.reset();
                if (m == "audience") {
                    const Token &a = Peek();
                    audience = StringLiteral("the audience in quotes (a list id, a tag or an audience id), "
                                             "such as AUDIENCE '12345'");
                    if (audience->empty() || audience->size() > 255)
                        Fail(source_, a.begin, "invalid audience",
                             "An audience is 1 to 255 bytes long: the destination's list id, tag or audience "
                             "id.");
                }
                return m;
            }
        const std::string expected = "UPSERT, UPDATE, INSERT, MIRROR or AUDIENCE 'audience'";
        if (t.kind == Token::Kind::Ident || t.kind == Token::Kind::QuotedIdent) {
            std::string close = ClosestMatch(t.value, kModes);
            if (!close.empty()) {
                std::transform(close.begin(), close.end(), close.begin(),
                               [](unsigned char c) { return std::toupper(c); });
                Fail(source_, t.begin, "unknown sync mode \"" + Text(t) + "\"",
                     "Perhaps you meant " + close + ". Expected " + expected + ".");
            }
            Fail(source_, t.begin, "unknown sync mode \"" + Text(t) + "\"", "Expected " + expected + ".");
        }
        Expected(expected);
    }

    std::vector<MapItem> MapList() {
        size_t open = pos_;
        ExpectSymbol("(");
        size_t close = MatchingParen(open);
        std::vector<MapItem> items;
        // Split at top-level commas; in each item the last top-level AS
        // separates the expression from the destination field.
        size_t start = open + 1;
        while (start < close) {
            int depth = 0;
            size_t end = start;
            size_t as = 0;
            for (; end < close; end++) {
                const Token &t = tokens_[end];
                if (t.IsSymbol("(") || t.IsSymbol("["))
                    depth++;
                else if (t.IsSymbol(")") || t.IsSymbol("]"))
                    depth--;
                else if (depth == 0 && t.IsSymbol(","))
                    break;
                else if (depth == 0 && t.IsKeyword("as"))
                    as = end;
            }
            if (as == 0 || as == start)
                Fail(source_, tokens_[start].begin,
                     "each MAP entry needs an expression and AS destination_field",
                     "For example: MAP (lower(email) AS email, score AS lead_score).");
            if (as + 2 != end)
                Fail(source_, tokens_[as + 1 < end ? as + 1 : as].begin,
                     "syntax error in MAP entry: expected one destination field after AS");
            const Token &field = tokens_[as + 1];
            MapItem item;
            if (field.kind == Token::Kind::String || field.kind == Token::Kind::Ident ||
                field.kind == Token::Kind::QuotedIdent) {
                item.field = field.value;
                if (field.kind == Token::Kind::Ident && Text(field) != field.value)
                    item.folded_from = std::string(Text(field));
            } else
                Fail(source_, field.begin, "syntax error at or near \"" + Text(field) + "\"",
                     "Expected a destination field name after AS.");
            if (item.field.empty() || item.field.size() > 255)
                Fail(source_, field.begin, "invalid destination field name",
                     "Field names are 1 to 255 bytes long.");
            for (const auto &other : items)
                if (other.field == item.field)
                    Fail(source_, field.begin, "destination field \"" + item.field + "\" is mapped twice");
            size_t ebegin = tokens_[start].begin;
            size_t eend = tokens_[as - 1].end;
            item.expression = std::string(source_.substr(ebegin, eend - ebegin));
            item.position = CharPosition(source_, ebegin);
            items.push_back(std::move(item));
            start = end + 1;
            if (end < close && start >= close)
                Fail(source_, tokens_[end].begin, "syntax error at or near \",\"", "A MAP entry is missing.");
        }
        if (items.empty())
            Fail(source_, tokens_[open].begin, "MAP needs at least one entry",
                 "Leave MAP out to send every column of the model.");
        pos_ = close;
        Next();
        return items;
    }

    Schedule ParseSchedule() {
        Schedule s;
        const Token &t = Peek();
        if (AcceptKeyword("manual")) {
            s.kind = Schedule::Kind::Manual;
        } else if (AcceptKeyword("every")) {
            s.kind = Schedule::Kind::Every;
            s.value = StringLiteral("an interval in quotes, such as '15 minutes'");
        } else if (AcceptKeyword("cron")) {
            s.kind = Schedule::Kind::Cron;
            s.value = StringLiteral("a cron expression in quotes, such as '*/15 * * * *'");
        } else if (AcceptKeyword("on")) {
            ExpectKeyword("change");
            s.kind = Schedule::Kind::OnChange;
        } else if (AcceptKeyword("after")) {
            s.kind = Schedule::Kind::After;
            s.value = Identifier("the name of another sync");
        } else {
            (void)t;
            Expected("MANUAL, EVERY 'interval', CRON 'expression', ON CHANGE or AFTER sync_name");
        }
        return s;
    }

    std::vector<OptionItem> OptionList(bool values) {
        ExpectSymbol("(");
        std::vector<OptionItem> out;
        for (;;) {
            const Token &name_token = Peek();
            OptionItem item;
            item.position = Position(name_token);
            item.name = Identifier("an option name");
            for (const auto &o : out)
                if (o.name == item.name)
                    Fail(source_, name_token.begin, "option \"" + item.name + "\" is given twice");
            if (values) {
                ExpectSymbol("=");
                const Token &v = Peek();
                if (v.kind == Token::Kind::Number) {
                    item.type = OptionItem::Type::Number;
                    item.value = v.value;
                } else if (v.kind == Token::Kind::String) {
                    item.type = OptionItem::Type::String;
                    item.value = v.value;
                } else if (v.IsKeyword("true") || v.IsKeyword("false") || v.IsKeyword("on") ||
                           v.IsKeyword("off")) {
                    item.type = OptionItem::Type::Bool;
                    item.value = (v.value == "true" || v.value == "on") ? "true" : "false";
                } else {
                    Expected("a number, a string or a boolean");
                }
                Next();
            }
            out.push_back(std::move(item));
            if (Peek().IsSymbol(",")) {
                Next();
                continue;
            }
            ExpectSymbol(")");
            return out;
        }
    }

    CreateSync ParseCreate() {
        CreateSync c;
        c.position = Position(Peek());
        ExpectKeyword("create");
        if (AcceptKeyword("or")) {
            ExpectKeyword("replace");
            c.or_replace = true;
        }
        ExpectKeyword("sync");
        c.name = Identifier("a sync name");
        bool have_from = false, have_to = false, have_key = false, have_mode = false, have_map = false,
             have_match = false, have_object = false;
        for (;;) {
            const Token &t = Peek();
            auto once = [&](bool &seen, const char *clause) {
                if (seen)
                    Fail(source_, t.begin, std::string("conflicting or redundant ") + clause + " clauses");
                seen = true;
            };
            if (t.IsKeyword("from")) {
                once(have_from, "FROM");
                Next();
                ParseModel(c);
            } else if (t.IsKeyword("to")) {
                once(have_to, "TO");
                Next();
                c.server = Identifier("a destination server name");
            } else if (t.IsKeyword("object")) {
                once(have_object, "OBJECT");
                Next();
                c.object = FieldName("a destination object name");
            } else if (t.IsKeyword("key")) {
                once(have_key, "KEY");
                Next();
                c.key = ColumnList("a key column");
            } else if (t.IsKeyword("match")) {
                once(have_match, "MATCH ON");
                Next();
                ExpectKeyword("on");
                c.match_on = FieldName("a destination field");
            } else if (t.IsKeyword("mode")) {
                once(have_mode, "MODE");
                Next();
                c.mode = Mode(c.audience);
            } else if (t.IsKeyword("map")) {
                once(have_map, "MAP");
                Next();
                c.map = MapList();
            } else if (t.IsKeyword("schedule")) {
                if (c.schedule)
                    Fail(source_, t.begin, "conflicting or redundant SCHEDULE clauses");
                Next();
                c.schedule = ParseSchedule();
            } else if (t.IsKeyword("with")) {
                if (!c.options.empty())
                    Fail(source_, t.begin, "conflicting or redundant WITH clauses");
                Next();
                c.options = OptionList(true);
            } else {
                break;
            }
        }
        if (!have_from)
            Expected(have_to || have_key ? "FROM model" : "FROM model (or another clause of CREATE SYNC)");
        if (!have_to)
            Expected("TO destination_server");
        if (!have_key)
            Expected("KEY (column, ...)");
        return c;
    }

    AlterSync ParseAlter() {
        AlterSync a;
        a.position = Position(Peek());
        ExpectKeyword("alter");
        ExpectKeyword("sync");
        a.name = Identifier("a sync name");
        if (AcceptKeyword("rename")) {
            ExpectKeyword("to");
            a.action = AlterSync::Action::Rename;
            a.new_name = Identifier("the new sync name");
        } else if (AcceptKeyword("owner")) {
            ExpectKeyword("to");
            a.action = AlterSync::Action::Owner;
            a.new_owner = Identifier("a role name");
        } else if (AcceptKeyword("pause")) {
            a.action = AlterSync::Action::Pause;
        } else if (AcceptKeyword("resume")) {
            a.action = AlterSync::Action::Resume;
        } else if (AcceptKeyword("reset")) {
            a.action = AlterSync::Action::ResetOptions;
            for (const auto &o : OptionList(false))
                a.reset_options.push_back(o.name);
        } else if (AcceptKeyword("drop")) {
            ExpectKeyword("map");
            a.action = AlterSync::Action::DropMap;
        } else if (AcceptKeyword("set")) {
            const Token &t = Peek();
            if (AcceptKeyword("map")) {
                a.action = AlterSync::Action::SetMap;
                a.fields.map = MapList();
            } else if (AcceptKeyword("mode")) {
                a.action = AlterSync::Action::SetMode;
                a.fields.mode = Mode(a.fields.audience);
            } else if (AcceptKeyword("schedule")) {
                a.action = AlterSync::Action::SetSchedule;
                a.fields.schedule = ParseSchedule();
            } else if (AcceptKeyword("key")) {
                a.action = AlterSync::Action::SetKey;
                a.fields.key = ColumnList("a key column");
            } else if (AcceptKeyword("from")) {
                a.action = AlterSync::Action::SetModel;
                ParseModel(a.fields);
            } else if (AcceptKeyword("to")) {
                a.action = AlterSync::Action::SetServer;
                a.fields.server = Identifier("a destination server name");
            } else if (t.IsSymbol("(") || t.IsKeyword("with")) {
                AcceptKeyword("with");
                a.action = AlterSync::Action::SetOptions;
                a.fields.options = OptionList(true);
            } else {
                Expected("MAP, MODE, SCHEDULE, KEY, FROM, TO or (option = value, ...)");
            }
        } else {
            Expected("RENAME TO, OWNER TO, PAUSE, RESUME, SET, RESET or DROP MAP");
        }
        return a;
    }

    DropSync ParseDrop() {
        DropSync d;
        d.position = Position(Peek());
        ExpectKeyword("drop");
        ExpectKeyword("sync");
        if (AcceptKeyword("if")) {
            ExpectKeyword("exists");
            d.if_exists = true;
        }
        for (;;) {
            d.names.push_back(Identifier("a sync name"));
            if (!Peek().IsSymbol(","))
                break;
            Next();
        }
        return d;
    }

    std::string_view source_;
    std::vector<Token> tokens_;
    size_t pos_ = 0;
};

std::string QuoteLiteralText(const std::string &s) {
    std::string out = "'";
    for (char c : s) {
        if (c == '\'')
            out += '\'';
        out += c;
    }
    return out + "'";
}

// A string that needs E'' (backslashes) or dollar quoting is written with
// dollar quotes, which keep every byte as it is.
std::string StringConstant(const std::string &s) {
    if (s.find('\\') == std::string::npos)
        return QuoteLiteralText(s);
    // The tag may appear neither in the value nor across its end.
    std::string tag = "$v$";
    for (int i = 0; (s + tag).find(tag) != s.size(); i++)
        tag = "$v" + std::to_string(i) + "$";
    return tag + s + tag;
}

// Destination fields are written bare when they are plain names, and as
// string constants otherwise: a string keeps any case and any length up to
// 255 bytes, where a quoted identifier stops at 63.
std::string FieldText(const std::string &field) {
    std::string quoted = QuoteIdentIfNeeded(field);
    if (quoted.front() != '"' && field.size() <= kMaxIdentifier)
        return quoted;
    return StringConstant(field);
}

} // namespace

int CharPosition(std::string_view source, size_t byte_offset) {
    int chars = 0;
    for (size_t i = 0; i < byte_offset && i < source.size(); i++)
        if ((static_cast<unsigned char>(source[i]) & 0xC0) != 0x80)
            chars++;
    return chars + 1;
}

std::vector<Token> Lex(std::string_view s) {
    if (s.size() > kMaxSource)
        throw Error(sqlstate::kInvalidParameterValue, "sync statements are limited to 1 MB of text");
    std::vector<Token> out;
    size_t i = 0;
    const size_t n = s.size();
    while (i < n) {
        unsigned char c = s[i];
        if (std::isspace(c)) {
            i++;
            continue;
        }
        if (c == '-' && i + 1 < n && s[i + 1] == '-') {
            while (i < n && s[i] != '\n')
                i++;
            continue;
        }
        if (c == '/' && i + 1 < n && s[i + 1] == '*') {
            size_t start = i;
            int depth = 0;
            while (i < n) {
                if (s[i] == '/' && i + 1 < n && s[i + 1] == '*') {
                    depth++;
                    i += 2;
                } else if (s[i] == '*' && i + 1 < n && s[i + 1] == '/') {
                    depth--;
                    i += 2;
                    if (depth == 0)
                        break;
                } else {
                    i++;
                }
            }
            if (depth != 0)
                Fail(s, start, "unterminated /* comment");
            continue;
        }
        Token t;
        t.begin = i;
        bool escape_string = (c == 'e' || c == 'E') && i + 1 < n && s[i + 1] == '\'';
        if (c == '\'' || escape_string) {
            t.kind = Token::Kind::String;
            if (escape_string)
                i++;
            i++;
            std::string value;
            bool closed = false;
            while (i < n) {
                char ch = s[i];
                if (ch == '\'') {
                    if (i + 1 < n && s[i + 1] == '\'') {
                        value += '\'';
                        i += 2;
                        continue;
                    }
                    i++;
                    closed = true;
                    break;
                }
                if (escape_string && ch == '\\' && i + 1 < n) {
                    char e = s[i + 1];
                    switch (e) {
                    case 'n':
                        value += '\n';
                        break;
                    case 't':
                        value += '\t';
                        break;
                    case 'r':
                        value += '\r';
                        break;
                    case 'b':
                        value += '\b';
                        break;
                    case 'f':
                        value += '\f';
                        break;
                    default:
                        value += e;
                    }
                    i += 2;
                    continue;
                }
                value += ch;
                i++;
            }
            if (!closed)
                Fail(s, t.begin, "unterminated quoted string");
            t.value = std::move(value);
        } else if (c == '$' && i + 1 < n && (s[i + 1] == '$' || IsIdentStart(s[i + 1]))) {
            // $tag$ ... $tag$ (a $1 parameter is not a dollar quote)
            size_t j = i + 1;
            while (j < n && s[j] != '$' && IsIdentChar(s[j]) && s[j] != '$')
                j++;
            if (j >= n || s[j] != '$')
                Fail(s, i, "syntax error at or near \"$\"");
            std::string tag(s.substr(i, j - i + 1));
            size_t body = j + 1;
            size_t close = s.find(tag, body);
            if (close == std::string_view::npos)
                Fail(s, i, "unterminated dollar-quoted string");
            t.kind = Token::Kind::String;
            t.value = std::string(s.substr(body, close - body));
            i = close + tag.size();
        } else if (c == '"') {
            t.kind = Token::Kind::QuotedIdent;
            i++;
            std::string value;
            bool closed = false;
            while (i < n) {
                if (s[i] == '"') {
                    if (i + 1 < n && s[i + 1] == '"') {
                        value += '"';
                        i += 2;
                        continue;
                    }
                    i++;
                    closed = true;
                    break;
                }
                value += s[i++];
            }
            if (!closed)
                Fail(s, t.begin, "unterminated quoted identifier");
            if (value.empty())
                Fail(s, t.begin, "zero-length delimited identifier");
            if (value.size() > kMaxIdentifier)
                Fail(s, t.begin, "identifier is too long",
                     "Names are limited to " + std::to_string(kMaxIdentifier) + " bytes.");
            t.value = std::move(value);
        } else if (IsIdentStart(c)) {
            t.kind = Token::Kind::Ident;
            while (i < n && IsIdentChar(s[i]))
                i++;
            t.value = FoldIdentifier(s.substr(t.begin, i - t.begin));
            if (t.value.size() > kMaxIdentifier)
                Fail(s, t.begin, "identifier is too long",
                     "Names are limited to " + std::to_string(kMaxIdentifier) + " bytes.");
        } else if (std::isdigit(c) ||
                   (c == '.' && i + 1 < n && std::isdigit(static_cast<unsigned char>(s[i + 1])))) {
            t.kind = Token::Kind::Number;
            while (i < n && (std::isdigit(static_cast<unsigned char>(s[i])) || s[i] == '.' || s[i] == '_'))
                i++;
            if (i < n && (s[i] == 'e' || s[i] == 'E')) {
                size_t j = i + 1;
                if (j < n && (s[j] == '+' || s[j] == '-'))
                    j++;
                if (j < n && std::isdigit(static_cast<unsigned char>(s[j]))) {
                    i = j;
                    while (i < n && std::isdigit(static_cast<unsigned char>(s[i])))
                        i++;
                }
            }
            t.value = std::string(s.substr(t.begin, i - t.begin));
        } else if (c == '(' || c == ')' || c == '[' || c == ']' || c == ',' || c == ';' || c == '.') {
            t.kind = Token::Kind::Symbol;
            t.value = std::string(1, static_cast<char>(c));
            i++;
        } else {
            // Operators: a run of operator characters (enough to skip over
            // SQL expressions correctly; PostgreSQL checks them later).
            static const std::string kOps = "+-*/<>=~!@#%^&|`?:";
            if (kOps.find(static_cast<char>(c)) == std::string::npos && c != '$')
                Fail(s, i, "syntax error at or near \"" + std::string(1, static_cast<char>(c)) + "\"");
            t.kind = Token::Kind::Symbol;
            i++;
            if (c != '$')
                while (i < n && kOps.find(s[i]) != std::string::npos &&
                       !(s[i] == '-' && i + 1 < n && s[i + 1] == '-') &&
                       !(s[i] == '/' && i + 1 < n && s[i + 1] == '*'))
                    i++;
            else
                while (i < n && std::isdigit(static_cast<unsigned char>(s[i])))
                    i++;
            t.value = std::string(s.substr(t.begin, i - t.begin));
        }
        t.end = i;
        out.push_back(std::move(t));
    }
    Token end;
    end.kind = Token::Kind::End;
    end.begin = end.end = n;
    out.push_back(end);
    return out;
}

std::vector<Statement> Parse(std::string_view source) {
    return Parser(source).ParseAll();
}

std::string ScheduleKindName(Schedule::Kind kind) {
    switch (kind) {
    case Schedule::Kind::Manual:
        return "manual";
    case Schedule::Kind::Every:
        return "every";
    case Schedule::Kind::Cron:
        return "cron";
    case Schedule::Kind::OnChange:
        return "on change";
    case Schedule::Kind::After:
        return "after";
    }
    return "manual";
}

std::string QuoteIdentIfNeeded(std::string_view ident) {
    bool plain = !ident.empty() && (std::islower(static_cast<unsigned char>(ident[0])) || ident[0] == '_');
    for (char c : ident)
        if (!(std::islower(static_cast<unsigned char>(c)) || std::isdigit(static_cast<unsigned char>(c)) ||
              c == '_'))
            plain = false;
    if (plain && ReservedWords().count(std::string(ident)) == 0)
        return std::string(ident);
    std::string out = "\"";
    for (char c : ident) {
        if (c == '"')
            out += '"';
        out += c;
    }
    return out + "\"";
}

std::string CreateSync::ModelText() const {
    if (model_is_query)
        return model_query;
    std::string out;
    if (!model_schema.empty())
        out = QuoteIdentIfNeeded(model_schema) + ".";
    return out + QuoteIdentIfNeeded(model_name);
}

std::string FormatCreateSync(const CreateSync &c) {
    std::string out = "CREATE SYNC " + QuoteIdentIfNeeded(c.name) + "\n  FROM ";
    if (c.model_is_query)
        out += "(\n    " + c.model_query + "\n  )";
    else
        out += c.ModelText();
    out += "\n  TO " + QuoteIdentIfNeeded(c.server);
    if (c.object)
        out += " OBJECT " + FieldText(*c.object);
    out += "\n  KEY (";
    for (size_t i = 0; i < c.key.size(); i++)
        out += (i ? ", " : "") + QuoteIdentIfNeeded(c.key[i]);
    out += ")";
    if (c.match_on)
        out += "\n  MATCH ON " + FieldText(*c.match_on);
    std::string mode = c.mode;
    std::transform(mode.begin(), mode.end(), mode.begin(), [](unsigned char ch) { return std::toupper(ch); });
    out += "\n  MODE " + mode;
    if (c.audience)
        out += " " + StringConstant(*c.audience);
    if (!c.map.empty()) {
        out += "\n  MAP (";
        for (size_t i = 0; i < c.map.size(); i++)
            out +=
                std::string(i ? ",\n       " : "") + c.map[i].expression + " AS " + FieldText(c.map[i].field);
        out += ")";
    }
    if (c.schedule) {
        out += "\n  SCHEDULE ";
        switch (c.schedule->kind) {
        case Schedule::Kind::Manual:
            out += "MANUAL";
            break;
        case Schedule::Kind::Every:
            out += "EVERY " + StringConstant(c.schedule->value);
            break;
        case Schedule::Kind::Cron:
            out += "CRON " + StringConstant(c.schedule->value);
            break;
        case Schedule::Kind::OnChange:
            out += "ON CHANGE";
            break;
        case Schedule::Kind::After:
            out += "AFTER " + QuoteIdentIfNeeded(c.schedule->value);
            break;
        }
    }
    if (!c.options.empty()) {
        out += "\n  WITH (";
        for (size_t i = 0; i < c.options.size(); i++) {
            const OptionItem &o = c.options[i];
            out += (i ? ", " : "") + QuoteIdentIfNeeded(o.name) + " = ";
            out += o.type == OptionItem::Type::String ? StringConstant(o.value) : o.value;
        }
        out += ")";
    }
    return out + ";";
}

} // namespace revetl::dsl
