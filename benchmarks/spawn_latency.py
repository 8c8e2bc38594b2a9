"""Spawn request -> server ready, and -> desktop pixels: VNCSlurmSpawner vs batchspawner's SlurmSpawner.

The same job (jupyterhub-singleuser with jupyter-vnc's extension, which starts the desktop with the
server; 1 GB, no GPU) on the same Slurm, each spawner in a JupyterHub of its own, runs interleaved
(ours, plain, ours, plain, ...), medians of the pairs. Then again with every Slurm command of both hubs
going over ssh to the login node (devstack/login-node): batchspawner's exec_prefix for both, and our
shared status query through query_exec_prefix. The login node has a real site's sudo rule (no SETENV):
ours runs through it as the admin guide configures it (``sudo -H -n -u {username}``); plain
SlurmSpawner needs ``sudo -E`` to hand its environment to the job, which that rule refuses, so its
spawns there fail, and are counted (``ssh_plain_failed``), not timed. Timed from just before the POST:

- ready: the hub's REST API says the server is ready (polled every 20 ms, the same for both);
- pixels: the desktop's first full screen with XFCE drawn on it, read through the hub's proxy over the
  server's desktop websocket with the user's own token (RFB, Raw encoding).

Each hub is load_spawn.Hub on ports of its own (8400, 8410, 8420, 8430 and the two after each); after
each spawn the server is stopped and the job waited for until it is gone. A desktop that never draws
within 90 s is counted (``undrawn``), not fatal. Prints every run, a table of medians per kind (ready,
pixels, pixels - ready, and the ready range) and last ``RESULT ours_vs_plain=... pixels_ours_vs_plain=...
ours_ready_s=... plain_ready_s=... ours_pixels_s=... plain_pixels_s=... ours_drawn_after_ready_s=...
plain_drawn_after_ready_s=... ours_ready_range_s=<min-max> plain_ready_range_s=<min-max>
[ssh_ours_vs_plain=... ssh_ours_ready_s=... ssh_plain_ready_s=... ssh_plain_failed=N] undrawn=N``; the
ratios are medians of
the per-run pairs, the rest medians of the runs.

    /opt/jupyter-vnc/venv/bin/python benchmarks/spawn_latency.py [--runs 5] [--no-ssh]

Needs root and the test bed (devstack/install; Slurm and the login node are started if needed).
Runs as the user olga (the one the login node's sudo rule names). About 4 minutes.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import COLOURS_DRAWN, full_screen_colours
from load_spawn import Hub, log

from testkit.rfb import RAW, ByteStream, RFBClient

REPO = Path(__file__).resolve().parents[1]
USER = "olga"
KINDS = {  # kind -> (spawner kind for load_spawn's config, over ssh?, first port)
    "ours": ("ours", False, 8400),
    "plain": ("plain", False, 8410),
    "ours-ssh": ("ours", True, 8420),
    "plain-ssh": ("plain", True, 8430),
}


def devstack(*args: str) -> str:
    return subprocess.run(
        [str(REPO / "devstack" / args[0]), *args[1:]], check=True, capture_output=True, text=True
    ).stdout


def extra_config(spawner: str, ssh: str | None) -> str:
    # The desktop starts with the server (pixels are part of the measure); 1 GB, no GPU for both.
    # The benchmark's service makes a token for the user (her desktop wants her own token).
    text = "\nc.Spawner.args = []\nc.JupyterHub.load_roles[0]['scopes'].append('tokens')\n"
    text += (
        "c.VNCSlurmSpawner.max_memory_gb = 1\nc.VNCSlurmSpawner.default_memory_gb = 1\n"
        if spawner == "ours"
        else 'c.SlurmSpawner.req_memory = "1G"\n'
    )
    if ssh:
        # -E for plain only: batchspawner hands the job its environment that way. Ours passes what the
        # job needs in the job script and runs under a site's sudo rule without SETENV.
        sudo = " sudo -H -n -u {username}" if spawner == "ours" else " sudo -E -H -n -u {username}"
        text += f"c.SlurmSpawner.exec_prefix = {ssh + sudo!r}\n"
        if spawner == "ours":
            text += f"c.VNCSlurmSpawner.query_exec_prefix = {ssh!r}\n"
        else:  # one more shell on the login node: the format needs a second layer of quotes
            text += 'c.SlurmSpawner.batch_query_cmd = "squeue -h -j {job_id} -o \\"\'%T %B\'\\""\n'
    return text


async def desktop_pixels(hub: Hub, token: str, deadline: float) -> None:
    """Until the desktop's first full screen shows more than a blank X screen."""
    url = hub.base.replace("http://", "ws://") + f"/user/{USER}/vnc/websockify"
    while True:
        try:
            stream = await ByteStream.websocket(url, {"Authorization": f"token {token}"}, timeout=10)
            break
        except Exception:  # the route or the bridge not there yet
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.05)
    client = RFBClient(stream)
    try:
        await client.handshake()
        await client.set_pixel_format_32()
        await client.set_encodings(RAW)
        while await full_screen_colours(client) <= COLOURS_DRAWN:
            if time.monotonic() > deadline:
                raise RuntimeError("no desktop drawn in time")
            await asyncio.sleep(0.05)
    finally:
        stream.connection.close()  # type: ignore[attr-defined]


