// Module entry: preload check, settings, shared memory, the launcher and the
// utility hook that keeps workers from blocking DROP DATABASE.
#include "pg/module.hpp"

#include "core/delivery/host_policy.hpp"

#include "pg/run_requests.hpp"
#include "pg/sync_commands.hpp"
#include "pg/shared_state.hpp"

extern "C" {
PG_MODULE_MAGIC;
void _PG_init(void);
}

namespace revetl::pg {

char *g_allowed_hosts = nullptr;
int g_launcher_naptime_s = 60;
int g_worker_restart_delay_s = 5;
int g_max_parallel_runs = 4;
int g_change_retry_interval_s = 60;
int g_change_run_duration_ms = 30000;
int g_wal_poll_interval_ms = 5;
int g_min_schedule_interval_s = 30;
int g_max_syncs_per_role = 100;
int g_run_history_retention_min = 30 * 24 * 60;
int g_rejected_rows_retention_min = 30 * 24 * 60;
int g_destination_fields_max_age_min = 24 * 60;
int g_plan_work_mem_kb = 32 * 1024;
bool g_shadow_bulk_insert = true;
int g_recorder_min_rows = 10000;

namespace {

shmem_request_hook_type prev_shmem_request_hook = nullptr;
shmem_startup_hook_type prev_shmem_startup_hook = nullptr;
ProcessUtility_hook_type prev_process_utility_hook = nullptr;

// How long a database is left alone after revetl stopped its worker for a
// DROP, RENAME or CREATE ... TEMPLATE: long enough for the command to finish.
constexpr int kDatabaseBlockSeconds = 10;

void ShmemRequest() {
    if (prev_shmem_request_hook)
        prev_shmem_request_hook();
    RequestSharedState();
}

void ShmemStartup() {
    if (prev_shmem_startup_hook)
        prev_shmem_startup_hook();
    InitSharedState();
}

// Stops the worker connected to `dbname` and waits (bounded) for it to go,
// because PostgreSQL refuses to drop, rename or copy a database that has
// other sessions.
// `need_owner`: the command needs ownership of the database (DROP, ALTER,
// RENAME); otherwise CREATEDB (CREATE DATABASE ... TEMPLATE). A role that
// could not run the command must not be able to stop the worker with it.
void StopWorkerFor(const char *dbname, bool need_owner) {
    if (!dbname || !g_shared)
        return;
    Oid dboid = get_database_oid(dbname, true);
    if (!OidIsValid(dboid))
        return;
    if (need_owner ? !compat::DatabaseOwnercheck(dboid, GetUserId()) : !have_createdb_privilege())
        return;
    // The scheduler and every run process of the database go: each is a
    // session PostgreSQL would wait for.
    pid_t pids[1 + kMaxExecutorsPerDatabase];
    int npids = 0;
    LWLockAcquire(g_shared->lock, LW_EXCLUSIVE);
    DatabaseSlot *slot = FindDatabaseSlot(dboid);
    if (slot) {
        slot->blocked_until =
            TimestampTzPlusMilliseconds(GetCurrentTimestamp(), kDatabaseBlockSeconds * 1000);
        if (slot->worker_pid != 0)
            pids[npids++] = slot->worker_pid;
        for (int i = 0; i < kMaxExecutorsPerDatabase; i++)
            if (slot->executors[i].pid != 0)
                pids[npids++] = slot->executors[i].pid;
    }
    LWLockRelease(g_shared->lock);
    for (int i = 0; i < npids; i++)
        kill(pids[i], SIGTERM);
    TimestampTz deadline = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), 5000);
    while (npids > 0) {
        bool any = false;
        LWLockAcquire(g_shared->lock, LW_SHARED);
        slot = FindDatabaseSlot(dboid);
        if (slot) {
            any = slot->worker_pid != 0;
            for (int i = 0; i < kMaxExecutorsPerDatabase && !any; i++)
                any = slot->executors[i].pid != 0;
        }
        LWLockRelease(g_shared->lock);
        if (!any || GetCurrentTimestamp() >= deadline)
            break;
        (void)WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH, 10, PG_WAIT_EXTENSION);
        ResetLatch(MyLatch);
        CHECK_FOR_INTERRUPTS();
    }
}

