"""Shared helpers for revetl's benchmarks (Python 3 standard library only).

Every benchmark starts its own throwaway cluster through test/lib/pgcluster.py
(Unix socket only, revetl preloaded, fsync = off) and removes it at the end.
Every wait polls a condition with a timeout; nothing sleeps for a fixed time.
"""

import datetime
import hashlib
import os
import platform
import re
import signal
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.abspath(os.path.join(HERE, ".."))
sys.path.insert(0, os.path.join(REPO, "test", "lib"))

from pgcluster import Cluster, MockWebhook, PsqlError, wait_for  # noqa: E402,F401

# SIGTERM (and SIGINT, even when started in the background, where it is
# inherited as ignored) unwinds through the scripts' finally blocks, which
# remove the cluster and the mock destination.
def _terminate(signum, frame):
    raise SystemExit(128 + signum)


signal.signal(signal.SIGTERM, _terminate)
signal.signal(signal.SIGINT, _terminate)

# A destination that refuses connections at once: a run plans, then fails on
# its first request (max_attempts 1), so the plan phase can be timed without
# delivering anything.
UNREACHABLE_URL = "http://127.0.0.1:9/x"


def banner(title):
    print("=" * 72)
    print(title)
    print("=" * 72)
    so = os.path.join(subprocess.run(["pg_config", "--pkglibdir"], capture_output=True, text=True).stdout.strip(),
                      "revetl.so")
    if os.path.exists(so):
        with open(so, "rb") as f:
            digest = hashlib.sha256(f.read()).hexdigest()[:16]
        mtime = datetime.datetime.fromtimestamp(os.path.getmtime(so)).astimezone().isoformat(timespec="seconds")
        print(f"revetl.so: {so}, built {mtime}, sha256 {digest}...")
    try:
        rev = subprocess.run(["git", "-c", "safe.directory=*", "-C", REPO, "log", "-1", "--format=%h %s"],
                             capture_output=True, text=True, timeout=10).stdout.strip()
        print(f"repository HEAD: {rev} (the working tree may differ)")
    except (OSError, subprocess.SubprocessError):
        pass
    print(f"date: {datetime.datetime.now().astimezone().isoformat(timespec='seconds')}")
    print(f"machine: {platform.machine()}, {os.cpu_count()} CPUs, "
          f"{mem_total_gib():.0f} GiB RAM, kernel {platform.release()}; "
          f"load average at start {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    sys.stdout.flush()


def mem_total_gib():
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) / 1024 / 1024
    return 0.0


def log(msg):
    print(msg)
    sys.stdout.flush()


def psql(cluster, sql, timeout=1800, check=True, db="postgres"):
    """Runs sql through psql with a bounded wall time; returns (stdout, stderr, rc)."""
    cmd = [os.path.join(cluster.bindir, "psql"), "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1",
           "-h", cluster.dir, "-p", str(cluster.port), "-U", "postgres", "-d", db]
    p = subprocess.run(cmd, input=sql, capture_output=True, text=True, timeout=timeout)
    if check and p.returncode != 0:
        raise PsqlError(p.stderr.strip())
    return p.stdout, p.stderr, p.returncode


def sql(cluster, text, timeout=1800):
    return psql(cluster, text, timeout=timeout)[0].strip()


def start_cluster(extra_conf="", name="revetl-bench"):
    cluster = Cluster(extra_conf=extra_conf, name=name).start()
    sql(cluster, "create extension revetl")
    cluster.wait_for_worker(timeout=60)
    log(f"cluster: {cluster.dir} ({sql(cluster, 'select version()')})")
    log("settings that differ from the defaults: fsync = off, max_worker_processes = 16, "
        "listen_addresses = '' (Unix socket only)" + "".join(f", {line.strip()}" for line in extra_conf.splitlines() if line.strip()))
    return cluster


def create_unreachable_server(cluster, name="srv"):
    sql(cluster, f"create server {name} foreign data wrapper revetl options (type 'webhook', "
                 f"url '{UNREACHABLE_URL}', max_attempts '1', connect_timeout '100ms', timeout '1s')")


def create_model(cluster, n, table="m"):
    """m(id bigint primary key, email text, score int, payload text) with ids 1..n."""
    t0 = time.monotonic()
    sql(cluster, f"""
        create table {table} (id bigint primary key, email text, score int, payload text);
        alter table {table} set (autovacuum_enabled = false);
        insert into {table} select g, 'user' || g || '@example.com', (g * 7919) % 1000,
               md5(g::text) || md5((g + 1)::text)
          from generate_series(1::bigint, {int(n)}) g;
        vacuum (analyze, freeze) {table};
    """)
    return time.monotonic() - t0


def sync_id(cluster, name):
    return int(sql(cluster, f"select id from revetl.syncs where name = '{name}'"))


def shadow_table(cluster, name):
    return "revetl." + sql(cluster, f"select shadow_table from revetl.syncs where name = '{name}'")


