#include "core/delivery/alerts.hpp"

#include <gtest/gtest.h>
#include <rapidjson/document.h>

#include <string>

using namespace revetl;

namespace {

DestinationSettings Settings() {
    DestinationSettings s;
    s.url = "https://hooks.slack.example/services/T0/B0/xyz";
    s.method = "PUT";
    s.headers = {{"X-Source", "revetl"}};
    return s;
}

AlertEvent Event() {
    AlertEvent e;
    e.database = "analytics";
    e.sync = "crm \"contacts\"";
    e.event = "run_failed";
    e.text = "Sync crm failed:\nHTTP 503 \xE2\x80\x94 try later";
    e.run_id = 42;
    return e;
}

} // namespace

TEST(BuildAlertRequest, SlackShapedBody) {
    HttpRequest req = BuildAlertRequest(Settings(), Event());
    rapidjson::Document doc;
    doc.Parse(req.body.c_str(), req.body.size());
    ASSERT_FALSE(doc.HasParseError()) << req.body;
    ASSERT_TRUE(doc.IsObject());
    EXPECT_EQ(doc.MemberCount(), 5u);
    EXPECT_EQ(std::string(doc["text"].GetString()), "Sync crm failed:\nHTTP 503 \xE2\x80\x94 try later");
    EXPECT_STREQ(doc["event"].GetString(), "run_failed");
    EXPECT_STREQ(doc["database"].GetString(), "analytics");
    EXPECT_STREQ(doc["sync"].GetString(), "crm \"contacts\"");
    ASSERT_TRUE(doc["run_id"].IsInt64());
    EXPECT_EQ(doc["run_id"].GetInt64(), 42);
    // Keys in a fixed order, text first.
    EXPECT_EQ(req.body.rfind("{\"text\":", 0), 0u);
}

TEST(BuildAlertRequest, NoRunIdWhenThereIsNone) {
    AlertEvent e = Event();
    e.run_id = 0;
    e.event = "no_success";
    HttpRequest req = BuildAlertRequest(Settings(), e);
    rapidjson::Document doc;
    doc.Parse(req.body.c_str(), req.body.size());
    ASSERT_FALSE(doc.HasParseError()) << req.body;
    EXPECT_FALSE(doc.HasMember("run_id"));
    EXPECT_EQ(doc.MemberCount(), 4u);
}

TEST(BuildAlertRequest, AlwaysPostsWithShortTimeouts) {
    DestinationSettings s = Settings();
    s.timeout_ms = 30000;
    s.connect_timeout_ms = 10000;
    HttpRequest req = BuildAlertRequest(s, Event());
    EXPECT_EQ(req.method, "POST");
    EXPECT_EQ(req.url, "https://hooks.slack.example/services/T0/B0/xyz");
    EXPECT_EQ(req.timeout_ms, 5000);
    EXPECT_EQ(req.connect_timeout_ms, 3000);
    // Shorter server settings are kept.
    s.timeout_ms = 1200;
    s.connect_timeout_ms = 800;
    req = BuildAlertRequest(s, Event());
    EXPECT_EQ(req.timeout_ms, 1200);
    EXPECT_EQ(req.connect_timeout_ms, 800);
}

TEST(BuildAlertRequest, Headers) {
    DestinationSettings s = Settings();
    HttpRequest req = BuildAlertRequest(s, Event());
    ASSERT_EQ(req.headers.size(), 2u);
    EXPECT_EQ(req.headers[0], std::make_pair(std::string("Content-Type"), std::string("application/json")));
    EXPECT_EQ(req.headers[1], std::make_pair(std::string("X-Source"), std::string("revetl")));

    s.credentials.token = "tok-1";
    req = BuildAlertRequest(s, Event());
    ASSERT_EQ(req.headers.size(), 3u);
    EXPECT_EQ(req.headers[2], std::make_pair(std::string("Authorization"), std::string("Bearer tok-1")));
    EXPECT_EQ(req.body.find("tok-1"), std::string::npos);
}
