"""Ends a desktop whose Jupyter server died without stopping it (SIGKILL, OOM killer, crash).

The watch costs almost nothing while the server lives: a ``/bin/sh`` (well under 1 MiB) blocks reading
a pipe whose only write end the server holds. The kernel closes that end when the server exits, however
it exits, so the read returns exactly then: no polling and no pid that could be reused. Only then does
the shell run ``python -m jupyter_vnc.reaper MARKER DIRECTORY``, which ends every process carrying the
desktop's marker and removes its directory. A clean stop kills the watcher first, so the cleanup only
ever runs after a crash. (A Python process waiting all along cost ~12 MiB per desktop.)
"""

from __future__ import annotations

import asyncio
import shutil
import sys

from .processes import terminate_marked
from .xfiles import remove_dead_ice_sockets

_WATCH = 'read -r _; exec "$0" -m jupyter_vnc.reaper "$@"'


def watcher_argv(marker: str, directory: str) -> list[str]:
    """The watcher to start with the read end of the server's pipe as its stdin."""
    return ["/bin/sh", "-c", _WATCH, sys.executable, marker, directory]


def main(argv: list[str]) -> int:
    if len(argv) != 3:
        print("usage: python -m jupyter_vnc.reaper MARKER DIRECTORY", file=sys.stderr)
        return 2
    marker, directory = argv[1], argv[2]
    asyncio.run(terminate_marked(marker))
    shutil.rmtree(directory, ignore_errors=True)
    remove_dead_ice_sockets()  # the session's, left by its death with the X server (see xfiles.py)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
