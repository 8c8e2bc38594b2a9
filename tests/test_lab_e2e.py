"""The JupyterLab side, end to end in Chromium through the real hub: log in, fill the spawn form, watch the
Slurm progress, the "GPU Desktop" launcher tile, the desktop in a browser tab and in a JupyterLab tab,
the status bar item, Restart, walltime warnings, a named server; and nobody else gets iris's desktop.

Only the user iris is used here (gina and hugo belong to tests that may run at the same time; hugo only
logs in to be refused). Every server of iris's is stopped at the end, whatever happened.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from browser import CANVAS_COLOURS, chromium
from conftest import HubBed
from hubclient import HubUser, server_origin, server_path, user_url
from playwright.async_api import Browser, BrowserContext, Frame, Page
from playwright.async_api import TimeoutError as PlaywrightTimeout

# Whose servers, jobs and homes these tests use (tests/isolation.py: modules of other users run beside).
pytestmark = pytest.mark.users("gina", "hugo", "iris")

USER = "iris"
VIEWPORT = {"width": 1400, "height": 900}

# Reports the spawn page's event log to the test as it grows: the page goes on to JupyterLab by itself
# as soon as the server is up, so the test cannot count on reading it in time.
WATCH_PROGRESS = """
if (location.pathname.includes('/spawn-pending/')) {
  new MutationObserver(() => {
    const log = document.getElementById('progress-log');
    if (log) window.jvncProgress(log.textContent);
  }).observe(document, { subtree: true, childList: true, characterData: true });
}
"""


def stop_servers(user: HubUser) -> None:
    servers = list(user.api("GET", f"/users/{user.name}").json()["servers"])
    for name in servers:
        user.api("DELETE", server_path(user.name, name))
    for name in servers:
        user.wait_stopped(name, timeout=90)


@pytest.fixture(scope="module")
def iris(hub: HubBed) -> Iterator[HubUser]:
    user = HubUser(hub.url, USER, hub.password)
    stop_servers(user)  # whatever an interrupted earlier run left
    try:
        yield user
    finally:
        stop_servers(user)


async def log_in(context: BrowserContext, hub: HubBed, name: str) -> Page:
    """Log in through the hub's login page, as a person does."""
    page = await context.new_page()
    await page.goto(f"{hub.url}/hub/login")
    await page.fill("input[name=username]", name)
    await page.fill("input[name=password]", hub.password)
    await page.click("[type=submit]")
    await page.wait_for_load_state()
    assert "/hub/login" not in page.url, f"login as {name} failed: {page.url}"
    return page


async def spawn_with_form(page: Page, hub: HubBed, server: str, artifacts: Path, shots: str) -> list[str]:
    """Open the spawn page, choose the options, submit, follow the progress page to JupyterLab.
    Returns the progress log as the page showed it."""
    seen: list[str] = []
    submitted = asyncio.Event()

    def progress(_source: object, text: str) -> None:
        seen.append(text)
        if "Submitted Slurm job" in text:
            submitted.set()

    await page.context.expose_binding("jvncProgress", progress)
    await page.context.add_init_script(WATCH_PROGRESS)
    await page.goto(f"{hub.url}/hub/spawn/{USER}/{server}" if server else f"{hub.url}/hub/spawn/{USER}")
    await page.fill("input[name=gpus]", "1")
    await page.fill("input[name=memory_gb]", "1")
    await page.fill("input[name=hours]", "1")
    await page.select_option("select[name=resolution]", "1280x720")
    if shots:
        await page.screenshot(path=str(artifacts / f"{shots}-spawn-form.png"))
    await page.click("form [type=submit]")
    await page.wait_for_url("**/spawn-pending/**", timeout=30_000)
    await asyncio.wait_for(submitted.wait(), timeout=60)
    if shots and "/spawn-pending/" in page.url:
        await page.evaluate("document.getElementById('progress-details')?.setAttribute('open', '')")
        await page.screenshot(path=str(artifacts / f"{shots}-spawn-progress.png"))
    prefix = f"/user/{USER}/{server + '/' if server else ''}"
    await page.wait_for_url(f"**{prefix}lab**", timeout=150_000)
    return seen


