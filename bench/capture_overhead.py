#!/usr/bin/env python3
"""Write overhead of revetl's change-capture triggers, measured with pgbench.

One table t(id bigint primary key, email text, score int, payload text) of
--rows rows (default 100,000). pgbench runs a custom script of single-row
updates,

    \\set id random(1, :n)
    UPDATE t SET score = score + 1 WHERE id = :id;

with -c 2 -j 2 -T --seconds (default 20) -M prepared, over the cluster's Unix
socket, against four variants of the same table:

  plain      no trigger (the baseline);
  manual     tracked by revetl: CREATE SYNC ... SCHEDULE MANUAL
             WITH (track_changes = true), i.e. revetl's statement-level AFTER
             triggers with transition tables that write the changed keys to
             revetl.captured_changes;
  on change  tracked by revetl with SCHEDULE ON CHANGE: the same triggers,
             plus a run that plans and delivers the keys of each commit as it
             comes (revetl.change_run_duration, 30 s by default: one process
             for the whole load); the run delivers to a local mock webhook
             (test/connectors/webhook/mock.py) on the same 2 CPUs, so this
             variant pays for the run as well as the capture;
  on change per run  the same with revetl.change_run_duration = 0: a run
             (a new process) per commit, unless one is queued already, as
             before 0.2.0's continuous runs;
  row queue  a row-level AFTER trigger in PL/pgSQL that inserts one row per
             change into a queue table (the pg_net / Multiwoven-style
             baseline); it stores the same key text revetl stores.

The variants are run --rounds times (default 2), alternating
(plain, manual, on change, row queue, plain, ...). Before each run the table
is vacuumed and a checkpoint is taken; autovacuum is off in this cluster so
that it cannot land in one variant's run and not another's. Each run checks
that every committed update left exactly one captured key (manual) or queue
row (row queue).

Reported: TPS per variant (mean of the rounds, and each round), and the
overhead relative to plain, (1 - tps / tps_plain) * 100 (target: under 10%
for revetl's capture). Also the server CPU time per committed update: the
CPU time of the cluster's processes that exited during the run (pgbench's
backends and, for on change, the runs' processes, which the postmaster
reaps: cutime + cstime of /proc/<postmaster>/stat), divided by the updates;
it is far less disturbed by other load on the machine than TPS is.

Run (PostgreSQL refuses to run as root):
  runuser -u postgres -- env PYTHONDONTWRITEBYTECODE=1 python3 bench/capture_overhead.py
"""

import argparse
import os
import re
import subprocess
import sys
import time

from common import (CLK_TCK, MockWebhook, banner, create_unreachable_server, fill_shadow, log, sql, start_cluster, sync_id,
                    wait_for)

VARIANTS = ["plain", "manual", "on change", "on change per run", "row queue"]

ROW_QUEUE_DDL = """
create table queue (id bigint generated always as identity primary key, tbl text not null, op text not null,
                    key text, queued_at timestamptz not null default now());
create function enqueue() returns trigger language plpgsql as $$
begin
  if TG_OP = 'DELETE' then
    insert into queue (tbl, op, key) values (TG_TABLE_NAME, TG_OP, jsonb_build_object('id', OLD.id)::text);
  else
    insert into queue (tbl, op, key) values (TG_TABLE_NAME, TG_OP, jsonb_build_object('id', NEW.id)::text);
  end if;
  return null;
end $$;
"""


def pgbench(cluster, script, rows, seconds, clients):
    cmd = [os.path.join(cluster.bindir, "pgbench"), "-n", "-h", cluster.dir, "-p", str(cluster.port),
           "-U", "postgres", "-c", str(clients), "-j", str(clients), "-T", str(seconds), "-M", "prepared",
           "-f", script, "-D", f"n={rows}", "postgres"]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 120)
    if p.returncode != 0:
        raise RuntimeError(f"pgbench failed: {p.stderr.strip()}")
    tps = float(re.search(r"tps = ([0-9.]+) \(without initial connection time\)", p.stdout).group(1))
    xacts = int(re.search(r"number of transactions actually processed: (\d+)", p.stdout).group(1))
    failed = re.search(r"number of failed transactions: (\d+)", p.stdout)
    if failed and int(failed.group(1)):
        raise RuntimeError(f"pgbench: {failed.group(1)} failed transactions")
    return tps, xacts, " ".join(cmd)


