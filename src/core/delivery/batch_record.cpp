#include "core/delivery/batch_record.hpp"

#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

namespace revetl {

namespace {

using Writer = rapidjson::Writer<rapidjson::StringBuffer>;

void String(Writer &w, const std::string &s) {
    w.String(s.c_str(), static_cast<rapidjson::SizeType>(s.size()));
}

} // namespace

BatchRecord BuildBatchRecord(const std::vector<Change> &changes, const std::vector<RowOutcome> &outcomes,
                             int attempts) {
    rapidjson::StringBuffer rej_buf;
    Writer rej(rej_buf);
    rej.StartArray();
    BatchRecord out;
    for (size_t i = 0; i < changes.size() && i < outcomes.size(); i++) {
        const Change &c = changes[i];
        const RowOutcome &o = outcomes[i];
        if (o.accepted) {
            out.delivered++;
            if (c.op == Change::Op::Remove) {
                out.removal_keys.push_back(c.key);
                out.removal_uncertain.push_back(o.uncertain);
            } else {
                ShadowRows &rows = c.op == Change::Op::Add && c.version < 0 ? out.added : out.changed;
                rows.keys.push_back(c.key);
                rows.row_hashes.push_back(c.row_hash);
                rows.uncertain.push_back(o.uncertain);
                if (!o.dest_id.empty())
                    rows.dest_ids.emplace_back(o.dest_id);
                else if (!c.dest_id.empty())
                    rows.dest_ids.emplace_back(c.dest_id);
                else
                    rows.dest_ids.emplace_back(std::nullopt);
            }
            continue;
        }
        out.rejected_count++;
        if (o.unresolvable_removal && c.op == Change::Op::Remove && c.dest_id.empty())
            out.forgotten_keys.push_back(c.key);
        rej.StartObject();
        rej.Key("key");
        rej.RawValue(c.key.data(), c.key.size(), rapidjson::kObjectType);
        rej.Key("operation");
        rej.String(OpName(c.op));
        rej.Key("reason");
        String(rej, o.reason.empty() ? std::string("rejected by the destination") : o.reason);
        rej.Key("http_status");
        if (o.http_status > 0)
            rej.Int64(o.http_status);
        else
            rej.Null();
        rej.Key("error_code");
        if (!o.error_code.empty())
            String(rej, o.error_code);
        else
            rej.Null();
        rej.Key("hint");
        if (!o.hint.empty())
            String(rej, o.hint);
        else
            rej.Null();
        rej.Key("payload");
        if (c.op == Change::Op::Remove || c.payload.empty())
            rej.Null();
        else
            rej.RawValue(c.payload.data(), c.payload.size(), rapidjson::kObjectType);
        rej.Key("attempts");
        rej.Int(attempts);
        rej.EndObject();
    }
    rej.EndArray();
    out.rejected.assign(rej_buf.GetString(), rej_buf.GetSize());
    return out;
}

} // namespace revetl
