"""A hub that is not a Slurm submit host: JupyterHub as the unprivileged account jvnc-hub, no Slurm
command on its PATH, Slurm (with PrivateData=jobs) reached only by ssh to a login node (sshd on
127.0.0.1, key login, sudo to the users there). devstack/offsite-hub and devstack/login-node start it;
its configuration (devstack/jupyterhub_offsite_config.py) is what such a site writes."""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import procs
import pytest
from conftest import STATE, _managed_service, devstack
from hubclient import HubUser, server_path, spawn_watching_progress
from test_spawner import job_processes, squeue

# Whose servers, jobs and homes these tests use (tests/isolation.py: modules of other users run beside).
pytestmark = pytest.mark.users("olga")

USER = "olga"
URL = f"http://localhost:{os.environ.get('JVNC_OFFSITE_PORT', '8300')}"  # olga's server: olga.localhost
LOG = STATE / "logs" / "offsite-hub.log"


@pytest.fixture(scope="module")
def offsite_hub(slurm) -> Iterator[str]:
    for _ in _managed_service("login-node"):
        for _ in _managed_service("offsite-hub"):
            yield devstack("offsite-hub", "password").stdout.strip()


def stop_all(user: HubUser) -> None:
    for server in list(user.api("GET", f"/users/{USER}").json()["servers"]):
        user.api("DELETE", server_path(USER, server), json={"remove": True} if server else None)
        user.wait_stopped(server, timeout=120)


@pytest.fixture
def olga(offsite_hub: str) -> Iterator[HubUser]:
    user = HubUser(URL, USER, offsite_hub)
    stop_all(user)
    yield user
    stop_all(HubUser(URL, USER, offsite_hub))  # a fresh login: the test may have restarted the hub


@pytest.fixture
def profile_mark() -> Iterator[str]:
    """A variable set in olga's login profile, as a site's module setup would set one."""
    profile = Path(pwd.getpwnam(USER).pw_dir) / ".profile"
    before = profile.read_text() if profile.exists() else None
    mark = uuid.uuid4().hex
    profile.write_text((before or "") + f"\nexport JVNC_PROFILE_MARK={mark}\n")
    yield mark
    if before is None:
        profile.unlink()
    else:
        profile.write_text(before)


def hub_process() -> int:
    out = subprocess.run(
        ["pgrep", "-u", "jvnc-hub", "-f", "jupyterhub_offsite_config"], capture_output=True, text=True
    )
    pids = [int(p) for p in out.stdout.split()]
    assert len(pids) == 1, f"expected one offsite hub process, found {pids}"
    return pids[0]


def log_size() -> int:
    return LOG.stat().st_size


def log_since(offset: int) -> str:
    return LOG.read_bytes()[offset:].decode(errors="replace")


