#!/usr/bin/env python3
"""Key and payload objects per second: revetl.object_jsonb against jsonb_build_object.

A full diff builds one key object and one payload object for every row it
plans (all of a first run's rows). revetl builds them with revetl.object_jsonb
(src/pg/object_jsonb.cpp), which must return jsonb_build_object's bytes; this
benchmark measures what that saves, on one table of --rows rows (default 1M)
with the issue's columns (id bigint, email text, score int, ts timestamptz)
and a few more kinds of value.

Timed, alternating, --reps times each, in one session without parallel
workers, each over all rows (SELECT count(<object>) FROM objects):

  baseline  jsonb_build_object('id', id, ...), what the plan called before;
  revetl    revetl.object_jsonb('id', id, ...), the same arguments.

Cases: the issue's model (its payload and its key), numbers (numeric, double
precision, with NaN), and a mix with json-like values (jsonb, int[], an enum).
Before timing, each case checks that both functions give the same bytes
(jsonb_send) for every row. Rate = rows / server-side wall seconds (median of
the repetitions); the backend's CPU seconds are printed too.

Run (PostgreSQL refuses to run as root):
  runuser -u postgres -- env PYTHONDONTWRITEBYTECODE=1 python3 bench/object_jsonb.py
"""

import argparse

from common import banner, fmt_rate, log, median, server_times, sql, start_cluster

CASES = [
    # (label, arguments)
    ("issue payload", "'id', id, 'email', email, 'score', score, 'ts', ts"),
    ("issue key", "'id', id"),
    ("numbers", "'id', id, 'amount', amount, 'ratio', ratio"),
    ("json-like", "'id', id, 'tags', tags, 'attrs', attrs, 'tier', tier"),
]


def create_table(cluster, rows):
    sql(cluster, f"""
        create type tier as enum ('free', 'pro', 'enterprise');
        create table objects (id bigint primary key, email text, score int, ts timestamptz,
                              amount numeric, ratio double precision, tags int[], attrs jsonb, tier tier);
        alter table objects set (autovacuum_enabled = false);
        insert into objects
          select g, 'user' || g || '@example.com', (g * 7919) % 1000,
                 '2024-01-01 00:00+00'::timestamptz + g * interval '1 minute',
                 round(g / 7.0, 2), case when g % 1000 = 0 then 'NaN' else g / 3.0 end,
                 array[g % 10, g % 7], jsonb_build_object('plan', g % 3, 'seats', g % 50),
                 (array['free', 'pro', 'enterprise'])[1 + g % 3]::tier
            from generate_series(1::bigint, {int(rows)}) g;
        vacuum (analyze, freeze) objects;
    """, timeout=3600)


def timed(cluster, expr):
    """(wall seconds, CPU seconds) of building the object for every row."""
    return server_times(cluster, f"""
        set max_parallel_workers_per_gather = 0;
        create temp table bench_out as select count({expr}) as n from objects;
        drop table bench_out;
    """)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--reps", type=int, default=3)
    args = ap.parse_args()

    banner(f"revetl key and payload objects: {args.rows:,} rows, {args.reps} repetitions")
    cluster = start_cluster(name="revetl-bench-object-jsonb")
    try:
        create_table(cluster, args.rows)
        for label, a in CASES:
            differ = int(sql(cluster, f"select count(*) from objects where jsonb_send(revetl.object_jsonb({a})) "
                                      f"is distinct from jsonb_send(jsonb_build_object({a}))"))
            if differ:
                raise SystemExit(f"{label}: {differ} rows differ between revetl.object_jsonb and jsonb_build_object")
            log(f"{label}: same bytes for every row, e.g. "
                + sql(cluster, f"select revetl.object_jsonb({a}) from objects where id = 1000"))
        results = {}
        for rep in range(args.reps):
            for label, a in CASES:
                for side, fn in (("baseline", "jsonb_build_object"), ("revetl", "revetl.object_jsonb")):
                    wall, cpu = timed(cluster, f"{fn}({a})")
                    results.setdefault((label, side), []).append((wall, cpu))
                    log(f"rep {rep + 1} {label:13} {side:8} {wall:7.3f} s wall {cpu:7.3f} s CPU "
                        f"({fmt_rate(args.rows / wall)} objects/s)")
        log("")
        log("| case | jsonb_build_object (objects/s) | CPU (s) | revetl.object_jsonb (objects/s) | CPU (s) "
            "| revetl / baseline by wall | by CPU |")
        log("|---|---:|---:|---:|---:|---:|---:|")
        for label, _ in CASES:
            wall = {s: median([w for w, _ in results[(label, s)]]) for s in ("baseline", "revetl")}
            cpu = {s: median([c for _, c in results[(label, s)]]) for s in ("baseline", "revetl")}
            log(f"| {label} | {fmt_rate(args.rows / wall['baseline'])} | {cpu['baseline']:.2f} "
                f"| {fmt_rate(args.rows / wall['revetl'])} | {cpu['revetl']:.2f} "
                f"| {wall['baseline'] / wall['revetl']:.2f}x | "
                f"{(cpu['baseline'] / cpu['revetl']) if cpu['revetl'] > 0 else float('nan'):.2f}x |")
    finally:
        cluster.destroy()


if __name__ == "__main__":
    main()