def slurm_jobs() -> list[str]:
    return subprocess.run(
        ["squeue", "-h", "-u", USER, "-o", "%i"], capture_output=True, text=True
    ).stdout.split()


def keep_desktop_logs() -> Path:
    """The X server's and the session's logs of the user's running desktops, copied before the stop
    removes them (their folders, jupyter-vnc-USER-job*, go with the desktop): what an undrawn desktop
    said is the only way to its cause."""
    dest = REPO / "test-artifacts" / f"undrawn-{time.strftime('%Y%m%d-%H%M%S')}"
    for folder in Path(tempfile.gettempdir()).glob(f"jupyter-vnc-{USER}-job*"):
        for name in ("session.log", "xvnc.log"):
            if (folder / name).exists():
                (dest / folder.name).mkdir(parents=True, exist_ok=True)
                shutil.copy(folder / name, dest / folder.name / name)
    return dest


class SpawnFailed(RuntimeError):
    pass


def last_error(hub: Hub) -> str:
    """The hub's last logged reason a spawn failed (its log is in the run's folder)."""
    log_text = hub.log_path.read_text(errors="replace")
    lines = [line for line in log_text.splitlines() if "rror starting" in line]
    if not lines:
        return "the spawn failed (no reason in the hub's log)"
    return lines[-1].split("]", 1)[-1].strip()[:300]