async def open_lab(page: Page, hub: HubBed, server: str = "") -> None:
    """A fresh JupyterLab layout (?reset: an earlier run's saved tabs would hide the launcher)."""
    await page.goto(user_url(hub.url, USER, server) + "lab?reset")
    await page.wait_for_selector(".jp-Launcher", timeout=60_000)
    # JupyterLab's "get notified about news?" toast covers the corner where notifications appear.
    news = page.locator(".Toastify__toast", has_text="Jupyter news")
    no = news.get_by_role("button", name="No", exact=True)
    with contextlib.suppress(PlaywrightTimeout):
        await no.click(timeout=5_000)


async def open_desktop_page(browser: Browser, hub: HubBed, user: str, path: str) -> Page:
    """A new browser context logged in as ``user``, showing the desktop viewer at ``path`` (e.g.
    ``/user/gina/vnc/``, on gina's own origin) once XFCE has drawn in it."""
    context = await browser.new_context(viewport={"width": 1024, "height": 700})
    page = await log_in(context, hub, user)
    await page.goto(server_origin(hub.url, path.split("/")[2]) + path)
    assert await xfce_panel_colours(page) >= 4, f"the viewer at {path} shows no desktop"
    return page


async def xfce_panel_colours(target: Page | Frame, canvas: str = "canvas") -> int:
    """Distinct colours in the top band of the desktop canvas: XFCE's panel shows several. Waits up to
    60 s: XFCE (under VirtualGL) takes ~8 s to draw on a quiet 2-core machine, more under a test run."""
    colours = 0
    for _ in range(300):
        colours = await target.evaluate(CANVAS_COLOURS, [0, 30, canvas])
        if colours >= 4:
            break
        await asyncio.sleep(0.2)
    return colours


PANEL = ".jvnc-DesktopPanel"
PANEL_CANVAS = f"{PANEL} canvas"


async def status_bar_text(page: Page, pattern: str, timeout: float = 40) -> str:
    item = page.locator(".jvnc-StatusItem")
    deadline = time.monotonic() + timeout
    text = ""
    while time.monotonic() < deadline:
        text = await item.inner_text()
        if re.search(pattern, text):
            return text
        await asyncio.sleep(0.5)
    raise AssertionError(f"status bar shows {text!r}, not /{pattern}/")


def xvnc_pids(user: str) -> set[int]:
    """The X servers of the user's desktop jobs (Xvnc or Xtigervnc)."""
    from test_spawner import job_processes, squeue

    found = set()
    for job_id in squeue(user):
        for pid in job_processes(job_id):
            with contextlib.suppress(OSError):
                if Path(f"/proc/{pid}/comm").read_text().strip() in {"Xvnc", "Xtigervnc"}:
                    found.add(pid)
    return found


