"""What the desktop sends a share recipient: the server side of RFB, framed so that the owner's
clipboard stays hers.

Xvnc sends the owner's clipboard, and her PRIMARY selection (whatever she merely selects), to every
connected viewer as ServerCutText, or as extended-clipboard messages of the same type. Which bytes of
the stream are such a message only a reader that follows the whole stream knows: framebuffer updates
carry rectangles of many encodings, each its own length. So for a share recipient the bridge passes the
desktop's bytes through :class:`ServerStream`, which follows the handshake, every update's rectangles
(in the encodings rfb_input lets a recipient ask for, in the pixel format it asked for) and the other
server messages, and leaves out the clipboard while the recipient may only watch.

It streams: a rectangle's pixels pass on as they arrive, nothing is held but a header, so a large update
costs no memory. Anything it cannot frame (an encoding or message type it does not know) raises
:class:`ProtocolError`, and the bridge ends the connection rather than guess. The owner's own stream
never comes here: it passes on unread, at full speed.
"""

from __future__ import annotations

import struct
from collections.abc import Generator
from dataclasses import dataclass

from .rfb_input import EXTENDED_CLIPBOARD, ProtocolError, Session


@dataclass
class _Read:
    """The parser needs the next ``size`` bytes (a header) to decide."""

    size: int


@dataclass
class _Pass:
    """The next ``size`` bytes are a body the parser need not see: forwarded, or left out."""

    size: int
    forward: bool


@dataclass
class _Emit:
    """Header bytes the parser read, to forward."""

    data: bytes


_Step = _Read | _Pass | _Emit
_Parser = Generator[_Step, bytes | None, None]

CUT_TEXT = 3


