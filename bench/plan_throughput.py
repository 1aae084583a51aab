#!/usr/bin/env python3
"""Full-diff planning throughput: revetl's plan query against an EXCEPT snapshot diff.

For each model size N (default 1M and 10M rows):

  * m(id bigint primary key, email text, score int, payload text), N rows;
  * a mirror sync 'b' (KEY id, no MAP) to a destination that refuses
    connections (max_attempts 1), and its shadow table filled directly the
    way a run that delivered every row leaves it (key and row hash written
    with the expressions BuildPlanQuery uses);
  * the EXCEPT baseline (Castled's approach): snap, a copy of m as it was
    synced;
  * then 1% of the rows are updated (id % 100 = 0), or none with --no-change;
  * one untimed run gives the shadow table its typed key columns (key_1,
    generated from the key text: a rewrite, as after an update from 0.1.0).

Timed, alternating, --reps times each:

  revetl  a run's plan phase (revetl.sync_runs.plan_duration: the plan query
          streamed into revetl.changes, in the run's own process). The run
          then fails on its first request, which is not timed. Each run must
          report rows_changed = N/100 and nothing added, removed or invalid.
  EXCEPT  INSERT INTO a temp table (SELECT * FROM m EXCEPT SELECT * FROM snap),
          then INSERT INTO another (SELECT * FROM snap EXCEPT SELECT * FROM m),
          timed on the server; each must produce N/100 rows.

Both run in one process each, without parallel workers (the run's plan cursor
is serial; the baseline session sets max_parallel_workers_per_gather = 0, and
INSERT ... SELECT is never parallel in PostgreSQL 15).

Throughput = N / plan seconds (model rows diffed per second), median of the
repetitions. Ratio = revetl throughput / EXCEPT throughput (target >= 3).
The CPU time of each side is also reported (the run's process, read from
/proc/<pid>/stat just before it exits; the EXCEPT session's backend, read
from /proc/self/stat through pg_read_file), which other load on the
machine disturbs much less than wall time.
Afterwards one extra, untimed run is made with auto_explain.log_analyze on and
its plan is printed, to show what the time goes to.

Run (PostgreSQL refuses to run as root):
  runuser -u postgres -- env PYTHONDONTWRITEBYTECODE=1 python3 bench/plan_throughput.py
"""

import argparse
import sys
import time

from common import (AUTO_EXPLAIN, banner, explain_run, create_model, create_unreachable_server, fill_shadow, fmt_rate,
                    log, median, run_once, server_seconds, server_times, shadow_table, sql, start_cluster)

EXCEPT_SQL = """
    set max_parallel_workers_per_gather = 0;
    create temp table d_upsert (like m);
    create temp table d_removed (like m);
    insert into d_upsert select * from m except select * from snap;
    insert into d_removed select * from snap except select * from m;
"""


def except_counts(cluster):
    return sql(cluster, """
        set max_parallel_workers_per_gather = 0;
        create temp table d_upsert (like m);
        create temp table d_removed (like m);
        insert into d_upsert select * from m except select * from snap;
        insert into d_removed select * from snap except select * from m;
        select (select count(*) from d_upsert) || '|' || (select count(*) from d_removed);
    """).splitlines()[-1]


# --map: the sync maps two columns, the way most syncs do; the shadow's hash
# is then over the mapped values (hash_record_extended of their row).
MAP = "MAP (lower(email) AS email, score + 1 AS score)"
MAP_HASH = "hash_record_extended(ROW((lower(src.email)), (src.score + 1)), 0)"


