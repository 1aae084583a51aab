// Keeps secrets out of everything revetl stores, logs or returns. A
// destination may echo what it was sent (an Authorization header, a query
// string with an API key) in its error answers; those answers end up in run
// errors and rejected rows. Every secret revetl knows for a destination is
// replaced by "[redacted]" before any text leaves the run, in the forms it
// travels in: as written, Base64-encoded (Basic authentication) and
// percent-encoded (query strings).
#pragma once

#include <string>
#include <vector>

namespace revetl {

class Redactor {
public:
    static constexpr const char *kMark = "[redacted]";
    // Shorter values are not treated as secrets: replacing every occurrence
    // of two or three characters would make messages unreadable and no
    // credential is that short.
    static constexpr size_t kMinSecretLength = 4;

    void AddSecret(const std::string &secret);

    // `text` with every known secret replaced, then cut to `max_bytes` (at
    // a UTF-8 character boundary, with "..." appended when cut).
    std::string Apply(const std::string &text, size_t max_bytes = 2000) const;

    bool Empty() const { return secrets_.empty(); }

private:
    std::vector<std::string> secrets_; // longest first, so that no part of one survives
};

} // namespace revetl
