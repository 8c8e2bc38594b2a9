"""Many users ask for a desktop within one second: VNCSlurmSpawner vs batchspawner's SlurmSpawner.

A JupyterHub of its own (ports 8100/8101/8102, state in a temporary directory, the test bed's Slurm),
once with each spawner, for each N: N users (load01..loadNN, created if missing) POST a spawn through
the hub's REST API from N threads at once. Every job asks for half a node's memory, so only four fit on
the two-node test bed and the rest must queue. Measured per run:

- time until every desktop that fits is ready, spawn -> ready median and p95;
- hub CPU seconds (the hub process and the commands it ran) from the POSTs to the end of a hold with
  the queue full, and the event loop's longest stall (the hub's own "Event loop was unresponsive"
  warnings, threshold 0.1 s), apart for the burst (until every POST is answered: JupyterHub's own work
  per spawn, the same for both spawners) and for the rest of that window (queued spawns polling);
- squeue calls (a logging wrapper in front of the real squeue, first on the hub's PATH for ours, an
  absolute batch_query_cmd for plain SlurmSpawner, whose sudo would bypass PATH);
- what each spawn ended as: ready, queued with Slurm's reason visible in its progress, a clear failure,
  or lost (neither: no job behind a pending spawn, or gone without a message);
- that the queue moves: the ready desktops are stopped and queued ones take their place.

Prints one table row per N and kind (the columns above, and the window and how long the queue took to
move), a queued spawn's progress message, the hub CPU of ours over plain at each N and each kind's growth
from the smallest N to the largest, and last ``RESULT <kind>_<figure>_N<n>=... cpu_ours_vs_plain_N<n>=...
<kind>_cpu_growth_N<lo>_to_N<hi>=...``. Every hub's log is kept in /tmp/jvnc-load-logs.

    /opt/jupyter-vnc/venv/bin/python benchmarks/load_spawn.py [--sizes 10,25,50] [--hold 20]

Needs root and the test bed (devstack/install; Slurm is started if needed). ~3-4 minutes per N and kind.
Singleuser servers run with --VNCDesktop.prestart=False for both kinds: the spawn path is measured, not
XFCE start-up.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path

import requests

REPO = Path(__file__).resolve().parents[1]
VENV = Path(sys.executable).parent.parent
PORTS = {"hub": 8100, "api": 8101, "proxy_api": 8102}
CAPACITY = 4  # two nodes, two half-node jobs each
LOGS = Path(tempfile.gettempdir()) / "jvnc-load-logs"  # each run's hub log, kept for a closer look
TICK = os.sysconf("SC_CLK_TCK")
# batchspawner-singleuser starts the server on 0.0.0.0; every node is this machine (as in the demo).
PROLOGUE = 'export JUPYTERHUB_SERVICE_URL="${JUPYTERHUB_SERVICE_URL/0.0.0.0/127.0.0.1}"'


def log(message: str) -> None:
    print(message, flush=True)


def ensure_users(n: int) -> list[str]:
    names = [f"load{i:02d}" for i in range(1, n + 1)]
    for name in names:
        if subprocess.run(["id", name], capture_output=True).returncode != 0:
            subprocess.run(["useradd", "-m", "-s", "/bin/bash", name], check=True)
    return names


def node_memory_gb() -> int:
    out = subprocess.run(["scontrol", "show", "node", "node1"], capture_output=True, text=True).stdout
    return int(re.search(r"RealMemory=(\d+)", out).group(1)) // 1024  # type: ignore[union-attr]


def hub_config(
    kind: str,
    state: Path,
    token: str,
    wrapper: Path,
    memory_gb: int,
    extra: str = "",
    ports: dict | None = None,
) -> Path:
    ports = ports or PORTS
    common = f"""
