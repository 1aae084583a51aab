#!/usr/bin/env python3
"""End-to-end run throughput (issue 16, point 2): what a user waiting on
revetl.run_sync(..., wait => true) gets, against the wire's ceiling on the same sink.

  first    a first full run of a --first-rows table (default 200,000) with batch_size
           --batch-size (default 1000): records/s = rows / wall time of the
           run_sync(..., wait => true) call (plan, delivery, every commit, the run's end).
  change   the same sync after every row's `score` was updated: a large change run
           (each row an upsert of its shadow row), same measure.
  single   a first full run of a --single-rows table (default 10,000) with batch_size 1:
           requests/s = requests / wall time of the call.

Baselines, in the same invocation and alternating with the revetl runs:

  wire     bench/blast.c: the same number of requests, with a body of the size and shape
           revetl sends (1 record, and --batch-size records), --in-flight at a time, over
           libcurl's multi interface (the library revetl delivers with) to the same sink,
           doing nothing else. The revetl/wire ratio is the figure of merit.
  delivery the run's own delivery phase (finished_at - planned_at in revetl.sync_runs),
           the figure docs/benchmarks.md reports for issue 5.

  wrk      with --endpoint nginx: wrk's rate on the same nginx, the wire's ceiling the issue
           names ("30% of wrk's ceiling on the same endpoint"): once with as many connections
           as revetl's max_in_flight, once with --wrk-connections over 2 threads; the higher
           is the ceiling.

The endpoint (--endpoint): `nginx` (Debian's nginx-light, one worker process, answering
200 {"accepted":1} over keep-alive; bench/http_endpoints.py), as the issue measured; or
`sink`, bench/sink.c (one thread, epoll, keep-alive, the same answer), for a machine without
nginx and wrk. `auto` (the default) takes nginx when nginx and wrk are installed
(`apt-get install nginx-light wrk`). Both C programs are built with the system's cc and libcurl.

  split    with --split N (N >= 2): the same --single-rows records as N syncs of
           --single-rows / N rows each, to the same endpoint, started at once (N run
           processes, each with max_in_flight --in-flight): requests/s = all requests / wall
           time from the first call to the last return. What N sending processes could give
           one big single-record run on this machine, measured before building them; its
           baseline, "wire, N clients", is N blast.c processes at once with the same counts.

  one process  with --recorder-off: each first and single run once more with
           revetl.recorder_min_rows = -1, so that the run's own process records every batch
           (no "revetl recorder" second process; src/pg/recorder.hpp), right after the run
           with the default setting.

Every kind runs --repeat times (default 3); medians are reported. Nothing here asserts a
time: the script checks only that each run delivered every row it should have.

Run (PostgreSQL refuses to run as root):
  runuser -u postgres -- env PYTHONDONTWRITEBYTECODE=1 python3 bench/run_throughput.py
"""

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from delivery_common import (CLK_TCK, banner, create_model, fmt, log, proc_cpu_ticks,  # noqa: E402
                             report_machine_state, sql, start_cluster, wait_for, webhook_body)
from delivery_common import RunWatcher, run_row  # noqa: E402
from delivery_throughput import psql_cmd  # noqa: E402
import http_endpoints  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))


def build(workdir):
    sink = os.path.join(workdir, "sink")
    blast = os.path.join(workdir, "blast")
    subprocess.run(["cc", "-O2", "-o", sink, os.path.join(HERE, "sink.c")], check=True)
    subprocess.run(["cc", "-O2", "-o", blast, os.path.join(HERE, "blast.c"), "-lcurl"], check=True)
    return sink, blast


class Sink:
    """bench/sink.c; with delay_ms > 0 each answer leaves delay_ms after its request arrived."""

    def __init__(self, binary, workdir, delay_ms=0):
        self.portfile = os.path.join(workdir, f"sink-{delay_ms}.port")
        self.proc = subprocess.Popen([binary, self.portfile, str(delay_ms)], stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True)
        port = wait_for(lambda: self._port(), timeout=10, what="the sink to listen")
        self.url = f"http://127.0.0.1:{port}/hook"

    def _port(self):
        if self.proc.poll() is not None:
            raise RuntimeError(f"sink exited: {self.proc.stderr.read()}")
        try:
            with open(self.portfile) as f:
                return int(f.read().strip())
        except (OSError, ValueError):
            return None

    def worker_pids(self):
        return [self.proc.pid]

    def cpu_s(self):
        return proc_cpu_ticks(self.proc.pid) / CLK_TCK

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                out, _ = self.proc.communicate(timeout=10)
                log(out.strip())
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)


