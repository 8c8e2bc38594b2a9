"""Framing what a viewer sends (jupyter_vnc.rfb_input): whole messages out of any split of the stream."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from jupyter_vnc.rfb_input import (
    GUEST_LIMITS,
    MAX_CUT_TEXT,
    Admitted,
    ClientStream,
    Gate,
    Kind,
    ProtocolError,
    pixel_sizes,
)
from jupyter_vnc.rfb_output import ServerStream
from jupyter_vnc.sharing import Role

# What each role's viewer may get through to the desktop, written here from what the roles promise (a
# watcher sees: RFC 6143's handshake and the messages that ask for pixels; someone given control also
# types, points and pastes; only the owner or an admin may change the desktop itself), never imported
# from the product: a wrong table there must fail here. The strategies below sort every message type
# into these kinds from RFC 6143 section 7.5 and its registered extensions.
WATCHING = frozenset({Kind.HANDSHAKE, Kind.CONTROL})
TYPING = WATCHING | {Kind.INPUT}
EVERYTHING = TYPING | {Kind.CHANGE}


def test_each_roles_table_is_what_the_role_promises() -> None:
    assert Role.VIEW.sends == WATCHING
    assert Role.CONTROL.sends == TYPING
    assert Role.OWNER.sends == Role.ADMIN.sends == EVERYTHING
    assert Role.CONTROL.narrowed(view_only=True).sends == WATCHING


HANDSHAKE = [b"RFB 003.008\n", b"\x01", b"\x01"]  # version, security None, ClientInit (shared)

u16 = st.integers(0, 0xFFFF)
u32 = st.integers(0, 0xFFFFFFFF)
messages = st.one_of(
    st.binary(min_size=16, max_size=16).map(lambda pf: (Kind.CONTROL, b"\x00\x00\x00\x00" + pf)),
    st.lists(st.integers(-(2**31), 2**31 - 1), max_size=20).map(
        lambda encs: (
            Kind.CONTROL,
            struct.pack(">BxH", 2, len(encs)) + b"".join(struct.pack(">i", e) for e in encs),
        )
    ),
    st.tuples(st.booleans(), u16, u16, u16, u16).map(lambda t: (Kind.CONTROL, struct.pack(">BBHHHH", 3, *t))),
    st.tuples(st.booleans(), u32).map(lambda t: (Kind.INPUT, struct.pack(">BBxxI", 4, *t))),
    st.tuples(st.integers(0, 255), u16, u16).map(lambda t: (Kind.INPUT, struct.pack(">BBHH", 5, *t))),
    st.binary(max_size=300).map(lambda text: (Kind.INPUT, struct.pack(">BxxxI", 6, len(text)) + text)),
    st.binary(max_size=60).map(lambda ext: (Kind.INPUT, struct.pack(">Bxxxi", 6, -len(ext)) + ext)),
    st.tuples(st.booleans(), u16, u16, u16, u16).map(
        lambda t: (Kind.CONTROL, struct.pack(">BBHHHH", 150, *t))
    ),
    st.binary(max_size=64).map(lambda p: (Kind.CONTROL, struct.pack(">BxxxIB", 248, 7, len(p)) + p)),
    st.tuples(st.integers(0, 255), st.integers(0, 255)).map(
        lambda t: (Kind.CHANGE, struct.pack(">BxBB", 250, *t))
    ),
    st.lists(st.binary(min_size=16, max_size=16), max_size=4).map(
        lambda s: (Kind.CHANGE, struct.pack(">BxHHBx", 251, 1920, 1080, len(s)) + b"".join(s))
    ),
    st.tuples(u16, u32, u32).map(lambda t: (Kind.INPUT, struct.pack(">BBHII", 255, 0, *t))),
)


def feed_in_pieces(stream: ClientStream, data: bytes, cuts: list[int]) -> list:
    out, start = [], 0
    for cut in [*sorted(set(c % (len(data) + 1) for c in cuts)), len(data)]:
        out += stream.feed(data[start:cut])
        start = cut
    return out


@settings(max_examples=5000, deadline=None)
@given(st.lists(messages, max_size=12), st.lists(st.integers(0, 10_000), max_size=30))
def test_any_split_gives_back_the_same_messages_byte_for_byte(sent: list, cuts: list[int]) -> None:
    data = b"".join(HANDSHAKE) + b"".join(m for _, m in sent)
    got = feed_in_pieces(ClientStream(), data, cuts)
    assert [m.data for m in got] == HANDSHAKE + [m for _, m in sent]
    assert [m.kind for m in got] == [Kind.HANDSHAKE] * 3 + [k for k, _ in sent]


@settings(max_examples=2000, deadline=None)
@given(st.lists(messages, min_size=1, max_size=6), st.data())
def test_a_truncated_message_is_held_back_never_passed_half(sent: list, data: st.DataObject) -> None:
    whole = b"".join(HANDSHAKE) + b"".join(m for _, m in sent)
    last = sent[-1][1]
    cut = data.draw(st.integers(1, len(last) - 1)) if len(last) > 1 else 0
    stream = ClientStream()
    got = stream.feed(whole[: len(whole) - cut])
    assert len(got) == 3 + len(sent) - (1 if cut else 0)
    assert stream.pending == (len(last) - cut if cut else 0)


@settings(max_examples=1000, deadline=None)
@given(
    st.lists(messages, max_size=4),
    st.integers(0, 255).filter(lambda t: t not in {0, 2, 3, 4, 5, 6, 150, 248, 250, 251, 255}),
)
def test_an_unknown_message_type_stops_the_stream(sent: list, unknown: int) -> None:
    stream = ClientStream()
    stream.feed(b"".join(HANDSHAKE) + b"".join(m for _, m in sent))
    with pytest.raises(ProtocolError, match=f"unknown RFB client message type {unknown}"):
        stream.feed(bytes([unknown]) + b"\x00" * 30)


@pytest.mark.unit
def test_an_oversized_clipboard_is_refused_before_it_is_buffered() -> None:
    stream = ClientStream()
    stream.feed(b"".join(HANDSHAKE))
    with pytest.raises(ProtocolError, match="clipboard"):
        stream.feed(struct.pack(">BxxxI", 6, MAX_CUT_TEXT + 1))
    assert stream.pending == 8  # the header only: nothing of the text was waited for


@pytest.mark.unit
@pytest.mark.parametrize(
    "version",
    [b"RFB 003.004\n", b"RFB 003.005\n", b"RFB 003.006\n", b"RFB 003.009\n", b"RFB 003.889\n",
     b"RFB 003.0a8\n", b"RFB 004.000\n", b"RFB 003.-08\n", b"RFB  03.008\n", b"RFB 003.008\r"],
)  # fmt: skip
def test_only_the_three_official_versions_are_framed(version: bytes) -> None:
    """TigerVNC reads 3.4-3.6 (and anything it cannot parse as 3.7+) as 3.3, which has no security
    choice: a reader that guessed otherwise would frame the rest one byte apart from the desktop."""
    with pytest.raises(ProtocolError, match="RFB version"):
        ClientStream().feed(version)


@pytest.mark.unit
def test_vnc_auth_and_protocol_3_3_handshakes_are_framed() -> None:
    auth = ClientStream().feed(
        b"RFB 003.008\n\x02" + b"r" * 16 + b"\x01" + struct.pack(">BBHH", 5, 1, 10, 10)
    )
    assert [m.kind for m in auth] == [Kind.HANDSHAKE] * 4 + [Kind.INPUT]
    assert [m.type for m in auth] == [-1] * 4 + [5]  # the handshake has no RFB message type
    old = ClientStream().feed(b"RFB 003.003\n\x01" + struct.pack(">BBHHHH", 3, 1, 0, 0, 640, 480))
    assert [m.kind for m in old] == [Kind.HANDSHAKE] * 2 + [Kind.CONTROL]
    assert [m.type for m in old] == [-1, -1, 3]
    changes = ClientStream().feed(
        b"".join(HANDSHAKE) + struct.pack(">BxBB", 250, 1, 2) + struct.pack(">BxHHBx", 251, 800, 600, 0)
    )
    assert [(m.kind, m.type) for m in changes[3:]] == [(Kind.CHANGE, 250), (Kind.CHANGE, 251)]
    with pytest.raises(ProtocolError, match="security type 19"):
        ClientStream().feed(b"RFB 003.008\n\x13")


# --- the gate: what a watcher's and an owner's connection let through to the desktop ------------------
# (tests/test_gate_xvnc.py holds the same streams against a real Xvnc, the reader that counts)

PIXEL_32 = struct.pack(">BBBBHHHBBBxxx", 32, 24, 0, 1, 255, 255, 255, 16, 8, 0)
PIXEL_16 = struct.pack(">BBBBHHHBBBxxx", 16, 16, 0, 1, 31, 63, 31, 11, 5, 0)
# A share recipient's stream as noVNC sends it: its format once, first, before any update request.
GUEST_HANDSHAKE = [*HANDSHAKE, b"\x00\x00\x00\x00" + PIXEL_32]
guest_messages = messages.filter(lambda m: m[1][0] != 0)  # SetPixelFormat: only in GUEST_HANDSHAKE


def gate_in_pieces(
    gate: Gate, data: bytes, cuts: list[int], allowed: frozenset[Kind]
) -> tuple[bytes, list[str]]:
    out, refusals, start = b"", [], 0
    for cut in [*sorted(set(c % (len(data) + 1) for c in cuts)), len(data)]:
        admitted = gate.admit(data[start:cut], allowed)
        out += admitted.data
        refusals += [admitted.refusal] if admitted.refusal else []
        start = cut
    return out, refusals


def kinds_in(data: bytes) -> list[Kind]:
    return [m.kind for m in ClientStream().feed(data)]


def types_in(data: bytes) -> list[int]:
    return [m.type for m in ClientStream().feed(data)]


# What a share recipient may ask the desktop for: the encodings whose replies rfb_output frames.
FRAMED = {0, 1, 7, 16, -260, -223, -224, -239, -258, -261, -307, -308, -312, -313, 0x574D5668,
          *range(-32, -22), *range(-256, -246)}  # fmt: skip


def encodings_in(data: bytes) -> set[int]:
    found: set[int] = set()
    for m in ClientStream().feed(data):
        if m.type == 2:
            found |= set(struct.unpack(f">{(len(m.data) - 4) // 4}i", m.data[4:]))
    return found


@settings(max_examples=5000, deadline=None)
@given(st.lists(messages, max_size=12), st.lists(st.integers(0, 10_000), max_size=30))
def test_the_owner_gets_every_byte(sent: list, cuts: list[int]) -> None:
    data = b"".join(HANDSHAKE) + b"".join(m for _, m in sent)
    owner, refusals = gate_in_pieces(Gate(), data, cuts, EVERYTHING)
    assert owner == data and refusals == []


@settings(max_examples=5000, deadline=None)
@given(st.lists(guest_messages, max_size=12), st.lists(st.integers(0, 10_000), max_size=30))
def test_a_watcher_never_gets_input_to_the_desktop(sent: list, cuts: list[int]) -> None:
    data = b"".join(GUEST_HANDSHAKE) + b"".join(m for _, m in sent)
    watched, refusals = gate_in_pieces(Gate(guest=True), data, cuts, WATCHING)
    assert set(kinds_in(watched)) <= WATCHING  # the desktop's side reads no key, pointer or clipboard
    assert encodings_in(watched) <= FRAMED
    clipboard = next((i for i, (_, m) in enumerate(sent) if m[0] == 6), None)
    if clipboard is None:
        assert refusals == []
        assert types_in(watched) == types_in(b"".join(GUEST_HANDSHAKE)) + [
            m[0] for k, m in sent if k in WATCHING
        ]
    else:  # a watcher's clipboard is refused at its header: the connection ends there
        assert refusals
        assert types_in(watched) == types_in(b"".join(GUEST_HANDSHAKE)) + [
            m[0] for k, m in sent[:clipboard] if k in WATCHING
        ]


@settings(max_examples=3000, deadline=None)
@given(st.lists(guest_messages, max_size=12), st.lists(st.integers(0, 10_000), max_size=30))
def test_control_types_and_points_but_does_not_resize(sent: list, cuts: list[int]) -> None:
    data = b"".join(GUEST_HANDSHAKE) + b"".join(m for _, m in sent)
    typed, refusals = gate_in_pieces(Gate(guest=True), data, cuts, TYPING)
    assert refusals == []
    assert types_in(typed) == types_in(b"".join(GUEST_HANDSHAKE)) + [m[0] for k, m in sent if k in TYPING]
    assert Kind.CHANGE not in kinds_in(typed)


UNKNOWN_TYPES = st.integers(0, 255).filter(lambda t: t not in {0, 2, 3, 4, 5, 6, 150, 248, 250, 251, 255})


@settings(max_examples=2000, deadline=None)
@given(
    st.lists(guest_messages.filter(lambda m: m[1][0] != 6), max_size=6),
    UNKNOWN_TYPES,
    st.binary(max_size=40),
    st.lists(st.integers(0, 10_000), max_size=10),
)
def test_an_unframeable_stream_ends_a_watcher_and_passes_through_for_the_owner(
    sent: list, unknown: int, tail: bytes, cuts: list[int]
) -> None:
    data = b"".join(GUEST_HANDSHAKE) + b"".join(m for _, m in sent) + bytes([unknown]) + tail
    owner, refusals = gate_in_pieces(Gate(), data, cuts, EVERYTHING)
    assert owner == data and refusals == []
    watched, refusals = gate_in_pieces(Gate(guest=True), data, cuts, WATCHING)
    assert refusals, "a watcher's unframeable stream must end the connection"
    assert types_in(watched) == types_in(b"".join(GUEST_HANDSHAKE)) + [m[0] for k, m in sent if k in WATCHING]


@pytest.mark.unit
def test_what_a_guest_may_not_make_the_server_hold_or_misread() -> None:
    start = b"".join(GUEST_HANDSHAKE)
    # Clipboards: a watcher's is refused at its 8-byte header, someone with control's above Xvnc's limit.
    for allowed, length in ((WATCHING, 5), (TYPING, GUEST_LIMITS.cut_text + 1)):
        admitted = Gate(guest=True).admit(start + struct.pack(">BxxxI", 6, length), allowed)
        assert admitted.refusal and admitted.data == start
    assert not Gate(guest=True).admit(start + struct.pack(">BxxxI", 6, 5) + b"hello", TYPING).refusal
    # Hundreds of encodings, a fence longer than Xvnc reads, VNC authentication, a late pixel format.
    refused = [
        start + struct.pack(">BxH", 2, 1000),
        start + struct.pack(">BxxxIB", 248, 0, 65) + b"f" * 65,
        b"RFB 003.008\n\x02",
        start + struct.pack(">BBHHHH", 3, 1, 0, 0, 10, 10) + b"\x00\x00\x00\x00" + PIXEL_16,
        b"".join(HANDSHAKE)
        + b"\x00\x00\x00\x00"
        + struct.pack(">BBBBHHHBBBxxx", 8, 8, 0, 0, 0, 0, 0, 0, 0, 0),
    ]
    for data in refused:
        assert Gate(guest=True).admit(data, WATCHING).refusal, data
    late = start + struct.pack(">BBHHHH", 3, 1, 0, 0, 10, 10) + b"\x00\x00\x00\x00" + PIXEL_16
    assert (
        Gate(guest=True).admit(late, WATCHING).refusal
        == "a pixel format of another size after updates were requested"
    )
    continuous = start + struct.pack(">BBHHHH", 150, 1, 0, 0, 10, 10) + b"\x00\x00\x00\x00" + PIXEL_16
    assert Gate(guest=True).admit(continuous, WATCHING).refusal  # continuous updates were asked for too
    # The same format again, after updates were asked for, frames alike and passes.
    again = start + struct.pack(">BBHHHH", 3, 1, 0, 0, 10, 10) + b"\x00\x00\x00\x00" + PIXEL_32
    assert Gate(guest=True).admit(again, WATCHING) == Admitted(again, False)
    # The owner's own stream is never refused for any of it: it passes on (unread where unframeable,
    # whole messages once complete).
    for data in refused:
        passed = Gate().admit(data, EVERYTHING)
        assert data.startswith(passed.data) and not passed.refusal


@pytest.mark.unit
def test_a_guests_encodings_are_narrowed_to_those_framed_for_them() -> None:
    novnc = [7, -260, 16, 5, 2, 1, 0, -26, -254, -223, -224, -258, -308, -309, -312, -313, -307,
             -1063131698, 0x574D5664, -239, -261, 0x574D5668, -316]  # fmt: skip
    message = struct.pack(f">BxH{len(novnc)}i", 2, len(novnc), *novnc)
    watched = Gate(guest=True).admit(b"".join(GUEST_HANDSHAKE) + message, WATCHING).data
    assert encodings_in(watched) == set(novnc) & FRAMED
    typed = Gate(guest=True).admit(b"".join(GUEST_HANDSHAKE) + message, TYPING).data
    assert encodings_in(typed) == (set(novnc) & FRAMED) | {-1063131698}  # the extended clipboard too
    owner = Gate().admit(b"".join(HANDSHAKE) + message, EVERYTHING).data
    assert encodings_in(owner) == set(novnc)


@pytest.mark.unit
def test_a_ten_megabyte_frame_is_framed_in_linear_time() -> None:
    """The reader cuts its buffer once per call: a frame of a million small messages costs a million
    steps, not a million times its length."""
    requests = struct.pack(">BBHHHH", 3, 1, 0, 0, 10, 10) * 1_000_000
    gate = Gate()
    gate.admit(b"".join(HANDSHAKE), EVERYTHING)
    t0 = __import__("time").perf_counter()
    for start in range(0, len(requests), 64 * 1024):
        gate.admit(requests[start : start + 64 * 1024], EVERYTHING)
    # Linear takes seconds (half a minute with mutmut's tracing on a loaded machine); quadratic, hours.
    assert __import__("time").perf_counter() - t0 < 150


@pytest.mark.unit
def test_an_owners_stream_the_gate_cannot_read_goes_on_and_counts_as_activity() -> None:
    """A viewer that speaks a message type the gate does not know (a newer noVNC's): the owner's bytes
    pass unread from there, and every one counts as activity, so a desktop in use is never culled as
    idle. Message type 200 is not in RFC 6143's client-to-server list."""
    gate = Gate()
    handshake = b"RFB 003.008\n" + b"\x01" + b"\x01"  # version, security None, ClientInit (shared)
    assert gate.admit(handshake, EVERYTHING).data == handshake
    unknown = bytes([200, 0, 0, 0, 7, 7])
    first = gate.admit(unknown, EVERYTHING)
    assert first == Admitted(unknown, True) and not gate.following
    update_request = bytes([3, 1]) + struct.pack(">HHHH", 0, 0, 64, 64)  # no input, if it were read
    later = gate.admit(update_request, EVERYTHING)
    assert later.data == update_request and later.input


# RFC 6143 section 7.4, PIXEL_FORMAT: bits-per-pixel, depth, big-endian, true-colour, red/green/blue-max
# (U16), red/green/blue-shift, 3 bytes of padding. Only true colour at 8, 16 or 32 bits is framed; Tight
# (RFC 6143's registry, TigerVNC's PixelFormat::is888) then sends 3 bytes a pixel for 32-bit 888.
def pixel_format(
    bpp: int, depth: int, true_colour: int, maxes: tuple[int, int, int], shifts: tuple[int, int, int]
) -> bytes:
    return struct.pack(">BBBBHHHBBBxxx", bpp, depth, 0, true_colour, *maxes, *shifts)


@pytest.mark.unit
@pytest.mark.parametrize(
    ("pf", "sizes"),
    [
        (pixel_format(8, 8, 1, (7, 7, 3), (0, 3, 6)), (1, 1)),  # BGR233
        (pixel_format(16, 16, 1, (31, 63, 31), (11, 5, 0)), (2, 2)),  # RGB565
        (pixel_format(32, 24, 1, (255, 255, 255), (16, 8, 0)), (4, 3)),  # noVNC's: 888, Tight sends 3
        (pixel_format(32, 24, 1, (255, 255, 255), (0, 8, 16)), (4, 3)),
        (pixel_format(32, 32, 1, (255, 255, 255), (16, 8, 0)), (4, 4)),  # depth 32: not 888
        (pixel_format(32, 24, 1, (255, 255, 127), (16, 8, 0)), (4, 4)),
        (pixel_format(32, 24, 1, (255, 255, 255), (20, 12, 4)), (4, 4)),  # not on byte boundaries
        (pixel_format(32, 24, 1, (255, 255, 255), (16, 12, 0)), (4, 4)),
        (pixel_format(32, 24, 1, (255, 255, 255), (20, 8, 0)), (4, 4)),
    ],
)
def test_the_pixel_formats_a_viewer_may_ask_for(pf: bytes, sizes: tuple[int, int]) -> None:
    assert pixel_sizes(pf) == sizes


@pytest.mark.unit
@pytest.mark.parametrize(
    ("pf", "message"),
    [
        (pixel_format(8, 8, 0, (0, 0, 0), (0, 0, 0)), "pixel format of 8 bits with a colour map"),
        (pixel_format(24, 24, 1, (255, 255, 255), (16, 8, 0)), "pixel format of 24 bits"),
        (pixel_format(9, 8, 1, (7, 7, 3), (0, 3, 6)), "pixel format of 9 bits"),
        (pixel_format(17, 16, 1, (31, 63, 31), (11, 5, 0)), "pixel format of 17 bits"),
    ],
)
def test_any_other_pixel_format_is_refused_saying_why(pf: bytes, message: str) -> None:
    with pytest.raises(ProtocolError) as raised:
        pixel_sizes(pf)
    assert str(raised.value) == message


@pytest.mark.unit
def test_the_gate_records_what_the_viewer_negotiated_for_the_desktops_side() -> None:
    """rfb_output frames the desktop's replies to a share recipient by the version and pixel format
    their viewer asked for: the gate keeps both in ``session``, the one the bridge hands to it."""
    gate = Gate(guest=True)
    gate.admit(b"".join(GUEST_HANDSHAKE), WATCHING)
    assert (gate.session.minor, gate.session.bytes_per_pixel, gate.session.tight_pixel) == (8, 4, 3)
    old = Gate()
    old.admit(b"RFB 003.003\n\x01", EVERYTHING)
    assert old.session.minor == 3


@pytest.mark.unit
def test_an_owners_large_clipboard_is_framed_and_her_viewer_still_read() -> None:
    """The owner's limits are not a guest's: a 300 KiB paste (a guest's limit is 256 KiB) and a viewer
    with VNC authentication are framed, so her update requests still count as no input."""
    paste = struct.pack(">BxxxI", 6, 300 * 1024) + b"p" * (300 * 1024)
    update = struct.pack(">BBHHHH", 3, 1, 0, 0, 10, 10)
    for handshake in (b"".join(HANDSHAKE), b"RFB 003.008\n\x02" + b"r" * 16 + b"\x01"):
        gate = Gate()
        gate.admit(handshake, EVERYTHING)
        assert gate.admit(paste, EVERYTHING) == Admitted(paste, True)
        assert gate.admit(update, EVERYTHING) == Admitted(update, False)
        assert gate.following


@pytest.mark.unit
def test_a_stream_that_went_unread_is_refused_once_its_viewer_may_no_longer_do_everything() -> None:
    """An admin's stream passed on unread, then their role narrowed (the hub took the right back):
    nothing more of it reaches the desktop, and the connection is to end."""
    gate = Gate()
    gate.admit(b"".join(HANDSHAKE) + bytes([200, 1, 2, 3]), EVERYTHING)
    assert not gate.following
    refused = gate.admit(struct.pack(">BBHH", 5, 1, 10, 10), WATCHING)
    assert refused == Admitted(b"", False, "the stream is no longer framed; only its owner may go on")
    empty = Gate()
    empty.admit(b"".join(HANDSHAKE) + bytes([200]), EVERYTHING)
    assert empty.admit(b"", EVERYTHING) == Admitted(b"", False)  # nothing sent: no activity


@pytest.mark.unit
@pytest.mark.parametrize(("pf", "bpp", "tight"), [(PIXEL_16, 2, 2), (PIXEL_32, 4, 3)])
def test_a_watchers_view_is_framed_in_the_desktops_own_format_when_the_viewer_sets_none(
    pf: bytes, bpp: int, tight: int
) -> None:
    """A viewer that never sends SetPixelFormat gets the desktop's format (RFC 6143 7.3.2, ServerInit):
    the session takes it from there, and rfb_output frames the watcher's updates by it, leaving out
    only the owner's clipboard."""
    gate = Gate(guest=True)
    gate.admit(b"".join(HANDSHAKE), WATCHING)  # no SetPixelFormat
    watcher = ServerStream(gate.session)
    init = (
        b"RFB 003.008\n"
        + b"\x01\x01"
        + bytes(4)
        + struct.pack(">HH", 2, 2)
        + pf
        + struct.pack(">I", 4)
        + b"desk"
    )
    update = b"\x00\x00" + struct.pack(">H", 2) + struct.pack(">HHHHi", 0, 0, 2, 2, 0) + b"p" * (4 * bpp)
    update += struct.pack(">HHHHi", 0, 0, 2, 2, 7) + b"\x80" + b"f" * tight  # Tight fill: one pixel
    clipboard = b"\x03\x00\x00\x00" + struct.pack(">I", 6) + b"secret"
    bell = b"\x02"
    assert watcher.feed(init + update + clipboard + bell) == init + update + bell
    assert (gate.session.bytes_per_pixel, gate.session.tight_pixel, watcher.left_out) == (bpp, tight, 1)


@pytest.mark.unit
def test_what_passed_before_an_unframeable_byte_still_counts_and_the_refusal_says_why() -> None:
    start = b"".join(GUEST_HANDSHAKE)
    key = struct.pack(">BBxxI", 4, 1, ord("a"))
    typed = Gate(guest=True).admit(start + key + bytes([200, 0, 0]), TYPING)
    assert typed == Admitted(start + key, True, "unknown RFB client message type 200")
    gate = Gate(guest=True)
    gate.admit(start, WATCHING)
    assert gate.admit(key[:5], TYPING) == Admitted(b"", False)  # half a message: held back, no input yet
    assert gate.admit(key[5:], TYPING) == Admitted(key, True)


@pytest.mark.unit
def test_a_guests_limits_are_inclusive_and_each_refusal_says_why() -> None:
    start = b"".join(GUEST_HANDSHAKE)
    most = struct.pack(">BxH", 2, 256) + struct.pack(">i", 0) * 256  # Raw, 256 times: at the limit
    assert not Gate(guest=True).admit(start + most, WATCHING).refusal
    over = struct.pack(">BxH", 2, 257) + struct.pack(">i", 0) * 257
    assert Gate(guest=True).admit(start + over, WATCHING).refusal == "257 encodings is over the 256 limit"
    paste = Gate(guest=True).admit(start + struct.pack(">BxxxI", 6, 5) + b"hello", WATCHING)
    assert paste == Admitted(start, False, "a ClientCutText message, which this connection may not send")
    # A clipboard of someone given control: up to Xvnc's 256 KiB, that included.
    limit = GUEST_LIMITS.cut_text
    paste = struct.pack(">BxxxI", 6, limit) + b"c" * limit
    assert Gate(guest=True).admit(start + paste, TYPING) == Admitted(start + paste, True)
    # A fence: up to the 64 bytes TigerVNC reads.
    fence = struct.pack(">BxxxIB", 248, 0, 64) + b"f" * 64
    assert Gate(guest=True).admit(start + fence, WATCHING) == Admitted(start + fence, False)
    longer = struct.pack(">BxxxIB", 248, 0, 65) + b"f" * 65
    refused = Gate(guest=True).admit(start + longer, WATCHING).refusal
    assert refused == "fence payload of 65 bytes (the desktop reads 64)"


@pytest.mark.unit
def test_an_unknown_qemu_subtype_is_refused_as_soon_as_it_is_seen() -> None:
    stream = ClientStream()
    stream.feed(b"".join(HANDSHAKE))
    assert stream.feed(b"\xff") == []  # the subtype is still to come
    with pytest.raises(ProtocolError, match=r"^unknown QEMU client message subtype 5$"):
        stream.feed(b"\x05")
    with pytest.raises(ProtocolError, match=r"^unknown QEMU client message subtype 7$"):
        ClientStream().feed(b"".join(HANDSHAKE) + b"\xff\x07")  # behind other messages in one chunk
