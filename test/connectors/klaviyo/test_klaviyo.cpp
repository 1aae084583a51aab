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

// MODE AUDIENCE '<list id>': a job with the identifier alone and the list in
// relationships.lists; the job's profiles give the kept profile ids; removals
// by profile id, at most 1,000 a call; a changed identifier leaves, then joins.
namespace {

SyncTarget ListTarget(const std::string &list = "Y6nRLr") {
    SyncTarget t = Target("audience");
    t.audience = list;
    return t;
}

Change Changed(int64_t seq, const std::string &email, const std::string &dest_id) {
    Change c = Person(seq, email);
    c.op = Change::Op::Change;
    c.dest_id = dest_id;
    return c;
}

} // namespace

TEST(KlaviyoAudience, JobWithTheListThenProfileIdsFromTheJobsProfiles) {
    KlaviyoConnector k(Settings(), ListTarget());
    std::vector<Change> changes = {Person(1, "A@x.com"), Person(2, "b@x.com"), Person(3, "c@x.com")};
    Prepared p = PrepareAll(k, changes);
    ASSERT_EQ(p.requests.size(), 1u);
    const PreparedRequest &job = p.requests[0];
    EXPECT_EQ(job.http.url, "https://a.klaviyo.com/api/profile-bulk-import-jobs");
    rapidjson::Document d;
    d.Parse(job.http.body.c_str());
    ASSERT_TRUE(d.IsObject());
    const auto &profile = d["data"]["attributes"]["profiles"]["data"][0];
    // The identifier alone: other mapped fields are not membership.
    EXPECT_EQ(profile["attributes"].MemberCount(), 1u);
    EXPECT_STREQ(profile["attributes"]["email"].GetString(), "A@x.com");
    const auto &list = d["data"]["relationships"]["lists"]["data"][0];
    EXPECT_STREQ(list["type"].GetString(), "list");
    EXPECT_STREQ(list["id"].GetString(), "Y6nRLr");

    Verdict accepted = k.Interpret(job, changes, Response(202, Job("queued")));
    ASSERT_EQ(accepted.kind, Verdict::Kind::Continue);
    EXPECT_TRUE(accepted.job_accepted);
    // The engine gives a next call without rows the request's.
    accepted.next->rows = job.rows;
    // Complete with one import error: the errors, then the job's profiles.
    Verdict done = k.Interpret(*accepted.next, changes, Response(200, Job("complete", 1)));
    ASSERT_EQ(done.kind, Verdict::Kind::Continue);
    Verdict errors = k.Interpret(
        *done.next, changes,
        Response(
            200,
            "{\"data\":[{\"type\":\"import-error\",\"id\":\"e1\",\"attributes\":{\"code\":\"invalid\","
            "\"title\":\"Invalid input\",\"detail\":\"Invalid email address\",\"original_payload\":"
            "{\"type\":\"profile\",\"attributes\":{\"email\":\"b@x.com\"}}}}],\"links\":{\"next\":null}}"));
    ASSERT_EQ(errors.kind, Verdict::Kind::Continue);
    ASSERT_EQ(errors.rows.size(), 3u);
    EXPECT_FALSE(errors.rows[1].accepted);
    EXPECT_EQ(errors.rows[1].error_code, "invalid");
    ASSERT_TRUE(errors.next.has_value());
    EXPECT_EQ(errors.next->flow.step, KlaviyoConnector::kProfilesStep);
    EXPECT_EQ(errors.next->rows, (std::vector<size_t>{0, 2}));
    EXPECT_EQ(errors.next->http.url, "https://a.klaviyo.com/api/profile-bulk-import-jobs/JOB1/"
                                     "profiles?page%5Bsize%5D=100&fields%5Bprofile%5D=email");
    // Two pages: row 0 on the first (its email in another case), row 2 on the second.
    Verdict page1 = k.Interpret(
        *errors.next, changes,
        Response(200,
                 "{\"data\":[{\"type\":\"profile\",\"id\":\"01PA\",\"attributes\":{\"email\":\"a@X.com\"}}],"
                 "\"links\":{\"next\":\"https://a.klaviyo.com/api/profile-bulk-import-jobs/JOB1/profiles?"
                 "page%5Bcursor%5D=abc\"}}"));
    ASSERT_EQ(page1.kind, Verdict::Kind::Continue);
    ASSERT_EQ(page1.rows.size(), 2u);
    EXPECT_TRUE(page1.rows[0].accepted);
    EXPECT_EQ(page1.rows[0].dest_id, "01PA");
    EXPECT_EQ(page1.next->rows, (std::vector<size_t>{2}));
    EXPECT_EQ(page1.next->http.url,
              "https://a.klaviyo.com/api/profile-bulk-import-jobs/JOB1/profiles?page%5Bcursor%5D=abc");
    Verdict page2 = k.Interpret(
        *page1.next, changes,
        Response(200,
                 "{\"data\":[{\"type\":\"profile\",\"id\":\"01PC\",\"attributes\":{\"email\":\"c@x.com\"}}],"
                 "\"links\":{\"next\":null}}"));
    EXPECT_EQ(page2.kind, Verdict::Kind::Done);
    ASSERT_EQ(page2.rows.size(), 1u);
    EXPECT_EQ(page2.rows[0].dest_id, "01PC");
    // A killed run resumes from the job's status, the profiles step too.
    FlowStep kept;
    kept.step = KlaviyoConnector::kProfilesStep;
    kept.job_id = "JOB1";
    auto resumed = k.Resume(BatchContext{}, changes, kept);
    ASSERT_TRUE(resumed.has_value());
    EXPECT_EQ(resumed->http.url, "https://a.klaviyo.com/api/profile-bulk-import-jobs/JOB1");
}

