"""The files an X desktop leaves in /tmp when it does not end cleanly, and their removal.

Two kinds matter to the next desktop on the same node:

- ``/tmp/.X11-unix/X<n>`` and ``/tmp/.X<n>-lock``: Xvnc removes them on a clean exit; after a crash or
  SIGKILL they make the next server skip that display number.
- ``/tmp/.ICE-unix/<pid>``: the session manager's listening socket (xfce4-session's, through libICE),
  named after its process id and never removed when the session dies with its X server, which is how
  every desktop ends. libICE removes a leftover of its own user before it listens, but cannot remove
  another user's (``/tmp/.ICE-unix`` is sticky), and xfce4-session then gives up at once ("Unable to
  establish ICE listeners", exit 1 within half a second): a new session whose pid matches another
  user's leftover never draws. With pids below 32768 and hundreds of leftovers on a busy node, that was
  about one desktop start in 40 (issue 23's XFCE flake). So every desktop removes its user's dead ones
  when it starts and ends (and the reaper after a crash), and a session that fails as it starts is
  started again with a new pid (``VNCDesktop._watch_session``).

Only files of the calling user are removed (``/tmp``'s sticky directories allow no other), and only
dead ones: a socket that still accepts a connection belongs to a running session (the user's other
desktop).
"""

from __future__ import annotations

import contextlib
import os
import socket
import stat
from pathlib import Path

ICE_DIR = Path("/tmp/.ICE-unix")


def _accepts(path: Path) -> bool:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        probe.settimeout(1)  # a listener answers at once; only a wedged one takes longer
        try:
            probe.connect(str(path))
        except OSError:
            return False
    return True


def remove_dead_ice_sockets(directory: Path = ICE_DIR, uid: int | None = None) -> int:
    """Remove this user's ICE sockets that nothing listens on any more; how many were removed."""
    uid = os.getuid() if uid is None else uid
    removed = 0
    try:
        entries = list(os.scandir(directory))
    except OSError:
        return 0  # no ICE directory yet: nothing was left
    for entry in entries:
        with contextlib.suppress(OSError):
            info = entry.stat(follow_symlinks=False)
            if info.st_uid != uid or not stat.S_ISSOCK(info.st_mode) or _accepts(Path(entry.path)):
                continue
            os.unlink(entry.path)
            removed += 1
    return removed


def remove_display_files(display: int, uid: int | None = None) -> None:
    """Remove display ``display``'s socket and lock file where they are this user's."""
    uid = os.getuid() if uid is None else uid
    for leftover in (Path(f"/tmp/.X11-unix/X{display}"), Path(f"/tmp/.X{display}-lock")):
        with contextlib.suppress(OSError):
            if leftover.lstat().st_uid == uid:
                leftover.unlink()
