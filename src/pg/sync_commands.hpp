// Creating, replacing, altering and dropping syncs: the one implementation
// behind both the function forms (revetl.create_sync, ...) and the sync
// language (revetl.execute). Callers are in a transaction with SPI connected.
#pragma once

#include "core/language/sync_definition.hpp"
#include "core/language/sync_language.hpp"

#include "pg/pg_includes.hpp"

#include <optional>
#include <string>
#include <vector>

namespace revetl::pg {

// A sync as a user asked for it, before it is checked against the database.
struct SyncRequest {
    std::string name;
    std::string model; // a relation name (as SQL, may be quoted) or one SELECT
    std::string destination;
    std::vector<std::string> key;
    std::string mode = "upsert";
    std::optional<std::string> audience; // MODE AUDIENCE only
    std::vector<MapEntry> map;           // empty: every column of the model
    std::string options_json = "{}";
    std::optional<std::string> object;
    std::optional<std::string> match_on;
    dsl::Schedule schedule;
};

SyncRequest RequestFromStatement(const dsl::CreateSync &statement);
SyncRequest RequestFromDefinition(const SyncDefinition &def);

// CREATE SYNC (replace = false) or CREATE OR REPLACE SYNC. Returns the id.
int64_t CreateSync(const SyncRequest &request, bool replace);
// ALTER SYNC ... SET ...: `request` is the whole new definition.
void AlterSync(const std::string &name, const SyncRequest &request);
void DropSync(const std::string &name, bool if_exists);
void RenameSync(const std::string &name, const std::string &new_name);
void AlterSyncOwner(const std::string &name, const std::string &new_owner);
void SetSyncPaused(const std::string &name, bool paused);

// After REASSIGN OWNED / DROP OWNED has run: move or drop the syncs of
// those roles in this database too, as PostgreSQL does for its own objects.
// Called from the utility hook (C-style: raises errors with ereport).
void AfterOwnedStatement(Node *statement);

// Makes the capture triggers of a trigger-tracked sync match its definition:
// attached to the model table when missing (and then the next run is a full
// diff), removed when the sync is not tracked. Returns true when triggers
// were newly attached.
// `definition_changed`: the capture function is rewritten (its key columns
// or schedule may have changed); otherwise it is only created if missing.
bool EnsureCapture(const SyncDefinition &def, bool definition_changed);
void DropCapture(int64_t sync_id);

// The event trigger's work after CREATE TABLE / ALTER TABLE (rename): puts
// capture triggers on rebuilt models. C-style: raises errors with ereport.
void AfterTableDdl();

// The capture triggers' call for SCHEDULE ON CHANGE: a queued run, started
// at commit. C-style.
void RequestRunOnChange(int64_t sync_id);

// Throws unless the current user is a member of the sync's owner role.
void RequireOwnership(const SyncDefinition &def, const char *action);

// Queued runs that will never start: the sync's (run_id 0) or the one run
// `run_id` of it end 'cancelled' with `why`, each with its revetl_runs
// notification. Runs as the extension owner.
void CancelQueuedRuns(int64_t sync_id, int64_t run_id, const std::string &why);

// What is wrong with a stored sync against the database as it is now (its
// model dropped or renamed, a key or mapped column gone or retyped, a
// privilege revoked), checked as its owner in a subtransaction; nullopt when
// nothing is. The text names the map entry when one is at fault.
std::optional<std::string> DefinitionProblem(const SyncDefinition &def);

} // namespace revetl::pg
