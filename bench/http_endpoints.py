"""The endpoints issue 16 measures revetl against, as a user would: nginx answering 200 (one
worker process), and wrk's request rate on that same nginx as the wire's ceiling.

Both come from Debian (`apt-get install nginx-light wrk`); a bench that finds them missing
falls back to bench/sink.c and bench/blast.c and says so. nginx runs unprivileged from a
configuration written into the bench's own directory (no port 80, no /var/log), and is
stopped with the bench.
"""

import os
import re
import shutil
import signal
import socket
import subprocess

from delivery_common import CLK_TCK, proc_cpu_ticks, wait_for

NGINX = shutil.which("nginx") or ("/usr/sbin/nginx" if os.path.exists("/usr/sbin/nginx") else None)
WRK = shutil.which("wrk")


def available():
    """True when both nginx and wrk are installed."""
    return NGINX is not None and WRK is not None


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class NginxSink:
    """nginx with one worker answering every request 200 {"accepted":1} over keep-alive, reading and
    discarding bodies of any size a batch may have."""

    def __init__(self, workdir):
        self.dir = os.path.join(workdir, "nginx")
        os.makedirs(os.path.join(self.dir, "logs"), exist_ok=True)
        port = free_port()
        conf = os.path.join(self.dir, "nginx.conf")
        with open(conf, "w") as f:
            f.write(f"""daemon off;
worker_processes 1;
pid {self.dir}/nginx.pid;
error_log {self.dir}/logs/error.log warn;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    client_body_temp_path {self.dir}/body;
    proxy_temp_path {self.dir}/proxy;
    fastcgi_temp_path {self.dir}/fastcgi;
    uwsgi_temp_path {self.dir}/uwsgi;
    scgi_temp_path {self.dir}/scgi;
    client_max_body_size 256m;
    client_body_buffer_size 4m;
    keepalive_requests 100000000;
    keepalive_timeout 300s;
    server {{
        listen 127.0.0.1:{port};
        location / {{
            default_type application/json;
            return 200 '{{"accepted":1}}';
        }}
    }}
}}
""")
        self.proc = subprocess.Popen([NGINX, "-p", self.dir, "-e", os.path.join(self.dir, "logs", "error.log"),
                                      "-c", conf], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.url = f"http://127.0.0.1:{port}/hook"

        def listening():
            if self.proc.poll() is not None:
                raise RuntimeError(f"nginx exited: {self.proc.stderr.read()}")
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1):
                    return bool(self.worker_pids())
            except OSError:
                return False
        wait_for(listening, timeout=10, what="nginx to listen")

    def version(self):
        p = subprocess.run([NGINX, "-v"], capture_output=True, text=True)
        return (p.stderr or p.stdout).strip().replace("nginx version: ", "")

    def worker_pids(self):
        try:
            with open(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children") as f:
                return [int(p) for p in f.read().split()]
        except OSError:
            return []

    def cpu_s(self):
        ticks = 0
        for pid in [self.proc.pid] + self.worker_pids():
            try:
                ticks += proc_cpu_ticks(pid)
            except OSError:
                pass
        return ticks / CLK_TCK

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGQUIT)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)


def wrk_rate(url, body_file, connections, seconds=3.0, threads=1):
    """wrk's requests per second POSTing `body_file` to `url` for `seconds` over `connections`
    keep-alive connections."""
    script = body_file + ".lua"
    with open(script, "w") as f:
        f.write(f"""local f = io.open("{body_file}", "rb")
wrk.method = "POST"
wrk.body = f:read("*a")
f:close()
wrk.headers["Content-Type"] = "application/json"
""")
    p = subprocess.run([WRK, f"-t{threads}", f"-c{connections}", f"-d{max(1, int(round(seconds)))}s", "-s", script, url],
                       capture_output=True, text=True, timeout=seconds + 60)
    m = re.search(r"Requests/sec:\s+([0-9.]+)", p.stdout)
    errors = re.search(r"Non-2xx or 3xx responses:\s+([0-9]+)", p.stdout)
    if p.returncode != 0 or not m or errors:
        raise RuntimeError(f"wrk failed: {p.stdout} {p.stderr}")
    return float(m.group(1))


def wrk_version():
    p = subprocess.run([WRK, "-v"], capture_output=True, text=True)
    return (p.stdout or p.stderr).strip().splitlines()[0]
