// Flows of more than one call in the delivery engine: asynchronous jobs
// (write, then poll with bounded backoff, then per-record results), jobs
// kept for a resumed run, lost jobs sent again, and a lookup before a write.
// A small fake connector speaks a made-up job API to the scripted server;
// the engine's clock is fake, so the waits between polls are exact.
#include "core/delivery/delivery_engine.hpp"

#include "test_server.hpp"

#include <gtest/gtest.h>
#include <rapidjson/document.h>

#include <algorithm>
#include <chrono>
#include <deque>
#include <map>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

using namespace revetl;
using revetl_test::ReceivedRequest;
using revetl_test::ScriptedResponse;
using revetl_test::TestServer;

namespace {

ScriptedResponse Answer(int status, const std::string &body = "") {
    ScriptedResponse r;
    r.status = status;
    r.body = body;
    return r;
}

EngineBatch Batch(int64_t number, int rows, int64_t first_seq = 1) {
    EngineBatch b;
    b.number = number;
    for (int i = 0; i < rows; i++) {
        Change c;
        c.seq = first_seq + i;
        c.key = "{\"id\": " + std::to_string(c.seq) + "}";
        c.payload = "{\"email\": \"u" + std::to_string(c.seq) + "@x.com\"}";
        c.row_hash = c.seq;
        b.changes.push_back(c);
    }
    return b;
}

std::string Path(const std::string &target) {
    return target.substr(0, target.find('?'));
}

// A made-up job API: POST /write {"seqs": [...]} answers 202 {"job": "J<n>"};
// GET /jobs/J<n> answers {"status": "working"} or {"status": "done",
// "results": [{"ok": true, "id": "..."} | {"ok": false, "code", "message"}]}
// in request order; 404 when the job is gone.
class JobConnector : public Connector {
public:
    explicit JobConnector(std::string base) : base_(std::move(base)) {}
    bool park = false; // jobs wait for the run's last batch (Verdict::park)

    std::vector<PreparedRequest> Prepare(const BatchContext &, const std::vector<Change> &changes,
                                         const std::vector<size_t> &rows,
                                         std::vector<std::pair<size_t, RowOutcome>> &) override {
        PreparedRequest r;
        r.http.method = "POST";
        r.http.url = base_ + "/write";
        r.http.body = "{\"seqs\": [";
        for (size_t i = 0; i < rows.size(); i++)
            r.http.body += (i ? "," : "") + std::to_string(changes[rows[i]].seq);
        r.http.body += "]}";
        r.http.timeout_ms = 5000;
        r.rows = rows;
        return {r};
    }

    PreparedRequest Poll(const std::string &job) const {
        PreparedRequest p;
        p.http.method = "GET";
        p.http.url = base_ + "/jobs/" + job;
        p.http.timeout_ms = 5000;
        p.flow.step = "poll";
        p.flow.job_id = job;
        return p;
    }

    Verdict Interpret(const PreparedRequest &request, const std::vector<Change> &,
                      const HttpResponse &response) override {
        Verdict v;
        rapidjson::Document doc;
        doc.Parse(response.body.c_str(), response.body.size());
        if (response.status == 0 || response.status >= 500) {
            v.kind = Verdict::Kind::Retry;
            v.error = "server error " + std::to_string(response.status);
            return v;
        }
        if (request.flow.step.empty()) { // the write
            v.kind = Verdict::Kind::Continue;
            v.next = Poll(doc["job"].GetString());
            v.job_accepted = true;
            v.park = park;
            return v;
        }
        if (response.status == 404) {
            v.kind = Verdict::Kind::Resend;
            v.error = "job " + request.flow.job_id + " is gone";
            return v;
        }
        if (std::string(doc["status"].GetString()) != "done") {
            v.kind = Verdict::Kind::Continue;
            v.next = request;
            return v;
        }
        for (const auto &r : doc["results"].GetArray()) {
            RowOutcome o;
            o.http_status = response.status;
            o.accepted = r["ok"].GetBool();
            if (o.accepted) {
                o.dest_id = r["id"].GetString();
            } else {
                o.error_code = r["code"].GetString();
                o.reason = r["message"].GetString();
            }
            v.rows.push_back(o);
        }
        return v;
    }

