"""The admin CLI against the real test bed, and against broken setups it must name."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import DEVSTACK, HubBed
from hubclient import HubUser

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
