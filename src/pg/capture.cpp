// The capture trigger function of trigger-tracked syncs, in C.
//
// Each tracked sync has its own function revetl.capture_<id>() (so that
// DROP SYNC drops exactly its triggers, and no role can attach it: EXECUTE
// is revoked from PUBLIC), defined LANGUAGE c over this one symbol,
// SECURITY DEFINER with a fixed search_path and fixed date, time and number
// settings. Its statement-level AFTER triggers pass what the plpgsql body
// used to have written into it:
//
//     ('<sync id>', '<model schema>', '<model table>', 'wake' | '', '<key column>', ...)
//
// Per statement it renders the key of every row of the transition table(s)
// as the text of a JSON object of the key columns' output-function text,
// exactly as jsonb_build_object(...)::text renders it (keys ordered as
// jsonb orders them), removes duplicates (an UPDATE's old and new key), and
// inserts them with one prepared INSERT ... SELECT over an array, the same
// rows the plpgsql function wrote. An ON CHANGE sync's statement also asks
// for a wake-up at commit. What it saves over plpgsql: the interpretation
// of the body, the UNION of the two transition tables with a hash
// aggregate, and jsonb_build_object with format() per row.
//
// It never calls code a user could provide: values go through their types'
// output functions (as format('%s') did), never through a cast.
#include "pg/guard.hpp"
#include "pg/pg_includes.hpp"
#include "pg/run_requests.hpp"

#include <cstdlib>
#include <cstring>

