"""batchspawner 1.3.0's contract for a subclass, as its own test suite checks it, held here in CI.

batchspawner's tests (batchspawner/tests/ of its repository, tag v1.3.0; not in its PyPI packages) run
against VNCSlurmSpawner with ``scripts/batchspawner-upstream-tests CHECKOUT`` and pass, 17 of 17. CI
cannot reach GitHub, so these tests check the same promises in our own words, each where one of
upstream's would fail: a site's tools that read the hub's database, its wrappers for Slurm's commands
and its sudo rule rely on them.

The doubles answer each command from a script (a pattern it must match and the answer), as batchspawner's
own doubles do; the job reports its port through ``mock_port``, as batchspawner's start() reads it.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator
from types import SimpleNamespace

import pytest
from batchspawner import JobStatus
from jupyterhub.objects import Hub
from traitlets import Unicode

from jupyter_vnc import spawner as spawner_module
from jupyter_vnc.spawner import VNCSlurmSpawner

pytestmark = pytest.mark.unit

JOB, NODE, PORT = "4711", "gpu-node-7", 45123


class Scripted(VNCSlurmSpawner):
    """Each command must match the next pattern (re.search) and gets the answer beside it."""

    script: list[tuple[str, str | Exception]]
    ran: list[str]
    scripts_sent: list[str]

    async def run_command(self, cmd: str, input: str | None = None, env: dict | None = None) -> str:
        self.ran.append(cmd)
        if input is not None:
            self.scripts_sent.append(input)
        assert self.script, f"no command expected, ran {cmd!r}"
        pattern, answer = self.script.pop(0)
        assert re.search(pattern, cmd), f"{cmd!r} where {pattern!r} was expected"
        if isinstance(answer, Exception):
            raise answer
        return answer


class SiteScripts(Scripted):
    """A site's own commands, as batchspawner's generic tests give them (no Slurm syntax at all)."""

    exec_prefix = Unicode("")
    batch_submit_cmd = Unicode("site-submit")
    batch_query_cmd = Unicode("site-query {job_id}")
    batch_cancel_cmd = Unicode("site-cancel {job_id}")
    state_pending_re = Unicode("^WAIT")
    state_running_re = Unicode("^GO")
    state_exechost_re = Unicode(r"^GO (\S+)$")
    state_unknown_re = Unicode("^HICCUP")


def make(cls: type[Scripted] = Scripted, **traits: object) -> Scripted:
    user = SimpleNamespace(name="alice", escaped_name="alice", url="/user/alice/", server=None, spawners={})
    traits.setdefault("startup_poll_interval", 0.01)
    spawner = cls(user=user, hub=Hub(), cmd=["singleuser_command"], **traits)
    spawner.script, spawner.ran, spawner.scripts_sent = [], [], []
    spawner.mock_port = PORT  # the job's report of its port, as batchspawner's start() takes it
    return spawner


@pytest.fixture(autouse=True)
def fresh_pollers() -> Iterator[None]:
    spawner_module._SHARED.clear()
    yield
    spawner_module._SHARED.clear()


SUDO = r"^sudo -E -u alice "
SQUEUE = SUDO + rf"squeue .*-j {JOB}\b"


async def test_slurm_as_the_user_through_the_default_exec_prefix() -> None:
    """A plain configuration: every command is ``sudo -E -u USER`` + Slurm's, in batchspawner's order,
    and the answers batchspawner's SlurmSpawner reads ("PENDING ", "RUNNING node") are read alike."""
    spawner = make(
        req_runtime="3-05:10:10", req_nprocs="5", req_options="--comment=site-said",
        req_prologue="module load site-desktop", req_epilogue="echo site-epilogue",
        req_reservation="RES123", req_gres="gpu:1", req_keepvars_extra="SITE_VAR",
    )  # fmt: skip
    assert await spawner.poll() == 1 and spawner.ran == []  # no job: no command
    spawner.script = [
        (SUDO + r"sbatch\b", JOB),
        (SQUEUE, "PENDING "),
        (SQUEUE, "slurm_load_jobs error: Unable to contact slurm controller"),  # Slurm busy: waits
        (SQUEUE, f"RUNNING {NODE}"),
    ]
    assert await asyncio.wait_for(spawner.start(), 10) == (NODE, PORT)
    assert spawner.get_state() == {"job_id": JOB, "job_status": f"RUNNING {NODE}"}  # exactly batchspawner's
    script = spawner.scripts_sent[0]
    for line in ("--time=3-05:10:10", "--cpus-per-task=5", "--comment=site-said", "--reservation=RES123",
                 "--gres=gpu:1"):  # fmt: skip
        assert re.search(rf"^#SBATCH\s+{re.escape(line)}$", script, re.M), line
    assert re.search(r"^#SBATCH --export=\S*,SITE_VAR$", script, re.M)
    server = r"module load site-desktop.*jupyter-vnc-singleuser singleuser_command.*echo site-epilogue"
    assert re.search(server, script, re.S)
    spawner.script = [(SQUEUE, f"RUNNING {NODE}")]
    assert await spawner.poll() is None
    spawner.script = [(SUDO + rf"scancel\b.*{JOB}", ""), (SQUEUE, "")]
    await asyncio.wait_for(spawner.stop(), 10)
    assert spawner.script == [] and await spawner.poll() == 1 and spawner.get_state() == {}


