"""Throwaway PostgreSQL clusters and mock destinations for revetl's tests.

A cluster lives in a temporary directory and listens only on a Unix socket in
that directory, so tests never compete for TCP ports. Every wait has a
timeout and polls a condition; nothing sleeps for a fixed time.
"""

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.abspath(os.path.join(HERE, "..", ".."))


def pg_bindir():
    out = subprocess.run(["pg_config", "--bindir"], check=True, capture_output=True, text=True)
    return out.stdout.strip()


def wait_for(condition, timeout=30.0, interval=0.05, what="condition"):
    """Polls condition() until it returns a truthy value, or fails."""
    deadline = time.monotonic() + timeout
    last_error = None
    while time.monotonic() < deadline:
        try:
            value = condition()
            if value:
                return value
        except Exception as e:  # the condition may not be checkable yet
            last_error = e
        time.sleep(interval)
    raise TimeoutError(f"timed out after {timeout}s waiting for {what}" +
                       (f" (last error: {last_error})" if last_error else ""))


class OpenTransaction:
    """A psql session that runs `statement` in a transaction and keeps the
    transaction open (with an xid of its own) until commit() or abort()."""

    def __init__(self, cluster, statement):
        self.p = subprocess.Popen(cluster.psql_command(), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True)
        self.p.stdin.write(f"begin;\n{statement};\nselect 'open-' || txid_current();\n")
        self.p.stdin.flush()
        self.xid = self.p.stdout.readline().strip()
        assert self.xid.startswith("open-"), self.xid + self.p.stderr.read()

    def commit(self):
        _, err = self.p.communicate("commit;\n", timeout=60)
        assert self.p.returncode == 0, err

    def abort(self):
        """Ends the session (and so the transaction), unless commit() did."""
        if self.p.poll() is None:
            self.p.kill()
            self.p.wait()


class PsqlError(Exception):
    pass


