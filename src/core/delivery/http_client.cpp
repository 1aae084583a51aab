#include "core/delivery/http_client.hpp"

#include "core/common/error.hpp"

#include <curl/curl.h>

#include <netinet/in.h>
#include <sys/socket.h>

#include <algorithm>
#include <cctype>
#include <cstring>
#include <map>
#include <mutex>

namespace revetl {

namespace {

// Names the failing libcurl call in the error, as pg_net's macro does.
#define REVETL_CURL_CHECK(call)                                                                              \
    do {                                                                                                     \
        auto rc_ = (call);                                                                                   \
        if (rc_ != 0)                                                                                        \
            throw Error(sqlstate::kInternalError, std::string("libcurl call failed: ") + #call,              \
                        std::string("libcurl code ") + std::to_string(static_cast<int>(rc_)) + ".");         \
    } while (0)

void GlobalInitOnce() {
    static std::once_flag once;
    std::call_once(once, [] {
        if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
            throw Error(sqlstate::kInternalError, "could not initialize libcurl");
    });
}

struct Transfer {
    uint64_t id = 0;
    // The policy in force when the request started: the client's may be
    // replaced while this transfer is still connecting.
    std::shared_ptr<const HostPolicy> policy;
    std::vector<std::string> refused; // addresses the policy refused
    bool opened_allowed = false;      // a socket was opened to an address the policy allows
    CURL *easy = nullptr;
    curl_slist *headers = nullptr;
    std::string body; // owned here: CURLOPT_POSTFIELDS does not copy
    size_t max_body = kDefaultMaxResponseBody;
    HttpResponse response;
};

size_t OnBody(char *data, size_t size, size_t nmemb, void *userp) {
    auto *t = static_cast<Transfer *>(userp);
    size_t n = size * nmemb;
    size_t room = t->max_body - std::min(t->max_body, t->response.body.size());
    if (n > room) {
        t->response.body_truncated = true;
        t->response.body.append(data, room);
    } else {
        t->response.body.append(data, n);
    }
    return n; // keep reading (and discarding) so the connection stays reusable
}

size_t OnHeader(char *data, size_t size, size_t nmemb, void *userp) {
    auto *t = static_cast<Transfer *>(userp);
    size_t n = size * nmemb;
    std::string line(data, n);
    // A new status line (after a redirect or 100-continue) starts afresh.
    if (line.rfind("HTTP/", 0) == 0) {
        t->response.headers.clear();
        return n;
    }
    auto colon = line.find(':');
    if (colon == std::string::npos || t->response.headers.size() >= HttpClient::kMaxResponseHeaders)
        return n;
    std::string name = line.substr(0, colon);
    std::transform(name.begin(), name.end(), name.begin(), [](unsigned char c) { return std::tolower(c); });
    std::string value = line.substr(colon + 1);
    auto first = value.find_first_not_of(" \t");
    auto last = value.find_last_not_of(" \t\r\n");
    value = first == std::string::npos ? std::string() : value.substr(first, last - first + 1);
    t->response.headers.emplace_back(std::move(name), std::move(value));
    return n;
}

// Called by libcurl right before it sends the request, once per sending:
// again when it re-sends on a new connection by itself.
int OnPreRequest(void *clientp, char *, char *, int, int) {
    static_cast<Transfer *>(clientp)->response.sends++;
    return CURL_PREREQFUNC_OK;
}

std::string JoinAddresses(const std::vector<std::string> &addresses) {
    std::string out;
    for (const auto &a : addresses)
        out += (out.empty() ? "" : ", ") + a;
    return out;
}

// libcurl asks for each socket it wants to connect: the address is judged
// here, after name resolution, so a name cannot smuggle in an address the
// policy refuses. Refusing makes curl try the host's next address, if any.
curl_socket_t OnOpenSocket(void *clientp, curlsocktype purpose, struct curl_sockaddr *address) {
    auto *t = static_cast<Transfer *>(clientp);
    if (purpose == CURLSOCKTYPE_IPCXN && t->policy) {
        std::optional<IpAddress> ip;
        if (address->family == AF_INET) {
            IpAddress a;
            a.family = 4;
            std::memcpy(a.bytes.data(), &reinterpret_cast<const sockaddr_in *>(&address->addr)->sin_addr, 4);
            ip = a;
        } else if (address->family == AF_INET6) {
            IpAddress a;
            a.family = 6;
            std::memcpy(a.bytes.data(), &reinterpret_cast<const sockaddr_in6 *>(&address->addr)->sin6_addr,
                        16);
            ip = a;
        }
        if (!ip || t->policy->AddressRefusal(*ip)) {
            // Every address of the host that is refused is named: a name
            // may resolve to several (::1 and 127.0.0.1 for localhost).
            t->refused.push_back(ip ? FormatIpAddress(*ip) : std::string("a non-IP address"));
            t->response.address_refused = true;
            t->response.transport_error =
                "connection refused by revetl: " +
                (t->refused.size() == 1 ? "the address " + t->refused[0] + " is"
                                        : "the addresses " + JoinAddresses(t->refused) + " are") +
                " not public and not listed in revetl.allowed_hosts (a superuser can add "
                "them, or their network, there)";
            return CURL_SOCKET_BAD;
        }
    }
    t->opened_allowed = true;
    return socket(address->family, address->socktype, address->protocol);
}

} // namespace

std::optional<std::string> HttpResponse::Header(const std::string &lower_name) const {
    for (const auto &h : headers)
        if (h.first == lower_name)
            return h.second;
    return std::nullopt;
}

struct HttpClient::Impl {
    CURLM *multi = nullptr;
    std::shared_ptr<const HostPolicy> policy;
    std::vector<std::string> refused; // addresses the policy refused
    curl_slist *resolve = nullptr;    // SetResolveForTesting
    std::vector<CURL *> idle;
    std::map<CURL *, std::unique_ptr<Transfer>> active;
    // The policy was replaced while connections opened under the old one
    // may be pooled: none is reused (new transfers connect afresh) until
    // the pool is dropped, once no transfer is in flight.
    bool drop_pool = false;

