// Session setup shared by the background processes of a database: the
// scheduler ("revetl worker") and the run executors ("revetl run").
#pragma once

#include "pg/pg_includes.hpp"

namespace revetl::pg {

// The database's name, for log lines; read once, in a transaction.
const char *DatabaseName();

// Fixed settings: payloads and row hashes must not depend on whatever
// postgresql.conf says about time zones, dates, intervals or floats.
void SetSessionSettings(const char *application_name);

// `name` = `value` until the current transaction ends (SET LOCAL, as the
// process's own role). A PostgreSQL error on a bad value: call it guarded.
void SetLocalSetting(const char *name, const char *value);

} // namespace revetl::pg
