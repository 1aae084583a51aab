#include "core/delivery/recording_messages.hpp"

#include <cstring>

namespace revetl {

namespace {

// Appends fixed-size integers in the machine's own byte order (both ends
// are processes of one server) and strings as a length and their bytes.
class Writer {
public:
    explicit Writer(RecordingMessageType type) { out_.push_back(static_cast<char>(type)); }
    explicit Writer(RecordingReply::Kind kind) { out_.push_back(static_cast<char>(kind)); }

    template <typename T>
    void Fixed(T v) {
        char bytes[sizeof v];
        std::memcpy(bytes, &v, sizeof v);
        out_.append(bytes, sizeof v);
    }
    void Bool(bool v) { out_.push_back(v ? 1 : 0); }
    void Text(std::string_view s) {
        Fixed<uint64_t>(s.size());
        out_.append(s.data(), s.size());
    }
    void OptionalText(const std::optional<std::string> &s) {
        Bool(s.has_value());
        if (s)
            Text(*s);
    }
    // A count, then each element as `write` writes it.
    template <typename T, typename F>
    void List(const std::vector<T> &v, F write) {
        Fixed<uint64_t>(v.size());
        for (const T &x : v)
            write(x);
    }
    void Texts(const std::vector<std::string> &v) {
        List(v, [this](const std::string &x) { Text(x); });
    }
    void Int64s(const std::vector<int64_t> &v) {
        List(v, [this](int64_t x) { Fixed(x); });
    }
    void Bools(const std::vector<bool> &v) {
        List(v, [this](bool x) { Bool(x); });
    }
    void Rows(const ShadowRows &rows) {
        Texts(rows.keys);
        Int64s(rows.row_hashes);
        List(rows.dest_ids, [this](const std::optional<std::string> &x) { OptionalText(x); });
        Bools(rows.uncertain);
    }
    void OptionalInt64(const std::optional<int64_t> &v) {
        Bool(v.has_value());
        Fixed(v.value_or(0));
    }
    std::string Take() { return std::move(out_); }

private:
    std::string out_;
};

// Reads what Writer wrote; every read fails (and all later ones) once a
// length runs past the end.
class Reader {
public:
    explicit Reader(std::string_view in) : in_(in) {}

