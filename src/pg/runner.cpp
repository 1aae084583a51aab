// One run of one sync: plan -> deliver -> commit.
//
//  plan     one transaction: the full diff of the model (read as the sync's
//           owner) against the shadow table, written to revetl.changes, a
//           logged queue, so that a crash loses nothing.
//  deliver  per batch: read it from the queue (short transaction), send it
//           with no transaction open, then
//  commit   one short transaction per batch: the shadow state of exactly the
//           rows the destination accepted, the rejected rows, the run's
//           counters, and the batch taken off the queue.
//
// A destination that takes rows as an asynchronous job (Zendesk, ...) gives
// a job id to poll: it is kept in revetl.delivery_jobs (a short transaction)
// before the first poll, and deleted with the commit of its rows' outcomes.
// Jobs an interrupted run left pending are resumed by the sync's next run
// before it plans (ResumeKeptJobs): polled, not sent again.
#include "pg/runner.hpp"

#include "core/connectors/connector.hpp"
#include "core/delivery/delivery_engine.hpp"
#include "core/delivery/batch_record.hpp"
#include "core/delivery/redaction.hpp"
#include "core/common/sql_text.hpp"
#include "core/connectors/registry.hpp"
#include "pg/catalog.hpp"
#include "pg/field_refresh.hpp"
#include "pg/module.hpp"
#include "pg/oauth.hpp"
#include "pg/planning.hpp"
#include "pg/payload_store.hpp"
#include "pg/queue_writer.hpp"
#include "pg/recorder.hpp"
#include "pg/run_counts.hpp"
#include "pg/sync_commands.hpp"
#include "pg/shared_state.hpp"
#include "pg/session.hpp"
#include "pg/shadow_recording.hpp"
#include "pg/spi.hpp"

extern "C" {
#include "access/xlog.h"
#include "executor/nodeModifyTable.h"
}

#include <algorithm>
#include <deque>
#include <functional>
#include <map>
#include <optional>
#include <random>
#include <strings.h>
#include <sys/resource.h>

namespace revetl::pg {

namespace {

// Rows fetched from the plan cursor at a time.
constexpr int kPlanFetchRows = 1000;

// Delivery stopped on what the destination answered (or did not): the text
// can quote the destination, so it is the owner's alone and stays out of
// the server log.
class DestinationFailure : public Error {
public:
    explicit DestinationFailure(const std::string &message) : Error(sqlstate::kConnectionFailure, message) {}
};

// More removals planned than the sync's max_removals allows: the run fails
// before sending anything.
class RemovalLimitExceeded : public Error {
public:
    explicit RemovalLimitExceeded(const std::string &message)
        : Error(sqlstate::kObjectNotInPrerequisiteState, message) {}
};

// A run of a sync in a copy of its database (see revetl.instance).
class SyncHeldAsCopy : public std::runtime_error {
public:
    explicit SyncHeldAsCopy(const std::string &why) : std::runtime_error(why) {}
};

// A run queued before the sync was paused does not run.
class SyncPaused : public std::runtime_error {
public:
    SyncPaused() : std::runtime_error("the sync is paused") {}
};

// One queued change as ReadQueuedRows found it: pointers into the SPI
// result (key, dest_id) or PostgreSQL memory (the payload, from the run's
// PayloadStore), valid until the transaction ends; NULL for a NULL value.
struct QueuedRow {
    int64 seq;
    char op;
    const char *key;
    size_t key_len;
    const char *payload;
    size_t payload_len;
    int64 row_hash;
    const char *dest_id;
    size_t dest_id_len;
    int64 version;
};

// The rows of `SELECT seq, op, key, row_hash, dest_id, version FROM
// revetl.changes`, with their payloads from `payloads`. Plain data, as
// QueueWriter.
void ReadQueuedRows(SPITupleTable *tt, size_t n, PayloadStore *payloads, QueuedRow *out) {
    TupleDesc desc = tt->tupdesc;
    if (desc->natts != 6)
        elog(ERROR, "revetl: reading the queue returned %d columns, not 6", desc->natts);
    // Each row is taken apart once (heap_getattr per column walked the
    // variable-length key again for every column after it).
    Datum values[6];
    bool nulls[6];
    // A text column's bytes, in place (nullptr for NULL).
    auto text_at = [&](int column, const char *&data, size_t &len) {
        data = nullptr;
        len = 0;
        if (!nulls[column]) {
            text *t = DatumGetTextPP(values[column]);
            data = VARDATA_ANY(t);
            len = VARSIZE_ANY_EXHDR(t);
        }
    };
    for (size_t i = 0; i < n; i++) {
        heap_deform_tuple(tt->vals[i], desc, values, nulls);
        QueuedRow *r = out + i;
        r->seq = nulls[0] ? 0 : DatumGetInt64(values[0]);
        r->op = nulls[1] ? 0 : DatumGetChar(values[1]);
        text_at(2, r->key, r->key_len);
        r->payload = nullptr;
        r->payload_len = 0;
        StringInfoData buf;
        if (ReadPayload(payloads, r->seq, &buf)) {
            r->payload = buf.data;
            r->payload_len = buf.len;
        }
        r->row_hash = nulls[3] ? 0 : DatumGetInt64(values[3]);
        text_at(4, r->dest_id, r->dest_id_len);
        r->version = nulls[5] ? 0 : DatumGetInt64(values[5]);
    }
}

const char *kInsertInvalid =
    "INSERT INTO revetl.rejected_rows (run_id, sync_id, sync_name, kind, key, operation, reason, payload) "
    "SELECT $1, $2, $3, 'invalid', u.key, 'upsert', u.reason, u.payload "
    "FROM unnest($4::jsonb[], $5::text[], $6::jsonb[]) AS u(key, reason, payload)";

// The id a recording of keys is made at (the shadow state's version): the
// run's own id for its first plan, and a new one from the runs' sequence for
// each further plan of an ON CHANGE run, so that every recording of a key
// has a version no other recording had and every change's idempotency key
// is new (A, B, A, B within one run are four keys).
int64_t NextRecordingId() {
    return Sql("SELECT pg_catalog.nextval(pg_catalog.pg_get_serial_sequence('revetl.runs', 'id'))")
        .Int8(0, 0);
}

struct PlanTotals {
    int64 added = 0;
    int64 changed = 0;
    int64 removed = 0;
    int64 invalid = 0;
    int64 queued = 0;
};

// Streams the plan query into the queue, and each queued change's payload
// into `payloads`. The model is read as `owner` under
// SECURITY_RESTRICTED_OPERATION; the queue is written as the worker. This
// body holds no C++ object while it calls PostgreSQL. `offload` may take a
// chunk of changes for the run's recorder to queue (true: not written
// here); it raises PostgreSQL errors only.
void StreamPlanIntoQueue(const char *plan_sql, Oid owner, const char *search_path, int64 run_id,
                         int64 sync_id, const char *sync_name, const char *key_columns_text,
                         const char *bad_identifier_reason, PlanTotals *totals, PayloadStore *payloads,
                         const std::function<bool(int64, int, const Datum *, const bool *)> &offload) {
    const int64 queued_before = totals->queued;
    OwnerContext owner_ctx;

    Oid invalid_types[6] = {INT8OID, INT8OID, TEXTOID, JSONBARRAYOID, TEXTARRAYOID, JSONBARRAYOID};
    SPIPlanPtr insert_invalid = SPI_prepare(kInsertInvalid, 6, invalid_types);
    if (!insert_invalid)
        elog(ERROR, "revetl: could not prepare the plan queue statements: %s",
             SPI_result_code_string(SPI_result));

    // The model and MAP are the owner's code: prepared, opened and fetched
    // as the owner, in a restricted operation with the sync's search_path,
    // each step in a GUC nest level rolled back afterwards, so that nothing
    // the owner's code sets reaches the statements the worker runs in
    // between (they run as the worker, under its fixed search_path).
    EnterOwnerContext(owner, search_path, true, &owner_ctx);
    SPIPlanPtr plan = SPI_prepare(plan_sql, 0, nullptr);
    if (!plan)
        elog(ERROR, "revetl: could not prepare the plan query: %s", SPI_result_code_string(SPI_result));
    Portal portal = SPI_cursor_open(nullptr, plan, nullptr, nullptr, true);
    LeaveOwnerContext(&owner_ctx);

    QueueWriter queue;
    OpenQueueWriter(&queue, kPlanFetchRows);
    MemoryContext batch_cxt =
        AllocSetContextCreate(CurrentMemoryContext, "revetl plan batch", ALLOCSET_DEFAULT_SIZES);
    Datum sync_name_datum = CStringGetTextDatum(sync_name);

    for (;;) {
        CHECK_FOR_INTERRUPTS();
        EnterOwnerContext(owner, search_path, true, &owner_ctx);
        SPI_cursor_fetch(portal, true, kPlanFetchRows);
        LeaveOwnerContext(&owner_ctx);
        SPITupleTable *tt = SPI_tuptable;
        uint64 n = SPI_processed;
        if (n == 0)
            break;

        MemoryContext old = MemoryContextSwitchTo(batch_cxt);
        Datum *rows = (Datum *)palloc(n * QueueWriter::kColumns * sizeof(Datum));
        bool *row_nulls = (bool *)palloc(n * QueueWriter::kColumns * sizeof(bool));
        Datum *inv_keys = (Datum *)palloc(n * sizeof(Datum));
        Datum *inv_reasons = (Datum *)palloc(n * sizeof(Datum));
        Datum *inv_payloads = (Datum *)palloc(n * sizeof(Datum));
        bool *inv_payload_nulls = (bool *)palloc(n * sizeof(bool));
        int nc = 0, ni = 0;

        for (uint64 i = 0; i < n; i++) {
            HeapTuple tup = tt->vals[i];
            TupleDesc desc = tt->tupdesc;
            bool isnull;
            char op = DatumGetChar(SPI_getbinval(tup, desc, 1, &isnull));
            bool key_null;
            Datum key = SPI_getbinval(tup, desc, 2, &key_null);
            Datum key_json = SPI_getbinval(tup, desc, 3, &isnull);
            bool payload_null;
            Datum payload = SPI_getbinval(tup, desc, 4, &payload_null);
            bool hash_null;
            Datum hash = SPI_getbinval(tup, desc, 5, &hash_null);
            bool dest_null;
            Datum dest = SPI_getbinval(tup, desc, 6, &dest_null);
            bool dups_null;
            int64 dups = DatumGetInt64(SPI_getbinval(tup, desc, 7, &dups_null));
            bool version_null;
            Datum version = SPI_getbinval(tup, desc, 8, &version_null);

            if (op == 'n' || op == 'd' || op == 'h') {
                inv_keys[ni] = key_json;
                inv_payloads[ni] = payload;
                inv_payload_nulls[ni] = payload_null;
                if (op == 'n')
                    inv_reasons[ni] = CStringGetTextDatum(
                        psprintf("the key has a NULL value (key columns: %s)", key_columns_text));
                else if (op == 'h')
                    inv_reasons[ni] = CStringGetTextDatum(bad_identifier_reason);
                else
                    inv_reasons[ni] = CStringGetTextDatum(
                        psprintf("duplicate key: %lld rows of the model have this key", (long long)dups));
                ni++;
                totals->invalid++;
                continue;
            }
            Datum *v = rows + nc * QueueWriter::kColumns;
            bool *vn = row_nulls + nc * QueueWriter::kColumns;
            const int64 seq = totals->queued + nc + 1;
            v[0] = Int64GetDatum(run_id);
            vn[0] = false;
            v[1] = Int64GetDatum(seq);
            vn[1] = false;
            v[2] = CharGetDatum(op);
            vn[2] = false;
            v[3] = key;
            vn[3] = key_null;
            v[4] = hash;
            vn[4] = hash_null;
            v[5] = dest;
            vn[5] = dest_null;
            v[6] = version;
            vn[6] = version_null;
            AppendPayload(payloads, seq, payload, payload_null);
            nc++;
            if (op == 'a')
                totals->added++;
            else if (op == 'c')
                totals->changed++;
            else
                totals->removed++;
        }

        if (nc > 0) {
            if (!offload(totals->queued - queued_before, nc, rows, row_nulls))
                WriteQueueChunk(&queue, nc, rows, row_nulls);
            totals->queued += nc;
        }
        if (ni > 0) {
            int dims[1] = {ni};
            int lbs[1] = {1};
            Datum values[6];
            values[0] = Int64GetDatum(run_id);
            values[1] = Int64GetDatum(sync_id);
            values[2] = sync_name_datum;
            values[3] = PointerGetDatum(construct_array(inv_keys, ni, JSONBOID, -1, false, TYPALIGN_INT));
            values[4] = PointerGetDatum(construct_array(inv_reasons, ni, TEXTOID, -1, false, TYPALIGN_INT));
            values[5] = PointerGetDatum(construct_md_array(inv_payloads, inv_payload_nulls, 1, dims, lbs,
                                                           JSONBOID, -1, false, TYPALIGN_INT));
            if (SPI_execute_plan(insert_invalid, values, nullptr, false, 0) != SPI_OK_INSERT)
                elog(ERROR, "revetl: could not record invalid rows");
        }
        MemoryContextSwitchTo(old);
        MemoryContextReset(batch_cxt);
        SPI_freetuptable(tt);
    }
    SPI_cursor_close(portal);
    MemoryContextDelete(batch_cxt);
    CloseQueueWriter(&queue);
}

// Set by SIGTERM (see HandleRunSigterm).
volatile sig_atomic_t g_terminating = 0;

std::mt19937_64 &Rng() {
    static std::mt19937_64 rng(static_cast<uint64_t>(MyProcPid) * 2654435761ULL ^
                               static_cast<uint64_t>(GetCurrentTimestamp()));
    return rng;
}

void ApplyAllowedHostsIfChanged();

void CheckInterrupts() {
    bool reloaded = false;
    PgGuard([&] {
        CHECK_FOR_INTERRUPTS();
        if (ConfigReloadPending) {
            ConfigReloadPending = false;
            ProcessConfigFile(PGC_SIGHUP);
            reloaded = true;
        }
    });
    if (reloaded)
        ApplyAllowedHostsIfChanged();
}

// Sleeps on the latch, so SIGTERM and config reloads are seen at once. A
// latch set by a new run request only shortens one slice of the wait; the
// main loop looks at the queue after this run anyway.
void SleepMs(long ms) {
    TimestampTz deadline = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), ms);
    for (;;) {
        CheckInterrupts();
        long left = 0;
        PgGuard([&] {
            TimestampTz now = GetCurrentTimestamp();
            left = now >= deadline ? 0 : (long)((deadline - now) / 1000) + 1;
            if (left > 0) {
                (void)WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH, left,
                                PG_WAIT_EXTENSION);
                ResetLatch(MyLatch);
            }
        });
        if (left <= 0)
            return;
    }
}