c = get_config()  # noqa
c.JupyterHub.bind_url = "http://127.0.0.1:{ports["hub"]}"
c.JupyterHub.hub_bind_url = "http://127.0.0.1:{ports["api"]}"
c.ConfigurableHTTPProxy.api_url = "http://127.0.0.1:{ports["proxy_api"]}"
c.ConfigurableHTTPProxy.pid_file = "{state}/proxy.pid"
c.JupyterHub.db_url = "sqlite:///{state}/hub.sqlite"
c.JupyterHub.cookie_secret_file = "{state}/cookie_secret"
c.JupyterHub.authenticator_class = "dummy"
c.Authenticator.allow_all = True
c.JupyterHub.services = [{{"name": "bench", "api_token": "{token}"}}]
c.JupyterHub.load_roles = [{{"name": "bench", "services": ["bench"],
    "scopes": ["admin:users", "admin:servers", "admin:server_state", "list:users", "read:users",
               "read:servers", "access:servers"]}}]
c.JupyterHub.cleanup_servers = True
c.JupyterHub.tornado_settings = {{"slow_spawn_timeout": 0}}
c.PeriodicMetricsCollector.event_loop_interval_log_threshold = 0.1
c.Spawner.start_timeout = 900
c.Spawner.http_timeout = 300
c.Spawner.poll_interval = 10
c.Spawner.cmd = ["{VENV}/bin/jupyterhub-singleuser"]
c.Spawner.args = ["--VNCDesktop.prestart=False"]
"""
    if kind == "ours":
        spawner = f"""
c.JupyterHub.spawner_class = "vnc-slurm"
c.VNCSlurmSpawner.batchspawner_singleuser_cmd = "{VENV}/bin/jupyter-vnc-singleuser"
c.VNCSlurmSpawner.req_partition = "vnc"
c.VNCSlurmSpawner.max_memory_gb = {memory_gb}
c.VNCSlurmSpawner.default_memory_gb = {memory_gb}
c.VNCSlurmSpawner.default_gpus = 0
c.VNCSlurmSpawner.state_exechost_exp = "127.0.0.1"
c.VNCSlurmSpawner.req_prologue = {PROLOGUE!r}
# The one squeue per poll for every desktop, as the hub's own account (root here), as a site turns it on.
c.VNCSlurmSpawner.query_exec_prefix = ""
"""
    else:
        spawner = f"""
