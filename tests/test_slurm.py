"""The Slurm command layer against a real slurmctld/slurmd, and its parser on real squeue output."""

from __future__ import annotations

import asyncio
import os
import pwd
import shutil
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

from jupyter_vnc.slurm import (
    CommandResult,
    JobInfo,
    Phase,
    SlurmClient,
    SlurmError,
    first_host,
    parse_sbatch,
    parse_squeue,
)

# Whose servers, jobs and homes these tests use (tests/isolation.py: modules of other users run beside).
pytestmark = pytest.mark.users("alice", "bob")

# --- parsing: squeue output exactly as Slurm 22.05 printed it on the test bed -------------------


def test_pending_and_running_jobs_parse_with_node_and_reason() -> None:
    out = "7#PENDING##Priority\n8#RUNNING#node2#None\n"
    jobs = parse_squeue(CommandResult(0, out, ""), ["7", "8"])
    assert jobs["7"] == JobInfo("7", Phase.QUEUED, "PENDING", "", "Priority")
    assert jobs["8"].phase is Phase.RUNNING and jobs["8"].node == "node2" and jobs["8"].reason == ""


def test_finished_job_keeps_its_end_state() -> None:
    jobs = parse_squeue(
        CommandResult(0, "2#CANCELLED#node2#None\n1#TIMEOUT#node1#TimeLimit\n", ""), ["1", "2"]
    )
    assert jobs["1"].phase is Phase.ENDED and jobs["1"].state == "TIMEOUT" and jobs["1"].reason == "TimeLimit"
    assert jobs["2"].phase is Phase.ENDED and jobs["2"].state == "CANCELLED"


def test_empty_answer_means_slurm_forgot_the_job() -> None:
    jobs = parse_squeue(CommandResult(0, "", ""), ["41"])
    assert jobs["41"].phase is Phase.ENDED and jobs["41"].state == ""


def test_invalid_job_id_error_means_ended_not_unknown() -> None:
    err = "slurm_load_jobs error: Invalid job id specified\n"
    assert parse_squeue(CommandResult(1, "", err), ["99999"])["99999"].phase is Phase.ENDED


def test_unreachable_controller_is_unknown_and_counts_as_alive() -> None:
    err = "slurm_load_jobs error: Unable to contact slurm controller (connect failure)\n"
    info = parse_squeue(CommandResult(1, "", err), ["5", "6"])
    assert {i.phase for i in info.values()} == {Phase.UNKNOWN}
    assert info["5"].phase.alive and "Unable to contact slurm controller" in info["5"].error


def test_unrecognised_state_is_unknown_not_ended() -> None:
    assert parse_squeue(CommandResult(0, "3#SOMETHING_NEW#node1#None", ""), ["3"])["3"].phase is Phase.UNKNOWN


@pytest.mark.parametrize(
    ("nodes", "first"),
    [("node1", "node1"), ("node[1-2]", "node1"), ("gpu[03-05,9],cpu1", "gpu03"), ("a1,b2", "a1"),
     ("", ""), ("n/a", "")],
)  # fmt: skip
def test_first_host_of_a_host_list(nodes: str, first: str) -> None:
    assert first_host(nodes) == first


def test_sbatch_output_with_and_without_cluster() -> None:
    assert parse_sbatch("123\n") == "123"
    assert parse_sbatch("124;jvnc\n") == "124"
    with pytest.raises(SlurmError, match="no job id"):
        parse_sbatch("sbatch: error: Batch job submission failed\n")


# --- the real cluster ---------------------------------------------------------------------------


@pytest.fixture
def job_dir(test_user: pwd.struct_passwd) -> Iterator[Path]:
    """A directory the test user owns, for job output files."""
    path = Path(tempfile.mkdtemp(prefix="jvnc-slurm-test-"))
    os.chown(path, test_user.pw_uid, test_user.pw_gid)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def script(body: str, *options: str) -> str:
    lines = ["#!/bin/bash", *(f"#SBATCH {o}" for o in options), body, ""]
    return "\n".join(lines)


async def wait_for_phase(
    client: SlurmClient, job_id: str, phases: Sequence[Phase], timeout: float = 30
) -> JobInfo:
    deadline = time.monotonic() + timeout
    while True:
        info = (await client.query([job_id]))[job_id]
        if info.phase in phases:
            return info
        if time.monotonic() > deadline:
            raise AssertionError(f"job {job_id} still {info} after {timeout}s")
        await asyncio.sleep(0.1)


async def test_job_runs_as_the_user_on_a_node_and_sees_its_gpu(slurm, test_user, job_dir) -> None:
    client = SlurmClient(test_user.pw_name)
    out = job_dir / "gpu.out"
    job_id = await client.submit(
        script('echo "user=$(id -un) gpus=$CUDA_VISIBLE_DEVICES node=$SLURMD_NODENAME"; sleep 1',
               f"--output={out}", "--gres=gpu:1", "--partition=vnc", "--time=2")
    )  # fmt: skip
    first = (await client.query([job_id]))[job_id]
    assert first.phase in {Phase.QUEUED, Phase.RUNNING}, first
    running = await wait_for_phase(client, job_id, [Phase.RUNNING])
    assert running.node in {"node1", "node2"}
    done = await wait_for_phase(client, job_id, [Phase.ENDED])
    assert done.state == "COMPLETED"
    text = out.read_text()
    assert f"user={test_user.pw_name} " in text
    gpus = text.split("gpus=")[1].split()[0]
    assert gpus in {"0", "1"}, text
    assert f"node={running.node}" in text


