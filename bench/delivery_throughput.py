#!/usr/bin/env python3
"""Delivery throughput: requests/s and records/s from a run's process to a local nginx, against wrk.

  ceiling   wrk (-t1 -c8 -d10s by default) POSTing a body of the size and shape revetl sends
            (one record, and 100 records) to the same nginx, measured before and after the
            revetl runs in this invocation; the higher of the two is the ceiling.
  single    revetl, one record per request: a webhook server pointing at nginx with
            batch_size '1', max_in_flight '8', a sync of a 50,000-row table, run with
            revetl.run_sync(..., wait => true). requests/s = requests / (finished_at -
            planned_at) from revetl.sync_runs (the delivery phase only); the whole-run rate
            (finished_at - started_at, planning included) is reported too.
  batched   revetl, 100 records per request (batch_size '100', max_in_flight '8') on a
            1,000,000-row table: records/s over the delivery phase, and the same wrk ceiling
            for a 100-record body.

While each run delivers, the CPU time of the run's process, nginx's worker, the rest of the
cluster and the whole machine is sampled (/proc), which shows what the 2 cores are spent on.

nginx runs with a minimal config in a temporary directory (one worker, keep-alive, a location
that answers 200 {"accepted":1} as application/json) and is stopped at the end.

Targets: >= 10,000 single-record requests/s, or >= 50% of the wrk ceiling if that is lower;
>= 100,000 records/s batched. PostgreSQL, nginx and wrk (or revetl) share the machine's cores.

Run (PostgreSQL refuses to run as root):
  runuser -u postgres -- env PYTHONDONTWRITEBYTECODE=1 python3 bench/delivery_throughput.py
"""

import argparse
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from delivery_common import (Nginx, RunWatcher, banner, create_model, fmt, log, psql,  # noqa: E402
                             report_machine_state, run_row, run_wrk, sql, start_cluster, wait_for,
                             webhook_body)


def watched_run(cluster, name, nginx, timeout):
    """run_sync(name, wait => true) in a psql of its own while the run's process is followed."""
    before = int(sql(cluster, "select coalesce(max(id), 0) from revetl.sync_runs"))
    cmd = [os.path.join(cluster.bindir, "psql"), "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1",
           "-h", cluster.dir, "-p", str(cluster.port), "-U", "postgres", "-d", "postgres",
           "-c", f"set statement_timeout = '{int(timeout)}s'", "-c", f"select revetl.run_sync('{name}', wait => true)"]
    t0 = time.monotonic()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    w = RunWatcher(cluster, other_pids=nginx.worker_pids, interval=0.01, series_every=0.05)
    try:
        w.find(timeout=120)
        w.follow(timeout=timeout)
        out, err = proc.communicate(timeout=120)
        wall = time.monotonic() - t0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
    if proc.returncode != 0:
        raise RuntimeError(f"run_sync failed: {err.strip()}")
    r = run_row(cluster, name, before, err, wall)
    r["cpu"] = w.between(r["planned_s"], r["finished_s"])
    r["run_cpu_s"] = w.cpu_s
    r["hwm_kb"] = w.hwm_kb
    return r


def create_sync(cluster, name, table, server):
    sql(cluster, f"select revetl.drop_sync('{name}', if_exists => true)")
    sql(cluster, f"select revetl.create_sync('{name}', '{table}', '{server}', ARRAY['id'])")


