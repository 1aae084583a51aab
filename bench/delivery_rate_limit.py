#!/usr/bin/env python3
"""Rate-limit efficiency: how close revetl runs to HubSpot's ten-second limit, and how many 429s it gets.

The stateful HubSpot mock (test/connectors/hubspot/mock.py) enforces a TEN_SECONDLY_ROLLING limit of
100 requests per 10,000 ms over a rolling window (config "rate_limit": {"max": 100,
"interval_ms": 10000}); a request over it gets 429 with HubSpot's body and the
X-HubSpot-RateLimit-* headers, and does not use up the window.

  limited   a revetl hubspot server with rate_limit '100 per 10s' and batch_size '1'
            (revetl paces its requests itself, before sending);
  baseline  the same with rate_limit 'none': revetl learns the limit only from 429s
            (it then waits X-HubSpot-RateLimit-Interval-Milliseconds before sending again).

Each is a contacts sync of a 600-row table (CREATE SYNC ... TO <server> OBJECT contacts
KEY (id) MATCH ON email MAP (...)), one request per row, so delivery takes about a minute;
a user mapping gives the mock's token. Reported per run, from the mock's journal (arrival
time and status of every API request) and /_mock/stats:

  achieved    the mean number of accepted requests per full 10-second window, the windows
              laid end to end from the first request ([t0, t0+10), [t0+10, t0+20), ...;
              the last, partial window is left out), as a fraction of the 100 allowed
              (target >= 95%); also the largest number accepted in any sliding 10-second
              window (at most 100 if the limit held), and the time from the first to the
              last request against the least possible for that many requests through a
              window that starts empty (100 at once, 100 more every 10 s);
  429s        rate_limited in /_mock/stats (target 0);
  run         the delivery phase from revetl.sync_runs (finished_at - planned_at).

Run (PostgreSQL refuses to run as root):
  runuser -u postgres -- env PYTHONDONTWRITEBYTECODE=1 python3 bench/delivery_rate_limit.py
"""

import argparse
import bisect
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from delivery_common import (MockHubSpot, banner, log, report_machine_state, run_sync, sql,  # noqa: E402
                             start_cluster)

LIMIT_MAX = 100
LIMIT_MS = 10000