HttpClient &Client() {
    // One client per worker: its connections are reused across batches and runs.
    static HttpClient client;
    return client;
}

// The revetl.allowed_hosts the client judges addresses by, once a run has set it.
std::optional<std::string> g_applied_allowed_hosts;

void ApplyAllowedHosts() {
    const std::string allowed = g_allowed_hosts ? g_allowed_hosts : "";
    Client().SetAddressPolicy(std::make_shared<HostPolicy>(allowed));
    g_applied_allowed_hosts = allowed;
}

// A reload during a run takes effect at once: a host taken out of
// revetl.allowed_hosts gets no further request, not even over a connection
// opened before (SetAddressPolicy closes the pooled ones).
void ApplyAllowedHostsIfChanged() {
    if (g_applied_allowed_hosts && *g_applied_allowed_hosts != (g_allowed_hosts ? g_allowed_hosts : ""))
        ApplyAllowedHosts();
}

class SyncRun {
public:
    explicit SyncRun(int64_t run_id) : run_id_(run_id), version_id_(run_id) {}

    RunResult Execute();

private:
    bool Start();
    // Jobs kept in revetl.delivery_jobs, finished: every pending job of the
    // sync (an interrupted run's, before planning) or, with `parked`, the
    // jobs this run parked until its last batch (Verdict::park).
    void ResumeKeptJobs(const std::vector<int64_t> *parked = nullptr);
    void Plan();
    void Deliver();
    // Runs the delivery engine over `next_batch`'s batches, records its
    // counters, and throws DestinationFailure when it stopped the run. Jobs
    // parked for the run's last batch (Verdict::park) are resumed at its
    // end; in a `final_pass` (resuming kept jobs) nothing parks.
    void RunDelivery(std::function<std::optional<EngineBatch>()> next_batch, bool final_pass = false);
    int64_t KeepJob(const EngineBatch &batch, const PreparedRequest &poll);
    void LoseJob(int64_t handle, const std::string &why);
    bool DeliverNextBatch(int64_t &batch_no);
    void Finish(const std::string &status, const std::string &error);
    void CheckRemovalLimit(int64_t removals);

    int64_t run_id_;
    SyncDefinition def_;
    DestinationSettings settings_;
    RetryPolicy policy_;
    int64_t last_seq_ = 0;
    int64_t rejected_ = 0;
    int64_t delivered_ = 0;
    int64_t invalid_ = 0;
    int64_t row_limit_ = -1;
    bool full_requested_ = false;
    bool resync_ = false;         // run_sync(..., resync => true): every row sent again
    bool allow_removals_ = false; // run_sync(..., allow_removals => true)
    Oid server_oid_ = InvalidOid;
    int64_t rate_sync_id_ = 0;
    std::unique_ptr<Connector> connector_;
    int64_t batch_no_ = 0;
    // Outcomes of finished batches not yet committed: committed together,
    // a few dozen batches or 50 ms at a time, so that small requests do not
    // cost a transaction each. A crash before the commit only means those
    // batches are sent again, which idempotent writes make harmless.
    std::vector<Change> pending_changes_;
    std::vector<RowOutcome> pending_outcomes_;
    int64_t pending_batches_ = 0;
    // Kept jobs (revetl.delivery_jobs ids) of batches not yet reported, and
    // of batches reported and not yet committed: deleted by the Flush that
    // records their rows.
    std::map<int64_t, std::vector<int64_t>> jobs_by_batch_;
    std::vector<int64_t> pending_jobs_;
    // The engine's counters as they grow, and as far as revetl.runs has
    // them: each commit adds the difference, so a run stopped half-way
    // still counts the requests it made (Finish records the rest).
    EngineStats live_stats_;
    EngineStats recorded_stats_;
    // What earlier engine runs of this run counted (kept jobs come first),
    // and the file that keeps the totals should the process be killed.
    EngineStats earlier_stats_;
    std::unique_ptr<RunCountsFile> counts_file_;
    void WriteCounts();
    TimestampTz last_flush_ = 0;
    // Records the finished batches not yet recorded: sends them to the
    // recorder process when there is one, else records them itself.
    void Flush();
    RecordingSetup MakeRecordingSetup() const;
    // This process's own recording (small runs, or no recorder to be had).
    std::unique_ptr<GroupRecorder> own_recorder_;
    // A big run's recorder process (recorder.hpp): started by a big plan
    // (OffloadQueueChunk) or at the start of a big Deliver, ended at the
    // end of Deliver, or of the run after an error.
    std::unique_ptr<RecorderProcess> recorder_;
    bool recorder_ready_ = false; // it answered the setup
    // Groups sent to the recorder and not answered yet, oldest first, with
    // what each adds to the run's counters once recorded.
    struct GroupInRecording {
        EngineStats added;
        int64_t delivered = 0;
        int64_t rejected = 0;
    };
    std::deque<GroupInRecording> in_recording_;
    // Groups unanswered at most: with that many, Flush records the next
    // group itself (both processes record then, each its own rows). A
    // crash re-sends (after re-verification) the rows of these groups and
    // of the batches not yet grouped, so the bound is kept small.
    static constexpr size_t kGroupsInRecording = 2;
    // The counters as far as the groups sent (recorded or not) have them.
    EngineStats sent_stats_;
    // Starts the recorder for `rows` rows to deliver, if they are enough.
    void StartRecorder(int64_t rows);
    // Whether the recorder has answered its setup (Ready); a recorder that
    // declined or stopped before is ended, and this process records.
    bool RecorderReady();
    // The plan's side: a chunk of planned changes sent to the recorder to
    // queue, once the plan has found g_recorder_min_rows changes and the
    // recorder has started (until then, and while it has
    // kChunksWithRecorder unanswered, the plan queues its changes itself).
    // Called from the plan's loop: raises PostgreSQL errors, throws nothing.
    bool OffloadQueueChunk(int64 planned, int n, const Datum *values, const bool *nulls);
    void CommitOffloadedQueue();
    static constexpr int kChunksWithRecorder = 4;
    int chunks_with_recorder_ = 0;     // sent, not answered (Queued)
    bool recorder_queue_open_ = false; // the recorder holds queued changes not committed yet
    bool plan_started_recorder_ = false;
    int64_t changes_offloaded_ = 0; // by this plan

