// The Marketo connector's requests (Sync Leads with the mode's action and
// the lookup field, at most 300 leads and never one lookup value twice a
// call, updates by kept lead ids, Delete Leads by kept ids) and how its
// HTTP 200 answers map back: per-lead status and reasons in input order,
// the request-level codes (601/602 token, 606/615 throttling, 607 daily
// quota). The whole path against the stateful mock is test_marketo.py.
#include "core/connectors/marketo/marketo.hpp"

#include "core/common/error.hpp"
#include "core/connectors/registry.hpp"

#include "test_util.hpp"

#include <gtest/gtest.h>
#include <rapidjson/document.h>

#include <string>
#include <vector>

using namespace revetl;
using revetl_test::Contains;

namespace {

DestinationSettings Settings() {
    DestinationSettings s =
        ResolveDestinationSettings({{"type", "marketo"}, {"munchkin_id", "123-ABC-456"}}, {});
    s.credentials.oauth.client_id = "id";
    s.credentials.oauth.client_secret = "client-secret";
    s.credentials.oauth.token_url = "https://123-ABC-456.mktorest.com/identity/oauth/token";
    s.credentials.oauth_token = std::make_shared<OAuthToken>();
    s.credentials.oauth_token->access_token = "access-1";
    return s;
}

SyncTarget Target(const std::string &mode = "upsert", const std::string &match_on = "email") {
    SyncTarget t;
    t.object = "leads";
    t.mode = mode;
    t.match_on = match_on;
    return t;
}

Change Lead(int64_t seq, const std::string &email, Change::Op op = Change::Op::Add,
            const std::string &dest_id = "") {
    Change c;
    c.seq = seq;
    c.op = op;
    c.key = "{\"id\": " + std::to_string(seq) + "}";
    c.payload = "{\"email\": \"" + email + "\", \"score\": 92.50}";
    c.dest_id = dest_id;
    return c;
}

std::vector<size_t> All(const std::vector<Change> &changes) {
    std::vector<size_t> rows(changes.size());
    for (size_t i = 0; i < rows.size(); i++)
        rows[i] = i;
    return rows;
}

HttpResponse Answer(const std::string &body, long status = 200) {
    HttpResponse r;
    r.status = status;
    r.body = body;
    return r;
}

std::string HeaderOf(const HttpRequest &r, const std::string &name) {
    for (const auto &h : r.headers)
        if (h.first == name)
            return h.second;
    return {};
}

std::string ErrorBody(const std::string &code) {
    return "{\"requestId\":\"a#1\",\"success\":false,\"errors\":[{\"code\":\"" + code +
           "\",\"message\":\"m " + code + "\"}]}";
}

} // namespace

TEST(Marketo, SyncLeadsRequestShapeActionAndAuth) {
    std::vector<Change> changes = {Lead(1, "a@x.com"), Lead(2, "b@x.com")};
    for (auto [mode, action] : std::vector<std::pair<std::string, std::string>>{{"upsert", "createOrUpdate"},
                                                                                {"mirror", "createOrUpdate"},
                                                                                {"update", "updateOnly"},
                                                                                {"insert", "createOnly"}}) {
        MarketoConnector m(Settings(), Target(mode));
        std::vector<std::pair<size_t, RowOutcome>> immediate;
        auto reqs = m.Prepare(BatchContext{}, changes, All(changes), immediate);
        ASSERT_EQ(reqs.size(), 1u) << mode;
        EXPECT_TRUE(immediate.empty());
        const HttpRequest &r = reqs[0].http;
        EXPECT_EQ(r.method, "POST");
        EXPECT_EQ(r.url, "https://123-ABC-456.mktorest.com/rest/v1/leads.json");
        EXPECT_EQ(HeaderOf(r, "Content-Type"), "application/json");
        EXPECT_EQ(HeaderOf(r, "Authorization"), "Bearer access-1");
        // Payloads go verbatim: numbers keep their exact text.
        EXPECT_EQ(r.body, "{\"action\":\"" + action +
                              "\",\"lookupField\":\"email\",\"input\":[{\"email\": \"a@x.com\", \"score\": "
                              "92.50},{\"email\": \"b@x.com\", \"score\": 92.50}]}")
            << mode;
    }
    // partitionName goes with create actions only.
    DestinationSettings s = Settings();
    s.server_options.emplace_back("partition", "Europe \"EU\"");
    MarketoConnector m(s, Target());
    std::vector<std::pair<size_t, RowOutcome>> immediate;
    EXPECT_TRUE(Contains(m.Prepare(BatchContext{}, changes, All(changes), immediate)[0].http.body,
                         "\"partitionName\":\"Europe \\\"EU\\\"\""));
    MarketoConnector u(s, Target("update"));
    EXPECT_FALSE(
        Contains(u.Prepare(BatchContext{}, changes, All(changes), immediate)[0].http.body, "partition"));
}

