"""Helpers for the hostile-role tests (issue 19): long-lived psql sessions,
the roles victim / mallory / monitor, and mallory's "hijack kit".

The kit shadows built-ins that code with more rights than its caller might
call by name (nextval(text), quote_ident, clock_timestamp(), now(), count(*),
max(bigint), and the operator = on bigint and text) with functions in schema
mallory that try ALTER ROLE mallory SUPERUSER, which succeeds only when they
run as a superuser, and then return the real value.
"""

import os
import queue
import subprocess
import threading
import time

from pgcluster import wait_for

HIJACK_PATH = "mallory, pg_catalog"

HIJACK_KIT = r"""
CREATE FUNCTION mallory.escalate() RETURNS void LANGUAGE plpgsql AS $f$
BEGIN
  EXECUTE 'ALTER ROLE mallory SUPERUSER';
EXCEPTION WHEN OTHERS THEN
  NULL;
END $f$;
CREATE FUNCTION mallory.nextval(text) RETURNS bigint LANGUAGE plpgsql AS $f$
BEGIN PERFORM mallory.escalate(); RETURN pg_catalog.nextval($1::pg_catalog.regclass); END $f$;
CREATE FUNCTION mallory.quote_ident(text) RETURNS text LANGUAGE plpgsql AS $f$
BEGIN PERFORM mallory.escalate(); RETURN pg_catalog.quote_ident($1); END $f$;
CREATE FUNCTION mallory.quote_ident(name) RETURNS text LANGUAGE plpgsql AS $f$
BEGIN PERFORM mallory.escalate(); RETURN pg_catalog.quote_ident($1::pg_catalog.text); END $f$;
CREATE FUNCTION mallory.clock_timestamp() RETURNS timestamptz LANGUAGE plpgsql AS $f$
BEGIN PERFORM mallory.escalate(); RETURN pg_catalog.clock_timestamp(); END $f$;
CREATE FUNCTION mallory.now() RETURNS timestamptz LANGUAGE plpgsql AS $f$
BEGIN PERFORM mallory.escalate(); RETURN pg_catalog.now(); END $f$;
CREATE FUNCTION mallory.count_step(bigint) RETURNS bigint LANGUAGE plpgsql AS $f$
BEGIN PERFORM mallory.escalate(); RETURN $1 OPERATOR(pg_catalog.+) 1; END $f$;
CREATE AGGREGATE mallory.count(*) (SFUNC = mallory.count_step, STYPE = bigint, INITCOND = '0');
CREATE FUNCTION mallory.max_step(bigint, bigint) RETURNS bigint LANGUAGE plpgsql AS $f$
BEGIN PERFORM mallory.escalate(); RETURN GREATEST($1, $2); END $f$;
CREATE AGGREGATE mallory.max(bigint) (SFUNC = mallory.max_step, STYPE = bigint);
CREATE FUNCTION mallory.int8eq(bigint, bigint) RETURNS boolean LANGUAGE plpgsql AS $f$
BEGIN PERFORM mallory.escalate(); RETURN $1 OPERATOR(pg_catalog.=) $2; END $f$;
CREATE OPERATOR mallory.= (LEFTARG = bigint, RIGHTARG = bigint, FUNCTION = mallory.int8eq);
CREATE FUNCTION mallory.texteq(text, text) RETURNS boolean LANGUAGE plpgsql AS $f$
BEGIN PERFORM mallory.escalate(); RETURN $1 OPERATOR(pg_catalog.=) $2; END $f$;
CREATE OPERATOR mallory.= (LEFTARG = text, RIGHTARG = text, FUNCTION = mallory.texteq);
-- Owner code: tries to escalate and to leave its search_path behind.
CREATE FUNCTION mallory.evil() RETURNS int LANGUAGE plpgsql AS $f$
BEGIN
  PERFORM mallory.escalate();
  PERFORM pg_catalog.set_config('search_path', 'mallory, pg_catalog', false);
  RETURN 1;
END $f$;
"""


def slow_function_sql(tag):
    """A function mallory.slow_<tag>() that sleeps up to 600 s, in 0.2 s steps,
    until mallory.stop_<tag> is set above 1 (sequences are not transactional,
    so a REPEATABLE READ plan sees the change): release(tag) ends it early."""
    return f"""
CREATE SEQUENCE mallory.stop_{tag};
CREATE FUNCTION mallory.slow_{tag}() RETURNS int LANGUAGE plpgsql AS $f$
BEGIN
  FOR i IN 1..3000 LOOP
    EXIT WHEN (SELECT last_value FROM mallory.stop_{tag}) > 1;
    PERFORM pg_catalog.pg_sleep(0.2);
  END LOOP;
  RETURN 1;
END $f$;
"""


def release_sql(tag):
    return f"SELECT pg_catalog.setval('mallory.stop_{tag}', 2)"


