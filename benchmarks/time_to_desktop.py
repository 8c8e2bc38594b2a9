"""Time to desktop: jupyter-vnc against jupyter-remote-desktop-proxy, from a click and from a page open.

What it starts (as root; no hub, no Slurm): fresh Jupyter servers as the test user (common.Bench), one
per measured run, ours (desktop prestarted with the server) and the peer's (desktop started on the
first websocket), alternating; the same screen size for both (the peer's hard-coded 1680x1050) and a
private home per kind. First one unmeasured desktop of each kind, so every measured run finds a used
XFCE home. Then, in this order:

- click (the headline): a fresh server with JupyterLab on; Debian's Chromium (headless, Playwright)
  loads JupyterLab, the desktop tile is clicked as soon as it shows, and the clock runs from the click
  to the first desktop pixels on the noVNC canvas of the new tab (more than 20 distinct colours over
  the canvas: XFCE's background and panel). Also timed: server answered -> tile visible.
  ``--runs`` servers of each kind, alternating.
- cold (server side, no browser): a fresh server (our unneeded extensions off, see common.py), opened
  the instant it answers /api/status by an RFB client doing what a viewer does: GET the desktop page,
  open the authenticated websocket, RFB handshake, full-screen Raw updates until more than 20 colours;
  the clock runs from the page request. Xvnc's start time relative to the first answer is printed too.
- cold+delay (ours only): the same, ``--delay`` s (3) after the server answered.
- warm: ``--warm-runs`` reconnects to a desktop of each kind that is already running.

The cold cases rotate from run to run. Prints every run, the medians with their runs, the ratios
ours/peer, a ``secondary`` line (the cold, cold+delay and warm medians and ratios, server answered ->
tile visible over both kinds' click runs, and what ours gains on a cold open: peer cold - ours cold),
and last ``RESULT click_ratio=<ours/peer> ours_click_s=... peer_click_s=...
ours_click_range_s=<min-max> peer_click_range_s=<min-max> goal_click_ratio_le_0.5=met|missed runs=N``.

Run as root: /opt/jupyter-vnc/venv/bin/python benchmarks/time_to_desktop.py [--runs 5] [--warm-runs 5]
             [--delay 3]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import sys
import time

import common
from common import fmt, log, median, ratio


def show(
    label: str, i: int, o: common.Open, answered: float | None = None, xvnc: float | None = None
) -> None:
    cold = ""
    if answered is not None:
        cold = f"server answered after {answered:4.2f}s, "
        if xvnc is not None:
            cold += f"Xvnc started {xvnc:+5.2f}s from then | "
    log(
        f"{label:<13} run {i + 1}: {cold}page {o.page * 1e3:4.1f}ms  websocket {o.websocket * 1e3:5.1f}ms"
        f"  handshake {o.handshake:4.2f}s  drawn {o.drawn:4.2f}s"
        f"  ({o.polls} full-screen reads, {o.colours} colours)"
    )


def spread(values: list[float]) -> str:
    """min-max of a case's runs, as quoted beside its median."""
    return f"{min(values):.2f}-{max(values):.2f}" if values else "nan"


async def cold(bench: common.Bench, kind: str, delay: float, label: str, i: int) -> float:
    server = bench.start(kind)
    try:
        answered = server.wait_answering()
        if delay:
            await asyncio.sleep(delay)
        opened = await common.open_desktop(server)
        xvnc = common.started_at(server.xdisplay().pid)
        show(label, i, opened, answered, xvnc - server.answered_at if xvnc else None)
    finally:
        bench.finish(server)
    return opened.drawn


CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync",
]  # fmt: skip
TILES = {"ours": "GPU Desktop", "peer": "Desktop"}  # the launcher tile of each kind
# Distinct colours over the whole noVNC canvas (every 7th pixel), read in the page itself.
CANVAS_COLOURS = """() => {
  const canvas = document.querySelector('canvas');
  if (!canvas || !canvas.width) return 0;
  const data = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
  const seen = new Set();
  for (let i = 0; i < data.length; i += 4 * 7) seen.add((data[i] << 16) | (data[i + 1] << 8) | data[i + 2]);
  return seen.size;
}"""


