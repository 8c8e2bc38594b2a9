"""The desktop at /vnc/ on real Jupyter servers run as the test users: real Xvnc, real XFCE."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import pwd
import signal
import struct
import subprocess
import sys
import time
from pathlib import Path

import procs
import pytest
from fixtures_jupyter import UserServer, desktop_pids, owned_by_kate, wait_until
from rfbstreams import websocket_stream
from tornado.httpclient import HTTPClientError

from testkit.rfb import RAW, RFBClient

# Whose servers, jobs and homes these tests use (tests/isolation.py: modules of other users run beside).
pytestmark = pytest.mark.users("jack", "kate")


async def connect(server: UserServer) -> RFBClient:
    stream, _ = await websocket_stream(server.ws_url, server.token)
    client = RFBClient(stream)
    await client.handshake()
    return client


async def screen_colours(client: RFBClient) -> int:
    """Distinct colours in a full-screen Raw update (1 for a blank X screen)."""
    await client.set_pixel_format_32()
    await client.set_encodings(RAW)
    await client.request_update(incremental=False)
    update = await client.read_update()
    px = update.pixels
    return len({px[i : i + 3] for i in range(0, len(px), 4 * 97)})


def xvnc_argv(server: UserServer) -> list[str]:
    return procs.argv(xvnc_pid(server))


def xvnc_pid(server: UserServer) -> int:
    for pid in server.desktop_pids():
        if procs.program(pid) in {"Xvnc", "Xtigervnc"}:
            return pid
    raise AssertionError(f"no Xvnc among {server.desktop_pids()}")


def arg(argv: list[str], flag: str) -> str:
    return argv[argv.index(flag) + 1]


def as_user(user: str, code: str) -> subprocess.CompletedProcess[str]:
    """Run Python code as another Unix user (a real second user on this machine)."""
    return subprocess.run(
        ["runuser", "-u", user, "--", sys.executable, "-c", code], capture_output=True, text=True
    )


async def test_rfb_handshake_through_the_websocket_shows_the_desktop(desktop_server: UserServer) -> None:
    client = await connect(desktop_server)
    assert client.init is not None and (client.init.width, client.init.height) == (1920, 1080)
    assert client.init.name == "GPU Desktop"
    colours = 0
    for _ in range(50):  # XFCE draws its panel and background 1-2 s after the X server is up
        colours = await screen_colours(client)
        if colours > 20:
            break
        await asyncio.sleep(0.2)
    assert colours > 20, f"only {colours} colours on screen: no desktop drawn"


async def test_status_api_describes_the_desktop(desktop_server: UserServer) -> None:
    status = desktop_server.status()
    assert status["state"] == "running"
    assert status["vnc_server"] == "tigervnc" and "TigerVNC" in status["vnc_version"]
    assert (status["width"], status["height"]) == (1920, 1080)
    assert status["gl"] == "software" and "llvmpipe" in status["gl_renderer"]
    assert "software" in status["gl_notice"]
    assert status["job_id"] is None and status["seconds_left"] is None
    assert "token" not in str(status).lower() and desktop_server.token not in str(status)


def test_no_tcp_listener_in_the_desktop(desktop_server: UserServer) -> None:
    pids = desktop_server.desktop_pids()
    assert len(pids) >= 5, pids  # Xvnc, dbus, xfce4-session, panel, xfwm4...
    listening = set()
    for table in ("tcp", "tcp6", "udp", "udp6"):
        for line in Path(f"/proc/net/{table}").read_text().splitlines()[1:]:
            fields = line.split()
            if table.startswith("udp") or fields[3] == "0A":  # 0A = LISTEN
                listening.add(fields[9])
    for pid in pids:
        try:
            fds = list(Path(f"/proc/{pid}/fd").iterdir())
        except OSError:
            continue  # a short-lived helper of the session that has ended since
        for fd in fds:
            try:
                target = os.readlink(fd)
            except OSError:
                continue
            if target.startswith("socket:["):
                assert target[8:-1] not in listening, f"pid {pid} listens on the network ({target})"


def test_other_users_cannot_reach_the_vnc_socket_or_the_x_display(desktop_server: UserServer) -> None:
    argv = xvnc_argv(desktop_server)
    socket_path, display = arg(argv, "-rfbunixpath"), desktop_server.status()["display"]
    assert oct(Path(socket_path).parent.stat().st_mode & 0o777) == "0o700"
    vnc = as_user("kate", f"import socket; socket.socket(socket.AF_UNIX).connect({socket_path!r})")
    assert vnc.returncode != 0 and "PermissionError" in vnc.stderr
    # A raw X11 connection setup with no cookie, on the path socket and on the abstract one.
    x11 = f"""
