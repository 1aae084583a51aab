// Encodings of text as it travels in HTTP: Base64 (basic authentication)
// and percent-encoding (query strings, form bodies, path segments). One
// place, so that what auth sends and what redaction looks for are the same.
#pragma once

#include <string>

namespace revetl {

// RFC 4648 base64, with padding.
std::string Base64(const std::string &data);

// Percent-encoding of everything but RFC 3986's unreserved characters.
std::string UrlEncode(const std::string &text);

} // namespace revetl