# The key text and row hash of BuildPlanQuery (src/core/planning/plan_query.cpp) for a
# sync KEY (id) with no MAP on a model whose column types all have an
# extended hash function (PreparePlan sets hash_values): key =
# jsonb_build_object('id', src.id)::text, row_hash = hash_record_extended(src, 0).
SHADOW_KEY = "jsonb_build_object('id', src.id)::text"
SHADOW_HASH = "hash_record_extended(src, 0)"


def fill_shadow(cluster, name, table="m", row_hash=None):
    """Leaves the shadow table as a delivered run of every row of the model would.
    row_hash: the plan query's hash expression over `src` (default: the whole row, no MAP)."""
    shadow = shadow_table(cluster, name)
    t0 = time.monotonic()
    sql(cluster, f"""
        truncate {shadow};
        insert into {shadow} (key, row_hash, run_id)
          select {SHADOW_KEY}, {row_hash or SHADOW_HASH}, 0 from {table} as src;
        vacuum (analyze, freeze) {shadow};
    """)
    return time.monotonic() - t0


CLK_TCK = os.sysconf("SC_CLK_TCK")


def proc_cpu_seconds(stat_text):
    """utime + stime of a /proc/<pid>/stat line, in seconds."""
    rest = stat_text.rsplit(")", 1)[1].split()
    return (int(rest[11]) + int(rest[12])) / CLK_TCK


class RunCpuWatcher(threading.Thread):
    """Finds the cluster's "revetl run" process (a child of its postmaster) as
    soon as it appears and reads its CPU time (/proc/<pid>/stat) every 2 ms
    until it exits; cpu_s is the last reading, taken just before the exit,
    plus the last reading of each "revetl recorder" process the run started
    (a big run's second process, src/pg/recorder.hpp, which does part of its
    work: looked for every 50 ms). CPU time is far less sensitive than wall
    time to other load on the machine."""

    def __init__(self, postmaster_pid, timeout):
        super().__init__(daemon=True)
        self.ppid, self.timeout = postmaster_pid, timeout
        self.pid = None
        self.cpu_s = None
        self.recorders = {}  # pid -> its last CPU seconds
        self.stop = threading.Event()
        self.known = set(int(p) for p in os.listdir("/proc") if p.isdigit())

    def find(self, title="postgres: revetl run "):
        for p in os.listdir("/proc"):
            if not p.isdigit() or int(p) in self.known:
                continue
            try:
                with open(f"/proc/{p}/stat") as f:
                    stat = f.read()
                with open(f"/proc/{p}/cmdline", "rb") as f:
                    cmd = f.read().decode(errors="replace")
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) != self.ppid:
                self.known.add(int(p))
                continue
            if cmd.startswith(title):
                self.known.add(int(p))
                return int(p)
            # A child that has just been forked still shows the postmaster's
            # command line until it sets its title: look at it again.
            if cmd.startswith("postgres: "):
                self.known.add(int(p))
        return None

    def run(self):
        deadline = time.monotonic() + self.timeout
        while self.pid is None and not self.stop.is_set() and time.monotonic() < deadline:
            self.pid = self.find()
            if self.pid is None:
                time.sleep(0.002)
        polls = 0
        while self.pid is not None and time.monotonic() < deadline:
            try:
                with open(f"/proc/{self.pid}/stat") as f:
                    stat = f.read()
            except OSError:
                return
            if stat.rsplit(")", 1)[1].split()[0] == "Z":
                return
            if polls % 25 == 0:
                recorder = self.find("postgres: revetl recorder")
                if recorder is not None:
                    self.recorders[recorder] = 0.0
            for pid in self.recorders:
                try:
                    with open(f"/proc/{pid}/stat") as f:
                        self.recorders[pid] = proc_cpu_seconds(f.read())
                except OSError:
                    pass  # exited: its last reading stands
            polls += 1
            self.cpu_s = proc_cpu_seconds(stat) + sum(self.recorders.values())
            time.sleep(0.002)


