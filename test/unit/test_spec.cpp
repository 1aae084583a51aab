// The declared connector specs and the shared code that reads them: server
// validation (one judgement for CREATE, ALTER and run start), sync targets,
// auth schemes, revetl.destination_types, and that the shared connector
// files name no vendor.
#include "core/common/encoding.hpp"
#include "core/common/error.hpp"
#include "core/connectors/auth.hpp"
#include "core/connectors/registry.hpp"
#include "core/connectors/spec.hpp"

#include "test_util.hpp"

#include <gtest/gtest.h>
#include <rapidjson/document.h>

#include <fstream>
#include <set>
#include <sstream>

using namespace revetl;
using revetl_test::Contains;
using revetl_test::NotContains;

namespace {

template <typename F>
Error Catch(F &&f) {
    try {
        f();
    } catch (const Error &e) {
        return e;
    }
    ADD_FAILURE() << "expected revetl::Error";
    return Error("00000", "");
}

ConnectorSpec OrdersSpec() {
    ConnectorSpec s;
    s.type = "orders_api";
    ObjectSpec orders;
    orders.name = "orders";
    orders.modes = {"insert"};
    ObjectSpec customers;
    customers.name = "customers";
    customers.modes = {"upsert", "update"};
    customers.match_on_needed = true;
    customers.match_on_hint = "Use MATCH ON customer_no.";
    s.objects = {orders, customers};
    s.default_object = "orders";
    return s;
}

} // namespace

TEST(Registry, TypesAreUniqueAndComplete) {
    std::set<std::string> seen;
    ASSERT_GE(Registry().size(), 2u);
    for (const ConnectorSpec *s : Registry()) {
        SCOPED_TRACE(s->type);
        EXPECT_TRUE(seen.insert(s->type).second);
        EXPECT_TRUE(static_cast<bool>(s->make));
        EXPECT_FALSE(s->objects.empty());
        EXPECT_FALSE(s->auth.empty());
        EXPECT_FALSE(s->example.empty());
        ASSERT_NE(s->ServerOption("type"), nullptr);
        EXPECT_EQ(FindSpec(s->type), s);
    }
    EXPECT_EQ(FindSpec("kafka"), nullptr);
}

TEST(ValidateServer, AlterIsJudgedAsCreateWithTheResultingOptions) {
    // ALTER SERVER s OPTIONS (SET type 'hubspot', DROP url) on a webhook
    // server with a method leaves {type hubspot, method PUT}: refused as the
    // same CREATE would be, naming the types that take the option.
    OptionList after_alter = {{"type", "hubspot"}, {"method", "PUT"}};
    Error e = Catch([&] { ValidateServer(after_alter); });
    EXPECT_EQ(e.sqlstate(), "HV00D");
    EXPECT_STREQ(e.what(), "invalid option \"method\" for a revetl server of type \"hubspot\"");
    EXPECT_EQ(e.detail(), "Only servers of type webhook take this option.");
    EXPECT_TRUE(Contains(e.hint(), "Valid options for type \"hubspot\" are: type, url, headers"));
    EXPECT_EQ(ValidateServer({{"type", "hubspot"}}).type, "hubspot");
    // Webhook to hubspot without url: hubspot has a default url.
    EXPECT_NO_THROW(ValidateServer({{"type", "hubspot"}, {"timeout", "5s"}}));
    // Hubspot to webhook without url: webhook requires one.
    e = Catch([] { ValidateServer({{"type", "webhook"}, {"timeout", "5s"}}); });
    EXPECT_STREQ(e.what(), "a revetl server of type \"webhook\" needs the option \"url\"");
}

TEST(ValidateServer, RunStartResolvesThroughTheSameJudgement) {
    Error e = Catch([] { ResolveDestinationSettings({{"type", "hubspot"}, {"method", "PUT"}}, {}); });
    EXPECT_STREQ(e.what(), "invalid option \"method\" for a revetl server of type \"hubspot\"");
    e = Catch([] { ResolveDestinationSettings({{"type", "nope"}}, {}); });
    EXPECT_STREQ(e.what(), "unknown destination type \"nope\"");
}