async def test_launcher_tile_desktop_tab_panel_status_and_restart(
    iris: HubUser, hub: HubBed, artifacts: Path
) -> None:
    async with chromium() as browser:
        context = await browser.new_context(viewport=VIEWPORT)
        page = await log_in(context, hub, USER)
        progress = await spawn_with_form(page, hub, "", artifacts, "lab")
        log = progress[-1] if progress else ""
        assert re.search(r"Submitted Slurm job \d+", log), log

        # The server got what the form asked for.
        info = iris.wait_ready()
        chosen = {"gpus": 1, "memory_gb": 1, "hours": 1.0, "resolution": "1280x720"}
        assert {k: info["user_options"].get(k) for k in chosen} == chosen, info["user_options"]

        # iris's own defaults for the viewer, in JupyterLab's settings (Settings Editor -> GPU Desktop).
        assert iris.open_server(path="lab").status_code == 200
        mine = {"raw": json.dumps({"quality": 3, "resize": "scale"})}
        put = iris.server_api("lab/api/settings/jupyter-vnc:plugin", method="PUT", json=mine)
        assert put.status_code == 204, put.text

        # The launcher: its own "Desktop" section with the "GPU Desktop" tile.
        await open_lab(page, hub)
        section = page.locator(".jp-Launcher-section", has_text="Desktop")
        await section.locator(".jp-Launcher-sectionTitle", has_text="Desktop").wait_for()
        tile = section.locator(".jp-LauncherCard", has_text="GPU Desktop")
        await tile.wait_for()
        assert await tile.locator("svg").count() == 1  # its own icon
        status = await status_bar_text(page, r"Desktop: running · ")
        # "Desktop: running · software GL · 1280x720 · 59 min left" (with a multiplication sign; a GPU's
        # name where there is one)
        shape = r"^Desktop: running · .+ · \d+\u00d7\d+ · (5\d min|1 h 00 min) left$"
        assert re.search(shape, status), status
        await page.screenshot(path=str(artifacts / "lab-launcher.png"))

        # The tile opens the desktop in a new browser tab, under this server's prefix.
        async with context.expect_page() as opened:
            await tile.click()
        desktop = await opened.value
        assert desktop.url == user_url(hub.url, USER) + "vnc/"  # on iris's own origin
        await desktop.wait_for_selector("body[data-vnc-state=connected]", timeout=60_000)
        panel_colours = await xfce_panel_colours(desktop)
        await desktop.screenshot(path=str(artifacts / "lab-desktop-tab.png"))
        assert panel_colours >= 4, f"no XFCE panel in the new tab ({panel_colours} colours)"
        await desktop.close()

        # The File menu has the commands; one opens the desktop in a JupyterLab tab, drawn in Lab's own
        # page (no iframe: the viewer page refuses to be framed).
        await page.locator(".lm-MenuBar-item", has_text="File").click()
        for label in ("Open GPU Desktop in a Browser Tab", "Restart GPU Desktop"):
            await page.locator(".lm-Menu-item", has_text=label).wait_for()
        await page.locator(".lm-Menu-item", has_text="Open GPU Desktop in a JupyterLab Tab").click()
        await page.locator(".lm-TabBar-tab.lm-mod-current", has_text="GPU Desktop").wait_for()
        await page.wait_for_selector(f"{PANEL}[data-vnc-state=connected]", timeout=60_000)
        assert await page.locator(f"{PANEL} iframe").count() == 0
        assert await xfce_panel_colours(page, PANEL_CANVAS) >= 4, "no XFCE panel in the JupyterLab tab"
        await page.screenshot(path=str(artifacts / "lab-desktop-panel.png"))
        # The tab's viewer starts from iris's defaults (this browser has no choice of its own yet).
        assert await page.locator(f"{PANEL} #jvnc-quality").input_value() == "3"
        assert await page.locator(f"{PANEL} #jvnc-resize").input_value() == "scale"
        # Sharing from the tab too: the panel reads the share list with JupyterLab's own token.
        async with page.expect_response(lambda r: r.url.endswith("/vnc/api/shares")) as listed:
            await page.locator(f"{PANEL} #jvnc-share-toggle").click()

        # The viewer follows JupyterLab's theme: light here, dark once the user switches Lab to dark.
        async def bar_brightness() -> float:
            rgb = await page.locator(f"{PANEL} #jvnc-toolbar").evaluate(
                "e => getComputedStyle(e).backgroundColor"
            )
            return sum(int(v) for v in re.findall(r"\d+", rgb)[:3]) / 3

        assert await page.locator(PANEL).get_attribute("data-theme") == "light"
        assert await bar_brightness() > 200
        for theme in ("JupyterLab Dark", "JupyterLab Light"):
            await page.locator(".lm-MenuBar-item", has_text="Settings").click()
            await page.locator(".lm-Menu-item").filter(has_text=re.compile(r"^Theme$")).hover()
            await page.locator(".lm-Menu-item").filter(has_text=re.compile(rf"^{theme}$")).click()
            await page.wait_for_selector(f"{PANEL}[data-theme={'dark' if 'Dark' in theme else 'light'}]")
            if "Dark" in theme:
                assert await bar_brightness() < 60
                await page.screenshot(path=str(artifacts / "lab-desktop-panel-dark.png"))
        assert (await listed.value).status == 200
        empty = page.locator(f"{PANEL} #jvnc-share-empty")
        assert await empty.inner_text() == "Nobody: only you see this desktop."
        assert await page.locator(f"{PANEL} #jvnc-share-message").is_hidden()
        link = await page.locator(f"{PANEL} #jvnc-share-link").input_value()
        assert link == user_url(hub.url, USER) + "vnc/"
        await page.locator(f"{PANEL} #jvnc-share-toggle").click()

        # The command palette has all three; Restart asks first, then restarts the desktop, and the
        # panel's viewer connects to the new one.
        assert iris.open_server(path="lab").status_code == 200
        before = iris.server_api("vnc/api/status").json()
        assert before["state"] == "running"
        old_xvnc = xvnc_pids("iris")
        assert len(old_xvnc) == 1, old_xvnc
        # (From the View menu: keys typed now go to the desktop, which has the focus.)
        await page.locator(".lm-MenuBar-item", has_text="View").click()
        await page.locator(".lm-Menu-item", has_text="Activate Command Palette").click()
        palette = page.locator(".lm-CommandPalette-input")
        await palette.fill("GPU Desktop")
        items = page.locator(".lm-CommandPalette-item", has_text="GPU Desktop")
        labels = sorted(await items.locator(".lm-CommandPalette-itemLabel").all_inner_texts())
        assert labels == [
            "Open GPU Desktop in a Browser Tab",
            "Open GPU Desktop in a JupyterLab Tab",
            "Restart GPU Desktop",
        ], labels
        await items.filter(has_text="Restart GPU Desktop").click()
        await page.locator(".jp-Dialog", has_text="Restart the GPU Desktop?").wait_for()
        await page.locator(".jp-Dialog-button.jp-mod-warn", has_text="Restart").click()
        restarted = page.locator(".Toastify__toast", has_text="The GPU Desktop was restarted.")
        await restarted.wait_for(timeout=60_000)
        after = iris.server_api("vnc/api/status").json()
        # A restart is a new X server: the old Xvnc process is gone and another one serves.
        new_xvnc = xvnc_pids("iris")
        assert after["state"] == "running" and len(new_xvnc) == 1 and not new_xvnc & old_xvnc, (
            old_xvnc,
            new_xvnc,
        )
        await page.wait_for_selector(f"{PANEL}[data-vnc-state=connected]", timeout=60_000)
        assert await xfce_panel_colours(page, PANEL_CANVAS) >= 4, "no XFCE panel after the restart"
        await context.close()


