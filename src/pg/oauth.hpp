// OAuth access tokens for a run: kept in shared memory per credential set
// (see OAuthTokenSlot), fetched by one process at a time while the others
// wait, refreshed before they expire and once after a 401, and a refresh
// token the vendor rotates stored back into the user mapping.
#pragma once

#include "core/connectors/spec.hpp"
#include "core/delivery/redaction.hpp"

#include "pg/pg_includes.hpp"

#include <functional>
#include <string>

namespace revetl::pg {

class OAuthSession {
public:
    struct Hooks {
        std::function<void()> check_interrupts;
        std::function<void(long ms)> sleep;
        std::function<double()> random;
    };

    // `credentials` are the run's (their oauth_token is filled in); the
    // secrets learnt (access tokens, rotated refresh tokens) go to
    // `redactor`. Host policy: `allowed_hosts` (revetl.allowed_hosts).
    OAuthSession(Oid server, Oid user_mapping, std::string server_name, Credentials &credentials,
                 long timeout_ms, long connect_timeout_ms, std::string allowed_hosts, Redactor &redactor,
                 Hooks hooks);

    // Makes the credentials hold a token that is not due for a refresh.
    // Returns "" or why the run must stop (naming the server, no secret).
    std::string Ensure();

    // A request sent with `sent_token` was refused as expired: a new token,
    // unless another request or run already replaced that one.
    std::string Refresh(const std::string &sent_token);

    // The token in use ("" before the first Ensure).
    std::string Current() const;

private:
    std::string Obtain(const std::string *bad_token);
    std::string CheckInstanceUrl(std::string error) const;
    std::string RefreshNow(struct OAuthTokenSlot *slot, const std::string *bad_token);

    Oid server_;
    Oid user_mapping_;
    std::string server_name_;
    Credentials &credentials_;
    long timeout_ms_;
    long connect_timeout_ms_;
    std::string allowed_hosts_;
    Redactor &redactor_;
    Hooks hooks_;
};

} // namespace revetl::pg