# In every page of the click runs, before its own scripts: when the page's navigation started (the
# new tab), when its websocket was made, opened, and got its first bytes and its first 100 kB (the
# first full update), on the page's clock (performance.timeOrigin + now(), Unix ms), so that the click
# -> pixels time is broken down the same way for both kinds.
MARKS = """(() => {
  const marks = (window.__benchMarks = { start: performance.timeOrigin });
  const at = () => performance.timeOrigin + performance.now();
  const Native = window.WebSocket;
  // A function, not a subclass: noVNC checks a channel's methods on its direct prototype.
  function Marked(...args) {
    const socket = new Native(...args);
    marks.websocket ??= at();
    let bytes = 0;
    socket.addEventListener('open', () => { marks.open ??= at(); });
    socket.addEventListener('message', (event) => {
      marks.first ??= at();
      bytes += event.data.byteLength ?? event.data.size ?? event.data.length ?? 0;
      if (bytes > 100000) marks.bulk ??= at();
    });
    return socket;
  }
  Marked.prototype = Native.prototype;
  for (const name of ['CONNECTING', 'OPEN', 'CLOSING', 'CLOSED']) Marked[name] = Native[name];
  window.WebSocket = Marked;
})()"""
STEPS = ("tab", "page", "websocket", "open", "first bytes", "first 100 kB", "pixels")


def breakdown(clicked_unix: float, marks: dict, drawn_unix: float) -> list[float]:
    """Seconds from each mark to the next: the click -> the new tab's navigation start -> its document
    loaded (DOMContentLoaded) -> websocket made -> open -> first bytes -> 100 kB -> pixels seen."""
    points = [clicked_unix * 1e3, marks.get("start"), marks.get("loaded"), marks.get("websocket"),
              marks.get("open"), marks.get("first"), marks.get("bulk"), drawn_unix * 1e3]  # fmt: skip
    return [(b - a) / 1e3 if a and b else float("nan") for a, b in itertools.pairwise(points)]


async def click(bench: common.Bench, kind: str, i: int) -> tuple[float, float]:
    """What a user does: a fresh server, JupyterLab in Chromium, a click on the desktop tile as soon as
    it shows, then the desktop in the new tab. Returns (server answered -> tile visible, click ->
    first desktop pixels on the new tab's canvas)."""
    from playwright.async_api import async_playwright

    server = bench.start(kind, full=True)
    try:
        server.wait_answering()
        async with async_playwright() as p:
            browser = await p.chromium.launch(
                executable_path="/usr/bin/chromium", headless=True, args=CHROMIUM_ARGS
            )
            try:
                context = await browser.new_context(viewport={"width": 1700, "height": 1100})
                await context.add_init_script(MARKS)
                page = await context.new_page()
                await page.goto(f"{server.url}lab?token={server.token}")
                tile = page.locator(".jp-LauncherCard", has_text=TILES[kind]).first
                await tile.wait_for(timeout=90_000)
                lab = common.boottime() - server.answered_at  # both CLOCK_BOOTTIME
                async with context.expect_page() as opened:
                    clicked = time.perf_counter()
                    clicked_unix = time.time()
                    await tile.click()
                desktop = await opened.value
                while True:
                    with contextlib.suppress(Exception):  # the page is still loading
                        if await desktop.evaluate(CANVAS_COLOURS) > common.COLOURS_DRAWN:
                            break
                    if time.perf_counter() - clicked > 90:
                        raise RuntimeError(f"{kind}: no desktop on the canvas 90 s after the click")
                    await asyncio.sleep(0.02)
                drawn = time.perf_counter() - clicked
                marks = await desktop.evaluate(
                    "() => ({...window.__benchMarks,"
                    " loaded: performance.timeOrigin + performance.getEntriesByType('navigation')[0]"
                    ".domContentLoadedEventEnd})"
                )
                steps = breakdown(clicked_unix, marks, clicked_unix + drawn)
            finally:
                await browser.close()
    finally:
        bench.finish(server)
    log(
        f"{kind} click     run {i + 1}: launcher tile {lab:4.2f}s after the server answered,"
        f" click -> pixels {drawn:4.2f}s ("
        + ", ".join(f"{name} {x * 1e3:.0f}" for name, x in zip(STEPS, steps, strict=True))
        + " ms)"
    )
    return lab, drawn


