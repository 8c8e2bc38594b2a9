"""In-process registry: one hub without Redis. Lost when the hub restarts (the spawner's own state in
JupyterHub's database still finds the jobs again)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from .base import Registry, Session


class MemoryRegistry(Registry):
    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock  # expiry is plain arithmetic on this clock (wall time, like Redis's)
        self._sessions: dict[str, tuple[float, Session]] = {}  # key -> (expires at, session)
        self._jobs: dict[str, tuple[float, float, dict[str, Any]]] = {}  # id -> (expires, read_at, state)
        self._locks: dict[str, float] = {}

    def _live(self) -> None:
        now = self._clock()
        self._sessions = {k: v for k, v in self._sessions.items() if v[0] > now}
        self._jobs = {k: v for k, v in self._jobs.items() if v[0] > now}

    async def put(self, session: Session) -> None:
        self._sessions[session.key] = (self._clock() + session.ttl(), Session.from_json(session.to_json()))

    async def get(self, user: str, server: str = "") -> Session | None:
        self._live()
        entry = self._sessions.get(f"{user}/{server}")
        return Session.from_json(entry[1].to_json()) if entry else None

    async def delete(self, user: str, server: str = "") -> None:
        self._sessions.pop(f"{user}/{server}", None)

    async def read_sessions(self) -> tuple[list[Session], list[str]]:
        # Only this process writes here, through put(): nothing to skip.
        self._live()
        ordered = sorted(self._sessions.values(), key=lambda e: e[1].key)
        return [Session.from_json(s.to_json()) for _, s in ordered], []

    async def put_job_states(self, states: dict[str, dict[str, Any]], ttl: float) -> None:
        now = self._clock()
        for job_id, state in states.items():
            self._jobs[job_id] = (now + ttl, now, dict(state))

    async def get_job_states(self, job_ids: list[str]) -> dict[str, tuple[Any, Any]]:
        self._live()
        return {j: (self._jobs[j][1], dict(self._jobs[j][2])) for j in job_ids if j in self._jobs}

    async def try_lock(self, name: str, ttl: float) -> bool:
        now = self._clock()
        if self._locks.get(name, 0) > now:
            return False
        self._locks[name] = now + ttl
        return True
