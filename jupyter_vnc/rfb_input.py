"""What a viewer sends to the desktop: the client side of RFB, framed message by message.

The bridge passes the viewer's bytes on to Xvnc. This reader cuts them into whole messages (one may be
split over several websocket frames, several may share one), so the server can tell a person at the
desktop (keys, pointer, clipboard) from a viewer's housekeeping (update requests, encodings, fences):
the first is activity, the second is not, and a view-only connection passes only the second.

Pure and incremental: :meth:`ClientStream.feed` takes any chunk and returns the messages it completed.
A stream it cannot frame (an unknown message type, an oversized clipboard) raises
:class:`ProtocolError`: a caller that filters must then close the connection, since nothing after an
unframed byte can be trusted.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


class Kind(enum.Enum):
    HANDSHAKE = "handshake"  # version, security choice (and VNC-auth response), ClientInit
    CONTROL = "control"  # how the viewer wants pixels: SetPixelFormat, SetEncodings, update requests...
    INPUT = "input"  # a person acting on the desktop: KeyEvent, PointerEvent, ClientCutText, QEMU key
    CHANGE = "change"  # changes the desktop but is no input: SetDesktopSize, xvp (shutdown/reboot)


class ProtocolError(ValueError):
    """The client's stream cannot be framed any further."""


@dataclass(frozen=True)
class Message:
    kind: Kind
    type: int  # RFB message type; -1 during the handshake
    data: bytes  # the whole message, header included


MAX_CUT_TEXT = 16 * 1024 * 1024  # larger clipboards are refused (noVNC sends far less)
_FIXED = {0: (20, Kind.CONTROL), 3: (10, Kind.CONTROL), 4: (8, Kind.INPUT), 5: (6, Kind.INPUT),
          150: (10, Kind.CONTROL), 250: (4, Kind.CHANGE)}  # fmt: skip
NAMES = {0: "SetPixelFormat", 2: "SetEncodings", 3: "FramebufferUpdateRequest", 4: "KeyEvent",
         5: "PointerEvent", 6: "ClientCutText", 150: "EnableContinuousUpdates", 248: "ClientFence",
         250: "xvp", 251: "SetDesktopSize", 255: "QEMU"}  # fmt: skip


