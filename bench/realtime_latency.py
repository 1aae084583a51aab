#!/usr/bin/env python3
"""Commit-to-arrival latency of an ON CHANGE sync under a steady write load.

A table t(id bigint primary key, ts float8, v int) with an ON CHANGE sync
(KEY (id), no MAP) to a webhook server pointing at a sink in this script (a
threaded HTTP server on 127.0.0.1 that answers 200 {} at once and notes,
for every record, the time it arrived). pgbench writes at a fixed rate
(-R --rate, default 1,000 transactions/s, --clients clients) for --seconds
(default 20) with single-row INSERTs (--op insert, the default: every row a
new key) or single-row UPDATEs of a random row of --rows rows (--op update),

    INSERT INTO t (id, ts, v) VALUES (nextval('ids'), extract(epoch FROM clock_timestamp()), 0);
    UPDATE t SET ts = extract(epoch FROM clock_timestamp()), v = v + 1 WHERE id = :id;

so each row carries the writer's time just before its commit (the commit,
fsync included, comes after it: the latencies are, if anything, a little
longer than commit-to-arrival). The sink reads `ts` from each record's data:
latency = arrival time - ts, both from this machine's clock.

Two variants, alternated --rounds times (default 2) in the same cluster:

  per run     revetl.change_run_duration = 0: the path before 0.2.0's
              continuous runs: every run is a new background worker process
              that plans the keys captured so far, delivers them and exits,
              and the scheduler starts the next one;
  continuous  revetl.change_run_duration = 30s (the default): one run's
              process plans and delivers each commit's keys as they commit,
              for up to 30 s, woken by the commits.

With --capture wal the cluster runs with wal_level = logical and the two
variants are instead, both continuous:

  triggers    the sync above (capture triggers) on table t;
  wal         the same sync WITH (track_changes = 'wal') on a table tw of the
              same shape: no trigger; the database's scheduler, which keeps a
              decoding context, reads the WAL when it sees it flushed (it
              looks every revetl.wal_poll_interval, 5 ms by default), queues
              the keys and wakes the run. Also reported for it: the slot's
              restart lag (confirmed_flush_lsn - restart_lsn, sampled every
              0.5 s during the load): what a new decoding context would
              decode again (before revetl 0.2.0's reader kept its context,
              every read of the slot did).

Reported per variant: p50, p90, p99 and max of the latency (ms) of every row
written during the load (for --op update: of the last write of each key,
and how many writes arrived per key), the rate pgbench reached, the runs it
took, and the ratio of each percentile to the per-run baseline. After the
load every written key's last version must arrive (checked: the script
fails otherwise).

The cluster runs with fsync = on (commits are durable, as in production).
This machine is shared with other builds: compare variants within one
invocation, not across invocations.

Run (PostgreSQL refuses to run as root):
  runuser -u postgres -- env PYTHONDONTWRITEBYTECODE=1 python3 bench/realtime_latency.py
"""

import argparse
import json
import os
import re
import socket
import subprocess
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from common import banner, log, sql, start_cluster, wait_for

# (variant, revetl.change_run_duration, table, sync)
VARIANTS = [("per run", "0", "t", "live"), ("continuous", "30s", "t", "live")]
WAL_VARIANTS = [("triggers", "30s", "t", "live"), ("wal", "30s", "tw", "live_wal")]


class Sink:
    """{id: [(arrival, ts), ...]} of every record received, per id."""

    def __init__(self):
        self.lock = threading.Lock()
        self.arrivals = {}
        self.requests = 0
        sink = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True

            def log_message(self, *args):
                pass

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                now = time.time()
                records = json.loads(body)["records"]
                with sink.lock:
                    sink.requests += 1
                    for r in records:
                        data = r.get("data") or {}
                        sink.arrivals.setdefault(int(r["key"]["id"]), []).append((now, float(data.get("ts", 0))))
                out = b"{}"
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(out)))
                self.end_headers()
                self.wfile.write(out)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def reset(self):
        with self.lock:
            self.arrivals = {}
            self.requests = 0

    def snapshot(self):
        with self.lock:
            return {k: list(v) for k, v in self.arrivals.items()}, self.requests


def pct(sorted_values, p):
    if not sorted_values:
        return float("nan")
    i = min(len(sorted_values) - 1, max(0, int(round(p / 100.0 * len(sorted_values) + 0.5)) - 1))
    return sorted_values[i]


