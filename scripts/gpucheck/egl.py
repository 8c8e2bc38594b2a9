"""OpenGL through EGL's device platform, in ctypes: the route VirtualGL's EGL back end takes, probed
without VirtualGL (no X server involved), so a failure here tells the driver from VirtualGL apart."""

from __future__ import annotations

import ctypes
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

PROBE_TIMEOUT = 60.0
# The check's entry point, whose `egl-probe` subcommand runs the probe in a child process.
ENTRY = Path(__file__).resolve().parents[1] / "gpu_check.py"

EGL_SUCCESS = 0x3000
EGL_NONE = 0x3038
EGL_VENDOR, EGL_VERSION, EGL_EXTENSIONS = 0x3053, 0x3054, 0x3055
EGL_SURFACE_TYPE, EGL_PBUFFER_BIT = 0x3033, 0x0001
EGL_RED_SIZE, EGL_GREEN_SIZE, EGL_BLUE_SIZE = 0x3024, 0x3023, 0x3022
EGL_RENDERABLE_TYPE, EGL_OPENGL_BIT = 0x3040, 0x0008
EGL_WIDTH, EGL_HEIGHT = 0x3057, 0x3056
EGL_OPENGL_API = 0x30A2
EGL_PLATFORM_DEVICE_EXT = 0x313F
EGL_DRM_DEVICE_FILE_EXT = 0x3233
GL_VENDOR, GL_RENDERER, GL_VERSION = 0x1F00, 0x1F01, 0x1F02
GL_COLOR_BUFFER_BIT = 0x4000
GL_RGBA, GL_UNSIGNED_BYTE = 0x1908, 0x1401
PROBE_SIZE = 64
PROBE_COLOUR = (0.25, 0.5, 0.75, 1.0)


class EGLFailure(RuntimeError):
    pass


def _egl_attribs(*values: int) -> Any:
    return (ctypes.c_int32 * (len(values) + 1))(*values, EGL_NONE)


def _load_first(names: Iterable[str]) -> tuple[str, ctypes.CDLL] | None:
    for name in names:
        try:
            return name, ctypes.CDLL(name)
        except OSError:
            continue
    return None


def egl_probe() -> dict[str, Any]:
    """Try every EGL device: pbuffer, OpenGL context, clear to a known colour, read it back.

    Never raises: what failed, and where, is in the result (``error`` for the whole probe, one entry
    per device in ``devices``). A machine without a GPU reports no device, or Mesa's software one.
    """
    result: dict[str, Any] = {"ok": False, "error": "", "devices": [], "client_extensions": []}
    start = time.monotonic()
    try:
        _egl_probe_into(result)
    except EGLFailure as e:
        result["error"] = str(e)
    except Exception as e:  # ctypes surprises: report them, the caller decides
        result["error"] = f"{type(e).__name__}: {e}"
    result["ok"] = any(d.get("ok") for d in result["devices"])
    result["seconds"] = round(time.monotonic() - start, 4)
    return result


def _egl_probe_into(result: dict[str, Any]) -> None:
    c = ctypes
    loaded = _load_first(["libEGL.so.1"])
    if loaded is None:
        raise EGLFailure("no EGL device: libEGL.so.1 (libglvnd's EGL dispatcher) is not installed")
    result["egl_library"], egl = loaded
    egl.eglGetProcAddress.restype = c.c_void_p
    egl.eglGetProcAddress.argtypes = [c.c_char_p]
    egl.eglGetError.restype = c.c_int32
    egl.eglQueryString.restype = c.c_char_p
    egl.eglQueryString.argtypes = [c.c_void_p, c.c_int32]

    def ext_proc(name: str, restype: Any, *argtypes: Any) -> Any:
        address = egl.eglGetProcAddress(name.encode())
        if not address:
            raise EGLFailure(f"no EGL device: {name} is not available")
        return c.CFUNCTYPE(restype, *argtypes)(address)

    client = egl.eglQueryString(None, EGL_EXTENSIONS)
    result["client_extensions"] = (client or b"").decode(errors="replace").split()
    query_devices = ext_proc(
        "eglQueryDevicesEXT", c.c_uint, c.c_int32, c.POINTER(c.c_void_p), c.POINTER(c.c_int32)
    )
    try:  # only for the report: which device it is
        query_device_string = ext_proc("eglQueryDeviceStringEXT", c.c_char_p, c.c_void_p, c.c_int32)
    except EGLFailure:
        query_device_string = None
    platform_display = ext_proc(
        "eglGetPlatformDisplayEXT", c.c_void_p, c.c_uint, c.c_void_p, c.POINTER(c.c_int32)
    )
    devices = (c.c_void_p * 16)()
    count = c.c_int32(0)
    if not query_devices(16, devices, c.byref(count)):
        raise EGLFailure(f"no EGL device: eglQueryDevicesEXT failed (0x{egl.eglGetError():04x})")
    if count.value == 0:
        raise EGLFailure("no EGL device: eglQueryDevicesEXT found none (no GPU, or no EGL vendor library)")
    for index in range(count.value):
        entry: dict[str, Any] = {"index": index, "ok": False}
        result["devices"].append(entry)
        extensions = query_device_string(devices[index], EGL_EXTENSIONS) if query_device_string else b""
        entry["extensions"] = (extensions or b"").decode(errors="replace").split()
        if query_device_string and "EGL_EXT_device_drm" in entry["extensions"]:
            drm = query_device_string(devices[index], EGL_DRM_DEVICE_FILE_EXT)
            entry["drm_device"] = (drm or b"").decode(errors="replace")
        try:
            _render_on(egl, platform_display(EGL_PLATFORM_DEVICE_EXT, devices[index], None), entry)
        except EGLFailure as e:
            entry["error"] = str(e)