    std::optional<PreparedRequest> Resume(const BatchContext &, const std::vector<Change> &,
                                          const FlowStep &step) override {
        if (step.job_id.empty())
            return std::nullopt;
        return Poll(step.job_id);
    }

private:
    std::string base_;
};

// The job API's server side: every job answers "working" `working_polls`
// times, then its results (rows whose seq is in `failing` fail).
class JobApi {
public:
    int working_polls = 2;
    std::map<int64_t, std::string> failing; // seq -> message
    std::vector<int> poll_errors;           // statuses answered to the next polls, in order
    std::map<std::string, bool> gone;       // jobs answered with 404

    std::optional<ScriptedResponse> operator()(const ReceivedRequest &req) {
        std::lock_guard<std::mutex> lock(mu_);
        const std::string path = Path(req.target);
        if (path == "/write") {
            rapidjson::Document doc;
            doc.Parse(req.body.c_str());
            std::string id = "J" + std::to_string(++jobs_);
            for (const auto &s : doc["seqs"].GetArray())
                seqs_[id].push_back(s.GetInt64());
            return Answer(202, "{\"job\": \"" + id + "\"}");
        }
        if (path.rfind("/jobs/", 0) == 0) {
            std::string id = path.substr(6);
            if (!poll_errors.empty()) {
                int status = poll_errors.front();
                poll_errors.erase(poll_errors.begin());
                return Answer(status, "{}");
            }
            if (gone.count(id) || !seqs_.count(id))
                return Answer(404, "{\"error\": \"not found\"}");
            if (polls_[id]++ < working_polls)
                return Answer(200, "{\"status\": \"working\"}");
            std::string body = "{\"status\": \"done\", \"results\": [";
            bool first = true;
            for (int64_t seq : seqs_[id]) {
                body += first ? "" : ",";
                first = false;
                if (failing.count(seq))
                    body += "{\"ok\": false, \"code\": \"Invalid\", \"message\": \"" + failing[seq] + "\"}";
                else
                    body += "{\"ok\": true, \"id\": \"rec" + std::to_string(seq) + "\"}";
            }
            return Answer(200, body + "]}");
        }
        return Answer(400, "{}");
    }

    // Pretends a job was accepted earlier (by a run that was killed).
    void Adopt(const std::string &id, std::vector<int64_t> seqs) {
        std::lock_guard<std::mutex> lock(mu_);
        seqs_[id] = std::move(seqs);
    }

private:
    std::mutex mu_;
    int jobs_ = 0;
    std::map<std::string, std::vector<int64_t>> seqs_;
    std::map<std::string, int> polls_;
};

// The engine's hooks with a fake clock only sleep advances, recording the
// fake time of every request start and what the host was told.
struct Harness {
    EngineHooks hooks;
    std::deque<EngineBatch> batches;
    std::vector<std::pair<EngineBatch, std::vector<RowOutcome>>> done;
    std::vector<int64_t> starts;
    int64_t clock = 1000000;
    std::vector<std::string> events; // "kept J1 for batch 1", "lost 7", "done 1", ...
    int64_t next_handle = 7;
    std::chrono::steady_clock::time_point deadline =
        std::chrono::steady_clock::now() + std::chrono::seconds(10);

    Harness() {
        hooks.next_batch = [this]() -> std::optional<EngineBatch> {
            if (batches.empty())
                return std::nullopt;
            EngineBatch b = std::move(batches.front());
            batches.pop_front();
            return b;
        };
        hooks.batch_done = [this](const EngineBatch &b, const std::vector<RowOutcome> &o) {
            events.push_back("done " + std::to_string(b.number));
            done.emplace_back(b, o);
        };
        hooks.check_interrupts = [this] {
            if (std::chrono::steady_clock::now() > deadline)
                throw std::runtime_error("test deadline passed");
        };
        hooks.sleep = [this](long ms) { clock += ms; };
        hooks.rate_delay_ms = [this] {
            starts.push_back(clock);
            return 0L;
        };
        hooks.now_ms = [this] { return clock; };
        hooks.job_accepted = [this](const EngineBatch &b, const PreparedRequest &poll) {
            events.push_back("kept " + poll.flow.job_id + " for batch " + std::to_string(b.number) +
                             " rows " + std::to_string(poll.rows.size()));
            return next_handle++;
        };
        hooks.job_lost = [this](int64_t handle, const std::string &why) {
            events.push_back("lost " + std::to_string(handle) + ": " + why);
        };
    }
};

BatchContext Context() {
    BatchContext c;
    c.sync_id = 3;
    c.run_id = 12;
    return c;
}

EngineConfig Config(int max_in_flight = 4) {
    EngineConfig c;
    c.max_in_flight = max_in_flight;
    c.retry.max_attempts = 3;
    c.retry.base_delay_ms = 250;
    c.retry.max_delay_ms = 30000;
    c.jobs.first_poll_ms = 1000;
    c.jobs.max_poll_interval_ms = 4000;
    c.jobs.max_polls = 10;
    return c;
}

std::vector<std::string> Targets(const TestServer &server) {
    std::vector<std::string> out;
    for (const auto &r : server.Requests())
        out.push_back(r.method + " " + Path(r.target));
    return out;
}

} // namespace

