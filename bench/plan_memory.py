#!/usr/bin/env python3
"""Peak memory of the process that executes a run's plan, for a large model.

A run executes in its own background process ("revetl run" in
pg_stat_activity.backend_type). This benchmark measures that process's
memory for:

  idle      a run of a 1,000-row model with 10 changed rows (the baseline: what
            any run's process takes);
  large     a run of an N-row model (default 10,000,000) with 1% changed
            (the shadow table filled directly as a delivered run leaves it,
            as in plan_throughput.py);
  first     (unless --no-first-run) a first run of the same N-row model: empty
            shadow table, so every row is planned as an add and written to
            the revetl.changes queue.

Every sync points at a destination that refuses connections (max_attempts 1),
so the run plans, fails on its first request and exits.

To find the process before it does any work, the model is locked
(LOCK TABLE ... IN ACCESS EXCLUSIVE MODE in another session) while the run is
requested; the run's process is found in pg_stat_activity waiting on that
lock, then the lock is released. From then on /proc/<pid>/status is read
every 10 ms until the process exits: the last VmHWM read (the kernel's
peak resident set; monotonic, so the last read before exit is the peak up to
then) and the largest RssAnon (private memory: palloc'd memory, hash
tables, sort buffers) and RssShmem (shared memory pages touched: mostly
shared_buffers, which every backend shares) seen.

VmHWM counts the shared_buffers pages the process touched (up to the
128 MB default here); RssAnon peak is what the run itself allocated.
Target: under 100 MB.

Run (PostgreSQL refuses to run as root):
  runuser -u postgres -- env PYTHONDONTWRITEBYTECODE=1 python3 bench/plan_memory.py
"""

import argparse
import os
import select
import subprocess
import sys
import threading
import time

from common import (banner, create_model, create_unreachable_server, fill_shadow, log, run_once, sql, start_cluster,
                    wait_for)

FIELDS = ("VmHWM", "VmRSS", "RssAnon", "RssFile", "RssShmem")


def read_status(pid):
    """{field: kB} from /proc/<pid>/status, or None once the process is gone."""
    try:
        with open(f"/proc/{pid}/status") as f:
            text = f.read()
    except (FileNotFoundError, ProcessLookupError):
        return None
    out = {}
    for line in text.splitlines():
        name, _, rest = line.partition(":")
        if name in FIELDS:
            out[name] = int(rest.split()[0])
    # A process that has exited but not been reaped (a zombie) has no memory
    # fields left.
    return out if "VmHWM" in out else None


class Sampler(threading.Thread):
    def __init__(self, pid, interval=0.001, timeout=3600):
        super().__init__(daemon=True)
        self.pid, self.interval, self.timeout = pid, interval, timeout
        self.first = None
        self.last = None
        self.peak = {f: 0 for f in FIELDS}
        self.samples = 0
        self.timed_out = False
        self.jit_mapped = False  # whether LLVM's JIT library was ever seen mapped

    def check_maps(self):
        try:
            with open(f"/proc/{self.pid}/maps") as f:
                if "llvmjit" in f.read():
                    self.jit_mapped = True
        except OSError:
            pass

    def run(self):
        deadline = time.monotonic() + self.timeout
        while time.monotonic() < deadline:
            s = read_status(self.pid)
            if s is None:
                return
            self.samples += 1
            self.first = self.first or s
            self.last = s
            for f in FIELDS:
                self.peak[f] = max(self.peak[f], s.get(f, 0))
            if not self.jit_mapped and self.samples % 100 == 1:
                self.check_maps()
            time.sleep(self.interval)
        self.timed_out = True


class LockHolder:
    """A psql session holding ACCESS EXCLUSIVE on a table until release()."""

    def __init__(self, cluster, table):
        cmd = [os.path.join(cluster.bindir, "psql"), "-X", "-q", "-A", "-t", "-h", cluster.dir,
               "-p", str(cluster.port), "-U", "postgres", "-d", "postgres"]
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1)
        self.proc.stdin.write(f"begin; lock table {table} in access exclusive mode; select 'locked';\n")
        self.proc.stdin.flush()
        deadline = time.monotonic() + 60
        line = ""
        while "locked" not in line:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self.proc.stdout], [], [], left)[0]:
                raise TimeoutError("the lock session did not answer")
            line = self.proc.stdout.readline()
            if not line:
                raise RuntimeError("the lock session ended")

    def release(self):
        self.proc.stdin.write("commit;\n")
        self.proc.stdin.close()
        self.proc.wait(timeout=60)


