"""Sharing a desktop through JupyterHub's shares, with the rights enforced by the server, on real parts.

dave's desktop runs in a Slurm job through the demo hub. erin gets a share; fred gets none. What erin's
viewer sends is checked where it would land: on dave's X display (the pointer's position, key presses
seen by a window that has the focus, the X clipboard), never only in the page or the API.
"""

from __future__ import annotations

import asyncio
import json
import pwd
import struct
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import procs
import pytest
from browser import chromium
from conftest import ROOT, HubBed
from hubclient import HubUser, server_path, user_url
from rfbstreams import websocket_stream
from test_lab_e2e import log_in, xfce_panel_colours
from test_spawner import _logged_in, job_processes, squeue

from testkit.rfb import RFBClient

# Whose servers, jobs and homes these tests use (tests/isolation.py: modules of other users run beside).
pytestmark = pytest.mark.users("dave", "erin", "fred")

CONTROL = "custom:jupyter-vnc:control!server=dave/"
ARTIFACTS = ROOT / "test-artifacts"


@pytest.fixture
def dave(hub: HubBed) -> Iterator[HubUser]:
    for user in _logged_in(hub, "dave"):
        yield user
        user.api("DELETE", "/shares/dave/")  # every share of her default server


@pytest.fixture
def erin(hub: HubBed) -> HubUser:
    return HubUser(hub.url, "erin", hub.password)


@pytest.fixture
def fred(hub: HubBed) -> HubUser:
    return HubUser(hub.url, "fred", hub.password)


class AliceX:
    """dave's X display, seen by programs she runs on it (as a terminal in her desktop would)."""

    def __init__(self, job_id: str, display: int) -> None:
        self.user = pwd.getpwnam("dave")
        for pid in job_processes(job_id):
            argv = procs.argv(pid)
            if procs.program(pid) in {"Xvnc", "Xtigervnc"} and "-auth" in argv:
                self.env = {
                    "DISPLAY": f":{display}",
                    "XAUTHORITY": argv[argv.index("-auth") + 1],
                    "PATH": "/usr/bin:/bin",
                }
                break
        else:
            raise AssertionError(f"no Xvnc in job {job_id}")
        self._trap: subprocess.Popen[bytes] | None = None
        self._trap_log = Path(tempfile.mkstemp(prefix="jvnc-keytrap-")[1])

    def run(self, *argv: str, **kwargs: object) -> subprocess.CompletedProcess[str]:
        """A tool on dave's display; one that fails (xdotool, xclip) fails the test (check=True)."""
        kwargs.setdefault("check", True)
        return subprocess.run(
            list(argv), env=self.env, capture_output=True, text=True, timeout=20,
            user=self.user.pw_uid, group=self.user.pw_gid, extra_groups=[], **kwargs,  # type: ignore[arg-type]
        )  # fmt: skip

    def pasted(self) -> str:
        """What a program on dave's display pastes from CLIPBOARD ("" when nothing was copied); an
        xclip that fails otherwise fails the test, so a broken xclip cannot pass for "not pasted"."""
        out = self.run("xclip", "-selection", "clipboard", "-o", check=False)
        if out.returncode != 0:
            assert "not available" in out.stderr, f"xclip failed: {out.stderr}"
            return ""
        return out.stdout

    def copy(self, selection: str, text: str) -> None:
        """dave copies (``clipboard``) or merely selects (``primary``) ``text`` on her display."""
        # xclip forks and owns the selection from the background: no pipes for it to hold open
        subprocess.run(
            ["xclip", "-selection", selection, "-i"], input=text.encode(), env=self.env, timeout=20,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True,
            user=self.user.pw_uid, group=self.user.pw_gid, extra_groups=[],
        )  # fmt: skip

    def pointer(self) -> tuple[int, int]:
        out = dict(
            line.split("=", 1) for line in self.run("xdotool", "getmouselocation", "--shell").stdout.split()
        )
        return int(out["X"]), int(out["Y"])

    def open_key_trap(self) -> None:
        """A window that has the keyboard focus and reports every key press it gets."""
        with self._trap_log.open("wb") as log:
            self._trap = subprocess.Popen(
                ["xev", "-event", "keyboard", "-name", "jvnc-keytrap", "-geometry", "300x200+600+400"],
                env=self.env, stdout=log, stderr=subprocess.DEVNULL,
                user=self.user.pw_uid, group=self.user.pw_gid, extra_groups=[],
            )  # fmt: skip
        # xdotool exits 1 on an X error, and walking the window tree meets one whenever one of XFCE's
        # short-lived windows goes away under it (BadWindow): asked again until the trap is found.
        deadline = time.monotonic() + 20
        while True:
            found = self.run("xdotool", "search", "--name", "jvnc-keytrap", check=False)
            if found.returncode == 0 and found.stdout.split():
                break
            assert time.monotonic() < deadline, f"the key trap never appeared: {found.stderr.strip()}"
            time.sleep(0.2)
        # A window just mapped may refuse the focus for a moment on a loaded machine: asked again, it
        # takes it; a trap that never does still fails the test.
        for attempt in range(10):
            focus = self.run("xdotool", "windowfocus", "--sync", found.stdout.split()[0], check=False)
            if focus.returncode == 0:
                break
            assert attempt < 9, f"the key trap never took the focus: {focus.stderr.strip()}"
            time.sleep(0.3)

    def key_presses(self) -> list[str]:
        """The keysym names of the key presses the trap saw: ``["q", "w"]``."""
        lines = self._trap_log.read_text(errors="replace").splitlines()
        names = []
        for i, line in enumerate(lines):
            if line.startswith("KeyPress event"):
                detail = " ".join(lines[i : i + 4])
                names.append(detail.split("keysym ", 1)[1].split(")", 1)[0].split(", ")[1])
        return names

    def close(self) -> None:
        if self._trap is not None:
            self._trap.kill()
            self._trap.wait()
        self._trap_log.unlink(missing_ok=True)


