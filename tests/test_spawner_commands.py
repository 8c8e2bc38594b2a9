"""A configuration written for plain batchspawner SlurmSpawner, unchanged, on VNCSlurmSpawner.

Every Slurm command goes through ``run_command``, as upstream's own tests expect: this double
records each command line and answers from a script, the way batchspawner's test suite does. The real
Slurm behind such commands (ssh to a login node, PrivateData=jobs) is tested in test_offsite_hub.py.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Iterator
from types import SimpleNamespace

import pytest
from tornado import web
from traitlets.config import Config

from jupyter_vnc import spawner as spawner_module
from jupyter_vnc.slurm import Phase
from jupyter_vnc.spawner import VNCSlurmSpawner

# No service: also run against the lowest declared dependency versions (devstack/floors).
pytestmark = pytest.mark.unit

# What a site that runs plain SlurmSpawner has in its jupyterhub_config.py today.
SITE_CONFIG = """
c.SlurmSpawner.exec_prefix = "ssh -p 2222 login-{partition} sudo -E -u {username}"
c.SlurmSpawner.batch_submit_cmd = "/opt/site/bin/sbatch --parsable --clusters={cluster}"
c.SlurmSpawner.batch_query_cmd = "/opt/site/bin/squeue -h -j {job_id} -o '%T %B'"
c.SlurmSpawner.batch_cancel_cmd = "/opt/site/bin/scancel --clusters={cluster} {job_id}"
c.SlurmSpawner.req_cluster = "gpu"
c.SlurmSpawner.req_partition = "vis"
c.SlurmSpawner.req_memory = "32G"
c.SlurmSpawner.req_runtime = "8:00:00"
c.SlurmSpawner.req_gres = "gpu:a100:1"
c.VNCSlurmSpawner.max_gpus = 2
c.Spawner.startup_poll_interval = 0.05
"""
PREFIX = "ssh -p 2222 login-vis sudo -E -u alice"


class ScriptedSpawner(VNCSlurmSpawner):
    """batchspawner's test double: each command must match the next pattern and gets its answer
    (a string, or an exception to raise)."""

    script: list[tuple[str, object]]
    ran: list[str]

    async def run_command(self, cmd: str, input: str | None = None, env: dict | None = None) -> str:
        self.ran.append(cmd)
        assert self.script, f"unexpected command: {cmd}"
        pattern, answer = self.script.pop(0)
        assert re.fullmatch(pattern, cmd), f"{cmd!r} does not match {pattern!r}"
        if isinstance(answer, Exception):
            raise answer
        return str(answer)


def site_spawner(
    config: str = SITE_CONFIG, cls: type[ScriptedSpawner] = ScriptedSpawner, **traits: object
) -> ScriptedSpawner:
    from jupyterhub.objects import Hub

    c = Config()
    exec(config, {"c": c})
    user = SimpleNamespace(name="alice", escaped_name="alice", url="/user/alice/", server=None, spawners={})
    traits.setdefault("poll_interval", 0)  # every poll asks anew
    spawner = cls(user=user, hub=Hub(), cmd=["singleuser_command"], config=c, **traits)
    spawner.script, spawner.ran = [], []
    return spawner


@pytest.fixture(autouse=True)
def fresh_pollers() -> Iterator[None]:
    spawner_module._SHARED.clear()  # each test's double answers its own poller
    yield
    spawner_module._SHARED.clear()


async def test_the_sites_commands_prefix_and_variables_are_used() -> None:
    spawner = site_spawner()
    assert (
        spawner.command(spawner.batch_submit_cmd)
        == f"{PREFIX} /opt/site/bin/sbatch --parsable --clusters=gpu"
    )
    spawner.job_id = "4242"
    assert spawner.command(spawner.batch_cancel_cmd) == f"{PREFIX} /opt/site/bin/scancel --clusters=gpu 4242"
    # A value that is not one shell word stays one word.
    odd = site_spawner(SITE_CONFIG + 'c.SlurmSpawner.req_cluster = "gpu; rm -rf ~"\n')
    assert odd.command(odd.batch_submit_cmd).endswith("--clusters='gpu; rm -rf ~'")


async def test_the_admins_req_values_are_the_forms_defaults_and_the_scripts() -> None:
    spawner = site_spawner()
    assert spawner.limits.defaults() == {
        "gpus": 1, "memory_gb": 32, "hours": 8.0, "resolution": "1920x1080", "partition": "vis",
        "queue_hours": 24.0,  # default_queue_hours: no req_* for it, ours
        "email": False,
    }  # fmt: skip
    form = spawner.render_options_form(spawner)
    assert re.search(r'name="memory_gb"[^>]*value="32"', form), form
    assert re.search(r'name="hours"[^>]*value="8(\.0)?"', form), form
    subvars = spawner.get_req_subvars()
    subvars["cmd"] = spawner.cmd_formatted_for_batch()
    script = await spawner._get_batch_script(**subvars)
    for line in ("--mem=32G", "--time=8:00:00", "--gres=gpu:a100:1", "--partition=vis", "--get-user-env=L"):
        assert f"#SBATCH {line}\n" in script, line
    # A user's choice changes the numbers; the GPU type stays the site's.
    spawner.user_options = {"gpus": 2, "memory_gb": 48, "hours": 2}
    spawner.request = spawner.validated_request()
    subvars = spawner.get_req_subvars()
    assert (subvars["gres"], subvars["memory"], subvars["runtime"]) == ("gpu:a100:2", "48G", "2:00:00")
    spawner.user_options = {"memory_gb": 65}  # limits still bound the choice
    with pytest.raises(web.HTTPError, match="memory_gb must be between 1 and 64"):
        spawner.validated_request()


async def test_a_user_who_asks_for_mail_gets_slurms_mail_options_and_only_then() -> None:
    spawner = site_spawner(email_address="{username}@uni.example")
    assert 'name="email"' in spawner.render_options_form(
        spawner
    ) and "alice@uni.example" in spawner.render_options_form(spawner)

    async def script(options: dict) -> str:
        spawner.user_options = options
        spawner.request = spawner.validated_request()
        subvars = {**spawner.get_req_subvars(), "cmd": spawner.cmd_formatted_for_batch()}
        return await spawner._get_batch_script(**subvars)

    asked = await script({"email": True})
    assert "#SBATCH --mail-type=BEGIN,FAIL\n#SBATCH --mail-user=alice@uni.example\n" in asked
    assert "--mail" not in await script({})
    # A site without mail: no checkbox, and the option is refused before anything is submitted.
    plain = site_spawner()
    assert 'name="email"' not in plain.render_options_form(plain)
    plain.user_options = {"email": True}
    with pytest.raises(web.HTTPError, match="this site does not send e-mail"):
        plain.validated_request()


async def test_a_sites_own_per_job_query_is_honoured_and_unknown_is_not_ended() -> None:
    spawner = site_spawner()
    assert spawner.batch_query_all_cmd == ""  # the site changed batch_query_cmd: theirs, per job
    spawner.job_id = "4242"
    query = rf"{re.escape(PREFIX)} /opt/site/bin/squeue -h -j 4242 -o '%T %B'"
    spawner.script = [
        (query, "PENDING "),
        (query, "RUNNING gpu07"),
        (query, RuntimeError("slurm_load_jobs error: Unable to contact slurm controller")),
        (query, RuntimeError("ssh: connect to host login-vis port 2222: Connection refused")),
    ]
    assert (await spawner.query(max_age=0)).phase is Phase.QUEUED
    info = await spawner.query(max_age=0)
    assert (info.phase, info.node, spawner.job_status) == (Phase.RUNNING, "gpu07", "RUNNING gpu07")
    assert await spawner.poll() is None  # controller down: alive
    assert await spawner.poll() is None  # login node unreachable: alive
    assert spawner.job_id == "4242" and not spawner.script


async def test_stop_and_end_go_through_the_sites_commands() -> None:
    """The site's own cancel wrapper (its sudo rule may allow that and not scancel) ends the job;
    one answer of the user's own query saying it is gone is Slurm's word: stop returns, state cleared."""
    spawner = site_spawner()
    spawner.job_id = "4242"
    query = rf"{re.escape(PREFIX)} /opt/site/bin/squeue -h -j 4242 -o '%T %B'"
    spawner.script = [
        (rf"{re.escape(PREFIX)} /opt/site/bin/scancel --clusters=gpu 4242", ""),
        (query, "RUNNING gpu07"),  # still ending
        (query, ""),  # gone
    ]
    await spawner.stop()
    assert not spawner.script, spawner.ran  # stop returned once Slurm said the job was gone
    assert spawner.get_state() == {} and await spawner.poll() == 1  # no further query


async def test_the_clean_stop_is_scancel_batch_where_the_site_kept_scancel() -> None:
    config = SITE_CONFIG.replace("c.SlurmSpawner.batch_cancel_cmd", "# c.SlurmSpawner.batch_cancel_cmd")
    spawner = site_spawner(config)
    spawner.job_id = "4242"
    query = rf"{re.escape(PREFIX)} /opt/site/bin/squeue -h -j 4242 -o '%T %B'"
    spawner.script = [(rf"{re.escape(PREFIX)} scancel --batch --signal=TERM 4242", ""), (query, "")]
    await spawner.stop()
    assert not spawner.script, spawner.ran


async def test_the_shared_query_runs_through_run_command_and_its_own_prefix() -> None:
    """Default batch_query_cmd: one batched query for every desktop, through query_exec_prefix."""
    config = SITE_CONFIG.replace("c.SlurmSpawner.batch_query_cmd", "# c.SlurmSpawner.batch_query_cmd")
    spawner = site_spawner(config + 'c.VNCSlurmSpawner.query_exec_prefix = "ssh operator@login-vis"\n')
    spawner.job_id = "4242"
    spawner.script = [
        (r"ssh operator@login-vis squeue -h -t all -j 4242 -o '%i#%T#%N#%r'", "4242#RUNNING#gpu07#None"),
    ]
    info = await spawner.query(max_age=0)
    assert (info.phase, info.node) == (Phase.RUNNING, "gpu07")


async def test_a_job_the_shared_query_cannot_see_is_asked_about_as_its_user() -> None:
    """PrivateData=jobs: squeue as a plain account says "Invalid job id specified" for others' jobs.
    That is never taken for "ended": the user's own query decides."""
    config = SITE_CONFIG.replace("c.SlurmSpawner.batch_query_cmd", "# c.SlurmSpawner.batch_query_cmd")
    spawner = site_spawner(config + 'c.VNCSlurmSpawner.query_exec_prefix = ""\n')  # as the hub's account
    spawner.job_id = "4242"
    shared = r"squeue -h -t all -j 4242 -o '%i#%T#%N#%r'"
    own = rf"{re.escape(PREFIX)} {shared}"
    spawner.script = [
        (shared, RuntimeError("slurm_load_jobs error: Invalid job id specified")),
        (own, "4242#RUNNING#gpu07#None"),
        (own, "4242#RUNNING#gpu07#None"),  # from then on asked as the user
        *[(own, "")] * 2,  # gone for the user too, asked once more a second later
    ]
    assert await spawner.poll() is None
    assert spawner.job_status == "RUNNING gpu07"
    assert await spawner.poll() is None
    assert await spawner.poll() == 1
    assert not spawner.script, spawner.ran