c.JupyterHub.spawner_class = "batchspawner.SlurmSpawner"
c.SlurmSpawner.batchspawner_singleuser_cmd = "{VENV}/bin/batchspawner-singleuser"
c.SlurmSpawner.req_partition = "vnc"
c.SlurmSpawner.req_memory = "{memory_gb}G"
c.SlurmSpawner.req_runtime = "1:00:00"
c.SlurmSpawner.batch_query_cmd = "{wrapper} -h -j {{job_id}} -o '%T %B'"
c.SlurmSpawner.state_exechost_exp = "127.0.0.1"
c.SlurmSpawner.req_prologue = {PROLOGUE!r}
"""
    path = state / "jupyterhub_config.py"
    path.write_text(common + spawner + extra)
    return path


class Hub:
    """A JupyterHub of the benchmark's own. Given the ``token`` and ``state`` of an earlier one, it is
    that hub started again (same database, same proxy)."""

    def __init__(
        self,
        kind: str,
        state: Path,
        wrapper: Path,
        memory_gb: int,
        extra: str = "",
        token: str = "",
        ports: dict | None = None,
    ) -> None:
        ports = ports or PORTS
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", ports["hub"])) == 0 and not token:
                raise SystemExit(
                    f"port {ports['hub']} is taken (a hub of an interrupted run?); stop it first"
                )
        self.token = token or secrets.token_hex(16)
        config = hub_config(kind, state, self.token, wrapper, memory_gb, extra, ports)
        self.log_path = state / "hub.log"
        env = {**os.environ, "PATH": f"{wrapper.parent}:{VENV}/bin:{os.environ['PATH']}"}
        with open(self.log_path, "ab") as out:
            self.proc = subprocess.Popen(
                [f"{VENV}/bin/jupyterhub", "-f", str(config)], cwd=state, env=env, stdout=out,
                stderr=subprocess.STDOUT, start_new_session=True,
            )  # fmt: skip
        self.base = f"http://127.0.0.1:{ports['hub']}"
        self.url = f"{self.base}/hub/api"
        self.http = requests.Session()
        self.http.headers["Authorization"] = f"token {self.token}"
        deadline = time.monotonic() + 60
        while True:
            try:
                if self.http.get(self.url, timeout=2).ok:
                    break
            except requests.RequestException:
                pass
            if time.monotonic() > deadline or self.proc.poll() is not None:
                raise SystemExit(f"the {kind} hub did not start:\n{self.log_path.read_text()[-3000:]}")
            time.sleep(0.3)

    def api(self, method: str, path: str, **kwargs: object) -> requests.Response:
        return self.http.request(method, self.url + path, timeout=120, **kwargs)  # type: ignore[arg-type]

    def cpu_seconds(self) -> float:
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return sum(int(f) for f in fields[11:15]) / TICK  # utime stime cutime cstime

    def max_lags(self, since: int, split_at: float) -> tuple[float, float]:
        return event_loop_stalls(self.log_path.read_bytes()[since:].decode(errors="replace"), split_at)

    def servers(self) -> dict[str, dict]:
        users = self.api("GET", "/users?include_stopped_servers=0").json()
        return {u["name"]: u["servers"].get("", {}) for u in users}

    def last_progress(self, user: str) -> str:
        """The newest progress message of a pending spawn (its event stream, read for 3 s)."""
        last = ""
        deadline = time.monotonic() + 3  # a stream that repeats itself every second never times out
        try:
            with self.http.get(
                f"{self.url}/users/{user}/server/progress", stream=True, timeout=(5, 3)
            ) as response:
                for line in response.iter_lines(decode_unicode=True):
                    if line and line.startswith("data:"):
                        last = json.loads(line[5:]).get("message", "")
                    if time.monotonic() > deadline:
                        break
        except requests.RequestException:
            pass
        return last

    def stop(self) -> None:
        os.killpg(self.proc.pid, signal.SIGTERM)  # cleanup_servers: the hub stops its servers
        try:
            self.proc.wait(120)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()


STALL = re.compile(
    r"\[W (\S+ \S+) JupyterHub metrics:\d+\] Event loop was unresponsive for at least ([\d.]+)s"
)


def event_loop_stalls(log_text: str, split_at: float) -> tuple[float, float]:
    """The longest event-loop stalls the hub logged before and after ``split_at`` (wall clock): while
    it answers the burst of spawn requests (JupyterHub's own work per spawn: OAuth client, tokens,
    database) and afterwards, while every queued spawn waits on Slurm (the spawner's part)."""
    burst, steady = 0.0, 0.0
    for stamp, seconds in STALL.findall(log_text):
        at = datetime.strptime(stamp, "%Y-%m-%d %H:%M:%S.%f").timestamp()
        if at <= split_at:
            burst = max(burst, float(seconds))
        else:
            steady = max(steady, float(seconds))
    return burst, steady


def slurm_jobs(users: list[str]) -> dict[str, str]:
    """user -> state of their (newest) job, for the load users."""
    out = subprocess.run(
        ["squeue", "-h", "-u", ",".join(users), "-o", "%u %T"], capture_output=True, text=True
    ).stdout
    return dict(line.split() for line in out.splitlines() if line.strip())


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))] if ordered else float("nan")


