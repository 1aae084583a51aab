#include "core/connectors/spec.hpp"
#include "core/common/error.hpp"

#include "test_util.hpp"

#include <gtest/gtest.h>

#include <functional>
#include <string>

using namespace revetl;
using revetl_test::Catch;
using revetl_test::Contains;
using revetl_test::NotContains;

namespace {

Error ServerError(const OptionList &options) {
    return Catch([&] { ValidateOptions(OptionContext::Server, options); });
}

OptionList ValidServer() {
    return {{"type", "webhook"}, {"url", "https://hooks.example.com/revetl"}};
}

OptionList With(OptionList list, const std::string &name, const std::string &value) {
    list.emplace_back(name, value);
    return list;
}

} // namespace

// ---------------------------------------------------------------- validation

TEST(ValidateOptions, ValidServerPasses) {
    EXPECT_NO_THROW(ValidateOptions(OptionContext::Server, ValidServer()));
    OptionList all = {{"type", "webhook"},     {"url", "http://10.0.0.1:8080/hook?x=1"},
                      {"method", "PATCH"},     {"headers", "{\"X-Source\": \"revetl\", \"X-Empty\": \"\"}"},
                      {"timeout", "30s"},      {"connect_timeout", "2min"},
                      {"batch_size", "10000"}, {"max_attempts", "20"}};
    EXPECT_NO_THROW(ValidateOptions(OptionContext::Server, all));
}

TEST(ValidateOptions, WrapperTakesNoOptions) {
    EXPECT_NO_THROW(ValidateOptions(OptionContext::Wrapper, {}));
    Error e = Catch([] { ValidateOptions(OptionContext::Wrapper, {{"url", "http://x"}}); });
    EXPECT_EQ(e.sqlstate(), "HV00D");
    EXPECT_STREQ(e.what(), "invalid option \"url\" for foreign data wrapper revetl");
    EXPECT_TRUE(Contains(e.hint(), "CREATE SERVER"));
}

TEST(ValidateOptions, OtherContextTakesNoOptions) {
    EXPECT_NO_THROW(ValidateOptions(OptionContext::Other, {}));
    Error e = Catch([] { ValidateOptions(OptionContext::Other, {{"batch_size", "1"}}); });
    EXPECT_EQ(e.sqlstate(), "HV00D");
    EXPECT_STREQ(e.what(), "invalid option \"batch_size\"");
}

TEST(ValidateOptions, UnknownServerOptionSuggestsNearMiss) {
    Error e = ServerError(With(ValidServer(), "ur", "x"));
    EXPECT_EQ(e.sqlstate(), "HV00D");
    EXPECT_STREQ(e.what(), "invalid option \"ur\" for a revetl server");
    EXPECT_EQ(e.hint().rfind("Perhaps you meant the option \"url\". ", 0), 0u) << e.hint();
    EXPECT_TRUE(Contains(
        e.hint(), "Valid options in this context are: type, url, method, headers, timeout, "
                  "connect_timeout, batch_size, max_attempts, max_in_flight, rate_limit, settle_time."));

    e = ServerError(With(ValidServer(), "batchsize", "10"));
    EXPECT_EQ(e.sqlstate(), "HV00D");
    EXPECT_TRUE(Contains(e.hint(), "Perhaps you meant the option \"batch_size\"."));
}

TEST(ValidateOptions, UnknownOptionWithoutNearMissHasNoSuggestion) {
    Error e = ServerError(With(ValidServer(), "colour", "blue"));
    EXPECT_EQ(e.sqlstate(), "HV00D");
    EXPECT_TRUE(NotContains(e.hint(), "Perhaps"));
    EXPECT_TRUE(Contains(e.hint(), "Valid options in this context are:"));
}

TEST(ValidateOptions, OptionNamesAreCaseSensitive) {
    Error e = ServerError(With(ValidServer(), "URL", "https://a.example.com"));
    EXPECT_EQ(e.sqlstate(), "HV00D");
    EXPECT_TRUE(Contains(e.hint(), "Perhaps you meant the option \"url\"."));
}

TEST(ValidateOptions, SecretsOnServerPointToUserMappings) {
    for (const char *name : {"token", "password", "api_key", "secret"}) {
        SCOPED_TRACE(name);
        Error e = ServerError(With(ValidServer(), name, "s3cr3t-value"));
        EXPECT_EQ(e.sqlstate(), "HV00D");
        EXPECT_EQ(std::string(e.what()), std::string("invalid option \"") + name + "\" for a revetl server");
        EXPECT_TRUE(Contains(e.detail(), "user mapping"));
        EXPECT_TRUE(Contains(e.hint(), "CREATE USER MAPPING"));
        // The secret's value never shows up in the error.
        EXPECT_TRUE(NotContains(e.what(), "s3cr3t"));
        EXPECT_TRUE(NotContains(e.detail(), "s3cr3t"));
        EXPECT_TRUE(NotContains(e.hint(), "s3cr3t"));
    }
}

