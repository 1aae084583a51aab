// Secrets never survive into stored, logged or returned text.
#include "core/common/encoding.hpp"
#include "core/delivery/redaction.hpp"

#include <gtest/gtest.h>

using namespace revetl;

TEST(Redaction, ReplacesEveryFormOfASecret) {
    Redactor r;
    r.AddSecret("s3cr3t-token/+x");
    EXPECT_EQ(r.Apply("unauthorized: Bearer s3cr3t-token/+x was refused"),
              "unauthorized: Bearer [redacted] was refused");
    EXPECT_EQ(r.Apply("token=" + UrlEncode("s3cr3t-token/+x")), "token=[redacted]");
    EXPECT_EQ(r.Apply("Basic " + Base64("s3cr3t-token/+x")), "Basic [redacted]");
    EXPECT_EQ(r.Apply("twice s3cr3t-token/+x s3cr3t-token/+x"), "twice [redacted] [redacted]");
    EXPECT_EQ(r.Apply("nothing here"), "nothing here");
}

TEST(Redaction, LongerSecretsFirstAndShortValuesIgnored) {
    Redactor r;
    r.AddSecret("abcd");
    r.AddSecret("abcdefgh");
    r.AddSecret("xyz"); // too short to be a credential
    EXPECT_EQ(r.Apply("abcdefgh abcd xyz"), "[redacted] [redacted] xyz");
}

TEST(Redaction, BoundsTheTextAtACharacterBoundary) {
    Redactor r;
    std::string text = std::string(9, 'a') + "\xc3\xa9" + "tail";
    EXPECT_EQ(r.Apply(text, 10), std::string(9, 'a') + "...");
    EXPECT_EQ(r.Apply("short", 10), "short");
}

TEST(Redaction, SecretAsBasicUserWithEmptyPassword) {
    Redactor r;
    r.AddSecret("write-key-1");
    const std::string echoed = "bad header: Basic " + Base64("write-key-1:");
    EXPECT_EQ(r.Apply(echoed), "bad header: Basic [redacted]");
}

TEST(Redaction, Base64AndPercentEncoding) {
    EXPECT_EQ(Base64("user:pass"), "dXNlcjpwYXNz");
    EXPECT_EQ(Base64("a"), "YQ==");
    EXPECT_EQ(Base64("ab"), "YWI=");
    EXPECT_EQ(UrlEncode("a b/c"), "a%20b%2Fc");
}