    void NewMulti() {
        multi = curl_multi_init();
        if (!multi)
            throw Error(sqlstate::kInternalError, "could not create a libcurl multi handle");
        REVETL_CURL_CHECK(curl_multi_setopt(multi, CURLMOPT_MAX_HOST_CONNECTIONS, 64L));
    }

    // Closes every pooled connection (the multi handle's cache, and any an
    // idle easy handle keeps).
    void DropPoolIfIdle() {
        if (!drop_pool || !active.empty())
            return;
        for (CURL *e : idle)
            curl_easy_cleanup(e);
        idle.clear();
        curl_multi_cleanup(multi);
        multi = nullptr;
        NewMulti();
        drop_pool = false;
    }

    // Takes every finished transfer off the multi handle into `done`.
    void CollectFinished(std::vector<std::pair<uint64_t, HttpResponse>> &done) {
        int queued = 0;
        while (CURLMsg *msg = curl_multi_info_read(multi, &queued)) {
            if (msg->msg != CURLMSG_DONE)
                continue;
            CURL *easy = msg->easy_handle;
            CURLcode result = msg->data.result;
            auto it = active.find(easy);
            if (it == active.end())
                continue;
            std::unique_ptr<Transfer> t = std::move(it->second);
            active.erase(it);
            curl_multi_remove_handle(multi, easy);
            // A name may resolve to several addresses, and a refusal of one is
            // not the transfer's outcome when another was allowed: libcurl 8
            // resolves "localhost" itself to ::1 and 127.0.0.1 (whatever
            // /etc/hosts says) and tries ::1 first, so with 127.0.0.1 listed
            // in revetl.allowed_hosts the refusal of ::1 must not stop a run
            // whose request then went to 127.0.0.1. Only a transfer that made
            // no connection because of the policy counts as refused.
            if (t->response.address_refused && (result == CURLE_OK || t->opened_allowed)) {
                t->response.address_refused = false;
                t->response.transport_error.clear();
            }
            if (result == CURLE_OK) {
                curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &t->response.status);
            } else {
                t->response.status = 0;
                t->response.timed_out = result == CURLE_OPERATION_TIMEDOUT;
                // A refusal by the address policy keeps its own message.
                if (!t->response.address_refused)
                    t->response.transport_error = curl_easy_strerror(result);
                t->response.transport_code =
                    result == CURLE_COULDNT_RESOLVE_HOST ? kTransportCouldNotResolve
                    : (result == CURLE_SSL_CONNECT_ERROR || result == CURLE_PEER_FAILED_VERIFICATION ||
                       result == CURLE_SSL_CERTPROBLEM || result == CURLE_SSL_CIPHER ||
                       result == CURLE_SSL_CACERT_BADFILE || result == CURLE_SSL_ISSUER_ERROR)
                        ? kTransportTls
                        : kTransportOther;
            }
            curl_easy_getinfo(easy, CURLINFO_TOTAL_TIME, &t->response.elapsed_s);
            curl_slist_free_all(t->headers);
            // Keep the handle (and so its connection cache entry) for reuse.
            idle.push_back(easy);
            done.emplace_back(t->id, std::move(t->response));
        }
    }