TEST(Marketo, AtMost300LeadsAndNoLookupValueTwicePerCall) {
    MarketoConnector m(Settings(), Target());
    std::vector<Change> changes;
    for (int i = 0; i < 650; i++)
        changes.push_back(Lead(i + 1, "u" + std::to_string(i) + "@x.com"));
    changes.push_back(Lead(651, "U0@X.com"));
    Change none = Lead(652, "");
    none.payload = "{\"firstName\": \"no email\"}";
    changes.push_back(none);
    std::vector<std::pair<size_t, RowOutcome>> immediate;
    auto reqs = m.Prepare(BatchContext{}, changes, All(changes), immediate);
    ASSERT_EQ(reqs.size(), 3u);
    EXPECT_EQ(reqs[0].rows.size(), 300u);
    EXPECT_EQ(reqs[1].rows.size(), 300u);
    EXPECT_EQ(reqs[2].rows.size(), 51u);
    EXPECT_EQ(reqs[2].rows.back(), 650u); // the repeated email waits for a call without it
    ASSERT_EQ(immediate.size(), 1u);
    EXPECT_EQ(immediate[0].first, 651u);
    EXPECT_EQ(immediate[0].second.error_code, "NO_MATCH_VALUE");
}

TEST(Marketo, KeptIdsUpdateByIdAndDeleteById) {
    MarketoConnector m(Settings(), Target("mirror"));
    std::vector<Change> changes = {Lead(1, "new@x.com", Change::Op::Change, "57"),
                                   Lead(2, "b@x.com", Change::Op::Remove, "58"),
                                   Lead(3, "c@x.com", Change::Op::Remove, ""), Lead(4, "d@x.com")};
    changes[1].payload.clear();
    std::vector<std::pair<size_t, RowOutcome>> immediate;
    auto reqs = m.Prepare(BatchContext{}, changes, All(changes), immediate);
    ASSERT_EQ(reqs.size(), 3u);
    EXPECT_EQ(reqs[0].rows, (std::vector<size_t>{3}));
    EXPECT_EQ(reqs[1].rows, (std::vector<size_t>{0}));
    EXPECT_EQ(reqs[1].http.body, "{\"action\":\"updateOnly\",\"lookupField\":\"id\",\"input\":[{\"id\":57,"
                                 "\"email\": \"new@x.com\", \"score\": 92.50}]}");
    EXPECT_EQ(reqs[2].http.url, "https://123-ABC-456.mktorest.com/rest/v1/leads/delete.json");
    EXPECT_EQ(reqs[2].http.body, "{\"input\":[{\"id\":58}]}");
    ASSERT_EQ(immediate.size(), 1u);
    EXPECT_EQ(immediate[0].second.error_code, "NO_RECORD_ID");
    EXPECT_TRUE(immediate[0].second.unresolvable_removal);
    EXPECT_FALSE(immediate[0].second.hint.empty());

    // A deleted lead counts as gone when Marketo no longer knows it.
    Verdict d =
        m.Interpret(reqs[2], changes,
                    Answer("{\"success\":true,\"result\":[{\"id\":58,\"status\":\"skipped\",\"reasons\":"
                           "[{\"code\":\"1004\",\"message\":\"Lead not found\"}]}]}"));
    ASSERT_EQ(d.rows.size(), 1u);
    EXPECT_TRUE(d.rows[0].accepted);

    // A kept id Marketo no longer knows: written again by the lookup field.
    Verdict v =
        m.Interpret(reqs[1], changes,
                    Answer("{\"success\":true,\"result\":[{\"status\":\"skipped\",\"reasons\":[{\"code\":"
                           "\"1004\",\"message\":\"Lead not found\"}]}]}"));
    EXPECT_EQ(v.kind, Verdict::Kind::Continue);
    ASSERT_TRUE(v.next.has_value());
    EXPECT_EQ(v.next->rows, (std::vector<size_t>{0}));
    EXPECT_TRUE(Contains(v.next->http.body, "\"action\":\"createOrUpdate\",\"lookupField\":\"email\""));

    // MODE INSERT never sends ids.
    MarketoConnector ins(Settings(), Target("insert"));
    immediate.clear();
    auto ireqs = ins.Prepare(BatchContext{}, {changes[0]}, {0}, immediate);
    EXPECT_TRUE(Contains(ireqs[0].http.body, "\"createOnly\",\"lookupField\":\"email\""));
}

