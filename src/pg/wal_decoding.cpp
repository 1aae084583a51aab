// revetl's logical decoding output plugin (track_changes = 'wal').
//
// Loaded by name ('revetl') for the database's slot revetl_<database oid>,
// which only the scheduler consumes (src/pg/wal_capture.cpp). The consumer
// says which tables to decode in the options of each call, one option per
// WAL-tracked sync:
//
//     sync = '<sync id>:<table oid>:<key attnum>,<key attnum>,...'
//
// and the plugin writes one line per changed key of those tables, nothing
// for any other table and nothing for a transaction's begin and commit:
//
//     <sync id> TAB <key>      the key as the capture triggers render it
//     <sync id>                "anything may have changed" (a NULL key)
//
// The key is the text of a JSON object of the key columns' output-function
// text, in jsonb's key order, exactly as the C capture function renders it,
// so that the planner reads keys of either origin the same way. A change to
// a partition is decoded through its root (the table the sync names), with
// the key columns found in the partition by name, since a partition's
// attribute numbers may differ from its root's. A key that cannot be read
// from the WAL (a delete whose old row does not carry the key: the replica
// identity does not cover it; a key value stored out of line and not logged)
// gives a NULL key, so the next run diffs the whole table rather than miss it.
#include "pg/pg_includes.hpp"

extern "C" {
#include "catalog/partition.h"
#include "replication/logical.h"
#include "replication/output_plugin.h"
#include "replication/reorderbuffer.h"
#include "utils/rel.h"
#include "utils/relcache.h"
}

#include <cstdlib>
#include <cstring>

namespace {

struct Target {
    int64 sync_id;
    Oid relid;
    int nkeys;
    AttrNumber *attnums; // in the root table
    char **names;        // resolved at the first change, in jsonb's order
    bool resolved;
    bool broken; // a key column is gone: every change is a NULL key
};

struct PluginState {
    MemoryContext cxt;        // what lives for the call: the targets' key names
    MemoryContext change_cxt; // reset after each change
    Target *targets;
    int ntargets;
    StringInfoData key;
};

int CompareNames(const void *a, const void *b) {
    const char *x = *static_cast<char *const *>(a);
    const char *y = *static_cast<char *const *>(b);
    size_t lx = strlen(x), ly = strlen(y);
    if (lx != ly)
        return lx < ly ? -1 : 1;
    return memcmp(x, y, lx);
}

// "<sync id>:<table oid>:<attnum>,<attnum>..." from the consumer.
void ParseTarget(const char *text, Target *t) {
    char *end = nullptr;
    t->sync_id = strtoll(text, &end, 10);
    if (!end || *end != ':' || t->sync_id <= 0)
        ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
                        errmsg("invalid revetl decoding option \"sync\": \"%s\"", text)));
    const char *p = end + 1;
    unsigned long relid = strtoul(p, &end, 10);
    if (!end || *end != ':' || relid == 0)
        ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
                        errmsg("invalid revetl decoding option \"sync\": \"%s\"", text)));
    t->relid = static_cast<Oid>(relid);
    p = end + 1;
    int room = 4;
    t->attnums = static_cast<AttrNumber *>(palloc(room * sizeof(AttrNumber)));
    t->nkeys = 0;
    for (;;) {
        long att = strtol(p, &end, 10);
        if (end == p || att <= 0 || att > MaxAttrNumber)
            ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
                            errmsg("invalid revetl decoding option \"sync\": \"%s\"", text)));
        if (t->nkeys == room) {
            room *= 2;
            t->attnums = static_cast<AttrNumber *>(repalloc(t->attnums, room * sizeof(AttrNumber)));
        }
        t->attnums[t->nkeys++] = static_cast<AttrNumber>(att);
        if (*end == '\0')
            break;
        if (*end != ',')
            ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
                            errmsg("invalid revetl decoding option \"sync\": \"%s\"", text)));
        p = end + 1;
    }
    t->names = nullptr;
    t->resolved = false;
    t->broken = false;
}