def run(kind: str, users: list[str], wrapper: Path, calls: Path, memory_gb: int, hold: float) -> dict:
    with tempfile.TemporaryDirectory(prefix=f"jvnc-load-{kind}-") as tmp:
        state = Path(tmp)
        hub = Hub(kind, state, wrapper, memory_gb)
        try:
            hub.api("POST", "/users", json={"usernames": users})
            calls.write_text("")
            log_start = hub.log_path.stat().st_size
            cpu0 = hub.cpu_seconds()
            body = {"gpus": 0, "memory_gb": memory_gb, "hours": 1} if kind == "ours" else {}
            barrier = threading.Barrier(len(users))
            posted: dict[str, float] = {}

            def spawn(user: str) -> int:
                barrier.wait()
                posted[user] = time.monotonic()
                return hub.api("POST", f"/users/{user}/server", json=body).status_code

            with ThreadPoolExecutor(len(users)) as pool:
                codes = list(pool.map(spawn, users))
            answered = time.time()  # every POST has its answer: the burst is over
            t0 = min(posted.values())
            fits = min(CAPACITY, len(users))
            ready: dict[str, float] = {}
            deadline = time.monotonic() + 600
            while len(ready) < fits and time.monotonic() < deadline:
                for user, server in hub.servers().items():
                    if server.get("ready") and user not in ready:
                        ready[user] = time.monotonic()
                time.sleep(0.5)
            all_fit = time.monotonic() - t0
            time.sleep(hold)  # the queue stays full: every pending spawn keeps polling
            cpu = hub.cpu_seconds() - cpu0
            burst_lag, lag = hub.max_lags(log_start, answered)
            squeues = len(calls.read_text().split())
            window = time.monotonic() - t0

            servers, jobs = hub.servers(), slurm_jobs(users)
            pending = [u for u in users if u not in ready and servers.get(u, {}).get("pending") == "spawn"]
            with ThreadPoolExecutor(16) as pool:
                messages = dict(zip(pending, pool.map(hub.last_progress, pending), strict=True))
            with_reason = [u for u in pending if re.search(r"\((Resources|Priority)\)", messages[u])]
            failed = [u for u in users if u not in ready and u not in pending]
            log_text = hub.log_path.read_bytes()[log_start:].decode(errors="replace")
            clear = [u for u in failed if re.search(rf"{u}.*(failed|Failed)", log_text)]
            lost = [u for u in pending if jobs.get(u) not in {"PENDING", "CONFIGURING", "RUNNING"}]
            lost += [u for u in failed if u not in clear]

            # The queue moves: stop the ready ones, and as many queued ones start.
            moved, move_s = 0, float("nan")
            if pending:
                first = list(ready)
                t1 = time.monotonic()
                for user in first:
                    hub.api("DELETE", f"/users/{user}/server")
                want = min(len(first), len(pending))
                while time.monotonic() - t1 < 300:
                    now = hub.servers()
                    moved = sum(1 for u in pending if now.get(u, {}).get("ready"))
                    if moved >= want:
                        break
                    time.sleep(0.5)
                move_s = time.monotonic() - t1
        finally:
            hub.stop()
            LOGS.mkdir(exist_ok=True)
            shutil.copy(hub.log_path, LOGS / f"hub-{kind}-N{len(users)}.log")
        left = slurm_jobs(users)
        for user in left:  # scancel takes one user at a time
            subprocess.run(["scancel", "-u", user], check=False)
    spawn_ready = [ready[u] - posted[u] for u in ready]
    return {
        "posted_in_s": max(posted.values()) - t0,
        "http": sorted(set(codes)),
        "ready": len(ready),
        "all_fit_s": all_fit,
        "median_s": statistics.median(spawn_ready) if spawn_ready else float("nan"),
        "p95_s": percentile(spawn_ready, 0.95),
        "cpu_s": cpu,
        "window_s": window,
        "lag_s": lag,
        "burst_lag_s": burst_lag,
        "squeue": squeues,
        "pending": len(pending),
        "with_reason": len(with_reason),
        "failed": len(failed),
        "lost": len(lost),
        "moved": moved,
        "move_s": move_s,
        "orphans": len(left),
        "example": messages[pending[0]] if pending else "",
    }


