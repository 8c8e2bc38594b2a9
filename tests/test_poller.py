"""The shared poller against the real cluster: one squeue answers everyone."""

from __future__ import annotations

import asyncio
import json
import tempfile
import time
import uuid

import pytest
from test_slurm import CountingClient, script

from jupyter_vnc.poller import JobPoller, info_to_dict, shared_answer
from jupyter_vnc.registry import MemoryRegistry, ResilientRegistry
from jupyter_vnc.registry.redis import RedisRegistry
from jupyter_vnc.slurm import JobInfo, Phase, SlurmClient

# Whose servers, jobs and homes these tests use (tests/isolation.py: modules of other users run beside).
pytestmark = pytest.mark.users("alice")


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
        # The first process still holds the hub-wide poll lock: it polls, the other waits for its answer.
        # A broken lock would show as a squeue of the second process's own.
        assert clients[0].commands == ["squeue", "squeue"] and clients[1].commands == []
    finally:
        for r in registries:
            await r.close()


async def test_a_job_submitted_during_a_query_gets_its_own_answer(jobs: list[str]) -> None:
    """The crash of 9 spawns at once: a spawn asks about its new job while a query that started
    before the job existed is still running; that query's answer does not cover it."""
    client = CountingClient()
    poller = JobPoller(client, MemoryRegistry(), interval=30)
    first = asyncio.create_task(poller.get(jobs[0]))
    while not client.commands:  # the first squeue is running now, for jobs[0] only
        await asyncio.sleep(0)
    late = await asyncio.gather(*(poller.get(j) for j in jobs[1:]))
    assert [info.job_id for info in late] == jobs[1:]
    assert {info.phase for info in late} <= {Phase.QUEUED, Phase.RUNNING}
    assert (await first).phase in {Phase.QUEUED, Phase.RUNNING}
    assert client.commands == ["squeue", "squeue"]  # the late ones shared one more query


async def test_the_hubs_own_query_path_through_its_sudo_rule(jobs: list[str]) -> None:
    """What the hub itself runs, not a test client: run_shell and BatchedQuery with the test bed's
    query_exec_prefix, as the hub's unprivileged account (jvnc-hub) under the site's sudo rule
    ((root) squeue). Slurm has PrivateData=jobs: only this rule lets it see alice's jobs. Fifty callers,
    one command; the answers are Slurm's states of the real jobs."""
    from jupyter_vnc.slurm_commands import QUERY_ALL, BatchedQuery, run_shell

    ran: list[str] = []

    async def as_the_hub(cmd: str, **kwargs: object) -> str:
        ran.append(cmd)
        hub = "setpriv --reuid=jvnc-hub --regid=jvnc-hub --init-groups --reset-env"
        return await run_shell(f"{hub} {cmd}", **kwargs)  # type: ignore[arg-type]

    poller = JobPoller(BatchedQuery(as_the_hub, "sudo -n -u root", QUERY_ALL), MemoryRegistry(), interval=30)
    for job_id in jobs:
        poller.watch(job_id)
    answers = await asyncio.gather(*(poller.get(j) for j in jobs for _ in range(10)))
    assert len(ran) == 1 and ran[0].startswith("sudo -n -u root squeue -h -t all -j "), ran
    assert {a.phase for a in answers} <= {Phase.QUEUED, Phase.RUNNING}, answers
    assert {a.job_id for a in answers} == set(jobs)
    # As the hub's own account (query_exec_prefix ""), PrivateData hides alice's jobs: Slurm lists
    # nothing, read as "not listed" (ENDED without a state), which the spawner never takes for an end
    # without asking as the user (test_spawner_commands.py).
    alone = JobPoller(BatchedQuery(as_the_hub, "", QUERY_ALL), MemoryRegistry(), interval=30)
    hidden = await alone.get(jobs[0])
    assert (hidden.phase, hidden.state) == (Phase.ENDED, ""), hidden


