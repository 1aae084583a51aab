#!/usr/bin/env python3
"""Writers at full speed under a live WAL-captured ON CHANGE sync, beside the
same table with no sync at wal_level = replica and at wal_level = logical, and
beside a trigger-captured ON CHANGE sync (issue 15's write targets).

One table t(id bigint primary key, email text, score int, payload text) of
--rows rows (default 100,000); pgbench, as in capture_overhead.py, runs
single-row updates with no rate limit,

    \\set id random(1, :n)
    UPDATE t SET score = score + 1 WHERE id = :id;

with -c 2 -j 2 -T --seconds (default 10) -M prepared. Four variants, in one
cluster, alternated --rounds times (default 2):

  replica         no sync, wal_level = replica (the server is restarted);
  logical         no sync, wal_level = logical (restarted again): the cost of
                  logical over replica is this against `replica`;
  wal capture only  a WAL-tracked sync with SCHEDULE MANUAL: the scheduler
                  decodes the WAL and queues the keys, nothing is delivered
                  (what decoding alone costs the writers on this machine);
  wal on change   CREATE SYNC ... SCHEDULE ON CHANGE WITH (track_changes =
                  'wal') to a local mock webhook, at wal_level = logical: the
                  writers fire no trigger; the database's scheduler decodes the
                  WAL as it is flushed (it looks every
                  revetl.wal_poll_interval) and queues the keys, and
                  the sync's continuous run delivers them, all while pgbench
                  runs (on the same 2 CPUs);
  trigger on change  the same sync with the capture triggers (track_changes
                  defaults to true for ON CHANGE), at wal_level = logical.

Both live syncs start as if a first full run had delivered every row (the
shadow table is filled, incremental_ready set), so the load's runs are
incremental. After each live variant the script waits until every captured
key is planned and checks that the runs delivered (the note says how many
rows, and how many keys were left).

Reported: TPS per variant (mean and per round); the overhead of each against
`logical` and against `replica`; and the server CPU per committed update:
the CPU (user + system) of the cluster's processes during the load and the
drain after it, long-lived ones included (the scheduler, which decodes, and
the walwriter), from /proc. The targets: `wal on change` within 10% of
`logical`; `trigger on change` at most 30% below it.

--breakdown also prints, for each round, that CPU per update by process:
pgbench's backends, the sync's run, the scheduler ("revetl worker", which
decodes the WAL), the walwriter, and the mock destination's own (a
separate process, not in the server's total), taken when pgbench ends, and
the drain after it as one figure. --variants runs a subset (`logical`, the
baseline, always among them).

Run (PostgreSQL refuses to run as root):
  runuser -u postgres -- env PYTHONDONTWRITEBYTECODE=1 python3 bench/wal_overhead.py --durable
"""

import argparse
import os
import sys
import time

from capture_overhead import pgbench, wait_reaped
from common import CLK_TCK, MockWebhook, banner, fill_shadow, log, sql, start_cluster, sync_id, wait_for

VARIANTS = ["replica", "logical", "wal capture only", "wal on change", "trigger on change"]
LIVE = {"wal capture only": "cap_walm", "wal on change": "cap_wal", "trigger on change": "cap_trig"}


def children_cpu(postmaster_pid):
    """{pid: CPU seconds} of the postmaster's live children."""
    out = {}
    for p in os.listdir("/proc"):
        if not p.isdigit():
            continue
        try:
            with open(f"/proc/{p}/stat") as f:
                rest = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(rest[1]) == postmaster_pid:
            out[int(p)] = (int(rest[11]) + int(rest[12])) / CLK_TCK
    return out


def reaped(postmaster_pid):
    with open(f"/proc/{postmaster_pid}/stat") as f:
        rest = f.read().rsplit(")", 1)[1].split()
    return (int(rest[13]) + int(rest[14])) / CLK_TCK


def cluster_cpu(postmaster_pid):
    """(live children's CPU per pid, reaped children's CPU, the postmaster's own)."""
    with open(f"/proc/{postmaster_pid}/stat") as f:
        rest = f.read().rsplit(")", 1)[1].split()
    own = (int(rest[11]) + int(rest[12])) / CLK_TCK
    return children_cpu(postmaster_pid), reaped(postmaster_pid), own


