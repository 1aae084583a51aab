#!/usr/bin/env python3
"""Where the write overhead of revetl's capture trigger goes (a diagnostic for
capture_overhead.py).

Creates a tracked sync on t(id bigint primary key, email text, score int,
payload text), removes its triggers, and runs the same pgbench single-row
UPDATE workload as capture_overhead.py against variants of an AFTER UPDATE
trigger:

  plain                 no trigger (the baseline);
  revetl C function     the sync's own capture function (LANGUAGE c,
                        src/pg/capture.cpp; SECURITY DEFINER with its SET
                        clauses), statement-level with transition tables,
                        writing to revetl.captured_changes: what a tracked
                        sync costs;
  plpgsql function      the PL/pgSQL capture function revetl generated before
                        the C one (PLPGSQL_BODY below, same SECURITY DEFINER
                        and SET clauses), writing to a copy of
                        revetl.captured_changes (public.cc, LIKE ... INCLUDING
                        ALL): the baseline for the C function;
  revetl C function, no SET clauses (and also SECURITY INVOKER)
                        the same function altered (RESET ALL, SECURITY
                        INVOKER): what its SET clauses and the user switch
                        cost per statement;
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


# The capture function of a sync KEY (id) on public.t as revetl generated it
# in PL/pgSQL before the C function (src/pg/capture.cpp), writing to the
# copy public.cc: the baseline the C function is measured against.
PLPGSQL_HEADER = ("SECURITY DEFINER SET search_path = pg_catalog, pg_temp SET DateStyle = 'ISO, YMD' "
                  "SET TimeZone = 'UTC' SET IntervalStyle = 'postgres' SET extra_float_digits = 3")
PLPGSQL_BODY = """BEGIN
  IF TG_TABLE_SCHEMA <> 'public' OR TG_TABLE_NAME <> 't' OR TG_NAME NOT LIKE 'tr' THEN
    RAISE EXCEPTION 'revetl capture function of sync 1 called for another table or trigger';
  END IF;
  IF TG_OP = 'INSERT' THEN
    INSERT INTO public.cc (sync_id, key) SELECT 1, pg_catalog.jsonb_build_object('id', CASE WHEN n."id" IS NOT NULL THEN pg_catalog.format('%s', n."id") END)::text FROM revetl_new n;
  ELSIF TG_OP = 'UPDATE' THEN
    INSERT INTO public.cc (sync_id, key) SELECT 1, k FROM (SELECT pg_catalog.jsonb_build_object('id', CASE WHEN n."id" IS NOT NULL THEN pg_catalog.format('%s', n."id") END)::text AS k FROM revetl_new n UNION SELECT pg_catalog.jsonb_build_object('id', CASE WHEN o."id" IS NOT NULL THEN pg_catalog.format('%s', o."id") END)::text FROM revetl_old o) AS keys;
  ELSIF TG_OP = 'DELETE' THEN
    INSERT INTO public.cc (sync_id, key) SELECT 1, pg_catalog.jsonb_build_object('id', CASE WHEN o."id" IS NOT NULL THEN pg_catalog.format('%s', o."id") END)::text FROM revetl_old o;
  ELSE
    INSERT INTO public.cc (sync_id, key) VALUES (1, NULL);
  END IF;
  RETURN NULL;
