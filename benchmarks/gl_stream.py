"""What a user sees of a full-screen OpenGL animation: frames delivered through jupyter-vnc vs the socket.

A 1920x1080 desktop (our Jupyter server, our Xvnc) runs ``glxspheres64 -fs`` through VirtualGL
(``vglrun``; its EGL back end renders on the GPU where there is one, on Mesa's software EGL device
here). An RFB client asks for incremental updates back to back, one request outstanding, with the
encodings noVNC asks for (Tight, JPEG quality 6, compression 2; ``--encoding zrle`` for ZRLE), over:

- ours:   our websocket, ``ws://.../vnc/websockify`` (Jupyter's auth, our bridge to the unix socket);
- direct: the unix socket of the same Xvnc, no Jupyter in between: the most the path can carry.

Each path also with ``--window`` requests outstanding (default 6; that many sent first, one more as each
update arrives: the round trip through the path no longer paces the stream, as with noVNC's continuous
updates; ``--window 0`` skips it). Paths and modes alternate over ``--rounds`` rounds. Per path and
mode: updates/s, full frames/s delivered (area delivered per second / screen area: a partial update
counts for its share), MB/s, the X server's CPU time per delivered full frame and per update (from
/proc: Xvnc renders nothing here, it encodes), and for ours the Jupyter server's CPU time (the bridge:
nothing else runs in it meanwhile) per MB and per full frame carried. And glxspheres' own frames/s from
its output, to compare what is rendered with what arrives.

What it starts (as root; no hub, no Slurm): one Jupyter server of ours as the test user (common.Bench)
with ``--VNCDesktop.virtualgl=off`` (only glxspheres64 runs under vglrun, not the session) and, with
``--frame-rate``, ``-FrameRate`` for its Xvnc; glxspheres64 with ``VGL_DISPLAY=egl``. Without
VirtualGL it stops and says so, unless ``--no-vglrun`` (glxspheres64 through the X server's GLX).

Goals (issue 11): ours >= 0.95x direct; with a GPU, >= 30 delivered frames/s at 1920x1080.
Prints every round, the medians, and last ``RESULT ours_direct_ratio=... fps_delivered=... fps_direct=...
fps_rendered=... ups_ours=... ups_direct=... MBps_ours=... MBps_direct=... xvnc_cpu_ms_per_frame=...
xvnc_cpu_ms_per_update=... xvnc_cpu_ms_per_update_direct=... server_cpu_ms_per_MB=...
server_cpu_ms_per_frame=... [ours_direct_ratio_pipelined=... fps_delivered_pipelined=...
fps_direct_pipelined=... server_cpu_ms_per_MB_pipelined=... window=N] encoding=... geometry=... gl=...
frame_rate=... rounds=N`` (the figures without a suffix are those of one request at a time; the Xvnc CPU
figures, of the "ours" rounds).

Run as root: /opt/jupyter-vnc/venv/bin/python benchmarks/gl_stream.py [--rounds 4] [--seconds 8]
             [--encoding tight|zrle] [--frame-rate N] [--no-vglrun] [--window 6]   (~3 min)
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
    connect: Callable[[], Awaitable[tuple[RFBClient, object]]],
    encodings: tuple[int, ...],
    seconds: float,
    window: int = 1,
) -> StreamRate:
    client, transport = await connect()
    try:
        await client.handshake()
        await client.set_pixel_format_32()
        await client.set_encodings(*encodings)
        await client.request_update(incremental=False)
        await asyncio.wait_for(client.read_update(), 30)
        return await measure_stream(client, seconds, window=window)
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
    parser.add_argument(
        "--window", type=int, default=6,
        help="also measure with this many update requests outstanding (0: one at a time only)",
    )  # fmt: skip
    args = parser.parse_args()
    if args.window < 0 or args.window == 1:
        parser.error("--window: 0 (one at a time only) or 2 and more")
    vglrun = "" if args.no_vglrun else find_vglrun()
    spheres = Path(vglrun).parent / "glxspheres64" if vglrun else None
    if not args.no_vglrun and not (vglrun and spheres and spheres.exists()):
        log("no VirtualGL (vglrun, glxspheres64): run devstack/install, or pass --no-vglrun")
        return 1

    bench = common.Bench("gl_stream")
    # path, or path-pipelined: (rate, Xvnc ms CPU/frame, rendered frames/s, Xvnc ms CPU/update, the
    # Jupyter server's CPU s over the round: the bridge, for "ours")
    paths = ["ours", "direct"]
    modes = {"": 1, **({"-pipelined": args.window} if args.window else {})}
    keys = [p + m for m in modes for p in paths]
    results: dict[str, list[tuple[StreamRate, float, float, float, float]]] = {k: [] for k in keys}
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
            f"## {args.rounds} rounds x {len(keys)} paths and modes x {args.seconds:g} s; glxspheres64 -fs at"
            f" {GEOMETRY} ({'vglrun' if vglrun else 'GLX'}); {args.encoding};"
            f" Xvnc FrameRate {args.frame_rate or 'default (60)'}"
        )
        for r in range(args.rounds):
            for key in keys if r % 2 == 0 else keys[::-1]:
                path, dash, mode = key.partition("-")
                window = modes[dash + mode]
                since = gl_log.stat().st_size
                cpu0, bridge0 = cpu_seconds(x.pid), cpu_seconds(server.proc.pid)
                rate = await stream(connect[path], ENCODINGS[args.encoding], args.seconds, window)
                cpu = cpu_seconds(x.pid) - cpu0
                bridge = cpu_seconds(server.proc.pid) - bridge0
                per_frame = 1000 * cpu / max(rate.frames * rate.seconds, 1e-9)
                per_update = 1000 * cpu / max(rate.count, 1)
                fps = rendered_fps(gl_log, since)
                results[key].append((rate, per_frame, fps, per_update, bridge))
                log(
                    f"round {r + 1} {key:<15} {rate.updates:6.1f} updates/s {rate.frames:6.1f} frames/s"
                    f" {rate.mbytes:6.2f} MB/s  Xvnc {per_frame:6.1f} ms CPU/frame"
                    f" {per_update:5.1f} ms/update  rendered {fmt(fps, 1)} frames/s"
                    + (f"  server {1000 * bridge / max(rate.mbytes * rate.seconds, 1e-9):5.1f} ms CPU/MB"
                       if path == "ours" else "")
                )  # fmt: skip
        gl.send_signal(signal.SIGTERM)
        bench.finish(server)
    finally:
        bench.close()

    def med(key: str, pick: Callable[[tuple[StreamRate, float, float, float, float]], float]) -> float:
        return median([pick(v) for v in results[key]])

    ups = {k: med(k, lambda v: v[0].updates) for k in keys}
    fps = {k: med(k, lambda v: v[0].frames) for k in keys}
    mbps = {k: med(k, lambda v: v[0].mbytes) for k in keys}
    cpu = {k: med(k, lambda v: v[1]) for k in keys}
    cpu_update = {k: med(k, lambda v: v[3]) for k in keys}
    # The bridge's cost: the Jupyter server's CPU over an "ours" round, per MB and per full frame it carried.
    per_mb = {k: med(k, lambda v: 1000 * v[4] / max(v[0].mbytes * v[0].seconds, 1e-9)) for k in keys}
    per_fr = {k: med(k, lambda v: 1000 * v[4] / max(v[0].frames * v[0].seconds, 1e-9)) for k in keys}
    rendered = median([v[2] for k in keys for v in results[k] if v[2] == v[2]] or [float("nan")])
    log("## medians")
    for k in keys:
        bridge = (
            f"; server {fmt(per_mb[k], 1)} ms CPU/MB, {fmt(per_fr[k], 1)} ms/frame"
            if k.startswith("ours")
            else ""
        )
        log(f"{k:<15} {fmt(ups[k], 1):>6} updates/s {fmt(fps[k], 1):>6} frames/s {fmt(mbps[k]):>6} MB/s"
            f"  Xvnc {fmt(cpu[k], 1)} ms CPU/frame, {fmt(cpu_update[k], 1)} ms/update{bridge}")  # fmt: skip
    od = ratio(fps["ours"], fps["direct"])
    log(f"glxspheres64 rendered {fmt(rendered, 1)} frames/s; delivered {fmt(fps['ours'], 1)} through ours")
    log(
        f"ours/direct {fmt(od, 3)} frames/s (goal >= 0.95: {'met' if od >= 0.95 else 'missed'});"
        f" delivered >= 30 frames/s at {GEOMETRY} (goal with a GPU):"
        f" {'met' if fps['ours'] >= 30 else 'missed'}"
    )
    pipelined = ""
    if args.window:
        odp = ratio(fps["ours-pipelined"], fps["direct-pipelined"])
        log(f"pipelined ({args.window} requests outstanding): ours/direct {fmt(odp, 3)} frames/s")
        pipelined = (
            f" ours_direct_ratio_pipelined={fmt(odp, 3)}"
            f" fps_delivered_pipelined={fmt(fps['ours-pipelined'], 1)}"
            f" fps_direct_pipelined={fmt(fps['direct-pipelined'], 1)}"
            f" server_cpu_ms_per_MB_pipelined={fmt(per_mb['ours-pipelined'], 1)} window={args.window}"
        )
    log(
        "RESULT"
        f" ours_direct_ratio={fmt(od, 3)} fps_delivered={fmt(fps['ours'], 1)}"
        f" fps_direct={fmt(fps['direct'], 1)}"
        f" fps_rendered={fmt(rendered, 1)} ups_ours={fmt(ups['ours'], 1)} ups_direct={fmt(ups['direct'], 1)}"
        f" MBps_ours={fmt(mbps['ours'], 2)} MBps_direct={fmt(mbps['direct'], 2)}"
        f" xvnc_cpu_ms_per_frame={fmt(cpu['ours'], 1)} xvnc_cpu_ms_per_update={fmt(cpu_update['ours'], 1)}"
        f" xvnc_cpu_ms_per_update_direct={fmt(cpu_update['direct'], 1)}"
        f" server_cpu_ms_per_MB={fmt(per_mb['ours'], 1)} server_cpu_ms_per_frame={fmt(per_fr['ours'], 1)}"
        f"{pipelined} encoding={args.encoding} geometry={GEOMETRY}"
        f" gl={'vglrun' if vglrun else 'glx'} frame_rate={args.frame_rate or 'default'} rounds={args.rounds}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
