#include "test_server.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstdlib>
#include <chrono>
#include <cstring>
#include <stdexcept>

namespace revetl_test {

namespace {

constexpr size_t kMaxRequestBytes = 16 << 20;

std::string Lower(std::string s) {
    std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return std::tolower(c); });
    return s;
}

std::string Trim(const std::string &s) {
    size_t a = s.find_first_not_of(" \t");
    if (a == std::string::npos)
        return {};
    size_t b = s.find_last_not_of(" \t\r\n");
    return s.substr(a, b - a + 1);
}

const char *Reason(int status) {
    switch (status) {
    case 200:
        return "OK";
    case 201:
        return "Created";
    case 204:
        return "No Content";
    case 207:
        return "Multi-Status";
    case 302:
        return "Found";
    case 400:
        return "Bad Request";
    case 404:
        return "Not Found";
    case 429:
        return "Too Many Requests";
    case 500:
        return "Internal Server Error";
    case 503:
        return "Service Unavailable";
    default:
        return "Status";
    }
}

int BoundLoopback(int *port) {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        throw std::runtime_error("socket() failed");
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = 0;
    if (bind(fd, reinterpret_cast<sockaddr *>(&addr), sizeof addr) != 0) {
        close(fd);
        throw std::runtime_error("bind() failed");
    }
    socklen_t len = sizeof addr;
    if (getsockname(fd, reinterpret_cast<sockaddr *>(&addr), &len) != 0) {
        close(fd);
        throw std::runtime_error("getsockname() failed");
    }
    *port = ntohs(addr.sin_port);
    return fd;
}

} // namespace

std::optional<std::string> ReceivedRequest::Header(const std::string &lower_name) const {
    for (const auto &h : headers)
        if (h.first == lower_name)
            return h.second;
    return std::nullopt;
}

int ReceivedRequest::HeaderCount(const std::string &lower_name) const {
    return static_cast<int>(
        std::count_if(headers.begin(), headers.end(), [&](const auto &h) { return h.first == lower_name; }));
}

TestServer::TestServer() {
    listen_fd_ = BoundLoopback(&port_);
    if (listen(listen_fd_, 16) != 0 || pipe2(wake_, O_CLOEXEC | O_NONBLOCK) != 0) {
        close(listen_fd_);
        throw std::runtime_error("listen() or pipe2() failed");
    }
    thread_ = std::thread([this] { Run(); });
}

TestServer::~TestServer() {
    char b = 'x';
    ssize_t ignored = write(wake_[1], &b, 1);
    (void)ignored;
    thread_.join();
    close(listen_fd_);
    close(wake_[0]);
    close(wake_[1]);
}

std::string TestServer::Url(const std::string &path_and_query) const {
    return "http://127.0.0.1:" + std::to_string(port_) + path_and_query;
}

void TestServer::Enqueue(ScriptedResponse response) {
    std::lock_guard<std::mutex> lock(mu_);
    script_.push_back(std::move(response));
}

void TestServer::SetDefault(ScriptedResponse response) {
    std::lock_guard<std::mutex> lock(mu_);
    default_ = std::move(response);
}

void TestServer::SetResponder(Responder responder) {
    std::lock_guard<std::mutex> lock(mu_);
    responder_ = std::move(responder);
}

void TestServer::HoldAnswers(int count, int max_ms) {
    std::lock_guard<std::mutex> lock(mu_);
    hold_count_ = count;
    hold_ms_ = max_ms;
}

int TestServer::PeakOutstanding() const {
    std::lock_guard<std::mutex> lock(mu_);
    return peak_outstanding_;
}

std::vector<ReceivedRequest> TestServer::Requests() const {
    std::lock_guard<std::mutex> lock(mu_);
    return requests_;
}

bool TestServer::WaitForRequests(size_t n, int timeout_ms) const {
    std::unique_lock<std::mutex> lock(mu_);
    return cv_.wait_for(lock, std::chrono::milliseconds(timeout_ms), [&] { return requests_.size() >= n; });
}

bool TestServer::WaitForAnswers(size_t n, int timeout_ms) const {
    std::unique_lock<std::mutex> lock(mu_);
    return cv_.wait_for(lock, std::chrono::milliseconds(timeout_ms), [&] { return answered_ >= n; });
}

int TestServer::Connections() const {
    std::lock_guard<std::mutex> lock(mu_);
    return connections_;
}

bool TestServer::SendAll(int fd, const std::string &data) {
    size_t off = 0;
    while (off < data.size()) {
        ssize_t n = send(fd, data.data() + off, data.size() - off, MSG_NOSIGNAL);
        if (n <= 0)
            return false; // error, or the 5 s send timeout: give up on this connection
        off += static_cast<size_t>(n);
    }
    return true;
}