TEST(ValidateOptions, MissingType) {
    Error e = ServerError({{"url", "https://a.example.com"}});
    EXPECT_EQ(e.sqlstate(), "HV024");
    EXPECT_STREQ(e.what(), "a revetl server needs the option \"type\"");
    EXPECT_TRUE(Contains(e.hint(), "Valid types are: webhook, hubspot, http, zendesk, salesforce, braze, "
                                   "segment, customerio, klaviyo."));
}

TEST(ValidateOptions, UnknownTypeSuggests) {
    Error e = ServerError({{"type", "webhok"}, {"url", "https://a.example.com"}});
    EXPECT_EQ(e.sqlstate(), "HV024");
    EXPECT_STREQ(e.what(), "unknown destination type \"webhok\"");
    EXPECT_EQ(e.hint(), "Perhaps you meant \"webhook\". Valid types are: webhook, hubspot, http, zendesk, "
                        "salesforce, braze, segment, customerio, klaviyo.");

    e = ServerError({{"type", "kafka"}, {"url", "https://a.example.com"}});
    EXPECT_STREQ(e.what(), "unknown destination type \"kafka\"");
    EXPECT_EQ(
        e.hint(),
        "Valid types are: webhook, hubspot, http, zendesk, salesforce, braze, segment, customerio, klaviyo.");
}

TEST(ValidateOptions, MissingUrl) {
    Error e = ServerError({{"type", "webhook"}});
    EXPECT_EQ(e.sqlstate(), "HV024");
    EXPECT_STREQ(e.what(), "a revetl server of type \"webhook\" needs the option \"url\"");
    e = ServerError({{"type", "webhook"}, {"url", ""}});
    EXPECT_STREQ(e.what(), "a revetl server of type \"webhook\" needs the option \"url\"");
}

TEST(ValidateOptions, BadUrlScheme) {
    for (const char *url :
         {"ftp://example.com/x", "example.com", "file:///etc/passwd", "httpx://a.b", "//a.b"}) {
        SCOPED_TRACE(url);
        Error e = ServerError({{"type", "webhook"}, {"url", url}});
        EXPECT_EQ(e.sqlstate(), "HV024");
        EXPECT_STREQ(e.what(), "invalid value for option \"url\"");
        EXPECT_EQ(e.detail(), "The URL must start with http:// or https://.");
    }
}

TEST(ValidateOptions, WhitespaceInUrl) {
    for (const char *url : {"https://a.example.com/x y", "https://a.example.com/\r\nX-Injected: 1",
                            "https://a.example.com/\tx", "https://a.example.com/x\n"}) {
        SCOPED_TRACE(url);
        Error e = ServerError({{"type", "webhook"}, {"url", url}});
        EXPECT_EQ(e.sqlstate(), "HV024");
        EXPECT_EQ(e.detail(), "The URL may not contain whitespace and is limited to 2048 bytes.");
    }
}

TEST(ValidateOptions, UrlLengthLimit) {
    std::string base = "https://a.example.com/";
    std::string ok = base + std::string(2048 - base.size(), 'x');
    EXPECT_NO_THROW(ValidateOptions(OptionContext::Server, {{"type", "webhook"}, {"url", ok}}));
    Error e = ServerError({{"type", "webhook"}, {"url", ok + "x"}});
    EXPECT_EQ(e.detail(), "The URL may not contain whitespace and is limited to 2048 bytes.");
}

TEST(ValidateOptions, UrlWithoutHost) {
    Error e = ServerError({{"type", "webhook"}, {"url", "https:///path"}});
    EXPECT_EQ(e.detail(), "The URL has no host.");
    e = ServerError({{"type", "webhook"}, {"url", "http://user@:80/"}});
    EXPECT_EQ(e.detail(), "The URL has no host.");
}

TEST(ValidateOptions, Method) {
    EXPECT_NO_THROW(ValidateOptions(OptionContext::Server, With(ValidServer(), "method", "PUT")));
    Error e = ServerError(With(ValidServer(), "method", "GET"));
    EXPECT_EQ(e.sqlstate(), "HV024");
    EXPECT_STREQ(e.what(), "invalid value for option \"method\": \"GET\"");
    e = ServerError(With(ValidServer(), "method", "post"));
    EXPECT_STREQ(e.what(), "invalid value for option \"method\": \"post\"");
}

