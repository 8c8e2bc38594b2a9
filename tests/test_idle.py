"""Idle desktops: the rules on a fake clock, then the real thing through the hub.

- jupyterhub-idle-culler (2.0.0, as an external hub service with a short timeout) ends a desktop whose
  viewer tab is open but untouched, and leaves one that gets input every few seconds.
- The built-in idle shutdown warns in the viewer, "Keep it" keeps the desktop, and left alone the
  desktop, its server and its Slurm job end; the hub's page says it was idle.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator

import pytest
from browser import chromium
from conftest import ROOT, STATE, HubBed
from hubclient import HubUser, server_path
from playwright.async_api import TimeoutError as PlaywrightTimeout
from rfbstreams import websocket_stream
from test_lab_e2e import open_desktop_page
from test_spawner import _logged_in, contract_spawner, hub_log_since, job_processes, squeue

from jupyter_vnc import jobscript
from jupyter_vnc.audience import Audience
from jupyter_vnc.idle import SHUTDOWN_LINE, DesktopIdle
from jupyter_vnc.messages import explain_exit
from jupyter_vnc.slurm import JobInfo, Phase
from testkit.rfb import RFBClient

# Whose servers, jobs and homes these tests use (tests/isolation.py: modules of other users run beside).
pytestmark = pytest.mark.users("pete")

ARTIFACTS = ROOT / "test-artifacts"


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def idle(clock: FakeClock, **traits: float) -> DesktopIdle:
    return DesktopIdle(Audience(None, None), clock=clock, **traits)


# --- through the hub ----------------------------------------------------------------------------------


@pytest.fixture
def pete(hub: HubBed) -> Iterator[HubUser]:
    yield from _logged_in(hub, "pete")


def _up(pete: HubUser, server: str, gpus: int = 0) -> str:
    """Start one of pete's desktops; its Slurm job id."""
    before = set(squeue("pete"))
    assert pete.api("POST", server_path("pete", server), json={"gpus": gpus}).status_code in (201, 202)
    pete.wait_ready(server, 120)
    assert pete.open_server(server, "lab").status_code == 200
    (job_id,) = set(squeue("pete")) - before
    return job_id


