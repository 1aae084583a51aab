// revetl.allowed_hosts: names, public and non-public addresses, networks.
#include "core/common/error.hpp"
#include "core/delivery/host_policy.hpp"

#include <gtest/gtest.h>

using namespace revetl;

namespace {

IpAddress Ip(const char *text) {
    auto a = ParseIpAddress(text);
    EXPECT_TRUE(a.has_value()) << text;
    return a.value_or(IpAddress{});
}

} // namespace

TEST(IpAddress, ParsesBothFamiliesAndBrackets) {
    EXPECT_EQ(Ip("192.0.2.1").family, 4);
    EXPECT_EQ(Ip("2001:db8::1").family, 6);
    EXPECT_EQ(Ip("[::1]").family, 6);
    EXPECT_FALSE(ParseIpAddress("localhost").has_value());
    EXPECT_FALSE(ParseIpAddress("1.2.3").has_value());
    EXPECT_FALSE(ParseIpAddress("").has_value());
    EXPECT_EQ(FormatIpAddress(Ip("[::ffff:127.0.0.1]")), "::ffff:127.0.0.1");
}

TEST(IpAddress, NonPublicRanges) {
    for (const char *a : {"127.0.0.1",
                          "127.255.0.9",
                          "10.1.2.3",
                          "172.16.0.1",
                          "172.31.255.255",
                          "192.168.1.1",
                          "169.254.169.254",
                          "100.64.0.1",
                          "0.0.0.0",
                          "224.0.0.1",
                          "255.255.255.255",
                          "::1",
                          "::",
                          "fe80::1",
                          "fd00::1",
                          "fc12::1",
                          "ff02::1",
                          "::ffff:10.0.0.1",
                          "::ffff:127.0.0.1",
                          "64:ff9b::a9fe:a9fe",
                          "2002:7f00:1::1",
                          "192.0.2.5",
                          "2001:db8::5"})
        EXPECT_FALSE(IsPublicAddress(Ip(a))) << a;
    for (const char *a : {"8.8.8.8", "1.1.1.1", "172.32.0.1", "172.15.255.255", "100.128.0.1", "169.253.1.1",
                          "2606:4700:4700::1111", "::ffff:8.8.8.8", "2002:0808:0808::1"})
        EXPECT_TRUE(IsPublicAddress(Ip(a))) << a;
}

TEST(HostPolicy, StarAllowsNamesAndPublicAddressesOnly) {
    HostPolicy p("*");
    EXPECT_TRUE(p.NameAllowed("api.hubapi.com"));
    EXPECT_TRUE(p.NameAllowed("localhost")); // a name: its addresses are judged at connect time
    EXPECT_TRUE(p.NameAllowed("8.8.8.8"));
    EXPECT_FALSE(p.NameAllowed("127.0.0.1"));
    EXPECT_FALSE(p.NameAllowed("169.254.169.254"));
    EXPECT_FALSE(p.NameAllowed("[::1]"));
    EXPECT_FALSE(p.AddressRefusal(Ip("8.8.8.8")).has_value());
    auto refusal = p.AddressRefusal(Ip("127.0.0.1"));
    ASSERT_TRUE(refusal.has_value());
    EXPECT_NE(refusal->find("127.0.0.1"), std::string::npos);
    EXPECT_NE(refusal->find("revetl.allowed_hosts"), std::string::npos);
    EXPECT_TRUE(p.AddressRefusal(Ip("10.0.0.7")).has_value());
}

TEST(HostPolicy, AddressesAndNetworksOpenNonPublicAddresses) {
    HostPolicy p("127.0.0.1, 10.0.0.0/8, fd00::/8");
    EXPECT_TRUE(p.NameAllowed("127.0.0.1"));
    EXPECT_TRUE(p.NameAllowed("10.200.1.1"));
    EXPECT_TRUE(p.NameAllowed("[fd12::1]"));
    EXPECT_FALSE(p.NameAllowed("127.0.0.2"));
    EXPECT_FALSE(p.NameAllowed("11.0.0.1"));  // public, but no "*"
    EXPECT_FALSE(p.NameAllowed("localhost")); // names need a name entry
    EXPECT_FALSE(p.AddressRefusal(Ip("127.0.0.1")).has_value());
    EXPECT_FALSE(p.AddressRefusal(Ip("10.9.9.9")).has_value());
    EXPECT_TRUE(p.AddressRefusal(Ip("192.168.0.1")).has_value());
    EXPECT_TRUE(p.AddressRefusal(Ip("169.254.169.254")).has_value());
}

TEST(HostPolicy, NamingAHostDoesNotOpenItsPrivateAddress) {
    HostPolicy p("localhost, .internal.example");
    EXPECT_TRUE(p.NameAllowed("localhost"));
    EXPECT_TRUE(p.NameAllowed("db.internal.example"));
    // Whatever a permitted name resolves to is judged as an address.
    EXPECT_TRUE(p.AddressRefusal(Ip("127.0.0.1")).has_value());
    EXPECT_TRUE(p.AddressRefusal(Ip("::1")).has_value());
}

TEST(HostPolicy, MalformedNetworksAreRefused) {
    EXPECT_THROW(HostPolicy("10.0.0.0/33"), Error);
    EXPECT_THROW(HostPolicy("10.0.0.0/x"), Error);
    EXPECT_THROW(HostPolicy("example.com/8"), Error);
    EXPECT_THROW(HostPolicy("::/129"), Error);
    EXPECT_NO_THROW(HostPolicy("0.0.0.0/0, ::/0"));
    // A network of everything opens every address, deliberately.
    EXPECT_FALSE(HostPolicy("0.0.0.0/0").AddressRefusal(Ip("127.0.0.1")).has_value());
}
