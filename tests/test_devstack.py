"""The demo stack: its scripts are idempotent, clean up after themselves, and the hub spawns into Slurm."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from conftest import DEVSTACK, STATE, HubBed, devstack
from hubclient import HubUser

from jupyter_vnc.slurm import Phase, SlurmClient

# Whose servers, jobs and homes these tests use (tests/isolation.py: modules of other users run beside).
pytestmark = pytest.mark.users("mona", "nick")


def _pids(pattern: str) -> set[str]:
    out = subprocess.run(["pgrep", "-f", pattern], capture_output=True, text=True).stdout
    return set(out.split())


def test_starting_slurm_twice_is_harmless(slurm) -> None:
    before = _pids("slurmctld -f") | _pids("slurmd -f")
    assert len(before) >= 2
    devstack("slurm", "start")
    assert _pids("slurmctld -f") | _pids("slurmd -f") == before
    sinfo = subprocess.run(["sinfo", "-h", "-o", "%P %T"], capture_output=True, text=True, check=True).stdout
    assert "vnc" in sinfo and "drain" not in sinfo and "down" not in sinfo


def test_gpus_are_scheduled_by_gres(slurm) -> None:
    nodes = subprocess.run(["sinfo", "-h", "-N", "-o", "%N %G"], capture_output=True, text=True, check=True)
    assert "gpu:2" in nodes.stdout


def test_a_redis_of_its_own_stops_without_leftovers(tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root")
    env = {**os.environ, "JVNC_STATE": str(tmp_path), "JVNC_REDIS_PORT": "16391"}
    subprocess.run([DEVSTACK / "redis", "start"], env=env, check=True, capture_output=True)
    subprocess.run([DEVSTACK / "redis", "start"], env=env, check=True, capture_output=True)  # twice: harmless
    anonymous = subprocess.run(["redis-cli", "-p", "16391", "ping"], capture_output=True, text=True).stdout
    assert "NOAUTH" in anonymous  # a local user without the password gets nothing
    password = (tmp_path / "redis" / "password").read_text().strip()
    assert oct((tmp_path / "redis" / "password").stat().st_mode & 0o777) == "0o600"
    pong = subprocess.run(
        ["redis-cli", "-p", "16391", "ping"],
        env={**env, "REDISCLI_AUTH": password},
        capture_output=True,
        text=True,
    ).stdout
    assert pong.strip() == "PONG"
    assert not any(password in Path(f"/proc/{p}/cmdline").read_text() for p in _pids("redis-server"))
    assert len(_pids("redis-server 127.0.0.1:16391")) == 1
    subprocess.run([DEVSTACK / "redis", "stop"], env=env, check=True, capture_output=True)
    assert not _pids("redis-server 127.0.0.1:16391")
    down = subprocess.run([DEVSTACK / "redis", "status"], env=env, capture_output=True, text=True)
    assert down.returncode != 0 and "stopped" in down.stdout


async def test_hub_spawns_a_slurm_job_as_the_user_and_stops_it(hub: HubBed) -> None:
    mona = HubUser(hub.url, "mona", hub.password)
    version = mona.api("GET", "/").json()["version"]
    assert version.split(".")[0] in {"5", "6"}
    assert mona.api("POST", "/users/mona/server").status_code in {201, 202}
    try:
        mona.wait_ready()
        jobs = subprocess.run(
            ["squeue", "-h", "-u", "mona", "-o", "%i %T"], capture_output=True, text=True, check=True
        ).stdout.split("\n")
        running = [line.split()[0] for line in jobs if line.endswith("RUNNING")]
        assert len(running) == 1, jobs
        # Through the proxy, with the hub's OAuth: the single-user server in the job answers.
        assert mona.open_server(path="lab").status_code == 200
        lab = mona.server_api("api/status")
        assert lab.status_code == 200 and "last_activity" in lab.json()
        # Another user gets no access to mona's server.
        nick = HubUser(hub.url, "nick", hub.password)
        url = nick.server_url(owner="mona") + "api/status"
        assert url.startswith("http://mona.localhost:")  # her own origin, not the hub's (subdomain_host)
        other = nick.http.get(url, allow_redirects=True)
        # Refused where it stands: no redirect that could end on some page of nick's own.
        assert (other.status_code, other.url, other.history) == (403, url, [])
        assert "last_activity" not in other.text
    finally:
        mona.api("DELETE", "/users/mona/server")
        mona.wait_stopped()
    info = (await SlurmClient().query(running))[running[0]]
    assert info.phase is Phase.ENDED, info


def test_wrong_password_is_refused(hub: HubBed) -> None:
    with pytest.raises(AssertionError, match="login as mona failed"):
        HubUser(hub.url, "mona", hub.password + "x")


def test_the_hub_runs_as_an_unprivileged_account_under_a_sites_sudo_rule(hub: HubBed) -> None:
    """Every test spawns through this hub: it runs as jvnc-hub, never root, so each Slurm command it
    runs as a user must pass the sudo rule a site gives a batchspawner hub (devstack/install)."""
    import pwd

    pid = int((STATE / "hub" / "jupyterhub.pid").read_text())
    assert Path(f"/proc/{pid}").stat().st_uid == pwd.getpwnam("jvnc-hub").pw_uid
    assert "jupyterhub" in Path(f"/proc/{pid}/cmdline").read_text()
    allowed = subprocess.run(
        ["/usr/sbin/runuser", "-u", "jvnc-hub", "--", "sudo", "-n", "-l", "-U", "jvnc-hub"],
        capture_output=True, text=True, cwd="/tmp",
    ).stdout  # fmt: skip
    assert "(ALL" not in allowed and "SETENV" not in allowed and "/usr/bin/mkdir" not in allowed, allowed
    assert "/usr/bin/sbatch" in allowed and "env_reset" in allowed
