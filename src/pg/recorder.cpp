#include "pg/recorder.hpp"

#include "pg/executor.hpp"
#include "pg/guard.hpp"
#include "pg/queue_writer.hpp"
#include "pg/session.hpp"
#include "pg/shadow_recording.hpp"
#include "pg/shared_state.hpp"
#include "pg/spi.hpp"

#include <algorithm>
#include <cstring>
#include <string_view>

extern "C" {
PGDLLEXPORT void revetl_recorder_main(Datum main_arg);
}

namespace revetl::pg {

namespace {

// The segment holds the queue to the recorder, then the queue back. A group
// of 5,000 rows is a few hundred kilobytes; a bigger one (refused rows
// carry their payloads) goes through in parts as the recorder reads it.
constexpr Size kToRecorderBytes = 4 * 1024 * 1024;
constexpr Size kFromRecorderBytes = 64 * 1024;
// Rows per multi-insert when queueing the plan's changes (the plan's fetch).
constexpr int kPlanChunkRows = 1000;

std::optional<RecordingReply> DecodedReply(Size n, const void *data) {
    RecordingReply reply;
    if (!DecodeReply(std::string_view(static_cast<const char *>(data), n), &reply))
        throw std::runtime_error("revetl: an answer of the run's recorder process could not be read");
    return reply;
}

} // namespace

std::unique_ptr<RecorderProcess> RecorderProcess::Start(const RecordingSetup &setup) {
    std::unique_ptr<RecorderProcess> p(new RecorderProcess());
    shm_mq *to = nullptr;
    shm_mq *from = nullptr;
    PgGuard([&] {
        p->segment_ = dsm_create(kToRecorderBytes + kFromRecorderBytes, DSM_CREATE_NULL_IF_MAXSEGMENTS);
        if (!p->segment_)
            return;
        // Mapped until detached, whatever transaction is current.
        dsm_pin_mapping(p->segment_);
        char *base = static_cast<char *>(dsm_segment_address(p->segment_));
        to = shm_mq_create(base, kToRecorderBytes);
        shm_mq_set_sender(to, MyProc);
        from = shm_mq_create(base + kToRecorderBytes, kFromRecorderBytes);
        shm_mq_set_receiver(from, MyProc);
    });
    if (!p->segment_)
        return nullptr;
    p->worker_ = StartDatabaseProcess("revetl_recorder_main",
                                      "revetl recorder for run " + std::to_string(setup.run_id),
                                      "revetl recorder", UInt32GetDatum(dsm_segment_handle(p->segment_)));
    if (!p->worker_)
        return nullptr; // the destructor detaches the segment
    PgGuard([&] {
        // The queues' handles live as long as the run's process needs them,
        // across its transactions. With the worker's handle, a recorder that
        // fails to start reads as detached rather than leaving this process
        // waiting.
        MemoryContext old = MemoryContextSwitchTo(TopMemoryContext);
        p->to_recorder_ = shm_mq_attach(to, p->segment_, p->worker_);
        p->from_recorder_ = shm_mq_attach(from, p->segment_, p->worker_);
        MemoryContextSwitchTo(old);
    });
    // Into an empty queue: does not wait for the recorder to start.
    p->Send(EncodeSetup(setup));
    return p;
}

RecorderProcess::~RecorderProcess() {
    // Finish() detached everything unless a run's error skipped it; the
    // recorder then sees its queue detached and stops.
    try {
        PgGuard([&] {
            if (segment_)
                dsm_detach(segment_);
        });
    } catch (...) {
    }
}

void RecorderProcess::Send(const std::string &message) {
    if (!to_recorder_)
        throw RecorderStopped();
    shm_mq_result result = SHM_MQ_SUCCESS;
    PgGuard([&] { result = shm_mq_send(to_recorder_, message.size(), message.data(), false, true); });
    if (result != SHM_MQ_SUCCESS)
        throw RecorderStopped();
}

std::optional<RecordingReply> RecorderProcess::Receive(bool wait) {
    if (!from_recorder_)
        throw RecorderStopped();
    shm_mq_result result = SHM_MQ_SUCCESS;
    Size n = 0;
    void *data = nullptr;
    PgGuard([&] { result = shm_mq_receive(from_recorder_, &n, &data, !wait); });
    if (result == SHM_MQ_WOULD_BLOCK)
        return std::nullopt;
    if (result != SHM_MQ_SUCCESS)
        throw RecorderStopped();
    return DecodedReply(n, data);
}

std::vector<RecordingReply> RecorderProcess::Finish() {
    std::vector<RecordingReply> replies;
    // Detaching is the end of the groups: the recorder still reads every
    // message sent in full before it (one cut short by an interrupt is not).
    if (to_recorder_) {
        PgGuard([&] { shm_mq_detach(to_recorder_); });
        to_recorder_ = nullptr;
    }
    if (from_recorder_) {
        for (;;) {
            try {
                if (std::optional<RecordingReply> reply = Receive(true))
                    replies.push_back(*reply);
            } catch (const RecorderStopped &) {
                break;
            }
        }
        PgGuard([&] { shm_mq_detach(from_recorder_); });
        from_recorder_ = nullptr;
    }
    if (worker_) {
        // Its slot (and so its claim on the sync) is gone once it has exited.
        PgGuard([&] {
            (void)WaitForBackgroundWorkerShutdown(worker_);
            pfree(worker_);
        });
        worker_ = nullptr;
    }
    if (segment_) {
        PgGuard([&] { dsm_detach(segment_); });
        segment_ = nullptr;
    }
    return replies;
}

namespace {

void WakeSchedulerAtExit(int, Datum arg) {
    // A run of the sync may be waiting for this process to go (queued, or
    // one whose process died before this one, which the scheduler recovers
    // only once nothing of the run is left).
    WakeWorkerOrLauncher(DatumGetObjectId(arg));
}

void Reply(shm_mq_handle *out, const RecordingReply &reply, bool *sent) {
    const std::string message = EncodeReply(reply);
    shm_mq_result result = SHM_MQ_SUCCESS;
    PgGuard([&] { result = shm_mq_send(out, message.size(), message.data(), false, true); });
    *sent = result == SHM_MQ_SUCCESS;
}

// Receives the next message into `*message`; false when the run's process
// has detached (no more groups) and every message was read.
bool NextMessage(shm_mq_handle *in, std::string_view *message) {
    shm_mq_result result = SHM_MQ_SUCCESS;
    Size n = 0;
    void *data = nullptr;
    PgGuard([&] { result = shm_mq_receive(in, &n, &data, false); });
    if (result != SHM_MQ_SUCCESS)
        return false;
    *message = std::string_view(static_cast<const char *>(data), n);
    return true;
}

// The plan's changes the recorder queues for the run: one transaction, from
// the first chunk to the plan's QueueCommit. Plain data, as QueueWriter.
struct PlanQueue {
    bool open = false;
    QueueWriter writer;
    MemoryContext chunk_cxt;
};

// Writes a chunk, opening the transaction with the first. The values are
// made from the bytes the plan sent: text and jsonb datums with a 4-byte
// header, as the plan's own would be once stored.
void QueueChunkOf(PlanQueue *q, const QueueChunk &chunk) {
    if (!q->open) {
        BeginTransaction("revetl: queueing planned changes");
        PgGuard([&] {
            OpenQueueWriter(&q->writer, kPlanChunkRows);
            q->chunk_cxt =
                AllocSetContextCreate(CurrentMemoryContext, "revetl queue chunk", ALLOCSET_DEFAULT_SIZES);
        });
        q->open = true;
    }
    PgGuard([&] {
        MemoryContext old = MemoryContextSwitchTo(q->chunk_cxt);
        auto varlena_of = [](const std::string &bytes) {
            struct varlena *v = static_cast<struct varlena *>(palloc(VARHDRSZ + bytes.size()));
            SET_VARSIZE(v, VARHDRSZ + bytes.size());
            memcpy(VARDATA(v), bytes.data(), bytes.size());
            return PointerGetDatum(v);
        };
        for (size_t start = 0; start < chunk.changes.size(); start += kPlanChunkRows) {
            const int n = static_cast<int>(std::min(chunk.changes.size() - start, size_t(kPlanChunkRows)));
            Datum *values = static_cast<Datum *>(palloc(n * QueueWriter::kColumns * sizeof(Datum)));
            bool *nulls = static_cast<bool *>(palloc0(n * QueueWriter::kColumns * sizeof(bool)));
            for (int i = 0; i < n; i++) {
                const QueuedChange &c = chunk.changes[start + i];
                Datum *v = values + i * QueueWriter::kColumns;
                bool *isnull = nulls + i * QueueWriter::kColumns;
                v[0] = Int64GetDatum(chunk.run_id);
                v[1] = Int64GetDatum(c.seq);
                v[2] = CharGetDatum(c.op);
                v[3] = varlena_of(c.key);
                isnull[4] = !c.row_hash;
                v[4] = Int64GetDatum(c.row_hash.value_or(0));
                isnull[5] = !c.dest_id;
                v[5] = c.dest_id ? varlena_of(*c.dest_id) : (Datum)0;
                isnull[6] = !c.version;
                v[6] = Int64GetDatum(c.version.value_or(0));
            }
            WriteQueueChunk(&q->writer, n, values, nulls);
        }
        MemoryContextSwitchTo(old);
        MemoryContextReset(q->chunk_cxt);
    });
}

void CommitPlanQueue(PlanQueue *q) {
    if (q->open)
        PgGuard([&] { CloseQueueWriter(&q->writer); });
    q->open = false;
    CommitTransaction();
}

void RecordGroupsOfRun(dsm_handle handle, Oid dboid) {
    shm_mq_handle *in = nullptr;
    shm_mq_handle *out = nullptr;
    PgGuard([&] {
        context_between_transactions =
            AllocSetContextCreate(TopMemoryContext, "revetl recorder", ALLOCSET_DEFAULT_SIZES);
        MemoryContext old = MemoryContextSwitchTo(TopMemoryContext);
        dsm_segment *seg = dsm_attach(handle);
        if (seg) {
            dsm_pin_mapping(seg);
            char *base = static_cast<char *>(dsm_segment_address(seg));
            shm_mq *to = reinterpret_cast<shm_mq *>(base);
            shm_mq *from = reinterpret_cast<shm_mq *>(base + kToRecorderBytes);
            shm_mq_set_receiver(to, MyProc);
            shm_mq_set_sender(from, MyProc);
            in = shm_mq_attach(to, seg, nullptr);
            out = shm_mq_attach(from, seg, nullptr);
        }
        MemoryContextSwitchTo(old);
    });
    if (!in)
        return; // the run's process is gone already
    SetSessionSettings("revetl recorder");
    std::string_view message;
    RecordingSetup setup;
    if (!NextMessage(in, &message) || !DecodeSetup(message, &setup))
        return;
    bool claimed = false;
    PgGuard([&] { claimed = ClaimRecorderSlot(dboid, setup.sync_id, setup.run_id); });
    bool sent = false;
    RecordingReply ready;
    // No slot among the database's run processes: the run records itself.
    ready.kind = claimed ? RecordingReply::Kind::Ready : RecordingReply::Kind::Declined;
    Reply(out, ready, &sent);
    if (!claimed || !sent)
        return;
    GroupRecorder recorder(setup);
    PlanQueue queue;
    while (NextMessage(in, &message)) {
        // A reload (SIGHUP) is applied between messages, as the run's
        // process applies it between batches.
        if (ConfigReloadPending) {
            ConfigReloadPending = false;
            PgGuard([] { ProcessConfigFile(PGC_SIGHUP); });
        }
        RecordingReply reply;
        RecordingGroup group;
        QueueChunk chunk;
        const std::optional<RecordingMessageType> type = MessageType(message);
        const bool readable = type == RecordingMessageType::Queue         ? DecodeQueueChunk(message, &chunk)
                              : type == RecordingMessageType::QueueCommit ? queue.open
                              : type == RecordingMessageType::Group
                                  ? !queue.open && DecodeGroup(message, &group)
                                  : false;
        if (!readable) {
            reply.kind = RecordingReply::Kind::Failed;
            reply.message = "revetl: the run's recorder process received a message it could not read";
        } else {
            try {
                if (type == RecordingMessageType::Queue) {
                    QueueChunkOf(&queue, chunk);
                    reply.kind = RecordingReply::Kind::Queued;
                } else if (type == RecordingMessageType::QueueCommit) {
                    CommitPlanQueue(&queue);
                    reply.kind = RecordingReply::Kind::Committed;
                } else {
                    reply.dequeued = recorder.Record(group);
                    reply.kind = RecordingReply::Kind::Recorded;
                }
            } catch (const SyncDropped &) {
                AbortTransaction();
                reply.kind = RecordingReply::Kind::Dropped;
            } catch (const PgError &e) {
                AbortTransaction();
                reply.kind = RecordingReply::Kind::Failed;
                reply.sqlerrcode = e.sqlerrcode;
                reply.message = e.message;
                reply.detail = e.detail;
            } catch (const std::exception &e) {
                AbortTransaction();
                reply.kind = RecordingReply::Kind::Failed;
                reply.message = e.what();
            }
        }
        Reply(out, reply, &sent);
        // After a group it could not record, nothing later is recorded
        // either: the run ends, and what it planned is re-verified. (Changes
        // queued and not committed are rolled back as the process exits.)
        if (!sent || reply.kind == RecordingReply::Kind::Failed ||
            reply.kind == RecordingReply::Kind::Dropped)
            return;
    }
}

} // namespace

} // namespace revetl::pg

void revetl_recorder_main(Datum main_arg) {
    using namespace revetl::pg;
    const dsm_handle handle = DatumGetUInt32(main_arg);
    Oid dboid;
    memcpy(&dboid, MyBgworkerEntry->bgw_extra, sizeof(Oid));
    pqsignal(SIGHUP, SignalHandlerForConfigReload);
    pqsignal(SIGTERM, die);
    BackgroundWorkerUnblockSignals();
    // Registered first, so run last: after the slot is released.
    before_shmem_exit(WakeSchedulerAtExit, ObjectIdGetDatum(dboid));
    RegisterRunProcess(dboid);
    BackgroundWorkerInitializeConnectionByOid(dboid, InvalidOid, 0);

    ErrorData *edata = nullptr;
    try {
        RecordGroupsOfRun(handle, dboid);
        proc_exit(0);
    } catch (...) {
        edata = CurrentExceptionToErrorData();
    }
    // The run's process sees the queue detached and fails the run.
    ereport(FATAL, (errcode(edata->sqlerrcode),
                    errmsg("revetl recorder in database \"%s\" failed: %s", DatabaseName(), edata->message)));
}
