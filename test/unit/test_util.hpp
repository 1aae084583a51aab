// Small helpers shared by the unit tests (no gmock: the unit binary links
// gtest only).
#pragma once

#include <gtest/gtest.h>

#include <string>

namespace revetl_test {

inline ::testing::AssertionResult Contains(const std::string &haystack, const std::string &needle) {
    if (haystack.find(needle) != std::string::npos)
        return ::testing::AssertionSuccess();
    return ::testing::AssertionFailure()
           << "expected to find\n  [" << needle << "]\nin\n  [" << haystack << "]";
}

inline ::testing::AssertionResult NotContains(const std::string &haystack, const std::string &needle) {
    size_t pos = haystack.find(needle);
    if (pos == std::string::npos)
        return ::testing::AssertionSuccess();
    return ::testing::AssertionFailure() << "did not expect to find\n  [" << needle << "]\nat offset " << pos
                                         << " in\n  [" << haystack << "]";
}

inline ::testing::AssertionResult EndsWith(const std::string &text, const std::string &suffix) {
    if (text.size() >= suffix.size() && text.compare(text.size() - suffix.size(), suffix.size(), suffix) == 0)
        return ::testing::AssertionSuccess();
    return ::testing::AssertionFailure() << "expected\n  [" << text << "]\nto end with\n  [" << suffix << "]";
}

} // namespace revetl_test
