"""Slurm queries per poll interval with N live desktops: VNCSlurmSpawner vs batchspawner's SlurmSpawner.

Real Slurm jobs (held, so they stay PENDING and cost the cluster nothing) stand for N live sessions.
This process plays the hub: during one poll interval every spawner calls poll() once, at a random
moment in the interval, as JupyterHub's per-spawner poll loops do. Ours is configured as the demo hub
and the admin guide do it: the shared query (``query_exec_prefix = "sudo -n -u root"``). We count the
squeue processes that really ran (a logging wrapper in front of the real squeue, named by its absolute
path in both kinds' query commands: sudo's secure_path would bypass PATH) and the CPU the "hub" and its
children used. Prints one row
per N and kind and last ``RESULT <kind>_calls_per_interval_N<n>=... <kind>_cpu_s_per_interval_N<n>=...``;
the held jobs are cancelled at the end.

    /opt/jupyter-vnc/venv/bin/python benchmarks/poll_scaling.py [--sizes 10,100,500] [--interval 5]

Needs root and the test bed's Slurm (devstack/slurm start; the script starts it if needed).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from batchspawner import SlurmSpawner  # noqa: E402
from jupyterhub.objects import Hub  # noqa: E402

from jupyter_vnc import spawner as vnc_spawner  # noqa: E402
from jupyter_vnc.slurm_commands import QUERY_ALL  # noqa: E402
from jupyter_vnc.spawner import VNCSlurmSpawner  # noqa: E402

USER = "alice"


def log(message: str) -> None:
    print(message, flush=True)


def cpu_seconds() -> float:
    me = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + children.ru_utime + children.ru_stime


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


def submit_held(n: int) -> list[str]:
    ids = []
    for _ in range(n):
        argv = [
            "sudo",
            "-u",
            USER,
            "sbatch",
            "--parsable",
            "--hold",
            "-o",
            "/dev/null",
            "--time=5",
            "--wrap",
            "true",
        ]
        out = subprocess.run(argv, capture_output=True, text=True, check=True)
        ids.append(out.stdout.strip().split(";")[0])
    return ids


def make(cls: type, job_id: str, **traits: object) -> object:
    user = SimpleNamespace(name=USER, escaped_name=USER, url=f"/user/{USER}/", server=None, spawners={})
    spawner = cls(user=user, hub=Hub(), cmd=["jupyterhub-singleuser"], **traits)
    spawner.load_state({"job_id": job_id, "job_status": "PENDING"})
    return spawner


async def one_interval(spawners: list, interval: float) -> list[int | None]:
    async def poll_at(spawner: object) -> int | None:
        await asyncio.sleep(random.uniform(0, interval))
        return await spawner.poll()

    return await asyncio.gather(*(poll_at(s) for s in spawners))


def measure(
    kind: str, ids: list[str], interval: float, wrapper: Path, calls: Path
) -> tuple[int, float, float]:
    calls.write_text("")
    calls.chmod(0o666)
    if kind == "ours":
        vnc_spawner._SHARED.clear()  # a fresh hub process
        # As the demo hub and the admin guide configure it: the shared query, run as root through sudo
        # (whose secure_path would bypass PATH: the wrapper by its absolute path, as for plain).
        query = str(wrapper) + QUERY_ALL.removeprefix("squeue")
        spawners = [
            make(VNCSlurmSpawner, j, poll_interval=interval, query_exec_prefix="sudo -n -u root",
                 batch_query_all_cmd=query)
            for j in ids
        ]  # fmt: skip
    else:
        query = f"{wrapper} -h -j {{job_id}} -o '%T %B'"
        spawners = [make(SlurmSpawner, j, batch_query_cmd=query) for j in ids]
    cpu, wall = cpu_seconds(), time.monotonic()
    statuses = asyncio.run(one_interval(spawners, interval))
    cpu, wall = cpu_seconds() - cpu, time.monotonic() - wall
    alive = sum(1 for s in statuses if s is None)
    assert alive == len(ids), f"{kind}: only {alive} of {len(ids)} sessions seen alive"
    return len(calls.read_text().split()), cpu, wall


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", default="10,100,500", help="numbers of live sessions (default 10,100,500)")
    parser.add_argument("--interval", type=float, default=5.0, help="poll interval in seconds (default 5)")
    args = parser.parse_args()
    if os.geteuid() != 0:
        sys.exit("run as root (it submits jobs as the test user and starts the test bed's Slurm)")
    subprocess.run([REPO / "devstack" / "slurm", "start"], check=True, capture_output=True)
    sizes = [int(n) for n in args.sizes.split(",")]
    results: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="jvnc-poll-") as tmp:
        wrapper, calls = counting_squeue(Path(tmp))
        ids = submit_held(max(sizes))
        try:
            log(f"# {len(ids)} held Slurm jobs of {USER}; poll interval {args.interval:g} s; 2-core machine")
            log(f"{'N':>5}  {'kind':<6} {'squeue calls':>12} {'hub CPU s':>10} {'wall s':>7}")
            for n in sizes:
                for kind in ("ours", "plain"):
                    count, cpu, wall = measure(kind, ids[:n], args.interval, wrapper, calls)
                    results[f"{kind}_calls_per_interval_N{n}"] = count
                    results[f"{kind}_cpu_s_per_interval_N{n}"] = round(cpu, 3)
                    log(f"{n:>5}  {kind:<6} {count:>12} {cpu:>10.3f} {wall:>7.2f}")
        finally:
            subprocess.run(["scancel", *ids], check=False)
    log("RESULT " + " ".join(f"{k}={v:g}" for k, v in sorted(results.items())))
    return 0


if __name__ == "__main__":
    sys.exit(main())
