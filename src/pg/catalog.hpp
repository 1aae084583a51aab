// Reading revetl's catalog and the destination's foreign server and user
// mapping. Callers are inside a transaction with SPI connected.
#pragma once

#include "core/connectors/spec.hpp"
#include "core/language/sync_definition.hpp"

#include "pg/pg_includes.hpp"

#include <optional>
#include <string>

namespace revetl::pg {

inline constexpr const char *kSchema = "revetl";

std::optional<SyncDefinition> LoadSyncById(int64_t id);
std::optional<SyncDefinition> LoadSyncByName(const std::string &name);

// Throws "sync "x" does not exist".
SyncDefinition RequireSync(const std::string &name);

struct Destination {
    Oid server_oid = InvalidOid;
    std::string server_name;
    std::string type;
    OptionList server_options;
    OptionList user_mapping_options; // secrets: never log
};

// Looks the server up by name and checks it belongs to the revetl wrapper.
// Throws a PostgreSQL-style error otherwise.
Destination LookupDestination(const std::string &server_name);

// Adds the user mapping of `role` (or PUBLIC) to `dest`.
void LoadUserMapping(Destination &dest, Oid role);

// Throws "permission denied for foreign server x" unless `role` has USAGE.
void CheckServerUsage(const Destination &dest, Oid role);

// The role that owns the extension's objects: catalog writes happen as it.
Oid ExtensionOwner();

// Runs `f` with the current user switched to `role`; restored afterwards,
// also when f throws. With `restricted`, the switch is a
// SECURITY_RESTRICTED_OPERATION (as for REFRESH MATERIALIZED VIEW).
template <typename F>
void AsRole(Oid role, bool restricted, F &&f);

std::string RoleName(Oid role);

} // namespace revetl::pg

namespace revetl::pg {

template <typename F>
void AsRole(Oid role, bool restricted, F &&f) {
    Oid save_user;
    int save_sec;
    GetUserIdAndSecContext(&save_user, &save_sec);
    int sec = save_sec | SECURITY_LOCAL_USERID_CHANGE | (restricted ? SECURITY_RESTRICTED_OPERATION : 0);
    SetUserIdAndSecContext(role, sec);
    try {
        f();
    } catch (...) {
        SetUserIdAndSecContext(save_user, save_sec);
        throw;
    }
    SetUserIdAndSecContext(save_user, save_sec);
}

} // namespace revetl::pg
