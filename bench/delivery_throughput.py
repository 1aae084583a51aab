#!/usr/bin/env python3
"""Delivery throughput: requests/s and records/s from a run's process to a local nginx, against wrk.

  ceiling   wrk (-t1 -c8 -d10s by default) POSTing a body of the size and shape revetl sends
            (one record, and 100 records) to the same nginx, measured before and after the
            revetl runs of this invocation; the higher of the two is the ceiling.
  single    revetl, one record per request: a webhook server pointing at nginx with
            batch_size '1', max_in_flight '8', a sync of a 50,000-row table, run with
            revetl.run_sync(..., wait => true). requests/s = requests / (finished_at -
            planned_at) from revetl.sync_runs (the delivery phase only); the whole-run rate
            (finished_at - started_at, planning included) is reported too.
  batched   revetl, 100 records per request (batch_size '100', max_in_flight '8'):
            records/s over the delivery phase, for several table sizes (default 10k, 30k,
            100k rows: a rate that falls as the table grows shows per-batch work that
            depends on the size of the run), and the wrk ceiling for a 100-record body.
  again     one more single-record run after the batched ones: by then autovacuum has
            usually analyzed revetl.changes while it held another run's rows, the state of
            any database that has had runs (autoanalyze_count is reported).
  attempt   (--attempt-rows, default 1,000,000; 0 to skip) batched runs of that size,
            each bounded by --attempt-timeout seconds: if one has not finished by then, the
            rows delivered so far are reported and the run's process is terminated.

Every kind and size runs --repeat times (default 3), sizes alternating within a repetition,
and the medians are compared with the targets: on a shared 2-core machine one run of a
size varies by 10 to 15%.

While each run delivers, the CPU time of the run's process, nginx's worker, the rest of the
cluster and the whole machine is sampled (/proc), which shows what the 2 cores are spent on.

Diagnostics (--no-diagnose to skip): one extra, separately labelled run of each kind (single,
and batched at the largest size) with pg_stat_statements.track = 'all' (and track_planning)
and auto_explain logging the plan of every statement of the run that takes over 100 ms
(auto_explain.log_nested_statements, no ANALYZE): the time each statement of the run's SPI
loop (src/pg/runner.cpp) took against the delivery phase, and the plans of the slow ones.
From these, "delivery phase less the time inside one statement" is derived (arithmetic on the
measured figures, labelled as such; it is not a measured rate).

nginx runs with a minimal config in a temporary directory (one worker, keep-alive, a location
that answers 200 {"accepted":1} as application/json) and is stopped at the end.

Targets: >= 10,000 single-record requests/s, or >= 50% of the wrk ceiling if that is lower;
>= 100,000 records/s batched. PostgreSQL, nginx and wrk (or revetl) share the machine's cores.

Run (PostgreSQL refuses to run as root):
  runuser -u postgres -- env PYTHONDONTWRITEBYTECODE=1 python3 bench/delivery_throughput.py
"""

import argparse
import os
import re
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from delivery_common import (PGSS_CONF, Nginx, RunWatcher, banner, create_model, fmt, log,  # noqa: E402
                             log_breakdown, pgss_breakdown, pgss_track, report_machine_state, run_row,
                             run_wrk, sql, start_cluster, wait_for, webhook_body)


def psql_cmd(cluster, *commands):
    cmd = [os.path.join(cluster.bindir, "psql"), "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1",
           "-h", cluster.dir, "-p", str(cluster.port), "-U", "postgres", "-d", "postgres"]
    for c in commands:
        cmd += ["-c", c]
    return cmd


