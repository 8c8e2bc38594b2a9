"""The view-only gate against the reader that counts: a real Xvnc, and the owner's X display.

A case is one viewer connection: a byte stream (any version, security byte or none, any messages,
lengths that lie, any split), passed through the bridge's gate as a share recipient's would be
(``rfb_input.Gate``), what the gate lets through written to Xvnc's unix socket, what Xvnc answers read
through ``rfb_output.ServerStream``. The display is then asked what happened: a full-screen window
with the keyboard focus logs every key, button and pointer motion it gets (``xev``), the CLIPBOARD and
PRIMARY selections hold sentinels, and the screen keeps its size. The gate's own idea of the stream
plays no part in the verdict.

Used by tests/test_gate_xvnc.py (thousands of cases in CI) and benchmarks/gate_differential.py (more).
"""

from __future__ import annotations

import contextlib
import os
import random
import shutil
import signal
import socket
import struct
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import procs

from jupyter_vnc.rfb_input import WATCHING, Gate, Kind, ProtocolError
from jupyter_vnc.rfb_output import ServerStream
from jupyter_vnc.vncserver import detect
from jupyter_vnc.xauth import new_cookie, write_authority

SENTINELS = {"clipboard": "jvnc-owner-clipboard", "primary": "jvnc-owner-selection"}
GEOMETRY = (1024, 768)


def xvnc_binary() -> str | None:
    return shutil.which("Xvnc") or shutil.which("Xtigervnc")


