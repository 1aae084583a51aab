// The generic HTTP destination: its declared options, path templates, body
// shapes, status rules and per-record errors.
#include "core/connectors/http/http.hpp"

#include "core/common/error.hpp"
#include "core/connectors/registry.hpp"

#include "test_util.hpp"

#include <gtest/gtest.h>
#include <rapidjson/document.h>

#include <string>
#include <vector>

using namespace revetl;
using revetl_test::Contains;
using revetl_test::NotContains;

namespace {

template <typename F>
Error Catch(F &&f) {
    try {
        f();
    } catch (const Error &e) {
        return e;
    }
    ADD_FAILURE() << "expected revetl::Error";
    return Error("00000", "");
}

OptionList Server(OptionList extra = {}) {
    OptionList o = {{"type", "http"}, {"url", "https://api.example.com"}};
    for (auto &e : extra)
        o.push_back(e);
    return o;
}

HttpConnector Make(OptionList extra = {}, const std::string &mode = "upsert", OptionList user_mapping = {}) {
    DestinationSettings s = ResolveDestinationSettings(Server(std::move(extra)), user_mapping);
    SyncTarget t;
    t.mode = mode;
    return HttpConnector(s, t);
}

Change Row(int64_t seq, Change::Op op, const std::string &key, const std::string &payload = "") {
    Change c;
    c.seq = seq;
    c.op = op;
    c.key = key;
    c.payload = payload;
    return c;
}

std::vector<Change> Rows() {
    return {Row(1, Change::Op::Add, R"({"id": 1})", R"({"email": "a@x.com", "amount": 92.50})"),
            Row(2, Change::Op::Change, R"({"id": 2})", R"({"email": "b@x.com"})"),
            Row(3, Change::Op::Add, R"({"id": 3})", R"({"email": "c@x.com"})"),
            Row(4, Change::Op::Remove, R"({"id": "a b/c"})")};
}

struct Prepared {
    std::vector<PreparedRequest> requests;
    std::vector<std::pair<size_t, RowOutcome>> immediate;
};

Prepared Prepare(HttpConnector &c, const std::vector<Change> &changes, std::vector<size_t> rows) {
    Prepared p;
    p.requests = c.Prepare(BatchContext{}, changes, rows, p.immediate);
    return p;
}

HttpResponse Response(long status, const std::string &body = "",
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
    return "<none>";
}

} // namespace

TEST(HttpSpec, IsRegisteredWithItsOptions) {
    const ConnectorSpec *spec = FindSpec("http");
    ASSERT_NE(spec, nullptr);
    for (const char *name : {"add_method", "add_path", "change_method", "change_path", "remove_method",
                             "remove_path", "body", "body_key", "records_per_request", "success_statuses",
                             "retry_statuses", "errors_pointer", "api_key_header", "api_key_param"})
        EXPECT_NE(spec->ServerOption(name), nullptr) << name;
    EXPECT_EQ(spec->ServerOption("method"), nullptr);
    EXPECT_TRUE(spec->AcceptsAuth(AuthKind::ApiKeyQuery));
}

TEST(HttpSpec, ServerOptionsAreChecked) {
    EXPECT_NO_THROW(ValidateServer(Server({{"add_path", "/v1/users/{id}"}, {"body", "record"}})));
    for (const char *bad : {"users", "@evil.example.com/x", "/a b", "/{id", "/{}", "/{a-b}"}) {
        SCOPED_TRACE(bad);
        Error e = Catch([&] { ValidateServer(Server({{"add_path", bad}})); });
        EXPECT_EQ(e.sqlstate(), "HV024");
        EXPECT_TRUE(Contains(e.what(), "invalid value for option \"add_path\""));
    }
    Error e = Catch([] { ValidateServer(Server({{"body", "xml"}})); });
    EXPECT_STREQ(e.what(), "invalid value for option \"body\": \"xml\"");
    e = Catch([] { ValidateServer(Server({{"success_statuses", "200-299,99"}})); });
    EXPECT_TRUE(Contains(e.what(), "success_statuses"));
    e = Catch([] { ValidateServer(Server({{"errors_pointer", "errors"}})); });
    EXPECT_STREQ(e.what(), "invalid value for option \"errors_pointer\"");
    e = Catch([] { ValidateServer(Server({{"remove_method", "DELETE"}})); });
    EXPECT_STREQ(e.what(), "remove_method 'DELETE' needs body 'record'");
    // Webhook's method is not an http option: the spec says which type has it.
    e = Catch([] { ValidateServer(Server({{"method", "PUT"}})); });
    EXPECT_STREQ(e.what(), "invalid option \"method\" for a revetl server of type \"http\"");
}

