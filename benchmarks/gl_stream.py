"""What a user sees of a full-screen OpenGL animation: frames delivered through jupyter-vnc vs the socket.

A 1920x1080 desktop (our Jupyter server, our Xvnc) runs ``glxspheres64 -fs`` through VirtualGL
(``vglrun``; its EGL back end renders on the GPU where there is one, on Mesa's software EGL device
here). An RFB client asks for incremental updates back to back, one request outstanding, with the
encodings noVNC asks for (Tight, JPEG quality 6, compression 2; ``--encoding zrle`` for ZRLE), over:

- ours:   our websocket, ``ws://.../vnc/websockify`` (Jupyter's auth, our bridge to the unix socket);
- direct: the unix socket of the same Xvnc, no Jupyter in between: the most the path can carry.

The two paths alternate over ``--rounds`` rounds. Per path: updates/s, full frames/s delivered (area
delivered per second / screen area: a partial update counts for its share), MB/s, and the X server's
CPU time per delivered full frame and per update (from /proc: Xvnc renders nothing here, it encodes).
And glxspheres' own frames/s from its output, to compare what is rendered with what arrives.

What it starts (as root; no hub, no Slurm): one Jupyter server of ours as the test user (common.Bench)
with ``--VNCDesktop.virtualgl=off`` (only glxspheres64 runs under vglrun, not the session) and, with
``--frame-rate``, ``-FrameRate`` for its Xvnc; glxspheres64 with ``VGL_DISPLAY=egl``. Without
VirtualGL it stops and says so, unless ``--no-vglrun`` (glxspheres64 through the X server's GLX).

Goals (issue 11): ours >= 0.95x direct; with a GPU, >= 30 delivered frames/s at 1920x1080.
Prints every round, the medians, and last ``RESULT ours_direct_ratio=... fps_delivered=... fps_direct=...
fps_rendered=... ups_ours=... ups_direct=... MBps_ours=... MBps_direct=... xvnc_cpu_ms_per_frame=...
xvnc_cpu_ms_per_update=... xvnc_cpu_ms_per_update_direct=... encoding=... geometry=... gl=... frame_rate=...
rounds=N`` (the Xvnc CPU figures without a suffix are those of the "ours" rounds).

Run as root: /opt/jupyter-vnc/venv/bin/python benchmarks/gl_stream.py [--rounds 4] [--seconds 8]
             [--encoding tight|zrle] [--frame-rate N] [--no-vglrun]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import signal
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path

import common
from common import fmt, log, median, ratio

from jupyter_vnc.gpu import find_vglrun
from testkit.rfb import NOVNC_ENCODINGS, RAW, ZRLE, RFBClient, StreamRate, measure_stream

GEOMETRY = "1920x1080"
ENCODINGS = {"tight": NOVNC_ENCODINGS, "zrle": (ZRLE, RAW)}
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[-1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


async def stream(
    connect: Callable[[], Awaitable[tuple[RFBClient, object]]], encodings: tuple[int, ...], seconds: float
) -> StreamRate:
    client, transport = await connect()
    try:
        await client.handshake()
        await client.set_pixel_format_32()
        await client.set_encodings(*encodings)
        await client.request_update(incremental=False)
        await asyncio.wait_for(client.read_update(), 30)
        return await measure_stream(client, seconds)
    finally:
        common.close_transport(transport)


def rendered_fps(log_path: Path, since: int) -> float:
    """Median of glxspheres' own "N frames/sec" lines written after byte ``since`` of its output."""
    text = log_path.read_text(errors="replace")[since:]
    values = [float(v) for v in re.findall(r"([\d.]+) frames/sec", text)]
    return median(values) if values else float("nan")


