"""A desktop that waits in the Slurm queue: no hub timeout cancels it, the user's own limit does, and
a user who closes the page and comes back sees the live state. Real hub, real Slurm: the partition is
really down, the job really waits."""

from __future__ import annotations

import asyncio
import subprocess
import time
from collections.abc import Callable, Iterator

import pytest
from conftest import HubBed
from hubclient import HubUser, ProgressReader, spawn_watching_progress
from test_spawner import _logged_in, job_processes, squeue

# Whose servers, jobs and homes these tests use (tests/isolation.py: modules of other users run beside).
pytestmark = pytest.mark.users("mona", "nick")

# devstack/jupyterhub_desktops.py: a job has this long from running to its server answering; JupyterHub's
# own default start_timeout is 60 s. The held desktop waits longer than both.
JOB_START_TIMEOUT = 60
PARTITION = "maint"


@pytest.fixture
def mona(hub: HubBed) -> Iterator[HubUser]:
    yield from _logged_in(hub, "mona")


@pytest.fixture
def nick(hub: HubBed) -> Iterator[HubUser]:
    yield from _logged_in(hub, "nick")


@pytest.fixture
def partition_down(spawner_settings: Callable[[str, dict], None]) -> Iterator[None]:
    """mona's and nick's desktops sent to a partition of their own (devstack/slurm's "maint"), down as
    an admin sets it for maintenance: new jobs wait with reason PartitionDown. Other tests' desktops,
    in the desktops' usual partition, go on beside."""
    for user in ("mona", "nick"):
        spawner_settings(user, {"req_partition": PARTITION})
    subprocess.run(["scontrol", "update", f"PartitionName={PARTITION}", "State=DOWN"], check=True)
    try:
        yield
    finally:
        subprocess.run(["scontrol", "update", f"PartitionName={PARTITION}", "State=UP"], check=True)


def wait_for_message(progress: ProgressReader, text: str, timeout: float) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for event in progress.events:
            if text in event.get("message", ""):
                return event["message"]
        time.sleep(0.2)
    raise AssertionError(f"no {text!r} in {[e.get('message') for e in progress.events]}")


async def test_a_queued_desktop_outlasts_the_hubs_timeouts_and_a_users_own_limit_cancels_hers(
    mona: HubUser,
    nick: HubUser,
    partition_down: None,
) -> None:
    # A job an earlier test cancelled may still be completing: start from none, so each user's one
    # job below is the desktop this test asked for.
    deadline = time.monotonic() + 60
    while squeue("mona") or squeue("nick"):
        assert time.monotonic() < deadline, f"jobs left by earlier tests: {squeue('mona')}, {squeue('nick')}"
        await asyncio.sleep(0.5)
    submitted = time.monotonic()
    waiting = spawn_watching_progress(mona, options={"gpus": 0, "memory_gb": 1})
    impatient = spawn_watching_progress(nick, options={"gpus": 0, "memory_gb": 1, "queue_hours": 0.006})
    wait_for_message(waiting, "the partition is down (PartitionDown)", 30)
    (alice_job,) = squeue("mona")
    (bob_job,) = squeue("nick")

    # nick asked to give up after 0.006 h (21.6 s): his job is cancelled and he is told why.
    gave_up = wait_for_message(impatient, "Gave up", 60)
    assert f"Slurm job {bob_job} was still waiting in the queue after 22 s" in gave_up
    assert "the partition is down (PartitionDown)" in gave_up and "the job was cancelled" in gave_up
    nick.wait_stopped(timeout=20)
    assert squeue("nick") == [] and job_processes(bob_job) == []
    page = nick.http.get(f"{nick.url}/hub/user/nick/lab")
    assert f"Slurm job {bob_job} was still waiting in the queue" in page.text

    # mona closed the page and comes back while her desktop still waits: the spawn goes on, and a new
    # page gets the whole story up to Slurm's live reason, with the time her own limit ends it.
    back = ProgressReader(mona, "")
    current = wait_for_message(back, "Waiting in the Slurm queue", 10)
    assert "PartitionDown" in current and "gives up at" in current

    while time.monotonic() - submitted < JOB_START_TIMEOUT + 5:
        await asyncio.sleep(1)
    assert squeue("mona") == [alice_job], "a hub timeout cancelled the queued desktop"
    subprocess.run(["scontrol", "update", f"PartitionName={PARTITION}", "State=UP"], check=True)
    mona.wait_ready(timeout=60)
    assert squeue("mona") == [alice_job]
    # The page she left open all along followed it to the end.
    waiting.messages(timeout=10)
    assert waiting.events[-1].get("ready") is True, waiting.events[-3:]