TEST(HttpSpec, MirrorNeedsARemoveOperation) {
    SyncTarget t;
    t.mode = "mirror";
    Error e = Catch([&] { CheckSyncTarget(Server(), t, "s1", "api"); });
    EXPECT_EQ(e.sqlstate(), "0A000");
    EXPECT_STREQ(e.what(), "sync \"s1\" cannot use mode mirror with server \"api\" (type http)");
    EXPECT_TRUE(Contains(e.hint(), "remove_method"));
    EXPECT_NO_THROW(CheckSyncTarget(Server({{"remove_method", "POST"}, {"remove_path", "/v1/deletions"}}), t,
                                    "s1", "api"));
}

TEST(HttpStatusSet, Parses) {
    StatusSet s = ParseStatusSet("x", "200-299,304,409");
    EXPECT_TRUE(s.Contains(200));
    EXPECT_TRUE(s.Contains(299));
    EXPECT_TRUE(s.Contains(304));
    EXPECT_TRUE(s.Contains(409));
    EXPECT_FALSE(s.Contains(300));
    for (const char *bad : {"", "abc", "200-", "300-200", "99", "600", "200,,201", "2 00"})
        EXPECT_THROW(ParseStatusSet("x", bad), Error) << bad;
}

TEST(HttpPathTemplate, KeyValuesAreUrlEncoded) {
    EXPECT_EQ(ExpandPathTemplate("/users/{id}", R"({"id": 42})"), "/users/42");
    EXPECT_EQ(ExpandPathTemplate("/u/{org}/{id}?x=1", R"({"id": "a b/c?d", "org": "ö"})"),
              "/u/%C3%B6/a%20b%2Fc%3Fd?x=1");
    EXPECT_EQ(ExpandPathTemplate("/n/{id}", R"({"id": 1234567890123456.7891})"), "/n/1234567890123456.7891");
    Error e = Catch([] { ExpandPathTemplate("/users/{uid}", R"({"id": 1})"); });
    EXPECT_TRUE(Contains(e.what(), "{uid}"));
}

TEST(HttpPrepare, ArrayBodiesInRequestsOfAtMostRecordsPerRequest) {
    HttpConnector c =
        Make({{"add_path", "/v1/import"}, {"records_per_request", "2"}, {"change_method", "PATCH"}});
    auto changes = Rows();
    auto p = Prepare(c, changes, {0, 2, 1, 3});
    // Added rows 0 and 2 share POST /v1/import; the change is a PATCH; the
    // removal has no remove_method and is refused without being sent.
    ASSERT_EQ(p.requests.size(), 2u);
    EXPECT_EQ(p.requests[0].http.method, "POST");
    EXPECT_EQ(p.requests[0].http.url, "https://api.example.com/v1/import");
    EXPECT_EQ(p.requests[0].rows, (std::vector<size_t>{0, 2}));
    EXPECT_EQ(p.requests[0].http.body, R"([{"email": "a@x.com", "amount": 92.50},{"email": "c@x.com"}])");
    EXPECT_EQ(HeaderOf(p.requests[0].http, "Content-Type"), "application/json");
    EXPECT_EQ(p.requests[1].http.method, "PATCH");
    EXPECT_EQ(p.requests[1].rows, (std::vector<size_t>{1}));
    ASSERT_EQ(p.immediate.size(), 1u);
    EXPECT_EQ(p.immediate[0].first, 3u);
    EXPECT_EQ(p.immediate[0].second.error_code, "NO_REMOVE_OPERATION");

    HttpConnector two = Make({{"records_per_request", "2"}});
    p = Prepare(two, changes, {0, 1, 2});
    ASSERT_EQ(p.requests.size(), 2u); // add, change (POST too), add: 2 + 1
    EXPECT_EQ(p.requests[0].rows, (std::vector<size_t>{0, 1}));
}

