"""A desktop that waits in the Slurm queue: no hub timeout cancels it, the user's own limit does, and
a user who closes the page and comes back sees the live state. Real hub, real Slurm: the partition is
really down, the job really waits."""

from __future__ import annotations

import asyncio
import subprocess
import time
from collections.abc import Callable, Iterator

import pytest
from browser import chromium
from conftest import ROOT, HubBed
from hubclient import HubUser, ProgressReader, spawn_watching_progress
from test_lab_e2e import log_in
from test_spawner import _logged_in, job_processes, squeue

# Whose servers, jobs and homes these tests use (tests/isolation.py: modules of other users run beside).
pytestmark = pytest.mark.users("mona", "nick")

# devstack/jupyterhub_desktops.py: a job has this long from running to its server answering; JupyterHub's
# own default start_timeout is 60 s. The held desktop waits longer than both.
JOB_START_TIMEOUT = 60
PARTITION = "maint"


@pytest.fixture
def mona(hub: HubBed) -> Iterator[HubUser]:
    yield from _logged_in(hub, "mona")


@pytest.fixture
def nick(hub: HubBed) -> Iterator[HubUser]:
    yield from _logged_in(hub, "nick")


@pytest.fixture
def partition_down(spawner_settings: Callable[[str, dict], None]) -> Iterator[None]:
    """mona's and nick's desktops sent to a partition of their own (devstack/slurm's "maint"), down as
    an admin sets it for maintenance: new jobs wait with reason PartitionDown. Other tests' desktops,
    in the desktops' usual partition, go on beside."""
    for user in ("mona", "nick"):
        spawner_settings(user, {"req_partition": PARTITION})
    subprocess.run(["scontrol", "update", f"PartitionName={PARTITION}", "State=DOWN"], check=True)
    try:
        yield
    finally:
        subprocess.run(["scontrol", "update", f"PartitionName={PARTITION}", "State=UP"], check=True)


def wait_for_message(progress: ProgressReader, text: str, timeout: float) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for event in progress.events:
            if text in event.get("message", ""):
                return event["message"]
        time.sleep(0.2)
    raise AssertionError(f"no {text!r} in {[e.get('message') for e in progress.events]}")


async def test_a_queued_desktop_outlasts_the_hubs_timeouts_and_a_users_own_limit_cancels_hers(
    mona: HubUser,
    nick: HubUser,
    partition_down: None,
) -> None:
    # A job an earlier test cancelled may still be completing: start from none, so each user's one
    # job below is the desktop this test asked for.
    deadline = time.monotonic() + 60
    while squeue("mona") or squeue("nick"):
        assert time.monotonic() < deadline, f"jobs left by earlier tests: {squeue('mona')}, {squeue('nick')}"
        await asyncio.sleep(0.5)
    submitted = time.monotonic()
    waiting = spawn_watching_progress(mona, options={"gpus": 0, "memory_gb": 1})
    impatient = spawn_watching_progress(nick, options={"gpus": 0, "memory_gb": 1, "queue_hours": 0.006})
    wait_for_message(waiting, "the partition is down (PartitionDown)", 30)
    (alice_job,) = squeue("mona")
    (bob_job,) = squeue("nick")

    # nick asked to give up after 0.006 h (21.6 s): his job is cancelled and he is told why.
    gave_up = wait_for_message(impatient, "Gave up", 60)
    assert f"Slurm job {bob_job} was still waiting in the queue after 22 s" in gave_up
    assert "the partition is down (PartitionDown)" in gave_up and "the job was cancelled" in gave_up
    nick.wait_stopped(timeout=20)
    assert squeue("nick") == [] and job_processes(bob_job) == []
    page = nick.http.get(f"{nick.url}/hub/user/nick/lab")
    assert f"Slurm job {bob_job} was still waiting in the queue" in page.text

    # mona closed the page and comes back while her desktop still waits: the spawn goes on, and a new
    # page gets the whole story up to Slurm's live reason, with the time her own limit ends it.
    back = ProgressReader(mona, "")
    current = wait_for_message(back, "Waiting in the Slurm queue", 10)
    assert "PartitionDown" in current and "gives up at" in current

    while time.monotonic() - submitted < JOB_START_TIMEOUT + 5:
        await asyncio.sleep(1)
    assert squeue("mona") == [alice_job], "a hub timeout cancelled the queued desktop"
    subprocess.run(["scontrol", "update", f"PartitionName={PARTITION}", "State=UP"], check=True)
    mona.wait_ready(timeout=60)
    assert squeue("mona") == [alice_job]
    # The page she left open all along followed it to the end.
    waiting.messages(timeout=10)
    assert waiting.events[-1].get("ready") is True, waiting.events[-3:]