def _up(dave: HubUser) -> tuple[str, AliceX]:
    assert dave.api("POST", server_path("dave", ""), json={}).status_code in (201, 202)
    dave.wait_ready("", 120)
    assert dave.open_server("", "lab").status_code == 200
    (job_id,) = squeue("dave")
    deadline = time.monotonic() + 60
    while (status := dave.server_api("vnc/api/status").json())["state"] != "running":
        assert time.monotonic() < deadline, status
        time.sleep(0.3)
    return job_id, AliceX(job_id, status["display"])


async def _rfb(user: HubUser, token: str) -> tuple[RFBClient, object]:
    url = user.server_url(owner="dave").replace("http://", "ws://") + f"vnc/websockify?token={token}"
    stream, conn = await websocket_stream(url, None, headers={"Sec-Fetch-Mode": "websocket"})
    client = RFBClient(stream)
    await client.handshake()
    return client, conn


async def _colours_seen(client: RFBClient, timeout: float = 60) -> int:
    """Distinct colours in a full Raw update of the screen, as the viewer would draw them; waits up to
    ``timeout`` for XFCE to draw more than a bare background."""
    assert client.init is not None
    await client.set_pixel_format_32()
    await client.set_encodings(0)
    frame = bytearray(client.init.width * client.init.height * 4)
    deadline = time.monotonic() + timeout
    while True:
        await client.request_update(incremental=False)
        await client.read_update(frame)
        colours = len({bytes(frame[i : i + 3]) for i in range(0, len(frame), 4 * 97)})
        if colours > 4 or time.monotonic() > deadline:
            return colours
        await asyncio.sleep(0.5)


def _pointer(x: int, y: int) -> bytes:
    return struct.pack(">BBHH", 5, 0, x, y)


def _key(keysym: int) -> bytes:
    return struct.pack(">BBxxI", 4, 1, keysym) + struct.pack(">BBxxI", 4, 0, keysym)


def _cut(text: str) -> bytes:
    data = text.encode("latin-1")
    return struct.pack(">BxxxI", 6, len(data)) + data


async def _until(check, timeout: float, what: str) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out after {timeout}s waiting for: {what}"
        await asyncio.sleep(0.1)


