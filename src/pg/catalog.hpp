// Reading revetl's catalog and the destination's foreign server and user
// mapping. Callers are inside a transaction with SPI connected.
#pragma once

#include "core/connectors/spec.hpp"
#include "core/language/sync_definition.hpp"

#include "pg/guard.hpp"
#include "pg/pg_includes.hpp"

#include <optional>
#include <string>

namespace revetl::pg {

inline constexpr const char *kSchema = "revetl";

std::optional<SyncDefinition> LoadSyncById(int64_t id);
std::optional<SyncDefinition> LoadSyncByName(const std::string &name);

// Throws "sync "x" does not exist".
SyncDefinition RequireSync(const std::string &name);

// Whether this database is a copy of the one its syncs were made in (see
// revetl.instance): why, in a sentence fragment ("was created from another
// database as its template", "was restored from a dump"); nullopt when it is
// not. Reads revetl.instance as the extension's owner.
std::optional<std::string> CopyOfAnotherDatabase();

// The error a run or run_sync of a copy gets.
Error CopyError(const std::string &why);

struct Destination {
    Oid server_oid = InvalidOid;
    std::string server_name;
    std::string type;
    OptionList server_options;
    OptionList user_mapping_options;   // secrets: never log
    Oid user_mapping_oid = InvalidOid; // InvalidOid: no user mapping
};

// Looks the server up by name and checks it belongs to the revetl wrapper.
// Throws a PostgreSQL-style error otherwise.
Destination LookupDestination(const std::string &server_name);

// Adds the user mapping of `role` (or PUBLIC) to `dest`.
void LoadUserMapping(Destination &dest, Oid role);

// The options of user mapping `umid` as they are now (a rotated refresh
// token stored by another run included); nullopt when it is gone.
std::optional<OptionList> LoadUserMappingById(Oid umid);

// Stores a refresh token the vendor rotated into user mapping `umid`, by a
// catalog update from C: no statement text holds the secret, so neither
// log_statement nor an error context can log it. Only when the mapping
// still holds `used` (the token this run refreshed with; a user may have
// set a new one meanwhile, which wins). Runs in the caller's transaction;
// returns whether it stored the token. Called only by the run of a sync
// whose destination uses this mapping, for the token its refresh returned.
bool StoreRotatedRefreshToken(Oid umid, const std::string &used, const std::string &rotated);

// Throws "permission denied for foreign server x" unless `role` has USAGE.
void CheckServerUsage(const Destination &dest, Oid role);

// The role that owns the extension's objects: catalog writes happen as it.
Oid ExtensionOwner();

// The search_path of every statement revetl runs with more rights than its
// caller has: only the system catalog (and temporary objects, searched
// last, which no function or operator lookup visits). A caller's own
// functions named like the built-ins revetl calls are never found.
inline constexpr const char *kFixedSearchPath = "pg_catalog, pg_temp";

// Where owner code runs: the identity, the security context and the GUC
// nest level to return to. Filled by EnterOwnerContext, undone by
// LeaveOwnerContext; both are PostgreSQL-level (call them inside PgGuard or
// from code that PostgreSQL errors may jump out of: an error aborts the
// transaction, which restores both).
struct OwnerContext {
    Oid save_user = InvalidOid;
    int save_sec = 0;
    int nest = 0;
};

// Switches to `role` with `search_path` in a GUC nest level of its own.
// `restricted` makes it a SECURITY_RESTRICTED_OPERATION, as REFRESH
// MATERIALIZED VIEW does for a view owner's code.
void EnterOwnerContext(Oid role, const char *search_path, bool restricted, OwnerContext *ctx);

// Back to the saved identity; every setting changed since Enter (by SET,
// set_config() or a function's SET clause) is rolled back, so nothing the
// code inside chose outlives it.
void LeaveOwnerContext(const OwnerContext *ctx);

// A sync's stored search_path, or PostgreSQL's default when none was stored.
std::string OwnerSearchPath(const std::string &stored);

// Runs revetl's own statements as the extension's owner with the fixed
// search_path, whoever the caller is and whatever its search_path.
template <typename F>
void AsExtensionOwner(F &&f);

// Runs a sync owner's code (its model, its MAP, validation of either) as
// that owner, with the sync's search_path, in a security-restricted
// operation, whoever asks (a superuser looking at someone's sync included).
template <typename F>
void AsSyncOwner(Oid owner, const std::string &search_path, F &&f);

std::string RoleName(Oid role);

} // namespace revetl::pg

namespace revetl::pg {

namespace detail {
template <typename F>
void InOwnerContext(Oid role, const std::string &search_path, bool restricted, F &&f) {
    OwnerContext ctx;
    PgGuard([&] { EnterOwnerContext(role, search_path.c_str(), restricted, &ctx); });
    try {
        f();
    } catch (...) {
        PgGuard([&] { LeaveOwnerContext(&ctx); });
        throw;
    }
    PgGuard([&] { LeaveOwnerContext(&ctx); });
}
} // namespace detail

template <typename F>
void AsExtensionOwner(F &&f) {
    detail::InOwnerContext(ExtensionOwner(), kFixedSearchPath, false, std::forward<F>(f));
}

template <typename F>
void AsSyncOwner(Oid owner, const std::string &search_path, F &&f) {
    detail::InOwnerContext(owner, OwnerSearchPath(search_path), true, std::forward<F>(f));
}

} // namespace revetl::pg