TEST(HttpPrepare, RemovalsNeverShareARequestWithWrites) {
    HttpConnector c =
        Make({{"add_path", "/v1/sync"}, {"remove_method", "POST"}, {"remove_path", "/v1/sync"}}, "mirror");
    auto changes = Rows();
    auto p = Prepare(c, changes, {0, 3, 2});
    ASSERT_EQ(p.requests.size(), 3u);
    EXPECT_EQ(p.requests[1].rows, (std::vector<size_t>{3}));
    EXPECT_EQ(p.requests[1].http.body, R"([{"id": "a b/c"}])"); // the key of the removed row
}

TEST(HttpPrepare, ObjectAndNdjsonBodies) {
    auto changes = Rows();
    HttpConnector obj = Make({{"body", "object"}, {"body_key", "items"}});
    auto p = Prepare(obj, changes, {0, 2});
    ASSERT_EQ(p.requests.size(), 1u);
    EXPECT_EQ(p.requests[0].http.body,
              R"({"items":[{"email": "a@x.com", "amount": 92.50},{"email": "c@x.com"}]})");
    rapidjson::Document doc;
    doc.Parse(p.requests[0].http.body.c_str());
    EXPECT_FALSE(doc.HasParseError());

    HttpConnector nd = Make({{"body", "ndjson"}});
    p = Prepare(nd, changes, {0, 2});
    EXPECT_EQ(p.requests[0].http.body,
              "{\"email\": \"a@x.com\", \"amount\": 92.50}\n{\"email\": \"c@x.com\"}\n");
    EXPECT_EQ(HeaderOf(p.requests[0].http, "Content-Type"), "application/x-ndjson");
}

TEST(HttpPrepare, RecordBodiesWithPathTemplatesAndDelete) {
    HttpConnector c = Make({{"body", "record"},
                            {"add_method", "PUT"},
                            {"add_path", "/v1/users/{id}"},
                            {"remove_method", "DELETE"}},
                           "mirror");
    auto changes = Rows();
    auto p = Prepare(c, changes, {0, 1, 3});
    ASSERT_EQ(p.requests.size(), 3u);
    EXPECT_EQ(p.requests[0].http.method, "PUT");
    EXPECT_EQ(p.requests[0].http.url, "https://api.example.com/v1/users/1");
    EXPECT_EQ(p.requests[0].http.body, R"({"email": "a@x.com", "amount": 92.50})");
    EXPECT_EQ(p.requests[1].http.url, "https://api.example.com/v1/users/2");
    EXPECT_EQ(p.requests[2].http.method, "DELETE");
    EXPECT_EQ(p.requests[2].http.url, "https://api.example.com/v1/users/a%20b%2Fc");
    EXPECT_EQ(p.requests[2].http.body, "");
    EXPECT_EQ(HeaderOf(p.requests[2].http, "Content-Type"), "<none>");
}

TEST(HttpPrepare, FormBodies) {
    HttpConnector c = Make({{"body", "form"}});
    std::vector<Change> changes = {Row(1, Change::Op::Add, R"({"id": 1})",
                                       R"({"email": "a+b@x.com", "n": 1.50, "tags": ["x"], "none": null})")};
    auto p = Prepare(c, changes, {0});
    ASSERT_EQ(p.requests.size(), 1u);
    EXPECT_EQ(p.requests[0].http.body, "email=a%2Bb%40x.com&n=1.50&tags=%5B%22x%22%5D&none=");
    EXPECT_EQ(HeaderOf(p.requests[0].http, "Content-Type"), "application/x-www-form-urlencoded");
}