class Cluster:
    """A PostgreSQL cluster (the major of the pg_config in PATH) with revetl preloaded."""

    def __init__(self, extra_conf="", name="revetl", bindir=None):
        # bindir: another installation's programs (an older release of
        # revetl in a private copy of PostgreSQL, for the upgrade test);
        # assign cluster.bindir later to restart the same data directory
        # with other programs.
        self.bindir = bindir or pg_bindir()
        self.dir = tempfile.mkdtemp(prefix=f"{name}-pg-")
        self.data = os.path.join(self.dir, "data")
        self.log = os.path.join(self.dir, "postgres.log")
        self.port = 5432
        env = dict(os.environ, LC_ALL="C.UTF-8")
        subprocess.run([os.path.join(self.bindir, "initdb"), "-D", self.data, "-A", "trust",
                        "-U", "postgres", "-E", "UTF8", "--no-sync"],
                       check=True, capture_output=True, env=env)
        with open(os.path.join(self.data, "postgresql.conf"), "a") as f:
            f.write(f"""
shared_preload_libraries = 'revetl'
listen_addresses = ''
unix_socket_directories = '{self.dir}'
port = {self.port}
fsync = off
log_min_messages = log
max_worker_processes = 16
revetl.worker_restart_delay = 1
# The mocks listen on loopback, which revetl refuses unless named here.
revetl.allowed_hosts = '*, 127.0.0.1'
{extra_conf}
{os.environ.get("REVETL_TEST_EXTRA_CONF", "")}
""")

    # -- lifecycle ---------------------------------------------------------
    def start(self):
        subprocess.run([os.path.join(self.bindir, "pg_ctl"), "-D", self.data, "-l", self.log,
                        "-w", "-t", "60", "start"], check=True, capture_output=True)
        wait_for(lambda: self.sql("select 1") == "1", what="server to accept connections")
        return self

    def stop(self, mode="fast"):
        subprocess.run([os.path.join(self.bindir, "pg_ctl"), "-D", self.data, "-m", mode,
                        "-w", "-t", "60", "stop"], capture_output=True)

    def destroy(self):
        self.stop("immediate")
        if os.environ.get("REVETL_KEEP_TEST_DIRS"):
            print(f"kept {self.dir}", file=sys.stderr)
        else:
            shutil.rmtree(self.dir, ignore_errors=True)

    def postmaster_pid(self):
        with open(os.path.join(self.data, "postmaster.pid")) as f:
            return int(f.readline())

    # -- SQL -----------------------------------------------------------------
    def psql_command(self, db="postgres", user="postgres"):
        """psql's command line for this cluster, reading SQL from stdin."""
        return [os.path.join(self.bindir, "psql"), "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1",
                "-h", self.dir, "-p", str(self.port), "-U", user, "-d", db]

    def psql(self, sql, db="postgres", user="postgres", check=True):
        """Runs sql through psql; returns (stdout, stderr, returncode)."""
        p = subprocess.run(self.psql_command(db, user), input=sql, capture_output=True, text=True, timeout=300)
        if check and p.returncode != 0:
            raise PsqlError(p.stderr.strip())
        return p.stdout, p.stderr, p.returncode

    def sql(self, sql, db="postgres", user="postgres"):
        """Runs sql and returns its output rows as one string (fields split by |)."""
        out, _, _ = self.psql(sql, db=db, user=user)
        return out.strip()

    def rows(self, sql, db="postgres", user="postgres"):
        out = self.sql(sql, db=db, user=user)
        return [line.split("|") for line in out.splitlines() if line]

    def log_text(self):
        with open(self.log, errors="replace") as f:
            return f.read()

    def worker_pids(self, db="postgres"):
        out = self.sql("select pid from pg_stat_activity where backend_type = 'revetl worker' "
                       "and datname = current_database()", db=db)
        return [int(x) for x in out.split()] if out else []

    @contextlib.contextmanager
    def lazy_wal_writer(self, delay="10s"):
        """Runs the block with the WAL writer writing asynchronous commits only every `delay`, so
        that such a commit is still in memory if the block stops the server immediately; the
        setting is reset after the block.

        The WAL writer flushes at once when it wakes and its last flush is older than the delay,
        which after an idle spell it is: so the block starts right after a flush of the writer's
        own, made by an asynchronous commit and waited for, and has the whole delay before the next
        one."""
        self.sql(f"alter system set wal_writer_delay = '{delay}'")
        self.sql("select pg_reload_conf()")
        primed = self.sql("set synchronous_commit = off; select txid_current(); "
                          "select pg_current_wal_insert_lsn()").splitlines()[-1]
        wait_for(lambda: self.sql(f"select pg_current_wal_flush_lsn() >= '{primed}'") == "t", timeout=60,
                 interval=0.01, what="the WAL writer's own flush")
        try:
            yield
        finally:
            self.sql("alter system reset wal_writer_delay")
            self.sql("select pg_reload_conf()")

    def kill_runs(self):
        """SIGKILLs every revetl run process, then waits for the server to be back. The postmaster
        restarts every process after such a kill, and a query answered before it notices would be
        followed by refused ones: so it first waits for the restart in the log. Returns how many
        processes were killed."""
        restarts = self.log_text().count("reinitializing")
        killed = 0
        for pid in self.sql("select pid from pg_stat_activity where backend_type = 'revetl run'").split():
            try:
                os.kill(int(pid), signal.SIGKILL)
                killed += 1
            except ProcessLookupError:
                pass
        if killed:
            wait_for(lambda: self.log_text().count("reinitializing") > restarts, timeout=60,
                     what="the server to restart after the killed run")
        wait_for(lambda: self.psql("select 1", check=False)[2] == 0, timeout=60, what="the server after the kill")
        return killed

    def wait_for_run_after(self, sync_name, run_id, timeout=120):
        """[id, status] of the latest run of `sync_name` after run `run_id` (e.g. the retry the
        scheduler queues for a killed run), once it has ended."""
        def ended():
            rows = self.rows(f"select id, status from revetl.sync_runs where sync_name = '{sync_name}' "
                             f"and id > {int(run_id)} order by id")
            return rows and rows[-1][1] not in ("queued", "running") and rows[-1]
        return wait_for(ended, timeout=timeout, what=f"the run of {sync_name} after run {run_id}")

    def wait_for_worker(self, db="postgres", timeout=30):
        return wait_for(lambda: self.worker_pids(db), timeout=timeout, what=f"revetl worker in {db}")[0]

    def wait_for_run(self, run_id, db="postgres", timeout=60):
        def finished():
            status = self.sql(f"select status from revetl.sync_runs where id = {int(run_id)}", db=db)
            return status if status not in ("", "queued", "running") else None
        return wait_for(finished, timeout=timeout, what=f"run {run_id} to finish")


