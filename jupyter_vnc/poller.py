"""One Slurm query per interval for every desktop of the hub, instead of one per desktop.

batchspawner runs one ``squeue`` per user per poll; with hundreds of desktops that load bogs the hub
and the controller down (batchspawner #292). Here every spawner asks the shared poller, which answers
from a cache younger than the caller's ``max_age`` or refreshes it with ONE ``squeue`` for all watched
jobs (concurrent callers share that one call). With several hub processes the answers are shared
through the registry, and a registry lock makes one of them do the polling.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Sequence
from dataclasses import fields
from typing import Any, Protocol

from .registry import Registry, RegistryUnavailable
from .slurm import JobInfo, Phase

LOCK = "squeue"
# A shared answer stamped this far in the future is forged or from a broken clock: never trusted.
MAX_CLOCK_SKEW = 5.0
_FIELD_NAMES = tuple(f.name for f in fields(JobInfo))
_FIELDS = set(_FIELD_NAMES)

log = logging.getLogger("jupyter_vnc.poller")


def info_to_dict(info: JobInfo) -> dict[str, Any]:
    # Field by field, not dataclasses.asdict: its deep copy cost 36 ms per poll at 5,000 desktops,
    # this 3 ms (benchmarks/poll_scaling.py), for the same flat dict of strings.
    return {**{name: getattr(info, name) for name in _FIELD_NAMES}, "phase": info.phase.value}


def info_from_dict(data: dict[str, Any]) -> JobInfo:
    return JobInfo(**{**data, "phase": Phase(data["phase"])})


def shared_answer(job_id: str, read_at: Any, data: Any, now: float) -> JobInfo | None:
    """A job state another hub process put in the registry, or None if it is not one.

    The registry is input from outside this process: an entry for another job, with unknown fields or
    phases, non-string values, or a ``read_at`` in the future (which would keep it "fresh" forever)
    is refused, never raised."""
    if not isinstance(read_at, int | float) or not 0 < read_at <= now + MAX_CLOCK_SKEW:
        return None
    if not isinstance(data, dict) or set(data) != _FIELDS:
        return None
    if not all(isinstance(v, str) and len(v) <= 4096 for v in data.values()) or data["job_id"] != job_id:
        return None
    try:
        return info_from_dict(data)
    except ValueError:  # an unknown phase
        return None


class JobQuery(Protocol):
    """Anything that answers for many jobs at once: ``SlurmClient``, ``BatchedQuery``."""

    async def query(self, job_ids: Sequence[str]) -> dict[str, JobInfo]: ...


class JobPoller:
    def __init__(self, client: JobQuery, registry: Registry, interval: float = 30.0) -> None:
        self.client = client
        self.registry = registry
        self.interval = interval
        self.watched: set[str] = set()
        self._cache: dict[str, tuple[float, JobInfo]] = {}
        self._inflight: asyncio.Task[None] | None = None
        self._lock_until = 0.0  # we hold the hub-wide poll lock until then
        self.rejected = 0  # shared answers refused as invalid (the log says which)

    def watch(self, job_id: str) -> None:
        self.watched.add(str(job_id))

    def unwatch(self, job_id: str) -> None:
        self.watched.discard(str(job_id))
        self._cache.pop(str(job_id), None)

    async def get(self, job_id: str, max_age: float | None = None) -> JobInfo:
        """The state of ``job_id``, at most ``max_age`` seconds old (default: one interval)."""
        job_id = str(job_id)
        max_age = self.interval if max_age is None else max_age
        self.watch(job_id)
        fresh = self._fresh(job_id, max_age)
        if fresh:
            return fresh
        with contextlib.suppress(RegistryUnavailable):
            await self._load_shared([job_id])
            fresh = self._fresh(job_id, max_age)
            if fresh:
                return fresh
        # A query already in flight may have started before this job was watched (a spawn that
        # submitted meanwhile): its answer does not cover the job, so the next query must.
        for _ in range(2):
            await self.refresh()
            entry = self._cache.get(job_id)
            if entry:
                return entry[1]
        return JobInfo(job_id, Phase.UNKNOWN, error="no answer about this job yet")

    async def confirm(self, job_id: str) -> JobInfo:
        """The job's state straight from Slurm, for decisions that cannot be undone (forget a server,
        fail a spawn): a shared answer from the registry is never enough for those."""
        job_id = str(job_id)
        info = (await self.client.query([job_id]))[job_id]
        if job_id in self.watched:
            self._cache[job_id] = (time.time(), info)
        return info

    def _fresh(self, job_id: str, max_age: float) -> JobInfo | None:
        entry = self._cache.get(job_id)
        if entry and time.time() - entry[0] <= max_age:
            return entry[1]
        return None

    async def _load_shared(self, job_ids: list[str]) -> None:
        now = time.time()
        for job_id, (read_at, data) in (await self.registry.get_job_states(job_ids)).items():
            info = shared_answer(job_id, read_at, data, now)
            if info is None:
                self.rejected += 1
                log.warning("jupyter-vnc: ignored an invalid shared state for job %s in the registry", job_id)
                continue
            if read_at > self._cache.get(job_id, (0.0, None))[0]:
                self._cache[job_id] = (float(read_at), info)

    async def refresh(self) -> None:
        """Query every watched job now; callers arriving meanwhile wait for the same answer."""
        if self._inflight is None or self._inflight.done():
            self._inflight = asyncio.create_task(self._poll())
        await asyncio.shield(self._inflight)

    async def _poll(self) -> None:
        ids = sorted(self.watched)
        if not ids:
            return
        started = time.time()
        mine = started < self._lock_until
        if not mine:
            ttl = max(0.2, min(self.interval / 2, 5.0))
            try:
                mine = await self.registry.try_lock(LOCK, ttl=ttl)
            except RegistryUnavailable:
                mine = True  # no shared registry: poll ourselves
            if mine:
                self._lock_until = started + ttl
        if not mine:
            # Another hub process is polling right now: wait for its answer if it covers our jobs.
            for _ in range(20):
                await asyncio.sleep(0.1)
                with contextlib.suppress(RegistryUnavailable):
                    await self._load_shared(ids)
                if all(self._cache.get(j, (0.0,))[0] >= started for j in ids):
                    return
        answer = await self.client.query(ids)
        now = time.time()
        for job_id, info in answer.items():
            if job_id in self.watched:  # not one unwatched while the query ran
                self._cache[job_id] = (now, info)
        with contextlib.suppress(RegistryUnavailable):
            await self.registry.put_job_states(
                {j: info_to_dict(i) for j, i in answer.items()}, ttl=max(3 * self.interval, 10)
            )
