"""A small RFB (VNC) client: enough to prove a desktop answers and to measure it.

Used by the tests, the benchmarks and the GPU check, never by the package itself (it is not in the
wheel). It speaks RFB 3.8 with the "None" security type (the only one a jupyter-vnc desktop offers,
behind Jupyter's authentication) and understands the Raw, CopyRect, ZRLE and Tight encodings; ZRLE and
Tight rectangles are skipped by their length without being decoded, which is all a throughput
measurement needs (Tight with JPEG is what noVNC asks for, so it is what a browser's stream costs). Raw
rectangles can be assembled into a frame.
"""

from __future__ import annotations

import asyncio
import struct
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

RAW, COPYRECT, TIGHT, ZRLE = 0, 1, 7, 16
DESKTOP_SIZE, LAST_RECT, EXTENDED_DESKTOP_SIZE = -223, -224, -308


def jpeg_quality(level: int) -> int:
    """The pseudo-encoding asking a Tight server for JPEG at ``level`` (0-9; noVNC's default is 6)."""
    return -32 + level


def compress_level(level: int) -> int:
    """The pseudo-encoding for the zlib level of Tight/ZRLE (0-9; noVNC's default is 2)."""
    return -256 + level


class RFBError(RuntimeError):
    pass


@dataclass(frozen=True)
class ServerInit:
    width: int
    height: int
    bits_per_pixel: int
    name: str


@dataclass
class Update:
    rects: int
    pixels: bytes  # raw pixel bytes of the first Raw rectangle, b"" otherwise
    nbytes: int  # size of the whole message on the wire
    area: int = 0  # pixels the update's rectangles cover (screen area: a full frame's worth)


class ByteStream:
    """Exact reads over something that delivers chunks (a unix socket or websocket messages)."""

    # A peer that stops sending fails the read after this many seconds instead of hanging its caller.
    READ_TIMEOUT = 60.0

    def __init__(self, recv: Callable[[], Awaitable[bytes]], send: Callable[[bytes], Awaitable[None]]):
        self._recv = recv
        self.send = send
        self._buffer = bytearray()

    async def read(self, n: int) -> bytes:
        while len(self._buffer) < n:
            try:
                chunk = await asyncio.wait_for(self._recv(), self.READ_TIMEOUT)
            except asyncio.TimeoutError:
                raise RFBError(f"nothing received for {self.READ_TIMEOUT:g} s ({n} bytes expected)") from None
            if not chunk:
                raise RFBError(f"connection closed while {n - len(self._buffer)} more bytes were expected")
            self._buffer += chunk
        data = bytes(self._buffer[:n])
        del self._buffer[:n]
        return data

    @classmethod
    async def unix(cls, path: str) -> ByteStream:
        reader, writer = await asyncio.open_unix_connection(path, limit=1 << 20)

        async def send(data: bytes) -> None:
            writer.write(data)
            await writer.drain()

        stream = cls(lambda: reader.read(1 << 20), send)
        stream.close = writer.close  # type: ignore[attr-defined]
        return stream

    @classmethod
    async def websocket(
        cls, url: str, headers: dict[str, str] | None = None, *, timeout: float = 30, nodelay: bool = False
    ) -> ByteStream:
        """RFB over a desktop's websocket (subprotocol "binary"), as the viewer page speaks it.
        ``headers`` carry the authentication (a token or the cookies); ``nodelay`` sends small
        messages at once, as browsers do. The tornado connection is ``.connection``."""
        from tornado.httpclient import HTTPRequest
        from tornado.websocket import websocket_connect

        request = HTTPRequest(url, headers=headers or {}, connect_timeout=timeout, request_timeout=timeout)
        conn = await websocket_connect(request, subprotocols=["binary"], max_message_size=256 * 2**20)
        if nodelay:
            conn.protocol.set_nodelay(True)

        async def recv() -> bytes:
            message = await conn.read_message()  # bounded by read(): READ_TIMEOUT
            if message is None:
                return b""
            return message if isinstance(message, bytes) else message.encode()

        async def send(data: bytes) -> None:
            await conn.write_message(data, binary=True)

        stream = cls(recv, send)
        stream.connection = conn  # type: ignore[attr-defined]
        stream.close = conn.close  # type: ignore[attr-defined]
        return stream