namespace revetl::pg {

namespace {

SPIPlanPtr g_insert_keys = nullptr;

struct KeyColumn {
    const char *name;
    int attnum;
    Oid output;
};

// jsonb's order of object keys: shorter first, then bytewise.
int CompareKeyNames(const void *a, const void *b) {
    const KeyColumn *x = static_cast<const KeyColumn *>(a);
    const KeyColumn *y = static_cast<const KeyColumn *>(b);
    size_t lx = strlen(x->name), ly = strlen(y->name);
    if (lx != ly)
        return lx < ly ? -1 : 1;
    return memcmp(x->name, y->name, lx);
}

int CompareTexts(const void *a, const void *b) {
    return strcmp(*static_cast<char *const *>(a), *static_cast<char *const *>(b));
}

struct Keys {
    char **items;
    int count;
    int room;
};

void AddKey(Keys *keys, char *key) {
    if (keys->count == keys->room) {
        keys->room = keys->room ? keys->room * 2 : 16;
        keys->items = keys->items ? static_cast<char **>(repalloc(keys->items, keys->room * sizeof(char *)))
                                  : static_cast<char **>(palloc(keys->room * sizeof(char *)));
    }
    keys->items[keys->count++] = key;
}

void CollectKeys(Tuplestorestate *store, TupleDesc desc, const KeyColumn *cols, int ncols, Keys *keys) {
    TupleTableSlot *slot = MakeSingleTupleTableSlot(desc, &TTSOpsMinimalTuple);
    StringInfoData buf;
    initStringInfo(&buf);
    tuplestore_rescan(store);
    while (tuplestore_gettupleslot(store, true, false, slot)) {
        resetStringInfo(&buf);
        appendStringInfoChar(&buf, '{');
        for (int i = 0; i < ncols; i++) {
            if (i > 0)
                appendStringInfoString(&buf, ", ");
            escape_json(&buf, cols[i].name);
            appendStringInfoString(&buf, ": ");
            bool isnull;
            Datum value = slot_getattr(slot, cols[i].attnum, &isnull);
            // A NULL key value stays a JSON null: such a row is invalid, and
            // its key must still cast back to the key type.
            if (isnull)
                appendStringInfoString(&buf, "null");
            else
                escape_json(&buf, OidOutputFunctionCall(cols[i].output, value));
        }
        appendStringInfoChar(&buf, '}');
        AddKey(keys, pstrdup(buf.data));
    }
    ExecDropSingleTupleTableSlot(slot);
    pfree(buf.data);
}

void InsertKeys(int64 sync_id, const Keys &keys, bool null_key) {
    if (SPI_connect() != SPI_OK_CONNECT)
        elog(ERROR, "revetl: SPI_connect failed in the capture function");
    if (!g_insert_keys) {
        Oid types[2] = {INT8OID, TEXTARRAYOID};
        SPIPlanPtr plan = SPI_prepare("INSERT INTO revetl.captured_changes (sync_id, key) "
                                      "SELECT $1, k FROM pg_catalog.unnest($2::pg_catalog.text[]) AS k",
                                      2, types);
        if (!plan || SPI_keepplan(plan) != 0)
            elog(ERROR, "revetl: could not prepare the capture statement: %s",
                 SPI_result_code_string(SPI_result));
        g_insert_keys = plan;
    }
    Datum values[2];
    values[0] = Int64GetDatum(sync_id);
    if (null_key) {
        // TRUNCATE: "anything may have changed".
        Datum none = (Datum)0;
        bool isnull = true;
        int dims[1] = {1};
        int lbs[1] = {1};
        values[1] = PointerGetDatum(
            construct_md_array(&none, &isnull, 1, dims, lbs, TEXTOID, -1, false, TYPALIGN_INT));
    } else {
        Datum *texts = static_cast<Datum *>(palloc(keys.count * sizeof(Datum)));
        for (int i = 0; i < keys.count; i++)
            texts[i] = CStringGetTextDatum(keys.items[i]);
        values[1] = PointerGetDatum(construct_array(texts, keys.count, TEXTOID, -1, false, TYPALIGN_INT));
    }
    if (SPI_execute_plan(g_insert_keys, values, nullptr, false, 0) != SPI_OK_INSERT)
        elog(ERROR, "revetl: could not capture changed keys");
    SPI_finish();
}

// The body, with no C++ object alive while it calls PostgreSQL (an error
// leaves it by longjmp).
void Capture(FunctionCallInfo fcinfo, int64 *wake_sync) {
    *wake_sync = 0;
    if (!CALLED_AS_TRIGGER(fcinfo))
        ereport(ERROR, (errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
                        errmsg("revetl capture functions can only be called as triggers")));
    TriggerData *td = reinterpret_cast<TriggerData *>(fcinfo->context);
    const Trigger *tg = td->tg_trigger;
    if (!TRIGGER_FIRED_AFTER(td->tg_event) || !TRIGGER_FIRED_FOR_STATEMENT(td->tg_event) || tg->tgnargs < 5)
        ereport(ERROR, (errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
                        errmsg("revetl capture function called by a trigger revetl did not create")));
    char **args = tg->tgargs;
    const char *id = args[0];
    // Only revetl's own triggers on the model call it (it is not executable
    // by anyone else); the checks keep it from writing captured keys for any
    // other table or sync even so.
    char *fn = get_func_name(fcinfo->flinfo->fn_oid);
    char *prefix = psprintf("revetl_capture_%s_", id);
    Relation rel = td->tg_relation;
    char *schema = get_namespace_name(RelationGetNamespace(rel));
    if (!fn || strncmp(fn, "capture_", 8) != 0 || strcmp(fn + 8, id) != 0 ||
        strncmp(tg->tgname, prefix, strlen(prefix)) != 0 || !schema || strcmp(schema, args[1]) != 0 ||
        strcmp(RelationGetRelationName(rel), args[2]) != 0)
        ereport(ERROR, (errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
                        errmsg("revetl capture function of sync %s called for another table or trigger",
                               fn && strncmp(fn, "capture_", 8) == 0 ? fn + 8 : id)));
    char *end = nullptr;
    int64 sync_id = strtoll(id, &end, 10);
    if (!end || *end != '\0' || sync_id <= 0)
        elog(ERROR, "revetl: capture trigger \"%s\" has no sync id", tg->tgname);
    const bool wake = strcmp(args[3], "wake") == 0;

    Keys keys = {nullptr, 0, 0};
    bool null_key = false;
    if (TRIGGER_FIRED_BY_TRUNCATE(td->tg_event)) {
        null_key = true;
    } else {
        const int ncols = tg->tgnargs - 4;
        TupleDesc desc = RelationGetDescr(rel);
        KeyColumn *cols = static_cast<KeyColumn *>(palloc(ncols * sizeof(KeyColumn)));
        for (int i = 0; i < ncols; i++) {
            cols[i].name = args[4 + i];
            cols[i].attnum = SPI_fnumber(desc, cols[i].name);
            if (cols[i].attnum <= 0)
                ereport(ERROR, (errcode(ERRCODE_UNDEFINED_COLUMN),
                                errmsg("key column \"%s\" of sync %s is missing from table %s.%s",
                                       cols[i].name, id, schema, RelationGetRelationName(rel))));
            bool varlena;
            getTypeOutputInfo(TupleDescAttr(desc, cols[i].attnum - 1)->atttypid, &cols[i].output, &varlena);
        }
        qsort(cols, ncols, sizeof(KeyColumn), CompareKeyNames);
        if (td->tg_newtable)
            CollectKeys(td->tg_newtable, desc, cols, ncols, &keys);
        if (td->tg_oldtable)
            CollectKeys(td->tg_oldtable, desc, cols, ncols, &keys);
        // An UPDATE captures the old and the new key of each row; once each.
        if (td->tg_newtable && td->tg_oldtable && keys.count > 1) {
            qsort(keys.items, keys.count, sizeof(char *), CompareTexts);
            int n = 1;
            for (int i = 1; i < keys.count; i++)
                if (strcmp(keys.items[i], keys.items[n - 1]) != 0)
                    keys.items[n++] = keys.items[i];
            keys.count = n;
        }
    }
    // A statement that changed no row captures nothing and wakes nobody.
    if (!null_key && keys.count == 0)
        return;
    InsertKeys(sync_id, keys, null_key);
    if (wake)
        *wake_sync = sync_id;
}

} // namespace

} // namespace revetl::pg

REVETL_SQL_FUNCTION(revetl_capture) {
    int64 wake_sync = 0;
    revetl::pg::PgGuard([&] { revetl::pg::Capture(fcinfo, &wake_sync); });
    if (wake_sync != 0)
        revetl::pg::WakeSyncAtCommit(wake_sync);
    return static_cast<Datum>(0); // an AFTER trigger's result is ignored
}