    int offload_errcode_ = 0;
    std::string offload_error_;
    void GroupRecorded(const GroupInRecording &group, int64_t dequeued);
    // Applies a recorder's answer; throws for a group it did not record.
    void ApplyReply(const RecordingReply &reply);
    // Waits until every group sent is recorded.
    void DrainRecorder();
    // Ends the recorder (waiting for its exit) and applies its last answers;
    // throws nothing of the recorder's.
    void StopRecorder();
    std::optional<EngineBatch> ReadBatch();
    // Rows read from revetl.changes and not yet handed to the engine.
    static constexpr int32_t kReadAheadRows = 1000;
    std::deque<Change> read_ahead_;
    PreparedSql read_sql_{"SELECT seq, op, key, row_hash, dest_id, version FROM revetl.changes "
                          "WHERE run_id = $1 AND seq > $2 AND seq <= $2 + $3 ORDER BY seq"};
    // The payloads of the changes of the run's current plan (the queue
    // holds their keys).
    PayloadStore payloads_;
    int64_t queued_ = 0; // changes the plan queued, numbered 1..queued_
    // Of those, the ones committed as recorded and deleted from the queue:
    // when it is all of them, the run's end has nothing left to delete.
    int64_t dequeued_ = 0;
    // The highest seq handed to the engine: no row after it was sent.
    int64_t last_handed_seq_ = 0;
    bool tracked_ = false; // changes captured by triggers
    // What recordings of keys in this run are made at: run_id_ for the
    // first plan, a fresh id for each further plan (NextRecordingId).
    int64_t version_id_ = 0;
    // When the plan whose rows are being delivered took its snapshot
    // (microseconds since 2000-01-01, PostgreSQL's TimestampTz), or none
    // before the first plan (jobs of an earlier run resumed). Every request
    // carrying those rows was sent after it; see Flush.
    std::optional<int64_t> sent_after_;
    int plans_ = 0;       // plans made by this run (ON CHANGE runs make several)
    std::string trigger_; // revetl.runs.trigger
    // The sync's catalog row when the run started (ON CHANGE runs): any
    // ALTER, PAUSE or RENAME changes it, and ends the run's further plans.
    std::string definition_;
    TimestampTz started_at_ = 0;
    bool ContinuesOnChange() const;
    // What the first plan learnt of the model, for the further ones.
    std::optional<PlanSpec> prepared_spec_;
    std::vector<std::string> key_types_;
    void DeliverChangesAsTheyCommit();
    bool incremental_ = false;    // this run plans only captured keys
    bool wal_slot_ready_ = false; // track_changes = 'wal': the slot existed before this plan
    bool planning_ = false;       // the plan phase (and its timeout) is in progress
    bool plan_error_ = false;     // the plan failed with an error of PostgreSQL's
    // Every secret of the owner's user mapping (and every OAuth token
    // learnt during the run): never in a stored message.
    Redactor redactor_;
    // OAuth: the run's token, shared with other runs through shared memory.
    std::unique_ptr<OAuthSession> oauth_;
};

bool SyncRun::Start() {
    BeginTransaction("revetl: starting run");
    SqlResult queued =
        Sql("SELECT sync_id FROM revetl.runs WHERE id = $1 AND status = 'queued'", {SqlArg::Int8(run_id_)});
    if (queued.rows.empty()) {
        CommitTransaction();
        return false;
    }
    int64_t sync_id = queued.Int8(0, 0);
    // Runs of one sync never overlap: the process running one holds its
    // claim in shared memory until it exits (a crash resets shared memory).
    bool claimed = false;
    PgGuard([&] { claimed = ClaimSyncRun(MyDatabaseId, sync_id, run_id_); });
    if (!claimed) {
        CommitTransaction();
        return false;
    }
    SqlResult r = Sql("UPDATE revetl.runs SET status = 'running', started_at = pg_catalog.now() "
                      "WHERE id = $1 AND status = 'queued' RETURNING sync_id, row_limit, full_diff, resync, "
                      "allow_removals, trigger",
                      {SqlArg::Int8(run_id_)});
    if (r.rows.empty()) {
        CommitTransaction();
        return false;
    }
    if (r.At(0, 1))
        row_limit_ = r.Int8(0, 1);
    full_requested_ = r.Bool(0, 2);
    resync_ = r.Bool(0, 3);
    allow_removals_ = r.Bool(0, 4);
    trigger_ = r.Text(0, 5);
    auto def = LoadSyncById(sync_id);
    if (trigger_ == "on change") {
        SqlResult row = Sql("SELECT pg_catalog.row_to_json(s)::text FROM revetl.syncs s WHERE s.id = $1",
                            {SqlArg::Int8(sync_id)});
        if (!row.rows.empty())
            definition_ = row.Text(0, 0);
    }
    PgGuard([&] { started_at_ = GetCurrentTimestamp(); });
    // A copy of a database sends nothing (queued before it was seen to be one).
    std::optional<std::string> copy = CopyOfAnotherDatabase();
    CommitTransaction();
    if (copy)
        throw SyncHeldAsCopy(CopyError(*copy).what());
    if (!def)
        throw SyncDropped();
    def_ = *def;
    if (def_.paused)
        throw SyncPaused();

    BeginTransaction("revetl: resolving destination");
    Destination dest = LookupDestination(def_.destination);
    CheckServerUsage(dest, def_.owner);
    LoadUserMapping(dest, def_.owner);
    CommitTransaction();
    // Everything in a user mapping is treated as a secret (headers: each
    // value): a destination that echoes a request must not leak them.
    for (const auto &o : dest.user_mapping_options) {
        if (!SecretUserMappingOption(o.first))
            continue; // oauth_token_url, client_id, scope: named in messages
        if (o.first == "headers")
            for (const auto &h : ParseHeaderObject(o.first, o.second, true))
                redactor_.AddSecret(h.second);
        else
            redactor_.AddSecret(o.second);
    }

    // The same judgement of the server's options as CREATE / ALTER SERVER.
    settings_ = ResolveDestinationSettings(dest.server_options, dest.user_mapping_options);
    if (def_.options.batch_size)
        settings_.batch_size = *def_.options.batch_size;
    if (def_.options.max_attempts)
        settings_.max_attempts = *def_.options.max_attempts;
    if (def_.options.timeout_ms)
        settings_.timeout_ms = *def_.options.timeout_ms;
    policy_.max_attempts = settings_.max_attempts;
    if (def_.options.max_in_flight)
        settings_.max_in_flight = *def_.options.max_in_flight;
    // A sync's own max_in_flight stays within the type's cap (Mailchimp's
    // and Marketo's 10 concurrent connections), as the server's option does.
    if (const ConnectorSpec *spec = FindSpec(settings_.type))
        if (const OptionSpec *cap = spec->ServerOption("max_in_flight"); cap && cap->max > 0)
            settings_.max_in_flight = std::min<int>(settings_.max_in_flight, static_cast<int>(cap->max));
    // A sync's own rate limit has its own budget; otherwise the server's
    // budget is shared by every sync sending to it, in every process.
    rate_sync_id_ = 0;
    if (def_.options.rate_limit) {
        settings_.rate_limit = *def_.options.rate_limit;
        rate_sync_id_ = def_.id;
    }
    server_oid_ = dest.server_oid;
    SyncTarget target;
    target.mode = def_.mode;
    target.object = def_.object.value_or("");
    target.match_on = def_.match_on.value_or("");
    target.audience = def_.audience.value_or("");
    for (const auto &m : def_.map)
        target.map_fields.push_back(m.field);
    // Values are formatted by the field types cached when the run starts; a
    // refresh during the run does not change how its rows are written.
    {
        const ConnectorSpec *spec = FindSpec(settings_.type);
        if (spec && spec->DescribesFields()) {
            BeginTransaction("revetl: reading destination fields");
            target.fields = LoadCachedFields(dest.server_oid, def_.owner,
                                             target.object.empty() ? spec->default_object : target.object)
                                .fields;
            CommitTransaction();
        }
    }
    connector_ = MakeConnector(settings_, target, def_.name, dest.server_name);

    // The URL's host is checked now, and every address the client connects
    // to while delivering (a name cannot lead it to an address the policy
    // refuses).
    const std::string allowed = g_allowed_hosts ? g_allowed_hosts : "";
    ApplyAllowedHosts();
    std::string host = UrlHost(settings_.url);
    if (!HostAllowed(host, allowed))
        throw Error(sqlstate::kInsufficientPrivilege,
                    "destination host \"" + host + "\" of server \"" + dest.server_name +
                        "\" is not in revetl.allowed_hosts",
                    {}, "A superuser can add it to revetl.allowed_hosts in postgresql.conf and reload.");

    // OAuth: a usable token before anything is planned or sent (a dead
    // refresh token fails the run here, with nothing sent).
    if (SelectedAuth(settings_.credentials) == AuthKind::OAuth) {
        OAuthSession::Hooks hooks;
        hooks.check_interrupts = CheckInterrupts;
        hooks.sleep = SleepMs;
        hooks.random = [] { return std::uniform_real_distribution<double>(0.0, 1.0)(Rng()); };
        oauth_ = std::make_unique<OAuthSession>(dest.server_oid, dest.user_mapping_oid, dest.server_name,
                                                settings_.credentials, settings_.timeout_ms,
                                                settings_.connect_timeout_ms, allowed, redactor_, hooks);
        std::string error = oauth_->Ensure();
        if (!error.empty())
            throw Error(sqlstate::kInvalidAuthorizationSpecification, error);
    }
    return true;
}

