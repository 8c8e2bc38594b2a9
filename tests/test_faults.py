"""Faults of the test bed under a live desktop, each tested as the user lives it: the hub restarted or
killed outright, Redis down during a spawn, the Slurm controller down, a node lost (its slurmd killed),
every GPU taken. Each disturbs the whole bed, so the module runs alone (tests/isolation.py)."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import procs
import pytest
from conftest import STATE, HubBed, RedisBed, devstack
from hubclient import HubUser, spawn_watching_progress
from test_spawner import (
    _logged_in,
    hub_log_since,
    job_processes,
    job_reason,
    job_state,
    rfb_through_hub,
    spawner_state,
    squeue,
)

# Whose servers, jobs and homes these tests use; the whole bed to itself (tests/isolation.py).
pytestmark = [pytest.mark.users("alice", "bob"), pytest.mark.alone]


@pytest.fixture
def alice(hub: HubBed) -> Iterator[HubUser]:
    yield from _logged_in(hub, "alice")


def take_every_free_gpu() -> list[str]:
    """One-GPU jobs until one has to wait: the cluster's free GPUs are then all held by these."""
    hogs: list[str] = []
    for _ in range(8):  # 2 nodes x 2 GPUs, with room to spare
        job = subprocess.run(
            ["sbatch", "--parsable", "--gres=gpu:1", "--mem=64M", "-o", "/dev/null", "--wrap", "sleep 300"],
            capture_output=True, text=True, check=True,
        ).stdout.strip()  # fmt: skip
        deadline = time.monotonic() + 30
        while (state := job_state(job)) not in {"RUNNING", "PENDING"} or (
            state == "PENDING" and not job_reason(job)
        ):
            assert time.monotonic() < deadline, f"hog {job} neither runs nor waits: {state}"
            time.sleep(0.2)
        if state == "PENDING":  # no GPU left: this one would only stand in alice's way
            subprocess.run(["scancel", job], check=True)
            return hogs
        hogs.append(job)
    raise AssertionError(f"more GPUs than expected: {hogs}")


async def test_pending_shows_slurms_reason_and_a_cancelled_job_ends_the_spawn(alice: HubUser) -> None:
    # Take every GPU still free (a demo desktop may hold some), so alice's desktop must wait for Resources.
    hogs = take_every_free_gpu()
    try:
        progress = spawn_watching_progress(alice, options={"gpus": 1, "memory_gb": 1})
        deadline = time.monotonic() + 20
        while not any("Resources" in e.get("message", "") for e in progress.events):
            assert time.monotonic() < deadline, progress.events
            await asyncio.sleep(0.2)
        (job_id,) = squeue("alice")
        subprocess.run(["scancel", job_id], check=True)  # as an admin would
        started = time.monotonic()
        alice.wait_stopped(timeout=20)
        assert time.monotonic() - started < 10
        final = progress.messages(timeout=10)
        assert any(f"Slurm job {job_id} was cancelled (CANCELLED" in m for m in final), final
    finally:
        subprocess.run(["scancel", *hogs])


async def test_desktop_survives_a_hub_restart(alice: HubUser, hub: HubBed) -> None:
    alice.api("POST", "/users/alice/server", json={"gpus": 0, "memory_gb": 1})
    alice.wait_ready()
    (job_id,) = squeue("alice")
    devstack("hub", "stop")
    devstack("hub", "start")
    again = HubUser(hub.url, "alice", hub.password)
    again.wait_ready(timeout=30)
    assert spawner_state("alice")["job_id"] == job_id
    assert squeue("alice") == [job_id]
    assert (await rfb_through_hub(again)).init is not None


