#include "core/common/sql_text.hpp"

namespace revetl {

std::string QuoteIdent(std::string_view ident) {
    std::string out;
    out.reserve(ident.size() + 2);
    out.push_back('"');
    for (char c : ident) {
        if (c == '"')
            out.push_back('"');
        out.push_back(c);
    }
    out.push_back('"');
    return out;
}

std::string QuoteLiteral(std::string_view text) {
    std::string out;
    out.reserve(text.size() + 3);
    if (text.find('\\') != std::string_view::npos)
        out.push_back('E');
    out.push_back('\'');
    for (char c : text) {
        if (c == '\'' || c == '\\')
            out.push_back(c);
        out.push_back(c);
    }
    out.push_back('\'');
    return out;
}

std::string QualifiedName(std::string_view schema, std::string_view name) {
    return QuoteIdent(schema) + "." + QuoteIdent(name);
}

} // namespace revetl
