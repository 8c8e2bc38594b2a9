"""The Slurm job a desktop runs in, seen from inside it: whether the server is one, its id and how long it
has left."""

from __future__ import annotations

import time
from collections.abc import Mapping, MutableMapping
from datetime import datetime

from .slurm import SlurmClient

_UNLIMITED = {"", "Unknown", "None", "N/A", "UNLIMITED", "NONE"}

# Exported by the job script (templates/job.sh.j2): this server was started by VNCSlurmSpawner to serve
# a desktop. Only such a server starts its desktop by itself; every other Jupyter server of the same
# environment (a notebook server, a laptop's `jupyter lab`) waits until its user opens the desktop.
DESKTOP_JOB_VAR = "JUPYTER_VNC_DESKTOP_JOB"


def claim_desktop_job(environ: MutableMapping[str, str]) -> bool:
    """Whether the job script marked this server as a desktop job. The mark is taken out of ``environ``:
    the server's terminals, kernels and desktop programs inherit its environment, and a `jupyter lab`
    someone starts from one of them was not started for a desktop."""
    return environ.pop(DESKTOP_JOB_VAR, "").strip() not in ("", "0")


def parse_end_time(text: str) -> float | None:
    """squeue's ``%e`` (local time, ``2026-11-27T07:00:00``) as a Unix timestamp; None if unlimited."""
    text = text.strip()
    if text in _UNLIMITED:
        return None
    try:
        return datetime.strptime(text, "%Y-%m-%dT%H:%M:%S").timestamp()
    except ValueError:
        return None


class JobClock:
    """Time left in the current Slurm job. Asks squeue at most once per ``refresh`` seconds, because
    an admin may extend the time limit but the status API may be polled often."""

    def __init__(self, env: Mapping[str, str], client: SlurmClient | None = None, refresh: float = 60.0):
        self.job_id = env.get("SLURM_JOB_ID") or None
        # The job script writes the end time here: inside a container squeue may not exist.
        self._end = parse_end_time(env.get("JUPYTER_VNC_JOB_END", ""))
        self.client = client or SlurmClient(timeout=10)
        self.refresh = refresh
        self._checked = 0.0

    async def seconds_left(self) -> int | None:
        if not self.job_id:
            return None
        if time.monotonic() - self._checked > self.refresh:
            try:
                result = await self.client.run(["squeue", "-h", "-j", self.job_id, "-o", "%e"])
                if result.returncode == 0 and result.stdout.strip():
                    self._end = parse_end_time(result.stdout.strip().splitlines()[0])
                self._checked = time.monotonic()
            except (OSError, TimeoutError):
                # No squeue here (a container) or a slow controller: keep the last known end time.
                self._checked = time.monotonic()
        if self._end is None:
            return None
        return max(0, int(self._end - time.time()))
