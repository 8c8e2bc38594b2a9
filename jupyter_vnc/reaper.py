"""Ends a desktop whose Jupyter server died without stopping it (SIGKILL, OOM killer, crash).

Started beside every desktop as ``python -m jupyter_vnc.reaper SERVER_PID MARKER DIRECTORY``. It
sleeps until the server process exits, then ends every process carrying the desktop's marker and
removes its directory. A clean stop kills the reaper first, so it only ever acts after a crash.
"""

from __future__ import annotations

import asyncio
import os
import select
import shutil
import sys

from .processes import terminate_marked


def wait_for_exit(pid: int) -> None:
    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        return
    select.select([fd], [], [])  # a pidfd turns readable when its process exits
    os.close(fd)


def main(argv: list[str]) -> int:
    if len(argv) != 4:
        print("usage: python -m jupyter_vnc.reaper SERVER_PID MARKER DIRECTORY", file=sys.stderr)
        return 2
    pid, marker, directory = int(argv[1]), argv[2], argv[3]
    wait_for_exit(pid)
    asyncio.run(terminate_marked(marker))
    shutil.rmtree(directory, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