TEST(Marketo, PerLeadStatusesAndReasonsInInputOrder) {
    MarketoConnector m(Settings(), Target());
    std::vector<Change> changes = {Lead(1, "a@x.com"), Lead(2, "b@x.com"), Lead(3, "c@x.com")};
    std::vector<std::pair<size_t, RowOutcome>> immediate;
    auto req = m.Prepare(BatchContext{}, changes, All(changes), immediate)[0];
    Verdict v =
        m.Interpret(req, changes,
                    Answer("{\"requestId\":\"e42b#1\",\"success\":true,\"result\":[{\"id\":50,\"status\":"
                           "\"created\"},{\"id\":51,\"status\":\"updated\"},{\"status\":\"skipped\","
                           "\"reasons\":[{\"code\":\"1006\",\"message\":\"Field 'x' not found\"}]}]}"));
    EXPECT_EQ(v.kind, Verdict::Kind::Done);
    ASSERT_EQ(v.rows.size(), 3u);
    EXPECT_TRUE(v.rows[0].accepted);
    EXPECT_EQ(v.rows[0].dest_id, "50");
    EXPECT_EQ(v.rows[1].dest_id, "51");
    EXPECT_FALSE(v.rows[2].accepted);
    EXPECT_EQ(v.rows[2].error_code, "1006");
    EXPECT_EQ(v.rows[2].reason, "Field 'x' not found");
    // Fewer results than leads: the rest are not taken as written.
    Verdict short_answer = m.Interpret(req, changes,
                                       Answer("{\"success\":true,\"result\":[{\"id\":5,\"status\":"
                                              "\"created\"}]}"));
    EXPECT_EQ(short_answer.rows[2].error_code, "NO_RESULT");
}

TEST(Marketo, RequestLevelCodesInHttp200) {
    DestinationSettings s = Settings();
    s.rate_limit.period_ms = 20000;
    MarketoConnector m(s, Target());
    std::vector<Change> changes = {Lead(1, "a@x.com"), Lead(2, "b@x.com")};
    std::vector<std::pair<size_t, RowOutcome>> immediate;
    auto req = m.Prepare(BatchContext{}, changes, All(changes), immediate)[0];
    EXPECT_EQ(m.Interpret(req, changes, Answer(ErrorBody("601"))).kind, Verdict::Kind::AuthExpired);
    EXPECT_EQ(m.Interpret(req, changes, Answer(ErrorBody("602"))).kind, Verdict::Kind::AuthExpired);
    Verdict rate = m.Interpret(req, changes, Answer(ErrorBody("606")));
    EXPECT_EQ(rate.kind, Verdict::Kind::Throttled);
    EXPECT_EQ(rate.wait_ms, 20000);
    Verdict concurrent = m.Interpret(req, changes, Answer(ErrorBody("615")));
    EXPECT_EQ(concurrent.kind, Verdict::Kind::Throttled);
    EXPECT_GT(concurrent.wait_ms, 0);
    Verdict quota = m.Interpret(req, changes, Answer(ErrorBody("607")));
    EXPECT_EQ(quota.kind, Verdict::Kind::Fatal);
    EXPECT_TRUE(Contains(quota.error, "daily API quota"));
    EXPECT_FALSE(Contains(quota.error, "client-secret"));
    EXPECT_EQ(m.Interpret(req, changes, Answer(ErrorBody("604"))).kind, Verdict::Kind::Retry);
    Verdict bad = m.Interpret(req, changes, Answer(ErrorBody("1003")));
    EXPECT_EQ(bad.kind, Verdict::Kind::Done);
    ASSERT_EQ(bad.rows.size(), 2u);
    EXPECT_EQ(bad.rows[0].error_code, "1003");
    // Real HTTP errors: 502 retried, 413 split, 401 credentials.
    EXPECT_EQ(m.Interpret(req, changes, Answer("", 502)).kind, Verdict::Kind::Retry);
    EXPECT_EQ(m.Interpret(req, changes, Answer("", 413)).kind, Verdict::Kind::Split);
    EXPECT_EQ(m.Interpret(req, changes, Answer("", 401)).kind, Verdict::Kind::AuthExpired);
    EXPECT_EQ(m.Interpret(req, changes, Answer("", 429)).kind, Verdict::Kind::Throttled);
}

