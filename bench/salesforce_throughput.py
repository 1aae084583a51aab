#!/usr/bin/env python3
"""Salesforce delivery paths: sObject Collections against Bulk API 2.0, beside the webhook.

Issue 13 asks for the records per second reached through each of the Salesforce
connector's two write paths on a 100k-row model, against the mock, beside the
webhook figure measured in the same invocation. For each repetition (default 3),
in alternating order, three first runs of the same model (N rows, default
100,000, `m(id bigint primary key, email text, score int, payload text)`) are made
with revetl.run_sync(..., wait => true):

  collections  type 'salesforce', bulk_threshold '0': upserts by external id
               through sObject Collections, 200 records a call (the API's cap),
               max_in_flight 4
  bulk         type 'salesforce', bulk_threshold '1': one Bulk API 2.0 ingest
               job per 150 MB of CSV (one job here): create, upload, close, then
               polls every job_poll_interval (100ms) until the mock has processed
               it, then the successful and failed results are read and mapped
               back to keys
  webhook      type 'webhook', batch_size 200, max_in_flight 4, to the webhook
               mock: the same record count over the same kind of local Python
               HTTP server, so the ratio shows what each Salesforce path costs
               beside revetl's plainest one

Both mocks are test/connectors/<type>/mock.py (Python, single process), which
bound the absolute figures: they parse every body and keep every record. The
Salesforce mock runs here without its Postman contract check (the tests do that;
checking every one of 500 bodies would time the validator). Each run is checked:
succeeded, N rows delivered, and N records at the mock.

Reported per path: the run's wall time (requested to finished, as run_sync waits),
the delivery phase (finished_at - planned_at), records/s over each, requests made,
and the median over the repetitions; then each path's ratio to the webhook.

Run (PostgreSQL refuses to run as root):
  runuser -u postgres -- env PYTHONDONTWRITEBYTECODE=1 python3 bench/salesforce_throughput.py
  (--rows N, --reps N)
"""

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import banner, create_model, log, median, sql, start_cluster  # noqa: E402
from pgcluster import MockSalesforce, MockWebhook  # noqa: E402

PATHS = ("collections", "bulk", "webhook")


def create_destinations(cluster, sf, hook):
    sql(cluster, f"""
        create server sf_collections foreign data wrapper revetl
          options (type 'salesforce', url 'https://login.salesforce.com', bulk_threshold '0',
                   max_in_flight '4');
        create server sf_bulk foreign data wrapper revetl
          options (type 'salesforce', url 'https://login.salesforce.com', bulk_threshold '1',
                   job_poll_interval '100ms');
        create server hook foreign data wrapper revetl
          options (type 'webhook', url '{hook.url}/in', batch_size '200', max_in_flight '4');
    """)
    for srv in ("sf_collections", "sf_bulk"):
        sql(cluster, f"""
            create user mapping for postgres server {srv} options (
              oauth_token_url '{sf.token_url}', client_id '{MockSalesforce.CLIENT_ID}',
              client_secret '{MockSalesforce.CLIENT_SECRET}', refresh_token '{MockSalesforce.REFRESH_TOKEN}');
        """)


def create_sync(cluster, path, name):
    if path == "webhook":
        sql(cluster, f"""select * from revetl.execute($$
            CREATE SYNC {name} FROM public.m TO hook KEY (id) MODE UPSERT
              MAP (email AS email, score AS score, payload AS payload)$$)""")
    else:
        sql(cluster, f"""select * from revetl.execute($$
            CREATE SYNC {name} FROM public.m TO sf_{path} OBJECT "Lead" KEY (id) MATCH ON "Customer_Id__c"
              MODE UPSERT
              MAP (id::text AS "Customer_Id__c", email AS "Email", score AS "Score__c",
                   payload AS "Description", 'Bench' AS "LastName", 'Bench Co' AS "Company")$$)""")


def first_run(cluster, name, rows, sf, hook, path):
    t0 = time.monotonic()
    run_id = int(sql(cluster, f"select revetl.run_sync('{name}', wait => true)", timeout=3600))
    wall = time.monotonic() - t0
    status, delivered, requests, delivery_s, error = sql(cluster, f"""
        select status, rows_delivered, requests, extract(epoch from delivery_duration), coalesce(error, '')
          from revetl.sync_runs where id = {run_id}""").split("|", 4)
    at_mock = len(hook.records()) if path == "webhook" else len(sf.records("Lead"))
    if status != "succeeded" or int(delivered) != rows or at_mock != rows:
        raise RuntimeError(f"{path} run {run_id}: {status}, {delivered} delivered, {at_mock} at the mock "
                           f"(expected {rows}): {error}")
    return {"wall": wall, "delivery": float(delivery_s), "requests": int(requests)}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rows", type=int, default=100_000)
    ap.add_argument("--reps", type=int, default=3)
    args = ap.parse_args()
    banner("Salesforce: sObject Collections against Bulk API 2.0, beside the webhook")
    cluster = start_cluster(name="revetl-bench-salesforce")
    sf = MockSalesforce(postman=None)
    hook = MockWebhook()
    results = {p: [] for p in PATHS}
    try:
        log(f"model: {args.rows:,} rows, created in {create_model(cluster, args.rows):.1f} s")
        create_destinations(cluster, sf, hook)
        for rep in range(args.reps):
            order = PATHS if rep % 2 == 0 else tuple(reversed(PATHS))
            for path in order:
                sf.reset()
                hook.reset()
                name = f"{path}_{rep}"
                create_sync(cluster, path, name)
                r = first_run(cluster, name, args.rows, sf, hook, path)
                results[path].append(r)
                log(f"rep {rep + 1} {path:<12} wall {r['wall']:6.2f} s ({args.rows / r['wall']:9,.0f} rec/s)  "
                    f"delivery {r['delivery']:6.2f} s ({args.rows / r['delivery']:9,.0f} rec/s)  "
                    f"{r['requests']:5} requests")
                sql(cluster, f"select revetl.drop_sync('{name}')")
        log("")
        log(f"medians over {args.reps} repetitions, {args.rows:,} rows, first runs:")
        log(f"{'path':<12} {'wall s':>8} {'rec/s (wall)':>14} {'delivery s':>11} {'rec/s (delivery)':>17} "
            f"{'requests':>9} {'wall vs webhook':>16}")
        hook_wall = median([r["wall"] for r in results["webhook"]])
        for path in PATHS:
            wall = median([r["wall"] for r in results[path]])
            delivery = median([r["delivery"] for r in results[path]])
            requests = median([r["requests"] for r in results[path]])
            log(f"{path:<12} {wall:8.2f} {args.rows / wall:14,.0f} {delivery:11.2f} {args.rows / delivery:17,.0f} "
                f"{requests:9,.0f} {hook_wall / wall:15.2f}x")
    finally:
        sf.stop()
        hook.stop()
        cluster.destroy()


if __name__ == "__main__":
    main()