TEST(ValidateOptions, HeadersMustBeAJsonObject) {
    for (const char *json : {"[\"a\"]", "\"X-A: 1\"", "{", "", "null", "{\"a\":\"1\"} x"}) {
        SCOPED_TRACE(json);
        Error e = ServerError(With(ValidServer(), "headers", json));
        EXPECT_EQ(e.sqlstate(), "HV024");
        EXPECT_STREQ(e.what(), "invalid value for option \"headers\"");
        EXPECT_EQ(e.detail(), "The value must be a JSON object of header names to string values.");
    }
}

TEST(ValidateOptions, HeaderNameMustBeAToken) {
    Error e = ServerError(With(ValidServer(), "headers", "{\"X Bad\": \"1\"}"));
    EXPECT_EQ(e.sqlstate(), "HV024");
    EXPECT_STREQ(e.what(), "invalid header name in option \"headers\"");
    EXPECT_EQ(e.detail(), "\"X Bad\" is not a valid HTTP header name.");

    for (const char *json :
         {"{\"\": \"1\"}", "{\"X-A:\": \"1\"}", "{\"X\\r\\nY\": \"1\"}", "{\"X(A)\": \"1\"}"}) {
        SCOPED_TRACE(json);
        e = ServerError(With(ValidServer(), "headers", json));
        EXPECT_STREQ(e.what(), "invalid header name in option \"headers\"");
    }
    std::string long_name(257, 'a');
    e = ServerError(With(ValidServer(), "headers", "{\"" + long_name + "\": \"1\"}"));
    EXPECT_STREQ(e.what(), "invalid header name in option \"headers\"");
    EXPECT_NO_THROW(ValidateOptions(
        OptionContext::Server, With(ValidServer(), "headers", "{\"" + long_name.substr(1) + "\": \"1\"}")));
    EXPECT_NO_THROW(ValidateOptions(OptionContext::Server,
                                    With(ValidServer(), "headers", "{\"X-a!#$%&'*+-.^_`|~9\": \"1\"}")));
}

TEST(ValidateOptions, SecretHeaderNameIsNotEchoed) {
    Error e = Catch([] {
        ValidateOptions(OptionContext::UserMapping, {{"headers", "{\"Bearer abc123\": \"1\"}"}});
    });
    EXPECT_EQ(e.sqlstate(), "HV024");
    EXPECT_EQ(e.detail(), "A header name is not a valid HTTP token.");
    EXPECT_TRUE(NotContains(e.what(), "abc123"));
}

TEST(ValidateOptions, HeaderValueMustBeAString) {
    for (const char *json : {"{\"X-A\": 1}", "{\"X-A\": null}", "{\"X-A\": [\"1\"]}", "{\"X-A\": true}"}) {
        SCOPED_TRACE(json);
        Error e = ServerError(With(ValidServer(), "headers", json));
        EXPECT_EQ(e.sqlstate(), "HV024");
        EXPECT_STREQ(e.what(), "invalid value for header \"X-A\" in option \"headers\"");
        EXPECT_EQ(e.detail(), "Header values must be JSON strings.");
    }
}

TEST(ValidateOptions, HeaderValueInjectionRejected) {
    for (const char *json : {"{\"X-A\": \"1\\r\\nX-Evil: 2\"}", "{\"X-A\": \"1\\nX-Evil: 2\"}",
                             "{\"X-A\": \"1\\rX\"}", "{\"X-A\": \"1\\u0000\"}"}) {
        SCOPED_TRACE(json);
        Error e = ServerError(With(ValidServer(), "headers", json));
        EXPECT_EQ(e.sqlstate(), "HV024");
        EXPECT_STREQ(e.what(), "invalid value for header \"X-A\" in option \"headers\"");
        EXPECT_TRUE(Contains(e.detail(), "line breaks or NUL"));
    }
    Error e = Catch([] {
        ValidateOptions(OptionContext::UserMapping, {{"headers", "{\"X-Key\": \"k\\r\\nX-Evil: 1\"}"}});
    });
    EXPECT_EQ(e.sqlstate(), "HV024");
    EXPECT_TRUE(Contains(e.detail(), "line breaks"));
}

TEST(ValidateOptions, HeaderValueLengthLimit) {
    std::string ok(8192, 'v');
    EXPECT_NO_THROW(
        ValidateOptions(OptionContext::Server, With(ValidServer(), "headers", "{\"X-A\": \"" + ok + "\"}")));
    Error e = ServerError(With(ValidServer(), "headers", "{\"X-A\": \"" + ok + "v\"}"));
    EXPECT_EQ(e.sqlstate(), "HV024");
}