def _render_on(egl: ctypes.CDLL, display: int | None, entry: dict[str, Any]) -> None:
    c = ctypes

    def fail(step: str) -> EGLFailure:
        return EGLFailure(f"{step} failed (EGL error 0x{egl.eglGetError():04x})")

    if not display:
        raise fail("eglGetPlatformDisplayEXT(EGL_PLATFORM_DEVICE_EXT)")
    for name, restype, argtypes in (
        ("eglInitialize", c.c_uint, [c.c_void_p, c.POINTER(c.c_int32), c.POINTER(c.c_int32)]),
        ("eglChooseConfig", c.c_uint, [c.c_void_p, c.c_void_p, c.c_void_p, c.c_int32, c.POINTER(c.c_int32)]),
        ("eglCreatePbufferSurface", c.c_void_p, [c.c_void_p, c.c_void_p, c.c_void_p]),
        ("eglBindAPI", c.c_uint, [c.c_uint]),
        ("eglCreateContext", c.c_void_p, [c.c_void_p, c.c_void_p, c.c_void_p, c.c_void_p]),
        ("eglMakeCurrent", c.c_uint, [c.c_void_p, c.c_void_p, c.c_void_p, c.c_void_p]),
        ("eglDestroyContext", c.c_uint, [c.c_void_p, c.c_void_p]),
        ("eglDestroySurface", c.c_uint, [c.c_void_p, c.c_void_p]),
        ("eglTerminate", c.c_uint, [c.c_void_p]),
    ):
        function = getattr(egl, name)
        function.restype, function.argtypes = restype, argtypes

    start = time.monotonic()
    major, minor = c.c_int32(0), c.c_int32(0)
    if not egl.eglInitialize(display, c.byref(major), c.byref(minor)):
        raise fail("eglInitialize")
    try:
        entry["egl_version"] = f"{major.value}.{minor.value}"
        entry["egl_vendor"] = (egl.eglQueryString(display, EGL_VENDOR) or b"").decode(errors="replace")
        config, found = c.c_void_p(), c.c_int32(0)
        attribs = _egl_attribs(
            EGL_SURFACE_TYPE, EGL_PBUFFER_BIT, EGL_RENDERABLE_TYPE, EGL_OPENGL_BIT,
            EGL_RED_SIZE, 8, EGL_GREEN_SIZE, 8, EGL_BLUE_SIZE, 8,
        )  # fmt: skip
        if not egl.eglChooseConfig(display, attribs, c.byref(config), 1, c.byref(found)) or not found.value:
            raise fail("eglChooseConfig (pbuffer, OpenGL, RGB888)")
        surface = egl.eglCreatePbufferSurface(
            display, config, _egl_attribs(EGL_WIDTH, PROBE_SIZE, EGL_HEIGHT, PROBE_SIZE)
        )
        if not surface:
            raise fail("eglCreatePbufferSurface")
        if not egl.eglBindAPI(EGL_OPENGL_API):
            raise fail("eglBindAPI(EGL_OPENGL_API)")
        context = egl.eglCreateContext(display, config, None, _egl_attribs())
        if not context:
            raise fail("eglCreateContext")
        try:
            if not egl.eglMakeCurrent(display, surface, surface, context):
                raise fail("eglMakeCurrent")
            _clear_and_read(entry)
        finally:
            egl.eglMakeCurrent(display, None, None, None)
            egl.eglDestroyContext(display, context)
            egl.eglDestroySurface(display, surface)
    finally:
        egl.eglTerminate(display)
        entry["seconds"] = round(time.monotonic() - start, 4)


