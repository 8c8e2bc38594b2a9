"""Spawn request -> server ready -> desktop pixels -> a usable desktop: VNCSlurmSpawner vs batchspawner's
SlurmSpawner, and vs the peer's whole stack.

Three kinds on the same Slurm, each in a JupyterHub of its own, interleaved (ours, plain, peer, ...):

- ours: VNCSlurmSpawner; the job runs jupyter-vnc-singleuser + jupyterhub-singleuser with jupyter-vnc's
  extension, which starts the desktop with the server;
- plain: batchspawner's SlurmSpawner with the same server (batchspawner-singleuser + the same
  jupyterhub-singleuser and extension): the spawner alone compared;
- peer: SlurmSpawner with the peer's own venv in the job (batchspawner-singleuser, jupyterhub-singleuser,
  jupyter-remote-desktop-proxy 3.0.1, see peer.py), whose desktop starts on the first websocket.

1 GB, no GPU for all. Then ours and plain again with every Slurm command going over ssh to the login node
(devstack/login-node): batchspawner's exec_prefix for both, and our shared status query through
query_exec_prefix. The login node has a real site's sudo rule (no SETENV): ours runs through it as the
admin guide configures it (``sudo -H -n -u {username}``); plain SlurmSpawner needs ``sudo -E`` to hand
its environment to the job, which that rule refuses, so its spawns there fail, and are counted
(``ssh_plain_failed``), not timed. Timed from just before the POST:

- ready: the hub's REST API says the server is ready (polled every 20 ms, the same for all);
- pixels: the desktop's first full screen with more than a blank X screen, read through the hub's proxy
  over the server's desktop websocket with the user's own token (RFB, Raw encoding), connected as soon
  as the server is ready (the peer's desktop starts then);
- usable: XFCE's panel drawn as it stays (the top rows of the screen, read every 50 ms until unchanged
  for 3 s; the time of the first read that already showed them so).

Where the time goes, per spawn, from the logs of the parts it passes (one clock, this machine):
submit (POST -> slurmctld has the job), queue (-> Slurm allocates it: slurmctld's scheduler tick here),
launch (-> slurmd launches it), job start (-> the server's first log line: the job's environment,
the launcher and the server's imports), server start (-> it listens), hub sees it ready (-> REST says
ready). After each spawn the server is stopped and the job waited for until it is gone; the user's live
processes still there a second later are counted (``left behind``, named) and ended. A desktop that
never draws within 90 s is counted (``undrawn``), not fatal.

Prints every run, a table of medians per kind (ready, pixels, usable, pixels - ready, the ready range,
left behind), the stages' medians, and last ``RESULT ours_vs_plain=... pixels_ours_vs_plain=...
ours_ready_s=... plain_ready_s=... ours_pixels_s=... plain_pixels_s=... ours_drawn_after_ready_s=...
plain_drawn_after_ready_s=... ours_ready_range_s=<min-max> plain_ready_range_s=<min-max>
ours_vs_plain_without_queue=... usable_ours_vs_peer=... usable_ours_s=... usable_peer_s=... peer_ready_s=...
left_behind_ours=N left_behind_peer=N [ssh_ours_vs_plain=... ssh_ours_ready_s=... ssh_plain_ready_s=...
ssh_plain_failed=N] ours_<stage>_s=... plain_<stage>_s=... undrawn=N``; ratios are medians of the
per-run pairs (``without_queue``: of ready less Slurm's allocation wait), the rest medians of the runs.

    /opt/jupyter-vnc/venv/bin/python benchmarks/spawn_latency.py [--runs 5] [--no-ssh]

Needs root and the test bed (devstack/install; Slurm and the login node are started if needed), the
peer's venv (made on first use). Runs as the user olga (the one the login node's sudo rule names). About
6 minutes for 7 runs.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import peer
from common import COLOURS_DRAWN, full_screen_colours
from load_spawn import Hub, log

from testkit.rfb import RAW, ByteStream, RFBClient

REPO = Path(__file__).resolve().parents[1]
USER = "olga"
KINDS = {  # kind -> (spawner kind for load_spawn's config, over ssh?, first port, the peer's server?)
    "ours": ("ours", False, 8400, False),
    "plain": ("plain", False, 8410, False),
    "peer": ("plain", False, 8440, True),
    "ours-ssh": ("ours", True, 8420, False),
    "plain-ssh": ("plain", True, 8430, False),
}
# The desktop's websocket under the user's server: ours (also what plain SlurmSpawner starts here: the
# same server) and the peer's (jupyter-remote-desktop-proxy, whose desktop starts on this connection).
WEBSOCKET = {False: "vnc/websockify", True: peer.WEBSOCKET_PATH}
# Both panels are at the top of the screen, 28 px (ours: templates/xfce) and 26 px (Debian's default,
# which the peer starts) tall: the rows a panel's look is read from.
PANEL_ROWS = 24
SETTLED_S = 3.0  # the panel rows unchanged this long: its final look


def devstack(*args: str) -> str:
    return subprocess.run(
        [str(REPO / "devstack" / args[0]), *args[1:]], check=True, capture_output=True, text=True
    ).stdout


def extra_config(spawner: str, ssh: str | None, is_peer: bool = False) -> str:
    # The desktop starts with the server (pixels are part of the measure); 1 GB, no GPU for both.
    # The benchmark's service makes a token for the user (her desktop wants her own token).
    text = "\nc.Spawner.args = []\nc.JupyterHub.load_roles[0]['scopes'].append('tokens')\n"
    text += (
        "c.VNCSlurmSpawner.max_memory_gb = 1\nc.VNCSlurmSpawner.default_memory_gb = 1\n"
        if spawner == "ours"
        else 'c.SlurmSpawner.req_memory = "1G"\n'
    )
    if is_peer:  # the peer's whole server in the job: its venv's single-user server and launcher
        launcher, server = (
            peer.bin_dir() / "batchspawner-singleuser",
            peer.bin_dir() / "jupyterhub-singleuser",
        )
        text += f"c.Spawner.cmd = [{str(server)!r}]\n"
        text += f"c.SlurmSpawner.batchspawner_singleuser_cmd = {str(launcher)!r}\n"
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


async def watch_desktop(hub: Hub, token: str, path: str, deadline: float) -> tuple[float, float]:
    """When (time.monotonic()) the desktop's first full screen showed more than a blank X screen
    ("pixels"), and when its panel reached its final look ("usable"): the panel's rows, read every
    50 ms, until they have not changed for SETTLED_S; the first read equal to the last one in 99 % of
    its pixels (a clock may tick meanwhile) is when the user had the panel."""
    url = hub.base.replace("http://", "ws://") + f"/user/{USER}/{path}"
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
        init = await client.handshake()
        await client.set_pixel_format_32()
        await client.set_encodings(RAW)
        while await full_screen_colours(client) <= COLOURS_DRAWN:
            if time.monotonic() > deadline:
                raise RuntimeError("no desktop drawn in time")
            await asyncio.sleep(0.05)
        pixels = time.monotonic()
        frame = bytearray(init.width * init.height * 4)
        strip = init.width * PANEL_ROWS * 4
        states: list[tuple[float, bytes]] = []  # each look the rows had, from when they had it
        while not states or time.monotonic() - states[-1][0] < SETTLED_S:
            await client.request_update(False, 0, 0, init.width, PANEL_ROWS)
            await client.read_update(frame)
            rows = bytes(frame[:strip])
            if not states or rows != states[-1][1]:
                states.append((time.monotonic(), rows))
            if time.monotonic() > deadline:
                raise RuntimeError("the panel did not settle in time")
            await asyncio.sleep(0.05)
        final = states[-1][1]
        usable = next(t for t, rows in states if _same(rows, final) >= 0.99)
        return pixels, usable
    finally:
        stream.connection.close()  # type: ignore[attr-defined]


def _same(a: bytes, b: bytes) -> float:
    """The share of identical 32-bit pixels of two equally long reads."""
    pixels = len(a) // 4
    return sum(a[i : i + 4] == b[i : i + 4] for i in range(0, len(a), 4)) / pixels if pixels else 1.0


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


# Where a spawn's time goes, read from the logs of the parts it passes through (all on this machine,
# one clock): slurmctld's submit and allocation, slurmd's launch, the server's own log (first line,
# listening) and the hub's REST API (ready). Each stage ends at the next mark.
STAGES = ("submit", "queue", "launch", "job start", "server start", "hub sees it ready")
SLURM_LOGS = Path("/var/lib/jupyter-vnc-dev/logs")
SERVER_LINE = re.compile(r"^\[[DIWEC] (\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3}) ")


def _stamp(text: str) -> float:
    """A log's local time with milliseconds (Slurm's 2026-12-07T15:03:24.451 or Jupyter's with a space)."""
    day, clock = text.replace("T", " ").split(" ")
    whole, ms = clock.split(".")
    return time.mktime(time.strptime(f"{day} {whole}", "%Y-%m-%d %H:%M:%S")) + int(ms) / 1000