TEST(HttpPrepare, UpdateModeUsesTheChangeOperation) {
    HttpConnector c = Make({{"change_method", "PATCH"}, {"change_path", "/v1/users/{id}"}}, "update");
    auto changes = Rows();
    auto p = Prepare(c, changes, {0});
    ASSERT_EQ(p.requests.size(), 1u);
    EXPECT_EQ(p.requests[0].http.method, "PATCH");
    EXPECT_EQ(p.requests[0].http.url, "https://api.example.com/v1/users/1");
}

TEST(HttpPrepare, AuthSchemesFromTheUserMapping) {
    auto changes = Rows();
    HttpConnector q =
        Make({{"api_key_param", "key"}, {"add_path", "/v1/in?src=revetl"}}, "upsert", {{"api_key", "k&1"}});
    auto p = Prepare(q, changes, {0});
    EXPECT_EQ(p.requests[0].http.url, "https://api.example.com/v1/in?src=revetl&key=k%261");
    HttpConnector h = Make({{"api_key_header", "X-Token"}}, "upsert", {{"api_key", "k1"}});
    p = Prepare(h, changes, {0});
    EXPECT_EQ(HeaderOf(p.requests[0].http, "X-Token"), "k1");
    HttpConnector b = Make({}, "upsert", {{"user", "u"}, {"password", "p"}});
    p = Prepare(b, changes, {0});
    EXPECT_EQ(HeaderOf(p.requests[0].http, "Authorization"), "Basic dTpw");
}

TEST(HttpInterpret, AnswersAboutTheConnectionFailTheRun) {
    // The shared rule applies unless the server's own status lists claim
    // the status; a 404 of a path built from the record's key is that row's.
    HttpConnector c = Make({{"success_statuses", "200-299,410"}});
    auto changes = Rows();
    auto p = Prepare(c, changes, {0, 2});
    for (long status : {401L, 403L, 301L, 404L}) {
        SCOPED_TRACE(status);
        Verdict v = c.Interpret(p.requests[0], changes, Response(status));
        EXPECT_EQ(v.kind, status == 401 ? Verdict::Kind::AuthExpired : Verdict::Kind::Fatal);
        EXPECT_TRUE(v.rows.empty());
    }
    EXPECT_EQ(c.Interpret(p.requests[0], changes, Response(410)).kind, Verdict::Kind::Done); // listed

    HttpConnector by_key = Make({{"body", "record"}, {"add_method", "PUT"}, {"add_path", "/v1/users/{id}"}});
    auto q = Prepare(by_key, changes, {0});
    Verdict v = by_key.Interpret(q.requests[0], changes, Response(404, "no such user"));
    EXPECT_EQ(v.kind, Verdict::Kind::Done);
    ASSERT_EQ(v.rows.size(), 1u);
    EXPECT_FALSE(v.rows[0].accepted);
    EXPECT_EQ(by_key.Interpret(q.requests[0], changes, Response(401)).kind, Verdict::Kind::AuthExpired);
}