def _status(user: HubUser, token: str) -> tuple[int, dict]:
    url = user.server_url(owner="dave") + "vnc/api/status"
    r = user.http.get(url, headers={"Authorization": f"token {token}"})
    return r.status_code, r.json()


async def test_a_recipient_watches_types_only_when_granted_and_is_cut_off_when_revoked(
    dave: HubUser, erin: HubUser, fred: HubUser
) -> None:
    _, x = _up(dave)
    try:
        # fred has no share: the hub itself keeps her out of dave's server.
        assert fred.open_shared("dave", "vnc/").status_code == 403

        assert dave.api("POST", "/shares/dave/", json={"user": "erin"}).status_code == 200
        token = erin.shared_config("dave")["token"]
        code, status = _status(erin, token)
        assert code == 200 and status["you"] == {"user": "erin", "role": "view"} and status["owner"] == "dave"

        client, conn = await _rfb(erin, token)
        assert await _colours_seen(client) > 4  # erin sees dave's desktop, not a blank screen
        x.open_key_trap()
        x.run("xdotool", "mousemove", "10", "10")
        _, alice_view = _status(dave, dave.viewer_config()["token"])
        assert alice_view["watchers"] == [{"user": "erin", "role": "view", "connections": 1}]

        # What erin's viewer sends to change the desktop never reaches X...
        await client.stream.send(_pointer(700, 500) + _key(ord("q")))
        # ...while his update requests still pass: the connection keeps working after it.
        assert await _colours_seen(client) > 4
        await asyncio.sleep(1)
        assert x.pointer() == (10, 10)
        assert x.key_presses() == []
        # A clipboard from a watcher is refused at its header: that connection ends (1008), X keeps its own.
        _, refused = await _rfb(erin, token)
        await refused.write_message(_cut("from erin"), binary=True)  # type: ignore[attr-defined]
        while await asyncio.wait_for(refused.read_message(), 10) is not None:  # type: ignore[attr-defined]
            pass
        assert refused.close_code == 1008  # type: ignore[attr-defined]
        assert x.pasted() != "from erin"
        # What dave copies, or merely selects (PRIMARY), never reaches erin's viewer.
        x.copy("clipboard", "dave copied this")
        x.copy("primary", "dave selected this")
        await asyncio.sleep(1.5)  # Xvnc announces a new selection to every viewer at once
        assert await _colours_seen(client) > 4
        assert client.cut_texts == []
        # Nor may he resize dave's screen.
        size = x.run("xdpyinfo").stdout.split("dimensions:", 1)[1].split()[0]
        await client.stream.send(struct.pack(">BxHHBx", 251, 800, 600, 1) + bytes(16))  # SetDesktopSize
        assert await _colours_seen(client) > 4
        assert x.run("xdpyinfo").stdout.split("dimensions:", 1)[1].split()[0] == size != "800x600"

        # Nor may he reach the rest of dave's server: a terminal there would run as dave, on her display.
        auth = {"Authorization": f"token {token}"}
        for method, path in (("POST", "api/terminals"), ("GET", "api/contents"), ("POST", "api/kernels")):
            r = erin.http.request(method, erin.server_url(owner="dave") + path, headers=auth, json={})
            assert r.status_code == 403, (path, r.status_code, r.text[:200])
        assert dave.server_api("api/contents").status_code == 200

        # Restart and stop are dave's.
        for method, path in (("POST", "vnc/api/desktop?restart=1"), ("DELETE", "vnc/api/desktop")):
            r = erin.http.request(method, erin.server_url(owner="dave") + path, headers=auth, data="{}")
            assert r.status_code == 403 and "only dave can restart or stop" in r.json()["message"], r.text

        # The same messages from dave do arrive (the check above can see them).
        owner, owner_conn = await _rfb(dave, dave.viewer_config()["token"])
        await owner.stream.send(_pointer(700, 500) + _key(ord("q")))
        await _until(lambda: x.pointer() == (700, 500) and x.key_presses() == ["q"], 10, "dave's input on X")

        # dave lets erin type: the share gets the control scope; his open connection follows.
        assert (
            dave.api("POST", "/shares/dave/", json={"user": "erin", "scopes": [CONTROL]}).status_code == 200
        )
        await _until(lambda: _status(erin, token)[1]["you"]["role"] == "control", 10, "erin's control")
        # The owner's list of watchers shows the role the bridge now applies to erin's open connection.
        alice_token = dave.viewer_config()["token"]
        await _until(
            lambda: _status(dave, alice_token)[1]["watchers"][0]["role"] == "control",
            10,
            "the bridge's look",
        )
        await client.stream.send(_pointer(300, 200) + _key(ord("w")))
        await _until(
            lambda: x.pointer() == (300, 200) and x.key_presses() == ["q", "w"], 10, "erin's input on X"
        )
        # Given control, erin gets dave's clipboard too (the check above could see it).
        x.copy("clipboard", "for erin now")
        deadline = time.monotonic() + 10
        while b"for erin now" not in client.cut_texts:
            assert time.monotonic() < deadline, client.cut_texts
            await client.request_update(incremental=False, w=16, h=16)
            await asyncio.wait_for(client.read_update(), 10)

        # dave takes the keyboard back (the share narrows to watching): erin's input stops reaching X.
        narrow = dave.api("PATCH", "/shares/dave/", json={"user": "erin", "scopes": [CONTROL]})
        assert narrow.status_code == 200 and CONTROL not in narrow.json()["scopes"], narrow.text
        await _until(
            lambda: _status(dave, alice_token)[1]["watchers"][0]["role"] == "view", 10, "erin watching again"
        )
        await client.stream.send(_pointer(50, 50) + _key(ord("e")))
        assert await _colours_seen(client) > 4  # the request after them was answered: they were read
        assert x.pointer() == (300, 200) and x.key_presses() == ["q", "w"]

        # dave revokes the share: erin's live connection ends within seconds, and he cannot come back.
        assert dave.api("DELETE", "/shares/dave/").status_code == 204
        started = time.monotonic()
        while (await asyncio.wait_for(conn.read_message(), 10)) is not None:  # type: ignore[attr-defined]
            assert time.monotonic() - started < 10, "erin's connection still open 10 s after the revocation"
        assert conn.close_code == 4403  # type: ignore[attr-defined]
        assert _status(erin, token)[0] == 403
        with pytest.raises(Exception, match="403"):
            await _rfb(erin, token)
        owner_conn.close()  # type: ignore[attr-defined]
    finally:
        x.close()


