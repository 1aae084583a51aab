#!/usr/bin/env python3
"""Cost of an incremental run after 1,000 changed rows, as the table grows.

For each size N (default 100k, 1M and 10M rows), on a fresh table:

  * m(id bigint primary key, email text, score int, payload text), N rows;
  * CREATE SYNC b FROM m TO srv KEY (id) MODE MIRROR SCHEDULE MANUAL
    WITH (track_changes = true), through revetl.execute, to a destination
    that refuses connections (max_attempts 1);
  * its shadow table filled directly the way a delivered full run leaves it,
    and revetl.sync_state.incremental_ready set to true (as the first
    successful full run would);
  * 1,000 random rows updated (score + 1): the capture triggers record their
    keys in revetl.captured_changes.

Timed: the plan phase of a run (revetl.sync_runs.plan_duration), which must
be plan_kind 'incremental' and find exactly 1,000 changed rows. The run then
fails at delivery; a failed run captures its planned keys again, so the next
run plans the same 1,000 keys: --reps incremental runs are made per size,
alternating with full-diff runs of the same sync (run_sync(full => true),
plan_kind 'full', also 1,000 changed), which are the baseline.

Reported per size: median incremental plan time, median full-diff plan time,
and their ratio; and the ratio of the incremental plan time at the largest
size to the smallest (target: within 2x, i.e. flat).

Run (PostgreSQL refuses to run as root):
  runuser -u postgres -- env PYTHONDONTWRITEBYTECODE=1 python3 bench/incremental_cost.py
"""

import argparse
import random
import sys
import time

from common import (AUTO_EXPLAIN, banner, create_model, create_unreachable_server, explain_run, fill_shadow, log,
                    median, run_once, shadow_table, sql, start_cluster, sync_id)

CHANGED = 1000


def setup(cluster, n):
    sql(cluster, "select revetl.drop_sync('b', if_exists => true); drop table if exists m")
    log(f"built m in {create_model(cluster, n):.1f} s")
    sql(cluster, "select * from revetl.execute('CREATE SYNC b FROM m TO srv KEY (id) MODE MIRROR "
                 "SCHEDULE MANUAL WITH (track_changes = true)')")
    sid = sync_id(cluster, "b")
    triggers = sql(cluster, "select count(*) from pg_trigger where tgrelid = 'm'::regclass and not tgisinternal")
    log(f"sync b (id {sid}): {triggers} capture triggers on m; filled {shadow_table(cluster, 'b')} in "
        f"{fill_shadow(cluster, 'b'):.1f} s")
    sql(cluster, f"""
        delete from revetl.captured_changes where sync_id = {sid};
        insert into revetl.sync_state (sync_id, incremental_ready) values ({sid}, true)
          on conflict (sync_id) do update set incremental_ready = true;
    """)
    ids = random.Random(n).sample(range(1, n + 1), CHANGED)
    t0 = time.monotonic()
    sql(cluster, f"update m set score = score + 1 where id = any('{{{','.join(map(str, ids))}}}'::bigint[])")
    log(f"updated {CHANGED:,} random rows in {time.monotonic() - t0:.2f} s (one statement)")
    captured = int(sql(cluster, f"select count(distinct key) from revetl.captured_changes where sync_id = {sid}"))
    if captured != CHANGED:
        raise AssertionError(f"{captured} keys captured, expected {CHANGED}")
    return sid


def check(run, kind):
    if run["plan_kind"] != kind:
        raise AssertionError(f"run {run['id']} planned {run['plan_kind']!r}, expected {kind!r}: {run}")
    if (run["added"], run["changed"], run["removed"], run["invalid"]) != (0, CHANGED, 0, 0):
        raise AssertionError(f"run {run['id']} planned {run}, expected {CHANGED} changed rows")
    if run["status"] != "failed":
        raise AssertionError(f"run {run['id']} should have failed at delivery: {run}")


def bench_size(cluster, n, reps, full_reps):
    log(f"\n--- table of {n:,} rows, {CHANGED:,} rows changed ---")
    t0 = time.monotonic()
    sid = setup(cluster, n)
    inc, full = [], []
    for rep in range(max(reps, full_reps)):
        if rep < reps:
            run = run_once(cluster, "b")
            check(run, "incremental")
            inc.append(run["plan_s"])
            log(f"  incremental run {run['id']}: plan {run['plan_s'] * 1000:.1f} ms, {run['changed']:,} changed")
            # The failed run put its 1,000 keys back for the next one.
            back = int(sql(cluster, f"select count(distinct key) from revetl.captured_changes where sync_id = {sid}"))
            if back != CHANGED:
                raise AssertionError(f"{back} keys captured after the failed run, expected {CHANGED}")
        if rep < full_reps:
            run = run_once(cluster, "b", full=True)
            check(run, "full")
            full.append(run["plan_s"])
            log(f"  full-diff run {run['id']}: plan {run['plan_s'] * 1000:.1f} ms, {run['changed']:,} changed")
    r = {"n": n, "inc_s": median(inc), "full_s": median(full), "inc_all": inc, "full_all": full}
    log(f"  median: incremental {r['inc_s'] * 1000:.1f} ms | full diff {r['full_s'] * 1000:.1f} ms | "
        f"full/incremental = {r['full_s'] / r['inc_s']:.1f}x  (size done in {time.monotonic() - t0:.0f} s)")
    return r


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="100000,1000000,10000000", help="comma-separated table sizes")
    ap.add_argument("--reps", type=int, default=5, help="incremental runs per size")
    ap.add_argument("--full-reps", type=int, default=2, help="full-diff runs per size (1 above 5M rows)")
    ap.add_argument("--no-explain", action="store_true", help="skip the EXPLAIN ANALYZE run at the largest size")
    args = ap.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]

    banner("incremental_cost: incremental (trigger-tracked) run after 1,000 changes vs table size")
    started = time.monotonic()
    cluster = start_cluster(extra_conf=AUTO_EXPLAIN, name="revetl-bench-incr")
    results = []
    try:
        create_unreachable_server(cluster)
        for n in sizes:
            results.append(bench_size(cluster, n, args.reps, 1 if n > 5_000_000 else args.full_reps))
        if not args.no_explain:
            explain_run(cluster, "b", f"{sizes[-1]:,} rows", needle="WITH cap AS MATERIALIZED")
    finally:
        cluster.destroy()

    log("\n| table rows | incremental plan (ms) | full-diff plan (ms) | full / incremental |")
    log("|---:|---:|---:|---:|")
    for r in results:
        log(f"| {r['n']:,} | {r['inc_s'] * 1000:.1f} | {r['full_s'] * 1000:.1f} | {r['full_s'] / r['inc_s']:.1f}x |")
    growth = results[-1]["inc_s"] / results[0]["inc_s"]
    log(f"\nincremental plan time, {results[-1]['n']:,} rows vs {results[0]['n']:,} rows: {growth:.2f}x "
        f"(table {results[-1]['n'] / results[0]['n']:.0f}x larger)")
    log(f"target (flat within 2x): {'met' if growth <= 2 else 'NOT met'}")
    log(f"total time: {time.monotonic() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