void Startup(LogicalDecodingContext *ctx, OutputPluginOptions *opt, bool is_init) {
    PluginState *state = static_cast<PluginState *>(palloc0(sizeof(PluginState)));
    state->cxt = AllocSetContextCreate(ctx->context, "revetl decoding", ALLOCSET_DEFAULT_SIZES);
    state->change_cxt = AllocSetContextCreate(state->cxt, "revetl decoded change", ALLOCSET_DEFAULT_SIZES);
    initStringInfo(&state->key);
    opt->output_type = OUTPUT_PLUGIN_TEXTUAL_OUTPUT;
    opt->receive_rewrites = false;
    int room = list_length(ctx->output_plugin_options);
    state->targets = static_cast<Target *>(palloc0(Max(room, 1) * sizeof(Target)));
    ListCell *lc;
    foreach (lc, ctx->output_plugin_options) {
        DefElem *elem = static_cast<DefElem *>(lfirst(lc));
        if (strcmp(elem->defname, "sync") != 0 || elem->arg == nullptr || !IsA(elem->arg, String))
            ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
                            errmsg("revetl decoding does not know option \"%s\"", elem->defname)));
        ParseTarget(strVal(elem->arg), &state->targets[state->ntargets++]);
    }
    ctx->output_plugin_private = state;
    (void)is_init;
}

void Shutdown(LogicalDecodingContext *ctx) {
    PluginState *state = static_cast<PluginState *>(ctx->output_plugin_private);
    if (state)
        MemoryContextDelete(state->cxt);
}

void Begin(LogicalDecodingContext *, ReorderBufferTXN *) {}
void Commit(LogicalDecodingContext *, ReorderBufferTXN *, XLogRecPtr) {}

// The table a sync names for a changed relation: a partition's root.
Oid SyncTable(Relation rel) {
    Oid relid = RelationGetRelid(rel);
    if (!rel->rd_rel->relispartition)
        return relid;
    List *ancestors = get_partition_ancestors(relid);
    return ancestors == NIL ? relid : llast_oid(ancestors);
}

void Resolve(PluginState *state, Target *t) {
    t->resolved = true;
    MemoryContext old = MemoryContextSwitchTo(state->cxt);
    t->names = static_cast<char **>(palloc(t->nkeys * sizeof(char *)));
    Relation root = RelationIdGetRelation(t->relid);
    if (!RelationIsValid(root)) {
        t->broken = true;
    } else {
        TupleDesc desc = RelationGetDescr(root);
        for (int i = 0; i < t->nkeys && !t->broken; i++) {
            if (t->attnums[i] > desc->natts || TupleDescAttr(desc, t->attnums[i] - 1)->attisdropped)
                t->broken = true;
            else
                t->names[i] = pstrdup(NameStr(TupleDescAttr(desc, t->attnums[i] - 1)->attname));
        }
        RelationClose(root);
    }
    if (!t->broken)
        qsort(t->names, t->nkeys, sizeof(char *), CompareNames);
    MemoryContextSwitchTo(old);
}

HeapTuple TupleOf(ReorderBufferChange *change, bool old) {
#if PG_VERSION_NUM >= 170000
    return old ? change->data.tp.oldtuple : change->data.tp.newtuple;
#else
    ReorderBufferTupleBuf *buf = old ? change->data.tp.oldtuple : change->data.tp.newtuple;
    return buf ? &buf->tuple : nullptr;
#endif
}

// The key of `tuple` (a row of `rel`) into state->key; false when the WAL
// does not tell it (an old row without the key, a value not logged).
bool RenderKey(PluginState *state, const Target *t, Relation rel, HeapTuple tuple, bool old) {
    StringInfo buf = &state->key;
    resetStringInfo(buf);
    if (!tuple)
        return false;
    TupleDesc desc = RelationGetDescr(rel);
    appendStringInfoChar(buf, '{');
    for (int i = 0; i < t->nkeys; i++) {
        // By name: a partition's attribute numbers may differ from its root's.
        AttrNumber att = get_attnum(RelationGetRelid(rel), t->names[i]);
        if (att == InvalidAttrNumber || att > desc->natts)
            return false;
        if (i > 0)
            appendStringInfoString(buf, ", ");
        escape_json(buf, t->names[i]);
        appendStringInfoString(buf, ": ");
        bool isnull;
        Datum value = heap_getattr(tuple, att, desc, &isnull);
        Form_pg_attribute attr = TupleDescAttr(desc, att - 1);
        if (isnull) {
            // An old row's missing value is a column outside the replica
            // identity, not a NULL key.
            if (old)
                return false;
            appendStringInfoString(buf, "null");
            continue;
        }
        if (attr->attlen == -1 && VARATT_IS_EXTERNAL_ONDISK(DatumGetPointer(value)))
            return false;
        Oid output;
        bool varlena;
        getTypeOutputInfo(attr->atttypid, &output, &varlena);
        escape_json(buf, OidOutputFunctionCall(output, value));
    }
    appendStringInfoChar(buf, '}');
    return true;
}