void SyncRun::Plan() {
    plan_started_recorder_ = false;
    changes_offloaded_ = 0;
    std::string key_columns;
    for (const auto &k : def_.key_columns)
        key_columns += (key_columns.empty() ? "" : ", ") + k;

    // The shadow table's typed keys, before the plan's snapshot is taken.
    BeginTransaction("revetl: shadow keys");
    EnsureShadowKeys(def_);
    CommitTransaction();

    // One snapshot for the whole plan: the captured keys it reads, the model,
    // the shadow state, and the captured keys it deletes. A key captured by
    // a transaction that commits later is left for the next run.
    // A WAL-captured sync's full diff makes later plans incremental only if
    // the slot existed before its snapshot: what committed before the slot
    // was created is in no captured key. Read before the plan's snapshot.
    if (def_.TrackedByWal()) {
        BeginTransaction("revetl: looking for the WAL slot");
        wal_slot_ready_ =
            Sql("SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_replication_slots WHERE slot_name = "
                "'revetl_' || $1::text)",
                {SqlArg::Int8(MyDatabaseId)}, true)
                .Bool(0, 0);
        CommitTransaction();
    }
    // The payloads kept in memory up to the worker's work_mem (the plan's
    // own, set in its transaction, is for its joins).
    PgGuard([&] { OpenPayloadStore(&payloads_, work_mem); });
    BeginTransaction("revetl: planning", true);
    PgGuard([&] { sent_after_ = GetCurrentTransactionStartTimestamp(); });
    // The owner's model and MAP run now: bounded by the sync's plan_timeout
    // (the statement timeout's handler cancels whatever runs when it fires).
    planning_ = true;
    PgGuard([&] { enable_timeout_after(STATEMENT_TIMEOUT, static_cast<int>(def_.options.plan_timeout_ms)); });
    // A further plan of an ON CHANGE run reuses what the first learnt of
    // the model (its key's index, its types' hash functions): the run ends
    // when the definition changes, and DDL on the model captures a NULL key,
    // which makes the plan a full diff, prepared afresh below.
    PlanSpec spec = prepared_spec_ ? *prepared_spec_ : PreparePlan(def_, true);
    if (!prepared_spec_)
        prepared_spec_ = spec;
    // The plan query versions a key never recorded as minus this id.
    spec.run_id = version_id_;
    spec.resync = resync_;
    plans_++;
    // Outside MIRROR no removal is planned, so a tombstone matters only
    // until its settle time has passed (a key re-added before then is
    // re-verified after it); then it goes. Once per run: it scans the
    // shadow table, and an ON CHANGE run plans many times a second (a
    // tombstone left until the next run is planned as an add with its
    // recorded version, which the flush upserts).
    if (!spec.include_removals && plans_ == 1)
        Sql("DELETE FROM " + QualifiedName(kSchema, def_.shadow_table) +
            " WHERE removed AND verify_after <= pg_catalog.now()");
    // A trigger-tracked sync plans only the keys captured since its last run,
    // once a full diff has run since its triggers were attached, unless a
    // full diff was asked for or the table was truncated.
    tracked_ = def_.Tracked();
    int64_t max_capture = 0;
    if (tracked_) {
        // Planned once for the run (an ON CHANGE run plans many times a second).
        static PreparedSql *const captured = new PreparedSql(
            "SELECT coalesce(max(id), 0), coalesce(bool_or(key IS NULL), false), "
            "coalesce((SELECT incremental_ready FROM revetl.sync_state WHERE sync_id = $1), false) "
            "FROM revetl.captured_changes WHERE sync_id = $1");
        SqlResult cap = captured->Run({SqlArg::Int8(def_.id)});
        max_capture = cap.Int8(0, 0);
        bool truncated = cap.Bool(0, 1);
        bool ready = cap.Bool(0, 2);
        incremental_ = ready && !truncated && !full_requested_ && !resync_ && row_limit_ < 0;
        if (incremental_ && key_types_.empty())
            key_types_ = KeyColumnTypes(ModelRelid(def_), def_.key_columns);
        if (incremental_)
            spec.capture = CaptureFilter{def_.id, max_capture, key_types_};
        else if (plans_ > 1) {
            PlanSpec fresh = PreparePlan(def_);
            fresh.run_id = spec.run_id;
            fresh.resync = spec.resync;
            spec = fresh;
        }
    }
    // An incremental plan reads a few captured keys through indexes, yet
    // its estimate can pass jit_above_cost (the captured-keys table's
    // statistics count the keys since deleted): compiling it took tens of
    // milliseconds, far more than running it, at every plan of an ON CHANGE
    // run. Full diffs keep the server's JIT settings. Local to the planning
    // transaction, as PreparePlan's work_mem and enable_hashjoin.
    if (spec.capture)
        PgGuard([] { SetLocalSetting("jit", "off"); });
    std::string plan_sql = BuildPlanQuery(spec);
    // A test run plans everything and sends the first rows in key order.
    if (row_limit_ >= 0)
        plan_sql += " ORDER BY op, key LIMIT " + std::to_string(row_limit_);

    // A further plan of the run numbers its changes after the earlier ones'
    // (which were all delivered: their payloads go).
    PlanTotals totals;
    totals.queued = queued_;
    const std::string search_path = OwnerSearchPath(def_.search_path);
    const std::string bad_identifier = BadIdentifierReason(spec);
    // Made here, not as a temporary inside the guarded call: a PostgreSQL
    // error in the plan jumps over that call's frame.
    const std::function<bool(int64, int, const Datum *, const bool *)> offload =
        [this](int64 planned, int n, const Datum *values, const bool *nulls) {
            return OffloadQueueChunk(planned, n, values, nulls);
        };
    PgGuard([&] {
        StreamPlanIntoQueue(plan_sql.c_str(), def_.owner, search_path.c_str(), run_id_, def_.id,
                            def_.name.c_str(), key_columns.c_str(), bad_identifier.c_str(), &totals,
                            &payloads_, offload);
    });
    // Planning is over (what follows is revetl's own bookkeeping).
    PgGuard([] { disable_timeout(STATEMENT_TIMEOUT, false); });
    planning_ = false;
    CheckRemovalLimit(totals.removed);
    invalid_ += totals.invalid;
    queued_ = totals.queued;
    // The captured keys are in this run's queue now; rows that are refused
    // or not delivered are captured again (see Finish and DeliverNextBatch).
    if (tracked_ && row_limit_ < 0)
        Sql("DELETE FROM revetl.captured_changes WHERE sync_id = $1 AND id <= $2",
            {SqlArg::Int8(def_.id), SqlArg::Int8(max_capture)});
    Sql("UPDATE revetl.runs SET planned_at = coalesce(planned_at, pg_catalog.clock_timestamp()), "
        "rows_added = rows_added + $2, rows_changed = rows_changed + $3, rows_removed = rows_removed + $4, "
        "rows_invalid = rows_invalid + $5, plan_kind = $6 WHERE id = $1",
        {SqlArg::Int8(run_id_), SqlArg::Int8(totals.added), SqlArg::Int8(totals.changed),
         SqlArg::Int8(totals.removed), SqlArg::Int8(totals.invalid),
         SqlArg::Text(incremental_ ? "incremental" : "full")});
    // The changes the recorder queued are committed first: should this
    // process die before its own commit, recovery finds them (and treats
    // them as planned rows that may have been sent), never the reverse,
    // a plan committed (captured keys deleted) without its queue.
    CommitOffloadedQueue();
    CommitTransaction();
    if (changes_offloaded_ > 0)
        PgGuard([&] {
            elog(DEBUG1, "revetl: run %lld: the recorder queued %lld of the plan's %lld changes",
                 static_cast<long long>(run_id_), static_cast<long long>(changes_offloaded_),
                 static_cast<long long>(queued_ - last_seq_));
        });
}

void SyncRun::CheckRemovalLimit(int64_t removals) {
    // A model rebuilt empty by an upstream bug must not delete every record
    // revetl ever delivered: above the sync's max_removals the run stops
    // here, before anything is sent, and its plan (this transaction) is
    // rolled back, captured keys included. A test run (max_rows) removes
    // what it sends, a handful.
    if (removals == 0 || allow_removals_ || row_limit_ >= 0)
        return;
    // Below the default's floor no count of the shadow table is needed.
    if (!def_.options.max_removals && removals <= kRemovalFloor)
        return;
    const int64_t delivered = Sql("SELECT pg_catalog.count(*) FROM " +
                                  QualifiedName(kSchema, def_.shadow_table) + " WHERE NOT removed")
                                  .Int8(0, 0);
    const int64_t limit = MaxRemovals(def_.options, delivered);
    if (limit < 0 || removals <= limit)
        return;
    throw RemovalLimitExceeded("the run would remove " + std::to_string(removals) + " of the " +
                               std::to_string(delivered) +
                               " records delivered, more than the sync's max_removals (" +
                               DescribeMaxRemovals(def_.options, delivered) +
                               "); nothing was sent. If the model is right, let one run through with "
                               "revetl.run_sync('" +
                               def_.name +
                               "', allow_removals => true), or change max_removals with ALTER SYNC ... SET "
                               "(max_removals = ...)");
}

std::optional<EngineBatch> SyncRun::ReadBatch() {
    // Rows are read ahead in chunks: one query per request would cost more
    // than the request itself with one record per request. Each chunk is a
    // short transaction of its own, so none stays open across network I/O.
    // The plan numbers a run's changes 1..queued_, so each chunk is read by
    // a bounded range of the primary key: whatever plan the statistics of
    // revetl.changes lead to, a read visits at most one chunk of rows (an
    // open-ended `seq > $2 ... LIMIT` was planned as a scan of every row
    // left in the run and a sort, once per chunk).
    const size_t batch_size = static_cast<size_t>(settings_.batch_size);
    const int32_t chunk = std::max<int32_t>(settings_.batch_size, kReadAheadRows);
    while (read_ahead_.size() < batch_size && last_seq_ < queued_) {
        BeginTransaction("revetl: reading batch");
        SpiRows rows =
            read_sql_.RunForRows({SqlArg::Int8(run_id_), SqlArg::Int8(last_seq_), SqlArg::Int8(chunk)}, true);
        // The chunk's values are taken from the result in one guarded pass
        // (pointers into it, valid until the commit), and each payload's
        // text is rendered from its jsonb in the payload store, exactly as
        // jsonb's output function would (a text datum of it, made and
        // copied, and a guard per value cost as much again).
        const size_t n = rows.Count();
        std::vector<QueuedRow> got(n);
        PgGuard([&] { ReadQueuedRows(SPI_tuptable, n, &payloads_, got.data()); });
        for (const QueuedRow &r : got) {
            Change c;
            c.seq = r.seq;
            c.op = r.op == 'a' ? Change::Op::Add : r.op == 'c' ? Change::Op::Change : Change::Op::Remove;
            c.key.assign(r.key, r.key_len);
            if (r.payload)
                c.payload.assign(r.payload, r.payload_len);
            c.row_hash = r.row_hash;
            if (r.dest_id)
                c.dest_id.assign(r.dest_id, r.dest_id_len);
            c.version = r.version;
            read_ahead_.push_back(std::move(c));
        }
        CommitTransaction();
        last_seq_ += chunk;
    }
    if (read_ahead_.empty())
        return std::nullopt;
    EngineBatch batch;
    batch.number = ++batch_no_;
    const size_t n = std::min(batch_size, read_ahead_.size());
    batch.changes.reserve(n);
    for (size_t i = 0; i < n; i++) {
        last_handed_seq_ = std::max(last_handed_seq_, read_ahead_.front().seq);
        batch.changes.push_back(std::move(read_ahead_.front()));
        read_ahead_.pop_front();
    }
    return batch;
}