async def test_the_idle_culler_ends_an_untouched_desktop_and_keeps_a_used_one(
    hub: HubBed, spawner_settings: Callable[[str, dict], None], pete: HubUser
) -> None:
    """Two desktops of pete's, each with a viewer open; one gets a pointer move every 3 s. The
    untouched one's viewer pauses (no more traffic through the proxy), the culler ends it, its Slurm
    job and processes are gone; the used one lives on."""
    spawner_settings("pete", {"idle_pause_minutes": 0.25})
    busy_job = _up(pete, "busy")
    idle_job = _up(pete, "idle")

    culler = subprocess.Popen(
        [sys.executable, "-m", "jupyterhub_idle_culler", f"--url={hub.url}/hub/api", "--timeout=45",
         "--cull-every=10", "--concurrency=1"],
        env={**os.environ, "JUPYTERHUB_API_TOKEN": (STATE / "hub" / "culler-token").read_text().strip()},
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        async with chromium() as browser:
            idle_page = await open_desktop_page(browser, hub, "pete", "/user/pete/idle/vnc/")
            # The busy desktop gets a person's input (pointer moves) through its own websocket. It has
            # been idle since it started, so it is paused: resume it first, as its viewer would.
            assert pete.server_api("vnc/api/activity", "busy", method="POST", data="{}").status_code == 200
            token = pete.viewer_config("busy")["token"]
            url = pete.server_url("busy").replace("http://", "ws://") + f"vnc/websockify?token={token}"
            stream, conn = await websocket_stream(url, None, headers={"Sec-Fetch-Mode": "websocket"})
            busy = RFBClient(stream)
            await busy.handshake()

            async def use_it() -> None:
                for step in range(10_000):
                    await busy.stream.send(bytes([5, 0, 0, 100 + step % 50, 0, 100]))  # PointerEvent
                    await asyncio.sleep(3)

            user_at_busy = asyncio.create_task(use_it())
            try:
                await idle_page.wait_for_selector("#jvnc-idle:not([hidden])", timeout=60_000)
            except PlaywrightTimeout:
                # Say what the server thinks (was the pause time set? did input arrive?), not only "no".
                idle = pete.server_api("vnc/api/status", "idle").json().get("idle")
                said = f"the untouched viewer did not pause in 60 s; its idle state: {idle}"
                raise AssertionError(said) from None
            assert "Paused" in await idle_page.inner_text("#jvnc-idle-text")
            deadline = time.monotonic() + 180
            while pete.api("GET", "/users/pete").json()["servers"].get("idle"):
                assert time.monotonic() < deadline, "the culler did not end the untouched desktop in 180 s"
                assert not user_at_busy.done(), user_at_busy  # the busy desktop's connection holds
                await asyncio.sleep(1)
            user_at_busy.cancel()
            conn.close()
        assert idle_job not in squeue("pete")
        deadline = time.monotonic() + 30
        while job_processes(idle_job):
            assert time.monotonic() < deadline, f"processes of job {idle_job} left: {job_processes(idle_job)}"
            await asyncio.sleep(0.5)
        # The used one is still there, and still its job: keys and pointer are activity.
        assert pete.api("GET", "/users/pete").json()["servers"]["busy"]["ready"]
        assert busy_job in squeue("pete")
    finally:
        culler.terminate()
        out, _ = culler.communicate(timeout=10)
        print(out[-3000:])
    assert "Culling server pete/idle" in out or "Culling server pete idle" in out.replace("/", " "), out[
        -2000:
    ]
    assert "pete/busy" not in out.split("Culling", 1)[-1], out[-2000:]


async def test_the_idle_shutdown_warns_keeps_on_request_and_ends_the_desktop(
    hub: HubBed, spawner_settings: Callable[[str, dict], None], pete: HubUser
) -> None:
    """shutdown after 0.6 min without input, a 0.3 min warning: the viewer pauses and warns at about
    18 s, "Keep it" brings it back, and left alone the desktop, its server and its job end; the hub
    tells pete why."""
    spawner_settings(
        "pete", {"idle_shutdown_minutes": 0.6, "idle_warning_minutes": 0.3, "idle_pause_minutes": 0}
    )
    ARTIFACTS.mkdir(exist_ok=True)
    job_id = _up(pete, "", gpus=1)
    log_start = (STATE / "logs" / "jupyterhub.log").stat().st_size
    async with chromium() as browser:
        page = await open_desktop_page(browser, hub, "pete", "/user/pete/vnc/")

        await page.wait_for_selector("#jvnc-idle:not([hidden])", timeout=60_000)
        warning = await page.inner_text("#jvnc-idle-text")
        assert "unless you keep it" in warning, warning
        assert await page.inner_text("#jvnc-keep") == "Keep it"
        await page.screenshot(path=str(ARTIFACTS / "idle-warning.png"))
        await page.click("#jvnc-keep")
        await page.wait_for_selector("#jvnc-idle[hidden]", state="attached", timeout=15_000)
        await page.wait_for_function(
            "document.querySelector('.jvnc-viewer').dataset.vncState === 'connected'"
        )
        status = pete.server_api("vnc/api/status").json()
        assert status["idle"]["idle_seconds"] < 15 and not status["idle"]["paused"], status["idle"]

        # Left alone this time: the desktop ends with its server and its Slurm job.
        pete.wait_stopped("", timeout=120)
    assert job_id not in squeue("pete")
    deadline = time.monotonic() + 30
    while job_processes(job_id):
        assert time.monotonic() < deadline, f"processes of job {job_id} left: {job_processes(job_id)}"
        await asyncio.sleep(0.5)
    said = "Your desktop ended because it was idle for 0.6 minutes (no keyboard or mouse input)"
    assert said in hub_log_since(log_start)
    page_text = pete.http.get(f"{pete.url}/hub/user/pete/").text  # the hub's "not running" page
    assert said in page_text, page_text[-2000:]


# The quick tests last: pytest-xdist hands a worker its next group of modules as that worker's last
# test starts, and a long last test would keep that group waiting behind it (tests/conftest.py).


def test_viewers_pause_after_the_pause_time_or_when_the_shutdown_warning_starts() -> None:
    clock = FakeClock()
    rules = idle(clock, pause_minutes=30, shutdown_minutes=0)
    clock.now += 29 * 60
    assert not rules.paused and rules.shutdown_in() is None
    clock.now += 61
    assert rules.paused and rules.status()["paused"] is True
    rules.touch()  # a key, or Resume / Keep it
    assert not rules.paused and rules.idle_seconds() == 0

    # With a shutdown after 20 minutes and a 5-minute warning, viewers pause at 15 minutes: that is
    # where the warning shows, whatever the pause time says.
    rules = idle(clock, pause_minutes=30, shutdown_minutes=20, warning_minutes=5)
    clock.now += 14 * 60
    assert not rules.paused and rules.shutdown_in() == 6 * 60
    clock.now += 60
    assert rules.paused and rules.status()["shutdown_in"] == 5 * 60
    # A warning is at most half the idle time.
    assert idle(clock, shutdown_minutes=4, warning_minutes=5).pause_after() == 120
    # Both off: never paused, never ended.
    never = idle(clock, pause_minutes=0, shutdown_minutes=0)
    clock.now += 10**6
    assert never.pause_after() is None and not never.paused and never.shutdown_in() is None


def test_the_spawner_passes_the_idle_settings_and_the_hub_explains_an_idle_end() -> None:
    spawner = contract_spawner(idle_shutdown_minutes=90, idle_pause_minutes=20)
    # In the job script itself: a site's sudo (env_reset) drops any variable but JUPYTERHUB_*.
    script = jobscript.render(spawner.batch_script, **spawner.get_req_subvars(), cmd="server")
    assert "export JUPYTER_VNC_IDLE_MINUTES=90\n" in script
    assert "export JUPYTER_VNC_PAUSE_MINUTES=20\n" in script
    line = SHUTDOWN_LINE.format(minutes="90")
    ended = JobInfo("77", Phase.ENDED, state="COMPLETED")
    assert explain_exit("77", ended, f"noise\n[W 12:00 ServerApp] {line}; ending the desktop\n") == (
        "Your desktop ended because it was idle for 90 minutes (no keyboard or mouse input); "
        "Slurm job 77 ended (COMPLETED)."
    )
    assert explain_exit("77", ended, "") == "Your desktop's Slurm job 77 ended (COMPLETED)."