async def test_a_shared_view_only_desktop_in_chromium(hub: HubBed, dave: HubUser) -> None:
    """erin opens dave's shared desktop in the browser: he sees it, his clicks and keys stay in his
    browser, and dave's viewer says who is watching."""
    ARTIFACTS.mkdir(exist_ok=True)
    _, x = _up(dave)
    try:
        assert dave.api("POST", "/shares/dave/", json={"user": "erin"}).status_code == 200
        x.open_key_trap()
        x.run("xdotool", "mousemove", "10", "10")
        async with chromium() as browser:
            bobs = await browser.new_context(viewport={"width": 1280, "height": 800})
            page = await log_in(bobs, hub, "erin")
            await page.goto(user_url(hub.url, "dave") + "vnc/")  # on dave's origin
            if "oauth2/authorize" in page.url:  # the hub asks erin to let dave's server identify him
                await page.click("form [type=submit]")
            await page.wait_for_url(user_url(hub.url, "dave") + "vnc/**")
            share = page.locator("#jvnc-share")
            await share.wait_for(state="visible", timeout=30_000)
            assert await share.inner_text() == "View only — shared by dave"
            assert await page.locator("#jvnc-restart").is_hidden()
            assert await xfce_panel_colours(page) >= 4, "erin's canvas shows no desktop"

            # The page does not offer erin any input (noVNC's view-only mode); the server must hold even
            # for a page that was changed to send it anyway, so the test turns that mode off again.
            assert await page.evaluate("window.jvncRfb.viewOnly") is True
            await page.evaluate("window.jvncRfb.viewOnly = false")
            canvas = page.locator("#jvnc-screen canvas")
            await canvas.click(position={"x": 400, "y": 300})
            await page.keyboard.type("erin")
            await asyncio.sleep(1)
            assert x.pointer() == (10, 10)
            assert x.key_presses() == []

            alices = await browser.new_context(viewport={"width": 1280, "height": 800})
            own = await log_in(alices, hub, "dave")
            await own.goto(user_url(hub.url, "dave") + "vnc/")
            watching = own.locator("#jvnc-share")
            await watching.wait_for(state="visible", timeout=30_000)
            assert await watching.inner_text() == "Watching: erin (view only)"
            await page.screenshot(path=str(ARTIFACTS / "shared-view-only.png"))
    finally:
        x.close()


