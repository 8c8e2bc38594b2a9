"""The view-only gate against a real Xvnc, at length: many more hostile watcher streams than CI runs.

Each case is one connection through ``rfb_input.Gate`` (as a share recipient's, view only) to a real
Xvnc started with the desktop's own command line; after every batch the owner's display is asked what
changed (keys, buttons, pointer motion, CLIPBOARD, PRIMARY, screen size). Any change fails the run and
names the seed and the batch to replay (tests/xvnc_differential.py holds the harness; CI runs 10,000
cases in tests/test_gate_xvnc.py). There is no peer to compare with: jupyter-remote-desktop-proxy has no
view-only mode at all, so every case would pass its input on. Nothing but that Xvnc and the X clients
that watch the owner's display on it (tests/xvnc_differential.py) is started: no Jupyter server, no hub.
Prints progress every 10,000 cases and last ``RESULT cases=... ran_to_end=... refused=...
server_frame_errors=... display_changes=... seconds=... vnc=... seed=... gate=held|broken``.

Run as root: /opt/jupyter-vnc/venv/bin/python benchmarks/gate_differential.py [--cases 100000] [--seed N]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from common import log
from xvnc_differential import OwnersDisplay, cases, run_case

BATCH = 200


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--cases", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=int(time.time()))
    parser.add_argument("--vnc-server", default="", help="Xvnc to test (default: the one the desktop finds)")
    args = parser.parse_args()
    display = OwnersDisplay(args.vnc_server)
    refused = ran = server_errors = 0
    changes: list[str] = []
    t0 = time.monotonic()
    try:
        for n, chunks in enumerate(cases(args.seed, args.cases), 1):
            outcome = run_case(display.socket, chunks)
            refused += bool(outcome.refused)
            ran += not outcome.refused
            server_errors += bool(outcome.server_error)
            if n % BATCH == 0 or n == args.cases:
                changes = display.changes()
                if changes:
                    log(f"FAILED: seed {args.seed}, cases {n - BATCH + 1}-{n}: {changes}")
                    break
            if n % 10_000 == 0:
                log(f"{n} cases, {time.monotonic() - t0:.0f} s")
    finally:
        display.close()
    elapsed = time.monotonic() - t0
    verdict = "held" if not changes and not server_errors else "broken"
    log(
        f"RESULT cases={ran + refused} ran_to_end={ran} refused={refused} server_frame_errors={server_errors}"
        f" display_changes={len(changes)} seconds={elapsed:.0f} vnc={display.kind} seed={args.seed}"
        f" gate={verdict}"
    )
    return 0 if verdict == "held" else 1


if __name__ == "__main__":
    sys.exit(main())