RecordingSetup SyncRun::MakeRecordingSetup() const {
    RecordingSetup setup;
    setup.run_id = run_id_;
    setup.sync_id = def_.id;
    setup.sync_name = def_.name;
    setup.shadow_table = def_.shadow_table;
    setup.mode = def_.mode;
    setup.tracked = tracked_;
    setup.resync = resync_;
    setup.bulk_insert = g_shadow_bulk_insert;
    setup.settle_time_ms = settings_.settle_time_ms;
    return setup;
}

void SyncRun::Flush() {
    if (pending_changes_.empty())
        return;
    for (RowOutcome &o : pending_outcomes_)
        if (!o.accepted) {
            o.reason = redactor_.Apply(o.reason, 1000);
            o.error_code = redactor_.Apply(o.error_code, 200);
            o.hint = redactor_.Apply(o.hint, 1000);
        }
    RecordingGroup group;
    group.record = BuildBatchRecord(pending_changes_, pending_outcomes_, 1);
    group.seqs.reserve(pending_changes_.size());
    for (const Change &c : pending_changes_)
        group.seqs.push_back(c.seq);
    std::sort(group.seqs.begin(), group.seqs.end());
    group.jobs = pending_jobs_;
    const EngineStats counted = live_stats_;
    group.requests = counted.requests - sent_stats_.requests;
    group.retries = counted.retries - sent_stats_.retries;
    group.rows_retried = counted.rows_retried - sent_stats_.rows_retried;
    group.throttled = counted.throttled - sent_stats_.throttled;
    group.version_id = version_id_;
    group.sent_after = sent_after_;
    const GroupInRecording done{
        EngineStats{group.requests, group.retries, group.rows_retried, group.throttled},
        group.record.delivered, group.record.rejected_count};
    const bool ready = RecorderReady();
    if (ready)
        while (std::optional<RecordingReply> reply = recorder_->Receive(false))
            ApplyReply(*reply);
    if (ready && in_recording_.size() < kGroupsInRecording) {
        try {
            recorder_->Send(EncodeGroup(group));
        } catch (const RecorderStopped &) {
            // Why it stopped is in its last answers (a group it could not
            // record); without one, RecorderStopped stands.
            for (;;)
                ApplyReply(*recorder_->Receive(true));
        }
        sent_stats_ = counted;
        in_recording_.push_back(done);
    } else {
        // No recorder, one not started yet, or one busy with earlier
        // groups: recorded here, beside it (the groups' rows and keys are disjoint; the two
        // transactions meet only on the run's row of revetl.runs).
        // Kept jobs are resumed before the plan, which is what tells
        // whether the sync is tracked: the setup is the run's as it is now.
        if (!own_recorder_)
            own_recorder_ = std::make_unique<GroupRecorder>(MakeRecordingSetup());
        else
            own_recorder_->SetSetup(MakeRecordingSetup());
        const int64_t dequeued = own_recorder_->Record(group);
        sent_stats_ = counted;
        GroupRecorded(done, dequeued);
    }
    pending_jobs_.clear();
    pending_changes_.clear();
    pending_outcomes_.clear();
    pending_batches_ = 0;
    PgGuard([&] { last_flush_ = GetCurrentTimestamp(); });
}

bool SyncRun::RecorderReady() {
    if (!recorder_)
        return false;
    if (recorder_ready_)
        return true;
    // Its answer to the setup, if it has come (the recorder takes a few
    // milliseconds to start and connect; meanwhile this process records).
    // A recorder that could not start or had no slot leaves the recording
    // to this process.
    std::optional<RecordingReply> answer;
    bool stopped = false;
    try {
        answer = recorder_->Receive(false);
    } catch (const RecorderStopped &) {
        stopped = true;
    }
    if (answer && answer->kind == RecordingReply::Kind::Ready) {
        recorder_ready_ = true;
    } else if (answer || stopped) {
        (void)recorder_->Finish();
        recorder_.reset();
    }
    return recorder_ready_;
}

bool SyncRun::OffloadQueueChunk(int64 planned, int n, const Datum *values, const bool *nulls) {
    if (g_recorder_min_rows < 0 || row_limit_ >= 0)
        return false;
    try {
        if (!recorder_) {
            // Started once per plan, when the plan has proved big.
            if (plan_started_recorder_ || planned < g_recorder_min_rows)
                return false;
            plan_started_recorder_ = true;
            StartRecorder(planned);
            return false;
        }
        if (!RecorderReady())
            return false;
        while (std::optional<RecordingReply> reply = recorder_->Receive(false))
            ApplyReply(*reply);
        if (chunks_with_recorder_ >= kChunksWithRecorder)
            return false;
        // Bytes as stored (text, jsonb): the recorder makes the same values
        // of them. A removal's key and destination id come from the shadow
        // table and may be compressed or stored out of line: detoasting can
        // fail, so it is guarded (C++ objects live in this frame).
        auto bytes = [](Datum d) {
            const char *data = nullptr;
            size_t len = 0;
            PgGuard([&] {
                struct varlena *p =
                    pg_detoast_datum_packed(reinterpret_cast<struct varlena *>(DatumGetPointer(d)));
                data = VARDATA_ANY(p);
                len = VARSIZE_ANY_EXHDR(p);
            });
            return std::string(data, len);
        };
        QueueChunk chunk;
        chunk.run_id = run_id_;
        chunk.changes.resize(n);
        for (int i = 0; i < n; i++) {
            const Datum *v = values + i * QueueWriter::kColumns;
            const bool *isnull = nulls + i * QueueWriter::kColumns;
            QueuedChange &c = chunk.changes[i];
            c.seq = DatumGetInt64(v[1]);
            c.op = DatumGetChar(v[2]);
            c.key = bytes(v[3]);
            if (!isnull[4])
                c.row_hash = DatumGetInt64(v[4]);
            if (!isnull[5])
                c.dest_id = bytes(v[5]);
            if (!isnull[6])
                c.version = DatumGetInt64(v[6]);
        }
        recorder_->Send(EncodeQueueChunk(chunk));
        changes_offloaded_ += n;
        chunks_with_recorder_++;
        recorder_queue_open_ = true;
        return true;
    } catch (const PgError &e) {
        offload_errcode_ = e.sqlerrcode;
        offload_error_ = e.message;
    } catch (const SyncDropped &e) {
        offload_errcode_ = ERRCODE_INTERNAL_ERROR;
        offload_error_ = e.what();
    } catch (const std::exception &e) {
        offload_errcode_ = ERRCODE_INTERNAL_ERROR;
        offload_error_ = e.what();
    }
    // Nothing of this frame needs destroying now: the error leaves as
    // PostgreSQL's, through the plan's guard.
    ereport(ERROR, (errcode(offload_errcode_), errmsg("%s", offload_error_.c_str())));
    return false;
}

void SyncRun::CommitOffloadedQueue() {
    if (!recorder_ || !recorder_queue_open_)
        return;
    try {
        recorder_->Send(EncodeQueueCommit());
    } catch (const RecorderStopped &) {
        // Why it stopped is in its last answers (a chunk it could not
        // queue, with PostgreSQL's words); without one, RecorderStopped
        // stands.
        for (;;)
            ApplyReply(*recorder_->Receive(true));
    }
    for (;;) {
        const RecordingReply reply = *recorder_->Receive(true);
        if (reply.kind == RecordingReply::Kind::Committed)
            break;
        ApplyReply(reply);
    }
    recorder_queue_open_ = false;
    chunks_with_recorder_ = 0;
}

void SyncRun::GroupRecorded(const GroupInRecording &group, int64_t dequeued) {
    // Added up, not assigned: the recorder's groups and this process's
    // are recorded in either order.
    recorded_stats_.requests += group.added.requests;
    recorded_stats_.retries += group.added.retries;
    recorded_stats_.rows_retried += group.added.rows_retried;
    recorded_stats_.throttled += group.added.throttled;
    dequeued_ += dequeued;
    rejected_ += group.rejected;
    delivered_ += group.delivered;
}

void SyncRun::ApplyReply(const RecordingReply &reply) {
    switch (reply.kind) {
    case RecordingReply::Kind::Recorded:
        if (in_recording_.empty())
            throw std::runtime_error("revetl: the run's recorder process answered a group it was not sent");
        GroupRecorded(in_recording_.front(), reply.dequeued);
        in_recording_.pop_front();
        return;
    case RecordingReply::Kind::Queued:
        chunks_with_recorder_--;
        return;
    case RecordingReply::Kind::Dropped:
        throw SyncDropped();
    default:
        // As the run's own error would read (Execute, PgError).
        throw std::runtime_error(reply.message + (reply.detail.empty() ? "" : " (" + reply.detail + ")"));
    }
}

void SyncRun::StartRecorder(int64_t rows) {
    if (recorder_ || g_recorder_min_rows < 0 || rows < g_recorder_min_rows)
        return;
    recorder_ = RecorderProcess::Start(MakeRecordingSetup());
    recorder_ready_ = false;
    in_recording_.clear();
    chunks_with_recorder_ = 0;
    recorder_queue_open_ = false;
}

void SyncRun::DrainRecorder() {
    while (recorder_ && !in_recording_.empty())
        ApplyReply(*recorder_->Receive(true));
}

void SyncRun::StopRecorder() {
    if (!recorder_)
        return;
    std::vector<RecordingReply> replies = recorder_->Finish();
    recorder_.reset();
    // Groups it recorded after the run stopped reading its answers (an
    // error, a cancel): counted, so that the run's end knows what is left.
    for (const RecordingReply &reply : replies)
        if (reply.kind == RecordingReply::Kind::Recorded && !in_recording_.empty()) {
            GroupRecorded(in_recording_.front(), reply.dequeued);
            in_recording_.pop_front();
        }
    in_recording_.clear();
}

void SyncRun::Deliver() {
    StartRecorder(queued_ - last_seq_);
    RunDelivery([this] { return ReadBatch(); });
    StopRecorder();
}

// The CPU time (user and system) this process has used.
int64_t ProcessCpuMicroseconds() {
    struct rusage usage {};
    if (getrusage(RUSAGE_SELF, &usage) != 0)
        return 0;
    return (static_cast<int64_t>(usage.ru_utime.tv_sec) + usage.ru_stime.tv_sec) * 1000000 +
           usage.ru_utime.tv_usec + usage.ru_stime.tv_usec;
}

