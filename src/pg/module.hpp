// Settings defined by the module, readable by the other glue files.
#pragma once

#include "pg/pg_includes.hpp"

namespace revetl::pg {

extern char *g_allowed_hosts;
extern int g_launcher_naptime_s;
extern int g_worker_restart_delay_s;
extern int g_max_parallel_runs;
extern int g_change_retry_interval_s;
extern int g_change_run_duration_ms;
extern int g_wal_poll_interval_ms;
extern int g_min_schedule_interval_s;
extern int g_max_syncs_per_role;
extern int g_run_history_retention_min;
extern int g_rejected_rows_retention_min;
extern int g_destination_fields_max_age_min;
extern int g_plan_work_mem_kb;
extern bool g_shadow_bulk_insert;
extern int g_recorder_min_rows;

} // namespace revetl::pg
