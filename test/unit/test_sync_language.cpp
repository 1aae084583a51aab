#include "core/common/error.hpp"
#include "core/language/sync_language.hpp"

#include "test_util.hpp"

#include <gtest/gtest.h>

#include <functional>
#include <string>
#include <variant>

using namespace revetl;
using namespace revetl::dsl;
using revetl_test::Catch;
using revetl_test::Contains;

namespace {

Error ParseError(const std::string &source) {
    return Catch([&] { Parse(source); });
}

CreateSync ParseCreate(const std::string &source) {
    std::vector<Statement> st = Parse(source);
    EXPECT_EQ(st.size(), 1u);
    if (st.empty() || !std::holds_alternative<CreateSync>(st[0])) {
        ADD_FAILURE() << "not a CREATE SYNC";
        return {};
    }
    return std::get<CreateSync>(st[0]);
}

AlterSync ParseAlter(const std::string &source) {
    std::vector<Statement> st = Parse(source);
    EXPECT_EQ(st.size(), 1u);
    if (st.empty() || !std::holds_alternative<AlterSync>(st[0])) {
        ADD_FAILURE() << "not an ALTER SYNC";
        return {};
    }
    return std::get<AlterSync>(st[0]);
}

std::vector<std::string> Kinds(const std::vector<Token> &tokens) {
    std::vector<std::string> out;
    for (const auto &t : tokens) {
        switch (t.kind) {
        case Token::Kind::Ident:
            out.push_back("I:" + t.value);
            break;
        case Token::Kind::QuotedIdent:
            out.push_back("Q:" + t.value);
            break;
        case Token::Kind::String:
            out.push_back("S:" + t.value);
            break;
        case Token::Kind::Number:
            out.push_back("N:" + t.value);
            break;
        case Token::Kind::Symbol:
            out.push_back("Y:" + t.value);
            break;
        case Token::Kind::End:
            out.push_back("END");
            break;
        }
    }
    return out;
}

// Every field of two CREATE SYNC statements that FormatCreateSync writes.
void ExpectSameSync(const CreateSync &a, const CreateSync &b) {
    EXPECT_EQ(a.name, b.name);
    EXPECT_EQ(a.model_is_query, b.model_is_query);
    EXPECT_EQ(a.model_schema, b.model_schema);
    EXPECT_EQ(a.model_name, b.model_name);
    EXPECT_EQ(a.model_query, b.model_query);
    EXPECT_EQ(a.server, b.server);
    EXPECT_EQ(a.object, b.object);
    EXPECT_EQ(a.key, b.key);
    EXPECT_EQ(a.match_on, b.match_on);
    EXPECT_EQ(a.mode, b.mode);
    ASSERT_EQ(a.map.size(), b.map.size());
    for (size_t i = 0; i < a.map.size(); i++) {
        EXPECT_EQ(a.map[i].expression, b.map[i].expression);
        EXPECT_EQ(a.map[i].field, b.map[i].field);
    }
    ASSERT_EQ(a.schedule.has_value(), b.schedule.has_value());
    if (a.schedule) {
        EXPECT_EQ(a.schedule->kind, b.schedule->kind);
        EXPECT_EQ(a.schedule->value, b.schedule->value);
    }
    ASSERT_EQ(a.options.size(), b.options.size());
    for (size_t i = 0; i < a.options.size(); i++) {
        EXPECT_EQ(a.options[i].name, b.options[i].name);
        EXPECT_EQ(a.options[i].type, b.options[i].type);
        EXPECT_EQ(a.options[i].value, b.options[i].value);
    }
}

} // namespace

// -------------------------------------------------------------------- lexer

TEST(Lex, IdentifiersFoldUnlessQuoted) {
    EXPECT_EQ(Kinds(Lex("Users \"Users\" \"a\"\"b\" _x1$ caf\xC3\xA9")),
              (std::vector<std::string>{"I:users", "Q:Users", "Q:a\"b", "I:_x1$", "I:caf\xC3\xA9", "END"}));
}

