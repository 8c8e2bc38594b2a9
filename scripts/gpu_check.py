#!/usr/bin/env python3
"""The GPU machine check: a real jupyter-vnc desktop, the GPU, and OpenGL on it through EGL.

Run by ``scripts/gpu-check`` on a lent GPU machine (or directly on any machine with TigerVNC and
xterm, where it reports honestly that there is no GPU). It starts a desktop with the project's own
``VNCDesktop`` whose session is one xterm showing ``nvidia-smi`` and the EGL probe's result, renders
with OpenGL on the GPU through EGL's device platform (no X server involved: the route VirtualGL's EGL
back end takes), captures the screen through the desktop's VNC unix socket, stops the desktop and
checks that none of its processes is left. Everything lands in ``--out``: report.json, report.txt,
screenshot.png and the desktop's logs. The exit code is 0 whenever a report was written; the report
says pass or fail for each check.

Subcommands besides the check itself (the default):
  egl-probe            render with OpenGL through EGL on each EGL device; JSON on stdout
  closure PKG...       the Debian packages to ship for PKG... (used by scripts/gpu-check-prepare)
  install-debs DIR     unpack DIR/*.deb into / unless the system already has them (scripts/gpu-check)

Standard library only, Python >= 3.10; the check imports jupyter_vnc (and so traitlets) when it runs.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ctypes
import hashlib
import json
import os
import platform
import shlex
import shutil
import struct
import subprocess
import sys
import tempfile
import time
import zlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from jupyter_vnc.rfb import RFBClient

RESOLUTION = (1280, 800)
MIN_COLOURS = 5  # a blank screen has 1, an empty xterm 3: more means text in colour was drawn
SCREENSHOT_TIMEOUT = 20.0
PROBE_TIMEOUT = 60.0

# ---------------------------------------------------------------------------------------------------
# PNG (written by hand: the GPU machine's Python has no Pillow guarantee, and we need little)
# ---------------------------------------------------------------------------------------------------


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def encode_png(width: int, height: int, rgb: bytes, level: int = 6) -> bytes:
    """An 8-bit RGB PNG of ``rgb`` (rows top to bottom, 3 bytes a pixel), filter 0 on every row."""
    stride = width * 3
    if len(rgb) != stride * height:
        raise ValueError(f"{len(rgb)} bytes of pixels for {width}x{height} RGB")
    raw = b"".join(b"\x00" + rgb[y * stride : (y + 1) * stride] for y in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", header)
        + _png_chunk(b"IDAT", zlib.compress(raw, level))
        + _png_chunk(b"IEND", b"")
    )


def bgrx_to_rgb(pixels: bytes) -> bytes:
    """RFB's 32-bit little-endian true colour (B, G, R, padding) to packed RGB."""
    count = len(pixels) // 4
    rgb = bytearray(count * 3)
    rgb[0::3] = pixels[2::4]
    rgb[1::3] = pixels[1::4]
    rgb[2::3] = pixels[0::4]
    return bytes(rgb)


