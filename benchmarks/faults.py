"""Faults under live desktops: what survives, what is orphaned, and what each user is told, and when.

A hub of its own (load_spawn.Hub: ports 8100-8102) with VNCSlurmSpawner, a Redis of its own with a
password (devstack/redis on port 16394, state in a temporary directory), the test bed's Slurm, poll
interval 5 s, cleanup_servers off (desktops outlive the hub, as in production). Four users each get a
desktop (Xvnc + XFCE prestarted in the job); then, one after the other, with the four restored between:

  slurmctld stopped for 60 s | the hub SIGKILLed and started again | Redis stopped for 60 s |
  Redis restarted empty | a job reaching its walltime (the admin shortens it) | the single-user server
  SIGKILLed | Xvnc SIGKILLed | one slurmd SIGKILLed (node lost)

One row per fault: sessions before and after, lost (Slurm still runs the job but the hub no longer has
the server), orphaned jobs (in Slurm, unknown to the hub), orphaned processes (of the users, outside
every live job), and what the user was told, after how many seconds (the hub's message for the "not
running" page, from its log, or the desktop's own status for a crashed Xvnc). Prints that table in
Markdown and last ``RESULT lost=... orphan_jobs=... orphan_procs=...``, the totals over every row.

    /opt/jupyter-vnc/venv/bin/python benchmarks/faults.py

Needs root and the test bed (devstack/install); ~15 minutes. SlurmdTimeout is 30 s on the test bed, so
a lost node is declared DOWN within about a minute.
"""

from __future__ import annotations

import asyncio
import os
import pwd
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))
sys.path.insert(0, str(REPO))

from load_spawn import Hub, ensure_users, node_memory_gb  # noqa: E402
from poll_scaling import counting_squeue  # noqa: E402

from jupyter_vnc.registry.redis import RedisRegistry  # noqa: E402

SLURM_STATE = Path(os.environ.get("JVNC_STATE", "/var/lib/jupyter-vnc-dev")) / "slurm"
REDIS_PORT = "16394"
POLL = 5
USERS = 4


def log(message: str) -> None:
    print(message, flush=True)


def devstack(*args: str, env: dict[str, str] | None = None) -> None:
    subprocess.run([str(REPO / "devstack" / args[0]), *args[1:]], check=True, capture_output=True, env=env)


def pid_of(path: Path) -> int:
    return int(path.read_text().strip())


def squeue(users: list[str]) -> dict[str, tuple[str, str, str]]:
    """job id -> (user, state, node) for the users' jobs."""
    out = subprocess.run(
        ["squeue", "-h", "-u", ",".join(users), "-o", "%i %u %T %N"], capture_output=True, text=True
    ).stdout
    return {
        f[0]: (f[1], f[2], f[3] if len(f) > 3 else "") for f in (line.split() for line in out.splitlines())
    }


def environ(pid: int) -> dict[str, str]:
    try:
        raw = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    except OSError:
        return {}
    return dict(v.decode(errors="replace").split("=", 1) for v in raw if b"=" in v)


def processes_of(users: list[str]) -> list[tuple[int, str, dict[str, str]]]:
    uids = {pwd.getpwnam(u).pw_uid for u in users}
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if entry.stat().st_uid not in uids:
                continue
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
            name = (entry / "comm").read_text().strip()
        except OSError:
            continue
        if state not in {"Z", "X"}:
            found.append((int(entry.name), name, environ(int(entry.name))))
    return found


def find_process(job_id: str, pattern: str, users: list[str]) -> int:
    """The process of the job whose command line matches ``pattern`` (the oldest, if several)."""
    for pid, _, env in sorted(processes_of(users)):
        try:
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if env.get("SLURM_JOB_ID") == job_id and re.search(pattern, argv):
            return pid
    raise RuntimeError(f"no process matching {pattern!r} in job {job_id}")


