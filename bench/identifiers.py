#!/usr/bin/env python3
"""Hashed identifiers per second: revetl.hashed_identifier against sha256(lower(trim(x))).

One table of --rows rows (default 1M) with an email and a phone number per
row, written the way CRM exports write them (mixed case, stray white space,
Gmail addresses with dots and +tags; US numbers as "(650) 253-0123",
"+1 650-253-0123", "650.253.0123").

Timed, alternating, --reps times each, in one session without parallel
workers, each over all rows (SELECT count(<expression>) FROM ids):

  baseline  encode(sha256(convert_to(lower(trim(x)), 'UTF8')), 'hex'), the
            hash most hand-written audience exports use (no Gmail rule, no
            phone parsing), over the same column;
  revetl    revetl.hashed_identifier('email', email, 'google') and
            revetl.hashed_identifier('phone', phone, 'google', 'US').

Rate = rows / server-side wall seconds (median of the repetitions); the
backend's CPU seconds are printed too. Ratio = revetl rate / baseline rate
over the same column. Each expression must give a hash for every row (the
script checks the count), so no row is skipped as invalid.

Run (PostgreSQL refuses to run as root):
  runuser -u postgres -- env PYTHONDONTWRITEBYTECODE=1 python3 bench/identifiers.py
"""

import argparse

from common import banner, fmt_rate, log, median, server_times, sql, start_cluster

BASELINE = "encode(sha256(convert_to(lower(trim({col})), 'UTF8')), 'hex')"

CASES = [
    # (label, column, revetl expression)
    ("email", "email", "revetl.hashed_identifier('email', email, 'google')"),
    ("phone", "phone", "revetl.hashed_identifier('phone', phone, 'google', 'US')"),
]


def create_table(cluster, rows):
    sql(cluster, f"""
        create table ids (id bigint primary key, email text, phone text);
        alter table ids set (autovacuum_enabled = false);
        insert into ids
          select g,
                 case g % 4
                   when 0 then 'User' || g || '@Example.com'
                   when 1 then '  first.last' || g || '@GMail.com '
                   when 2 then 'first.last+promo' || g || '@gmail.com'
                   else 'u.' || g || '@googlemail.com'
                 end,
                 case g % 3
                   when 0 then '(650) 253-' || lpad((g % 10000)::text, 4, '0')
                   when 1 then '+1 650-253-' || lpad((g % 10000)::text, 4, '0')
                   else ' 650.253.' || lpad((g % 10000)::text, 4, '0')
                 end
            from generate_series(1::bigint, {int(rows)}) g;
        vacuum (analyze, freeze) ids;
    """, timeout=3600)


def timed(cluster, expr, rows):
    """(wall seconds, CPU seconds) of hashing every row with expr; checks every row got a hash."""
    statements = f"""
        set max_parallel_workers_per_gather = 0;
        create temp table bench_out as select count({expr}) as n from ids;
    """
    wall, cpu = server_times(cluster, statements)
    n = int(sql(cluster, f"set max_parallel_workers_per_gather = 0; select count({expr}) from ids"))
    if n != rows:
        raise SystemExit(f"{expr}: {n} hashes for {rows} rows")
    return wall, cpu


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--reps", type=int, default=3)
    args = ap.parse_args()

    banner(f"revetl identifier hashing: {args.rows:,} rows, {args.reps} repetitions")
    cluster = start_cluster(name="revetl-bench-identifiers")
    try:
        create_table(cluster, args.rows)
        # One row of each, so the output shows what is being compared.
        log("sample row: " + sql(cluster, "select email || ' | ' || phone from ids where id = 1"))
        for label, col, expr in CASES:
            base_expr = BASELINE.format(col=col)
            log(sql(cluster, f"select 'baseline {label}: ' || {base_expr} || E'\\nrevetl   {label}: ' || {expr} "
                             "from ids where id = 1"))
        results = {}
        for rep in range(args.reps):
            for label, col, expr in CASES:
                for side, e in (("baseline", BASELINE.format(col=col)), ("revetl", expr)):
                    wall, cpu = timed(cluster, e, args.rows)
                    results.setdefault((label, side), []).append((wall, cpu))
                    log(f"rep {rep + 1} {label:5} {side:8} {wall:7.3f} s wall {cpu:7.3f} s CPU "
                        f"({fmt_rate(args.rows / wall)} hashes/s)")
        log("")
        log(f"{'column':6} {'side':8} {'expression':60} {'hashes/s':>12} {'CPU s':>7}")
        for label, col, expr in CASES:
            rates = {}
            for side, e in (("baseline", BASELINE.format(col=col)), ("revetl", expr)):
                wall = median([w for w, _ in results[(label, side)]])
                cpu = median([c for _, c in results[(label, side)]])
                rates[side] = args.rows / wall
                log(f"{label:6} {side:8} {e:60} {fmt_rate(rates[side]):>12} {cpu:7.3f}")
            log(f"{label:6} ratio revetl / baseline = {rates['revetl'] / rates['baseline']:.2f}")
    finally:
        cluster.destroy()


if __name__ == "__main__":
    main()
