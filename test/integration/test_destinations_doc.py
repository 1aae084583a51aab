"""docs/destinations.md, the README and the dbt package against the
registered connector specs (revetl.destination_types): the server-option and
user-mapping-option tables name exactly the options the specs declare, with
the types that take them and their defaults, the `type` row lists exactly
the registered types, and no doc or dbt file names a type that is not
registered."""

import glob
import json
import os
import re
import sys
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "lib"))
from pgcluster import Cluster  # noqa: E402

ROOT = os.path.join(HERE, "..", "..")
DOC = os.path.join(ROOT, "docs", "destinations.md")


def table_after(heading):
    """Rows (lists of stripped cells) of the first table after `heading`."""
    rows, seen, in_table = [], False, False
    with open(DOC) as f:
        for line in f:
            if line.strip() == heading:
                seen = True
                continue
            if not seen:
                continue
            if line.startswith("|"):
                in_table = True
                cells = [c.strip() for c in line.strip().strip("|").split("|")]
                if cells[0] not in ("option", "---") and not cells[0].startswith("---"):
                    rows.append(cells)
            elif in_table:
                break
    return rows


def doc_types(cell, all_types):
    if cell == "all":
        return set(all_types)
    return {t.strip() for t in re.split(r",| and ", cell) if t.strip()}


class DestinationsDocTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.cluster = Cluster(name="revetl-destinations-doc").start()
        cls.cluster.sql("create extension revetl")
        out = cls.cluster.sql("select jsonb_agg(jsonb_build_object('type', type, 'options', options) "
                              "order by type) from revetl.destination_types")
        cls.types = json.loads(out)
        cls.type_names = [t["type"] for t in cls.types]

    @classmethod
    def tearDownClass(cls):
        cls.cluster.destroy()

    def declared(self, on):
        """option name -> {type: default or None}"""
        out = {}
        for t in self.types:
            for o in t["options"]:
                if o["on"] == on:
                    out.setdefault(o["name"], {})[t["type"]] = (o["default"], o["required"])
        return out

    def test_server_options_table_matches_the_specs(self):
        rows = table_after("## Server options")
        self.assertGreater(len(rows), 5, "the server options table was not found")
        declared = self.declared("server")
        documented = {r[0].strip("`"): r for r in rows}
        self.assertEqual(set(documented), set(declared), "documented vs declared server options")
        for name, row in documented.items():
            with self.subTest(option=name):
                self.assertEqual(doc_types(row[1], self.type_names), set(declared[name]), "types")
                default_cell = row[2]
                defaults = declared[name]
                for type_name, (default, required) in defaults.items():
                    if required:
                        expected = "required"
                    elif default is None:
                        expected = "none"
                    else:
                        expected = f"`{default}`"
                    if len({(d, r) for d, r in defaults.values()}) == 1:
                        self.assertIn(expected, default_cell, f"default of {name}")
                    else:
                        self.assertIn(f"{type_name}: {expected}", default_cell, f"default of {name} for {type_name}")

    def test_type_row_lists_the_registered_types(self):
        rows = {r[0].strip("`"): r for r in table_after("## Server options")}
        listed = re.findall(r"`([a-z0-9_]+)`", rows["type"][3])
        self.assertEqual(sorted(listed), sorted(self.type_names))

    def test_user_mapping_table_matches_the_specs(self):
        rows = table_after("## User-mapping options")
        self.assertGreater(len(rows), 1, "the user-mapping options table was not found")
        declared = self.declared("user mapping")
        documented = {r[0].strip("`"): r for r in rows}
        self.assertEqual(set(documented), set(declared), "documented vs declared user-mapping options")
        for name, row in documented.items():
            with self.subTest(option=name):
                self.assertEqual(doc_types(row[1], self.type_names), set(declared[name]), "types")

    def test_docs_readme_and_dbt_name_only_registered_types(self):
        files = glob.glob(os.path.join(ROOT, "docs", "*.md")) + [os.path.join(ROOT, "README.md")]
        files += [f for f in glob.glob(os.path.join(ROOT, "dbt", "**", "*"), recursive=True) if os.path.isfile(f)]
        named = set()
        for path in files:
            with open(path, errors="replace") as f:
                for m in re.finditer(r"\btype\s+'([a-z0-9_]+)'", f.read()):
                    named.add((m.group(1), os.path.relpath(path, ROOT)))
        # Examples of refused types are written as such in the docs.
        refused = {"webhok", "kafka"}
        for type_name, where in sorted(named):
            if type_name not in refused:
                self.assertIn(type_name, self.type_names, f"{where} names type '{type_name}'")
        with open(os.path.join(ROOT, "README.md")) as f:
            readme = f.read().lower()
        for type_name in self.type_names:
            self.assertIn(type_name, readme, f"README.md does not mention destination type {type_name}")

    def test_dbt_package_lists_every_registered_type(self):
        with open(os.path.join(ROOT, "dbt", "revetl", "README.md")) as f:
            text = f.read()
        listed = re.findall(r"^\| `([a-z0-9_]+)` \|", text, re.M)
        self.assertEqual(sorted(listed), sorted(self.type_names), "the dbt package's list of destination types")


if __name__ == "__main__":
    unittest.main()
