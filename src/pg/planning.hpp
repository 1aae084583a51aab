// What a plan needs to know about the database before its query is built:
// whether the model's key is unique by index, the key columns' types, and
// whether the mapped values can be hashed as values. Callers are in a
// transaction with SPI connected.
#pragma once

#include "core/planning/plan_query.hpp"
#include "core/language/sync_definition.hpp"

#include "pg/pg_includes.hpp"

#include <optional>
#include <string>
#include <vector>

namespace revetl::pg {

// The OID of a relation model now (it may have been rebuilt since the sync
// was created), or InvalidOid.
Oid ModelRelid(const SyncDefinition &def);

// True when `relid` has a unique, non-partial index on exactly `keys`.
bool HasUniqueIndexOn(Oid relid, const std::vector<std::string> &keys);

// format_type() of each key column of a relation.
std::vector<std::string> KeyColumnTypes(Oid relid, const std::vector<std::string> &keys);

// The plan spec for `def`, with key_unique and hash_values decided. The
// payload types are checked as `owner` (the model is the owner's to read).
PlanSpec PreparePlan(const SyncDefinition &def);

// SQL predicate on revetl.syncs s: the sync's changes are captured by
// triggers (mirrors SyncDefinition::Tracked).
inline constexpr const char *kTrackedPredicate =
    "(s.model_kind = 'relation' AND coalesce((s.options ->> 'track_changes') IN ('true', 'wal'), "
    "s.schedule_kind = 'on change'))";

// SQL predicate on revetl.syncs s: captured through logical decoding.
inline constexpr const char *kWalTrackedPredicate =
    "(s.model_kind = 'relation' AND (s.options ->> 'track_changes') = 'wal')";

} // namespace revetl::pg