async def test_a_hub_admin_may_restart_and_stop_a_users_desktop(hub: HubBed, dave: HubUser) -> None:
    """Whoever may start and stop the server in JupyterHub (here a hub admin, no share needed) may
    restart and stop the desktop in it, and types like the owner."""
    _, x = _up(dave)
    try:
        admin = HubUser(hub.url, "hubadmin", hub.password)
        token = admin.shared_config("dave")["token"]
        code, status = _status(admin, token)
        assert code == 200 and status["you"] == {"user": "hubadmin", "role": "admin"}, status
        auth = {"Authorization": f"token {token}"}
        before = x.run("xdpyinfo").returncode
        alices = admin.server_url(owner="dave")
        r = admin.http.post(alices + "vnc/api/desktop?restart=1", headers=auth, data="{}")
        assert r.status_code == 200 and r.json()["state"] == "running", r.text
        assert admin.http.get(alices + "api/contents", headers=auth).status_code == 200
        r = admin.http.delete(alices + "vnc/api/desktop", headers=auth)
        assert r.status_code == 204, r.text
        assert before == 0 and dave.server_api("vnc/api/status").json()["state"] == "stopped"
    finally:
        x.close()


def _shares(dave: HubUser, method: str = "GET", path: str = "", **kwargs: object):  # type: ignore[no-untyped-def]
    """dave's own viewer asking her server about her shares (share_grants.py), as the Share panel does."""
    return dave.server_api("vnc/api/shares" + path, method=method, **kwargs)


def _hub_shares(dave: HubUser) -> dict[str, list[str]]:
    """What the hub itself holds: each recipient's scopes."""
    return {
        (item["user"] or item["group"])["name"]: sorted(item["scopes"])
        for item in dave.api("GET", "/shares/dave/").json()["items"]
    }


async def test_the_owner_shares_narrows_and_revokes_from_her_desktop(dave: HubUser, erin: HubUser) -> None:
    """The Share panel's API on the real hub: what it grants is what the hub holds and what erin's
    connection gets; a bad request changes nothing; a revocation ends erin's open view."""
    _up(dave)
    assert _shares(dave).json() == {"shares": [], "watching": []}
    for body, words in (
        ({"user": "zed"}, "No such user: zed"),
        ({"group": "no-such-group"}, "No such group: no-such-group"),
        ({"user": "erin", "right": "admin"}, 'right must be "watch" or "control"'),
        ({"user": "erin", "scopes": ["admin:users"]}, "unknown field(s): scopes"),
        ({"user": "dave"}, "your own desktop"),
    ):
        r = _shares(dave, "POST", json=body)
        assert r.status_code == 400 and words in r.json()["message"], (body, r.status_code, r.text)
    assert _hub_shares(dave) == {}

    r = _shares(dave, "POST", json={"user": "erin"})
    assert r.status_code == 200, r.text
    (row,) = r.json()["shares"]
    assert (row["kind"], row["name"], row["right"], row["expires_at"]) == ("user", "erin", "watch", None)
    assert _hub_shares(dave) == {"erin": ["access:servers!server=dave/"]}
    token = erin.shared_config("dave")["token"]
    assert _status(erin, token)[1]["you"] == {"user": "erin", "role": "view"}

    # erin may watch; sharing dave's desktop on is not hers to do (the guest policy and the handler).
    auth = {"Authorization": f"token {token}"}
    for method, path in (("GET", ""), ("POST", ""), ("DELETE", "/user/erin")):
        url = erin.server_url(owner="dave") + "vnc/api/shares" + path
        r = erin.http.request(method, url, headers=auth, json={"user": "fred"})
        assert r.status_code == 403, (method, r.status_code, r.text[:200])

    assert _shares(dave, "POST", json={"user": "erin", "right": "control"}).status_code == 200
    assert _hub_shares(dave) == {"erin": sorted(["access:servers!server=dave/", CONTROL])}
    await _until(lambda: _status(erin, token)[1]["you"]["role"] == "control", 10, "erin given control")
    r = _shares(dave, "POST", json={"user": "erin", "right": "watch"})
    assert r.json()["shares"][0]["right"] == "watch"
    assert _hub_shares(dave) == {"erin": ["access:servers!server=dave/"]}
    await _until(lambda: _status(erin, token)[1]["you"]["role"] == "view", 10, "erin watching again")

    client, conn = await _rfb(erin, token)
    assert await _colours_seen(client) > 4
    assert _shares(dave).json()["watching"] == [{"user": "erin", "role": "view", "connections": 1}]
    r = _shares(dave, "DELETE", "/user/erin")
    assert r.status_code == 200 and r.json()["shares"] == [], r.text
    assert _hub_shares(dave) == {}
    started = time.monotonic()
    while (await asyncio.wait_for(conn.read_message(), 10)) is not None:  # type: ignore[attr-defined]
        assert time.monotonic() - started < 10, "erin's view still open 10 s after the revocation"
    assert conn.close_code == 4403  # type: ignore[attr-defined]
    assert _status(erin, token)[0] == 403