bool SyncRun::ContinuesOnChange() const {
    // Only runs the scheduler started for new changes: a run_sync() caller
    // waits for its run to end, and a test, full or resync run is one plan.
    return g_change_run_duration_ms > 0 && trigger_ == "on change" && !definition_.empty() &&
           def_.schedule.kind == dsl::Schedule::Kind::OnChange && tracked_ && incremental_ &&
           row_limit_ < 0 && !resync_ && !full_requested_;
}

// An ON CHANGE run goes on after its first plan: it waits on its latch,
// which the capture triggers' commits set (revetl._capture_wake), and plans
// and delivers the keys captured since, each plan exactly as the first (one
// snapshot, captured keys deleted with it, rows recorded as accepted, refused
// and undelivered keys captured again), so that a change reaches the
// destination in about one plan and one request rather than a process start.
// Commits that arrive during a plan or a delivery are taken by the next plan:
// many updates of one row become one. The run ends when
// revetl.change_run_duration has passed since it started, after a second
// with nothing captured, when the sync is altered, paused, renamed or
// dropped, when another run of it is queued (run_sync), or when a TRUNCATE
// or rebuild asks for a full diff; keys
// captured after its last look are the scheduler's, as before.
void SyncRun::DeliverChangesAsTheyCommit() {
    constexpr long kIdleMs = 1000;
    // Plans start at most this often: commits arriving faster are taken
    // together, so that a busy table costs the run one plan per interval
    // rather than one per commit, and the writers keep the CPU.
    constexpr long kMinPlanIntervalMs = 20;
    // A plan and its delivery cost about the same CPU whether they carry
    // ten keys or a few hundred (transactions, the queue's scans, a
    // request). So the next plan waits until the CPU this process used for
    // the last is at most a quarter of the time since it began: at a
    // thousand commits a second that is a few milliseconds and the interval
    // stays at its minimum; when the writers keep the table busy, plans
    // grow larger rather than more frequent, and the run takes about a
    // quarter of one CPU from them, up to this interval. (CPU, not elapsed
    // time: a slow destination or a slow disk does not stretch it.)
    constexpr long kMaxPlanIntervalMs = 100;
    constexpr long kCpuShare = 4;
    long plan_interval_ms = kMinPlanIntervalMs;
    TimestampTz last_plan = 0;
    TimestampTz now = 0;
    PgGuard([&] {
        now = GetCurrentTimestamp();
        pgstat_report_activity(STATE_RUNNING, "revetl: waiting for changes");
    });
    const TimestampTz end = TimestampTzPlusMilliseconds(started_at_, g_change_run_duration_ms);
    // The further plans' and recordings' commits do not wait for their WAL
    // to reach disk. A server crash can lose only the last of them, in
    // commit order: the state is then as if this process had died after an
    // earlier commit, which recovery already handles (the lost plans' keys
    // are still captured; rows sent and not recorded are re-verified and
    // captured again), so nothing is lost, a change may be sent again. That
    // holds only if no row of a lost plan was sent: a plan's queue is
    // recovery's only record of what may be at the destination (a key added
    // and sent, then deleted from the model, would otherwise be planned as
    // nothing, its shadow row never written, and stay at the destination).
    // So a plan's commit is flushed before its rows are sent (below): most
    // often the writers' own commits have flushed it already. A recording
    // still does not wait (one flush less per change).
    PgGuard([] { SetConfigOption("synchronous_commit", "off", PGC_SUSET, PGC_S_SESSION); });
    TimestampTz idle_end = TimestampTzPlusMilliseconds(now, kIdleMs);
    for (;;) {
        CheckInterrupts();
        PgGuard([&] { now = GetCurrentTimestamp(); });
        if (now >= end)
            return;
        BeginTransaction("revetl: looking for changes");
        // Planned once for the run (it runs up to every 20 ms).
        static PreparedSql *const look = new PreparedSql(
            "SELECT (SELECT pg_catalog.row_to_json(s)::text FROM revetl.syncs s WHERE s.id = $1), "
            "coalesce(bool_or(NOT retry), false), coalesce(bool_or(key IS NULL), false), "
            "EXISTS (SELECT 1 FROM revetl.runs q WHERE q.status = 'queued' AND q.sync_id = $1) "
            "FROM revetl.captured_changes WHERE sync_id = $1");
        SqlResult r = look->Run({SqlArg::Int8(def_.id)});
        // A run queued for the sync (run_sync, a test run) goes next: this
        // one ends rather than keep it waiting.
        const bool same = r.At(0, 0) && *r.At(0, 0) == definition_ && !r.Bool(0, 3);
        const bool fresh = r.Bool(0, 1);
        const bool full_diff_asked = r.Bool(0, 2);
        if (same && fresh && !full_diff_asked)
            version_id_ = NextRecordingId();
        CommitTransaction();
        if (!same || full_diff_asked)
            return;
        if (!fresh) {
            if (now >= idle_end)
                return;
            const TimestampTz until = std::min(end, idle_end);
            const long ms = static_cast<long>((until - now) / 1000) + 1;
            PgGuard([&] {
                (void)WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH, ms,
                                PG_WAIT_EXTENSION);
                ResetLatch(MyLatch);
            });
            continue;
        }
        const TimestampTz next_plan = TimestampTzPlusMilliseconds(last_plan, plan_interval_ms);
        if (now < next_plan)
            SleepMs(static_cast<long>((next_plan - now) / 1000) + 1);
        PgGuard([&] { last_plan = GetCurrentTimestamp(); });
        const int64_t cpu_before = ProcessCpuMicroseconds();
        // The earlier plans' rows are all recorded (Deliver flushed them).
        last_seq_ = queued_;
        read_ahead_.clear();
        Plan();
        // On disk before anything of it is sent (see above).
        if (queued_ > last_seq_)
            PgGuard([] { XLogFlush(XactLastCommitEnd); });
        Deliver();
        // A TRUNCATE that committed after the look above made that plan a
        // full diff: the run ends, and records that it had one.
        if (!incremental_)
            return;
        PgGuard([&] {
            plan_interval_ms =
                std::clamp(static_cast<long>((ProcessCpuMicroseconds() - cpu_before) / 1000) * kCpuShare,
                           kMinPlanIntervalMs, kMaxPlanIntervalMs);
            idle_end = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), kIdleMs);
            pgstat_report_activity(STATE_RUNNING, "revetl: waiting for changes");
        });
    }
}

int64_t SyncRun::KeepJob(const EngineBatch &batch, const PreparedRequest &poll) {
    std::vector<int64_t> seqs, hashes, versions;
    std::vector<std::string> ops, keys, payloads, dest_ids;
    for (size_t i : poll.rows) {
        const Change &c = batch.changes[i];
        seqs.push_back(c.seq);
        ops.push_back(c.op == Change::Op::Remove ? "r" : c.op == Change::Op::Change ? "c" : "a");
        keys.push_back(c.key);
        payloads.push_back(c.payload);
        hashes.push_back(c.row_hash);
        dest_ids.push_back(c.dest_id);
        versions.push_back(c.version);
    }
    BeginTransaction("revetl: keeping a job");
    SqlResult r =
        Sql("INSERT INTO revetl.delivery_jobs (sync_id, run_id, batch_no, job_id, step, flow_state, rows, "
            "row_count) "
            "SELECT $1, $2, $3, $4, $5, $6, coalesce(pg_catalog.jsonb_agg(pg_catalog.jsonb_build_object("
            "'seq', u.seq, 'op', u.op, 'key', u.key, 'payload', NULLIF(u.payload, '')::jsonb, "
            "'row_hash', u.row_hash, 'dest_id', u.dest_id, 'version', u.version) ORDER BY u.o), "
            "'[]'::jsonb), count(*) "
            "FROM unnest($7::bigint[], $8::text[], $9::text[], $10::text[], $11::bigint[], $12::text[], "
            "$13::bigint[]) WITH ORDINALITY AS u(seq, op, key, payload, row_hash, dest_id, version, o) "
            "RETURNING id",
            {SqlArg::Int8(def_.id), SqlArg::Int8(run_id_), SqlArg::Int8(batch.number),
             SqlArg::Text(poll.flow.job_id), SqlArg::Text(poll.flow.step), SqlArg::Text(poll.flow.state),
             SqlArg::Int8Array(seqs), SqlArg::TextArray(ops), SqlArg::TextArray(keys),
             SqlArg::TextArray(payloads), SqlArg::Int8Array(hashes), SqlArg::TextArray(dest_ids),
             SqlArg::Int8Array(versions)});
    CommitTransaction();
    int64_t id = r.Int8(0, 0);
    jobs_by_batch_[batch.number].push_back(id);
    return id;
}

void SyncRun::LoseJob(int64_t handle, const std::string &why) {
    BeginTransaction("revetl: recording a lost job");
    Sql("UPDATE revetl.delivery_jobs SET state = 'expired', finished_at = pg_catalog.now(), note = $2 "
        "WHERE id = $1",
        {SqlArg::Int8(handle), SqlArg::Text(redactor_.Apply("its rows were sent again: " + why, 1000))});
    CommitTransaction();
    for (auto &entry : jobs_by_batch_)
        entry.second.erase(std::remove(entry.second.begin(), entry.second.end(), handle), entry.second.end());
}

