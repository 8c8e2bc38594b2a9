"""Finding and ending every process of one desktop, daemons included.

XFCE's helpers (dbus-daemon, xfconfd, at-spi, gpg-agent, ssh-agent) leave the session's process group
and outlive a desktop that is stopped by killing its session leader: the peer leaves 18 of them behind.
Every process we start carries a marker variable in its environment, which children inherit even when
they daemonize, so the whole desktop is found by scanning /proc for that marker.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
from collections.abc import Collection
from pathlib import Path

MARKER_VAR = "JUPYTER_VNC_DESKTOP"


def marked_pids(marker: str, sessions: set[int] | None = None, proc: Path = Path("/proc")) -> set[int]:
    """PIDs of live processes of the desktop ``marker`` names.

    A process belongs to it when its environment holds ``MARKER_VAR=marker``, when it runs in the
    session of such a process (we start Xvnc and the session each in a new session of their own), or
    when its parent belongs to it. The last two catch programs whose environment cannot be read:
    setgid ones (ssh-agent) and those that make themselves non-dumpable (gpg-agent). Only our own
    processes are readable, which is what we want: a desktop only holds processes of its own user.
    ``sessions`` accumulates the session ids seen, so that a later scan still finds an unreadable
    process whose readable companions have already exited.
    """
    sessions = set() if sessions is None else sessions
    needle = f"{MARKER_VAR}={marker}".encode()
    me = os.getpid()
    # Never the caller's own session: in a Slurm job that is the job's (its batch shell, the Jupyter
    # server). A marked program started there by mistake must not make them desktop processes.
    own_session = os.getsid(0)
    table: dict[int, tuple[int, int]] = {}  # pid -> (parent, session)
    found: set[int] = set()
    for entry in proc.iterdir():
        if not entry.name.isdigit() or int(entry.name) == me:
            continue
        pid = int(entry.name)
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[-1].split()
        except OSError:
            continue
        if fields[0] in {"Z", "X"}:  # zombies are already dead
            continue
        table[pid] = (int(fields[1]), int(fields[3]))
        try:
            if needle in (entry / "environ").read_bytes().split(b"\0"):
                found.add(pid)
        except OSError:
            continue
    sessions |= {table[pid][1] for pid in found} - {own_session}
    found |= {pid for pid, (_, session) in table.items() if session in sessions}
    grew = True
    while grew:  # children of desktop processes are desktop processes
        grew = False
        for pid, (parent, _) in table.items():
            if parent in found and pid not in found:
                found.add(pid)
                grew = True
    return found


def _is_zombie(entry: Path) -> bool:
    try:
        stat = (entry / "stat").read_text()
    except OSError:
        return True
    return stat.rsplit(")", 1)[-1].split()[0] in {"Z", "X"}


def alive(pid: int) -> bool:
    entry = Path(f"/proc/{pid}")
    return entry.exists() and not _is_zombie(entry)


def _signal_all(pids: set[int], sig: int) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, sig)


async def terminate_marked(marker: str, *, first: Collection[int] = (), grace: float = 3.0) -> int:
    """End every process carrying ``marker``: SIGTERM, wait up to ``grace`` seconds, then SIGKILL.

    ``first``: the processes we started ourselves (Xvnc, the session), each a session leader; their
    sessions are searched too. Returns how many processes had to be killed with SIGKILL.
    """
    sessions = set(first)  # what we started is a session leader (start_new_session)
    _signal_all({p for p in first if alive(p)}, signal.SIGTERM)
    deadline = time.monotonic() + grace
    signalled = marked_pids(marker, sessions) | {p for p in first if alive(p)}
    _signal_all(signalled, signal.SIGTERM)
    pids = signalled
    while pids and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
        pids = {p for p in pids if alive(p)} | marked_pids(marker, sessions)
        _signal_all(pids - signalled, signal.SIGTERM)  # started while we were stopping
        signalled |= pids
    killed = 0
    for _ in range(20):  # a process may fork while we kill: repeat until the scan comes back empty
        signalled = {p for p in signalled if alive(p)}  # found once, ours until gone (re-parented or not)
        pids = marked_pids(marker, sessions) | signalled
        if not pids:
            break
        killed += len(pids)
        _signal_all(pids, signal.SIGKILL)
        await asyncio.sleep(0.05)
    return killed