def children_cpu_s():
    t = os.times()
    return t.children_user + t.children_system


def blast(binary, sink, body_file, count, parallel, client_cpu=None):
    """(wall seconds, CPU seconds of the client and the sink); the client's alone goes into
    client_cpu["blast"] when given."""
    before = children_cpu_s()
    sink_before = sink.cpu_s()
    p = subprocess.run([binary, sink.url, body_file, str(count), str(parallel)], capture_output=True, text=True,
                       timeout=3600)
    if p.returncode != 0:
        raise RuntimeError(f"blast failed: {p.stdout} {p.stderr}")
    cpu = children_cpu_s() - before
    secs, done, bad = p.stdout.split()
    if client_cpu is not None:
        client_cpu["blast"] = cpu
    return float(secs), cpu + sink.cpu_s() - sink_before


def watched_run(cluster, name, sink, timeout=3600):
    """run_sync(name, wait => true) in a psql of its own, timed from the client, while the run's process,
    the rest of the cluster and the sink are followed (/proc): wall time and CPU seconds of the whole run."""
    before = int(sql(cluster, "select coalesce(max(id), 0) from revetl.sync_runs"))
    t0 = time.monotonic()
    t0_epoch = time.time()
    proc = subprocess.Popen(psql_cmd(cluster, f"set statement_timeout = '{int(timeout)}s'",
                                     f"select revetl.run_sync('{name}', wait => true)"),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    # The call is timed by a thread of its own: the user waits for run_sync to return, not for the
    # run's process to exit (which the watcher follows for its CPU, and which may come later).
    call = {}

    def wait_for_call():
        call["err"] = proc.communicate(timeout=timeout + 120)[1]
        call["wall"] = time.monotonic() - t0
        call["end_epoch"] = time.time()

    waiter = threading.Thread(target=wait_for_call, daemon=True)
    waiter.start()
    w = RunWatcher(cluster, other_pids=sink.worker_pids, interval=0.01, series_every=0.05)
    try:
        w.find(timeout=120)
        w.follow(timeout=timeout)
        waiter.join(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
    waiter.join(timeout=10)
    if proc.returncode != 0 or "wall" not in call:
        raise RuntimeError(f"run_sync failed: {call.get('err', '').strip()}")
    err, wall = call["err"], call["wall"]
    r = run_row(cluster, name, before, err, wall)
    # Where the call's time outside the run went: from the call to the run's start (psql's connection,
    # the request, the worker starting the run's process), and from the run's end to the call's return.
    r["to_start_s"] = r["started_s"] - t0_epoch
    r["to_return_s"] = call["end_epoch"] - r["finished_s"]
    whole = w.between(r["started_s"], r["finished_s"]) or {}
    plan = w.between(r["started_s"], r["planned_s"]) or {}
    r["run_cpu_s"] = w.cpu_s
    r["plan_cpu_s"] = plan.get("run", 0.0)
    # The run's process, every other process of the cluster (the WAL writer, the checkpointer,
    # the worker, autovacuum) and the sink, over the whole run.
    r["cpu_s"] = w.cpu_s + whole.get("cluster_rest", 0.0) + whole.get("other", 0.0)
    return r


def med(xs):
    xs = sorted(xs)
    n = len(xs)
    return xs[n // 2] if n % 2 else (xs[n // 2 - 1] + xs[n // 2]) / 2


def check(r, kind, n_rows, per_request):
    delivered = r["rows_delivered"]
    if delivered != n_rows or r["rows_rejected"] != 0:
        raise RuntimeError(f"{kind}: run {r['id']} delivered {delivered} of {n_rows} rows: {r}")
    if r["requests"] < -(-n_rows // per_request):
        raise RuntimeError(f"{kind}: run {r['id']} made {r['requests']} requests for {n_rows} rows")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--first-rows", type=int, default=200000)
    ap.add_argument("--single-rows", type=int, default=10000)
    ap.add_argument("--batch-size", type=int, default=1000)
    ap.add_argument("--in-flight", type=int, default=4, help="max_in_flight (the default, 4) and the baseline's")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--no-change", action="store_true", help="skip the large-change runs")
    ap.add_argument("--endpoint", choices=("auto", "nginx", "sink"), default="auto")
    ap.add_argument("--wrk-connections", type=int, default=16, help="connections of wrk's second, ceiling run")
    ap.add_argument("--wrk-seconds", type=int, default=3)
    ap.add_argument("--split", type=int, default=0,
                    help="also deliver the single-record rows as this many syncs at once (N run processes)")
    ap.add_argument("--recorder-off", action="store_true",
                    help="also run each first and single run without the recorder process (baseline)")
    args = ap.parse_args()
    if args.endpoint == "auto":
        args.endpoint = "nginx" if http_endpoints.available() else "sink"
    if args.endpoint == "nginx" and not http_endpoints.available():
        sys.exit("--endpoint nginx needs nginx and wrk: apt-get install nginx-light wrk")

    banner("revetl end-to-end run throughput (issue 16, point 2)")
    workdir = tempfile.mkdtemp(prefix="revetl-bench-run-")
    os.chmod(workdir, 0o755)
    sink = cluster = None
    if args.split == 1 or args.split < 0 or (args.split and args.single_rows % args.split):
        sys.exit("--split must be at least 2 and divide --single-rows")
    split_kind = f"single, {args.split} syncs at once"
    results = {"first": [], "first, one process": [], "change": [], "single": [], "single, one process": [],
               split_kind: []}
    try:
        sink_bin, blast_bin = build(workdir)
        curl = subprocess.run(['curl-config', '--version'], capture_output=True, text=True).stdout.strip()
        if args.endpoint == "nginx":
            sink = http_endpoints.NginxSink(workdir)
            log(f"endpoint: nginx {sink.version()}, one worker, at {sink.url}; baselines: bench/blast.c ({curl}), "
                f"{args.in_flight} in flight, and {http_endpoints.wrk_version()} ({args.wrk_seconds:g} s runs, "
                f"{args.in_flight} and {args.wrk_connections} connections)")
        else:
            sink = Sink(sink_bin, workdir)
            log(f"endpoint: bench/sink.c at {sink.url} (nginx and wrk not used); baseline client: bench/blast.c "
                f"({curl}), {args.in_flight} in flight")
        bodies = {}
        for n in (1, args.batch_size):
            path = os.path.join(workdir, f"body{n}.json")
            with open(path, "w") as f:
                f.write(webhook_body(n))
            bodies[n] = path
        log(f"baseline bodies: 1 record {os.path.getsize(bodies[1])} bytes, {args.batch_size} records "
            f"{os.path.getsize(bodies[args.batch_size]):,} bytes")

        def wrk_ceiling(body, per_request, client_cpu=None):
            """wrk's best rate on the endpoint, in rows per second (None with --endpoint sink); wrk's
            own CPU per request over --in-flight connections goes into client_cpu["wrk_us"] when given."""
            if args.endpoint != "nginx":
                return None
            before = children_cpu_s()
            same = http_endpoints.wrk_rate(sink.url, body, args.in_flight, args.wrk_seconds)
            if client_cpu is not None:
                client_cpu["wrk_us"] = 1e6 * (children_cpu_s() - before) / (same * args.wrk_seconds)
            most = http_endpoints.wrk_rate(sink.url, body, args.wrk_connections, args.wrk_seconds, threads=2)
            log(f"  wrk: {fmt(same)} requests/s over {args.in_flight} connections, {fmt(most)} over "
                f"{args.wrk_connections}")
            return max(same, most) * per_request

        cluster = start_cluster(name="revetl-bench-run")
        sql(cluster, f"""
            create server hook_batched foreign data wrapper revetl options (type 'webhook', url '{sink.url}',
              batch_size '{args.batch_size}', max_in_flight '{args.in_flight}');
            create server hook_single foreign data wrapper revetl options (type 'webhook', url '{sink.url}',
              batch_size '1', max_in_flight '{args.in_flight}');
        """)
        t = create_model(cluster, args.first_rows, "m_first")
        log(f"model m_first: {args.first_rows:,} rows (id bigint primary key, email text, score int, "
            f"payload text), built in {t:.1f} s")
        t = create_model(cluster, args.single_rows, "m_single")
        log(f"model m_single: {args.single_rows:,} rows, built in {t:.1f} s")
        for k in range(args.split):
            create_model(cluster, args.single_rows // args.split, f"m_split{k}")
        if args.split:
            log(f"models m_split0..{args.split - 1}: {args.single_rows // args.split:,} rows each")
        sql(cluster, "checkpoint")

        def recorder(on):
            """revetl.recorder_min_rows at its default, or -1 (runs record their batches themselves)."""
            sql(cluster, "alter system reset revetl.recorder_min_rows" if on else
                "alter system set revetl.recorder_min_rows = -1")
            sql(cluster, "select pg_reload_conf()")
            want = "10000" if on else "-1"
            wait_for(lambda: sql(cluster, "show revetl.recorder_min_rows") == want, timeout=30,
                     what="the postmaster to read revetl.recorder_min_rows")

        def one_process_run(kind, sync, model, server, rows, batch_size, r_with):
            """The same first run with the recorder off, right after the one with it."""
            recorder(False)
            sql(cluster, f"select revetl.drop_sync('{sync}', if_exists => true)")
            sql(cluster, f"select revetl.create_sync('{sync}', '{model}', '{server}', ARRAY['id'])")
            sql(cluster, "checkpoint")
            report_machine_state(f"{kind}, one process")
            r = watched_run(cluster, sync, sink)
            recorder(True)
            check(r, kind.split()[0], rows, batch_size)
            r["wire_s"], r["wire_cpu_s"], r["wrk_rate"] = r_with["wire_s"], r_with["wire_cpu_s"], r_with["wrk_rate"]
            results[f"{kind.split()[0]}, one process"].append(r)
            unit = "records/s" if batch_size > 1 else "requests/s"
            log(f"{kind}, one process: run_sync {r['wall_s']:.3f} s = {fmt(rows / r['wall_s'])} {unit} "
                f"(plan {r['plan_s']:.3f} s, delivery {r['deliver_s']:.3f} s); CPU: run process "
                f"{r['run_cpu_s']:.2f} s, with the rest {r['cpu_s']:.2f} s")

        def split_run(i):
            """--split syncs started at once; the wall time from the first call to the last return."""
            n = args.split
            for k in range(n):
                sql(cluster, f"select revetl.drop_sync('split{k}', if_exists => true)")
                sql(cluster, f"select revetl.create_sync('split{k}', 'm_split{k}', 'hook_single', ARRAY['id'])")
            before = int(sql(cluster, "select coalesce(max(id), 0) from revetl.sync_runs"))
            sql(cluster, "checkpoint")
            report_machine_state(f"{split_kind}, repetition {i + 1}")
            t0 = time.monotonic()
            calls = [subprocess.Popen(psql_cmd(cluster, f"select revetl.run_sync('split{k}', wait => true)"),
                                      stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
                     for k in range(n)]
            errs = [c.communicate(timeout=3600)[1] for c in calls]
            wall = time.monotonic() - t0
            if any(c.returncode != 0 for c in calls):
                raise RuntimeError(f"{split_kind}: run_sync failed: {' '.join(e.strip() for e in errs)}")
            runs = [run_row(cluster, f"split{k}", before) for k in range(n)]
            for r in runs:
                check(r, split_kind, args.single_rows // n, 1)
            # The wire with as many clients, each with the same share.
            sink_before = sink.cpu_s()
            t1 = time.monotonic()
            clients = [subprocess.Popen([blast_bin, sink.url, bodies[1], str(args.single_rows // n),
                                         str(args.in_flight)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                        text=True) for _ in range(n)]
            outs = [c.communicate(timeout=3600) for c in clients]
            wire = time.monotonic() - t1
            if any(c.returncode != 0 for c in clients):
                raise RuntimeError(f"blast failed: {outs}")
            requests = sum(r["requests"] for r in runs)
            r = {"wall_s": wall, "plan_s": med([x["plan_s"] for x in runs]),
                 "deliver_s": max(x["finished_s"] for x in runs) - min(x["planned_s"] for x in runs),
                 "wire_s": wire, "wire_cpu_s": None, "run_cpu_s": None, "cpu_s": None,
                 "wrk_rate": results["single"][-1]["wrk_rate"]}
            results[split_kind].append(r)
            log(f"{split_kind} {i + 1}: {requests} requests in {wall:.3f} s = {fmt(requests / wall)} requests/s "
                f"(runs planned in {r['plan_s']:.3f} s, median; first plan's end to last run's end "
                f"{r['deliver_s']:.3f} s); wire, {n} clients: {args.single_rows} requests in {wire:.3f} s = "
                f"{fmt(args.single_rows / wire)} requests/s (sink CPU {sink.cpu_s() - sink_before:.2f} s)")

        batches = -(-args.first_rows // args.batch_size)
        for i in range(args.repeat):
            # -- first full run, batched
            sql(cluster, "select revetl.drop_sync('first', if_exists => true)")
            sql(cluster, "select revetl.create_sync('first', 'm_first', 'hook_batched', ARRAY['id'])")
            sql(cluster, "checkpoint")
            report_machine_state(f"first run, repetition {i + 1}")
            r = watched_run(cluster, "first", sink)
            check(r, "first", args.first_rows, args.batch_size)
            w, wc = blast(blast_bin, sink, bodies[args.batch_size], batches, args.in_flight)
            r["wire_s"], r["wire_cpu_s"] = w, wc
            r["wrk_rate"] = wrk_ceiling(bodies[args.batch_size], args.batch_size)
            results["first"].append(r)
            log(f"first run {i + 1}: run_sync {r['wall_s']:.3f} s = {fmt(args.first_rows / r['wall_s'])} records/s "
                f"(plan {r['plan_s']:.3f} s, delivery {r['deliver_s']:.3f} s = "
                f"{fmt(args.first_rows / r['deliver_s'])} records/s); wire: {batches} requests in {w:.3f} s = "
                f"{fmt(args.first_rows / w)} records/s")
            log(f"  CPU: run process {r['run_cpu_s']:.2f} s (plan {r['plan_cpu_s']:.2f} s), with the rest of the "
                f"cluster and the sink {r['cpu_s']:.2f} s; wire: client and sink {wc:.2f} s")
            if args.recorder_off:
                one_process_run(f"first run {i + 1}", "first", "m_first", "hook_batched", args.first_rows,
                                args.batch_size, r)

            # -- a large change: every row updated
            if not args.no_change:
                sql(cluster, "update m_first set score = score + 1; vacuum m_first; checkpoint")
                report_machine_state(f"change run, repetition {i + 1}")
                r = watched_run(cluster, "first", sink)
                check(r, "change", args.first_rows, args.batch_size)
                r["wire_s"], r["wire_cpu_s"] = w, wc
                r["wrk_rate"] = results["first"][-1]["wrk_rate"]
                results["change"].append(r)
                log(f"change run {i + 1}: run_sync {r['wall_s']:.3f} s = {fmt(args.first_rows / r['wall_s'])} "
                    f"records/s (plan {r['plan_s']:.3f} s, delivery {r['deliver_s']:.3f} s); CPU: run process "
                    f"{r['run_cpu_s']:.2f} s (plan {r['plan_cpu_s']:.2f} s), with the rest {r['cpu_s']:.2f} s")

            # -- first full run, one record per request
            sql(cluster, "select revetl.drop_sync('single', if_exists => true)")
            sql(cluster, "select revetl.create_sync('single', 'm_single', 'hook_single', ARRAY['id'])")
            sql(cluster, "checkpoint")
            report_machine_state(f"single run, repetition {i + 1}")
            r = watched_run(cluster, "single", sink)
            check(r, "single", args.single_rows, 1)
            client = {}
            w, wc = blast(blast_bin, sink, bodies[1], args.single_rows, args.in_flight, client)
            r["wire_s"], r["wire_cpu_s"] = w, wc
            r["wrk_rate"] = wrk_ceiling(bodies[1], 1, client)
            # CPU per request of each client on its own: what one sending process can reach on this
            # machine is bounded by it, whatever the endpoint does.
            r["run_us"] = 1e6 * (r["run_cpu_s"] - r["plan_cpu_s"]) / r["requests"]
            r["blast_us"] = 1e6 * client["blast"] / args.single_rows
            r["wrk_us"] = client.get("wrk_us")
            results["single"].append(r)
            log(f"single run {i + 1}: run_sync {r['wall_s']:.3f} s = {fmt(r['requests'] / r['wall_s'])} requests/s "
                f"(plan {r['plan_s']:.3f} s, delivery {r['deliver_s']:.3f} s = "
                f"{fmt(r['requests'] / r['deliver_s'])} requests/s); wire: {args.single_rows} requests in "
                f"{w:.3f} s = {fmt(args.single_rows / w)} requests/s")
            log(f"  CPU: run process {r['run_cpu_s']:.2f} s (plan {r['plan_cpu_s']:.2f} s), with the rest of the "
                f"cluster and the sink {r['cpu_s']:.2f} s; wire: client and sink {wc:.2f} s")
            log(f"  CPU per request: revetl's run process after its plan {r['run_us']:.1f} us, blast.c {r['blast_us']:.1f} us"
                + (f", wrk {r['wrk_us']:.1f} us" if r["wrk_us"] else "") + " (each client alone, the sink not counted)")
            log(f"  outside the run: {r['to_start_s'] * 1000:.0f} ms from the call to the run's start, "
                f"{r['to_return_s'] * 1000:.0f} ms from its end to the call's return")
            if args.recorder_off:
                one_process_run(f"single run {i + 1}", "single", "m_single", "hook_single", args.single_rows, 1, r)
            if args.split:
                split_run(i)

        log("")
        log(f"medians of {args.repeat} (end to end = the run_sync(..., wait => true) call's wall time):")
        log(f"| run | rows | end to end (s) | end to end rate | plan (s) | delivery phase rate | wire (s) | "
            f"wire rate | end to end / wire | wrk ceiling | end to end / wrk | run process CPU (s) | all CPU (s) | "
            f"wire CPU (s) |")
        log("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
        for kind, n, unit in (("first", args.first_rows, "records/s"),
                              ("first, one process", args.first_rows, "records/s"),
                              ("change", args.first_rows, "records/s"),
                              ("single", args.single_rows, "requests/s"),
                              ("single, one process", args.single_rows, "requests/s"),
                              (split_kind, args.single_rows, "requests/s")):
            rs = results[kind]
            if not rs:
                continue
            wall = med([r["wall_s"] for r in rs])
            plan = med([r["plan_s"] for r in rs])
            deliv = med([r["deliver_s"] for r in rs])
            wire = med([r["wire_s"] for r in rs])
            def cpu(key):
                xs = [r[key] for r in rs if r[key] is not None]
                return f"{med(xs):.2f}" if xs else "-"
            run_cpu, all_cpu, wire_cpu = cpu("run_cpu_s"), cpu("cpu_s"), cpu("wire_cpu_s")
            wrk = [r["wrk_rate"] for r in rs if r.get("wrk_rate")]
            wrk_cols = (f"{fmt(med(wrk))} {unit} | {100 * (n / wall) / med(wrk):.0f}%" if wrk else "- | -")
            log(f"| {kind} (batch_size {1 if kind.startswith('single') else args.batch_size}) | {n:,} | {wall:.3f} | "
                f"{fmt(n / wall)} {unit} | {plan:.3f} | {fmt(n / deliv)} {unit} | {wire:.3f} | {fmt(n / wire)} {unit} | "
                f"{100 * wire / wall:.0f}% | {wrk_cols} | {run_cpu} | {all_cpu} | {wire_cpu} |")
        rs = results["single"]
        if rs:
            wrk_us = [r["wrk_us"] for r in rs if r["wrk_us"]]
            log(f"single-record CPU per request, medians: revetl's run process {med([r['run_us'] for r in rs]):.1f} us, "
                f"blast.c {med([r['blast_us'] for r in rs]):.1f} us" + (f", wrk {med(wrk_us):.1f} us" if wrk_us else ""))
    finally:
        if cluster is not None:
            cluster.destroy()
        if sink is not None:
            sink.stop()
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