TEST(Lex, Strings) {
    EXPECT_EQ(Kinds(Lex("'it''s' E'a\\nb\\'c\\\\' e'\\t' 'back\\slash'")),
              (std::vector<std::string>{"S:it's", "S:a\nb'c\\", "S:\t", "S:back\\slash", "END"}));
    EXPECT_EQ(Kinds(Lex("$$a 'b' $c$$ $tag$x$$y$tag$ $q$$q$")),
              (std::vector<std::string>{"S:a 'b' $c", "S:x$$y", "S:", "END"}));
}

TEST(Lex, CommentsNumbersAndSymbols) {
    EXPECT_EQ(Kinds(Lex("a -- comment ( ' \"\n/* outer /* nested */ still */ b")),
              (std::vector<std::string>{"I:a", "I:b", "END"}));
    EXPECT_EQ(Kinds(Lex("12 3.5 .5 1e10 2E-3 1_000")),
              (std::vector<std::string>{"N:12", "N:3.5", "N:.5", "N:1e10", "N:2E-3", "N:1_000", "END"}));
    EXPECT_EQ(Kinds(Lex("(a.b, [c]); x::int >= $1 || y--z")),
              (std::vector<std::string>{"Y:(", "I:a", "Y:.", "I:b", "Y:,", "Y:[", "I:c", "Y:]", "Y:)", "Y:;",
                                        "I:x", "Y:::", "I:int", "Y:>=", "Y:$1", "Y:||", "I:y", "END"}));
}

TEST(Lex, Offsets) {
    std::vector<Token> t = Lex("  abc 'x'");
    ASSERT_EQ(t.size(), 3u);
    EXPECT_EQ(t[0].begin, 2u);
    EXPECT_EQ(t[0].end, 5u);
    EXPECT_EQ(t[1].begin, 6u);
    EXPECT_EQ(t[1].end, 9u);
    EXPECT_EQ(t[2].begin, 9u);
    EXPECT_EQ(t[2].kind, Token::Kind::End);
}

TEST(Lex, Errors) {
    struct Case {
        const char *source;
        const char *message;
        int position;
    };
    const Case cases[] = {
        {"a 'open", "unterminated quoted string", 3},
        {"a E'open\\'", "unterminated quoted string", 3},
        {"\"open", "unterminated quoted identifier", 1},
        {"x \"\"", "zero-length delimited identifier", 3},
        {"/* open /* nested */", "unterminated /* comment", 1},
        {"a $tag$ body", "unterminated dollar-quoted string", 3},
        {"a { b", "syntax error at or near \"{\"", 3},
        {"\xC3\xA9\xC3\xA9 \\", "syntax error at or near \"\\\"", 4},
    };
    for (const auto &c : cases) {
        SCOPED_TRACE(c.source);
        Error e = Catch([&] { Lex(c.source); });
        EXPECT_EQ(e.sqlstate(), "42601");
        EXPECT_STREQ(e.what(), c.message);
        EXPECT_EQ(e.position(), c.position);
        EXPECT_EQ(e.source(), c.source);
    }
}

TEST(Lex, IdentifierLength) {
    std::string ok(63, 'a');
    EXPECT_EQ(Lex(ok)[0].value, ok);
    EXPECT_EQ(Lex("\"" + ok + "\"")[0].value, ok);
    Error e = Catch([&] { Lex(ok + "a"); });
    EXPECT_EQ(e.sqlstate(), "42601");
    EXPECT_STREQ(e.what(), "identifier is too long");
    e = Catch([&] { Lex("\"" + ok + "A\""); });
    EXPECT_STREQ(e.what(), "identifier is too long");
}

TEST(Lex, SourceSizeLimit) {
    Error e = Catch([] { Lex(std::string((1 << 20) + 1, ' ')); });
    EXPECT_EQ(e.sqlstate(), "22023");
    EXPECT_NO_THROW(Lex(std::string(1 << 20, ' ')));
}

TEST(CharPosition, CountsCharactersNotBytes) {
    EXPECT_EQ(CharPosition("abc", 0), 1);
    EXPECT_EQ(CharPosition("abc", 2), 3);
    EXPECT_EQ(CharPosition("\xC3\xA9\xE2\x82\xAC"
                           "x",
                           5),
              3);
    EXPECT_EQ(CharPosition("ab", 99), 3);
}

