// The Intercom connector's requests (search, then update by id or create;
// updates by the kept id; archive or delete for removals; companies through
// Intercom's own upsert), the Intercom-Version header, and how Intercom's
// answers map to rows: error lists with code and message, 409 conflicts, a
// kept id Intercom no longer knows, 429 with X-RateLimit-Reset, and answers
// about the connection. The whole path against the stateful mock is in
// test_intercom.py.
#include "core/connectors/intercom/intercom.hpp"

#include "core/common/error.hpp"
#include "core/connectors/registry.hpp"

#include "test_util.hpp"

#include <gtest/gtest.h>
#include <rapidjson/document.h>

#include <ctime>
#include <string>
#include <vector>

using namespace revetl;

namespace {

DestinationSettings Settings(const std::string &version = "", const std::string &removal = "") {
    OptionList server = {{"type", "intercom"}};
    if (!version.empty())
        server.emplace_back("intercom_version", version);
    if (!removal.empty())
        server.emplace_back("contact_removal", removal);
    return ResolveDestinationSettings(server, {{"token", "secret-token"}});
}

SyncTarget Target(const std::string &object = "contacts", const std::string &match_on = "email",
                  const std::string &mode = "upsert") {
    SyncTarget t;
    t.object = object;
    t.match_on = match_on;
    t.mode = mode;
    return t;
}

Change Row(int64_t seq, const std::string &payload, const std::string &dest_id = "",
           Change::Op op = Change::Op::Add) {
    Change c;
    c.seq = seq;
    c.op = op;
    c.key = "{\"id\": " + std::to_string(seq) + "}";
    c.payload = payload;
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

std::vector<PreparedRequest> Prepare(IntercomConnector &c, const std::vector<Change> &changes,
                                     std::vector<std::pair<size_t, RowOutcome>> *immediate = nullptr) {
    std::vector<std::pair<size_t, RowOutcome>> ignored;
    return c.Prepare(BatchContext{}, changes, All(changes), immediate ? *immediate : ignored);
}

} // namespace

TEST(Intercom, SearchThenUpdateOrCreate) {
    IntercomConnector c(Settings(), Target());
    std::vector<Change> changes = {
        Row(1, R"({"email": "ada@x.com", "name": "Ada", "plan": "pro", "score": 92.5, "external_id": 17})")};
    auto reqs = Prepare(c, changes);
    ASSERT_EQ(reqs.size(), 1u);
    const HttpRequest &search = reqs[0].http;
    EXPECT_EQ(search.method, "POST");
    EXPECT_EQ(search.url, "https://api.intercom.io/contacts/search");
    EXPECT_EQ(search.body, R"({"query":{"field":"email","operator":"=","value":"ada@x.com"}})");
    EXPECT_EQ(HeaderOf(search, "Authorization"), "Bearer secret-token");
    EXPECT_EQ(HeaderOf(search, "Intercom-Version"), "2.16");
    EXPECT_EQ(reqs[0].rows, std::vector<size_t>{0});
    EXPECT_TRUE(reqs[0].flow.step.empty()) << "no job poll";

    // A hit of the row's role: PUT by that id, custom columns in
    // custom_attributes, a numeric external_id as text, no role forced.
    Verdict hit = c.Interpret(reqs[0], changes, Answer(200, R"({"type": "list", "total_count": 2, "data": [
        {"type": "contact", "id": "lead1", "role": "lead"}, {"type": "contact", "id": "u42", "role": "user"}]})"));
    ASSERT_EQ(hit.kind, Verdict::Kind::Continue);
    ASSERT_TRUE(hit.next);
    EXPECT_EQ(hit.next->http.method, "PUT");
    EXPECT_EQ(hit.next->http.url, "https://api.intercom.io/contacts/u42");
    EXPECT_EQ(hit.next->http.body, R"({"email":"ada@x.com","name":"Ada","external_id":"17",)"
                                   R"("custom_attributes":{"plan":"pro","score":92.5}})");
    Verdict done = c.Interpret(*hit.next, changes, Answer(200, R"({"type": "contact", "id": "u42"})"));
    ASSERT_EQ(done.kind, Verdict::Kind::Done);
    ASSERT_EQ(done.rows.size(), 1u);
    EXPECT_TRUE(done.rows[0].accepted);
    EXPECT_EQ(done.rows[0].dest_id, "u42");

