"""What the bridge's RFB parser costs per client message: ``rfb_input.Gate.admit`` timed in-process.

Nothing is started: no server, no Xvnc, no hub. A viewer sends one FramebufferUpdateRequest (10 bytes)
per update it wants, each in a websocket frame of its own, and the bridge hands every frame to
``Gate.admit`` before it goes on to Xvnc (bridge.py). This feeds a gate the viewer's handshake, its
SetPixelFormat (32 bpp) and SetEncodings (noVNC's), then ``--messages`` update requests one call each,
and times those calls in the process's CPU time (``time.process_time``: what the calls cost a core,
whatever else runs on the machine), for:

- owner:   ``Gate()`` with everything allowed (what the owner's connection does: frame, pass whole);
- watcher: ``Gate(guest=True)`` allowed only how it wants pixels (a share recipient, or the owner's
           ``?view_only=1`` connection: frame under the guest limits, filter).

Each is timed ``--repeat`` times on a fresh gate; the median (and the best) of the runs is reported in
microseconds per message, and what that is in a core's time at ``--rate`` updates/s (default 170: the
most the stream benchmark's owner and viewer received on the 2-core VM with ``--frame-rate 1000``).
Last line: ``RESULT us_per_message_owner=... us_per_message_watcher=... core_percent_owner=...
core_percent_watcher=... rate=170 messages=200000 repeat=5``.

Run (no root needed): /opt/jupyter-vnc/venv/bin/python benchmarks/parser_cost.py [--messages 200000]
                      [--repeat 5] [--rate 170]
"""

from __future__ import annotations

import argparse
import statistics
import struct
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(1, str(REPO))

from jupyter_vnc.rfb_input import EVERYTHING, WATCHING, Gate  # noqa: E402

HANDSHAKE = b"RFB 003.008\n" + b"\x01" + b"\x01"  # version, security None, ClientInit (shared)
PIXEL_FORMAT = b"\x00\x00\x00\x00" + struct.pack(">BBBBHHHBBBxxx", 32, 24, 0, 1, 255, 255, 255, 16, 8, 0)
NOVNC = (7, 16, 1, 0, -26, -254, -223, -224, -239, -258, -261, -307, -308, -312, -313)
SET_ENCODINGS = struct.pack(f">BxH{len(NOVNC)}i", 2, len(NOVNC), *NOVNC)
REQUEST = struct.pack(">BBHHHH", 3, 1, 0, 0, 1680, 1050)


def time_gate(guest: bool, messages: int) -> float:
    """CPU seconds for ``messages`` update requests through a fresh gate, one ``admit`` call each."""
    gate = Gate(guest=guest)
    allowed = WATCHING if guest else EVERYTHING
    for chunk in (HANDSHAKE, PIXEL_FORMAT, SET_ENCODINGS):
        gate.admit(chunk, allowed)
    admit = gate.admit
    t0 = time.process_time()
    for _ in range(messages):
        admitted = admit(REQUEST, allowed)
    elapsed = time.process_time() - t0
    if admitted.data != REQUEST or admitted.refusal:
        raise RuntimeError(f"the gate did not pass an update request on: {admitted}")
    return elapsed


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--messages", type=int, default=200_000, help="update requests per run (200000)")
    parser.add_argument("--repeat", type=int, default=5, help="runs of each kind (default 5)")
    parser.add_argument("--rate", type=float, default=170.0, help="updates/s to cost (default 170)")
    args = parser.parse_args()

    print(f"# {args.messages} update requests per run, {args.repeat} runs each, interleaved", flush=True)
    runs: dict[str, list[float]] = {"owner": [], "watcher": []}
    for r in range(args.repeat):
        for kind in ("owner", "watcher") if r % 2 == 0 else ("watcher", "owner"):
            per = time_gate(kind == "watcher", args.messages) / args.messages * 1e6
            runs[kind].append(per)
            print(f"run {r + 1} {kind:<7} {per:.3f} us CPU per message", flush=True)
    figures = []
    for kind, values in runs.items():
        us = statistics.median(values)
        share = us * args.rate / 1e6 * 100
        print(
            f"{kind:<7} median {us:.2f} us CPU per message (best {min(values):.2f});"
            f" at {args.rate:g} updates/s: {share:.3f} % of a core",
            flush=True,
        )
        figures += [f"us_per_message_{kind}={us:.2f}", f"core_percent_{kind}={share:.3f}"]
    print(
        "RESULT " + " ".join(figures) + f" rate={args.rate:g} messages={args.messages} repeat={args.repeat}",
        flush=True,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
