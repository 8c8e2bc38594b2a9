"""Reading other processes from /proc, for tests that look at what a desktop or a job really runs.

A desktop starts short-lived helpers (xfce's, dbus's): any of them can exit between listing /proc and
reading its files, so every read here treats a vanished process as one that has nothing to show.
"""

from __future__ import annotations

import os
from pathlib import Path


def argv(pid: int) -> list[str]:
    """The command line of ``pid``, or [] when it has already gone."""
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    return raw.decode(errors="replace").split("\0")


def program(pid: int) -> str:
    """The file name of the program ``pid`` runs ("Xvnc"), or "" when it has already gone."""
    args = argv(pid)
    return os.path.basename(args[0]) if args else ""


def state(pid: int) -> str:
    """The one-letter state of ``pid`` ("R", "S", "Z"...), or "" when it has gone."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return ""


def alive(pid: int) -> bool:
    return state(pid) not in {"Z", "X", ""}


def of_uid(uid: int) -> list[int]:
    """The live processes of Unix user id ``uid``."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and entry.stat().st_uid == uid and alive(int(entry.name)):
                found.append(int(entry.name))
        except OSError:
            continue  # gone while listing
    return found


def of_user(user: str, name: str) -> set[int]:
    """The live processes of Unix user ``user`` that run program ``name``."""
    import pwd

    return {pid for pid in of_uid(pwd.getpwnam(user).pw_uid) if program(pid) == name}


def environ(pid: int) -> dict[str, str]:
    """The environment ``pid`` started with, or {} when it has gone (or is not ours to read)."""
    try:
        raw = Path(f"/proc/{pid}/environ").read_bytes()
    except OSError:
        return {}
    return dict(item.split("=", 1) for item in raw.decode(errors="replace").split("\0") if "=" in item)


def on_display(name: str, display: str) -> list[int]:
    """The live processes running program ``name`` on X display ``display`` (":5")."""
    return [
        int(e.name)
        for e in Path("/proc").iterdir()
        if e.name.isdigit()
        and program(int(e.name)) == name
        and environ(int(e.name)).get("DISPLAY") == display
    ]