class MockProcess:
    """A stateful mock destination, test/connectors/<connector>/mock.py, in its
    own process: started on a free port (read from its port file), driven
    through its /_mock control API, stopped with SIGTERM."""

    def __init__(self, connector, what, args=()):
        self.dir = tempfile.mkdtemp(prefix=f"revetl-{connector}-")
        port_file = os.path.join(self.dir, "port")
        cmd = [sys.executable, os.path.join(REPO, "test", "connectors", connector, "mock.py"), "--port", "0",
               "--port-file", port_file, *args]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

        def read_port():
            if not os.path.exists(port_file):
                return None
            with open(port_file) as f:
                return f.read().strip() or None
        self.port = int(wait_for(read_port, timeout=15, what=f"{what} to listen"))
        self.url = f"http://127.0.0.1:{self.port}"

    def _call(self, method, path, body=None):
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.url + path, data=data, method=method,
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=10) as r:
            text = r.read().decode()
            return json.loads(text) if text else None

    def requests(self):
        return self._call("GET", "/_mock/requests")["requests"]

    # The control calls every mock shares: its counters, clearing its
    # journal (the store is kept), and the requests that broke the vendor's
    # published contract (for mocks that check one).
    def stats(self):
        return self._call("GET", "/_mock/stats")

    def clear_requests(self):
        self._call("DELETE", "/_mock/requests")

    def contract_violations(self):
        return [{"path": r["path"], "errors": r["contract_errors"]} for r in self.requests()
                if r.get("contract_errors")]

    def configure(self, **config):
        return self._call("POST", "/_mock/config", config)

    def reset(self):
        self._call("POST", "/_mock/reset", {})

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        shutil.rmtree(self.dir, ignore_errors=True)


class MockWebhook(MockProcess):
    """The mock destination in test/connectors/webhook/mock.py."""

    def __init__(self, require_token=None):
        super().__init__("webhook", "mock webhook",
                         ["--require-token", require_token] if require_token else [])

    def records(self):
        """{canonical key json: data} of what the destination holds."""
        out = {}
        for r in self._call("GET", "/_mock/records")["records"]:
            out[json.dumps(r["key"], sort_keys=True)] = r["data"]
        return out

    def record_writes(self):
        return {json.dumps(r["key"], sort_keys=True): r["writes"]
                for r in self._call("GET", "/_mock/records")["records"]}

    def duplicates(self):
        return self._call("GET", "/_mock/records")["duplicates"]

    def clear_faults(self):
        """Drops the queued faults no request has consumed."""
        return self._call("DELETE", "/_mock/faults")["cleared"]

    def in_flight(self):
        """How many requests have arrived and are not answered yet."""
        return self._call("GET", "/_mock/health")["in_flight"]

    def reset(self):
        """Forgets every record, fault and request, once the requests still
        in flight have been answered: a request an earlier test's run left
        on the wire (a run that failed while the next request was out) would
        otherwise land in the next test's journal. Held requests are let go
        (answered 503) by the first reset."""
        super().reset()
        wait_for(lambda: self.in_flight() == 0, timeout=30, interval=0.01,
                 what="the mock's requests in flight to be answered")
        super().reset()

    def release(self):
        """Applies the held requests now (late), in arrival order; returns how many."""
        return self._call("POST", "/_mock/release")["released"]


def key(**columns):
    """The canonical form of a record key, as MockWebhook.records() uses."""
    return json.dumps(columns, sort_keys=True)


