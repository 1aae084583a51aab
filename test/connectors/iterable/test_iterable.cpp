// The Iterable connector without a network: the bodies it builds for
// bulkUpdate, deletes and list membership (MODE AUDIENCE, including the
// unsubscribe-then-subscribe flow of a changed identifier), and what it makes
// of Iterable's answers (failedUpdates per identifier, 429, BatchTooLarge).
#include "core/connectors/iterable/iterable.hpp"

#include "core/common/error.hpp"
#include "core/connectors/registry.hpp"

#include <gtest/gtest.h>

#include <string>
#include <vector>

using namespace revetl;

namespace {

DestinationSettings Settings() {
    DestinationSettings s;
    s.type = "iterable";
    s.url = "https://api.iterable.com/";
    s.credentials.api_key = "iterable-secret-key";
    return s;
}

SyncTarget Target(const std::string &mode = "upsert", const std::string &match_on = "email",
                  const std::string &audience = "") {
    SyncTarget t;
    t.object = "users";
    t.mode = mode;
    t.match_on = match_on;
    t.audience = audience;
    return t;
}

Change Write(int64_t seq, const std::string &payload, Change::Op op = Change::Op::Add,
             const std::string &dest_id = "") {
    Change c;
    c.seq = seq;
    c.op = op;
    c.key = "{\"id\": " + std::to_string(seq) + "}";
    c.payload = payload;
    c.dest_id = dest_id;
    return c;
}

Change User(int64_t seq, const std::string &email) {
    return Write(seq, "{\"email\": \"" + email + "\", \"plan\": \"pro\", \"score\": 92.50, \"vip\": true}");
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

Prepared PrepareAll(IterableConnector &c, const std::vector<Change> &changes) {
    Prepared p;
    std::vector<size_t> rows;
    for (size_t i = 0; i < changes.size(); i++)
        rows.push_back(i);
    p.requests = c.Prepare(BatchContext{}, changes, rows, p.immediate);
    return p;
}

HttpResponse Answer(long status, const std::string &body) {
    HttpResponse r;
    r.status = status;
    r.body = body;
    return r;
}

std::string Header(const HttpRequest &r, const std::string &name) {
    for (const auto &h : r.headers)
        if (h.first == name)
            return h.second;
    return {};
}

} // namespace

TEST(Iterable, BulkUpdateByEmailWithDataFields) {
    IterableConnector c(Settings(), Target());
    std::vector<Change> changes = {User(1, "a@x.com"), User(2, "b@x.com")};
    Prepared p = PrepareAll(c, changes);
    ASSERT_EQ(p.requests.size(), 1u);
    const HttpRequest &r = p.requests[0].http;
    EXPECT_EQ(r.method, "POST");
    EXPECT_EQ(r.url, "https://api.iterable.com/api/users/bulkUpdate");
    // The key goes in Api-Key, never in Authorization.
    EXPECT_EQ(Header(r, "Api-Key"), "iterable-secret-key");
    EXPECT_EQ(Header(r, "Authorization"), "");
    EXPECT_EQ(r.body,
              "{\"users\":[{\"email\":\"a@x.com\",\"dataFields\":{\"plan\":\"pro\",\"score\":92.50,"
              "\"vip\":true}},{\"email\":\"b@x.com\",\"dataFields\":{\"plan\":\"pro\",\"score\":92.50,"
              "\"vip\":true}}]}");
    EXPECT_EQ(p.requests[0].flow.step, IterableConnector::kUpdate);
}

TEST(Iterable, UserIdIsPreferredAndDistinctPerCall) {
    IterableConnector c(Settings(), Target("upsert", "userId"));
    std::vector<Change> changes = {Write(1, "{\"userId\": \"u1\", \"n\": 1}"),
                                   Write(2, "{\"userId\": \"u1\", \"n\": 2}"), Write(3, "{\"n\": 3}")};
    Prepared p = PrepareAll(c, changes);
    // The same user twice goes in two calls; a row without a userId is refused.
    ASSERT_EQ(p.requests.size(), 2u);
    EXPECT_EQ(p.requests[0].http.body,
              "{\"users\":[{\"userId\":\"u1\",\"preferUserId\":true,\"dataFields\":{\"n\":1}}]}");
    ASSERT_EQ(p.immediate.size(), 1u);
    EXPECT_EQ(p.immediate[0].first, 2u);
    EXPECT_EQ(p.immediate[0].second.error_code, "NO_MATCH_VALUE");
}

TEST(Iterable, CallsHoldAtMostAThousandUsers) {
    IterableConnector c(Settings(), Target());
    std::vector<Change> changes;
    for (int i = 0; i < 2500; i++)
        changes.push_back(User(i, "u" + std::to_string(i) + "@x.com"));
    Prepared p = PrepareAll(c, changes);
    ASSERT_EQ(p.requests.size(), 3u);
    EXPECT_EQ(p.requests[0].rows.size(), 1000u);
    EXPECT_EQ(p.requests[2].rows.size(), 500u);
    EXPECT_EQ(IterableSpec().max_batch_size, 1000);
}

TEST(Iterable, FailedUpdatesRefuseTheirRowsOnly) {
    IterableConnector c(Settings(), Target());
    std::vector<Change> changes = {User(1, "a@x.com"), User(2, "bad@"), User(3, "c@x.com")};
    Prepared p = PrepareAll(c, changes);
    Verdict v =
        c.Interpret(p.requests[0], changes,
                    Answer(200, R"({"successCount":1,"failCount":2,"failedUpdates":{"invalidEmails":["bad@"],
                                          "invalidDataEmails":["c@x.com"]}})"));
    EXPECT_EQ(v.kind, Verdict::Kind::Done);
    ASSERT_EQ(v.rows.size(), 3u);
    EXPECT_TRUE(v.rows[0].accepted);
    EXPECT_EQ(v.rows[0].dest_id, "a@x.com"); // kept: what a removal deletes by
    EXPECT_FALSE(v.rows[1].accepted);
    EXPECT_EQ(v.rows[1].error_code, "invalidEmails");
    EXPECT_EQ(v.rows[1].reason, "Iterable found the email address malformed");
    EXPECT_FALSE(v.rows[2].accepted);
    EXPECT_EQ(v.rows[2].error_code, "invalidDataEmails");
    // The deprecated top-level list counts too.
    v = c.Interpret(p.requests[0], changes,
                    Answer(200, R"({"successCount":2,"failCount":1,"invalidEmails":["bad@"]})"));
    EXPECT_FALSE(v.rows[1].accepted);
    EXPECT_TRUE(v.rows[2].accepted);
}