def desktop_environ(job_id: str, timeout: float = 90) -> dict[str, str]:
    """The environment of the desktop session (xfce4-session) of a job, once it runs."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for pid in job_processes(job_id):
            try:
                if Path(f"/proc/{pid}/comm").read_text().strip() == "xfce4-session":
                    raw = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
                    return dict(v.decode(errors="replace").split("=", 1) for v in raw if b"=" in v)
            except OSError:
                continue
        time.sleep(0.5)
    raise AssertionError(f"no desktop session in job {job_id} after {timeout}s")


def server_environ(job_id: str) -> dict[str, str]:
    for pid in job_processes(job_id):
        if any("jupyterhub-singleuser" in part for part in procs.argv(pid)):
            raw = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
            return dict(v.decode(errors="replace").split("=", 1) for v in raw if b"=" in v)
    raise AssertionError(f"no jupyterhub-singleuser in job {job_id}")


def as_hub_account(*sudo_args: str) -> subprocess.CompletedProcess[str]:
    """sudo run by the hub's account to act as olga, the way the spawner's exec_prefix does."""
    return subprocess.run(
        ["/usr/sbin/runuser", "-u", "jvnc-hub", "--", "sudo", "-n", *sudo_args],
        capture_output=True, text=True, cwd="/tmp", env={"PATH": "/usr/bin:/bin", "JUPYTERHUB_X": "1"},
    )  # fmt: skip


def test_the_hub_may_run_slurms_commands_as_its_users_and_nothing_else(offsite_hub: str) -> None:
    """The login node's sudo rule is a real site's (VUB's notebook-platform): sbatch, squeue, scancel
    and sinfo as the users, the environment reset but for JUPYTERHUB_*. Every offsite test spawns,
    polls and stops under it, so nothing the spawner needs may go beyond it."""
    assert as_hub_account("-u", USER, "/usr/bin/squeue", "-h", "-u", USER).returncode == 0
    for refused in (["/usr/bin/mkdir", "-p", "/tmp/jvnc-sudo-probe"], ["/usr/bin/tail", "/etc/hostname"]):
        result = as_hub_account("-u", USER, *refused)
        assert result.returncode != 0 and "password is required" in result.stderr, result
    preserve = as_hub_account("-E", "-u", USER, "/usr/bin/squeue")
    assert "not allowed to preserve the environment" in preserve.stderr, preserve
    kept = as_hub_account("-u", USER, "/usr/bin/sinfo", "--version")
    assert kept.returncode == 0, kept


async def test_a_hub_off_the_submit_host_spawns_restarts_and_stops(olga: HubUser, profile_mark: str) -> None:
    pid = hub_process()
    assert Path(f"/proc/{pid}").stat().st_uid == pwd.getpwnam("jvnc-hub").pw_uid  # not root
    environ = dict(v.split("=", 1) for v in Path(f"/proc/{pid}/environ").read_text().split("\0") if "=" in v)
    assert not any(shutil.which(cmd, path=environ["PATH"]) for cmd in ("sbatch", "squeue", "scancel"))

    start = log_size()
    reader = spawn_watching_progress(olga, options={"gpus": 0, "memory_gb": 1, "hours": 1})
    olga.wait_ready(timeout=150)
    (job_id,) = squeue(USER)
    messages = reader.messages()
    assert f"Submitted Slurm job {job_id} (no GPU, 1 GB, 1 h, 1920x1080, vnc)" in messages, messages
    assert any(m.startswith("Running on node") for m in messages), messages
    # PrivateData=jobs: the hub's own account sees no one's jobs; the job's state is asked as olga.
    assert f"Desktop job {job_id} of olga: the shared status query cannot see it" in log_since(start)
    assert olga.open_server(path="lab").status_code == 200
    assert olga.server_api("vnc/api/status").json()["state"] in {"starting", "running"}
    # Her login environment reached the desktop, as with batchspawner's --get-user-env=L...
    desktop = desktop_environ(job_id)
    assert desktop.get("JVNC_PROFILE_MARK") == profile_mark
    # ...and the hub's token for her server did not: programs in the desktop never see it.
    assert not [k for k in desktop if "TOKEN" in k or "SECRET" in k], sorted(desktop)
    # The admin's settings for the server came through the job script: sudo kept JUPYTERHUB_* only.
    assert server_environ(job_id).get("JUPYTER_VNC_PAUSE_MINUTES") == "30"

    # The hub restarts (SIGTERM; cleanup_servers is off): the desktop lives on and is found again.
    devstack("offsite-hub", "stop")
    assert squeue(USER) == [job_id]
    devstack("offsite-hub", "start")
    again = HubUser(URL, USER, devstack("offsite-hub", "password").stdout.strip())
    assert again.api("GET", f"/users/{USER}").json()["servers"][""]["ready"]
    assert again.open_server(path="lab").status_code == 200
    assert squeue(USER) == [job_id]

    # Stop: the job ends and leaves nothing behind.
    assert again.api("DELETE", server_path(USER)).status_code in {202, 204}
    again.wait_stopped(timeout=90)
    assert squeue(USER) == []
    deadline = time.monotonic() + 30
    while job_processes(job_id):
        assert time.monotonic() < deadline, f"processes of job {job_id} left behind"
        time.sleep(0.5)


async def test_a_job_that_ends_behind_the_hubs_back_is_noticed_over_ssh(olga: HubUser) -> None:
    """The hub cannot see the job itself (PrivateData); its poll still notices the end, through the
    user's own query, and tells her why."""
    response = olga.api("POST", server_path(USER, "two"), json={"gpus": 0, "memory_gb": 1, "hours": 1})
    assert response.status_code in {201, 202}, response.text
    olga.wait_ready("two", timeout=150)
    (job_id,) = squeue(USER)
    start = log_size()
    subprocess.run(["scancel", job_id], check=True)
    olga.wait_stopped("two", timeout=60)  # the hub polls every 10 s
    assert f"Your desktop's Slurm job {job_id} was cancelled" in log_since(start)


def test_doctor_is_green_on_the_hub_off_the_submit_host(offsite_hub: str) -> None:
    """`jupyter-vnc doctor --user olga` as the hub's own account, with the hub's environment: Slurm only
    over ssh, sudo there under the site's rule, PrivateData=jobs; the probe job checks the node."""
    state = STATE / "offsite-hub"
    result = subprocess.run(
        ["/usr/sbin/runuser", "-u", "jvnc-hub", "--", "env", "-i", f"HOME={state}", "LANG=C.UTF-8",
         f"PATH={Path(sys.executable).parent}:{state / 'bin'}", f"JVNC_STATE={STATE}",
         f"JVNC_LOGIN_NODE_SSH={devstack('login-node', 'ssh-prefix').stdout.strip()}",
         str(Path(sys.executable).with_name("jupyter-vnc")), "-f",
         str(state / "config" / "jupyterhub_offsite_config.py"), "doctor", "--user", USER],
        capture_output=True, text=True, cwd="/tmp", timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    for check in (
        "Slurm controller",
        "Partition vnc",
        "Probe job",
        "Node to hub API",
        "Hub to node",
        "VNC server",
    ):
        assert any(line.startswith("[  OK]") and check in line for line in result.stdout.splitlines()), check
    assert f"as {USER} ran on" in result.stdout
    assert squeue(USER) == []
