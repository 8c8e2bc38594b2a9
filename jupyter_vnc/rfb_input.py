"""What a viewer sends to the desktop: the client side of RFB, framed message by message.

The bridge passes the viewer's bytes on to Xvnc. This reader cuts them into whole messages (one may be
split over several websocket frames, several may share one), so the server can tell a person at the
desktop (keys, pointer, clipboard) from a viewer's housekeeping (update requests, encodings, fences):
the first is activity, the second is not, and a view-only connection passes only the second.

The reader must cut the stream exactly where Xvnc does, or a message it lets through is read by Xvnc
as other messages (a review put a watcher's keystrokes inside an allowed SetEncodings that way, by
announcing RFB 3.5: TigerVNC reads every minor version below 7 as 3.3, which has no security choice,
and a reader that did not followed one byte apart from then on). So it accepts only what TigerVNC and
TurboVNC read one way: the three official versions, byte for byte, the security types it can frame,
and each message's length as Xvnc computes it; anything else raises :class:`ProtocolError`, and a
caller that filters must then close the connection, since nothing after an unframed byte can be
trusted. ``tests/test_gate_xvnc.py`` holds this against a real Xvnc.

Pure and incremental: :meth:`ClientStream.feed` takes any chunk and returns the messages it completed.
"""

from __future__ import annotations

import enum
import struct
from dataclasses import dataclass


class Kind(enum.Enum):
    HANDSHAKE = "handshake"  # version, security choice (and VNC-auth response), ClientInit
    CONTROL = "control"  # how the viewer wants pixels: SetPixelFormat, SetEncodings, update requests...
    INPUT = "input"  # a person acting on the desktop: KeyEvent, PointerEvent, ClientCutText, QEMU key
    CHANGE = "change"  # changes the desktop but is no input: SetDesktopSize, xvp (shutdown/reboot)


class ProtocolError(ValueError):
    """The stream cannot be framed any further."""


@dataclass(frozen=True)
class Message:
    kind: Kind
    type: int  # RFB message type; -1 during the handshake
    data: bytes  # the whole message, header included


@dataclass
class Session:
    """What one connection negotiated, as both directions need it: the desktop's replies are framed by
    the version and the pixel format the viewer asked for (rfb_output reads this)."""

    minor: int = 0  # the viewer's RFB version, 3.<minor>: 3, 7 or 8; 0 until it has said
    bytes_per_pixel: int = 0  # of the viewer's pixel format; 0 until SetPixelFormat or ServerInit
    tight_pixel: int = 0  # Tight's pixel size: 3 for a 32-bit 888 true-colour format, else bytes_per_pixel
    updates_asked: bool = False  # an update request (or continuous updates) has gone to the desktop

    def set_pixel_format(self, pf: bytes) -> None:
        """Record a 16-byte RFB pixel format; only true colour at 8, 16 or 32 bits is framed."""
        self.bytes_per_pixel, self.tight_pixel = pixel_sizes(pf)


def pixel_sizes(pf: bytes) -> tuple[int, int]:
    """(bytes a pixel, Tight's bytes a pixel) of a 16-byte RFB pixel format, which must be true colour
    at 8, 16 or 32 bits."""
    bpp, depth, _big, true_colour, rmax, gmax, bmax, rs, gs, bs = struct.unpack(">BBBBHHHBBB", pf[:13])
    if not true_colour or bpp not in (8, 16, 32):
        raise ProtocolError(f"pixel format of {bpp} bits{'' if true_colour else ' with a colour map'}")
    # TigerVNC's PixelFormat::is888(): Tight then sends 3 bytes a pixel.
    is888 = bpp == 32 and depth == 24 and rmax == gmax == bmax == 255 and not (rs | gs | bs) & 7
    return bpp // 8, 3 if is888 else bpp // 8


# The official versions, which TigerVNC and TurboVNC both read as written. Any other (3.4, 3.889,
# "003.0a8") each server maps its own way, and a reader that guesses wrong frames the rest apart.
VERSIONS = {b"RFB 003.003\n": 3, b"RFB 003.007\n": 7, b"RFB 003.008\n": 8}
MAX_CUT_TEXT = 16 * 1024 * 1024  # larger clipboards are refused (noVNC sends far less)
MAX_FENCE = 64  # TigerVNC drops a connection that sends a longer fence payload
_FIXED = {0: (20, Kind.CONTROL), 3: (10, Kind.CONTROL), 4: (8, Kind.INPUT), 5: (6, Kind.INPUT),
          150: (10, Kind.CONTROL), 250: (4, Kind.CHANGE)}  # fmt: skip
CUT_TEXT = 6


@dataclass(frozen=True)
class Limits:
    """How much one message may make the reader hold. A share recipient gets less than the owner:
    nothing they send may grow the server's memory (their clipboard is refused at its header)."""

    cut_text: int = MAX_CUT_TEXT
    encodings: int = 0xFFFF
    security_types: frozenset[int] = frozenset({1, 2})  # None, VNC authentication
    # Pixel formats rfb_output frames (true colour, 8/16/32 bits), changed in size only before the first
    # update request (updates already on their way are in the old format; which ones, no reader knows).
    strict_pixel_format: bool = False