// ------------------------------------------------------------------- CREATE

TEST(ParseCreateSync, Minimal) {
    CreateSync c = ParseCreate("create sync crm from users to hubspot key (id)");
    EXPECT_FALSE(c.or_replace);
    EXPECT_EQ(c.name, "crm");
    EXPECT_FALSE(c.model_is_query);
    EXPECT_EQ(c.model_schema, "");
    EXPECT_EQ(c.model_name, "users");
    EXPECT_EQ(c.server, "hubspot");
    EXPECT_EQ(c.key, (std::vector<std::string>{"id"}));
    EXPECT_EQ(c.mode, "upsert");
    EXPECT_FALSE(c.object.has_value());
    EXPECT_FALSE(c.match_on.has_value());
    EXPECT_TRUE(c.map.empty());
    EXPECT_FALSE(c.schedule.has_value());
    EXPECT_TRUE(c.options.empty());
    EXPECT_EQ(c.position, 1);
}

TEST(ParseCreateSync, EveryClause) {
    CreateSync c = ParseCreate(R"sql(
        CREATE OR REPLACE SYNC "CRM Contacts"
          FROM analytics."Active Users"
          TO "HubSpot" OBJECT 'contacts v2'
          KEY (tenant, "UserId")
          MATCH ON email
          MODE MIRROR
          MAP (lower(email) AS email, CAST(score AS text) AS "Lead Score", a[1] + (b) AS 'first name')
          SCHEDULE EVERY '15 minutes'
          WITH (batch_size = 500, timeout = '30s', dry = on, ratio = 1.5);
    )sql");
    EXPECT_TRUE(c.or_replace);
    EXPECT_EQ(c.name, "CRM Contacts");
    EXPECT_EQ(c.model_schema, "analytics");
    EXPECT_EQ(c.model_name, "Active Users");
    EXPECT_EQ(c.server, "HubSpot");
    EXPECT_EQ(c.object, std::optional<std::string>("contacts v2"));
    EXPECT_EQ(c.key, (std::vector<std::string>{"tenant", "UserId"}));
    EXPECT_EQ(c.match_on, std::optional<std::string>("email"));
    EXPECT_EQ(c.mode, "mirror");
    ASSERT_EQ(c.map.size(), 3u);
    EXPECT_EQ(c.map[0].expression, "lower(email)");
    EXPECT_EQ(c.map[0].field, "email");
    EXPECT_EQ(c.map[1].expression, "CAST(score AS text)");
    EXPECT_EQ(c.map[1].field, "Lead Score");
    EXPECT_EQ(c.map[2].expression, "a[1] + (b)");
    EXPECT_EQ(c.map[2].field, "first name");
    ASSERT_TRUE(c.schedule.has_value());
    EXPECT_EQ(c.schedule->kind, Schedule::Kind::Every);
    EXPECT_EQ(c.schedule->value, "15 minutes");
    ASSERT_EQ(c.options.size(), 4u);
    EXPECT_EQ(c.options[0].name, "batch_size");
    EXPECT_EQ(c.options[0].type, OptionItem::Type::Number);
    EXPECT_EQ(c.options[0].value, "500");
    EXPECT_EQ(c.options[1].type, OptionItem::Type::String);
    EXPECT_EQ(c.options[1].value, "30s");
    EXPECT_EQ(c.options[2].type, OptionItem::Type::Bool);
    EXPECT_EQ(c.options[2].value, "true");
    EXPECT_EQ(c.options[3].value, "1.5");
}

TEST(ParseCreateSync, ClausesInAnyOrder) {
    CreateSync c = ParseCreate("CREATE SYNC s KEY (id) MODE insert TO srv SCHEDULE MANUAL FROM t");
    EXPECT_EQ(c.model_name, "t");
    EXPECT_EQ(c.server, "srv");
    EXPECT_EQ(c.mode, "insert");
    ASSERT_TRUE(c.schedule.has_value());
    EXPECT_EQ(c.schedule->kind, Schedule::Kind::Manual);
}

