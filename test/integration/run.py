"""Runs every integration test module and prints a closing summary line.

The modules are test/integration/test_*.py and each connector's own
test/connectors/<type>/test_*.py (beside its mock)."""

import glob
import os
import sys
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "lib"))


def main():
    pattern = sys.argv[1] if len(sys.argv) > 1 else "test_*.py"
    suite = unittest.TestSuite()
    connectors = sorted(glob.glob(os.path.join(HERE, "..", "connectors", "*", "")))
    for folder in [HERE] + [os.path.abspath(c) for c in connectors]:
        suite.addTests(unittest.TestLoader().discover(folder, pattern=pattern, top_level_dir=folder))
    result = unittest.TextTestRunner(verbosity=2).run(suite)
    failed = len(result.failures) + len(result.errors)
    passed = result.testsRun - failed - len(result.skipped)
    print(f"integration: {passed} passed, {failed} failed, {len(result.skipped)} skipped")
    return 0 if failed == 0 and result.testsRun > 0 else 1


if __name__ == "__main__":
    sys.exit(main())
