#include "core/connectors/klaviyo/klaviyo.hpp"

#include "core/common/error.hpp"

#include <gtest/gtest.h>
#include <rapidjson/document.h>

#include <string>
#include <vector>

using namespace revetl;

namespace {

DestinationSettings Settings() {
    DestinationSettings s;
    s.type = "klaviyo";
    s.url = "https://a.klaviyo.com/";
    s.credentials.api_key = "pk_secret_key";
    s.server_options = {{"type", "klaviyo"}, {"revision", "2026-07-15"}};
    return s;
}

SyncTarget Target(const std::string &mode = "upsert", const std::string &match_on = "email") {
    SyncTarget t;
    t.object = "profiles";
    t.mode = mode;
    t.match_on = match_on;
    return t;
}

Change Write(int64_t seq, const std::string &payload) {
    Change c;
    c.seq = seq;
    c.op = Change::Op::Add;
    c.key = "{\"id\": " + std::to_string(seq) + "}";
    c.payload = payload;
    return c;
}

Change Person(int64_t seq, const std::string &email) {
    return Write(seq, "{\"email\": \"" + email + "\", \"plan\": \"p" + std::to_string(seq) + "\"}");
}

Change Removal(int64_t seq, const std::string &dest_id) {
    Change c;
    c.seq = seq;
    c.op = Change::Op::Remove;
    c.key = "{\"id\": " + std::to_string(seq) + "}";
    c.dest_id = dest_id;
    return c;
}

struct Prepared {
    std::vector<PreparedRequest> requests;
    std::vector<std::pair<size_t, RowOutcome>> immediate;
};

Prepared PrepareAll(KlaviyoConnector &c, const std::vector<Change> &changes) {
    Prepared p;
    std::vector<size_t> rows;
    for (size_t i = 0; i < changes.size(); i++)
        rows.push_back(i);
    p.requests = c.Prepare(BatchContext{}, changes, rows, p.immediate);
    return p;
}

std::string HeaderOf(const HttpRequest &r, const std::string &name) {
    for (const auto &h : r.headers)
        if (h.first == name)
            return h.second;
    return "<none>";
}

HttpResponse Response(long status, const std::string &body = "",
                      std::vector<std::pair<std::string, std::string>> headers = {}) {
    HttpResponse r;
    r.status = status;
    r.body = body;
    r.headers = std::move(headers);
    return r;
}

std::string Job(const std::string &status, int failed = 0) {
    return "{\"data\":{\"type\":\"profile-bulk-import-job\",\"id\":\"JOB1\",\"attributes\":{\"status\":\"" +
           status + "\",\"total_count\":3,\"completed_count\":3,\"failed_count\":" + std::to_string(failed) +
           "}}}";
}

} // namespace

TEST(KlaviyoConnector, BulkImportRequestShape) {
    KlaviyoConnector c(Settings(), Target());
    std::vector<Change> changes = {Write(
        1, "{\"email\": \"Ada@X.com\", \"external_id\": 42, \"first_name\": \"Ada\", \"plan\": \"pro\", "
           "\"score\": 92.50, \"properties\": {\"vip\": true}}")};
    Prepared p = PrepareAll(c, changes);
    ASSERT_EQ(p.requests.size(), 1u);
    const HttpRequest &r = p.requests[0].http;
    EXPECT_EQ(r.method, "POST");
    EXPECT_EQ(r.url, "https://a.klaviyo.com/api/profile-bulk-import-jobs");
    EXPECT_EQ(HeaderOf(r, "Authorization"), "Klaviyo-API-Key pk_secret_key");
    EXPECT_EQ(HeaderOf(r, "revision"), "2026-07-15");
    EXPECT_EQ(HeaderOf(r, "Content-Type"), "application/vnd.api+json");
    EXPECT_EQ(r.body,
              "{\"data\":{\"type\":\"profile-bulk-import-job\",\"attributes\":{\"profiles\":{\"data\":["
              "{\"type\":\"profile\",\"attributes\":{\"email\":\"Ada@X.com\",\"external_id\":\"42\","
              "\"first_name\":\"Ada\",\"properties\":{\"plan\":\"pro\",\"score\":92.50,\"vip\":true}}}]}}}}");
}