TEST(CheckSyncTarget, ModesObjectsAndMatchOnComeFromTheSpec) {
    ConnectorSpec spec = OrdersSpec();
    SyncTarget t;
    t.mode = "upsert";
    Error e = Catch([&] { CheckSyncTarget(spec, {}, t, "s1", "shop"); });
    EXPECT_EQ(e.sqlstate(), "0A000");
    EXPECT_STREQ(e.what(), "sync \"s1\" cannot use mode upsert with server \"shop\" (type orders_api)");
    EXPECT_EQ(e.detail(), "Object \"orders\" takes the modes insert.");
    EXPECT_TRUE(Contains(e.hint(), "MODE"));

    t = SyncTarget{};
    t.mode = "insert";
    t.object = "ordrs";
    e = Catch([&] { CheckSyncTarget(spec, {}, t, "s1", "shop"); });
    EXPECT_EQ(e.sqlstate(), "0A000");
    EXPECT_STREQ(e.what(), "sync \"s1\" cannot write object \"ordrs\" to server \"shop\" (type orders_api)");
    EXPECT_EQ(e.hint(),
              "Perhaps you meant OBJECT orders. Objects of type orders_api are: orders, customers.");

    t = SyncTarget{};
    t.object = "customers";
    e = Catch([&] { CheckSyncTarget(spec, {}, t, "s1", "shop"); });
    EXPECT_EQ(e.sqlstate(), "22023");
    EXPECT_EQ(e.hint(), "Use MATCH ON customer_no.");
    t.match_on = "customer_no";
    EXPECT_NO_THROW(CheckSyncTarget(spec, {}, t, "s1", "shop"));

    t = SyncTarget{};
    t.mode = "insert";
    EXPECT_NO_THROW(CheckSyncTarget(spec, {}, t, "s1", "shop"));
    EXPECT_EQ(t.object, "orders"); // the default object is filled in
}

TEST(CheckSyncTarget, HubSpotContactsDefaultToEmail) {
    SyncTarget t;
    CheckSyncTarget(*FindSpec("hubspot"), {}, t, "s", "crm");
    EXPECT_EQ(t.object, "contacts");
    EXPECT_EQ(t.match_on, "email");
}

TEST(Auth, SchemesAreChosenByTheOptionsPresent) {
    Credentials c;
    EXPECT_EQ(SelectedAuth(c), AuthKind::None);
    c.token = "t";
    EXPECT_EQ(SelectedAuth(c), AuthKind::Bearer);
    c = Credentials{};
    c.user = "u";
    c.password = "p";
    EXPECT_EQ(SelectedAuth(c), AuthKind::Basic);
    c = Credentials{};
    c.api_key = "k";
    EXPECT_EQ(SelectedAuth(c), AuthKind::ApiKeyHeader);
    c.api_key_param = "key";
    EXPECT_EQ(SelectedAuth(c), AuthKind::ApiKeyQuery);
    c.token = "tok-SECRET";
    Error e = Catch([&] { SelectedAuth(c); });
    EXPECT_TRUE(NotContains(std::string(e.what()) + e.detail() + e.hint(), "SECRET"));
    c = Credentials{};
    c.user = "only-user";
    e = Catch([&] { SelectedAuth(c); });
    EXPECT_STREQ(e.what(), "basic auth needs both \"user\" and \"password\"");
}