def one_spawn(hub: Hub, token: str) -> tuple[float, float]:
    t0 = time.monotonic()
    response = hub.api("POST", f"/users/{USER}/server", json={})
    if response.status_code not in (201, 202):
        raise RuntimeError(f"spawn refused: {response.status_code} {response.text}")
    while True:
        servers = hub.api("GET", f"/users/{USER}").json()["servers"]
        if "" not in servers:  # the hub dropped it: the spawn failed, and polling on would only wait
            raise SpawnFailed(last_error(hub))
        if servers[""].get("ready"):
            break
        if time.monotonic() - t0 > 180:
            raise RuntimeError("not ready after 180 s")
        time.sleep(0.02)
    ready = time.monotonic() - t0
    try:
        asyncio.run(desktop_pixels(hub, token, t0 + 90))
        pixels = time.monotonic() - t0
    except RuntimeError as e:  # counted and shown, not hidden: a desktop that never drew
        log(f"  no desktop pixels: {e}; its logs kept in {keep_desktop_logs()}")
        pixels = float("nan")
    hub.api("DELETE", f"/users/{USER}/server")
    while hub.api("GET", f"/users/{USER}").json()["servers"] or slurm_jobs():
        if time.monotonic() - t0 > 300:
            raise RuntimeError("the server or its job did not go away")
        time.sleep(0.2)
    return ready, pixels


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--no-ssh", action="store_true", help="skip the runs over ssh")
    args = parser.parse_args()
    devstack("slurm", "start")
    kinds = [k for k in KINDS if not (args.no_ssh and KINDS[k][1])]
    ssh = None
    if not args.no_ssh:
        devstack("login-node", "start")
        ssh = devstack("login-node", "ssh-prefix").strip()
    if slurm_jobs():
        raise SystemExit(f"{USER} has Slurm jobs already: {slurm_jobs()}")
    squeue = Path(shutil.which("squeue") or "/usr/bin/squeue")
    hubs: dict[str, Hub] = {}
    tmp = tempfile.TemporaryDirectory(prefix="jvnc-latency-")
    results: dict[str, list[tuple[float, float]]] = {k: [] for k in kinds}
    failed = 0
    try:
        for kind in kinds:
            spawner, over_ssh, port = KINDS[kind]
            state = Path(tmp.name) / kind
            state.mkdir()
            ports = {"hub": port, "api": port + 1, "proxy_api": port + 2}
            hubs[kind] = Hub(
                spawner, state, squeue, 1, extra_config(spawner, ssh if over_ssh else None), ports=ports
            )
            hubs[kind].api("POST", "/users", json={"usernames": [USER]})
        tokens = {
            k: h.api(
                "POST",
                f"/users/{USER}/tokens",
                json={
                    "note": "latency",
                    "scopes": [f"access:servers!user={USER}", f"read:users!user={USER}"],
                },
            ).json()["token"]
            for k, h in hubs.items()
        }
        for run in range(1, args.runs + 1):
            for kind in kinds:
                try:
                    ready, pixels = one_spawn(hubs[kind], tokens[kind])
                except SpawnFailed as e:
                    if kind != "plain-ssh":  # the one kind expected to fail (see above)
                        raise
                    failed += 1
                    log(f"run {run} {kind:9s} failed: {e}")
                    continue
                results[kind].append((ready, pixels))
                log(f"run {run} {kind:9s} ready {ready:5.2f} s  pixels {pixels:5.2f} s")
    finally:
        for hub in hubs.values():
            hub.stop()
        tmp.cleanup()

    def med(kind: str, i: int) -> float:
        values = [r[i] for r in results[kind] if r[i] == r[i]]
        return statistics.median(values) if values else float("nan")

    def pair_ratio(a: str, b: str, i: int) -> float:
        if len(results[a]) != len(results[b]):  # a kind whose spawns failed has no pairs
            return float("nan")
        pairs = [
            x[i] / y[i] for x, y in zip(results[a], results[b], strict=True) if x[i] == x[i] and y[i] == y[i]
        ]
        return statistics.median(pairs) if pairs else float("nan")

    def after_ready(kind: str) -> float:
        """Median of pixels - ready over the runs that drew: how long the desktop took after "ready"."""
        values = [p - r for r, p in results[kind] if p == p]
        return statistics.median(values) if values else float("nan")

    def ready_range(kind: str) -> str:
        values = [r for r, _ in results[kind]]
        return f"{min(values):.2f}-{max(values):.2f}" if values else "nan"

    undrawn = {k: sum(1 for r in results[k] if r[1] != r[1]) for k in kinds}

    log(f"\n{'':10s} {'ready (median)':>15s} {'pixels (median)':>16s} {'pixels - ready':>15s}"
        f" {'ready min-max':>14s}   runs={args.runs}, 1 GB, no GPU")  # fmt: skip
    for kind in kinds:
        log(f"{kind:10s} {med(kind, 0):13.2f} s {med(kind, 1):14.2f} s {after_ready(kind):13.2f} s"
            f" {ready_range(kind):>12s} s")  # fmt: skip
    figures = [
        f"ours_vs_plain={pair_ratio('ours', 'plain', 0):.2f}",
        f"pixels_ours_vs_plain={pair_ratio('ours', 'plain', 1):.2f}",
        f"ours_ready_s={med('ours', 0):.2f}", f"plain_ready_s={med('plain', 0):.2f}",
        f"ours_pixels_s={med('ours', 1):.2f}", f"plain_pixels_s={med('plain', 1):.2f}",
        f"ours_drawn_after_ready_s={after_ready('ours'):.2f}",
        f"plain_drawn_after_ready_s={after_ready('plain'):.2f}",
        f"ours_ready_range_s={ready_range('ours')}", f"plain_ready_range_s={ready_range('plain')}",
    ]  # fmt: skip
    if "ours-ssh" in results:
        figures += [
            f"ssh_ours_vs_plain={pair_ratio('ours-ssh', 'plain-ssh', 0):.2f}",
            f"ssh_ours_ready_s={med('ours-ssh', 0):.2f}", f"ssh_plain_ready_s={med('plain-ssh', 0):.2f}",
            f"ssh_plain_failed={failed}",
        ]  # fmt: skip
    figures.append(f"undrawn={sum(undrawn.values())}")
    if any(undrawn.values()):
        log(f"desktops that never drew within 90 s: {undrawn}")
    log("RESULT " + " ".join(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
