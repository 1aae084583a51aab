#!/usr/bin/env python3
"""CPU time and peak memory of the process that delivers a run, per thousand records.

A run executes in its own background process (backend_type 'revetl run' in
pg_stat_activity). For each size (default: 1,000 rows, the baseline: what any small run
costs; 10,000; and 100,000 rows), a webhook sync with batch_size '100' and max_in_flight '8'
delivers a table m(id bigint primary key, email text, score int, payload text) to a local
nginx (as in delivery_throughput.py). To find the process before it does any work, the model
is locked (LOCK TABLE ... IN ACCESS EXCLUSIVE MODE in another session) while the run is
requested; the run's process is found in pg_stat_activity waiting on that lock, a sampler
starts reading /proc/<pid>/stat (utime + stime) and /proc/<pid>/status (VmHWM, RssAnon) every
millisecond, and the lock is released. The last values read before the process exits are
its CPU time and its peak resident set (VmHWM is monotonic); RssAnon's peak is the memory the
process allocated itself (VmHWM also counts shared_buffers pages it touched, up to 128 MB here).

Reported: CPU ms per 1,000 records (whole process: start-up, plan, delivery, exit) and for
the delivery phase alone (from the CPU samples at planned_at and finished_at), VmHWM and peak
RssAnon, against the 1,000-row baseline.

Run (PostgreSQL refuses to run as root):
  runuser -u postgres -- env PYTHONDONTWRITEBYTECODE=1 python3 bench/delivery_resources.py
"""

import argparse
import os
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from delivery_common import (Nginx, RunWatcher, banner, create_model, fmt, log, report_machine_state,  # noqa: E402
                             run_row, sql, start_cluster, wait_for)


