// The destination schema cache: revetl.refresh_destination_fields (a fetch
// that a "revetl fields" process performs outside the caller's
// transaction), the cache's reading, and the check of a sync's MAP targets
// against it at CREATE / ALTER SYNC.
#pragma once

#include "core/connectors/fields.hpp"
#include "core/language/sync_definition.hpp"
#include "pg/pg_includes.hpp"

#include <string>
#include <vector>

namespace revetl::pg {

struct CachedFields {
    bool present = false; // anything cached for this server, mapping and object
    double age_s = 0;     // seconds since the oldest row was fetched
    std::vector<DestinationField> fields;
};

// The fields cached for `object` of server `server_oid` with the user
// mapping in effect for `role`. Inside a transaction with SPI connected;
// reads the cache as the extension's owner.
CachedFields LoadCachedFields(Oid server_oid, Oid role, const std::string &object);

// At CREATE / ALTER SYNC: each MAP target (and MATCH ON) against the cache
// of the sync's server, owner's mapping and object. With a cache younger
// than revetl.destination_fields_max_age an unknown or read-only target is
// an ERROR; with an older one a WARNING; with none a WARNING that nothing
// was checked. Destinations that cannot describe their fields are skipped.
void CheckTargetsAgainstCache(const SyncDefinition &def, Oid role);

// The worker's part: starts a process for queued refreshes (true when one
// could not be started and was marked failed) and notices the processes that
// ended (true when any did). Either way waiting callers are to be told.
bool StartFieldRefreshes();
bool ReapFieldRefreshes();
// At worker start: refreshes left 'running' by a process that is gone.
void RecoverFieldRefreshes();

} // namespace revetl::pg
