// The Zendesk connector's requests (users upsert in calls of at most 100,
// destroy_many by kept ids, job polls), how job statuses and their
// per-record results map back to rows, and how Zendesk's errors are judged.
// The engine's side of job flows is in test/unit/test_delivery_jobs.cpp; the
// whole path against the stateful mock in test_zendesk.py.
#include "core/connectors/zendesk/zendesk.hpp"

#include "core/common/encoding.hpp"
#include "core/common/error.hpp"
#include "core/connectors/registry.hpp"
#include "core/delivery/delivery_engine.hpp"

#include "test_server.hpp"
#include "test_util.hpp"

#include <gtest/gtest.h>
#include <rapidjson/document.h>

#include <chrono>
#include <deque>
#include <set>
#include <stdexcept>
#include <string>
#include <vector>

using namespace revetl;
using revetl_test::Contains;

namespace {

const char *kBase = "https://acme.zendesk.com";

DestinationSettings Settings(const std::string &url = kBase) {
    DestinationSettings s;
    s.type = "zendesk";
    s.url = url;
    s.credentials.user = "agent@acme.com";
    s.credentials.password = "api-token-secret";
    s.timeout_ms = 7000;
    s.connect_timeout_ms = 2000;
    return s;
}

SyncTarget Target(const std::string &match_on = "email", const std::string &mode = "upsert") {
    SyncTarget t;
    t.object = "users";
    t.match_on = match_on;
    t.mode = mode;
    return t;
}

Change User(int64_t seq, const std::string &email, const std::string &extra = "") {
    Change c;
    c.seq = seq;
    c.op = Change::Op::Add;
    c.key = "{\"id\": " + std::to_string(seq) + "}";
    c.payload = "{\"email\": \"" + email + "\", \"name\": \"N" + std::to_string(seq) + "\"" + extra + "}";
    c.row_hash = seq;
    return c;
}

Change Removal(int64_t seq, const std::string &dest_id) {
    Change c;
    c.seq = seq;
    c.op = Change::Op::Remove;
    c.key = "{\"id\": " + std::to_string(seq) + "}";
    c.dest_id = dest_id;
    return c;
}

std::vector<size_t> All(const std::vector<Change> &changes) {
    std::vector<size_t> rows(changes.size());
    for (size_t i = 0; i < rows.size(); i++)
        rows[i] = i;
    return rows;
}

HttpResponse Answer(long status, const std::string &body,
                    std::vector<std::pair<std::string, std::string>> headers = {}) {
    HttpResponse r;
    r.status = status;
    r.body = body;
    r.headers = std::move(headers);
    return r;
}

std::string HeaderOf(const HttpRequest &r, const std::string &name) {
    for (const auto &h : r.headers)
        if (h.first == name)
            return h.second;
    return {};
}

} // namespace

TEST(Zendesk, UpsertRequestShapeAndAuth) {
    ZendeskConnector z(Settings(), Target());
    std::vector<Change> changes = {
        User(1, "a@x.com", ", \"user_fields\": {\"plan\": \"pro\"}, \"score\": 92.50"), User(2, "b@x.com")};
    std::vector<std::pair<size_t, RowOutcome>> immediate;
    auto reqs = z.Prepare(BatchContext{}, changes, All(changes), immediate);
    ASSERT_EQ(reqs.size(), 1u);
    EXPECT_TRUE(immediate.empty());
    const HttpRequest &r = reqs[0].http;
    EXPECT_EQ(r.method, "POST");
    EXPECT_EQ(r.url, "https://acme.zendesk.com/api/v2/users/create_or_update_many");
    EXPECT_EQ(HeaderOf(r, "Content-Type"), "application/json");
    // API token auth: Basic "{email}/token:{token}".
    EXPECT_EQ(HeaderOf(r, "Authorization"), "Basic " + Base64("agent@acme.com/token:api-token-secret"));
    // Payloads go verbatim (numbers keep their exact text).
    EXPECT_EQ(r.body, "{\"users\":[{\"email\": \"a@x.com\", \"name\": \"N1\", \"user_fields\": {\"plan\": "
                      "\"pro\"}, \"score\": 92.50},{\"email\": \"b@x.com\", \"name\": \"N2\"}]}");
    EXPECT_EQ(reqs[0].rows, (std::vector<size_t>{0, 1}));
    EXPECT_TRUE(reqs[0].flow.job_id.empty());

    // A user already ending in /token is not given a second one; bearer works too.
    DestinationSettings s = Settings();
    s.credentials.user = "agent@acme.com/token";
    ZendeskConnector z2(s, Target());
    immediate.clear();
    EXPECT_EQ(HeaderOf(z2.Prepare(BatchContext{}, changes, All(changes), immediate)[0].http, "Authorization"),
              "Basic " + Base64("agent@acme.com/token:api-token-secret"));
    DestinationSettings b = Settings();
    b.credentials = Credentials{};
    b.credentials.token = "oauth-access";
    ZendeskConnector z3(b, Target());
    EXPECT_EQ(HeaderOf(z3.Prepare(BatchContext{}, changes, All(changes), immediate)[0].http, "Authorization"),
              "Bearer oauth-access");
}