    // A miss: POST /contacts with the default role.
    Verdict miss =
        c.Interpret(reqs[0], changes, Answer(200, R"({"type": "list", "total_count": 0, "data": []})"));
    ASSERT_EQ(miss.kind, Verdict::Kind::Continue);
    EXPECT_EQ(miss.next->http.method, "POST");
    EXPECT_EQ(miss.next->http.url, "https://api.intercom.io/contacts");
    EXPECT_EQ(miss.next->http.body, R"({"email":"ada@x.com","name":"Ada","external_id":"17","role":"user",)"
                                    R"("custom_attributes":{"plan":"pro","score":92.5}})");
    Verdict created = c.Interpret(*miss.next, changes, Answer(200, R"({"type": "contact", "id": "new1"})"));
    EXPECT_EQ(created.rows[0].dest_id, "new1");

    // MODE UPDATE: a miss refuses the row.
    IntercomConnector u(Settings(), Target("contacts", "email", "update"));
    Verdict nf = u.Interpret(reqs[0], changes, Answer(200, R"({"type": "list", "data": []})"));
    ASSERT_EQ(nf.kind, Verdict::Kind::Done);
    EXPECT_EQ(nf.rows[0].error_code, "NOT_FOUND");
    // MODE INSERT: a create without a search.
    IntercomConnector ins(Settings(), Target("contacts", "email", "insert"));
    EXPECT_EQ(Prepare(ins, changes)[0].http.url, "https://api.intercom.io/contacts");
}

TEST(Intercom, KeptIdUpdatesTheSameRecordEvenWhenTheMatchValueChanged) {
    IntercomConnector c(Settings("2.14"), Target("contacts", "external_id"));
    std::vector<Change> changes = {Row(1, R"({"external_id": "e1", "email": "new@x.com",
                                             "signed_up_at": "2024-05-01T12:00:00+00:00"})",
                                       "abc123", Change::Op::Change)};
    auto reqs = Prepare(c, changes);
    ASSERT_EQ(reqs.size(), 1u);
    EXPECT_EQ(reqs[0].http.method, "PUT");
    EXPECT_EQ(reqs[0].http.url, "https://api.intercom.io/contacts/abc123");
    EXPECT_EQ(HeaderOf(reqs[0].http, "Intercom-Version"), "2.14");
    // Dates become unix seconds.
    EXPECT_EQ(reqs[0].http.body, R"({"external_id":"e1","email":"new@x.com","signed_up_at":1714564800})");
    // Intercom no longer knows the id: the row is searched for again.
    Verdict gone = c.Interpret(
        reqs[0], changes,
        Answer(404,
               R"({"type": "error.list", "errors": [{"code": "not_found", "message": "User Not Found"}]})"));
    ASSERT_EQ(gone.kind, Verdict::Kind::Continue);
    EXPECT_EQ(gone.next->http.url, "https://api.intercom.io/contacts/search");
    EXPECT_NE(gone.next->http.body.find(R"("field":"external_id")"), std::string::npos);
}

TEST(Intercom, RemovalsArchiveOrDeleteByKeptId) {
    std::vector<Change> changes = {Row(1, "", "abc", Change::Op::Remove), Row(2, "", "", Change::Op::Remove)};
    IntercomConnector archive(Settings(), Target("contacts", "email", "mirror"));
    std::vector<std::pair<size_t, RowOutcome>> immediate;
    auto reqs = Prepare(archive, changes, &immediate);
    ASSERT_EQ(reqs.size(), 1u);
    EXPECT_EQ(reqs[0].http.method, "POST");
    EXPECT_EQ(reqs[0].http.url, "https://api.intercom.io/contacts/abc/archive");
    ASSERT_EQ(immediate.size(), 1u);
    EXPECT_EQ(immediate[0].second.error_code, "NO_RECORD_ID");
    // No id was ever learned: final, reported once with a hint.
    EXPECT_TRUE(immediate[0].second.unresolvable_removal);
    EXPECT_NE(immediate[0].second.hint.find("remove it there by hand"), std::string::npos);
    // A stored id that is not an Intercom id is refused as before, not forgotten.
    std::vector<Change> odd = {Row(3, "", "../x", Change::Op::Remove)};
    std::vector<std::pair<size_t, RowOutcome>> odd_immediate;
    EXPECT_TRUE(Prepare(archive, odd, &odd_immediate).empty());
    ASSERT_EQ(odd_immediate.size(), 1u);
    // An id Intercom never gives: reported once as unusable, then forgotten.
    EXPECT_EQ(odd_immediate[0].second.error_code, "INVALID_RECORD_ID");
    EXPECT_TRUE(odd_immediate[0].second.unresolvable_removal);
    EXPECT_NE(odd_immediate[0].second.reason.find("is not one Intercom gives"), std::string::npos);
    IntercomConnector del(Settings("", "delete"), Target("contacts", "email", "mirror"));
    EXPECT_EQ(Prepare(del, changes)[0].http.method, "DELETE");
    EXPECT_EQ(Prepare(del, changes)[0].http.url, "https://api.intercom.io/contacts/abc");
    // Already gone: nothing left to remove.
    Verdict v = del.Interpret(Prepare(del, changes)[0], changes, Answer(404, R"({"type": "error.list",
        "errors": [{"code": "not_found", "message": "User Not Found"}]})"));
    ASSERT_EQ(v.kind, Verdict::Kind::Done);
    EXPECT_TRUE(v.rows[0].accepted);
    // A hostile id never reaches a path.
    std::vector<Change> hostile = {Row(3, "", "../../me", Change::Op::Remove)};
    immediate.clear();
    EXPECT_TRUE(Prepare(del, hostile, &immediate).empty());
    EXPECT_EQ(immediate.size(), 1u);
}