import socket, struct
for address in ("/tmp/.X11-unix/X{display}", "\\0/tmp/.X11-unix/X{display}"):
    s = socket.socket(socket.AF_UNIX)
    s.connect(address)
    s.sendall(struct.pack("<BxHHHHxx", 0x6C, 11, 0, 0, 0))
    print(address.strip(chr(0)), s.recv(1)[0])
"""
    refused = as_user("kate", x11)
    assert refused.returncode == 0, refused.stderr
    assert [line.split()[-1] for line in refused.stdout.splitlines()] == ["0", "0"], (
        refused.stdout
    )  # 0 = Failed
    # The owner's X clients, holding the cookie, are let in.
    env = {"DISPLAY": f":{display}", "XAUTHORITY": arg(argv, "-auth"), "PATH": "/usr/bin:/bin"}
    command = ["runuser", "-u", "jack", "--", "env", *(f"{k}={v}" for k, v in env.items()), "xdpyinfo"]
    owner = subprocess.run(command, capture_output=True, text=True)
    assert owner.returncode == 0 and "dimensions:" in owner.stdout, owner.stderr


async def test_no_authentication_no_desktop(server_factory) -> None:
    server = server_factory("kate", "--VNCDesktop.prestart=False")
    with pytest.raises(HTTPClientError) as refused:
        await websocket_stream(server.ws_url, token=None)
    assert refused.value.code == 403
    assert server.request("/vnc/api/status", auth=False)[0] == 403
    assert server.request("/vnc/api/desktop", method="POST", auth=False)[0] == 403
    code, _ = server.request("/vnc/", auth=False)
    assert code == 302  # to the login page
    assert server.desktop_marker() is None and not server.desktop_pids()
    assert server.status()["state"] == "stopped"


async def settled_fd_count(pid: int, quiet: float = 3.0) -> int:
    """The process's number of open descriptors once it has not changed for ``quiet`` seconds."""
    count, since = -1, asyncio.get_running_loop().time()
    for _ in range(300):
        now = len(os.listdir(f"/proc/{pid}/fd"))
        if now != count:
            count, since = now, asyncio.get_running_loop().time()
        elif asyncio.get_running_loop().time() - since >= quiet:
            return count
        await asyncio.sleep(0.2)
    raise AssertionError(f"descriptors of {pid} never settled")


def login_cookie(server: UserServer) -> str:
    """The cookie a browser holds after opening the server once with its token."""
    import requests

    session = requests.Session()
    assert session.get(f"{server.url}/vnc/?token={server.token}", timeout=30).status_code == 200
    return "; ".join(f"{c.name}={c.value}" for c in session.cookies)


async def refused_requests(server: UserServer, n: int) -> None:
    """Authenticated requests to the websocket that must be refused: a plain GET (no upgrade), and
    upgrades with the user's cookie from a foreign Origin (a token skips Jupyter's Origin check: a
    page elsewhere cannot have the token)."""
    cookie = login_cookie(server)
    for _ in range(n):
        code, _ = server.request("/vnc/websockify")
        assert code == 400, code
        with pytest.raises(HTTPClientError) as refused:
            await websocket_stream(
                server.ws_url, None, headers={"Cookie": cookie, "Origin": "http://evil.example"}
            )
        assert refused.value.code == 403