TEST(Zendesk, AtMostOneHundredUsersPerCallAndNoMatchValueTwice) {
    ZendeskConnector z(Settings(), Target());
    std::vector<Change> changes;
    for (int i = 0; i < 250; i++)
        changes.push_back(User(i + 1, "u" + std::to_string(i) + "@x.com"));
    // The same email (in another case) twice: never in one call.
    changes.push_back(User(251, "U0@X.com"));
    changes.push_back(Change{252, Change::Op::Add, "{\"id\": 252}", "{\"name\": \"no email\"}", 1, ""});
    std::vector<std::pair<size_t, RowOutcome>> immediate;
    auto reqs = z.Prepare(BatchContext{}, changes, All(changes), immediate);
    ASSERT_EQ(reqs.size(), 3u);
    EXPECT_EQ(reqs[0].rows.size(), 100u);
    EXPECT_EQ(reqs[1].rows.size(), 100u);
    EXPECT_EQ(reqs[2].rows.size(), 51u);
    std::set<size_t> seen;
    for (const auto &r : reqs) {
        rapidjson::Document doc;
        doc.Parse(r.http.body.c_str());
        ASSERT_TRUE(doc.IsObject());
        EXPECT_EQ(doc["users"].Size(), r.rows.size());
        EXPECT_LE(doc["users"].Size(), ZendeskConnector::kMaxUsers);
        seen.insert(r.rows.begin(), r.rows.end());
    }
    EXPECT_EQ(seen.size(), 251u);
    EXPECT_EQ(std::count(reqs[0].rows.begin(), reqs[0].rows.end(), 250u), 0);
    ASSERT_EQ(immediate.size(), 1u);
    EXPECT_EQ(immediate[0].first, 251u);
    EXPECT_EQ(immediate[0].second.error_code, "NO_MATCH_VALUE");
}

TEST(Zendesk, RemovalsUseDestroyManyByKeptIds) {
    ZendeskConnector z(Settings(), Target("external_id", "mirror"));
    std::vector<Change> changes = {Removal(1, "901"), Removal(2, ""), Removal(3, "903"), Removal(4, "9,1")};
    std::vector<std::pair<size_t, RowOutcome>> immediate;
    auto reqs = z.Prepare(BatchContext{}, changes, All(changes), immediate);
    ASSERT_EQ(reqs.size(), 1u);
    EXPECT_EQ(reqs[0].http.method, "DELETE");
    EXPECT_EQ(reqs[0].http.url, "https://acme.zendesk.com/api/v2/users/destroy_many?ids=901%2C903");
    EXPECT_TRUE(reqs[0].http.body.empty());
    EXPECT_EQ(reqs[0].rows, (std::vector<size_t>{0, 2}));
    ASSERT_EQ(immediate.size(), 2u);
    EXPECT_EQ(immediate[0].second.error_code, "NO_RECORD_ID");
    EXPECT_EQ(immediate[1].second.error_code, "NO_RECORD_ID");
}

TEST(Zendesk, AcceptedWriteIsPolledAsAJob) {
    ZendeskConnector z(Settings(), Target());
    std::vector<Change> changes = {User(1, "a@x.com"), User(2, "b@x.com")};
    std::vector<std::pair<size_t, RowOutcome>> immediate;
    auto write = z.Prepare(BatchContext{}, changes, All(changes), immediate)[0];
    Verdict v =
        z.Interpret(write, changes, Answer(200, R"({"job_status": {"id": "8b726e606741012ffc2d782bcb7848fe",
                                 "url": "https://evil.example/steal", "status": "queued", "total": 2}})"));
    ASSERT_EQ(v.kind, Verdict::Kind::Continue);
    EXPECT_TRUE(v.job_accepted);
    ASSERT_TRUE(v.next);
    // The poll goes to the server's own URL, never to the url Zendesk names.
    EXPECT_EQ(v.next->http.method, "GET");
    EXPECT_EQ(v.next->http.url,
              "https://acme.zendesk.com/api/v2/job_statuses/8b726e606741012ffc2d782bcb7848fe");
    EXPECT_EQ(v.next->flow.job_id, "8b726e606741012ffc2d782bcb7848fe");
    EXPECT_EQ(v.next->flow.step, "users_upsert");
    EXPECT_FALSE(HeaderOf(v.next->http, "Authorization").empty());

    // A job id that could change the path is refused.
    Verdict bad = z.Interpret(write, changes,
                              Answer(200, R"({"job_status": {"id": "../users/1", "status": "queued"}})"));
    EXPECT_EQ(bad.kind, Verdict::Kind::Fatal);
}