void Emit(LogicalDecodingContext *ctx, const Target *t, const char *key) {
    OutputPluginPrepareWrite(ctx, true);
    if (key)
        appendStringInfo(ctx->out, INT64_FORMAT "\t%s", t->sync_id, key);
    else
        appendStringInfo(ctx->out, INT64_FORMAT, t->sync_id);
    OutputPluginWrite(ctx, true);
}

void Change(LogicalDecodingContext *ctx, ReorderBufferTXN *, Relation rel, ReorderBufferChange *change) {
    PluginState *state = static_cast<PluginState *>(ctx->output_plugin_private);
    if (state->ntargets == 0)
        return;
    Oid table = InvalidOid;
    bool looked = false;
    MemoryContext old = MemoryContextSwitchTo(state->change_cxt);
    for (int i = 0; i < state->ntargets; i++) {
        Target *t = &state->targets[i];
        if (!looked) {
            // Cheap test first: most changes are to other tables.
            if (t->relid != RelationGetRelid(rel) && !rel->rd_rel->relispartition)
                continue;
            table = SyncTable(rel);
            looked = true;
        }
        if (t->relid != table)
            continue;
        if (!t->resolved)
            Resolve(state, t);
        if (t->broken) {
            Emit(ctx, t, nullptr);
            continue;
        }
        switch (change->action) {
        case REORDER_BUFFER_CHANGE_INSERT:
            Emit(ctx, t, RenderKey(state, t, rel, TupleOf(change, false), false) ? state->key.data : nullptr);
            break;
        case REORDER_BUFFER_CHANGE_UPDATE: {
            // The old row is logged when the replica identity changed: the
            // old key is a change too (its record goes, or is re-verified).
            HeapTuple before = TupleOf(change, true);
            if (before) {
                if (RenderKey(state, t, rel, before, true))
                    Emit(ctx, t, state->key.data);
                else
                    Emit(ctx, t, nullptr);
            }
            Emit(ctx, t, RenderKey(state, t, rel, TupleOf(change, false), false) ? state->key.data : nullptr);
            break;
        }
        case REORDER_BUFFER_CHANGE_DELETE:
            Emit(ctx, t, RenderKey(state, t, rel, TupleOf(change, true), true) ? state->key.data : nullptr);
            break;
        default:
            break;
        }
    }
    MemoryContextSwitchTo(old);
    MemoryContextReset(state->change_cxt);
}

void Truncate(LogicalDecodingContext *ctx, ReorderBufferTXN *, int nrelations, Relation relations[],
              ReorderBufferChange *) {
    PluginState *state = static_cast<PluginState *>(ctx->output_plugin_private);
    for (int r = 0; r < nrelations; r++) {
        Oid table = SyncTable(relations[r]);
        for (int i = 0; i < state->ntargets; i++)
            if (state->targets[i].relid == table)
                Emit(ctx, &state->targets[i], nullptr);
    }
}

} // namespace

extern "C" {
PGDLLEXPORT void _PG_output_plugin_init(OutputPluginCallbacks *cb);

void _PG_output_plugin_init(OutputPluginCallbacks *cb) {
    cb->startup_cb = Startup;
    cb->begin_cb = Begin;
    cb->change_cb = Change;
    cb->truncate_cb = Truncate;
    cb->commit_cb = Commit;
    cb->shutdown_cb = Shutdown;
}
}