def window_stats(times):
    """times: sorted arrival times (s) of accepted requests. Returns (mean accepted per full 10 s window
    aligned to the first request, the counts of those windows, the largest count in any sliding 10 s window,
    first-to-last rate per 10 s)."""
    w = LIMIT_MS / 1000.0
    t0 = times[0]
    full = int((times[-1] - t0) // w)  # windows [t0 + k w, t0 + (k + 1) w) that end before the last request
    counts = [0] * full
    for t in times:
        k = int((t - t0) // w)
        if k < full:
            counts[k] += 1
    mean = sum(counts) / full if full else float("nan")
    most = 0
    for i, t in enumerate(times):
        most = max(most, bisect.bisect_left(times, t + w) - i)
    span = times[-1] - t0
    first_last = (len(times) - 1) / span * w if span > 0 else float("nan")
    return mean, counts, most, first_last


def one(cluster, hubspot, label, server, rate_limit, rows, max_in_flight, timeout):
    hubspot.reset()  # journal, stores, stats and the rate window
    hubspot.configure(rate_limit={"max": LIMIT_MAX, "interval_ms": LIMIT_MS})
    in_flight = f", max_in_flight '{max_in_flight}'" if max_in_flight else ""
    table = f"people_{server}"
    sync = f"to_{server}"
    sql(cluster, f"""
        create table {table} (id int primary key, email text, first_name text, score int);
        insert into {table} select g, 'User' || g || '@Example.com', 'name' || g, g
          from generate_series(1, {int(rows)}) g;
        create server {server} foreign data wrapper revetl
          options (type 'hubspot', url '{hubspot.url}', rate_limit '{rate_limit}', batch_size '1'{in_flight});
        create user mapping for postgres server {server} options (token 'test-token');
        select * from revetl.execute($$
          CREATE SYNC {sync} FROM {table} TO {server} OBJECT contacts KEY (id) MATCH ON email
            MAP (lower(email) AS email, first_name AS firstname, score AS lead_score)
        $$);
    """)
    report_machine_state(label)
    r = run_sync(cluster, sync, timeout=timeout)
    stats = hubspot.stats()
    journal = hubspot.requests()
    api = [e for e in journal if e["path"].startswith("/crm/")]
    ok = sorted(e["time"] for e in api if e["status"] in (200, 201, 207))
    limited = [e for e in api if e["status"] == 429]
    if len(ok) != rows or r["rows_delivered"] != rows:
        raise RuntimeError(f"{label}: {len(ok)} accepted requests, {r['rows_delivered']} rows delivered, "
                           f"expected {rows}")
    contacts = len(hubspot.contacts())
    if contacts != rows:
        raise RuntimeError(f"{label}: HubSpot holds {contacts} contacts, expected {rows}")
    rate, counts, most, first_last = window_stats(ok)
    # The earliest the last of n requests can be accepted by a rolling window of LIMIT_MAX per LIMIT_MS
    # that starts empty: LIMIT_MAX at once, then LIMIT_MAX more each time the window rolls.
    ideal = ((rows - 1) // LIMIT_MAX) * LIMIT_MS / 1000.0
    out = {
        "label": label, "rate_limit": rate_limit, "run": r, "accepted": len(ok), "rate": rate, "most": most,
        "counts": counts, "first_last": first_last, "ideal": ideal,
        "r429": stats["rate_limited"], "journal_429": len(limited), "span": ok[-1] - ok[0],
        "by_status": stats["by_status"],
    }
    log(f"\n{label} (server rate_limit '{rate_limit}', batch_size '1'"
        f"{', max_in_flight ' + repr(str(max_in_flight)) if max_in_flight else ', max_in_flight default (4)'}): "
        f"run {r['id']} {r['status']}")
    log(f"  {len(ok)} accepted requests from {0:.1f} s to {out['span']:.1f} s (mock's arrival times); "
        f"requests by status {stats['by_status']}")
    log(f"  accepted per full 10 s window from the first request: {counts}; mean {rate:.2f} = "
        f"{100 * rate / LIMIT_MAX:.1f}% of the {LIMIT_MAX} allowed")
    log(f"  most accepted in any sliding 10 s window: {most}; first to last request {out['span']:.1f} s "
        f"({first_last:.2f} per 10 s), vs {ideal:.0f} s at best for {rows} requests against a window that "
        f"starts empty (span/best = {out['span'] / ideal:.3f})" if ideal else "")
    log(f"  429 responses: {stats['rate_limited']} (/_mock/stats rate_limited); revetl: requests "
        f"{r['requests']}, throttled {r['throttled']}, retries {r['retries']}")
    log(f"  delivery phase (finished_at - planned_at) {r['deliver_s']:.1f} s = "
        f"{10 * r['rows_delivered'] / r['deliver_s']:.2f} rows per 10 s; whole run {r['run_s']:.1f} s")
    sql(cluster, f"select revetl.drop_sync('{sync}')")
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=600, help="rows (= requests at batch_size 1) per run")
    ap.add_argument("--max-in-flight", type=int, default=None,
                    help="max_in_flight of both servers (default: not set, revetl's default of 4)")
    ap.add_argument("--repeat", type=int, default=1, help="pairs of runs (limited, then baseline)")
    ap.add_argument("--timeout", type=int, default=900, help="bound on each run, seconds")
    args = ap.parse_args()

    banner("revetl rate-limit efficiency against the HubSpot mock (issue 5)")
    # Without the OpenAPI contract check: validating every body would slow
    # the mock, and the figures are comparable with earlier runs. The tests
    # check the contract.
    hubspot = MockHubSpot(openapi=None)
    cluster = None
    results = []
    try:
        cluster = start_cluster()
        log(f"mock HubSpot: {hubspot.url}, rate_limit {{max {LIMIT_MAX}, interval_ms {LIMIT_MS}}} "
            f"(TEN_SECONDLY_ROLLING), token test-token")
        for i in range(args.repeat):
            results.append(one(cluster, hubspot, f"limited, pair {i + 1}", f"hs_limited_{i}", "100 per 10s",
                               args.rows, args.max_in_flight, args.timeout))
            results.append(one(cluster, hubspot, f"baseline, pair {i + 1}", f"hs_none_{i}", "none",
                               args.rows, args.max_in_flight, args.timeout))
    finally:
        if cluster:
            cluster.destroy()
        hubspot.stop()

    log("\n" + "=" * 72)
    log("summary")
    log("=" * 72)
    log(f"{'run':<20} {'rate_limit':<12} {'per 10 s':>9} {'of 100':>7} {'max/10s':>8} {'429s':>5} "
        f"{'first-last s':>12} {'delivery s':>10}")
    for o in results:
        log(f"{o['label']:<20} {o['rate_limit']:<12} {o['rate']:>9.2f} {100 * o['rate'] / LIMIT_MAX:>6.1f}% "
            f"{o['most']:>8} {o['r429']:>5} {o['span']:>12.1f} {o['run']['deliver_s']:>10.1f}")
    log("(per 10 s: mean accepted requests per full 10-second window from the first request)")
    lim = [o for o in results if o["rate_limit"] != "none"]
    base = [o for o in results if o["rate_limit"] == "none"]
    for o, b in zip(lim, base):
        log(f"limited/baseline achieved rate: {o['rate'] / b['rate']:.3f}; 429s {o['r429']} vs {b['r429']}")
    worst = min(o["rate"] for o in lim) / LIMIT_MAX
    log(f"target >= 95% of the limit with rate_limit set: {'met' if worst >= 0.95 else 'NOT met'} "
        f"(lowest {100 * worst:.1f}%)")
    log(f"target 0 429s with rate_limit set: {'met' if all(o['r429'] == 0 for o in lim) else 'NOT met'}")


if __name__ == "__main__":
    main()