async def test_refused_requests_start_nothing_and_leak_nothing(server_factory) -> None:
    server = server_factory("kate", "--VNCDesktop.prestart=False")
    await refused_requests(server, 5)
    assert server.status()["state"] == "stopped"
    assert server.desktop_marker() is None and not server.desktop_pids()
    # With the desktop running: Xvnc's descriptors do not grow with refused requests.
    stream, connection = await websocket_stream(server.ws_url, server.token)
    client = RFBClient(stream)
    await client.handshake()
    xvnc = xvnc_pid(server)
    before = await settled_fd_count(xvnc)  # XFCE's programs connect to X for a while after start
    await refused_requests(server, 10)
    assert await settled_fd_count(xvnc) == before
    await client.request_update(incremental=False)  # the real connection is untouched
    assert (await client.read_update()).rects >= 1
    connection.close()


def test_malformed_desktop_requests_are_refused_and_start_nothing(server_factory) -> None:
    import requests

    server = server_factory("kate", "--VNCDesktop.prestart=False")
    auth = {"Authorization": f"token {server.token}"}
    for query, body in [
        ("", b"not json"),
        ("", b"[1, 2]"),
        ("", b"{" + b'"a": 1, ' * 2000 + b"}"),
        ("?restart=maybe", b""),
        ("?restart=" + "1" * 5000, b""),
    ]:
        answer = requests.post(f"{server.url}/vnc/api/desktop{query}", data=body, headers=auth, timeout=30)
        assert answer.status_code == 400, (query[:20], body[:20], answer.status_code)
        assert answer.json()["message"] and len(answer.text) < 300
    assert server.status()["state"] == "stopped" and not server.desktop_pids()
    assert requests.post(f"{server.url}/vnc/api/desktop", data=b"{}", headers=auth, timeout=60).ok


async def test_two_users_have_a_desktop_each_at_once(desktop_server: UserServer, server_factory) -> None:
    kate = server_factory("kate")
    a, b = await asyncio.gather(connect(desktop_server), connect(kate))
    assert a.init and b.init
    displays = {desktop_server.status()["display"], kate.status()["display"]}
    assert len(displays) == 2
    assert not desktop_server.desktop_pids() & kate.desktop_pids()


async def test_stopping_the_server_leaves_nothing_behind(server_factory) -> None:
    server = server_factory("kate")
    await connect(server)
    display, argv = server.status()["display"], xvnc_argv(server)
    directory = Path(arg(argv, "-rfbunixpath")).parent
    marker = server.desktop_marker()
    # Xvnc answers before XFCE has started its helpers: wait for them, so that their stop is tested too.
    wait_until(lambda: len(server.desktop_pids()) >= 5, 15, "XFCE's processes to start")
    assert marker
    server.stop(signal.SIGTERM)
    assert not server.desktop_pids()
    assert not directory.exists()
    for leftover in (Path(f"/tmp/.X11-unix/X{display}"), Path(f"/tmp/.X{display}-lock")):
        # Another test's X server, running beside, may have taken the display number since: not hers.
        assert not (leftover.exists() and leftover.lstat().st_uid == server.user.pw_uid), leftover


async def test_a_killed_server_does_not_orphan_its_desktop(server_factory) -> None:
    server = server_factory("kate")
    await connect(server)
    directory = Path(arg(xvnc_argv(server), "-rfbunixpath")).parent
    server.stop(signal.SIGKILL)  # no chance to clean up: the reaper must
    wait_until(lambda: not server.desktop_pids(), 15, "the reaper to end the orphaned desktop")
    wait_until(lambda: not directory.exists(), 5, "the desktop directory to be removed")