async def test_someone_else_cannot_open_carols_desktop(iris: HubUser, hub: HubBed) -> None:
    if not iris.api("GET", f"/users/{USER}").json()["servers"].get(""):
        iris.api("POST", server_path(USER), json={"gpus": 0, "memory_gb": 1})
    iris.wait_ready(timeout=150)
    url = user_url(hub.url, USER) + "vnc/"
    async with chromium() as browser:
        # Not logged in: the hub's login page, no desktop.
        anonymous = await browser.new_context()
        page = await anonymous.new_page()
        await page.goto(url)
        assert "/hub/login" in page.url, page.url
        assert await page.locator("canvas").count() == 0

        # Logged in as hugo: the hub refuses him iris's server, page and API.
        hugo = await browser.new_context()
        page = await log_in(hugo, hub, "hugo")
        response = await page.goto(url)
        assert response is not None and response.status == 403, (response and response.status, page.url)
        assert "/user/iris/" not in page.url or "/oauth2/" in page.url
        assert await page.locator("canvas").count() == 0
        # (Through the browser itself: Playwright's own request client cannot resolve iris.localhost.)
        api = await page.goto(url + "api/status")
        assert api is not None and api.status == 403 and "running" not in await api.text(), api and api.status
        # Nor can his browser open iris's desktop websocket.
        outcome = await page.evaluate(
            """url => new Promise(resolve => {
                 const ws = new WebSocket(url, 'binary');
                 ws.onopen = () => { ws.close(); resolve('open'); };
                 ws.onerror = () => resolve('refused');
                 setTimeout(() => resolve('timeout'), 10000);
               })""",
            url.replace("http://", "ws://") + "websockify",
        )
        assert outcome == "refused", outcome