class MockHttp(MockProcess):
    """The generic HTTP API mock in test/connectors/http/mock.py. Its calls
    answer (status, body), so that tests can look at refused control calls."""

    def __init__(self):
        super().__init__("http", "mock HTTP API")

    def call(self, method, path, body=None):
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.url + path, data=data, method=method,
                                     headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=10) as r:
                text = r.read().decode()
                return r.status, (json.loads(text) if text else None)
        except urllib.error.HTTPError as e:
            text = e.read().decode()
            return e.code, (json.loads(text) if text else None)

    def requests(self):
        return self.call("GET", "/_mock/requests")[1]["requests"]

    def records(self):
        return self.call("GET", "/_mock/records")[1]["records"]

    def configure(self, **config):
        return self.call("POST", "/_mock/config", config)

    def reset(self):
        self.call("POST", "/_mock/reset", {})


# HubSpot's published OpenAPI contract for CRM objects v3: the mock checks
# every request revetl sends against it.
HUBSPOT_OPENAPI = os.environ.get("REVETL_HUBSPOT_OPENAPI", "/work/shared/vendor-specs/hubspot/contacts.v3.json")


class MockOAuth(MockHttp):
    """The OAuth 2.0 token endpoint and protected API in test/connectors/oauth/mock.py."""

    CLIENT_ID = "revetl-client"
    CLIENT_SECRET = "client-secret-1"

    def __init__(self):
        MockProcess.__init__(self, "oauth", "mock OAuth endpoint")
        self.token_url = self.url + "/oauth/token"

    def state(self):
        return self.call("GET", "/_mock/state")[1]

    def grants(self):
        """Tokens issued so far, all grant types together."""
        return sum(self.state()["grants"].values())

    def revoke_access_tokens(self):
        self.call("POST", "/_mock/revoke_access_tokens", {})

    def revoke_refresh_tokens(self):
        self.call("POST", "/_mock/revoke_refresh_tokens", {})

    def token(self, **form):
        """Asks the token endpoint directly: (status, body)."""
        data = urllib.parse.urlencode(form).encode()
        req = urllib.request.Request(self.token_url, data=data, method="POST",
                                     headers={"Content-Type": "application/x-www-form-urlencoded"})
        try:
            with urllib.request.urlopen(req, timeout=10) as r:
                return r.status, json.loads(r.read().decode())
        except urllib.error.HTTPError as e:
            text = e.read().decode()
            return e.code, (json.loads(text) if text else None)


class MockHubSpot(MockProcess):
    """The stateful HubSpot mock in test/connectors/hubspot/mock.py, validating
    every request against HubSpot's OpenAPI contract (contract_violations())."""

    def __init__(self, token="test-token", seed=0, openapi=HUBSPOT_OPENAPI):
        if openapi and not os.path.exists(openapi):
            raise RuntimeError(f"HubSpot's OpenAPI contract is not at {openapi} (set REVETL_HUBSPOT_OPENAPI)")
        super().__init__("hubspot", "mock HubSpot", ["--token", token, "--seed", str(seed)] +
                         (["--openapi", openapi] if openapi else []))

    def contacts(self, archived=False):
        """{email: properties} of the contacts HubSpot holds (not archived)."""
        out = {}
        for r in self._call("GET", "/_mock/records?object=contacts")["records"]:
            if r["archived"] == archived:
                out[r["properties"].get("email")] = r
        return out

    def created_total(self):
        return self._call("GET", "/_mock/records?object=contacts")["created_total"]["contacts"]


# Zendesk's published OpenAPI contract (Support API, YAML): the mock checks
# every request body revetl sends against it.
ZENDESK_OPENAPI = os.environ.get("REVETL_ZENDESK_OPENAPI", "/work/shared/vendor-specs/zendesk/support-oas.yaml")