TEST(ParseCreateSync, QueryModelIsKeptVerbatim) {
    CreateSync c = ParseCreate("CREATE SYNC s FROM (\n  SELECT id, (a + b) AS c -- the end )\n  FROM t\n) "
                               "TO srv KEY (id)");
    EXPECT_TRUE(c.model_is_query);
    EXPECT_EQ(c.model_query, "SELECT id, (a + b) AS c -- the end )\n  FROM t");
    EXPECT_EQ(c.ModelText(), c.model_query);
}

TEST(ParseCreateSync, Schedules) {
    auto sched = [](const std::string &clause) {
        CreateSync c = ParseCreate("CREATE SYNC s FROM t TO srv KEY (id) SCHEDULE " + clause);
        return c.schedule.value_or(Schedule{});
    };
    EXPECT_EQ(sched("MANUAL").kind, Schedule::Kind::Manual);
    Schedule s = sched("CRON '*/5 * * * *'");
    EXPECT_EQ(s.kind, Schedule::Kind::Cron);
    EXPECT_EQ(s.value, "*/5 * * * *");
    EXPECT_EQ(sched("on change").kind, Schedule::Kind::OnChange);
    s = sched("AFTER \"Load Users\"");
    EXPECT_EQ(s.kind, Schedule::Kind::After);
    EXPECT_EQ(s.value, "Load Users");
    EXPECT_STREQ(ParseError("CREATE SYNC s FROM t TO srv KEY (id) SCHEDULE EVERY 15").what(),
                 "syntax error at or near \"15\"");
    EXPECT_STREQ(ParseError("CREATE SYNC s FROM t TO srv KEY (id) SCHEDULE hourly").what(),
                 "syntax error at or near \"hourly\"");
}

TEST(ParseCreateSync, MissingClauses) {
    Error e = ParseError("CREATE SYNC s TO srv KEY (id)");
    EXPECT_EQ(e.sqlstate(), "42601");
    EXPECT_STREQ(e.what(), "syntax error at end of input");
    EXPECT_EQ(e.hint(), "Expected FROM model.");
    EXPECT_EQ(e.position(), 30);

    e = ParseError("CREATE SYNC s FROM t KEY (id)");
    EXPECT_EQ(e.hint(), "Expected TO destination_server.");
    e = ParseError("CREATE SYNC s FROM t TO srv");
    EXPECT_EQ(e.hint(), "Expected KEY (column, ...).");
    e = ParseError("CREATE SYNC");
    EXPECT_EQ(e.hint(), "Expected a sync name.");
}

TEST(ParseCreateSync, Errors) {
    struct Case {
        std::string source;
        std::string message;
        int position;
    };
    const Case cases[] = {
        {"CREATE SYNC s FROM t FROM u TO srv KEY (id)", "conflicting or redundant FROM clauses", 22},
        {"CREATE SYNC s FROM t TO srv KEY (id) KEY (x)", "conflicting or redundant KEY clauses", 38},
        {"CREATE SYNC s FROM t TO srv KEY (id, ID)", "column \"id\" appears twice in KEY", 38},
        {"CREATE SYNC s FROM t TO srv KEY (id) MODE merge", "unknown sync mode \"merge\"", 43},
        {"CREATE SYNC s FROM () TO srv KEY (id)", "empty model query", 20},
        {"CREATE SYNC s FROM (SELECT 1 TO srv KEY (id)", "unterminated parenthesis", 20},
        {"CREATE SYNC s FROM a.b.c TO srv KEY (id)", "cross-database references are not implemented", 23},
        {"CREATE SYNC s FROM t TO srv KEY (id) MAP (email)",
         "each MAP entry needs an expression and AS destination_field", 43},
        {"CREATE SYNC s FROM t TO srv KEY (id) MAP (AS email)",
         "each MAP entry needs an expression and AS destination_field", 43},
        {"CREATE SYNC s FROM t TO srv KEY (id) MAP (a AS b c)",
         "syntax error in MAP entry: expected one destination field after AS", 48},
        {"CREATE SYNC s FROM t TO srv KEY (id) MAP (a AS b,)", "syntax error at or near \",\"", 49},
        {"CREATE SYNC s FROM t TO srv KEY (id) MAP (a AS b, c AS b)",
         "destination field \"b\" is mapped twice", 56},
        {"CREATE SYNC s FROM t TO srv KEY (id) MAP ()", "MAP needs at least one entry", 42},
        {"CREATE SYNC s FROM t TO srv KEY (id) MAP (a AS '')", "invalid destination field name", 48},
        {"CREATE SYNC s FROM t TO srv KEY (id) WITH (a = 1, a = 2)", "option \"a\" is given twice", 51},
        {"CREATE SYNC s FROM t TO srv KEY (id) WITH (a = b)", "syntax error at or near \"b\"", 48},
        {"CREATE SYNC s FROM t TO srv KEY (id) BOGUS", "syntax error at or near \"BOGUS\"", 38},
        {"CREATE SYNC s FROM t TO srv KEY (id) CREATE SYNC", "syntax error at or near \"CREATE\"", 38},
        {"SELECT 1", "syntax error at or near \"SELECT\"", 1},
        {"", "no sync statement found", 1},
        {" ; ; ", "no sync statement found", 6},
    };
    for (const auto &c : cases) {
        SCOPED_TRACE(c.source);
        Error e = ParseError(c.source);
        EXPECT_EQ(e.sqlstate(), "42601");
        EXPECT_EQ(std::string(e.what()), c.message);
        EXPECT_EQ(e.position(), c.position);
    }
}

