// Salesforce: any sObject (Lead, Contact, Account, custom Foo__c), written
// through the REST API of the org the OAuth token answer names
// (instance_url; the host's OAuth session checks it against
// revetl.allowed_hosts before anything goes there).
//  - small runs: sObject Collections, at most 200 records a call,
//    allOrNone false, one result per record in request order:
//    upsert PATCH /services/data/vXX.X/composite/sobjects/{object}/{field}
//    (MODE UPSERT / MIRROR, MATCH ON an external id field), update
//    PATCH .../composite/sobjects (MODE UPDATE, MATCH ON Id), insert
//    POST .../composite/sobjects (MODE INSERT);
//  - large runs (the run planned more than bulk_threshold rows): a Bulk API
//    2.0 ingest job per batch for upserts and updates: create the job,
//    upload the CSV (PUT .../batches, text/csv), close it (UploadComplete),
//    poll it (the framework's bounded backoff) until JobComplete, Failed or
//    Aborted, then read successfulResults and failedResults and map their
//    rows back to the batch by the MATCH ON column. The job id is kept by
//    the host once the job is closed, so a killed run resumes polling it;
//  - removals (MODE MIRROR): DELETE .../composite/sobjects?ids=...&
//    allOrNone=false by the record ids Salesforce gave (kept as dest_id).
// 401 INVALID_SESSION_ID: the host refreshes the token once and replays.
// REQUEST_LIMIT_EXCEEDED stops the run. Sforce-Limit-Info (api-usage=N/M)
// is read from every answer and reported in the run's log line.
// See docs/destinations.md.
#pragma once

#include "core/connectors/connector.hpp"

#include <map>

namespace revetl {

class SalesforceConnector : public Connector {
public:
    static constexpr size_t kMaxCollection = 200;
    // Bulk API 2.0 takes at most 150 MB per upload after base64 encoding,
    // about 100 MB of CSV; a job's CSV stays under this (else the batch is
    // cut into more jobs).
    static constexpr size_t kMaxCsvBytes = 100 * 1000 * 1000;

    SalesforceConnector(DestinationSettings settings, SyncTarget target);

    std::vector<PreparedRequest> Prepare(const BatchContext &context, const std::vector<Change> &changes,
                                         const std::vector<size_t> &rows,
                                         std::vector<std::pair<size_t, RowOutcome>> &immediate) override;
    Verdict Interpret(const PreparedRequest &request, const std::vector<Change> &changes,
                      const HttpResponse &response) override;
    std::optional<PreparedRequest> Resume(const BatchContext &context, const std::vector<Change> &changes,
                                          const FlowStep &step) override;
    std::string RunNote() const override;

    // Whether a run that planned `planned_rows` writes through Bulk API 2.0.
    bool UsesBulk(int64_t planned_rows) const;
    // The CSV of a job for `rows` (header: the union of the payloads'
    // fields, in order of first appearance). "" when a payload is not a
    // JSON object.
    std::string Csv(const std::vector<Change> &changes, const std::vector<size_t> &rows) const;
    // The base of data calls: the token's instance_url, else the server's url.
    std::string Base() const;
    // The last Sforce-Limit-Info seen ("api-usage=25/15000"), or "".
    const std::string &LimitInfo() const { return limit_info_; }

private:
    HttpRequest Request(const std::string &method, const std::string &path, std::string body,
                        const char *content_type = "application/json") const;
    std::string Path(const std::string &rest) const;
    PreparedRequest Poll(const std::string &job_id) const;
    Verdict CollectionResults(const PreparedRequest &request, const std::vector<Change> &changes,
                              const HttpResponse &response) const;
    Verdict BulkStep(const PreparedRequest &request, const std::vector<Change> &changes,
                     const HttpResponse &response) const;
    std::string MatchValue(const Change &change) const;

    DestinationSettings settings_;
    SyncTarget target_;
    std::string api_version_;
    int64_t bulk_threshold_ = 2000;
    std::string limit_info_;
};

// CSV quoting of one field (RFC 4180): quoted when it holds a comma, a
// quote, a line break or leading/trailing space; quotes doubled.
std::string CsvField(const std::string &value);
// Parses RFC 4180 CSV (quoted fields may hold commas, quotes, line breaks);
// at most `max_rows` rows. nullopt when malformed.
std::optional<std::vector<std::vector<std::string>>> ParseCsv(const std::string &text, size_t max_rows);

const ConnectorSpec &SalesforceSpec();

} // namespace revetl
