// The Google Customer Match connector without a network: the target checks
// (AUDIENCE only, identifier keys, whole addresses, user_id alone), the
// bodies of both APIs (Data Manager ingest / remove / status poll; Google
// Ads create, addOperations, run, search), the flow of a batch (removals
// before additions; Ads: one job a run and direction, kept and parked until
// the run's last batch, then run and polled, removals first), and what it makes of
// Google's answers: partial failures and field violations mapped back to
// rows, request / job statuses, 429 with retryDelay, 401, 403,
// CONCURRENT_MODIFICATION, a job Google no longer knows.
#include "core/connectors/google/google.hpp"

#include "core/common/error.hpp"
#include "core/connectors/registry.hpp"

#include <gtest/gtest.h>
#include <rapidjson/document.h>

#include <string>
#include <vector>

using namespace revetl;

namespace {

const std::string kA(64, 'a');
const std::string kB(64, 'b');
const std::string kC(64, 'c');

DestinationSettings Settings(const std::string &api = "data_manager") {
    DestinationSettings s;
    s.type = "google";
    s.url = "https://google.example/";
    s.credentials.token = "ya29.secret-token";
    s.server_options = {{"api", api},
                        {"customer_id", "1234567890"},
                        {"consent_ad_user_data", "granted"},
                        {"customer_match_terms", "accepted"}};
    if (api == "google_ads") {
        s.server_options.push_back({"login_customer_id", "555"});
        s.headers = {{"developer-token", "dev-secret"}};
    }
    return s;
}

SyncTarget Target(std::vector<std::string> fields = {"email", "Phone"}) {
    SyncTarget t;
    t.mode = "audience";
    t.audience = "4455";
    t.map_fields = std::move(fields);
    return t;
}

Change Member(int64_t seq, const std::string &email, const std::string &phone,
              Change::Op op = Change::Op::Add, const std::string &dest_id = "") {
    Change c;
    c.seq = seq;
    c.op = op;
    c.key = "{\"id\": " + std::to_string(seq) + "}";
    c.payload = "{\"email\": \"" + email + "\", \"Phone\": \"" + phone + "\"}";
    c.dest_id = dest_id;
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

std::string Id(const std::string &email, const std::string &phone) {
    return "{\"email\":\"" + email + "\",\"phone\":\"" + phone + "\"}";
}

rapidjson::Document Json(const std::string &text) {
    rapidjson::Document d;
    d.Parse(text.c_str(), text.size());
    return d;
}

HttpResponse Answer(long status, const std::string &body) {
    HttpResponse r;
    r.status = status;
    r.body = body;
    return r;
}

std::vector<size_t> All(const std::vector<Change> &changes) {
    std::vector<size_t> rows(changes.size());
    for (size_t i = 0; i < rows.size(); i++)
        rows[i] = i;
    return rows;
}

std::string HeaderOf(const PreparedRequest &r, const std::string &name) {
    for (const auto &h : r.http.headers)
        if (h.first == name)
            return h.second;
    return "";
}

} // namespace

TEST(GoogleConnector, RefusesOtherModesAndUnknownKeys) {
    SyncTarget t = Target();
    t.mode = "upsert";
    EXPECT_THROW(GoogleConnector(Settings(), t), Error);
    try {
        GoogleConnector(Settings(), Target({"emails"}));
        FAIL();
    } catch (const Error &e) {
        EXPECT_NE(std::string(e.what()).find("not a Customer Match identifier key"), std::string::npos);
        EXPECT_NE(e.hint().find("\"email\""), std::string::npos);
    }
    EXPECT_THROW(GoogleConnector(Settings(), Target({"email", "first_name"})), Error); // part of an address
    EXPECT_THROW(GoogleConnector(Settings(), Target({"email", "user_id"})), Error);    // user_id with others
    EXPECT_THROW(GoogleConnector(Settings(), Target({"email", "EMAIL"})), Error);      // twice
    EXPECT_NO_THROW(
        GoogleConnector(Settings(), Target({"first_name", "last_name", "country_code", "postal_code"})));
    // The Ads API needs a developer token (in the user mapping's headers).
    DestinationSettings s = Settings("google_ads");
    s.headers.clear();
    EXPECT_THROW(GoogleConnector(s, Target()), Error);
}

TEST(GoogleConnector, SpecRegisteredWithHashedIdentifiers) {
    const ConnectorSpec *spec = FindSpec("google");
    ASSERT_NE(spec, nullptr);
    EXPECT_TRUE(spec->audience.hashed_identifiers);
    EXPECT_TRUE(spec->audience.unhashed("Country_Code"));
    EXPECT_TRUE(spec->audience.unhashed("user_id"));
    EXPECT_FALSE(spec->audience.unhashed("email"));
    EXPECT_EQ(spec->default_url({{"api", "google_ads"}}), "https://googleads.googleapis.com");
    EXPECT_EQ(spec->default_url({}), "https://datamanager.googleapis.com");
    EXPECT_THROW(spec->check_server({{"customer_id", "123-456-7890"}}), Error);
    EXPECT_THROW(spec->check_server({{"api", "google_ads"}, {"customer_match_terms", "accepted"}}), Error);
    EXPECT_NO_THROW(spec->check_server({{"customer_id", "1234567890"}, {"api_version", "v25"}}));
}

TEST(GoogleConnector, MemberIdIsInKeyOrderAndChecksCountry) {
    GoogleConnector c(Settings(), Target({"postal_code", "country_code", "last_name", "first_name"}));
    EXPECT_EQ(c.MemberId("{\"postal_code\": 94045, \"country_code\": \"us\", \"last_name\": \"" + kB +
                         "\", \"first_name\": \"" + kA + "\"}"),
              "{\"first_name\":\"" + kA + "\",\"last_name\":\"" + kB +
                  "\",\"country_code\":\"US\",\"postal_code\":\"94045\"}");
    EXPECT_EQ(c.MemberId("{\"postal_code\": \"1\", \"country_code\": \"USA\", \"last_name\": \"x\", "
                         "\"first_name\": \"y\"}"),
              "");
}

TEST(GoogleConnector, DataManagerIngestThenPollAsAJob) {
    GoogleConnector c(Settings(), Target());
    std::vector<Change> changes = {Member(1, kA, kB), Member(2, kC, kB)};
    std::vector<std::pair<size_t, RowOutcome>> immediate;
    auto reqs = c.Prepare(BatchContext{}, changes, All(changes), immediate);
    ASSERT_EQ(reqs.size(), 1u);
    EXPECT_TRUE(immediate.empty());
    const auto &r = reqs[0];
    EXPECT_EQ(r.http.url, "https://google.example/v1/audienceMembers:ingest");
    EXPECT_EQ(r.flow.step, GoogleConnector::kDmIngest);
    EXPECT_EQ(HeaderOf(r, "Authorization"), "Bearer ya29.secret-token");
    auto body = Json(r.http.body);
    EXPECT_STREQ(body["destinations"][0]["operatingAccount"]["accountId"].GetString(), "1234567890");
    EXPECT_STREQ(body["destinations"][0]["operatingAccount"]["accountType"].GetString(), "GOOGLE_ADS");
    EXPECT_STREQ(body["destinations"][0]["productDestinationId"].GetString(), "4455");
    EXPECT_STREQ(body["encoding"].GetString(), "HEX");
    EXPECT_STREQ(body["consent"]["adUserData"].GetString(), "CONSENT_GRANTED");
    EXPECT_FALSE(body["consent"].HasMember("adPersonalization"));
    EXPECT_STREQ(body["termsOfService"]["customerMatchTermsOfServiceStatus"].GetString(), "ACCEPTED");
    const auto &ids = body["audienceMembers"][1]["userData"]["userIdentifiers"];
    EXPECT_EQ(ids[0]["emailAddress"].GetString(), kC);
    EXPECT_EQ(ids[1]["phoneNumber"].GetString(), kB);

    Verdict v = c.Interpret(r, changes, Answer(200, "{\"requestId\":\"req-1\"}"));
    ASSERT_EQ(v.kind, Verdict::Kind::Continue);
    EXPECT_TRUE(v.job_accepted);
    ASSERT_TRUE(v.next);
    EXPECT_EQ(v.next->http.method, "GET");
    EXPECT_EQ(v.next->http.url, "https://google.example/v1/requestStatus:retrieve?requestId=req-1");
    EXPECT_EQ(v.next->flow.job_id, "req-1");

    Verdict p =
        c.Interpret(*v.next, changes,
                    Answer(200, "{\"requestStatusPerDestination\":[{\"requestStatus\":\"PROCESSING\"}]}"));
    ASSERT_EQ(p.kind, Verdict::Kind::Continue);
    EXPECT_FALSE(p.job_accepted);
    Verdict d = c.Interpret(
        *p.next, changes, Answer(200, "{\"requestStatusPerDestination\":[{\"requestStatus\":\"SUCCESS\"}]}"));
    ASSERT_EQ(d.kind, Verdict::Kind::Done);
    ASSERT_EQ(d.rows.size(), 2u);
    EXPECT_TRUE(d.rows[0].accepted);
    EXPECT_EQ(d.rows[0].dest_id, Id(kA, kB));

    // A killed run resumes the poll from the kept step.
    auto resumed = c.Resume(BatchContext{}, changes, v.next->flow);
    ASSERT_TRUE(resumed);
    EXPECT_EQ(resumed->http.url, v.next->http.url);
}

TEST(GoogleConnector, DataManagerRemovesBeforeAddingAChangedMember) {
    GoogleConnector c(Settings(), Target());
    std::vector<Change> changes = {Removal(1, Id(kA, kA)), Member(2, kC, kC, Change::Op::Change, Id(kB, kB)),
                                   Member(3, kA, kC)};
    std::vector<std::pair<size_t, RowOutcome>> immediate;
    auto reqs = c.Prepare(BatchContext{}, changes, All(changes), immediate);
    ASSERT_EQ(reqs.size(), 1u);
    EXPECT_EQ(reqs[0].http.url, "https://google.example/v1/audienceMembers:remove");
    auto body = Json(reqs[0].http.body);
    ASSERT_EQ(body["audienceMembers"].Size(), 2u);
    EXPECT_EQ(body["audienceMembers"][1]["userData"]["userIdentifiers"][0]["emailAddress"].GetString(), kB);
    EXPECT_FALSE(body.HasMember("consent")); // removals carry no consent
    Verdict v = c.Interpret(reqs[0], changes, Answer(200, "{\"requestId\":\"r1\"}"));
    ASSERT_EQ(v.kind, Verdict::Kind::Continue);
    EXPECT_FALSE(v.job_accepted);
    EXPECT_EQ(v.next->http.url, "https://google.example/v1/audienceMembers:ingest");
    auto add = Json(v.next->http.body);
    ASSERT_EQ(add["audienceMembers"].Size(), 2u);
    EXPECT_EQ(add["audienceMembers"][0]["userData"]["userIdentifiers"][0]["emailAddress"].GetString(), kC);
    Verdict w = c.Interpret(*v.next, changes, Answer(200, "{\"requestId\":\"a1\"}"));
    ASSERT_EQ(w.kind, Verdict::Kind::Continue);
    EXPECT_TRUE(w.job_accepted);
    EXPECT_EQ(w.next->flow.job_id, "r1"); // both requests are polled, in order
    Verdict x = c.Interpret(
        *w.next, changes, Answer(200, "{\"requestStatusPerDestination\":[{\"requestStatus\":\"SUCCESS\"}]}"));
    ASSERT_EQ(x.kind, Verdict::Kind::Continue);
    EXPECT_EQ(x.next->flow.job_id, "a1");
    Verdict y = c.Interpret(*x.next, changes,
                            Answer(200, "{\"requestStatusPerDestination\":[{\"requestStatus\":\"FAILED\","
                                        "\"errorInfo\":{\"errorCounts\":[{\"recordCount\":\"2\",\"reason\":"
                                        "\"PROCESSING_ERROR_REASON_NO_CONSENT\"}]}}]}"));
    ASSERT_EQ(y.kind, Verdict::Kind::Done);
    EXPECT_TRUE(y.rows[0].accepted); // the removal applied
    EXPECT_FALSE(y.rows[1].accepted);
    EXPECT_EQ(y.rows[1].error_code, "REQUEST_FAILED");
    EXPECT_NE(y.rows[1].reason.find("NO_CONSENT"), std::string::npos);
}

TEST(GoogleConnector, DataManagerFieldViolationsRefuseTheirRowsAndResendTheRest) {
    GoogleConnector c(Settings(), Target());
    std::vector<Change> changes = {Member(1, kA, kB), Member(2, kC, kB), Member(3, kB, kB)};
    std::vector<std::pair<size_t, RowOutcome>> immediate;
    auto reqs = c.Prepare(BatchContext{}, changes, All(changes), immediate);
    Verdict v = c.Interpret(
        reqs[0], changes,
        Answer(400,
               "{\"error\":{\"code\":400,\"status\":\"INVALID_ARGUMENT\",\"message\":\"bad\",\"details\":[{"
               "\"@type\":\"type.googleapis.com/google.rpc.BadRequest\",\"fieldViolations\":[{\"field\":"
               "\"audience_members[1].user_data.user_identifiers[0]\",\"description\":\"not hex\","
               "\"reason\":\"INVALID_HEX_ENCODING\"}]}]}}"));
    ASSERT_EQ(v.kind, Verdict::Kind::Continue);
    EXPECT_FALSE(v.rows[1].accepted);
    EXPECT_EQ(v.rows[1].error_code, "INVALID_HEX_ENCODING");
    ASSERT_TRUE(v.next);
    EXPECT_EQ(v.next->rows, (std::vector<size_t>{0, 2}));
    EXPECT_EQ(Json(v.next->http.body)["audienceMembers"].Size(), 2u);
}

namespace {

const char *kPending = "{\"results\":[{\"offlineUserDataJob\":{\"status\":\"PENDING\"}}]}";
const char *kRunning = "{\"results\":[{\"offlineUserDataJob\":{\"status\":\"RUNNING\"}}]}";
const char *kSuccess = "{\"results\":[{\"offlineUserDataJob\":{\"status\":\"SUCCESS\"}}]}";

std::string Queried(const PreparedRequest &r) {
    return Json(r.http.body)["query"].GetString();
}

BatchContext FinalPass() {
    BatchContext c;
    c.final_pass = true;
    return c;
}

} // namespace

TEST(GoogleConnector, AdsJobFlowWithPartialFailure) {
    GoogleConnector c(Settings("google_ads"), Target());
    std::vector<Change> changes = {Member(1, kA, kB), Member(2, kC, kB), Member(3, kB, kB)};
    std::vector<std::pair<size_t, RowOutcome>> immediate;
    auto reqs = c.Prepare(BatchContext{}, changes, All(changes), immediate);
    ASSERT_EQ(reqs.size(), 1u);
    const auto &create = reqs[0];
    EXPECT_EQ(create.http.url, "https://google.example/v25/customers/1234567890/offlineUserDataJobs:create");
    EXPECT_EQ(HeaderOf(create, "developer-token"), "dev-secret");
    EXPECT_EQ(HeaderOf(create, "login-customer-id"), "555");
    auto body = Json(create.http.body);
    EXPECT_STREQ(body["job"]["type"].GetString(), "CUSTOMER_MATCH_USER_LIST");
    EXPECT_STREQ(body["job"]["customerMatchUserListMetadata"]["userList"].GetString(),
                 "customers/1234567890/userLists/4455");
    EXPECT_STREQ(body["job"]["customerMatchUserListMetadata"]["consent"]["adUserData"].GetString(),
                 "GRANTED");

    Verdict v = c.Interpret(
        create, changes, Answer(200, "{\"resourceName\":\"customers/1234567890/offlineUserDataJobs/77\"}"));
    ASSERT_EQ(v.kind, Verdict::Kind::Continue);
    EXPECT_FALSE(v.job_accepted);
    EXPECT_EQ(v.next->http.url,
              "https://google.example/v25/customers/1234567890/offlineUserDataJobs/77:addOperations");
    auto ops = Json(v.next->http.body);
    EXPECT_TRUE(ops["enablePartialFailure"].GetBool());
    ASSERT_EQ(ops["operations"].Size(), 3u);
    EXPECT_EQ(ops["operations"][1]["create"]["userIdentifiers"][0]["hashedEmail"].GetString(), kC);
    EXPECT_EQ(ops["operations"][1]["create"]["userIdentifiers"][1]["hashedPhoneNumber"].GetString(), kB);

    // The operations are in: the job is kept and, until the run's last
    // batch, parked (it is not run yet).
    Verdict w = c.Interpret(
        *v.next, changes,
        Answer(200,
               "{\"partialFailureError\":{\"code\":3,\"message\":\"1 failed\",\"details\":[{\"@type\":"
               "\"type.googleapis.com/google.ads.googleads.v25.errors.GoogleAdsFailure\",\"errors\":[{"
               "\"errorCode\":{\"offlineUserDataJobError\":\"INVALID_SHA256_FORMAT\"},\"message\":\"bad\","
               "\"location\":{\"fieldPathElements\":[{\"fieldName\":\"operations\",\"index\":2},"
               "{\"fieldName\":\"create\"}]}}]}]}}"));
    ASSERT_EQ(w.kind, Verdict::Kind::Continue);
    EXPECT_FALSE(w.rows[2].accepted);
    EXPECT_EQ(w.rows[2].error_code, "INVALID_SHA256_FORMAT");
    EXPECT_EQ(w.next->rows, (std::vector<size_t>{0, 1}));
    EXPECT_TRUE(w.job_accepted);
    EXPECT_TRUE(w.park);
    EXPECT_EQ(w.next->flow.step, GoogleConnector::kAdsReady);
    EXPECT_EQ(w.next->flow.job_id, "customers/1234567890/offlineUserDataJobs/77");
    EXPECT_NE(Queried(*w.next).find("'customers/1234567890/offlineUserDataJobs/77'"), std::string::npos);

    // The final pass resumes the kept flow: still PENDING, so it is run.
    auto ready = c.Resume(FinalPass(), changes, w.next->flow);
    ASSERT_TRUE(ready.has_value());
    EXPECT_EQ(ready->flow.step, GoogleConnector::kAdsReady);
    ready->rows = w.next->rows;
    Verdict run = c.Interpret(*ready, changes, Answer(200, kPending));
    ASSERT_EQ(run.kind, Verdict::Kind::Continue);
    EXPECT_EQ(run.next->http.url,
              "https://google.example/v25/customers/1234567890/offlineUserDataJobs/77:run");
    Verdict ran =
        c.Interpret(*run.next, changes, Answer(200, "{\"name\":\"customers/1234567890/operations/77\"}"));
    ASSERT_EQ(ran.kind, Verdict::Kind::Continue);
    EXPECT_FALSE(ran.job_accepted); // kept already
    EXPECT_EQ(ran.next->flow.step, GoogleConnector::kAdsPoll);
    Verdict poll = c.Interpret(*ran.next, changes, Answer(200, kRunning));
    ASSERT_EQ(poll.kind, Verdict::Kind::Continue);
    EXPECT_EQ(poll.next->flow.step, GoogleConnector::kAdsPoll);
    Verdict done = c.Interpret(*poll.next, changes, Answer(200, kSuccess));
    ASSERT_EQ(done.kind, Verdict::Kind::Done);
    ASSERT_EQ(done.rows.size(), 2u);
    EXPECT_TRUE(done.rows[0].accepted && done.rows[1].accepted);
    EXPECT_EQ(done.rows[0].dest_id, Id(kA, kB));
    // A job Google no longer knows: the rows go again.
    Verdict gone = c.Interpret(*poll.next, changes, Answer(200, "{\"results\":[]}"));
    EXPECT_EQ(gone.kind, Verdict::Kind::Resend);
}

TEST(GoogleConnector, AdsOneJobForAllTheRunsBatches) {
    GoogleConnector c(Settings("google_ads"), Target());
    std::vector<Change> first = {Member(1, kA, kA), Member(2, kB, kB)};
    std::vector<Change> second = {Member(3, kC, kC)};
    std::vector<std::pair<size_t, RowOutcome>> immediate;
    auto a = c.Prepare(BatchContext{}, first, All(first), immediate);
    Verdict created = c.Interpret(
        a[0], first, Answer(200, "{\"resourceName\":\"customers/1234567890/offlineUserDataJobs/5\"}"));
    Verdict parked_a = c.Interpret(*created.next, first, Answer(200, "{}"));
    ASSERT_TRUE(parked_a.park);

    // The next batch adds to the same job: no second create.
    auto b = c.Prepare(BatchContext{}, second, All(second), immediate);
    ASSERT_EQ(b.size(), 1u);
    EXPECT_EQ(b[0].http.url,
              "https://google.example/v25/customers/1234567890/offlineUserDataJobs/5:addOperations");
    Verdict parked_b = c.Interpret(b[0], second, Answer(200, "{}"));
    ASSERT_TRUE(parked_b.park && parked_b.job_accepted);
    EXPECT_EQ(parked_b.next->flow.job_id, "customers/1234567890/offlineUserDataJobs/5");

    // The final pass: the first flow runs the job, the second only polls it.
    auto ready_a = c.Resume(FinalPass(), first, parked_a.next->flow);
    auto ready_b = c.Resume(FinalPass(), second, parked_b.next->flow);
    ready_a->rows = All(first);
    ready_b->rows = All(second);
    Verdict run = c.Interpret(*ready_a, first, Answer(200, kPending));
    EXPECT_EQ(run.next->flow.step, GoogleConnector::kAdsRun);
    Verdict wait = c.Interpret(*ready_b, second, Answer(200, kPending));
    ASSERT_EQ(wait.kind, Verdict::Kind::Continue);
    EXPECT_EQ(wait.next->flow.step, GoogleConnector::kAdsReady); // not run twice
    Verdict running = c.Interpret(*wait.next, second, Answer(200, kRunning));
    EXPECT_EQ(running.next->flow.step, GoogleConnector::kAdsPoll);
    Verdict done = c.Interpret(*running.next, second, Answer(200, kSuccess));
    ASSERT_EQ(done.kind, Verdict::Kind::Done);
    EXPECT_TRUE(done.rows[0].accepted);

    // Once run, the job takes nothing more: a batch after that (a resend in
    // the final pass) makes a job of its own, and runs it without parking.
    std::vector<Change> third = {Member(4, kA, kC)};
    auto t = c.Prepare(FinalPass(), third, All(third), immediate);
    EXPECT_EQ(t[0].flow.step, GoogleConnector::kAdsCreate);
    Verdict t_created = c.Interpret(
        t[0], third, Answer(200, "{\"resourceName\":\"customers/1234567890/offlineUserDataJobs/6\"}"));
    Verdict t_ready = c.Interpret(*t_created.next, third, Answer(200, "{}"));
    EXPECT_TRUE(t_ready.job_accepted);
    EXPECT_FALSE(t_ready.park);
}

TEST(GoogleConnector, AdsRemovalJobRunsAndEndsBeforeTheAddJobRuns) {
    GoogleConnector c(Settings("google_ads"), Target());
    std::vector<Change> changes = {Removal(1, Id(kA, kA)), Member(2, kC, kC)};
    std::vector<std::pair<size_t, RowOutcome>> immediate;
    auto reqs = c.Prepare(BatchContext{}, changes, All(changes), immediate);
    auto body = Json(reqs[0].http.body);
    EXPECT_FALSE(body["job"]["customerMatchUserListMetadata"].HasMember("consent"));
    Verdict v = c.Interpret(reqs[0], changes,
                            Answer(200, "{\"resourceName\":\"customers/1234567890/offlineUserDataJobs/1\"}"));
    auto ops = Json(v.next->http.body);
    ASSERT_EQ(ops["operations"].Size(), 1u);
    EXPECT_EQ(ops["operations"][0]["remove"]["userIdentifiers"][0]["hashedEmail"].GetString(), kA);
    // Then the job of additions (with consent), its own: Google mixes none.
    Verdict w = c.Interpret(*v.next, changes, Answer(200, "{}"));
    ASSERT_EQ(w.next->flow.step, GoogleConnector::kAdsCreate);
    EXPECT_TRUE(Json(w.next->http.body)["job"]["customerMatchUserListMetadata"].HasMember("consent"));
    Verdict x = c.Interpret(*w.next, changes,
                            Answer(200, "{\"resourceName\":\"customers/1234567890/offlineUserDataJobs/2\"}"));
    EXPECT_TRUE(Json(x.next->http.body)["operations"][0].HasMember("create"));
    Verdict parked = c.Interpret(*x.next, changes, Answer(200, "{}"));
    ASSERT_TRUE(parked.park);
    EXPECT_EQ(parked.next->flow.job_id, "customers/1234567890/offlineUserDataJobs/1");

    auto ready = c.Resume(FinalPass(), changes, parked.next->flow);
    ready->rows = All(changes);
    Verdict run1 = c.Interpret(*ready, changes, Answer(200, kPending));
    EXPECT_EQ(run1.next->http.url,
              "https://google.example/v25/customers/1234567890/offlineUserDataJobs/1:run");
    Verdict poll1 = c.Interpret(*run1.next, changes, Answer(200, "{}"));
    Verdict next = c.Interpret(*poll1.next, changes, Answer(200, kSuccess));
    // The removals are done: now the additions' job.
    ASSERT_EQ(next.kind, Verdict::Kind::Continue);
    EXPECT_EQ(next.next->flow.step, GoogleConnector::kAdsReady);
    EXPECT_NE(Queried(*next.next).find("offlineUserDataJobs/2'"), std::string::npos);
    Verdict run2 = c.Interpret(*next.next, changes, Answer(200, kPending));
    EXPECT_EQ(run2.next->http.url,
              "https://google.example/v25/customers/1234567890/offlineUserDataJobs/2:run");
    Verdict poll2 = c.Interpret(*run2.next, changes, Answer(200, "{}"));
    Verdict done = c.Interpret(*poll2.next, changes, Answer(200, kSuccess));
    ASSERT_EQ(done.kind, Verdict::Kind::Done);
    EXPECT_TRUE(done.rows[0].accepted && done.rows[1].accepted);
}

TEST(GoogleConnector, AdsFailedRemovalJobRefusesItsRowsAndTheAddJobStillRuns) {
    GoogleConnector c(Settings("google_ads"), Target());
    std::vector<Change> changes = {Removal(1, Id(kA, kA)), Member(2, kC, kC)};
    FlowStep kept;
    kept.step = GoogleConnector::kAdsReady;
    kept.job_id = "customers/1234567890/offlineUserDataJobs/1";
    kept.state = "r 0 customers/1234567890/offlineUserDataJobs/1 r:1,a:2";
    auto ready = c.Resume(FinalPass(), changes, kept);
    ASSERT_TRUE(ready.has_value());
    ready->rows = All(changes);
    Verdict failed = c.Interpret(
        *ready, changes,
        Answer(200, "{\"results\":[{\"offlineUserDataJob\":{\"status\":\"FAILED\",\"failureReason\":"
                    "\"PROCESSING_FAILURE\"}}]}"));
    ASSERT_EQ(failed.kind, Verdict::Kind::Continue);
    EXPECT_FALSE(failed.rows[0].accepted);
    EXPECT_EQ(failed.rows[0].error_code, "PROCESSING_FAILURE");
    EXPECT_EQ(failed.next->rows, (std::vector<size_t>{1}));
    EXPECT_NE(Queried(*failed.next).find("offlineUserDataJobs/2'"), std::string::npos);
    // A kept state that names a job badly is not resumed (sent again).
    kept.state = "r 0 - r:1x";
    EXPECT_FALSE(c.Resume(FinalPass(), changes, kept).has_value());
}

TEST(GoogleConnector, ErrorEnvelopes) {
    GoogleConnector c(Settings("google_ads"), Target());
    std::vector<Change> changes = {Member(1, kA, kB)};
    std::vector<std::pair<size_t, RowOutcome>> immediate;
    auto req = c.Prepare(BatchContext{}, changes, All(changes), immediate)[0];
    Verdict t = c.Interpret(
        req, changes,
        Answer(
            429,
            "{\"error\":{\"code\":429,\"status\":\"RESOURCE_EXHAUSTED\",\"message\":\"slow\",\"details\":[{"
            "\"@type\":\"type.googleapis.com/google.ads.googleads.v25.errors.GoogleAdsFailure\",\"errors\":"
            "[{\"errorCode\":{\"quotaError\":\"RESOURCE_TEMPORARILY_EXHAUSTED\"},\"details\":{"
            "\"quotaErrorDetails\":{\"retryDelay\":\"7.5s\"}}}]}]}}"));
    EXPECT_EQ(t.kind, Verdict::Kind::Throttled);
    EXPECT_EQ(t.wait_ms, 7500);
    Verdict d =
        c.Interpret(req, changes,
                    Answer(429, "{\"error\":{\"code\":429,\"status\":\"RESOURCE_EXHAUSTED\",\"details\":[{"
                                "\"@type\":\"type.googleapis.com/google.rpc.RetryInfo\",\"retryDelay\":"
                                "\"86400s\"}]}}"));
    EXPECT_EQ(d.kind, Verdict::Kind::Fatal); // a day's quota spent
    Verdict a = c.Interpret(
        req, changes,
        Answer(401, "{\"error\":{\"code\":401,\"status\":\"UNAUTHENTICATED\",\"message\":\"x\"}}"));
    EXPECT_EQ(a.kind, Verdict::Kind::AuthExpired);
    EXPECT_EQ(a.error.find("ya29"), std::string::npos);
    Verdict f = c.Interpret(
        req, changes,
        Answer(403, "{\"error\":{\"code\":403,\"status\":\"PERMISSION_DENIED\",\"message\":\"no\"}}"));
    EXPECT_EQ(f.kind, Verdict::Kind::Fatal);
    EXPECT_NE(f.error.find("developer-token"), std::string::npos);
    EXPECT_EQ(f.error.find("dev-secret"), std::string::npos);
    Verdict m = c.Interpret(
        req, changes,
        Answer(
            409,
            "{\"error\":{\"code\":409,\"status\":\"ABORTED\",\"details\":[{\"@type\":\"type.googleapis.com/"
            "google.ads.googleads.v25.errors.GoogleAdsFailure\",\"errors\":[{\"errorCode\":{"
            "\"databaseError\":\"CONCURRENT_MODIFICATION\"}}]}]}}"));
    EXPECT_EQ(m.kind, Verdict::Kind::Retry);
    EXPECT_GT(m.wait_ms, 0);
    Verdict r =
        c.Interpret(req, changes,
                    Answer(400, "{\"error\":{\"code\":400,\"status\":\"INVALID_ARGUMENT\",\"message\":\"no "
                                "list\"}}"));
    ASSERT_EQ(r.kind, Verdict::Kind::Done);
    EXPECT_FALSE(r.rows[0].accepted);
    EXPECT_EQ(r.rows[0].error_code, "INVALID_ARGUMENT");
    EXPECT_EQ(c.Interpret(req, changes, Answer(503, "")).kind, Verdict::Kind::Retry);
}

TEST(GoogleConnector, UnreadableKeptIdentifiers) {
    GoogleConnector c(Settings(), Target());
    // A removal whose kept identifiers cannot be read is refused; a change
    // whose old ones cannot be read is only added.
    std::vector<Change> changes = {Removal(1, "12345"), Member(2, kC, kC, Change::Op::Change, "{\"x\":1}"),
                                   Removal(3, "")};
    std::vector<std::pair<size_t, RowOutcome>> immediate;
    auto reqs = c.Prepare(BatchContext{}, changes, All(changes), immediate);
    ASSERT_EQ(immediate.size(), 2u);
    // Neither removal could ever be sent: each is reported once and its key
    // forgotten.
    EXPECT_EQ(immediate[0].second.error_code, "INVALID_RECORD_ID");
    EXPECT_TRUE(immediate[0].second.unresolvable_removal);
    EXPECT_EQ(immediate[1].second.error_code, "NO_RECORD_ID");
    EXPECT_TRUE(immediate[1].second.unresolvable_removal);
    ASSERT_EQ(reqs.size(), 1u);
    EXPECT_EQ(reqs[0].http.url, "https://google.example/v1/audienceMembers:ingest");
    EXPECT_EQ(reqs[0].rows, (std::vector<size_t>{1}));
}
