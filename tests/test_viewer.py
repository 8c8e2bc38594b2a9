"""The viewer page in a real browser: headless Chromium opens /vnc/, connects, and shows XFCE."""

from __future__ import annotations

import time
from pathlib import Path

from browser import CANVAS_COLOURS, chromium
from fixtures_jupyter import UserServer


async def test_browser_reaches_connected_and_shows_the_xfce_panel(
    alice_server: UserServer, artifacts: Path
) -> None:
    async with chromium() as browser:
        page = await browser.new_page(viewport={"width": 1280, "height": 800})
        started = time.monotonic()
        await page.goto(f"{alice_server.url}/vnc/?token={alice_server.token}")
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
            status = alice_server.status()
            size = (status["width"], status["height"])
            if size[0] == 1280 and size[1] < 800:
                break
            await page.wait_for_timeout(200)
        assert size and size[0] == 1280 and 600 <= size[1] < 800, size


async def test_viewer_page_needs_a_login(alice_server: UserServer) -> None:
    async with chromium() as browser:
        page = await browser.new_page()
        response = await page.goto(f"{alice_server.url}/vnc/")
        assert response is not None
        assert "/login" in page.url
        assert await page.locator("canvas").count() == 0