TEST(Iterable, ThrottlingRetriesAndSplits) {
    IterableConnector c(Settings(), Target());
    std::vector<Change> changes = {User(1, "a@x.com"), User(2, "b@x.com")};
    Prepared p = PrepareAll(c, changes);
    Verdict v =
        c.Interpret(p.requests[0], changes, Answer(429, R"({"msg":"slow down","code":"RateLimitExceeded"})"));
    EXPECT_EQ(v.kind, Verdict::Kind::Throttled);
    EXPECT_EQ(v.wait_ms, 1000);
    EXPECT_EQ(c.Interpret(p.requests[0], changes, Answer(503, "")).kind, Verdict::Kind::Retry);
    v = c.Interpret(p.requests[0], changes, Answer(400, R"({"msg":"too big","code":"BatchTooLarge"})"));
    EXPECT_EQ(v.kind, Verdict::Kind::Split);
    PreparedRequest one = p.requests[0];
    one.rows = {0};
    v = c.Interpret(one, changes, Answer(400, R"({"msg":"bad field","code":"BadParams"})"));
    EXPECT_EQ(v.kind, Verdict::Kind::Done);
    ASSERT_EQ(v.rows.size(), 1u);
    EXPECT_EQ(v.rows[0].error_code, "BadParams");
    EXPECT_EQ(v.rows[0].reason, "BadParams: bad field");
    v = c.Interpret(p.requests[0], changes, Answer(401, R"({"msg":"Invalid API key","code":"BadApiKey"})"));
    EXPECT_EQ(v.kind, Verdict::Kind::AuthExpired);
    EXPECT_EQ(v.error.find("iterable-secret-key"), std::string::npos);
}

TEST(Iterable, MirrorDeletesOneUserPerCallByTheKeptIdentifier) {
    IterableConnector c(Settings(), Target("mirror"));
    std::vector<Change> changes = {Removal(1, "a/b@x.com"), Removal(2, "")};
    Prepared p = PrepareAll(c, changes);
    ASSERT_EQ(p.requests.size(), 1u);
    EXPECT_EQ(p.requests[0].http.method, "DELETE");
    EXPECT_EQ(p.requests[0].http.url, "https://api.iterable.com/api/users/a%2Fb%40x.com");
    EXPECT_EQ(p.requests[0].http.body, "");
    ASSERT_EQ(p.immediate.size(), 1u);
    EXPECT_EQ(p.immediate[0].second.error_code, "NO_RECORD_ID");
    EXPECT_TRUE(
        c.Interpret(p.requests[0], changes, Answer(200, R"({"msg":"","code":"Success"})")).rows[0].accepted);
    // A user Iterable does not know is gone already.
    EXPECT_TRUE(c.Interpret(p.requests[0], changes, Answer(400, R"({"msg":"no","code":"UnknownEmailError"})"))
                    .rows[0]
                    .accepted);
    IterableConnector by_id(Settings(), Target("mirror", "userId"));
    changes = {Removal(1, "u 1")};
    p = PrepareAll(by_id, changes);
    EXPECT_EQ(p.requests[0].http.url, "https://api.iterable.com/api/users/byUserId/u%201");
}