async def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=5, help="cold runs of each kind (default 5)")
    parser.add_argument("--warm-runs", type=int, default=5, help="warm reconnects of each kind (default 5)")
    parser.add_argument("--delay", type=float, default=3.0, help="user delay of the cold+delay case (s)")
    parser.add_argument("--click-only", action="store_true", help="the click runs alone (no cold, warm)")
    args = parser.parse_args()

    bench = common.Bench("time_to_desktop")
    label_delay = f"ours cold+{args.delay:g}s"
    cases = [("ours", 0.0, "ours cold"), ("peer", 0.0, "peer cold"), ("ours", args.delay, label_delay)]
    results: dict[str, list[float]] = {label: [] for _, _, label in cases}
    results["ours warm"], results["peer warm"] = [], []
    try:
        log("## priming: one unmeasured desktop of each kind, so that every measured run finds a used home")
        for kind in ("ours", "peer"):
            await bench.prime(kind)
        log(
            f"## a real click: JupyterLab in Chromium, the tile, the new tab's canvas;"
            f" {args.runs} fresh servers each"
        )
        lab_ready: list[float] = []
        for i in range(args.runs):
            for kind in ("ours", "peer") if i % 2 == 0 else ("peer", "ours"):
                lab, drawn = await click(bench, kind, i)
                results.setdefault(f"{kind} click", []).append(drawn)
                lab_ready.append(lab)
        log(f"## cold: {args.runs} runs of each, interleaved; screen {common.peer.geometry()}")
        for i in range(0 if args.click_only else args.runs):
            order = cases[i % len(cases) :] + cases[: i % len(cases)]  # rotate: no case always first
            for kind, delay, label in order:
                results[label].append(await cold(bench, kind, delay, label, i))

        log(f"## warm: {args.warm_runs} reconnects to a running desktop of each, alternating")
        servers = {} if args.click_only else {kind: bench.start(kind) for kind in ("ours", "peer")}
        for server in servers.values():
            server.wait_answering()
            await common.open_desktop(server)  # start it (peer) / wait until drawn (ours)
        await asyncio.sleep(1)
        for i in range(args.warm_runs):
            for kind, server in servers.items():
                opened = await common.open_desktop(server)
                show(f"{kind} warm", i, opened)
                results[f"{kind} warm"].append(opened.drawn)
                await asyncio.sleep(0.3)
        for server in servers.values():
            bench.finish(server)
    finally:
        bench.close()

    med = {label: median(values) for label, values in results.items()}
    log("## medians (seconds from the click, or the page request, to desktop pixels)")
    for label, values in results.items():
        runs = " ".join(fmt(v) for v in values)
        log(f"{label:<14} median {fmt(med[label], 3)} s ({spread(values)})   runs: {runs}")
    cold_ratio = ratio(med["ours cold"], med["peer cold"])
    delay_ratio = ratio(med[label_delay], med["peer cold"])
    warm_ratio = ratio(med["ours warm"], med["peer warm"])
    click_ratio = ratio(med["ours click"], med["peer click"])
    goal = "met" if click_ratio <= 0.5 else "missed"
    log(f"ours/peer, click on the tile -> desktop pixels {fmt(click_ratio)} (goal <= 0.5: {goal});"
        f" cold, opened the instant the server answers {fmt(cold_ratio)};"
        f" ours cold+{args.delay:g}s / peer cold {fmt(delay_ratio)}; warm {fmt(warm_ratio)}")  # fmt: skip
    log(
        "secondary (server side, RFB client, no browser):"
        f" ours_cold_s={fmt(med['ours cold'], 3)} peer_cold_s={fmt(med['peer cold'], 3)}"
        f" ours_cold_delay{args.delay:g}s_s={fmt(med[label_delay], 3)}"
        f" lab_ready_s={fmt(median(lab_ready), 3)}"
        f" ours_warm_s={fmt(med['ours warm'], 3)} peer_warm_s={fmt(med['peer warm'], 3)}"
        f" cold_ratio={fmt(cold_ratio, 3)} cold_delay_ratio={fmt(delay_ratio, 3)}"
        f" warm_ratio={fmt(warm_ratio, 3)} cold_gain_s={fmt(med['peer cold'] - med['ours cold'], 3)}"
    )
    log(
        f"RESULT click_ratio={fmt(click_ratio, 3)} ours_click_s={fmt(med['ours click'], 3)}"
        f" peer_click_s={fmt(med['peer click'], 3)} ours_click_range_s={spread(results['ours click'])}"
        f" peer_click_range_s={spread(results['peer click'])} goal_click_ratio_le_0.5={goal} runs={args.runs}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
