"""docs/settings.md against the server: every revetl.* setting the module
defines is in the documented table with its type, default, unit, range and
context, and the table documents nothing the module does not define."""

import os
import re
import sys
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from pgcluster import Cluster  # noqa: E402

DOC = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "docs", "settings.md")
UNITS = {"s": "seconds", "min": "minutes", "ms": "milliseconds", "kB": "kilobytes", "": ""}


def documented():
    rows = {}
    with open(DOC) as f:
        for line in f:
            m = re.match(r"\|\s*`(revetl\.[a-z_]+)`\s*\|\s*(\w+)\s*\|\s*`([^`]*)`[^|]*\|([^|]*)\|([^|]*)\|\s*(\w+)\s*\|",
                         line)
            if m:
                name, typ, default, unit, rng, context = (g.strip() for g in m.groups())
                rows[name] = {"type": typ, "default": default, "unit": unit, "range": rng, "context": context}
    return rows


class SettingsDocTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.cluster = Cluster(name="revetl-settings-doc").start()

    @classmethod
    def tearDownClass(cls):
        cls.cluster.destroy()

    def test_settings_table_matches_the_server(self):
        doc = documented()
        self.assertGreater(len(doc), 5, "the settings table was not found in docs/settings.md")
        server = {r[0]: r[1:] for r in self.cluster.rows(
            "select name, vartype, boot_val, coalesce(unit, ''), coalesce(min_val, ''), coalesce(max_val, ''), "
            "context from pg_settings where name like 'revetl.%'")}
        self.assertEqual(sorted(doc), sorted(server), "settings documented vs defined")
        for name, (vartype, boot, unit, lo, hi, context) in server.items():
            d = doc[name]
            with self.subTest(setting=name):
                self.assertEqual(d["type"], vartype)
                self.assertEqual(d["default"], boot)
                self.assertEqual(d["unit"], UNITS[unit])
                self.assertEqual(d["range"], f"{lo} to {hi}" if lo else "")
                self.assertEqual(d["context"], context)


if __name__ == "__main__":
    unittest.main()