async def test_a_hub_killed_outright_finds_its_desktop_again(
    alice: HubUser, hub: HubBed, redis_bed: RedisBed
) -> None:
    """SIGKILL, no clean exit: the job keeps running, the restarted hub finds it from its database (the
    spawner's batchspawner state), its registry entry still says where it runs, and no second job or
    desktop process appears."""
    import redis.asyncio as aioredis

    alice.api("POST", "/users/alice/server", json={"gpus": 0, "memory_gb": 1})
    alice.wait_ready()
    (job_id,) = squeue("alice")
    assert (await rfb_through_hub(alice)).init is not None  # the desktop is up
    xvnc_before = procs.of_user("alice", "Xvnc") | procs.of_user("alice", "Xtigervnc")
    assert xvnc_before, "no desktop process of alice's"
    pid = int((STATE / "hub" / "jupyterhub.pid").read_text())
    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while Path(f"/proc/{pid}").exists() and procs.state(pid) not in {"Z", "X"}:
        assert time.monotonic() < deadline, "the hub outlived SIGKILL"
        await asyncio.sleep(0.1)
    assert squeue("alice") == [job_id]  # Slurm alone holds the desktop now
    devstack("hub", "start")
    again = HubUser(hub.url, "alice", hub.password)
    again.wait_ready(timeout=30)
    assert spawner_state("alice") == {"job_id": job_id, "job_status": spawner_state("alice")["job_status"]}
    assert squeue("alice") == [job_id]
    assert (await rfb_through_hub(again)).init is not None
    xvnc_after = procs.of_user("alice", "Xvnc") | procs.of_user("alice", "Xtigervnc")
    assert xvnc_after == xvnc_before  # the same desktop, not a second one
    raw = aioredis.from_url(redis_bed.auth_url, decode_responses=True)
    try:
        entry = json.loads(await raw.get("jupyter-vnc:session:alice/"))
        assert entry["job_id"] == job_id and entry["state"] == "running" and entry["node"], entry
    finally:
        await raw.aclose()


async def test_redis_down_during_a_spawn_loses_nothing(alice: HubUser, redis_bed: RedisBed) -> None:
    """The registry's Redis stops while alice's desktop is being spawned: the spawn goes on and the
    desktop works; when Redis is back, the hub writes what it missed (the admin CLI lists sessions from
    there); the stop then removes the entry. No job is left."""
    import redis.asyncio as aioredis

    devstack("redis", "stop")
    try:
        response = alice.api("POST", "/users/alice/server", json={"gpus": 0, "memory_gb": 1})
        assert response.status_code in {201, 202}, response.text
        alice.wait_ready(timeout=150)
        (job_id,) = squeue("alice")
        assert (await rfb_through_hub(alice)).init is not None
    finally:
        devstack("redis", "start")
    raw = aioredis.from_url(redis_bed.auth_url, decode_responses=True)
    try:
        deadline = time.monotonic() + 60  # written back at the next write or poll (every 10 s)
        while not (found := await raw.get("jupyter-vnc:session:alice/")):
            assert time.monotonic() < deadline, "the desktop never reached the registry after Redis came back"
            await asyncio.sleep(0.5)
        entry = json.loads(found)
        assert entry["job_id"] == job_id and entry["state"] == "running", entry
        alice.api("DELETE", "/users/alice/server")
        alice.wait_stopped(timeout=90)
        assert await raw.get("jupyter-vnc:session:alice/") is None
        assert squeue("alice") == []
    finally:
        await raw.aclose()


async def test_slurm_controller_down_is_unknown_and_the_desktop_lives_on(alice: HubUser) -> None:
    alice.api("POST", "/users/alice/server", json={"gpus": 0, "memory_gb": 1})
    alice.wait_ready()
    (job_id,) = squeue("alice")
    conf = Path(devstack("slurm", "conf").stdout.strip())
    pid = int((conf.parent.parent / "slurmctld.pid").read_text())
    log_start = (STATE / "logs" / "jupyterhub.log").stat().st_size
    subprocess.run(["kill", str(pid)], check=True)
    try:
        # A poll of the hub (every 10 s) that found no controller, as its log says, then: alive. The
        # poll waits out squeue's own retries (30-60 s on this machine).
        sign = f"Desktop job {job_id} of alice: Slurm does not answer"
        deadline = time.monotonic() + 180
        while sign not in hub_log_since(log_start):
            assert time.monotonic() < deadline, "no poll of the hub met the controller down"
            await asyncio.sleep(0.5)
        assert "" in alice.api("GET", "/users/alice").json()["servers"]
        assert alice.open_server(path="lab").status_code == 200
        assert alice.server_api("vnc/api/status").json()["state"] == "running"
    finally:
        devstack("slurm", "start")
    assert squeue("alice") == [job_id]
    assert (await rfb_through_hub(alice)).init is not None