def measure(cluster, sync, table, label):
    holder = LockHolder(cluster, table)
    try:
        run_id = int(sql(cluster, f"select revetl.run_sync('{sync}')"))

        def blocked_pid():
            out = sql(cluster, "select pid from pg_stat_activity where backend_type = 'revetl run' "
                               "and wait_event_type = 'Lock'")
            return int(out) if out else None
        pid = wait_for(blocked_pid, timeout=60, interval=0.05, what=f"run {run_id}'s process to wait on the lock")
        sampler = Sampler(pid)
        sampler.start()
        wait_for(lambda: sampler.samples > 0 or not sampler.is_alive(), timeout=10, interval=0.01,
                 what="first memory sample")
    finally:
        holder.release()
    t0 = time.monotonic()
    sampler.join(timeout=3600)
    if sampler.timed_out or sampler.is_alive():
        raise TimeoutError(f"run {run_id}'s process did not exit")
    elapsed = time.monotonic() - t0
    cluster.wait_for_run(run_id, timeout=120)
    row = sql(cluster, f"select status, plan_kind, rows_added, rows_changed, rows_removed, "
                       f"extract(epoch from plan_duration) from revetl.sync_runs where id = {run_id}").split("|")
    r = {"label": label, "run_id": run_id, "pid": pid, "status": row[0], "plan_kind": row[1],
         "added": int(row[2]), "changed": int(row[3]), "removed": int(row[4]), "plan_s": float(row[5]),
         "start": sampler.first, "hwm": sampler.last["VmHWM"], "peak": sampler.peak, "samples": sampler.samples,
         "elapsed": elapsed, "jit": sampler.jit_mapped}
    log(f"  {label}: run {run_id} (pid {pid}) {r['status']}, plan {r['plan_s']:.2f} s, "
        f"{r['added']:,} added / {r['changed']:,} changed; {sampler.samples} samples over {elapsed:.1f} s")
    log(f"    at start (waiting on the lock): VmRSS {mb(r['start']['VmRSS'])}, RssAnon {mb(r['start']['RssAnon'])}")
    log(f"    peak: VmHWM {mb(r['hwm'])}, RssAnon {mb(r['peak']['RssAnon'])}, "
        f"RssShmem {mb(r['peak']['RssShmem'])}, RssFile {mb(r['peak']['RssFile'])}"
        f"{' (LLVM JIT library mapped: llvmjit.so and libLLVM are file-backed pages)' if r['jit'] else ''}")
    return r


def mb(kb):
    return f"{kb / 1024:.1f} MB"


def prepare(cluster, sync, table, n, changed_every=100, fill=True):
    log(f"built {table} ({n:,} rows) in {create_model(cluster, n, table=table):.1f} s")
    sql(cluster, f"select revetl.create_sync('{sync}', '{table}', 'srv', ARRAY['id'], mode => 'mirror')")
    if fill:
        log(f"filled the shadow table of {sync} in {fill_shadow(cluster, sync, table=table):.1f} s")
        sql(cluster, f"update {table} set score = score + 1 where id % {changed_every} = 0; vacuum analyze {table}")
        # Untimed: the first run gives the filled shadow table its typed key
        # columns (a rewrite, as the first run after an update from 0.1.0).
        first = run_once(cluster, sync)
        log(f"first run of {sync} (typed shadow keys added): plan {first['plan_s']:.2f} s")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=10_000_000, help="rows of the large model")
    ap.add_argument("--no-first-run", action="store_true",
                    help="skip the first run (empty shadow: every row planned and queued)")
    args = ap.parse_args()

    banner("plan_memory: peak memory of a run's process, large model vs 1,000-row model")
    started = time.monotonic()
    cluster = start_cluster(name="revetl-bench-mem")
    results = []
    try:
        log("shared_buffers = " + sql(cluster, "show shared_buffers") + ", work_mem = " +
            sql(cluster, "show work_mem") + ", hash_mem_multiplier = " + sql(cluster, "show hash_mem_multiplier"))
        create_unreachable_server(cluster)
        prepare(cluster, "small", "m_small", 1000)
        prepare(cluster, "big", "m", args.rows)
        checks = [("small", "m_small", f"idle: 1,000-row model, 10 changed", (0, 10)),
                  ("big", "m", f"large: {args.rows:,}-row model, {args.rows // 100:,} changed", (0, args.rows // 100))]
        for sync, table, label, expect in checks:
            r = measure(cluster, sync, table, label)
            if (r["added"], r["changed"], r["removed"]) != (expect[0], expect[1], 0) or r["status"] != "failed":
                raise AssertionError(f"unexpected run: {r}")
            results.append(r)
        if not args.no_first_run:
            sql(cluster, f"truncate revetl.{sql(cluster, 'select shadow_table from revetl.syncs where name = ' + chr(39) + 'big' + chr(39))}")
            r = measure(cluster, "big", "m", f"first: {args.rows:,}-row model, empty shadow (all rows added)")
            if (r["added"], r["changed"], r["removed"]) != (args.rows, 0, 0):
                raise AssertionError(f"unexpected run: {r}")
            results.append(r)
    finally:
        cluster.destroy()

    idle = results[0]
    log("\n| run | plan (s) | VmHWM | peak RssAnon | peak RssShmem | VmHWM over idle | RssAnon over idle |")
    log("|---|---:|---:|---:|---:|---:|---:|")
    for r in results:
        log(f"| {r['label']} | {r['plan_s']:.2f} | {mb(r['hwm'])} | {mb(r['peak']['RssAnon'])} | "
            f"{mb(r['peak']['RssShmem'])} | {'-' if r is idle else mb(r['hwm'] - idle['hwm'])} | "
            f"{'-' if r is idle else mb(r['peak']['RssAnon'] - idle['peak']['RssAnon'])} |")
    for r in results[1:]:
        log(f"\ntarget (under 100 MB) for '{r['label']}': peak private memory (RssAnon) {mb(r['peak']['RssAnon'])} -> "
            f"{'met' if r['peak']['RssAnon'] < 100 * 1024 else 'NOT met'}; VmHWM including shared buffers "
            f"{mb(r['hwm'])} -> {'met' if r['hwm'] < 100 * 1024 else 'NOT met'}")
    log(f"total time: {time.monotonic() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