async def test_named_server_tile_and_walltime_warnings(iris: HubUser, hub: HubBed, artifacts: Path) -> None:
    server = "viz"
    async with chromium() as browser:
        context = await browser.new_context(viewport=VIEWPORT)
        page = await log_in(context, hub, USER)
        await spawn_with_form(page, hub, server, artifacts, "")
        iris.wait_ready(server)
        assert iris.open_server(server, "lab").status_code == 200  # her own client's login to it

        # The status poll answers with the end of the job near: the lab warns 10, then 2 minutes ahead.
        left = {"seconds": 590, "answered": 0}

        async def near_the_end(route) -> None:
            # The server's real answer, asked by iris's own client: route.fetch() would ask from
            # Playwright's driver, which cannot resolve iris.localhost (Chromium can).
            response = await asyncio.to_thread(iris.server_api, "vnc/api/status", server)
            body = response.json()
            body["seconds_left"] = left["seconds"]
            await route.fulfill(status=response.status_code, json=body)
            left["answered"] += 1

        # (JupyterLab adds a cache-busting query to the URL.)
        status_api = re.compile(rf"/user/{USER}/{server}/vnc/api/status(\?|$)")
        await page.route(status_api, near_the_end)
        await open_lab(page, hub, server)
        warning = page.locator(".Toastify__toast", has_text=re.compile(r"Slurm job \d+ ends in 9\smin"))
        await warning.wait_for(timeout=30_000)
        await status_bar_text(page, r"9 min \d\d s left")
        left["seconds"] = 100
        urgent = page.locator(".Toastify__toast", has_text=re.compile(r"ends in 1\smin\s40\ss"))
        await urgent.wait_for(timeout=30_000)
        await page.wait_for_timeout(1_000)  # let it finish sliding in before the screenshot
        await page.screenshot(path=str(artifacts / "lab-viz-warnings.png"))
        left["seconds"] = 90
        answered = left["answered"]
        deadline = time.monotonic() + 60
        while left["answered"] < answered + 2:  # two more polls answered: nothing new to warn about
            assert time.monotonic() < deadline, "the status was not polled again"
            await asyncio.sleep(0.2)
        await page.wait_for_timeout(1_000)  # a toast from that answer would be on its way in by now
        assert await page.locator(".Toastify__toast", has_text="Save your work").count() == 2
        await page.unroute(status_api)

        # The tile opens this server's desktop, not the default server's.
        tile = page.locator(".jp-LauncherCard", has_text="GPU Desktop")
        async with context.expect_page() as opened:
            await tile.click()
        desktop = await opened.value
        assert desktop.url == user_url(hub.url, USER, server) + "vnc/"
        await desktop.wait_for_selector("body[data-vnc-state=connected]", timeout=60_000)
        colours = await xfce_panel_colours(desktop)
        await desktop.screenshot(path=str(artifacts / "lab-viz-desktop-tab.png"))
        assert colours >= 4, f"no XFCE panel on the named server's desktop ({colours} colours)"
        await context.close()