    ~Impl() {
        for (auto &entry : active) {
            curl_multi_remove_handle(multi, entry.first);
            curl_slist_free_all(entry.second->headers);
            curl_easy_cleanup(entry.first);
        }
        for (CURL *e : idle)
            curl_easy_cleanup(e);
        if (multi)
            curl_multi_cleanup(multi);
        curl_slist_free_all(resolve);
    }
};

HttpClient::HttpClient() : impl_(std::make_unique<Impl>()) {
    GlobalInitOnce();
    impl_->NewMulti();
}

HttpClient::~HttpClient() = default;

void HttpClient::Start(uint64_t id, const HttpRequest &request) {
    if (request.timeout_ms <= 0 || request.connect_timeout_ms <= 0)
        throw Error(sqlstate::kInvalidParameterValue, "HTTP timeouts must be positive");

    CURL *easy;
    if (!impl_->idle.empty()) {
        easy = impl_->idle.back();
        impl_->idle.pop_back();
        curl_easy_reset(easy);
    } else {
        easy = curl_easy_init();
        if (!easy)
            throw Error(sqlstate::kInternalError, "could not create a libcurl easy handle");
    }
    auto transfer = std::make_unique<Transfer>();
    transfer->id = id;
    transfer->policy = impl_->policy;
    transfer->easy = easy;
    transfer->body = request.body;
    transfer->max_body = request.max_response_body;
    for (const auto &h : request.headers) {
        // "Name:" with nothing after it would make curl drop the header;
        // "Name;" is curl's way to send it empty.
        std::string line = h.second.empty() ? h.first + ";" : h.first + ": " + h.second;
        curl_slist *next = curl_slist_append(transfer->headers, line.c_str());
        if (!next) {
            curl_slist_free_all(transfer->headers);
            impl_->idle.push_back(easy);
            throw Error(sqlstate::kInternalError, "out of memory building HTTP headers");
        }
        transfer->headers = next;
    }
    // Stop curl from sending "Expect: 100-continue", which costs a round trip.
    transfer->headers = curl_slist_append(transfer->headers, "Expect:");

    Transfer *t = transfer.get();
    try {
        REVETL_CURL_CHECK(curl_easy_setopt(easy, CURLOPT_URL, request.url.c_str()));
        REVETL_CURL_CHECK(curl_easy_setopt(easy, CURLOPT_NOSIGNAL, 1L));
        REVETL_CURL_CHECK(curl_easy_setopt(easy, CURLOPT_PROTOCOLS_STR, "http,https"));
        REVETL_CURL_CHECK(curl_easy_setopt(easy, CURLOPT_FOLLOWLOCATION, 0L));
        // Never a proxy from the environment (http_proxy and friends): the
        // address policy must judge the destination, not a proxy.
        REVETL_CURL_CHECK(curl_easy_setopt(easy, CURLOPT_PROXY, ""));
        REVETL_CURL_CHECK(curl_easy_setopt(easy, CURLOPT_OPENSOCKETFUNCTION, OnOpenSocket));
        if (impl_->drop_pool) // connections pooled under an earlier policy are not reused
            REVETL_CURL_CHECK(curl_easy_setopt(easy, CURLOPT_FRESH_CONNECT, 1L));
        REVETL_CURL_CHECK(curl_easy_setopt(easy, CURLOPT_OPENSOCKETDATA, t));
        REVETL_CURL_CHECK(curl_easy_setopt(easy, CURLOPT_PREREQFUNCTION, OnPreRequest));
        REVETL_CURL_CHECK(curl_easy_setopt(easy, CURLOPT_PREREQDATA, t));
        REVETL_CURL_CHECK(curl_easy_setopt(easy, CURLOPT_TIMEOUT_MS, request.timeout_ms));
        REVETL_CURL_CHECK(curl_easy_setopt(easy, CURLOPT_CONNECTTIMEOUT_MS, request.connect_timeout_ms));
        REVETL_CURL_CHECK(curl_easy_setopt(easy, CURLOPT_HTTPHEADER, t->headers));
        REVETL_CURL_CHECK(curl_easy_setopt(easy, CURLOPT_CUSTOMREQUEST, request.method.c_str()));
        REVETL_CURL_CHECK(curl_easy_setopt(easy, CURLOPT_POSTFIELDS, t->body.data()));
        REVETL_CURL_CHECK(
            curl_easy_setopt(easy, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(t->body.size())));
        REVETL_CURL_CHECK(curl_easy_setopt(easy, CURLOPT_WRITEFUNCTION, OnBody));
        REVETL_CURL_CHECK(curl_easy_setopt(easy, CURLOPT_WRITEDATA, t));
        REVETL_CURL_CHECK(curl_easy_setopt(easy, CURLOPT_HEADERFUNCTION, OnHeader));
        REVETL_CURL_CHECK(curl_easy_setopt(easy, CURLOPT_HEADERDATA, t));
        REVETL_CURL_CHECK(curl_easy_setopt(easy, CURLOPT_USERAGENT, "revetl/" REVETL_VERSION));
        if (impl_->resolve)
            REVETL_CURL_CHECK(curl_easy_setopt(easy, CURLOPT_RESOLVE, impl_->resolve));
        REVETL_CURL_CHECK(curl_multi_add_handle(impl_->multi, easy));
    } catch (...) {
        curl_slist_free_all(t->headers);
        impl_->idle.push_back(easy);
        throw;
    }
    impl_->active.emplace(easy, std::move(transfer));
}

