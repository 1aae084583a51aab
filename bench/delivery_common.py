"""Shared helpers for revetl's delivery benchmarks (issue 5); Python 3 standard library only.

Each benchmark starts its own throwaway cluster through test/lib/pgcluster.py
(Unix socket only, revetl preloaded, fsync = off) and, where it needs a fast
local HTTP endpoint, its own nginx on 127.0.0.1 with a minimal config in a
temporary directory. Everything is removed at the end. Every wait polls a
condition with a timeout; nothing sleeps for a fixed time.
"""

import datetime
import hashlib
import json
import os
import platform
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.abspath(os.path.join(HERE, ".."))
sys.path.insert(0, os.path.join(REPO, "test", "lib"))

from pgcluster import Cluster, MockHubSpot, PsqlError, wait_for  # noqa: E402,F401

CLK_TCK = os.sysconf("SC_CLK_TCK")


def log(msg=""):
    print(msg)
    sys.stdout.flush()


def banner(title):
    log("=" * 72)
    log(title)
    log("=" * 72)
    pkglib = subprocess.run(["pg_config", "--pkglibdir"], capture_output=True, text=True).stdout.strip()
    so = os.path.join(pkglib, "revetl.so")
    if os.path.exists(so):
        with open(so, "rb") as f:
            digest = hashlib.sha256(f.read()).hexdigest()[:16]
        mtime = datetime.datetime.fromtimestamp(os.path.getmtime(so)).astimezone().isoformat(timespec="seconds")
        log(f"revetl.so: {so}, built {mtime}, sha256 {digest}...")
    try:
        rev = subprocess.run(["git", "-c", "safe.directory=*", "-C", REPO, "log", "-1", "--format=%h %s"],
                             capture_output=True, text=True, timeout=10).stdout.strip()
        log(f"repository HEAD: {rev} (the working tree may differ)")
    except (OSError, subprocess.SubprocessError):
        pass
    log(f"date: {datetime.datetime.now().astimezone().isoformat(timespec='seconds')}")
    log(f"machine: {platform.machine()}, {os.cpu_count()} CPUs ({cpu_model()}), {mem_total_gib():.0f} GiB RAM, "
        f"kernel {platform.release()}; load average at start {load_avg()}")


def load_avg():
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown CPU"


def mem_total_gib():
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) / 1024 / 1024
    return 0.0


def other_busy_processes(threshold_pct=20.0, sample_s=1.0):
    """Processes not started by this script that used more than threshold_pct of a CPU over
    sample_s seconds: other work on the machine skews every figure, so it is reported."""
    def snapshot():
        out = {}
        for pid in os.listdir("/proc"):
            if not pid.isdigit():
                continue
            try:
                with open(f"/proc/{pid}/stat") as f:
                    s = f.read()
                rest = s[s.rindex(")") + 2:].split()
                out[int(pid)] = (int(rest[11]) + int(rest[12]), s[s.index("(") + 1:s.rindex(")")])
            except (OSError, ValueError):
                pass
        return out
    a = snapshot()
    t0 = time.monotonic()
    time.sleep(sample_s)
    b = snapshot()
    dt = time.monotonic() - t0
    me = os.getpid()
    busy = []
    for pid, (ticks, name) in b.items():
        if pid == me or pid not in a:
            continue
        pct = (ticks - a[pid][0]) / CLK_TCK / dt * 100
        if pct >= threshold_pct:
            busy.append(f"{name}[{pid}] {pct:.0f}%")
    return busy


def report_machine_state(label):
    busy = other_busy_processes()
    log(f"[{label}] load average {load_avg()}; other processes using CPU: {', '.join(busy) if busy else 'none'}")


# -- PostgreSQL -------------------------------------------------------------------------------------------

def psql(cluster, sql, timeout=1800, check=True):
    """Runs sql through psql with a bounded wall time; returns (stdout, stderr, rc)."""
    cmd = [os.path.join(cluster.bindir, "psql"), "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1",
           "-h", cluster.dir, "-p", str(cluster.port), "-U", "postgres", "-d", "postgres"]
    p = subprocess.run(cmd, input=sql, capture_output=True, text=True, timeout=timeout)
    if check and p.returncode != 0:
        raise PsqlError(p.stderr.strip())
    return p.stdout, p.stderr, p.returncode


def sql(cluster, text, timeout=1800):
    return psql(cluster, text, timeout=timeout)[0].strip()


