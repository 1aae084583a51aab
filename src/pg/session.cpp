#include "pg/session.hpp"

#include "pg/catalog.hpp"

#include "pg/guard.hpp"
#include "pg/spi.hpp"

namespace revetl::pg {

namespace {
char g_dbname[NAMEDATALEN];
}

const char *DatabaseName() {
    if (g_dbname[0] == '\0') {
        bool own_transaction = !IsTransactionState();
        PgGuard([&] {
            if (own_transaction)
                StartTransactionCommand();
            char *name = get_database_name(MyDatabaseId);
            strlcpy(g_dbname, name ? name : "?", sizeof g_dbname);
            if (own_transaction)
                CommitTransactionCommand();
        });
        if (own_transaction && context_between_transactions)
            PgGuard([] { MemoryContextSwitchTo(context_between_transactions); });
    }
    return g_dbname;
}

void SetSessionSettings(const char *application_name) {
    PgGuard([&] {
        SetConfigOption("TimeZone", "UTC", PGC_SUSET, PGC_S_OVERRIDE);
        SetConfigOption("DateStyle", "ISO, YMD", PGC_SUSET, PGC_S_OVERRIDE);
        SetConfigOption("IntervalStyle", "postgres", PGC_SUSET, PGC_S_OVERRIDE);
        SetConfigOption("extra_float_digits", "1", PGC_SUSET, PGC_S_OVERRIDE);
        // revetl's transactions are written for READ COMMITTED (the plan
        // asks for REPEATABLE READ itself). A default_transaction_isolation
        // of the cluster, the database or a role (serializable, say) would
        // make the run's process and its recorder, which update the same
        // revetl.runs row, fail each other with serialization errors.
        SetConfigOption("default_transaction_isolation", "read committed", PGC_SUSET, PGC_S_OVERRIDE);
        // Every statement of revetl's own runs as a superuser: no schema a
        // role can create objects in may be searched (a sync owner's code
        // gets its own search_path, inside a nest level, see AsSyncOwner).
        SetConfigOption("search_path", kFixedSearchPath, PGC_SUSET, PGC_S_SESSION);
        SetConfigOption("application_name", application_name, PGC_SUSET, PGC_S_OVERRIDE);
        pgstat_report_appname(application_name);
    });
}

void SetLocalSetting(const char *name, const char *value) {
    (void)set_config_option(name, value, PGC_USERSET, PGC_S_SESSION, GUC_ACTION_LOCAL, true, 0, false);
}

} // namespace revetl::pg