TEST(DeliveryJobs, PollsWithBoundedBackoffAndMapsPerRecordResults) {
    TestServer server;
    JobApi api;
    api.working_polls = 4;
    api.failing[2] = "email is invalid";
    server.SetResponder([&](const ReceivedRequest &r) { return api(r); });
    HttpClient client;
    Harness h;
    h.batches.push_back(Batch(1, 3));
    JobConnector connector(server.Url(""));

    EngineResult r = RunEngine(client, connector, Context(), Config(), h.hooks);
    ASSERT_TRUE(r.ok) << r.error;
    EXPECT_EQ(Targets(server), (std::vector<std::string>{"POST /write", "GET /jobs/J1", "GET /jobs/J1",
                                                         "GET /jobs/J1", "GET /jobs/J1", "GET /jobs/J1"}));
    // 1 s, then twice as late each time, capped at 4 s.
    std::vector<int64_t> gaps;
    for (size_t i = 1; i < h.starts.size(); i++)
        gaps.push_back(h.starts[i] - h.starts[i - 1]);
    EXPECT_EQ(gaps, (std::vector<int64_t>{1000, 2000, 4000, 4000, 4000}));
    EXPECT_EQ(r.stats.jobs, 1);
    EXPECT_EQ(r.stats.polls, 5);
    EXPECT_EQ(r.stats.requests, 6);
    EXPECT_EQ(r.stats.retries, 0);
    // The job was kept before the first poll, and the batch reported after.
    EXPECT_EQ(h.events, (std::vector<std::string>{"kept J1 for batch 1 rows 3", "done 1"}));
    ASSERT_EQ(h.done.size(), 1u);
    const auto &o = h.done[0].second;
    ASSERT_EQ(o.size(), 3u);
    EXPECT_TRUE(o[0].accepted);
    EXPECT_EQ(o[0].dest_id, "rec1");
    EXPECT_FALSE(o[1].accepted);
    EXPECT_EQ(o[1].error_code, "Invalid");
    EXPECT_EQ(o[1].reason, "email is invalid");
    EXPECT_TRUE(o[2].accepted);
    EXPECT_EQ(o[2].dest_id, "rec3");
}

TEST(DeliveryJobs, OtherBatchesFlowWhileAJobWaits) {
    TestServer server;
    JobApi api;
    api.working_polls = 3;
    server.SetResponder([&](const ReceivedRequest &r) { return api(r); });
    HttpClient client;
    Harness h;
    h.batches.push_back(Batch(1, 2, 1));
    h.batches.push_back(Batch(2, 2, 3));
    h.batches.push_back(Batch(3, 2, 5));
    JobConnector connector(server.Url(""));

    // One request in flight at a time: a waiting job must not hold it.
    EngineResult r = RunEngine(client, connector, Context(), Config(1), h.hooks);
    ASSERT_TRUE(r.ok) << r.error;
    auto targets = Targets(server);
    ASSERT_GE(targets.size(), 3u);
    EXPECT_EQ(targets[0], "POST /write");
    EXPECT_EQ(targets[1], "POST /write");
    EXPECT_EQ(targets[2], "POST /write");
    EXPECT_EQ(r.stats.jobs, 3);
    ASSERT_EQ(h.done.size(), 3u);
    for (const auto &d : h.done)
        for (const auto &o : d.second)
            EXPECT_TRUE(o.accepted);
}