TEST(ValidateOptions, ReservedHeadersRefused) {
    for (const char *name : {"Content-Length", "content-length", "HOST", "Transfer-Encoding"}) {
        SCOPED_TRACE(name);
        Error e = ServerError(With(ValidServer(), "headers", std::string("{\"") + name + "\": \"5\"}"));
        EXPECT_EQ(e.sqlstate(), "HV024");
        EXPECT_EQ(std::string(e.what()),
                  std::string("header \"") + name + "\" in option \"headers\" cannot be set");
        EXPECT_EQ(e.detail(), "revetl sets this header itself.");
    }
}

TEST(ValidateOptions, DurationsAndTheirBounds) {
    EXPECT_NO_THROW(ValidateOptions(OptionContext::Server, With(ValidServer(), "timeout", "600s")));
    EXPECT_NO_THROW(ValidateOptions(OptionContext::Server, With(ValidServer(), "timeout", "1")));
    EXPECT_NO_THROW(ValidateOptions(OptionContext::Server, With(ValidServer(), "connect_timeout", "120s")));

    Error e = ServerError(With(ValidServer(), "timeout", "601s"));
    EXPECT_EQ(e.sqlstate(), "HV024");
    EXPECT_STREQ(e.what(), "invalid value for option \"timeout\": \"601s\"");
    EXPECT_EQ(e.detail(), "The value must be a duration from 1ms to 600s.");
    EXPECT_TRUE(Contains(e.hint(), "ms, s, min, h or d"));

    e = ServerError(With(ValidServer(), "connect_timeout", "121s"));
    EXPECT_EQ(e.detail(), "The value must be a duration from 1ms to 120s.");

    for (const char *bad : {"0", "0s", "abc", "10m", "1.5s", "-1s", "", "s", "10 fortnights"}) {
        SCOPED_TRACE(bad);
        e = ServerError(With(ValidServer(), "timeout", bad));
        EXPECT_EQ(e.sqlstate(), "HV024");
        EXPECT_EQ(std::string(e.what()),
                  std::string("invalid value for option \"timeout\": \"") + bad + "\"");
    }
}

TEST(ValidateOptions, IntegersAndTheirBounds) {
    EXPECT_NO_THROW(ValidateOptions(OptionContext::Server, With(ValidServer(), "batch_size", "1")));
    EXPECT_NO_THROW(ValidateOptions(OptionContext::Server, With(ValidServer(), "max_attempts", "1")));
    Error e = ServerError(With(ValidServer(), "batch_size", "10001"));
    EXPECT_EQ(e.sqlstate(), "HV024");
    EXPECT_STREQ(e.what(), "invalid value for option \"batch_size\": \"10001\"");
    EXPECT_EQ(e.detail(), "The value must be an integer from 1 to 10000.");
    e = ServerError(With(ValidServer(), "max_attempts", "21"));
    EXPECT_EQ(e.detail(), "The value must be an integer from 1 to 20.");
    for (const char *bad : {"0", "-1", "+5", " 5", "5 ", "1e3", "ten", "", "9999999999999"}) {
        SCOPED_TRACE(bad);
        e = ServerError(With(ValidServer(), "batch_size", bad));
        EXPECT_EQ(e.sqlstate(), "HV024");
    }
}

TEST(ValidateOptions, UserMapping) {
    EXPECT_NO_THROW(ValidateOptions(OptionContext::UserMapping, {}));
    EXPECT_NO_THROW(ValidateOptions(OptionContext::UserMapping,
                                    {{"token", "abc"}, {"headers", "{\"X-Api-Key\": \"k\"}"}}));

    Error e = Catch([] { ValidateOptions(OptionContext::UserMapping, {{"tokn", "abc"}}); });
    EXPECT_EQ(e.sqlstate(), "HV00D");
    EXPECT_STREQ(e.what(), "invalid option \"tokn\" for a revetl user mapping");
    EXPECT_EQ(
        e.hint(),
        "Perhaps you meant the option \"token\". Valid options in this context are: token, user, password, "
        "api_key, headers, oauth_token_url, client_id, client_secret, refresh_token, scope.");

    // Server options do not belong on a user mapping.
    e = Catch([] { ValidateOptions(OptionContext::UserMapping, {{"url", "https://a.example.com"}}); });
    EXPECT_EQ(e.sqlstate(), "HV00D");

    for (std::string bad :
         {std::string(), std::string("abc\r\ndef"), std::string("abc\n"), std::string(8193, 't')}) {
        e = Catch([&] { ValidateOptions(OptionContext::UserMapping, {{"token", bad}}); });
        EXPECT_EQ(e.sqlstate(), "HV024");
        EXPECT_STREQ(e.what(), "invalid value for option \"token\"");
        if (!bad.empty()) {
            EXPECT_TRUE(NotContains(e.what(), bad));
            EXPECT_TRUE(NotContains(e.detail(), bad.substr(0, 3)));
        }
    }
    EXPECT_NO_THROW(ValidateOptions(OptionContext::UserMapping, {{"token", std::string(8192, 't')}}));
}