// CREATE DATABASE ... TEMPLATE t copies t only if the role may create
// databases and t is a template or the role may own it (PostgreSQL's own
// rule). Only such a command stops t's worker: a role that is refused must
// not be able to stop it over and over.
void StopWorkerForTemplate(const char *dbname) {
    if (!dbname || !have_createdb_privilege())
        return;
    Oid dboid = get_database_oid(dbname, true);
    if (!OidIsValid(dboid))
        return;
    bool is_template = false;
    HeapTuple tup = SearchSysCache1(DATABASEOID, ObjectIdGetDatum(dboid));
    if (HeapTupleIsValid(tup)) {
        is_template = ((Form_pg_database)GETSTRUCT(tup))->datistemplate;
        ReleaseSysCache(tup);
    }
    if (!is_template && !compat::DatabaseOwnercheck(dboid, GetUserId()))
        return;
    StopWorkerFor(dbname, false);
}

const char *TemplateOf(CreatedbStmt *stmt) {
    ListCell *lc;
    foreach (lc, stmt->options) {
        DefElem *def = static_cast<DefElem *>(lfirst(lc));
        if (strcmp(def->defname, "template") == 0 && def->arg)
            return defGetString(def);
    }
    return nullptr;
}

void RevetlProcessUtility(PlannedStmt *pstmt, const char *query_string, bool read_only_tree,
                          ProcessUtilityContext context, ParamListInfo params, QueryEnvironment *query_env,
                          DestReceiver *dest, QueryCompletion *qc) {
    Node *parsetree = pstmt->utilityStmt;
    switch (nodeTag(parsetree)) {
    case T_DropdbStmt:
        StopWorkerFor(castNode(DropdbStmt, parsetree)->dbname, true);
        break;
    case T_CreatedbStmt:
        StopWorkerForTemplate(TemplateOf(castNode(CreatedbStmt, parsetree)));
        break;
    case T_AlterDatabaseStmt:
        StopWorkerFor(castNode(AlterDatabaseStmt, parsetree)->dbname, true);
        break;
    case T_DropStmt: {
        // The worker reads revetl's tables all the time; dropping them under
        // it could deadlock. It steps aside until the drop is done.
        DropStmt *drop = castNode(DropStmt, parsetree);
        if (drop->removeType == OBJECT_EXTENSION) {
            ListCell *lc;
            foreach (lc, drop->objects) {
                if (strcmp(strVal(lfirst(lc)), "revetl") == 0 && superuser())
                    StopWorkerFor(get_database_name(MyDatabaseId), true);
            }
        }
        break;
    }
    case T_RenameStmt:
        if (castNode(RenameStmt, parsetree)->renameType == OBJECT_DATABASE)
            StopWorkerFor(castNode(RenameStmt, parsetree)->subname, true);
        break;
    default:
        break;
    }
    if (prev_process_utility_hook)
        prev_process_utility_hook(pstmt, query_string, read_only_tree, context, params, query_env, dest, qc);
    else
        standard_ProcessUtility(pstmt, query_string, read_only_tree, context, params, query_env, dest, qc);
    // Syncs belong to roles like PostgreSQL's own objects do.
    if (IsA(parsetree, ReassignOwnedStmt) || IsA(parsetree, DropOwnedStmt))
        AfterOwnedStatement(parsetree);
}

// A malformed network in revetl.allowed_hosts is refused when set, not
// found at the next run.
bool CheckAllowedHosts(char **newval, void **, GucSource) {
    const char *why = nullptr;
    static std::string message;
    try {
        HostPolicy policy(*newval ? *newval : "");
        return true;
    } catch (const std::exception &e) {
        message = e.what();
        why = message.c_str();
    }
    GUC_check_errdetail("%s", why);
    return false;
}

