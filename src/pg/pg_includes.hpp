// The one place PostgreSQL headers enter the C++ world. Only files under
// src/pg include this; src/core never does (the unit tests build src/core
// without PostgreSQL's include path, so a stray include fails the build).
#pragma once

extern "C" {
#include "postgres.h"

#include "access/heapam.h"
#include "access/htup_details.h"
#include "access/reloptions.h"
#include "access/table.h"
#include "access/tableam.h"
#include "access/xact.h"
#include "catalog/indexing.h"
#include "catalog/namespace.h"
#include "catalog/objectaccess.h"
#include "catalog/pg_database.h"
#include "catalog/pg_extension.h"
#include "catalog/pg_foreign_data_wrapper.h"
#include "catalog/pg_foreign_server.h"
#include "catalog/pg_type.h"
#include "catalog/pg_user_mapping.h"
#include "commands/async.h"
#include "commands/dbcommands.h"
#include "commands/defrem.h"
#include "commands/extension.h"
#include "executor/executor.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "foreign/foreign.h"
#include "funcapi.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "nodes/parsenodes.h"
#include "parser/parser.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "replication/logical.h"
#include "replication/slot.h"
#include "storage/condition_variable.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/lwlock.h"
#include "storage/proc.h"
#include "storage/shmem.h"
#include "tcop/utility.h"
#include "utils/acl.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/json.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/plancache.h"
#include "utils/typcache.h"
#include "commands/event_trigger.h"
#include "commands/trigger.h"
#include "utils/regproc.h"
#include "utils/snapmgr.h"
#include "utils/syscache.h"
#include "utils/timestamp.h"
#include "utils/timeout.h"
#include "utils/tuplestore.h" // no longer reached through funcapi.h in 19
}

// Server API differences between the supported majors (15, 17, 18, 19),
// bridged with PostgreSQL's own version macro so that each build uses the
// server's functions as that server declares them. Nothing here copies
// server code: each wrapper only picks the name the running major has.
namespace revetl::pg::compat {

// PostgreSQL 16 replaced the per-catalog ownership and privilege checks
// (pg_database_ownercheck, pg_foreign_server_aclcheck, ...) with
// object_ownercheck() and object_aclcheck() taking the catalog's OID.
inline bool DatabaseOwnercheck(Oid dboid, Oid role) {
#if PG_VERSION_NUM >= 160000
    return object_ownercheck(DatabaseRelationId, dboid, role);
#else
    return pg_database_ownercheck(dboid, role);
#endif
}

inline AclResult ForeignServerAclcheck(Oid server_oid, Oid role, AclMode mode) {
#if PG_VERSION_NUM >= 160000
    return object_aclcheck(ForeignServerRelationId, server_oid, role, mode);
#else
    return pg_foreign_server_aclcheck(server_oid, role, mode);
#endif
}

// PostgreSQL 16 gave the name parsers an error-saving context (nullptr:
// throw as before).
inline List *StringToQualifiedNameList(const char *string) {
#if PG_VERSION_NUM >= 160000
    return stringToQualifiedNameList(string, nullptr);
#else
    return stringToQualifiedNameList(string);
#endif
}

// The index of this backend's PGPROC in ProcGlobal->allProcs, which
// SetLatch() of another process needs: PGPROC.pgprocno became
// MyProcNumber in PostgreSQL 17.
inline int MyProcIndex() {
#if PG_VERSION_NUM >= 170000
    return MyProcNumber;
#else
    return MyProc->pgprocno;
#endif
}

// Releases the replication slots this backend acquired or created as
// temporary: PostgreSQL 17 added whether to release only synced ones.
inline void CleanupReplicationSlots() {
#if PG_VERSION_NUM >= 170000
    ReplicationSlotCleanup(false);
#else
    ReplicationSlotCleanup();
#endif
}

// Acquires a replication slot, failing if another process has it:
// PostgreSQL 18 added whether an invalidated slot is an error (it is not
// here: the caller looks).
inline void AcquireSlot(const char *name) {
#if PG_VERSION_NUM >= 180000
    ReplicationSlotAcquire(name, true, false);
#else
    ReplicationSlotAcquire(name, true);
#endif
}

// PostgreSQL 16 added onlySummarizing (HOT updates of summarizing indexes),
// and 19 turned the booleans into flags: an insert updates every index.
inline List *InsertIndexTuples(ResultRelInfo *rri, TupleTableSlot *slot, EState *estate) {
#if PG_VERSION_NUM >= 190000
    return ExecInsertIndexTuples(rri, estate, 0, slot, NIL, nullptr);
#elif PG_VERSION_NUM >= 160000
    return ExecInsertIndexTuples(rri, slot, estate, false, false, nullptr, NIL, false);
#else
    return ExecInsertIndexTuples(rri, slot, estate, false, false, nullptr, NIL);
#endif
}

// PostgreSQL 19 asks whether the decoding is for REPACK (revetl's never is).
inline void CheckLogicalDecodingRequirements() {
#if PG_VERSION_NUM >= 190000
    ::CheckLogicalDecodingRequirements(false);
#else
    ::CheckLogicalDecodingRequirements();
#endif
}

// PostgreSQL 19 caches facts about a tuple descriptor's attributes, which a
// descriptor built by hand must compute (TupleDescFinalize) before any use.
inline void FinalizeTupleDesc(TupleDesc desc) {
#if PG_VERSION_NUM >= 190000
    TupleDescFinalize(desc);
#else
    (void)desc;
#endif
}

// A syscache callback's cache id: an enum from PostgreSQL 19, an int before.
#if PG_VERSION_NUM >= 190000
using SyscacheId = SysCacheIdentifier;
#else
using SyscacheId = int;
#endif

} // namespace revetl::pg::compat

// The parameters of a signal handler installed with pqsignal(): PostgreSQL
// 19 passes a pg_signal_info as well (SIGNAL_ARGS). Unnamed, because the
// handlers use neither.
#if PG_VERSION_NUM >= 190000
#define REVETL_SIGNAL_PARAMS int, const pg_signal_info *
#else
#define REVETL_SIGNAL_PARAMS int
#endif