// ------------------------------------------------------------------ parsing

TEST(ParseDurationMs, Units) {
    EXPECT_EQ(ParseDurationMs("t", "250ms", 1, 1L << 40), 250);
    EXPECT_EQ(ParseDurationMs("t", "30s", 1, 1L << 40), 30000);
    EXPECT_EQ(ParseDurationMs("t", "2min", 1, 1L << 40), 120000);
    EXPECT_EQ(ParseDurationMs("t", "1h", 1, 1L << 40), 3600000);
    EXPECT_EQ(ParseDurationMs("t", "1500", 1, 1L << 40), 1500);
    EXPECT_EQ(ParseDurationMs("t", "30S", 1, 1L << 40), 30000);
    EXPECT_EQ(ParseDurationMs("t", "5 MS", 1, 1L << 40), 5);
    EXPECT_EQ(ParseDurationMs("t", "007s", 1, 1L << 40), 7000);
    EXPECT_EQ(ParseDurationMs("t", "2d", 1, 1L << 40), 172800000);
    EXPECT_EQ(ParseDurationMs("t", "999999999h", 1, 1L << 62), 999999999L * 3600000L);
    EXPECT_EQ(ParseDurationMs("t", "999999999d", 1, 1L << 62), 999999999L * 86400000L);
    // The words of PostgreSQL's interval input, as schedules take them.
    EXPECT_EQ(ParseDurationMs("t", "15 minutes", 1, 1L << 40), 900000);
    EXPECT_EQ(ParseDurationMs("t", "1 hour", 1, 1L << 40), 3600000);
    EXPECT_EQ(ParseDurationMs("t", "30 Seconds", 1, 1L << 40), 30000);
    EXPECT_EQ(ParseDurationMs("t", "5sec", 1, 1L << 40), 5000);
    EXPECT_EQ(ParseDurationMs("t", "2 days", 1, 1L << 40), 172800000);
    EXPECT_EQ(ParseDurationMs("t", "250 milliseconds", 1, 1L << 40), 250);
}

TEST(ParseDurationMs, RejectsBadTextAndOutOfRange) {
    for (const char *bad : {"", "ms", "1.5s", "-5", "+5", " 5", "5m", "1w", "1y", "0x10", "1234567890",
                            "minutes", "5 mins x"}) {
        SCOPED_TRACE(bad);
        Error e = Catch([&] { ParseDurationMs("timeout", bad, 0, 1L << 40); });
        EXPECT_EQ(e.sqlstate(), "HV024");
        EXPECT_EQ(std::string(e.what()),
                  std::string("invalid value for option \"timeout\": \"") + bad + "\"");
    }
    EXPECT_EQ(ParseDurationMs("t", "10ms", 10, 20), 10);
    EXPECT_EQ(ParseDurationMs("t", "20ms", 10, 20), 20);
    EXPECT_EQ(Catch([] { ParseDurationMs("t", "9ms", 10, 20); }).sqlstate(), "HV024");
    EXPECT_EQ(Catch([] { ParseDurationMs("t", "21", 10, 20); }).sqlstate(), "HV024");
    EXPECT_EQ(Catch([] { ParseDurationMs("t", "1s", 10, 20); }).sqlstate(), "HV024");
    // Large values are range errors, never overflow.
    EXPECT_EQ(Catch([] { ParseDurationMs("t", "999999999d", 1, 600000); }).sqlstate(), "HV024");
    EXPECT_EQ(Catch([] { ParseDurationMs("t", "11d", 1, 10L * 86400000); }).sqlstate(), "HV024");
    EXPECT_EQ(ParseDurationMs("t", "10d", 1, 10L * 86400000), 10L * 86400000);
}

