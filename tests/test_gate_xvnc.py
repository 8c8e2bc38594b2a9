"""The view-only gate against a real Xvnc: what a watcher sends changes nothing on the owner's display.

Every case is a real connection to a real Xvnc through the gate; the verdict comes from the X display
(tests/xvnc_differential.py), never from the gate's own reading of the stream. JVNC_GATE_CASES sets
how many (CI: 10,000; benchmarks/gate_differential.py runs more).
"""

from __future__ import annotations

import asyncio
import os
import random
import struct
from collections.abc import Iterator

import pytest
from xvnc_differential import OwnersDisplay, case, cases, review_bypass, run_case, xvnc_binary

from jupyter_vnc.rfb_input import TYPING, WATCHING, Gate, Kind
from jupyter_vnc.rfb_output import ServerStream
from testkit.rfb import (
    DESKTOP_SIZE,
    EXTENDED_DESKTOP_SIZE,
    LAST_RECT,
    NOVNC_ENCODINGS,
    ByteStream,
    RFBClient,
)

CASES = int(os.environ.get("JVNC_GATE_CASES", "10000"))
BATCH = 100  # cases between two looks at the display: a change is then traced back to its batch


TURBOVNC = "/opt/TurboVNC/bin/Xvnc"


@pytest.fixture(scope="module", params=["tigervnc", "turbovnc"])
def display(request: pytest.FixtureRequest) -> Iterator[OwnersDisplay]:
    """The owner's display on each VNC server a desktop may run: TigerVNC (Debian's), and TurboVNC
    where it is installed (a site's nodes or image; no archive reachable here ships it)."""
    if request.param == "turbovnc" and not os.path.exists(TURBOVNC):
        pytest.skip(f"TurboVNC is not installed ({TURBOVNC}); the same cases run against TigerVNC")
    if request.param == "tigervnc" and xvnc_binary() is None:
        pytest.skip("no Xvnc on this machine (devstack/install installs TigerVNC)")
    owner = OwnersDisplay(TURBOVNC if request.param == "turbovnc" else xvnc_binary() or "")
    yield owner
    owner.close()


def test_the_checks_see_what_a_viewer_does(display: OwnersDisplay) -> None:
    """The display's checks catch keys, pointer and clipboard: sent straight to Xvnc, the review's
    bypass types and points; the same from someone given control through the gate types too."""
    run_case(display.socket, review_bypass(), raw=True)
    changes = display.changes()
    assert any("KeyPress" in c and "ButtonPress" in c for c in changes), changes
    display.reset()
    text = b"typed-in"
    typing = [b"RFB 003.008\n\x01\x01", struct.pack(">BBxxI", 4, 1, 0x61) + struct.pack(">BBxxI", 4, 0, 0x61),
              struct.pack(">BBHH", 5, 0, 700, 500), struct.pack(">BxxxI", 6, len(text)) + text]  # fmt: skip
    outcome = run_case(display.socket, typing, TYPING)
    assert not outcome.refused
    changes = display.changes()
    assert len(changes) >= 3, changes  # keys, the pointer, the clipboard
    display.reset()
    assert display.changes() == []


def test_the_reviews_bypass_is_refused_at_the_version(display: OwnersDisplay) -> None:
    outcome = run_case(display.socket, review_bypass(), WATCHING)
    assert "RFB version" in outcome.refused
    assert display.changes() == []


def test_thousands_of_hostile_watchers_change_nothing(display: OwnersDisplay) -> None:
    seed = int(os.environ.get("JVNC_GATE_SEED", "2112"))
    refused = passed = 0
    batch: list[list[bytes]] = []
    for n, chunks in enumerate(cases(seed, CASES), 1):
        outcome = run_case(display.socket, chunks, WATCHING)
        assert not outcome.server_error, (outcome.server_error, chunks)
        refused += bool(outcome.refused)
        passed += not outcome.refused
        batch.append(chunks)
        if n % BATCH == 0 or n == CASES:
            changes = display.changes()
            assert changes == [], f"seed {seed}, cases {n - len(batch) + 1}-{n}: {changes}"
            batch = []
    print(f"{CASES} watcher streams (seed {seed}): {passed} ran on, {refused} refused; display unchanged")
    assert passed > CASES // 10 and refused > CASES // 10  # both paths were exercised


def test_someone_given_control_still_cannot_resize_the_owners_screen(display: OwnersDisplay) -> None:
    rng = random.Random(7)
    for _ in range(300):
        chunks = case(rng)
        run_case(display.socket, chunks, TYPING)
    changes = display.changes()
    assert not any("screen" in c for c in changes), changes
    display.reset()


# --- the other way: what Xvnc sends a share recipient (rfb_output), the owner's clipboard left out ----


