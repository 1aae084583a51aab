#include "core/delivery/redaction.hpp"

#include "core/common/encoding.hpp"

#include <algorithm>
#include <cctype>

namespace revetl {

void Redactor::AddSecret(const std::string &secret) {
    if (secret.size() < kMinSecretLength)
        return;
    // Base64(secret + ":") is the secret as a Basic user with an empty
    // password (Segment's write key), whose encoding shares no whole
    // suffix with Base64(secret).
    for (std::string form : {secret, Base64(secret), Base64(secret + ":"), UrlEncode(secret)}) {
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
