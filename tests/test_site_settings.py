"""A site's own settings, through the real hub: its job template, partitions to choose from, options
it fixes, and no Redis at all. The demo hub is restarted with a file of them (``JVNC_EXTRA_CONFIG``)
and restored afterwards."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from browser import chromium
from conftest import DEVSTACK, STATE, HubBed, RedisBed
from hubclient import HubUser
from test_lab_e2e import open_desktop_page, xfce_panel_colours, xvnc_pids
from test_spawner import _logged_in, squeue

from jupyter_vnc.resources import template_path

# Whose servers, jobs and homes these tests use; the whole bed to itself: it restarts the hub with a
# site's settings (tests/isolation.py).
pytestmark = [pytest.mark.users("gina"), pytest.mark.alone]

MARK = "jvnc-site-template"


def restart_hub(**env: str) -> None:
    full = {**os.environ, **env}
    for action in ("stop", "start"):
        subprocess.run([DEVSTACK / "hub", action], env=full, check=True, capture_output=True)


@contextlib.contextmanager
def hub_readable_dir() -> Iterator[Path]:
    """A folder the hub's own account (jvnc-hub, devstack/hub) can read, for a site's extra
    configuration and the files it names: pytest's tmp_path is root's alone."""
    base = STATE / "site-files"
    base.mkdir(exist_ok=True)
    base.chmod(0o755)
    folder = Path(tempfile.mkdtemp(dir=base))
    folder.chmod(0o755)
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@contextlib.contextmanager
def hub_with(tmp_path: Path, *settings: str) -> Iterator[Path]:
    """The demo hub restarted with these lines of a site's configuration; restored afterwards."""
    with hub_readable_dir() as folder:
        config = folder / "site_config.py"
        config.write_text("c = get_config()  # noqa: F821\n" + "".join(f"{line}\n" for line in settings))
        restart_hub(JVNC_EXTRA_CONFIG=str(config))
        try:
            yield config
        finally:
            restart_hub(JVNC_EXTRA_CONFIG="")


@pytest.fixture
def site_hub(hub: HubBed, tmp_path: Path) -> Iterator[HubBed]:
    with hub_readable_dir() as folder:
        template = folder / "site-job.sh.j2"
        shebang, rest = template_path("job.sh.j2").read_text().split("\n", 1)
        # A site's copy of the job script, with one line of its own.
        template.write_text(f"{shebang}\n#SBATCH --comment={MARK}\n{rest}")
        with hub_with(
            tmp_path,
            f"c.VNCSlurmSpawner.job_template = {str(template)!r}",
            'c.VNCSlurmSpawner.partitions = ["vnc", "debug"]',
            'c.VNCSlurmSpawner.fixed_options = ["memory_gb"]',
        ):
            yield hub


@pytest.fixture
def gina(site_hub: HubBed) -> Iterator[HubUser]:
    yield from _logged_in(site_hub, "gina")


def job_detail(job_id: str) -> str:
    return subprocess.run(["scontrol", "show", "job", job_id], capture_output=True, text=True).stdout


async def test_a_sites_template_partitions_and_fixed_options_reach_slurm(gina: HubUser) -> None:
    form = gina.http.get(f"{gina.url}/hub/spawn/gina").text
    partitions = re.findall(
        r'<option value="([^"]+)"', form.split('name="partition"', 1)[1].split("</select>")[0]
    )
    assert partitions == ["vnc", "debug"], partitions
    assert 'name="memory_gb"' not in form  # fixed: not offered

    refused = gina.api("POST", "/users/gina/server", json={"memory_gb": 4})
    assert refused.status_code == 400, refused.text
    assert "memory_gb is set by the site to 2 and cannot be changed" in refused.json()["message"]
    assert squeue("gina") == []

    asked = gina.api("POST", "/users/gina/server", json={"partition": "debug", "gpus": 1, "hours": 1})
    assert asked.status_code in (201, 202), asked.text
    gina.wait_ready(timeout=120)
    (job_id,) = squeue("gina")
    detail = job_detail(job_id)
    assert "Partition=debug" in detail and f"Comment={MARK}" in detail, detail
    assert "mem=2G" in detail and "TimeLimit=01:00:00" in detail, detail
    assert gina.open_server("", "lab").status_code == 200
    status = gina.server_api("vnc/api/status").json()
    assert status["job_id"] == job_id