class MockZendesk(MockProcess):
    """The stateful Zendesk mock in test/connectors/zendesk/mock.py (bulk user
    jobs, job statuses, rate limit), validating request bodies against
    Zendesk's OpenAPI contract (contract_violations())."""

    def __init__(self, email="agent@example.com", token="test-token", openapi=ZENDESK_OPENAPI):
        if openapi and not os.path.exists(openapi):
            raise RuntimeError(f"Zendesk's OpenAPI contract is not at {openapi} (set REVETL_ZENDESK_OPENAPI)")
        super().__init__("zendesk", "mock Zendesk", ["--email", email, "--token", token] +
                         (["--openapi", openapi] if openapi else []))

    def users(self):
        """{email or external_id: user} of the users Zendesk holds."""
        return {u.get("email") or u.get("external_id"): u for u in self._call("GET", "/_mock/users")["users"]}

    def jobs(self):
        return self._call("GET", "/_mock/jobs")["jobs"]

    def expire(self, job_id=None):
        return self._call("POST", "/_mock/expire", {"id": job_id} if job_id else {})


class MockBraze(MockProcess):
    """The stateful Braze mock in test/connectors/braze/mock.py (/users/track,
    /users/delete, 429 with X-RateLimit-* headers). Braze publishes no
    machine-readable contract: the mock checks the documented shapes itself
    (contract_violations())."""

    def __init__(self, token="test-token"):
        super().__init__("braze", "mock Braze", ["--token", token])

    def users(self):
        """{"external_id:u1": attributes} of the users Braze holds."""
        return self._call("GET", "/_mock/users")["users"]


ITERABLE_OPENAPI = os.environ.get("REVETL_ITERABLE_OPENAPI", "/work/shared/vendor-specs/iterable/api-docs.json")


class MockIterable(MockProcess):
    """The stateful Iterable mock in test/connectors/iterable/mock.py (bulkUpdate with
    failedUpdates, user deletes, list subscribe / unsubscribe, 429 RateLimitExceeded),
    validating request bodies against Iterable's Swagger document (contract_violations())."""

    def __init__(self, api_key="test-key", openapi=ITERABLE_OPENAPI):
        if openapi and not os.path.exists(openapi):
            raise RuntimeError(f"Iterable's API document is not at {openapi} (set REVETL_ITERABLE_OPENAPI)")
        super().__init__("iterable", "mock Iterable", ["--api-key", api_key] +
                         (["--openapi", openapi] if openapi else []))

    def users(self):
        """{"email:a@x.com" or "userId:u1": data fields} of the users Iterable holds."""
        return self._call("GET", "/_mock/users")["users"]

    def members(self, list_id):
        """The sorted user keys on list `list_id`."""
        return self._call("GET", "/_mock/lists")["lists"].get(str(list_id), [])


class MockSegment(MockProcess):
    """The stateful Segment Tracking API mock in test/connectors/segment/mock.py
    (/v1/batch, 32 KB / 500 KB limits, messageId deduplication). Segment
    publishes no machine-readable contract for it: the mock checks the
    documented shapes itself (contract_violations())."""

    def __init__(self, write_key="test-write-key"):
        super().__init__("segment", "mock Segment", ["--write-key", write_key])

    def state(self):
        return self._call("GET", "/_mock/state")


# Customer.io's published Track API OpenAPI: the mock checks every batch
# body revetl sends against it.
CUSTOMERIO_OPENAPI = os.environ.get(
    "REVETL_CUSTOMERIO_OPENAPI", "/work/shared/vendor-specs/customerio/customer-io-track-api-openapi.json")


class MockCustomerIo(MockProcess):
    """The stateful Customer.io Track API mock in test/connectors/customerio/mock.py
    (/api/v2/batch with its size limits, 207 per-item errors, 429), validating
    request bodies against Customer.io's OpenAPI (contract_violations())."""

    def __init__(self, site_id="site-1", api_key="test-key", openapi=CUSTOMERIO_OPENAPI):
        if openapi and not os.path.exists(openapi):
            raise RuntimeError(f"Customer.io's OpenAPI is not at {openapi} (set REVETL_CUSTOMERIO_OPENAPI)")
        super().__init__("customerio", "mock Customer.io", ["--site-id", site_id, "--api-key", api_key] +
                         (["--openapi", openapi] if openapi else []))

    def people(self):
        """{id (or email when the person has no id): attributes} of the people Customer.io holds."""
        return {p.get("id") or p["attributes"].get("email"): p["attributes"]
                for p in self._call("GET", "/_mock/people")["people"]}


