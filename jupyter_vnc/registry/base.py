"""The session registry: every desktop, who owns it, which job, where, until when.

Backends are sibling modules over this one small interface (``memory.py`` for a single hub,
``redis.py`` for several hub processes and for surviving a hub restart). Nothing secret is ever
stored: no token, no password; the desktop needs none (Jupyter's authentication is its door).
"""

from __future__ import annotations

import abc
import json
import re
import time
from dataclasses import asdict, dataclass, field
from typing import Any

# Kept this long after a session's walltime, so a finished desktop can still be looked up a while.
TTL_MARGIN = 600.0


class RegistryUnavailable(RuntimeError):
    """The backend cannot be reached (e.g. Redis is down); the message says which and why."""


class RegistryConfigError(ValueError):
    """The registry URL cannot be used by this installation; the message says what to change."""


@dataclass
class Session:
    user: str
    server: str  # "" for the default server
    job_id: str
    state: str  # queued, running, stopped, failed, unknown
    node: str = ""
    gpus: int = 0
    memory_gb: int = 0
    resolution: str = ""
    partition: str = ""
    submitted: float = field(default_factory=time.time)
    started: float | None = None
    ends_at: float | None = None
    message: str = ""

    @property
    def key(self) -> str:
        return f"{self.user}/{self.server}"

    def ttl(self, now: float | None = None) -> float:
        """Seconds to keep the record: until the job's walltime is over, plus a margin."""
        now = time.time() if now is None else now
        end = self.ends_at or now
        return max(end - now, 0) + TTL_MARGIN

    def seconds_left(self, now: float | None = None) -> int | None:
        if self.ends_at is None:
            return None
        return max(0, int(self.ends_at - (time.time() if now is None else now)))

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str | bytes) -> Session:
        data: dict[str, Any] = json.loads(text)
        known = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in data.items() if k in known})


STATES = ("queued", "running", "stopped", "failed", "unknown")
_NAME_RE = re.compile(r"[A-Za-z0-9@._+-]{0,255}")
_TEXT = ("node", "resolution", "partition", "message")
# Times before this (2001) or more than ten years ahead are not times a desktop can have.
_MIN_TIME, _MAX_AHEAD = 1e9, 10 * 365 * 86400.0


def parse_session(key: str, text: Any, now: float | None = None) -> Session | None:
    """The session stored under ``key`` ("user/server"), or None when the entry is not one.

    A registry entry is input from outside the hub (anyone holding the registry's credentials, or a
    bug, may have written it): it must be a JSON object of the right types and bounds and agree with
    its own key; anything else is reported by the caller and skipped, never raised."""
    now = time.time() if now is None else now
    try:
        data = json.loads(text)
    except (TypeError, ValueError):
        return None
    if not isinstance(data, dict):
        return None
    user, server = data.get("user"), data.get("server")
    if not (isinstance(user, str) and isinstance(server, str) and user and f"{user}/{server}" == key):
        return None
    if not (_NAME_RE.fullmatch(user) and _NAME_RE.fullmatch(server)):
        return None
    job_id = data.get("job_id")
    if not (isinstance(job_id, str) and (job_id == "" or (job_id.isascii() and job_id.isdigit()))):
        return None
    if data.get("state") not in STATES:
        return None
    if any(not isinstance(data.get(k, ""), str) or len(data.get(k, "")) > 4096 for k in _TEXT):
        return None
    for k, top in (("gpus", 64), ("memory_gb", 1 << 20)):
        v = data.get(k, 0)
        if isinstance(v, bool) or not isinstance(v, int) or not 0 <= v <= top:
            return None
    for k in ("submitted", "started", "ends_at"):
        v = data.get(k)
        if v is None and k != "submitted":
            continue
        if isinstance(v, bool) or not isinstance(v, int | float) or not _MIN_TIME <= v <= now + _MAX_AHEAD:
            return None
    try:
        return Session.from_json(text)
    except TypeError:
        return None


class Registry(abc.ABC):
    """Sessions, plus the shared cache of Slurm job states the poller fills."""

    @abc.abstractmethod
    async def put(self, session: Session) -> None: ...

    @abc.abstractmethod
    async def get(self, user: str, server: str = "") -> Session | None: ...

    @abc.abstractmethod
    async def delete(self, user: str, server: str = "") -> None: ...

    @abc.abstractmethod
    async def read_sessions(self) -> tuple[list[Session], list[str]]:
        """Every valid session, and the keys of the entries skipped because they are not valid."""

    async def sessions(self) -> list[Session]:
        return (await self.read_sessions())[0]

    # --- the job-state cache shared by every hub process -------------------------------------------

    @abc.abstractmethod
    async def put_job_states(self, states: dict[str, dict[str, Any]], ttl: float) -> None:
        """Store ``{job_id: state dict}`` with the time they were read."""

    @abc.abstractmethod
    async def get_job_states(self, job_ids: list[str]) -> dict[str, tuple[Any, Any]]:
        """``{job_id: (read_at, state dict)}`` for the ids that have a cached state, as stored: the
        caller validates them (see ``poller.shared_answer``)."""

    @abc.abstractmethod
    async def try_lock(self, name: str, ttl: float) -> bool:
        """Take a lock for ``ttl`` seconds if nobody holds it (one poller per interval, hub-wide)."""

    async def ping(self) -> None:  # noqa: B027 - nothing to check for an in-process backend
        """Raise RegistryUnavailable if the backend cannot be reached."""

    async def close(self) -> None:  # noqa: B027 - nothing to release for an in-process backend
        """Release connections."""
