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
    # Each argument is a file name pattern (scripts/test.sh passes the
    # REVETL_INTEGRATION list); without one, every module runs.
    patterns = sys.argv[1:] or ["test_*.py"]
    suite = unittest.TestSuite()
    connectors = sorted(glob.glob(os.path.join(HERE, "..", "connectors", "*", "")))
    for pattern in patterns:
        found = suite.countTestCases()
        for folder in [HERE] + [os.path.abspath(c) for c in connectors]:
            suite.addTests(unittest.TestLoader().discover(folder, pattern=pattern, top_level_dir=folder))
        if suite.countTestCases() == found:
            print(f"integration: no test matches {pattern}")
            return 1
    result = unittest.TextTestRunner(verbosity=2).run(suite)
    failed = len(result.failures) + len(result.errors)
    passed = result.testsRun - failed - len(result.skipped)
    print(f"integration: {passed} passed, {failed} failed, {len(result.skipped)} skipped")
    return 0 if failed == 0 and result.testsRun > 0 else 1


if __name__ == "__main__":
    sys.exit(main())