def reaped_cpu_seconds(postmaster_pid):
    """CPU time (user + system) of the postmaster's children that have exited:
    cutime + cstime of /proc/<postmaster>/stat. pgbench's backends, and the
    ON CHANGE runs' processes, are added to it when they exit."""
    with open(f"/proc/{postmaster_pid}/stat") as f:
        rest = f.read().rsplit(")", 1)[1].split()
    return (int(rest[13]) + int(rest[14])) / CLK_TCK


def short_lived_children(postmaster_pid):
    """Client backends and run processes of the cluster not yet reaped."""
    out = []
    for p in os.listdir("/proc"):
        if not p.isdigit():
            continue
        try:
            with open(f"/proc/{p}/stat") as f:
                state, ppid = f.read().rsplit(")", 1)[1].split()[:2]
            if int(ppid) != postmaster_pid:
                continue
            with open(f"/proc/{p}/cmdline", "rb") as f:
                cmd = f.read().decode(errors="replace")
        except (OSError, ValueError, IndexError):
            continue
        # A child that is exiting (its memory already released) or has exited
        # but is not reaped yet (a zombie) has no command line left, and its
        # CPU time is not in the postmaster's cutime yet.
        if (state == "Z" or not cmd or cmd.startswith("postgres: postgres ")
                or cmd.startswith("postgres: revetl run")):
            out.append(int(p))
    return out


def wait_reaped(postmaster_pid):
    wait_for(lambda: not short_lived_children(postmaster_pid), timeout=60, interval=0.005,
             what="backends to exit")


def settled(cluster, name):
    return sql(cluster, f"select count(*) from revetl.sync_runs where sync_name = '{name}' "
                        f"and status in ('queued', 'running')") == "0"


def attach(cluster, variant):
    if variant == "manual":
        sql(cluster, "select * from revetl.execute('CREATE SYNC cap_manual FROM t TO srv KEY (id) MODE MIRROR "
                     "SCHEDULE MANUAL WITH (track_changes = true)')")
    elif variant.startswith("on change"):
        sql(cluster, "alter system set revetl.change_run_duration = "
                     + ("0" if variant == "on change per run" else "default") + "; select pg_reload_conf()")
        sql(cluster, "select * from revetl.execute('CREATE SYNC cap_live FROM t TO hook KEY (id) MODE MIRROR "
                     "SCHEDULE ON CHANGE')")
        # As if the first full run had delivered everything: later runs are
        # incremental, over the keys captured since.
        fill_shadow(cluster, "cap_live", table="t")
        sid = sync_id(cluster, "cap_live")
        sql(cluster, f"insert into revetl.sync_state (sync_id, incremental_ready) values ({sid}, true) "
                     f"on conflict (sync_id) do update set incremental_ready = true")
    elif variant == "row queue":
        sql(cluster, "create trigger t_enqueue after insert or update or delete on t "
                     "for each row execute function enqueue()")


