"""The desktop side of the check: its session, its processes, and frames read through its VNC socket."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import shlex
import struct
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gpucheck.png import count_colours

if TYPE_CHECKING:
    from testkit.rfb import RFBClient

MIN_COLOURS = 5  # a blank screen has 1, an empty xterm 3: more means text in colour was drawn


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


def write_xstartup(work: Path, gl_program: list[str] | None = None) -> Path:
    """The session: an xterm with nvidia-smi and the probes' summary (it touches ``done`` when all is
    printed, so the screenshot waits for the text and not just for the window), and ``gl_program``
    started beside it as a child of the session, the way a user's menu or terminal starts one: when
    the desktop runs its session under vglrun, the program inherits VirtualGL without naming it."""
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
    gl = ""
    if gl_program:
        gl = f"{' '.join(_quote(a) for a in gl_program)} >{_quote(work / 'session-gl.log')} 2>&1 &\n"
    # No window manager: windows sit where they ask to be; glxspheres64 at the top left, the terminal
    # at the top right ("-16+16").
    script.write_text(
        "#!/bin/sh\n"
        + gl
        + "exec xterm -geometry 100x50-16+16 -bg '#1d2330' -fg '#e8eef8' -fa 'DejaVu Sans Mono' -fs 10 "
        f"-T 'GPU check' -e sh {_quote(shown)}\n"
    )
    script.chmod(0o755)
    return script


async def read_frame(client: RFBClient, frame: bytearray) -> int:
    """Apply one FramebufferUpdate of Raw rectangles to ``frame`` (32-bit pixels, the client's
    screen size); return how many pixels it carried. TigerVNC splits a full-screen update into
    rectangles of at most 64K pixels, so the whole screen takes many of them."""
    from testkit.rfb import DESKTOP_SIZE, EXTENDED_DESKTOP_SIZE, LAST_RECT, RAW, RFBError

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


async def capture_screen(
    socket_path: Path, ready: Callable[[], bool], timeout: float, animated: bool = False
) -> dict[str, Any]:
    """Full-screen Raw frames until two frames in a row, both taken after the session said it had
    written everything, are the same and show at least MIN_COLOURS colours, or ``timeout``; the last
    frame is returned either way. ``animated``: something on the screen moves (a GL window), so two
    frames never match; the first complete frame after ``ready`` with enough colours is taken."""
    from testkit.rfb import RAW, ByteStream, RFBClient

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
            still = animated or digest == last_digest
            settled = last_ready and still and colours >= MIN_COLOURS and complete
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


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[-1].split()[0] not in {"Z", "X"}
    except OSError:
        return False


def _quote(path: Path | str) -> str:
    return shlex.quote(str(path))