void DefineSettings() {
    DefineCustomStringVariable(
        "revetl.allowed_hosts", "Hosts and addresses that revetl destinations may send to.",
        "A comma-separated list: host names, \".example.com\" for a domain's subdomains, \"*\" for any "
        "name and any public address, addresses and networks such as 10.0.0.0/8. Loopback, private, "
        "link-local and other non-public addresses are reached only when listed as addresses; every "
        "connection is checked on the address it reaches.",
        &g_allowed_hosts, "*", PGC_SIGHUP, 0, CheckAllowedHosts, nullptr, nullptr);
    DefineCustomIntVariable("revetl.max_databases",
                            "Number of databases the revetl launcher can keep track of.",
                            "Every connectable database takes a slot, whether it has the extension or not.",
                            &g_max_databases, 256, 1, 4096, PGC_POSTMASTER, 0, nullptr, nullptr, nullptr);
    DefineCustomIntVariable(
        "revetl.launcher_naptime", "How often the launcher looks for new databases without being woken.",
        nullptr, &g_launcher_naptime_s, 60, 1, 3600, PGC_SIGHUP, GUC_UNIT_S, nullptr, nullptr, nullptr);
    DefineCustomIntVariable(
        "revetl.worker_restart_delay",
        "How long the launcher waits before restarting a worker that exited with an error.", nullptr,
        &g_worker_restart_delay_s, 5, 1, 3600, PGC_SIGHUP, GUC_UNIT_S, nullptr, nullptr, nullptr);
    DefineCustomIntVariable("revetl.max_parallel_runs",
                            "Runs of different syncs one database may execute at once.",
                            "Each run is a background worker: max_worker_processes must leave room for them.",
                            &g_max_parallel_runs, 4, 1, 64, PGC_SIGHUP, 0, nullptr, nullptr, nullptr);
    DefineCustomIntVariable(
        "revetl.change_retry_interval",
        "How long an ON CHANGE sync waits before retrying rows a failed or partial run left undelivered.",
        "Doubles after each further failed or partial run, up to 64 times this value; a new change "
        "still runs the sync at once.",
        &g_change_retry_interval_s, 60, 1, 86400, PGC_SIGHUP, GUC_UNIT_S, nullptr, nullptr, nullptr);
    DefineCustomIntVariable(
        "revetl.change_run_duration",
        "How long one run of an ON CHANGE sync keeps delivering changes as they commit.",
        "The run's process plans and delivers each new commit's keys until this time has passed (or "
        "nothing was captured for a second); 0 makes every run plan once and end.",
        &g_change_run_duration_ms, 30000, 0, 3600000, PGC_SIGHUP, GUC_UNIT_MS, nullptr, nullptr, nullptr);
    DefineCustomIntVariable(
        "revetl.wal_poll_interval",
        "How often a database's revetl worker looks for new WAL while a sync has track_changes = 'wal'.",
        "Writers do not wake the worker for WAL-captured syncs: it compares the WAL flush position with "
        "what it decoded this often, and reads its replication slot when the WAL moved; a commit waits up "
        "to this long (plus the read, a plan and a request) to reach the destination.",
        &g_wal_poll_interval_ms, 5, 1, 60000, PGC_SIGHUP, GUC_UNIT_MS, nullptr, nullptr, nullptr);
    DefineCustomIntVariable(
        "revetl.min_schedule_interval", "The shortest interval a sync may be scheduled EVERY.",
        "Shorter intervals are refused by CREATE and ALTER SYNC, and a sync scheduled before the setting "
        "was raised runs at most this often. For fresher data, schedule the sync ON CHANGE.",
        &g_min_schedule_interval_s, 30, 1, 86400, PGC_SIGHUP, GUC_UNIT_S, nullptr, nullptr, nullptr);
    DefineCustomIntVariable("revetl.max_syncs_per_role", "How many syncs one role may own in a database.",
                            "Superusers are exempt. 0 lets a role create no sync.", &g_max_syncs_per_role,
                            100, 0, 1000000, PGC_SIGHUP, 0, nullptr, nullptr, nullptr);
    DefineCustomIntVariable("revetl.run_history_retention",
                            "How long finished runs are kept in revetl.sync_runs.",
                            "-1 keeps them forever. The latest finished run of each sync is always kept.",
                            &g_run_history_retention_min, 30 * 24 * 60, -1, INT_MAX, PGC_SIGHUP, GUC_UNIT_MIN,
                            nullptr, nullptr, nullptr);
    DefineCustomIntVariable("revetl.rejected_rows_retention",
                            "How long rows are kept in revetl.rejected_rows.", "-1 keeps them forever.",
                            &g_rejected_rows_retention_min, 30 * 24 * 60, -1, INT_MAX, PGC_SIGHUP,
                            GUC_UNIT_MIN, nullptr, nullptr, nullptr);
    // Any role may set it: a larger age only turns more findings into
    // errors, a smaller one into warnings; neither reaches a destination.
    DefineCustomIntVariable(
        "revetl.destination_fields_max_age",
        "How old cached destination fields may be for CREATE and ALTER SYNC to trust them.",
        "Within this age an unknown or read-only MAP target is an error; beyond it (or with no cache) "
        "a warning. 0 makes every finding a warning.",
        &g_destination_fields_max_age_min, 24 * 60, 0, INT_MAX, PGC_USERSET, GUC_UNIT_MIN, nullptr, nullptr,
        nullptr);
    // Read by each run as it plans (SET LOCAL work_mem for the plan's
    // transaction): the plan's hash join or sort gets this much memory per
    // node instead of the server's work_mem, which is sized for many
    // concurrent queries.
    DefineCustomIntVariable(
        "revetl.plan_work_mem", "Memory for each sort or hash of a run's plan (its work_mem).",
        "A run's full diff joins the model with the sync's shadow state; with too little memory the join "
        "spills to temporary files. 0 uses the server's work_mem. Hash joins may use hash_mem_multiplier "
        "times this.",
        &g_plan_work_mem_kb, 32 * 1024, 0, MAX_KILOBYTES, PGC_SIGHUP, GUC_UNIT_KB, nullptr, nullptr, nullptr);
    // A switch for comparing the two ways of recording adds (tests, bench):
    // both write the same rows.
    DefineCustomBoolVariable(
        "revetl.shadow_bulk_insert",
        "Whether a run records delivered adds in the shadow state by multi-insert.",
        "On, the shadow rows of a flush's adds are written as COPY writes a table; off, by an INSERT "
        "statement. Both store the same rows; the statement is slower.",
        &g_shadow_bulk_insert, true, PGC_SIGHUP, 0, nullptr, nullptr, nullptr);
    // Read by each run after its plan (src/pg/recorder.hpp).
    DefineCustomIntVariable(
        "revetl.recorder_min_rows",
        "Planned rows from which a run records what it delivered in a second process.",
        "A run with at least this many rows to deliver starts a \"revetl recorder\" background worker that "
        "writes the shadow state while the run sends the next batches, using a second core and one more "
        "background worker slot (without a free slot the run records itself). -1 never starts one.",
        &g_recorder_min_rows, 10000, -1, INT_MAX, PGC_SIGHUP, 0, nullptr, nullptr, nullptr);
    MarkGUCPrefixReserved("revetl");
}