TEST(ParseCreateSync, ErrorPositionCountsCharacters) {
    // "é" is two bytes but one character.
    Error e = ParseError("CREATE SYNC \"\xC3\xA9\" FROM t TO srv KEY (id) BOGUS");
    EXPECT_STREQ(e.what(), "syntax error at or near \"BOGUS\"");
    EXPECT_EQ(e.position(), 40);
}

// ------------------------------------------------------------- ALTER, DROP

TEST(ParseAlterSync, Actions) {
    AlterSync a = ParseAlter("ALTER SYNC s RENAME TO \"New\"");
    EXPECT_EQ(a.name, "s");
    EXPECT_EQ(a.action, AlterSync::Action::Rename);
    EXPECT_EQ(a.new_name, "New");

    a = ParseAlter("alter sync s owner to bob");
    EXPECT_EQ(a.action, AlterSync::Action::Owner);
    EXPECT_EQ(a.new_owner, "bob");

    EXPECT_EQ(ParseAlter("ALTER SYNC s PAUSE").action, AlterSync::Action::Pause);
    EXPECT_EQ(ParseAlter("ALTER SYNC s RESUME").action, AlterSync::Action::Resume);
    EXPECT_EQ(ParseAlter("ALTER SYNC s DROP MAP").action, AlterSync::Action::DropMap);

    a = ParseAlter("ALTER SYNC s RESET (batch_size, timeout)");
    EXPECT_EQ(a.action, AlterSync::Action::ResetOptions);
    EXPECT_EQ(a.reset_options, (std::vector<std::string>{"batch_size", "timeout"}));

    a = ParseAlter("ALTER SYNC s SET MAP (x AS y)");
    EXPECT_EQ(a.action, AlterSync::Action::SetMap);
    ASSERT_EQ(a.fields.map.size(), 1u);
    EXPECT_EQ(a.fields.map[0].field, "y");

    a = ParseAlter("ALTER SYNC s SET MODE update");
    EXPECT_EQ(a.action, AlterSync::Action::SetMode);
    EXPECT_EQ(a.fields.mode, "update");

    a = ParseAlter("ALTER SYNC s SET SCHEDULE CRON '@daily'");
    EXPECT_EQ(a.action, AlterSync::Action::SetSchedule);
    ASSERT_TRUE(a.fields.schedule.has_value());
    EXPECT_EQ(a.fields.schedule->value, "@daily");

    a = ParseAlter("ALTER SYNC s SET KEY (a, b)");
    EXPECT_EQ(a.action, AlterSync::Action::SetKey);
    EXPECT_EQ(a.fields.key, (std::vector<std::string>{"a", "b"}));

    a = ParseAlter("ALTER SYNC s SET FROM (SELECT 1 AS id)");
    EXPECT_EQ(a.action, AlterSync::Action::SetModel);
    EXPECT_TRUE(a.fields.model_is_query);
    EXPECT_EQ(a.fields.model_query, "SELECT 1 AS id");

    a = ParseAlter("ALTER SYNC s SET TO other");
    EXPECT_EQ(a.action, AlterSync::Action::SetServer);
    EXPECT_EQ(a.fields.server, "other");

    for (const char *src :
         {"ALTER SYNC s SET (batch_size = 10)", "ALTER SYNC s SET WITH (batch_size = 10)"}) {
        a = ParseAlter(src);
        EXPECT_EQ(a.action, AlterSync::Action::SetOptions);
        ASSERT_EQ(a.fields.options.size(), 1u);
        EXPECT_EQ(a.fields.options[0].value, "10");
    }
}

