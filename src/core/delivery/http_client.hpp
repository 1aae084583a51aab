// A small HTTP client on libcurl's multi interface. It runs in the worker's
// main thread: the caller drives it with Poll() and checks for interrupts in
// between, so a slow destination never makes the worker deaf to SIGTERM.
// Connections are reused across requests (one multi handle, pooled easy
// handles). No PostgreSQL header here; curl allocates with malloc, never palloc.
#pragma once

#include "core/delivery/host_policy.hpp"

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace revetl {

// The most of an answer's body read by default (the rest is read and
// discarded, and the answer is marked truncated).
constexpr size_t kDefaultMaxResponseBody = 1 << 20;

struct HttpRequest {
    std::string method = "POST";
    std::string url;
    std::vector<std::pair<std::string, std::string>> headers;
    std::string body;
    long timeout_ms = 30000;         // whole transfer; always > 0
    long connect_timeout_ms = 10000; // always > 0
    // Raised by a connector whose answers grow with its batch (a bulk job's
    // results, the members a batch call echoes back).
    size_t max_response_body = kDefaultMaxResponseBody;
};

constexpr int kTransportOther = 1;
constexpr int kTransportCouldNotResolve = 2; // the host name does not resolve
constexpr int kTransportTls = 3;             // handshake or certificate

struct HttpResponse {
    long status = 0;  // 0 when no HTTP answer arrived
    std::string body; // truncated at the request's max_response_body
    bool body_truncated = false;
    std::vector<std::pair<std::string, std::string>> headers; // names lower-cased
    std::string transport_error;                              // curl's message when status == 0
    bool timed_out = false;
    // No connection was made: every address of the host was refused by the
    // client's address policy (the reason is in transport_error).
    bool address_refused = false;
    // What kind of transport failure (status 0) it was, where that matters
    // to the caller: kTransportOther, kTransportCouldNotResolve, kTransportTls.
    int transport_code = 0;
    double elapsed_s = 0;
    // How many times the request went out. libcurl sends a request again by
    // itself, on a fresh connection, when a reused connection dies before
    // any answer arrives (a reset after the server read the request): the
    // first copy may have been applied. More than 1 means exactly that.
    int sends = 0;

    std::optional<std::string> Header(const std::string &lower_name) const;
};

class HttpClient {
public:
    static constexpr size_t kMaxResponseBody = kDefaultMaxResponseBody;
    static constexpr size_t kMaxResponseHeaders = 64;

    HttpClient();
    ~HttpClient();
    HttpClient(const HttpClient &) = delete;
    HttpClient &operator=(const HttpClient &) = delete;

    // Queues a request; its id comes back from Poll() with the response.
    void Start(uint64_t id, const HttpRequest &request);

    // Runs transfers and returns the requests that completed. Waits (at
    // most max_wait_ms, for socket activity) only when none had completed
    // already: a finished request is never held back by the others.
    std::vector<std::pair<uint64_t, HttpResponse>> Poll(int max_wait_ms);

    // Sends what Start() queued, now: Start() does no I/O, and a caller
    // about to spend a while on something else (recording a batch) should
    // not leave the requests it just started unsent meanwhile. Finished
    // transfers are returned by the next Poll().
    void Kick();

    size_t InFlight() const;

    // Every connection from now on is checked against `policy` before its
    // socket is opened (nullptr: none). Proxies from the environment are
    // never used, so the address checked is the one connected to. Replacing
    // a policy closes the pooled connections (once no transfer is in
    // flight; until then new transfers do not reuse them).
    void SetAddressPolicy(std::shared_ptr<const HostPolicy> policy);

    // Unit tests only: libcurl's CURLOPT_RESOLVE entries ("name:port:addr,
    // addr"), so that a test can make a name resolve to several addresses
    // (as libcurl 8 does for "localhost") whatever the machine's resolver
    // says. Never set by revetl itself.
    void SetResolveForTesting(const std::vector<std::string> &entries);

    // Abandons every transfer in progress (their connections are closed).
    void CancelAll();

private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

} // namespace revetl
