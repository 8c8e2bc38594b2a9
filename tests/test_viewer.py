"""The viewer page in a real browser: headless Chromium opens /vnc/, connects, and shows XFCE."""

from __future__ import annotations

import asyncio
import subprocess
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from browser import CANVAS_COLOURS, chromium
from fixtures_jupyter import UserServer, wait_until
from playwright.async_api import Browser, Page
from rfbstreams import websocket_stream
from test_desktop import xvnc_argv

from testkit.rfb import RFBClient

# Whose servers, jobs and homes these tests use (tests/isolation.py: modules of other users run beside).
pytestmark = pytest.mark.users("jack", "kate")


async def test_browser_reaches_connected_and_shows_the_xfce_panel(
    desktop_server: UserServer, artifacts: Path
) -> None:
    async with chromium() as browser:
        page = await browser.new_page(viewport={"width": 1280, "height": 800})
        started = time.monotonic()
        await page.goto(f"{desktop_server.url}/vnc/?token={desktop_server.token}")
        await page.wait_for_selector("body[data-vnc-state=connected]", timeout=30_000)
        connected = time.monotonic() - started
        # XFCE's panel is a band of several colours at the top of the screen; a blank or black
        # screen has one colour.
        panel = 0
        for _ in range(50):
            panel = await page.evaluate(CANVAS_COLOURS, [0, 30])
            if panel >= 4:
                break
            await page.wait_for_timeout(200)
        await page.screenshot(path=str(artifacts / "viewer-desktop.png"))
        assert panel >= 4, f"no XFCE panel on the canvas ({panel} colours in the top band)"
        assert connected < 15
        # The page asked the desktop to take the browser window's size (remote resize).
        size = None
        for _ in range(50):
            status = desktop_server.status()
            size = (status["width"], status["height"])
            if size[0] == 1280 and size[1] < 800:
                break
            await page.wait_for_timeout(200)
        assert size and size[0] == 1280 and 600 <= size[1] < 800, size


async def test_the_page_connects_before_it_asks_for_the_status(desktop_server: UserServer) -> None:
    """The page comes with the desktop's state: its first websocket opens without a status request
    first (the status line's details follow), and its script is one the browser may keep."""
    async with chromium() as browser:
        page = await browser.new_page()
        seen: list[str] = []
        page.on("websocket", lambda ws: seen.append("websocket"))
        page.on("request", lambda r: seen.append("status") if "/vnc/api/status" in r.url else None)
        cached: list[str] = []
        page.on(
            "response",
            lambda r: cached.append(r.headers.get("cache-control", "")) if "/viewer.js" in r.url else None,
        )
        await page.goto(f"{desktop_server.url}/vnc/?token={desktop_server.token}")
        await page.wait_for_selector("body[data-vnc-state=connected]", timeout=30_000)
        assert seen and seen[0] == "websocket", seen
        assert cached and "max-age=" in cached[0] and "no-cache" not in cached[0], cached


async def test_viewer_page_needs_a_login(desktop_server: UserServer) -> None:
    async with chromium() as browser:
        page = await browser.new_page()
        response = await page.goto(f"{desktop_server.url}/vnc/")
        assert response is not None
        assert "/login" in page.url
        assert await page.locator("canvas").count() == 0


def desktop_env(server: UserServer) -> dict[str, str]:
    """DISPLAY and XAUTHORITY of the server's desktop, as its own X clients (a terminal in it) have them."""
    argv = xvnc_argv(server)
    return {
        "DISPLAY": f":{server.status()['display']}",
        "XAUTHORITY": argv[argv.index("-auth") + 1],
        "PATH": "/usr/bin:/bin",
    }


def xclip(
    server: UserServer,
    *args: str,
    stdin: int | None = None,
    stdout: int | None = None,
    stderr: int | None = subprocess.DEVNULL,
) -> subprocess.Popen[bytes]:
    """xclip on the desktop's CLIPBOARD selection (what Ctrl+C/Ctrl+V use), run as the desktop's owner."""
    user = server.user
    return subprocess.Popen(
        ["xclip", "-selection", "clipboard", *args], env=desktop_env(server), stdin=stdin, stdout=stdout,
        stderr=stderr, user=user.pw_uid, group=user.pw_gid, extra_groups=[],
    )  # fmt: skip


