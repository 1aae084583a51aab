"""pg_regress alternative outputs (expected/<test>_N.out) differ from the main
one only where a PostgreSQL major words a message differently. An
alternative left behind when the main output changed fails on that major
only (PostgreSQL 19's sync_language_errors did): this checks every
alternative against its main file, on any major, with no server."""

import difflib
import glob
import os
import unittest

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")

# (lines in the main output, lines in the alternative): the known wordings
# of one message across majors.
KNOWN = [
    # PostgreSQL 19 split the hint of "operator does not exist" into a detail.
    (["HINT:  No operator matches the given name and argument types. You might need to add explicit type casts."],
     ["DETAIL:  No operator of that name accepts the given argument types.",
      "HINT:  You might need to add explicit type casts."]),
]


class ExpectedVariantsTest(unittest.TestCase):
    def test_alternatives_differ_only_by_known_wordings(self):
        variants = sorted(glob.glob(os.path.join(ROOT, "expected", "*_[0-9].out")))
        self.assertTrue(variants, "no alternative outputs found")
        for variant in variants:
            main = variant[:-len("_1.out")] + ".out"
            with self.subTest(variant=os.path.basename(variant)):
                self.assertTrue(os.path.exists(main), f"{variant} has no main output")
                with open(main) as f:
                    a = f.read().splitlines()
                with open(variant) as f:
                    b = f.read().splitlines()
                for tag, i1, i2, j1, j2 in difflib.SequenceMatcher(None, a, b, autojunk=False).get_opcodes():
                    if tag == "equal":
                        continue
                    self.assertIn((a[i1:i2], b[j1:j2]), KNOWN,
                                  f"{os.path.basename(variant)} differs from {os.path.basename(main)} at line "
                                  f"{i1 + 1} by more than a known wording: keep the two in step")


if __name__ == "__main__":
    unittest.main()
