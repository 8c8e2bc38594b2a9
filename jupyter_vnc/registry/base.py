"""The session registry: every desktop, who owns it, which job, where, until when.

Backends are sibling modules over this one small interface (``memory.py`` for a single hub,
``redis.py`` for several hub processes and for surviving a hub restart). Nothing secret is ever
stored: no token, no password; the desktop needs none (Jupyter's authentication is its door).
"""

from __future__ import annotations

import abc
import json
import time
from dataclasses import asdict, dataclass, field
from typing import Any

# Kept this long after a session's walltime, so a finished desktop can still be looked up a while.
TTL_MARGIN = 600.0


class RegistryUnavailable(RuntimeError):
    """The backend cannot be reached (e.g. Redis is down); the message says which and why."""


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


class Registry(abc.ABC):
    """Sessions, plus the shared cache of Slurm job states the poller fills."""

    @abc.abstractmethod
    async def put(self, session: Session) -> None: ...

    @abc.abstractmethod
    async def get(self, user: str, server: str = "") -> Session | None: ...

    @abc.abstractmethod
    async def delete(self, user: str, server: str = "") -> None: ...

    @abc.abstractmethod
    async def sessions(self) -> list[Session]: ...

    # --- the job-state cache shared by every hub process -------------------------------------------

    @abc.abstractmethod
    async def put_job_states(self, states: dict[str, dict[str, Any]], ttl: float) -> None:
        """Store ``{job_id: state dict}`` with the time they were read."""

    @abc.abstractmethod
    async def get_job_states(self, job_ids: list[str]) -> dict[str, tuple[float, dict[str, Any]]]:
        """``{job_id: (read_at, state dict)}`` for the ids that have a cached state."""

    @abc.abstractmethod
    async def try_lock(self, name: str, ttl: float) -> bool:
        """Take a lock for ``ttl`` seconds if nobody holds it (one poller per interval, hub-wide)."""

    async def ping(self) -> None:  # noqa: B027 - nothing to check for an in-process backend
        """Raise RegistryUnavailable if the backend cannot be reached."""

    async def close(self) -> None:  # noqa: B027 - nothing to release for an in-process backend
        """Release connections."""