async def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=4, help="interleaved rounds (default 4)")
    parser.add_argument("--seconds", type=float, default=8.0, help="length of one measurement (default 8)")
    parser.add_argument("--encoding", choices=sorted(ENCODINGS), default="tight", help="default: tight")
    parser.add_argument(
        "--frame-rate", type=int, default=0,
        help="Xvnc -FrameRate (default: TigerVNC's own, 60); 1000 lifts the cap",
    )  # fmt: skip
    parser.add_argument("--no-vglrun", action="store_true", help="GL straight through the X server (GLX)")
    args = parser.parse_args()
    vglrun = "" if args.no_vglrun else find_vglrun()
    spheres = Path(vglrun).parent / "glxspheres64" if vglrun else None
    if not args.no_vglrun and not (vglrun and spheres and spheres.exists()):
        log("no VirtualGL (vglrun, glxspheres64): run devstack/install, or pass --no-vglrun")
        return 1

    bench = common.Bench("gl_stream")
    paths = ["ours", "direct"]
    results: dict[str, list[tuple[StreamRate, float, float, float]]] = {p: [] for p in paths}
    try:
        extra = ["--VNCDesktop.virtualgl=off"]
        if args.frame_rate:
            extra.append(f"--VNCDesktop.extra_args=-FrameRate={args.frame_rate}")
        server = bench.start("ours", extra=tuple(extra), geometry=GEOMETRY)
        server.wait_answering()
        await common.open_desktop(server)
        x = server.xdisplay()
        # The GL program is started under vglrun explicitly (the session itself is not, so the
        # measurement does not depend on what else of XFCE would run under VirtualGL).
        gl_log = bench.root / "glxspheres.log"
        # Line-buffered, one report a second: its frames/s lines must reach the log while it runs.
        argv = ["stdbuf", "-oL", *([vglrun, str(spheres)] if vglrun else ["glxspheres64"]), "-bt", "1", "-fs"]
        gl_log.touch()
        os.chown(gl_log, bench.user.pw_uid, bench.user.pw_gid)
        gl = bench.spawn_on_display(
            server, ["sh", "-c", 'VGL_DISPLAY=egl exec "$@" >' + str(gl_log) + " 2>&1", "sh", *argv]
        )
        await asyncio.sleep(3)
        if gl.poll() is not None:
            log(f"glxspheres64 exited: {gl_log.read_text()[-2000:]}")
            return 1
        connect = {
            "ours": lambda: common.websocket_rfb(server),
            "direct": lambda: common.unix_rfb(x.socket_path),
        }
        log(
            f"## {args.rounds} rounds x {len(paths)} paths x {args.seconds:g} s; glxspheres64 -fs at"
            f" {GEOMETRY} ({'vglrun' if vglrun else 'GLX'}); {args.encoding};"
            f" Xvnc FrameRate {args.frame_rate or 'default (60)'}"
        )
        for r in range(args.rounds):
            for path in paths if r % 2 == 0 else paths[::-1]:
                since = gl_log.stat().st_size
                cpu0 = cpu_seconds(x.pid)
                rate = await stream(connect[path], ENCODINGS[args.encoding], args.seconds)
                cpu = cpu_seconds(x.pid) - cpu0
                per_frame = 1000 * cpu / max(rate.frames * rate.seconds, 1e-9)
                per_update = 1000 * cpu / max(rate.count, 1)
                fps = rendered_fps(gl_log, since)
                results[path].append((rate, per_frame, fps, per_update))
                log(
                    f"round {r + 1} {path:<6} {rate.updates:6.1f} updates/s {rate.frames:6.1f} frames/s"
                    f" {rate.mbytes:6.2f} MB/s  Xvnc {per_frame:6.1f} ms CPU/frame"
                    f" {per_update:5.1f} ms/update  rendered {fmt(fps, 1)} frames/s"
                )
        gl.send_signal(signal.SIGTERM)
        bench.finish(server)
    finally:
        bench.close()

    def med(path: str, pick: Callable[[tuple[StreamRate, float, float, float]], float]) -> float:
        return median([pick(v) for v in results[path]])

    ups = {p: med(p, lambda v: v[0].updates) for p in paths}
    fps = {p: med(p, lambda v: v[0].frames) for p in paths}
    mbps = {p: med(p, lambda v: v[0].mbytes) for p in paths}
    cpu = {p: med(p, lambda v: v[1]) for p in paths}
    cpu_update = {p: med(p, lambda v: v[3]) for p in paths}
    rendered = median([v[2] for p in paths for v in results[p] if v[2] == v[2]] or [float("nan")])
    log("## medians")
    for p in paths:
        log(f"{p:<6} {fmt(ups[p], 1):>6} updates/s {fmt(fps[p], 1):>6} frames/s {fmt(mbps[p]):>6} MB/s"
            f"  Xvnc {fmt(cpu[p], 1)} ms CPU/frame, {fmt(cpu_update[p], 1)} ms/update")  # fmt: skip
    od = ratio(fps["ours"], fps["direct"])
    log(f"glxspheres64 rendered {fmt(rendered, 1)} frames/s; delivered {fmt(fps['ours'], 1)} through ours")
    log(
        f"ours/direct {fmt(od, 3)} frames/s (goal >= 0.95: {'met' if od >= 0.95 else 'missed'});"
        f" delivered >= 30 frames/s at {GEOMETRY} (goal with a GPU):"
        f" {'met' if fps['ours'] >= 30 else 'missed'}"
    )
    log(
        "RESULT"
        f" ours_direct_ratio={fmt(od, 3)} fps_delivered={fmt(fps['ours'], 1)}"
        f" fps_direct={fmt(fps['direct'], 1)}"
        f" fps_rendered={fmt(rendered, 1)} ups_ours={fmt(ups['ours'], 1)} ups_direct={fmt(ups['direct'], 1)}"
        f" MBps_ours={fmt(mbps['ours'], 2)} MBps_direct={fmt(mbps['direct'], 2)}"
        f" xvnc_cpu_ms_per_frame={fmt(cpu['ours'], 1)} xvnc_cpu_ms_per_update={fmt(cpu_update['ours'], 1)}"
        f" xvnc_cpu_ms_per_update_direct={fmt(cpu_update['direct'], 1)}"
        f" encoding={args.encoding} geometry={GEOMETRY}"
        f" gl={'vglrun' if vglrun else 'glx'} frame_rate={args.frame_rate or 'default'} rounds={args.rounds}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
