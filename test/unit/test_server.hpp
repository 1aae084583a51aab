// A tiny scripted HTTP/1.1 server for the http_client and delivery tests. It
// runs one thread with a poll() loop on 127.0.0.1 (port chosen by the
// kernel), reads requests with Content-Length bodies (so keep-alive works),
// records them and answers each with the next scripted response.
#pragma once

#include <condition_variable>
#include <deque>
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

    std::vector<ReceivedRequest> Requests() const;
    // Waits (bounded) until at least n requests arrived.
    bool WaitForRequests(size_t n, int timeout_ms) const;
    int Connections() const;

private:
    struct Conn {
        int fd = -1;
        int index = 0;
        std::string in;
        bool hang = false;
    };

    void Run();
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