async def test_a_spawn_while_the_slurm_controller_is_down_fails_with_slurms_words(alice: HubUser) -> None:
    """The controller is down when alice asks for a desktop: the spawn ends with Slurm's own reason,
    not a hang until the start timeout, and nothing is left once Slurm is back."""
    conf = Path(devstack("slurm", "conf").stdout.strip())
    pid = int((conf.parent.parent / "slurmctld.pid").read_text())
    subprocess.run(["kill", str(pid)], check=True)
    try:
        started = time.monotonic()
        progress = spawn_watching_progress(alice, options={"gpus": 0, "memory_gb": 1})
        alice.wait_stopped(timeout=150)
        took = time.monotonic() - started
        messages = progress.messages()
    finally:
        devstack("slurm", "start")
    said = [m for m in messages if "Slurm did not accept the desktop job" in m]
    assert said and "controller" in said[0].lower(), messages
    assert took < 120, took  # the Slurm command's own time limit (slurm_timeout, 30 s), not the hub's
    assert squeue("alice") == []


@pytest.fixture
def a_node_of_her_own() -> Iterator[None]:
    """Nodes that run anyone's job (a demo desktop) drained while the test runs, so alice's desktop
    lands on a node nobody else uses: failing it must not end a desktop the README says survives a
    test run. Drained nodes keep their jobs; they take new ones again afterwards."""
    nodes = subprocess.run(["sinfo", "-h", "-N", "-p", "vnc", "-o", "%N %t"], capture_output=True, text=True)
    states = dict(line.split() for line in nodes.stdout.splitlines() if line.strip())
    busy = sorted(n for n, state in states.items() if state.rstrip("*~#") in {"mix", "alloc", "comp"})
    if len(busy) == len(states):
        pytest.skip(f"every node runs someone's job ({', '.join(busy)}): none may be failed")
    for node in busy:
        drain = ["scontrol", "update", f"NodeName={node}", "State=DRAIN", "Reason=jvnc-test"]
        subprocess.run(drain, check=True)
    try:
        yield
    finally:
        for node in busy:
            subprocess.run(["scontrol", "update", f"NodeName={node}", "State=RESUME"], check=False)


def registry_entry(redis_bed: RedisBed, user: str, server: str = "") -> str:
    """The hub's registry entry of a desktop (what `jupyter-vnc sessions` lists), "" when none."""
    return redis_bed.cli("GET", f"jupyter-vnc:session:{user}/{server}").strip()


async def test_a_desktop_on_a_failed_node_is_noticed_and_the_user_told_why(
    alice: HubUser, a_node_of_her_own: None, redis_bed: RedisBed
) -> None:
    """The node's slurmd dies (the node is lost): Slurm declares it DOWN after SlurmdTimeout and the
    job NODE_FAIL; the hub stops waiting for the server and tells alice the node failed."""
    alice.api("POST", "/users/alice/server", json={"gpus": 0, "memory_gb": 1, "hours": 1})
    alice.wait_ready(timeout=150)
    (job_id,) = squeue("alice")
    assert job_id in registry_entry(redis_bed, "alice")
    node = subprocess.run(["squeue", "-h", "-j", job_id, "-o", "%N"], capture_output=True, text=True).stdout
    log_start = (STATE / "logs" / "jupyterhub.log").stat().st_size
    os.kill(int((STATE / "slurm" / f"slurmd.{node.strip()}.pid").read_text()), signal.SIGKILL)
    try:
        alice.wait_stopped(timeout=240)  # SlurmdTimeout is 30 s; then a poll of the hub (10 s)
    finally:
        devstack("slurm", "start")  # slurmd back: the node resumes and ends what is left of the job
    said = f"Your desktop's Slurm job {job_id} ended because its node failed (NODE_FAIL"
    assert said in hub_log_since(log_start)
    page = alice.http.get(f"{alice.url}/hub/user/alice/")  # the hub's "not running" page
    assert f"Slurm job {job_id} ended because its node failed (NODE_FAIL" in page.text, page.text[-2000:]
    assert registry_entry(redis_bed, "alice") == "", "the registry still lists the lost desktop"
    deadline = time.monotonic() + 60
    while job_processes(job_id):
        assert time.monotonic() < deadline, f"processes of job {job_id} left: {job_processes(job_id)}"
        await asyncio.sleep(0.5)