class Bed:
    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.users = ensure_users(USERS)
        self.memory_gb = node_memory_gb() // 2  # two desktops per node: a lost node takes two of four
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", int(REDIS_PORT))) == 0:
                raise SystemExit(
                    f"port {REDIS_PORT} is taken (a Redis of an interrupted run?); stop it first"
                )
        self.redis_env = {**os.environ, "JVNC_STATE": str(tmp / "redis-state"), "JVNC_REDIS_PORT": REDIS_PORT}
        devstack("redis", "start", env=self.redis_env)
        self.redis_password = (tmp / "redis-state" / "redis" / "password").read_text().strip()
        (tmp / "squeue").mkdir()
        self.wrapper, _ = counting_squeue(tmp / "squeue")
        (tmp / "hub").mkdir()
        self.extra = f"""
c.VNCSlurmSpawner.registry_url = "redis://127.0.0.1:{REDIS_PORT}/0"
c.VNCSlurmSpawner.registry_password_file = "{tmp}/redis-state/redis/password"
c.Spawner.poll_interval = {POLL}
c.JupyterHub.cleanup_servers = False
c.Spawner.args = []
"""
        try:
            self.hub = self.start_hub()
            self.hub.api("POST", "/users", json={"usernames": self.users})
        except BaseException:
            devstack("redis", "stop", env=self.redis_env)
            raise

    def start_hub(self, token: str = "") -> Hub:
        return Hub("ours", self.tmp / "hub", self.wrapper, self.memory_gb, extra=self.extra, token=token)

    # --- what the hub and Slurm say --------------------------------------------------------------
    def servers(self) -> dict[str, dict]:
        out = {}
        for user in self.users:
            model = self.hub.api("GET", f"/users/{user}").json()
            out[user] = model.get("servers", {}).get("", {})
        return out

    def ensure_sessions(self, timeout: float = 300) -> None:
        for user, server in self.servers().items():
            if not server:
                self.hub.api(
                    "POST", f"/users/{user}/server", json={"gpus": 0, "memory_gb": self.memory_gb, "hours": 1}
                )
        deadline = time.monotonic() + timeout
        while not all(s.get("ready") for s in self.servers().values()):
            if time.monotonic() > deadline:
                raise RuntimeError(f"sessions not ready: {self.servers()}")
            time.sleep(1)

    def tally(self) -> dict[str, object]:
        servers, jobs = self.servers(), squeue(self.users)
        known = {str(s.get("state", {}).get("job_id")) for s in servers.values() if s}
        live = {j for j, (_, state, _) in jobs.items() if state in {"RUNNING", "PENDING", "CONFIGURING"}}
        ready = [u for u, s in servers.items() if s.get("ready")]
        lost = [
            u for u, (user_jobs) in ((u, [j for j, v in jobs.items() if v[0] == u and v[1] == "RUNNING"])
                                     for u in self.users)
            if user_jobs and u not in ready
        ]  # fmt: skip
        orphan_jobs = sorted(live - known)
        orphan_procs = [
            f"{name}({pid})"
            for pid, name, env in processes_of(self.users)
            if env.get("SLURM_JOB_ID") not in live and name not in {"sshd", "systemd", "(sd-pam)"}
        ]
        return {"ready": len(ready), "lost": lost, "orphan_jobs": orphan_jobs, "orphan_procs": orphan_procs}

    def told(self, offset: int, user: str, since: float, wait: float = 90) -> tuple[str, float | None]:
        """The hub's message about ``user``'s desktop ending, and seconds from ``since`` (wall clock)."""
        deadline = time.monotonic() + wait
        pattern = re.compile(rf"\[W (\S+ \S+) JupyterHub spawner:\d+\] Desktop of {user}: (.*)")
        while time.monotonic() < deadline:
            text = self.hub.log_path.read_bytes()[offset:].decode(errors="replace")
            m = pattern.search(text)
            if m:
                at = datetime.strptime(m.group(1), "%Y-%m-%d %H:%M:%S.%f").timestamp()
                return m.group(2), at - since
            time.sleep(0.5)
        return "(nothing)", None

    def desktop_status(self, user: str) -> dict:
        return self.hub.http.get(f"http://127.0.0.1:8100/user/{user}/vnc/api/status", timeout=30).json()

    def registry_entries(self) -> int:
        async def count() -> int:
            registry = RedisRegistry(f"redis://127.0.0.1:{REDIS_PORT}/0", password=self.redis_password)
            try:
                return len(await registry.sessions())
            finally:
                await registry.close()

        return asyncio.run(count())

    def close(self) -> None:
        for user in self.users:
            self.hub.api("DELETE", f"/users/{user}/server")
        deadline = time.monotonic() + 120
        while squeue(self.users) and time.monotonic() < deadline:
            time.sleep(1)
        self.hub.stop()
        for user in squeue(self.users).values():
            subprocess.run(["scancel", "-u", user[0]], check=False)
        devstack("redis", "stop", env=self.redis_env)


