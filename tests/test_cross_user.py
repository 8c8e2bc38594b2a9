"""Another user of the same hub, attacking: erin's own server serves a page, dave opens it.

The hub gives every user's servers an origin of their own (c.JupyterHub.subdomain_host, as a site must
set it): erin's page runs on http://erin.localhost:8000, dave's server is http://dave.localhost:8000.
erin's page must get nothing from her desktop or her server: no RFB byte from her websocket, no framing
of her viewer (frame-ancestors 'none'), no XSRF token, no API call, and no reading of her viewer or
JupyterLab opened in a window by one click on his page (on a hub without per-user origins that window
would be same-origin and hand him her token: what the README says remains there). Her own viewer keeps
working. Chromium, through the real hub and proxy, servers in real Slurm jobs.
"""

from __future__ import annotations

import asyncio
import json
import os
import pwd
import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from browser import chromium
from conftest import HubBed
from hubclient import HubUser, server_path, user_url
from test_lab_e2e import log_in

# Whose servers, jobs and homes these tests use (tests/isolation.py: modules of other users run beside).
pytestmark = pytest.mark.users("dave", "erin")

ATTACK = """<!doctype html><meta charset="utf-8"><title>cat pictures</title>
<body><p>Nothing to see here.</p><button id="more">More cats</button>
<script>
window.results = {};
const victim = '__VICTIM__';  // dave's server, on her own origin
function done(key, value) { window.results[key] = value; }
const TOKEN = /"token": ?"[^"]+"/;  // as the viewer's and JupyterLab's page configurations hold it
// 1. dave's desktop websocket, with whatever the browser sends on its own (her cookie).
(() => {
  const ws = new WebSocket(`${victim.replace('http', 'ws')}vnc/websockify`, 'binary');
  ws.binaryType = 'arraybuffer';
  let bytes = 0;
  ws.onmessage = (e) => { bytes += e.data.byteLength; };
  ws.onopen = () => done('ws_open', true);
  ws.onclose = () => done('ws', { bytes, opened: !!window.results.ws_open });
  setTimeout(() => { ws.close(); done('ws', { bytes, opened: !!window.results.ws_open }); }, 8000);
})();
// A request to her server: its status, or how the browser refused it.
async function get(url) {
  try { return (await fetch(url, { credentials: 'include', redirect: 'manual' })).status; }
  catch (e) { return e.name; }
}
// 2. her viewer in a frame, then her XSRF cookie through it, then her Jupyter API with it.
(() => {
  const frame = document.createElement('iframe');
  frame.src = `${victim}vnc/`;
  frame.onload = async () => {
    let xsrf = null, readable = false;
    try {
      const doc = frame.contentDocument;
      readable = !!(doc && doc.location.href.startsWith(victim));
      const m = readable ? doc.cookie.match(/(?:^|; )_xsrf=([^;]*)/) : null;
      xsrf = m ? decodeURIComponent(m[1]) : null;
    } catch (e) { readable = false; }
    done('frame', { readable, xsrf: !!xsrf, api: await get(`${victim}api/contents`) });
  };
  document.body.appendChild(frame);
})();
// 3. her API straight away, and her desktop status.
(async () => {
  done('direct', { api: await get(`${victim}api/contents`), status: await get(`${victim}vnc/api/status`) });
})();
// 4. One click opens her viewer and her JupyterLab in windows of their own, and a page of erin's own as a
// control (a window this page may read); then it tries to read her token out of each window.
document.getElementById('more').onclick = () => {
  const windows = { viewer: `${victim}vnc/`, lab: `${victim}lab`, own: location.href + '?again' };
  for (const [key, url] of Object.entries(windows)) windows[key] = window.open(url, key);
  setTimeout(() => {
    const read = {};
    for (const [key, w] of Object.entries(windows)) {
      try {
        const config = w.document.querySelector('#jvnc-config, #jupyter-config-data');
        read[key] = { title: w.document.title, token: TOKEN.test(config ? config.textContent : '') };
      } catch (e) { read[key] = e.name; }
    }
    done('windows', read);
  }, 8000);
};
</script></body>
"""