TEST(Marketo, SpecMunchkinIdModesAndLookupFields) {
    OptionList server = {{"type", "marketo"}, {"munchkin_id", "123-ABC-456"}};
    DestinationSettings s = ResolveDestinationSettings(server, {});
    EXPECT_EQ(s.url, "https://123-ABC-456.mktorest.com");
    EXPECT_EQ(s.batch_size, 300);
    EXPECT_EQ(s.rate_limit.count, 100);
    EXPECT_EQ(s.rate_limit.period_ms, 20000);
    EXPECT_LE(s.max_in_flight, 10);
    for (const char *bad : {"acme.evil.com", "a/b", "-x", "a b"})
        EXPECT_THROW(ValidateServer({{"type", "marketo"}, {"munchkin_id", bad}}), Error) << bad;
    EXPECT_THROW(ValidateServer({{"type", "marketo"}}), Error);
    EXPECT_THROW(ValidateServer({{"type", "marketo"}, {"munchkin_id", "1"}, {"max_in_flight", "11"}}), Error);
    for (const char *mode : {"upsert", "update", "insert", "mirror"}) {
        SyncTarget t = Target(mode, "");
        t.object = "";
        EXPECT_NO_THROW(CheckSyncTarget(server, t, "s", "mk")) << mode;
        EXPECT_EQ(t.object, "leads");
        if (std::string(mode) != "insert") { // MODE INSERT needs no MATCH ON
            EXPECT_EQ(t.match_on, "email");
        }
    }
    SyncTarget by_id = Target("upsert", "id");
    EXPECT_THROW(CheckSyncTarget(server, by_id, "s", "mk"), Error);
    SyncTarget update_by_id = Target("update", "id");
    EXPECT_NO_THROW(CheckSyncTarget(server, update_by_id, "s", "mk"));
    SyncTarget bad_field = Target("upsert", "email;x");
    EXPECT_THROW(CheckSyncTarget(server, bad_field, "s", "mk"), Error);
    SyncTarget lists = Target("upsert", "email");
    lists.object = "lists";
    EXPECT_THROW(CheckSyncTarget(server, lists, "s", "mk"), Error);
}

// MODE AUDIENCE '<static list id>': added rows are looked up (or created) by
// the lookup field alone, then their lead ids join the list; removed rows
// leave by the kept lead id; a changed lookup value leaves, then joins.
namespace {

SyncTarget ListTarget(const std::string &list = "1234") {
    SyncTarget t = Target("audience");
    t.audience = list;
    return t;
}

std::vector<std::string> BodyIds(const std::string &body) {
    rapidjson::Document d;
    d.Parse(body.c_str());
    std::vector<std::string> ids;
    for (const auto &e : d["input"].GetArray())
        ids.push_back(std::to_string(e["id"].GetInt64()));
    return ids;
}

} // namespace

