#!/usr/bin/env python3
"""Where the write overhead of revetl's capture trigger goes (a diagnostic for
capture_overhead.py).

Creates a tracked sync on t(id bigint primary key, email text, score int,
payload text) only to read the capture function revetl generates
(pg_get_functiondef of revetl.capture_<id>), then drops the sync and runs the
same pgbench single-row UPDATE workload as capture_overhead.py against
variants of an AFTER UPDATE trigger that write to a copy of
revetl.captured_changes (public.cc, LIKE ... INCLUDING ALL):

  plain                 no trigger (the baseline);
  revetl function       revetl's function body, SECURITY DEFINER and its SET
                        clauses, statement-level with transition tables: what
                        a tracked sync costs;
  no SECURITY DEFINER   the same body without SECURITY DEFINER and SET (the
                        cost of those is the difference);
  no-op statement       a statement-level trigger with transition tables whose
                        function only returns (the cost of the transition
                        tables and of calling a PL/pgSQL trigger);
  row-level insert      a row-level trigger inserting the same key text into
                        cc with INSERT ... VALUES.

Each variant runs --rounds times (alternating) for --seconds; reported: TPS
and server CPU per update (cutime + cstime of the postmaster, see
capture_overhead.py), and the CPU added per update relative to plain.

Run (PostgreSQL refuses to run as root):
  runuser -u postgres -- env PYTHONDONTWRITEBYTECODE=1 python3 bench/capture_breakdown.py
"""

import argparse
import os
import sys
import time

from capture_overhead import pgbench, reaped_cpu_seconds, wait_reaped
from common import banner, create_unreachable_server, log, sql, start_cluster, sync_id


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=100_000)
    ap.add_argument("--seconds", type=int, default=10)
    ap.add_argument("--clients", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=2)
    args = ap.parse_args()

    banner("capture_breakdown: what revetl's capture trigger costs per single-row UPDATE, part by part")
    started = time.monotonic()
    cluster = start_cluster(extra_conf="autovacuum = off", name="revetl-bench-capbreak")
    try:
        create_unreachable_server(cluster)
        sql(cluster, f"""
            create table t (id bigint primary key, email text, score int, payload text);
            insert into t select g, 'user' || g || '@example.com', (g * 7919) % 1000, md5(g::text)
              from generate_series(1::bigint, {args.rows}) g;
            vacuum (analyze, freeze) t;
        """)
        sql(cluster, "select * from revetl.execute('CREATE SYNC probe FROM t TO srv KEY (id) MODE MIRROR "
                     "SCHEDULE MANUAL WITH (track_changes = true)')")
        fdef = sql(cluster, f"select pg_get_functiondef('revetl.capture_{sync_id(cluster, 'probe')}'::regproc)")
        header, rest = fdef.split("AS $function$", 1)
        body = rest.rsplit("$function$", 1)[0]
        settings = " ".join(line.strip() for line in header.splitlines() if line.strip().startswith("SET "))
        secdef = "SECURITY DEFINER" if "SECURITY DEFINER" in header else ""
        log("revetl's capture function:\n" + fdef)
        sql(cluster, "select revetl.drop_sync('probe'); "
                     "create table cc (like revetl.captured_changes including all)")
        body_cc = body.replace("revetl.captured_changes", "public.cc")
        if body_cc == body:
            raise AssertionError("the capture function does not insert into revetl.captured_changes")
        stmt = ("REFERENCING OLD TABLE AS revetl_old NEW TABLE AS revetl_new FOR EACH STATEMENT")
        variants = [
            ("plain", None, None),
            ("revetl function (statement-level)",
             f"CREATE FUNCTION f() RETURNS trigger LANGUAGE plpgsql {secdef} {settings} AS $x${body_cc}$x$", stmt),
            ("same body, no SECURITY DEFINER / SET",
             f"CREATE FUNCTION f() RETURNS trigger LANGUAGE plpgsql AS $x${body_cc}$x$", stmt),
            ("no-op statement-level trigger, transition tables",
             "CREATE FUNCTION f() RETURNS trigger LANGUAGE plpgsql AS $x$BEGIN RETURN NULL; END$x$", stmt),
            ("row-level trigger, INSERT ... VALUES of the key",
             "CREATE FUNCTION f() RETURNS trigger LANGUAGE plpgsql AS $x$BEGIN INSERT INTO public.cc (sync_id, key) "
             "VALUES (1, jsonb_build_object('id', NEW.id)::text); RETURN NULL; END$x$", "FOR EACH ROW"),
        ]
        script = os.path.join(cluster.dir, "update.sql")
        with open(script, "w") as f:
            f.write("\\set id random(1, :n)\nUPDATE t SET score = score + 1 WHERE id = :id;\n")
        pm = cluster.postmaster_pid()
        results = {name: [] for name, _, _ in variants}
        command = ""
        for rnd in range(args.rounds):
            for name, fn, kind in variants:
                sql(cluster, "drop trigger if exists tr on t; drop function if exists f(); truncate cc; "
                             "vacuum t; checkpoint")
                if fn:
                    sql(cluster, fn)
                    sql(cluster, f"CREATE TRIGGER tr AFTER UPDATE ON t {kind} EXECUTE FUNCTION f()")
                wait_reaped(pm)
                cpu0 = reaped_cpu_seconds(pm)
                tps, xacts, command = pgbench(cluster, script, args.rows, args.seconds, args.clients)
                wait_reaped(pm)
                cpu_us = (reaped_cpu_seconds(pm) - cpu0) / xacts * 1e6
                rows = int(sql(cluster, "select count(*) from cc"))
                if fn and "no-op" not in name and rows != xacts:
                    raise AssertionError(f"{name}: {rows} rows in cc for {xacts} updates")
                results[name].append((tps, cpu_us))
                log(f"  round {rnd + 1} {name:50s} {tps:9.1f} tps, {cpu_us:6.1f} us server CPU per update")
    finally:
        cluster.destroy()

    log(f"\npgbench command (one run): {command}")
    base = sum(c for _, c in results["plain"]) / len(results["plain"])
    log("\n| trigger variant | TPS (mean) | server CPU per update (us, mean) | CPU added vs plain (us) |")
    log("|---|---:|---:|---:|")
    for name, vals in results.items():
        tps = sum(t for t, _ in vals) / len(vals)
        cpu = sum(c for _, c in vals) / len(vals)
        log(f"| {name} | {tps:,.0f} | {cpu:.1f} | {'-' if name == 'plain' else f'{cpu - base:+.1f}'} |")
    log(f"total time: {time.monotonic() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