def describe(label, r, n_rows, per_request):
    d, whole = r["deliver_s"], r["run_s"]
    log(f"\n{label}: run {r['id']} {r['status']}: {r['rows_delivered']:,} rows delivered in {r['requests']:,} "
        f"requests ({r['retries']} retries, {r['throttled']} throttled)")
    if r["rows_delivered"] != n_rows or r["rows_added"] != n_rows or r["requests"] != -(-n_rows // per_request):
        raise RuntimeError(f"unexpected counts: {r}")
    log(f"  plan phase     {r['plan_s']:8.3f} s")
    log(f"  delivery phase {d:8.3f} s   {fmt(r['requests'] / d)} requests/s, {fmt(r['rows_delivered'] / d)} records/s")
    log(f"  whole run      {whole:8.3f} s   {fmt(r['requests'] / whole)} requests/s, "
        f"{fmt(r['rows_delivered'] / whole)} records/s (started_at to finished_at)")
    log(f"  run_sync(wait => true) call, client side: {r['wall_s']:.3f} s")
    c = r["cpu"]
    if c:
        log(f"  CPU during the delivery phase ({d:.2f} s wall, {c['machine_total']:.2f} CPU-s of capacity): "
            f"run process {c['run']:.2f} s ({100 * c['run'] / d:.0f}% of a core), nginx worker {c['other']:.2f} s "
            f"({100 * c['other'] / d:.0f}%), rest of the cluster {c['cluster_rest']:.2f} s "
            f"({100 * c['cluster_rest'] / d:.0f}%), machine busy {c['machine_busy']:.2f} s "
            f"({100 * c['machine_busy'] / c['machine_total']:.0f}% of all cores)")
        log(f"  run process: {1e6 * c['run'] / r['requests']:.1f} us CPU per request, "
            f"{1e6 * c['run'] / r['rows_delivered']:.2f} us per record (delivery phase); "
            f"whole process {r['run_cpu_s']:.2f} s CPU, VmHWM {r['hwm_kb'] / 1024:.1f} MiB")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--single-rows", type=int, default=50000, help="rows of the one-record-per-request run")
    ap.add_argument("--batched-rows", type=int, default=1000000, help="rows of the 100-records-per-request run")
    ap.add_argument("--batch-size", type=int, default=100)
    ap.add_argument("--in-flight", type=int, default=8, help="max_in_flight and wrk's -c")
    ap.add_argument("--repeat", type=int, default=3, help="runs of each kind (a fresh sync each time)")
    ap.add_argument("--wrk-seconds", type=int, default=10)
    ap.add_argument("--timeout", type=int, default=3600, help="bound on each run, seconds")
    args = ap.parse_args()

    banner("revetl delivery throughput (issue 5)")
    nginx = Nginx()
    cluster = None
    try:
        log(f"nginx: {nginx.version}, {nginx.url} (worker_processes 1, keep-alive, access_log off)")
        single_body = webhook_body(1)
        batch_body = webhook_body(args.batch_size)
        log(f"request bodies: 1 record {len(single_body)} bytes, {args.batch_size} records {len(batch_body):,} bytes")

        def ceilings(when):
            report_machine_state(f"wrk {when}")
            s, cmd, _ = run_wrk(nginx.url, single_body, 1, args.in_flight, args.wrk_seconds)
            b, _, _ = run_wrk(nginx.url, batch_body, 1, args.in_flight, args.wrk_seconds)
            log(f"wrk {when}: `{cmd}`: 1-record body {fmt(s)} requests/s; {args.batch_size}-record body "
                f"{fmt(b)} requests/s = {fmt(b * args.batch_size)} records/s")
            return s, b

        wrk_before = ceilings("before the runs")

        cluster = start_cluster()
        sql(cluster, f"""
            create server hook_single foreign data wrapper revetl options (type 'webhook', url '{nginx.url}',
              batch_size '1', max_in_flight '{args.in_flight}');
            create server hook_batched foreign data wrapper revetl options (type 'webhook', url '{nginx.url}',
              batch_size '{args.batch_size}', max_in_flight '{args.in_flight}');
        """)
        log(f"servers: hook_single (batch_size '1', max_in_flight '{args.in_flight}'), hook_batched "
            f"(batch_size '{args.batch_size}', max_in_flight '{args.in_flight}'), url {nginx.url}")
        t = create_model(cluster, args.single_rows, "m_single")
        log(f"model m_single: {args.single_rows:,} rows (id bigint primary key, email text, score int, "
            f"payload text), built in {t:.1f} s")
        t = create_model(cluster, args.batched_rows, "m_batched")
        log(f"model m_batched: {args.batched_rows:,} rows, built in {t:.1f} s")
        sql(cluster, "checkpoint")

        single, batched = [], []
        for i in range(args.repeat):
            create_sync(cluster, "single", "m_single", "hook_single")
            report_machine_state(f"single run {i + 1}")
            r = watched_run(cluster, "single", nginx, args.timeout)
            describe(f"single (batch_size 1), repetition {i + 1}", r, args.single_rows, 1)
            single.append(r)
            sql(cluster, "checkpoint")
        for i in range(args.repeat):
            create_sync(cluster, "batched", "m_batched", "hook_batched")
            sql(cluster, "checkpoint")
            report_machine_state(f"batched run {i + 1}")
            r = watched_run(cluster, "batched", nginx, args.timeout)
            describe(f"batched (batch_size {args.batch_size}), repetition {i + 1}", r, args.batched_rows,
                     args.batch_size)
            batched.append(r)
        sql(cluster, "select revetl.drop_sync('batched'); select revetl.drop_sync('single')")

        wrk_after = ceilings("after the runs")
    finally:
        if cluster:
            cluster.destroy()
        nginx.stop()

    def med(xs):
        xs = sorted(xs)
        n = len(xs)
        return xs[n // 2] if n % 2 else (xs[n // 2 - 1] + xs[n // 2]) / 2

    ceil_single = max(wrk_before[0], wrk_after[0])
    ceil_batch = max(wrk_before[1], wrk_after[1])
    s_rps = med([r["requests"] / r["deliver_s"] for r in single])
    s_whole = med([r["requests"] / r["run_s"] for r in single])
    b_rps = med([r["requests"] / r["deliver_s"] for r in batched])
    b_recs = med([r["rows_delivered"] / r["deliver_s"] for r in batched])
    b_whole = med([r["rows_delivered"] / r["run_s"] for r in batched])
    log("\n" + "=" * 72)
    log(f"summary (median of {args.repeat} runs each; wrk ceiling = the higher of before/after)")
    log("=" * 72)
    log(f"wrk ceiling, 1-record body:   {fmt(ceil_single)} requests/s  (before {fmt(wrk_before[0])}, after {fmt(wrk_after[0])})")
    log(f"wrk ceiling, {args.batch_size}-record body: {fmt(ceil_batch)} requests/s = {fmt(ceil_batch * args.batch_size)} "
        f"records/s  (before {fmt(wrk_before[1])}, after {fmt(wrk_after[1])})")
    log(f"revetl single, delivery phase: {fmt(s_rps)} requests/s = {s_rps / ceil_single:.2f} x wrk  "
        f"(runs: {', '.join(fmt(r['requests'] / r['deliver_s']) for r in single)})")
    log(f"revetl single, whole run:      {fmt(s_whole)} requests/s = {s_whole / ceil_single:.2f} x wrk")
    log(f"revetl batched, delivery phase: {fmt(b_recs)} records/s ({fmt(b_rps)} requests/s = "
        f"{b_rps / ceil_batch:.2f} x wrk with the same body)  (runs: "
        f"{', '.join(fmt(r['rows_delivered'] / r['deliver_s']) for r in batched)})")
    log(f"revetl batched, whole run:      {fmt(b_whole)} records/s")
    target_single = min(10000.0, 0.5 * ceil_single)
    log(f"target single: >= {fmt(target_single)} requests/s (10,000 or 50% of the ceiling, whichever is lower): "
        f"{'met' if s_rps >= target_single else 'NOT met'}")
    log(f"target batched: >= 100,000 records/s: {'met' if b_recs >= 100000 else 'NOT met'}")


if __name__ == "__main__":
    main()
