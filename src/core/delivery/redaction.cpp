#include "core/delivery/redaction.hpp"

#include <algorithm>
#include <cctype>

namespace revetl {

std::string Base64Encode(const std::string &data) {
    static const char kTable[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    std::string out;
    size_t i = 0;
    while (i + 2 < data.size()) {
        unsigned v = (static_cast<unsigned char>(data[i]) << 16) |
                     (static_cast<unsigned char>(data[i + 1]) << 8) | static_cast<unsigned char>(data[i + 2]);
        out += kTable[(v >> 18) & 63];
        out += kTable[(v >> 12) & 63];
        out += kTable[(v >> 6) & 63];
        out += kTable[v & 63];
        i += 3;
    }
    if (i + 1 == data.size()) {
        unsigned v = static_cast<unsigned char>(data[i]) << 16;
        out += kTable[(v >> 18) & 63];
        out += kTable[(v >> 12) & 63];
        out += "==";
    } else if (i + 2 == data.size()) {
        unsigned v =
            (static_cast<unsigned char>(data[i]) << 16) | (static_cast<unsigned char>(data[i + 1]) << 8);
        out += kTable[(v >> 18) & 63];
        out += kTable[(v >> 12) & 63];
        out += kTable[(v >> 6) & 63];
        out += '=';
    }
    return out;
}

std::string PercentEncode(const std::string &data) {
    static const char kHex[] = "0123456789ABCDEF";
    std::string out;
    for (unsigned char c : data) {
        if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
            out += static_cast<char>(c);
        } else {
            out += '%';
            out += kHex[c >> 4];
            out += kHex[c & 15];
        }
    }
    return out;
}

void Redactor::AddSecret(const std::string &secret) {
    if (secret.size() < kMinSecretLength)
        return;
    for (std::string form : {secret, Base64Encode(secret), PercentEncode(secret)}) {
        // Base64 of a value ends in padding that may be cut off in an echo.
        while (!form.empty() && form.back() == '=')
            form.pop_back();
        if (form.size() >= kMinSecretLength &&
            std::find(secrets_.begin(), secrets_.end(), form) == secrets_.end())
            secrets_.push_back(form);
    }
    std::sort(secrets_.begin(), secrets_.end(),
              [](const std::string &a, const std::string &b) { return a.size() > b.size(); });
}

std::string Redactor::Apply(const std::string &text, size_t max_bytes) const {
    std::string out = text;
    for (const auto &s : secrets_) {
        for (size_t at = out.find(s); at != std::string::npos;
             at = out.find(s, at + std::char_traits<char>::length(kMark)))
            out.replace(at, s.size(), kMark);
    }
    if (out.size() <= max_bytes)
        return out;
    size_t cut = max_bytes;
    // Do not split a UTF-8 sequence: back up over continuation bytes.
    while (cut > 0 && (static_cast<unsigned char>(out[cut]) & 0xC0) == 0x80)
        cut--;
    return out.substr(0, cut) + "...";
}

} // namespace revetl