TEST(Zendesk, JobStatusesMapPerRecordResultsInRequestOrder) {
    ZendeskConnector z(Settings(), Target());
    std::vector<Change> changes = {User(1, "a@x.com"), User(2, "b@x.com"), User(3, "c@x.com"),
                                   User(4, "d@x.com")};
    PreparedRequest poll = *z.Resume(BatchContext{}, changes, FlowStep{"users_upsert", "J1", ""});
    poll.rows = All(changes);

    for (const char *state : {"queued", "working"}) {
        Verdict v = z.Interpret(poll, changes,
                                Answer(200, std::string(R"({"job_status": {"id": "J1", "status": ")") +
                                                state + R"(", "progress": 1, "total": 4}})"));
        ASSERT_EQ(v.kind, Verdict::Kind::Continue) << state;
        EXPECT_FALSE(v.job_accepted);
        EXPECT_EQ(v.next->http.url, poll.http.url);
        EXPECT_EQ(v.next->flow.job_id, "J1");
    }

    Verdict v = z.Interpret(poll, changes, Answer(200, R"({"job_status": {"id": "J1", "status": "completed",
        "total": 4, "progress": 4, "results": [
          {"id": 101, "status": "Created", "email": "a@x.com"},
          {"id": 102, "status": "Updated", "email": "b@x.com"},
          {"index": 2, "status": "Failed", "error": "UserUpdateError", "details": "Email: c@x.com is already being used by another user", "email": "c@x.com"}
        ]}})"));
    ASSERT_EQ(v.kind, Verdict::Kind::Done);
    ASSERT_EQ(v.rows.size(), 4u);
    EXPECT_TRUE(v.rows[0].accepted);
    EXPECT_EQ(v.rows[0].dest_id, "101");
    EXPECT_TRUE(v.rows[1].accepted);
    EXPECT_EQ(v.rows[1].dest_id, "102");
    EXPECT_FALSE(v.rows[2].accepted);
    EXPECT_EQ(v.rows[2].error_code, "UserUpdateError");
    EXPECT_EQ(v.rows[2].reason, "Email: c@x.com is already being used by another user");
    EXPECT_FALSE(v.rows[3].accepted);
    EXPECT_EQ(v.rows[3].error_code, "NO_RESULT");

    // A failed job refuses every row with its message.
    Verdict failed = z.Interpret(
        poll, changes,
        Answer(200, R"({"job_status": {"id": "J1", "status": "failed", "message": "internal"}})"));
    ASSERT_EQ(failed.kind, Verdict::Kind::Done);
    for (const auto &o : failed.rows) {
        EXPECT_FALSE(o.accepted);
        EXPECT_EQ(o.error_code, "JOB_failed");
        EXPECT_TRUE(Contains(o.reason, "internal"));
    }
}

TEST(Zendesk, DestroyJobResultsNameIds) {
    ZendeskConnector z(Settings(), Target("email", "mirror"));
    std::vector<Change> changes = {Removal(1, "901"), Removal(2, "902")};
    PreparedRequest poll = *z.Resume(BatchContext{}, changes, FlowStep{"users_destroy", "J2", ""});
    poll.rows = All(changes);
    Verdict v = z.Interpret(poll, changes, Answer(200, R"({"job_status": {"id": "J2", "status": "completed",
        "results": [{"id": 902, "action": "delete", "success": false, "status": "Failed", "error": "PermissionDenied", "details": "cannot delete the account owner"},
                    {"id": 901, "action": "delete", "success": true, "status": "Deleted"}]}})"));
    ASSERT_EQ(v.kind, Verdict::Kind::Done);
    EXPECT_TRUE(v.rows[0].accepted);
    EXPECT_FALSE(v.rows[1].accepted);
    EXPECT_EQ(v.rows[1].error_code, "PermissionDenied");
    EXPECT_EQ(v.rows[1].reason, "cannot delete the account owner");
}

