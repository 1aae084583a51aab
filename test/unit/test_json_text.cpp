#include "core/connectors/json_text.hpp"

#include <gtest/gtest.h>

namespace revetl {
namespace {

rapidjson::Document Parse(const char *json, unsigned flags = 0) {
    rapidjson::Document doc;
    if (flags)
        doc.Parse<rapidjson::kParseNumbersAsStringsFlag>(json);
    else
        doc.Parse(json);
    EXPECT_FALSE(doc.HasParseError()) << json;
    return doc;
}

TEST(JsonText, ValuesBecomeTheirText) {
    auto doc = Parse(R"({"s":"a\u0000b","t":true,"f":false,"n":null,"i":12,"o":{"x":[1,"y"]}})");
    EXPECT_EQ(JsonText(doc["s"]), std::string("a\0b", 3));
    EXPECT_EQ(JsonText(doc["t"]), "true");
    EXPECT_EQ(JsonText(doc["f"]), "false");
    EXPECT_EQ(JsonText(doc["n"]), "");
    EXPECT_EQ(JsonText(doc["i"]), "12");
    EXPECT_EQ(JsonText(doc["o"]), R"({"x":[1,"y"]})");
}

TEST(JsonText, NumbersKeepTheDigitsTheVendorSent) {
    // Parsed as strings, a 20-digit id or 92.50 is not rounded through a double.
    auto doc = Parse(R"({"id":12345678901234567890,"price":92.50})", 1);
    EXPECT_EQ(JsonMember(doc, "id"), "12345678901234567890");
    EXPECT_EQ(JsonMember(doc, "price"), "92.50");
}

TEST(JsonText, MissingMembersAndNonObjectsGiveEmptyText) {
    auto doc = Parse(R"({"a":"x"})");
    EXPECT_EQ(JsonMember(doc, "a"), "x");
    EXPECT_EQ(JsonMember(doc, "b"), "");
    EXPECT_EQ(JsonMember(doc["a"], "a"), "");
    auto array = Parse("[1]");
    EXPECT_EQ(JsonMember(array, "a"), "");
}

TEST(JsonText, StringsAreWrittenWithTheirLength) {
    rapidjson::StringBuffer buffer;
    rapidjson::Writer<rapidjson::StringBuffer> writer(buffer);
    WriteJsonString(writer, std::string("a\0b", 3));
    EXPECT_EQ(std::string(buffer.GetString(), buffer.GetSize()), "\"a\\u0000b\"");
}

TEST(JsonText, OutcomesAreBounded) {
    const std::string long_reason(5000, 'r');
    const std::string long_code(500, 'c');
    RowOutcome refused = RejectedRow(422, long_reason, long_code);
    EXPECT_FALSE(refused.accepted);
    EXPECT_EQ(refused.http_status, 422);
    EXPECT_LE(refused.reason.size(), 1000u);
    EXPECT_LE(refused.error_code.size(), 100u);
    EXPECT_EQ(refused.reason.substr(0, 10), long_reason.substr(0, 10));

    // A cut never splits a character: "é" is two bytes.
    std::string accented;
    for (int i = 0; i < 600; ++i)
        accented += "\xc3\xa9";
    RowOutcome cut = RejectedRow(400, accented, "");
    EXPECT_EQ(cut.reason.size() % 2, 0u);

    RowOutcome taken = AcceptedRow(200, std::string(300, '7'));
    EXPECT_TRUE(taken.accepted);
    EXPECT_EQ(taken.http_status, 200);
    EXPECT_LE(taken.dest_id.size(), 200u);
    EXPECT_EQ(AcceptedRow(201).dest_id, "");
}

} // namespace
} // namespace revetl