TEST(ParseAlterSync, Errors) {
    Error e = ParseError("ALTER SYNC s");
    EXPECT_STREQ(e.what(), "syntax error at end of input");
    EXPECT_EQ(e.hint(), "Expected RENAME TO, OWNER TO, PAUSE, RESUME, SET, RESET or DROP MAP.");
    e = ParseError("ALTER SYNC s SET colour");
    EXPECT_STREQ(e.what(), "syntax error at or near \"colour\"");
    e = ParseError("ALTER SYNC s RENAME s2");
    EXPECT_EQ(e.hint(), "Expected TO.");
    e = ParseError("ALTER SYNC s RESET (a = 1)");
    EXPECT_EQ(e.hint(), "Expected \")\".");
}

TEST(ParseDropSync, NamesAndIfExists) {
    std::vector<Statement> st = Parse("DROP SYNC a; drop sync if exists \"B\", c;");
    ASSERT_EQ(st.size(), 2u);
    const DropSync &d1 = std::get<DropSync>(st[0]);
    EXPECT_FALSE(d1.if_exists);
    EXPECT_EQ(d1.names, (std::vector<std::string>{"a"}));
    EXPECT_EQ(d1.position, 1);
    const DropSync &d2 = std::get<DropSync>(st[1]);
    EXPECT_TRUE(d2.if_exists);
    EXPECT_EQ(d2.names, (std::vector<std::string>{"B", "c"}));
    EXPECT_EQ(d2.position, 14);
}

TEST(Parse, SeveralStatementsAllOrNothing) {
    std::vector<Statement> st =
        Parse("CREATE SYNC a FROM t TO srv KEY (id);\nALTER SYNC a PAUSE;;\nDROP SYNC a");
    ASSERT_EQ(st.size(), 3u);
    EXPECT_TRUE(std::holds_alternative<CreateSync>(st[0]));
    EXPECT_TRUE(std::holds_alternative<AlterSync>(st[1]));
    EXPECT_TRUE(std::holds_alternative<DropSync>(st[2]));
    // One bad statement fails the lot.
    Error e = ParseError("DROP SYNC a; DROP SYNC");
    EXPECT_STREQ(e.what(), "syntax error at end of input");
    // Statements need semicolons between them.
    e = ParseError("DROP SYNC a DROP SYNC b");
    EXPECT_STREQ(e.what(), "syntax error at or near \"DROP\"");
    EXPECT_EQ(e.hint(), "Separate statements with a semicolon.");
    EXPECT_EQ(e.position(), 13);
}

// -------------------------------------------------------------- formatting