class ServerStream:
    """Frames the bytes a desktop sends to one viewer, from the first byte of the connection, and
    passes on all but the clipboard while :attr:`clipboard` is False."""

    def __init__(self, session: Session) -> None:
        self.session = session
        self.clipboard = False  # may the viewer receive the owner's clipboard (someone given control)
        self.left_out = 0  # clipboard messages kept from the viewer
        self._parser = self._protocol()
        self._step: _Step = next(self._parser)
        self._header = bytearray()

    def feed(self, chunk: bytes) -> bytes:
        """What of ``chunk`` goes on to the viewer. Raises ProtocolError on what cannot be framed."""
        view = memoryview(chunk)
        out = bytearray()
        pos, end = 0, len(chunk)
        while True:
            step = self._step
            if isinstance(step, _Emit):
                out += step.data
                self._step = self._parser.send(None)
                continue
            if isinstance(step, _Pass) and not step.size:
                self._step = self._parser.send(None)
                continue
            if pos >= end:
                return bytes(out)
            if isinstance(step, _Pass):
                n = min(step.size, end - pos)
                if step.forward:
                    out += view[pos : pos + n]
                pos += n
                step.size -= n
                if step.size == 0:
                    self._step = self._parser.send(None)
                continue
            n = min(step.size - len(self._header), end - pos)
            self._header += view[pos : pos + n]
            pos += n
            if len(self._header) == step.size:
                header, self._header = bytes(self._header), bytearray()
                self._step = self._parser.send(header)

    # --- the protocol, as a generator: yield _Read(n) gets n bytes; _Pass skips a body; _Emit forwards

    def _protocol(self) -> _Parser:
        session = self.session
        version = yield _Read(12)
        assert version is not None
        if not version.startswith(b"RFB 003."):
            raise ProtocolError(f"the desktop's RFB version {version!r}")
        yield _Emit(version)
        yield from self._security()
        init = yield _Read(24)  # width, height, pixel format, name length
        assert init is not None
        yield _Emit(init)
        if not session.bytes_per_pixel:
            session.set_pixel_format(init[4:20])
        yield _Pass(struct.unpack(">I", init[20:24])[0], True)
        while True:
            kind = (yield _Read(1)) or b""
            yield from self._message(kind[0])

    def _security(self) -> _Parser:
        """The desktop's side of the handshake for security None, the only type a guest may pick."""
        first = yield _Read(1)  # the desktop sends it only once it has the viewer's version
        assert first is not None
        minor = self.session.minor
        if not minor:
            raise ProtocolError("the desktop answered before the viewer gave its version")
        if minor == 3:
            rest = yield _Read(3)
            assert rest is not None
            chosen = first + rest
            yield _Emit(chosen)
            if chosen != b"\x00\x00\x00\x01":
                yield from self._failure(chosen == b"\x00\x00\x00\x00")
            return
        count = first
        yield _Emit(count)
        if count == b"\x00":
            yield from self._failure(True)
        types = yield _Read(count[0])
        assert types is not None
        yield _Emit(types)
        if minor >= 8:  # 3.8 reports the result of security None too
            result = yield _Read(4)
            assert result is not None
            yield _Emit(result)
            if result != b"\x00\x00\x00\x00":
                yield from self._failure(True)

    def _failure(self, with_reason: bool) -> _Parser:
        """The desktop refused the connection: its reason passes on, then nothing more can come."""
        if with_reason:
            length = yield _Read(4)
            assert length is not None
            yield _Emit(length)
            yield _Pass(struct.unpack(">I", length)[0], True)
        raise ProtocolError("the desktop refused the connection")

    def _message(self, kind: int) -> _Parser:
        if kind == 0:  # FramebufferUpdate: type, pad, rectangle count
            head = yield _Read(3)
            assert head is not None
            yield _Emit(bytes([kind]) + head)
            count = struct.unpack(">H", head[1:3])[0]
            while count:
                rect = yield _Read(12)
                assert rect is not None
                yield _Emit(rect)
                w, h, encoding = struct.unpack(">4xHHi", rect)
                if encoding == -224:  # LastRect: the update ends here, whatever its count said
                    break
                yield from self._rectangle(encoding, w, h)
                count -= 1
        elif kind == 1:  # SetColourMapEntries: type, pad, first, count, count x 6
            head = yield _Read(5)
            assert head is not None
            yield _Emit(bytes([kind]) + head)
            yield _Pass(6 * struct.unpack(">H", head[3:5])[0], True)
        elif kind == 2:  # Bell
            yield _Emit(bytes([kind]))
        elif kind == CUT_TEXT:  # ServerCutText: type, pad(3), length (negative: extended clipboard), text
            head = yield _Read(7)
            assert head is not None
            forward = self.clipboard
            if forward:
                yield _Emit(bytes([kind]) + head)
            else:
                self.left_out += 1
            yield _Pass(abs(struct.unpack(">i", head[3:7])[0]), forward)
        elif kind == 150:  # EndOfContinuousUpdates
            yield _Emit(bytes([kind]))
        elif kind == 248:  # ServerFence: type, pad(3), flags(4), length(1), payload
            head = yield _Read(8)
            assert head is not None
            yield _Emit(bytes([kind]) + head)
            yield _Pass(head[7], True)
        elif kind == 250:  # xvp: type, pad, version, code
            head = yield _Read(3)
            assert head is not None
            yield _Emit(bytes([kind]) + head)
        else:
            raise ProtocolError(f"unknown RFB server message type {kind}")

    def _rectangle(self, encoding: int, w: int, h: int) -> _Parser:
        bpp = self.session.bytes_per_pixel
        if encoding == 0:  # Raw
            yield _Pass(w * h * bpp, True)
        elif encoding == 1:  # CopyRect: source x, y
            yield _Pass(4, True)
        elif encoding in (7, -260):  # Tight, TightPNG
            yield from self._tight(w, h)
        elif encoding == 16:  # ZRLE: length, zlib data
            yield from self._length_prefixed(4)
        elif encoding == -239:  # Cursor: pixels, then a bitmask a row of bytes per line
            yield _Pass(w * h * bpp + (w + 7) // 8 * h, True)
        elif encoding == -308:  # ExtendedDesktopSize: screens, pad(3), screens x 16
            head = yield _Read(4)
            assert head is not None
            yield _Emit(head)
            yield _Pass(16 * head[0], True)
        elif encoding == -307:  # DesktopName: length, name
            yield from self._length_prefixed(4)
        elif encoding == -261:  # QEMU LED state
            yield _Pass(1, True)
        elif encoding == 0x574D5668:  # VMware LED state
            yield _Pass(4, True)
        elif encoding in (-223, -258):  # DesktopSize, QEMU extended key events: no body
            return
        elif encoding == EXTENDED_CLIPBOARD:
            raise ProtocolError("the extended clipboard is no rectangle")
        else:
            raise ProtocolError(f"a rectangle in encoding {encoding}, which is not framed here")

    def _length_prefixed(self, size: int) -> _Parser:
        head = yield _Read(size)
        assert head is not None
        yield _Emit(head)
        yield _Pass(int.from_bytes(head, "big"), True)

    def _tight(self, w: int, h: int) -> _Parser:
        """A Tight rectangle's length, as TigerVNC's TightDecoder reads it (nothing decompressed)."""
        pixel = self.session.tight_pixel
        control = yield _Read(1)
        assert control is not None
        yield _Emit(control)
        mode = control[0] >> 4
        if mode == 8:  # fill: one pixel
            yield _Pass(pixel, True)
            return
        if mode in (9, 10):  # JPEG, PNG: compact length, data
            yield from self._compact_then_data()
            return
        if mode > 10:
            raise ProtocolError(f"Tight compression control {control[0]:#x}")
        size = w * h * pixel  # copy filter (and gradient)
        if control[0] & 0x40:  # an explicit filter follows
            flt = yield _Read(1)
            assert flt is not None
            yield _Emit(flt)
            if flt[0] == 1:  # palette: colours - 1, then the colours
                colours = yield _Read(1)
                assert colours is not None
                yield _Emit(colours)
                n = colours[0] + 1
                yield _Pass(n * pixel, True)
                size = (w + 7) // 8 * h if n <= 2 else w * h
            elif flt[0] not in (0, 2):
                raise ProtocolError(f"Tight filter {flt[0]}")
        if size < 12:  # too small to be compressed: sent as it is
            yield _Pass(size, True)
        else:
            yield from self._compact_then_data()

    def _compact_then_data(self) -> _Parser:
        length = shift = 0
        for _ in range(3):
            byte = yield _Read(1)
            assert byte is not None
            yield _Emit(byte)
            length |= (byte[0] & 0x7F) << shift
            shift += 7
            if not byte[0] & 0x80 or shift == 21:
                if shift == 21:  # the third byte counts all 8 bits
                    length |= (byte[0] & 0x80) << 14
                break
        yield _Pass(length, True)