async def guest_client(path: str, allowed: frozenset[Kind]) -> tuple[RFBClient, ServerStream]:
    """An RFB client connected to Xvnc the way a share recipient's viewer is through the bridge: its
    messages through the gate, Xvnc's replies through rfb_output."""
    reader, writer = await asyncio.open_unix_connection(path)
    gate = Gate(guest=True)
    replies = ServerStream(gate.session)
    replies.clipboard = Kind.INPUT in allowed

    async def recv() -> bytes:
        while True:
            data = await reader.read(1 << 16)
            if not data:
                raise ConnectionError("Xvnc closed the connection")
            passed = replies.feed(data)
            if passed:
                return passed

    async def send(data: bytes) -> None:
        admitted = gate.admit(data, allowed)
        assert not admitted.refusal, admitted.refusal
        writer.write(admitted.data)
        await writer.drain()

    return RFBClient(ByteStream(recv, send)), replies


async def direct_client(path: str) -> RFBClient:
    reader, writer = await asyncio.open_unix_connection(path)

    async def send(data: bytes) -> None:
        writer.write(data)
        await writer.drain()

    return RFBClient(ByteStream(lambda: reader.read(1 << 16), send))


async def watch_while_the_owner_copies(display: OwnersDisplay, clients: list[RFBClient], rounds: int) -> None:
    """The owner copies (CLIPBOARD) and selects (PRIMARY) while her screen changes; each client reads
    its updates meanwhile: a reader that lost its place in the stream fails here."""
    for client in clients:
        await client.handshake()
        await client.set_pixel_format_32()
        await client.set_encodings(*NOVNC_ENCODINGS, DESKTOP_SIZE, LAST_RECT, EXTENDED_DESKTOP_SIZE)
        await client.request_update(incremental=False)
        await asyncio.wait_for(client.read_update(), 10)
    for i in range(rounds):
        selection = "clipboard" if i % 2 == 0 else "primary"
        await asyncio.to_thread(display.copy, selection, f"owner-secret-{i}")
        await asyncio.to_thread(
            display.run, "xdotool", "windowsize", display.window, str(400 + 37 * i), "300"
        )
        for client in clients:
            await client.request_update(incremental=True)
            await asyncio.wait_for(client.read_update(), 10)
    await asyncio.sleep(0.3)
    for client in clients:  # the last clipboard messages, and an update to read them in front of
        await asyncio.to_thread(display.run, "xdotool", "windowsize", display.window, "1024", "768")
        await client.request_update(incremental=False)
        await asyncio.wait_for(client.read_update(), 10)


async def test_a_watcher_sees_the_screen_but_never_the_owners_clipboard_or_selection(
    display: OwnersDisplay,
) -> None:
    watcher, left_out = await guest_client(display.socket, WATCHING)
    typist, _ = await guest_client(display.socket, TYPING)
    owner = await direct_client(display.socket)
    try:
        await watch_while_the_owner_copies(display, [watcher, typist, owner], rounds=8)
    finally:
        display.reset()
    secrets = {f"owner-secret-{i}".encode() for i in range(8)}
    assert secrets & set(owner.cut_texts), "Xvnc sent no clipboard at all: the check would prove nothing"
    assert secrets & set(typist.cut_texts), "someone given control gets the clipboard"
    assert any(t.startswith(b"owner-secret-1") for t in typist.cut_texts), "PRIMARY (odd rounds) too"
    assert watcher.cut_texts == []
    assert left_out.left_out >= len(secrets & set(owner.cut_texts))


@pytest.mark.parametrize(
    "pixel_format",
    [
        (32, 24, 255, 255, 255, 16, 8, 0),
        (16, 16, 31, 63, 31, 11, 5, 0),
        (8, 8, 7, 7, 3, 5, 2, 0),
        (32, 16, 31, 63, 31, 11, 5, 0),
    ],
    ids=["32-bit 888", "16-bit 565", "8-bit 332", "32-bit 565 (Tight: 4-byte pixels)"],
)
async def test_every_pixel_format_a_guest_may_ask_for_is_framed(
    display: OwnersDisplay, pixel_format: tuple[int, ...]
) -> None:
    """Tight sends 3-byte pixels only for 888 formats: a reader that assumed otherwise loses its place."""
    bpp, depth, *maxes_and_shifts = pixel_format
    reader, writer = await asyncio.open_unix_connection(display.socket)
    gate = Gate(guest=True)
    replies = ServerStream(gate.session)
    sent = (
        b"RFB 003.008\n\x01\x01"
        + b"\x00\x00\x00\x00"
        + struct.pack(">BBBBHHHBBBxxx", bpp, depth, 0, 1, *maxes_and_shifts)
        + struct.pack(">BxH6i", 2, 6, 7, 16, 1, 0, -32 + 2, -223)
    )
    forwarded = 0
    try:
        writer.write(gate.admit(sent, WATCHING).data)
        for i in range(6):
            await asyncio.to_thread(
                display.run, "xdotool", "windowsize", display.window, str(300 + 50 * i), "500"
            )
            writer.write(gate.admit(struct.pack(">BBHHHH", 3, i > 0, 0, 0, 1024, 768), WATCHING).data)
            await writer.drain()
            await asyncio.sleep(0.15)
            while True:
                try:
                    data = await asyncio.wait_for(reader.read(1 << 20), 0.1)
                except TimeoutError:
                    break
                forwarded += len(replies.feed(data))  # raises if the stream cannot be followed
    finally:
        writer.close()
        display.reset()
    assert forwarded > 1_000, forwarded  # ServerInit and a few small updates at the least