TEST(Zendesk, ErrorMapping) {
    ZendeskConnector z(Settings(), Target());
    std::vector<Change> changes = {User(1, "a@x.com"), User(2, "b@x.com")};
    std::vector<std::pair<size_t, RowOutcome>> immediate;
    auto write = z.Prepare(BatchContext{}, changes, All(changes), immediate)[0];
    PreparedRequest poll = *z.Resume(BatchContext{}, changes, FlowStep{"users_upsert", "J1", ""});
    poll.rows = All(changes);

    Verdict throttled =
        z.Interpret(write, changes, Answer(429, R"({"error": "TooManyRequests"})", {{"retry-after", "7"}}));
    EXPECT_EQ(throttled.kind, Verdict::Kind::Throttled);
    EXPECT_EQ(throttled.wait_ms, 7000);
    EXPECT_EQ(z.Interpret(poll, changes, Answer(429, "", {{"retry-after", "3"}})).wait_ms, 3000);

    Verdict forbidden = z.Interpret(
        write, changes,
        Answer(403, R"({"error": "Forbidden", "description": "You do not have access to this page."})"));
    EXPECT_EQ(forbidden.kind, Verdict::Kind::Fatal);
    EXPECT_TRUE(Contains(forbidden.error, "bulk user import")) << forbidden.error;
    EXPECT_TRUE(Contains(forbidden.error, "You do not have access to this page.")) << forbidden.error;
    EXPECT_EQ(z.Interpret(write, changes, Answer(401, R"({"error": "Couldn't authenticate you"})")).kind,
              Verdict::Kind::Fatal);

    const std::string invalid = R"({"error": "RecordInvalid", "description": "Record validation errors",
        "details": {"email": [{"description": "Email: b@x is not properly formatted", "error": "InvalidFormat"}]}})";
    EXPECT_EQ(z.Interpret(write, changes, Answer(422, invalid)).kind, Verdict::Kind::Split);
    PreparedRequest one = write;
    one.rows = {1};
    Verdict refused = z.Interpret(one, changes, Answer(422, invalid));
    ASSERT_EQ(refused.kind, Verdict::Kind::Done);
    ASSERT_EQ(refused.rows.size(), 1u);
    EXPECT_EQ(refused.rows[0].error_code, "RecordInvalid.InvalidFormat");
    EXPECT_EQ(refused.rows[0].reason, "Record validation errors: Email: b@x is not properly formatted");
    EXPECT_EQ(refused.rows[0].http_status, 422);

    EXPECT_EQ(z.Interpret(write, changes, Answer(503, "")).kind, Verdict::Kind::Retry);
    EXPECT_EQ(z.Interpret(poll, changes, Answer(500, "")).kind, Verdict::Kind::Retry);
    HttpResponse lost;
    lost.transport_error = "connection reset";
    EXPECT_EQ(z.Interpret(poll, changes, lost).kind, Verdict::Kind::Retry);
    // A job Zendesk no longer knows: its rows go again.
    Verdict gone =
        z.Interpret(poll, changes, Answer(404, R"({"error": "RecordNotFound", "description": "Not found"})"));
    EXPECT_EQ(gone.kind, Verdict::Kind::Resend);
    EXPECT_TRUE(Contains(gone.error, "J1"));
    // The write's URL not found is the server's setting, not a row's fault.
    EXPECT_EQ(z.Interpret(write, changes, Answer(404, "")).kind, Verdict::Kind::Fatal);
}

TEST(Zendesk, ResumeOnlyWhatItKnows) {
    ZendeskConnector z(Settings(), Target());
    std::vector<Change> changes = {User(1, "a@x.com")};
    EXPECT_TRUE(z.Resume(BatchContext{}, changes, FlowStep{"users_upsert", "abc123", ""}));
    EXPECT_FALSE(z.Resume(BatchContext{}, changes, FlowStep{"users_upsert", "a/b", ""}));
    EXPECT_FALSE(z.Resume(BatchContext{}, changes, FlowStep{"something_else", "abc123", ""}));
}

