"""VNCSlurmSpawner in Apptainer mode: the desktop image (devstack/build-desktop-image) in a real job."""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import HubBed
from hubclient import HubUser
from test_spawner import job_processes, rfb_through_hub, squeue

# Whose servers, jobs and homes these tests use (tests/isolation.py: modules of other users run beside).
pytestmark = pytest.mark.users("omar")


@pytest.fixture
def site_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A host directory a site binds into every desktop (c.VNCSlurmSpawner.apptainer_binds); omar
    must be able to reach it, or Apptainer refuses the bind."""
    directory = tmp_path_factory.mktemp("site-data")
    for path in (directory, *directory.parents):
        if path == Path("/"):
            break
        path.chmod(path.stat().st_mode | 0o755)
    return directory


@pytest.fixture
def apptainer_hub(
    hub: HubBed,
    desktop_image: Path,
    site_data: Path,
    spawner_settings: Callable[[str, dict], None],
    request: pytest.FixtureRequest,
) -> HubBed:
    """The demo hub's desktops of the module's users (its pytest.mark.users) in Apptainer mode: the
    desktop image and a site's bind, as c.VNCSlurmSpawner.image and apptainer_binds set them. Other
    users' desktops, of the tests running beside, stay in host mode."""
    for user in {name for mark in request.node.iter_markers("users") for name in mark.args}:
        spawner_settings(
            user,
            {
                "image": str(desktop_image),
                "apptainer": "/usr/local/bin/apptainer",
                "apptainer_binds": [f"{site_data}:/site-data:ro"],
            },
        )
    return hub


async def test_desktop_in_the_image_through_the_hub(
    apptainer_hub: HubBed, desktop_image: Path, site_data: Path
) -> None:
    omar = HubUser(apptainer_hub.url, "omar", apptainer_hub.password)
    omar.api("POST", "/users/omar/server", json={"gpus": 1, "memory_gb": 2, "resolution": "1280x720"})
    try:
        omar.wait_ready(timeout=120)
        (job_id,) = squeue("omar")
        script = subprocess.run(
            ["scontrol", "write", "batch_script", job_id, "-"], capture_output=True, text=True, check=True
        ).stdout
        assert (
            f"exec --nv --cleanenv --writable-tmpfs --bind {site_data}:/site-data:ro {desktop_image}"
            in script
        )
        assert "TOKEN=" not in script
        # The server and the desktop really run inside the image (Apptainer marks its processes).
        marker = f"APPTAINER_CONTAINER={desktop_image}".encode()

        def names_inside() -> set[str]:
            names = set()
            for pid in job_processes(job_id):
                with contextlib.suppress(OSError):
                    if marker in Path(f"/proc/{pid}/environ").read_bytes().split(b"\0"):
                        names.add(Path(f"/proc/{pid}/comm").read_text().strip())
            return names

        # The desktop is prestarted just after the server answers: wait for its Xvnc, on a loaded
        # machine too, then look.
        deadline = time.monotonic() + 60
        while not names_inside() & {"Xvnc", "Xtigervnc"} and time.monotonic() < deadline:
            await asyncio.sleep(0.5)
        names = names_inside()
        assert names & {"Xvnc", "Xtigervnc"} and "jupyter-vnc-sin" in names, names  # the server and Xvnc
        # The site's bind is there, read-only, in the mount table the desktop's programs see.
        inside = next(
            pid for pid in job_processes(job_id)
            if marker in Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
        )  # fmt: skip
        # (Its file cannot be read from outside: the image is a FUSE mount only omar may enter, and
        # her processes in it are not open to her ptrace-like /proc access either.)
        mounts = [m.split() for m in Path(f"/proc/{inside}/mountinfo").read_text().splitlines()]
        bound = [m for m in mounts if m[4] == "/site-data"]
        assert bound and bound[0][3] == str(site_data) and bound[0][5].split(",")[0] == "ro", bound
        client = await rfb_through_hub(omar)
        assert client.init is not None and (client.init.width, client.init.height) == (1280, 720)
        status = omar.server_api("vnc/api/status").json()
        assert status["state"] == "running" and status["vnc_server"] == "tigervnc"
        assert status["job_id"] == job_id and status["gpus"] in (
            ["GPU 0"],
            ["GPU 1"],
        )  # CUDA_VISIBLE_DEVICES got in
        assert status["seconds_left"] is not None  # the end time crossed --cleanenv too
    finally:
        omar.api("DELETE", "/users/omar/server")
        omar.wait_stopped(timeout=60)
    assert not squeue("omar")
    assert not job_processes(job_id), "processes of the job outlived it (FUSE helpers, desktop)"
