#include "core/common/sql_text.hpp"

#include <gtest/gtest.h>

#include <string>

using revetl::QualifiedName;
using revetl::QuoteIdent;
using revetl::QuoteLiteral;

TEST(QuoteIdent, AlwaysDoubleQuotes) {
    EXPECT_EQ(QuoteIdent("users"), "\"users\"");
    EXPECT_EQ(QuoteIdent("Users"), "\"Users\"");
    EXPECT_EQ(QuoteIdent("select"), "\"select\"");
    EXPECT_EQ(QuoteIdent(""), "\"\"");
}

TEST(QuoteIdent, DoublesEmbeddedQuotes) {
    EXPECT_EQ(QuoteIdent("a\"b"), "\"a\"\"b\"");
    EXPECT_EQ(QuoteIdent("\""), "\"\"\"\"");
    EXPECT_EQ(QuoteIdent("x\"\"y"), "\"x\"\"\"\"y\"");
    // An attempt to break out of the identifier stays inside it.
    EXPECT_EQ(QuoteIdent("t\"; DROP TABLE x; --"), "\"t\"\"; DROP TABLE x; --\"");
}

TEST(QuoteIdent, LeavesOtherCharactersAlone) {
    EXPECT_EQ(QuoteIdent("a'b\\c d.e"), "\"a'b\\c d.e\"");
    EXPECT_EQ(QuoteIdent("caf\xC3\xA9"), "\"caf\xC3\xA9\"");
}

TEST(QuoteLiteral, PlainText) {
    EXPECT_EQ(QuoteLiteral("hello"), "'hello'");
    EXPECT_EQ(QuoteLiteral(""), "''");
    EXPECT_EQ(QuoteLiteral("a\"b"), "'a\"b'");
}

TEST(QuoteLiteral, DoublesSingleQuotes) {
    EXPECT_EQ(QuoteLiteral("it's"), "'it''s'");
    EXPECT_EQ(QuoteLiteral("'"), "''''");
    EXPECT_EQ(QuoteLiteral("x'); DROP TABLE t; --"), "'x''); DROP TABLE t; --'");
}

TEST(QuoteLiteral, BackslashUsesEStringAndIsDoubled) {
    EXPECT_EQ(QuoteLiteral("a\\b"), "E'a\\\\b'");
    EXPECT_EQ(QuoteLiteral("\\"), "E'\\\\'");
    EXPECT_EQ(QuoteLiteral("\\'"), "E'\\\\'''");
    // No backslash: no E prefix even with quotes.
    EXPECT_EQ(QuoteLiteral("''").front(), '\'');
}

TEST(QualifiedName, QuotesBothParts) {
    EXPECT_EQ(QualifiedName("public", "users"), "\"public\".\"users\"");
    EXPECT_EQ(QualifiedName("my\"schema", "t.x"), "\"my\"\"schema\".\"t.x\"");
    EXPECT_EQ(QualifiedName("", ""), "\"\".\"\"");
}
