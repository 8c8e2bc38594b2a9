"""Slurm queries per poll interval with N live desktops, up to thousands: VNCSlurmSpawner vs
batchspawner's SlurmSpawner.

Real Slurm jobs of alice (held, so they stay PENDING and cost the cluster nothing; no desktop stands
behind them) stand for N live sessions. They are submitted as the sizes grow, so the queue holds about N
of them when N is measured (5,000 fit slurmctld's default MaxJobCount of 10,000). For each N and kind
a child forked from this process plays a fresh hub: during one poll interval every spawner calls poll()
once, at a random moment in the interval, as JupyterHub's per-spawner poll loops do.

Ours is configured as the demo hub and the admin guide do it: the shared query
(``query_exec_prefix = "sudo -n -u root"``) and the Redis registry. The Redis is a redis-server of this
run's own, started by devstack/redis as the test bed's is (password, 127.0.0.1) but on port 16395 with
its state in a temporary directory: the suite's Redis and keys are never touched, and INFO memory counts
this run alone. Every session is first registered as a spawn registers it (the spawner's own record:
the same Session, the same keys).

Measured per N and kind: the squeue processes that really ran (a logging wrapper in front of the real
squeue, named by its absolute path in both kinds' query commands: sudo's secure_path would bypass PATH),
the CPU the "hub" and its children used in the interval, and the hub's RSS growth from before creating
the N spawners (and their registry entries) to the end of the interval, per session (each read after a
garbage collection and malloc_trim; every child starts from the same heap, so no measurement reuses
memory another freed). For ours also: the wall time of the one shared query (sudo + squeue), the size
of its command line (it names every job) and of its answer, and Redis's ``used_memory`` growth per
session (INFO memory after the interval, its connections closed: session records, their index and the
poller's shared job states).

Plain SlurmSpawner runs one squeue per desktop. It is measured up to --plain-max desktops; for larger N
its figures are computed, not measured: N calls, and N times the CPU per call measured at the largest
measured N (rows and keys marked "computed").

Prints one row per N and kind and last ``RESULT`` with, per N, ``ours_calls_per_interval_N<n>``,
``ours_cpu_s_per_interval_N<n>``, ``ours_query_s_N<n>``, ``ours_rss_KiB_per_session_N<n>``,
``redis_bytes_per_session_N<n>``, ``plain_calls_per_interval_N<n>``, ``plain_cpu_s_per_interval_N<n>``,
``plain_rss_KiB_per_session_N<n>`` (measured) or ``plain_calls_per_interval_N<n>_computed`` and
``plain_cpu_s_per_interval_N<n>_computed``. The held jobs are cancelled (by this run's job name) and the
Redis stopped at the end, also on an error, Ctrl-C or SIGTERM.

    /opt/jupyter-vnc/venv/bin/python benchmarks/poll_scaling.py [--sizes 10,100,500,5000] [--interval 5]
        [--plain-max 500]

Needs root and the test bed's Slurm (devstack/slurm start; the script starts it if needed). About a
minute for the default sizes on a 2-core machine.
"""

from __future__ import annotations

import argparse
import asyncio
import ctypes
import gc
import multiprocessing
import os
import random
import resource
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import redis  # noqa: E402
from batchspawner import SlurmSpawner  # noqa: E402
from common import log, machine  # noqa: E402
from jupyterhub.objects import Hub  # noqa: E402

from jupyter_vnc import spawner as vnc_spawner  # noqa: E402
from jupyter_vnc.slurm_commands import QUERY_ALL, BatchedQuery, RunCommand  # noqa: E402
from jupyter_vnc.spawner import VNCSlurmSpawner  # noqa: E402

USER = "alice"
REDIS_PORT = 16395  # beside the test bed's 16379 and faults.py's 16394
LIBC = ctypes.CDLL("libc.so.6")


def cpu_seconds() -> float:
    me = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + children.ru_utime + children.ru_stime


def rss_kib() -> int:
    """This process's anonymous RSS (its heap: the code of its libraries left out, which a forked child
    faults in page by page as it first runs it), once garbage is freed and free heap is given back."""
    gc.collect()
    LIBC.malloc_trim(0)
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("RssAnon:"):
            return int(line.split()[1])
    raise RuntimeError("no RssAnon in /proc/self/status")


