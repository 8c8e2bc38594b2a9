"""The admin CLI against the real test bed, and against broken setups it must name."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import redis.asyncio as aioredis
from conftest import DEVSTACK, HubBed, RedisBed
from hubclient import HubUser

from jupyter_vnc.registry import Session
from jupyter_vnc.registry.redis import RedisRegistry
from jupyter_vnc.slurm import Phase, SlurmClient

CONFIG = DEVSTACK / "jupyterhub_config.py"


def cli(*args: str, config: Path = CONFIG) -> subprocess.CompletedProcess[str]:
    exe = Path(sys.executable).with_name("jupyter-vnc")
    return subprocess.run([str(exe), "-f", str(config), *args], capture_output=True, text=True, timeout=300)


def broken(tmp_path: Path, *overrides: str) -> Path:
    """The demo hub's configuration with a few settings broken on purpose."""
    path = tmp_path / "jupyterhub_config.py"
    path.write_text(f"load_subconfig({str(CONFIG)!r})\n" + "\n".join(overrides) + "\n")
    return path


def test_render_job_is_the_script_a_spawn_submits() -> None:
    result = cli(
        "render-job", "--user", "alice", "--options", '{"gpus": 2, "hours": 1.5, "resolution": "1280x720"}'
    )
    assert result.returncode == 0, result.stderr
    assert "#SBATCH --gres=gpu:2\n" in result.stdout and "#SBATCH --time=1:30:00\n" in result.stdout
    assert "JUPYTER_VNC_RESOLUTION=1280x720" in result.stdout
    assert "TOKEN=" not in result.stdout


@pytest.mark.parametrize(
    ("options", "message"),
    [('{"gpus": 9}', "gpus must be between 0 and 2"), ("not json", "--options must be JSON"),
     ('{"resolution": "1x1;id"}', "resolution must look like")],
)  # fmt: skip
def test_render_job_refuses_bad_options_with_a_message(options: str, message: str) -> None:
    result = cli("render-job", "--user", "alice", "--options", options)
    assert result.returncode == 2 and message in result.stderr and "Traceback" not in result.stderr


def test_render_job_for_an_unknown_user() -> None:
    result = cli("render-job", "--user", "nosuchuser")
    assert result.returncode == 2 and "no Unix user 'nosuchuser'" in result.stderr


def test_doctor_passes_on_the_test_bed(hub: HubBed) -> None:
    result = cli("doctor")
    assert result.returncode == 0, result.stdout
    for check in (
        "Slurm controller",
        "Partition vnc",
        "GPUs in vnc",
        "VNC server",
        "XFCE",
        "Redis",
        "Hub API token",
        "Per-user origins",  # the test bed's hub has subdomain_host: nothing to warn about
    ):
        assert any(line.startswith("[  OK]") and check in line for line in result.stdout.splitlines()), check


@pytest.mark.parametrize(
    ("override", "named"),
    [
        ('c.VNCSlurmSpawner.req_partition = "nosuch"', "Partition nosuch  does not exist"),
        ('c.VNCSlurmSpawner.image = "/nonexistent/desktop.sif"', "/nonexistent/desktop.sif does not exist"),
        ('c.VNCSlurmSpawner.registry_url = "redis://127.0.0.1:1/0"', "Redis at redis://127.0.0.1:1/0 is not"),
        ('c.JupyterHub.services = [{"name": "jupyter-vnc", "api_token": "x"}]', "the hub refused the token"),
        ('c.VNCSlurmSpawner.batchspawner_singleuser_cmd = "/nope/bs-singleuser"', "missing on this host"),
    ],
)
def test_doctor_names_what_is_broken(hub: HubBed, tmp_path: Path, override: str, named: str) -> None:
    result = cli("doctor", config=broken(tmp_path, override))
    assert result.returncode == 1, result.stdout
    assert named in result.stdout
    assert "Traceback" not in result.stdout + result.stderr


