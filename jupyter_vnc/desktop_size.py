"""Sizing the desktop to the browser before anyone looks at it.

A viewer that fits the desktop to its window asks for a new size as it connects; the X server then
resizes and XFCE lays its panel and desktop out again, about 70 ms between the click on the tile and
the first whole picture. JupyterLab knows the size the new tab will have (the same browser window) and
tells the server ahead (``POST vnc/api/desktop?size=WxH``, only while nobody is connected). The server
asks its own X server for that size the way a viewer does: RFB's SetDesktopSize, through the desktop's
unix socket, on a short connection of its own (Raw encoding only, so it can read what comes back).
"""

from __future__ import annotations

import asyncio
import struct
from pathlib import Path

from .options import parse_resolution

EXTENDED_DESKTOP_SIZE = -308
RAW = 0


class SizeError(Exception):
    pass


def parse_size(value: str) -> tuple[int, int]:
    """``"1400x870"`` -> ``(1400, 870)``, within the sizes a desktop may have (options.parse_resolution)."""
    try:
        return parse_resolution(value)
    except ValueError as e:
        raise SizeError(str(e).replace("resolution", "size", 1)) from None


async def resize(socket_path: Path, width: int, height: int, timeout: float = 5.0) -> tuple[int, int]:
    """Ask the VNC server on ``socket_path`` for a ``width`` x ``height`` screen; the size it has after."""
    return await asyncio.wait_for(_resize(socket_path, width, height), timeout)


async def _resize(socket_path: Path, width: int, height: int) -> tuple[int, int]:
    reader, writer = await asyncio.open_unix_connection(str(socket_path))
    try:
        if not (await reader.readexactly(12)).startswith(b"RFB 003."):
            raise SizeError("not an RFB server")
        writer.write(b"RFB 003.008\n")
        types = await reader.readexactly((await reader.readexactly(1))[0])
        if 1 not in types:
            raise SizeError("the VNC server asks for authentication")
        writer.write(b"\x01")
        if await reader.readexactly(4) != b"\0\0\0\0":
            raise SizeError("the VNC server refused the connection")
        writer.write(b"\x01")  # shared: viewers that connect meanwhile stay
        init = await reader.readexactly(24)
        bpp = init[4]
        await reader.readexactly(struct.unpack(">I", init[20:24])[0])  # the desktop's name
        # Raw pixels only (their length is known) and the screen layout; a 1x1 update brings the layout.
        writer.write(struct.pack(">BxHii", 2, 2, RAW, EXTENDED_DESKTOP_SIZE))
        writer.write(struct.pack(">BBHHHH", 3, 0, 0, 0, 1, 1))
        screens = await _layout(reader, bpp)
        if not screens:
            raise SizeError("the VNC server does not resize (no ExtendedDesktopSize)")
        screen_id, flags = screens[0]
        writer.write(
            struct.pack(">BxHHBx", 251, width, height, 1)
            + struct.pack(">IHHHHI", screen_id, 0, 0, width, height, flags)
        )
        while True:  # the answer comes with an update: an ExtendedDesktopSize rectangle for this request
            writer.write(struct.pack(">BBHHHH", 3, 1, 0, 0, 1, 1))
            await writer.drain()
            size = await _layout_reply(reader, bpp)
            if size is not None:
                return size
    finally:
        writer.close()


async def _rects(reader: asyncio.StreamReader, bpp: int):  # type: ignore[no-untyped-def]
    """(x, y, w, h, encoding, screens) of each rectangle of the next framebuffer update."""
    while True:
        kind = (await reader.readexactly(1))[0]
        if kind == 0:
            break
        if kind == 2:  # Bell
            continue
        if kind == 3:  # ServerCutText
            header = await reader.readexactly(7)
            await reader.readexactly(abs(struct.unpack(">i", header[3:7])[0]))
            continue
        raise SizeError(f"unexpected server message {kind}")
    count = struct.unpack(">xH", await reader.readexactly(3))[0]
    out = []
    for _ in range(count):
        x, y, w, h, encoding = struct.unpack(">HHHHi", await reader.readexactly(12))
        screens: list[tuple[int, int]] = []
        if encoding == EXTENDED_DESKTOP_SIZE:
            number = (await reader.readexactly(4))[0]
            for _ in range(number):
                sid, _sx, _sy, _sw, _sh, sflags = struct.unpack(">IHHHHI", await reader.readexactly(16))
                screens.append((sid, sflags))
        elif encoding == RAW:
            await reader.readexactly(w * h * bpp // 8)
        else:
            raise SizeError(f"unexpected encoding {encoding}")
        out.append((x, y, w, h, encoding, screens))
    return out


async def _layout(reader: asyncio.StreamReader, bpp: int) -> list[tuple[int, int]]:
    for _x, _y, _w, _h, encoding, screens in await _rects(reader, bpp):
        if encoding == EXTENDED_DESKTOP_SIZE:
            return screens
    return []


async def _layout_reply(reader: asyncio.StreamReader, bpp: int) -> tuple[int, int] | None:
    for x, y, w, h, encoding, _ in await _rects(reader, bpp):
        if encoding == EXTENDED_DESKTOP_SIZE and x == 1:  # x = 1: the answer to this client's request
            if y != 0:
                raise SizeError(f"the VNC server refused the size (status {y})")
            return w, h
    return None