void SyncRun::ResumeKeptJobs(const std::vector<int64_t> *parked) {
    // Runs of one sync never overlap (the claim taken in Start): a pending
    // job of this sync that this run did not park belongs to a run that
    // ended without recording its rows. Expired jobs are kept a day, for
    // whoever looks into a resend.
    BeginTransaction("revetl: reading kept jobs");
    if (!parked)
        Sql("DELETE FROM revetl.delivery_jobs WHERE sync_id = $1 AND state <> 'pending' "
            "AND finished_at < pg_catalog.now() - interval '1 day'",
            {SqlArg::Int8(def_.id)});
    SqlResult jobs =
        Sql("SELECT id, job_id, step, flow_state FROM revetl.delivery_jobs "
            "WHERE sync_id = $1 AND state = 'pending' AND ($2::bigint[] IS NULL OR id = ANY ($2)) "
            "ORDER BY id",
            {SqlArg::Int8(def_.id), parked ? SqlArg::Int8Array(*parked) : SqlArg::Null(INT8ARRAYOID)});
    CommitTransaction();
    if (jobs.rows.empty())
        return;
    // One job's rows at a time (a run's parked jobs may hold all its rows).
    size_t next = 0;
    auto next_job = [&]() -> std::optional<EngineBatch> {
        if (next >= jobs.rows.size())
            return std::nullopt;
        const size_t j = next++;
        EngineBatch b;
        b.number = ++batch_no_;
        const int64_t id = jobs.Int8(j, 0);
        b.resume = KeptJob{id, FlowStep{jobs.Text(j, 2), jobs.Text(j, 1), jobs.Text(j, 3)}};
        jobs_by_batch_[b.number].push_back(id);
        BeginTransaction("revetl: reading a kept job");
        SqlResult rows =
            Sql("SELECT (e.v->>'seq')::bigint, e.v->>'op', e.v->>'key', (e.v->'payload')::text, "
                "(e.v->>'row_hash')::bigint, e.v->>'dest_id', (e.v->>'version')::bigint "
                "FROM revetl.delivery_jobs j "
                "CROSS JOIN LATERAL pg_catalog.jsonb_array_elements(j.rows) WITH ORDINALITY AS e(v, o) "
                "WHERE j.id = $1 ORDER BY e.o",
                {SqlArg::Int8(id)});
        CommitTransaction();
        b.changes.reserve(rows.rows.size());
        for (size_t i = 0; i < rows.rows.size(); i++) {
            Change c;
            c.seq = rows.Int8(i, 0);
            const std::string op = rows.Text(i, 1);
            // An interrupted run's added row is recorded as a change: that
            // run left a placeholder for its key in the shadow table
            // (worker.cpp, RecoverInterruptedRuns), which a plain insert
            // would collide with. A row this run parked has none.
            c.op = op == "r"             ? Change::Op::Remove
                   : op == "a" && parked ? Change::Op::Add
                                         : Change::Op::Change;
            c.key = rows.Text(i, 2);
            c.payload = rows.At(i, 3) && *rows.At(i, 3) != "null" ? *rows.At(i, 3) : "";
            c.row_hash = rows.At(i, 4) ? rows.Int8(i, 4) : 0;
            c.dest_id = rows.At(i, 5) ? rows.Text(i, 5) : "";
            c.version = rows.At(i, 6) ? rows.Int8(i, 6) : 0;
            b.changes.push_back(std::move(c));
        }
        return b;
    };
    PgGuard([&] {
        pgstat_report_activity(STATE_RUNNING,
                               parked ? "revetl: finishing the run's jobs" : "revetl: resuming kept jobs");
    });
    RunDelivery(next_job, true);
    if (!parked)
        PgGuard([&] {
            ereport(LOG, (errmsg("revetl: run %lld of sync \"%s\" in database \"%s\" resumed %zu jobs an "
                                 "interrupted run left pending",
                                 (long long)run_id_, def_.name.c_str(), DatabaseName(), jobs.rows.size()),
                          errdetail("Jobs the destination no longer knew had their rows sent again; "
                                    "revetl.delivery_jobs keeps them a day as 'expired'.")));
        });
}

void SyncRun::RunDelivery(std::function<std::optional<EngineBatch>()> next_batch, bool final_pass) {
    // Big batches commit one at a time; small ones are grouped, up to 512
    // batches, 5000 rows or 50 ms, whichever comes first. (A commit per 64
    // single-record batches took up to a quarter of a single-record run's
    // delivery.)
    constexpr int64_t kFlushBatches = 512;
    constexpr long kFlushEveryMs = 50;
    // Kept jobs whose rows wait for the last batch (one job for many
    // batches): their rows stay queued and unrecorded until resumed below.
    std::vector<int64_t> parked_jobs;
    EngineHooks hooks;
    hooks.next_batch = std::move(next_batch);
    hooks.batch_done = [&](const EngineBatch &batch, const std::vector<RowOutcome> &outcomes) {
        std::vector<int64_t> parked;
        for (size_t i = 0; i < batch.changes.size(); i++) {
            if (outcomes[i].parked_job != 0) {
                // In a kept job until the run's last batch: still queued,
                // recorded when the job is resumed.
                if (std::find(parked.begin(), parked.end(), outcomes[i].parked_job) == parked.end())
                    parked.push_back(outcomes[i].parked_job);
                continue;
            }
            pending_changes_.push_back(batch.changes[i]);
            pending_outcomes_.push_back(outcomes[i]);
        }
        auto jobs = jobs_by_batch_.find(batch.number);
        if (jobs != jobs_by_batch_.end()) {
            for (int64_t id : jobs->second)
                (std::find(parked.begin(), parked.end(), id) == parked.end() ? pending_jobs_ : parked_jobs)
                    .push_back(id);
            jobs_by_batch_.erase(jobs);
        }
        pending_batches_++;
        TimestampTz now = 0;
        PgGuard([&] { now = GetCurrentTimestamp(); });
        if (pending_batches_ >= kFlushBatches || pending_changes_.size() >= 5000 ||
            now - last_flush_ >= kFlushEveryMs * 1000L)
            Flush();
    };
    hooks.check_interrupts = CheckInterrupts;
    hooks.sleep = SleepMs;
    hooks.random = [] { return std::uniform_real_distribution<double>(0.0, 1.0)(Rng()); };
    hooks.rate_delay_ms = [this] {
        long d = 0;
        PgGuard([&] {
            d = RateDelayMs(server_oid_, rate_sync_id_, settings_.rate_limit.count,
                            settings_.rate_limit.period_ms);
        });
        return d;
    };
    hooks.throttle = [this](long ms) {
        PgGuard([&] { ThrottleDestination(server_oid_, rate_sync_id_, ms); });
    };
    hooks.job_accepted = [this](const EngineBatch &batch, const PreparedRequest &poll) {
        return KeepJob(batch, poll);
    };
    hooks.job_lost = [this](int64_t handle, const std::string &why) { LoseJob(handle, why); };
    if (oauth_) {
        // Every request goes with the current token, refreshed before it
        // expires; a 401 refreshes once (unless another request already
        // did) and the engine replays the request once.
        hooks.authorize = [this](HttpRequest &request) {
            std::string error = oauth_->Ensure();
            if (!error.empty())
                throw DestinationFailure(error);
            ApplyAuth(settings_.credentials, request);
        };
        hooks.refresh_auth = [this](const HttpRequest &sent) {
            std::string token;
            for (const auto &h : sent.headers)
                if (strcasecmp(h.first.c_str(), "Authorization") == 0 && h.second.rfind("Bearer ", 0) == 0)
                    token = h.second.substr(7);
            return oauth_->Refresh(token);
        };
    }
    EngineConfig config;
    config.max_in_flight = settings_.max_in_flight;
    config.retry = policy_;
    config.jobs = settings_.job_polling;
    BatchContext context{def_.id, def_.name, run_id_, 0, "upsert"};
    context.planned_rows = queued_;
    context.final_pass = final_pass;
    PgGuard([&] {
        last_flush_ = GetCurrentTimestamp();
        pgstat_report_activity(STATE_RUNNING, "revetl: delivering");
    });
    // A run may run the engine twice (kept jobs, then the plan's batches),
    // and each counts from zero: what the earlier one counted and no commit
    // recorded yet is carried over by lowering recorded_stats_ as much.
    recorded_stats_.requests -= live_stats_.requests;
    recorded_stats_.retries -= live_stats_.retries;
    recorded_stats_.rows_retried -= live_stats_.rows_retried;
    recorded_stats_.throttled -= live_stats_.throttled;
    earlier_stats_.requests += live_stats_.requests;
    earlier_stats_.retries += live_stats_.retries;
    earlier_stats_.rows_retried += live_stats_.rows_retried;
    earlier_stats_.throttled += live_stats_.throttled;
    live_stats_ = EngineStats{};
    hooks.live_stats = &live_stats_;
    hooks.stats_changed = [this] { WriteCounts(); };
    sent_stats_ = recorded_stats_;
    EngineResult result = RunEngine(Client(), *connector_, context, config, hooks);
    Flush();
    DrainRecorder();
    // The run's batches are all out: the jobs parked for them are finished
    // now (run and polled), their rows recorded like any others.
    if (result.ok && !final_pass && !parked_jobs.empty()) {
        ResumeKeptJobs(&parked_jobs);
        return; // that delivery logged the run's note, and stops the run on failure
    }
    // What the destination said about itself (Salesforce's API usage), in
    // the server log rather than as a NOTICE to whoever ran the sync.
    const std::string note = connector_->RunNote();
    if (!note.empty())
        PgGuard([&] {
            ereport(LOG, (errmsg("revetl: run %lld of sync \"%s\": %s", static_cast<long long>(run_id_),
                                 def_.name.c_str(), note.c_str())));
        });
    if (!result.ok)
        throw DestinationFailure(result.error);
}

void SyncRun::WriteCounts() {
    if (!counts_file_)
        counts_file_ = std::make_unique<RunCountsFile>(MyDatabaseId, run_id_);
    EngineStats totals = earlier_stats_;
    totals.requests += live_stats_.requests;
    totals.retries += live_stats_.retries;
    totals.rows_retried += live_stats_.rows_retried;
    totals.throttled += live_stats_.throttled;
    counts_file_->Write(totals);
}