TEST(Intercom, CompaniesUpsertOnCompanyId) {
    IntercomConnector c(Settings(), Target("companies", "company_id", "mirror"));
    std::vector<Change> changes = {Row(1, R"({"company_id": 7, "name": "Acme", "size": 40, "tier": "gold"})"),
                                   Row(2, R"({"company_id": "8", "name": "Beta"})", "c8"),
                                   Row(3, "", "c9", Change::Op::Remove)};
    auto reqs = Prepare(c, changes);
    ASSERT_EQ(reqs.size(), 3u);
    EXPECT_EQ(reqs[0].http.method, "POST");
    EXPECT_EQ(reqs[0].http.url, "https://api.intercom.io/companies");
    EXPECT_EQ(reqs[0].http.body,
              R"({"company_id":"7","name":"Acme","size":40,"custom_attributes":{"tier":"gold"}})");
    // By the kept id, without company_id (which cannot change).
    EXPECT_EQ(reqs[1].http.method, "PUT");
    EXPECT_EQ(reqs[1].http.url, "https://api.intercom.io/companies/c8");
    EXPECT_EQ(reqs[1].http.body, R"({"name":"Beta"})");
    EXPECT_EQ(reqs[2].http.method, "DELETE");
    EXPECT_EQ(reqs[2].http.url, "https://api.intercom.io/companies/c9");
    // The kept id is gone: Intercom's upsert by company_id.
    Verdict gone = c.Interpret(reqs[1], changes, Answer(404, R"({"type": "error.list", "errors": [
        {"code": "company_not_found", "message": "Company Not Found"}]})"));
    ASSERT_EQ(gone.kind, Verdict::Kind::Continue);
    EXPECT_EQ(gone.next->http.method, "POST");
    EXPECT_EQ(gone.next->http.url, "https://api.intercom.io/companies");
    EXPECT_EQ(gone.next->http.body, R"({"company_id":"8","name":"Beta"})");
}

TEST(Intercom, ErrorListsAndConflicts) {
    IntercomConnector c(Settings(), Target());
    std::vector<Change> changes = {Row(1, R"({"email": "bad", "name": "B"})")};
    PreparedRequest create =
        *c.Interpret(Prepare(c, changes)[0], changes, Answer(200, R"({"data": []})")).next;
    Verdict bad = c.Interpret(create, changes, Answer(400, R"({"type": "error.list", "request_id": "r-1",
        "errors": [{"code": "parameter_invalid", "message": "Email address is invalid", "field": "email"}]})"));
    ASSERT_EQ(bad.kind, Verdict::Kind::Done);
    EXPECT_FALSE(bad.rows[0].accepted);
    EXPECT_EQ(bad.rows[0].http_status, 400);
    EXPECT_EQ(bad.rows[0].error_code, "parameter_invalid");
    EXPECT_EQ(bad.rows[0].reason, "email: Email address is invalid [request_id r-1]");
    // 409: the search had not seen the contact yet; the one named is updated.
    Verdict conflict = c.Interpret(create, changes, Answer(409, R"({"type": "error.list", "errors": [{"code":
        "conflict", "message": "A contact matching those details already exists with id=5da6e1f0"}]})"));
    ASSERT_EQ(conflict.kind, Verdict::Kind::Continue);
    EXPECT_EQ(conflict.next->http.method, "PUT");
    EXPECT_EQ(conflict.next->http.url, "https://api.intercom.io/contacts/5da6e1f0");
    // ... and a conflict on that update is the row's refusal, not a loop.
    Verdict again = c.Interpret(*conflict.next, changes, Answer(409, R"({"type": "error.list", "errors": [
        {"code": "conflict", "message": "A contact matching those details already exists with id=zz"}]})"));
    ASSERT_EQ(again.kind, Verdict::Kind::Done);
    EXPECT_EQ(again.rows[0].error_code, "conflict");
    // An update by an id found a moment ago that is gone: refused.
    Verdict gone = c.Interpret(*conflict.next, changes, Answer(404, R"({"type": "error.list", "errors": [
        {"code": "not_found", "message": "User Not Found"}]})"));
    ASSERT_EQ(gone.kind, Verdict::Kind::Done);
    EXPECT_EQ(gone.rows[0].error_code, "not_found");
}

