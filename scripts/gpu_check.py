#!/usr/bin/env python3
"""The GPU machine check: a real jupyter-vnc desktop, the GPU, and OpenGL on it through VirtualGL.

Run by ``scripts/gpu-check`` on a lent GPU machine (or directly on any machine with TigerVNC and
xterm, where it reports honestly that there is no GPU). In order:

1. the GPU as the driver sees it (``nvidia-smi -L``), and OpenGL through EGL's device platform without
   VirtualGL (gpucheck/egl.py: tells a driver problem from a VirtualGL one);
2. the project's own ``VNCDesktop`` at 1920x1080, its session under VirtualGL (``virtualgl =
   "session"``; on a GPU node "auto" does the same): an xterm showing ``nvidia-smi`` and the probes, and
   ``glxspheres64`` started by the session without ``vglrun`` on its command line;
3. the renderer the desktop's own status reports (its probe runs glxinfo under VirtualGL on the
   desktop's display: it must name the NVIDIA GPU), and a screenshot through the VNC socket;
4. glxspheres64's frames/s through VirtualGL on the GPU (default scene and ``-p 1000000``), with
   ``nvidia-smi`` listing the process; the same on Mesa's software EGL device when Mesa is there;
5. the frames/s a VNC client receives through the desktop's socket while glxspheres64 animates the
   full screen, with the encodings noVNC asks for;
6. the desktop stopped, and none of its processes left.

Everything lands in ``--out``: report.json, report.txt, screenshot.png, the desktop's logs and the
GL programs' output. The exit code is 0 whenever a report was written; the report says pass, fail or
skip (with the reason) for each check.

Subcommands besides the check itself (the default):
  egl-probe            render with OpenGL through EGL on each EGL device; JSON on stdout
  closure PKG...       the Debian packages to ship for PKG... (used by scripts/gpu-check-prepare)
  install-debs DIR     unpack DIR/*.deb into / unless the system already has them (scripts/gpu-check)

Standard library only, Python >= 3.10; the check imports jupyter_vnc (and so traitlets) and the
repository's testkit.rfb when it runs.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the gpucheck package beside this script
# testkit/ (its RFB client) from the repository: last, so that an installed jupyter_vnc is still the one
# imported where there is one (scripts/gpu-check puts the repository on PYTHONPATH anyway).
sys.path.append(str(Path(__file__).resolve().parents[1]))

from gpucheck import desktop as gdesktop
from gpucheck import virtualgl
from gpucheck.debs import NOT_SHIPPED, NOT_SHIPPED_WITH_MESA, closure, install_debs
from gpucheck.egl import egl_probe, gpu_devices, probe_egl_on_gpu, probe_summary
from gpucheck.png import bgrx_to_rgb, encode_png

RESOLUTION = (1920, 1080)
SCREENSHOT_TIMEOUT = 20.0
GL_SECONDS = 6.0  # each glxspheres64 measurement
STREAM_SECONDS = 8.0
STREAM_GOAL_FPS = 30.0  # delivered full frames/s at 1920x1080 (issue 11)
# Written by gpu-check-prepare when Mesa did not fit in the bundle.
MESA_NOT_CARRIED = Path(__file__).resolve().parents[1] / ".device" / "gpu-check" / "mesa-not-carried.txt"
SESSION_SPHERES = ["-bt", "1", "-w", "1100x700"]  # glxspheres64's arguments in the session


def _run(argv: list[str], timeout: float = 30) -> tuple[int | None, str]:
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
    except FileNotFoundError:
        return None, f"{argv[0]}: not found"
    except subprocess.TimeoutExpired:
        return None, f"{argv[0]}: no answer within {timeout:g} s"
    return proc.returncode, (proc.stdout + proc.stderr).strip()


def _os_name() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/etc/os-release").read_text().splitlines():
            if line.startswith("PRETTY_NAME="):
                return line.split("=", 1)[1].strip('"')
    return platform.platform()


def _check(ok: bool, detail: str) -> dict[str, str]:
    return {"result": "pass" if ok else "fail", "detail": detail}


def _skip(detail: str) -> dict[str, str]:
    return {"result": "skip", "detail": detail}


def _timed(timings: dict[str, float], name: str, since: float) -> None:
    timings[name] = round(time.monotonic() - since, 3)


async def run_check(out: Path) -> dict[str, Any]:
    """The whole check; the report, with what failed, whatever happens (short of a bug here)."""
    work = Path(tempfile.mkdtemp(prefix="gpuchk-"))  # short: the VNC socket path must stay < 108 bytes
    try:
        return await _run_check(out, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)


async def _run_check(out: Path, work: Path) -> dict[str, Any]:
    from jupyter_vnc.desktop import VNCDesktop
    from jupyter_vnc.gpu import find_vglrun, is_software_renderer

    t0 = time.monotonic()
    timings: dict[str, float] = {}
    report: dict[str, Any] = {
        "host": {
            "hostname": platform.node(),
            "os": _os_name(),
            "kernel": platform.release(),
            "python": f"{sys.executable} {platform.python_version()}",
            "env": {
                k: os.environ.get(k, "")
                for k in ("LD_LIBRARY_PATH", "__EGL_VENDOR_LIBRARY_FILENAMES", "CUDA_VISIBLE_DEVICES")
            },
        },
        "timings": timings,
    }
    checks: dict[str, dict[str, str]] = {}
    report["checks"] = checks

    # 1. The GPU, as the driver sees it; OpenGL through EGL without VirtualGL.
    t = time.monotonic()
    code, smi = _run(["nvidia-smi", "-L"])
    _timed(timings, "nvidia_smi", t)
    gpus = [line for line in smi.splitlines() if line.startswith("GPU ")] if code == 0 else []
    report["nvidia_smi_L"] = smi
    checks["gpu"] = _check(bool(gpus), "; ".join(gpus) if gpus else f"no NVIDIA GPU present ({smi or code})")

    t = time.monotonic()
    probe = probe_egl_on_gpu()
    _timed(timings, "egl_probe", t)
    report["egl"] = probe
    rendered = [d for d in probe.get("devices", []) if d.get("ok")]
    on_gpu = gpu_devices(probe)
    if on_gpu:
        d = on_gpu[0]
        egl_detail = f"GL_RENDERER={d['gl_renderer']}, GL_VERSION={d['gl_version']}, {d['seconds']} s"
        if probe.get("vendor_file"):
            egl_detail += f" (with __EGL_VENDOR_LIBRARY_FILENAMES={probe['vendor_file']})"
    elif rendered:
        egl_detail = f"software only: GL_RENDERER={rendered[0].get('gl_renderer')}"
    else:
        egl_detail = probe_summary(probe).replace("\n", "; ")
    checks["egl_gpu"] = _check(bool(on_gpu), egl_detail)
    if probe.get("vendor_file"):  # what worked for the probe is what VirtualGL needs too
        os.environ["__EGL_VENDOR_LIBRARY_FILENAMES"] = probe["vendor_file"]

    vglrun = find_vglrun()
    report["virtualgl"] = {"vglrun": vglrun, "build": virtualgl.version(vglrun) if vglrun else ""}
    checks["virtualgl"] = _check(
        bool(vglrun), f"{vglrun}: {report['virtualgl']['build'] or 'unknown build'}" if vglrun
        else "no vglrun on PATH or in /opt/VirtualGL/bin (the bundle's virtualgl/ was not installed)",
    )  # fmt: skip

    # 2. The desktop, its session under VirtualGL.
    (work / "egl.txt").write_text(probe_summary(probe) + "\n")
    width, height = RESOLUTION
    session_gl = ["stdbuf", "-oL", virtualgl.spheres_path(vglrun), *SESSION_SPHERES] if vglrun else None
    desktop = VNCDesktop(
        xstartup=str(gdesktop.write_xstartup(work, session_gl)), resolution=f"{width}x{height}",
        runtime_dir=str(work), virtualgl="session" if vglrun else "off", vglrun=vglrun,
    )  # fmt: skip
    screen: dict[str, Any] = {}
    processes: dict[int, str] = {}
    gl: dict[str, Any] = {}
    report["gl"] = gl
    try:
        t = time.monotonic()
        try:
            await asyncio.wait_for(desktop.ensure_running(), 60)
            _timed(timings, "desktop_start", t)
            t = time.monotonic()
            report["status"] = status = await desktop.status()
            _timed(timings, "status", t)
            up = status["state"] == "running" and desktop.socket_path.exists()
            checks["desktop"] = _check(
                up, f"{status['message']}, {status['vnc_server']}, VNC socket {desktop.socket_path}"
            )
        except Exception as e:
            checks["desktop"] = _check(False, f"{type(e).__name__}: {e}")
        if checks["desktop"]["result"] == "pass":
            await _in_the_desktop(desktop, vglrun, work, out, report, screen, gl)
            directory = desktop.socket_path.parent
            processes = gdesktop.desktop_processes(str(directory), str(desktop.authority))
            for name in ("xvnc.log", "session.log"):
                with contextlib.suppress(OSError):
                    shutil.copyfile(directory / name, out / name)
    finally:
        t = time.monotonic()
        with contextlib.suppress(Exception):
            await desktop.stop()
        _timed(timings, "desktop_stop", t)
    with contextlib.suppress(OSError):
        shutil.copyfile(work / "session-gl.log", out / "session-glxspheres.log")

    # 3. What the desktop's own status says about OpenGL (its probe ran through VirtualGL).
    status = report.get("status") or {}
    renderer = status.get("gl_renderer", "")
    through = "through VirtualGL" if status.get("gl_virtualgl") else "NOT through VirtualGL"
    checks["gl_in_desktop"] = _check(
        bool(status.get("gl_virtualgl")) and status.get("gl") == "gpu" and "nvidia" in renderer.lower(),
        f"renderer {renderer or '(none reported)'!r} {through}; status gl={status.get('gl')!r}",
    )

    # The screenshot.
    if "png_bytes" in screen:
        good = screen["settled"] and screen["colours"] >= gdesktop.MIN_COLOURS
        detail = (
            f"{screen['width']}x{screen['height']}, {screen['colours']} colours, "
            f"{screen['png_bytes']} bytes, {screen['frames']} frame(s)"
            + ("" if screen["settled"] else ", terminal text not seen settled")
        )
        checks["screenshot"] = _check(good, detail)
        report["screenshot"] = screen
    else:
        checks["screenshot"] = _check(False, screen.get("error", "no desktop to capture"))

    # 4./5. GL frames/s, the GPU's process list, and what a VNC client receives.
    _gl_checks(checks, gl, vglrun, is_software_renderer)

    # 6. Nothing of the desktop may outlive stop().
    left: dict[int, str] = {}
    deadline = time.monotonic() + 5
    while True:
        left = {
            pid: cmd
            for pid, cmd in processes.items()
            if Path(f"/proc/{pid}").exists() and gdesktop._alive(pid)
        }
        if not left or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.1)
    state_after = (await desktop.status())["state"]
    report["processes"] = {
        "while_running": processes,
        "left_after_stop": left,
        "state_after_stop": state_after,
    }
    if processes:
        checks["stopped"] = _check(
            not left and state_after == "stopped",
            f"{len(processes)} desktop process(es) ended, state {state_after}"
            if not left
            else f"left running: {left}",
        )
    else:
        checks["stopped"] = _check(False, "no desktop process was seen while it ran")

    _timed(timings, "total", t0)
    report["result"] = "pass" if all(c["result"] in {"pass", "skip"} for c in checks.values()) else "fail"
    return report


async def _in_the_desktop(
    desktop: Any, vglrun: str, work: Path, out: Path, report: dict[str, Any], screen: dict[str, Any],
    gl: dict[str, Any],
) -> None:  # fmt: skip
    """Screenshot, then the GL measurements, while the desktop runs."""
    timings = report["timings"]
    t = time.monotonic()
    try:

        def ready() -> bool:  # the terminal's text written, and the GL window drawing frames
            gl_log = work / "session-gl.log"
            drawing = not vglrun or (gl_log.exists() and "frames/sec" in gl_log.read_text(errors="replace"))
            return (work / "done").exists() and drawing

        shot = await gdesktop.capture_screen(
            desktop.socket_path, ready, SCREENSHOT_TIMEOUT, animated=bool(vglrun)
        )
        png = encode_png(shot["width"], shot["height"], bgrx_to_rgb(shot.pop("pixels")))
        (out / "screenshot.png").write_bytes(png)
        screen.update(shot, png_bytes=len(png))
    except Exception as e:
        screen["error"] = f"{type(e).__name__}: {e}"
    _timed(timings, "screenshot", t)
    if not vglrun:
        return

    env = virtualgl.display_env(desktop.display, str(desktop.authority))
    # The session's own glxspheres64 is paused while the others are measured: one GL program at a time.
    session = [pid for pid, cmd in gdesktop.desktop_processes(str(desktop.socket_path.parent),
               str(desktop.authority)).items() if "glxspheres64" in cmd]  # fmt: skip
    gl["session"] = virtualgl.parse_spheres((work / "session-gl.log").read_text(errors="replace")) if (
        work / "session-gl.log").exists() else {}  # fmt: skip
    for pid in session:
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGSTOP)
    try:
        t = time.monotonic()
        run = virtualgl.Spheres(vglrun, env, out / "glxspheres-gpu.log")
        await asyncio.sleep(GL_SECONDS / 2)
        gl["nvidia_smi"], gl["nvidia_smi_lists_it"] = await asyncio.to_thread(virtualgl.nvidia_smi_processes)
        await asyncio.sleep(GL_SECONDS / 2)
        gl["gpu"] = run.stop()
        gl["gpu_1m"] = await virtualgl.spheres_fps(
            vglrun, env, out / "glxspheres-gpu-1m.log", GL_SECONDS, "-p", "1000000"
        )
        _timed(timings, "glxspheres_gpu", t)
        mesa = virtualgl.mesa_vendor_file()
        gl["mesa_vendor_file"] = mesa
        if mesa:
            t = time.monotonic()
            soft = {**env, "__EGL_VENDOR_LIBRARY_FILENAMES": mesa}
            gl["software"] = await virtualgl.spheres_fps(vglrun, soft, out / "glxspheres-sw.log", GL_SECONDS)
            gl["software_1m"] = await virtualgl.spheres_fps(
                vglrun, soft, out / "glxspheres-sw-1m.log", GL_SECONDS, "-p", "1000000"
            )
            _timed(timings, "glxspheres_software", t)
        t = time.monotonic()
        run = virtualgl.Spheres(vglrun, env, out / "glxspheres-fs.log", "-fs")
        await asyncio.sleep(2)
        xvnc = desktop._xvnc.pid if desktop._xvnc else None  # the check inspects the desktop it started
        try:
            gl["stream"] = await virtualgl.stream_rate(desktop.socket_path, xvnc, STREAM_SECONDS)
        except Exception as e:
            gl["stream"] = {"error": f"{type(e).__name__}: {e}"}
        gl["stream_rendered"] = run.stop()
        _timed(timings, "stream", t)
    finally:
        for pid in session:
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGCONT)


def _gl_checks(checks: dict[str, dict[str, str]], gl: dict[str, Any], vglrun: str, is_software: Any) -> None:
    if not vglrun:
        for name in ("glxspheres_gpu", "nvidia_smi_process", "software_gl", "stream"):
            checks[name] = _skip("no VirtualGL")
        return
    gpu, gpu_1m = gl.get("gpu", {}), gl.get("gpu_1m", {})
    if gpu:
        on_gpu = bool(gpu.get("renderer")) and not is_software(gpu["renderer"]) and gpu.get("fps", 0) > 0
        checks["glxspheres_gpu"] = _check(
            on_gpu,
            f"{gpu.get('fps')} frames/s, {gpu_1m.get('fps')} frames/s at -p 1000000; renderer "
            f"{gpu.get('renderer') or '(none)'!r}"
            + ("" if gpu.get("egl_device") else "; VirtualGL opened no EGL device"),
        )
        checks["nvidia_smi_process"] = _check(
            bool(gl.get("nvidia_smi_lists_it")),
            "glxspheres64 is in nvidia-smi's process table" if gl.get("nvidia_smi_lists_it")
            else "glxspheres64 not in nvidia-smi's process table (see report.json gl.nvidia_smi)",
        )  # fmt: skip
    else:
        checks["glxspheres_gpu"] = _check(False, "not run (the desktop did not start)")
        checks["nvidia_smi_process"] = _check(False, "not run")
    soft, soft_1m = gl.get("software", {}), gl.get("software_1m", {})
    if soft:
        checks["software_gl"] = _check(
            soft.get("fps", 0) > 0,
            f"{soft.get('fps')} frames/s, {soft_1m.get('fps')} at -p 1000000 on {soft.get('renderer')!r}"
            " (Mesa's EGL device, same VirtualGL path)",
        )
    else:
        why = "Mesa (llvmpipe) is not on this machine nor in the bundle"
        with contextlib.suppress(OSError):
            why = MESA_NOT_CARRIED.read_text().strip()
        checks["software_gl"] = _skip(f"{why}: no software figure to compare")
    stream = gl.get("stream", {})
    if "frames_per_s" in stream:
        fps = stream["frames_per_s"]
        rendered = gl.get("stream_rendered", {}).get("fps")
        checks["stream"] = _check(
            fps >= STREAM_GOAL_FPS,
            f"{fps} full frames/s delivered at {stream['screen']} (goal >= {STREAM_GOAL_FPS:g}), "
            f"{stream['updates_per_s']} updates/s, {stream['MB_per_s']} MB/s, Xvnc "
            f"{stream['xvnc_cpu_ms_per_frame']} ms CPU/frame; glxspheres64 -fs rendered {rendered} frames/s",
        )
    else:
        checks["stream"] = _check(False, stream.get("error", "not run"))


def report_text(report: dict[str, Any]) -> str:
    lines = [f"jupyter-vnc GPU check: {report['result'].upper()}", ""]
    for name, check in report["checks"].items():
        lines.append(f"{check['result'].upper():4}  {name:18}  {check['detail']}")
    lines += ["", "host: " + ", ".join(f"{k}={v}" for k, v in report["host"].items() if k != "env")]
    status = report.get("status")
    if status:
        lines.append(
            f"desktop status: state={status['state']} {status['width']}x{status['height']} "
            f"vnc={status['vnc_server']} ({status['vnc_version']}) gpus={status['gpus']} "
            f"gl={status['gl']} gl_renderer={status['gl_renderer']!r}"
            f" gl_virtualgl={status.get('gl_virtualgl')}"
        )
    lines += ["", "nvidia-smi -L:", "  " + report["nvidia_smi_L"].replace("\n", "\n  ")]
    lines += ["", probe_summary(report["egl"])]
    lines += ["", "timings (s): " + ", ".join(f"{k}={v}" for k, v in report["timings"].items())]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="command")
    check = sub.add_parser("check", help="the whole check (the default)")
    check.add_argument("--out", default=os.environ.get("OUT") or "gpu-check-out")
    sub.add_parser("egl-probe", help="OpenGL through EGL on each device; JSON on stdout")
    deps = sub.add_parser("closure", help="the Debian packages to ship for PACKAGE...")
    deps.add_argument("packages", nargs="+")
    deps.add_argument("--skip", nargs="*", default=[], help="packages shipped elsewhere: not followed")
    deps.add_argument("--mesa", action="store_true", help="follow Mesa's packages too")
    unpack = sub.add_parser("install-debs", help="unpack DIR/*.deb the system lacks into --root")
    unpack.add_argument("directory", type=Path)
    unpack.add_argument("--root", type=Path, default=Path("/"))
    args = parser.parse_args(
        ["check", *(argv if argv is not None else sys.argv[1:])] if _default(argv) else argv
    )

    if args.command == "egl-probe":
        print(json.dumps(egl_probe(), indent=1))
        return 0
    if args.command == "closure":
        skip = (NOT_SHIPPED_WITH_MESA if args.mesa else NOT_SHIPPED) | frozenset(args.skip)
        print("\n".join(closure(args.packages, skip=skip)))
        return 0
    if args.command == "install-debs":
        count = install_debs(args.directory, args.root)
        print(f"unpacked {count} package(s)")
        return 0

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    import logging

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s", stream=sys.stderr)
    report = asyncio.run(run_check(out))
    (out / "report.json").write_text(json.dumps(report, indent=1, default=str) + "\n")
    text = report_text(report)
    (out / "report.txt").write_text(text)
    print(text, end="")
    return 0


def _default(argv: list[str] | None) -> bool:
    """No subcommand named: the check (so `gpu_check.py --out DIR` works)."""
    words = argv if argv is not None else sys.argv[1:]
    return not words or words[0] not in {"check", "egl-probe", "closure", "install-debs", "-h", "--help"}


if __name__ == "__main__":
    sys.exit(main())