def count_colours(bgrx: bytes) -> int:
    """Distinct colours among 32-bit BGRX pixels (the padding byte ignored)."""
    words = set(memoryview(bgrx[: len(bgrx) // 4 * 4]).cast("I"))
    return len({w & 0xFFFFFF for w in words})


# ---------------------------------------------------------------------------------------------------
# EGL probe: OpenGL through EGL's device platform, in ctypes (the same route as VirtualGL's EGL back end)
# ---------------------------------------------------------------------------------------------------

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
            [sys.executable, os.path.abspath(__file__), "egl-probe"],
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


# ---------------------------------------------------------------------------------------------------
# Debian packages: which to ship (here), which to unpack (there)
# ---------------------------------------------------------------------------------------------------


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


# Every Ubuntu 24.04 has these (many as newer '...t64' builds); shipping Debian's would at best be
# skipped there and at worst shadow the system's own. Their own dependencies are not followed either.
BASE_PACKAGES = _words(
    """
    libc6 libgcc-s1 libstdc++6 gcc-12-base zlib1g libzstd1 liblzma5 liblz4-1 libbz2-1.0 libcrypt1
    libselinux1 libpcre2-8-0 libaudit1 libaudit-common libpam0g libsystemd0 libelogind0 libudev1 libcap2
    libcap-ng0 libgcrypt20 libgpg-error0 libacl1 libtinfo6 libmd0 libseccomp2 libuuid1 libsmartcols1
    libdb5.3 libgmp10 libnettle8 libhogweed6 libidn2-0 libunistring2 libtasn1-6 libp11-kit0 libffi8
    libgnutls30 debconf cdebconf perl-base dpkg tar bsdutils debianutils sysvinit-utils lsb-base
    """
)
# Not wanted: Mesa (the NVIDIA driver brings the GL vendor libraries; Mesa's would need 40 MiB of
# LLVM), perl (only TigerVNC's vncserver wrapper uses it; we run Xtigervnc directly), documentation.
UNWANTED_PACKAGES = _words(
    """
    libglx-mesa0 libegl-mesa0 libgl1-mesa-dri libglapi-mesa libgbm1 libllvm15 libz3-4
    perl perl-modules-5.36 libperl5.36 libfile-readbackwards-perl man-db groff-base install-info
    """
)
NOT_SHIPPED = BASE_PACKAGES | UNWANTED_PACKAGES

APT_DEPENDS_FLAGS = (
    "--no-recommends", "--no-suggests", "--no-conflicts", "--no-breaks", "--no-replaces", "--no-enhances",
)  # fmt: skip


def parse_apt_depends(text: str) -> dict[str, list[list[str]]]:
    """``apt-cache depends`` output to {package: [alternatives, ...]} for Depends and PreDepends.

    A line starting with ``|`` is or-ed with the next; a virtual package (``<name>``) stands for the
    providers listed under it; a provider listed under a real package is ignored (the real one wins).
    """
    result: dict[str, list[list[str]]] = {}
    groups: list[list[str]] | None = None
    joins_next = False  # the last dependency line began with '|': the next one is its alternative
    providers_count = False  # indented provider lines belong to the virtual package just read
    for line in text.splitlines():
        if not line.strip():
            continue
        if not line.startswith(" "):
            groups = result.setdefault(line.strip(), [])
            joins_next = providers_count = False
            continue
        if groups is None:
            continue
        stripped = line.strip()
        if line.startswith("    "):
            if providers_count:
                groups[-1].append(stripped)
            continue
        kind, _, name = stripped.lstrip("|").partition(":")
        name = name.strip()
        if kind.strip() not in {"Depends", "PreDepends"}:
            joins_next = providers_count = False
            continue
        if not joins_next:
            groups.append([])
        joins_next = stripped.startswith("|")
        providers_count = name.startswith("<")
        if not providers_count:
            groups[-1].append(name)
    return {package: [list(dict.fromkeys(g)) for g in gs if g] for package, gs in result.items()}


def _apt_depends(names: Iterable[str]) -> dict[str, list[list[str]]]:
    out = subprocess.run(
        ["apt-cache", "depends", *APT_DEPENDS_FLAGS, *names], capture_output=True, text=True, check=True
    ).stdout
    return parse_apt_depends(out)


def closure(
    roots: Iterable[str],
    lookup: Callable[[list[str]], dict[str, list[list[str]]]] = _apt_depends,
    skip: frozenset[str] = NOT_SHIPPED,
) -> list[str]:
    """The packages to ship: ``roots`` and, recursively, the first alternative of each dependency group
    that neither a chosen package nor one in ``skip`` (there already, or not wanted) satisfies."""
    chosen: list[str] = []
    seen: set[str] = set()
    todo = [r for r in roots if r not in skip]
    while todo:
        batch = [p for p in dict.fromkeys(todo) if p not in seen]
        todo = []
        if not batch:
            break
        seen.update(batch)
        chosen.extend(batch)
        depends = lookup(batch)
        for package in batch:
            for group in depends.get(package, []):
                if any(p in seen or p in skip or p in todo for p in group):
                    continue
                todo.extend(group[:1])
    return sorted(chosen)


@dataclass(frozen=True)
class DebFile:
    path: Path
    package: str
    version: str
    arch: str


def parse_deb_filename(path: Path) -> DebFile:
    """``name_version_arch.deb`` as apt-get download names it (an epoch's ':' written as %3a)."""
    parts = path.name.removesuffix(".deb").split("_")
    if len(parts) != 3:
        raise ValueError(f"not a NAME_VERSION_ARCH.deb file name: {path.name}")
    package, version, arch = parts
    return DebFile(path, package, version.replace("%3a", ":").replace("%3A", ":"), arch)


def parse_dpkg_query(text: str) -> dict[str, str]:
    """``dpkg-query -W -f '${Package} ${Version} ${db:Status-Abbrev}\\n'`` to {package: version} of
    the packages whose files are on the system (installed, or unpacked but not configured)."""
    installed: dict[str, str] = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) >= 3 and len(parts[2]) >= 2 and parts[2][1] in "iUFHW":
            installed.setdefault(parts[0], parts[1])
    return installed


def dpkg_version_ge(a: str, b: str) -> bool:
    return subprocess.run(["dpkg", "--compare-versions", a, "ge", b]).returncode == 0


def plan_debs(
    debs: Iterable[DebFile],
    installed: dict[str, str],
    version_ge: Callable[[str, str], bool] = dpkg_version_ge,
) -> list[tuple[DebFile, bool, str]]:
    """(deb, unpack?, why) for each deb: skip what the system has at an equal or newer version, and
    packages Ubuntu renamed to '...t64' when it rebuilt them for 64-bit time (its build is newer)."""
    plan = []
    for deb in sorted(debs, key=lambda d: d.package):
        have = installed.get(deb.package)
        t64 = installed.get(deb.package + "t64")
        if have is not None and version_ge(have, deb.version):
            plan.append((deb, False, f"installed at {have} (ours {deb.version})"))
        elif t64 is not None:
            plan.append((deb, False, f"{deb.package}t64 {t64} installed (Ubuntu's 64-bit-time rebuild)"))
        elif have is not None:
            plan.append((deb, True, f"installed at older {have}: adding only its missing files"))
        else:
            plan.append((deb, True, "not installed"))
    return plan


@dataclass
class Merged:
    added: int = 0  # files and links written
    kept: int = 0  # already there: left as they were
    failed: list[str] = field(default_factory=list)  # could not be written (a read-only mount, say)


def merge_tree(source: Path, target: Path) -> Merged:
    """Copy what ``source`` holds into ``target`` where nothing is there yet.

    Nothing that exists is replaced, chmod-ed or turned into something else: an existing file stays,
    and an existing directory, or a link to one (Ubuntu's /lib -> usr/lib), is merged into through
    the link. The plain ``dpkg -x DEB /`` replaces such a link with a directory and breaks the system.
    """
    merged = Merged()
    for top, dirs, files in os.walk(source):
        here = target / os.path.relpath(top, source)
        for name in list(dirs):
            src, dst = Path(top, name), here / name
            if src.is_symlink():  # a link to a directory: copied as a link, not walked into
                dirs.remove(name)
                files.append(name)
            elif not os.path.lexists(dst):
                try:
                    dst.mkdir()
                    shutil.copymode(src, dst)
                except OSError as e:
                    dirs.remove(name)
                    merged.failed.append(f"{dst}: {e.strerror}")
            elif not dst.is_dir():  # something else where the deb has a directory: leave all of it
                dirs.remove(name)
                merged.kept += sum(len(f) for _, _, f in os.walk(src))
        for name in files:
            src, dst = Path(top, name), here / name
            if os.path.lexists(dst):
                merged.kept += 1
                continue
            try:
                if src.is_symlink():
                    os.symlink(os.readlink(src), dst)
                else:
                    shutil.copy2(src, dst)
                merged.added += 1
            except OSError as e:
                merged.failed.append(f"{dst}: {e.strerror}")
    return merged


def install_debs(directory: Path, root: Path, log: Callable[[str], None] = print) -> int:
    """Unpack the debs that ``plan_debs`` keeps into ``root``; return how many were unpacked.

    Each deb goes to an empty staging directory first (``dpkg-deb --fsys-tarfile | tar -x``), then
    ``merge_tree`` adds only the files the system lacks. No maintainer script runs and the dpkg
    database is left alone: the system's own packages stay exactly as they were.
    """
    query = subprocess.run(
        ["dpkg-query", "-W", "-f", "${Package} ${Version} ${db:Status-Abbrev}\n"],
        capture_output=True,
        text=True,
    )
    installed = parse_dpkg_query(query.stdout)
    debs = [parse_deb_filename(p) for p in sorted(directory.glob("*.deb"))]
    unpacked = 0
    for deb, unpack, why in plan_debs(debs, installed):
        if not unpack:
            log(f"skip    {deb.package} {deb.version}: {why}")
            continue
        with tempfile.TemporaryDirectory(prefix="gpu-check-deb-") as staging:
            pipe = f"dpkg-deb --fsys-tarfile {_quote(deb.path)} | tar -x -C {_quote(staging)} -f -"
            done = subprocess.run(
                f"set -o pipefail; {pipe}",
                shell=True,
                executable="/bin/bash",
                capture_output=True,
                text=True,
            )
            if done.returncode != 0:
                log(f"FAILED  {deb.package} {deb.version}: {done.stderr.strip()[-300:]}")
                continue
            merged = merge_tree(Path(staging), root)
        unpacked += 1
        counts = f"{merged.added} file(s) added, {merged.kept} already there"
        log(f"unpack  {deb.package} {deb.version}: {why}; {counts}")
        for failure in merged.failed:
            log(f"FAILED  {deb.package}: {failure}")
    return unpacked


def _quote(path: Path | str) -> str:
    return shlex.quote(str(path))


# ---------------------------------------------------------------------------------------------------
# The check
# ---------------------------------------------------------------------------------------------------


def desktop_processes(directory: str, authority: str, proc: Path = Path("/proc")) -> dict[int, str]:
    """{pid: command line} of the processes of one desktop, found without its private marker: Xvnc
    and the reaper name the desktop's directory on their command line, and every program of the
    session has the desktop's cookie file as XAUTHORITY."""
    needle_env = f"XAUTHORITY={authority}".encode()
    found: dict[int, str] = {}
    for entry in proc.iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            state = (entry / "stat").read_text().rsplit(")", 1)[-1].split()[0]
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
        except OSError:
            continue
        if state in {"Z", "X"}:
            continue
        mine = directory in cmdline
        if not mine:
            with contextlib.suppress(OSError):
                mine = needle_env in (entry / "environ").read_bytes().split(b"\0")
        if mine:
            found[int(entry.name)] = cmdline
    return found


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


def write_xstartup(work: Path) -> Path:
    """The session: one xterm with nvidia-smi and the EGL probe's summary; it touches ``done`` when
    all is printed, so the screenshot waits for the text and not just for the window."""
    script = work / "xstartup"
    shown = work / "terminal.sh"
    shown.write_text(
        "printf '\\033[1;36m== jupyter-vnc GPU check: %s ==\\033[0m\\n\\n' \"$(uname -n)\"\n"
        "command -v nvidia-smi >/dev/null && nvidia-smi ||\n"
        "  printf '\\033[1;33mnvidia-smi: not available (no NVIDIA driver here)\\033[0m\\n'\n"
        "echo\n"
        f"cat {_quote(work / 'egl.txt')}\n"
        f"touch {_quote(work / 'done')}\n"
        "sleep 600\n"
    )
    script.write_text(
        "#!/bin/sh\n"
        "exec xterm -geometry 120x40+16+16 -bg '#1d2330' -fg '#e8eef8' -fa 'DejaVu Sans Mono' -fs 10 "
        f"-T 'GPU check' -e sh {_quote(shown)}\n"
    )
    script.chmod(0o755)
    return script


async def read_frame(client: RFBClient, frame: bytearray) -> int:
    """Apply one FramebufferUpdate of Raw rectangles to ``frame`` (32-bit pixels, the client's
    screen size); return how many pixels it carried. TigerVNC splits a full-screen update into
    rectangles of at most 64K pixels, so the whole screen takes many of them."""
    from jupyter_vnc.rfb import DESKTOP_SIZE, EXTENDED_DESKTOP_SIZE, LAST_RECT, RAW, RFBError

    stream = client.stream
    assert client.init is not None
    while True:
        (kind,) = struct.unpack("B", await stream.read(1))
        if kind == 0:
            break
        if kind == 1:  # SetColourMapEntries
            _, _, count = struct.unpack(">BHH", await stream.read(5))
            await stream.read(count * 6)
        elif kind == 3:  # ServerCutText
            _, length = struct.unpack(">3sI", await stream.read(7))
            await stream.read(length)
        elif kind != 2:  # 2 is Bell
            raise RFBError(f"unexpected server message type {kind}")
    (count,) = struct.unpack(">xH", await stream.read(3))
    stride, covered = client.init.width * 4, 0
    for _ in range(count):
        x, y, w, h, encoding = struct.unpack(">HHHHi", await stream.read(12))
        if encoding == LAST_RECT:
            break
        if encoding == RAW:
            data = await stream.read(w * h * 4)
            for row in range(h):
                at = (y + row) * stride + x * 4
                frame[at : at + w * 4] = data[row * w * 4 : (row + 1) * w * 4]
            covered += w * h
        elif encoding == EXTENDED_DESKTOP_SIZE:
            (screens,) = struct.unpack(">B3x", await stream.read(4))
            await stream.read(16 * screens)
        elif encoding != DESKTOP_SIZE:
            raise RFBError(f"unexpected encoding {encoding}: only Raw was asked for")
    return covered


async def capture_screen(socket_path: Path, ready: Callable[[], bool], timeout: float) -> dict[str, Any]:
    """Full-screen Raw frames until two frames in a row, both taken after the session said it had
    written everything, are the same and show at least MIN_COLOURS colours, or ``timeout``; the last
    frame is returned either way."""
    from jupyter_vnc.rfb import RAW, ByteStream, RFBClient

    stream = await asyncio.wait_for(ByteStream.unix(str(socket_path)), 10)
    try:
        client = RFBClient(stream)
        init = await asyncio.wait_for(client.handshake(), 10)
        await client.set_pixel_format_32()
        await client.set_encodings(RAW)
        deadline = time.monotonic() + timeout
        last_digest, last_ready, frames = b"", False, 0
        while True:
            is_ready = ready()  # both frames compared must be taken after the text was all written
            width, height = init.width, init.height
            frame = bytearray(width * height * 4)
            await client.request_update(incremental=False)
            covered = await asyncio.wait_for(read_frame(client, frame), 10)
            frames += 1
            pixels = bytes(frame)
            colours = count_colours(pixels)
            digest = hashlib.sha256(pixels).digest()
            complete = covered >= width * height
            settled = last_ready and digest == last_digest and colours >= MIN_COLOURS and complete
            if settled or time.monotonic() > deadline:
                return {
                    "width": width,
                    "height": height,
                    "name": init.name,
                    "pixels": pixels,
                    "colours": colours,
                    "complete": complete,
                    "settled": settled,
                    "frames": frames,
                }
            last_digest, last_ready = digest, is_ready
            await asyncio.sleep(0.25)
    finally:
        with contextlib.suppress(Exception):
            stream.close()  # type: ignore[attr-defined]


def _check(ok: bool, detail: str) -> dict[str, str]:
    return {"result": "pass" if ok else "fail", "detail": detail}


async def run_check(out: Path) -> dict[str, Any]:
    """The whole check; the report, with what failed, whatever happens (short of a bug here)."""
    work = Path(tempfile.mkdtemp(prefix="gpuchk-"))  # short: the VNC socket path must stay < 108 bytes
    try:
        return await _run_check(out, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)


async def _run_check(out: Path, work: Path) -> dict[str, Any]:
    from jupyter_vnc.desktop import VNCDesktop

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

    # The GPU, as the driver sees it.
    t = time.monotonic()
    code, smi = _run(["nvidia-smi", "-L"])
    timings["nvidia_smi"] = round(time.monotonic() - t, 3)
    gpus = [line for line in smi.splitlines() if line.startswith("GPU ")] if code == 0 else []
    report["nvidia_smi_L"] = smi
    checks["gpu"] = _check(bool(gpus), "; ".join(gpus) if gpus else f"no NVIDIA GPU present ({smi or code})")

    # OpenGL through EGL, before the desktop so that its terminal can show the result.
    t = time.monotonic()
    probe = probe_egl_on_gpu()
    timings["egl_probe"] = round(time.monotonic() - t, 3)
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

    (work / "egl.txt").write_text(probe_summary(probe) + "\n")
    width, height = RESOLUTION
    desktop = VNCDesktop(
        xstartup=str(write_xstartup(work)), resolution=f"{width}x{height}", runtime_dir=str(work)
    )
    screen: dict[str, Any] = {}
    processes: dict[int, str] = {}
    try:
        t = time.monotonic()
        try:
            await asyncio.wait_for(desktop.ensure_running(), 60)
            timings["desktop_start"] = round(time.monotonic() - t, 3)
            t = time.monotonic()
            report["status"] = status = await desktop.status()
            timings["status"] = round(time.monotonic() - t, 3)
            up = status["state"] == "running" and desktop.socket_path.exists()
            checks["desktop"] = _check(
                up, f"{status['message']}, {status['vnc_server']}, VNC socket {desktop.socket_path}"
            )
        except Exception as e:
            checks["desktop"] = _check(False, f"{type(e).__name__}: {e}")
        if checks["desktop"]["result"] == "pass":
            t = time.monotonic()
            try:
                screen = await capture_screen(desktop.socket_path, (work / "done").exists, SCREENSHOT_TIMEOUT)
                png = encode_png(screen["width"], screen["height"], bgrx_to_rgb(screen.pop("pixels")))
                (out / "screenshot.png").write_bytes(png)
                screen["png_bytes"] = len(png)
            except Exception as e:
                screen = {"error": f"{type(e).__name__}: {e}"}
            timings["screenshot"] = round(time.monotonic() - t, 3)
            directory = desktop.socket_path.parent
            processes = desktop_processes(str(directory), str(desktop.authority))
            for name in ("xvnc.log", "session.log"):
                with contextlib.suppress(OSError):
                    shutil.copyfile(directory / name, out / name)
    finally:
        t = time.monotonic()
        with contextlib.suppress(Exception):
            await desktop.stop()
        timings["desktop_stop"] = round(time.monotonic() - t, 3)

    # The screenshot.
    if "png_bytes" in screen:
        good = screen["settled"] and screen["colours"] >= MIN_COLOURS
        detail = (
            f"{screen['width']}x{screen['height']}, {screen['colours']} colours, "
            f"{screen['png_bytes']} bytes, {screen['frames']} frame(s)"
            + ("" if screen["settled"] else ", terminal text not seen settled")
        )
        checks["screenshot"] = _check(good, detail)
        report["screenshot"] = screen
    else:
        checks["screenshot"] = _check(False, screen.get("error", "no desktop to capture"))

    # Nothing of the desktop may outlive stop().
    left: dict[int, str] = {}
    deadline = time.monotonic() + 5
    while True:
        left = {pid: cmd for pid, cmd in processes.items() if Path(f"/proc/{pid}").exists() and _alive(pid)}
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

    timings["total"] = round(time.monotonic() - t0, 3)
    report["result"] = "pass" if all(c["result"] == "pass" for c in checks.values()) else "fail"
    return report


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[-1].split()[0] not in {"Z", "X"}
    except OSError:
        return False


def report_text(report: dict[str, Any]) -> str:
    lines = [f"jupyter-vnc GPU check: {report['result'].upper()}", ""]
    for name, check in report["checks"].items():
        lines.append(f"{check['result'].upper():4}  {name:10}  {check['detail']}")
    lines += ["", "host: " + ", ".join(f"{k}={v}" for k, v in report["host"].items() if k != "env")]
    status = report.get("status")
    if status:
        lines.append(
            f"desktop status: state={status['state']} {status['width']}x{status['height']} "
            f"vnc={status['vnc_server']} ({status['vnc_version']}) gpus={status['gpus']} "
            f"gl={status['gl']} gl_renderer={status['gl_renderer']!r}"
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
        print("\n".join(closure(args.packages)))
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
