"""The hub's "Desktops" page for admins (jupyter_vnc/admin_page.py), as the demo hub runs it: a real
queued desktop with Slurm's reason, a real running one with its watcher, a refused non-admin, and a
Stop that ends the job."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from browser import chromium
from conftest import ROOT, HubBed
from fixtures_jupyter import free_port, wait_until
from hubclient import HubUser, server_path, user_url
from test_lab_e2e import log_in
from test_queue_wait import PARTITION
from test_spawner import _logged_in, squeue

pytestmark = pytest.mark.users("omar", "nick")


@pytest.fixture
def omar(hub: HubBed) -> Iterator[HubUser]:
    yield from _logged_in(hub, "omar")


@pytest.fixture
def nick(hub: HubBed) -> Iterator[HubUser]:
    yield from _logged_in(hub, "nick")


async def test_admins_see_every_desktop_and_stop_one(
    hub: HubBed, omar: HubUser, nick: HubUser, spawner_settings: Callable[[str, dict], None]
) -> None:
    spawner_settings("nick", {"req_partition": PARTITION})
    subprocess.run(["scontrol", "update", f"PartitionName={PARTITION}", "State=DOWN"], check=True)
    try:
        assert omar.api("POST", server_path("omar", ""), json={"gpus": 1, "memory_gb": 1}).status_code in (
            201,
            202,
        )
        assert nick.api("POST", server_path("nick", ""), json={"gpus": 0, "memory_gb": 1}).status_code == 202
        omar.wait_ready("", 120)
        (omar_job,) = squeue("omar")
        deadline = time.monotonic() + 30
        while not squeue("nick"):
            assert time.monotonic() < deadline, "nick's desktop was not submitted"
            await asyncio.sleep(0.3)
        (nick_job,) = squeue("nick")
        assert omar.api("POST", "/shares/omar/", json={"user": "nick"}).status_code == 200
        # The service's own origin on a hub with per-user domains (as the hub's Services menu links it).
        page_url = hub.url.replace("://", "://desktops--service.", 1) + "/services/desktops/"
        async with chromium() as browser:
            # nick (no admin) is refused.
            users = await browser.new_context()
            page = await log_in(users, hub, "nick")
            response = await page.goto(page_url)
            assert response is not None and response.status == 403

            # nick watches omar's desktop, so that the page has a viewer to show.
            watching = await page.goto(user_url(hub.url, "omar") + "vnc/")
            if "oauth2/authorize" in page.url:
                await page.click("form [type=submit]")
            await page.wait_for_selector("body[data-vnc-state=connected]", timeout=60_000)
            assert watching is not None

            admins = await browser.new_context(viewport={"width": 1400, "height": 700})
            admin = await log_in(admins, hub, "hubadmin")
            await admin.goto(page_url)
            if "oauth2/authorize" in admin.url:
                await admin.click("form [type=submit]")
            await admin.wait_for_url(page_url + "**")
            queued = admin.locator('tr[data-user="nick"]')
            running = admin.locator('tr[data-user="omar"]')
            await running.wait_for(timeout=20_000)
            deadline = time.monotonic() + 30
            while "nobody" in (cells := await running.inner_text()) or "?" in cells.split("\t")[-2:]:
                assert time.monotonic() < deadline, cells
                await asyncio.sleep(1)
                await admin.reload()
            assert omar_job in cells and "running" in cells and "nick (view only)" in cells, cells
            assert "1" in cells.split("\t")[5]  # GPUs
            text = await queued.inner_text()
            assert await queued.get_attribute("data-state") == "queued" and nick_job in text, text
            assert "PartitionDown" in text, text
            # The same as JSON.
            reply = await admin.goto(page_url + "api/desktops")
            assert reply is not None and reply.status == 200, reply and await reply.text()
            listing = await reply.json()
            await admin.goto(page_url)
            by_user = {d["user"]: d for d in listing["desktops"]}
            assert by_user["omar"]["viewers"] == [{"user": "nick", "role": "view", "connections": 1}]
            assert by_user["nick"]["state"] == "queued" and by_user["nick"]["job_id"] == nick_job
            await admin.screenshot(path=str(ROOT / "test-artifacts" / "admin-desktops.png"))

            # Cancel the queued one: its job leaves the queue, the page says so.
            await queued.get_by_role("button", name="Cancel").click()
            await admin.locator("#stopped").filter(has_text="Stopped nick").wait_for(timeout=60_000)
            nick.wait_stopped("", 60)
            assert squeue("nick") == []
            assert await admin.locator('tr[data-user="nick"]').count() == 0
            assert squeue("omar") == [omar_job]  # the other desktop untouched
    finally:
        subprocess.run(["scontrol", "update", f"PartitionName={PARTITION}", "State=UP"], check=True)


def test_the_page_ends_with_a_hub_that_was_killed(tmp_path: Path) -> None:
    """A hub killed with SIGKILL cannot stop its services: the page must not outlive it (it would hold
    its port, and the hub's next start could not run the page again)."""
    port = free_port()
    env = {
        "PATH": "/usr/bin:/bin",
        "JUPYTERHUB_API_TOKEN": "unused",
        "JUPYTERHUB_API_URL": "http://127.0.0.1:9/hub/api",
        "JUPYTERHUB_SERVICE_URL": f"http://127.0.0.1:{port}",
        "JUPYTERHUB_SERVICE_PREFIX": "/services/desktops/",
        "JUPYTERHUB_CLIENT_ID": "service-desktops",
    }
    hub = subprocess.Popen(
        ["bash", "-c", f"{sys.executable} -m jupyter_vnc.admin_page & echo $!; wait"],
        env=env, stdout=subprocess.PIPE, text=True, start_new_session=True,
    )  # fmt: skip
    assert hub.stdout is not None
    page = int(hub.stdout.readline())
    wait_until(lambda: _listening(port), 20, "the page listening")
    hub.kill()
    hub.wait()
    wait_until(
        lambda: not Path(f"/proc/{page}").exists() or _zombie(page), 10, "the page to end with its hub"
    )
    assert not _listening(port)


def _listening(port: int) -> bool:
    with contextlib.closing(socket.socket()) as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def _zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[-1].split()[0] == "Z"
    except OSError:
        return True