def counting_squeue(directory: Path) -> tuple[Path, Path]:
    """A wrapper that logs each call and runs the real squeue (never a fake: the answers are real)."""
    calls = directory / "calls"
    calls.touch()
    calls.chmod(0o666)  # the plain spawner's squeue runs as the user, through sudo
    wrapper = directory / "squeue"
    wrapper.write_text(f'#!/bin/sh\necho x >> {calls}\nexec /usr/bin/squeue "$@"\n')
    wrapper.chmod(0o755)
    directory.chmod(0o755)
    return wrapper, calls


def submit_held(n: int, name: str) -> list[str]:
    """``n`` held jobs of USER named ``name``: one sudo for all, sbatch in a shell loop (a few ms a
    job here, where one sudo per job would take longer than the measurement itself at 5,000)."""
    loop = (
        f"for i in $(seq {n}); do sbatch --parsable --hold --job-name={name} -o /dev/null --time=5"
        " --wrap true || exit 1; done"
    )
    out = subprocess.run(["sudo", "-u", USER, "sh", "-c", loop], capture_output=True, text=True, check=True)
    return [line.split(";")[0] for line in out.stdout.split()]


class PrivateRedis:
    """A redis-server of this run's own (devstack/redis with its own port and state directory)."""

    def __init__(self, tmp: Path) -> None:
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", REDIS_PORT)) == 0:
                raise SystemExit(
                    f"port {REDIS_PORT} is taken (a Redis of an interrupted run?); stop it first"
                )
        self.env = {**os.environ, "JVNC_STATE": str(tmp / "redis"), "JVNC_REDIS_PORT": str(REDIS_PORT)}
        self.url = f"redis://127.0.0.1:{REDIS_PORT}/0"
        self.password_file = tmp / "redis" / "redis" / "password"
        try:
            self._devstack("start")
        except BaseException:
            self._devstack("stop", check=False)  # started, but never answered: not left running
            raise
        self.client = redis.Redis(
            host="127.0.0.1", port=REDIS_PORT, password=self.password_file.read_text().strip()
        )

    def _devstack(self, command: str, check: bool = True) -> None:
        subprocess.run([REPO / "devstack" / "redis", command], check=check, capture_output=True, env=self.env)

    def used_memory(self) -> int:
        return int(self.client.info("memory")["used_memory"])

    def close(self) -> None:
        self.client.close()
        self._devstack("stop")


@dataclass
class Row:
    calls: int
    cpu: float  # hub CPU seconds in the interval, children (sudo, squeue) included
    wall: float
    rss_kib: float  # per session
    query_s: float = float("nan")  # ours: the shared query's wall time (mean, if several)
    command_kib: float = float("nan")  # ours: the shared query's command line (one id per job)
    answer_kib: float = float("nan")  # ours: squeue's answer
    redis_bytes: float = float("nan")  # ours: per session


class TimedCommand:
    """The shared query's ``run_command``, timed: wall seconds, command and answer size of each call."""

    def __init__(self, run: RunCommand) -> None:
        self.run = run
        self.walls: list[float] = []
        self.commands: list[int] = []
        self.answers: list[int] = []

    async def __call__(self, cmd: str, **kwargs: Any) -> str:
        started = time.monotonic()
        self.commands.append(len(cmd))
        out = await self.run(cmd, **kwargs)
        self.walls.append(time.monotonic() - started)
        self.answers.append(len(out))
        return out


def make(cls: type, job_id: str, number: int, **traits: object) -> Any:
    user = SimpleNamespace(name=USER, escaped_name=USER, url=f"/user/{USER}/", server=None, spawners={})
    # One named server each (JupyterHub's Spawner.name is its ORM record's): the registry keys sessions
    # by user/server, and a hub with N desktops has N of them.
    server = SimpleNamespace(name=f"d{number}", display_name=f"d{number}", server=None)
    spawner = cls(user=user, hub=Hub(), orm_spawner=server, cmd=["jupyterhub-singleuser"], **traits)
    spawner.load_state({"job_id": job_id, "job_status": "PENDING"})
    return spawner


