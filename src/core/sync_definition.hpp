// A sync as stored in revetl.syncs, in C++ terms, plus its per-sync options.
#pragma once

#include "core/plan_query.hpp"

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace revetl {

struct SyncOptions {
    std::optional<int> batch_size;
    std::optional<int> max_attempts;
    std::optional<long> timeout_ms;
};

// Parses and checks the options object of create_sync; throws revetl::Error
// naming an unknown or bad option.
SyncOptions ParseSyncOptions(const std::string &json);

// The map argument: a JSON object of destination field -> SQL expression.
// Throws when it is not an object of non-empty strings.
std::vector<MapEntry> ParseMap(const std::string &json);

// A JSON array of strings (key columns as stored).
std::vector<std::string> ParseStringArray(const std::string &json);

struct SyncDefinition {
    int64_t id = 0;
    std::string name;
    unsigned int owner = 0; // role OID
    std::string owner_name;
    ModelRef model;
    std::string destination;
    std::vector<std::string> key_columns;
    std::string mode; // upsert | mirror
    std::vector<MapEntry> map;
    SyncOptions options;
    bool paused = false;
    std::string shadow_table;
    std::string search_path;

    PlanSpec Plan(const std::string &shadow_schema) const;
    std::string ModelDisplayName() const; // for messages
};

} // namespace revetl