def bench_size(cluster, n, reps, mapped=False, no_change=False):
    changed = 0 if no_change else n // 100
    log(f"\n--- model of {n:,} rows, {changed:,} changed ({'none' if no_change else '1%'}) ---")
    sql(cluster, "drop table if exists m, snap; select revetl.drop_sync('b', if_exists => true)")
    log(f"built m in {create_model(cluster, n):.1f} s")
    if mapped:
        sql(cluster, f"select * from revetl.execute($$CREATE SYNC b FROM m TO srv KEY (id) MODE MIRROR {MAP}$$)")
    else:
        sql(cluster, "select revetl.create_sync('b', 'm', 'srv', ARRAY['id'], mode => 'mirror')")
    log(f"filled {shadow_table(cluster, 'b')} in "
        f"{fill_shadow(cluster, 'b', row_hash=MAP_HASH if mapped else None):.1f} s")
    t0 = time.monotonic()
    sql(cluster, "create table snap as select * from m; vacuum (analyze, freeze) snap")
    log(f"built the EXCEPT snapshot in {time.monotonic() - t0:.1f} s")
    if not no_change:
        sql(cluster, "update m set score = score + 1 where id % 100 = 0")
    sql(cluster, "vacuum analyze m")
    sizes = sql(cluster, f"select pg_size_pretty(pg_total_relation_size('m')) || ', shadow ' || "
                         f"pg_size_pretty(pg_total_relation_size('{shadow_table(cluster, 'b')}')) || ', snap ' || "
                         f"pg_size_pretty(pg_total_relation_size('snap'))")
    log(f"sizes: m {sizes}")
    # The data fit in the OS page cache (not in shared_buffers): read once so
    # that neither side pays for the first read from disk.
    sql(cluster, f"select count(*) from m; select count(*) from snap; "
                 f"select count(*) from {shadow_table(cluster, 'b')}")

    # Validate the EXCEPT setup once (untimed): both directions find the changed rows.
    got = except_counts(cluster)
    if got != f"{changed}|{changed}":
        raise AssertionError(f"EXCEPT found {got} rows, expected {changed}|{changed}")

    # The first run gives the filled shadow table its typed key columns (a
    # rewrite of the table, as after an upgrade from 0.1.0); untimed.
    first = run_once(cluster, "b", watch_cpu=True)
    if (first["added"], first["changed"], first["removed"], first["invalid"]) != (0, changed, 0, 0):
        raise AssertionError(f"the first run planned {first} instead of {changed} changed rows")
    log(f"first run (typed shadow keys added): plan {first['plan_s']:.2f} s, run process (with its recorder) "
        f"{first['cpu_s']:.2f} s CPU")

    rv, ex, rv_cpu, ex_cpu = [], [], [], []
    for rep in range(reps):
        run = run_once(cluster, "b", watch_cpu=True)
        if (run["added"], run["changed"], run["removed"], run["invalid"]) != (0, changed, 0, 0):
            raise AssertionError(f"run {run['id']} planned {run} instead of {changed} changed rows: "
                                 "the shadow fill does not match the plan query's key or hash")
        if no_change and run["status"] != "succeeded":
            raise AssertionError(f"run {run['id']} had nothing to send and should have succeeded: {run}")
        if not no_change and (run["status"] != "failed" or not run["error"]):
            raise AssertionError(f"run {run['id']} should have failed at delivery: {run}")
        if run["cpu_s"] is None:
            raise AssertionError(f"the process of run {run['id']} was not found")
        rv.append(run["plan_s"])
        rv_cpu.append(run["cpu_s"])
        secs, cpu = server_times(cluster, EXCEPT_SQL)
        ex.append(secs)
        ex_cpu.append(cpu)
        log(f"  rep {rep + 1}: revetl plan {run['plan_s']:.2f} s wall, run process (with its recorder) "
            f"{run['cpu_s']:.2f} s CPU "
            f"(run {run['id']}, {run['changed']:,} changed) | EXCEPT {secs:.2f} s wall, {cpu:.2f} s CPU")
    r_s, e_s = median(rv), median(ex)
    r_c, e_c = median(rv_cpu), median(ex_cpu)
    result = {"n": n, "changed": changed, "revetl_s": r_s, "except_s": e_s, "revetl_rps": n / r_s,
              "except_rps": n / e_s, "ratio": e_s / r_s, "revetl_all": rv, "except_all": ex,
              "revetl_cpu": r_c, "except_cpu": e_c, "cpu_ratio": e_c / r_c}
    log(f"  median wall: revetl {r_s:.2f} s = {fmt_rate(n / r_s)} rows/s | EXCEPT {e_s:.2f} s = "
        f"{fmt_rate(n / e_s)} rows/s | revetl/EXCEPT throughput = {result['ratio']:.2f}x")
    log(f"  median CPU:  revetl {r_c:.2f} s = {fmt_rate(n / r_c)} rows/CPU-s | EXCEPT {e_c:.2f} s = "
        f"{fmt_rate(n / e_c)} rows/CPU-s | revetl/EXCEPT = {result['cpu_ratio']:.2f}x")
    return result


