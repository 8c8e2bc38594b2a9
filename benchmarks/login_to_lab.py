"""Login -> JupyterLab shown, in Chromium: jupyter-vnc's hub vs the peer's whole stack.

What a user does on a hub: log in, (ours: press Start on the spawn form, done here the moment it shows),
wait for the server, and JupyterLab loads. The clock runs from the login button to JupyterLab's
launcher with its tiles drawn (the same JupyterLab 4 on both sides). Two hubs of the benchmark's own on
the test bed's Slurm, as spawn_latency.py builds them, used interleaved (ours, peer, ours, ...):

- ours: VNCSlurmSpawner, the job runs jupyter-vnc-singleuser + jupyterhub-singleuser with JupyterLab
  and the jupyter-vnc extension, whose desktop starts with the server (as deployed);
- peer: batchspawner's SlurmSpawner, the job runs the peer's venv (batchspawner-singleuser,
  jupyterhub-singleuser, JupyterLab, jupyter-remote-desktop-proxy), whose desktop starts when opened.

Each run is a fresh browser (an empty cache: what a user's first visit of the day costs both) and a
fresh server. Per run: the stages (login -> spawn requested -> JupyterLab's page requested -> launcher
shown), what JupyterLab's page loaded (requests, kB, the project's own share of them: its
labextension's files and its API calls), and the CPU the user's processes used while JupyterLab loaded,
split into the desktop's (Xvnc, XFCE, D-Bus: ours starts its desktop then) and the Jupyter server's.
Prints every run, the medians, and last ``RESULT login_lab_ratio=<ours/peer> ours_login_lab_s=...
peer_login_lab_s=... ours_lab_load_s=... peer_lab_load_s=... ours_desktop_cpu_s=... ours_requests=...
peer_requests=... ours_kB=... peer_kB=... ours_own_requests=... ours_own_kB=... runs=N``.

    /opt/jupyter-vnc/venv/bin/python benchmarks/login_to_lab.py [--runs 5]

Needs root and the test bed (devstack/install; Slurm is started if needed). User olga. ~3 minutes.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import peer
from load_spawn import Hub, log
from spawn_latency import KINDS, USER, devstack, extra_config, left_behind, slurm_jobs

CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking"]
STAGES = ("login -> spawn requested", "-> Lab page requested", "-> launcher shown")
DESKTOP = ("Xvnc", "Xtigervnc", "xfce", "xfwm4", "xfdesktop", "dbus", "xfconfd", "Thunar", "at-spi")
TICK = 100.0  # USER_HZ


def user_cpu() -> dict[str, float]:
    """CPU seconds so far of the user's processes, desktop's and the rest."""
    totals = {"desktop": 0.0, "server": 0.0}
    pids = subprocess.run(["pgrep", "-u", USER], capture_output=True, text=True).stdout.split()
    for pid in pids:
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            continue
        name = stat[stat.index("(") + 1 : stat.rindex(")")]
        fields = stat.rsplit(")", 1)[1].split()
        seconds = (int(fields[11]) + int(fields[12])) / TICK
        totals["desktop" if name.startswith(DESKTOP) else "server"] += seconds
    return totals


# What JupyterLab's page loaded, read in the page: all requests, and the project's own (its
# labextension's files, its API).
LOADED = """() => {
  const all = performance.getEntriesByType('resource');
  const own = all.filter((r) => r.name.includes('/jupyter-vnc/') || r.name.includes('/vnc/'));
  const kb = (list) => list.reduce((sum, r) => sum + (r.transferSize || r.encodedBodySize || 0), 0) / 1024;
  return [all.length, kb(all), own.length, kb(own)];
}"""


async def one_login(hub: Hub) -> tuple[list[float], list[float]]:
    """One login to a launcher; returns the stages and [requests, kB, own requests, own kB,
    desktop CPU s, server CPU s]."""
    from playwright.async_api import async_playwright

    async with async_playwright() as p:
        browser = await p.chromium.launch(
            executable_path="/usr/bin/chromium", headless=True, args=CHROMIUM_ARGS
        )
        try:
            page = await (await browser.new_context(viewport={"width": 1400, "height": 900})).new_page()
            await page.goto(f"{hub.base}/hub/login")
            await page.fill("input[name=username]", USER)
            await page.fill("input[name=password]", "any")
            t0 = time.monotonic()
            await page.click("#login_submit")
            found = page.locator("#spawn_form, #progress-message, .jp-LauncherCard").first
            await found.wait_for(timeout=120_000)
            if await page.locator("#spawn_form").count():
                await page.locator("#spawn_form [type=submit]").first.click()
            requested = time.monotonic()
            await page.wait_for_url(f"**/user/{USER}/lab**", timeout=180_000, wait_until="commit")
            lab_requested, cpu_before = time.monotonic(), user_cpu()
            await page.locator(".jp-LauncherCard").first.wait_for(timeout=180_000)
            shown, cpu_after = time.monotonic(), user_cpu()
            loaded = await page.evaluate(LOADED)
        finally:
            await browser.close()
    cpu = [cpu_after[k] - cpu_before[k] for k in ("desktop", "server")]
    return [requested - t0, lab_requested - requested, shown - lab_requested], [*loaded, *cpu]


def stop(hub: Hub) -> None:
    hub.api("DELETE", f"/users/{USER}/server")
    deadline = time.monotonic() + 120
    while hub.api("GET", f"/users/{USER}").json()["servers"] or slurm_jobs():
        if time.monotonic() > deadline:
            raise RuntimeError("the server or its job did not go away")
        time.sleep(0.2)
    time.sleep(1)
    left_behind()


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    devstack("slurm", "start")
    peer.ensure_venv(log)
    if slurm_jobs():
        raise SystemExit(f"{USER} has Slurm jobs already: {slurm_jobs()}")
    squeue = Path("/usr/bin/squeue")
    tmp = tempfile.TemporaryDirectory(prefix="jvnc-login-")
    hubs: dict[str, Hub] = {}
    stages: dict[str, list[list[float]]] = {"ours": [], "peer": []}
    loads: dict[str, list[list[float]]] = {"ours": [], "peer": []}
    try:
        for kind in stages:
            spawner, _, port, is_peer = KINDS[kind]
            state = Path(tmp.name) / kind
            state.mkdir()
            extra = extra_config(spawner, None, is_peer) + 'c.Spawner.default_url = "/lab"\n'
            ports = {"hub": port + 100, "api": port + 101, "proxy_api": port + 102}
            hubs[kind] = Hub(spawner, state, squeue, 1, extra, ports=ports)
        for run in range(1, args.runs + 1):
            for kind in ("ours", "peer") if run % 2 else ("peer", "ours"):
                steps, loaded = asyncio.run(one_login(hubs[kind]))
                stop(hubs[kind])
                stages[kind].append(steps)
                loads[kind].append(loaded)
                log(
                    f"run {run} {kind:4s} login -> launcher {sum(steps):5.2f} s ("
                    + ", ".join(f"{name} {x:.2f}" for name, x in zip(STAGES, steps, strict=True))
                    + f"); page: {loaded[0]:.0f} requests, {loaded[1]:.0f} kB (the project's own:"
                    f" {loaded[2]:.0f}, {loaded[3]:.0f} kB); while Lab loaded, CPU s of the desktop"
                    f" {loaded[4]:.2f}, of the server {loaded[5]:.2f}"
                )
    finally:
        for hub in hubs.values():
            hub.stop()
        tmp.cleanup()

    def med(values: list[float]) -> float:
        return statistics.median(values) if values else float("nan")

    total = {k: med([sum(s) for s in v]) for k, v in stages.items()}
    lab = {k: med([s[2] for s in v]) for k, v in stages.items()}
    pairs = [sum(a) / sum(b) for a, b in zip(stages["ours"], stages["peer"], strict=True)]
    column = {k: [med([x[i] for x in v]) for i in range(6)] for k, v in loads.items()}
    log(f"\nmedians of {args.runs} runs: " + "; ".join(
        f"{k}: login -> launcher {total[k]:.2f} s, " + ", ".join(
            f"{name} {med([s[i] for s in stages[k]]):.2f}" for i, name in enumerate(STAGES))
        for k in stages))  # fmt: skip
    log(
        "RESULT "
        + " ".join(
            [
                f"login_lab_ratio={med(pairs):.2f}",
                f"ours_login_lab_s={total['ours']:.2f}",
                f"peer_login_lab_s={total['peer']:.2f}",
                f"ours_lab_load_s={lab['ours']:.2f}",
                f"peer_lab_load_s={lab['peer']:.2f}",
                f"ours_desktop_cpu_s={column['ours'][4]:.2f}",
                f"ours_requests={column['ours'][0]:.0f}",
                f"peer_requests={column['peer'][0]:.0f}",
                f"ours_kB={column['ours'][1]:.0f}",
                f"peer_kB={column['peer'][1]:.0f}",
                f"ours_own_requests={column['ours'][2]:.0f}",
                f"ours_own_kB={column['ours'][3]:.0f}",
                f"runs={args.runs}",
            ]
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