async def test_a_sites_options_from_form_is_not_hidden() -> None:
    ours = site_spawner()
    with pytest.raises(web.HTTPError, match="gpus must be between 0 and 2"):
        ours.run_options_from_form({"gpus": ["9"]})
    assert ours.run_options_from_form({"gpus": ["2"]})["gpus"] == 2
    theirs = site_spawner(SITE_CONFIG + 'c.Spawner.options_from_form = "simple"\n')
    assert theirs.run_options_from_form({"gpus": ["9"]}) == {"gpus": "9"}  # theirs, checked at spawn


class SlowCancel(ScriptedSpawner):
    """A job that stays queued, and a scancel that takes two seconds (a busy login node)."""

    async def run_command(self, cmd: str, input: str | None = None, env: dict | None = None) -> str:
        self.ran.append(cmd)
        if "sbatch" in cmd:
            return "4242"
        if "scancel" in cmd:
            await asyncio.sleep(2)
            return ""
        return "PENDING " if "squeue" in cmd and "4242" in cmd else ""


async def test_a_spawn_stopped_while_queued_ends_at_once_and_its_job_is_cancelled_beside() -> None:
    """JupyterHub interrupts a pending spawn that its user stops and gives it one second to end before
    it stops the server; a spawn still busy cancelling its job then makes the user's stop an HTTP 500."""
    spawner = site_spawner(cls=SlowCancel, start_timeout=60)
    spawn = asyncio.ensure_future(spawner.start())
    while not any("squeue" in cmd and "4242" in cmd for cmd in spawner.ran):
        await asyncio.sleep(0.01)  # queued, as Slurm says
    interrupted = time.monotonic()
    spawn.cancel()
    with pytest.raises(asyncio.CancelledError):
        await spawn
    assert time.monotonic() - interrupted < 0.5
    while not any("scancel" in cmd for cmd in spawner.ran):
        await asyncio.sleep(0.01)
    while spawner_module._ABANDONING:
        await asyncio.sleep(0.05)  # the cancellation runs to its end beside
    assert spawner.get_state() == {}  # and the job is forgotten once cancelled