async def test_a_share_for_a_time_ends_by_itself(dave: HubUser, erin: HubUser) -> None:
    """A share given for an hour is revoked at the hub when the hour is up, by the server, with nobody's
    viewer open; the end is kept in dave's home, where a restarted server would find it."""
    _up(dave)
    before = time.time()
    r = _shares(dave, "POST", json={"user": "erin", "minutes": 60})
    assert r.status_code == 200, r.text
    ends = r.json()["shares"][0]["expires_at"]
    ends_at = time.mktime(time.strptime(ends, "%Y-%m-%dT%H:%M:%SZ")) - time.timezone
    assert before + 3590 < ends_at < time.time() + 3610, ends
    token = erin.shared_config("dave")["token"]
    assert _status(erin, token)[0] == 200

    record = Path(pwd.getpwnam("dave").pw_dir) / ".jupyter-vnc" / "shares" / "_default.json"
    kept = json.loads(record.read_text())
    assert list(kept) == ["user:erin"]
    record.write_text(json.dumps({"user:erin": time.time() - 1}))  # the hour has passed (same file owner)
    await _until(lambda: _hub_shares(dave) == {}, 40, "the server to end the share at the hub")
    assert _status(erin, token)[0] == 403
    assert json.loads(record.read_text()) == {}


async def test_sharing_from_the_viewer_in_chromium(hub: HubBed, dave: HubUser) -> None:
    """dave shares from her desktop's toolbar, erin opens the link and sees the desktop with control,
    dave sees him watching, and one click on Revoke ends erin's view."""
    ARTIFACTS.mkdir(exist_ok=True)
    _up(dave)
    async with chromium() as browser:
        alices = await browser.new_context(viewport={"width": 1280, "height": 800})
        own = await log_in(alices, hub, "dave")
        await own.goto(user_url(hub.url, "dave") + "vnc/")
        toggle = own.locator("#jvnc-share-toggle")
        await toggle.wait_for(state="visible", timeout=30_000)
        await toggle.click()
        panel = own.locator("#jvnc-share-panel")
        assert await panel.is_visible()
        assert await own.locator("#jvnc-share-empty").inner_text() == "Nobody: only you see this desktop."
        message = own.locator("#jvnc-share-message")

        await own.fill("#jvnc-share-name", "zed")
        await own.click("#jvnc-share-add")
        await message.filter(has_text="No such user: zed").wait_for(timeout=10_000)
        assert await own.locator("#jvnc-share-list li").count() == 0

        await own.fill("#jvnc-share-name", "erin")
        await own.select_option("#jvnc-share-right", "control")
        await own.select_option("#jvnc-share-minutes", "60")
        await own.click("#jvnc-share-add")
        await message.filter(has_text="Shared: erin may watch and control").wait_for(timeout=10_000)
        row = own.locator('#jvnc-share-list li[data-share="user:erin"]')
        assert "may watch and control" in await row.inner_text()
        assert "ends in" in await row.inner_text()
        link = await own.locator("#jvnc-share-link").input_value()
        assert link == user_url(hub.url, "dave") + "vnc/"

        bobs = await browser.new_context(viewport={"width": 1280, "height": 800})
        page = await log_in(bobs, hub, "erin")
        await page.goto(link)
        if "oauth2/authorize" in page.url:
            await page.click("form [type=submit]")
        await page.wait_for_url(user_url(hub.url, "dave") + "vnc/**")
        label = page.locator("#jvnc-share")
        await label.filter(has_text="Shared by dave — you have control").wait_for(timeout=30_000)
        assert await xfce_panel_colours(page) >= 4, "erin's canvas shows no desktop"
        assert await page.locator("#jvnc-share-toggle").is_hidden()  # not his to share on

        async def erin_listed_as_watching() -> bool:
            await toggle.click()  # closing and opening the panel reads the list again
            await toggle.click()
            return "watching now" in await row.inner_text()

        deadline = time.monotonic() + 20
        while not await erin_listed_as_watching():
            assert time.monotonic() < deadline, await row.inner_text()
        await own.screenshot(path=str(ARTIFACTS / "share-panel.png"))

        await row.get_by_role("button", name="Revoke the share with erin").click()
        await message.filter(has_text="erin can no longer see this desktop").wait_for(timeout=10_000)
        assert await own.locator("#jvnc-share-list li").count() == 0
        # erin's view ends, and his viewer says so instead of trying again and again.
        await (
            page.locator("#jvnc-state-text")
            .filter(has_text="you may no longer see this desktop")
            .or_(page.locator("#jvnc-state-text").filter(has_text="no longer shared with you"))
            .wait_for(timeout=20_000)
        )
        assert "retry" not in await page.locator("#jvnc-state-text").inner_text()
        assert _hub_shares(dave) == {}