async def test_state_is_batchspawners_and_reloads() -> None:
    spawner = make(SiteScripts)
    spawner.script = [("^site-submit", JOB), ("^site-query", f"GO {NODE}")]
    await asyncio.wait_for(spawner.start(), 10)
    state = spawner.get_state()
    assert state == {"job_id": JOB, "job_status": f"GO {NODE}"}
    again = make(SiteScripts)
    again.load_state(state)
    assert again.job_id == JOB and again.get_state() == state
    again.clear_state()
    assert again.get_state() == {}


async def test_a_sites_own_commands_and_patterns_are_used() -> None:
    spawner = make(SiteScripts, exec_prefix="PREFIX")
    spawner.script = [("^PREFIX site-submit", JOB), (f"^PREFIX site-query {JOB}$", "WAIT"),
                      (f"^PREFIX site-query {JOB}$", f"GO {NODE}")]  # fmt: skip
    assert await asyncio.wait_for(spawner.start(), 10) == (NODE, PORT)
    spawner.script = [(f"^PREFIX site-cancel {JOB}$", "STOP"), (f"^PREFIX site-query {JOB}$", "NOPE")]
    await asyncio.wait_for(spawner.stop(), 10)  # no clean-stop scancel: the site's cancel, at once
    assert spawner.script == [] and await spawner.poll() == 1


async def test_an_empty_submit_answer_is_a_runtime_error_with_slurms_words() -> None:
    spawner = make(SiteScripts)
    spawner.script = [("^site-submit", "")]
    with pytest.raises(RuntimeError, match=r"without a job id \(nothing\)"):
        await asyncio.wait_for(spawner.start(), 10)
    assert (spawner.job_id, spawner.job_status) == ("", "")
    spawner.script = [("^site-submit", "sbatch: error: Batch job submission failed: Invalid account")]
    with pytest.raises(RuntimeError, match="Invalid account"):
        await asyncio.wait_for(spawner.start(), 10)


async def test_a_job_that_vanishes_while_queued_fails_the_spawn_and_is_forgotten() -> None:
    spawner = make(SiteScripts)
    spawner.script = [("^site-submit", JOB), ("^site-query", "xyz"), ("^site-cancel", "")]
    with pytest.raises(RuntimeError):
        await asyncio.wait_for(spawner.start(), 10)
    assert (spawner.job_id, spawner.job_status) == ("", "")
    assert await spawner.query_job_status() == JobStatus.NOTFOUND


async def test_poll_forgets_a_job_the_query_no_longer_names_and_keeps_an_unknown_one() -> None:
    spawner = make(SiteScripts)
    spawner.script = [("^site-submit", JOB), ("^site-query", f"GO {NODE}")]
    await asyncio.wait_for(spawner.start(), 10)
    spawner.script = [("^site-query", "HICCUP controller busy")]
    assert await spawner.poll() is None  # the site's state_unknown_re: alive
    assert spawner.job_id == JOB and spawner.job_status
    spawner.script = [("^site-query", "HICCUP controller busy")]
    assert await spawner.query_job_status() == JobStatus.UNKNOWN
    spawner.script = [("^site-query", "xyz"), ("^site-query", "xyz")]  # asked once more before forgetting
    assert await spawner.poll() == 1
    assert (spawner.job_id, spawner.job_status) == ("", "")


async def test_an_unreadable_answer_to_our_own_query_is_no_end() -> None:
    """The default query (ours, as the user) met with something that is neither our squeue lines nor
    batchspawner's states (a login node's banner): the desktop is kept, never taken for ended."""
    spawner = make()
    spawner.job_id = JOB
    spawner.script = [(SQUEUE, "Welcome to login1. Maintenance on Friday.")]
    assert await spawner.poll() is None
    assert spawner.job_id == JOB