std::vector<std::pair<uint64_t, HttpResponse>> HttpClient::Poll(int max_wait_ms) {
    std::vector<std::pair<uint64_t, HttpResponse>> done;
    int running = 0;
    REVETL_CURL_CHECK(curl_multi_perform(impl_->multi, &running));
    impl_->CollectFinished(done);
    // Wait only when nothing has finished: an answer already read goes back
    // to the caller now, not after the other transfers' next activity (up
    // to a round trip of theirs, or the whole wait).
    if (done.empty() && running > 0 && max_wait_ms > 0) {
        int numfds = 0;
        REVETL_CURL_CHECK(curl_multi_poll(impl_->multi, nullptr, 0, max_wait_ms, &numfds));
        REVETL_CURL_CHECK(curl_multi_perform(impl_->multi, &running));
        impl_->CollectFinished(done);
    }
    impl_->DropPoolIfIdle();
    return done;
}

void HttpClient::Kick() {
    int running = 0;
    REVETL_CURL_CHECK(curl_multi_perform(impl_->multi, &running));
}

void HttpClient::SetAddressPolicy(std::shared_ptr<const HostPolicy> policy) {
    // A pooled connection was judged by the policy in force when it was
    // opened: a narrower one (revetl.allowed_hosts reloaded during a run)
    // must not be bypassed by reusing it.
    if (impl_->policy || !impl_->idle.empty() || !impl_->active.empty())
        impl_->drop_pool = true;
    impl_->policy = std::move(policy);
    impl_->DropPoolIfIdle();
}

void HttpClient::SetResolveForTesting(const std::vector<std::string> &entries) {
    curl_slist_free_all(impl_->resolve);
    impl_->resolve = nullptr;
    for (const auto &e : entries) {
        curl_slist *next = curl_slist_append(impl_->resolve, e.c_str());
        if (!next)
            throw Error(sqlstate::kInternalError, "out of memory building the resolve list");
        impl_->resolve = next;
    }
}

size_t HttpClient::InFlight() const {
    return impl_->active.size();
}

void HttpClient::CancelAll() {
    for (auto &entry : impl_->active) {
        curl_multi_remove_handle(impl_->multi, entry.first);
        curl_slist_free_all(entry.second->headers);
        // A half-finished transfer leaves its connection unusable: the
        // handle is not pooled.
        curl_easy_cleanup(entry.first);
    }
    impl_->active.clear();
    impl_->DropPoolIfIdle();
}

} // namespace revetl
