#include "pg/oauth.hpp"

#include "core/common/error.hpp"
#include "core/connectors/connector.hpp"
#include "core/connectors/options.hpp"
#include "core/delivery/host_policy.hpp"
#include "pg/catalog.hpp"
#include "pg/guard.hpp"
#include "pg/shared_state.hpp"
#include "pg/spi.hpp"

#include <cstring>

namespace revetl::pg {

namespace {

// Refreshes of one credential set start at most this often: a destination
// that refuses every new token at once cannot make runs hammer its token
// endpoint (each 401 waits for the next slot instead).
constexpr int64 kMinRefreshIntervalMs = 1000;
// A failed refresh is answered from memory this long, so that runs queued
// behind a dead refresh token do not each ask the endpoint again.
constexpr int64 kFailureMemoryMs = 30000;

HttpClient &TokenClient() {
    // Its own client: the engine's client's Poll must only see deliveries.
    static HttpClient client;
    return client;
}

int64 NowMs() {
    int64 ms = 0;
    PgGuard([&] { ms = GetCurrentTimestamp() / 1000; });
    return ms;
}

void CopyText(char *dst, size_t size, const std::string &src) {
    size_t n = std::min(size - 1, src.size());
    memcpy(dst, src.data(), n);
    dst[n] = '\0';
}

// Callers hold g_shared->lock.
OAuthTokenSlot *FindSlot(Oid server, Oid umid) {
    for (auto &s : g_shared->tokens)
        if (s.dboid == MyDatabaseId && s.server == server && s.umid == umid)
            return &s;
    return nullptr;
}

// A free slot, else the least recently used one nobody is refreshing.
OAuthTokenSlot *TakeSlot(Oid server, Oid umid) {
    OAuthTokenSlot *pick = nullptr;
    for (auto &s : g_shared->tokens) {
        if (s.dboid == InvalidOid) {
            pick = &s;
            break;
        }
        if (s.refresher == 0 && (!pick || s.last_used_ms < pick->last_used_ms))
            pick = &s;
    }
    if (pick) {
        memset(pick, 0, sizeof *pick);
        pick->dboid = MyDatabaseId;
        pick->server = server;
        pick->umid = umid;
    }
    return pick;
}

// A process that exits mid-refresh without unwinding (FATAL, proc_exit)
// releases its slots here, so that other runs need not wait out the
// refresh budget before they take over.
void ReleaseSlotsAtExit(int, Datum) {
    if (!g_shared)
        return;
    bool released = false;
    LWLockAcquire(g_shared->lock, LW_EXCLUSIVE);
    for (auto &s : g_shared->tokens)
        if (s.dboid != InvalidOid && s.refresher == MyProcPid) {
            s.refresher = 0;
            released = true;
        }
    LWLockRelease(g_shared->lock);
    if (released)
        ConditionVariableBroadcast(&g_shared->token_refreshed);
}

} // namespace

OAuthSession::OAuthSession(Oid server, Oid user_mapping, std::string server_name, Credentials &credentials,
                           long timeout_ms, long connect_timeout_ms, std::string allowed_hosts,
                           Redactor &redactor, Hooks hooks)
    : server_(server), user_mapping_(user_mapping), server_name_(std::move(server_name)),
      credentials_(credentials), timeout_ms_(timeout_ms), connect_timeout_ms_(connect_timeout_ms),
      allowed_hosts_(std::move(allowed_hosts)), redactor_(redactor), hooks_(std::move(hooks)) {
    if (!credentials_.oauth_token)
        credentials_.oauth_token = std::make_shared<OAuthToken>();
    static bool exit_callback = false;
    if (!exit_callback) {
        PgGuard([] { before_shmem_exit(ReleaseSlotsAtExit, 0); });
        exit_callback = true;
    }
}

std::string OAuthSession::Current() const {
    return credentials_.oauth_token ? credentials_.oauth_token->access_token : std::string();
}

std::string OAuthSession::Ensure() {
    return CheckInstanceUrl(Obtain(nullptr));
}

std::string OAuthSession::Refresh(const std::string &sent_token) {
    return CheckInstanceUrl(Obtain(&sent_token));
}

// Salesforce's token answer names where later calls go (instance_url): a
// destination like any other, so its host must pass revetl.allowed_hosts
// before a connector sends anything there (the address policy then checks
// every address it resolves to).
std::string OAuthSession::CheckInstanceUrl(std::string error) const {
    if (!error.empty() || !credentials_.oauth_token)
        return error;
    const std::string &url = credentials_.oauth_token->instance_url;
    if (url.empty())
        return {};
    std::string host = UrlHost(url);
    bool web = url.rfind("https://", 0) == 0 || url.rfind("http://", 0) == 0;
    if (!web || host.empty() || !HostAllowed(host, allowed_hosts_))
        return "the instance_url host \"" + Truncate(host, 200) +
               "\" that the OAuth token endpoint of server \"" + server_name_ +
               "\" answered is not in revetl.allowed_hosts";
    return {};
}

std::string OAuthSession::Obtain(const std::string *bad_token) {
    // How long a run waits for another process's refresh: all its attempts
    // and their backoff, with room to spare; a refresher that takes longer
    // is taken for dead (its process may have crashed mid-refresh).
    const int64 refresh_budget_ms = kTokenAttempts * (timeout_ms_ + 8000) + 10000;
    const int64 wait_until = NowMs() + refresh_budget_ms;
    enum class Action { Use, Failed, Wait, RateWait, Refresh };
    for (;;) {
        hooks_.check_interrupts();
        Action action = Action::Refresh;
        std::string token, instance_url, failure;
        int64 rate_wait_ms = 0;
        OAuthTokenSlot *slot = nullptr;
        const uint64 hash = OAuthCredentialHash(credentials_.oauth);
        const int64 now = NowMs();
        PgGuard([&] {
            LWLockAcquire(g_shared->lock, LW_EXCLUSIVE);
            slot = FindSlot(server_, user_mapping_);
            const bool ours = slot && (slot->cred_hash == hash || slot->prev_hash == hash);
            if (slot && slot->refresher != 0 && now - slot->refresh_started_ms < refresh_budget_ms) {
                action = Action::Wait;
            } else if (ours && slot->has_token && !TokenNeedsRefresh(slot->refresh_at_ms, now) &&
                       !(bad_token && *bad_token == slot->access_token)) {
                action = Action::Use;
                token = slot->access_token;
                instance_url = slot->instance_url;
                slot->last_used_ms = now;
            } else if (slot && slot->cred_hash == hash && now < slot->failed_until_ms) {
                action = Action::Failed;
                failure = slot->failure;
            } else {
                if (!slot)
                    slot = TakeSlot(server_, user_mapping_);
                if (slot && now - slot->last_refresh_ms < kMinRefreshIntervalMs) {
                    action = Action::RateWait;
                    rate_wait_ms = kMinRefreshIntervalMs - (now - slot->last_refresh_ms);
                } else if (slot) {
                    slot->refresher = MyProcPid;
                    slot->refresh_started_ms = now;
                }
            }
            LWLockRelease(g_shared->lock);
        });
        if (action != Action::Wait)
            PgGuard([] { ConditionVariableCancelSleep(); });
        switch (action) {
        case Action::Use:
            // Called before every request: the redactor learns a token once.
            if (credentials_.oauth_token->access_token != token) {
                credentials_.oauth_token->access_token = token;
                credentials_.oauth_token->instance_url = instance_url;
                credentials_.oauth_token->token_type = "bearer";
                redactor_.AddSecret(token);
            }
            return {};
        case Action::Failed:
            return failure;
        case Action::Wait:
            if (now > wait_until)
                return "timed out waiting for another run's OAuth token refresh for server \"" +
                       server_name_ + "\"";
            PgGuard([] {
                (void)ConditionVariableTimedSleep(&g_shared->token_refreshed, 250, PG_WAIT_EXTENSION);
            });
            continue;
        case Action::RateWait:
            hooks_.sleep(static_cast<long>(rate_wait_ms));
            continue;
        case Action::Refresh:
            return RefreshNow(slot, bad_token);
        }
    }
}

std::string OAuthSession::RefreshNow(OAuthTokenSlot *slot, const std::string *bad_token) {
    // Whatever way this ends, the slot is released and the waiters woken;
    // a failure is remembered for the credentials it was for.
    std::string failure;
    uint64 failed_hash = OAuthCredentialHash(credentials_.oauth);
    bool done = false;
    auto release = [&](const TokenAnswer *answer, uint64 hash, uint64 prev_hash) {
        if (!slot)
            return;
        const int64 now = NowMs();
        PgGuard([&] {
            LWLockAcquire(g_shared->lock, LW_EXCLUSIVE);
            if (slot->refresher == MyProcPid && slot->server == server_ && slot->umid == user_mapping_) {
                slot->refresher = 0;
                slot->last_refresh_ms = now;
                slot->last_used_ms = now;
                if (answer) {
                    slot->cred_hash = hash;
                    slot->prev_hash = prev_hash;
                    slot->has_token = true;
                    CopyText(slot->access_token, sizeof slot->access_token, answer->access_token);
                    CopyText(slot->instance_url, sizeof slot->instance_url, answer->instance_url);
                    slot->refresh_at_ms = TokenRefreshAtMs(now, answer->expires_in_s);
                    slot->failed_until_ms = 0;
                    slot->failure[0] = '\0';
                } else if (!failure.empty()) {
                    slot->cred_hash = hash;
                    slot->prev_hash = 0;
                    slot->has_token = false;
                    memset(slot->access_token, 0, sizeof slot->access_token);
                    slot->failed_until_ms = now + kFailureMemoryMs;
                    CopyText(slot->failure, sizeof slot->failure, failure);
                }
            }
            LWLockRelease(g_shared->lock);
            ConditionVariableBroadcast(&g_shared->token_refreshed);
        });
    };
    struct ReleaseOnExit {
        std::function<void()> f;
        ~ReleaseOnExit() {
            try {
                f();
            } catch (...) {
            }
        }
    } release_on_exit{[&] {
        if (!done)
            release(nullptr, failed_hash, 0);
    }};
    // A failure is recorded here, not by release_on_exit: `return failure`
    // would move the text out before the destructor looks at it.
    auto fail = [&](const std::string &text) {
        failure = text;
        done = true;
        release(nullptr, failed_hash, 0);
        return text;
    };

    // The mapping as it is now: another run may have stored a rotated
    // refresh token since this run read it, or its owner set a new one.
    std::optional<OptionList> options;
    BeginTransaction("revetl: reading a user mapping");
    options = LoadUserMappingById(user_mapping_);
    CommitTransaction();
    OAuthConfig fresh = options ? OAuthConfigFromOptions(*options) : OAuthConfig();
    if (!options || !fresh.Configured() || fresh.token_url.empty() || fresh.client_id.empty() ||
        fresh.client_secret.empty()) {
        return fail("the user mapping for server \"" + server_name_ +
                    "\" no longer holds OAuth credentials (it was changed during the run)");
    }
    for (const std::string *s : {&fresh.client_secret, &fresh.refresh_token})
        redactor_.AddSecret(*s);
    credentials_.oauth = fresh;
    const uint64 hash = OAuthCredentialHash(fresh);
    failed_hash = hash;

    // Another run stored a rotated token and fetched an access token with
    // it while this run read the old options: use that one.
    bool reuse = false;
    const int64 now = NowMs();
    PgGuard([&] {
        LWLockAcquire(g_shared->lock, LW_SHARED);
        if (slot && slot->has_token && slot->cred_hash == hash &&
            !TokenNeedsRefresh(slot->refresh_at_ms, now) &&
            !(bad_token && *bad_token == slot->access_token)) {
            reuse = true;
            credentials_.oauth_token->access_token = slot->access_token;
            credentials_.oauth_token->instance_url = slot->instance_url;
        }
        LWLockRelease(g_shared->lock);
    });
    if (reuse) {
        redactor_.AddSecret(credentials_.oauth_token->access_token);
        return {}; // the slot is released by release_on_exit, its token kept
    }

    // The token endpoint is a destination like any other: the same host
    // policy, for its name and every address it resolves to.
    std::string host = UrlHost(fresh.token_url);
    if (!HostAllowed(host, allowed_hosts_)) {
        return fail("OAuth token endpoint host \"" + host + "\" of server \"" + server_name_ +
                    "\" is not in revetl.allowed_hosts");
    }
    TokenClient().SetAddressPolicy(std::make_shared<HostPolicy>(allowed_hosts_));
    TokenFetchHooks fetch_hooks;
    fetch_hooks.check_interrupts = hooks_.check_interrupts;
    fetch_hooks.sleep = hooks_.sleep;
    fetch_hooks.random = hooks_.random;
    TokenResult r =
        FetchToken(TokenClient(), fresh, server_name_, timeout_ms_, connect_timeout_ms_, fetch_hooks);
    if (r.failure != TokenFailure::None)
        return fail(r.error + (r.hint.empty() ? std::string() : ". " + r.hint));
    redactor_.AddSecret(r.answer.access_token);
    redactor_.AddSecret(r.answer.refresh_token);

    // A rotated refresh token replaces the old one, which the vendor no
    // longer honours, in the user mapping: in a transaction of its own, by
    // a catalog update that puts the secret in no statement text.
    uint64 new_hash = hash;
    uint64 prev_hash = 0;
    if (!r.answer.refresh_token.empty() && !fresh.refresh_token.empty() &&
        r.answer.refresh_token != fresh.refresh_token) {
        bool stored = false;
        try {
            BeginTransaction("revetl: storing a rotated refresh token");
            stored = StoreRotatedRefreshToken(user_mapping_, fresh.refresh_token, r.answer.refresh_token);
            CommitTransaction();
        } catch (...) {
            AbortTransaction();
            stored = false;
        }
        if (stored) {
            fresh.refresh_token = r.answer.refresh_token;
            credentials_.oauth = fresh;
            prev_hash = hash;
            new_hash = OAuthCredentialHash(fresh);
        } else {
            PgGuard([&] {
                ereport(
                    WARNING,
                    (errmsg("revetl: the refresh token the OAuth token endpoint of server \"%s\" rotated "
                            "could not be stored in the user mapping",
                            server_name_.c_str()),
                     errdetail("The user mapping was changed or dropped meanwhile, or the update failed."),
                     errhint("If later refreshes fail with invalid_grant, set a new refresh token with "
                             "ALTER USER MAPPING ... OPTIONS (SET refresh_token '...').")));
            });
        }
    }
    credentials_.oauth_token->access_token = r.answer.access_token;
    credentials_.oauth_token->instance_url = r.answer.instance_url;
    credentials_.oauth_token->token_type = "bearer";
    done = true;
    release(&r.answer, new_hash, prev_hash);
    return {};
}

} // namespace revetl::pg