def pgbench(cluster, script, args):
    cmd = [os.path.join(cluster.bindir, "pgbench"), "-n", "-h", cluster.dir, "-p", str(cluster.port),
           "-U", "postgres", "-c", str(args.clients), "-j", str(min(args.clients, 2)), "-T", str(args.seconds),
           "-R", str(args.rate), "-M", "prepared", "-f", script, "-D", f"n={args.rows}", "postgres"]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=args.seconds + 300)
    if p.returncode != 0:
        raise RuntimeError(f"pgbench failed: {p.stderr.strip()}")
    tps = float(re.search(r"tps = ([0-9.]+) \(without initial connection time\)", p.stdout).group(1))
    return tps, " ".join(cmd)


def idle(cluster):
    return sql(cluster, "select count(*) from revetl.sync_runs where status in ('queued', 'running')") == "0"


def one_round(cluster, sink, variant, setting, table, sync, script, args):
    sql(cluster, f"alter system set revetl.change_run_duration = '{setting}'; select pg_reload_conf();")
    # Let the run in progress (if any) end and nothing be pending.
    wait_for(lambda: idle(cluster), timeout=120, what="runs of the previous variant to end")
    sink.reset()
    first_run = int(sql(cluster, "select coalesce(max(id), 0) from revetl.runs"))
    # The WAL variant: the slot's restart lag. A new decoding context starts
    # at the slot's restart_lsn, which moves only at a snapshot of running
    # transactions (logged every 15 s by the background writer, at
    # checkpoints, and by revetl after a confirm), not at each confirmed
    # position.
    reread = []
    stop = threading.Event()

    def sample():
        while not stop.wait(0.5):
            try:
                v = sql(cluster, "select pg_wal_lsn_diff(confirmed_flush_lsn, restart_lsn) from pg_replication_slots "
                                 "where slot_name like 'revetl%'")
            except Exception:  # noqa: BLE001 (a sample missed is fine)
                continue
            if v:
                reread.append(float(v))
    sampler = threading.Thread(target=sample, daemon=True)
    if table == "tw":
        sampler.start()
    try:
        tps, command = pgbench(cluster, script, args)
    finally:
        stop.set()
    # Every key written must arrive with its last version.
    expected = {int(k): float(ts) for k, ts in
                (line.split("|") for line in sql(cluster, f"select id, ts from {table} where ts > 0").splitlines())}
    started = time.monotonic()

    def complete():
        got, _ = sink.snapshot()
        return all(k in got and any(abs(t - ts) < 1e-6 for _, t in got[k]) for k, ts in expected.items())

    wait_for(complete, timeout=300, interval=0.2, what=f"{variant}: every key's last version to arrive")
    drained_s = time.monotonic() - started
    got, requests = sink.snapshot()
    lat = []
    writes = []
    for k, ts in expected.items():
        arr = [a for a, t in got[k] if abs(t - ts) < 1e-6]
        lat.append((min(arr) - ts) * 1000.0)
        writes.append(len(got[k]))
    lat.sort()
    runs = sql(cluster, f"select count(*), coalesce(sum(rows_added + rows_changed), 0) from revetl.sync_runs "
                        f"where sync_name = '{sync}' and id > {first_run}").split("|")
    # Reset the table's timestamps so that the next round's keys are its own.
    sql(cluster, f"update {table} set ts = 0 where ts > 0")
    wait_for(lambda: sql(cluster, f"select count(*) from revetl.captured_changes c join revetl.syncs s "
                                  f"on s.id = c.sync_id where s.name = '{sync}'") == "0" and idle(cluster),
             timeout=300, what="the reset to be delivered")
    return {"tps": tps, "lat": lat, "keys": len(expected), "requests": requests, "runs": int(runs[0]),
            "planned": int(runs[1]), "writes_per_key": sum(writes) / max(1, len(writes)),
            "drain_s": drained_s, "command": command,
            "reread_mb": (sum(reread) / len(reread) / 1e6, max(reread) / 1e6) if reread else None}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rate", type=int, default=1000)
    ap.add_argument("--seconds", type=int, default=20)
    ap.add_argument("--clients", type=int, default=4)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--rows", type=int, default=100_000)
    ap.add_argument("--op", choices=["insert", "update"], default="insert")
    ap.add_argument("--capture", choices=["triggers", "wal"], default="triggers",
                    help="wal: compare WAL capture with triggers (both continuous) at wal_level = logical")
    args = ap.parse_args()
    variants = WAL_VARIANTS if args.capture == "wal" else VARIANTS

    banner("realtime_latency: commit-to-arrival latency of an ON CHANGE sync at a fixed commit rate")
    sink = Sink()
    cluster = start_cluster(extra_conf="fsync = on" + ("\nwal_level = logical\nmax_replication_slots = 4"
                                                       if args.capture == "wal" else ""),
                            name="revetl-bench-realtime")
    results = {v[0]: [] for v in variants}
    tables = sorted({(v[2], v[3]) for v in variants})
    try:
        sql(cluster, f"""
            create sequence ids;
            create server hook foreign data wrapper revetl options (type 'webhook', url '{sink.url}');
            create user mapping for postgres server hook;
        """)
        scripts = {}
        for table, sync in tables:
            wal = " WITH (track_changes = ''wal'')" if table == "tw" else ""
            sql(cluster, f"""
                create table {table} (id bigint primary key, ts float8 not null default 0, v int not null default 0);
                insert into {table} (id) select nextval('ids')
                  from generate_series(1, {args.rows if args.op == 'update' else 1});
                vacuum analyze {table};
                select * from revetl.execute('CREATE SYNC {sync} FROM {table} TO hook KEY (id) SCHEDULE ON CHANGE{wal}');
            """)
            if wal:
                wait_for(lambda: sql(cluster, "select count(*) from pg_replication_slots "
                                              "where slot_name like 'revetl%'") == "1",
                         timeout=120, what="the scheduler to create the WAL slot")
            # The first run is a full diff; the rounds' runs are incremental.
            sql(cluster, f"update {table} set v = v where id = (select min(id) from {table})")
            wait_for(lambda: sql(cluster, f"select count(*) from revetl.sync_runs where sync_name = '{sync}' "
                                          f"and status = 'succeeded' and plan_kind = 'full'") == "1",
                     timeout=120, what=f"the first (full) run of {sync}")
            fd, script = tempfile.mkstemp(suffix=".sql")
            with os.fdopen(fd, "w") as f:
                if args.op == "insert":
                    f.write(f"INSERT INTO {table} (id, ts, v) VALUES (nextval('ids'), "
                            f"extract(epoch FROM clock_timestamp()), 0);\n")
                else:
                    # --rows rows in each table: ids 1..n in t, n+1..2n in tw.
                    first = 0 if table == "t" else args.rows
                    f.write(f"\\set id {first} + random(1, :n)\n"
                            f"UPDATE {table} SET ts = extract(epoch FROM clock_timestamp()), v = v + 1 WHERE id = :id;\n")
            os.chmod(script, 0o644)
            scripts[table] = script
        for r in range(args.rounds):
            for variant, setting, table, sync in variants:
                res = one_round(cluster, sink, variant, setting, table, sync, scripts[table], args)
                results[variant].append(res)
                lat = res["lat"]
                log(f"round {r + 1} {variant:>10}: {res['tps']:7.0f} commits/s, {res['keys']:,} keys; latency ms "
                    f"p50 {pct(lat, 50):7.1f} p90 {pct(lat, 90):7.1f} p99 {pct(lat, 99):7.1f} max {lat[-1]:7.1f}; "
                    f"{res['runs']} runs, {res['requests']:,} requests, {res['writes_per_key']:.2f} records per key, "
                    f"drained {res['drain_s']:.1f}s after the load"
                    + (f"; slot restart lag (confirmed - restart): mean {res['reread_mb'][0]:.1f} MB, "
                       f"max {res['reread_mb'][1]:.1f} MB" if res["reread_mb"] else ""))
        log("")
        log(f"pgbench: {results[variants[0][0]][0]['command']}")
        log(f"load average at end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
        log("")
        log(f"{'variant':>10} | {'p50 ms':>8} | {'p90 ms':>8} | {'p99 ms':>8} | {'max ms':>8} | {'commits/s':>9} | runs")
        base = None
        for variant, *_ in variants:
            lat = sorted(x for res in results[variant] for x in res["lat"])
            row = [pct(lat, 50), pct(lat, 90), pct(lat, 99), lat[-1]]
            tps = sum(res["tps"] for res in results[variant]) / len(results[variant])
            runs = sum(res["runs"] for res in results[variant])
            log(f"{variant:>10} | " + " | ".join(f"{x:8.1f}" for x in row) + f" | {tps:9.0f} | {runs}")
            if base is None:
                base = row
            else:
                log(f"{'ratio':>10} | " + " | ".join(f"{x / b:8.3f}" for x, b in zip(row, base)) + " |")
    finally:
        cluster.stop()
        sink.server.shutdown()


if __name__ == "__main__":
    main()
