"""revetl demo: a model in PostgreSQL kept in step with a webhook.

Started by scripts/demo.sh. Everything it creates is thrown away at the end.
"""

import json
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "test", "lib"))
from pgcluster import Cluster, MockWebhook  # noqa: E402


def show(title):
    print(f"\n=== {title}")


def run(cluster, sql):
    for line in sql.strip().splitlines():
        print(f"  sql> {line}")
    out, err, _ = cluster.psql(sql)
    for line in (out.strip().splitlines() + [l for l in err.strip().splitlines() if l]):
        print(f"       {line}")
    return out.strip()


def show_arrivals(mock, since):
    requests = mock.requests()[since:]
    if not requests:
        print("  (nothing arrived: there was nothing to send)")
    for r in requests:
        body = r["body"]
        print(f"  {r['method']} {r['path']}  run {body['run_id']}, batch {body['batch']}, "
              f"{len(body['records'])} records -> HTTP {r['status']}")
        for rec in body["records"]:
            data = json.dumps(rec.get("data")) if "data" in rec else ""
            print(f"     {rec['op']:6} {json.dumps(rec['key'])} {data}")
    return len(mock.requests())


def main():
    show("starting a throwaway cluster with shared_preload_libraries = 'revetl', and a mock webhook")
    cluster = Cluster(name="revetl-demo").start()
    mock = MockWebhook()
    print(f"  cluster in {cluster.dir}, mock webhook at {mock.url}")
    seen = 0
    try:
        show("install the extension and declare the destination (a DBA's job)")
        run(cluster, f"""
CREATE EXTENSION revetl;
CREATE SERVER crm_hook FOREIGN DATA WRAPPER revetl OPTIONS (type 'webhook', url '{mock.url}/events');
CREATE USER MAPPING FOR CURRENT_USER SERVER crm_hook OPTIONS (token 'demo-secret');
""")
        show("a model, as dbt would build it: customer health scores")
        run(cluster, """
CREATE TABLE customer_health (customer_id int PRIMARY KEY, email text, plan text, health_score numeric, churn_risk text);
INSERT INTO customer_health VALUES
  (1, 'Ada@Example.com', 'enterprise', 0.92, 'low'),
  (2, 'grace@example.com', 'pro', 0.41, 'high'),
  (3, 'alan@example.com', 'starter', 0.67, 'medium');
""")
        show("the sync (an analytics engineer's job)")
        run(cluster, """
SELECT revetl.create_sync(name => 'health_to_crm', model => 'customer_health', destination => 'crm_hook',
                          key => ARRAY['customer_id'], mode => 'mirror',
                          map => '{"email": "lower(email)", "plan": "plan", "score": "round(health_score * 100)", "at_risk": "churn_risk = ''high''"}');
SELECT action, key, payload FROM revetl.preview_sync('health_to_crm', 5);
""")
        show("first run: every row is new")
        run(cluster, "SELECT revetl.run_sync('health_to_crm', wait => true) AS run_id;")
        seen = show_arrivals(mock, seen)

        show("second run with no change: nothing is sent")
        run(cluster, "SELECT revetl.run_sync('health_to_crm', wait => true) AS run_id;")
        seen = show_arrivals(mock, seen)

        show("the model changes: one score moves, one customer leaves, one arrives")
        run(cluster, """
UPDATE customer_health SET health_score = 0.15, churn_risk = 'high' WHERE customer_id = 3;
DELETE FROM customer_health WHERE customer_id = 1;
INSERT INTO customer_health VALUES (4, 'linus@example.com', 'pro', 0.88, 'low');
SELECT revetl.run_sync('health_to_crm', wait => true) AS run_id;
""")
        seen = show_arrivals(mock, seen)

        show("every run is recorded in the database")
        run(cluster, """
SELECT id, status, rows_added AS added, rows_changed AS changed, rows_removed AS removed,
       rows_delivered AS delivered, requests FROM revetl.sync_runs ORDER BY id;
""")
        show("what the destination holds now")
        for k, data in sorted(mock.records().items()):
            print(f"  {k} {json.dumps(data)}")
        print("\nThe bearer token went in the Authorization header: "
              f"{mock.requests()[0]['headers'].get('authorization', '')[:7]}... (never stored or logged by revetl)")
    finally:
        mock.stop()
        cluster.destroy()
    print("\ndemo finished; the cluster and the mock were removed.")


if __name__ == "__main__":
    main()
