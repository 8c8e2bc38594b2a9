"""OpenGL through VirtualGL inside the desktop: frames/s glxspheres64 renders (GPU, and Mesa's software
EGL device when it is there), frames/s a VNC client receives, and the GPU's own view of the process."""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import signal
import statistics
import subprocess
import time
from pathlib import Path
from typing import Any

# Mesa's EGL vendor file: naming it alone in __EGL_VENDOR_LIBRARY_FILENAMES makes VirtualGL's "egl"
# device Mesa's software one, so software GL is measured on the same path, on the same machine.
MESA_VENDOR_FILES = ("/usr/share/glvnd/egl_vendor.d/50_mesa.json",)
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def version(vglrun: str) -> str:
    """ "VirtualGL 3.1.4 ..." from the build's key file beside bin/, else from vglrun's own banner."""
    key = Path(vglrun).resolve().parents[1] / ".build-key"
    try:
        return key.read_text().strip()
    except OSError:
        return ""


def spheres_path(vglrun: str) -> str:
    """VirtualGL's glxspheres64, beside its vglrun (not on PATH where VirtualGL sits in /opt)."""
    return str(Path(vglrun).resolve().parent / "glxspheres64")


def mesa_vendor_file() -> str:
    return next((f for f in MESA_VENDOR_FILES if os.path.isfile(f)), "")


def display_env(display: int, authority: str, **extra: str) -> dict[str, str]:
    env = {**os.environ, "DISPLAY": f":{display}", "XAUTHORITY": authority, "VGL_DISPLAY": "egl"}
    env.update(extra)
    return env


def parse_spheres(text: str) -> dict[str, Any]:
    """glxspheres64's report: its renderer and the median of its "N frames/sec" lines (the first one
    is dropped: it includes start-up)."""
    fps = [float(v) for v in re.findall(r"([\d.]+) frames/sec", text)]
    renderer = re.search(r"OpenGL Renderer: (.*)", text)
    return {
        "renderer": renderer.group(1).strip() if renderer else "",
        "fps": round(statistics.median(fps[1:] or fps), 1) if fps else 0.0,
        "samples": len(fps),
        "egl_device": "[VGL] Opening EGL device" in text,
    }


class Spheres:
    """glxspheres64 under vglrun on the desktop's display, its output in a file."""

    def __init__(self, vglrun: str, env: dict[str, str], log: Path, *args: str) -> None:
        self.log = log
        # Line-buffered: its frames/s lines must reach the file before it is stopped; -bt 1: one a second.
        argv = [vglrun, spheres_path(vglrun), "-bt", "1", *args]
        if shutil.which("stdbuf"):
            argv = ["stdbuf", "-oL", *argv]
        with open(log, "wb") as out:
            self.proc = subprocess.Popen(
                argv, env={**env, "VGL_VERBOSE": "1"}, stdout=out,
                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True,
            )  # fmt: skip

    def result(self) -> dict[str, Any]:
        return parse_spheres(self.log.read_text(errors="replace"))

    def stop(self) -> dict[str, Any]:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.result() | {"exit": self.proc.returncode}


async def spheres_fps(
    vglrun: str, env: dict[str, str], log: Path, seconds: float, *args: str
) -> dict[str, Any]:
    """Run glxspheres64 for ``seconds``; its renderer and frames/s."""
    run = Spheres(vglrun, env, log, *args)
    await asyncio.sleep(seconds)
    return run.stop() | {"args": list(args)}


def nvidia_smi_processes() -> tuple[str, bool]:
    """nvidia-smi's full report (its process table lists what runs on the GPU) and whether
    glxspheres64 is in it."""
    try:
        out = subprocess.run(["nvidia-smi"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as e:
        return f"nvidia-smi: {e}", False
    text = out.stdout + out.stderr
    table = text.split("Processes:", 1)[-1] if "Processes:" in text else ""
    return text, "glxspheres" in table


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[-1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


async def stream_rate(socket_path: Path, xvnc_pid: int | None, seconds: float) -> dict[str, Any]:
    """What a browser's VNC client receives while the screen animates: the encodings noVNC asks for,
    updates back to back on the desktop's unix socket (the same measurement as benchmarks/gl_stream.py's
    "direct" path; the Jupyter websocket in front of it carries the same, see that benchmark)."""
    from testkit.rfb import NOVNC_ENCODINGS, ByteStream, RFBClient, measure_stream

    stream = await asyncio.wait_for(ByteStream.unix(str(socket_path)), 10)
    try:
        client = RFBClient(stream)
        init = await asyncio.wait_for(client.handshake(), 10)
        await client.set_pixel_format_32()
        await client.set_encodings(*NOVNC_ENCODINGS)
        await client.request_update(incremental=False)
        await asyncio.wait_for(client.read_update(), 30)
        cpu0 = cpu_seconds(xvnc_pid) if xvnc_pid else 0.0
        t0 = time.monotonic()
        rate = await measure_stream(client, seconds)
        cpu = cpu_seconds(xvnc_pid) - cpu0 if xvnc_pid else float("nan")
    finally:
        stream.close()  # type: ignore[attr-defined]
    frames = rate.frames * rate.seconds
    return {
        "screen": f"{init.width}x{init.height}",
        "encodings": "Tight, JPEG quality 6, compression 2 (noVNC's)",
        "updates_per_s": round(rate.updates, 1),
        "frames_per_s": round(rate.frames, 1),
        "MB_per_s": round(rate.mbytes, 2),
        "xvnc_cpu_ms_per_frame": round(1000 * cpu / frames, 1) if frames else None,
        "seconds": round(time.monotonic() - t0, 1),
    }