END"""


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
        sid = sync_id(cluster, "probe")
        fdef = sql(cluster, f"select pg_get_functiondef('revetl.capture_{sid}'::regproc)")
        log("revetl's capture function: " + fdef)
        # The sync's own triggers go; the C variant attaches the sync's
        # function again itself (named as revetl names them: the function
        # checks the trigger's name and table).
        # (cc first: revetl's DDL watch would attach the triggers again at
        # CREATE TABLE.)
        # cc is the queue as it was before (with a primary key on id).
        sql(cluster, "create table cc (like revetl.captured_changes including all); alter table cc add primary key (id)")
        sql(cluster, f"drop trigger revetl_capture_{sid}_ins on t; drop trigger revetl_capture_{sid}_upd on t; "
                     f"drop trigger revetl_capture_{sid}_del on t; drop trigger revetl_capture_{sid}_trunc on t")
        stmt = ("REFERENCING OLD TABLE AS revetl_old NEW TABLE AS revetl_new FOR EACH STATEMENT")
        variants = [
            ("plain", None, None),
            ("revetl C function (statement-level)", None,
             f"{stmt} EXECUTE FUNCTION revetl.capture_{sid}('{sid}', 'public', 't', '', 'id')"),
            # What the function's SET clauses (a GUC nest level, five
            # settings set and restored per call) and SECURITY DEFINER cost:
            # the same function without them (the bench runs as a superuser,
            # who may write the queue).
            ("revetl C function, no SET clauses", f"ALTER FUNCTION revetl.capture_{sid}() RESET ALL",
             f"{stmt} EXECUTE FUNCTION revetl.capture_{sid}('{sid}', 'public', 't', '', 'id')"),
            ("revetl C function, no SET clauses, SECURITY INVOKER",
             f"ALTER FUNCTION revetl.capture_{sid}() RESET ALL SECURITY INVOKER",
             f"{stmt} EXECUTE FUNCTION revetl.capture_{sid}('{sid}', 'public', 't', '', 'id')"),
            ("plpgsql function of 0.2.0 before C (statement-level)",
             f"CREATE FUNCTION f() RETURNS trigger LANGUAGE plpgsql {PLPGSQL_HEADER} AS $x${PLPGSQL_BODY}$x$",
             f"{stmt} EXECUTE FUNCTION f()"),
            ("no-op statement-level trigger, transition tables",
             "CREATE FUNCTION f() RETURNS trigger LANGUAGE plpgsql AS $x$BEGIN RETURN NULL; END$x$",
             f"{stmt} EXECUTE FUNCTION f()"),
            ("row-level trigger, INSERT ... VALUES of the key",
             "CREATE FUNCTION f() RETURNS trigger LANGUAGE plpgsql AS $x$BEGIN INSERT INTO public.cc (sync_id, key) "
             "VALUES (1, jsonb_build_object('id', NEW.id)::text); RETURN NULL; END$x$", "FOR EACH ROW EXECUTE FUNCTION f()"),
        ]
        script = os.path.join(cluster.dir, "update.sql")
        with open(script, "w") as f:
            f.write("\\set id random(1, :n)\nUPDATE t SET score = score + 1 WHERE id = :id;\n")
        pm = cluster.postmaster_pid()
        results = {name: [] for name, _, _ in variants}
        command = ""
        for rnd in range(args.rounds):
            for name, fn, kind in variants:
                sql(cluster, f"drop trigger if exists tr on t; drop trigger if exists revetl_capture_{sid}_tr on t; "
                             "drop function if exists f(); truncate cc; truncate revetl.captured_changes; "
                             "vacuum t; checkpoint")
                sql(cluster, fdef)  # the capture function as revetl made it
                if fn:
                    sql(cluster, fn)
                own = fn is None or fn.startswith("ALTER FUNCTION revetl.")
                if kind:
                    sql(cluster, f"CREATE TRIGGER {f'revetl_capture_{sid}_tr' if own else 'tr'} AFTER UPDATE ON t {kind}")
                wait_reaped(pm)
                cpu0 = reaped_cpu_seconds(pm)
                tps, xacts, command = pgbench(cluster, script, args.rows, args.seconds, args.clients)
                wait_reaped(pm)
                cpu_us = (reaped_cpu_seconds(pm) - cpu0) / xacts * 1e6
                rows = int(sql(cluster, "select (select count(*) from cc) + (select count(*) from revetl.captured_changes)"))
                if kind and "no-op" not in name and rows != xacts:
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
