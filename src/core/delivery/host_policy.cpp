#include "core/delivery/host_policy.hpp"

#include "core/common/error.hpp"

#include <arpa/inet.h>

#include <algorithm>
#include <cctype>
#include <cstring>

namespace revetl {

namespace {

std::string Lower(std::string s) {
    std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return std::tolower(c); });
    return s;
}

std::string Trim(const std::string &s) {
    size_t a = s.find_first_not_of(" \t\r\n");
    if (a == std::string::npos)
        return "";
    size_t b = s.find_last_not_of(" \t\r\n");
    return s.substr(a, b - a + 1);
}

bool InNetwork(const IpAddress &a, const IpAddress &base, int prefix) {
    if (a.family != base.family)
        return false;
    for (int bit = 0; bit < prefix; bit++) {
        int byte = bit / 8, shift = 7 - bit % 8;
        if (((a.bytes[byte] >> shift) & 1) != ((base.bytes[byte] >> shift) & 1))
            return false;
    }
    return true;
}

bool InV4(const IpAddress &a, const char *base, int prefix) {
    return InNetwork(a, *ParseIpAddress(base), prefix);
}

bool InV6(const IpAddress &a, const char *base, int prefix) {
    return InNetwork(a, *ParseIpAddress(base), prefix);
}

IpAddress V4At(const IpAddress &a, int offset) {
    IpAddress v4;
    v4.family = 4;
    std::memcpy(v4.bytes.data(), a.bytes.data() + offset, 4);
    return v4;
}

} // namespace

std::optional<IpAddress> ParseIpAddress(const std::string &text) {
    std::string t = text;
    if (t.size() > 2 && t.front() == '[' && t.back() == ']')
        t = t.substr(1, t.size() - 2);
    IpAddress a;
    if (inet_pton(AF_INET, t.c_str(), a.bytes.data()) == 1) {
        a.family = 4;
        return a;
    }
    if (inet_pton(AF_INET6, t.c_str(), a.bytes.data()) == 1) {
        a.family = 6;
        return a;
    }
    return std::nullopt;
}

std::string FormatIpAddress(const IpAddress &address) {
    char buf[INET6_ADDRSTRLEN] = {0};
    inet_ntop(address.family == 4 ? AF_INET : AF_INET6, address.bytes.data(), buf, sizeof buf);
    return buf;
}

bool IsPublicAddress(const IpAddress &a) {
    if (a.family == 4) {
        static const std::pair<const char *, int> kNotPublic[] = {
            {"0.0.0.0", 8},       // "this network"
            {"10.0.0.0", 8},      // private
            {"100.64.0.0", 10},   // carrier-grade NAT
            {"127.0.0.0", 8},     // loopback
            {"169.254.0.0", 16},  // link-local, cloud metadata
            {"172.16.0.0", 12},   // private
            {"192.0.0.0", 24},    // IETF protocol assignments
            {"192.0.2.0", 24},    // documentation
            {"192.168.0.0", 16},  // private
            {"198.18.0.0", 15},   // benchmarking
            {"198.51.100.0", 24}, // documentation
            {"203.0.113.0", 24},  // documentation
            {"224.0.0.0", 4},     // multicast
            {"240.0.0.0", 4},     // reserved, broadcast
        };
        for (const auto &n : kNotPublic)
            if (InV4(a, n.first, n.second))
                return false;
        return true;
    }
    // IPv4 inside IPv6: mapped (::ffff:0:0/96), NAT64 (64:ff9b::/96),
    // 6to4 (2002::/16) are judged by the IPv4 address they carry.
    if (InV6(a, "::ffff:0:0", 96) || InV6(a, "64:ff9b::", 96))
        return IsPublicAddress(V4At(a, 12));
    if (InV6(a, "2002::", 16))
        return IsPublicAddress(V4At(a, 2));
    static const std::pair<const char *, int> kNotPublic[] = {
        {"::", 127},        // unspecified and loopback
        {"::", 96},         // IPv4-compatible (deprecated)
        {"100::", 64},      // discard
        {"2001:db8::", 32}, // documentation
        {"fc00::", 7},      // unique local
        {"fe80::", 10},     // link-local
        {"fec0::", 10},     // site-local (deprecated)
        {"ff00::", 8},      // multicast
    };
    for (const auto &n : kNotPublic)
        if (InV6(a, n.first, n.second))
            return false;
    return true;
}

HostPolicy::HostPolicy(const std::string &allowlist) {
    size_t pos = 0;
    while (pos <= allowlist.size()) {
        size_t comma = allowlist.find(',', pos);
        std::string item =
            Lower(Trim(allowlist.substr(pos, comma == std::string::npos ? std::string::npos : comma - pos)));
        if (item == "*") {
            any_ = true;
        } else if (!item.empty()) {
            size_t slash = item.find('/');
            std::string addr = slash == std::string::npos ? item : item.substr(0, slash);
            if (auto parsed = ParseIpAddress(addr)) {
                int max = parsed->family == 4 ? 32 : 128;
                int prefix = max;
                if (slash != std::string::npos) {
                    std::string bits = item.substr(slash + 1);
                    bool digits = !bits.empty() && bits.size() <= 3 &&
                                  std::all_of(bits.begin(), bits.end(),
                                              [](unsigned char c) { return std::isdigit(c); });
                    prefix = digits ? std::stoi(bits) : -1;
                    if (prefix < 0 || prefix > max)
                        throw Error(sqlstate::kInvalidParameterValue,
                                    "invalid network \"" + item + "\" in revetl.allowed_hosts",
                                    "The prefix length must be 0 to " + std::to_string(max) + ".");
                }
                networks_.push_back({*parsed, prefix});
            } else if (slash != std::string::npos) {
                throw Error(sqlstate::kInvalidParameterValue,
                            "invalid network \"" + item + "\" in revetl.allowed_hosts",
                            "A network is an address and a prefix length, such as 10.0.0.0/8.");
            } else if (item[0] == '.') {
                if (item.size() > 1)
                    suffixes_.push_back(item);
            } else {
                names_.push_back(item);
            }
        }
        if (comma == std::string::npos)
            break;
        pos = comma + 1;
    }
}

bool HostPolicy::AddressListed(const IpAddress &address) const {
    for (const auto &n : networks_)
        if (InNetwork(address, n.base, n.prefix))
            return true;
    return false;
}

bool HostPolicy::NameAllowed(const std::string &host) const {
    std::string h = Lower(host);
    if (h.empty())
        return false;
    if (auto address = ParseIpAddress(h))
        return AddressListed(*address) || (any_ && IsPublicAddress(*address));
    if (any_)
        return true;
    if (std::find(names_.begin(), names_.end(), h) != names_.end())
        return true;
    for (const auto &s : suffixes_)
        if (h.size() > s.size() && h.compare(h.size() - s.size(), s.size(), s) == 0)
            return true;
    return false;
}

std::optional<std::string> HostPolicy::AddressRefusal(const IpAddress &address) const {
    if (IsPublicAddress(address) || AddressListed(address))
        return std::nullopt;
    return "the address " + FormatIpAddress(address) +
           " is not public and not listed in revetl.allowed_hosts (a superuser can add it, or its network, "
           "there)";
}

} // namespace revetl
