#!/usr/bin/env python3
"""Single records to a destination across a network (issue 16, point 2): what a run
delivers when each request's round trip, not this machine's CPU, sets the pace.

bench/run_throughput.py measures single records against nginx on loopback, where an
answer comes back in microseconds and a run is bound by its own CPU per request. A
user's destination answers in milliseconds: a single-record sync then delivers at most
max_in_flight requests per round trip, and what matters is how close a run comes to
that, from the call to its return.

For each --latency-ms L (bench/sink.c answering every request L ms after it arrived)
and each --in-flight K (the webhook server's max_in_flight):

  revetl   a first full run of --rows rows with batch_size 1 (one request per record):
           requests/s = rows / wall time of run_sync(..., wait => true), plan and
           every commit included; the delivery phase's rate beside it.
  wire     bench/blast.c, the same number of requests with a one-record body of the
           size revetl sends, K at a time over libcurl's multi interface to the same
           sink, doing nothing else: the baseline, alternating with the revetl runs.
  bound    K * 1000 / L requests/s, what any client with K requests in flight reaches.

Every case runs --repeat times (default 3); medians are reported. Nothing here asserts
a time: the script checks only that each run delivered every row.

Run (PostgreSQL refuses to run as root):
  runuser -u postgres -- env PYTHONDONTWRITEBYTECODE=1 python3 bench/latency_throughput.py
"""

import argparse
import os
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from delivery_common import banner, create_model, fmt, log, report_machine_state, sql  # noqa: E402
from delivery_common import start_cluster, webhook_body  # noqa: E402
from run_throughput import Sink, blast, build, check, med, watched_run  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=2000, help="rows of the model, one request each")
    ap.add_argument("--latency-ms", default="2,20", help="comma-separated answer delays of the sink")
    ap.add_argument("--in-flight", default="4,16", help="comma-separated max_in_flight values")
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    latencies = [int(x) for x in args.latency_ms.split(",")]
    in_flights = [int(x) for x in args.in_flight.split(",")]
    if any(x <= 0 for x in latencies + in_flights) or args.rows <= 0 or args.repeat <= 0:
        sys.exit("--rows, --repeat, every --latency-ms and every --in-flight must be positive")

    banner("revetl single records at a network's round trip (issue 16, point 2)")
    workdir = tempfile.mkdtemp(prefix="revetl-bench-latency-")
    os.chmod(workdir, 0o755)
    sinks, cluster = [], None
    table = []
    try:
        sink_bin, blast_bin = build(workdir)
        body = os.path.join(workdir, "body1.json")
        with open(body, "w") as f:
            f.write(webhook_body(1))
        curl = subprocess.run(["curl-config", "--version"], capture_output=True, text=True).stdout.strip()
        log(f"endpoint: bench/sink.c answering after each --latency-ms; baseline client: bench/blast.c ({curl}); "
            f"{args.rows:,} requests per run, {args.repeat} repetitions")
        cluster = start_cluster(name="revetl-bench-latency")
        t = create_model(cluster, args.rows, "m_single")
        log(f"model m_single: {args.rows:,} rows, built in {t:.1f} s")
        for latency in latencies:
            sink = Sink(sink_bin, workdir, latency)
            sinks.append(sink)
            for k in in_flights:
                server = f"hook_{latency}_{k}"
                sql(cluster, f"""create server {server} foreign data wrapper revetl options (type 'webhook',
                                 url '{sink.url}', batch_size '1', max_in_flight '{k}')""")
                case = {"latency": latency, "k": k, "runs": [], "wire": []}
                for i in range(args.repeat):
                    sql(cluster, "select revetl.drop_sync('lat', if_exists => true)")
                    sql(cluster, f"select revetl.create_sync('lat', 'm_single', '{server}', ARRAY['id'])")
                    sql(cluster, "checkpoint")
                    report_machine_state(f"{latency} ms, {k} in flight, repetition {i + 1}")
                    r = watched_run(cluster, "lat", sink)
                    check(r, "single", args.rows, 1)
                    wire_s, _ = blast(blast_bin, sink, body, args.rows, k)
                    case["runs"].append(r)
                    case["wire"].append(wire_s)
                    log(f"{latency} ms, {k} in flight, {i + 1}: run_sync {r['wall_s']:.3f} s = "
                        f"{fmt(args.rows / r['wall_s'])} requests/s (plan {r['plan_s']:.3f} s, delivery "
                        f"{r['deliver_s']:.3f} s = {fmt(args.rows / r['deliver_s'])} requests/s); wire "
                        f"{wire_s:.3f} s = {fmt(args.rows / wire_s)} requests/s")
                table.append(case)
    finally:
        for sink in sinks:
            sink.stop()
        if cluster:
            cluster.destroy()
        shutil.rmtree(workdir, ignore_errors=True)

    log(f"\nmedians of {args.repeat} ({args.rows:,} single-record requests; end to end = the run_sync(..., "
        "wait => true) call's wall time):")
    log("| round trip | max_in_flight | bound (K / round trip) | revetl end to end | delivery phase | "
        "wire (blast.c) | end to end / wire | end to end / bound |")
    log("|---:|---:|---:|---:|---:|---:|---:|---:|")
    for c in table:
        bound = c["k"] * 1000.0 / c["latency"]
        e2e = args.rows / med([r["wall_s"] for r in c["runs"]])
        phase = args.rows / med([r["deliver_s"] for r in c["runs"]])
        wire = args.rows / med(c["wire"])
        log(f"| {c['latency']} ms | {c['k']} | {fmt(bound)} requests/s | {fmt(e2e)} requests/s | "
            f"{fmt(phase)} requests/s | {fmt(wire)} requests/s | {100 * e2e / wire:.0f}% | {100 * e2e / bound:.0f}% |")


if __name__ == "__main__":
    main()