class OwnersDisplay:
    """A real Xvnc started with the desktop's own command line (vncserver.VNCServer.argv: unix socket,
    no TCP, security None), with the owner's state on it to watch: focus, pointer, selections, size."""

    def __init__(self, kind: str = "") -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="jvnc-diff-"))
        self.socket = str(self.dir / "rfb.sock")
        authority = self.dir / "Xauthority"
        write_authority(authority, new_cookie())
        read, write = os.pipe()
        server = detect(kind)
        argv = server.argv(
            socket_path=Path(self.socket), authority=authority, displayfd=write,
            geometry=f"{GEOMETRY[0]}x{GEOMETRY[1]}", name="owner",
        )  # fmt: skip
        self.kind = server.kind
        with open(self.dir / "xvnc.log", "wb") as log:
            self.xvnc = subprocess.Popen(argv, pass_fds=(write,), stdout=subprocess.DEVNULL, stderr=log)
        os.close(write)
        with os.fdopen(read) as f:
            self.display = f":{f.readline().strip()}"
        self.env = {**os.environ, "DISPLAY": self.display, "XAUTHORITY": str(authority)}
        self._helpers: list[subprocess.Popen[bytes]] = []
        self.events_log = self.dir / "events.log"
        self._trap()
        self.reset()

    def _trap(self) -> None:
        w, h = GEOMETRY
        log = open(self.events_log, "wb")  # noqa: SIM115 - xev writes to it for the display's life
        self._helpers.append(
            subprocess.Popen(
                [
                    "xev",
                    "-event",
                    "keyboard",
                    "-event",
                    "mouse",
                    "-event",
                    "button",
                    "-name",
                    "jvnc-trap",
                    "-geometry",
                    f"{w}x{h}+0+0",
                ],
                env=self.env,
                stdout=log,
                stderr=subprocess.DEVNULL,
            )
        )
        found = self.run("xdotool", "search", "--sync", "--name", "jvnc-trap")
        self.window = found.split()[0]

    def run(self, *argv: str, stdin: str | None = None) -> str:
        return subprocess.run(
            list(argv), env=self.env, capture_output=True, text=True, timeout=20, input=stdin, check=True
        ).stdout

    def copy(self, selection: str, text: str) -> None:
        """The owner copies (``clipboard``) or merely selects (``primary``) ``text``."""
        # xclip forks into the background and owns the selection until another client takes it
        subprocess.run(["xclip", "-i", "-selection", selection], input=text.encode(), env=self.env,
                       timeout=10, check=True)  # fmt: skip

    def reset(self) -> None:
        """The owner's state, as a case must leave it: focus on the trap, pointer parked, sentinels held."""
        self.run("xdotool", "windowfocus", "--sync", self.window)
        self.run("xdotool", "mousemove", "3", "5")  # not --sync: it waits 15 s when already there
        self.run("xdotool", "windowsize", self.window, str(GEOMETRY[0]), str(GEOMETRY[1]))
        for selection, text in SENTINELS.items():
            self.copy(selection, text)
        time.sleep(0.1)
        self.events_log.write_bytes(b"")

    def changes(self) -> list[str]:
        """What anyone did to the owner's display since :meth:`reset`; [] when nothing."""
        time.sleep(0.15)  # Xvnc reads what the last connection sent before it serves these queries
        found = []
        events = [line.split(" event")[0] for line in self.events_log.read_text(errors="replace").splitlines()
                  if " event, serial " in line]  # fmt: skip
        seen = [e for e in events if e in {"KeyPress", "KeyRelease", "ButtonPress", "ButtonRelease",
                                           "MotionNotify"}]  # fmt: skip
        if seen:
            found.append(f"the owner's window got {sorted(set(seen))}")
        pointer = dict(kv.split("=", 1) for kv in self.run("xdotool", "getmouselocation", "--shell").split())
        if (pointer["X"], pointer["Y"]) != ("3", "5"):
            found.append(f"the pointer moved to {pointer['X']},{pointer['Y']}")
        for selection, text in SENTINELS.items():
            got = subprocess.run(["xclip", "-o", "-selection", selection], env=self.env, capture_output=True,
                                 text=True, timeout=10).stdout  # fmt: skip
            if got != text:
                found.append(f"the {selection} selection became {got[:40]!r}")
        size = tuple(int(n) for n in self.run("xdotool", "getdisplaygeometry").split())
        if size != GEOMETRY:
            found.append(f"the screen became {size}")
        return found

    def close(self) -> None:
        for helper in self._helpers:
            helper.kill()
            helper.wait()
        # The sentinels' owners (xclip forks away; it ends when its display does, but not at once):
        # this display's only, not those of another test's X server running beside.
        for pid in procs.on_display("xclip", self.env["DISPLAY"]):
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGTERM)
        self.xvnc.terminate()
        try:
            self.xvnc.wait(10)
        except subprocess.TimeoutExpired:
            self.xvnc.kill()
            self.xvnc.wait()
        shutil.rmtree(self.dir, ignore_errors=True)


@dataclass
class Outcome:
    refused: str = ""  # the gate's reason to close, if it closed
    server_error: str = ""  # rfb_output could not frame what Xvnc sent (must never happen)
    cut_texts_left_out: int = 0
    received: bytearray = field(default_factory=bytearray)


def run_case(
    path: str, chunks: list[bytes], allowed: frozenset[Kind] = WATCHING, raw: bool = False
) -> Outcome:
    """One viewer connection to Xvnc at ``path`` through the gate (``raw``: straight, no gate)."""
    gate = Gate(guest=True)
    replies = ServerStream(gate.session)
    outcome = Outcome()
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.connect(path)
    try:
        for chunk in chunks:
            if raw:
                sock.sendall(chunk)
                continue
            admitted = gate.admit(chunk, allowed)
            if admitted.data:
                sock.sendall(admitted.data)
            _drain(sock, replies, outcome)
            if admitted.refusal:
                outcome.refused = admitted.refusal
                break
        # Half-close and read to the end: Xvnc has then read and acted on every byte it got (closing
        # at once instead makes it drop the connection on its first failed write, unread).
        sock.shutdown(socket.SHUT_WR)
        _drain(sock, replies, outcome, until_closed=True)
    except (BrokenPipeError, ConnectionResetError):
        pass  # Xvnc ended the connection itself (a message it refuses): nothing more can be sent
    finally:
        sock.close()
    outcome.cut_texts_left_out = replies.left_out
    return outcome


