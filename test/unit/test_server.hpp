// A tiny scripted HTTP/1.1 server for the http_client and delivery tests. It
// runs one thread with a poll() loop on 127.0.0.1 (port chosen by the
// kernel), reads requests with Content-Length bodies (so keep-alive works),
// records them and answers each with the next scripted response.
#pragma once

#include <chrono>
#include <condition_variable>
#include <deque>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

namespace revetl_test {

using HeaderList = std::vector<std::pair<std::string, std::string>>;

struct ScriptedResponse {
    int status = 200;
    HeaderList headers;
    std::string body;
    bool echo = false;  // answer with the request's body instead of `body`
    bool hang = false;  // read the request, never answer (the connection stays open)
    bool close = false; // close the connection after answering
};

struct ReceivedRequest {
    std::string method;
    std::string target;
    HeaderList headers; // names lower-cased, in arrival order
    std::string body;
    int connection = 0; // 1 for the first accepted connection, ...

    std::optional<std::string> Header(const std::string &lower_name) const;
    int HeaderCount(const std::string &lower_name) const;
};

// Chooses the answer to a request from its content (runs on the server
// thread; must not call back into the server). std::nullopt falls back to the
// script.
using Responder = std::function<std::optional<ScriptedResponse>(const ReceivedRequest &)>;

class TestServer {
public:
    TestServer();
    ~TestServer();
    TestServer(const TestServer &) = delete;
    TestServer &operator=(const TestServer &) = delete;

    int port() const { return port_; }
    std::string Url(const std::string &path_and_query = "/") const;

    // Responses are used in order; when none is left, the default one.
    void Enqueue(ScriptedResponse response);
    void SetDefault(ScriptedResponse response);

    // Consulted first for every request.
    void SetResponder(Responder responder);
    // Holds answers back until `count` requests wait for one, or the oldest
    // has waited `max_ms`; then sends them all. Makes the client's
    // concurrency visible to PeakOutstanding(). count 0: answer at once.
    void HoldAnswers(int count, int max_ms);
    // The most requests that were waiting for their answer at one time
    // (requests left hanging are not counted).
    int PeakOutstanding() const;

    std::vector<ReceivedRequest> Requests() const;
    // Waits (bounded) until at least n requests arrived.
    bool WaitForRequests(size_t n, int timeout_ms) const;
    // Waits (bounded) until at least n answers were written to their
    // connections (on loopback, then in the client's receive queue).
    bool WaitForAnswers(size_t n, int timeout_ms) const;
    int Connections() const;

private:
    struct Conn {
        int fd = -1;
        int index = 0;
        std::string in;
        bool hang = false;
    };

    struct Held {
        int conn = 0; // Conn::index
        std::string out;
        bool close = false;
        std::chrono::steady_clock::time_point since;
    };

    void Run();
    // Sends the held answers when due; marks connections to drop.
    void ReleaseHeld(std::vector<Conn> &conns, std::vector<bool> &drop);
    // Milliseconds until the held answers are due, or -1 when none is held.
    int HeldDueInMs() const;
    // Handles every complete request buffered on c; false when c must close.
    bool Process(Conn &c);
    bool SendAll(int fd, const std::string &data);

    int listen_fd_ = -1;
    int wake_[2] = {-1, -1};
    int port_ = 0;
    std::thread thread_;

    mutable std::mutex mu_;
    mutable std::condition_variable cv_;
    std::deque<ScriptedResponse> script_;
    ScriptedResponse default_;
    std::vector<ReceivedRequest> requests_;
    int connections_ = 0;
    Responder responder_;
    int hold_count_ = 0;
    int hold_ms_ = 0;
    int outstanding_ = 0;
    int peak_outstanding_ = 0;
    size_t answered_ = 0;
    std::vector<Held> held_; // server thread only
};

// A port on 127.0.0.1 that refuses connections: bound, never listening, for
// as long as the object lives (so nobody else can take the port meanwhile).
class RefusingPort {
public:
    RefusingPort();
    ~RefusingPort();
    RefusingPort(const RefusingPort &) = delete;
    RefusingPort &operator=(const RefusingPort &) = delete;
    int port() const { return port_; }

private:
    int fd_ = -1;
    int port_ = 0;
};

} // namespace revetl_test