def detach(cluster, variant, xacts):
    """Checks what the variant captured, then removes it. Returns a note for the report."""
    note = ""
    if variant == "manual":
        sid = sync_id(cluster, "cap_manual")
        got = int(sql(cluster, f"select count(*) from revetl.captured_changes where sync_id = {sid}"))
        if got != xacts:
            raise AssertionError(f"manual: {got} captured keys for {xacts} committed updates")
        note = f"{got:,} keys captured"
        sql(cluster, "select revetl.drop_sync('cap_manual')")
    elif variant.startswith("on change"):
        runs = sql(cluster, "select count(*) || ' runs (' || string_agg(distinct status, ', ') || '), ' || "
                            "sum(rows_delivered) || ' rows delivered' "
                            "from revetl.sync_runs where sync_name = 'cap_live'")
        left = sql(cluster, "select count(*) from revetl.captured_changes c join revetl.syncs s "
                            "on s.id = c.sync_id where s.name = 'cap_live'")
        note = f"{runs}; {left} captured keys left"
        sql(cluster, "select revetl.drop_sync('cap_live'); delete from revetl.runs where sync_name = 'cap_live'")
    elif variant == "row queue":
        got = int(sql(cluster, "select count(*) from queue"))
        if got != xacts:
            raise AssertionError(f"row queue: {got} queue rows for {xacts} committed updates")
        note = f"{got:,} queue rows"
        sql(cluster, "drop trigger t_enqueue on t; truncate queue")
    leftover = sql(cluster, "select count(*) from pg_trigger where tgrelid = 't'::regclass and not tgisinternal")
    if leftover != "0":
        raise AssertionError(f"{leftover} triggers left on t after {variant}")
    return note


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=100_000)
    ap.add_argument("--seconds", type=int, default=20)
    ap.add_argument("--clients", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--durable", action="store_true",
                    help="fsync = on (the test clusters run with fsync = off, which makes commits cheap)")
    args = ap.parse_args()

    banner("capture_overhead: single-row UPDATE throughput with and without change capture (pgbench)")
    started = time.monotonic()
    mock = MockWebhook()
    cluster = start_cluster(extra_conf="autovacuum = off" + ("\nfsync = on" if args.durable else ""),
                            name="revetl-bench-capture")
    results = {v: [] for v in VARIANTS}
    notes = {v: [] for v in VARIANTS}
    cpu = {v: [] for v in VARIANTS}
    command = ""
    try:
        create_unreachable_server(cluster)
        sql(cluster, f"create server hook foreign data wrapper revetl options (type 'webhook', url '{mock.url}/t')")
        sql(cluster, f"""
            create table t (id bigint primary key, email text, score int, payload text);
            insert into t select g, 'user' || g || '@example.com', (g * 7919) % 1000, md5(g::text)
              from generate_series(1::bigint, {args.rows}) g;
            vacuum (analyze, freeze) t;
            {ROW_QUEUE_DDL}
        """)
        pm = cluster.postmaster_pid()
        script = os.path.join(cluster.dir, "update.sql")
        with open(script, "w") as f:
            f.write("\\set id random(1, :n)\nUPDATE t SET score = score + 1 WHERE id = :id;\n")
        log(f"table t: {args.rows:,} rows; pgbench -c {args.clients} -j {args.clients} -T {args.seconds} "
            f"-M prepared, {args.rounds} rounds")
        for rnd in range(args.rounds):
            for v in VARIANTS:
                sql(cluster, "vacuum t; vacuum revetl.captured_changes; vacuum queue; checkpoint")
                attach(cluster, v)
                wait_reaped(pm)
                cpu0 = reaped_cpu_seconds(pm)
                tps, xacts, command = pgbench(cluster, script, args.rows, args.seconds, args.clients)
                if v.startswith("on change"):
                    # The runs still queued or running belong to this variant's cost.
                    wait_for(lambda: settled(cluster, "cap_live"), timeout=300, interval=0.2,
                             what="ON CHANGE runs to finish")
                wait_reaped(pm)
                cpu_us = (reaped_cpu_seconds(pm) - cpu0) / xacts * 1e6
                note = detach(cluster, v, xacts)
                results[v].append(tps)
                cpu[v].append(cpu_us)
                notes[v].append(note)
                log(f"  round {rnd + 1} {v:10s} {tps:9.1f} tps, {cpu_us:6.1f} us server CPU per update "
                    f"({xacts:,} updates{'; ' + note if note else ''})")
    finally:
        cluster.destroy()
        mock.stop()

    base = sum(results["plain"]) / len(results["plain"])
    cpu_base = sum(cpu["plain"]) / len(cpu["plain"])
    log(f"\npgbench command (one run): {command}")
    log("\n| variant | TPS (mean) | TPS per round | TPS overhead vs plain | server CPU per update (us, mean) "
        "| CPU per update vs plain |")
    log("|---|---:|---|---:|---:|---:|")
    over = {}
    for v in VARIANTS:
        mean = sum(results[v]) / len(results[v])
        cmean = sum(cpu[v]) / len(cpu[v])
        over[v] = (1 - mean / base) * 100
        log(f"| {v} | {mean:,.0f} | {', '.join(f'{x:,.0f}' for x in results[v])} | "
            f"{'-' if v == 'plain' else f'{over[v]:.1f}%'} | {cmean:.1f} | "
            f"{'-' if v == 'plain' else f'+{(cmean / cpu_base - 1) * 100:.1f}%'} |")
    log(f"\ntarget (revetl capture overhead under 10%): manual {over['manual']:.1f}% -> "
        f"{'met' if over['manual'] < 10 else 'NOT met'}; on change {over['on change']:.1f}% -> "
        f"{'met' if over['on change'] < 10 else 'NOT met'}; on change per run {over['on change per run']:.1f}%; "
        f"row-level queue baseline {over['row queue']:.1f}%")
    log(f"total time: {time.monotonic() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