def run_once(cluster, name, full=False, timeout=1800, watch_cpu=False):
    """Requests a run and waits for it with run_sync(wait => true); returns its sync_runs row
    (with watch_cpu, also cpu_s: the CPU time of the run's process, or None if it was missed).

    Against the unreachable destination the run fails after planning, so
    run_sync raises "run N of sync ... failed": that is expected here."""
    before = int(sql(cluster, "select coalesce(max(id), 0) from revetl.sync_runs"))
    watcher = None
    if watch_cpu:
        watcher = RunCpuWatcher(cluster.postmaster_pid(), timeout + 60)
        watcher.start()
    _, err, rc = psql(cluster, f"set statement_timeout = '{int(timeout)}s'; "
                               f"select revetl.run_sync('{name}', wait => true, full => {str(full).lower()})",
                      timeout=timeout + 60, check=False)
    row = sql(cluster, f"""
        select id, status, coalesce(plan_kind, ''), rows_added, rows_changed, rows_removed, rows_invalid,
               extract(epoch from plan_duration), coalesce(error, '')
          from revetl.sync_runs where sync_name = '{name}' and id > {before} order by id desc limit 1""")
    if not row:
        raise RuntimeError(f"no run recorded for sync {name}: {err.strip()}")
    f = row.split("|", 8)
    run = {"id": int(f[0]), "status": f[1], "plan_kind": f[2], "added": int(f[3]), "changed": int(f[4]),
           "removed": int(f[5]), "invalid": int(f[6]), "plan_s": float(f[7]) if f[7] else None,
           "error": f[8]}
    if run["status"] not in ("failed", "succeeded", "partial"):
        raise RuntimeError(f"run {run['id']} ended {run['status']}: {run['error']} / {err.strip()}")
    if run["plan_s"] is None:
        raise RuntimeError(f"run {run['id']} was never planned: {run['error']} / {err.strip()}")
    if watcher:
        watcher.stop.set()
        watcher.join(timeout=60)
        run["cpu_s"] = watcher.cpu_s
    return run


def server_seconds(cluster, statements, timeout=1800):
    """Runs statements in one session and returns their server-side wall time in seconds
    (clock_timestamp() before and after, so psql's start-up is not counted)."""
    return server_times(cluster, statements, timeout)[0]


# The CPU time (utime + stime) of the session's own backend, read from
# /proc/self/stat (pg_read_file of an absolute path: superuser only).
BACKEND_CPU_SQL = (f"(select (split_part(s, ' ', 12)::bigint + split_part(s, ' ', 13)::bigint) / {CLK_TCK}.0 "
                   "from (select split_part(pg_read_file('/proc/self/stat'), ') ', 2) as s) as x)")


def server_times(cluster, statements, timeout=1800):
    """Like server_seconds; returns (wall seconds, CPU seconds of the backend)."""
    out = sql(cluster, f"""
        create temp table bench_t0 as select clock_timestamp() as t, {BACKEND_CPU_SQL} as cpu;
        {statements}
        select extract(epoch from clock_timestamp() - t) || '|' || ({BACKEND_CPU_SQL} - cpu) from bench_t0;
    """, timeout=timeout)
    wall, cpu = out.splitlines()[-1].split("|")
    return float(wall), float(cpu)


def median(values):
    v = sorted(values)
    n = len(v)
    return v[n // 2] if n % 2 else (v[n // 2 - 1] + v[n // 2]) / 2


def fmt_rate(x):
    return f"{x:,.0f}"


# auto_explain logs the plan of any statement slower than 2 s, the run's
# plan query included (it runs through SPI in the run's process); its cost
# is only formatting the plan text at the end.
AUTO_EXPLAIN = """
shared_preload_libraries = 'revetl, auto_explain'
auto_explain.log_min_duration = '2s'
auto_explain.log_nested_statements = on
"""


def explain_run(cluster, name, label, needle="WHEN m.present IS NULL THEN 'r'", full=False):
    """One untimed run with auto_explain.log_analyze (and log_verbose: each node's output columns, which
    show where each expression is computed) on; prints the plan the run's process used."""
    sql(cluster, "alter system set auto_explain.log_analyze = on; alter system set auto_explain.log_buffers = on; "
                 "alter system set auto_explain.log_verbose = on; "
                 "alter system set auto_explain.log_min_duration = 0; select pg_reload_conf()")
    try:
        before = len(auto_explain_plans(cluster, needle))
        run = run_once(cluster, name, full=full)
        # The line is logged before the run's process exits, but poll in
        # case the logging collector is behind.
        plans = wait_for(lambda: (lambda p: p if len(p) > before else None)(auto_explain_plans(cluster, needle)),
                         timeout=30, what="auto_explain output")
        log(f"\nEXPLAIN ANALYZE of the plan query (auto_explain in run {run['id']}, {label}, plan_kind "
            f"{run['plan_kind']}; untimed: the plan phase took {run['plan_s']:.2f} s with instrumentation):")
        log(plans[-1][1])
    finally:
        sql(cluster, "alter system reset auto_explain.log_analyze; alter system reset auto_explain.log_buffers; "
                     "alter system reset auto_explain.log_verbose; "
                     "alter system reset auto_explain.log_min_duration; select pg_reload_conf()")


def auto_explain_plans(cluster, needle):
    """Plans that auto_explain logged for statements containing needle."""
    text = cluster.log_text()
    plans = []
    for m in re.finditer(r"LOG:  duration: ([0-9.]+) ms  plan:\n(.*?)(?=\n\S[^\n]*(?:LOG|WARNING|ERROR|"
                         r"FATAL|NOTICE|DETAIL|STATEMENT|CONTEXT):|\Z)", text, re.S):
        if needle in m.group(2):
            plans.append((float(m.group(1)), m.group(2)))
    return plans