# 256 KiB: Xvnc's own MaxCutText default. Security None only: a jupyter-vnc desktop offers nothing else,
# and rfb_output frames the desktop's replies for that handshake alone.
GUEST_LIMITS = Limits(
    cut_text=256 * 1024, encodings=256, security_types=frozenset({1}), strict_pixel_format=True
)


class ClientStream:
    """Frames the bytes a viewer sends, from the first byte of the connection."""

    def __init__(self, session: Session | None = None, limits: Limits = Limits()) -> None:
        self.session = session or Session()
        self.limits = limits
        self.refused_types: frozenset[int] = frozenset()  # message types whose header alone ends it
        self._buf = bytearray()
        self._stage = "version"  # version -> security -> [auth] -> init -> messages

    def feed(self, chunk: bytes) -> list[Message]:
        messages, error = self.feed_until_error(chunk)
        if error is not None:
            raise error
        return messages

    def feed_until_error(self, chunk: bytes) -> tuple[list[Message], ProtocolError | None]:
        """Like :meth:`feed`, but returns the messages completed before an unframeable byte together
        with the error; the bytes from that one on stay in :meth:`unframed`."""
        self._buf += chunk
        buf = self._buf
        out: list[Message] = []
        pos = 0  # cut once at the end: deleting each message's bytes as it goes is quadratic
        error = None
        try:
            while True:
                size = self._next_size(pos)
                if size is None or len(buf) - pos < size:
                    break
                out.append(self._take(bytes(buf[pos : pos + size])))
                pos += size
        except ProtocolError as e:
            error = e
        del buf[:pos]
        return out, error

    def unframed(self) -> bytes:
        """The bytes held back: an incomplete message, or everything from an unframeable byte on."""
        return bytes(self._buf)

    @property
    def pending(self) -> int:
        """Bytes held back until their message is complete."""
        return len(self._buf)

    def _next_size(self, pos: int) -> int | None:
        """Size of the message at ``pos``, or None while its header is incomplete."""
        stage = self._stage
        if stage != "messages":
            return {"version": 12, "security": 1, "auth": 16, "init": 1}[stage]
        buf = self._buf
        have = len(buf) - pos
        if not have:
            return None
        kind = buf[pos]
        if kind in self.refused_types:
            raise ProtocolError(f"a {NAMES.get(kind, kind)} message, which this connection may not send")
        if kind in _FIXED:
            return _FIXED[kind][0]
        if kind == 2:  # SetEncodings: type, pad, count(2), count x 4
            if have < 4:
                return None
            count = int.from_bytes(buf[pos + 2 : pos + 4], "big")
            if count > self.limits.encodings:
                raise ProtocolError(f"{count} encodings is over the {self.limits.encodings} limit")
            return 4 + 4 * count
        if kind == CUT_TEXT:  # type, pad(3), length(4, negative: extended clipboard), text
            if have < 8:
                return None
            length = abs(int.from_bytes(buf[pos + 4 : pos + 8], "big", signed=True))
            if length > self.limits.cut_text:
                raise ProtocolError(f"clipboard of {length} bytes is over the {self.limits.cut_text} limit")
            return 8 + length
        if kind == 248:  # ClientFence: type, pad(3), flags(4), length(1), payload
            if have < 9:
                return None
            if buf[pos + 8] > MAX_FENCE:
                raise ProtocolError(f"fence payload of {buf[pos + 8]} bytes (the desktop reads {MAX_FENCE})")
            return 9 + buf[pos + 8]
        if kind == 251:  # SetDesktopSize: type, pad, w(2), h(2), screens(1), pad, screens x 16
            return None if have < 8 else 8 + 16 * buf[pos + 6]
        if kind == 255:  # QEMU: only the extended key event (subtype 0) is known
            if have < 2:
                return None
            if buf[pos + 1] != 0:
                raise ProtocolError(f"unknown QEMU client message subtype {buf[pos + 1]}")
            return 12
        raise ProtocolError(f"unknown RFB client message type {kind}")

    def _take(self, data: bytes) -> Message:
        stage = self._stage
        session = self.session
        if stage == "version":
            minor = VERSIONS.get(data)
            if minor is None:
                raise ProtocolError(f"RFB version {data!r} is not one of 3.3, 3.7, 3.8 exactly")
            session.minor = minor
            # 3.3: the server picks the security type, the client sends no choice.
            self._stage = "init" if minor == 3 else "security"
            return Message(Kind.HANDSHAKE, -1, data)
        if stage == "security":
            if data[0] not in self.limits.security_types:
                raise ProtocolError(f"security type {data[0]} is not framed by this reader")
            self._stage = "auth" if data[0] == 2 else "init"
            return Message(Kind.HANDSHAKE, -1, data)
        if stage in ("auth", "init"):
            self._stage = "init" if stage == "auth" else "messages"
            return Message(Kind.HANDSHAKE, -1, data)
        kind = data[0]
        if kind == 0 and self.limits.strict_pixel_format:
            sizes = pixel_sizes(data[4:20])
            # Updates already on their way are in the old format: which ones, a reader cannot know. The
            # same sizes again frame alike (noVNC sets its format once, before its first request).
            if session.updates_asked and sizes != (session.bytes_per_pixel, session.tight_pixel):
                raise ProtocolError("a pixel format of another size after updates were requested")
            session.bytes_per_pixel, session.tight_pixel = sizes
        elif kind in (3, 150):
            session.updates_asked = True
        if kind in _FIXED:
            return Message(_FIXED[kind][1], kind, data)
        if kind == CUT_TEXT or kind == 255:
            return Message(Kind.INPUT, kind, data)
        if kind == 251:
            return Message(Kind.CHANGE, kind, data)
        return Message(Kind.CONTROL, kind, data)  # 2 SetEncodings, 248 ClientFence