def start_cluster(extra_conf="", name="revetl-bench-delivery"):
    cluster = Cluster(extra_conf=extra_conf, name=name).start()
    sql(cluster, "create extension revetl")
    cluster.wait_for_worker(timeout=60)
    log(f"cluster: {cluster.dir} ({sql(cluster, 'select version()')})")
    log("settings that differ from the defaults: fsync = off, max_worker_processes = 16, "
        "listen_addresses = '' (Unix socket only), revetl.worker_restart_delay = 1"
        + "".join(f", {line.strip()}" for line in extra_conf.splitlines() if line.strip()))
    return cluster


def create_model(cluster, n, table="m"):
    """m(id bigint primary key, email text, score int, payload text) with ids 1..n."""
    t0 = time.monotonic()
    sql(cluster, f"""
        drop table if exists {table};
        create table {table} (id bigint primary key, email text, score int, payload text);
        insert into {table} select g, 'user' || g || '@example.com', (g * 7919) % 1000,
               md5(g::text) || md5((g + 1)::text)
          from generate_series(1::bigint, {int(n)}) g;
        vacuum (analyze, freeze) {table};
    """)
    return time.monotonic() - t0


RUN_COLUMNS = ("id", "status", "rows_added", "rows_delivered", "rows_rejected", "requests", "retries",
               "throttled", "started_s", "planned_s", "finished_s", "error")


def run_sync(cluster, name, timeout=3600):
    """run_sync(name, wait => true); returns its revetl.sync_runs row as a dict. Times are epoch seconds."""
    before = int(sql(cluster, "select coalesce(max(id), 0) from revetl.sync_runs"))
    t0 = time.monotonic()
    _, err, rc = psql(cluster, f"set statement_timeout = '{int(timeout)}s'; "
                               f"select revetl.run_sync('{name}', wait => true)",
                      timeout=timeout + 60, check=False)
    wall = time.monotonic() - t0
    return run_row(cluster, name, before, err, wall)


def run_row(cluster, name, after_id, err="", wall=None):
    row = sql(cluster, f"""
        select id, status, rows_added, rows_delivered, rows_rejected, requests, retries, throttled,
               extract(epoch from started_at), extract(epoch from planned_at), extract(epoch from finished_at),
               coalesce(error, '')
          from revetl.sync_runs where sync_name = '{name}' and id > {after_id} order by id desc limit 1""")
    if not row:
        raise RuntimeError(f"no run recorded for sync {name}: {err.strip()}")
    f = row.split("|", len(RUN_COLUMNS) - 1)
    r = dict(zip(RUN_COLUMNS, f))
    for k in ("id", "rows_added", "rows_delivered", "rows_rejected", "requests", "retries", "throttled"):
        r[k] = int(r[k])
    for k in ("started_s", "planned_s", "finished_s"):
        r[k] = float(r[k]) if r[k] else None
    r["wall_s"] = wall
    if r["status"] != "succeeded":
        raise RuntimeError(f"run {r['id']} of {name} ended {r['status']}: {r['error']} {err.strip()}")
    r["plan_s"] = r["planned_s"] - r["started_s"]
    r["deliver_s"] = r["finished_s"] - r["planned_s"]
    r["run_s"] = r["finished_s"] - r["started_s"]
    return r


# -- nginx ----------------------------------------------------------------------------------------------