def _first(pattern: str, paths: list[Path]) -> float:
    found = [
        _stamp(m.group(1))
        for path in paths
        if path.exists()
        for m in re.finditer(r"^\[([\d\-T:.]+)\] " + pattern, path.read_text(errors="replace"), re.M)
    ]
    return min(found) if found else float("nan")


def breakdown(job_id: str, posted: float, ready: float) -> list[float]:
    """Seconds per stage (STAGES) of one spawn: wall-clock ``posted`` and ``ready`` from the client."""
    submitted = _first(rf"_slurm_rpc_submit_batch_job: JobId={job_id} ", [SLURM_LOGS / "slurmctld.log"])
    allocated = _first(rf"sched: Allocate JobId={job_id} ", [SLURM_LOGS / "slurmctld.log"])
    launched = _first(rf"Launching batch job {job_id} ", sorted(SLURM_LOGS.glob("slurmd.*.log")))
    home = Path(f"~{USER}").expanduser()
    logs = [home / ".jupyter-vnc" / "logs" / f"jupyter-vnc-{job_id}.log",
            home / f"jupyterhub_slurmspawner_{job_id}.log"]  # fmt: skip
    first = listening = float("nan")
    for path in logs:
        if not path.exists():
            continue
        for line in path.read_text(errors="replace").splitlines():
            m = SERVER_LINE.match(line)
            if m and first != first:
                first = _stamp(m.group(1))
            if m and " is running at:" in line:
                listening = _stamp(m.group(1))
                break
    marks = [posted, submitted, allocated, launched, first, listening, ready]
    return [b - a for a, b in itertools.pairwise(marks)]


