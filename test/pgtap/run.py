"""Runs the pgTAP tests (test/pgtap/*.sql) through pg_prove.

Starts a throwaway cluster with revetl preloaded (test/lib/pgcluster.py)
and revetl.allowed_hosts = '127.0.0.1, localhost, .example.com', creates
the database `tap` with the extensions pgtap and revetl, runs
pg_prove on every test file in name order (or on the files given as
arguments), streams its output, destroys the cluster and exits with
pg_prove's exit code.

initdb refuses to run as root, so run it as an ordinary user, for example:

    runuser -u postgres -- env PYTHONDONTWRITEBYTECODE=1 python3 test/pgtap/run.py

Each test file is one transaction that ends in ROLLBACK, so files do not
depend on each other and leave nothing behind.
"""

import glob
import os
import shutil
import signal
import subprocess
import sys

sys.dont_write_bytecode = True

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.abspath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, os.path.join(REPO, "test", "lib"))
from pgcluster import Cluster  # noqa: E402

DATABASE = "tap"

# Destinations may go to these hosts only, so that 05_validator.sql can test
# the allowlist; every other test file uses 127.0.0.1.
CLUSTER_CONF = "revetl.allowed_hosts = '127.0.0.1, localhost, .example.com'"

# A test that hangs (a wait that never ends) fails instead of hanging the run.
STATEMENT_TIMEOUT = "120s"


def test_files(args):
    if args:
        files = [os.path.abspath(a) for a in args]
        missing = [f for f in files if not os.path.isfile(f)]
        if missing:
            print(f"pgtap: no such test file: {', '.join(missing)}", file=sys.stderr)
            return None
    else:
        files = sorted(glob.glob(os.path.join(HERE, "*.sql")))
    # Relative names read better in pg_prove's report.
    return [os.path.relpath(f, REPO) for f in files]


def _terminate(signum, _frame):
    # Turn SIGTERM/SIGHUP into an exception so that the cluster is destroyed.
    raise SystemExit(128 + signum)


def main(argv):
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        print("pgtap: initdb cannot run as root; run this as an ordinary user, for example:\n"
              "  runuser -u postgres -- env PYTHONDONTWRITEBYTECODE=1 python3 test/pgtap/run.py",
              file=sys.stderr)
        return 2
    pg_prove = shutil.which("pg_prove")
    if not pg_prove:
        print("pgtap: pg_prove not found (Debian: libtap-parser-sourcehandler-pgtap-perl)", file=sys.stderr)
        return 2
    files = test_files(argv[1:])
    if not files:
        if files is not None:
            print(f"pgtap: no test files in {os.path.relpath(HERE, REPO)}", file=sys.stderr)
        return 1

    signal.signal(signal.SIGTERM, _terminate)
    signal.signal(signal.SIGHUP, _terminate)
    cluster = None
    try:
        cluster = Cluster(extra_conf=CLUSTER_CONF, name="revetl-pgtap")
        cluster.start()
        cluster.sql(f"CREATE DATABASE {DATABASE}")
        cluster.sql("CREATE EXTENSION pgtap; CREATE EXTENSION revetl;", db=DATABASE)

        env = dict(os.environ)
        env["PGOPTIONS"] = (env.get("PGOPTIONS", "") + f" -c statement_timeout={STATEMENT_TIMEOUT}").strip()
        for var in ("PGSERVICE", "PGSERVICEFILE", "PGPASSFILE", "PGDATABASE", "PGHOST", "PGPORT", "PGUSER"):
            env.pop(var, None)
        cmd = [pg_prove, "--psql-bin", os.path.join(cluster.bindir, "psql"),
               "-h", cluster.dir, "-p", str(cluster.port), "-U", "postgres", "-d", DATABASE] + files
        sys.stdout.flush()
        sys.stderr.flush()
        # pg_prove writes straight to our stdout and stderr: its output streams.
        return subprocess.run(cmd, cwd=REPO, env=env).returncode
    except KeyboardInterrupt:
        return 130
    finally:
        if cluster is not None:
            cluster.destroy()


if __name__ == "__main__":
    sys.exit(main(sys.argv))