async def test_a_crashed_xvnc_is_started_again_on_the_next_connection(server_factory) -> None:
    server = server_factory("kate")
    await connect(server)
    # xvnc_pid tolerates a desktop helper that exits between listing /proc and reading it
    old_pid, before = xvnc_pid(server), server.desktop_pids()
    os.kill(old_pid, signal.SIGKILL)
    wait_until(lambda: server.status()["state"] == "failed", 10, "the status to report the crash")
    assert "reconnect" in server.status()["message"]
    client = await connect(server)
    assert client.init is not None
    assert server.status()["state"] == "running"
    assert xvnc_pid(server) != old_pid and not before & server.desktop_pids()


async def test_admin_settings_reach_xvnc(server_factory) -> None:
    server = server_factory("kate", "--VNCDesktop.resolution=1280x720", "--VNCDesktop.clipboard=False")
    client = await connect(server)
    assert client.init is not None and (client.init.width, client.init.height) == (1280, 720)
    argv = xvnc_argv(server)
    assert "-AcceptCutText=0" in argv and "-SendCutText=0" in argv
    assert server.status()["clipboard"] is False


async def test_restart_gives_a_fresh_desktop(server_factory) -> None:
    server = server_factory("kate")
    await connect(server)
    before = server.desktop_pids()
    code, _ = server.request("/vnc/api/desktop?restart=1", method="POST")
    assert code == 200
    after = server.desktop_pids()
    assert after and not before & after
    assert (await connect(server)).init is not None


async def test_a_users_own_xstartup_wins(server_factory, kate_home: Path) -> None:
    vnc = kate_home / ".vnc"
    vnc.mkdir(exist_ok=True)
    xstartup = vnc / "xstartup"
    xstartup.write_text('#!/bin/sh\ntouch "$HOME/xstartup-ran"\nexec sleep 600\n')
    xstartup.chmod(0o755)
    owned_by_kate(vnc, xstartup)
    server = server_factory("kate")
    await connect(server)
    wait_until(lambda: (kate_home / "xstartup-ran").exists(), 10, "kate's own xstartup to run")
    names = {Path(f"/proc/{p}/comm").read_text().strip() for p in server.desktop_pids()}
    assert "sleep" in names and "xfce4-session" not in names, names


async def test_a_conda_dbus_on_path_does_not_break_xfce(server_factory, kate_home: Path) -> None:
    """Open OnDemand #700: a user's conda ships dbus tools that cannot talk to the system's XFCE."""
    conda = kate_home / "fakeconda" / "bin"
    conda.mkdir(parents=True, exist_ok=True)
    for tool in ("dbus-launch", "dbus-run-session", "dbus-daemon"):
        (conda / tool).write_text(
            "#!/bin/sh\necho 'conda dbus: cannot talk to the system session' >&2\nexit 1\n"
        )
        (conda / tool).chmod(0o755)
    owned_by_kate(conda.parent, conda, *conda.iterdir())
    server = server_factory("kate", path_prefix=f"{conda}:")
    client = await connect(server)
    colours = 0
    for _ in range(50):
        colours = await screen_colours(client)
        if colours > 20:
            break
        await asyncio.sleep(0.2)
    assert colours > 20, "XFCE did not come up with a conda dbus first on PATH"
    names = {Path(f"/proc/{p}/comm").read_text().strip() for p in server.desktop_pids()}
    assert "xfce4-session" in names


def last_activity(server: UserServer) -> str:
    """The server's own last activity, as jupyterhub-singleuser reports it to the hub."""
    code, body = server.request("/api/status")
    assert code == 200, body
    return json.loads(body)["last_activity"]


async def test_input_is_activity_and_an_untouched_viewer_is_not(desktop_server: UserServer) -> None:
    """A viewer that only asks for pixels, and the status polls of a forgotten tab, leave the server's
    last activity alone (the hub's idle culler reads it); a pointer move at the desktop stamps it."""
    client = await connect(desktop_server)
    await screen_colours(client)  # a viewer's housekeeping: pixel format, encodings, an update
    for _ in range(3):
        desktop_server.status()
        assert desktop_server.request("/vnc/api/config")[0] == 200
    before = last_activity(desktop_server)
    await asyncio.sleep(1.5)
    for _ in range(5):
        await client.request_update(incremental=True)
        desktop_server.status()
    assert last_activity(desktop_server) == before
    await client.stream.send(struct.pack(">BBHH", 5, 0, 100, 100))  # PointerEvent
    deadline = time.monotonic() + 10
    while last_activity(desktop_server) == before:
        assert time.monotonic() < deadline, "a pointer event at the desktop was not counted as activity"
        await asyncio.sleep(0.1)