class ClientStream:
    """Frames the bytes a viewer sends, from the first byte of the connection."""

    def __init__(self) -> None:
        self._buf = bytearray()
        self._stage = "version"  # version -> security -> [auth] -> init -> messages
        self._security = 0

    def feed(self, chunk: bytes) -> list[Message]:
        messages, error = self.feed_until_error(chunk)
        if error is not None:
            raise error
        return messages

    def feed_until_error(self, chunk: bytes) -> tuple[list[Message], ProtocolError | None]:
        """Like :meth:`feed`, but returns the messages completed before an unframeable byte together
        with the error; the bytes from that one on stay in :meth:`unframed`."""
        self._buf += chunk
        out: list[Message] = []
        while True:
            try:
                size = self._next_size()
                if size is None or len(self._buf) < size:
                    return out, None
                message = self._take(bytes(self._buf[:size]))
            except ProtocolError as e:
                return out, e
            del self._buf[:size]
            out.append(message)

    def unframed(self) -> bytes:
        """The bytes held back: an incomplete message, or everything from an unframeable byte on."""
        return bytes(self._buf)

    @property
    def pending(self) -> int:
        """Bytes held back until their message is complete."""
        return len(self._buf)

    def _next_size(self) -> int | None:
        """Size of the next whole message, or None while its header is incomplete."""
        buf = self._buf
        if self._stage == "version":
            return 12
        if self._stage == "security":
            return 1
        if self._stage == "auth":
            return 16
        if self._stage == "init":
            return 1
        if not buf:
            return None
        kind = buf[0]
        if kind in _FIXED:
            return _FIXED[kind][0]
        if kind == 2:  # SetEncodings: type, pad, count(2), count x 4
            return None if len(buf) < 4 else 4 + 4 * int.from_bytes(buf[2:4], "big")
        if kind == 6:  # ClientCutText: type, pad(3), length(4, negative: extended clipboard), text
            if len(buf) < 8:
                return None
            length = abs(int.from_bytes(buf[4:8], "big", signed=True))
            if length > MAX_CUT_TEXT:
                raise ProtocolError(f"clipboard of {length} bytes is over the {MAX_CUT_TEXT} limit")
            return 8 + length
        if kind == 248:  # ClientFence: type, pad(3), flags(4), length(1), payload
            return None if len(buf) < 9 else 9 + buf[8]
        if kind == 251:  # SetDesktopSize: type, pad, w(2), h(2), screens(1), pad, screens x 16
            return None if len(buf) < 8 else 8 + 16 * buf[6]
        if kind == 255:  # QEMU: only the extended key event (subtype 0) is known
            if len(buf) < 2:
                return None
            if buf[1] != 0:
                raise ProtocolError(f"unknown QEMU client message subtype {buf[1]}")
            return 12
        raise ProtocolError(f"unknown RFB client message type {kind}")

    def _take(self, data: bytes) -> Message:
        stage = self._stage
        if stage == "version":
            if not (data.startswith(b"RFB 003.") and data.endswith(b"\n")):
                raise ProtocolError(f"not an RFB version: {data!r}")
            # 3.3: the server picks the security type, the client sends no choice.
            self._stage = "init" if data[8:11] == b"003" else "security"
            return Message(Kind.HANDSHAKE, -1, data)
        if stage == "security":
            self._security = data[0]
            if self._security not in (1, 2):
                raise ProtocolError(f"security type {self._security} is not framed by this reader")
            self._stage = "auth" if self._security == 2 else "init"
            return Message(Kind.HANDSHAKE, -1, data)
        if stage in ("auth", "init"):
            self._stage = "init" if stage == "auth" else "messages"
            return Message(Kind.HANDSHAKE, -1, data)
        kind = data[0]
        if kind in _FIXED:
            return Message(_FIXED[kind][1], kind, data)
        if kind == 6 or kind == 255:
            return Message(Kind.INPUT, kind, data)
        if kind == 251:
            return Message(Kind.CHANGE, kind, data)
        return Message(Kind.CONTROL, kind, data)  # 2 SetEncodings, 248 ClientFence


# What each kind of connection passes on. The owner (and an admin): everything. Someone the owner gave
# control: also keys, pointer and clipboard, but not what changes the desktop itself (its size). A
# watcher: how it wants pixels, nothing else.
EVERYTHING = frozenset(Kind)
TYPING = frozenset({Kind.HANDSHAKE, Kind.CONTROL, Kind.INPUT})
WATCHING = frozenset({Kind.HANDSHAKE, Kind.CONTROL})


@dataclass(frozen=True)
class Admitted:
    data: bytes  # what goes on to the desktop
    input: bool  # keys, pointer or clipboard were among it (the user's activity)
    refusal: str = ""  # not "": close the connection, nothing after this can be trusted


class Gate:
    """What of a viewer's stream reaches the desktop, decided message by message.

    The owner gets everything through, byte for byte, whole messages at a time. Other connections
    pass only the kinds of message they may send (``TYPING``, ``WATCHING``), and the rest is dropped.
    A stream that cannot be framed any more is refused unless everything may pass: for the owner it
    goes on unread from there (a newer viewer's message we do not know must not break the owner's
    desktop), and activity is no longer seen.
    """

    def __init__(self) -> None:
        self._stream: ClientStream | None = ClientStream()

    @property
    def following(self) -> bool:
        return self._stream is not None

    def admit(self, chunk: bytes, allowed: frozenset[Kind]) -> Admitted:
        everything = allowed >= EVERYTHING
        if self._stream is None:
            if everything:
                return Admitted(chunk, False)
            return Admitted(b"", False, "the stream is no longer framed; only its owner may go on")
        messages, error = self._stream.feed_until_error(chunk)
        kept = [m for m in messages if m.kind in allowed]
        data = b"".join(m.data for m in kept)
        seen = any(m.kind is Kind.INPUT for m in kept)
        if error is None:
            return Admitted(data, seen)
        if not everything:
            return Admitted(data, seen, str(error))
        data += self._stream.unframed()
        self._stream = None
        return Admitted(data, seen, "")
