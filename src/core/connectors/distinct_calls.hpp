// How rows are spread over a vendor's batch calls when one call must not
// name the same record twice: vendors apply a call's records one after the
// other, or refuse the call, so a repeated record would make the outcome
// depend on that order. Each row goes to the first call that has room and
// does not hold its value yet, so rows keep their order within a record.
#pragma once

#include <cstddef>
#include <set>
#include <string>
#include <vector>

namespace revetl {

class DistinctValueCalls {
public:
    explicit DistinctValueCalls(size_t cap) : cap_(cap) {}

    // Adds `row`, whose record is named by `value` ("" constrains nothing:
    // a row that creates a new record, say).
    void Add(size_t row, const std::string &value);

    // The calls, each a list of rows, in the order they were opened.
    const std::vector<std::vector<size_t>> &calls() const { return calls_; }

private:
    size_t cap_;
    std::vector<std::vector<size_t>> calls_;
    std::vector<std::set<std::string>> values_;
};

} // namespace revetl
