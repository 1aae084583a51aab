#!/usr/bin/env python3
"""Where the delivering process spends its CPU: perf profiles of a run's process, by phase.

Run as root (perf needs it to attach to another user's process); it starts itself again as
the postgres OS user for the cluster, nginx and the runs, and attaches
`perf record --call-graph dwarf` to each run's process (the child of that cluster's
postmaster whose title is "postgres: revetl run N") until it exits. Each sample is then put
in one category by the frames on its stack, first match wins:

  plan phase                     SyncRun::Plan
  read batch: <step>             SyncRun::ReadBatch (SELECT ... FROM revetl.changes, a chunk of rows)
  record batches: <step>         SyncRun::Flush (shadow upsert, DELETE from the queue, counters)
     <step> = transaction start/commit, parse + analyze, plan, execute, other
  batch record                   BuildBatchRecord (the columns and JSON the flush statements read)
  HTTP (libcurl, kernel)         HttpClient::
  request body (JSON)            Connector::Prepare / BuildWebhookRequest
  response parsing               Connector::Interpret
  rate limit / interrupts        RateDelayMs, CheckInterrupts
  other                          anything else (the engine loop, allocator, ...)

Scenarios (same set-up as delivery_throughput.py, nginx as the destination):
  single     --single-rows rows (default 50,000), batch_size '1', max_in_flight '8'
  batched    --batched-rows rows (default 30,000), batch_size '100', max_in_flight '8'

Run:
  python3 bench/delivery_profile.py            # as root, from the repository root
"""

import argparse
import collections
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

RULES = [
    ("plan phase", ["SyncRun::Plan"]),
    ("read batch", ["SyncRun::ReadBatch"]),
    ("record batches", ["SyncRun::Flush"]),
    ("batch record (BuildBatchRecord)", ["BuildBatchRecord"]),
    ("HTTP (libcurl, kernel)", ["HttpClient::"]),
    ("request body (JSON)", ["Connector::Prepare", "BuildWebhookRequest"]),
    ("response parsing", ["Connector::Interpret"]),
    ("rate limit / interrupts", ["RateDelayMs", "CheckInterrupts"]),
]
STEPS = [
    ("transaction start/commit", ["StartTransactionCommand", "CommitTransactionCommand", "BeginTransaction",
                                  "CommitTransaction"]),
    ("parse + analyze", ["raw_parser", "pg_analyze_and_rewrite", "parse_analyze"]),
    ("plan", ["pg_plan_queries", "standard_planner", "pg_plan_query"]),
    ("execute", ["standard_ExecutorRun", "ExecutorRun", "standard_ExecutorStart", "standard_ExecutorFinish",
                 "ExecutorEnd", "_SPI_pquery"]),
]


def categorize(perf_data):
    out = subprocess.run(["perf", "script", "-i", perf_data, "-F", "comm,ip,sym"], capture_output=True,
                         text=True, timeout=3600).stdout
    counts = collections.Counter()
    leaves = collections.Counter()
    total = 0
    for block in re.split(r"\n\s*\n", out):
        frames = [ln.strip().split(None, 1)[1] if len(ln.strip().split(None, 1)) > 1 else ""
                  for ln in block.strip().splitlines()[1:]]
        if not frames:
            continue
        total += 1
        leaves[frames[0]] += 1
        stack = "\n".join(frames)
        for name, pats in RULES:
            if any(p in stack for p in pats):
                if name in ("read batch", "record batches"):
                    # the step nearest the leaf wins
                    step = "other"
                    for f in frames:
                        hit = [s for s, sp in STEPS if any(p in f for p in sp)]
                        if hit:
                            step = hit[0]
                            break
                    name = f"{name}: {step}"
                counts[name] += 1
                break
        else:
            counts["other"] += 1
    return total, counts, leaves