TEST(ParseBoundedInt, Values) {
    EXPECT_EQ(ParseBoundedInt("n", "0", 0, 5), 0);
    EXPECT_EQ(ParseBoundedInt("n", "5", 0, 5), 5);
    EXPECT_EQ(ParseBoundedInt("n", "0005", 0, 5), 5);
    EXPECT_EQ(ParseBoundedInt("n", "999999999999", 0, 1000000000000L), 999999999999L);
    Error e = Catch([] { ParseBoundedInt("n", "6", 0, 5); });
    EXPECT_EQ(e.sqlstate(), "HV024");
    EXPECT_STREQ(e.what(), "invalid value for option \"n\": \"6\"");
    EXPECT_EQ(e.detail(), "The value must be an integer from 0 to 5.");
    EXPECT_EQ(Catch([] { ParseBoundedInt("n", "1234567890123", 0, 1L << 60); }).sqlstate(), "HV024");
}

TEST(ParseHeaderObject, KeepsOrderAndValues) {
    OptionList h =
        ParseHeaderObject("headers", "{\"X-B\": \"2\", \"X-A\": \"\", \"x-c\": \"a b: c\"}", false);
    ASSERT_EQ(h.size(), 3u);
    EXPECT_EQ(h[0], std::make_pair(std::string("X-B"), std::string("2")));
    EXPECT_EQ(h[1], std::make_pair(std::string("X-A"), std::string("")));
    EXPECT_EQ(h[2], std::make_pair(std::string("x-c"), std::string("a b: c")));
    EXPECT_TRUE(ParseHeaderObject("headers", "{}", false).empty());
}

// ------------------------------------------------------------------ resolve

TEST(ResolveDestinationSettings, Defaults) {
    DestinationSettings s =
        ResolveDestinationSettings({{"type", "webhook"}, {"url", "https://a.example.com/h"}}, {});
    EXPECT_EQ(s.url, "https://a.example.com/h");
    EXPECT_EQ(s.method, "POST");
    EXPECT_TRUE(s.headers.empty());
    EXPECT_EQ(s.credentials.token, "");
    EXPECT_EQ(s.timeout_ms, 30000);
    EXPECT_EQ(s.connect_timeout_ms, 10000);
    EXPECT_EQ(s.batch_size, 100);
    EXPECT_EQ(s.max_attempts, 5);
}

TEST(ResolveDestinationSettings, AllOptions) {
    DestinationSettings s = ResolveDestinationSettings({{"type", "webhook"},
                                                        {"url", "https://a.example.com/h"},
                                                        {"method", "PUT"},
                                                        {"timeout", "2min"},
                                                        {"connect_timeout", "1500ms"},
                                                        {"batch_size", "500"},
                                                        {"max_attempts", "7"}},
                                                       {{"token", "tok-123"}});
    EXPECT_EQ(s.method, "PUT");
    EXPECT_EQ(s.timeout_ms, 120000);
    EXPECT_EQ(s.connect_timeout_ms, 1500);
    EXPECT_EQ(s.batch_size, 500);
    EXPECT_EQ(s.max_attempts, 7);
    EXPECT_EQ(s.credentials.token, "tok-123");
}

TEST(ResolveDestinationSettings, UserMappingHeadersOverrideServerHeadersCaseInsensitively) {
    DestinationSettings s = ResolveDestinationSettings(
        {{"type", "webhook"},
         {"url", "https://a.example.com/h"},
         {"headers", "{\"X-Api-Key\": \"server-key\", \"X-Source\": \"revetl\", \"x-team\": \"data\"}"}},
        {{"headers", "{\"x-api-key\": \"user-key\", \"X-TEAM\": \"ops\", \"X-Extra\": \"1\"}"}});
    OptionList expected = {
        {"X-Source", "revetl"}, {"x-api-key", "user-key"}, {"X-TEAM", "ops"}, {"X-Extra", "1"}};
    EXPECT_EQ(s.headers, expected);
}

// ---------------------------------------------------------------------- URL

TEST(UrlHost, Basics) {
    EXPECT_EQ(UrlHost("https://hooks.example.com/revetl"), "hooks.example.com");
    EXPECT_EQ(UrlHost("http://hooks.example.com"), "hooks.example.com");
    EXPECT_EQ(UrlHost("HTTPS://Hooks.Example.COM/Path"), "hooks.example.com");
    EXPECT_EQ(UrlHost("https://hooks.example.com:8443/x"), "hooks.example.com");
    EXPECT_EQ(UrlHost("https://hooks.example.com?x=1"), "hooks.example.com");
    EXPECT_EQ(UrlHost("https://hooks.example.com#frag"), "hooks.example.com");
}