async def test_cancelled_job_is_gone_with_its_processes(slurm, test_user, job_dir) -> None:
    client = SlurmClient(test_user.pw_name)
    marker = f"jvnc-cancel-{os.getpid()}-{time.time_ns()}"
    job_id = await client.submit(
        script(f"exec -a {marker} sleep 300", f"--output={job_dir}/c.out", "--time=5")
    )
    try:
        await wait_for_phase(client, job_id, [Phase.RUNNING])
        # RUNNING in Slurm comes a moment before the batch script has started its program.
        deadline = time.monotonic() + 20
        while not _processes_named(marker):
            assert time.monotonic() < deadline, "the job's process never started"
            await asyncio.sleep(0.1)
    finally:
        await client.cancel(job_id)  # also when the test fails: a job left behind upsets every later test
    ended = await wait_for_phase(client, job_id, [Phase.ENDED], timeout=15)
    assert ended.state == "CANCELLED"
    deadline = time.monotonic() + 10
    while _processes_named(marker) and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
    assert not _processes_named(marker), "the cancelled job's process is still running"


def _processes_named(marker: str) -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and marker.encode() in (entry / "cmdline").read_bytes():
                pids.append(int(entry.name))
        except OSError:
            continue
    return pids


class CountingClient(SlurmClient):
    """Counts the commands it runs (test-side instrumentation, not a fake: the commands are real)."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.commands: list[str] = []

    async def run(self, argv, **kwargs):  # type: ignore[override]
        self.commands.append(argv[0])
        return await super().run(argv, **kwargs)


async def test_one_squeue_call_answers_for_many_jobs(slurm, test_user, job_dir) -> None:
    submitter = SlurmClient(test_user.pw_name)
    ids = [
        await submitter.submit(script("sleep 60", f"--output={job_dir}/m%j.out", "--time=2"))
        for _ in range(4)
    ]
    try:
        poller = CountingClient()  # the hub's own identity, like one shared poller
        answer = await poller.query([*ids, "999999"])
        assert poller.commands == ["squeue"]
        assert all(answer[i].phase in {Phase.QUEUED, Phase.RUNNING} for i in ids), answer
        assert answer["999999"].phase is Phase.ENDED
    finally:
        for i in ids:
            await submitter.cancel(i)


async def test_forgotten_job_id_is_ended(slurm) -> None:
    info = (await SlurmClient().query(["999998"]))["999998"]
    assert info.phase is Phase.ENDED and info.state == ""


async def test_unreachable_controller_is_unknown_never_finished(dead_controller_conf: Path) -> None:
    client = SlurmClient(env={"SLURM_CONF": str(dead_controller_conf)})
    info = (await client.query(["1", "2"]))["1"]
    assert info.phase is Phase.UNKNOWN and info.phase.alive
    assert "Unable to contact slurm controller" in info.error


async def test_slow_controller_is_unknown_after_the_timeout(dead_controller_conf: Path) -> None:
    conf = dead_controller_conf
    conf.write_text(conf.read_text().replace("MessageTimeout=2\n", ""))  # squeue now retries for ~18 s
    client = SlurmClient(env={"SLURM_CONF": str(conf)}, timeout=1.0)
    started = time.monotonic()
    info = (await client.query(["1"]))["1"]
    assert time.monotonic() - started < 5
    assert info.phase is Phase.UNKNOWN and "did not answer within 1s" in info.error


async def test_another_users_job_cannot_be_cancelled(slurm, test_user, job_dir) -> None:
    owner = SlurmClient(test_user.pw_name)
    job_id = await owner.submit(script("sleep 60", f"--output={job_dir}/o.out", "--time=2"))
    try:
        with pytest.raises(SlurmError, match=r"scancel .* failed"):
            await SlurmClient("bob").cancel(job_id)
        assert (await owner.query([job_id]))[job_id].phase.alive
    finally:
        await owner.cancel(job_id)


async def test_users_see_only_their_own_jobs(slurm, test_user, job_dir) -> None:
    """PrivateData=jobs: another user learns nothing of a desktop job (id, node, work directory)."""
    owner = SlurmClient(test_user.pw_name)
    job_id = await owner.submit(script("sleep 60", f"--output={job_dir}/p.out", "--time=2"))
    try:
        theirs = await SlurmClient("bob").run(["squeue", "-h", "-t", "all", "-o", "%i"])
        assert theirs.returncode == 0 and job_id not in theirs.stdout.split()
        detail = await SlurmClient("bob").run(["scontrol", "show", "job", job_id])
        assert job_dir.name not in detail.stdout + detail.stderr
        assert (await SlurmClient().query([job_id]))[job_id].phase.alive  # the hub (root) sees it
    finally:
        await owner.cancel(job_id)


async def test_submit_error_carries_slurms_message(slurm, test_user) -> None:
    with pytest.raises(SlurmError, match=r"[Ii]nvalid partition"):
        await SlurmClient(test_user.pw_name).submit(script("true", "--partition=nosuchpartition"))


async def test_a_job_can_span_both_nodes(slurm, test_user, job_dir) -> None:
    client = SlurmClient(test_user.pw_name)
    job_id = await client.submit(
        script("srun hostname; sleep 2", f"--output={job_dir}/multi.out", "--nodes=2", "--time=2")
    )
    running = await wait_for_phase(client, job_id, [Phase.RUNNING])
    assert running.nodes == "node[1-2]" and running.node == "node1"
    assert (await wait_for_phase(client, job_id, [Phase.ENDED])).state == "COMPLETED"


def test_an_answer_in_another_format_is_unknown_not_ended() -> None:
    """A wrapper or a login banner in the output must not make every job look forgotten."""
    jobs = parse_squeue(CommandResult(0, "Welcome to login1!\n3|RUNNING|node1|None\n", ""), ["3", "4"])
    assert {j.phase for j in jobs.values()} == {Phase.UNKNOWN}
    assert "unreadable squeue line" in jobs["4"].error
