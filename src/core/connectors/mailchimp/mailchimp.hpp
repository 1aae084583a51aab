// Mailchimp audience members through the Marketing API 3.0 (one audience,
// the server's list_id; Basic auth "anystring:<API key>", whose -usNN suffix
// names the data centre and so the host, or an OAuth access token as Bearer
// with the server's dc option):
//  - writes (MODE UPSERT / MIRROR / INSERT): the batch endpoint
//    POST /3.0/lists/{list_id} with at most 500 distinct members per call,
//    update_existing true (false for INSERT, where an existing member is
//    refused as ERROR_CONTACT_EXISTS); the mapped fields other than the
//    member's own (status, email_type, language, vip) go in merge_fields
//  - MODE UPDATE: PATCH /lists/{list_id}/members/{hash}, one call per
//    member (the batch endpoint cannot refuse to create one); 404: refused
//  - removals (MODE MIRROR): DELETE /lists/{list_id}/members/{hash}, which
//    archives the member (reversible; the permanent delete is not used,
//    because Mailchimp never lets a permanently deleted address be added
//    again, so a row that comes back to the model could not be delivered)
//  - tags (MODE AUDIENCE '<tag name>'): POST .../members/{hash}/tags with
//    the tag active for an added row, inactive for a removed one, and for a
//    row whose email changed inactive on the old member then active on the
//    new one (a flow of two calls). A tag holds existing members only.
// {hash} is the MD5 of the lower-cased email, Mailchimp's member id, kept as
// the record id. The batch answers 200 even when members fail: errors[]
// names them by email_address, and those rows are refused with Mailchimp's
// error_code and message. Mailchimp limits concurrent connections (10 per
// key), not requests per window: 429 and a bare 403 under load are waited
// out; a 403 with an RFC 7807 body (a key without the permission) and 401
// (a wrong key) fail the run.
#pragma once

#include "core/connectors/connector.hpp"

#include <string>

namespace revetl {

class MailchimpConnector : public Connector {
public:
    static constexpr size_t kMaxMembers = 500; // members per batch call
    static constexpr int kMaxConnections = 10; // simultaneous connections per key

    MailchimpConnector(DestinationSettings settings, SyncTarget target);

    std::vector<PreparedRequest> Prepare(const BatchContext &context, const std::vector<Change> &changes,
                                         const std::vector<size_t> &rows,
                                         std::vector<std::pair<size_t, RowOutcome>> &immediate) override;
    Verdict Interpret(const PreparedRequest &request, const std::vector<Change> &changes,
                      const HttpResponse &response) override;

    // The email of a payload (its MATCH ON field), or "".
    std::string Email(const std::string &payload) const;

    // Flow steps.
    static constexpr const char *kBatch = "batch";     // POST /lists/{id}
    static constexpr const char *kPatch = "patch";     // PATCH one member (UPDATE)
    static constexpr const char *kArchive = "archive"; // DELETE one member (MIRROR)
    static constexpr const char *kTag = "tag";         // tag active
    static constexpr const char *kUntag = "untag";     // tag inactive
    // Tag inactive on the old member of a row whose email changed, then
    // kTag on the new one.
    static constexpr const char *kSwap = "swap";

private:
    HttpRequest Request(const std::string &method, const std::string &path, std::string body) const;
    PreparedRequest TagCall(const char *step, const std::vector<Change> &changes, size_t row) const;
    std::string ListPath() const;

    DestinationSettings settings_;
    SyncTarget target_;
    std::string list_id_;
    std::string status_; // status sent for members whose row maps none
    // Throttling answers in a row: each doubles the wait (from 1 s, to
    // 32 s), because a concurrency limit clears when other work finishes,
    // not at a known time.
    int throttle_streak_ = 0;
};

// Hex MD5 of the lower-cased (ASCII) email: Mailchimp's subscriber hash.
std::string MailchimpSubscriberHash(const std::string &email);

// The data centre an API key names by its suffix ("...-us6": "us6"), or "".
std::string MailchimpDataCentre(const std::string &api_key);

const ConnectorSpec &MailchimpSpec();

} // namespace revetl