TEST(DeliveryJobs, OpenJobsAreCapped) {
    TestServer server;
    JobApi api;
    api.working_polls = 2;
    server.SetResponder([&](const ReceivedRequest &r) { return api(r); });
    HttpClient client;
    Harness h;
    for (int b = 1; b <= 3; b++)
        h.batches.push_back(Batch(b, 1, b));
    JobConnector connector(server.Url(""));
    // (A write in flight may still become a job: the cap holds new batches
    // back while max_open_jobs jobs are open, so with one request in flight
    // it is exact.)
    EngineConfig config = Config(1);
    config.jobs.max_open_jobs = 1;

    EngineResult r = RunEngine(client, connector, Context(), config, h.hooks);
    ASSERT_TRUE(r.ok) << r.error;
    // Each job is done before the next write goes out.
    EXPECT_EQ(Targets(server),
              (std::vector<std::string>{"POST /write", "GET /jobs/J1", "GET /jobs/J1", "GET /jobs/J1",
                                        "POST /write", "GET /jobs/J2", "GET /jobs/J2", "GET /jobs/J2",
                                        "POST /write", "GET /jobs/J3", "GET /jobs/J3", "GET /jobs/J3"}));
}

TEST(DeliveryJobs, PollFailuresAreRetriedWithoutMakingRowsUncertain) {
    TestServer server;
    JobApi api;
    api.working_polls = 0;
    api.poll_errors = {503};
    server.SetResponder([&](const ReceivedRequest &r) { return api(r); });
    HttpClient client;
    Harness h;
    h.batches.push_back(Batch(1, 2));
    JobConnector connector(server.Url(""));

    EngineResult r = RunEngine(client, connector, Context(), Config(), h.hooks);
    ASSERT_TRUE(r.ok) << r.error;
    EXPECT_EQ(Targets(server), (std::vector<std::string>{"POST /write", "GET /jobs/J1", "GET /jobs/J1"}));
    EXPECT_EQ(r.stats.retries, 1);
    ASSERT_EQ(h.done.size(), 1u);
    for (const auto &o : h.done[0].second) {
        EXPECT_TRUE(o.accepted);
        EXPECT_FALSE(o.uncertain); // a GET of a job status applies nothing
    }
}

TEST(DeliveryJobs, PollFailuresExhaustedStopTheRunAndKeepTheJob) {
    TestServer server;
    JobApi api;
    api.poll_errors = {503, 503, 503};
    server.SetResponder([&](const ReceivedRequest &r) { return api(r); });
    HttpClient client;
    Harness h;
    h.batches.push_back(Batch(1, 2));
    JobConnector connector(server.Url(""));

    EngineResult r = RunEngine(client, connector, Context(), Config(), h.hooks);
    EXPECT_FALSE(r.ok);
    EXPECT_NE(r.error.find("server error 503 (after 3 attempts)"), std::string::npos) << r.error;
    // The job stays kept (never reported lost) for the next run to resume.
    EXPECT_EQ(h.events, (std::vector<std::string>{"kept J1 for batch 1 rows 2"}));
    EXPECT_TRUE(h.done.empty());
}

TEST(DeliveryJobs, AJobNeverDoneStopsTheRunAfterMaxPolls) {
    TestServer server;
    JobApi api;
    api.working_polls = 1000;
    server.SetResponder([&](const ReceivedRequest &r) { return api(r); });
    HttpClient client;
    Harness h;
    h.batches.push_back(Batch(1, 1));
    JobConnector connector(server.Url(""));
    EngineConfig config = Config();
    config.jobs.max_polls = 4;

    EngineResult r = RunEngine(client, connector, Context(), config, h.hooks);
    EXPECT_FALSE(r.ok);
    EXPECT_NE(r.error.find("job J1 of the destination was not done after 4 polls"), std::string::npos)
        << r.error;
    EXPECT_EQ(r.stats.polls, 4);
    EXPECT_TRUE(h.done.empty());
}

TEST(DeliveryJobs, KeptJobIsResumedByPollingNotBySendingAgain) {
    TestServer server;
    JobApi api;
    api.working_polls = 1;
    api.failing[11] = "name is too long";
    api.Adopt("J77", {10, 11});
    server.SetResponder([&](const ReceivedRequest &r) { return api(r); });
    HttpClient client;
    Harness h;
    EngineBatch b = Batch(5, 2, 10);
    b.resume = KeptJob{42, FlowStep{"poll", "J77", ""}};
    h.batches.push_back(b);
    JobConnector connector(server.Url(""));

    EngineResult r = RunEngine(client, connector, Context(), Config(), h.hooks);
    ASSERT_TRUE(r.ok) << r.error;
    EXPECT_EQ(Targets(server), (std::vector<std::string>{"GET /jobs/J77", "GET /jobs/J77"}));
    EXPECT_EQ(r.stats.jobs_resumed, 1);
    EXPECT_EQ(r.stats.jobs, 0);
    ASSERT_EQ(h.done.size(), 1u);
    EXPECT_TRUE(h.done[0].second[0].accepted);
    EXPECT_EQ(h.done[0].second[1].error_code, "Invalid");
    EXPECT_EQ(h.done[0].second[1].reason, "name is too long");
}