def role(pid):
    """What a server process is, from its title ("revetl run", "walwriter",
    "backend" for a client's connection)."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            title = f.read().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return "gone"
    title = title.split(":", 1)[1].strip() if ":" in title else title
    for known in ("revetl run", "revetl worker", "revetl launcher", "walwriter", "checkpointer",
                  "background writer", "logical replication launcher", "autovacuum launcher"):
        if title.startswith(known):
            return known
    return "backend (pgbench)"


def cpu_by_role(before, after, roles, mock_cpu):
    """{role: CPU seconds} between two cluster_cpu() readings, the exited children
    (pgbench's backends, ended runs) as one line, and the mock destination's."""
    live0, reaped0, own0 = before
    live1, reaped1, own1 = after
    out = {"exited children": reaped1 - reaped0, "postmaster": own1 - own0}
    for pid, cpu in live1.items():
        r = roles.get(pid, "gone")
        out[r] = out.get(r, 0.0) + cpu - live0.get(pid, 0.0)
    for pid, cpu in live0.items():
        if pid not in live1:
            out["exited children"] -= cpu
    out["mock destination"] = mock_cpu
    return out


def process_cpu(pid):
    with open(f"/proc/{pid}/stat") as f:
        rest = f.read().rsplit(")", 1)[1].split()
    return (int(rest[11]) + int(rest[12])) / CLK_TCK


def cpu_between(before, after):
    """CPU the cluster's processes used between two cluster_cpu() readings: a
    child that exited in between is in the reaped total with all its CPU, of
    which the part before the first reading is taken off."""
    live0, reaped0, own0 = before
    live1, reaped1, own1 = after
    total = (reaped1 - reaped0) + (own1 - own0)
    for pid, cpu in live1.items():
        total += cpu - live0.get(pid, 0.0)
    for pid, cpu in live0.items():
        if pid not in live1:
            total -= cpu
    return total


def slot_exists(cluster):
    return sql(cluster, "select count(*) from pg_replication_slots where slot_name like 'revetl\\_%'") != "0"


def set_wal_level(cluster, level):
    if sql(cluster, "show wal_level") == level:
        return
    sql(cluster, f"alter system set wal_level = '{level}'")
    cluster.stop()
    cluster.start()
    cluster.wait_for_worker(timeout=60)
    assert sql(cluster, "show wal_level") == level


def busy(cluster, name):
    return sql(cluster, f"select count(*) from revetl.sync_runs where sync_name = '{name}' "
                        f"and status in ('queued', 'running')") != "0"


def attach(cluster, variant):
    name = LIVE.get(variant)
    if not name:
        return
    track = " WITH (track_changes = ''wal'')" if variant.startswith("wal") else ""
    schedule = "MANUAL" if variant == "wal capture only" else "ON CHANGE"
    sql(cluster, f"select * from revetl.execute('CREATE SYNC {name} FROM t TO hook KEY (id) MODE MIRROR "
                 f"SCHEDULE {schedule}{track}')")
    fill_shadow(cluster, name, table="t")
    sid = sync_id(cluster, name)
    sql(cluster, f"insert into revetl.sync_state (sync_id, incremental_ready) values ({sid}, true) "
                 f"on conflict (sync_id) do update set incremental_ready = true")
    if variant.startswith("wal"):
        wait_for(lambda: slot_exists(cluster), timeout=120, what="the scheduler to create the WAL slot")


def drained(cluster, name, xacts):
    """Every captured key planned (ON CHANGE); for the MANUAL sync, the slot
    read up to the end of the load (its keys stay queued)."""
    if name == "cap_walm":
        return sql(cluster, "select bool_and(confirmed_flush_lsn >= pg_current_wal_flush_lsn()) "
                            "from pg_replication_slots where slot_name like 'revetl\\_%'") == "t"
    return not busy(cluster, name) and sql(
        cluster, f"select count(*) from revetl.captured_changes c join revetl.syncs s on s.id = c.sync_id "
                 f"where s.name = '{name}'") == "0"


def detach(cluster, variant):
    name = LIVE.get(variant)
    if not name:
        return ""
    if name == "cap_walm":
        keys = sql(cluster, f"select count(*) from revetl.captured_changes where sync_id = {sync_id(cluster, name)}")
        sql(cluster, f"select revetl.drop_sync('{name}')")
        wait_for(lambda: not slot_exists(cluster), timeout=120, what="the scheduler to drop the WAL slot")
        return f"{keys} keys queued from the WAL (each once per pass)"
    runs = sql(cluster, "select count(*) || ' runs (' || coalesce(string_agg(distinct status, ', '), '') || '), ' "
                        "|| coalesce(sum(rows_delivered), 0) || ' rows delivered' "
                        f"from revetl.sync_runs where sync_name = '{name}'")
    sql(cluster, f"select revetl.drop_sync('{name}'); delete from revetl.runs where sync_name = '{name}'")
    if variant.startswith("wal"):
        wait_for(lambda: not slot_exists(cluster), timeout=120, what="the scheduler to drop the WAL slot")
    return runs


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=100_000)
    ap.add_argument("--seconds", type=int, default=10)
    ap.add_argument("--clients", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--durable", action="store_true", help="fsync = on (the default clusters run with fsync = off)")
    ap.add_argument("--variants", default=",".join(VARIANTS),
                    help="a comma-separated subset of: " + ", ".join(VARIANTS))
    ap.add_argument("--breakdown", action="store_true",
                    help="also print each round's server CPU per update by process role")
    args = ap.parse_args()
    variants = [v.strip() for v in args.variants.split(",")]
    unknown = [v for v in variants if v not in VARIANTS]
    if unknown or "logical" not in variants:
        ap.error(f"--variants: unknown {unknown}" if unknown else "--variants must include logical, the baseline")

    banner("wal_overhead: single-row UPDATE throughput, no sync (replica, logical) vs live ON CHANGE (WAL, triggers)")
    started = time.monotonic()
    mock = MockWebhook()
    cluster = start_cluster(extra_conf="autovacuum = off\nmax_replication_slots = 4\nwal_level = replica"
                                       + ("\nfsync = on" if args.durable else ""),
                            name="revetl-bench-wal")
    results = {v: [] for v in variants}
    cpu = {v: [] for v in variants}
    notes = {v: [] for v in variants}
    command = ""
    load0 = os.getloadavg()[0]
    try:
        sql(cluster, f"create server hook foreign data wrapper revetl options (type 'webhook', url '{mock.url}/t')")
        sql(cluster, f"""
            create table t (id bigint primary key, email text, score int, payload text);
            insert into t select g, 'user' || g || '@example.com', (g * 7919) % 1000, md5(g::text)
              from generate_series(1::bigint, {args.rows}) g;
            vacuum (analyze, freeze) t;
        """)
        script = os.path.join(cluster.dir, "update.sql")
        with open(script, "w") as f:
            f.write("\\set id random(1, :n)\nUPDATE t SET score = score + 1 WHERE id = :id;\n")
        log(f"table t: {args.rows:,} rows; pgbench -c {args.clients} -j {args.clients} -T {args.seconds} "
            f"-M prepared, no rate limit, {args.rounds} rounds; fsync = {'on' if args.durable else 'off'}")
        for rnd in range(args.rounds):
            for v in variants:
                set_wal_level(cluster, "replica" if v == "replica" else "logical")
                sql(cluster, "vacuum t; vacuum revetl.captured_changes; checkpoint")
                attach(cluster, v)
                pm = cluster.postmaster_pid()
                wait_reaped(pm)
                before = cluster_cpu(pm)
                mock_before = process_cpu(mock.proc.pid)
                tps, xacts, command = pgbench(cluster, script, args.rows, args.seconds, args.clients)
                # pgbench's backends have exited by now; a live sync's run has not.
                during_load = cluster_cpu(pm)
                mock_during_load = process_cpu(mock.proc.pid)
                roles_during_load = {pid: role(pid) for pid in during_load[0]}
                if v in LIVE:
                    # What is still to decode, plan and deliver is this variant's cost.
                    wait_for(lambda: drained(cluster, LIVE[v], xacts), timeout=600, interval=0.2,
                             what=f"{v}: every captured key to be planned")
                wait_reaped(pm)
                after = cluster_cpu(pm)
                cpu_us = cpu_between(before, after) / xacts * 1e6
                if args.breakdown:
                    roles = cpu_by_role(before, during_load, roles_during_load, mock_during_load - mock_before)
                    roles["draining after the load"] = cpu_between(during_load, after)
                    log("    " + ", ".join(f"{r} {c / xacts * 1e6:.1f}" for r, c in
                                          sorted(roles.items(), key=lambda rc: -rc[1]) if c > 0.0005)
                        + " (us per update)")
                note = detach(cluster, v)
                results[v].append(tps)
                cpu[v].append(cpu_us)
                notes[v].append(note)
                log(f"  round {rnd + 1} {v:17s} {tps:9.1f} tps, {cpu_us:6.1f} us server CPU per update "
                    f"({xacts:,} updates{'; ' + note if note else ''})")
    finally:
        cluster.destroy()
        mock.stop()

    mean = {v: sum(results[v]) / len(results[v]) for v in variants}
    cmean = {v: sum(cpu[v]) / len(cpu[v]) for v in variants}
    log(f"\npgbench command (one run): {command}")
    log(f"load average: {load0:.2f} at start, {os.getloadavg()[0]:.2f} at end; "
        f"fsync = {'on' if args.durable else 'off'}")
    log("\n| variant | TPS (mean) | TPS per round | vs logical, no sync | vs replica, no sync "
        "| server CPU per update (us) | CPU vs logical |")
    log("|---|---:|---|---:|---:|---:|---:|")

    def pct(v, base):
        if v == base:
            return "-"
        d = (1 - mean[v] / mean[base]) * 100
        return f"{d:.1f}% fewer" if d >= 0 else f"{-d:.1f}% more"

    def cpu_vs(v):
        return "-" if v == "logical" else f"{(cmean[v] / cmean['logical'] - 1) * 100:+.1f}%"

    for v in variants:
        log(f"| {v} | {mean[v]:,.0f} | {', '.join(f'{x:,.0f}' for x in results[v])} | {pct(v, 'logical')} | "
            f"{pct(v, 'replica') if 'replica' in mean else '-'} | {cmean[v]:.1f} | "
            f"{cpu_vs(v)} |")
    if "replica" in mean:
        log(f"\nlogical over replica: {pct('logical', 'replica')} TPS, "
            f"{(cmean['logical'] / cmean['replica'] - 1) * 100:+.1f}% CPU per update")
    for v, limit, what in (("wal on change", 10, "WAL-captured ON CHANGE within 10% of logical"),
                           ("trigger on change", 30, "trigger-captured ON CHANGE at most 30% fewer")):
        if v in mean:
            d = (1 - mean[v] / mean["logical"]) * 100
            log(f"target: {what}: {d:.1f}% -> {'met' if d <= limit else 'NOT met'}")
    log(f"total time: {time.monotonic() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