def measured_run(cluster, nginx, table, sync, timeout):
    before = int(sql(cluster, "select coalesce(max(id), 0) from revetl.sync_runs"))
    lock = subprocess.Popen(
        [os.path.join(cluster.bindir, "psql"), "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1",
         "-h", cluster.dir, "-p", str(cluster.port), "-U", "postgres", "-d", "postgres"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    watcher = RunWatcher(cluster, interval=0.001, series_every=0.0, light=True)
    errors = []
    try:
        lock.stdin.write(f"begin;\nlock table {table} in access exclusive mode;\nselect 'locked';\n")
        lock.stdin.flush()
        if lock.stdout.readline().strip() != "locked":
            raise RuntimeError(f"could not lock {table}: {lock.stderr.read()}")
        run_id = int(sql(cluster, f"select revetl.run_sync('{sync}')"))
        watcher.find(timeout=60)
        # The process must be waiting for the lock: it has not planned anything yet.
        wait_for(lambda: sql(cluster, f"select wait_event_type from pg_stat_activity where pid = {watcher.pid}")
                 == "Lock", timeout=60, interval=0.01, what="the run's process to wait for the model's lock")

        def follow():
            try:
                watcher.follow(timeout=timeout)
            except Exception as e:  # reported below
                errors.append(e)
        t = threading.Thread(target=follow, daemon=True)
        t.start()
        wait_for(lambda: watcher.samples > 0, timeout=10, interval=0.001, what="the first sample")
        lock.stdin.write("commit;\n\\q\n")
        lock.stdin.flush()
        lock.wait(timeout=60)
        t.join(timeout + 60)
        if t.is_alive() or errors:
            raise RuntimeError(f"following the run's process failed: {errors}")
        cluster.wait_for_run(run_id, timeout=120)
    finally:
        if lock.poll() is None:
            lock.kill()
            lock.wait(timeout=10)
    r = run_row(cluster, sync, before)
    r["cpu_s"] = watcher.cpu_s
    r["hwm_kb"] = watcher.hwm_kb
    r["anon_kb"] = watcher.anon_peak_kb
    r["samples"] = watcher.samples
    r["pid"] = watcher.pid
    d = watcher.between(r["planned_s"], r["finished_s"])
    r["deliver_cpu_s"] = d["run"] if d else None
    return r


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="1000,10000,100000", help="comma-separated row counts; the first is the baseline")
    ap.add_argument("--batch-size", type=int, default=100)
    ap.add_argument("--in-flight", type=int, default=8)
    ap.add_argument("--repeat", type=int, default=1, help="runs per size (a fresh sync each time)")
    ap.add_argument("--timeout", type=int, default=3600, help="bound on each run, seconds")
    args = ap.parse_args()
    sizes = [int(x) for x in args.sizes.split(",") if x.strip()]

    banner("revetl delivery resources: CPU and peak memory of the run's process (issue 5)")
    nginx = Nginx()
    cluster = None
    results = {}
    try:
        log(f"nginx: {nginx.version}, {nginx.url}")
        cluster = start_cluster()
        sql(cluster, f"create server hook foreign data wrapper revetl options (type 'webhook', url '{nginx.url}', "
                     f"batch_size '{args.batch_size}', max_in_flight '{args.in_flight}')")
        log(f"server hook: batch_size '{args.batch_size}', max_in_flight '{args.in_flight}'; shared_buffers "
            f"{sql(cluster, 'show shared_buffers')}")
        for n in sizes:
            t = create_model(cluster, n, f"m_{n}")
            log(f"model m_{n}: {n:,} rows, built in {t:.1f} s")
        sql(cluster, "checkpoint")
        for i in range(args.repeat):
            for n in sizes:
                sync = f"s_{n}"
                sql(cluster, f"select revetl.drop_sync('{sync}', if_exists => true); "
                             f"select revetl.create_sync('{sync}', 'm_{n}', 'hook', ARRAY['id'])")
                sql(cluster, "checkpoint")
                report_machine_state(f"{n:,} rows, repetition {i + 1}")
                r = measured_run(cluster, nginx, f"m_{n}", sync, args.timeout)
                if r["rows_delivered"] != n:
                    raise RuntimeError(f"run {r['id']} delivered {r['rows_delivered']} rows, expected {n}")
                log(f"{n:,} rows, repetition {i + 1}: run {r['id']} (pid {r['pid']}) {r['status']}, "
                    f"{r['requests']:,} requests; plan {r['plan_s']:.2f} s, delivery {r['deliver_s']:.2f} s; "
                    f"CPU {r['cpu_s'] * 1000:,.0f} ms (delivery phase {r['deliver_cpu_s'] * 1000:,.0f} ms); "
                    f"VmHWM {r['hwm_kb'] / 1024:.1f} MiB, peak RssAnon {r['anon_kb'] / 1024:.1f} MiB "
                    f"({r['samples']:,} samples)")
                results.setdefault(n, []).append(r)
    finally:
        if cluster:
            cluster.destroy()
        nginx.stop()

    log("\n" + "=" * 72)
    log(f"summary (median of {args.repeat} per size; CPU = utime + stime of the run's process)")
    log("=" * 72)
    log(f"{'rows':>9} {'CPU ms':>9} {'ms/1k rec':>10} {'deliver ms/1k':>14} {'VmHWM MiB':>10} {'RssAnon MiB':>12} "
        f"{'delivery s':>11}")

    def med(xs):
        xs = sorted(xs)
        return xs[len(xs) // 2] if len(xs) % 2 else (xs[len(xs) // 2 - 1] + xs[len(xs) // 2]) / 2
    summary = {}
    for n in sizes:
        rs = results[n]
        cpu = med([r["cpu_s"] for r in rs])
        dcpu = med([r["deliver_cpu_s"] for r in rs])
        hwm = med([r["hwm_kb"] for r in rs]) / 1024
        anon = med([r["anon_kb"] for r in rs]) / 1024
        summary[n] = (cpu, dcpu, hwm, anon)
        log(f"{n:>9,} {cpu * 1000:>9,.0f} {cpu * 1e6 / n:>10,.1f} {dcpu * 1e6 / n:>14,.1f} {hwm:>10.1f} {anon:>12.1f} "
            f"{med([r['deliver_s'] for r in rs]):>11.2f}")
    base = sizes[0]
    for n in sizes[1:]:
        cpu, dcpu, hwm, anon = summary[n]
        bcpu, bdcpu, bhwm, banon = summary[base]
        def ratio(x, bx):  # the kernel counts CPU in 10 ms ticks: a short baseline may read 0
            return f"x{(x / n) / (bx / base):.2f}" if bx > 0 else "n/a (baseline under one 10 ms tick)"
        log(f"{n:,} vs {base:,} rows: CPU per 1,000 records {ratio(cpu, bcpu)} "
            f"(delivery phase {ratio(dcpu, bdcpu)}); VmHWM x{hwm / bhwm:.2f} "
            f"(+{hwm - bhwm:.1f} MiB); peak RssAnon x{anon / banon:.2f} (+{anon - banon:.1f} MiB)")


if __name__ == "__main__":
    main()
