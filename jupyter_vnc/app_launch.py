"""Starting an admin's app (apps.py) in the running desktop, as if the user had picked it from the menu.

The program gets the environment of the desktop's panel, which is what a menu launch gives it: the
session's D-Bus, the desktop's marker (so that stopping the desktop ends it too) and, where the whole
session runs under VirtualGL, the faker. An app that wants the GPU in a desktop whose session does not
carry the faker is started through vglrun. Its window is then maximized (xwindows.py, in a process of
its own), and its output goes to ``app-<name>.log`` beside the desktop's other logs.
"""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path
from typing import Any

from .apps import App
from .processes import MARKER_VAR, marked_pids

DEVNULL = asyncio.subprocess.DEVNULL

PANEL_WAIT = 10.0  # seconds to wait for a desktop just started to have its panel
MAXIMIZE_WAIT = 90.0  # seconds an app may take to show its first window (ParaView from a network disk)
_running: set[asyncio.Task[Any]] = set()  # the background waits, kept from the garbage collector


class AppStartError(Exception):
    pass


def panel_environment(marker: str, proc: Path = Path("/proc")) -> dict[str, str]:
    """The environment of the desktop's XFCE panel (what its menu gives the programs it starts); empty
    when there is no panel yet (a desktop still starting) or it cannot be read."""
    for pid in marked_pids(marker, proc=proc):
        try:
            if (proc / str(pid) / "comm").read_text().strip() != "xfce4-panel":
                continue
            raw = (proc / str(pid) / "environ").read_bytes()
        except OSError:
            continue
        pairs = (item.split(b"=", 1) for item in raw.split(b"\0") if b"=" in item)
        return {k.decode(errors="replace"): v.decode(errors="replace") for k, v in pairs}
    return {}


def app_argv_env(
    app: App, base: dict[str, str], vglrun: str, marker: str
) -> tuple[list[str], dict[str, str]]:
    """The command line and environment ``app`` starts with, given the session's environment ``base``."""
    env = dict(base)
    env[MARKER_VAR] = marker
    argv = list(app.command)
    if app.gpu:
        if vglrun and "libvglfaker" not in env.get("LD_PRELOAD", ""):
            argv = [vglrun, *argv]
        if env.get("GDK_GL") == "disable":
            # The session turns GTK's own OpenGL off for XFCE's programs (desktop.py); an app that asked
            # for the GPU gets it back.
            del env["GDK_GL"]
    return argv, env


async def start_app(desktop: Any, app: App) -> int:
    """Start ``app`` in the running ``desktop``; its process id. AppStartError when it cannot run."""
    base = panel_environment(desktop.marker)
    waited = 0.0
    while not base and waited < PANEL_WAIT:
        # A desktop started for this app: its menu's environment (the session's D-Bus above all)
        # comes with the panel, a moment after the X server.
        await asyncio.sleep(0.2)
        waited += 0.2
        base = panel_environment(desktop.marker)
    base = base or desktop.session_environment()
    argv, env = app_argv_env(app, base, desktop.vglrun_for_apps(), desktop.marker)
    log = Path(desktop.directory) / f"app-{app.name}.log"
    with open(log, "ab") as out:
        try:
            proc = await asyncio.create_subprocess_exec(
                *argv, env=env, cwd=env.get("HOME") or os.path.expanduser("~"),
                stdin=DEVNULL, stdout=out, stderr=asyncio.subprocess.STDOUT,
                start_new_session=True,
            )  # fmt: skip
        except OSError as e:
            raise AppStartError(f"{app.title} could not be started: {argv[0]}: {e.strerror or e}") from None
    _background(proc.wait())  # reaped when it exits: no zombie under the server
    _background(_maximize(proc.pid, env))
    return proc.pid


async def _maximize(pid: int, env: dict[str, str]) -> None:
    helper = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "jupyter_vnc.xwindows", "maximize", str(pid), "--timeout", str(MAXIMIZE_WAIT),
        env={k: env[k] for k in ("DISPLAY", "XAUTHORITY", "PATH", MARKER_VAR) if k in env},
        stdin=DEVNULL, stdout=DEVNULL, stderr=DEVNULL, start_new_session=True,
    )  # fmt: skip
    await helper.wait()


def _background(work: Any) -> None:
    task = asyncio.ensure_future(work)
    _running.add(task)
    task.add_done_callback(_running.discard)