class Session:
    """One psql process kept open, so that a role can hold locks or a
    statement can run in the background while the test goes on."""

    _counter = 0

    def __init__(self, cluster, user="postgres", db="postgres"):
        cmd = [os.path.join(cluster.bindir, "psql"), "-X", "-q", "-A", "-t", "-v", "VERBOSITY=verbose",
               "-h", cluster.dir, "-p", str(cluster.port), "-U", user, "-d", db]
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, text=True, bufsize=1)
        self.lines = queue.Queue()
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()
        self.pending = None

    def _read(self):
        for line in self.proc.stdout:
            self.lines.put(line.rstrip("\n"))
        self.lines.put(None)

    def send(self, sql):
        """Starts sql; collect its output with wait()."""
        assert self.pending is None, "a statement is still running in this session"
        Session._counter += 1
        self.pending = f"__hostile_done_{Session._counter}__"
        self.proc.stdin.write(sql.rstrip().rstrip(";") + ";\n\\echo " + self.pending + "\n")
        self.proc.stdin.flush()
        self.started = time.monotonic()

    def wait(self, timeout=60):
        """Output lines of the statement started by send(), once it ended."""
        out = []
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"statement still running after {timeout}s: {out}")
            try:
                line = self.lines.get(timeout=left)
            except queue.Empty:
                continue
            if line is None:
                raise RuntimeError(f"psql exited: {out}")
            if line == self.pending:
                self.pending = None
                return out
            out.append(line)

    def done(self):
        """Whether the statement started by send() has ended (non-blocking)."""
        try:
            while True:
                line = self.lines.get_nowait()
                if line is None:
                    return True
                if line == self.pending:
                    self.pending = None
                    return True
                self._early = getattr(self, "_early", []) + [line]
        except queue.Empty:
            return False

    def run(self, sql, timeout=60):
        self.send(sql)
        return self.wait(timeout)

    def close(self):
        if self.proc.poll() is None:
            try:
                self.proc.stdin.close()
            except OSError:
                pass
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def setup_roles(cluster, victim_url, mallory_url, token, db="postgres"):
    """victim, mallory (both LOGIN, neither superuser nor CREATEDB) and monitor
    (a member of pg_monitor); a schema and a server each; mallory also has
    USAGE on the victim's server, as a DBA would grant for a shared
    destination; the victim's user mapping holds token. mallory's schema
    holds the hijack kit."""
    cluster.sql(f"""
        CREATE ROLE victim LOGIN;
        CREATE ROLE mallory LOGIN;
        CREATE ROLE monitor LOGIN IN ROLE pg_monitor;
        CREATE SCHEMA victim AUTHORIZATION victim;
        CREATE SCHEMA mallory AUTHORIZATION mallory;
        CREATE SERVER victim_hooks FOREIGN DATA WRAPPER revetl OPTIONS (type 'webhook', url '{victim_url}');
        CREATE SERVER mallory_hooks FOREIGN DATA WRAPPER revetl OPTIONS (type 'webhook', url '{mallory_url}');
        GRANT USAGE ON FOREIGN SERVER victim_hooks TO victim, mallory;
        GRANT USAGE ON FOREIGN SERVER mallory_hooks TO mallory;
        CREATE USER MAPPING FOR victim SERVER victim_hooks OPTIONS (token '{token}');
    """, db=db)
    cluster.sql(HIJACK_KIT, db=db, user="mallory")


def is_superuser(cluster, role="mallory", db="postgres"):
    return cluster.sql(f"SELECT rolsuper FROM pg_roles WHERE rolname = '{role}'", db=db) == "t"


def unescalate(cluster, role="mallory", db="postgres"):
    cluster.sql(f"ALTER ROLE {role} NOSUPERUSER", db=db)


def sqlstate_of(stderr):
    """The SQLSTATE of a psql error printed with VERBOSITY verbose."""
    for line in stderr.splitlines():
        if "ERROR:" in line:
            rest = line.split("ERROR:", 1)[1].strip()
            code = rest.split(":", 1)[0]
            if len(code) == 5:
                return code
    return None


def run_backends(cluster, db="postgres"):
    out = cluster.sql("SELECT pid FROM pg_stat_activity WHERE backend_type = 'revetl run' "
                      f"AND datname = '{db}'", db=db)
    return [int(x) for x in out.split()] if out else []


def wait_for_sleeping_run(cluster, db="postgres", timeout=30):
    """Waits for a `revetl run` backend sleeping in pg_sleep (a slow MAP) and returns its pid."""
    def sleeping():
        out = cluster.sql("SELECT pid FROM pg_stat_activity WHERE backend_type = 'revetl run' "
                          "AND wait_event = 'PgSleep'", db=db)
        return int(out.split()[0]) if out else None
    return wait_for(sleeping, timeout=timeout, what="a revetl run sleeping in the model")