TEST(Intercom, ThrottlingAndConnectionAnswers) {
    IntercomConnector c(Settings(), Target());
    std::vector<Change> changes = {Row(1, R"({"email": "a@x.com"})")};
    PreparedRequest search = Prepare(c, changes)[0];
    std::string reset = std::to_string(static_cast<long>(std::time(nullptr)) + 5);
    Verdict t = c.Interpret(search, changes,
                            Answer(429, R"({"type": "error.list", "errors": [{"code":
        "rate_limit_exceeded", "message": "Exceeded rate limit of 167 in 10_seconds"}]})",
                                   {{"x-ratelimit-reset", reset}, {"x-ratelimit-remaining", "0"}}));
    ASSERT_EQ(t.kind, Verdict::Kind::Throttled);
    EXPECT_GE(t.wait_ms, 3000);
    EXPECT_LE(t.wait_ms, 5000);
    EXPECT_NE(t.error.find("Exceeded rate limit of 167"), std::string::npos);
    EXPECT_EQ(c.Interpret(search, changes, Answer(429, "{}")).wait_ms, 10000);

    Verdict unauthorized = c.Interpret(search, changes, Answer(401, R"({"type": "error.list", "errors": [
        {"code": "unauthorized", "message": "Access Token Invalid"}]})"));
    EXPECT_EQ(unauthorized.kind, Verdict::Kind::AuthExpired);
    EXPECT_NE(unauthorized.error.find("refused the credentials"), std::string::npos);
    EXPECT_NE(unauthorized.error.find("Access Token Invalid"), std::string::npos);
    EXPECT_EQ(unauthorized.error.find("secret-token"), std::string::npos);
    EXPECT_EQ(c.Interpret(search, changes, Answer(403, "{}")).kind, Verdict::Kind::Fatal);
    // A 404 of the search URL: nothing is there (a wrong url).
    Verdict nowhere = c.Interpret(search, changes, Answer(404, "<html>"));
    EXPECT_EQ(nowhere.kind, Verdict::Kind::Fatal);
    EXPECT_NE(nowhere.error.find("check the server's url"), std::string::npos);
    EXPECT_EQ(c.Interpret(search, changes, Answer(503, "")).kind, Verdict::Kind::Retry);
    EXPECT_EQ(c.Interpret(search, changes, Answer(0, "")).kind, Verdict::Kind::Retry);
}

TEST(Intercom, SpecModesMatchOnAndOptions) {
    OptionList server = {{"type", "intercom"}};
    DestinationSettings s = ResolveDestinationSettings(server, {{"token", "t"}});
    EXPECT_EQ(s.url, "https://api.intercom.io");
    EXPECT_EQ(s.rate_limit.count, 166);
    EXPECT_EQ(s.rate_limit.period_ms, 10000);
    EXPECT_THROW(ValidateServer({{"type", "intercom"}, {"intercom_version", "3.0"}}), Error);
    EXPECT_THROW(ValidateServer({{"type", "intercom"}, {"contact_role", "admin"}}), Error);
    EXPECT_NO_THROW(ValidateServer({{"type", "intercom"}, {"url", "https://api.eu.intercom.io"}}));

    SyncTarget phone = Target("contacts", "phone");
    EXPECT_THROW(CheckSyncTarget(server, phone, "s", "ic"), Error);
    SyncTarget ext = Target("contacts", "external_id", "mirror");
    EXPECT_NO_THROW(CheckSyncTarget(server, ext, "s", "ic"));
    SyncTarget company_update = Target("companies", "company_id", "update");
    EXPECT_THROW(CheckSyncTarget(server, company_update, "s", "ic"), Error);
    SyncTarget company_email = Target("companies", "email");
    EXPECT_THROW(CheckSyncTarget(server, company_email, "s", "ic"), Error);
    SyncTarget tickets = Target("tickets", "email");
    EXPECT_THROW(CheckSyncTarget(server, tickets, "s", "ic"), Error);
    SyncTarget deflt;
    deflt.mode = "upsert";
    CheckSyncTarget(server, deflt, "s", "ic");
    EXPECT_EQ(deflt.object, "contacts");
    EXPECT_EQ(deflt.match_on, "email");
    // Basic credentials are not Intercom's.
    DestinationSettings basic = ResolveDestinationSettings(server, {{"user", "u"}, {"password", "p"}});
    EXPECT_THROW(MakeConnector(basic, Target()), Error);
}
