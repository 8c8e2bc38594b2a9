"""The shared poller against the real cluster: one squeue answers everyone."""

from __future__ import annotations

import asyncio
import tempfile

import pytest
from test_slurm import CountingClient, script

from jupyter_vnc.poller import JobPoller
from jupyter_vnc.registry import MemoryRegistry, ResilientRegistry
from jupyter_vnc.registry.redis import RedisRegistry
from jupyter_vnc.slurm import Phase, SlurmClient


@pytest.fixture
async def jobs(slurm, test_user):
    submitter = SlurmClient(test_user.pw_name)
    out = tempfile.gettempdir()
    ids = [
        await submitter.submit(script("sleep 120", f"--output={out}/jvnc-poll-%j.out", "--time=3"))
        for _ in range(5)
    ]
    yield ids
    for job_id in ids:
        await submitter.cancel(job_id)


async def test_many_callers_share_one_squeue(jobs: list[str]) -> None:
    client = CountingClient()
    poller = JobPoller(client, MemoryRegistry(), interval=30)
    for job_id in jobs:
        poller.watch(job_id)
    answers = await asyncio.gather(*(poller.get(j) for j in jobs for _ in range(10)))  # 50 callers
    assert client.commands == ["squeue"]
    assert {a.phase for a in answers} <= {Phase.QUEUED, Phase.RUNNING}
    await poller.get(jobs[0])  # within the interval: from the cache
    assert client.commands == ["squeue"]
    await poller.get(jobs[0], max_age=0)  # a caller that needs it fresh
    assert client.commands == ["squeue", "squeue"]


async def test_hub_processes_share_answers_through_redis(jobs: list[str], redis_url: str) -> None:
    prefix = "jvnc-poller-test:"
    clients = [CountingClient(), CountingClient()]
    registries = [ResilientRegistry(RedisRegistry(redis_url, prefix=prefix)) for _ in clients]
    pollers = [JobPoller(c, r, interval=30) for c, r in zip(clients, registries, strict=True)]
    try:
        first = await pollers[0].get(jobs[0])
        second = await pollers[1].get(jobs[0])  # another hub process: no squeue of its own
        assert first == second
        assert clients[0].commands == ["squeue"] and clients[1].commands == []
        both = await asyncio.gather(pollers[0].get(jobs[1], max_age=0), pollers[1].get(jobs[1], max_age=0))
        assert both[0].job_id == both[1].job_id
        assert len(clients[0].commands) + len(clients[1].commands) <= 3  # the lock lets one of them poll
    finally:
        for r in registries:
            await r.close()


async def test_controller_down_is_unknown_for_everyone(jobs: list[str], dead_controller_conf) -> None:
    poller = JobPoller(SlurmClient(env={"SLURM_CONF": str(dead_controller_conf)}), MemoryRegistry())
    answers = await asyncio.gather(*(poller.get(j) for j in jobs))
    assert {a.phase for a in answers} == {Phase.UNKNOWN}
    assert all(a.phase.alive for a in answers)
