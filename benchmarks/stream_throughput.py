"""Streaming an animated desktop: updates/s and MB/s through jupyter-vnc, the peer, and straight from Xvnc.

What it starts (as root, like every script here; no hub, no Slurm): two Jupyter servers as the test
user (common.Bench), ours with jupyter-vnc (its desktop prestarted, ``--VNCDesktop.resolution`` set to
the peer's 1680x1050) and jupyter-remote-desktop-proxy's, each desktop opened until XFCE has drawn it,
and ``glxgears -geometry 800x600`` on each desktop (software GL, ``nice 19`` so the renderer does not
starve the path being measured on two cores). A VNC server answers an incremental update request only
when the screen changes, so the desktop being measured animates and the other one's glxgears is
SIGSTOPped.

What it measures: an RFB client (32 bpp, ZRLE) asks for incremental FramebufferUpdates for ``--seconds``
s (after 1 s for the animation to get going) and counts the updates and the size of their RFB messages,
over:

- ours:   our websocket, ``ws://.../vnc/websockify`` (Jupyter's auth, our bridge to the unix socket),
          as the owner: every message the client sends is framed by the bridge's RFB parser
          (``rfb_input.Gate``) and passed on whole;
- viewer: the same websocket as a connection that may only watch (``?view_only=1``): the parser also
          filters (input dropped, update requests passed) and the desktop's replies are framed on their
          way back (``rfb_output``), as for a share recipient;
- peer:   jupyter-remote-desktop-proxy's ``ws://.../desktop-websockify/`` (jupyter-server-proxy);
- direct: the unix socket of our Xvnc itself, no Jupyter in between: the most the path can carry.

in two request modes:

- single:    one request outstanding: the next one is sent as soon as an update has arrived, so every
             update waits for a round trip through the path (a request-driven viewer, noVNC against a
             server without continuous updates);
- pipelined: ``--window`` requests (default 6) sent at once, then one more each time an update arrives,
             so the server always holds a request and never waits for the client: the path's
             throughput without its round-trip latency. Xvnc answers requests that reach it before an
             update is sent with one update (the requested regions merge), so the window keeps the
             server supplied rather than holding N updates in flight. ``--window 0`` skips this mode.

(noVNC itself turns on TigerVNC's continuous updates, where Xvnc pushes updates without requests,
paced by fences: neither mode is exactly that.) Every (path, mode) pair is measured once per round, in an
order rotated from round to round, over ``--rounds`` rounds; the medians are compared, per mode:
ours/direct and viewer/direct (goal >= 0.95 for both) and ours/peer.

TigerVNC sends at most 60 updates/s by default (its FrameRate), and the defaults reach that cap on the
direct path; ``--frame-rate 1000`` lifts it on our Xvnc (ours, viewer, direct; the peer's command line
cannot be changed) to see how much the bridge itself can carry.

Prints every measurement, the medians per mode, the ratios, and last one line
``RESULT ours_ups=... direct_ups=... ours_direct_ratio=... ... ours_ups_pipelined=...
ours_direct_ratio_pipelined=... window=6 ...``: the keys without a suffix are the single mode (as in
runs before the pipelined mode existed), those ending in ``_pipelined`` the pipelined one.

Run as root: /opt/jupyter-vnc/venv/bin/python benchmarks/stream_throughput.py [--rounds 4] [--seconds 8]
             [--window 6] [--frame-rate 1000]    (~6 min with the defaults)
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
import time
from collections.abc import Awaitable, Callable

import common
from common import fmt, log, median, ratio

from testkit.rfb import ZRLE, RFBClient

MODES = ("single", "pipelined")


async def stream(
    connect: Callable[[], Awaitable[tuple[RFBClient, object]]], seconds: float, window: int = 1
) -> tuple[float, float]:
    """(updates/s, MB/s) of incremental ZRLE updates for ``seconds``, ``window`` requests outstanding:
    that many are sent at the start, then one more as each update arrives (1: one at a time)."""
    client, transport = await connect()
    try:
        await client.handshake()
        await client.set_pixel_format_32()
        await client.set_encodings(ZRLE)
        await client.request_update(incremental=False)
        await asyncio.wait_for(client.read_update(), 30)
        updates = nbytes = 0
        t0 = time.perf_counter()
        for _ in range(window):
            await client.request_update(incremental=True)
        while time.perf_counter() - t0 < seconds:
            update = await asyncio.wait_for(client.read_update(), 10)
            updates += 1
            nbytes += update.nbytes
            await client.request_update(incremental=True)
        elapsed = time.perf_counter() - t0
    finally:
        common.close_transport(transport)
    return updates / elapsed, nbytes / elapsed / 1e6


async def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=4, help="interleaved rounds (default 4)")
    parser.add_argument("--seconds", type=float, default=8.0, help="length of one measurement (default 8)")
    parser.add_argument("--gears", default="800x600", help="glxgears window size (default 800x600)")
    parser.add_argument(
        "--window", type=int, default=6,
        help="requests outstanding in the pipelined mode (default 6); 0 measures the single mode only",
    )  # fmt: skip
    parser.add_argument(
        "--frame-rate", type=int, default=0,
        help="Xvnc -FrameRate for our desktop (default: TigerVNC's own, 60 updates/s). A high value (1000)"
        " lifts that cap, so ours and direct are limited by CPU instead; the peer's command line cannot"
        " be changed and keeps 60, which it does not reach anyway",
    )  # fmt: skip
    args = parser.parse_args()
    if args.window < 0 or args.window == 1:
        parser.error("--window: 0 (single mode only) or 2 and more (1 is the single mode)")

    bench = common.Bench("stream_throughput")
    paths = ["ours", "viewer", "peer", "direct"]
    modes = MODES if args.window else MODES[:1]
    window = {"single": 1, "pipelined": args.window}
    results: dict[tuple[str, str], list[tuple[float, float]]] = {(p, m): [] for p in paths for m in modes}
    try:
        ours_extra = (f"--VNCDesktop.extra_args=-FrameRate={args.frame_rate}",) if args.frame_rate else ()
        servers = {"ours": bench.start("ours", extra=ours_extra), "peer": bench.start("peer")}
        for server in servers.values():
            server.wait_answering()
            await common.open_desktop(server)  # started and drawn
        ours_socket = servers["ours"].xdisplay().socket_path
        gears = {
            kind: bench.spawn_on_display(server, ["glxgears", "-geometry", args.gears], nice=19)
            for kind, server in servers.items()
        }
        for proc in gears.values():
            proc.send_signal(signal.SIGSTOP)
        connect = {
            "ours": lambda: common.websocket_rfb(servers["ours"]),
            "viewer": lambda: common.websocket_rfb(servers["ours"], query="view_only=1"),
            "peer": lambda: common.websocket_rfb(servers["peer"]),
            "direct": lambda: common.unix_rfb(ours_socket),
        }
        described = ", ".join(
            f"{m} ({window[m]} request{'s' if window[m] > 1 else ''} outstanding)" for m in modes
        )
        log(f"## {args.rounds} rounds x {len(paths)} paths x {len(modes)} modes x {args.seconds:g} s;"
            f" glxgears {args.gears}; screen {common.peer.geometry()}; ZRLE, 32 bpp; modes: {described};"
            f" our Xvnc's FrameRate {args.frame_rate or 'default (60)'}")  # fmt: skip
        for r in range(args.rounds):
            # Each round starts with another path, and the modes swap places from round to round.
            order = paths[r % len(paths) :] + paths[: r % len(paths)]
            for path, mode in [(p, m) for p in order for m in (modes if r % 2 == 0 else modes[::-1])]:
                animated = gears["peer" if path == "peer" else "ours"]
                animated.send_signal(signal.SIGCONT)
                await asyncio.sleep(1.0)  # let the animation get going
                ups, mbps = await stream(connect[path], args.seconds, window[mode])
                animated.send_signal(signal.SIGSTOP)
                results[path, mode].append((ups, mbps))
                log(f"round {r + 1} {path:<6} {mode:<9} {ups:6.1f} updates/s  {mbps:6.2f} MB/s")
        for proc in gears.values():
            proc.send_signal(signal.SIGCONT)
            proc.terminate()
        for server in servers.values():
            bench.finish(server)
    finally:
        bench.close()

    ups = {case: median([u for u, _ in values]) for case, values in results.items()}
    mbps = {case: median([m for _, m in values]) for case, values in results.items()}
    log("## medians")
    for mode in modes:
        for path in paths:
            log(
                f"{path:<6} {mode:<9} {fmt(ups[path, mode], 1):>6} updates/s  {fmt(mbps[path, mode]):>6} MB/s"
            )
    figures: list[str] = []
    for mode in modes:
        u = {path: ups[path, mode] for path in paths}
        mb = {path: mbps[path, mode] for path in paths}
        od, vd = ratio(u["ours"], u["direct"]), ratio(u["viewer"], u["direct"])
        op = ratio(u["ours"], u["peer"])
        od_mb, op_mb = ratio(mb["ours"], mb["direct"]), ratio(mb["ours"], mb["peer"])
        goal = "met" if min(od, vd) >= 0.95 else "missed"
        log(f"{mode} ({window[mode]} outstanding): ours/direct {fmt(od, 3)} updates/s, {fmt(od_mb, 3)} MB/s;"
            f" viewer/direct {fmt(vd, 3)} updates/s (goal >= 0.95 for both: {goal});"
            f" ours/peer {fmt(op, 2)} updates/s, {fmt(op_mb, 2)} MB/s")  # fmt: skip
        x = "" if mode == "single" else f"_{mode}"  # the single mode keeps the keys of earlier runs
        figures += [
            f"ours_ups{x}={fmt(u['ours'], 1)}", f"peer_ups{x}={fmt(u['peer'], 1)}",
            f"direct_ups{x}={fmt(u['direct'], 1)}", f"viewer_ups{x}={fmt(u['viewer'], 1)}",
            f"viewer_direct_ratio{x}={fmt(vd, 3)}", f"ours_MBps{x}={fmt(mb['ours'], 3)}",
            f"peer_MBps{x}={fmt(mb['peer'], 3)}", f"direct_MBps{x}={fmt(mb['direct'], 3)}",
            f"viewer_MBps{x}={fmt(mb['viewer'], 3)}", f"ours_direct_ratio{x}={fmt(od, 3)}",
            f"ours_peer_ratio{x}={fmt(op, 2)}", f"goal_ours_direct_ge_0.95{x}={goal}",
        ]  # fmt: skip
    figures += [
        f"rounds={args.rounds}",
        f"frame_rate={args.frame_rate or 'default'}",
        f"window={args.window}",
    ]
    log("RESULT " + " ".join(figures))
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