def cpu_summary(results: dict[str, float], sizes: list[int], kinds: list[str]) -> dict[str, float]:
    """Hub CPU, ours over plain at each N, and each kind's growth from the smallest N to the largest:
    printed, and returned for the RESULT line."""
    out: dict[str, float] = {}
    lo, hi = min(sizes), max(sizes)
    for kind in kinds:
        if lo != hi and results.get(f"{kind}_cpu_s_N{lo}"):
            out[f"{kind}_cpu_growth_N{lo}_to_N{hi}"] = round(
                results[f"{kind}_cpu_s_N{hi}"] / results[f"{kind}_cpu_s_N{lo}"], 2
            )
    if {"ours", "plain"} <= set(kinds):
        for n in sizes:
            if results.get(f"plain_cpu_s_N{n}"):
                out[f"cpu_ours_vs_plain_N{n}"] = round(
                    results[f"ours_cpu_s_N{n}"] / results[f"plain_cpu_s_N{n}"], 2
                )
    if out:
        log("hub CPU: " + ", ".join(f"{k} {v:g}" for k, v in out.items()))
    return out


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", default="10,25,50", help="numbers of users (default 10,25,50)")
    parser.add_argument("--hold", type=float, default=20, help="seconds with the queue full (default 20)")
    parser.add_argument("--kinds", default="ours,plain")
    args = parser.parse_args()
    if os.geteuid() != 0:
        sys.exit("run as root (it creates test users, starts a hub and submits jobs as the users)")
    # A timeout's SIGTERM must still run the clean-up (stop the hub, cancel the jobs).
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    subprocess.run([REPO / "devstack" / "slurm", "start"], check=True, capture_output=True)
    sizes = [int(n) for n in args.sizes.split(",")]
    users = ensure_users(max(sizes))
    memory_gb = node_memory_gb() // 2
    sys.path.insert(0, str(REPO / "benchmarks"))
    from poll_scaling import counting_squeue

    results: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="jvnc-load-squeue-") as tmp:
        wrapper, calls = counting_squeue(Path(tmp))
        log(f"# two nodes, {memory_gb} GB per job: {CAPACITY} desktops fit at once; 2-core machine")
        header = (
            f"{'N':>3} {'kind':<5} {'ready':>5} {'all fit s':>9} {'med s':>6} {'p95 s':>6} {'hub CPU s':>9} "
            f"{'window s':>8} {'burst lag':>9} {'lag max s':>9} {'squeue':>6} {'queued':>6} {'w/reason':>8} "
            f"{'failed':>6} {'lost':>4} {'moved':>5} {'move s':>6} {'orphans':>7}"
        )
        log(header)
        for n in sizes:
            for kind in args.kinds.split(","):
                r = run(kind, users[:n], wrapper, calls, memory_gb, args.hold)
                log(
                    f"{n:>3} {kind:<5} {r['ready']:>5} {r['all_fit_s']:>9.1f} {r['median_s']:>6.1f} "
                    f"{r['p95_s']:>6.1f} {r['cpu_s']:>9.1f} {r['window_s']:>8.0f} {r['burst_lag_s']:>9.2f} "
                    f"{r['lag_s']:>9.2f} "
                    f"{r['squeue']:>6} {r['pending']:>6} {r['with_reason']:>8} {r['failed']:>6} "
                    f"{r['lost']:>4} {r['moved']:>5} {r['move_s']:>6.1f} {r['orphans']:>7}"
                )
                if r["example"]:
                    log(f"      a queued spawn's progress says: {r['example']!r}")
                for key in (
                    "all_fit_s",
                    "median_s",
                    "p95_s",
                    "cpu_s",
                    "burst_lag_s",
                    "lag_s",
                    "squeue",
                    "lost",
                    "orphans",
                ):
                    results[f"{kind}_{key}_N{n}"] = round(float(r[key]), 2)
    results.update(cpu_summary(results, sizes, args.kinds.split(",")))
    log("RESULT " + " ".join(f"{k}={v:g}" for k, v in sorted(results.items())))
    return 0


if __name__ == "__main__":
    sys.exit(main())