void RegisterLauncher() {
    BackgroundWorker worker;
    memset(&worker, 0, sizeof worker);
    worker.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
    worker.bgw_start_time = BgWorkerStart_RecoveryFinished;
    worker.bgw_restart_time = 5;
    snprintf(worker.bgw_library_name, BGW_MAXLEN, "revetl");
    snprintf(worker.bgw_function_name, BGW_MAXLEN, "revetl_launcher_main");
    snprintf(worker.bgw_name, BGW_MAXLEN, "revetl launcher");
    snprintf(worker.bgw_type, BGW_MAXLEN, "revetl launcher");
    RegisterBackgroundWorker(&worker);
}

} // namespace
} // namespace revetl::pg

void _PG_init(void) {
    using namespace revetl::pg;
    if (!process_shared_preload_libraries_in_progress)
        ereport(ERROR, (errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
                        errmsg("revetl must be loaded via shared_preload_libraries"),
                        errdetail("revetl runs background workers and needs shared memory, which only a "
                                  "library loaded at server start can have."),
                        errhint("Add revetl to shared_preload_libraries in postgresql.conf and restart the "
                                "server.")));
    DefineSettings();
    prev_shmem_request_hook = shmem_request_hook;
    shmem_request_hook = ShmemRequest;
    prev_shmem_startup_hook = shmem_startup_hook;
    shmem_startup_hook = ShmemStartup;
    prev_process_utility_hook = ProcessUtility_hook;
    ProcessUtility_hook = RevetlProcessUtility;
    InitRunRequests();
    RegisterLauncher();
}