@pytest.fixture
def hub_without_redis(hub: HubBed, tmp_path: Path) -> Iterator[Path]:
    """The demo hub restarted without a registry URL: one hub process, its sessions in memory."""
    with hub_with(tmp_path, 'c.VNCSlurmSpawner.registry_url = ""') as config:
        yield config


@pytest.fixture
def alice_without_redis(hub: HubBed, hub_without_redis: Path) -> Iterator[HubUser]:
    yield from _logged_in(hub, "gina")


# Every state the viewer's connection passes through, recorded in the page as it happens: a hub restart
# takes seconds, and the viewer may be back before the test looks.
RECORD_STATES = """() => {
  const root = document.querySelector('.jvnc-viewer');
  window.jvncStates = [root.dataset.vncState];
  new MutationObserver(() => window.jvncStates.push(root.dataset.vncState))
    .observe(root, { attributes: true, attributeFilter: ['data-vnc-state'] });
}"""


async def test_a_hub_without_redis_serves_desktops_and_the_viewer_reconnects_after_a_restart(
    hub: HubBed, hub_without_redis: Path, alice_without_redis: HubUser, redis_bed: RedisBed
) -> None:
    """No Redis configured: the desktop works, nothing goes to Redis, and a hub restart loses no
    session. The open viewer notices the dropped connection and comes back by itself, to the same
    desktop (the same Xvnc process), without anyone clicking."""
    gina = alice_without_redis
    assert gina.api("POST", "/users/gina/server", json={"gpus": 0}).status_code in (201, 202)
    gina.wait_ready(timeout=120)
    (job_id,) = squeue("gina")
    async with chromium() as browser:
        page = await open_desktop_page(browser, hub, "gina", "/user/gina/vnc/")
        state = "document.querySelector('.jvnc-viewer').dataset.vncState"
        await page.wait_for_function(f"{state} === 'connected'", timeout=60_000)
        xvnc = xvnc_pids("gina")
        assert len(xvnc) == 1, xvnc
        await page.evaluate(RECORD_STATES)

        restart_hub(JVNC_EXTRA_CONFIG=str(hub_without_redis))
        await page.wait_for_function(
            "window.jvncStates.includes('disconnected') && window.jvncStates.at(-1) === 'connected'",
            timeout=90_000,
        )
        assert await xfce_panel_colours(page) >= 4, "the viewer came back to a blank canvas"
        assert xvnc_pids("gina") == xvnc  # the same desktop, not a new one
    assert squeue("gina") == [job_id]
    assert gina.api("GET", "/users/gina").json()["servers"][""]["ready"]
    assert redis_bed.cli("--scan", "--pattern", "jupyter-vnc:session:gina*").split() == []


@pytest.fixture
def alice_on_an_unresolvable_node(hub: HubBed, tmp_path: Path) -> Iterator[HubUser]:
    """The hub records each node under a name it cannot resolve (a site's state_exechost_exp, or Slurm
    node names that are not in the hub's DNS)."""
    with hub_with(tmp_path, 'c.VNCSlurmSpawner.state_exechost_exp = "node-x.invalid"'):
        yield from _logged_in(hub, "gina")


def test_a_node_the_hub_cannot_resolve_fails_the_spawn_at_once_and_says_why(
    alice_on_an_unresolvable_node: HubUser,
) -> None:
    """No wait helps there: the spawn fails as soon as the server's port is known (not after
    http_timeout), the user reads why and what her admins must fix, and the job is cancelled."""
    import time

    from hubclient import spawn_watching_progress

    gina = alice_on_an_unresolvable_node
    progress = spawn_watching_progress(gina, options={"gpus": 0, "memory_gb": 1})
    started = time.monotonic()
    gina.wait_stopped(timeout=90)
    assert time.monotonic() - started < 45  # the server starts in seconds; http_timeout is 60 s
    final = progress.messages(timeout=10)
    said = next(m for m in final if "cannot resolve" in m)
    assert "The hub cannot resolve 'node-x.invalid', the address of node" in said
    assert "must reach the nodes by name" in said and "the job was cancelled" in said
    deadline = time.monotonic() + 30
    while squeue("gina"):
        assert time.monotonic() < deadline, "the job outlived its failed spawn"
        time.sleep(0.5)
