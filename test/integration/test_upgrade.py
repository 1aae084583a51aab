"""ALTER EXTENSION revetl UPDATE from every released version.

For each release in test/upgrade/releases.txt, scripts/test.sh has built it
from the repository's history into a private copy of PostgreSQL
(scripts/build-release.sh) and says where in REVETL_RELEASES_DIR. The test
creates a cluster with that release's programs, fills a database with syncs,
servers, user mappings, shadow state and history, restarts the same data
directory with the build under test, and checks that:

  - the new library leaves the old catalog alone until the update (the worker
    waits and says why; functions refuse with a hint);
  - after ALTER EXTENSION revetl UPDATE nothing is sent again, a changed row
    is sent alone, change capture still works, history is kept;
  - an updated database and a fresh one have the same schema.
"""

import json
import os
import re
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from pgcluster import Cluster, MockWebhook, pg_bindir, wait_for  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
RELEASES_FILE = os.path.join(HERE, "..", "upgrade", "releases.txt")


def releases():
    with open(RELEASES_FILE) as f:
        return [line.split()[0] for line in f if line.strip() and not line.startswith("#")]


def release_bindir(version):
    root = os.environ.get("REVETL_RELEASES_DIR")
    if not root:
        raise AssertionError("REVETL_RELEASES_DIR is not set: scripts/test.sh builds the released versions "
                             "(scripts/build-release.sh) and sets it")
    # A release is built only for the PostgreSQL majors it was released for
    # (third column of releases.txt); on another major there is nothing to
    # upgrade from, and scripts/test.sh says why in this file.
    unsupported = os.path.join(root, version, "unsupported")
    if os.path.exists(unsupported):
        with open(unsupported) as f:
            raise unittest.SkipTest(f.read().strip())
    with open(os.path.join(root, version, "bindir")) as f:
        return f.read().strip()


def current_version():
    with open(os.path.join(HERE, "..", "..", "revetl.control")) as f:
        return re.search(r"default_version = '([^']+)'", f.read()).group(1)


def normalized_schema(cluster, db):
    """pg_dump --binary-upgrade of the extension's objects, without what
    differs between two databases with the same schema (OIDs, dropped
    columns kept for binary compatibility)."""
    out = subprocess.run([os.path.join(cluster.bindir, "pg_dump"), "--binary-upgrade", "--schema-only",
                          "-h", cluster.dir, "-p", str(cluster.port), "-U", "postgres", "-d", db],
                         check=True, capture_output=True, text=True).stdout
    lines = []
    skip_block = False
    for line in out.splitlines():
        if line.startswith("-- For binary upgrade, recreate dropped column"):
            skip_block = True
            continue
        if skip_block:
            if line.strip() == "":
                skip_block = False
            continue
        if (not line.strip() or line.startswith("--") or "binary_upgrade_set_next" in line
                or "pg.dropped" in line):
            continue
        if line.startswith(("\\restrict", "\\unrestrict")):
            continue
        line = re.sub(r"'\{[0-9,]*\}'", "'{oids}'", line)
        line = re.sub(r"relfrozenxid = '\d+', relminmxid = '\d+'", "relfrozenxid = x, relminmxid = x", line)
        line = re.sub(r"WHERE oid = '\d+'", "WHERE oid = x", line)
        lines.append(line)
    return lines


