// Quoting for SQL text that revetl generates. Every identifier that reaches
// generated SQL goes through QuoteIdent, every value through QuoteLiteral;
// nothing a user typed is ever pasted in bare.
#pragma once

#include <string>
#include <string_view>

namespace revetl {

// Always double-quotes, so that case, keywords and odd characters survive.
std::string QuoteIdent(std::string_view ident);

// A string literal, as PostgreSQL's quote_literal writes it: E'' when the text
// holds a backslash, so the result is the same whatever
// standard_conforming_strings says.
std::string QuoteLiteral(std::string_view text);

// schema.name, each part quoted.
std::string QualifiedName(std::string_view schema, std::string_view name);

} // namespace revetl