class SlowSubmit(ScriptedSpawner):
    """An sbatch that takes a second to answer (a busy login node), and has made job 4243 by then."""

    async def run_command(self, cmd: str, input: str | None = None, env: dict | None = None) -> str:
        self.ran.append(cmd)
        if "sbatch" in cmd:
            await asyncio.sleep(1)
            return "4243"
        return ""


async def test_a_spawn_stopped_while_sbatch_runs_still_cancels_the_job_sbatch_made() -> None:
    """Stopped while sbatch runs: the spawn ends at once, and the job sbatch answers with once it is
    done is cancelled. Killing sbatch instead could leave a job Slurm had accepted that no one knows."""
    spawner = site_spawner(cls=SlowSubmit, start_timeout=60)
    spawn = asyncio.ensure_future(spawner.start())
    while not any("sbatch" in cmd for cmd in spawner.ran):
        await asyncio.sleep(0.01)
    interrupted = time.monotonic()
    spawn.cancel()
    with pytest.raises(asyncio.CancelledError):
        await spawn
    assert time.monotonic() - interrupted < 0.5
    while spawner_module._ABANDONING:
        await asyncio.sleep(0.05)
    assert [cmd for cmd in spawner.ran if "scancel" in cmd] == [
        f"{PREFIX} /opt/site/bin/scancel --clusters=gpu 4243"
    ]
    assert spawner.get_state() == {}