class UpgradeTest(unittest.TestCase):
    def test_update_from_every_release_keeps_syncs_state_and_history(self):
        for version in releases():
            with self.subTest(release=version):
                self.check_update_from(version)

    def check_update_from(self, version):
        old_bin = release_bindir(version)
        cluster = Cluster(name=f"revetl-upgrade-{version}", bindir=old_bin,
                          extra_conf="revetl.allowed_hosts = '127.0.0.1'\n")
        mock = MockWebhook(require_token="upgrade-token")
        try:
            self.fill_and_update(cluster, mock, version)
        finally:
            mock.stop()
            cluster.destroy()

    def fill_and_update(self, cluster, mock, version):
        cluster.start()
        cluster.sql("create database app")
        cluster.sql("create database schema_updated")
        cluster.sql("create extension revetl", db="schema_updated")
        cluster.sql(f"""
            create extension revetl;
            select extversion from pg_extension where extname = 'revetl';
            create table leads (id int primary key, email text, score int);
            insert into leads select g, 'u' || g || '@example.com', g from generate_series(1, 200) g;
            create table events (id int primary key, kind text);
            create server hooks foreign data wrapper revetl options (type 'webhook', url '{mock.url}/in');
            create user mapping for postgres server hooks options (token 'upgrade-token');
            select * from revetl.execute($$
              CREATE SYNC leads_out FROM leads TO hooks KEY (id) MODE MIRROR
                MAP (lower(email) AS email, score AS score);
              CREATE SYNC events_out FROM events TO hooks KEY (id) SCHEDULE ON CHANGE;
            $$);
        """, db="app")
        self.assertEqual(cluster.sql("select extversion from pg_extension where extname = 'revetl'", db="app"),
                         version)
        cluster.wait_for_worker(db="app")
        # A run that delivers everything, one that refuses a row, and
        # captured changes delivered ON CHANGE.
        cluster.sql("select revetl.run_sync('leads_out', wait => true)", db="app")
        mock.configure(reject=[{"field": "email", "equals": "u7@example.com", "reason": "bad address"}])
        cluster.sql("update leads set score = score + 1000 where id in (7, 8)", db="app")
        cluster.psql("select revetl.run_sync('leads_out', wait => true)", db="app", check=False)
        mock.configure(reject=[])
        cluster.sql("insert into events select g, 'k' from generate_series(1, 20) g", db="app")
        wait_for(lambda: cluster.sql("select count(*) from revetl.sync_runs r join revetl.syncs s "
                                     "on s.id = r.sync_id where s.name = 'events_out' "
                                     "and r.status = 'succeeded'", db="app") != "0",
                 what="the ON CHANGE run under the old release")
        wait_for(lambda: cluster.sql("select count(*) from revetl.sync_runs where status in "
                                     "('queued', 'running')", db="app") == "0",
                 what="runs of the old release to end")
        before = {
            "runs": cluster.rows("select id, sync_name, status, rows_added, rows_delivered, rows_rejected "
                                 "from revetl.sync_runs order by id", db="app"),
            "rejected": cluster.rows("select run_id, key::text, reason from revetl.rejected_rows order by id",
                                     db="app"),
            "syncs": cluster.rows("select id, name, owner::text, mode, map::text, schedule_kind "
                                  "from revetl.syncs order by id", db="app"),
            "shadow": cluster.rows("select s.name, (xpath('/row/c/text()', query_to_xml("
                                   "format('select count(*) as c from revetl.%I', s.shadow_table), "
                                   "false, true, '')))[1]::text from revetl.syncs s order by s.id", db="app"),
        }
        self.assertEqual(before["shadow"], [["leads_out", "200"], ["events_out", "20"]])
        self.assertEqual(len(before["rejected"]), 1)

        # The build under test, on the same data directory.
        cluster.stop()
        cluster.bindir = pg_bindir()
        cluster.start()
        new = current_version()
        wait_for(lambda: f"is waiting: the extension is at version {version} and the library at version {new}"
                 in cluster.log_text(), what="the worker to wait for the update")
        _, err, rc = cluster.psql("select revetl.run_sync('leads_out')", db="app", check=False)
        self.assertNotEqual(rc, 0)
        self.assertIn(f'extension "revetl" is at version {version} but its library is version {new}', err)
        self.assertIn("ALTER EXTENSION revetl UPDATE", err)

        cluster.sql("alter extension revetl update", db="app")
        cluster.sql("alter extension revetl update", db="schema_updated")
        self.assertEqual(cluster.sql("select extversion from pg_extension where extname = 'revetl'", db="app"),
                         new)

        # Kept: definitions, shadow state, history, servers and mappings.
        self.assertEqual(cluster.rows("select id, name, owner::text, mode, map::text, schedule_kind "
                                      "from revetl.syncs order by id", db="app"), before["syncs"])
        self.assertEqual(cluster.rows("select s.name, (xpath('/row/c/text()', query_to_xml("
                                      "format('select count(*) as c from revetl.%I', s.shadow_table), "
                                      "false, true, '')))[1]::text from revetl.syncs s order by s.id", db="app"),
                         before["shadow"])
        self.assertEqual(cluster.rows("select id, sync_name, status, rows_added, rows_delivered, rows_rejected "
                                      "from revetl.sync_runs order by id", db="app"), before["runs"])
        self.assertEqual(cluster.rows("select run_id, key::text, reason from revetl.rejected_rows order by id",
                                      db="app"), before["rejected"])
        self.assertEqual(cluster.sql("select count(*) from pg_user_mappings where srvname = 'hooks'", db="app"),
                         "1")

        # Capture functions: no longer executable by PUBLIC, and remade by
        # the updated scheduler in C (src/pg/capture.cpp), which checks their
        # table and trigger.
        capture = ("select p.proacl is not null and not exists (select 1 from aclexplode(p.proacl) a "
                   "where a.grantee = 0), p.prolang = (select oid from pg_language where lanname = 'c') "
                   "from pg_proc p "
                   "where p.pronamespace = 'revetl'::regnamespace and p.proname like 'capture%'")
        wait_for(lambda: cluster.rows(capture, db="app") == [["t", "t"]],
                 what="the capture function to be revoked from PUBLIC and remade")

        # Nothing is sent again but the row the old release could not
        # deliver; a changed row goes alone; capture still works.
        mock.clear_requests()
        run = cluster.sql("select revetl.run_sync('leads_out', wait => true)", db="app")
        sent = [r["key"]["id"] for q in mock.requests() for r in (q["body"] or {}).get("records", [])]
        self.assertEqual(sent, [7], f"run {run} after the update sent {sent}")
        mock.clear_requests()
        cluster.sql("update leads set email = 'CHANGED@example.com' where id = 42", db="app")
        cluster.sql("select revetl.run_sync('leads_out', wait => true)", db="app")
        sent = [(r["key"]["id"], r.get("data")) for q in mock.requests()
                for r in (q["body"] or {}).get("records", [])]
        self.assertEqual(sent, [(42, {"email": "changed@example.com", "score": 42})])
        mock.clear_requests()
        cluster.sql("insert into events values (21, 'new')", db="app")
        wait_for(lambda: [r["key"]["id"] for q in mock.requests()
                          for r in (q["body"] or {}).get("records", [])] == [21],
                 what="the ON CHANGE sync to send the new row after the update")

        # An old sync's shadow table has the columns a new sync's gets once
        # it has run (its typed key, key_1, is added by the first run: the
        # run after the update above, which sent only the undelivered row),
        # and a removal now leaves a tombstone where a late request may land.
        cluster.sql("select * from revetl.execute('CREATE SYNC fresh_out FROM leads TO hooks KEY (id) "
                    "MODE MIRROR MAP (lower(email) AS email)')", db="app")
        cluster.sql("select revetl.run_sync('fresh_out', wait => true)", db="app")
        columns = ("select string_agg(a.attname || ' ' || pg_catalog.format_type(a.atttypid, a.atttypmod) "
                   "|| ' ' || a.attnotnull || ' ' || coalesce(pg_get_expr(d.adbin, d.adrelid), ''), ', ' "
                   "order by a.attnum) from pg_attribute a left join pg_attrdef d on d.adrelid = a.attrelid "
                   "and d.adnum = a.attnum where a.attnum > 0 and not a.attisdropped and a.attrelid = "
                   "(select ('revetl.' || quote_ident(shadow_table))::regclass from revetl.syncs "
                   "where name = '{}')")
        self.assertEqual(cluster.sql(columns.format("leads_out"), db="app"),
                         cluster.sql(columns.format("fresh_out"), db="app"))
        self.assertIn("removed boolean true false", cluster.sql(columns.format("leads_out"), db="app"))
        self.assertIn("key_1 integer false revetl.key_field(key, 'id'::text, NULL::integer)",
                      cluster.sql(columns.format("leads_out"), db="app"))
        # The plan joins on it and finds only the rows that really changed.
        mock.clear_requests()
        cluster.sql("update leads set score = -1 where id in (3, 150)", db="app")
        cluster.sql("select revetl.run_sync('leads_out', wait => true)", db="app")
        sent = sorted(r["key"]["id"] for q in mock.requests() for r in (q["body"] or {}).get("records", []))
        self.assertEqual(sent, [3, 150])

        # An updated schema is the fresh one.
        cluster.sql("create database schema_fresh")
        cluster.sql("create extension revetl", db="schema_fresh")
        updated = normalized_schema(cluster, "schema_updated")
        fresh = normalized_schema(cluster, "schema_fresh")
        if updated != fresh:
            import difflib
            diff = "\n".join(difflib.unified_diff(fresh, updated, "fresh", "updated", lineterm="", n=2))
            self.fail(f"the schema after ALTER EXTENSION revetl UPDATE from {version} differs from a fresh "
                      f"install:\n{diff}")
        config = "select extconfig::regclass[]::text, extcondition from pg_extension where extname = 'revetl'"
        self.assertEqual(cluster.sql(config, db="schema_updated"), cluster.sql(config, db="schema_fresh"))


if __name__ == "__main__":
    unittest.main()