TEST(DeliveryJobs, LostJobIsReportedAndItsRowsSentAgain) {
    TestServer server;
    JobApi api;
    api.working_polls = 0;
    api.gone["J77"] = true;
    server.SetResponder([&](const ReceivedRequest &r) { return api(r); });
    HttpClient client;
    Harness h;
    EngineBatch b = Batch(5, 2, 10);
    b.resume = KeptJob{42, FlowStep{"poll", "J77", ""}};
    h.batches.push_back(b);
    JobConnector connector(server.Url(""));

    EngineResult r = RunEngine(client, connector, Context(), Config(), h.hooks);
    ASSERT_TRUE(r.ok) << r.error;
    EXPECT_EQ(Targets(server), (std::vector<std::string>{"GET /jobs/J77", "POST /write", "GET /jobs/J1"}));
    EXPECT_EQ(server.Requests()[1].body, "{\"seqs\": [10,11]}");
    EXPECT_EQ(h.events,
              (std::vector<std::string>{"lost 42: job J77 is gone", "kept J1 for batch 5 rows 2", "done 5"}));
    EXPECT_EQ(r.stats.jobs_resent, 1);
    ASSERT_EQ(h.done.size(), 1u);
    for (const auto &o : h.done[0].second)
        EXPECT_TRUE(o.accepted);
}

namespace {

// A lookup before a write: GET /lookup?email=... answers {"id": "..."} or
// 404; the write is PUT /records/<id>, one row per call. A row whose record
// is not found is final at once (not carried to a write).
class LookupConnector : public Connector {
public:
    explicit LookupConnector(std::string base) : base_(std::move(base)) {}

    std::vector<PreparedRequest> Prepare(const BatchContext &, const std::vector<Change> &changes,
                                         const std::vector<size_t> &rows,
                                         std::vector<std::pair<size_t, RowOutcome>> &) override {
        std::vector<PreparedRequest> out;
        for (size_t i : rows) {
            PreparedRequest r;
            r.http.method = "GET";
            r.http.url = base_ + "/lookup?seq=" + std::to_string(changes[i].seq);
            r.http.timeout_ms = 5000;
            r.rows = {i};
            out.push_back(r);
        }
        return out;
    }

    Verdict Interpret(const PreparedRequest &request, const std::vector<Change> &changes,
                      const HttpResponse &response) override {
        Verdict v;
        if (request.flow.step.empty()) {
            if (response.status == 404) {
                // The flow ends here for this row.
                RowOutcome o;
                o.http_status = 404;
                o.error_code = "NOT_FOUND";
                o.reason = "no record has this email";
                v.rows = {o};
                return v;
            }
            v.kind = Verdict::Kind::Continue;
            PreparedRequest write;
            {
                rapidjson::Document doc;
                doc.Parse(response.body.c_str());
                write.http.method = "PUT";
                write.http.url = base_ + "/records/" + doc["id"].GetString();
                write.http.body = changes[request.rows[0]].payload;
                write.http.timeout_ms = 5000;
                write.flow.step = "write";
                write.flow.state = doc["id"].GetString();
            }
            v.next = write;
            return v;
        }
        RowOutcome o;
        o.accepted = response.status == 200;
        o.http_status = response.status;
        o.dest_id = request.flow.state;
        v.rows = {o};
        return v;
    }

private:
    std::string base_;
};

} // namespace