def _drain(sock: socket.socket, replies: ServerStream, outcome: Outcome, until_closed: bool = False) -> None:
    """Read what Xvnc has sent so far (``until_closed``: until it closes, at most 5 s)."""
    sock.settimeout(5.0 if until_closed else 0.0)
    while True:
        try:
            data = sock.recv(1 << 20)
        except (BlockingIOError, TimeoutError, ConnectionResetError):
            return
        if not data:
            return
        if outcome.server_error:
            continue
        try:
            outcome.received += replies.feed(data)
        except ProtocolError as e:
            outcome.server_error = str(e)


# --- the streams: official and unofficial handshakes, every message type, lengths that lie ---------

OFFICIAL = {b"RFB 003.008\n": 8, b"RFB 003.007\n": 7, b"RFB 003.003\n": 3}
VERSIONS = [b"RFB 003.008\n"] * 6 + [b"RFB 003.007\n", b"RFB 003.003\n"] * 2 + [
    b"RFB 003.004\n", b"RFB 003.005\n", b"RFB 003.006\n", b"RFB 003.009\n", b"RFB 003.889\n",
    b"RFB 003.0a8\n", b"RFB 004.001\n", b"RFB 003.-08\n", b"RFB  03.008\n", b"RFB 003.008\r",
]  # fmt: skip
LETTERS = list(range(0x61, 0x7B))


# A watcher's messages that the gate drops or passes (the connection goes on), and those that end it.
QUIET = ["key", "pointer", "encodings", "smuggle", "request", "fence", "cu", "size", "xvp", "qemu"]
FATAL = ["cut", "ext_cut", "format", "noise", "badqemu"]


