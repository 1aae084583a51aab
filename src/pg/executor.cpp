#include "pg/executor.hpp"

#include "pg/guard.hpp"
#include "pg/runner.hpp"
#include "pg/shared_state.hpp"
#include "pg/session.hpp"
#include "pg/spi.hpp"

extern "C" {
PGDLLEXPORT void revetl_run_main(Datum main_arg);
}

namespace revetl::pg {

BackgroundWorkerHandle *StartDatabaseProcess(const char *function, const std::string &name, const char *type,
                                             Datum main_arg) {
    BackgroundWorker worker;
    memset(&worker, 0, sizeof worker);
    worker.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
    worker.bgw_start_time = BgWorkerStart_RecoveryFinished;
    worker.bgw_restart_time = BGW_NEVER_RESTART;
    snprintf(worker.bgw_library_name, BGW_MAXLEN, "revetl");
    snprintf(worker.bgw_function_name, BGW_MAXLEN, "%s", function);
    snprintf(worker.bgw_name, BGW_MAXLEN, "%s", name.c_str());
    snprintf(worker.bgw_type, BGW_MAXLEN, "%s", type);
    worker.bgw_main_arg = main_arg;
    memcpy(worker.bgw_extra, &MyDatabaseId, sizeof(Oid));
    // Told when it starts and stops (WaitForBackgroundWorkerShutdown,
    // GetBackgroundWorkerPid).
    worker.bgw_notify_pid = MyProcPid;
    BackgroundWorkerHandle *handle = nullptr;
    bool ok = false;
    // The handle outlives the caller's memory contexts (the scheduler's
    // per-iteration one, a run's transactions).
    PgGuard([&] {
        MemoryContext old = MemoryContextSwitchTo(TopMemoryContext);
        ok = RegisterDynamicBackgroundWorker(&worker, &handle);
        MemoryContextSwitchTo(old);
    });
    return ok ? handle : nullptr;
}

BackgroundWorkerHandle *StartExecutor(int64_t run_id) {
    return StartDatabaseProcess("revetl_run_main", "revetl run " + std::to_string(run_id), "revetl run",
                                Int64GetDatum(run_id));
}

namespace {

void Unregister(int, Datum arg) {
    Oid dboid = DatumGetObjectId(arg);
    LWLockAcquire(g_shared->lock, LW_EXCLUSIVE);
    if (DatabaseSlot *slot = FindDatabaseSlot(dboid))
        for (int i = 0; i < kMaxExecutorsPerDatabase; i++)
            if (slot->executors[i].pid == MyProcPid)
                memset(&slot->executors[i], 0, sizeof slot->executors[i]);
    LWLockRelease(g_shared->lock);
}

} // namespace

// Registered so that DROP / RENAME DATABASE can stop this process too.
void RegisterRunProcess(Oid dboid) {
    LWLockAcquire(g_shared->lock, LW_EXCLUSIVE);
    if (DatabaseSlot *slot = FindOrAddDatabaseSlot(dboid))
        for (int i = 0; i < kMaxExecutorsPerDatabase; i++)
            if (slot->executors[i].pid == 0) {
                memset(&slot->executors[i], 0, sizeof slot->executors[i]);
                slot->executors[i].pid = MyProcPid;
                slot->executors[i].procno = compat::MyProcIndex();
                break;
            }
    LWLockRelease(g_shared->lock);
    before_shmem_exit(Unregister, ObjectIdGetDatum(dboid));
}

} // namespace revetl::pg

void revetl_run_main(Datum main_arg) {
    using namespace revetl::pg;
    int64 run_id = DatumGetInt64(main_arg);
    Oid dboid;
    memcpy(&dboid, MyBgworkerEntry->bgw_extra, sizeof(Oid));
    pqsignal(SIGHUP, SignalHandlerForConfigReload);
    pqsignal(SIGTERM, HandleRunSigterm);
    BackgroundWorkerUnblockSignals();
    RegisterRunProcess(dboid);
    BackgroundWorkerInitializeConnectionByOid(dboid, InvalidOid, 0);

    ErrorData *edata = nullptr;
    try {
        context_between_transactions =
            AllocSetContextCreate(TopMemoryContext, "revetl run", ALLOCSET_DEFAULT_SIZES);
        SetSessionSettings("revetl run");
        ExecuteRun(run_id);
        proc_exit(0);
    } catch (...) {
        edata = CurrentExceptionToErrorData();
    }
    // Out of the C++ scope: the scheduler sees the run still "running" with
    // no process behind it and marks it failed.
    ereport(FATAL, (errcode(edata->sqlerrcode),
                    errmsg("revetl run %lld in database \"%s\" failed: %s", static_cast<long long>(run_id),
                           DatabaseName(), edata->message)));
}