    template <typename T>
    bool Fixed(T *v) {
        if (!ok_ || in_.size() - pos_ < sizeof *v)
            return ok_ = false;
        std::memcpy(v, in_.data() + pos_, sizeof *v);
        pos_ += sizeof *v;
        return true;
    }
    bool Bool(bool *v) {
        uint8_t b = 0;
        if (!Fixed(&b) || b > 1)
            return ok_ = false;
        *v = b == 1;
        return true;
    }
    bool Text(std::string *s) {
        uint64_t n = 0;
        if (!Fixed(&n) || n > in_.size() - pos_)
            return ok_ = false;
        s->assign(in_.data() + pos_, n);
        pos_ += n;
        return true;
    }
    bool OptionalText(std::optional<std::string> *s) {
        bool present = false;
        if (!Bool(&present))
            return false;
        if (!present) {
            s->reset();
            return true;
        }
        std::string v;
        if (!Text(&v))
            return false;
        *s = std::move(v);
        return true;
    }
    // A count of elements each at least `min_bytes` long: bounded by what
    // is left, so a corrupt count cannot make the reader reserve memory.
    bool Count(uint64_t *n, size_t min_bytes) {
        return Fixed(n) && (*n <= (in_.size() - pos_) / min_bytes || (ok_ = false));
    }
    // What List wrote: a count of elements each at least `min_bytes` long,
    // then each as `read` reads it (into a T of its own: vector<bool> has
    // no element to point at).
    template <typename T, typename F>
    bool List(std::vector<T> *v, size_t min_bytes, F read) {
        uint64_t n = 0;
        if (!Count(&n, min_bytes))
            return false;
        v->assign(n, T{});
        for (uint64_t i = 0; i < n; i++) {
            T x{};
            if (!read(&x))
                return false;
            (*v)[i] = std::move(x);
        }
        return true;
    }
    bool Texts(std::vector<std::string> *v) {
        return List(v, sizeof(uint64_t), [this](std::string *x) { return Text(x); });
    }
    bool Int64s(std::vector<int64_t> *v) {
        return List(v, sizeof(int64_t), [this](int64_t *x) { return Fixed(x); });
    }
    bool Bools(std::vector<bool> *v) {
        return List(v, 1, [this](bool *x) { return Bool(x); });
    }
    bool Rows(ShadowRows *rows) {
        if (!Texts(&rows->keys) || !Int64s(&rows->row_hashes) ||
            !List(&rows->dest_ids, 1, [this](std::optional<std::string> *x) { return OptionalText(x); }) ||
            !Bools(&rows->uncertain))
            return false;
        // One entry per row in each column.
        const size_t k = rows->keys.size();
        return rows->row_hashes.size() == k && rows->dest_ids.size() == k && rows->uncertain.size() == k;
    }
    bool OptionalInt64(std::optional<int64_t> *v) {
        bool present = false;
        int64_t x = 0;
        if (!Bool(&present) || !Fixed(&x))
            return false;
        *v = present ? std::optional<int64_t>(x) : std::nullopt;
        return true;
    }
    bool Finished() const { return ok_ && pos_ == in_.size(); }

private:
    std::string_view in_;
    size_t pos_ = 1; // after the type byte, which the caller checked
    bool ok_ = true;
};

bool StartsWith(std::string_view message, char type) {
    return !message.empty() && message[0] == type;
}

} // namespace

std::string EncodeSetup(const RecordingSetup &s) {
    Writer w(RecordingMessageType::Setup);
    w.Fixed(s.run_id);
    w.Fixed(s.sync_id);
    w.Text(s.sync_name);
    w.Text(s.shadow_table);
    w.Text(s.mode);
    w.Bool(s.tracked);
    w.Bool(s.resync);
    w.Bool(s.bulk_insert);
    w.Fixed(s.settle_time_ms);
    return w.Take();
}

std::string EncodeGroup(const RecordingGroup &g) {
    Writer w(RecordingMessageType::Group);
    w.Rows(g.record.added);
    w.Rows(g.record.changed);
    w.Texts(g.record.removal_keys);
    w.Bools(g.record.removal_uncertain);
    w.Texts(g.record.forgotten_keys);
    w.Text(g.record.rejected);
    w.Fixed(g.record.delivered);
    w.Fixed(g.record.rejected_count);
    w.Int64s(g.seqs);
    w.Int64s(g.jobs);
    w.Fixed(g.requests);
    w.Fixed(g.retries);
    w.Fixed(g.rows_retried);
    w.Fixed(g.throttled);
    w.Fixed(g.version_id);
    w.Bool(g.sent_after.has_value());
    w.Fixed(g.sent_after.value_or(0));
    return w.Take();
}

std::string EncodeReply(const RecordingReply &r) {
    Writer w(r.kind);
    w.Fixed(r.dequeued);
    w.Fixed<int32_t>(r.sqlerrcode);
    w.Text(r.message);
    w.Text(r.detail);
    return w.Take();
}

std::string EncodeQueueChunk(const QueueChunk &chunk) {
    Writer w(RecordingMessageType::Queue);
    w.Fixed(chunk.run_id);
    w.List(chunk.changes, [&w](const QueuedChange &c) {
        w.Fixed(c.seq);
        w.Fixed(c.op);
        w.Text(c.key);
        w.OptionalInt64(c.row_hash);
        w.OptionalText(c.dest_id);
        w.OptionalInt64(c.version);
    });
    return w.Take();
}

std::string EncodeQueueCommit() {
    return Writer(RecordingMessageType::QueueCommit).Take();
}

std::optional<RecordingMessageType> MessageType(std::string_view message) {
    if (message.empty())
        return std::nullopt;
    switch (static_cast<RecordingMessageType>(message[0])) {
    case RecordingMessageType::Setup:
    case RecordingMessageType::Group:
    case RecordingMessageType::Queue:
    case RecordingMessageType::QueueCommit:
        return static_cast<RecordingMessageType>(message[0]);
    }
    return std::nullopt;
}

bool DecodeQueueChunk(std::string_view message, QueueChunk *chunk) {
    if (!StartsWith(message, static_cast<char>(RecordingMessageType::Queue)))
        return false;
    Reader r(message);
    // Each change takes at least its seq, op and the key's length.
    return r.Fixed(&chunk->run_id) &&
           r.List(&chunk->changes, sizeof(int64_t) + 1 + sizeof(uint64_t),
                  [&r](QueuedChange *c) {
                      return r.Fixed(&c->seq) && r.Fixed(&c->op) && r.Text(&c->key) &&
                             r.OptionalInt64(&c->row_hash) && r.OptionalText(&c->dest_id) &&
                             r.OptionalInt64(&c->version);
                  }) &&
           r.Finished();
}

bool DecodeSetup(std::string_view message, RecordingSetup *s) {
    if (!StartsWith(message, static_cast<char>(RecordingMessageType::Setup)))
        return false;
    Reader r(message);
    return r.Fixed(&s->run_id) && r.Fixed(&s->sync_id) && r.Text(&s->sync_name) && r.Text(&s->shadow_table) &&
           r.Text(&s->mode) && r.Bool(&s->tracked) && r.Bool(&s->resync) && r.Bool(&s->bulk_insert) &&
           r.Fixed(&s->settle_time_ms) && r.Finished();
}

bool DecodeGroup(std::string_view message, RecordingGroup *g) {
    if (!StartsWith(message, static_cast<char>(RecordingMessageType::Group)))
        return false;
    Reader r(message);
    bool has_sent_after = false;
    int64_t sent_after = 0;
    if (!(r.Rows(&g->record.added) && r.Rows(&g->record.changed) && r.Texts(&g->record.removal_keys) &&
          r.Bools(&g->record.removal_uncertain) && r.Texts(&g->record.forgotten_keys) &&
          r.Text(&g->record.rejected) && r.Fixed(&g->record.delivered) &&
          r.Fixed(&g->record.rejected_count) && r.Int64s(&g->seqs) && r.Int64s(&g->jobs) &&
          r.Fixed(&g->requests) && r.Fixed(&g->retries) && r.Fixed(&g->rows_retried) &&
          r.Fixed(&g->throttled) && r.Fixed(&g->version_id) && r.Bool(&has_sent_after) &&
          r.Fixed(&sent_after) && r.Finished()))
        return false;
    if (g->record.removal_keys.size() != g->record.removal_uncertain.size())
        return false;
    g->sent_after = has_sent_after ? std::optional<int64_t>(sent_after) : std::nullopt;
    return true;
}

bool DecodeReply(std::string_view message, RecordingReply *reply) {
    if (message.empty())
        return false;
    const auto kind = static_cast<RecordingReply::Kind>(message[0]);
    if (kind < RecordingReply::Kind::Ready || kind > RecordingReply::Kind::Committed)
        return false;
    Reader r(message);
    int32_t code = 0;
    if (!(r.Fixed(&reply->dequeued) && r.Fixed(&code) && r.Text(&reply->message) && r.Text(&reply->detail) &&
          r.Finished()))
        return false;
    reply->kind = kind;
    reply->sqlerrcode = code;
    return true;
}

} // namespace revetl