# Klaviyo's published OpenAPI (stable.json): the mock checks every request
# body revetl sends against it.
KLAVIYO_OPENAPI = os.environ.get("REVETL_KLAVIYO_OPENAPI", "/work/shared/vendor-specs/klaviyo/stable.json")


class MockKlaviyo(MockProcess):
    """The stateful Klaviyo mock in test/connectors/klaviyo/mock.py (bulk profile
    import jobs, import errors, data privacy deletions, 429 with Retry-After),
    validating request bodies against Klaviyo's OpenAPI (contract_violations())."""

    def __init__(self, api_key="pk_test", openapi=KLAVIYO_OPENAPI):
        if openapi and not os.path.exists(openapi):
            raise RuntimeError(f"Klaviyo's OpenAPI is not at {openapi} (set REVETL_KLAVIYO_OPENAPI)")
        super().__init__("klaviyo", "mock Klaviyo", ["--api-key", api_key] +
                         (["--openapi", openapi] if openapi else []))

    def profiles(self):
        """{email: profile} of the profiles Klaviyo holds."""
        return {p.get("email"): p for p in self._call("GET", "/_mock/profiles")["profiles"]}

    def jobs(self):
        return self._call("GET", "/_mock/jobs")["jobs"]

    def expire(self, job_id=None):
        return self._call("POST", "/_mock/expire", {"id": job_id} if job_id else {})

    def members(self, list_id):
        """The emails of the profiles in list `list_id`, sorted."""
        return self._call("GET", "/_mock/lists")["lists"].get(list_id, [])


# Mailchimp's contract, as the derived OpenAPI of its list endpoints (see
# vendor-specs/mailchimp/SOURCE.md): the mock checks every request against it.
MAILCHIMP_OPENAPI = os.environ.get(
    "REVETL_MAILCHIMP_OPENAPI",
    "/work/shared/vendor-specs/mailchimp/derived-apievangelist-mailchimp-list-id-api-openapi.yml")


class MockMailchimp(MockProcess):
    """The stateful Mailchimp mock in test/connectors/mailchimp/mock.py (batch
    subscribe with errors[], PATCH, archive, tags, the 10-connection limit, the bare
    403 fault), validating requests against the derived OpenAPI (contract_violations())."""

    def __init__(self, api_key="test-key-us6", token="test-oauth-token", openapi=MAILCHIMP_OPENAPI):
        if openapi and not os.path.exists(openapi):
            raise RuntimeError(f"Mailchimp's OpenAPI is not at {openapi} (set REVETL_MAILCHIMP_OPENAPI)")
        super().__init__("mailchimp", "mock Mailchimp", ["--api-key", api_key, "--token", token] +
                         (["--openapi", openapi] if openapi else []))

    def members(self, list_id):
        """{lower-case email: member} of the audience's members (archived ones too,
        with status "archived")."""
        members = self._call("GET", f"/_mock/members?list={list_id}")["members"]
        return {m["email_address"].lower(): m for m in members.values()}

    def tagged(self, list_id, tag):
        """The sorted lower-case emails of the live members holding `tag`."""
        return self._call("GET", "/_mock/tags")["tags"].get(str(list_id), {}).get(tag, [])


# Meta's API spec files (facebook-business-sdk-codegen): the mock checks
# every call against them (test/lib/metaspec.py).
META_SPEC = os.environ.get("REVETL_META_SPEC", "/work/shared/vendor-specs/meta")


class MockMeta(MockProcess):
    """The stateful Meta Graph API mock in test/connectors/meta/mock.py (custom
    audience users add and DELETE, sessions, the Graph error envelope, throttling
    codes, token expiry), checking calls against Meta's spec files
    (contract_violations())."""

    def __init__(self, token="test-token", spec=META_SPEC):
        if spec and not os.path.exists(os.path.join(spec, "CustomAudience.json")):
            raise RuntimeError(f"Meta's API spec files are not in {spec} (set REVETL_META_SPEC)")
        super().__init__("meta", "mock Meta", ["--token", token] + (["--spec", spec] if spec else []))

    def members(self, audience):
        """The members of `audience`, each a {schema key: value} dict, sorted."""
        return self._call("GET", "/_mock/audiences")["audiences"].get(str(audience), [])

    def sessions(self):
        return self._call("GET", "/_mock/sessions")["sessions"]