TEST(HttpInterpret, StatusRules) {
    HttpConnector c = Make({{"success_statuses", "200-299,409"}, {"retry_statuses", "429,500-599"}});
    auto changes = Rows();
    auto p = Prepare(c, changes, {0, 2});
    const PreparedRequest &req = p.requests[0];

    Verdict v = c.Interpret(req, changes, Response(201));
    EXPECT_EQ(v.kind, Verdict::Kind::Done);
    ASSERT_EQ(v.rows.size(), 2u);
    EXPECT_TRUE(v.rows[0].accepted && v.rows[1].accepted);
    v = c.Interpret(req, changes, Response(409, "already there"));
    EXPECT_TRUE(v.rows[0].accepted); // declared a success

    v = c.Interpret(req, changes, Response(429, "", {{"retry-after", "3"}}));
    EXPECT_EQ(v.kind, Verdict::Kind::Throttled);
    EXPECT_EQ(v.wait_ms, 3000);
    v = c.Interpret(req, changes, Response(503, "down"));
    EXPECT_EQ(v.kind, Verdict::Kind::Retry);
    EXPECT_TRUE(Contains(v.error, "answered HTTP 503"));
    v = c.Interpret(req, changes, Response(0));
    EXPECT_EQ(v.kind, Verdict::Kind::Retry);
    v = c.Interpret(req, changes, Response(408));
    EXPECT_EQ(v.kind, Verdict::Kind::Done); // 408 is not in this server's retry list
    EXPECT_FALSE(v.rows[0].accepted);

    v = c.Interpret(req, changes, Response(422, R"({"error": "bad"})"));
    EXPECT_EQ(v.kind, Verdict::Kind::Split);
    auto one = Prepare(c, changes, {0});
    v = c.Interpret(one.requests[0], changes,
                    Response(422, R"({"error": "email is invalid", "code": "E1"})"));
    EXPECT_EQ(v.kind, Verdict::Kind::Done);
    ASSERT_EQ(v.rows.size(), 1u);
    EXPECT_FALSE(v.rows[0].accepted);
    EXPECT_EQ(v.rows[0].reason, "email is invalid");
    EXPECT_EQ(v.rows[0].error_code, "E1");
    EXPECT_EQ(v.rows[0].http_status, 422);
}

TEST(HttpInterpret, PerRecordErrorsByPosition) {
    HttpConnector c = Make({{"errors_pointer", "/result/errors"}});
    std::vector<Change> changes;
    for (int i = 0; i < 6; i++)
        changes.push_back(Row(i + 1, Change::Op::Add, "{\"id\": " + std::to_string(i) + "}", "{}"));
    auto p = Prepare(c, changes, {0, 1, 2, 3, 4, 5});
    ASSERT_EQ(p.requests.size(), 1u);
    Verdict v = c.Interpret(p.requests[0], changes, Response(200, R"({"result": {"errors": [
        null, "email is invalid", false, {"message": "duplicate", "code": "DUP"}, {}, true]}})"));
    ASSERT_EQ(v.rows.size(), 6u);
    EXPECT_TRUE(v.rows[0].accepted);
    EXPECT_FALSE(v.rows[1].accepted);
    EXPECT_EQ(v.rows[1].reason, "email is invalid");
    EXPECT_TRUE(v.rows[2].accepted);
    EXPECT_FALSE(v.rows[3].accepted);
    EXPECT_EQ(v.rows[3].reason, "duplicate");
    EXPECT_EQ(v.rows[3].error_code, "DUP");
    EXPECT_TRUE(v.rows[4].accepted);
    EXPECT_FALSE(v.rows[5].accepted);
    EXPECT_EQ(v.rows[5].reason, "refused by the destination");
    // No such member, or not JSON: every record accepted.
    v = c.Interpret(p.requests[0], changes, Response(200, R"({"ok": true})"));
    EXPECT_TRUE(std::all_of(v.rows.begin(), v.rows.end(), [](const RowOutcome &o) { return o.accepted; }));
    v = c.Interpret(p.requests[0], changes, Response(200, "OK"));
    EXPECT_TRUE(v.rows[5].accepted);
}

TEST(HttpInterpret, ErrorsNeverShowTheApiKey) {
    HttpConnector c = Make({{"api_key_param", "key"}}, "upsert", {{"api_key", "SECRET-KEY"}});
    auto changes = Rows();
    auto p = Prepare(c, changes, {0});
    EXPECT_TRUE(Contains(p.requests[0].http.url, "SECRET-KEY"));
    Verdict v = c.Interpret(p.requests[0], changes, Response(503));
    EXPECT_TRUE(NotContains(v.error, "SECRET"));
    v = c.Interpret(p.requests[0], changes, Response(0));
    EXPECT_TRUE(NotContains(v.error, "SECRET"));
}