TEST(Auth, AppliedToRequests) {
    EXPECT_EQ(Base64("Aladdin:open sesame"), "QWxhZGRpbjpvcGVuIHNlc2FtZQ==");
    EXPECT_EQ(Base64("a"), "YQ==");
    EXPECT_EQ(Base64("ab"), "YWI=");
    EXPECT_EQ(Base64(""), "");

    HttpRequest r;
    r.url = "https://api.example.com/v1/x";
    r.headers = {{"authorization", "Bearer from-headers"}, {"X-Other", "1"}};
    Credentials c;
    c.user = "Aladdin";
    c.password = "open sesame";
    ApplyAuth(c, r);
    ASSERT_EQ(r.headers.size(), 2u);
    EXPECT_EQ(r.headers[1], std::make_pair(std::string("Authorization"),
                                           std::string("Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ==")));

    HttpRequest h;
    h.url = "https://api.example.com/v1/x";
    h.headers = {{"x-api-key", "old"}};
    Credentials k;
    k.api_key = "k1";
    ApplyAuth(k, h);
    ASSERT_EQ(h.headers.size(), 1u);
    EXPECT_EQ(h.headers[0], std::make_pair(std::string("X-API-Key"), std::string("k1")));

    HttpRequest q;
    q.url = "https://api.example.com/v1/x?a=1#frag";
    k.api_key = "k 1&2";
    k.api_key_param = "api key";
    ApplyAuth(k, q);
    EXPECT_EQ(q.url, "https://api.example.com/v1/x?a=1&api%20key=k%201%262#frag");
    EXPECT_TRUE(q.headers.empty());
}

TEST(DestinationTypes, JsonDescribesEveryRegisteredSpec) {
    rapidjson::Document doc;
    std::string json = DestinationTypesJson();
    doc.Parse(json.c_str(), json.size());
    ASSERT_FALSE(doc.HasParseError());
    ASSERT_TRUE(doc.IsArray());
    ASSERT_EQ(doc.Size(), Registry().size());
    for (rapidjson::SizeType i = 0; i < doc.Size(); i++) {
        const auto &t = doc[i];
        const ConnectorSpec *spec = Registry()[i];
        EXPECT_EQ(std::string(t["type"].GetString()), spec->type);
        EXPECT_EQ(t["auth"].Size(), spec->auth.size());
        EXPECT_EQ(t["limits"]["max_batch_size"].GetInt(), spec->max_batch_size);
        EXPECT_EQ(t["returns_ids"].GetBool(), spec->returns_ids);
        size_t server = 0;
        for (const auto &o : t["options"].GetArray())
            server += std::string(o["on"].GetString()) == "server";
        EXPECT_EQ(server, spec->server_options.size());
    }
    const auto &hubspot = doc[1];
    EXPECT_STREQ(hubspot["auth"][0].GetString(), "bearer");
    EXPECT_STREQ(hubspot["limits"]["default_rate_limit"].GetString(), "100 per 10s");
}

TEST(SharedConnectorCode, NamesNoVendor) {
    // The shared connector files know destinations only through the
    // registry: registry.cpp is the one place that lists them.
    for (const char *path :
         {"src/core/connectors/spec.cpp", "src/core/connectors/spec.hpp", "src/core/connectors/connector.cpp",
          "src/core/connectors/connector.hpp", "src/core/connectors/auth.cpp", "src/core/connectors/auth.hpp",
          "src/core/connectors/options.cpp", "src/core/connectors/json_text.hpp",
          "src/core/connectors/json_text.cpp", "src/core/connectors/audience_keys.hpp",
          "src/core/connectors/audience_keys.cpp", "src/core/connectors/distinct_calls.hpp",
          "src/core/connectors/distinct_calls.cpp", "src/core/delivery/delivery_engine.cpp"}) {
        SCOPED_TRACE(path);
        std::ifstream in(path);
        ASSERT_TRUE(in.good()) << "run the unit tests from the repository root";
        std::stringstream text;
        text << in.rdbuf();
        std::string lower = text.str();
        for (char &ch : lower)
            ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
        for (const ConnectorSpec *s : Registry())
            // The generic type is named after the protocol the shared code
            // speaks; every other type is a vendor the shared code must not know.
            if (s->type != "http") {
                EXPECT_TRUE(NotContains(lower, s->type)) << s->type;
            }
    }
}