TEST(Zendesk, SpecSubdomainAndMatchOn) {
    OptionList server = {{"type", "zendesk"}, {"subdomain", "acme-eu"}};
    DestinationSettings s = ResolveDestinationSettings(server, {{"user", "a@b.c"}, {"password", "t"}});
    EXPECT_EQ(s.url, "https://acme-eu.zendesk.com");
    EXPECT_EQ(s.batch_size, 100);
    EXPECT_EQ(s.rate_limit.count, 200);
    EXPECT_EQ(s.rate_limit.period_ms, 60000);
    EXPECT_EQ(s.job_polling.first_poll_ms, 1000);
    DestinationSettings fast = ResolveDestinationSettings({{"type", "zendesk"},
                                                           {"url", "http://127.0.0.1:9"},
                                                           {"job_poll_interval", "50ms"},
                                                           {"max_open_jobs", "3"}},
                                                          {});
    EXPECT_EQ(fast.url, "http://127.0.0.1:9");
    EXPECT_EQ(fast.job_polling.first_poll_ms, 50);
    EXPECT_EQ(fast.job_polling.max_open_jobs, 3);
    for (const char *bad : {"acme.evil.com", "acme/x", "-acme", "ACME"})
        EXPECT_THROW(ValidateServer({{"type", "zendesk"}, {"subdomain", bad}}), Error) << bad;
    EXPECT_THROW(ValidateServer({{"type", "zendesk"}}), Error);
    EXPECT_THROW(ValidateServer({{"type", "zendesk"}, {"subdomain", "acme"}, {"max_open_jobs", "31"}}),
                 Error);

    SyncTarget t = Target("phone");
    EXPECT_THROW(CheckSyncTarget(server, t, "s", "zd"), Error);
    SyncTarget ok = Target("external_id", "mirror");
    EXPECT_NO_THROW(CheckSyncTarget(server, ok, "s", "zd"));
    SyncTarget update = Target("email", "update");
    EXPECT_THROW(CheckSyncTarget(server, update, "s", "zd"), Error);
}

TEST(Zendesk, WholeJobFlowThroughTheEngine) {
    revetl_test::TestServer server;
    int polls = 0;
    server.SetResponder(
        [&](const revetl_test::ReceivedRequest &r) -> std::optional<revetl_test::ScriptedResponse> {
            revetl_test::ScriptedResponse a;
            if (r.method == "POST") {
                a.body = R"({"job_status": {"id": "abc", "status": "queued"}})";
            } else if (++polls < 3) {
                a.body = R"({"job_status": {"id": "abc", "status": "working"}})";
            } else {
                a.body = R"({"job_status": {"id": "abc", "status": "completed", "results": [
                {"id": 11, "status": "Created"}, {"id": 0, "status": "Failed", "error": "InvalidValue", "details": "Name: is too short"}]}})";
            }
            return a;
        });
    DestinationSettings s = Settings(server.Url(""));
    ZendeskConnector z(s, Target());
    HttpClient client;
    EngineHooks hooks;
    std::deque<EngineBatch> batches;
    EngineBatch b;
    b.number = 1;
    b.changes = {User(1, "a@x.com"), User(2, "b@x.com")};
    batches.push_back(b);
    std::vector<RowOutcome> outcomes;
    int64_t clock = 0;
    std::vector<std::string> kept;
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    hooks.next_batch = [&]() -> std::optional<EngineBatch> {
        if (batches.empty())
            return std::nullopt;
        EngineBatch x = batches.front();
        batches.pop_front();
        return x;
    };
    hooks.batch_done = [&](const EngineBatch &, const std::vector<RowOutcome> &o) { outcomes = o; };
    hooks.sleep = [&](long ms) { clock += ms; };
    hooks.now_ms = [&] { return clock; };
    hooks.check_interrupts = [&] {
        if (std::chrono::steady_clock::now() > deadline)
            throw std::runtime_error("deadline");
    };
    hooks.job_accepted = [&](const EngineBatch &, const PreparedRequest &p) {
        kept.push_back(p.flow.job_id);
        return int64_t{1};
    };
    EngineConfig config;
    config.jobs = s.job_polling;
    EngineResult r = RunEngine(client, z, BatchContext{}, config, hooks);
    ASSERT_TRUE(r.ok) << r.error;
    EXPECT_EQ(kept, std::vector<std::string>{"abc"});
    EXPECT_EQ(r.stats.polls, 3);
    ASSERT_EQ(outcomes.size(), 2u);
    EXPECT_TRUE(outcomes[0].accepted);
    EXPECT_EQ(outcomes[0].dest_id, "11");
    EXPECT_FALSE(outcomes[1].accepted);
    EXPECT_EQ(outcomes[1].error_code, "InvalidValue");
    EXPECT_EQ(outcomes[1].reason, "Name: is too short");
}