# Wraps the browser's own Notification: each one the page raises is also reported to the test (a binding
# survives the page's move to the server; the notification itself is still made by the browser).
RECORD_NOTIFICATIONS = """
(() => {
  const Real = window.Notification;
  if (!Real) { return; }
  class Recorded extends Real {
    constructor(title, options) {
      super(title, options);
      window.jvncNoted(title, (options && options.body) || "", document.title);
    }
  }
  Object.defineProperty(Recorded, "permission", { get: () => Real.permission });
  Recorded.requestPermission = (...a) => Real.requestPermission(...a);
  window.Notification = Recorded;
})();
"""


async def test_the_spawn_page_follows_the_queue_in_its_title_and_notifies_when_ready_or_failed(
    hub: HubBed,
    mona: HubUser,
    partition_down: None,
    spawner_settings: Callable[[str, dict], None],
) -> None:
    """mona asks for mail and for a notification, and works in another tab: the tab's title shows the
    Slurm state, Slurm gets her mail options, and the browser tells her when the desktop is ready; a
    second desktop that Slurm cancels in the queue is reported with the reason."""
    spawner_settings("mona", {"req_partition": PARTITION, "email_address": "{username}@example.org"})
    deadline = time.monotonic() + 60
    while squeue("mona"):
        assert time.monotonic() < deadline, f"jobs left by earlier tests: {squeue('mona')}"
        await asyncio.sleep(0.5)
    notes: list[tuple[str, str, str]] = []
    async with chromium() as browser:
        context = await browser.new_context(viewport={"width": 1280, "height": 800})
        await context.grant_permissions(["notifications"], origin=hub.url)
        await context.expose_binding("jvncNoted", lambda _src, *note: notes.append(note))
        await context.add_init_script(RECORD_NOTIFICATIONS)
        page = await log_in(context, hub, "mona")
        await page.goto(f"{hub.url}/hub/spawn/mona")
        email = page.locator("#jvnc-email")
        assert "Slurm mails mona@example.org" in await page.locator(".jupyter-vnc-options").inner_text()
        await page.fill("input[name=gpus]", "0")
        await page.fill("input[name=memory_gb]", "1")
        await email.check()
        await page.click("form [type=submit]")
        await page.wait_for_url("**/spawn-pending/**", timeout=30_000)
        state = page.locator("#jvnc-notify-state")
        await state.filter(has_text="This tab will notify you").wait_for(timeout=10_000)
        assert await page.locator("#jvnc-notify-button").is_hidden()  # already allowed: nothing to ask
        deadline = time.monotonic() + 30
        while "Waiting in the Slurm queue" not in (title := await page.title()):
            assert time.monotonic() < deadline, title
            await asyncio.sleep(0.3)
        assert "PartitionDown" in title, title
        (job_id,) = squeue("mona")
        detail = subprocess.run(["scontrol", "show", "job", job_id], capture_output=True, text=True).stdout
        assert "MailUser=mona@example.org" in detail and "MailType=BEGIN,FAIL" in detail, detail
        assert notes == []  # nothing to say while it waits

        subprocess.run(["scontrol", "update", f"PartitionName={PARTITION}", "State=DOWN"], check=True)
        subprocess.run(["scontrol", "update", f"PartitionName={PARTITION}", "State=UP"], check=True)
        await page.wait_for_url("**/user/mona/**", timeout=90_000)
        deadline = time.monotonic() + 10
        while not notes:
            assert time.monotonic() < deadline, "no notification when the desktop was ready"
            await asyncio.sleep(0.2)
        title, _, page_title = notes[0]
        assert title == "Your desktop is ready" and page_title.startswith("Ready · "), notes

        # A second desktop, cancelled by Slurm while it waits: the notification gives the reason.
        mona.api("DELETE", "/users/mona/server")
        mona.wait_stopped(timeout=60)
        subprocess.run(["scontrol", "update", f"PartitionName={PARTITION}", "State=DOWN"], check=True)
        assert mona.api("POST", "/users/mona/server", json={"gpus": 0, "memory_gb": 1}).status_code == 202
        await page.goto(f"{hub.url}/hub/spawn-pending/mona")
        deadline = time.monotonic() + 30
        while not squeue("mona"):
            assert time.monotonic() < deadline, "no job submitted"
            await asyncio.sleep(0.3)
        (second,) = squeue("mona")
        subprocess.run(["scancel", second], check=True)
        deadline = time.monotonic() + 60
        while len(notes) < 2:
            assert time.monotonic() < deadline, f"no notification of the failure: {notes}"
            await asyncio.sleep(0.3)
        title, body, page_title = notes[1]
        assert title == "Your desktop could not start" and page_title.startswith("Failed · "), notes
        assert second in body and "cancel" in body.lower(), body
        assert (await page.title()).startswith("Failed · ")
        await page.screenshot(path=str(ROOT / "test-artifacts" / "spawn-failed-notified.png"))