async def test_sessions_and_cancel_through_the_hub(hub: HubBed) -> None:
    bob = HubUser(hub.url, "bob", hub.password)
    bob.api("POST", "/users/bob/server", json={"gpus": 1, "memory_gb": 1, "hours": 2})
    try:
        bob.wait_ready()
        listed = cli("sessions")
        assert listed.returncode == 0, listed.stderr
        row = next(line for line in listed.stdout.splitlines() if line.startswith("bob "))
        assert " running " in row and " 1h5" in row  # 2 h walltime, started just now
        data = json.loads(cli("sessions", "--json").stdout)
        (mine,) = [s for s in data if s["user"] == "bob"]
        assert mine["gpus"] == 1 and mine["node"].startswith("node") and 7000 < mine["seconds_left"] <= 7200
        job_id = mine["job_id"]
        cancelled = cli("cancel", "bob")
        assert cancelled.returncode == 0 and "stopped bob's desktop" in cancelled.stdout
        assert "" not in bob.api("GET", "/users/bob").json()["servers"]  # the hub's view is right
        assert (await SlurmClient().query([job_id]))[job_id].phase is Phase.ENDED
        assert "bob " not in cli("sessions").stdout
    finally:
        bob.api("DELETE", "/users/bob/server")


def test_cancel_of_an_unknown_server_says_so(hub: HubBed) -> None:
    result = cli("cancel", "nosuchuser")
    assert result.returncode == 2 and "no such user or server" in result.stderr


def test_sessions_when_redis_is_down(tmp_path: Path) -> None:
    result = cli(
        "sessions", config=broken(tmp_path, 'c.VNCSlurmSpawner.registry_url = "redis://127.0.0.1:1/0"')
    )
    assert result.returncode == 2
    assert "is not reachable" in result.stdout and "keep running" in result.stdout
    assert "Traceback" not in result.stdout + result.stderr


async def test_sessions_lists_the_valid_entries_and_names_the_rest(hub: HubBed, redis_bed: RedisBed) -> None:
    registry = RedisRegistry(redis_bed.auth_url)
    raw = aioredis.from_url(redis_bed.auth_url)
    mine = Session(user="bob", server="clitest", job_id="99999", state="running", ends_at=time.time() + 3600)
    try:
        await registry.put(mine)
        await raw.set("jupyter-vnc:session:mallory/", "not json")  # as a second client could write it
        await raw.sadd("jupyter-vnc:sessions", "mallory/")
        for args in (("sessions",), ("sessions", "--json")):
            result = cli(*args)
            assert result.returncode == 0 and "Traceback" not in result.stderr, result.stderr
            assert "99999" in result.stdout and "mallory" not in result.stdout
            assert "skipped 1 registry entries that are not valid sessions: 'mallory/'" in result.stderr
    finally:
        await registry.delete("bob", "clitest")
        await raw.delete("jupyter-vnc:session:mallory/")
        await raw.srem("jupyter-vnc:sessions", "mallory/")
        await raw.aclose()
        await registry.close()


def test_doctor_warns_about_a_registry_open_to_anyone(hub: HubBed, tmp_path: Path) -> None:
    server = subprocess.Popen(
        ["redis-server", "--port", "16393", "--bind", "127.0.0.1", "--save", "", "--dir", str(tmp_path)],
        stdout=subprocess.DEVNULL,
    )
    try:
        for _ in range(50):
            if subprocess.run(["redis-cli", "-p", "16393", "ping"], capture_output=True).returncode == 0:
                break
            time.sleep(0.1)
        config = broken(
            tmp_path,
            'c.VNCSlurmSpawner.registry_url = "redis://127.0.0.1:16393/0"',
            'c.VNCSlurmSpawner.registry_password_file = ""',
        )
        result = cli("doctor", config=config)
        line = next(line for line in result.stdout.splitlines() if "Redis" in line)
        assert line.startswith("[WARN]") and "without a password" in line, result.stdout
    finally:
        server.terminate()
        server.wait()


def test_token_file_is_used_and_a_bad_one_is_named(hub: HubBed, tmp_path: Path) -> None:
    """A hub config without the jupyter-vnc service: the CLI says it has no token; --token-file gives
    it one; a missing or empty file is an error that names the file, never a traceback."""
    no_service = broken(tmp_path, "c.JupyterHub.services = []", "c.JupyterHub.load_roles = []")
    # (sessions reads the registry; cancel goes through the hub's API and needs the token.)
    env_free = cli("cancel", "nosuchuser", config=no_service)
    assert env_free.returncode == 2 and "no hub API token" in env_free.stderr, env_free.stderr
    token = tmp_path / "admin-token"
    token.write_text(admin_token())
    answered = cli("--token-file", str(token), "cancel", "nosuchuser", config=no_service)
    assert answered.returncode == 2 and "no such user or server" in answered.stderr  # the hub took it
    missing = cli("--token-file", str(tmp_path / "nope"), "cancel", "nosuchuser", config=no_service)
    assert missing.returncode == 2 and f"cannot read the token file {tmp_path / 'nope'}" in missing.stderr
    assert "Traceback" not in missing.stderr
    (tmp_path / "empty").write_text("\n")
    empty = cli("--token-file", str(tmp_path / "empty"), "cancel", "nosuchuser", config=no_service)
    assert empty.returncode == 2 and "is empty" in empty.stderr


