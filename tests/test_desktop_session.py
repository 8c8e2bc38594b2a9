"""The desktop session against what a busy node leaves behind: other sessions' ICE sockets in /tmp, a
session that fails as it starts (issue 23's XFCE flake: about one start in 40 never drew)."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
from pathlib import Path

import procs
import pytest
from fixtures_jupyter import UserServer, owned_by_kate, wait_until
from test_desktop import connect, screen_colours

from jupyter_vnc.desktop import SESSION_EARLY_EXIT_S
from jupyter_vnc.resources import template_path
from jupyter_vnc.xfiles import ICE_DIR, remove_dead_ice_sockets

# Whose servers, jobs and homes these tests use (tests/isolation.py: modules of other users run beside).
pytestmark = pytest.mark.users("jack", "kate")


def dead_socket(path: Path) -> None:
    """A socket file nothing listens on: what a session killed with its X server leaves."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.bind(str(path))


def listening(path: Path) -> bool:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(2)
        try:
            s.connect(str(path))
        except OSError:
            return False
    return True


@pytest.mark.unit
def test_only_the_users_dead_ice_sockets_are_removed(tmp_path: Path) -> None:
    dead, live, plain, other = (tmp_path / name for name in ("101", "102", "103", "104"))
    dead_socket(dead)
    dead_socket(other)
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(live))
    listener.listen()
    plain.write_text("not a socket")
    try:
        assert remove_dead_ice_sockets(tmp_path, uid=os.getuid() + 1) == 0  # another user's: all stay
        assert remove_dead_ice_sockets(tmp_path) == 2
        assert not dead.exists() and not other.exists()
        assert live.exists() and plain.exists()  # a running session's socket, and what is no socket
    finally:
        listener.close()
    assert remove_dead_ice_sockets(tmp_path / "absent") == 0


async def drawn(server: UserServer) -> int:
    client = await connect(server)
    colours = 0
    for _ in range(100):  # XFCE draws 1-2 s after Xvnc is up (more on a loaded machine)
        colours = await screen_colours(client)
        if colours > 20:
            break
        await asyncio.sleep(0.2)
    return colours


def session_socket(server: UserServer) -> Path:
    """The running xfce4-session's ICE socket (named after its pid)."""
    pids = [p for p in server.desktop_pids() if procs.program(p) == "xfce4-session"]
    assert len(pids) == 1, f"one xfce4-session expected, not {pids}"
    path = ICE_DIR / str(pids[0])
    wait_until(lambda: listening(path), 20, f"xfce4-session listening on {path}")
    return path


@pytest.mark.parametrize("how", ["stopped", "server killed"])
async def test_a_desktop_that_ends_leaves_no_ice_socket_to_break_another_users_desktop(
    server_factory, how: str
) -> None:
    """xfce4-session dies with its X server and never removes its ICE socket. Another user's session
    that later gets the same pid cannot remove it (/tmp/.ICE-unix is sticky) and gives up at once:
    "Unable to establish ICE listeners", a black desktop. So the desktop's end removes it: the clean
    stop does, and so does the reaper when the Jupyter server was killed."""
    server = server_factory("kate")
    assert await drawn(server) > 20
    ice = session_socket(server)
    server.stop(signal.SIGTERM if how == "stopped" else signal.SIGKILL)
    wait_until(lambda: not server.desktop_pids(), 20, "the desktop's end")
    wait_until(lambda: not ice.exists(), 10, f"{ice} removed")


def _kates_xstartup(kate_home: Path, body: str) -> Path:
    vnc = kate_home / ".vnc"
    vnc.mkdir(exist_ok=True)
    xstartup = vnc / "xstartup"
    xstartup.write_text("#!/bin/sh\n" + body)
    xstartup.chmod(0o755)
    owned_by_kate(vnc, xstartup)
    return vnc


async def test_a_session_that_fails_as_it_starts_is_started_again(server_factory, kate_home: Path) -> None:
    vnc = _kates_xstartup(
        kate_home,
        'if [ ! -e "$HOME/.vnc/failed-once" ]; then\n'
        '  touch "$HOME/.vnc/failed-once"; echo cannot set up >&2; exit 1\n'
        "fi\n"
        f"exec /bin/sh {template_path('xstartup')}\n",
    )
    server = server_factory("kate")
    colours = await drawn(server)
    assert (vnc / "failed-once").exists()
    assert colours > 20, f"only {colours} colours: the failed session was not started again"
    assert "exited with code 1" in server.log.read_text() and "starting it again" in server.log.read_text()


async def test_a_session_that_always_fails_is_tried_three_times_then_the_viewer_says_why(
    server_factory, kate_home: Path
) -> None:
    vnc = _kates_xstartup(kate_home, 'echo x >> "$HOME/.vnc/tries"\necho no window manager >&2\nexit 3\n')
    server = server_factory("kate")
    await connect(server)
    wait_until(lambda: server.status()["state"] == "failed", 30, "the desktop to give up")
    assert (vnc / "tries").read_text().count("x") == 3
    message = server.status()["message"]
    assert "the desktop session ended (exit code 3, no window manager)" in message, message
    assert "reconnect" in message
    wait_until(lambda: not server.desktop_pids(), 10, "no process of the failed desktop")


async def test_logging_out_ends_the_desktop_and_a_reconnect_gets_a_new_one(server_factory) -> None:
    """The user logs out of XFCE (its session ends after its first seconds): no black screen for ever;
    the desktop stops and says so, and the viewer's reconnect brings a fresh desktop up."""
    server = server_factory("kate")
    assert await drawn(server) > 20
    (session,) = [p for p in server.desktop_pids() if procs.program(p) == "xfce4-session"]
    wait_until(lambda: server.status()["uptime"] > SESSION_EARLY_EXIT_S, 40, "the session's first seconds")
    os.kill(session, signal.SIGTERM)  # what "Log Out" ends with
    wait_until(lambda: server.status()["state"] == "failed", 20, "the desktop to stop")
    assert "the desktop session ended" in server.status()["message"]
    assert await drawn(server) > 20  # connecting starts a new desktop
