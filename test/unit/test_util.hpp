// Small helpers shared by the unit tests (no gmock: the unit binary links
// gtest only).
#pragma once

#include "core/delivery/change.hpp"
#include "core/delivery/http_client.hpp"
#include "core/common/error.hpp"

#include <gtest/gtest.h>

#include <chrono>
#include <functional>
#include <optional>
#include <string>

namespace revetl_test {

// Polls until the response for `id` arrives, bounded by a deadline.
inline std::optional<revetl::HttpResponse> Await(revetl::HttpClient &client, uint64_t id,
                                                 int timeout_ms = 10000) {
    auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
    while (std::chrono::steady_clock::now() < deadline) {
        for (auto &done : client.Poll(50))
            if (done.first == id)
                return std::move(done.second);
    }
    return std::nullopt;
}

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

inline revetl::Change MakeChange(revetl::Change::Op op, const std::string &key, const std::string &payload,
                                 int64_t hash, const std::string &dest_id = {}) {
    revetl::Change c;
    c.op = op;
    c.key = key;
    c.payload = payload;
    c.row_hash = hash;
    c.dest_id = dest_id;
    // As the plan gives them: an add of a key the shadow state does not hold
    // is based on minus the run's id, anything else on the run that last
    // recorded the key.
    c.version = op == revetl::Change::Op::Add ? -7 : 5;
    return c;
}

// Runs fn, which must throw revetl::Error; returns the error (or fails).
inline revetl::Error Catch(const std::function<void()> &fn) {
    try {
        fn();
    } catch (const revetl::Error &e) {
        return e;
    } catch (const std::exception &e) {
        ADD_FAILURE() << "threw a non-revetl exception: " << e.what();
        return revetl::Error("none", "wrong exception");
    }
    ADD_FAILURE() << "did not throw";
    return revetl::Error("none", "did not throw");
}

} // namespace revetl_test
