"""Whole-session vglrun or per-program wrapping? What running the whole XFCE session under VirtualGL costs.

With ``c.VNCDesktop.virtualgl = "session"`` every program of the desktop carries VirtualGL's faker, so
GL programs started from the menu, the panel or a terminal render on the GPU without the user typing
``vglrun``. The alternative, wrapping only GL programs, leaves the session as it is ("off") and pays
``vglrun`` per program, but only for the programs someone thought to wrap. This measures, for both
session modes in interleaved rounds (same user, same home, one desktop at a time):

- startup: server start to XFCE drawn (more than 20 colours on a Raw full screen through our websocket);
- memory: PSS of the desktop's processes after ``--settle`` s idle (see desktop_memory.py for PSS);
- correctness of XFCE's own windows: the share of identical pixels between the two modes' idle screens
  (the panel clock may differ by a few pixels);
- what per-program wrapping costs each program: ``vglrun glxinfo -B`` vs ``glxinfo -B`` wall time.

Without a GPU, VirtualGL renders on Mesa's software EGL device: the faker is loaded and active in every
process just the same, which is what the session's cost depends on.

What it starts (as root; no hub, no Slurm): one unmeasured desktop first (a used XFCE home), then one
Jupyter server of ours per measurement as the test user (common.Bench), one at a time; the per-program
timing runs on a private ``Xtigervnc :93`` of its own, 5 times each way. Prints every round, the medians
and last ``RESULT startup_off_s=... startup_session_s=... startup_ratio=... startup_extra_s=...
pss_off_MiB=... pss_session_MiB=... pss_extra_MiB=... faker_processes=... same_pixels=...
vglrun_per_program_ms=... rounds=N`` (the extras are session minus off).

Run as root: /opt/jupyter-vnc/venv/bin/python benchmarks/virtualgl_session.py [--rounds 3] [--settle 8]
"""

from __future__ import annotations

import argparse
import asyncio
import subprocess
import sys
import time

import common
from common import fmt, log, median, ratio

from jupyter_vnc.gpu import find_vglrun
from testkit.rfb import RAW

MODES = ("off", "session")
MIB = 1024


async def idle_screen(server: common.Server) -> bytes:
    client, transport = await common.unix_rfb(server.xdisplay().socket_path)
    try:
        init = await client.handshake()
        await client.set_pixel_format_32()
        await client.set_encodings(RAW)
        frame = bytearray(init.width * init.height * 4)
        await client.request_update(incremental=False)
        await asyncio.wait_for(client.read_update(frame), 30)
        return bytes(frame)
    finally:
        common.close_transport(transport)


def same_pixels(a: bytes, b: bytes) -> float:
    words_a, words_b = memoryview(a).cast("I"), memoryview(b).cast("I")
    same = sum(1 for x, y in zip(words_a, words_b, strict=True) if (x ^ y) & 0xFFFFFF == 0)
    return same / len(words_a)


async def measure(bench: common.Bench, mode: str, settle: float) -> dict:
    server = bench.start("ours", extra=(f"--VNCDesktop.virtualgl={mode}",))
    try:
        server.wait_answering()
        opened = await common.open_desktop(server)
        startup = time.monotonic() - server.spawned_at
        await asyncio.sleep(settle)
        procs = common.run_pids(server.run_id)
        pss = sum(common.memory_kib(pid)[0] for pid in procs if pid != server.proc.pid)
        with_faker = sum(1 for pid in procs if pid != server.proc.pid and "libvglfaker" in _maps(pid))
        screen = await idle_screen(server)
    finally:
        bench.finish(server)
    return {
        "startup": startup,
        "drawn": opened.drawn,
        "pss": pss,
        "faker_procs": with_faker,
        "screen": screen,
    }


def _maps(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/maps") as f:
            return f.read()
    except OSError:
        return ""


def per_program(vglrun: str, runs: int = 5) -> tuple[float, float]:
    """Median wall time of ``glxinfo -B`` on a private Xvnc, plain and under vglrun."""
    import os
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        xvnc = subprocess.Popen(
            ["Xtigervnc", ":93", "-rfbunixpath", f"{tmp}/s", "-rfbport", "-1", "-SecurityTypes", "None"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        try:
            time.sleep(1)
            env = {**os.environ, "DISPLAY": ":93", "VGL_DISPLAY": "egl"}
            times: dict[str, list[float]] = {"plain": [], "vglrun": []}
            for _ in range(runs):
                for kind, argv in (("plain", ["glxinfo", "-B"]), ("vglrun", [vglrun, "glxinfo", "-B"])):
                    t0 = time.perf_counter()
                    subprocess.run(argv, env=env, capture_output=True, check=True)
                    times[kind].append(time.perf_counter() - t0)
        finally:
            xvnc.terminate()
            xvnc.wait()
    return median(times["plain"]), median(times["vglrun"])


async def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds (default 3)")
    parser.add_argument("--settle", type=float, default=8.0, help="idle seconds before measuring (default 8)")
    args = parser.parse_args()
    vglrun = find_vglrun()
    if not vglrun:
        log("no vglrun: run devstack/install (it builds VirtualGL into /opt/VirtualGL)")
        return 1

    bench = common.Bench("virtualgl_session")
    results: dict[str, list[dict]] = {mode: [] for mode in MODES}
    try:
        await bench.prime("ours")
        for r in range(args.rounds):
            for mode in MODES if r % 2 == 0 else MODES[::-1]:
                result = await measure(bench, mode, args.settle)
                results[mode].append(result)
                log(
                    f"round {r + 1} {mode:<8} startup {result['startup']:5.2f} s"
                    f"  PSS {result['pss'] / MIB:6.1f} MiB  processes with the faker {result['faker_procs']}"
                )
    finally:
        bench.close()
    plain, wrapped = per_program(vglrun)

    startup = {m: median([r["startup"] for r in results[m]]) for m in MODES}
    pss = {m: median([r["pss"] / MIB for r in results[m]]) for m in MODES}
    faker = {m: median([r["faker_procs"] for r in results[m]]) for m in MODES}
    same = median(
        [
            same_pixels(a["screen"], b["screen"])
            for a, b in zip(results["off"], results["session"], strict=True)
        ]
    )
    log("## medians")
    for m in MODES:
        log(
            f"{m:<8} startup {fmt(startup[m])} s, idle PSS {fmt(pss[m], 1)} MiB,"
            f" {faker[m]:g} processes with the faker"
        )
    log(f"XFCE's screen, session vs off: {100 * same:.2f} % identical pixels")
    log(f"per program: glxinfo -B {1000 * plain:.0f} ms, under vglrun {1000 * wrapped:.0f} ms")
    log(
        "RESULT"
        f" startup_off_s={fmt(startup['off'])} startup_session_s={fmt(startup['session'])}"
        f" startup_ratio={fmt(ratio(startup['session'], startup['off']), 3)}"
        f" startup_extra_s={fmt(startup['session'] - startup['off'])}"
        f" pss_off_MiB={fmt(pss['off'], 1)} pss_session_MiB={fmt(pss['session'], 1)}"
        f" pss_extra_MiB={fmt(pss['session'] - pss['off'], 1)} faker_processes={faker['session']:g}"
        f" same_pixels={fmt(same, 4)} vglrun_per_program_ms={fmt(1000 * (wrapped - plain), 0)}"
        f" rounds={args.rounds}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