def _message(rng: random.Random, hostile: bool) -> bytes:
    kind = rng.choice(QUIET + FATAL if hostile else QUIET)
    if kind == "fence" and not hostile:
        return struct.pack(">BxxxIB", 248, rng.randrange(2**32), 8) + os.urandom(8)
    if kind == "key":
        return struct.pack(">BBxxI", 4, rng.choice([0, 1]), rng.choice(LETTERS))
    if kind == "pointer":
        return struct.pack(">BBHH", 5, rng.randrange(8), rng.randrange(1024), rng.randrange(768))
    if kind == "cut":
        text = f"INJECTED-{rng.randrange(10**6)}".encode()
        return struct.pack(">BxxxI", 6, len(text)) + text
    if kind == "ext_cut":  # extended clipboard: provide, UTF-8 (zlib data that may not even inflate)
        body = struct.pack(">I", 0x10000001) + os.urandom(rng.randrange(0, 40))
        return struct.pack(">Bxxxi", 6, -len(body)) + body
    if kind == "encodings":
        known = [7, 16, 0, 1, 5, -260, -223, -224, -239, -308, -312, -313, -1063131698]
        encs = [rng.choice([*known, rng.randrange(-(2**31), 2**31)]) for _ in range(rng.randrange(0, 30))]
        return struct.pack(f">BxH{len(encs)}i", 2, len(encs), *encs)
    if kind == "smuggle":  # an allowed message whose body Xvnc, read one byte apart, takes for input
        inner = b"".join(
            rng.choice([struct.pack(">BBxxI", 4, 1, c), struct.pack(">BBHH", 5, 1, 500, 400),
                        struct.pack(">BxxxI", 6, 6) + b"SMUGGL"])
            for c in rng.choices(LETTERS, k=rng.randrange(1, 12))
        )  # fmt: skip
        pad = (-len(inner) - rng.randrange(0, 4)) % 4
        inner = bytes(rng.randrange(0, 4)) + inner + bytes(pad)
        return struct.pack(">BxH", 2, len(inner) // 4) + inner[: len(inner) // 4 * 4]
    if kind == "request":
        return struct.pack(
            ">BBHHHH", 3, rng.choice([0, 1]), 0, 0, rng.randrange(1, 1024), rng.randrange(1, 768)
        )
    if kind == "format":
        bpp = rng.choice([8, 16, 32, 24, 1])
        true_colour = rng.choice([0, 1, 1])
        pf = struct.pack(">BBBBHHHBBBxxx", bpp, min(bpp, 24), 0, true_colour, 255, 255, 255, 16, 8, 0)
        return b"\x00\x00\x00\x00" + pf
    if kind == "fence":
        n = rng.choice([0, 4, 64, 65, 200])
        return struct.pack(">BxxxIB", 248, rng.randrange(2**32), n) + os.urandom(n)
    if kind == "cu":
        return struct.pack(">BBHHHH", 150, rng.choice([0, 1]), 0, 0, 1024, 768)
    if kind == "size":
        return struct.pack(">BxHHBx", 251, 800, 600, 1) + struct.pack(">IHHHHI", 0, 0, 0, 800, 600, 0)
    if kind == "xvp":
        return struct.pack(">BxBB", 250, 1, rng.choice([2, 3, 4]))
    if kind == "qemu":
        return struct.pack(">BBHII", 255, 0, 1, rng.choice(LETTERS), 30)
    if kind == "badqemu":
        return struct.pack(">BBHII", 255, rng.randrange(1, 256), 1, 0x61, 30)
    return os.urandom(rng.randrange(1, 16))  # noise


def case(rng: random.Random) -> list[bytes]:
    """One adversarial stream, already split into the chunks (websocket frames) it arrives in."""
    hostile = rng.random() < 0.5
    version = rng.choice(VERSIONS) if hostile else rng.choice(list(OFFICIAL))
    parts = [version]
    if not hostile:  # a well-formed handshake: the stream runs on, and every message is read by Xvnc
        parts.append(b"" if version == b"RFB 003.003\n" else b"\x01")
    elif rng.random() < 0.85:  # a security choice (None); 3.3 has none, and a liar may send it anyway
        parts.append(rng.choice([b"\x01"] * 8 + [b"\x02", b"\x00"]))
    parts.append(rng.choice([b"\x01", b"\x00"]))  # ClientInit: shared or not
    if rng.random() < 0.7:  # noVNC's order: its pixel format first
        parts.append(
            b"\x00\x00\x00\x00" + struct.pack(">BBBBHHHBBBxxx", 32, 24, 0, 1, 255, 255, 255, 16, 8, 0)
        )
    parts += [_message(rng, hostile) for _ in range(rng.randrange(1, 16))]
    data = b"".join(parts)
    cuts = sorted(rng.sample(range(1, len(data)), min(len(data) - 1, rng.randrange(0, 8))))
    return [data[a:b] for a, b in zip([0, *cuts], [*cuts, len(data)], strict=True)]


def cases(seed: int, count: int) -> Iterator[list[bytes]]:
    rng = random.Random(seed)
    for _ in range(count):
        yield case(rng)


# The review's bypass: RFB 3.5, which Xvnc reads as 3.3 (no security choice follows), so Xvnc takes the
# next byte for ClientInit and the one after for a message, where a gate that expected a security
# choice is one byte behind. Xvnc reads a PointerEvent and two KeyEvents; that gate read a SetEncodings
# (whose body they are) and let it through.
def review_bypass() -> list[bytes]:
    keys = struct.pack(">BBxxI", 4, 1, 0x71) + struct.pack(">BBxxI", 4, 0, 0x71)
    smuggled = bytes([5, 2, 0, 0, 5, 0]) + keys + bytes(3)  # Xvnc: pointer, keys; the gate: SetEncodings
    return [b"RFB 003.005\n", b"\x01", smuggled]