TEST(KlaviyoConnector, DeletionRequestsAndImmediateRefusals) {
    KlaviyoConnector c(Settings(), Target("mirror"));
    std::vector<Change> changes = {
        Removal(1, "a@x.com"), Removal(2, ""), Write(3, "{\"plan\": \"x\"}"),
        Write(4, "{\"email\": \"b@x.com\", \"blob\": \"" + std::string(100001, 'x') + "\"}")};
    Prepared p = PrepareAll(c, changes);
    ASSERT_EQ(p.requests.size(), 1u);
    EXPECT_EQ(p.requests[0].http.url, "https://a.klaviyo.com/api/data-privacy-deletion-jobs");
    EXPECT_EQ(
        p.requests[0].http.body,
        "{\"data\":{\"type\":\"data-privacy-deletion-job\",\"attributes\":{\"profile\":{\"data\":{\"type\":"
        "\"profile\",\"attributes\":{\"email\":\"a@x.com\"}}}}}}");
    Verdict v = c.Interpret(p.requests[0], changes, Response(202, ""));
    ASSERT_EQ(v.kind, Verdict::Kind::Done);
    EXPECT_TRUE(v.rows[0].accepted);
    ASSERT_EQ(p.immediate.size(), 3u);
    EXPECT_EQ(p.immediate[0].second.error_code, "NO_RECORD_ID");
    EXPECT_EQ(p.immediate[1].second.error_code, "NO_MATCH_VALUE");
    EXPECT_EQ(p.immediate[2].second.error_code, "PROFILE_TOO_LARGE");
}

TEST(KlaviyoConnector, SameProfileTwiceGoesInSeparateJobs) {
    KlaviyoConnector c(Settings(), Target());
    std::vector<Change> changes = {Person(1, "a@x.com"), Person(2, "A@X.COM"), Person(3, "b@x.com")};
    Prepared p = PrepareAll(c, changes);
    ASSERT_EQ(p.requests.size(), 2u);
    EXPECT_EQ(p.requests[0].rows, (std::vector<size_t>{0, 2}));
}

TEST(KlaviyoConnector, JobFlowWithImportErrorPages) {
    KlaviyoConnector c(Settings(), Target());
    std::vector<Change> changes = {Person(1, "a@x.com"), Person(2, "bad@x.com"), Person(3, "c@x.com")};
    Prepared p = PrepareAll(c, changes);
    Verdict accepted = c.Interpret(p.requests[0], changes, Response(202, Job("queued")));
    ASSERT_EQ(accepted.kind, Verdict::Kind::Continue);
    EXPECT_TRUE(accepted.job_accepted);
    ASSERT_TRUE(accepted.next);
    EXPECT_EQ(accepted.next->http.url, "https://a.klaviyo.com/api/profile-bulk-import-jobs/JOB1");
    EXPECT_EQ(accepted.next->http.method, "GET");
    PreparedRequest poll = *accepted.next;
    poll.rows = p.requests[0].rows;

    Verdict processing = c.Interpret(poll, changes, Response(200, Job("processing")));
    EXPECT_EQ(processing.kind, Verdict::Kind::Continue);

    Verdict complete = c.Interpret(poll, changes, Response(200, Job("complete", 1)));
    ASSERT_EQ(complete.kind, Verdict::Kind::Continue);
    ASSERT_TRUE(complete.next);
    EXPECT_EQ(complete.next->http.url,
              "https://a.klaviyo.com/api/profile-bulk-import-jobs/JOB1/import-errors");
    PreparedRequest errors = *complete.next;

    // First page names nobody of ours and links a next page.
    Verdict page1 = c.Interpret(
        errors, changes,
        Response(200,
                 "{\"data\":[],\"links\":{\"next\":\"https://evil.example/api/profile-bulk-import-jobs/JOB1/"
                 "import-errors?page%5Bcursor%5D=abc\"}}"));
    ASSERT_EQ(page1.kind, Verdict::Kind::Continue);
    EXPECT_EQ(page1.next->http.url,
              "https://a.klaviyo.com/api/profile-bulk-import-jobs/JOB1/import-errors?page%5Bcursor%5D=abc");
    Verdict page2 = c.Interpret(
        *page1.next, changes,
        Response(200,
                 "{\"data\":[{\"type\":\"import-error\",\"id\":\"e1\",\"attributes\":{\"code\":\"invalid\","
                 "\"title\":\"Invalid input\",\"detail\":\"Invalid email address\",\"source\":{\"pointer\":"
                 "\"/data/attributes/email\"},\"original_payload\":{\"email\":\"BAD@x.com\"}}}],"
                 "\"links\":{\"next\":null}}"));
    ASSERT_EQ(page2.kind, Verdict::Kind::Done);
    ASSERT_EQ(page2.rows.size(), 3u);
    EXPECT_TRUE(page2.rows[0].accepted);
    EXPECT_EQ(page2.rows[0].dest_id, "a@x.com");
    EXPECT_FALSE(page2.rows[1].accepted);
    EXPECT_EQ(page2.rows[1].error_code, "invalid");
    EXPECT_EQ(page2.rows[1].reason, "Invalid email address (/data/attributes/email)");
    EXPECT_TRUE(page2.rows[2].accepted);

    Verdict cancelled = c.Interpret(poll, changes, Response(200, Job("cancelled")));
    ASSERT_EQ(cancelled.kind, Verdict::Kind::Done);
    EXPECT_EQ(cancelled.rows[0].error_code, "JOB_cancelled");
    EXPECT_EQ(c.Interpret(poll, changes, Response(404, "{\"errors\":[]}")).kind, Verdict::Kind::Resend);

    auto resumed = c.Resume(BatchContext{}, changes, poll.flow);
    ASSERT_TRUE(resumed);
    EXPECT_EQ(resumed->http.url, poll.http.url);
    FlowStep bad = poll.flow;
    bad.job_id = "../x";
    EXPECT_FALSE(c.Resume(BatchContext{}, changes, bad));
}

