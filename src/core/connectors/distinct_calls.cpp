#include "core/connectors/distinct_calls.hpp"

namespace revetl {

void DistinctValueCalls::Add(size_t row, const std::string &value) {
    size_t k = 0;
    while (k < calls_.size() && (calls_[k].size() >= cap_ || (!value.empty() && values_[k].count(value))))
        k++;
    if (k == calls_.size()) {
        calls_.emplace_back();
        values_.emplace_back();
    }
    calls_[k].push_back(row);
    if (!value.empty())
        values_[k].insert(value);
}

} // namespace revetl