TEST(UrlHost, UserInfoIsNotTheHost) {
    EXPECT_EQ(UrlHost("https://user:pass@hooks.example.com/x"), "hooks.example.com");
    EXPECT_EQ(UrlHost("https://allowed.example.com@evil.test/x"), "evil.test");
    EXPECT_EQ(UrlHost("https://a:b@c@evil.test:99/"), "evil.test");
    // An @ after the authority is part of the path or query, not user info.
    EXPECT_EQ(UrlHost("https://good.example.com/x@evil.test"), "good.example.com");
    EXPECT_EQ(UrlHost("https://good.example.com?u=x@evil.test"), "good.example.com");
}

TEST(UrlHost, Ipv6Literal) {
    EXPECT_EQ(UrlHost("http://[::1]:8080/x"), "[::1]");
    EXPECT_EQ(UrlHost("http://[2001:DB8::1]/"), "[2001:db8::1]");
    EXPECT_EQ(UrlHost("http://u:p@[fe80::1]"), "[fe80::1]");
    EXPECT_EQ(Catch([] { UrlHost("http://[::1/x"); }).detail(), "The URL has no host.");
}

TEST(UrlHost, Rejects) {
    EXPECT_EQ(Catch([] { UrlHost("ftp://a.example.com"); }).detail(),
              "The URL must start with http:// or https://.");
    EXPECT_EQ(Catch([] { UrlHost(" https://a.example.com"); }).detail(),
              "The URL must start with http:// or https://.");
    EXPECT_EQ(Catch([] { UrlHost("http://"); }).detail(), "The URL has no host.");
    EXPECT_EQ(Catch([] { UrlHost("http://:8080/"); }).detail(), "The URL has no host.");
    EXPECT_EQ(Catch([] { UrlHost("http://a b.com/"); }).sqlstate(), "HV024");
}

TEST(RedactUrl, HidesUserInfoAndQuery) {
    EXPECT_EQ(RedactUrl("https://hooks.example.com/revetl"), "https://hooks.example.com/revetl");
    EXPECT_EQ(RedactUrl("https://user:pw@hooks.example.com/x"), "https://***@hooks.example.com/x");
    EXPECT_EQ(RedactUrl("https://hooks.example.com/x?api_key=SECRET&a=1"), "https://hooks.example.com/x?***");
    EXPECT_EQ(RedactUrl("https://u:SECRET@h.example.com:99/p?token=SECRET#frag"),
              "https://***@h.example.com:99/p?***");
    EXPECT_EQ(RedactUrl("https://h.example.com/p#SECRET"), "https://h.example.com/p?***");
    EXPECT_EQ(RedactUrl("https://u:p@host"), "https://***@host");
    EXPECT_EQ(RedactUrl("https://a@b@host/x"), "https://***@host/x");
    // An @ in the path is left alone.
    EXPECT_EQ(RedactUrl("https://host/users/@me"), "https://host/users/@me");
}

TEST(HostAllowed, Rules) {
    EXPECT_TRUE(HostAllowed("anything.test", "*"));
    EXPECT_TRUE(HostAllowed("anything.test", "a.example.com, *"));
    EXPECT_TRUE(HostAllowed("hooks.example.com", "hooks.example.com"));
    EXPECT_TRUE(HostAllowed("Hooks.Example.com", "HOOKS.example.COM"));
    EXPECT_TRUE(HostAllowed("hooks.example.com", "other.test, hooks.example.com"));
    EXPECT_TRUE(HostAllowed("hooks.example.com", " other.test ,  hooks.example.com  "));
    EXPECT_FALSE(HostAllowed("hooks.example.com.evil.test", "hooks.example.com"));
    EXPECT_FALSE(HostAllowed("xhooks.example.com", "hooks.example.com"));
    EXPECT_FALSE(HostAllowed("example.com", "hooks.example.com"));
}

TEST(HostAllowed, DomainSuffix) {
    EXPECT_TRUE(HostAllowed("a.example.com", ".example.com"));
    EXPECT_TRUE(HostAllowed("a.b.example.com", ".example.com"));
    EXPECT_TRUE(HostAllowed("A.EXAMPLE.COM", ".Example.Com"));
    // Not the bare domain and not a name that merely ends the same way.
    EXPECT_FALSE(HostAllowed("example.com", ".example.com"));
    EXPECT_FALSE(HostAllowed("evil-example.com", ".example.com"));
    EXPECT_FALSE(HostAllowed("evilexample.com", ".example.com"));
    EXPECT_FALSE(HostAllowed("a.example.com.evil.test", ".example.com"));
    EXPECT_FALSE(HostAllowed(".example.com", ".example.com"));
}

