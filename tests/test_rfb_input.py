"""Framing what a viewer sends (jupyter_vnc.rfb_input): whole messages out of any split of the stream."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from jupyter_vnc.rfb_input import (
    EVERYTHING,
    MAX_CUT_TEXT,
    TYPING,
    WATCHING,
    ClientStream,
    Gate,
    Kind,
    ProtocolError,
)

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


def test_an_oversized_clipboard_is_refused_before_it_is_buffered() -> None:
    stream = ClientStream()
    stream.feed(b"".join(HANDSHAKE))
    with pytest.raises(ProtocolError, match="clipboard"):
        stream.feed(struct.pack(">BxxxI", 6, MAX_CUT_TEXT + 1))
    assert stream.pending == 8  # the header only: nothing of the text was waited for


def test_vnc_auth_and_protocol_3_3_handshakes_are_framed() -> None:
    auth = ClientStream().feed(
        b"RFB 003.008\n\x02" + b"r" * 16 + b"\x01" + struct.pack(">BBHH", 5, 1, 10, 10)
    )
    assert [m.kind for m in auth] == [Kind.HANDSHAKE] * 4 + [Kind.INPUT]
    old = ClientStream().feed(b"RFB 003.003\n\x01" + struct.pack(">BBHHHH", 3, 1, 0, 0, 640, 480))
    assert [m.kind for m in old] == [Kind.HANDSHAKE] * 2 + [Kind.CONTROL]
    with pytest.raises(ProtocolError, match="security type 19"):
        ClientStream().feed(b"RFB 003.008\n\x13")


# --- the gate: what a watcher's and an owner's connection let through to the desktop ------------------


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


@settings(max_examples=5000, deadline=None)
@given(st.lists(messages, max_size=12), st.lists(st.integers(0, 10_000), max_size=30))
def test_a_watcher_never_gets_input_to_the_desktop_and_the_owner_gets_every_byte(
    sent: list, cuts: list[int]
) -> None:
    data = b"".join(HANDSHAKE) + b"".join(m for _, m in sent)
    owner, refusals = gate_in_pieces(Gate(), data, cuts, EVERYTHING)
    assert owner == data and refusals == []
    watched, refusals = gate_in_pieces(Gate(), data, cuts, WATCHING)
    assert refusals == []
    assert watched == b"".join(HANDSHAKE) + b"".join(m for k, m in sent if k in WATCHING)
    assert set(kinds_in(watched)) <= WATCHING  # the desktop's side reads no key, pointer or clipboard
    # Someone given control types and points, but does not resize the owner's screen.
    typed, refusals = gate_in_pieces(Gate(), data, cuts, TYPING)
    assert refusals == [] and typed == b"".join(HANDSHAKE) + b"".join(m for k, m in sent if k in TYPING)


UNKNOWN_TYPES = st.integers(0, 255).filter(lambda t: t not in {0, 2, 3, 4, 5, 6, 150, 248, 250, 251, 255})


@settings(max_examples=2000, deadline=None)
@given(
    st.lists(messages, max_size=6),
    UNKNOWN_TYPES,
    st.binary(max_size=40),
    st.lists(st.integers(0, 10_000), max_size=10),
)
def test_an_unframeable_stream_ends_a_watcher_and_passes_through_for_the_owner(
    sent: list, unknown: int, tail: bytes, cuts: list[int]
) -> None:
    good = b"".join(HANDSHAKE) + b"".join(m for _, m in sent)
    data = good + bytes([unknown]) + tail
    owner, refusals = gate_in_pieces(Gate(), data, cuts, EVERYTHING)
    assert owner == data and refusals == []
    watched, refusals = gate_in_pieces(Gate(), data, cuts, WATCHING)
    assert refusals, "a watcher's unframeable stream must end the connection"
    assert watched == b"".join(HANDSHAKE) + b"".join(m for k, m in sent if k in WATCHING)


@settings(max_examples=1000, deadline=None)
@given(st.lists(messages, min_size=1, max_size=6), st.data())
def test_a_half_message_waits_and_an_oversized_clipboard_ends_a_watcher(
    sent: list, data: st.DataObject
) -> None:
    whole = b"".join(HANDSHAKE) + b"".join(m for _, m in sent)
    cut = data.draw(st.integers(0, len(whole)))
    for allowed in (EVERYTHING, TYPING, WATCHING):
        admitted = Gate().admit(whole[:cut], allowed)
        assert set(kinds_in(admitted.data)) <= allowed
        assert whole.startswith(admitted.data) or allowed != EVERYTHING
    too_big = struct.pack(">BxxxI", 6, MAX_CUT_TEXT + 1)
    assert Gate().admit(b"".join(HANDSHAKE) + too_big, WATCHING).refusal
    assert Gate().admit(b"".join(HANDSHAKE) + too_big, TYPING).refusal
    passed = Gate().admit(b"".join(HANDSHAKE) + too_big, EVERYTHING)
    assert passed.data == b"".join(HANDSHAKE) + too_big and not passed.refusal