def fault_rows(bed: Bed) -> list[tuple[str, int, dict, str, float | None]]:
    rows = []

    def run(
        name: str, fault: Callable[[int, float], tuple[str, float | None]], settle: float = 2 * POLL
    ) -> None:
        bed.ensure_sessions()
        before = bed.tally()["ready"]
        offset = bed.hub.log_path.stat().st_size
        log(f"# {name} ...")
        try:
            told, within = fault(offset, time.time())
        except Exception as e:  # one fault that cannot be staged must not cost the other rows
            told, within = f"(could not run: {e})", None
        time.sleep(settle)
        rows.append((name, before, bed.tally(), told, within))  # type: ignore[arg-type]

    def slurmctld_down(offset: int, t0: float) -> tuple[str, float | None]:
        os.kill(pid_of(SLURM_STATE / "slurmctld.pid"), signal.SIGTERM)
        time.sleep(60)
        during = bed.tally()["ready"]
        devstack("slurm", "start")
        return f"nothing (desktops kept working; {during} ready during the outage)", None

    def hub_killed(offset: int, t0: float) -> tuple[str, float | None]:
        token = bed.hub.token
        os.killpg(bed.hub.proc.pid, signal.SIGKILL)
        bed.hub.proc.wait()
        started = time.monotonic()
        bed.hub = bed.start_hub(token)
        return f"nothing (hub answered again after {time.monotonic() - started:.1f} s)", None

    def redis_down(offset: int, t0: float) -> tuple[str, float | None]:
        devstack("redis", "stop", env=bed.redis_env)
        time.sleep(60)
        devstack("redis", "start", env=bed.redis_env)
        time.sleep(2 * POLL)
        return f"nothing (registry entries after: {bed.registry_entries()})", None

    def redis_empty(offset: int, t0: float) -> tuple[str, float | None]:
        devstack("redis", "stop", env=bed.redis_env)
        for dump in (bed.tmp / "redis-state" / "redis").glob("*.rdb"):
            dump.unlink()
        devstack("redis", "start", env=bed.redis_env)
        time.sleep(3 * POLL)
        return f"nothing (registry entries after: {bed.registry_entries()})", None

    def job_of(user: str) -> str:
        return str(bed.servers()[user]["state"]["job_id"])

    def walltime(offset: int, t0: float) -> tuple[str, float | None]:
        subprocess.run(["scontrol", "update", f"JobId={job_of(bed.users[0])}", "TimeLimit=1"], check=True)
        return bed.told(offset, bed.users[0], t0, wait=120)

    def server_killed(offset: int, t0: float) -> tuple[str, float | None]:
        job = job_of(bed.users[1])
        os.kill(find_process(job, r"(batchspawner|jupyterhub)-singleuser", bed.users), signal.SIGKILL)
        return bed.told(offset, bed.users[1], t0)

    def xvnc_killed(offset: int, t0: float) -> tuple[str, float | None]:
        user = bed.users[2]
        os.kill(find_process(job_of(user), r"^\S*(Xvnc|Xtigervnc) ", bed.users), signal.SIGKILL)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            status = bed.desktop_status(user)
            if status.get("state") != "running":
                restarted = bed.hub.http.post(
                    f"http://127.0.0.1:8100/user/{user}/vnc/api/desktop", data=b"", timeout=120
                )
                after = restarted.json().get("state")
                return (
                    f"desktop status: {status.get('state')}: {status.get('message')!r}; restart: {after}",
                    (time.time() - t0),
                )
            time.sleep(0.5)
        return "(the status still says running)", None

    def node_lost(offset: int, t0: float) -> tuple[str, float | None]:
        jobs = squeue(bed.users)
        node = next(n for _, (_, state, n) in jobs.items() if state == "RUNNING")
        victims = sorted(u for _, (u, _, n) in jobs.items() if n == node)
        os.kill(pid_of(SLURM_STATE / f"slurmd.{node}.pid"), signal.SIGKILL)
        messages = [bed.told(offset, u, t0, wait=240) for u in victims]
        decided = subprocess.run(
            ["sinfo", "-h", "-n", node, "-o", "%T"], capture_output=True, text=True
        ).stdout
        devstack("slurm", "start")  # slurmd back: it ends what is left of the failed jobs
        slowest = max((w for _, w in messages if w is not None), default=None)
        told = "; ".join(f"{u}: {m}" for u, (m, _) in zip(victims, messages, strict=True))
        return f"{node} {decided.strip()}, others untouched: {told}", slowest

    run("slurmctld stopped 60 s", slurmctld_down)
    run("hub SIGKILL + restart", hub_killed)
    run("Redis stopped 60 s", redis_down)
    run("Redis restarted empty", redis_empty)
    run("walltime reached", walltime)
    run("single-user server SIGKILL", server_killed, settle=30)
    run("Xvnc SIGKILL", xvnc_killed)
    run("slurmd SIGKILL (node lost)", node_lost, settle=30)
    return rows


def main() -> int:
    if os.geteuid() != 0:
        sys.exit("run as root (it stops and starts the test bed's daemons)")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    devstack("slurm", "start")
    with tempfile.TemporaryDirectory(prefix="jvnc-faults-") as tmp:
        bed = Bed(Path(tmp))
        try:
            rows = fault_rows(bed)
        finally:
            bed.close()
    log(f"# {USERS} desktops, poll interval {POLL} s")
    log(
        "| fault | sessions before | sessions after | lost | orphaned jobs | orphaned processes | user told "
        "| within s |"
    )
    log("|---|---|---|---|---|---|---|---|")
    totals = {"lost": 0, "orphan_jobs": 0, "orphan_procs": 0}
    for name, before, after, told, within in rows:
        for key in totals:
            totals[key] += len(after[key])  # type: ignore[arg-type]
        log(
            f"| {name} | {before} | {after['ready']} | {len(after['lost'])} {after['lost'] or ''} | "  # type: ignore[arg-type]
            f"{len(after['orphan_jobs'])} | {len(after['orphan_procs'])} {after['orphan_procs'][:5] or ''} | "  # type: ignore[index,arg-type]
            f"{told} | {'-' if within is None else f'{within:.1f}'} |"
        )
    log("RESULT " + " ".join(f"{k}={v}" for k, v in totals.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
