// The Mailchimp connector without a network: the subscriber hash (MD5 test
// vectors computed with md5sum), the data centre from the API key, the batch
// body (merge fields, status, update_existing), PATCH for UPDATE, archive for
// MIRROR, tags for AUDIENCE (with the untag-then-tag flow of a changed email),
// and what it makes of Mailchimp's answers: errors[] mapped to rows by email,
// 429 and a bare 403 as throttling, a problem-body 403 and 401 failing the run.
#include "core/connectors/mailchimp/mailchimp.hpp"

#include "core/common/error.hpp"
#include "core/connectors/registry.hpp"

#include <gtest/gtest.h>

#include <string>
#include <vector>

using namespace revetl;

namespace {

const char *kHashA = "743173788aa9166801df2e18f0e7ff24";   // md5("a@x.com")
const char *kHashB = "553e03dbb031473e7922e6c4254b0403";   // md5("b@x.com")
const char *kHashNew = "d7a7368ba4028c28ed06bbbe09f99c85"; // md5("new@x.com")

DestinationSettings Settings(const std::string &extra_name = "", const std::string &extra_value = "") {
    OptionList server = {{"type", "mailchimp"}, {"list_id", "a1b2c3"}};
    if (!extra_name.empty())
        server.emplace_back(extra_name, extra_value);
    return ResolveDestinationSettings(server, {{"api_key", "k-us6"}});
}

SyncTarget Target(const std::string &mode = "upsert", const std::string &audience = "") {
    SyncTarget t;
    t.object = "members";
    t.mode = mode;
    t.match_on = "email_address";
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

Change Person(int64_t seq, const std::string &email) {
    return Write(seq, "{\"email_address\": \"" + email +
                          "\", \"fname\": \"Ada\", \"score\": 92.50, \"note\": null}");
}

Change Removal(int64_t seq, const std::string &dest_id) {
    return Write(seq, "", Change::Op::Remove, dest_id);
}

struct Prepared {
    std::vector<PreparedRequest> requests;
    std::vector<std::pair<size_t, RowOutcome>> immediate;
};

Prepared PrepareAll(MailchimpConnector &c, const std::vector<Change> &changes) {
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

TEST(Mailchimp, SubscriberHashIsMd5OfTheLowerCasedEmail) {
    EXPECT_EQ(MailchimpSubscriberHash(""), "d41d8cd98f00b204e9800998ecf8427e");
    EXPECT_EQ(MailchimpSubscriberHash("abc"), "900150983cd24fb0d6963f7d28e17f72");
    // Mailchimp's documentation's own example, and upper case folded.
    EXPECT_EQ(MailchimpSubscriberHash("Urist.McVankab@freddiesjokes.com"),
              "62eeb292278cc15f5817cb78f7790b08");
    EXPECT_EQ(MailchimpSubscriberHash("A@X.com"), kHashA);
    // More than one 64-byte block.
    EXPECT_EQ(MailchimpSubscriberHash(std::string(1000, 'a')), "cabe45dcc9ae5b66ba86600cca6b8ba8");
}

TEST(Mailchimp, DataCentreComesFromTheKeyOrTheDcOption) {
    EXPECT_EQ(MailchimpDataCentre("0123abcd-us6"), "us6");
    EXPECT_EQ(MailchimpDataCentre("0123abcd-us21"), "us21");
    EXPECT_EQ(MailchimpDataCentre("0123abcd"), "");
    EXPECT_EQ(MailchimpDataCentre("x-evil.example.com/"), "");
    EXPECT_EQ(MailchimpDataCentre("x-us6.evil"), "");
    EXPECT_EQ(Settings().url, "https://us6.api.mailchimp.com");
    EXPECT_EQ(Settings("dc", "us19").url, "https://us19.api.mailchimp.com");
    EXPECT_EQ(Settings("url", "http://127.0.0.1:9").url, "http://127.0.0.1:9");
    // A bearer token names no data centre: dc is needed.
    OptionList server = {{"type", "mailchimp"}, {"list_id", "a1b2c3"}};
    DestinationSettings s = ResolveDestinationSettings(server, {{"token", "t"}});
    EXPECT_EQ(s.url, "");
    EXPECT_THROW(MailchimpConnector(s, Target()), Error);
    EXPECT_THROW(ValidateServer({{"type", "mailchimp"}, {"list_id", "a1b2c3"}, {"dc", "evil.com"}}), Error);
    EXPECT_THROW(ValidateServer({{"type", "mailchimp"}, {"list_id", "../x"}}), Error);
    EXPECT_THROW(ValidateServer({{"type", "mailchimp"}}), Error); // no list_id
    EXPECT_THROW(ValidateServer({{"type", "mailchimp"}, {"list_id", "a"}, {"max_in_flight", "11"}}), Error);
}

TEST(Mailchimp, BatchBodyWithMergeFieldsAndBasicAuth) {
    MailchimpConnector c(Settings(), Target());
    std::vector<Change> changes = {Person(1, "a@x.com"), Person(2, "b@x.com")};
    Prepared p = PrepareAll(c, changes);
    ASSERT_EQ(p.requests.size(), 1u);
    const HttpRequest &r = p.requests[0].http;
    EXPECT_EQ(r.method, "POST");
    EXPECT_EQ(r.url, "https://us6.api.mailchimp.com/3.0/lists/a1b2c3");
    EXPECT_EQ(Header(r, "Authorization"), "Basic YW55c3RyaW5nOmstdXM2"); // anystring:k-us6
    // The answer echoes every member in full: read past the default limit.
    EXPECT_EQ(r.max_response_body, size_t{32} << 20);
    EXPECT_EQ(
        r.body,
        "{\"members\":[{\"email_address\":\"a@x.com\",\"status\":\"subscribed\",\"merge_fields\":"
        "{\"FNAME\":\"Ada\",\"SCORE\":92.50,\"NOTE\":\"\"}},{\"email_address\":\"b@x.com\","
        "\"status\":\"subscribed\",\"merge_fields\":{\"FNAME\":\"Ada\",\"SCORE\":92.50,\"NOTE\":\"\"}}],"
        "\"update_existing\":true}");
}

TEST(Mailchimp, MemberFieldsStatusAndInsert) {
    MailchimpConnector c(Settings("member_status", "pending"), Target("insert"));
    std::vector<Change> changes = {
        Write(1, "{\"email_address\": \"a@x.com\", \"vip\": true, \"language\": \"fr\"}"),
        Write(2, "{\"email_address\": \"b@x.com\", \"status\": \"unsubscribed\"}"),
        Write(3, "{\"email_address\": \"c@x.com\", \"status\": \"gold\"}"), Write(4, "{\"fname\": \"x\"}")};
    Prepared p = PrepareAll(c, changes);
    ASSERT_EQ(p.requests.size(), 1u);
    EXPECT_EQ(
        p.requests[0].http.body,
        "{\"members\":[{\"email_address\":\"a@x.com\",\"status\":\"pending\",\"vip\":true,\"language\":"
        "\"fr\"},{\"email_address\":\"b@x.com\",\"status\":\"unsubscribed\"}],\"update_existing\":false}");
    ASSERT_EQ(p.immediate.size(), 2u);
    EXPECT_EQ(p.immediate[0].second.error_code, "INVALID_STATUS");
    EXPECT_EQ(p.immediate[1].second.error_code, "NO_MATCH_VALUE");
}

TEST(Mailchimp, CallsHoldAtMostFiveHundredDistinctMembers) {
    MailchimpConnector c(Settings(), Target());
    std::vector<Change> changes;
    for (int i = 0; i < 1200; i++)
        changes.push_back(Person(i, "u" + std::to_string(i) + "@x.com"));
    changes.push_back(Person(1200, "U1@x.com")); // the same member as u1
    Prepared p = PrepareAll(c, changes);
    ASSERT_EQ(p.requests.size(), 3u);
    EXPECT_EQ(p.requests[0].rows.size(), 500u);
    EXPECT_EQ(p.requests[1].rows.size(), 500u);
    EXPECT_EQ(p.requests[2].rows.size(), 201u);
    EXPECT_EQ(MailchimpSpec().max_batch_size, 500);
}

TEST(Mailchimp, ErrorsAreMappedToRowsByEmail) {
    MailchimpConnector c(Settings(), Target());
    std::vector<Change> changes = {Person(1, "A@x.com"), Person(2, "bad"), Person(3, "c@x.com")};
    Prepared p = PrepareAll(c, changes);
    Verdict v = c.Interpret(p.requests[0], changes,
                            Answer(200, "{\"new_members\":[],\"updated_members\":[],\"errors\":["
                                        "{\"email_address\":\"bad\",\"error\":\"bad looks fake or invalid\","
                                        "\"error_code\":\"ERROR_GENERIC\"},{\"email_address\":\"c@x.com\","
                                        "\"error\":\"c@x.com is in a compliance state\",\"error_code\":"
                                        "\"ERROR_CONTACT_EXISTS\"}],\"error_count\":2}"));
    EXPECT_EQ(v.kind, Verdict::Kind::Done);
    ASSERT_EQ(v.rows.size(), 3u);
    EXPECT_TRUE(v.rows[0].accepted);
    EXPECT_EQ(v.rows[0].dest_id, kHashA);
    EXPECT_FALSE(v.rows[1].accepted);
    EXPECT_EQ(v.rows[1].error_code, "ERROR_GENERIC");
    EXPECT_EQ(v.rows[1].reason, "bad looks fake or invalid");
    EXPECT_EQ(v.rows[2].error_code, "ERROR_CONTACT_EXISTS");
    // A refused call is split; a lone row is refused with the problem.
    v = c.Interpret(p.requests[0], changes,
                    Answer(400, "{\"title\":\"Invalid Resource\",\"status\":400,\"detail\":\"nope\"}"));
    EXPECT_EQ(v.kind, Verdict::Kind::Split);
    PreparedRequest one = p.requests[0];
    one.rows = {0};
    v = c.Interpret(one, changes,
                    Answer(400, "{\"title\":\"Invalid Resource\",\"status\":400,\"detail\":\"nope\"}"));
    ASSERT_EQ(v.rows.size(), 1u);
    EXPECT_EQ(v.rows[0].error_code, "Invalid Resource");
    EXPECT_EQ(v.rows[0].reason, "Invalid Resource: nope");
}

TEST(Mailchimp, ThrottlingAndAuthFailures) {
    MailchimpConnector c(Settings(), Target());
    std::vector<Change> changes = {Person(1, "a@x.com")};
    Prepared p = PrepareAll(c, changes);
    Verdict v = c.Interpret(p.requests[0], changes,
                            Answer(429, "{\"title\":\"Too Many Requests\",\"status\":429,\"detail\":\"x\"}"));
    EXPECT_EQ(v.kind, Verdict::Kind::Throttled);
    EXPECT_EQ(v.wait_ms, 1000);
    // A bare 403 is Mailchimp under load: throttling too, waited longer.
    v = c.Interpret(p.requests[0], changes, Answer(403, ""));
    EXPECT_EQ(v.kind, Verdict::Kind::Throttled);
    EXPECT_EQ(v.wait_ms, 2000);
    v = c.Interpret(p.requests[0], changes, Answer(200, "{\"errors\":[]}"));
    EXPECT_EQ(v.kind, Verdict::Kind::Done);
    v = c.Interpret(p.requests[0], changes, Answer(403, "<html>busy</html>"));
    EXPECT_EQ(v.kind, Verdict::Kind::Throttled);
    EXPECT_EQ(v.wait_ms, 1000);
    // A problem-body 403 is a refusal: the run stops with a hint.
    v = c.Interpret(p.requests[0], changes,
                    Answer(403, "{\"title\":\"Forbidden\",\"status\":403,\"detail\":\"not allowed\"}"));
    EXPECT_EQ(v.kind, Verdict::Kind::Fatal);
    EXPECT_NE(v.error.find("Forbidden: not allowed"), std::string::npos);
    EXPECT_NE(v.error.find("audience a1b2c3"), std::string::npos);
    v = c.Interpret(p.requests[0], changes,
                    Answer(401, "{\"title\":\"API Key Invalid\",\"status\":401,\"detail\":\"wrong\"}"));
    EXPECT_EQ(v.kind, Verdict::Kind::AuthExpired);
    EXPECT_EQ(v.error.find("k-us6"), std::string::npos);
    v = c.Interpret(p.requests[0], changes, Answer(404, "{\"title\":\"Resource Not Found\",\"status\":404}"));
    EXPECT_EQ(v.kind, Verdict::Kind::Fatal);
    EXPECT_NE(v.error.find("list_id"), std::string::npos);
    v = c.Interpret(p.requests[0], changes, Answer(503, ""));
    EXPECT_EQ(v.kind, Verdict::Kind::Retry);
}

TEST(Mailchimp, UpdatePatchesExistingMembersOnly) {
    MailchimpConnector c(Settings(), Target("update"));
    std::vector<Change> changes = {Person(1, "A@x.com")};
    Prepared p = PrepareAll(c, changes);
    ASSERT_EQ(p.requests.size(), 1u);
    EXPECT_EQ(p.requests[0].http.method, "PATCH");
    EXPECT_EQ(p.requests[0].http.url,
              std::string("https://us6.api.mailchimp.com/3.0/lists/a1b2c3/members/") + kHashA);
    EXPECT_EQ(p.requests[0].http.body,
              "{\"merge_fields\":{\"FNAME\":\"Ada\",\"SCORE\":92.50,\"NOTE\":\"\"}}");
    Verdict v = c.Interpret(p.requests[0], changes, Answer(404, "{\"title\":\"Resource Not Found\"}"));
    ASSERT_EQ(v.rows.size(), 1u);
    EXPECT_EQ(v.rows[0].error_code, "MEMBER_NOT_FOUND");
    v = c.Interpret(p.requests[0], changes, Answer(200, "{}"));
    EXPECT_TRUE(v.rows[0].accepted);
    EXPECT_EQ(v.rows[0].dest_id, kHashA);
}

TEST(Mailchimp, MirrorArchivesByTheKeptHash) {
    MailchimpConnector c(Settings(), Target("mirror"));
    std::vector<Change> changes = {Removal(1, kHashB), Removal(2, "")};
    Prepared p = PrepareAll(c, changes);
    ASSERT_EQ(p.requests.size(), 1u);
    EXPECT_EQ(p.requests[0].http.method, "DELETE");
    EXPECT_EQ(p.requests[0].http.url,
              std::string("https://us6.api.mailchimp.com/3.0/lists/a1b2c3/members/") + kHashB);
    EXPECT_EQ(p.requests[0].http.body, "");
    ASSERT_EQ(p.immediate.size(), 1u);
    EXPECT_EQ(p.immediate[0].second.error_code, "NO_RECORD_ID");
    // Already archived (404): where MIRROR wants it.
    Verdict v = c.Interpret(p.requests[0], changes, Answer(404, "{\"title\":\"Resource Not Found\"}"));
    ASSERT_EQ(v.rows.size(), 1u);
    EXPECT_TRUE(v.rows[0].accepted);
    v = c.Interpret(p.requests[0], changes, Answer(204, ""));
    EXPECT_TRUE(v.rows[0].accepted);
}

TEST(Mailchimp, AudienceTagsMembers) {
    MailchimpConnector c(Settings(), Target("audience", "VIP customers"));
    std::vector<Change> changes = {
        Person(1, "a@x.com"), Removal(2, kHashB),
        Write(3, "{\"email_address\": \"new@x.com\"}", Change::Op::Change, kHashB)};
    Prepared p = PrepareAll(c, changes);
    ASSERT_EQ(p.requests.size(), 3u);
    EXPECT_EQ(p.requests[0].http.url,
              std::string("https://us6.api.mailchimp.com/3.0/lists/a1b2c3/members/") + kHashA + "/tags");
    EXPECT_EQ(p.requests[0].http.body, "{\"tags\":[{\"name\":\"VIP customers\",\"status\":\"active\"}]}");
    EXPECT_EQ(p.requests[1].http.url,
              std::string("https://us6.api.mailchimp.com/3.0/lists/a1b2c3/members/") + kHashB + "/tags");
    EXPECT_EQ(p.requests[1].http.body, "{\"tags\":[{\"name\":\"VIP customers\",\"status\":\"inactive\"}]}");
    // A changed email: untag the old member, then tag the new one.
    EXPECT_EQ(p.requests[2].flow.step, MailchimpConnector::kSwap);
    Verdict v = c.Interpret(p.requests[2], changes, Answer(204, ""));
    ASSERT_EQ(v.kind, Verdict::Kind::Continue);
    ASSERT_TRUE(v.next.has_value());
    EXPECT_EQ(v.next->http.url,
              std::string("https://us6.api.mailchimp.com/3.0/lists/a1b2c3/members/") + kHashNew + "/tags");
    v = c.Interpret(*v.next, changes, Answer(204, ""));
    ASSERT_EQ(v.rows.size(), 1u);
    EXPECT_TRUE(v.rows[0].accepted);
    EXPECT_EQ(v.rows[0].dest_id, kHashNew);
    // Tagging a non-member is refused; untagging one is done.
    v = c.Interpret(p.requests[0], changes, Answer(404, "{\"title\":\"Resource Not Found\"}"));
    EXPECT_EQ(v.rows[0].error_code, "MEMBER_NOT_FOUND");
    v = c.Interpret(p.requests[1], changes, Answer(404, "{\"title\":\"Resource Not Found\"}"));
    EXPECT_TRUE(v.rows[0].accepted);
}

TEST(Mailchimp, RefusedTargets) {
    OptionList server = {{"type", "mailchimp"}, {"list_id", "a1b2c3"}};
    SyncTarget t = Target("audience", " padded ");
    EXPECT_THROW(CheckSyncTarget(server, t, "s", "mc"), Error);
    t = Target("audience", std::string(101, 'x'));
    EXPECT_THROW(CheckSyncTarget(server, t, "s", "mc"), Error);
    t = Target("audience", "VIP");
    EXPECT_NO_THROW(CheckSyncTarget(server, t, "s", "mc"));
    for (const char *mode : {"upsert", "update", "insert", "mirror"}) {
        t = Target(mode);
        EXPECT_NO_THROW(CheckSyncTarget(server, t, "s", "mc")) << mode;
    }
    EXPECT_NE(FindSpec("mailchimp"), nullptr);
}
