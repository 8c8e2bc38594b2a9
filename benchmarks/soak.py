"""Soak: many consecutive spawns through a real hub, each to a drawn desktop, counting every failure.

One JupyterHub with VNCSlurmSpawner (spawn_latency's "ours" hub: the desktop starts with the server,
1 GB, no GPU, user olga), then N times: spawn through the REST API, wait until the server is ready, read
the desktop's full screen through the hub's proxy until XFCE has drawn it (more than a blank X
screen's colours) and its panel has settled (spawn_latency.watch_desktop), stop, and wait until the job
is gone. A spawn that fails, a desktop that never draws within
90 s and a job that does not go away are each counted, never retried.

    /opt/jupyter-vnc/venv/bin/python benchmarks/soak.py [--spawns 50]

Prints one line per spawn and `RESULT spawns=N failed=F undrawn=U session_restarts=R ready_median_s=...
pixels_median_s=... pixels_max_s=...` (R: sessions that failed as they started and were started again,
from the servers' logs). The logs of a desktop that never drew are kept in test-artifacts/undrawn-*/.
Needs root and the test bed (devstack/install); about 12 s a spawn.
"""

from __future__ import annotations

import argparse
import math
import pwd
import shutil
import statistics
import tempfile
import time
from pathlib import Path

from load_spawn import Hub, log
from spawn_latency import KINDS, USER, WEBSOCKET, devstack, extra_config, one_spawn, slurm_jobs


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--spawns", type=int, default=50)
    args = parser.parse_args()
    devstack("slurm", "start")
    began = time.time()
    if slurm_jobs():
        raise SystemExit(f"{USER} has Slurm jobs already: {slurm_jobs()}")
    spawner, _, port, _ = KINDS["ours"]
    squeue = Path(shutil.which("squeue") or "/usr/bin/squeue")
    ready: list[float] = []
    pixels: list[float] = []
    failed = undrawn = 0
    with tempfile.TemporaryDirectory(prefix="jvnc-soak-") as tmp:
        ports = {"hub": port, "api": port + 1, "proxy_api": port + 2}
        hub = Hub(spawner, Path(tmp), squeue, 1, extra_config(spawner, None), ports=ports)
        try:
            hub.api("POST", "/users", json={"usernames": [USER]})
            token = hub.api(
                "POST", f"/users/{USER}/tokens",
                json={"note": "soak", "scopes": [f"access:servers!user={USER}", f"read:users!user={USER}"]},
            ).json()["token"]  # fmt: skip
            for n in range(1, args.spawns + 1):
                started = time.monotonic()
                try:
                    (r, p, _, _), _ = one_spawn(hub, token, WEBSOCKET[False])
                except RuntimeError as e:
                    failed += 1
                    log(f"spawn {n:3d}: FAILED after {time.monotonic() - started:.1f} s: {e}")
                    continue
                ready.append(r)
                if math.isnan(p):
                    undrawn += 1
                    log(f"spawn {n:3d}: ready {r:5.2f} s, desktop NEVER DRAWN")
                else:
                    pixels.append(p)
                    log(f"spawn {n:3d}: ready {r:5.2f} s, drawn {p:5.2f} s")
        finally:
            hub.stop()

    def med(values: list[float]) -> str:
        return f"{statistics.median(values):.2f}" if values else "nan"

    # Sessions that failed as they started and were started again (desktop.py's _watch_session): the
    # desktop still drew, but each is a cause to know about.
    restarts = sum(
        log_file.read_text(errors="replace").count("starting it again")
        for log_file in (Path(pwd.getpwnam(USER).pw_dir) / ".jupyter-vnc" / "logs").glob("*.log")
        if log_file.stat().st_mtime >= began
    )
    log(
        f"RESULT spawns={args.spawns} failed={failed} undrawn={undrawn} session_restarts={restarts}"
        f" ready_median_s={med(ready)} pixels_median_s={med(pixels)}"
        f" pixels_max_s={max(pixels) if pixels else float('nan'):.2f}"
    )
    return 0 if failed == undrawn == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