NAMES = {0: "SetPixelFormat", 2: "SetEncodings", 3: "FramebufferUpdateRequest", 4: "KeyEvent",
         5: "PointerEvent", 6: "ClientCutText", 150: "EnableContinuousUpdates", 248: "ClientFence",
         250: "xvp", 251: "SetDesktopSize", 255: "QEMU"}  # fmt: skip

# What each kind of connection passes on. The owner (and an admin): everything. Someone the owner gave
# control: also keys, pointer and clipboard, but not what changes the desktop itself (its size). A
# watcher: how it wants pixels, nothing else.
EVERYTHING = frozenset(Kind)
TYPING = frozenset({Kind.HANDSHAKE, Kind.CONTROL, Kind.INPUT})
WATCHING = frozenset({Kind.HANDSHAKE, Kind.CONTROL})

EXTENDED_CLIPBOARD = -1063131698  # 0xC0A1E5CE as RFB's signed 32 bits
# The encodings a share recipient may ask for: those rfb_output frames (its replies must be framed to
# keep the owner's clipboard from a watcher). noVNC's others (Hextile, RRE, VMware cursor...) only
# have fallbacks among these. The extended clipboard is added for someone given control.
GUEST_ENCODINGS = frozenset(
    {0, 1, 7, 16, -260, -223, -224, -239, -258, -261, -307, -308, -312, -313, 0x574D5668}
    | set(range(-32, -22))  # JPEG quality levels
    | set(range(-256, -246))  # compression levels
)


def guest_encodings(message: bytes, clipboard: bool) -> bytes:
    """A share recipient's SetEncodings with only the encodings framed for them."""
    allowed = GUEST_ENCODINGS | {EXTENDED_CLIPBOARD} if clipboard else GUEST_ENCODINGS
    count = (len(message) - 4) // 4
    kept = [e for e in struct.unpack(f">{count}i", message[4:]) if e in allowed]
    return struct.pack(f">BxH{len(kept)}i", 2, len(kept), *kept)


@dataclass(frozen=True)
class Admitted:
    data: bytes  # what goes on to the desktop
    input: bool  # keys, pointer or clipboard were among it (the user's activity)
    refusal: str = ""  # not "": close the connection, nothing after this can be trusted


class Gate:
    """What of a viewer's stream reaches the desktop, decided message by message.

    The owner gets everything through, byte for byte, whole messages at a time. Other connections
    (``guest``: share recipients) pass only the kinds of message they may send (``TYPING``,
    ``WATCHING``), and the rest is dropped; they are framed within :data:`GUEST_LIMITS`, their
    encodings narrowed to what rfb_output frames, and a watcher's clipboard is refused at its header.
    A stream that cannot be framed any more is refused unless everything may pass: for the owner it
    goes on unread from there (a newer viewer's message we do not know must not break the owner's
    desktop), and every byte of it counts as the owner's activity.
    """

    def __init__(self, guest: bool = False) -> None:
        self.session = Session()
        self.guest = guest
        self._stream: ClientStream | None = ClientStream(self.session, GUEST_LIMITS if guest else Limits())

    @property
    def following(self) -> bool:
        return self._stream is not None

    def admit(self, chunk: bytes, allowed: frozenset[Kind]) -> Admitted:
        everything = allowed >= EVERYTHING
        stream = self._stream
        if stream is None:
            if everything:
                # The owner's stream, passed on unread: whatever she sends counts as activity (a desktop
                # in use must never be culled as idle because its viewer spoke something new).
                return Admitted(chunk, bool(chunk))
            return Admitted(b"", False, "the stream is no longer framed; only its owner may go on")
        typing = Kind.INPUT in allowed
        stream.refused_types = frozenset() if typing else frozenset({CUT_TEXT})
        messages, error = stream.feed_until_error(chunk)
        parts = []
        seen = False
        for m in messages:
            if m.kind not in allowed:
                continue
            if m.type == 2 and self.guest:
                parts.append(guest_encodings(m.data, clipboard=typing))
            else:
                parts.append(m.data)
            seen = seen or m.kind is Kind.INPUT
        data = b"".join(parts)
        if error is None:
            return Admitted(data, seen)
        if not everything:
            return Admitted(data, seen, str(error))
        unframed = stream.unframed()
        self._stream = None
        return Admitted(data + unframed, seen or bool(unframed), "")