NGINX_CONF = """
daemon off;
master_process on;
worker_processes 1;
pid {dir}/nginx.pid;
error_log {dir}/error.log warn;
events {{
    worker_connections 1024;
}}
http {{
    access_log off;
    client_body_temp_path {dir}/client_body;
    proxy_temp_path {dir}/proxy;
    fastcgi_temp_path {dir}/fastcgi;
    uwsgi_temp_path {dir}/uwsgi;
    scgi_temp_path {dir}/scgi;
    keepalive_timeout 75s;
    keepalive_requests 10000000;
    client_max_body_size 64m;
    client_body_buffer_size 1m;
    server {{
        listen 127.0.0.1:{port};
        location / {{
            default_type application/json;
            return 200 '{{"accepted":1}}';
        }}
    }}
}}
"""


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Nginx:
    """nginx on 127.0.0.1 answering 200 {"accepted":1} (application/json) to any request, keep-alive on,
    one worker, all of its files in a temporary directory (runs as any user)."""

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="revetl-bench-nginx-")
        self.proc = None
        last = None
        for _ in range(5):  # the port may be taken between free_port() and nginx's bind
            self.port = free_port()
            conf = os.path.join(self.dir, "nginx.conf")
            with open(conf, "w") as f:
                f.write(NGINX_CONF.format(dir=self.dir, port=self.port))
            self.proc = subprocess.Popen(["nginx", "-p", self.dir, "-c", conf, "-e", os.path.join(self.dir, "error.log")],
                                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            try:
                wait_for(lambda: self._up(), timeout=10, interval=0.05, what="nginx to listen")
                break
            except TimeoutError as e:
                last = e
                self._kill()
        else:
            raise RuntimeError(f"nginx did not start: {last}; {self.error_log()}")
        self.url = f"http://127.0.0.1:{self.port}/hook"
        self.version = subprocess.run(["nginx", "-v"], capture_output=True, text=True).stderr.strip()

    def _up(self):
        if self.proc.poll() is not None:
            raise RuntimeError(f"nginx exited: {self.proc.stderr.read().decode(errors='replace')}")
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1) as s:
                s.sendall(b"POST /hook HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}")
                data = s.recv(4096)
            return b" 200 " in data and b'{"accepted":1}' in data
        except OSError:
            return False

    def worker_pids(self):
        try:
            out = subprocess.run(["pgrep", "-P", str(self.proc.pid)], capture_output=True, text=True).stdout
            return [int(x) for x in out.split()]
        except OSError:
            return []

    def error_log(self):
        try:
            with open(os.path.join(self.dir, "error.log")) as f:
                return f.read()[-2000:]
        except OSError:
            return ""

    def _kill(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGQUIT)  # graceful stop
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)

    def stop(self):
        self._kill()
        shutil.rmtree(self.dir, ignore_errors=True)


# -- wrk ------------------------------------------------------------------------------------------------

def webhook_body(records, sync_name="deliv", run_id=1, batch=1):
    """A body the size and shape of what revetl sends for model m (see BuildWebhookRequest)."""
    recs = []
    for i in range(1, records + 1):
        recs.append({"op": "upsert", "key": {"id": i},
                     "data": {"id": i, "email": f"user{i}@example.com", "score": (i * 7919) % 1000,
                              "payload": hashlib.md5(str(i).encode()).hexdigest() +
                                         hashlib.md5(str(i + 1).encode()).hexdigest()},
                     "idempotency_key": hashlib.md5(f"k{i}".encode()).hexdigest()})
    return json.dumps({"sync": sync_name, "run_id": run_id, "batch": batch, "records": recs},
                      separators=(",", ":"))


def lua_string(s):
    return "[==[" + s + "]==]"


def run_wrk(url, body, threads=1, connections=8, duration_s=10, workdir=None):
    """wrk POSTing body with revetl's headers; returns (requests/s, stdout)."""
    d = workdir or tempfile.mkdtemp(prefix="revetl-bench-wrk-")
    script = os.path.join(d, "post.lua")
    with open(script, "w") as f:
        f.write("wrk.method = \"POST\"\n")
        f.write(f"wrk.body = {lua_string(body)}\n")
        f.write("wrk.headers[\"Content-Type\"] = \"application/json\"\n")
        f.write("wrk.headers[\"Idempotency-Key\"] = \"0123456789abcdef0123456789abcdef\"\n")
        f.write("wrk.headers[\"User-Agent\"] = \"revetl/0.1.0\"\n")
    cmd = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{duration_s}s", "-s", script, url]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=duration_s + 60)
    if workdir is None:
        shutil.rmtree(d, ignore_errors=True)
    m = re.search(r"Requests/sec:\s+([0-9.]+)", p.stdout)
    if p.returncode != 0 or not m:
        raise RuntimeError(f"wrk failed: {p.stdout} {p.stderr}")
    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", p.stdout)
    if non2xx:
        raise RuntimeError(f"wrk got non-2xx answers: {p.stdout}")
    return float(m.group(1)), " ".join(cmd[:-3] + ["post.lua", url]), p.stdout


# -- the run's process ------------------------------------------------------------------------------------

def proc_cpu_ticks(pid):
    with open(f"/proc/{pid}/stat") as f:
        s = f.read()
    rest = s[s.rindex(")") + 2:].split()
    return int(rest[11]) + int(rest[12])  # utime + stime


def proc_status_kb(pid, field):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return None


def cpu_seconds_of(pids):
    total = 0
    for pid in pids:
        try:
            total += proc_cpu_ticks(pid)
        except OSError:
            pass
    return total / CLK_TCK


def fmt(x, digits=0):
    return f"{x:,.{digits}f}"


# -- watching a run's process ------------------------------------------------------------------------------

