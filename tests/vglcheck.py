"""Proof that a GL program drew through VirtualGL: its logo in the pixels a VNC client receives.

``VGL_LOGO=1`` makes VirtualGL's faker stamp its logo into every frame it reads back from the 3D device,
at the bottom-right corner of the window, by XOR-ing the pixels under a 74x29 bitmap with the colour
(113, 162, 117). On glxspheres' black background those pixels are exactly that colour, so finding the
bitmap's exact shape in a screenshot proves the frame went through VirtualGL (a program rendering
straight to the X server never carries it). The bitmap is read from the vendored source itself.
"""

from __future__ import annotations

import os
import re
import sys
import tarfile
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TARBALL = REPO / "vendor" / "virtualgl-3.1.4.tar.gz"
VIRTUALGL = Path("/opt/VirtualGL")
LOGO_BGR = bytes((117, 162, 113))  # (113, 162, 117) XOR black, as RFB's little-endian BGRX sends it


def logo_mask() -> set[tuple[int, int]]:
    """(x, y) of the set pixels of VirtualGL's logo bitmap (common/vgllogo.h of the vendored source)."""
    with tarfile.open(TARBALL) as tar:
        member = next(m for m in tar.getmembers() if m.name.endswith("/common/vgllogo.h"))
        text = tar.extractfile(member).read().decode()  # type: ignore[union-attr]
    width = int(re.search(r"#define VGLLOGO_WIDTH\s+(\d+)", text).group(1))  # type: ignore[union-attr]
    values = [int(v) for v in re.findall(r"\d+", text[text.index("{") : text.index("}")])]
    return {(i % width, i // width) for i, v in enumerate(values) if v}


def _normalised(points: set[tuple[int, int]]) -> set[tuple[int, int]]:
    x0, y0 = min(x for x, _ in points), min(y for _, y in points)
    return {(x - x0, y - y0) for x, y in points}


def find_logo(frame: bytes, width: int) -> float:
    """How well the logo-coloured pixels of a BGRX ``frame`` match VirtualGL's logo bitmap: the share
    of the bitmap found in place (1.0: all of it, no stray pixel of that colour); 0.0 without any."""
    found = set()
    start = frame.find(LOGO_BGR)
    while start >= 0:
        if start % 4 == 0:
            pixel = start // 4
            found.add((pixel % width, pixel // width))
        start = frame.find(LOGO_BGR, start + 1)
    if not found:
        return 0.0
    mask = _normalised(logo_mask())
    seen = _normalised(found)
    return len(mask & seen) / max(len(mask), len(seen))


def gl_session_script(
    gl_argv: str = "glxspheres64 -w 400x300", folder: Path | None = None
) -> tuple[Path, Path]:
    """(script, log): a desktop session (c.VNCDesktop.xstartup) that starts a GL program the way a
    user's menu, panel or terminal would: as a child of the session, without vglrun on its command
    line; then jupyter-vnc's own XFCE session (found by the venv's Python, which has the same path on
    the host and in the image; a job's PATH has no ``python``). The program's output (VirtualGL's log
    included) goes to the log. In ``folder``, else a fresh one the test users can use (the servers run
    as them): remove it when done.
    """
    if folder is None:
        folder = Path(tempfile.mkdtemp(prefix="jvnc-vgl-"))
        folder.chmod(0o1777)
    script, log = folder / "xstartup", folder / "gl.log"
    find_xstartup = "from jupyter_vnc.resources import template_path; print(template_path('xstartup'))"
    script.write_text(
        "#!/bin/sh\n"
        f"PATH=$PATH:{VIRTUALGL}/bin\n"
        f'VGL_LOGO=1 VGL_VERBOSE=1 {gl_argv} >"$(dirname "$0")/{log.name}" 2>&1 &\n'
        f'exec /bin/sh "$({sys.executable} -c "{find_xstartup}")"\n'
    )
    script.chmod(0o755)
    return script, log


def maps_virtualgl(pid: int) -> bool:
    """Whether VirtualGL's faker is loaded in the process."""
    try:
        return "libvglfaker" in Path(f"/proc/{pid}/maps").read_text()
    except OSError:
        return False


def maps_gl_driver(pid: int) -> bool:
    """Whether the process has loaded an OpenGL driver (Mesa's, with LLVM): it opened a GL device or
    probed GL, ~12-20 MiB that stay for the process's life."""
    try:
        maps = Path(f"/proc/{pid}/maps").read_text()
    except OSError:
        return False
    return "_dri.so" in maps or "libLLVM" in maps


def process_name(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""


def have_virtualgl() -> str:
    """ "" when VirtualGL is installed where the desktop looks for it, else why not."""
    if not os.access(VIRTUALGL / "bin" / "vglrun", os.X_OK):
        return f"no {VIRTUALGL}/bin/vglrun: run devstack/install (it builds VirtualGL from vendor/)"
    return ""