TEST(QuoteIdentIfNeeded, Rules) {
    EXPECT_EQ(QuoteIdentIfNeeded("users"), "users");
    EXPECT_EQ(QuoteIdentIfNeeded("_x1"), "_x1");
    EXPECT_EQ(QuoteIdentIfNeeded("Users"), "\"Users\"");
    EXPECT_EQ(QuoteIdentIfNeeded("1abc"), "\"1abc\"");
    EXPECT_EQ(QuoteIdentIfNeeded("a b"), "\"a b\"");
    EXPECT_EQ(QuoteIdentIfNeeded("a$b"), "\"a$b\"");
    EXPECT_EQ(QuoteIdentIfNeeded("a\"b"), "\"a\"\"b\"");
    EXPECT_EQ(QuoteIdentIfNeeded(""), "\"\"");
    EXPECT_EQ(QuoteIdentIfNeeded("caf\xC3\xA9"), "\"caf\xC3\xA9\"");
    // Keywords, PostgreSQL's reserved ones and the sync language's own.
    for (const char *kw :
         {"select", "from",   "table",  "user",  "to",     "on",       "with",    "as",     "sync",
          "key",    "map",    "mode",   "match", "object", "schedule", "replace", "upsert", "update",
          "insert", "mirror", "manual", "every", "cron",   "change",   "after",   "pause",  "resume",
          "rename", "owner",  "set",    "reset", "exists", "if",       "drop",    "alter"})
        EXPECT_EQ(QuoteIdentIfNeeded(kw), std::string("\"") + kw + "\"") << kw;
}

TEST(FormatCreateSync, ExactText) {
    CreateSync c =
        ParseCreate("create sync crm from public.users to hubspot object contacts key (id, \"Org\") "
                    "match on email mode mirror map (lower(email) as email, x as \"Lead Score\") "
                    "schedule every '15 minutes' with (batch_size = 50, timeout = '30s', dry = off)");
    EXPECT_EQ(FormatCreateSync(c), "CREATE SYNC crm\n"
                                   "  FROM public.users\n"
                                   "  TO hubspot OBJECT contacts\n"
                                   "  KEY (id, \"Org\")\n"
                                   "  MATCH ON email\n"
                                   "  MODE MIRROR\n"
                                   "  MAP (lower(email) AS email,\n"
                                   "       x AS 'Lead Score')\n"
                                   "  SCHEDULE EVERY '15 minutes'\n"
                                   "  WITH (batch_size = 50, timeout = '30s', dry = false);");
}

TEST(FormatCreateSync, RoundTrips) {
    const char *sources[] = {
        "CREATE SYNC s FROM t TO srv KEY (id)",
        "CREATE SYNC \"Odd \"\"Name\"\"\" FROM \"My Schema\".\"select\" TO \"to\" KEY (\"key\", \"ID\")",
        "CREATE SYNC s FROM (SELECT 1 AS id -- comment\n) TO srv KEY (id) MODE INSERT",
        "CREATE SYNC s FROM t TO srv OBJECT 'odd object' KEY (id) MATCH ON 'E-mail' MAP (a AS 'x y', b AS z)",
        "CREATE SYNC s FROM t TO srv KEY (id) SCHEDULE CRON '0 6 * * mon-fri'",
        "CREATE SYNC s FROM t TO srv KEY (id) SCHEDULE ON CHANGE",
        "CREATE SYNC s FROM t TO srv KEY (id) SCHEDULE AFTER \"Other Sync\"",
        "CREATE SYNC s FROM t TO srv KEY (id) WITH (note = 'it''s', path = E'C:\\\\dir', tag = E'$v$x')",
        "CREATE SYNC s FROM t TO srv KEY (id) MAP (CAST(a AS text) || 'x' AS f, (b) AS \"Map\")",
    };
    for (const char *src : sources) {
        SCOPED_TRACE(src);
        CreateSync first = ParseCreate(src);
        std::string text = FormatCreateSync(first);
        SCOPED_TRACE(text);
        CreateSync second = ParseCreate(text);
        ExpectSameSync(first, second);
        EXPECT_EQ(FormatCreateSync(second), text); // a fixed point
    }
}

TEST(FormatCreateSync, LongFieldNamesRoundTrip) {
    // Regression test (fixed bug in src/core/language/sync_language.cpp, FieldText, line 530): field, OBJECT
    // and MATCH ON names may be 1 to 255 bytes (they can be written as strings), but FieldText writes them as
    // identifiers, which the lexer limits to 63 bytes. "MAP (x AS '<100 x f>')" parses, yet its
    // FormatCreateSync text "MAP (x AS fff...f)" fails to parse back with "identifier is too long", so
    // revetl.sync_ddl output for such a sync cannot be run again. Expected: names longer than 63 bytes are
    // written as string constants.
    std::string long_field(100, 'f');
    CreateSync first =
        ParseCreate("CREATE SYNC s FROM t TO srv OBJECT '" + long_field + "' KEY (id) MATCH ON '" +
                    long_field + "' MAP (x AS '" + long_field + "')");
    CreateSync second = ParseCreate(FormatCreateSync(first));
    ExpectSameSync(first, second);
}

