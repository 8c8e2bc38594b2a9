"""A power user's own VNC viewer on the desktop: the commands the owner is shown, run for real. A real
sshd forwards a local port to the desktop's unix socket, and TigerVNC's own viewer (vncviewer, on a
scratch X display) shows the desktop through it; another user's forward of the same socket gets
nothing, because sshd opens the socket as the user who logged in."""

from __future__ import annotations

import asyncio
import contextlib
import pwd
import shlex
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from fixtures_jupyter import UserServer, free_port, wait_until

from jupyter_vnc.native_client import commands
from testkit.rfb import ByteStream, RFBClient

pytestmark = pytest.mark.users("liam", "kate")


def test_the_commands_name_the_socket_the_node_and_the_login_host() -> None:
    sock = Path("/tmp/jvnc-1000-x/vnc sock")  # a space: quoted for the shell
    assert commands(sock, "", "liam", "gpu07") == {
        "ssh": "ssh -N -L '5901:/tmp/jvnc-1000-x/vnc sock' liam@gpu07",
        "viewer": "vncviewer localhost::5901",
    }
    assert commands(sock, "login.example.org", "liam", "gpu07")["ssh"].startswith(
        "ssh -N -J liam@login.example.org -L "
    )
    assert "-J kate@login " in commands(sock, "kate@login", "liam", "gpu07")["ssh"]


@pytest.fixture
def sshd() -> Iterator[tuple[int, dict[str, Path]]]:
    """A real sshd on a free port for liam and kate, each with a key of their own; (port, keys)."""
    if not shutil.which("vncviewer"):
        pytest.skip("no vncviewer (TigerVNC's viewer): run devstack/install")
    folder = Path(tempfile.mkdtemp(prefix="jvnc-sshd-"))
    folder.chmod(0o755)
    keys_dir = folder / "authorized"
    keys_dir.mkdir(mode=0o755)
    keys: dict[str, Path] = {}
    for user in ("liam", "kate"):
        key = folder / f"{user}_key"
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
        (keys_dir / user).write_text((folder / f"{user}_key.pub").read_text())
        keys[user] = key
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(folder / "host_key")], check=True
    )
    port = free_port()
    (folder / "sshd_config").write_text(
        f"Port {port}\nListenAddress 127.0.0.1\nHostKey {folder / 'host_key'}\n"
        f"PidFile {folder / 'sshd.pid'}\n"
        f"AuthorizedKeysFile {keys_dir}/%u\nAllowUsers liam kate\nPasswordAuthentication no\n"
        "KbdInteractiveAuthentication no\nUsePAM yes\nStrictModes no\nAllowStreamLocalForwarding yes\n"
        "AllowTcpForwarding yes\nX11Forwarding no\n"
    )
    Path("/run/sshd").mkdir(exist_ok=True)
    proc = subprocess.Popen(
        ["/usr/sbin/sshd", "-D", "-e", "-f", str(folder / "sshd_config")],
        stdout=subprocess.DEVNULL, stderr=(folder / "sshd.log").open("wb"),
    )  # fmt: skip
    wait_until(lambda: _listening(port), 10, "sshd listening")
    yield port, keys
    proc.terminate()
    proc.wait(10)
    shutil.rmtree(folder, ignore_errors=True)