async def test_the_keys_panel_sends_what_the_browser_would_keep(hub: HubBed, dave: HubUser) -> None:
    """Esc, Tab and Ctrl+Alt+F2 from the Keys panel reach the window that has the focus on dave's
    display; a watcher is not offered the panel."""
    _, x = _up(dave)
    try:
        async with chromium() as browser:
            context = await browser.new_context(viewport={"width": 1280, "height": 800})
            page = await log_in(context, hub, "dave")
            await page.goto(user_url(hub.url, "dave") + "vnc/")
            await page.wait_for_selector("body[data-vnc-state=connected]", timeout=60_000)
            toggle = page.locator("#jvnc-keys-toggle")
            await toggle.wait_for(state="visible", timeout=30_000)
            x.open_key_trap()
            for combo in ("esc", "tab", "ctrl-alt-f2"):
                await toggle.click()
                await page.locator(f'#jvnc-keys-panel [data-combo="{combo}"]').click()
                assert await page.locator("#jvnc-keys-panel").is_hidden()  # back to the desktop

            # (Xvnc may add a Shift of its own to make F2 out of its Ctrl+Alt keymap level.)
            def arrived() -> bool:
                seen = x.key_presses()
                return seen[:4] == ["Escape", "Tab", "Control_L", "Alt_L"] and seen[-1:] == ["F2"]

            deadline = time.monotonic() + 10
            while not arrived():
                assert time.monotonic() < deadline, f"dave's display saw {x.key_presses()}"
                await asyncio.sleep(0.1)

            assert dave.api("POST", "/shares/dave/", json={"user": "erin"}).status_code == 200
            bobs = await browser.new_context(viewport={"width": 1280, "height": 800})
            watcher = await log_in(bobs, hub, "erin")
            await watcher.goto(user_url(hub.url, "dave") + "vnc/")
            if "oauth2/authorize" in watcher.url:
                await watcher.click("form [type=submit]")
            await watcher.locator("#jvnc-share").filter(has_text="View only").wait_for(timeout=30_000)
            assert await watcher.locator("#jvnc-keys-toggle").is_hidden()
    finally:
        x.close()