async def one_interval(spawners: list[Any], interval: int) -> tuple[float, float]:
    """Every spawner polls once at a random moment of the interval; (CPU s, wall s) it took."""

    async def poll_at(spawner: Any) -> int | None:
        await asyncio.sleep(random.uniform(0, interval))
        return await spawner.poll()

    cpu, wall = cpu_seconds(), time.monotonic()
    statuses = await asyncio.gather(*(poll_at(s) for s in spawners))
    cpu, wall = cpu_seconds() - cpu, time.monotonic() - wall
    alive = sum(1 for s in statuses if s is None)
    assert alive == len(spawners), f"only {alive} of {len(spawners)} sessions seen alive"
    return cpu, wall


async def ours(ids: list[str], interval: int, wrapper: Path, registry: tuple[str, str]) -> Row:
    rss0 = rss_kib()
    # The wrapper by its absolute path: the shared query runs through sudo, whose secure_path
    # would bypass PATH.
    query = str(wrapper) + QUERY_ALL.removeprefix("squeue")
    spawners = [
        make(VNCSlurmSpawner, j, i, poll_interval=interval, query_exec_prefix="sudo -n -u root",
             batch_query_all_cmd=query, registry_url=registry[0], registry_password_file=registry[1])
        for i, j in enumerate(ids)
    ]  # fmt: skip
    for spawner in spawners:
        await spawner._record("queued")  # what a spawn writes once sbatch has answered
    poller = spawners[0].poller
    assert isinstance(poller.client, BatchedQuery)
    timed = TimedCommand(poller.client.run_command)
    poller.client.run_command = timed
    cpu, wall = await one_interval(spawners, interval)
    row = Row(0, cpu, wall, (rss_kib() - rss0) / len(ids))
    if timed.walls:
        row.query_s = sum(timed.walls) / len(timed.walls)
        row.command_kib = max(timed.commands) / 1024
        row.answer_kib = max(timed.answers) / 1024
    await spawners[0].registry.close()
    vnc_spawner._SHARED.clear()
    return row


async def plain(ids: list[str], interval: int, wrapper: Path, registry: tuple[str, str]) -> Row:
    rss0 = rss_kib()
    query = f"{wrapper} -h -j {{job_id}} -o '%T %B'"
    spawners = [make(SlurmSpawner, j, i, batch_query_cmd=query) for i, j in enumerate(ids)]
    cpu, wall = await one_interval(spawners, interval)
    return Row(0, cpu, wall, (rss_kib() - rss0) / len(ids))


def hub(kind: str, ids: list[str], interval: int, wrapper: Path, registry: tuple[str, str]) -> Row:
    """One hub's poll interval with ``len(ids)`` desktops of ``kind``."""
    return asyncio.run((ours if kind == "ours" else plain)(ids, interval, wrapper, registry))


def measure(kind: str, ids: list[str], interval: int, wrapper: Path, calls: Path, store: PrivateRedis) -> Row:
    calls.write_text("")
    calls.chmod(0o666)
    store.client.flushdb()  # the previous size's sessions and job states
    redis0 = store.used_memory()
    # A child forked for each measurement plays a fresh hub process, from the same warm heap: in one
    # process, the memory one measurement frees is reused by the next, whose RSS growth then reads low.
    # The child's SIGTERM is the default again: the pool ends its worker with one.
    with multiprocessing.get_context("fork").Pool(1, signal.signal, (signal.SIGTERM, signal.SIG_DFL)) as pool:
        row = pool.apply(hub, (kind, ids, interval, wrapper, (store.url, str(store.password_file))))
    if kind == "ours":
        row.redis_bytes = (store.used_memory() - redis0) / len(ids)
    row.calls = len(calls.read_text().split())
    return row


def show(n: int, kind: str, row: Row) -> None:
    def num(value: float, digits: int, width: int) -> str:
        return f"{'-' if value != value else f'{value:.{digits}f}':>{width}}"  # NaN: not for this kind

    figures = (
        num(row.wall, 2, 6), num(row.query_s, 3, 8), num(row.command_kib, 1, 7), num(row.answer_kib, 1, 10),
        num(row.rss_kib, 1, 11), num(row.redis_bytes, 0, 11),
    )  # fmt: skip
    log(f"{n:>5}  {kind:<16} {row.calls:>6} {row.cpu:>8.3f} " + " ".join(figures))