TEST(HostAllowed, EmptyListAllowsNothing) {
    EXPECT_FALSE(HostAllowed("hooks.example.com", ""));
    EXPECT_FALSE(HostAllowed("hooks.example.com", " , ,"));
    EXPECT_FALSE(HostAllowed("", ""));
    EXPECT_FALSE(HostAllowed("", "a.example.com,"));
    EXPECT_FALSE(HostAllowed("a.example.com", "."));
}

TEST(HostAllowed, Ipv6) {
    // An address entry opens the address, however it is written.
    EXPECT_TRUE(HostAllowed(UrlHost("http://[::1]:9/"), "[::1]"));
    EXPECT_TRUE(HostAllowed(UrlHost("http://[::1]:9/"), "::1"));
    // "*" never opens loopback.
    EXPECT_FALSE(HostAllowed(UrlHost("http://[::1]:9/"), "*"));
    EXPECT_TRUE(HostAllowed(UrlHost("http://[2606:4700::1111]/"), "*"));
}

TEST(ClosestMatch, Suggestions) {
    std::vector<std::string> c = {
        "type", "url", "method", "headers", "timeout", "connect_timeout", "batch_size", "max_attempts"};
    EXPECT_EQ(ClosestMatch("ur", c), "url");
    EXPECT_EQ(ClosestMatch("batchsize", c), "batch_size");
    EXPECT_EQ(ClosestMatch("BATCH_SIZE", c), "batch_size");
    EXPECT_EQ(ClosestMatch("timout", c), "timeout");
    EXPECT_EQ(ClosestMatch("max_attempt", c), "max_attempts");
    EXPECT_EQ(ClosestMatch("header", c), "headers");
    EXPECT_EQ(ClosestMatch("webhok", {"webhook"}), "webhook");
}

TEST(ClosestMatch, NothingCloseGivesEmpty) {
    std::vector<std::string> c = {"type", "url", "method"};
    EXPECT_EQ(ClosestMatch("colour", c), "");
    EXPECT_EQ(ClosestMatch("x", c), "");
    EXPECT_EQ(ClosestMatch("", c), "");
    EXPECT_EQ(ClosestMatch("url", {}), "");
    EXPECT_EQ(ClosestMatch("abcdef", {"uvwxyz"}), "");
    // Exact match is distance 0.
    EXPECT_EQ(ClosestMatch("url", c), "url");
}

TEST(RateLimit, ParsesCountPerDuration) {
    RateLimit r = ParseRateLimit("rate_limit", "100 per 10s");
    EXPECT_EQ(r.count, 100);
    EXPECT_EQ(r.period_ms, 10000);
    r = ParseRateLimit("rate_limit", "3000 per 3s");
    EXPECT_EQ(r.count, 3000);
    EXPECT_EQ(r.period_ms, 3000);
    r = ParseRateLimit("rate_limit", "10 per second");
    EXPECT_EQ(r.count, 10);
    EXPECT_EQ(r.period_ms, 1000);
    r = ParseRateLimit("rate_limit", "3000 per minute");
    EXPECT_EQ(r.period_ms, 60000);
    r = ParseRateLimit("rate_limit", "100000 per Hour");
    EXPECT_EQ(r.period_ms, 3600000);
    r = ParseRateLimit("rate_limit", "100 per 10 seconds");
    EXPECT_EQ(r.period_ms, 10000);
    r = ParseRateLimit("rate_limit", "none");
    EXPECT_EQ(r.count, 0);
    for (const char *bad : {"100", "per 10s", "0 per 10s", "100 per", "100 per forever", "x per 1s"}) {
        SCOPED_TRACE(bad);
        try {
            ParseRateLimit("rate_limit", bad);
            ADD_FAILURE() << "accepted";
        } catch (const Error &e) {
            EXPECT_EQ(e.sqlstate(), "HV024");
            EXPECT_TRUE(Contains(e.hint(), "100 per 10s"));
        }
    }
}

TEST(ResolveDestinationSettings, HubSpotDefaults) {
    DestinationSettings s = ResolveDestinationSettings({{"type", "hubspot"}}, {{"token", "t"}});
    EXPECT_EQ(s.type, "hubspot");
    EXPECT_EQ(s.url, "https://api.hubapi.com");
    EXPECT_EQ(s.rate_limit.count, 100);
    EXPECT_EQ(s.rate_limit.period_ms, 10000);
    EXPECT_EQ(s.batch_size, 100);
    s = ResolveDestinationSettings(
        {{"type", "hubspot"}, {"rate_limit", "190 per 10s"}, {"batch_size", "500"}}, {});
    EXPECT_EQ(s.rate_limit.count, 190);
    EXPECT_EQ(s.batch_size, 100); // HubSpot takes at most 100 inputs per call
}