def _clear_and_read(entry: dict[str, Any]) -> None:
    c = ctypes
    loaded = _load_first(["libOpenGL.so.0", "libGL.so.1"])
    if loaded is None:
        raise EGLFailure("neither libOpenGL.so.0 nor libGL.so.1 is installed")
    entry["gl_library"], gl = loaded
    gl.glGetString.restype = c.c_char_p
    gl.glGetString.argtypes = [c.c_uint]
    gl.glClearColor.argtypes = [c.c_float] * 4
    gl.glClear.argtypes = [c.c_uint]
    gl.glReadPixels.argtypes = [c.c_int, c.c_int, c.c_int, c.c_int, c.c_uint, c.c_uint, c.c_void_p]
    for key, name in (("gl_vendor", GL_VENDOR), ("gl_renderer", GL_RENDERER), ("gl_version", GL_VERSION)):
        entry[key] = (gl.glGetString(name) or b"").decode(errors="replace")
    start = time.monotonic()
    gl.glClearColor(*PROBE_COLOUR)
    gl.glClear(GL_COLOR_BUFFER_BIT)
    pixels = (c.c_ubyte * (PROBE_SIZE * PROBE_SIZE * 4))()
    gl.glReadPixels(0, 0, PROBE_SIZE, PROBE_SIZE, GL_RGBA, GL_UNSIGNED_BYTE, pixels)
    entry["render_seconds"] = round(time.monotonic() - start, 4)
    expected = [round(v * 255) for v in PROBE_COLOUR]
    data = bytes(pixels)
    seen = {data[i : i + 4] for i in range(0, len(data), 4)}
    entry["read_back"] = sorted(list(p) for p in seen)[:4]
    entry["expected"] = expected
    entry["ok"] = len(seen) == 1 and all(abs(a - b) <= 1 for a, b in zip(data[:4], expected, strict=True))
    if not entry["ok"]:
        entry["error"] = f"glReadPixels returned {entry['read_back']}, expected {expected}"


def probe_summary(probe: dict[str, Any]) -> str:
    """The probe's result in a few lines, for the terminal on the desktop and report.txt."""
    lines = []
    if probe.get("error"):
        lines.append(f"EGL: {probe['error']}")
    for d in probe.get("devices", []):
        where = f" ({d['drm_device']})" if d.get("drm_device") else ""
        if d.get("ok"):
            lines.append(f"EGL device {d['index']}{where}: GL_RENDERER={d.get('gl_renderer')}")
            lines.append(
                f"  GL_VERSION={d.get('gl_version')}; clear colour read back OK in {d.get('seconds')} s"
            )
        else:
            lines.append(f"EGL device {d['index']}{where}: {d.get('error', 'failed')}")
    return "\n".join(lines) or "EGL: no result"


def run_egl_probe(env: dict[str, str] | None = None, timeout: float = PROBE_TIMEOUT) -> dict[str, Any]:
    """The probe in a child process, so that a driver crash or hang cannot take the check down."""
    try:
        proc = subprocess.run(
            [sys.executable, str(ENTRY), "egl-probe"],
            capture_output=True,
            text=True,
            timeout=timeout,
            env=env,
        )
    except subprocess.TimeoutExpired:
        return {"ok": False, "error": f"the EGL probe did not finish within {timeout:g} s", "devices": []}
    try:
        probe: dict[str, Any] = json.loads(proc.stdout)
    except ValueError:
        tail = (proc.stderr or proc.stdout).strip()[-400:]
        return {"ok": False, "error": f"the EGL probe exited {proc.returncode}: {tail}", "devices": []}
    if proc.stderr.strip():
        probe["stderr"] = proc.stderr.strip()[-2000:]
    return probe


# Where NVIDIA's EGL vendor file may be: glvnd reads /usr/share/glvnd/egl_vendor.d by default, but some
# GPU images keep the driver (and its JSON) under /usr/local/nvidia, outside glvnd's search path.
VENDOR_FILES = (
    "/usr/share/glvnd/egl_vendor.d/10_nvidia.json",
    "/usr/local/nvidia/share/glvnd/egl_vendor.d/10_nvidia.json",
    "/etc/glvnd/egl_vendor.d/10_nvidia.json",
)


def gpu_devices(probe: dict[str, Any]) -> list[dict[str, Any]]:
    """The probe's devices that rendered correctly with a renderer that is not a software one."""
    from jupyter_vnc.gpu import is_software_renderer

    return [
        d
        for d in probe.get("devices", [])
        if d.get("ok") and not is_software_renderer(d.get("gl_renderer", ""))
    ]


def probe_egl_on_gpu() -> dict[str, Any]:
    """The EGL probe as the environment is; when it finds no GPU device and NVIDIA's vendor file is
    somewhere glvnd may not look, once more with that file named (and the driver's library folder)."""
    probe = run_egl_probe()
    if gpu_devices(probe):
        return probe
    retries = []
    for vendor_file in VENDOR_FILES:
        if not os.path.isfile(vendor_file) or os.environ.get("__EGL_VENDOR_LIBRARY_FILENAMES") == vendor_file:
            continue
        env = {**os.environ, "__EGL_VENDOR_LIBRARY_FILENAMES": vendor_file}
        libdir = "/usr/local/nvidia/lib64"
        if vendor_file.startswith("/usr/local/nvidia/") and os.path.isdir(libdir):
            env["LD_LIBRARY_PATH"] = ":".join(p for p in (env.get("LD_LIBRARY_PATH"), libdir) if p)
        retry = run_egl_probe(env)
        retries.append({"__EGL_VENDOR_LIBRARY_FILENAMES": vendor_file, "ok": bool(gpu_devices(retry))})
        if gpu_devices(retry):
            return retry | {"vendor_file": vendor_file, "first_try": probe, "retries": retries}
    return probe | ({"retries": retries} if retries else {})
