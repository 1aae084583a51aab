// revetl.allowed_hosts as a policy, judged twice: on the host a server's URL
// names (at CREATE / ALTER SERVER and when a run starts), and on the address
// each connection actually reaches (libcurl asks before it opens a socket),
// so that DNS cannot point a permitted name at an internal address.
//
// Entries, comma-separated:
//   *                 any host name, and any public address
//   api.example.com   that host name
//   .example.com      the subdomains of example.com
//   127.0.0.1, ::1    that address
//   10.0.0.0/8        the addresses of that network
// Addresses that are not public (loopback, private, link-local including
// the cloud metadata address 169.254.169.254, unique-local, CGNAT,
// multicast, reserved, documentation) are reachable only through an entry
// that names them as addresses: "*" and host names never open them.
#pragma once

#include <array>
#include <optional>
#include <string>
#include <vector>

namespace revetl {

struct IpAddress {
    int family = 4;                        // 4 or 6
    std::array<unsigned char, 16> bytes{}; // IPv4 in the first 4
};

// "192.0.2.1", "2001:db8::1", "[2001:db8::1]"; nullopt for anything else.
std::optional<IpAddress> ParseIpAddress(const std::string &text);

std::string FormatIpAddress(const IpAddress &address);

// Whether the address is routable on the public internet (an IPv4 address
// mapped into or embedded in IPv6 is judged as the IPv4 address).
bool IsPublicAddress(const IpAddress &address);

class HostPolicy {
public:
    // Malformed entries (a bad network) throw revetl::Error.
    explicit HostPolicy(const std::string &allowlist);

    // A URL's host (lower-case name, or an address literal, IPv6 in brackets).
    bool NameAllowed(const std::string &host) const;

    // A connection about to be made: nullopt when allowed, else why not.
    std::optional<std::string> AddressRefusal(const IpAddress &address) const;

private:
    bool AddressListed(const IpAddress &address) const;

    struct Network {
        IpAddress base;
        int prefix = 0;
    };
    bool any_ = false;
    std::vector<std::string> names_;    // exact host names
    std::vector<std::string> suffixes_; // ".example.com"
    std::vector<Network> networks_;     // addresses (/32, /128) and networks
};

} // namespace revetl