def admin_token() -> str:
    from conftest import STATE

    return (STATE / "hub" / "admin-token").read_text()


def doctor_lines(stdout: str, status: str) -> list[str]:
    return [line for line in stdout.splitlines() if line.startswith(f"[{status:>4}]")]


def test_doctor_warns_without_virtualgl_and_still_exits_0(hub: HubBed) -> None:
    """A host without VirtualGL still runs desktops (OpenGL in software): the doctor says WARN and why,
    and its exit code stays 0, since only a FAIL means desktops cannot work. VirtualGL is taken away
    for real, for the doctor only: off its PATH, and /opt/VirtualGL hidden under an empty tmpfs in a
    mount namespace of its own (the machine's /opt/VirtualGL is untouched)."""
    env = {k: v for k, v in os.environ.items() if k != "JVNC_DESKTOP_IMAGE"}  # host mode: check this host
    env["PATH"] = os.pathsep.join(d for d in env["PATH"].split(os.pathsep) if not Path(d, "vglrun").exists())
    exe = Path(sys.executable).with_name("jupyter-vnc")
    hide = "mount -t tmpfs -o size=1m none /opt/VirtualGL" if Path("/opt/VirtualGL").is_dir() else "true"
    result = subprocess.run(
        ["unshare", "--mount", "--propagation", "private", "/bin/sh", "-c", f'{hide} && exec "$@"', "sh",
         str(exe), "-f", str(CONFIG), "doctor"],
        env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert "Traceback" not in result.stdout + result.stderr, result.stderr
    (warned,) = doctor_lines(result.stdout, "WARN")  # the only one: everything else is in place
    assert warned.startswith("[WARN] VirtualGL "), result.stdout
    assert "not found on this host: no vglrun: OpenGL renders in software, not on the GPU" in warned
    assert not doctor_lines(result.stdout, "FAIL"), result.stdout
    assert result.returncode == 0, result.stdout
    assert result.stdout.rstrip().endswith("Everything a desktop needs is in place.")


def test_doctor_warns_loudly_when_every_users_server_shares_one_origin(hub: HubBed, tmp_path: Path) -> None:
    """Without c.JupyterHub.subdomain_host a page of one user's server can read another user's token
    from a window it opens: a WARN that says so and what to set (desktops still work: exit code 0)."""
    result = cli("doctor", config=broken(tmp_path, 'c.JupyterHub.subdomain_host = ""'))
    line = next((line for line in result.stdout.splitlines() if "Per-user origins" in line), "")
    assert line.startswith("[WARN]") and "NONE: every user's server shares the hub's origin" in line, line
    assert "read her token" in line and "c.JupyterHub.subdomain_host = " in line, line
    assert result.returncode == 0, result.stdout


def test_doctor_warns_about_a_token_without_the_admin_scopes(hub: HubBed, tmp_path: Path) -> None:
    """A token the hub accepts but that cannot list or stop other users' servers: the doctor names the
    missing scopes as a WARN (spawns work; `sessions` and `cancel` will not), and exits 0."""
    alice = HubUser(hub.url, "alice", hub.password)
    created = alice.api(
        "POST",
        "/users/alice/tokens",
        json={"note": "doctor test", "expires_in": 600, "scopes": ["read:users:name!user"]},
    )
    assert created.status_code == 201, created.text
    token = tmp_path / "token"
    token.write_text(created.json()["token"])
    try:
        result = cli("--token-file", str(token), "doctor")
    finally:
        alice.api("DELETE", f"/users/alice/tokens/{created.json()['id']}")
    line = next((line for line in result.stdout.splitlines() if "Hub API token" in line), "")
    assert line.startswith("[WARN]"), result.stdout
    assert "valid (alice) but lacks admin:servers, list:users: cancel/sessions fail" in line
    assert result.returncode == 0, result.stdout