def x_clipboard(server: UserServer) -> str:
    """What a program on the desktop pastes ("" when nothing was copied). An xclip that fails for any
    other reason fails the test: a broken tool must not pass for an empty clipboard."""
    proc = xclip(server, "-o", stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out, err = proc.communicate(timeout=10)
    if proc.returncode != 0:
        assert b"not available" in err, f"xclip failed: {err.decode(errors='replace')}"
        return ""
    return out.decode()


async def until(check: Callable[[], Awaitable[bool]], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not await check():
        assert time.monotonic() < deadline, f"timed out after {timeout}s waiting for: {what}"
        await asyncio.sleep(0.1)


@asynccontextmanager
async def copied_on_the_desktop(server: UserServer, text: str) -> AsyncIterator[None]:
    """A program on the desktop copies ``text``: xclip owns CLIPBOARD and serves it while it runs
    (-quiet keeps it in the foreground, so the test can end it and leave nothing behind). Entered
    once the desktop's clipboard has the text: xclip takes the selection a moment after it starts."""
    proc = xclip(server, "-quiet", "-i", stdin=subprocess.PIPE, stdout=subprocess.DEVNULL)
    assert proc.stdin is not None
    proc.stdin.write(text.encode())
    proc.stdin.close()
    try:

        async def owned() -> bool:
            return await asyncio.to_thread(x_clipboard, server) == text

        await until(owned, 10, "xclip to own the desktop's clipboard")
        yield
    finally:
        proc.terminate()
        proc.wait(10)


async def open_viewer(browser: Browser, server: UserServer) -> Page:
    page = await browser.new_page(viewport={"width": 1280, "height": 800})
    await page.goto(f"{server.url}/vnc/?token={server.token}")
    await page.wait_for_selector("body[data-vnc-state=connected]", timeout=30_000)
    return page


@pytest.fixture
def need_xclip() -> None:
    if not Path("/usr/bin/xclip").exists():
        pytest.skip("xclip is not installed (devstack/install installs it)")


# Text a user would copy: several lines, non-ASCII letters, a tab.
TO_DESKTOP = "from the browser: Grüße, naïve café\nsecond line\twith a tab"
TO_BROWSER = "from the desktop: ½ µm → 3 Å\nand a second line"


async def test_clipboard_panel_crosses_both_ways(server_factory, need_xclip: None, artifacts: Path) -> None:
    """Text typed or pasted into the viewer's clipboard panel becomes the desktop's clipboard (what a
    program there pastes), and text copied on the desktop shows up in the panel."""
    server = server_factory("kate")
    async with chromium() as browser:
        page = await open_viewer(browser, server)
        await page.click("#jvnc-clipboard-toggle")
        panel = page.locator("#jvnc-clipboard-text")
        assert await panel.is_visible()
        await panel.fill(TO_DESKTOP)  # as typing or pasting does: an input event

        async def on_the_desktop() -> bool:
            return await asyncio.to_thread(x_clipboard, server) == TO_DESKTOP

        await until(on_the_desktop, 10, "the panel's text in the desktop's clipboard")
        async with copied_on_the_desktop(server, TO_BROWSER):

            async def in_the_panel() -> bool:
                return await panel.input_value() == TO_BROWSER

            await until(in_the_panel, 10, "the desktop's copied text in the panel")
            await page.screenshot(path=str(artifacts / "viewer-clipboard.png"))


async def test_the_user_chooses_which_way_the_clipboard_goes(server_factory, need_xclip: None) -> None:
    """Settings -> Clipboard "Only to the desktop": what the desktop copies stays there; "Only from the
    desktop": what the user types in the panel stays in the browser. Kept for the next page."""
    server = server_factory("kate")
    async with chromium() as browser:
        page = await open_viewer(browser, server)
        await page.click("#jvnc-settings-toggle")
        await page.select_option("#jvnc-clipboard-direction", "to-desktop")
        await page.click("#jvnc-clipboard-toggle")
        panel = page.locator("#jvnc-clipboard-text")
        async with copied_on_the_desktop(server, TO_BROWSER):
            await asyncio.sleep(2)  # Xvnc announces a new selection to its viewers at once
            assert await panel.input_value() == ""
        await panel.fill(TO_DESKTOP)

        async def on_the_desktop() -> bool:
            return await asyncio.to_thread(x_clipboard, server) == TO_DESKTOP

        await until(on_the_desktop, 10, "the panel's text in the desktop's clipboard")

        await page.reload()
        await page.wait_for_selector("body[data-vnc-state=connected]", timeout=30_000)
        assert await page.locator("#jvnc-clipboard-direction").input_value() == "to-desktop"
        await page.click("#jvnc-settings-toggle")
        await page.select_option("#jvnc-clipboard-direction", "from-desktop")
        await page.click("#jvnc-clipboard-toggle")
        await page.locator("#jvnc-clipboard-text").fill("typed but kept in the browser")
        await asyncio.sleep(1.5)  # the panel sends 0.3 s after the last keystroke
        assert await asyncio.to_thread(x_clipboard, server) != "typed but kept in the browser"
        async with copied_on_the_desktop(server, TO_BROWSER):

            async def in_the_panel() -> bool:
                return await page.locator("#jvnc-clipboard-text").input_value() == TO_BROWSER

            await until(in_the_panel, 10, "the desktop's copied text in the panel")


async def test_no_clipboard_panel_and_nothing_crosses_when_the_clipboard_is_off(
    server_factory, need_xclip: None
) -> None:
    """c.VNCDesktop.clipboard = False: the viewer has no clipboard panel, and the desktop itself refuses
    the clipboard both ways, so even a page that pushes text through noVNC directly (a modified page, a
    browser extension) gets nothing in and nothing out."""
    server = server_factory("kate", "--VNCDesktop.clipboard=False")
    async with chromium() as browser:
        page = await open_viewer(browser, server)
        assert await page.locator("#jvnc-clipboard-toggle").count() == 0
        assert await page.locator("#jvnc-clipboard-panel").count() == 0
        assert await page.locator("#jvnc-clipboard-text").count() == 0
        # Every clipboard event noVNC would raise on this page (the panel's own source of text).
        await page.evaluate(
            """() => {
              window.received = [];
              window.jvncRfb.addEventListener('clipboard', (e) => window.received.push(e.detail.text));
            }"""
        )
        async with copied_on_the_desktop(server, TO_BROWSER):
            await page.evaluate("(text) => window.jvncRfb.clipboardPasteFrom(text)", TO_DESKTOP)
            # Time enough: with the clipboard on, both have crossed by then (this test then fails).
            await asyncio.sleep(3)
            assert await asyncio.to_thread(x_clipboard, server) == TO_BROWSER  # still the desktop's own
            assert await page.evaluate("() => window.received") == []
        assert await page.evaluate("() => document.body.dataset.vncState") == "connected"


def _fit(server: UserServer, size: str) -> tuple[int, dict]:
    return server.post(f"/vnc/api/desktop?size={size}", b"{}")


async def test_jupyterlab_sizes_the_desktop_ahead_only_while_nobody_looks(server_factory) -> None:
    """JupyterLab tells the server the size the tile's tab will have (``?size=WxH``): a desktop nobody
    is connected to takes it (the X server's own screen, read back); one with a viewer keeps the
    viewer's; a wrong size is refused; a desktop that is not running is not started for it."""
    idle = server_factory("kate", "--VNCDesktop.prestart=False")
    code, body = _fit(idle, "1400x900")
    assert code == 200 and body["fitted"] is False and body["state"] == "stopped"

    server = server_factory("kate", "--VNCDesktop.resolution=1280x720")
    wait_until(lambda: server.status()["state"] == "running", 30, "kate's desktop running")
    code, body = _fit(server, "1400x900")
    assert code == 200 and body["fitted"] is True, body
    assert (server.status()["width"], server.status()["height"]) == (1400, 900)
    dims = subprocess.run(["xdpyinfo"], env=desktop_env(server), capture_output=True, text=True).stdout
    assert "dimensions:    1400x900 pixels" in dims
    for wrong in ("1400", "99999x900", "1400x900;rm", "100x100"):
        code, body = _fit(server, wrong)
        assert code == 400 and "size" in body["message"], (wrong, body)

    stream, connection = await websocket_stream(server.ws_url, server.token)
    try:
        await RFBClient(stream).handshake()
        code, body = _fit(server, "1600x1000")
        assert code == 200 and body["fitted"] is False  # a viewer is connected: its size stays
        assert (server.status()["width"], server.status()["height"]) == (1400, 900)
    finally:
        connection.close()