class RFBClient:
    def __init__(self, stream: ByteStream) -> None:
        self.stream = stream
        self.init: ServerInit | None = None
        self.bytes_per_pixel = 4
        self.cut_texts: list[bytes] = []  # the server's clipboard messages, as they came

    async def handshake(self, shared: bool = True) -> ServerInit:
        version = await self.stream.read(12)
        if not version.startswith(b"RFB "):
            raise RFBError(f"not an RFB server: {version!r}")
        await self.stream.send(b"RFB 003.008\n")
        (count,) = struct.unpack("B", await self.stream.read(1))
        if count == 0:
            (length,) = struct.unpack(">I", await self.stream.read(4))
            raise RFBError("server refused: " + (await self.stream.read(length)).decode(errors="replace"))
        types = await self.stream.read(count)
        if 1 not in types:
            raise RFBError(f"server wants authentication (security types {list(types)}), expected None")
        await self.stream.send(b"\x01")
        (result,) = struct.unpack(">I", await self.stream.read(4))
        if result != 0:
            raise RFBError("security handshake failed")
        await self.stream.send(b"\x01" if shared else b"\x00")
        width, height = struct.unpack(">HH", await self.stream.read(4))
        pixel_format = await self.stream.read(16)
        (name_len,) = struct.unpack(">I", await self.stream.read(4))
        name = (await self.stream.read(name_len)).decode(errors="replace")
        self.init = ServerInit(width, height, pixel_format[0], name)
        self.bytes_per_pixel = pixel_format[0] // 8
        return self.init

    async def set_encodings(self, *encodings: int) -> None:
        await self.stream.send(
            struct.pack(">BxH", 2, len(encodings)) + b"".join(struct.pack(">i", e) for e in encodings)
        )

    async def set_pixel_format_32(self) -> None:
        """32-bit true colour, little-endian BGRX: what the tests decode."""
        fmt = struct.pack(">BBBBHHHBBBxxx", 32, 24, 0, 1, 255, 255, 255, 16, 8, 0)
        await self.stream.send(b"\x00\x00\x00\x00" + fmt)
        self.bytes_per_pixel = 4

    async def request_update(self, incremental: bool, x: int = 0, y: int = 0, w: int = 0, h: int = 0) -> None:
        assert self.init is not None
        w, h = w or self.init.width, h or self.init.height
        await self.stream.send(struct.pack(">BBHHHH", 3, int(incremental), x, y, w, h))

    async def read_update(self, frame: bytearray | None = None) -> Update:
        """Read server messages until a FramebufferUpdate has arrived; return it. With ``frame`` (a
        screen's worth of 32-bit pixels, rows top to bottom), its Raw rectangles are drawn into it."""
        while True:
            (kind,) = struct.unpack("B", await self.stream.read(1))
            if kind == 0:
                return await self._framebuffer_update(frame)
            if kind == 1:  # SetColourMapEntries
                _, _, count = struct.unpack(">BHH", await self.stream.read(5))
                await self.stream.read(count * 6)
            elif kind == 2:  # Bell
                continue
            elif kind == 3:  # ServerCutText (a negative length: the extended clipboard)
                _, length = struct.unpack(">3si", await self.stream.read(7))
                self.cut_texts.append(await self.stream.read(abs(length)))
            else:
                raise RFBError(f"unexpected server message type {kind}")

    async def _framebuffer_update(self, frame: bytearray | None) -> Update:
        (count,) = struct.unpack(">xH", await self.stream.read(3))
        nbytes, pixels, rects, area = 4, b"", 0, 0
        for _ in range(count):
            x, y, w, h, encoding = struct.unpack(">HHHHi", await self.stream.read(12))
            nbytes += 12
            if encoding == LAST_RECT:
                break
            rects += 1
            if encoding in (RAW, COPYRECT, TIGHT, ZRLE):
                area += w * h
            if encoding == RAW:
                data = await self.stream.read(w * h * self.bytes_per_pixel)
                pixels = pixels or data
                nbytes += len(data)
                if frame is not None and self.init is not None:
                    bpp, stride = self.bytes_per_pixel, self.init.width * self.bytes_per_pixel
                    for row in range(h):
                        at = (y + row) * stride + x * bpp
                        frame[at : at + w * bpp] = data[row * w * bpp : (row + 1) * w * bpp]
            elif encoding == TIGHT:
                nbytes += await self._skip_tight(w, h)
            elif encoding == COPYRECT:
                await self.stream.read(4)
                nbytes += 4
            elif encoding == ZRLE:
                (length,) = struct.unpack(">I", await self.stream.read(4))
                await self.stream.read(length)
                nbytes += 4 + length
            elif encoding == DESKTOP_SIZE:
                assert self.init is not None
                self.init = ServerInit(w, h, self.init.bits_per_pixel, self.init.name)
            elif encoding == EXTENDED_DESKTOP_SIZE:
                (screens,) = struct.unpack(">B3x", await self.stream.read(4))
                await self.stream.read(16 * screens)
                nbytes += 4 + 16 * screens
                assert self.init is not None
                self.init = ServerInit(w, h, self.init.bits_per_pixel, self.init.name)
            else:
                raise RFBError(f"unsupported encoding {encoding} (ask only for Raw, CopyRect, Tight or ZRLE)")
        return Update(rects, pixels, nbytes, area)

    async def _compact_length(self) -> tuple[int, int]:
        """Tight's 1-3 byte length: (value, bytes it took)."""
        value = 0
        for i in range(3):
            (byte,) = await self.stream.read(1)
            value |= (byte & (0x7F if i < 2 else 0xFF)) << (7 * i)
            if i == 2 or not byte & 0x80:
                return value, i + 1
        raise AssertionError("unreachable")

    async def _skip_tight(self, w: int, h: int) -> int:
        """Skip one Tight rectangle (32-bit true colour, depth 24: 3-byte pixels); bytes it took."""
        (control,) = await self.stream.read(1)
        kind, pixel = control >> 4, 3
        if kind == 8:  # fill: one pixel
            await self.stream.read(pixel)
            return 1 + pixel
        if kind == 9:  # JPEG
            length, size = await self._compact_length()
            await self.stream.read(length)
            return 1 + size + length
        if kind > 9:
            raise RFBError(f"bad Tight control byte 0x{control:02x}")
        taken, filter_id = 1, 0
        if kind & 4:
            (filter_id,) = await self.stream.read(1)
            taken += 1
        if filter_id == 1:  # palette
            (colours,) = await self.stream.read(1)
            colours += 1
            await self.stream.read(colours * pixel)
            taken += 1 + colours * pixel
            data = ((w + 7) // 8) * h if colours == 2 else w * h
        elif filter_id in (0, 2):  # copy, gradient
            data = w * h * pixel
        else:
            raise RFBError(f"bad Tight filter {filter_id}")
        if data < 12:  # small data is sent as it is, not compressed
            await self.stream.read(data)
            return taken + data
        length, size = await self._compact_length()
        await self.stream.read(length)
        return taken + size + length


# What noVNC asks for by default (Tight, JPEG quality 6, compression 2, plus the fallbacks): a
# measurement of what a browser gets must use it, not ZRLE alone (TigerVNC encodes ZRLE 4-20x slower).
NOVNC_ENCODINGS = (TIGHT, ZRLE, COPYRECT, RAW, jpeg_quality(6), compress_level(2))


@dataclass(frozen=True)
class StreamRate:
    updates: float  # FramebufferUpdates per second
    frames: float  # full screens per second: area delivered per second / screen area
    mbytes: float  # MB per second on the wire
    count: int  # updates received
    seconds: float


async def measure_stream(
    client: RFBClient, seconds: float, timeout: float = 10, window: int = 1
) -> StreamRate:
    """Incremental updates back to back for ``seconds``, on a client whose handshake, pixel format and
    encodings are done: ``window`` requests outstanding (that many sent first, one more as each update
    arrives; 1: each update waits for a round trip). The screen must be changing: a VNC server answers
    an incremental request only when something moved."""
    assert client.init is not None
    screen = client.init.width * client.init.height
    count = nbytes = area = 0
    t0 = time.perf_counter()
    for _ in range(window - 1):
        await client.request_update(incremental=True)
    while time.perf_counter() - t0 < seconds:
        await client.request_update(incremental=True)
        update = await asyncio.wait_for(client.read_update(), timeout)
        count += 1
        nbytes += update.nbytes
        area += update.area
    elapsed = time.perf_counter() - t0
    return StreamRate(count / elapsed, area / screen / elapsed, nbytes / elapsed / 1e6, count, elapsed)