TEST(KlaviyoConnector, ThrottlingAndCredentials) {
    KlaviyoConnector c(Settings(), Target());
    std::vector<Change> changes = {Person(1, "a@x.com"), Person(2, "b@x.com")};
    Prepared p = PrepareAll(c, changes);
    Verdict t = c.Interpret(p.requests[0], changes, Response(429, "", {{"retry-after", "3"}}));
    EXPECT_EQ(t.kind, Verdict::Kind::Throttled);
    EXPECT_EQ(t.wait_ms, 3000);
    Verdict denied = c.Interpret(
        p.requests[0], changes,
        Response(401, "{\"errors\":[{\"id\":\"1\",\"code\":\"not_authenticated\",\"title\":\"x\",\"detail\":"
                      "\"Incorrect authentication credentials.\"}]}"));
    EXPECT_EQ(denied.kind, Verdict::Kind::Fatal);
    EXPECT_EQ(denied.error.find("pk_secret_key"), std::string::npos);
    EXPECT_EQ(c.Interpret(p.requests[0], changes, Response(400, "{\"errors\":[]}")).kind,
              Verdict::Kind::Split);
    EXPECT_EQ(c.Interpret(p.requests[0], changes, Response(503)).kind, Verdict::Kind::Retry);
}

TEST(KlaviyoConnector, TargetsAndRevision) {
    EXPECT_THROW(KlaviyoConnector(Settings(), Target("mirror", "external_id")), Error);
    EXPECT_THROW(KlaviyoConnector(Settings(), Target("upsert", "id")), Error);
    SyncTarget t;
    t.mode = "update";
    EXPECT_THROW(CheckSyncTarget(KlaviyoSpec(), {{"type", "klaviyo"}}, t, "s1", "k"), Error);
    EXPECT_TRUE(ValidKlaviyoRevision("2026-07-15"));
    EXPECT_TRUE(ValidKlaviyoRevision("2024-10-15.pre"));
    EXPECT_FALSE(ValidKlaviyoRevision("2026-7-15"));
    EXPECT_FALSE(ValidKlaviyoRevision("2026-07-15\r\nX: y"));
    EXPECT_THROW(ResolveDestinationSettings({{"type", "klaviyo"}, {"revision", "latest"}}, {}), Error);
    EXPECT_EQ(ResolveDestinationSettings({{"type", "klaviyo"}}, {}).url, "https://a.klaviyo.com");
}
