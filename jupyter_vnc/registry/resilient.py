"""A registry that never lets its backend's outage break a spawn or a stop.

Writes that fail are kept (the latest per session) and replayed, in order, on the next call that
reaches the backend, so the registry catches up when Redis returns. Reads still raise
RegistryUnavailable: a caller that shows sessions (the admin CLI) must say Redis is down rather than
show a stale or empty list.
"""

from __future__ import annotations

import logging
from typing import Any

from .base import Registry, RegistryUnavailable, Session

log = logging.getLogger("jupyter_vnc.registry")


class ResilientRegistry(Registry):
    def __init__(self, backend: Registry) -> None:
        self.backend = backend
        self.pending: dict[str, tuple[str, Session | tuple[str, str]]] = {}  # key -> latest write
        self.down_since: str = ""

    async def _flush(self) -> None:
        while self.pending:
            key, (op, payload) = next(iter(self.pending.items()))
            if op == "put":
                assert isinstance(payload, Session)
                await self.backend.put(payload)
            else:
                assert isinstance(payload, tuple)
                await self.backend.delete(*payload)
            self.pending.pop(key, None)
        if self.down_since:
            log.warning("jupyter-vnc registry reachable again; caught up")
            self.down_since = ""

    def _remember(self, key: str, op: str, payload: Session | tuple[str, str], error: Exception) -> None:
        self.pending.pop(key, None)
        self.pending[key] = (op, payload)  # latest write last, so replays keep the order of changes
        if not self.down_since:
            self.down_since = str(error)
            log.warning("jupyter-vnc registry unavailable (%s); will catch up when it returns", error)

    async def put(self, session: Session) -> None:
        try:
            await self._flush()
            await self.backend.put(session)
        except RegistryUnavailable as e:
            self._remember(session.key, "put", session, e)

    async def delete(self, user: str, server: str = "") -> None:
        key = f"{user}/{server}"
        try:
            await self._flush()
            await self.backend.delete(user, server)
        except RegistryUnavailable as e:
            self._remember(key, "delete", (user, server), e)

    async def get(self, user: str, server: str = "") -> Session | None:
        await self._flush()
        return await self.backend.get(user, server)

    async def read_sessions(self) -> tuple[list[Session], list[str]]:
        await self._flush()
        return await self.backend.read_sessions()

    async def put_job_states(self, states: dict[str, dict[str, Any]], ttl: float) -> None:
        await self._flush()
        await self.backend.put_job_states(states, ttl)

    async def get_job_states(self, job_ids: list[str]) -> dict[str, tuple[Any, Any]]:
        return await self.backend.get_job_states(job_ids)

    async def try_lock(self, name: str, ttl: float) -> bool:
        return await self.backend.try_lock(name, ttl)

    async def ping(self) -> None:
        await self.backend.ping()
        await self._flush()

    async def close(self) -> None:
        await self.backend.close()