def last_error(hub: Hub) -> str:
    """The hub's last logged reason a spawn failed (its log is in the run's folder)."""
    log_text = hub.log_path.read_text(errors="replace")
    lines = [line for line in log_text.splitlines() if "rror starting" in line]
    if not lines:
        return "the spawn failed (no reason in the hub's log)"
    return lines[-1].split("]", 1)[-1].strip()[:300]


def left_behind() -> int:
    """The user's live processes once her job is gone (named, then ended here, before the next run).
    Zombies do not count: dead already, they wait for their parent (here often this VM's init, which
    reaps late) to collect their exit status."""
    live = []
    found = subprocess.run(["pgrep", "-l", "-u", USER], capture_output=True, text=True).stdout
    for line in found.splitlines():
        pid, name = line.split(maxsplit=1)
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue  # gone meanwhile
        if state not in ("Z", "X"):
            live.append(name)
    if live:
        log(f"  left behind: {', '.join(sorted(live))}")
        subprocess.run(["pkill", "-KILL", "-u", USER], check=False)
    return len(live)


def one_spawn(hub: Hub, token: str, path: str) -> tuple[list[float], list[float]]:
    """One spawn, stopped again once the desktop's panel has settled. Returns [ready, pixels, usable,
    processes left behind] (seconds from the POST; nan where the desktop never drew) and the stages."""
    posted = time.time()
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
    job_id = str(servers[""].get("state", {}).get("job_id", ""))
    try:
        pixels_at, usable_at = asyncio.run(watch_desktop(hub, token, path, t0 + 90))
        pixels, usable = pixels_at - t0, usable_at - t0
    except RuntimeError as e:  # counted and shown, not hidden: a desktop that never drew
        log(f"  no desktop pixels: {e}; its logs kept in {keep_desktop_logs()}")
        pixels = usable = float("nan")
    hub.api("DELETE", f"/users/{USER}/server")
    while hub.api("GET", f"/users/{USER}").json()["servers"] or slurm_jobs():
        if time.monotonic() - t0 > 300:
            raise RuntimeError("the server or its job did not go away")
        time.sleep(0.2)
    time.sleep(1)  # what the job's end signals has a moment to go
    return [ready, pixels, usable, float(left_behind())], breakdown(job_id, posted, posted + ready)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--no-ssh", action="store_true", help="skip the runs over ssh")
    args = parser.parse_args()
    devstack("slurm", "start")
    kinds = [k for k in KINDS if not (args.no_ssh and KINDS[k][1])]
    peer.ensure_venv(log)
    ssh = None
    if not args.no_ssh:
        devstack("login-node", "start")
        ssh = devstack("login-node", "ssh-prefix").strip()
    if slurm_jobs():
        raise SystemExit(f"{USER} has Slurm jobs already: {slurm_jobs()}")
    squeue = Path(shutil.which("squeue") or "/usr/bin/squeue")
    hubs: dict[str, Hub] = {}
    tmp = tempfile.TemporaryDirectory(prefix="jvnc-latency-")
    results: dict[str, list[list[float]]] = {k: [] for k in kinds}
    stages: dict[str, list[list[float]]] = {k: [] for k in kinds}
    failed = 0
    try:
        for kind in kinds:
            spawner, over_ssh, port, is_peer = KINDS[kind]
            state = Path(tmp.name) / kind
            state.mkdir()
            ports = {"hub": port, "api": port + 1, "proxy_api": port + 2}
            extra = extra_config(spawner, ssh if over_ssh else None, is_peer)
            hubs[kind] = Hub(spawner, state, squeue, 1, extra, ports=ports)
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
                    figures, parts = one_spawn(hubs[kind], tokens[kind], WEBSOCKET[KINDS[kind][3]])
                except SpawnFailed as e:
                    if kind != "plain-ssh":  # the one kind expected to fail (see above)
                        raise
                    failed += 1
                    log(f"run {run} {kind:9s} failed: {e}")
                    continue
                results[kind].append(figures)
                stages[kind].append(parts)
                ready, pixels, usable, left = figures
                log(f"run {run} {kind:9s} ready {ready:5.2f} s  pixels {pixels:5.2f} s  usable {usable:5.2f}"
                    f" s  left behind {left:.0f}  stages " + " ".join(f"{x:.2f}" for x in parts))  # fmt: skip
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

    def unqueued_ratio(a: str, b: str) -> float:
        """ours/plain of "ready" less Slurm's own submit -> allocation wait: slurmctld allocates on its
        1 s scheduler tick here, a wait of 0-1 s that falls on either kind by chance."""
        if len(stages[a]) != len(stages[b]):
            return float("nan")
        pairs = [
            (x[0] - sx[1]) / (y[0] - sy[1])
            for x, y, sx, sy in zip(results[a], results[b], stages[a], stages[b], strict=True)
            if sx[1] == sx[1] and sy[1] == sy[1]
        ]
        return statistics.median(pairs) if pairs else float("nan")

    def after_ready(kind: str) -> float:
        """Median of pixels - ready over the runs that drew: how long the desktop took after "ready"."""
        values = [r[1] - r[0] for r in results[kind] if r[1] == r[1]]
        return statistics.median(values) if values else float("nan")

    def ready_range(kind: str) -> str:
        values = [r[0] for r in results[kind]]
        return f"{min(values):.2f}-{max(values):.2f}" if values else "nan"

    undrawn = {k: sum(1 for r in results[k] if r[1] != r[1]) for k in kinds}

    log(f"\n{'':10s} {'ready':>8s} {'pixels':>8s} {'usable':>8s} {'pixels - ready':>15s}"
        f" {'ready min-max':>14s} {'left behind':>12s}   medians, runs={args.runs}, 1 GB")  # fmt: skip
    for kind in kinds:
        log(f"{kind:10s} {med(kind, 0):6.2f} s {med(kind, 1):6.2f} s {med(kind, 2):6.2f} s"
            f" {after_ready(kind):13.2f} s {ready_range(kind):>12s} s {med(kind, 3):12.0f}")  # fmt: skip
    log(f"\nwhere the time goes (median s per stage): {', '.join(STAGES)}")
    stage_medians: dict[str, list[float]] = {}
    for kind in kinds:
        columns = list(zip(*stages[kind], strict=True)) or [[] for _ in STAGES]
        stage_medians[kind] = [
            statistics.median([x for x in column if x == x]) if any(x == x for x in column) else float("nan")
            for column in columns
        ]
        log(f"{kind:10s} " + " ".join(f"{x:6.2f}" for x in stage_medians[kind]))
    figures = [
        f"ours_vs_plain={pair_ratio('ours', 'plain', 0):.2f}",
        f"pixels_ours_vs_plain={pair_ratio('ours', 'plain', 1):.2f}",
        f"ours_ready_s={med('ours', 0):.2f}", f"plain_ready_s={med('plain', 0):.2f}",
        f"ours_pixels_s={med('ours', 1):.2f}", f"plain_pixels_s={med('plain', 1):.2f}",
        f"ours_drawn_after_ready_s={after_ready('ours'):.2f}",
        f"plain_drawn_after_ready_s={after_ready('plain'):.2f}",
        f"ours_ready_range_s={ready_range('ours')}", f"plain_ready_range_s={ready_range('plain')}",
        # A usable desktop (the panel drawn as it stays), from the spawn request: ours vs the peer's
        # whole stack (plain SlurmSpawner + jupyter-remote-desktop-proxy).
        f"ours_vs_plain_without_queue={unqueued_ratio('ours', 'plain'):.2f}",
        f"usable_ours_vs_peer={pair_ratio('ours', 'peer', 2):.2f}",
        f"usable_ours_s={med('ours', 2):.2f}", f"usable_peer_s={med('peer', 2):.2f}",
        f"peer_ready_s={med('peer', 0):.2f}",
        f"left_behind_ours={med('ours', 3):.0f}", f"left_behind_peer={med('peer', 3):.0f}",
    ]  # fmt: skip
    if "ours-ssh" in results:
        figures += [
            f"ssh_ours_vs_plain={pair_ratio('ours-ssh', 'plain-ssh', 0):.2f}",
            f"ssh_ours_ready_s={med('ours-ssh', 0):.2f}", f"ssh_plain_ready_s={med('plain-ssh', 0):.2f}",
            f"ssh_plain_failed={failed}",
        ]  # fmt: skip
    for kind in ("ours", "plain"):
        figures += [
            f"{kind}_{name.replace(' ', '_')}_s={x:.2f}"
            for name, x in zip(STAGES, stage_medians[kind], strict=True)
        ]
    figures.append(f"undrawn={sum(undrawn.values())}")
    if any(undrawn.values()):
        log(f"desktops that never drew within 90 s: {undrawn}")
    log("RESULT " + " ".join(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
