#include "core/common/error.hpp"
#include "core/connectors/audience_keys.hpp"

#include <gtest/gtest.h>

namespace revetl {
namespace {

const AudienceKeys &Keys() {
    static const AudienceKeys set{{"EMAIL", "PHONE", "EXTERN_ID"}, true,          "a key of the test schema",
                                  "The test schema's keys",        "Name a key.", "the test key",
                                  "Each key is one column."};
    return set;
}

TEST(AudienceKeys, TargetsAreComparedWithoutCaseAndSpelledAsTheDestinationDoes) {
    EXPECT_EQ(CanonicalAudienceKey(Keys(), "email"), "EMAIL");
    EXPECT_EQ(CanonicalAudienceKey(Keys(), "Extern_Id"), "EXTERN_ID");
    EXPECT_EQ(CanonicalAudienceKey(Keys(), "mail"), "");
    EXPECT_EQ(CheckAudienceKeys(Keys(), {"phone", "email"}, "s"),
              (std::vector<std::string>{"PHONE", "EMAIL"}));
}

TEST(AudienceKeys, AnUnknownTargetGetsTheClosestKey) {
    try {
        CheckAudienceKeys(Keys(), {"emal"}, "churn");
        FAIL() << "no error";
    } catch (const Error &e) {
        EXPECT_STREQ(e.what(), "sync \"churn\" maps to \"emal\", which is not a key of the test schema");
        EXPECT_EQ(e.detail(), "The test schema's keys: EMAIL, PHONE, EXTERN_ID.");
        EXPECT_EQ(e.hint(), "Perhaps you meant \"EMAIL\".");
    }
    try {
        CheckAudienceKeys(Keys(), {"zzzzzzzzzzzz"}, "churn");
        FAIL() << "no error";
    } catch (const Error &e) {
        EXPECT_EQ(e.hint(), "Name a key.");
    }
}

TEST(AudienceKeys, AKeyNamedTwiceIsRefused) {
    try {
        CheckAudienceKeys(Keys(), {"EMAIL", "email"}, "churn");
        FAIL() << "no error";
    } catch (const Error &e) {
        EXPECT_STREQ(e.what(), "sync \"churn\" maps to the test key EMAIL twice");
        EXPECT_EQ(e.detail(), "Each key is one column.");
    }
}

} // namespace
} // namespace revetl