def as_root(args):
    if os.geteuid() != 0:
        sys.exit("delivery_profile.py must run as root (perf attaches to the postgres user's processes)")
    if not shutil.which("perf"):
        sys.exit("perf is not installed (apt-get install linux-perf)")
    work = tempfile.mkdtemp(prefix="revetl-bench-profile-")
    os.chmod(work, 0o777)
    cmd = ["runuser", "-u", "postgres", "--", "env", "PYTHONDONTWRITEBYTECODE=1", "python3",
           os.path.abspath(__file__), "--worker", work, "--scenarios", args.scenarios,
           "--single-rows", str(args.single_rows), "--batched-rows", str(args.batched_rows)]
    child = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    results = []
    try:
        pm = None
        for line in child.stdout:
            sys.stdout.write(line)
            sys.stdout.flush()
            m = re.match(r"POSTMASTER (\d+)", line)
            if m:
                pm = int(m.group(1))
            m = re.match(r"RUN (\S+)", line)
            if m and pm:
                label = m.group(1)
                pid = find_run_process(pm, timeout=120)
                data = os.path.join(work, f"{label}.perf")
                perf = subprocess.Popen(["perf", "record", "-q", "--call-graph", f"dwarf,{args.stack}",
                                         "-F", str(args.freq), "-p", str(pid), "-o", data],
                                        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
                results.append((label, pid, data, perf))
        child.wait(timeout=60)
        for label, pid, data, perf in results:
            try:
                perf.wait(timeout=120)  # it ends with the process it follows
            except subprocess.TimeoutExpired:
                perf.send_signal(signal.SIGINT)
                perf.wait(timeout=60)
        print("\n" + "=" * 72)
        print(f"perf profiles of the run's process (--call-graph dwarf, -F {args.freq}); share of its samples")
        print("=" * 72)
        for label, pid, data, perf in results:
            total, counts, leaves = categorize(data)
            print(f"\n{label} (pid {pid}): {total} samples")
            deliver = total - counts.get("plan phase", 0)
            for name, n in counts.most_common():
                share = f"{100 * n / deliver:5.1f}% of the delivery-phase samples" if name != "plan phase" else ""
                print(f"  {100 * n / total:5.1f}%  {name:<48} {share}")
            print("  functions the samples were in (self time), top 8: " +
                  "; ".join(f"{name[:40]} {100 * n / total:.1f}%" for name, n in leaves.most_common(8)))
    finally:
        if child.poll() is None:
            child.send_signal(signal.SIGINT)
            child.wait(timeout=120)
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
        else:
            print(f"perf data kept in {work}")


def find_run_process(postmaster, timeout):
    from delivery_common import children_of
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for pid in children_of(postmaster):
            try:
                with open(f"/proc/{pid}/cmdline", "rb") as f:
                    title = f.read().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
            if title.startswith("postgres: revetl run"):
                return pid
        time.sleep(0.002)
    return 0


def as_worker(args):
    from delivery_common import Nginx, banner, create_model, log, sql, start_cluster
    from delivery_throughput import create_sync, describe, watched_run
    banner("revetl delivery profile (issue 5)")
    nginx = Nginx()
    cluster = None
    try:
        cluster = start_cluster()
        log(f"POSTMASTER {cluster.postmaster_pid()}")
        sql(cluster, f"""
            create server hook_single foreign data wrapper revetl options (type 'webhook', url '{nginx.url}',
              batch_size '1', max_in_flight '8');
            create server hook_batched foreign data wrapper revetl options (type 'webhook', url '{nginx.url}',
              batch_size '100', max_in_flight '8');
        """)
        create_model(cluster, args.single_rows, "m_single")
        create_model(cluster, args.batched_rows, "m_batched")
        sql(cluster, "checkpoint")
        for scenario in args.scenarios.split(","):
            table, server, n, per = (("m_single", "hook_single", args.single_rows, 1) if scenario == "single"
                                     else ("m_batched", "hook_batched", args.batched_rows, 100))
            create_sync(cluster, scenario, table, server)
            sql(cluster, "checkpoint")
            # The root side attaches perf once it sees the process; hold the run until then by
            # locking the model (the run's process waits for the lock before planning).
            lock = subprocess.Popen(
                [os.path.join(cluster.bindir, "psql"), "-X", "-q", "-A", "-t", "-h", cluster.dir, "-p",
                 str(cluster.port), "-U", "postgres", "-d", "postgres"],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
            lock.stdin.write(f"begin;\nlock table {table} in access exclusive mode;\nselect 'locked';\n")
            lock.stdin.flush()
            lock.stdout.readline()
            import threading
            result = {}

            def run():
                result["r"] = watched_run(cluster, scenario, nginx, 3600)
            t = threading.Thread(target=run, daemon=True)
            t.start()
            log(f"RUN {scenario}")
            time.sleep(2)  # perf attaches within this (the run waits for the lock meanwhile)
            lock.stdin.write("commit;\n\\q\n")
            lock.stdin.flush()
            lock.wait(timeout=60)
            t.join(3600)
            describe(f"{scenario}", result["r"], n, per)
    finally:
        if cluster:
            cluster.destroy()
        nginx.stop()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scenarios", default="single,batched")
    ap.add_argument("--single-rows", type=int, default=50000)
    ap.add_argument("--batched-rows", type=int, default=30000)
    ap.add_argument("--freq", type=int, default=199, help="perf sampling frequency, Hz")
    ap.add_argument("--stack", type=int, default=16384, help="bytes of stack perf copies per sample")
    ap.add_argument("--keep", action="store_true", help="keep the perf data files")
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        as_worker(args)
    else:
        as_root(args)


if __name__ == "__main__":
    main()