TEST(MarketoAudience, AddsFindLeadsByLookupFieldThenAddTheirIds) {
    MarketoConnector m(Settings(), ListTarget());
    std::vector<Change> changes;
    for (int i = 1; i <= 301; i++)
        changes.push_back(Lead(i, "u" + std::to_string(i) + "@x.com"));
    changes.push_back(Lead(302, "U1@X.com")); // the same lookup value: another call
    std::vector<std::pair<size_t, RowOutcome>> immediate;
    auto reqs = m.Prepare(BatchContext{}, changes, All(changes), immediate);
    EXPECT_TRUE(immediate.empty());
    ASSERT_EQ(reqs.size(), 2u);
    EXPECT_EQ(reqs[0].rows.size(), 300u);
    EXPECT_EQ(reqs[1].rows.size(), 2u);
    EXPECT_EQ(reqs[0].flow.step, MarketoConnector::kLeadLookup);
    EXPECT_EQ(reqs[0].http.method, "POST");
    EXPECT_TRUE(Contains(reqs[0].http.url, "/rest/v1/leads.json"));
    rapidjson::Document d;
    d.Parse(reqs[0].http.body.c_str());
    EXPECT_STREQ(d["action"].GetString(), "createOrUpdate");
    EXPECT_STREQ(d["lookupField"].GetString(), "email");
    // Membership only: the lookup field alone, not the other mapped fields.
    ASSERT_EQ(d["input"][0].MemberCount(), 1u);
    EXPECT_STREQ(d["input"][0]["email"].GetString(), "u1@x.com");

    // Found, created and skipped leads: the first two go on to the list.
    std::vector<Change> three = {Lead(1, "a@x.com"), Lead(2, "bad"), Lead(3, "c@x.com")};
    auto lookup = m.Prepare(BatchContext{}, three, All(three), immediate)[0];
    Verdict v = m.Interpret(lookup, three,
                            Answer("{\"success\":true,\"result\":[{\"id\":50,\"status\":\"updated\"},"
                                   "{\"status\":\"skipped\",\"reasons\":[{\"code\":\"1003\",\"message\":"
                                   "\"Invalid email\"}]},{\"id\":51,\"status\":\"created\"}]}"));
    ASSERT_EQ(v.kind, Verdict::Kind::Continue);
    ASSERT_EQ(v.rows.size(), 3u);
    EXPECT_FALSE(v.rows[1].accepted);
    EXPECT_EQ(v.rows[1].error_code, "1003");
    EXPECT_EQ(v.rows[1].reason, "Invalid email");
    ASSERT_TRUE(v.next.has_value());
    const PreparedRequest add = *v.next;
    EXPECT_EQ(add.flow.step, MarketoConnector::kListAdd);
    EXPECT_EQ(add.http.method, "POST");
    EXPECT_EQ(add.rows, (std::vector<size_t>{0, 2}));
    EXPECT_TRUE(Contains(add.http.url, "/rest/v1/lists/1234/leads.json?id=50&id=51"));
    EXPECT_EQ(BodyIds(add.http.body), (std::vector<std::string>{"50", "51"}));
    EXPECT_EQ(HeaderOf(add.http, "Authorization"), "Bearer access-1");

    // The list's answer names leads by id: added rows keep their lead id.
    Verdict added = m.Interpret(add, three,
                                Answer("{\"success\":true,\"result\":[{\"id\":51,\"status\":\"skipped\","
                                       "\"reasons\":[{\"code\":\"1004\",\"message\":\"Lead not found\"}]},"
                                       "{\"id\":50,\"status\":\"added\"}]}"));
    EXPECT_EQ(added.kind, Verdict::Kind::Done);
    ASSERT_EQ(added.rows.size(), 2u);
    EXPECT_TRUE(added.rows[0].accepted);
    EXPECT_EQ(added.rows[0].dest_id, "50");
    EXPECT_FALSE(added.rows[1].accepted);
    EXPECT_EQ(added.rows[1].error_code, "1004");
    EXPECT_EQ(added.rows[1].reason, "Lead not found");
}