class MockGoogle(MockProcess):
    """The stateful Google Customer Match mock in test/connectors/google/mock.py (Data
    Manager ingest / remove / request status, Google Ads offline user data jobs, Google's
    OAuth token endpoint, 429 with retryDelay, CONCURRENT_MODIFICATION, partial failures),
    checking bodies against revetl's own description of Google's request messages,
    test/lib/googlespec.py (contract_violations())."""

    CLIENT_ID, CLIENT_SECRET, REFRESH_TOKEN = "google-client", "google-secret", "google-refresh"

    def __init__(self, contract=True):
        super().__init__("google", "mock Google", [] if contract else ["--no-contract"])
        self.token_url = self.url + "/token"

    def members(self, user_list):
        """The members of `user_list`, each a {key: value} dict, sorted."""
        return self._call("GET", "/_mock/lists")["lists"].get(str(user_list), [])

    def jobs(self):
        return self._call("GET", "/_mock/jobs")


SALESFORCE_POSTMAN = os.environ.get(
    "REVETL_SALESFORCE_POSTMAN",
    "/work/shared/vendor-specs/salesforce/postman-salesforce-apis-83bd942/src/collections/salesforce_apis")


class MockSalesforce(MockProcess):
    """The stateful Salesforce mock in test/connectors/salesforce/mock.py
    (OAuth token endpoint naming the mock as instance_url, sObject
    Collections, Bulk API 2.0 jobs), validating requests against Salesforce's
    Postman collection (contract_violations())."""

    CLIENT_ID = "sf-client-id"
    CLIENT_SECRET = "sf-client-secret"
    REFRESH_TOKEN = "sf-refresh-token"

    def __init__(self, postman=SALESFORCE_POSTMAN):
        if postman and not os.path.isdir(postman):
            raise RuntimeError(f"Salesforce's Postman collection is not at {postman} (set REVETL_SALESFORCE_POSTMAN)")
        super().__init__("salesforce", "mock Salesforce", ["--postman", postman] if postman else [])
        self.token_url = self.url + "/services/oauth2/token"

    def records(self, obj):
        return self._call("GET", f"/_mock/records?object={obj}")["records"]

    def jobs(self):
        return self._call("GET", "/_mock/jobs")["jobs"]

    def expire_tokens(self):
        return self._call("POST", "/_mock/expire_tokens", {})


INTERCOM_OPENAPI = os.environ.get("REVETL_INTERCOM_OPENAPI",
                                  "/work/shared/vendor-specs/intercom/api.intercom.io.2.16.yaml")


class MockIntercom(MockProcess):
    """The stateful Intercom mock in test/connectors/intercom/mock.py (contacts
    found by search and written by id, companies upserted on company_id,
    archive and delete, X-RateLimit-* throttling), validating request bodies
    against Intercom's OpenAPI contract (contract_violations())."""

    def __init__(self, token="test-token", openapi=INTERCOM_OPENAPI):
        if openapi and not os.path.exists(openapi):
            raise RuntimeError(f"Intercom's OpenAPI contract is not at {openapi} (set REVETL_INTERCOM_OPENAPI)")
        super().__init__("intercom", "mock Intercom", ["--token", token] + (["--openapi", openapi] if openapi else []))

    def contacts(self):
        return self._call("GET", "/_mock/contacts")["contacts"]

    def companies(self):
        return self._call("GET", "/_mock/companies")["companies"]

    def revoke(self, revoked=True):
        return self._call("POST", "/_mock/revoke", {"revoked": revoked})


PIPEDRIVE_OPENAPI = os.environ.get("REVETL_PIPEDRIVE_OPENAPI", "/work/shared/vendor-specs/pipedrive/openapi-v2.yaml")


