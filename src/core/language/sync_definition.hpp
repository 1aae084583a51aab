// A sync as stored in revetl.syncs, in C++ terms, plus its per-sync options.
#pragma once

#include "core/connectors/options.hpp"
#include "core/planning/plan_query.hpp"
#include "core/language/sync_language.hpp"

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace revetl {

struct SyncOptions {
    std::optional<int> batch_size;
    std::optional<int> max_attempts;
    std::optional<long> timeout_ms;
    // How long planning a run may take (the owner's model and MAP run then):
    // a model that never ends must not hold a run slot for ever.
    static constexpr long kDefaultPlanTimeoutMs = 30L * 60 * 1000;
    long plan_timeout_ms = kDefaultPlanTimeoutMs;
    std::optional<int> max_in_flight;
    std::optional<RateLimit> rate_limit; // replaces the server's, with its own budget
    // Alerts: a webhook server to tell, and when.
    std::optional<std::string> alert_to;
    std::optional<int> alert_rejected_rows;
    std::optional<long> alert_no_success_for_ms;
    // Back-pressure alerts of a tracked sync: the oldest captured key's age
    // and (track_changes = 'wal') the WAL its slot retains. -1: 'none'.
    // Unset: the defaults of BacklogAgeLimitMs and WalRetainedLimitBytes.
    std::optional<long> alert_backlog_age_ms;
    std::optional<int64_t> alert_wal_retained_bytes;
    // SCHEDULE AFTER: also run when the other sync's run failed.
    bool run_after_failure = false;
    // Capture changed keys with triggers (table models only). Default: on
    // for SCHEDULE ON CHANGE, off otherwise.
    std::optional<bool> track_changes;
    bool track_wal = false; // track_changes = 'wal': logical decoding, not triggers
    // max_removals: the most records one run may remove (MIRROR), as a
    // share of the records delivered ('10%') or a count; 'none' for no limit.
    struct RemovalLimit {
        enum class Kind { Percent, Count, None } kind = Kind::Percent;
        int64_t value = 0; // Percent: 0 to 100; Count: rows
    };
    std::optional<RemovalLimit> max_removals;
};

// The default max_removals: 10% of the records delivered, but a run may
// always remove this many (a small model is not blocked by its first few
// deletes).
inline constexpr int64_t kRemovalFloor = 100;

// The most rows a run of a sync with these options may remove when `delivered`
// records are at the destination; -1: no limit. Without max_removals:
// max(10% of delivered, kRemovalFloor).
int64_t MaxRemovals(const SyncOptions &options, int64_t delivered);

// How the limit reads in a message: "10% of the 5000 records delivered",
// "500 rows", "the default (10% of the 5000 records delivered, at least 100)".
std::string DescribeMaxRemovals(const SyncOptions &options, int64_t delivered);

// The default back-pressure alert limits: an ON CHANGE sync's captured keys
// normally wait well under a second, so a quarter of an hour means it is
// paused, failing or slower than the writes; a slot's consumer confirms
// every wal_poll_interval, so a gigabyte retained means it is stuck.
inline constexpr long kDefaultBacklogAgeLimitMs = 15L * 60 * 1000;
inline constexpr int64_t kDefaultWalRetainedLimitBytes = 1LL << 30;

// The backlog age past which a sync alerts (-1: never): alert_backlog_age,
// else the default for a tracked ON CHANGE sync (a tracked sync on another
// schedule lets keys wait until its next run by design: no default).
long BacklogAgeLimitMs(const SyncOptions &options, bool tracked, bool on_change);

// The WAL retained by the database's slot past which a WAL-tracked sync
// alerts (-1: never): alert_wal_retained, else the default.
int64_t WalRetainedLimitBytes(const SyncOptions &options, bool wal_tracked);

// Parses and checks the options object of create_sync; throws revetl::Error
// naming an unknown or bad option.
SyncOptions ParseSyncOptions(const std::string &json);

// A map as JSON: the stored form, an array of {"field", "expression"}
// objects in order, or the function form's object of field -> expression.
// Throws when it is neither, or names a field twice.
std::vector<MapEntry> ParseMap(const std::string &json);

// The stored form of a map (a JSON array, in order).
std::string MapToJson(const std::vector<MapEntry> &map);

// Sync options from the language's WITH clause, as a JSON object.
std::string OptionsToJson(const std::vector<dsl::OptionItem> &options);

// The options JSON object as WITH clause items (for sync_ddl).
std::vector<dsl::OptionItem> OptionsFromJson(const std::string &json);

// Merges `changes` (JSON object; a null value removes the option) into
// `base`, both JSON objects; returns the result.
std::string MergeOptions(const std::string &base, const std::string &changes);

// A JSON array of strings (key columns as stored).
std::vector<std::string> ParseStringArray(const std::string &json);

struct SyncDefinition {
    int64_t id = 0;
    std::string name;
    unsigned int owner = 0; // role OID
    std::string owner_name;
    ModelRef model;
    std::string destination;
    std::optional<std::string> object;
    std::optional<std::string> match_on;
    std::vector<std::string> key_columns;
    std::string mode; // upsert | update | insert | mirror | audience
    // MODE AUDIENCE: the list, tag or audience the model's rows are members of.
    std::optional<std::string> audience;
    std::vector<MapEntry> map;
    SyncOptions options;
    std::string options_json = "{}";
    dsl::Schedule schedule;
    bool paused = false;
    std::string shadow_table;
    std::string search_path;

    PlanSpec Plan(const std::string &shadow_schema) const;
    std::string ModelDisplayName() const; // for messages

    // Whether changes to the model are captured by triggers.
    bool Tracked() const {
        return model.kind == ModelRef::Kind::Relation &&
               options.track_changes.value_or(schedule.kind == dsl::Schedule::Kind::OnChange);
    }

    // Whether they are captured through logical decoding (track_changes = 'wal').
    bool TrackedByWal() const { return Tracked() && options.track_wal; }

    // The definition as a CREATE SYNC statement's parts (for sync_ddl).
    dsl::CreateSync ToStatement() const;
};

} // namespace revetl