def _write_as(user: pwd.struct_passwd, path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    for p in (path, path.parent):
        os.chown(p, user.pw_uid, user.pw_gid)


@pytest.fixture
def bobs_page(hub: HubBed) -> Iterator[str]:
    """erin's single-user server serves his own static page (his own config, in his home): its URL."""
    erin = pwd.getpwnam("erin")
    home = Path(erin.pw_dir)
    config = home / ".jupyter" / "jupyter_server_config.json"
    public = home / "public"
    old = config.read_text() if config.exists() else None
    _write_as(erin, public / "cats.html", ATTACK.replace("__VICTIM__", user_url(hub.url, "dave")))
    _write_as(erin, config, json.dumps({"ServerApp": {"extra_static_paths": [str(public)]}}))
    yield user_url(hub.url, "erin") + "static/cats.html"
    if old is None:
        config.unlink()
    else:
        config.write_text(old)
    shutil.rmtree(public, ignore_errors=True)


def _up(user: HubUser) -> None:
    if not user.api("GET", f"/users/{user.name}").json()["servers"].get(""):
        response = user.api("POST", server_path(user.name), json={"gpus": 0, "memory_gb": 1})
        assert response.status_code in {201, 202}, response.text
    user.wait_ready(timeout=150)


@pytest.fixture
def two_users(hub: HubBed, bobs_page: str) -> Iterator[tuple[HubUser, HubUser]]:
    users = (HubUser(hub.url, "dave", hub.password), HubUser(hub.url, "erin", hub.password))
    for user in users:
        _up(user)
    yield users
    for user in users:
        user.api("DELETE", server_path(user.name))
    for user in users:
        user.wait_stopped(timeout=90)


async def test_bobs_page_gets_nothing_of_alices_desktop_or_server(
    two_users: tuple[HubUser, HubUser], hub: HubBed, bobs_page: str
) -> None:
    dave, _ = two_users
    viewer_url = dave.server_url() + "vnc/"
    assert viewer_url.startswith("http://dave.localhost:") and bobs_page.startswith("http://erin.localhost:")
    async with chromium() as browser:
        context = await browser.new_context()
        page = await log_in(context, hub, "dave")
        # dave has used her server (so her cookies for her server's origin exist, as they would).
        await page.goto(viewer_url)
        await page.wait_for_selector("body[data-vnc-state=connected]", timeout=60_000)
        await page.goto(bobs_page)
        assert "cat pictures" in await page.title(), "erin's server did not serve his page"
        async with context.expect_page():
            await page.click("#more")  # the one click the attack needs
        results: dict = {}
        for _ in range(60):
            results = await page.evaluate("window.results || {}")
            if {"ws", "frame", "direct", "windows"} <= set(results):
                break
            await asyncio.sleep(0.5)
        assert {"ws", "frame", "direct", "windows"} <= set(results), results
        assert results["ws"] == {"bytes": 0, "opened": False}, results
        assert results["frame"]["readable"] is False and results["frame"]["xsrf"] is False, results
        assert results["frame"]["api"] != 200 and results["direct"]["api"] != 200, results
        assert results["direct"]["status"] != 200, results
        # Her viewer and her JupyterLab opened (with her token in them), on her origin: erin's page
        # cannot look inside. His own page in a window it can (the attack itself works).
        theirs = [p for p in context.pages if p.url.startswith(dave.server_url())]
        assert len(theirs) == 2, [p.url for p in context.pages]
        for window in theirs:
            config = await window.text_content("#jvnc-config, #jupyter-config-data")
            assert re.search(r'"token": ?"[^"]+"', config or ""), window.url
        windows = results["windows"]
        assert windows["viewer"] == windows["lab"] == "SecurityError", windows
        assert windows["own"] == {"title": "cat pictures", "token": False}, windows

        # dave's own viewer still works, with the token her page was given.
        viewer = await context.new_page()
        response = await viewer.goto(viewer_url)
        assert response is not None and response.status == 200
        assert "frame-ancestors 'none'" in (await response.all_headers())["content-security-policy"]
        await viewer.wait_for_selector("body[data-vnc-state=connected]", timeout=60_000)
        await context.close()
    assert dave.api("GET", "/users/dave").json()["servers"][""]["ready"]


async def test_the_desktop_websocket_wants_its_own_users_token(two_users: tuple[HubUser, HubUser]) -> None:
    """A cookie alone, or another user's token, gets no desktop, whatever JupyterHub makes of it."""
    from rfbstreams import websocket_stream
    from tornado.httpclient import HTTPClientError

    from testkit.rfb import RFBClient

    dave, erin = two_users
    prefix = dave.server_prefix()
    mine, theirs = dave.viewer_config()["token"], erin.viewer_config()["token"]
    assert mine and theirs and mine != theirs
    url = dave.server_url().replace("http://", "ws://") + "vnc/websockify"
    cookie = {"Cookie": dave.cookie_header(prefix)}
    for query in ("", f"?token={theirs}"):
        with pytest.raises(HTTPClientError) as refused:
            await websocket_stream(url + query, None, headers=cookie)
        assert refused.value.code == 403, query
    stream, connection = await websocket_stream(f"{url}?token={mine}", None, headers=cookie)
    assert (await RFBClient(stream).handshake()).width > 0
    connection.close()