def run(sizes: list[int], interval: int, plain_max: int, tmp: Path, name: str) -> dict[str, float]:
    results: dict[str, float] = {}
    wrapper, calls = counting_squeue(tmp)
    store = PrivateRedis(tmp)
    try:
        ids: list[str] = []
        # Unmeasured, in this process (every measurement's child is forked from it): the first round
        # of each kind pays one-time costs (lazy imports, first Redis connection) of no session.
        ids += submit_held(1, name)
        for kind in ("ours", "plain"):
            hub(kind, ids, 1, wrapper, (store.url, str(store.password_file)))
        log(f"# {machine()}; {time.strftime('%Y-%m-%d %H:%M %Z')}; poll interval {interval:g} s")
        log(f"{'N':>5}  {'kind':<16} {'squeue':>6} {'hub CPU':>8} {'wall':>6} {'query s':>8}"
            f" {'cmd KiB':>7} {'answer KiB':>10} {'RSS KiB/ses':>11} {'Redis B/ses':>11}")  # fmt: skip
        per_call = 0.0  # plain's CPU per squeue call at the largest N measured so far
        for n in sizes:
            ids += submit_held(n - len(ids), name)
            row = measure("ours", ids[:n], interval, wrapper, calls, store)
            show(n, "ours", row)
            results |= {
                f"ours_calls_per_interval_N{n}": row.calls,
                f"ours_cpu_s_per_interval_N{n}": round(row.cpu, 3),
                f"ours_query_s_N{n}": round(row.query_s, 3),
                f"ours_rss_KiB_per_session_N{n}": round(row.rss_kib, 1),
                f"redis_bytes_per_session_N{n}": round(row.redis_bytes),
            }
            if n <= plain_max:
                row = measure("plain", ids[:n], interval, wrapper, calls, store)
                show(n, "plain", row)
                per_call = row.cpu / row.calls if row.calls else 0.0
                results |= {
                    f"plain_calls_per_interval_N{n}": row.calls,
                    f"plain_cpu_s_per_interval_N{n}": round(row.cpu, 3),
                    f"plain_rss_KiB_per_session_N{n}": round(row.rss_kib, 1),
                }
            elif per_call:
                # One squeue per desktop per interval, each costing what it cost at the largest N run.
                nan = float("nan")
                show(n, "plain (computed)", Row(n, per_call * n, nan, nan))
                results[f"plain_calls_per_interval_N{n}_computed"] = n
                results[f"plain_cpu_s_per_interval_N{n}_computed"] = round(per_call * n, 3)
    finally:
        # Every held job of this run, by its name: also those of a submission cut short.
        subprocess.run(["scancel", "--user", USER, "--name", name], check=False)
        store.close()
    return results


def interrupted(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--sizes", default="10,100,500,5000", help="numbers of live sessions (default 10,100,500,5000)"
    )
    parser.add_argument("--interval", type=int, default=5, help="poll interval in whole seconds (default 5)")
    above = "largest N plain SlurmSpawner is measured at; computed above it (default 500)"
    parser.add_argument("--plain-max", type=int, default=500, help=above)
    args = parser.parse_args()
    if os.geteuid() != 0:
        sys.exit("run as root (it submits jobs as the test user and starts the test bed's Slurm)")
    # SIGTERM as Ctrl-C: the finally blocks cancel the jobs and stop the Redis.
    signal.signal(signal.SIGTERM, interrupted)
    subprocess.run([REPO / "devstack" / "slurm", "start"], check=True, capture_output=True)
    sizes = sorted({int(n) for n in args.sizes.split(",")})
    with tempfile.TemporaryDirectory(prefix="jvnc-poll-") as tmp:
        results = run(sizes, args.interval, args.plain_max, Path(tmp), f"jvnc-poll-{os.getpid()}")
    log("RESULT " + " ".join(f"{k}={v:g}" for k, v in sorted(results.items())))
    return 0


if __name__ == "__main__":
    sys.exit(main())