# What one model row costs the plan query, expression by expression: each is
# evaluated for every row of m (sum() keeps the planner from dropping it).
ROW_COSTS = [
    ("scan only (sum of 1)", "1"),
    ("key text: jsonb_build_object('id', id)::text", "length(jsonb_build_object('id', src.id)::text)"),
    ("key jsonb: jsonb_build_object('id', id)", "pg_column_size(jsonb_build_object('id', src.id))"),
    ("whole-row value: src", "pg_column_size(src)"),
    ("row hash: hash_record_extended(src, 0)", "hash_record_extended(src, 0) % 2"),
    ("payload: to_jsonb(src.*)", "pg_column_size(to_jsonb(src.*))"),
]


def row_costs(cluster, n):
    log(f"\nper-row expression costs over all {n:,} rows of m (server time, one session, no parallel workers; "
        "each is the median of 3):")
    for label, expr in ROW_COSTS:
        times = [server_seconds(cluster, f"set max_parallel_workers_per_gather = 0; "
                                         f"select sum({expr}) from m as src;") for _ in range(3)]
        log(f"  {median(times):6.2f} s  {label}")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="1000000,10000000", help="comma-separated model sizes")
    ap.add_argument("--reps", type=int, default=3, help="timed repetitions per side (alternating)")
    ap.add_argument("--reps-large", type=int, default=2, help="repetitions for sizes above 5M")
    ap.add_argument("--no-explain", action="store_true", help="skip the EXPLAIN ANALYZE runs")
    ap.add_argument("--no-change", action="store_true",
                    help="nothing is changed after the shadow is filled: both sides must find no difference")
    ap.add_argument("--map", action="store_true",
                    help=f"the sync has {MAP} (the EXCEPT baseline still compares the raw rows)")
    args = ap.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]

    banner("plan_throughput: full-diff planning, revetl plan query vs EXCEPT snapshot diff")
    started = time.monotonic()
    cluster = start_cluster(extra_conf=AUTO_EXPLAIN, name="revetl-bench-plan")
    results = []
    try:
        create_unreachable_server(cluster)
        for n in sizes:
            t0 = time.monotonic()
            results.append(bench_size(cluster, n, args.reps_large if n > 5_000_000 else args.reps, args.map,
                                      args.no_change))
            if not args.no_explain:
                explain_run(cluster, "b", f"{n:,} rows")
                if n == min(sizes):
                    row_costs(cluster, n)
            log(f"size {n:,} took {time.monotonic() - t0:.0f} s in all (setup included)")
    finally:
        cluster.destroy()

    log("\n| model rows | changed | revetl plan (s) | revetl rows/s | EXCEPT (s) | EXCEPT rows/s | revetl/EXCEPT "
        "| revetl CPU (s) | EXCEPT CPU (s) | revetl/EXCEPT by CPU |")
    log("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in results:
        log(f"| {r['n']:,} | {r['changed']:,} | {r['revetl_s']:.2f} | {fmt_rate(r['revetl_rps'])} | "
            f"{r['except_s']:.2f} | {fmt_rate(r['except_rps'])} | {r['ratio']:.2f}x | {r['revetl_cpu']:.2f} | "
            f"{r['except_cpu']:.2f} | {r['cpu_ratio']:.2f}x |")
    log("(wall: medians of the repetitions; rows/s = model rows / seconds; CPU: CPU time of the run's process, with "
        "its recorder's when a big plan started one, and of the EXCEPT session's backend)")
    met = all(r["ratio"] >= 3 for r in results)
    log(f"\ntarget (revetl planning >= 3x the EXCEPT baseline): {'met' if met else 'NOT met'}")
    log(f"total time: {time.monotonic() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