TEST(KlaviyoAudience, RemovalsByProfileIdAndChangedIdentifiers) {
    KlaviyoConnector k(Settings(), ListTarget());
    std::vector<Change> changes;
    for (int i = 0; i < 1001; i++)
        changes.push_back(Removal(i + 1, "01P" + std::to_string(i)));
    changes.push_back(Removal(2000, ""));
    changes.push_back(Changed(2001, "new@x.com", "01OLD"));
    Prepared p = PrepareAll(k, changes);
    ASSERT_EQ(p.immediate.size(), 1u);
    EXPECT_EQ(p.immediate[0].first, 1001u);
    EXPECT_TRUE(p.immediate[0].second.unresolvable_removal);
    ASSERT_EQ(p.requests.size(), 3u);
    EXPECT_EQ(p.requests[0].http.method, "DELETE");
    EXPECT_EQ(p.requests[0].http.url, "https://a.klaviyo.com/api/lists/Y6nRLr/relationships/profiles");
    EXPECT_EQ(p.requests[0].rows.size(), 1000u);
    EXPECT_EQ(p.requests[1].rows.size(), 1u);
    rapidjson::Document d;
    d.Parse(p.requests[0].http.body.c_str());
    EXPECT_STREQ(d["data"][0]["type"].GetString(), "profile");
    EXPECT_STREQ(d["data"][0]["id"].GetString(), "01P0");
    Verdict out = k.Interpret(p.requests[0], changes, Response(204));
    EXPECT_EQ(out.kind, Verdict::Kind::Done);
    ASSERT_EQ(out.rows.size(), 1000u);
    EXPECT_TRUE(out.rows[0].accepted);
    EXPECT_EQ(out.rows[0].dest_id, "");
    // A changed email: out under the old profile id, then a job for the new one.
    const PreparedRequest &swap = p.requests[2];
    EXPECT_EQ(swap.http.method, "DELETE");
    EXPECT_TRUE(swap.http.body.find("01OLD") != std::string::npos);
    Verdict left = k.Interpret(swap, changes, Response(204));
    ASSERT_EQ(left.kind, Verdict::Kind::Continue);
    EXPECT_EQ(left.next->http.url, "https://a.klaviyo.com/api/profile-bulk-import-jobs");
    EXPECT_TRUE(left.next->http.body.find("new@x.com") != std::string::npos);
    // A list Klaviyo does not have: the rows are refused, the run goes on.
    Verdict missing = k.Interpret(p.requests[1], changes,
                                  Response(404, "{\"errors\":[{\"id\":\"1\",\"code\":"
                                                "\"not_found\",\"title\":\"Not found\","
                                                "\"detail\":\"List not found\"}]}"));
    EXPECT_EQ(missing.kind, Verdict::Kind::Done);
    ASSERT_EQ(missing.rows.size(), 1u);
    EXPECT_EQ(missing.rows[0].error_code, "not_found");
    EXPECT_EQ(k.Interpret(p.requests[1], changes, Response(429, "", {{"retry-after", "3"}})).wait_ms, 3000);
}

TEST(KlaviyoAudience, ListIdChecked) {
    OptionList server = {{"type", "klaviyo"}};
    SyncTarget ok = ListTarget("Y6nRLr");
    ok.match_on = "";
    EXPECT_NO_THROW(CheckSyncTarget(KlaviyoSpec(), server, ok, "s", "k"));
    for (const char *bad : {"", "a/b", "Y6n RLr", "../x"}) {
        SyncTarget t = ListTarget(bad);
        EXPECT_THROW(CheckSyncTarget(KlaviyoSpec(), server, t, "s", "k"), Error) << bad;
    }
}