class MockPipedrive(MockProcess):
    """The stateful Pipedrive mock in test/connectors/pipedrive/mock.py (API v2
    persons and organizations found by search and written by id, burst and
    daily limits), validating bodies and query parameters against Pipedrive's
    OpenAPI v2 contract (contract_violations())."""

    def __init__(self, token="test-token", oauth_token="oauth-token", openapi=PIPEDRIVE_OPENAPI):
        if openapi and not os.path.exists(openapi):
            raise RuntimeError(f"Pipedrive's OpenAPI contract is not at {openapi} (set REVETL_PIPEDRIVE_OPENAPI)")
        super().__init__("pipedrive", "mock Pipedrive", ["--token", token, "--oauth-token", oauth_token] +
                         (["--openapi", openapi] if openapi else []))

    CLIENT_ID = "pd-client"
    CLIENT_SECRET = "pd-client-secret"
    REFRESH_TOKEN = "pd-refresh-token"

    def expire_tokens(self):
        return self._call("POST", "/_mock/expire_tokens", {})

    def records(self, obj="persons", deleted=False):
        return [r for r in self._call("GET", f"/_mock/records?object={obj}")["records"] if deleted or not r["deleted"]]

    def revoke(self, revoked=True):
        return self._call("POST", "/_mock/revoke", {"revoked": revoked})


MARKETO_OPENAPI = os.environ.get("REVETL_MARKETO_OPENAPI", "/work/shared/vendor-specs/marketo/swagger-mapi.json")


class MockMarketo(MockProcess):
    """The stateful Marketo mock in test/connectors/marketo/mock.py (Identity
    token endpoint, Sync Leads, Delete Leads, HTTP 200 error codes, the 20-s,
    daily and concurrency limits), validating request bodies against
    Marketo's Swagger contract (contract_violations())."""

    CLIENT_ID = "mkto-client-id"
    CLIENT_SECRET = "mkto-client-secret"

    def __init__(self, openapi=MARKETO_OPENAPI):
        if openapi and not os.path.exists(openapi):
            raise RuntimeError(f"Marketo's Swagger contract is not at {openapi} (set REVETL_MARKETO_OPENAPI)")
        super().__init__("marketo", "mock Marketo", ["--openapi", openapi] if openapi else [])
        self.token_url = self.url + "/identity/oauth/token"

    def leads(self):
        return self._call("GET", "/_mock/leads")["leads"]

    def expire_tokens(self):
        return self._call("POST", "/_mock/expire_tokens", {})

    def members(self, list_id):
        """The lead ids in static list `list_id`, sorted."""
        return self._call("GET", "/_mock/lists")["lists"].get(str(list_id), [])


OUTREACH_OPENAPI = os.environ.get("REVETL_OUTREACH_OPENAPI", "/work/shared/vendor-specs/outreach/outreach.oas.json")


class MockOutreach(MockProcess):
    """The stateful Outreach mock in test/connectors/outreach/mock.py (OAuth
    token endpoint with rotating refresh tokens, JSON:API prospects and
    accounts, filters, X-RateLimit-* headers and 429), validating request
    bodies against Outreach's OpenAPI contract (contract_violations())."""

    CLIENT_ID = "or-client-id"
    CLIENT_SECRET = "or-client-secret"
    REFRESH_TOKEN = "or-refresh-token"

    def __init__(self, openapi=OUTREACH_OPENAPI):
        if openapi and not os.path.exists(openapi):
            raise RuntimeError(f"Outreach's OpenAPI contract is not at {openapi} (set REVETL_OUTREACH_OPENAPI)")
        super().__init__("outreach", "mock Outreach", ["--openapi", openapi] if openapi else [])
        self.token_url = self.url + "/oauth/token"
        self.api_url = self.url + "/api/v2"

    def records(self, kind="prospects"):
        return self._call("GET", f"/_mock/records?type={kind}")["records"]

    def seed(self, kind, attributes):
        """A record made in Outreach itself; returns its id."""
        return self._call("POST", "/_mock/records", {"type": kind, "attributes": attributes})["id"]

    def expire_tokens(self):
        return self._call("POST", "/_mock/expire_tokens", {})

    def refresh_token(self):
        return self._call("GET", "/_mock/refresh_token")["refresh_token"]