def _listening(port: int) -> bool:
    with contextlib.closing(socket.socket()) as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def _forward(shown: str, ssh_port: int, key: Path, login: str, local_port: int) -> subprocess.Popen[bytes]:
    """The command the owner was shown, run on "their computer": same forward, to this test's sshd."""
    argv = shlex.split(shown)
    assert argv[:3] == ["ssh", "-N", "-L"] and argv[3].startswith("5901:") and len(argv) == 5, argv
    target = argv[3].removeprefix("5901:")
    return subprocess.Popen(
        ["ssh", "-N", "-L", f"127.0.0.1:{local_port}:{target}", "-p", str(ssh_port), "-i", str(key),
         "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null", "-o", "BatchMode=yes",
         "-o", "ExitOnForwardFailure=yes", f"{login}@127.0.0.1"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip


async def test_the_owners_vnc_viewer_gets_the_desktop_through_the_ssh_forward_and_nobody_else_does(
    server_factory: Callable[..., UserServer], sshd: tuple[int, dict[str, Path]]
) -> None:
    ssh_port, keys = sshd
    server = server_factory("liam", env={"SLURMD_NODENAME": "node1"})
    wait_until(lambda: server.status()["state"] == "running", 30, "liam's desktop running")
    shown = server.status()["native_client"]
    assert shown["viewer"] == "vncviewer localhost::5901"
    assert shown["ssh"].endswith(" liam@node1"), shown
    sock = Path(shlex.split(shown["ssh"])[3].removeprefix("5901:"))
    assert sock.is_socket() and sock.parent.stat().st_mode & 0o777 == 0o700
    assert sock.parent.stat().st_uid == pwd.getpwnam("liam").pw_uid

    local = free_port()
    forward = _forward(shown["ssh"], ssh_port, keys["liam"], "liam", local)
    viewer_x = display = None
    try:
        wait_until(lambda: _listening(local) or forward.poll() is not None, 20, "the forward listening")
        assert forward.poll() is None, forward.stderr.read().decode() if forward.stderr else ""
        # TigerVNC's viewer, on a scratch X display of its own, with the command's own server argument.
        display = 90 + local % 9
        scratch = Path(tempfile.mkdtemp(prefix="jvnc-viewer-x-")) / "x.sock"
        viewer_x = subprocess.Popen(
            ["Xvnc", f":{display}", "-geometry", "1400x950", "-depth", "24", "-SecurityTypes", "None",
             "-rfbport", "-1", "-rfbunixpath", str(scratch)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        wait_until(scratch.exists, 10, "the viewer's scratch display")
        server_arg = shlex.split(shown["viewer"])[1].replace("5901", str(local))
        viewer_log = scratch.parent / "vncviewer.log"
        with viewer_log.open("wb") as log:
            viewer = subprocess.Popen(
                ["vncviewer", "-display", f":{display}", "-ViewOnly", "-Shared", "-FullScreen", server_arg],
                stdout=log, stderr=subprocess.STDOUT,
            )  # fmt: skip
        try:
            wait_until(lambda: b"Using pixel format" in viewer_log.read_bytes(), 20, "vncviewer connected")
            assert f"Connected to host localhost port {local}".encode() in viewer_log.read_bytes()
            # What the viewer shows: liam's XFCE desktop, read off the scratch display.
            deadline = time.monotonic() + 30
            while (colours := await _colours_on(scratch)) <= 4:
                assert time.monotonic() < deadline, f"the viewer shows {colours} colours"
                await asyncio.sleep(1)
        finally:
            viewer.terminate()
            viewer.wait(10)

        # kate forwards liam's socket the same way: sshd opens it as kate, and gets nothing.
        other = free_port()
        stolen = _forward(shown["ssh"], ssh_port, keys["kate"], "kate", other)
        try:
            wait_until(lambda: _listening(other), 20, "kate's forward listening")
            reader, writer = await asyncio.open_connection("127.0.0.1", other)
            banner = await asyncio.wait_for(reader.read(12), 10)
            writer.close()
            assert banner == b"", f"kate's forward reached liam's desktop: {banner!r}"
        finally:
            stolen.terminate()
            stolen.wait(10)
    finally:
        forward.terminate()
        forward.wait(10)
        if viewer_x is not None:
            viewer_x.terminate()
            viewer_x.wait(10)


async def _colours_on(path: Path) -> int:
    stream = await ByteStream.unix(str(path))
    try:
        client = RFBClient(stream)
        init = await client.handshake()
        await client.set_pixel_format_32()
        await client.set_encodings(0)
        frame = bytearray(init.width * init.height * 4)
        await client.request_update(incremental=False)
        await asyncio.wait_for(client.read_update(frame), 20)
        return len({bytes(frame[i : i + 3]) for i in range(0, len(frame), 4 * 97)})
    finally:
        stream.close()
