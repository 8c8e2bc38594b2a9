"""Streaming an animated desktop: updates/s and MB/s through jupyter-vnc, the peer, and straight from Xvnc.

A VNC server only answers an incremental update request when the screen changes, so each desktop runs
``glxgears`` (software GL, ``nice``d so that the renderer does not starve the path being measured on two
cores). An RFB client (32 bpp, ZRLE) then asks for incremental updates back to back, always one request
outstanding (the next one is sent as soon as an update has arrived), for ``--seconds`` s over:

- ours:   our websocket, ``ws://.../vnc/websockify`` (Jupyter's auth, our bridge to the unix socket),
          as the owner: every message the client sends is framed by the bridge's RFB parser
          (``rfb_input.Gate``) and passed on whole;
- viewer: the same websocket as a connection that may only watch (``?view_only=1``): the parser also
          filters (input dropped, update requests passed), as for a share recipient;
- peer:   jupyter-remote-desktop-proxy's ``ws://.../desktop-websockify/`` (jupyter-server-proxy);
- direct: the unix socket of our Xvnc itself, no Jupyter in between: the most the path can carry.

Only the desktop being measured animates (the other's glxgears is SIGSTOPped). The three paths are
measured in interleaved rounds; the medians are compared: ours/direct and viewer/direct (goal >= 0.95
for both) and ours/peer.

TigerVNC sends at most 60 updates/s by default (its FrameRate), and the defaults reach that cap on the
direct path; ``--frame-rate 1000`` lifts it on our Xvnc to see how much the bridge itself can carry.

Run as root: /opt/jupyter-vnc/venv/bin/python benchmarks/stream_throughput.py [--rounds 4] [--seconds 8]
             [--frame-rate 1000]
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


async def stream(
    connect: Callable[[], Awaitable[tuple[RFBClient, object]]], seconds: float
) -> tuple[float, float]:
    """(updates/s, MB/s) of back-to-back incremental ZRLE updates for ``seconds``."""
    client, transport = await connect()
    try:
        await client.handshake()
        await client.set_pixel_format_32()
        await client.set_encodings(ZRLE)
        await client.request_update(incremental=False)
        await asyncio.wait_for(client.read_update(), 30)
        updates = nbytes = 0
        t0 = time.perf_counter()
        while time.perf_counter() - t0 < seconds:
            await client.request_update(incremental=True)
            update = await asyncio.wait_for(client.read_update(), 10)
            updates += 1
            nbytes += update.nbytes
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
        "--frame-rate", type=int, default=0,
        help="Xvnc -FrameRate for our desktop (default: TigerVNC's own, 60 updates/s). A high value (1000)"
        " lifts that cap, so ours and direct are limited by CPU instead; the peer's command line cannot"
        " be changed and keeps 60, which it does not reach anyway",
    )  # fmt: skip
    args = parser.parse_args()

    bench = common.Bench("stream_throughput")
    paths = ["ours", "viewer", "peer", "direct"]
    results: dict[str, list[tuple[float, float]]] = {path: [] for path in paths}
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
        log(f"## {args.rounds} rounds x {len(paths)} paths x {args.seconds:g} s; glxgears {args.gears};"
            f" screen {common.peer.geometry()}; ZRLE, 32 bpp, one request outstanding;"
            f" our Xvnc's FrameRate {args.frame_rate or 'default (60)'}")  # fmt: skip
        for r in range(args.rounds):
            order = paths[r % len(paths) :] + paths[: r % len(paths)]
            for path in order:
                animated = gears["peer" if path == "peer" else "ours"]
                animated.send_signal(signal.SIGCONT)
                await asyncio.sleep(1.0)  # let the animation get going
                ups, mbps = await stream(connect[path], args.seconds)
                animated.send_signal(signal.SIGSTOP)
                results[path].append((ups, mbps))
                log(f"round {r + 1} {path:<6} {ups:6.1f} updates/s  {mbps:6.2f} MB/s")
        for proc in gears.values():
            proc.send_signal(signal.SIGCONT)
            proc.terminate()
        for server in servers.values():
            bench.finish(server)
    finally:
        bench.close()

    ups = {path: median([u for u, _ in values]) for path, values in results.items()}
    mbps = {path: median([m for _, m in values]) for path, values in results.items()}
    log("## medians")
    for path in paths:
        log(f"{path:<6} {fmt(ups[path], 1):>6} updates/s  {fmt(mbps[path]):>6} MB/s")
    od, op = ratio(ups["ours"], ups["direct"]), ratio(ups["ours"], ups["peer"])
    vd = ratio(ups["viewer"], ups["direct"])
    od_mb, op_mb = ratio(mbps["ours"], mbps["direct"]), ratio(mbps["ours"], mbps["peer"])
    goal = "met" if min(od, vd) >= 0.95 else "missed"
    log(f"ours/direct {fmt(od, 3)} updates/s, {fmt(od_mb, 3)} MB/s; viewer/direct {fmt(vd, 3)} updates/s"
        f" (goal >= 0.95 for both: {goal}); ours/peer {fmt(op, 2)} updates/s, {fmt(op_mb, 2)} MB/s"
    )  # fmt: skip
    log(
        "RESULT"
        f" ours_ups={fmt(ups['ours'], 1)} peer_ups={fmt(ups['peer'], 1)} direct_ups={fmt(ups['direct'], 1)}"
        f" viewer_ups={fmt(ups['viewer'], 1)} viewer_direct_ratio={fmt(vd, 3)}"
        f" ours_MBps={fmt(mbps['ours'], 3)} peer_MBps={fmt(mbps['peer'], 3)}"
        f" direct_MBps={fmt(mbps['direct'], 3)} ours_direct_ratio={fmt(od, 3)}"
        f" ours_peer_ratio={fmt(op, 2)} goal_ours_direct_ge_0.95={goal} rounds={args.rounds}"
        f" frame_rate={args.frame_rate or 'default'}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
