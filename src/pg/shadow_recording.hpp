// Recording a group of delivered batches in one transaction (see
// shadow_recording.cpp): what the run's process does after each group of
// finished batches, or its recorder process does for it (recorder.hpp).
#pragma once

#include "core/delivery/recording_messages.hpp"
#include "pg/spi.hpp"

#include <cstdint>
#include <memory>
#include <stdexcept>

namespace revetl::pg {

// The sync's row was gone when a group was to be recorded: nothing of the
// group was written, and the run ends 'cancelled'.
class SyncDropped : public std::runtime_error {
public:
    SyncDropped() : std::runtime_error("the sync was dropped during the run") {}
};

class GroupRecorder {
public:
    explicit GroupRecorder(RecordingSetup setup);
    ~GroupRecorder();
    GroupRecorder(const GroupRecorder &) = delete;
    GroupRecorder &operator=(const GroupRecorder &) = delete;

    // Records the group and commits; returns how many queue rows it
    // deleted. Throws SyncDropped, or PgError (the transaction is then
    // left for the caller to abort).
    int64_t Record(const RecordingGroup &group);
    // The run's flags as they are now; the shadow table stays the same
    // (the statements, planned once, name it).
    void SetSetup(RecordingSetup setup) { setup_ = std::move(setup); }

private:
    // The shadow rows of adds, by multi-insert (InsertShadowAdds); false
    // when the table is left to the SQL statement.
    bool WriteShadowAdds(const ShadowRows &rows, int64_t version);

    struct Statements;
    RecordingSetup setup_;
    std::unique_ptr<Statements> sql_;
};

} // namespace revetl::pg