def system_cpu_ticks():
    """(busy, total) jiffies of the whole machine from /proc/stat."""
    with open("/proc/stat") as f:
        parts = [int(x) for x in f.readline().split()[1:]]
    idle = parts[3] + (parts[4] if len(parts) > 4 else 0)
    total = sum(parts[:8])
    return total - idle, total


def children_of(ppid):
    out = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/stat") as f:
                s = f.read()
            if int(s[s.rindex(")") + 2:].split()[1]) == ppid:
                out.append(int(pid))
        except (OSError, ValueError):
            pass
    return out


def read_status(pid, fields=("VmHWM", "VmRSS", "RssAnon", "RssFile", "RssShmem")):
    """{field: kB} from /proc/<pid>/status, or None once the process is gone (or a zombie)."""
    try:
        with open(f"/proc/{pid}/status") as f:
            text = f.read()
    except (FileNotFoundError, ProcessLookupError):
        return None
    out = {}
    for line in text.splitlines():
        name, _, rest = line.partition(":")
        if name in fields:
            out[name] = int(rest.split()[0])
    return out if "VmHWM" in out else None


class RunWatcher:
    """Finds the process of a run (backend_type 'revetl run' in pg_stat_activity) and follows it until it
    exits: its CPU time (utime + stime from /proc/<pid>/stat) and peak memory (VmHWM, and the largest
    RssAnon seen, from /proc/<pid>/status), read every `interval` seconds. Every `series_every` seconds it
    also records a time series of CPU ticks: the run's process, `other_pids()` (e.g. nginx's worker), the
    rest of the cluster's processes, and the whole machine (/proc/stat), so that the CPU used during one
    phase of the run can be cut out afterwards."""

    def __init__(self, cluster, other_pids=None, interval=0.001, series_every=0.05, light=False):
        self.cluster = cluster
        self.light = light  # series of the run's process only (cheap enough to sample every millisecond)
        self.other_pids = other_pids or (lambda: [])
        self.interval = interval
        self.series_every = series_every
        self.pid = None
        self.cpu_s = None
        self.hwm_kb = None
        self.anon_peak_kb = 0
        self.series = []  # (epoch seconds, run ticks, other ticks, rest-of-cluster ticks, machine busy, machine total)
        self.rest_ticks = {}  # pid -> its last CPU ticks read, for the rest of the cluster
        self.samples = 0

    def find(self, timeout=120):
        """The run's process, found by its title among the postmaster's children in /proc: asking the
        server (a psql every few milliseconds) cost a 2-core machine enough CPU to slow a short run."""
        pm = self.cluster.postmaster_pid()

        def q():
            for pid in children_of(pm):
                try:
                    with open(f"/proc/{pid}/cmdline", "rb") as f:
                        if f.read().startswith(b"postgres: revetl run"):
                            return pid
                except OSError:
                    pass
            return None
        self.pid = wait_for(q, timeout=timeout, interval=0.002, what="the run's process (postgres: revetl run)")
        return self.pid

    def _series_point(self, run_ticks):
        if self.light:
            self.series.append((time.time(), run_ticks, 0, 0, 0, 0))
            return
        pm = self.cluster.postmaster_pid()
        others = self.other_pids()
        rest = [p for p in children_of(pm) if p != self.pid] + [pm]
        busy, total = system_cpu_ticks()
        def ticks(pids):
            t = 0
            for p in pids:
                try:
                    t += proc_cpu_ticks(p)
                except OSError:
                    pass
            return t
        # The rest of the cluster by each process's last reading, kept once
        # it has exited: a process that lives only during the run (the
        # run's recorder) would otherwise take its CPU away with it.
        for p in rest:
            try:
                self.rest_ticks[p] = proc_cpu_ticks(p)
            except OSError:
                pass
        self.series.append((time.time(), run_ticks, ticks(others), sum(self.rest_ticks.values()), busy, total))

    def follow(self, timeout=7200):
        """Polls the process until it exits (bounded by timeout)."""
        deadline = time.monotonic() + timeout
        next_series = 0.0
        last_ticks = None
        while time.monotonic() < deadline:
            st = read_status(self.pid)
            try:
                ticks = proc_cpu_ticks(self.pid)
            except OSError:
                ticks = None
            if st is None or ticks is None:
                break
            self.samples += 1
            self.hwm_kb = st["VmHWM"]
            self.anon_peak_kb = max(self.anon_peak_kb, st.get("RssAnon", 0))
            last_ticks = ticks
            now = time.monotonic()
            if now >= next_series:
                self._series_point(ticks)
                next_series = now + self.series_every
            time.sleep(self.interval)
        else:
            raise TimeoutError(f"the run's process {self.pid} did not exit within {timeout}s")
        if last_ticks is None:
            raise RuntimeError(f"the run's process {self.pid} exited before it could be read")
        self.cpu_s = last_ticks / CLK_TCK
        self._series_point(last_ticks)
        return self

    def between(self, t0, t1):
        """CPU seconds used between epoch times t0 and t1 (interpolated from the series):
        (run process, other_pids, rest of the cluster, whole machine busy, whole machine capacity)."""
        def at(t):
            s = self.series
            if not s:
                return None
            if t <= s[0][0]:
                return s[0][1:]
            for a, b in zip(s, s[1:]):
                if a[0] <= t <= b[0]:
                    f = 0 if b[0] == a[0] else (t - a[0]) / (b[0] - a[0])
                    return tuple(x + (y - x) * f for x, y in zip(a[1:], b[1:]))
            return s[-1][1:]
        a, b = at(t0), at(t1)
        if a is None:
            return None
        d = [(y - x) / CLK_TCK for x, y in zip(a, b)]
        return {"run": d[0], "other": d[1], "cluster_rest": d[2], "machine_busy": d[3], "machine_total": d[4]}


