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
// MODE AUDIENCE: also the identifier fields and the hashing rule of the
// destination's type. The plan joins on typed keys when the sync's shadow table has them as the
// model's key types are now (EnsureShadowKeys). For a run (`for_run`) the
// transaction also gets revetl.plan_work_mem as its work_mem.
PlanSpec PreparePlan(const SyncDefinition &def, bool for_run = false);

// Gives the sync's shadow table typed key columns (key_1, ...) in the
// model's key types, generated from its key text, or re-types them when the
// model's key types changed: a rewrite of the table, so a run does it in a
// transaction of its own before it plans (a plan's snapshot would not see
// the rewritten rows). Keys that do not read as the new types leave the
// table without typed keys (a WARNING says so), and the plan uses the key's
// text.
void EnsureShadowKeys(const SyncDefinition &def);

// SQL predicate on revetl.syncs s: the sync's changes are captured by
// triggers (mirrors SyncDefinition::Tracked).
inline constexpr const char *kTrackedPredicate =
    "(s.model_kind = 'relation' AND coalesce((s.options ->> 'track_changes') IN ('true', 'wal'), "
    "s.schedule_kind = 'on change'))";

// SQL predicate on revetl.syncs s: captured through logical decoding.
inline constexpr const char *kWalTrackedPredicate =
    "(s.model_kind = 'relation' AND (s.options ->> 'track_changes') = 'wal')";

} // namespace revetl::pg