// Issue 20: where a changed MATCH ON value does not follow the record,
// CREATE SYNC says so.
TEST(MatchValueChangeNotice, SaidWhereRecordsAreFoundByTheMatchValueAlone) {
    SyncTarget t;
    t.mode = "mirror";
    t.object = "users";
    t.match_on = "external_id";
    OptionList zendesk = {{"type", "zendesk"}, {"subdomain", "acme"}};
    auto n = MatchValueChangeNotice(zendesk, t, "to_zd", "zd");
    ASSERT_TRUE(n.has_value());
    EXPECT_EQ(n->message,
              "sync \"to_zd\" finds records of server \"zd\" (type zendesk) by \"external_id\" alone");
    EXPECT_NE(n->detail.find("MIRROR will not remove it"), std::string::npos) << n->detail;
    EXPECT_FALSE(n->hint.empty());

    t.mode = "upsert";
    n = MatchValueChangeNotice(zendesk, t, "to_zd", "zd");
    ASSERT_TRUE(n.has_value());
    EXPECT_EQ(n->detail.find("MIRROR"), std::string::npos) << n->detail;

    // INSERT never matches; matching on the record id itself has nowhere
    // else to go.
    t.mode = "insert";
    EXPECT_FALSE(MatchValueChangeNotice(zendesk, t, "to_zd", "zd").has_value());
    t.mode = "upsert";
    t.match_on = "Id";
    EXPECT_FALSE(MatchValueChangeNotice(zendesk, t, "to_zd", "zd").has_value());

    // HubSpot updates a kept record by its id; a webhook keeps no records.
    t.object = "contacts";
    t.match_on = "email";
    EXPECT_FALSE(MatchValueChangeNotice({{"type", "hubspot"}}, t, "to_hs", "hs").has_value());
    // So do Intercom and Pipedrive (a search only for rows without a kept id).
    EXPECT_TRUE(FindSpec("intercom")->updates_by_record_id);
    EXPECT_TRUE(FindSpec("pipedrive")->updates_by_record_id);
    EXPECT_FALSE(MatchValueChangeNotice({{"type", "webhook"}, {"url", "https://example.com/in"}}, t, "w", "w")
                     .has_value());
    t.mode = "audience";
    EXPECT_FALSE(MatchValueChangeNotice(zendesk, t, "to_zd", "zd").has_value());
}

TEST(CheckSyncTarget, AudienceNeedsATypeWithAudiences) {
    ConnectorSpec spec = OrdersSpec();
    SyncTarget t;
    t.object = "customers";
    t.match_on = "customer_no";
    t.mode = "audience";
    t.audience = "12";
    Error e = Catch([&] { CheckSyncTarget(spec, {}, t, "s1", "shop"); });
    EXPECT_EQ(e.sqlstate(), "0A000");
    EXPECT_STREQ(e.what(), "sync \"s1\" cannot use mode audience with server \"shop\" (type orders_api)");

    spec.audience.supported = true;
    spec.audience.names = "shop list id";
    spec.audience.numeric = true;
    spec.objects[1].modes.push_back("audience");
    EXPECT_NO_THROW(CheckSyncTarget(spec, {}, t, "s1", "shop"));
    for (const char *bad : {"", "0", "00", "-1", "1a", "vip", "1234567890123456789"}) {
        SCOPED_TRACE(bad);
        t.audience = bad;
        e = Catch([&] { CheckSyncTarget(spec, {}, t, "s1", "shop"); });
        EXPECT_EQ(e.sqlstate(), "22023");
    }
    t.audience = "42";
    // The identifiers: the MATCH ON field, or every mapped field.
    EXPECT_EQ(AudienceIdentifierFields(spec, t, {"customer_no", "name"}),
              (std::vector<std::string>{"customer_no"}));
    spec.audience.every_field_identifies = true;
    EXPECT_EQ(AudienceIdentifierFields(spec, t, {"email_sha256", "phone_sha256"}),
              (std::vector<std::string>{"email_sha256", "phone_sha256"}));
    t.mode = "upsert";
    EXPECT_TRUE(AudienceIdentifierFields(spec, t, {"a"}).empty());
}