bool TestServer::Process(Conn &c) {
    for (;;) {
        size_t head_end = c.in.find("\r\n\r\n");
        if (head_end == std::string::npos)
            return c.in.size() < kMaxRequestBytes;
        ReceivedRequest req;
        req.connection = c.index;
        size_t line_end = c.in.find("\r\n");
        std::string request_line = c.in.substr(0, line_end);
        size_t sp1 = request_line.find(' ');
        size_t sp2 = request_line.find(' ', sp1 == std::string::npos ? 0 : sp1 + 1);
        if (sp1 == std::string::npos || sp2 == std::string::npos)
            return false;
        req.method = request_line.substr(0, sp1);
        req.target = request_line.substr(sp1 + 1, sp2 - sp1 - 1);
        size_t content_length = 0;
        size_t pos = line_end + 2;
        while (pos < head_end) {
            size_t eol = c.in.find("\r\n", pos);
            std::string line = c.in.substr(pos, eol - pos);
            pos = eol + 2;
            size_t colon = line.find(':');
            if (colon == std::string::npos)
                return false;
            std::string name = Lower(line.substr(0, colon));
            std::string value = Trim(line.substr(colon + 1));
            if (name == "content-length")
                content_length = std::strtoul(value.c_str(), nullptr, 10);
            if (name == "transfer-encoding")
                return false; // not needed by these tests
            req.headers.emplace_back(std::move(name), std::move(value));
        }
        size_t total = head_end + 4 + content_length;
        if (total > kMaxRequestBytes)
            return false;
        if (c.in.size() < total)
            return true; // wait for the rest of the body
        req.body = c.in.substr(head_end + 4, content_length);
        c.in.erase(0, total);

        ScriptedResponse resp;
        Responder responder;
        {
            std::lock_guard<std::mutex> lock(mu_);
            responder = responder_;
        }
        std::optional<ScriptedResponse> chosen;
        if (responder)
            chosen = responder(req);
        bool hold = false;
        {
            std::lock_guard<std::mutex> lock(mu_);
            if (chosen) {
                resp = std::move(*chosen);
            } else if (!script_.empty()) {
                resp = std::move(script_.front());
                script_.pop_front();
            } else {
                resp = default_;
            }
            if (c.hang)
                resp.hang = true;
            if (resp.echo)
                resp.body = req.body;
            requests_.push_back(req);
            if (!resp.hang) {
                outstanding_++;
                peak_outstanding_ = std::max(peak_outstanding_, outstanding_);
            }
            hold = hold_count_ > 0;
        }
        cv_.notify_all();
        if (resp.hang) {
            c.hang = true;
            continue;
        }
        std::string out = "HTTP/1.1 " + std::to_string(resp.status) + " " + Reason(resp.status) + "\r\n";
        bool has_length = false;
        for (const auto &h : resp.headers) {
            out += h.first + ": " + h.second + "\r\n";
            has_length = has_length || Lower(h.first) == "content-length";
        }
        if (!has_length)
            out += "Content-Length: " + std::to_string(resp.body.size()) + "\r\n";
        if (resp.close)
            out += "Connection: close\r\n";
        out += "\r\n";
        out += resp.body;
        if (hold) {
            held_.push_back({c.index, std::move(out), resp.close, std::chrono::steady_clock::now()});
            continue;
        }
        bool sent = SendAll(c.fd, out);
        {
            std::lock_guard<std::mutex> lock(mu_);
            outstanding_--;
            if (sent)
                answered_++;
        }
        cv_.notify_all();
        if (!sent || resp.close)
            return false;
    }
}

int TestServer::HeldDueInMs() const {
    if (held_.empty())
        return -1;
    int hold_ms;
    {
        std::lock_guard<std::mutex> lock(mu_);
        hold_ms = hold_ms_;
    }
    auto waited = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() -
                                                                        held_.front().since)
                      .count();
    return static_cast<int>(std::max<long long>(0, hold_ms - waited));
}

void TestServer::ReleaseHeld(std::vector<Conn> &conns, std::vector<bool> &drop) {
    if (held_.empty())
        return;
    int count;
    {
        std::lock_guard<std::mutex> lock(mu_);
        count = hold_count_;
    }
    if (static_cast<int>(held_.size()) < count && HeldDueInMs() > 0)
        return;
    size_t sent = 0;
    for (const auto &h : held_) {
        for (size_t i = 0; i < conns.size(); i++) {
            if (conns[i].index != h.conn || drop[i])
                continue;
            bool ok = SendAll(conns[i].fd, h.out);
            sent += ok ? 1 : 0;
            if (!ok || h.close)
                drop[i] = true;
        }
    }
    {
        std::lock_guard<std::mutex> lock(mu_);
        outstanding_ -= static_cast<int>(held_.size());
        answered_ += sent;
    }
    cv_.notify_all();
    held_.clear();
}

void TestServer::Run() {
    std::vector<Conn> conns;
    std::vector<char> buf(64 * 1024);
    for (;;) {
        std::vector<pollfd> fds;
        fds.push_back({wake_[0], POLLIN, 0});
        fds.push_back({listen_fd_, POLLIN, 0});
        for (const auto &c : conns)
            fds.push_back({c.fd, POLLIN, 0});
        int due = HeldDueInMs();
        int rc = poll(fds.data(), fds.size(), due < 0 ? 1000 : due);
        if (rc < 0 && errno != EINTR)
            break;
        if (fds[0].revents)
            break;
        // Connections first (fds[2..] match conns as they were before accept).
        std::vector<bool> drop(conns.size(), false);
        for (size_t i = 0; i < conns.size(); i++) {
            if (!fds[i + 2].revents)
                continue;
            ssize_t n = recv(conns[i].fd, buf.data(), buf.size(), 0);
            if (n <= 0) {
                drop[i] = true;
                continue;
            }
            conns[i].in.append(buf.data(), static_cast<size_t>(n));
            if (!Process(conns[i]))
                drop[i] = true;
        }
        ReleaseHeld(conns, drop);
        for (size_t i = conns.size(); i-- > 0;) {
            if (drop[i]) {
                close(conns[i].fd);
                conns.erase(conns.begin() + static_cast<long>(i));
            }
        }
        if (fds[1].revents & POLLIN) {
            int fd = accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
            if (fd >= 0) {
                timeval tv{5, 0};
                setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
                Conn c;
                c.fd = fd;
                {
                    std::lock_guard<std::mutex> lock(mu_);
                    c.index = ++connections_;
                }
                conns.push_back(std::move(c));
            }
        }
    }
    for (auto &c : conns)
        close(c.fd);
}

RefusingPort::RefusingPort() {
    fd_ = BoundLoopback(&port_);
}

RefusingPort::~RefusingPort() {
    close(fd_);
}

} // namespace revetl_test
