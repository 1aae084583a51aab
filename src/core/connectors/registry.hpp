// Every destination type revetl knows, as declared specs. Adding a
// destination is its folder under src/core/connectors/ plus one line in
// registry.cpp.
#pragma once

#include "core/connectors/spec.hpp"

#include <string>
#include <vector>

namespace revetl {

// In the order destination_types lists them.
const std::vector<const ConnectorSpec *> &Registry();

// The spec of `type`, or nullptr.
const ConnectorSpec *FindSpec(const std::string &type);

} // namespace revetl
