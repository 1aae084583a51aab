#include "core/outcome_json.hpp"

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
    rapidjson::StringBuffer up_buf, rm_buf, rej_buf;
    Writer up(up_buf), rm(rm_buf), rej(rej_buf);
    up.StartArray();
    rm.StartArray();
    rej.StartArray();
    BatchRecord out;
    for (size_t i = 0; i < changes.size() && i < outcomes.size(); i++) {
        const Change &c = changes[i];
        const RowOutcome &o = outcomes[i];
        if (o.accepted) {
            out.delivered++;
            if (c.op == Change::Op::Remove) {
                String(rm, c.key);
            } else {
                up.StartObject();
                up.Key("key");
                String(up, c.key);
                up.Key("row_hash");
                up.Int64(c.row_hash);
                up.Key("uncertain");
                up.Bool(o.uncertain);
                up.Key("dest_id");
                if (!o.dest_id.empty())
                    String(up, o.dest_id);
                else if (!c.dest_id.empty())
                    String(up, c.dest_id);
                else
                    up.Null();
                up.EndObject();
            }
            continue;
        }
        out.rejected_count++;
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
        rej.Key("payload");
        if (c.op == Change::Op::Remove || c.payload.empty())
            rej.Null();
        else
            rej.RawValue(c.payload.data(), c.payload.size(), rapidjson::kObjectType);
        rej.Key("attempts");
        rej.Int(attempts);
        rej.EndObject();
    }
    up.EndArray();
    rm.EndArray();
    rej.EndArray();
    out.accepted_upserts.assign(up_buf.GetString(), up_buf.GetSize());
    out.accepted_removals.assign(rm_buf.GetString(), rm_buf.GetSize());
    out.rejected.assign(rej_buf.GetString(), rej_buf.GetSize());
    return out;
}

} // namespace revetl