void SyncRun::Finish(const std::string &status, const std::string &error) {
    // The run's outcome is recorded whatever cancel request arrives now.
    PgGuard([] {
        QueryCancelPending = false;
        HOLD_CANCEL_INTERRUPTS();
    });
    // Its last groups recorded and the process gone before the outcome, so
    // that what is left of the queue is exactly what was not recorded.
    StopRecorder();
    // The payloads' file is removed. Closing it writes its last buffer,
    // which fails as the plan may just have (temp_file_limit, a full disk):
    // it is then left to the process's exit, and the run's outcome stands.
    try {
        PgGuard([&] { ClosePayloadStore(&payloads_); });
    } catch (const PgError &) {
        PgGuard([&] { DropPayloadStore(&payloads_); });
    }
    BeginTransaction("revetl: finishing run");
    SqlResult r =
        Sql("UPDATE revetl.runs SET status = $2, finished_at = pg_catalog.clock_timestamp(), error = $3 "
            "WHERE id = $1 RETURNING sync_name",
            {SqlArg::Int8(run_id_), SqlArg::Text(status),
             error.empty() ? SqlArg::Null(TEXTOID) : SqlArg::Text(error)});
    // Rows of this run that were planned and not recorded as delivered may
    // be in a request the destination applies late: whatever the shadow
    // state says about them is checked again after the settle time.
    // (Not in INSERT mode, which never plans changed rows: a placeholder
    // would hide the row from every later run.)
    const bool dropped = status == "cancelled" && error == kCancelledByDrop;
    if ((status == "failed" || status == "interrupted" || (status == "cancelled" && !dropped)) &&
        !def_.shadow_table.empty() && def_.mode != "insert")
        MarkPlannedRowsUncertain(def_.shadow_table, run_id_, settings_.settle_time_ms, last_handed_seq_,
                                 plans_ > 1 ? NextRecordingId() : run_id_);
    // A run that planned fits its model again.
    if (status == "succeeded" || status == "partial")
        Sql("UPDATE revetl.sync_state SET model_problem = NULL WHERE sync_id = $1 AND model_problem IS NOT "
            "NULL",
            {SqlArg::Int8(def_.id)});
    // Requests made since the last commit (all of them, when the run
    // stopped before one).
    Sql("UPDATE revetl.runs SET requests = requests + $2, retries = retries + $3, "
        "rows_retried = rows_retried + $4, throttled = throttled + $5 WHERE id = $1",
        {SqlArg::Int8(run_id_), SqlArg::Int8(live_stats_.requests - recorded_stats_.requests),
         SqlArg::Int8(live_stats_.retries - recorded_stats_.retries),
         SqlArg::Int8(live_stats_.rows_retried - recorded_stats_.rows_retried),
         SqlArg::Int8(live_stats_.throttled - recorded_stats_.throttled)});
    // A failed run of a tracked sync leaves its captured keys for the next
    // run, but must not start that run at once (the scheduler would retry a
    // broken sync without pause): they wait for the next change or run.
    if (status == "failed" && def_.id != 0 && def_.Tracked())
        Sql("UPDATE revetl.captured_changes SET retry = true WHERE sync_id = $1 AND NOT retry",
            {SqlArg::Int8(def_.id)});
    if (tracked_ && status != "succeeded" && status != "partial" && !dropped)
        Sql("INSERT INTO revetl.captured_changes (sync_id, key, retry) SELECT $2, key, true FROM "
            "revetl.changes "
            "WHERE run_id = $1",
            {SqlArg::Int8(run_id_), SqlArg::Int8(def_.id)});
    if (tracked_ && !incremental_ && row_limit_ < 0 && (status == "succeeded" || status == "partial") &&
        (!def_.TrackedByWal() || wal_slot_ready_))
        Sql("INSERT INTO revetl.sync_state (sync_id, incremental_ready) VALUES ($1, true) "
            "ON CONFLICT (sync_id) DO UPDATE SET incremental_ready = true",
            {SqlArg::Int8(def_.id)});
    // An interrupted run is resumed: a run of the same sync is queued (it
    // plans afresh; what was in flight is re-verified), unless the sync was
    // paused or dropped meanwhile.
    if (status == "interrupted" && def_.id != 0)
        Sql("INSERT INTO revetl.runs (sync_id, sync_name, trigger, requested_by) "
            "SELECT id, name, 'retry', 'revetl' FROM revetl.syncs WHERE id = $1 AND NOT paused",
            {SqlArg::Int8(def_.id)});
    // What is left of the run's queue. Not looked for when every queued row
    // was deleted as it was recorded: the look walks the index entries of
    // every row the run queued, which after a million rows took a quarter of
    // a second between the run's end and its caller being told.
    if (dequeued_ < queued_)
        Sql("DELETE FROM revetl.changes WHERE run_id = $1", {SqlArg::Int8(run_id_)});
    if (!r.rows.empty())
        Sql("SELECT pg_catalog.pg_notify('revetl_runs', pg_catalog.json_build_object('sync', $1::text, "
            "'run_id', "
            "$2::bigint, "
            "'status', $3::text)::text)",
            {SqlArg::Text(r.Text(0, 0)), SqlArg::Int8(run_id_), SqlArg::Text(status)});
    CommitTransaction();
    // The outcome is visible: a run_sync waiting for it returns now, not
    // when the scheduler has reaped this process (which, after a big run,
    // came up to a second later).
    if (!r.rows.empty())
        PgGuard([&] {
            if (MarkWaitsDone(run_id_, WaitKind::Run, status, error))
                ConditionVariableBroadcast(&g_shared->run_finished);
        });
    // The run's row has every count now.
    if (counts_file_)
        counts_file_->Remove();
}

RunResult SyncRun::Execute() {
    RunResult result;
    result.run_id = run_id_;
    std::string error;
    std::string status;
    bool from_destination = false;
    try {
        if (!Start()) {
            result.status = "skipped";
            return result;
        }
        ResumeKeptJobs();
        Plan();
        Deliver();
        if (ContinuesOnChange())
            DeliverChangesAsTheyCommit();
        status = (rejected_ > 0 || invalid_ > 0) ? "partial" : "succeeded";
    } catch (const SyncDropped &e) {
        AbortTransaction();
        status = "cancelled";
        error = e.what();
    } catch (const SyncPaused &e) {
        AbortTransaction();
        status = "cancelled";
        error = e.what();
    } catch (const SyncHeldAsCopy &e) {
        AbortTransaction();
        status = "cancelled";
        error = e.what();
    } catch (const DestinationFailure &e) {
        AbortTransaction();
        status = "failed";
        error = e.what();
        from_destination = true;
    } catch (const PgError &e) {
        AbortTransaction();
        status = "failed";
        error = e.message;
        if (!e.detail.empty())
            error += " (" + e.detail + ")";
        if (e.sqlerrcode == ERRCODE_QUERY_CANCELED && planning_)
            error = "planning took longer than the sync's plan_timeout (" +
                    std::to_string(def_.options.plan_timeout_ms / 1000) + "s)";
        else if (planning_)
            plan_error_ = true;
    } catch (const std::exception &e) {
        AbortTransaction();
        status = "failed";
        error = e.what();
    }
    PgGuard([] { disable_timeout(STATEMENT_TIMEOUT, false); });
    // A plan that failed on the model (a column dropped, the table renamed)
    // says which sync and which map entry no longer fit, as CREATE SYNC
    // would, rather than only PostgreSQL's words about revetl's query.
    if (plan_error_ && !g_terminating) {
        try {
            BeginTransaction("revetl: checking the definition");
            std::optional<std::string> problem = DefinitionProblem(def_);
            if (problem)
                Sql("INSERT INTO revetl.sync_state (sync_id, model_problem) VALUES ($1, $2) "
                    "ON CONFLICT (sync_id) DO UPDATE SET model_problem = excluded.model_problem",
                    {SqlArg::Int8(def_.id), SqlArg::Text(*problem)});
            CommitTransaction();
            if (problem)
                error = "sync \"" + def_.name + "\" no longer fits its model: " + *problem;
        } catch (const std::exception &) {
            AbortTransaction(); // the run's own error stands
        }
    }
    // A shutdown (or pg_terminate_backend) stopped the run: it did not fail;
    // it is recorded as interrupted and queued again.
    if (g_terminating && status != "succeeded" && status != "partial" && status != "cancelled") {
        status = "interrupted";
        error = "the run was stopped by a server shutdown or pg_terminate_backend; it is queued again";
        from_destination = false;
    }
    // DROP SYNC and PAUSE interrupt a run in progress (SIGINT): whatever
    // error that made, the run was cancelled.
    std::string cancelled_by;
    PgGuard([&] { cancelled_by = CancelReason(); });
    if (!cancelled_by.empty() && status != "succeeded" && status != "partial") {
        status = "cancelled";
        error = cancelled_by;
    }
    // No secret revetl knows for the destination survives into the run's
    // error, and the error is bounded.
    error = redactor_.Apply(error);
    // A partial run is logged too, with its counts: monitoring that reads
    // the server log sees refused and invalid rows, not only failures.
    if (status == "partial")
        PgGuard([&] {
            ereport(LOG,
                    (errmsg("revetl: run %lld of sync \"%s\" in database \"%s\" ended partial: %lld rows "
                            "delivered, %lld refused by the destination, %lld invalid",
                            (long long)run_id_, def_.name.c_str(), DatabaseName(), (long long)delivered_,
                            (long long)rejected_, (long long)invalid_),
                     errhint("SELECT * FROM revetl.rejected_rows WHERE run_id = %lld shows the rows and why.",
                             (long long)run_id_)));
        });
    if (status == "failed")
        PgGuard([&] {
            if (from_destination)
                ereport(LOG, (errmsg("revetl: run %lld of sync \"%s\" in database \"%s\" failed while "
                                     "delivering",
                                     (long long)run_id_, def_.name.c_str(), DatabaseName()),
                              errdetail("What the destination answered is in revetl.sync_runs.error, for the "
                                        "sync's owner.")));
            else
                ereport(LOG, (errmsg("revetl: run %lld of sync \"%s\" in database \"%s\" failed: %s",
                                     (long long)run_id_, def_.name.c_str(), DatabaseName(), error.c_str())));
        });
    Finish(status, error);
    result.status = status;
    result.error = error;
    return result;
}

} // namespace

void MarkPlannedRowsUncertain(const std::string &shadow_table, int64_t run_id, int64_t settle_ms,
                              int64_t last_sent_seq, int64_t version) {
    // INSERT mode never comes here: it plans no changed rows, so a marked
    // row would hide its key from every later run.
    Sql("INSERT INTO " + QualifiedName(kSchema, shadow_table) +
            " AS s (key, row_hash, run_id, verify_after, version, removed) "
            "SELECT c.key, 0, $1, pg_catalog.now() + pg_catalog.make_interval(secs => $2 / 1000.0), $4, true "
            "FROM revetl.changes c WHERE c.run_id = $1 AND c.seq <= $3 "
            "ON CONFLICT (key) DO UPDATE SET verify_after = greatest(s.verify_after, excluded.verify_after), "
            "version = excluded.version",
        {SqlArg::Int8(run_id), SqlArg::Int8(settle_ms), SqlArg::Int8(last_sent_seq),
         SqlArg::Int8(version != 0 ? version : run_id)});
}

extern "C" void HandleRunSigterm(REVETL_SIGNAL_PARAMS) {
    int save_errno = errno;
    g_terminating = 1;
    // Like a query cancel: the statement or wait in progress ends with an
    // error at its next interrupt check, and the run records how it ended.
    InterruptPending = true;
    QueryCancelPending = true;
    SetLatch(MyLatch);
    errno = save_errno;
}

RunResult ExecuteRun(int64_t run_id) {
    SyncRun run(run_id);
    return run.Execute();
}

} // namespace revetl::pg