TEST(DeliveryJobs, LookupBeforeWriteUsesTheSameFlow) {
    TestServer server;
    server.SetResponder([](const ReceivedRequest &r) -> std::optional<ScriptedResponse> {
        if (r.target == "/lookup?seq=2")
            return Answer(404, "{}");
        if (r.target.rfind("/lookup?seq=", 0) == 0)
            return Answer(200, "{\"id\": \"R" + r.target.substr(12) + "\"}");
        return Answer(200, "{}");
    });
    HttpClient client;
    Harness h;
    h.batches.push_back(Batch(1, 3));
    LookupConnector connector(server.Url(""));

    EngineResult r = RunEngine(client, connector, Context(), Config(1), h.hooks);
    ASSERT_TRUE(r.ok) << r.error;
    auto targets = Targets(server);
    std::sort(targets.begin(), targets.end());
    EXPECT_EQ(targets, (std::vector<std::string>{"GET /lookup", "GET /lookup", "GET /lookup",
                                                 "PUT /records/R1", "PUT /records/R3"}));
    ASSERT_EQ(h.done.size(), 1u);
    const auto &o = h.done[0].second;
    EXPECT_TRUE(o[0].accepted);
    EXPECT_EQ(o[0].dest_id, "R1");
    EXPECT_FALSE(o[1].accepted);
    EXPECT_EQ(o[1].error_code, "NOT_FOUND");
    EXPECT_TRUE(o[2].accepted);
    EXPECT_EQ(o[2].dest_id, "R3");
    EXPECT_EQ(r.stats.polls, 2);
    EXPECT_EQ(r.stats.jobs, 0);
}

TEST(DeliveryJobs, ParkedJobsWaitForTheHostWhichResumesThemAfterTheLastBatch) {
    TestServer server;
    JobApi api;
    api.working_polls = 1;
    server.SetResponder([&](const ReceivedRequest &r) { return api(r); });
    HttpClient client;
    Harness h;
    h.batches.push_back(Batch(1, 2, 1));
    h.batches.push_back(Batch(2, 1, 3));
    JobConnector connector(server.Url(""));
    connector.park = true;

    // The main pass: each batch's job is kept, and its rows are handed back
    // parked (no outcome yet) without a single poll.
    EngineResult r = RunEngine(client, connector, Context(), Config(1), h.hooks);
    ASSERT_TRUE(r.ok) << r.error;
    EXPECT_EQ(Targets(server), (std::vector<std::string>{"POST /write", "POST /write"}));
    EXPECT_EQ(h.events, (std::vector<std::string>{"kept J1 for batch 1 rows 2", "done 1",
                                                  "kept J2 for batch 2 rows 1", "done 2"}));
    ASSERT_EQ(h.done.size(), 2u);
    for (const auto &o : h.done[0].second) {
        EXPECT_EQ(o.parked_job, 7);
        EXPECT_FALSE(o.accepted);
    }
    EXPECT_EQ(h.done[1].second[0].parked_job, 8);

    // The host resumes the kept jobs (the final pass): polled to the end.
    connector.park = false;
    for (int64_t n : {1, 2}) {
        EngineBatch b = h.done[n - 1].first;
        b.number = 10 + n;
        b.resume = KeptJob{6 + n, FlowStep{"poll", "J" + std::to_string(n), ""}};
        h.batches.push_back(b);
    }
    h.done.clear();
    BatchContext final_pass = Context();
    final_pass.final_pass = true;
    r = RunEngine(client, connector, final_pass, Config(1), h.hooks);
    ASSERT_TRUE(r.ok) << r.error;
    ASSERT_EQ(h.done.size(), 2u);
    for (const auto &d : h.done)
        for (const auto &o : d.second) {
            EXPECT_TRUE(o.accepted);
            EXPECT_EQ(o.parked_job, 0);
        }
    EXPECT_EQ(h.done[0].second[1].dest_id, "rec2");
}

TEST(DeliveryJobs, AHostThatKeepsNoJobsGetsAParkedFlowContinuedAtOnce) {
    TestServer server;
    JobApi api;
    api.working_polls = 0;
    server.SetResponder([&](const ReceivedRequest &r) { return api(r); });
    HttpClient client;
    Harness h;
    h.hooks.job_accepted = [](const EngineBatch &, const PreparedRequest &) { return int64_t{0}; };
    h.batches.push_back(Batch(1, 2, 1));
    JobConnector connector(server.Url(""));
    connector.park = true;
    EngineResult r = RunEngine(client, connector, Context(), Config(1), h.hooks);
    ASSERT_TRUE(r.ok) << r.error;
    EXPECT_EQ(Targets(server), (std::vector<std::string>{"POST /write", "GET /jobs/J1"}));
    ASSERT_EQ(h.done.size(), 1u);
    EXPECT_TRUE(h.done[0].second[0].accepted && h.done[0].second[1].accepted);
}