async def test_thousands_of_desktops_are_still_one_query_with_the_same_answers(jobs: list[str]) -> None:
    """Past WIDE_FROM watched jobs the hub's query lists every job instead of naming each one (no
    command-line word over 128 KiB, no squeue filtering thousands of ids): still one squeue, through the
    site's sudo rule, and the same answers: the real jobs as Slurm has them, the rest ended."""
    from jupyter_vnc.slurm_commands import QUERY_ALL, WIDE_FROM, BatchedQuery, run_shell, widened

    ran: list[str] = []

    async def as_the_hub(cmd: str, **kwargs: object) -> str:
        ran.append(cmd)
        hub = "setpriv --reuid=jvnc-hub --regid=jvnc-hub --init-groups --reset-env"
        return await run_shell(f"{hub} {cmd}", **kwargs)  # type: ignore[arg-type]

    # A site's own squeue (a path, an ssh prefix) is widened the same way; any other command is its own.
    assert (
        widened("ssh login1 /opt/slurm/bin/squeue -h -j {job_ids} -o x")
        == "ssh login1 /opt/slurm/bin/squeue -h -o x"
    )
    assert widened("/site/jobstate {job_ids}") == widened("squeue -h -o x") == ""
    gone = [str(900_000_000 + i) for i in range(WIDE_FROM + 1)]  # ids Slurm does not know (any more)
    query = BatchedQuery(as_the_hub, "sudo -n -u root", QUERY_ALL, widened(QUERY_ALL))
    narrow = await query.query(jobs)
    wide = await query.query(jobs + gone)
    assert " -j " in ran[0] and " -j " not in ran[1] and len(ran) == 2, ran
    assert {j: wide[j] for j in jobs} == narrow
    assert {narrow[j].phase for j in jobs} <= {Phase.QUEUED, Phase.RUNNING}
    assert {(wide[j].phase, wide[j].state) for j in gone} == {(Phase.ENDED, "")}


async def test_controller_down_is_unknown_for_everyone(jobs: list[str], dead_controller_conf) -> None:
    poller = JobPoller(SlurmClient(env={"SLURM_CONF": str(dead_controller_conf)}), MemoryRegistry())
    answers = await asyncio.gather(*(poller.get(j) for j in jobs))
    assert {a.phase for a in answers} == {Phase.UNKNOWN}
    assert all(a.phase.alive for a in answers)


def test_shared_answers_that_cannot_be_true_are_refused() -> None:
    now = time.time()
    info = JobInfo("5", Phase.RUNNING, "RUNNING", "node1")
    good = info_to_dict(info)
    assert shared_answer("5", now - 1, good, now) == info
    for read_at, data in [
        (now + 3600, good),  # "fresh" for an hour: would hide every real answer meanwhile
        (None, good),
        ("soon", good),
        (now, {**good, "phase": "owned"}),
        (now, {**good, "job_id": "6"}),
        (now, {**good, "extra": "1"}),
        (now, {**good, "state": 5}),
        (now, None),
        (now, ["5"]),
    ]:
        assert shared_answer("5", read_at, data, now) is None, (read_at, data)


async def test_garbage_in_the_shared_cache_is_ignored(jobs: list[str], redis_url: str) -> None:
    """Whatever was written for a job, the poller asks Slurm and answers; it never raises."""
    import redis.asyncio as aioredis

    prefix = f"jvnc-garbage-{uuid.uuid4().hex[:8]}:"
    raw = aioredis.from_url(redis_url)
    registry = ResilientRegistry(RedisRegistry(redis_url, prefix=prefix))
    ended = {**info_to_dict(JobInfo(jobs[1], Phase.ENDED, "CANCELLED")), "phase": "ended"}
    try:
        await raw.set(f"{prefix}job:{jobs[0]}", "not json")
        await raw.set(f"{prefix}job:{jobs[1]}", json.dumps({"read_at": time.time() + 10**6, "state": ended}))
        await raw.set(f"{prefix}job:{jobs[2]}", json.dumps({"read_at": "x", "state": {"phase": "ended"}}))
        poller = JobPoller(CountingClient(), registry, interval=30)
        answers = await asyncio.gather(*(poller.get(j) for j in jobs[:3]))
        assert {a.phase for a in answers} <= {Phase.QUEUED, Phase.RUNNING}, answers
        assert poller.rejected == 3
    finally:
        await raw.aclose()
        await registry.close()