TEST(FormatCreateSync, DollarQuotedValueEndingLikeTheTag) {
    // Regression test (fixed bug in src/core/language/sync_language.cpp, StringConstant, lines 521-527): the
    // tag is chosen so that it does not occur inside the value, but the value's end and the closing tag can
    // still form the tag: the value a\$v (it has a backslash, so it is dollar-quoted) is written as
    // $v$a\$v$v$, and the lexer closes the string at the first "$v$", reading the value as "a\" followed by a
    // stray "v$". Expected: the value round-trips unchanged (e.g. pick a tag that does not occur in value +
    // tag).
    CreateSync first = ParseCreate("CREATE SYNC s FROM t TO srv KEY (id) WITH (note = E'a\\\\$v')");
    ASSERT_EQ(first.options.size(), 1u);
    EXPECT_EQ(first.options[0].value, "a\\$v");
    CreateSync second = ParseCreate(FormatCreateSync(first));
    ExpectSameSync(first, second);
}

TEST(CreateSyncModelText, QuotesAsNeeded) {
    CreateSync c;
    c.model_name = "users";
    EXPECT_EQ(c.ModelText(), "users");
    c.model_schema = "Sales";
    c.model_name = "open deals";
    EXPECT_EQ(c.ModelText(), "\"Sales\".\"open deals\"");
    c.model_schema = "s";
    c.model_name = "a\"b";
    EXPECT_EQ(c.ModelText(), "s.\"a\"\"b\"");
}

TEST(ParseCreateSync, AudienceModeNamesItsAudience) {
    CreateSync c = ParseCreate("create sync vip from users to lists key (id) mode audience '12345'");
    EXPECT_EQ(c.mode, "audience");
    ASSERT_TRUE(c.audience.has_value());
    EXPECT_EQ(*c.audience, "12345");
    EXPECT_TRUE(Contains(FormatCreateSync(c), "\n  MODE AUDIENCE '12345';"));
    // The formatted statement parses back the same.
    CreateSync again = ParseCreate(FormatCreateSync(c));
    EXPECT_EQ(again.audience, c.audience);
    EXPECT_EQ(again.mode, "audience");
    // Other modes have none.
    EXPECT_FALSE(ParseCreate("create sync vip from users to lists key (id) mode mirror").audience);

    auto alter = std::get<AlterSync>(Parse("alter sync vip set mode audience 'vip customers'")[0]);
    EXPECT_EQ(alter.action, AlterSync::Action::SetMode);
    EXPECT_EQ(alter.fields.audience, std::optional<std::string>("vip customers"));
}

TEST(ParseCreateSync, AudienceModeErrors) {
    Error e = ParseError("create sync vip from users to lists key (id) mode audience");
    EXPECT_STREQ(e.what(), "syntax error at end of input");
    EXPECT_TRUE(Contains(e.hint(), "AUDIENCE '12345'"));
    e = ParseError("create sync vip from users to lists key (id) mode audience ''");
    EXPECT_STREQ(e.what(), "invalid audience");
    e = ParseError("create sync vip from users to lists key (id) mode audiences '1'");
    EXPECT_STREQ(e.what(), "unknown sync mode \"audiences\"");
    EXPECT_TRUE(Contains(e.hint(), "Perhaps you meant AUDIENCE."));
    e = ParseError("create sync vip from users to lists key (id) mode upsrt");
    EXPECT_TRUE(Contains(e.hint(), "Perhaps you meant UPSERT."));
    // A quoted identifier is not a string.
    e = ParseError("create sync vip from users to lists key (id) mode audience \"12\"");
    EXPECT_TRUE(Contains(e.hint(), "the audience in quotes"));
}