TEST(MarketoAudience, RemovalsByKeptIdAndChangedLookupValues) {
    MarketoConnector m(Settings(), ListTarget());
    std::vector<Change> changes = {
        Lead(1, "a@x.com", Change::Op::Remove, "70"), Lead(2, "b@x.com", Change::Op::Remove, ""),
        Lead(3, "new@x.com", Change::Op::Change, "72"), Lead(4, "d@x.com", Change::Op::Remove, "7x")};
    std::vector<std::pair<size_t, RowOutcome>> immediate;
    auto reqs = m.Prepare(BatchContext{}, changes, All(changes), immediate);
    // No lead id was ever learned for row 2: unresolvable, once.
    ASSERT_EQ(immediate.size(), 2u);
    EXPECT_EQ(immediate[0].first, 1u);
    EXPECT_EQ(immediate[0].second.error_code, "NO_RECORD_ID");
    EXPECT_TRUE(immediate[0].second.unresolvable_removal);
    EXPECT_EQ(immediate[1].first, 3u);
    ASSERT_EQ(reqs.size(), 2u);
    EXPECT_EQ(reqs[0].flow.step, MarketoConnector::kListRemove);
    EXPECT_EQ(reqs[0].http.method, "DELETE");
    EXPECT_TRUE(Contains(reqs[0].http.url, "/rest/v1/lists/1234/leads.json?id=70"));
    EXPECT_EQ(BodyIds(reqs[0].http.body), (std::vector<std::string>{"70"}));
    // Not in the list (1015) or no such lead (1004): already out.
    for (const char *code : {"1015", "1004"}) {
        Verdict v = m.Interpret(reqs[0], changes,
                                Answer(std::string("{\"success\":true,\"result\":[{\"id\":70,\"status\":"
                                                   "\"skipped\",\"reasons\":[{\"code\":\"") +
                                       code + "\",\"message\":\"m\"}]}]}"));
        ASSERT_EQ(v.rows.size(), 1u);
        EXPECT_TRUE(v.rows[0].accepted) << code;
        EXPECT_EQ(v.rows[0].dest_id, "");
    }
    // The changed lookup value: the old lead leaves, then the new one is
    // found and added.
    const PreparedRequest swap = reqs[1];
    EXPECT_EQ(swap.flow.step, MarketoConnector::kListSwap);
    EXPECT_EQ(swap.http.method, "DELETE");
    EXPECT_EQ(BodyIds(swap.http.body), (std::vector<std::string>{"72"}));
    Verdict left = m.Interpret(swap, changes,
                               Answer("{\"success\":true,\"result\":[{\"id\":72,\"status\":\"removed\"}]}"));
    ASSERT_EQ(left.kind, Verdict::Kind::Continue);
    ASSERT_TRUE(left.next.has_value());
    EXPECT_EQ(left.next->flow.step, MarketoConnector::kLeadLookup);
    EXPECT_EQ(left.next->rows, (std::vector<size_t>{2}));
    EXPECT_TRUE(Contains(left.next->http.body, "new@x.com"));
}

TEST(MarketoAudience, LimitsAndTokenErrorsApplyToListCalls) {
    DestinationSettings s = Settings();
    s.rate_limit.period_ms = 20000;
    MarketoConnector m(s, ListTarget());
    std::vector<Change> changes = {Lead(1, "a@x.com", Change::Op::Remove, "70")};
    std::vector<std::pair<size_t, RowOutcome>> immediate;
    auto req = m.Prepare(BatchContext{}, changes, All(changes), immediate)[0];
    EXPECT_EQ(m.Interpret(req, changes, Answer(ErrorBody("602"))).kind, Verdict::Kind::AuthExpired);
    EXPECT_EQ(m.Interpret(req, changes, Answer(ErrorBody("606"))).kind, Verdict::Kind::Throttled);
    EXPECT_EQ(m.Interpret(req, changes, Answer(ErrorBody("607"))).kind, Verdict::Kind::Fatal);
    // A list Marketo does not have refuses the call's rows with its code.
    Verdict missing = m.Interpret(req, changes, Answer(ErrorBody("1013")));
    ASSERT_EQ(missing.rows.size(), 1u);
    EXPECT_EQ(missing.rows[0].error_code, "1013");
}

TEST(MarketoAudience, SpecChecksTheListIdAndLookupField) {
    OptionList server = {{"type", "marketo"}, {"munchkin_id", "123-ABC-456"}};
    SyncTarget ok = ListTarget("1234");
    ok.match_on = "";
    EXPECT_NO_THROW(CheckSyncTarget(server, ok, "s", "mk"));
    EXPECT_EQ(ok.match_on, "email");
    for (const char *bad : {"vip", "0", "12a", ""}) {
        SyncTarget t = ListTarget(bad);
        EXPECT_THROW(CheckSyncTarget(server, t, "s", "mk"), Error) << bad;
    }
    SyncTarget by_id = ListTarget();
    by_id.match_on = "id";
    EXPECT_THROW(CheckSyncTarget(server, by_id, "s", "mk"), Error);
    EXPECT_TRUE(Contains(DestinationTypesJson(), "\"audience\":\"Marketo static list id\""));
}