def watched_run(cluster, name, nginx, timeout):
    """run_sync(name, wait => true) in a psql of its own while the run's process is followed."""
    before = int(sql(cluster, "select coalesce(max(id), 0) from revetl.sync_runs"))
    t0 = time.monotonic()
    proc = subprocess.Popen(psql_cmd(cluster, f"set statement_timeout = '{int(timeout)}s'",
                                     f"select revetl.run_sync('{name}', wait => true)"),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    w = RunWatcher(cluster, other_pids=nginx.worker_pids, interval=0.01, series_every=0.05)
    try:
        w.find(timeout=120)
        w.follow(timeout=timeout)
        _, err = proc.communicate(timeout=120)
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
    r["autoanalyzed"] = sql(cluster, "select autoanalyze_count from pg_stat_all_tables "
                                     "where relid = 'revetl.changes'::regclass")
    return r


def bounded_run(cluster, name, timeout):
    """Requests a run and waits at most timeout seconds after it is planned. Returns (row or None,
    rows delivered, seconds delivering when it was stopped)."""
    rid = int(sql(cluster, f"select revetl.run_sync('{name}')"))
    planned = wait_for(lambda: sql(cluster, f"select extract(epoch from planned_at) from revetl.sync_runs "
                                            f"where id = {rid} and planned_at is not null"),
                       timeout=3600, interval=0.5, what="the run to be planned")
    deadline = float(planned) + timeout
    while time.time() < deadline:
        status = sql(cluster, f"select status from revetl.sync_runs where id = {rid}")
        if status not in ("queued", "running"):
            return run_row(cluster, name, rid - 1), None, None
        time.sleep(min(2.0, max(0.01, deadline - time.time())))
    delivered = int(sql(cluster, f"select rows_delivered from revetl.sync_runs where id = {rid}"))
    activity = sql(cluster, "select query, now() - query_start from pg_stat_activity where backend_type = 'revetl run'")
    sql(cluster, "select pg_terminate_backend(pid) from pg_stat_activity where backend_type = 'revetl run'")
    return None, delivered, activity


def show_slow_plans(text, per_statement=1):
    """Prints the first plan auto_explain logged for each statement (array literals elided)."""
    text = re.sub(r"\{[0-9,]{40,}\}", "{...}", text)
    seen = {}
    for m in re.finditer(r"LOG:  duration: ([0-9.]+) ms  plan:\n(.*?)(?=\n\S[^\n]*(?:LOG|WARNING|ERROR|"
                         r"FATAL|NOTICE|DETAIL|STATEMENT|CONTEXT):|\Z)", text, re.S):
        body = m.group(2)
        q = re.search(r"Query Text: (.*)", body)
        if not q or "revetl.run_sync" in q.group(1):
            continue
        key = q.group(1)[:60]
        seen.setdefault(key, []).append((float(m.group(1)), body))
    if not seen:
        log("  auto_explain: no statement of the run took over 100 ms")
    for key, plans in seen.items():
        log(f"  auto_explain: {len(plans)} call(s) over 100 ms of `{key}...`, longest {max(p[0] for p in plans):,.0f} ms; "
            f"the first one's plan:")
        for line in plans[0][1].splitlines()[1:per_statement * 12]:
            log("    " + line.strip("\t").rstrip())


def create_sync(cluster, name, table, server):
    sql(cluster, f"select revetl.drop_sync('{name}', if_exists => true)")
    sql(cluster, f"select revetl.create_sync('{name}', '{table}', '{server}', ARRAY['id'])")


def describe(label, r, n_rows, per_request):
    d, whole = r["deliver_s"], r["run_s"]
    log(f"\n{label}: run {r['id']} {r['status']}: {r['rows_delivered']:,} rows delivered in {r['requests']:,} "
        f"requests ({r['retries']} retries, {r['throttled']} throttled)")
    if r["rows_delivered"] != n_rows or r["rows_added"] != n_rows:
        raise RuntimeError(f"unexpected counts: {r}")
    if r["requests"] != -(-n_rows // per_request):
        log(f"  note: {r['requests']} requests for {n_rows} rows ({r['retries']} retries)")
    log(f"  plan phase     {r['plan_s']:8.3f} s")
    log(f"  delivery phase {d:8.3f} s   {fmt(r['requests'] / d)} requests/s, {fmt(r['rows_delivered'] / d)} records/s")
    log(f"  whole run      {whole:8.3f} s   {fmt(r['requests'] / whole)} requests/s, "
        f"{fmt(r['rows_delivered'] / whole)} records/s (started_at to finished_at)")
    if r.get("wall_s") is not None:  # the bounded attempt polls instead of waiting in run_sync
        log(f"  run_sync(wait => true) call, client side: {r['wall_s']:.3f} s; autoanalyze_count of "
            f"revetl.changes so far: {r['autoanalyzed']}")
    c = r["cpu"]
    if c:
        log(f"  CPU during the delivery phase ({d:.2f} s wall, {c['machine_total']:.2f} CPU-s of capacity): "
            f"run process {c['run']:.2f} s ({100 * c['run'] / d:.0f}% of a core), nginx worker {c['other']:.2f} s "
            f"({100 * c['other'] / d:.0f}%), rest of the cluster {c['cluster_rest']:.2f} s "
            f"({100 * c['cluster_rest'] / d:.0f}%), whole machine busy {c['machine_busy']:.2f} s "
            f"({100 * c['machine_busy'] / c['machine_total']:.0f}% of all cores)")
        log(f"  run process: {1e6 * c['run'] / r['requests']:.1f} us CPU per request, "
            f"{1e6 * c['run'] / r['rows_delivered']:.2f} us per record (delivery phase); "
            f"whole process {r['run_cpu_s']:.2f} s CPU, VmHWM {r['hwm_kb'] / 1024:.1f} MiB")


def med(xs):
    xs = sorted(xs)
    n = len(xs)
    return xs[n // 2] if n % 2 else (xs[n // 2 - 1] + xs[n // 2]) / 2


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--single-rows", type=int, default=50000, help="rows of the one-record-per-request run")
    ap.add_argument("--batched-sizes", default="10000,30000,100000",
                    help="comma-separated table sizes of the 100-records-per-request runs")
    ap.add_argument("--attempt-rows", type=int, default=1000000,
                    help="size of the bounded batched attempt (0: skip)")
    ap.add_argument("--attempt-timeout", type=int, default=300,
                    help="seconds the attempt may deliver before it is stopped")
    ap.add_argument("--batch-size", type=int, default=100)
    ap.add_argument("--in-flight", type=int, default=8, help="max_in_flight and wrk's -c")
    ap.add_argument("--repeat", type=int, default=3, help="runs of each kind and size, a fresh sync each time; medians are reported")
    ap.add_argument("--wrk-seconds", type=int, default=10)
    ap.add_argument("--no-diagnose", action="store_true", help="skip the pg_stat_statements and ANALYZE runs")
    ap.add_argument("--timeout", type=int, default=3600, help="bound on each run, seconds")
    args = ap.parse_args()
    sizes = [int(x) for x in args.batched_sizes.split(",") if x.strip()]

    banner("revetl delivery throughput (issue 5)")
    nginx = Nginx()
    cluster = None
    single, batched, diag = [], {}, {}
    single_after = None
    attempt = None
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

        cluster = start_cluster(extra_conf=PGSS_CONF + "\nauto_explain.log_min_duration = -1")
        sql(cluster, "create extension pg_stat_statements")
        sql(cluster, f"""
            create server hook_single foreign data wrapper revetl options (type 'webhook', url '{nginx.url}',
              batch_size '1', max_in_flight '{args.in_flight}');
            create server hook_batched foreign data wrapper revetl options (type 'webhook', url '{nginx.url}',
              batch_size '{args.batch_size}', max_in_flight '{args.in_flight}');
        """)
        log(f"servers: hook_single (batch_size '1', max_in_flight '{args.in_flight}'), hook_batched "
            f"(batch_size '{args.batch_size}', max_in_flight '{args.in_flight}'), url {nginx.url}")
        log("pg_stat_statements is loaded with track = none except in the runs labelled 'diagnostic'")
        t = create_model(cluster, args.single_rows, "m_single")
        log(f"model m_single: {args.single_rows:,} rows (id bigint primary key, email text, score int, "
            f"payload text), built in {t:.1f} s")
        for n in sizes:
            t = create_model(cluster, n, f"m_{n}")
            log(f"model m_{n}: {n:,} rows, built in {t:.1f} s")
        sql(cluster, "checkpoint")

        # -- one record per request
        for i in range(args.repeat):
            create_sync(cluster, "single", "m_single", "hook_single")
            report_machine_state(f"single run {i + 1}")
            r = watched_run(cluster, "single", nginx, args.timeout)
            describe(f"single (batch_size 1), repetition {i + 1}", r, args.single_rows, 1)
            single.append(r)
            sql(cluster, "checkpoint")

        # -- batched, by size; sizes alternate within each repetition so that all see the same load
        for i in range(args.repeat):
            for n in sizes:
                create_sync(cluster, "batched", f"m_{n}", "hook_batched")
                sql(cluster, "checkpoint")
                report_machine_state(f"batched run, {n:,} rows, repetition {i + 1}")
                r = watched_run(cluster, "batched", nginx, args.timeout)
                describe(f"batched (batch_size {args.batch_size}), {n:,} rows, repetition {i + 1}", r, n,
                         args.batch_size)
                batched.setdefault(n, []).append(r)

        # -- one record per request again, now that autovacuum may have analyzed the queue table
        # while it held the rows of the batched runs (as it does in any database that has had runs)
        create_sync(cluster, "single", "m_single", "hook_single")
        sql(cluster, "checkpoint")
        report_machine_state("single run after the batched runs")
        r = watched_run(cluster, "single", nginx, args.timeout)
        describe(f"single (batch_size 1) after the batched runs", r, args.single_rows, 1)
        single_after = r

        # -- diagnostics
        if not args.no_diagnose:
            cases = [("single", "m_single", "hook_single", args.single_rows, 1),
                     ("batched", f"m_{sizes[-1]}", "hook_batched", sizes[-1], args.batch_size)]
            for kind, table, server, n, per in cases:
                create_sync(cluster, kind, table, server)
                sql(cluster, "checkpoint")
                pgss_track(cluster, True)
                sql(cluster, "alter system set auto_explain.log_min_duration = '100ms'; "
                             "alter system set auto_explain.log_nested_statements = on; select pg_reload_conf()")
                log_start = len(cluster.log_text())
                report_machine_state(f"diagnostic {kind}")
                r = watched_run(cluster, kind, nginx, args.timeout)
                describe(f"diagnostic: {kind}, {n:,} rows, pg_stat_statements.track = all, auto_explain over 100 ms",
                         r, n, per)
                rows = pgss_breakdown(cluster)
                log_breakdown(rows, r["deliver_s"], r["plan_s"])
                for label, calls, ex, pl, mx in rows:
                    if calls and not label.startswith("plan") and (ex + pl) / 1000 > 0.2 * r["deliver_s"]:
                        rest = r["deliver_s"] - (ex + pl) / 1000
                        log(f"  derived: delivery phase less the time inside '{label}': {rest:.2f} s = "
                            f"{fmt(r['rows_delivered'] / rest)} records/s, {fmt(r['requests'] / rest)} requests/s")
                sql(cluster, "alter system reset auto_explain.log_min_duration; "
                             "alter system reset auto_explain.log_nested_statements; select pg_reload_conf()")
                pgss_track(cluster, False)
                show_slow_plans(cluster.log_text()[log_start:])
                diag[kind] = (r, rows)

        # -- the bounded attempt at the full size, --repeat times
        if args.attempt_rows:
            t = create_model(cluster, args.attempt_rows, "m_attempt")
            log(f"\nmodel m_attempt: {args.attempt_rows:,} rows, built in {t:.1f} s")
            attempt = []
            for i in range(args.repeat):
                create_sync(cluster, "attempt", "m_attempt", "hook_batched")
                sql(cluster, "checkpoint")
                report_machine_state(f"attempt, {args.attempt_rows:,} rows, repetition {i + 1}")
                row, delivered, activity = bounded_run(cluster, "attempt", args.attempt_timeout)
                if row:
                    describe(f"attempt: batched, {args.attempt_rows:,} rows, repetition {i + 1}", dict(row, cpu=None),
                             args.attempt_rows, args.batch_size)
                    attempt.append(row["rows_delivered"] / row["deliver_s"])
                else:
                    log(f"\nattempt: batched, {args.attempt_rows:,} rows: NOT finished {args.attempt_timeout} s after "
                        f"planning; rows_delivered then: {delivered:,}; the run's process was at: {activity}; "
                        f"it was terminated")
                    attempt.append(delivered / args.attempt_timeout)  # an upper bound of its rate
                    break
        sql(cluster, "select revetl.drop_sync(name) from revetl.syncs")

        wrk_after = ceilings("after the runs")
    finally:
        if cluster:
            cluster.destroy()
        nginx.stop()

    ceil_single = max(wrk_before[0], wrk_after[0])
    ceil_batch = max(wrk_before[1], wrk_after[1])
    s_rps = med([r["requests"] / r["deliver_s"] for r in single])
    s_whole = med([r["requests"] / r["run_s"] for r in single])
    log("\n" + "=" * 72)
    log(f"summary (single: median of {args.repeat} runs; wrk ceiling = the higher of before/after)")
    log("=" * 72)
    log(f"wrk ceiling, 1-record body:   {fmt(ceil_single)} requests/s  (before {fmt(wrk_before[0])}, after "
        f"{fmt(wrk_after[0])})")
    log(f"wrk ceiling, {args.batch_size}-record body: {fmt(ceil_batch)} requests/s = "
        f"{fmt(ceil_batch * args.batch_size)} records/s  (before {fmt(wrk_before[1])}, after {fmt(wrk_after[1])})")
    log(f"revetl single, {args.single_rows:,} rows, delivery phase: {fmt(s_rps)} requests/s = "
        f"{s_rps / ceil_single:.3f} x wrk  (runs: {', '.join(fmt(r['requests'] / r['deliver_s']) for r in single)})")
    log(f"revetl single, whole run:      {fmt(s_whole)} requests/s = {s_whole / ceil_single:.3f} x wrk")
    if single_after:
        a = single_after["requests"] / single_after["deliver_s"]
        log(f"revetl single, after the batched runs (autoanalyze_count of revetl.changes {single_after['autoanalyzed']}): "
            f"{fmt(a)} requests/s = {a / ceil_single:.3f} x wrk = {a / s_rps:.2f} x the first runs")
    for n, rs in batched.items():
        recs = [r["rows_delivered"] / r["deliver_s"] for r in rs]
        rec = med(recs)
        log(f"revetl batched, {n:>9,} rows: {fmt(rec):>9} records/s in the delivery phase, median of {len(rs)} "
            f"(runs: {', '.join(fmt(x) for x in recs)}; {fmt(rec / args.batch_size)} requests/s = "
            f"{rec / args.batch_size / ceil_batch:.4f} x wrk with the same body), whole run "
            f"{fmt(med([r['rows_delivered'] / r['run_s'] for r in rs]))} records/s")
    if attempt:
        log(f"revetl batched, {args.attempt_rows:>9,} rows: {fmt(med(attempt)):>9} records/s in the delivery phase, "
            f"median of {len(attempt)} (runs: {', '.join(fmt(x) for x in attempt)})")
    for kind, (r, rows) in diag.items():
        top = max(rows, key=lambda x: x[2] + x[3] if not x[0].startswith("plan") else -1)
        log(f"diagnostic {kind}: the statement that took longest in the delivery phase: {top[0]}, "
            f"{(top[2] + top[3]) / 1000:.2f} s in {top[1]:,} calls = "
            f"{100 * (top[2] + top[3]) / 1000 / r['deliver_s']:.0f}% of the delivery phase ({r['deliver_s']:.2f} s)")
    target_single = min(10000.0, 0.5 * ceil_single)
    log(f"target single: >= {fmt(target_single)} requests/s (10,000 or 50% of the ceiling, whichever is lower): "
        f"{'met' if s_rps >= target_single else 'NOT met'}")
    # Every size counts, the 1M attempt included: a rate that holds only for small runs is not met.
    rates = {n: med([r["rows_delivered"] / r["deliver_s"] for r in rs]) for n, rs in batched.items()}
    if attempt:
        rates[args.attempt_rows] = med(attempt)
    if rates:
        below = [n for n, v in rates.items() if v < 100000]
        per_size = ", ".join(f"{n:,} rows {fmt(v)}" for n, v in sorted(rates.items()))
        log(f"target batched: >= 100,000 records/s in the delivery phase: "
            f"{'met at every size' if not below else 'NOT met at ' + ', '.join(f'{n:,}' for n in sorted(below)) + ' rows'}"
            f" (medians: {per_size} records/s)")

if __name__ == "__main__":
    main()
