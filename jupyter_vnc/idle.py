"""When the desktop was last used, and what happens when it is not: viewers pause, then the desktop ends.

A GPU desktop holds a node that others queue for. Only a person at the desktop counts as use: keys,
pointer and clipboard from a viewer that may type (``bridge.py``), or the "keep it" button. An open but
untouched viewer is not use, and yet it would look like use to the hub: configurable-http-proxy
records every byte a websocket carries as activity, and the pixels keep coming. So after
``pause_minutes`` without input the server closes every viewer (code ``PAUSED``) and viewers stop
polling until the user resumes: from then on the hub sees the server idle, and
jupyterhub-idle-culler can do its job. With ``shutdown_minutes`` set, the server ends itself after
that long without input (no culler needed): the job script then ends, Slurm frees the GPU, and the
line logged here tells the hub why (``spawner.py`` reads it from the job's log).
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import Callable
from typing import Any

from traitlets import Float, default
from traitlets.config import LoggingConfigurable

from .audience import PAUSED, Audience

# The line the hub looks for in the job's log; keep both sides in step (spawner.idle_end_message).
SHUTDOWN_LINE = "jupyter-vnc: idle shutdown: no keyboard or mouse input for {minutes} minutes"
TICK = 1.0


def _minutes_env(name: str) -> float:
    try:
        return max(0.0, float(os.environ.get(name, "") or 0))
    except ValueError:
        return 0.0


class DesktopIdle(LoggingConfigurable):
    pause_minutes = Float(
        30.0,
        help="""Pause every viewer of a desktop that had no keyboard, mouse or clipboard input for this
        long: the connection closes and the viewer shows "Paused" with a Resume button. An open viewer
        otherwise counts as activity to JupyterHub forever, and the hub's idle culler never ends a
        forgotten desktop. 0: never pause. Defaults to $JUPYTER_VNC_PAUSE_MINUTES (set by the
        spawner's idle_pause_minutes) when set. Example: c.DesktopIdle.pause_minutes = 60
        """,
    ).tag(config=True)

    @default("pause_minutes")
    def _default_pause(self) -> float:
        return (
            _minutes_env("JUPYTER_VNC_PAUSE_MINUTES") if "JUPYTER_VNC_PAUSE_MINUTES" in os.environ else 30.0
        )

    shutdown_minutes = Float(
        help="""End the desktop, and the server and Slurm job around it, after this many minutes without
        keyboard, mouse or clipboard input; viewers warn warning_minutes before. 0: never. Defaults to
        $JUPYTER_VNC_IDLE_MINUTES (set by the spawner's idle_shutdown_minutes).
        Example: c.DesktopIdle.shutdown_minutes = 120
        """,
    ).tag(config=True)

    @default("shutdown_minutes")
    def _default_shutdown(self) -> float:
        return _minutes_env("JUPYTER_VNC_IDLE_MINUTES")

    warning_minutes = Float(
        help="""How long before an idle shutdown the viewer warns (and offers "Keep it"). Defaults to
        $JUPYTER_VNC_IDLE_WARNING_MINUTES, else 5 (at most half of shutdown_minutes).
        Example: c.DesktopIdle.warning_minutes = 10
        """,
    ).tag(config=True)

    @default("warning_minutes")
    def _default_warning(self) -> float:
        return _minutes_env("JUPYTER_VNC_IDLE_WARNING_MINUTES") or 5.0

    def __init__(
        self, audience: Audience, clock: Callable[[], float] = time.monotonic, **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        self._audience = audience
        self._clock = clock
        self.last_input = clock()
        self._task: asyncio.Task[None] | None = None
        self.ended = False

    # --- the rules (pure: a fake clock tests them) -------------------------------------------------

    def touch(self) -> None:
        """A person used the desktop."""
        self.last_input = self._clock()

    def idle_seconds(self) -> float:
        return max(0.0, self._clock() - self.last_input)

    def pause_after(self) -> float | None:
        """Seconds without input after which viewers pause; None: never. With a shutdown set, at the
        latest when its warning starts: a paused viewer is where the warning is shown."""
        limits = []
        if self.pause_minutes > 0:
            limits.append(self.pause_minutes * 60)
        if self.shutdown_minutes > 0:
            limits.append(self.shutdown_minutes * 60 - self.warning_seconds())
        return max(0.0, min(limits)) if limits else None

    def warning_seconds(self) -> float:
        return min(self.warning_minutes, self.shutdown_minutes / 2) * 60

    @property
    def paused(self) -> bool:
        after = self.pause_after()
        return after is not None and self.idle_seconds() >= after

    def shutdown_in(self) -> float | None:
        """Seconds until the idle shutdown; None when there is none."""
        if self.shutdown_minutes <= 0:
            return None
        return max(0.0, self.shutdown_minutes * 60 - self.idle_seconds())

    def status(self) -> dict[str, Any]:
        shutdown_in = self.shutdown_in()
        return {
            "paused": self.paused,
            "idle_seconds": int(self.idle_seconds()),
            "pause_after": self.pause_after(),
            "shutdown_minutes": self.shutdown_minutes or None,
            "shutdown_in": None if shutdown_in is None else int(shutdown_in),
        }

    # --- acting on them ----------------------------------------------------------------------------

    def start(self) -> None:
        if self._task is None and (self.pause_after() is not None):
            self._task = asyncio.create_task(self._watch())

    async def _watch(self) -> None:
        while not self.ended:
            await asyncio.sleep(TICK)
            if self.paused:
                closed = self._audience.close_all(PAUSED, "paused: no keyboard or mouse input")
                if closed:
                    self.log.info("jupyter-vnc: %d viewer(s) paused after %.0f s without input",
                                  closed, self.idle_seconds())  # fmt: skip
            left = self.shutdown_in()
            if left is not None and left <= 0:
                self.end()

    def end(self) -> None:
        """Stop the server the way Slurm's TERM does: the desktop ends, then the job script."""
        self.ended = True
        self.log.warning(SHUTDOWN_LINE.format(minutes=f"{self.shutdown_minutes:g}") + "; ending the desktop")
        os.kill(os.getpid(), signal.SIGTERM)
