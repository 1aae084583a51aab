"""The full diff over typed shadow keys (issue 16): a sync's shadow table holds
its keys in the model's key types (key_1, key_2, ... generated from the key's
text) and the plan joins the model's key columns to them. Every key type the
plan accepts must find the same adds, changes and removals as the key's text
did: text under collations (bytewise: a case-insensitive collation must not
merge two keys), numeric, uuid, timestamptz (whatever the session's
TimeZone), composite keys, NULL and duplicate keys, and a model whose key
column changes type.

One cluster and one mock for the module; each test makes its own table,
server and sync.
"""

import json
import os
import sys
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from pgcluster import Cluster, MockWebhook, wait_for  # noqa: E402

cluster = None
mock = None


def setUpModule():
    global cluster, mock
    cluster = Cluster(name="revetl-typed-keys").start()
    mock = MockWebhook()
    cluster.sql("create extension revetl")
    cluster.wait_for_worker()


def tearDownModule():
    if mock:
        mock.stop()
    if cluster:
        cluster.destroy()


class TypedKeysTest(unittest.TestCase):
    counter = 0

    def setUp(self):
        mock.reset()
        TypedKeysTest.counter += 1
        self.n = TypedKeysTest.counter
        self.table = f"t_{self.n}"
        self.server = f"hooks_{self.n}"
        self.sync = f"sync_{self.n}"
        cluster.sql(f"create server {self.server} foreign data wrapper revetl "
                    f"options (type 'webhook', url '{mock.url}/events/{self.n}')")

    def create_sync(self, keys, model=None, mode="mirror"):
        model = model or f"public.{self.table}"
        arr = ", ".join(f"'{k}'" for k in keys)
        cluster.sql(f"select revetl.create_sync('{self.sync}', $m${model}$m$, '{self.server}', array[{arr}], "
                    f"mode => '{mode}')")

    def run_sync(self, expect_status="succeeded"):
        out = cluster.sql(f"select revetl.run_sync('{self.sync}', wait => true)")
        run_id = int(out.strip())
        cols = ["status", "rows_added", "rows_changed", "rows_removed", "rows_invalid", "plan_kind"]
        row = dict(zip(cols, cluster.rows(f"select {', '.join(cols)} from revetl.sync_runs where id = {run_id}")[0]))
        self.assertEqual(row["status"], expect_status, row)
        return run_id, (int(row["rows_added"]), int(row["rows_changed"]), int(row["rows_removed"]),
                        int(row["rows_invalid"]))

    def shadow(self):
        return "revetl." + cluster.sql(f"select shadow_table from revetl.syncs where name = '{self.sync}'").strip()

    def shadow_key_types(self):
        """The shadow table's typed key columns: [(name, type, collation)]."""
        return [tuple(r) for r in cluster.rows(
            f"select a.attname, format_type(a.atttypid, a.atttypmod), coalesce(c.collname, '') "
            f"from pg_attribute a left join pg_collation c on c.oid = a.attcollation and a.attcollation <> 0 "
            f"where a.attrelid = '{self.shadow()}'::regclass and a.attname ~ '^key_[0-9]+$' "
            f"and not a.attisdropped order by a.attnum")]

    def sent(self):
        return [rec for req in mock.requests() for rec in req["body"]["records"]]

    def check_lifecycle(self, keys, change_sql, delete_sql, changed_key, removed_key, rows):
        """First run adds every row; a second run sends nothing; one update is
        one change; one delete is one removal; the destination ends equal to
        the model."""
        self.create_sync(keys)
        _, counts = self.run_sync()
        self.assertEqual(counts, (rows, 0, 0, 0))
        self.assertEqual(len(mock.records()), rows)
        mock.clear_requests()
        _, counts = self.run_sync()
        self.assertEqual(counts, (0, 0, 0, 0))
        self.assertEqual(mock.requests(), [])
        cluster.sql(change_sql)
        _, counts = self.run_sync()
        self.assertEqual(counts, (0, 1, 0, 0))
        self.assertEqual([r["key"] for r in self.sent()], [changed_key])
        mock.clear_requests()
        cluster.sql(delete_sql)
        _, counts = self.run_sync()
        self.assertEqual(counts, (0, 0, 1, 0))
        self.assertEqual([(r["op"], r["key"]) for r in self.sent()], [("delete", removed_key)])
        self.assertEqual(len(mock.records()), rows - 1)

    # -----------------------------------------------------------------------
    def test_text_keys_are_compared_bytewise_whatever_the_collation(self):
        # A case-insensitive ICU collation would call 'a' and 'A' equal: as
        # keys they are two records, as they were when keys were text.
        cluster.sql(f"""
            create collation if not exists ci (provider = icu, locale = 'und-u-ks-level2', deterministic = false);
            create table {self.table} (k text collate ci, v int);
            insert into {self.table} values ('a', 1), ('A', 2), ('b', 3), ('é', 4), ('e', 5);
        """)
        self.check_lifecycle(["k"], f"update {self.table} set v = 20 where k = 'A' collate \"C\"",
                             f"delete from {self.table} where k = 'é' collate \"C\"", {"k": "A"}, {"k": "é"}, 5)
        self.assertEqual(self.shadow_key_types(), [("key_1", "text", "C")])
        self.assertEqual(sorted(json.loads(k)["k"] for k in mock.records()), ["A", "a", "b", "e"])

    def test_text_key_under_a_linguistic_collation_with_a_unique_index(self):
        cluster.sql(f"""
            create table {self.table} (k varchar(20) collate "en-x-icu" primary key, v int);
            insert into {self.table} values ('b', 1), ('B', 2), ('a-b', 3), ('ab', 4);
        """)
        self.check_lifecycle(["k"], f"update {self.table} set v = 9 where k = 'ab'",
                             f"delete from {self.table} where k = 'B'", {"k": "ab"}, {"k": "B"}, 4)
        self.assertEqual(self.shadow_key_types(), [("key_1", "character varying(20)", "C")])

    def test_numeric_keys(self):
        cluster.sql(f"""
            create table {self.table} (k numeric primary key, v int);
            insert into {self.table} values (1.5, 1), (-2, 2), (12345678901234567890.123456789, 3), (0, 4);
        """)
        self.check_lifecycle(["k"], f"update {self.table} set v = 7 where k = 12345678901234567890.123456789",
                             f"delete from {self.table} where k = -2",
                             {"k": 12345678901234567890.123456789}, {"k": -2}, 4)
        self.assertEqual(self.shadow_key_types(), [("key_1", "numeric", "")])

    def test_uuid_keys(self):
        cluster.sql(f"""
            create table {self.table} (k uuid primary key, v int);
            insert into {self.table} values ('00000000-0000-0000-0000-000000000001', 1),
              ('ffffffff-ffff-ffff-ffff-ffffffffffff', 2), ('8f14e45f-ceea-467f-a0e6-6d1c0a7f8b3a', 3);
        """)
        self.check_lifecycle(["k"],
                             f"update {self.table} set v = 5 where k = '8f14e45f-ceea-467f-a0e6-6d1c0a7f8b3a'",
                             f"delete from {self.table} where k = '00000000-0000-0000-0000-000000000001'",
                             {"k": "8f14e45f-ceea-467f-a0e6-6d1c0a7f8b3a"},
                             {"k": "00000000-0000-0000-0000-000000000001"}, 3)
        self.assertEqual(self.shadow_key_types(), [("key_1", "uuid", "")])

    def test_timestamptz_keys_whatever_the_time_zone(self):
        cluster.sql(f"""
            create table {self.table} (k timestamptz primary key, v int);
            insert into {self.table} values ('2024-03-31 01:30:00+00', 1), ('2024-10-27 00:59:59.123456+00', 2),
              ('infinity', 3), ('1999-12-31 23:00:00-05', 4);
        """)
        self.create_sync(["k"])
        _, counts = self.run_sync()
        self.assertEqual(counts, (4, 0, 0, 0))
        # The model's session and the database default disagree on TimeZone
        # from now on: the same instants must still be the same keys.
        cluster.sql("alter database postgres set timezone = 'Pacific/Chatham'")
        try:
            mock.clear_requests()
            _, counts = self.run_sync()
            self.assertEqual(counts, (0, 0, 0, 0))
            cluster.sql(f"update {self.table} set v = 8 where k = 'infinity'")
            _, counts = self.run_sync()
            self.assertEqual(counts, (0, 1, 0, 0))
            self.assertEqual([r["key"] for r in self.sent()], [{"k": "infinity"}])
        finally:
            cluster.sql("alter database postgres reset timezone")
        self.assertEqual(self.shadow_key_types(), [("key_1", "timestamp with time zone", "")])

    def test_composite_keys(self):
        cluster.sql(f"""
            create table {self.table} (region text, id int, v int, primary key (region, id));
            insert into {self.table} values ('eu', 1, 1), ('us', 1, 2), ('eu', 2, 3), ('EU', 1, 4);
        """)
        self.check_lifecycle(["region", "id"], f"update {self.table} set v = 9 where region = 'us' and id = 1",
                             f"delete from {self.table} where region = 'EU'", {"region": "us", "id": 1},
                             {"region": "EU", "id": 1}, 4)
        self.assertEqual(self.shadow_key_types(), [("key_1", "text", "C"), ("key_2", "integer", "")])

    def test_null_and_duplicate_keys_in_a_view(self):
        cluster.sql(f"""
            create table {self.table} (id bigint, v int);
            insert into {self.table} values (1, 1), (2, 2), (3, 3);
            create view {self.table}_v as select * from {self.table};
        """)
        self.create_sync(["id"], model=f"public.{self.table}_v")
        _, counts = self.run_sync()
        self.assertEqual(counts, (3, 0, 0, 0))
        cluster.sql(f"insert into {self.table} values (2, 20), (null, 5)")
        mock.clear_requests()
        run_id, counts = self.run_sync(expect_status="partial")
        # Key 2 twice (both invalid, and not removed), the NULL key once.
        self.assertEqual(counts, (0, 0, 0, 3))
        self.assertEqual(self.sent(), [])
        reasons = sorted(r[0] for r in cluster.rows(
            f"select reason from revetl.rejected_rows where run_id = {run_id} and kind = 'invalid'"))
        self.assertTrue(reasons[0].startswith("duplicate key: 2 rows"), reasons)
        self.assertTrue(reasons[2].startswith("the key has a NULL value"), reasons)
        # The refused rows' keys are recorded (the plan builds their jsonb
        # only for such rows).
        self.assertEqual(sorted(r[0] for r in cluster.rows(
            f"select key::text from revetl.rejected_rows where run_id = {run_id} and kind = 'invalid'")),
            ['{"id": 2}', '{"id": 2}', '{"id": null}'])
        self.assertEqual(self.shadow_key_types(), [("key_1", "bigint", "")])

    def test_a_domain_key_is_stored_as_its_base_type(self):
        # The shadow's generated key is computed by revetl's statements: a
        # domain's CHECK (the owner's code) must never run there.
        cluster.sql(f"""
            create domain d_{self.n} as varchar(10) check (value <> 'forbidden');
            create table {self.table} (k d_{self.n} primary key, v int);
            insert into {self.table} values ('a', 1), ('b', 2);
        """)
        self.check_lifecycle(["k"], f"update {self.table} set v = 3 where k = 'b'",
                             f"delete from {self.table} where k = 'a'", {"k": "b"}, {"k": "a"}, 2)
        self.assertEqual(self.shadow_key_types(), [("key_1", "character varying(10)", "C")])

    def test_a_query_model(self):
        cluster.sql(f"""
            create table {self.table} (id int primary key, v int);
            insert into {self.table} select g, g from generate_series(1, 4) g;
        """)
        self.create_sync(["id"], model=f"select id * 10 as id, v from public.{self.table}")
        _, counts = self.run_sync()
        self.assertEqual(counts, (4, 0, 0, 0))
        cluster.sql(f"update {self.table} set v = 0 where id = 2")
        mock.clear_requests()
        _, counts = self.run_sync()
        self.assertEqual(counts, (0, 1, 0, 0))
        self.assertEqual([r["key"] for r in self.sent()], [{"id": 20}])
        self.assertEqual(self.shadow_key_types(), [("key_1", "integer", "")])

    def test_key_column_type_change_retypes_the_shadow_keys(self):
        cluster.sql(f"""
            create table {self.table} (id int primary key, v int);
            insert into {self.table} select g, g from generate_series(1, 5) g;
        """)
        self.create_sync(["id"])
        self.run_sync()
        self.assertEqual(self.shadow_key_types(), [("key_1", "integer", "")])
        # int -> bigint: every key reads as the new type; nothing is sent.
        cluster.sql(f"alter table {self.table} alter column id type bigint")
        mock.clear_requests()
        _, counts = self.run_sync()
        self.assertEqual(counts, (0, 0, 0, 0))
        self.assertEqual(self.shadow_key_types(), [("key_1", "bigint", "")])
        cluster.sql(f"update {self.table} set v = 0 where id = 3")
        _, counts = self.run_sync()
        self.assertEqual(counts, (0, 1, 0, 0))
        # bigint -> numeric: the same keys again, though every row is sent
        # once more, under its own key: a numeric hashes differently from
        # an integer (as it did when keys were text).
        cluster.sql(f"alter table {self.table} alter column id type numeric")
        mock.clear_requests()
        _, counts = self.run_sync()
        self.assertEqual(counts, (0, 5, 0, 0))
        self.assertEqual(sorted(r["key"]["id"] for r in self.sent()), [1, 2, 3, 4, 5])
        self.assertEqual(len(mock.records()), 5)
        self.assertEqual(self.shadow_key_types(), [("key_1", "numeric", "")])

    def test_key_type_whose_old_keys_do_not_read_falls_back_to_the_key_text(self):
        cluster.sql(f"""
            create table {self.table} (id text primary key, v int);
            insert into {self.table} values ('x', 1), ('y', 2);
        """)
        self.create_sync(["id"])
        self.run_sync()
        self.assertEqual(self.shadow_key_types(), [("key_1", "text", "C")])
        # Text keys 'x' and 'y' are no integers: the shadow keeps its text
        # keys, the plan matches by text (the old records are removed, the
        # new ones added), and the next run has typed keys again.
        cluster.sql(f"delete from {self.table}; alter table {self.table} alter column id type int using 0; "
                    f"insert into {self.table} values (1, 1), (2, 2)")
        _, counts = self.run_sync()
        self.assertEqual(counts, (2, 0, 2, 0))
        self.assertEqual(self.shadow_key_types(), [])
        mock.clear_requests()
        _, counts = self.run_sync()
        self.assertEqual(counts, (0, 0, 0, 0))
        self.assertEqual(self.shadow_key_types(), [("key_1", "integer", "")])
        self.assertEqual(sorted(mock.records()), ['{"id": 1}', '{"id": 2}'])

    def set_bulk_insert(self, on):
        """revetl.shadow_bulk_insert for the runs started from now on (each
        run is a new process, forked from the postmaster once it has read the
        setting: a new connection shows what it has)."""
        cluster.sql(f"alter system set revetl.shadow_bulk_insert = {'on' if on else 'off'}")
        cluster.sql("select pg_reload_conf()")
        wait_for(lambda: cluster.sql("show revetl.shadow_bulk_insert") == ("on" if on else "off"),
                 what="the postmaster to read revetl.shadow_bulk_insert")

    def shadow_rows(self, shadow):
        """Every stored column of a shadow table but the run's own ids and
        times, which differ between two syncs' runs: how far verify_after is
        after synced_at stands for both."""
        return cluster.rows(f"select key, row_hash, dest_id, removed, version = run_id, "
                            f"verify_after - synced_at, key_1, key_2, key_3 from {shadow} order by key")

    def test_bulk_and_statement_shadow_writes_store_the_same_rows(self):
        # Adds are recorded by a multi-insert whose typed keys come from the
        # table's generation expressions; the INSERT statement it replaced
        # must store exactly the same rows. Keys with quotes, backslashes,
        # non-ASCII and empty text, infinite and zoned times, large and
        # negative-zero numerics; NULL values; some rows sent twice (their
        # request's answer lost: re-verified after settle_time) and some not.
        cluster.sql(f"""
            create table {self.table} (k text, at timestamptz, n numeric, v int, primary key (k, at, n));
            insert into {self.table} values ('a"b\\c', '2024-01-01 00:00+00', 1.50, null),
              ('é', 'infinity', -0.0, 1), ('', '1999-12-31 23:00-05', 12345678901234567890.1, 2),
              ('x y', '-infinity', 0, null);
            insert into {self.table} select 'k' || g, '2024-06-01 12:00+02'::timestamptz + g * interval '1 s',
              g / 7.0, g from generate_series(1, 1200) g;
            alter server {self.server} options (add batch_size '100', add settle_time '1h',
                                                add max_in_flight '1');
            create server {self.server}_stmt foreign data wrapper revetl
              options (type 'webhook', url '{mock.url}/events/{self.n}_stmt', batch_size '100',
                       settle_time '1h', max_in_flight '1');
        """)
        self.create_sync(["k", "at", "n"])
        other = f"{self.sync}_stmt"
        cluster.sql(f"select revetl.create_sync('{other}', 'public.{self.table}', '{self.server}_stmt', "
                    f"array['k', 'at', 'n'], mode => 'mirror')")
        shadows = []
        try:
            for on, name in ((True, self.sync), (False, other)):
                self.set_bulk_insert(on)
                # The third request's answer is lost after the mock applied it.
                mock.configure(faults=[{"action": "pass"}, {"action": "pass"}, {"action": "reset", "apply": True}])
                run_id = int(cluster.sql(f"select revetl.run_sync('{name}', wait => true)"))
                self.assertEqual(cluster.rows(f"select status, rows_added from revetl.sync_runs "
                                              f"where id = {run_id}")[0], ["succeeded", "1204"])
                shadows.append("revetl." + cluster.sql(f"select shadow_table from revetl.syncs "
                                                       f"where name = '{name}'"))
        finally:
            cluster.sql("alter system reset revetl.shadow_bulk_insert")
            cluster.sql("select pg_reload_conf()")
        bulk, statement = (self.shadow_rows(s) for s in shadows)
        self.assertEqual(len(bulk), 1204)
        # Which 100 rows were in the third request depends on the plan's
        # order: the rows are compared without it, and each sync has 100
        # rows to re-verify settle_time after they were recorded.
        self.assertEqual([r[:5] + r[6:] for r in bulk], [r[:5] + r[6:] for r in statement])
        for rows in (bulk, statement):
            self.assertEqual(sorted({r[5] for r in rows}), ["", "01:00:00"])
            self.assertEqual(len([r for r in rows if r[5] != ""]), 100)
        # The typed keys are the key text's fields, and both indexes hold
        # every row (amcheck: each heap row has its index entry).
        cluster.sql("create extension if not exists amcheck")
        for shadow in shadows:
            self.assertEqual(cluster.sql(
                f"select count(*) from {shadow} where key_1 is distinct from revetl.key_field(key, 'k', null::text) "
                f"or key_2 is distinct from revetl.key_field(key, 'at', null::timestamptz) "
                f"or key_3 is distinct from revetl.key_field(key, 'n', null::numeric)"), "0")
            for index in cluster.rows(f"select indexrelid::regclass from pg_index "
                                      f"where indrelid = '{shadow}'::regclass"):
                cluster.sql(f"select bt_index_check('{index[0]}', true)")
        # A second run of each finds every row in its shadow state.
        for name in (self.sync, other):
            run_id = int(cluster.sql(f"select revetl.run_sync('{name}', wait => true)"))
            self.assertEqual(cluster.rows(f"select status, rows_added, rows_changed, rows_removed "
                                          f"from revetl.sync_runs where id = {run_id}")[0],
                             ["succeeded", "0", "0", "0"])

    def test_a_flush_that_fails_after_its_multi_insert_leaves_nothing_behind(self):
        # The flush writes its adds' heap rows, then their index entries:
        # a key found in the shadow state after all (planted here while the
        # request is held) fails the primary key's entry after the rows were
        # written. The flush's transaction is aborted whole: the next run
        # sends and records every row once, and the one after finds all.
        # One batch of all 300 rows, so that one flush holds them whatever
        # the flush timer does (with several batches, the un-held ones could
        # be recorded by a flush of their own before the held one answers).
        cluster.sql(f"""
            alter server {self.server} options (add batch_size '300');
            create table {self.table} (id int primary key, v text);
            insert into {self.table} select g, 'v' || g from generate_series(1, 300) g;
        """)
        self.create_sync(["id"])
        mock.configure(faults=[{"action": "hold"}])
        run_id = int(cluster.sql(f"select revetl.run_sync('{self.sync}')"))
        wait_for(lambda: mock.in_flight() == 1, what="the held request")
        shadow = self.shadow()
        cluster.sql(f"insert into {shadow} (key, row_hash, run_id) values ('{{\"id\": 250}}', 0, 0)")
        self.assertEqual(mock.release(), 1)
        self.assertEqual(cluster.wait_for_run(run_id), "failed")
        self.assertIn("duplicate key", cluster.sql(f"select error from revetl.sync_runs where id = {run_id}"))
        # No row of the aborted flush is there: only the planted one, and
        # the failed run's placeholders for the rows it sent (re-verified
        # after settle_time, as after any failed run).
        self.assertEqual(cluster.sql(f"select count(*) filter (where not removed), "
                                     f"count(*) filter (where removed and verify_after is not null) "
                                     f"from {shadow}"), "1|299")
        cluster.sql(f"delete from {shadow} where not removed")
        cluster.sql("create extension if not exists amcheck")
        cluster.sql(f"select bt_index_check('{shadow}_pkey', true)")
        mock.clear_requests()
        _, counts = self.run_sync()
        self.assertEqual(counts, (300, 0, 0, 0))
        self.assertEqual(len(self.sent()), 300)
        self.assertEqual(cluster.sql(f"select count(*), count(distinct key_1) from {shadow} where not removed"),
                         "300|300")
        _, counts = self.run_sync()
        self.assertEqual(counts, (0, 0, 0, 0))
        self.assertEqual(len(mock.records()), 300)

    def test_row_hash_equals_hash_record_extended(self):
        # Shadow rows written by earlier versions keep their hashes.
        got = cluster.rows("""
            select revetl.row_hash(1::int, 'a'::text, null::int, 1.50::numeric, now()::date, '{1,2}'::int[],
                                   'x'::text collate "C")
                   = hash_record_extended(row(1::int, 'a'::text, null::int, 1.50::numeric, now()::date,
                                              '{1,2}'::int[], 'x'::text collate "C"), 0),
                   revetl.row_hash(null::text) = hash_record_extended(row(null::text), 0),
                   revetl.key_field('{"a": "2024-01-01T00:00:00+05:00"}', 'a', null::timestamptz)
                     = '2023-12-31 19:00:00+00'::timestamptz,
                   revetl.key_field('{"a": 1}', 'b', null::int) is null
        """)[0]
        self.assertEqual(got, ["t", "t", "t", "t"])


if __name__ == "__main__":
    unittest.main()