async def test_delete_ends_the_desktop_and_the_next_connection_starts_a_new_one(server_factory) -> None:
    """DELETE /vnc/api/desktop (the viewer's "Stop desktop"): every process of the desktop ends, the
    status says so, and the server lives on; the next viewer gets a fresh desktop."""
    server = server_factory("kate")
    await connect(server)
    before = server.desktop_pids()
    assert before and server.status()["state"] == "running"
    code, _ = server.request("/vnc/api/desktop", method="DELETE")
    assert code == 204
    wait_until(lambda: not server.desktop_pids(), 30, "the desktop's processes to end")
    assert server.status()["state"] == "stopped"
    assert server.request("/api/status")[0] == 200  # the Jupyter server itself is untouched
    assert (await connect(server)).init is not None
    after = server.desktop_pids()
    assert after and not before & after


def server_children(server: UserServer) -> set[int]:
    """Live direct children of the Jupyter server: Xvnc, the session and the reaper while a desktop runs."""
    children = set()
    for entry in Path("/proc").iterdir():
        with contextlib.suppress(OSError, ValueError, IndexError):
            fields = (entry / "stat").read_text().rsplit(")", 1)[-1].split()
            if entry.name.isdigit() and int(fields[1]) == server.proc.pid and fields[0] not in {"Z", "X"}:
                children.add(int(entry.name))
    return children


def desktop_dirs(user: str) -> set[Path]:
    """The desktops' private directories of ``user`` (VNC socket, cookie, logs) in the temp dir."""
    return set(Path("/tmp").glob(f"jupyter-vnc-{user}-*"))


def test_an_xvnc_that_exits_at_once_is_reported_with_its_own_words(server_factory) -> None:
    """An admin's Xvnc argument that TigerVNC rejects: the real Xvnc exits before it is ready. The user
    is told so, Xvnc's own reason first (not buried under the usage text it prints), by the status and
    by every start request; nothing of the attempts is left running or on disk; and the Jupyter server
    itself keeps serving."""
    import requests

    dirs_before = desktop_dirs("kate")
    server = server_factory("kate", "--VNCDesktop.extra_args=-nosuchoption")
    # The server prestarts the desktop: that first attempt fails on its own, with no request.
    wait_until(lambda: server.status()["state"] == "failed", 30, "the prestart to fail")
    why = "Xvnc exited (code 1) before it was ready: Unrecognized option: -nosuchoption. "
    assert server.status()["message"].startswith(why), server.status()["message"]
    auth = {"Authorization": f"token {server.token}"}
    for _ in range(2):  # each request tries again (a later start may work) and fails the same way
        answer = requests.post(f"{server.url}/vnc/api/desktop", headers=auth, timeout=60)
        assert answer.status_code == 503, (answer.status_code, answer.text)
        assert answer.json()["state"] == "failed" and answer.json()["message"].startswith(why), answer.text
        assert server.status()["state"] == "failed"
    # Nothing of the failed attempts lives on: no Xvnc, no session, no reaper, no private directory.
    wait_until(lambda: not server_children(server), 10, "the failed desktop's processes to end")
    assert not desktop_pids(pwd.getpwnam("kate").pw_uid)
    assert desktop_dirs("kate") == dirs_before
    # The server is untouched: its API and the viewer page (which shows the message) still answer.
    assert server.request("/api/status")[0] == 200
    assert server.request("/vnc/")[0] == 200
    assert server.proc.poll() is None