TEST(Iterable, AudienceSubscribesAddsAndUnsubscribesRemovals) {
    IterableConnector c(Settings(), Target("audience", "email", "4242"));
    std::vector<Change> changes = {User(1, "a@x.com"), Removal(2, "old@x.com"),
                                   // An identifier that did not change: subscribed again (harmless).
                                   Write(3, "{\"email\": \"c@x.com\"}", Change::Op::Change, "c@x.com")};
    Prepared p = PrepareAll(c, changes);
    ASSERT_EQ(p.requests.size(), 2u);
    EXPECT_EQ(p.requests[0].http.url, "https://api.iterable.com/api/lists/subscribe");
    // Membership only: the other mapped fields are not sent.
    EXPECT_EQ(p.requests[0].http.body,
              "{\"listId\":4242,\"subscribers\":[{\"email\":\"a@x.com\"},{\"email\":\"c@x.com\"}]}");
    EXPECT_EQ(p.requests[1].http.url, "https://api.iterable.com/api/lists/unsubscribe");
    EXPECT_EQ(p.requests[1].http.body, "{\"listId\":4242,\"subscribers\":[{\"email\":\"old@x.com\"}]}");

    Verdict v = c.Interpret(p.requests[0], changes, Answer(200, R"({"successCount":2,"failCount":0})"));
    EXPECT_TRUE(v.rows[0].accepted);
    EXPECT_EQ(v.rows[0].dest_id, "a@x.com");
    // Leaving a list the user is not on is done.
    v = c.Interpret(
        p.requests[1], changes,
        Answer(200, R"({"successCount":0,"failCount":1,"failedUpdates":{"notFoundEmails":["old@x.com"]}})"));
    EXPECT_TRUE(v.rows[0].accepted);
    // But a malformed address is refused.
    v = c.Interpret(
        p.requests[0], changes,
        Answer(200, R"({"successCount":1,"failCount":1,"failedUpdates":{"invalidEmails":["a@x.com"]}})"));
    EXPECT_FALSE(v.rows[0].accepted);
    EXPECT_TRUE(v.rows[1].accepted);
}

TEST(Iterable, AChangedIdentifierLeavesThenJoins) {
    IterableConnector c(Settings(), Target("audience", "userId", "7"));
    std::vector<Change> changes = {Write(1, "{\"userId\": \"new1\"}", Change::Op::Change, "old1"),
                                   Write(2, "{\"userId\": \"new2\"}", Change::Op::Change, "old2")};
    Prepared p = PrepareAll(c, changes);
    ASSERT_EQ(p.requests.size(), 1u);
    EXPECT_EQ(p.requests[0].flow.step, IterableConnector::kSwap);
    EXPECT_EQ(p.requests[0].http.url, "https://api.iterable.com/api/lists/unsubscribe");
    EXPECT_EQ(p.requests[0].http.body,
              "{\"listId\":7,\"subscribers\":[{\"userId\":\"old1\"},{\"userId\":\"old2\"}]}");
    // The old identifier of row 2 is refused: only row 1 goes on to join.
    Verdict v = c.Interpret(
        p.requests[0], changes,
        Answer(200, R"({"successCount":1,"failCount":1,"failedUpdates":{"invalidUserIds":["old2"]}})"));
    ASSERT_EQ(v.kind, Verdict::Kind::Continue);
    ASSERT_TRUE(v.next.has_value());
    EXPECT_EQ(v.next->rows, (std::vector<size_t>{0}));
    EXPECT_FALSE(v.rows[1].accepted);
    EXPECT_EQ(v.next->flow.step, IterableConnector::kSubscribe);
    EXPECT_EQ(v.next->http.url, "https://api.iterable.com/api/lists/subscribe");
    EXPECT_EQ(v.next->http.body,
              "{\"listId\":7,\"subscribers\":[{\"userId\":\"new1\",\"preferUserId\":true}]}");
    v = c.Interpret(*v.next, changes, Answer(200, R"({"successCount":1,"failCount":0})"));
    EXPECT_EQ(v.kind, Verdict::Kind::Done);
    ASSERT_EQ(v.rows.size(), 1u);
    EXPECT_TRUE(v.rows[0].accepted);
    EXPECT_EQ(v.rows[0].dest_id, "new1");
}

TEST(Iterable, SpecTakesAudiencesByNumericListId) {
    const ConnectorSpec *spec = FindSpec("iterable");
    ASSERT_NE(spec, nullptr);
    EXPECT_TRUE(spec->audience.supported);
    EXPECT_TRUE(spec->audience.numeric);
    EXPECT_FALSE(spec->audience.hashed_identifiers); // Iterable takes plain identifiers
    SyncTarget t = Target("audience", "", "12");
    OptionList server = {{"type", "iterable"}};
    CheckSyncTarget(*spec, server, t, "s", "it");
    EXPECT_EQ(t.match_on, "email");
    t = Target("insert");
    EXPECT_THROW(CheckSyncTarget(*spec, server, t, "s", "it"), Error);
    t = Target("upsert", "external_id");
    EXPECT_THROW(CheckSyncTarget(*spec, server, t, "s", "it"), Error);
    // The server needs no url: the US data centre is the default.
    EXPECT_EQ(ResolveDestinationSettings(server, {{"api_key", "k"}}).url, "https://api.iterable.com");
}