# -- pg_stat_statements: where the run's SQL time goes ------------------------------------------------------

PGSS_CONF = """shared_preload_libraries = 'revetl, pg_stat_statements, auto_explain'
pg_stat_statements.track = none"""

# The statements a run executes through SPI (src/pg/runner.cpp), by the start of their text.
RUN_STATEMENTS = [
    ("plan query (model diff)", "SELECT (CASE WHEN m.present IS NULL"),
    # (the plan's queue is written by multi-insert, src/pg/queue_writer.cpp: no statement)
    ("ReadBatch: SELECT ... FROM revetl.changes (a chunk)", "SELECT seq, op, key, row_hash"),
    ("Flush: DELETE FROM revetl.changes (delivered seqs)", "DELETE FROM revetl.changes"),
    ("Flush: shadow insert (adds) and upsert (changes)", 'INSERT INTO "revetl"."shadow_'),
    ("Flush: sync alive check (SELECT ... FOR SHARE)", "SELECT 1 FROM revetl.syncs WHERE id = $1 FOR SHARE"),
    ("Flush: run counters (UPDATE revetl.runs)", "UPDATE revetl.runs SET rows_delivered"),
]


def pgss_track(cluster, on):
    if on:
        sql(cluster, "alter system set pg_stat_statements.track = 'all'; "
                     "alter system set pg_stat_statements.track_planning = on; select pg_reload_conf()")
    else:
        sql(cluster, "alter system reset pg_stat_statements.track; "
                     "alter system reset pg_stat_statements.track_planning; select pg_reload_conf()")
    want = "all" if on else "none"
    wait_for(lambda: sql(cluster, "show pg_stat_statements.track") == want, timeout=30,
             what="pg_stat_statements.track to be reloaded")
    sql(cluster, "select pg_stat_statements_reset()")


def pgss_breakdown(cluster):
    """[(label, calls, exec ms, plan ms, max exec ms)] for the run's statements."""
    rows = sql(cluster, "select calls, total_exec_time, total_plan_time, max_exec_time, "
                        "regexp_replace(query, '\\s+', ' ', 'g') from pg_stat_statements")
    out = {label: [0, 0.0, 0.0, 0.0] for label, _ in RUN_STATEMENTS}
    for line in rows.splitlines():
        calls, ex, pl, mx, q = line.split("|", 4)
        for label, prefix in RUN_STATEMENTS:
            if q.startswith(prefix):
                o = out[label]
                o[0] += int(calls)
                o[1] += float(ex)
                o[2] += float(pl)
                o[3] = max(o[3], float(mx))
                break
    return [(label, *out[label]) for label, _ in RUN_STATEMENTS]


def log_breakdown(rows, deliver_s, plan_s):
    log(f"  {'statement (pg_stat_statements, track = all)':<52} {'calls':>7} {'exec s':>8} {'plan s':>7} "
        f"{'max ms':>9} {'% of its phase':>14}")
    for label, calls, ex, pl, mx in rows:
        if not calls:
            continue
        phase = plan_s if label.startswith("plan") else deliver_s
        log(f"  {label:<52} {calls:>7,} {ex / 1000:>8.2f} {pl / 1000:>7.2f} {mx:>9.1f} "
            f"{100 * (ex + pl) / 1000 / phase:>13.0f}%")
