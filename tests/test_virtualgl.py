"""VirtualGL from the pinned source, and a GL program in a real desktop rendering through it.

This machine has no GPU, but Mesa exposes a software EGL device, and VirtualGL's EGL back end renders on
it exactly as it does on a GPU's: the path a GPU node takes (vglrun, the faker in every program of the
session, EGL device, readback, the frame on the VNC screen) runs for real here; only the renderer's
name differs. The proof is VirtualGL's logo (VGL_LOGO=1) in the pixels our websocket delivers.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import pwd
import re
import secrets
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import vglcheck
from fixtures_jupyter import UserServer, free_port, wait_until
from rfbstreams import websocket_stream

from jupyter_vnc import gpu
from jupyter_vnc.jobinfo import DESKTOP_JOB_VAR
from testkit.rfb import RAW, RFBClient

# Whose servers, jobs and homes these tests use (tests/isolation.py: modules of other users run beside).
pytestmark = pytest.mark.users("jack")

REPO = Path(__file__).resolve().parents[1]
BUILD = REPO / "scripts" / "build-virtualgl"


def pin(name: str) -> str:
    return re.search(rf"^{name}=(\S+)$", BUILD.read_text(), re.MULTILINE).group(1)  # type: ignore[union-attr]


def test_the_vendored_source_is_the_pinned_one() -> None:
    digest = hashlib.sha256(vglcheck.TARBALL.read_bytes()).hexdigest()
    assert digest == pin("VGL_SHA256")
    readme = (REPO / "vendor" / "README.md").read_text()
    assert digest in readme and pin("VGL_COMMIT") in readme


def test_the_build_refuses_a_tarball_with_another_hash(tmp_path: Path) -> None:
    bad = tmp_path / "virtualgl-3.1.4.tar.gz"
    bad.write_bytes(vglcheck.TARBALL.read_bytes() + b"\0")
    result = subprocess.run(
        [str(BUILD), "--tarball", str(bad), "--prefix", str(tmp_path / "vgl")], capture_output=True, text=True
    )
    assert result.returncode == 1
    assert "refusing to build it" in result.stderr and pin("VGL_SHA256") in result.stderr
    assert not (tmp_path / "vgl").exists()


@pytest.mark.skipif(not shutil.which("git"), reason="git is not installed")
def test_the_build_refuses_a_clone_whose_tag_is_another_commit(tmp_path: Path) -> None:
    """A "mirror" whose tag 3.1.4 holds the same files in another commit: the commit id decides."""
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    subprocess.run(
        ["tar", "-xzf", str(vglcheck.TARBALL), "-C", str(mirror), "--strip-components=1"], check=True
    )
    git = ["git", "-C", str(mirror), "-c", "user.name=t", "-c", "user.email=t@example.org"]
    for args in (["init", "-q"], ["add", "-A"], ["commit", "-qm", "not upstream"], ["tag", "3.1.4"]):
        subprocess.run([*git, *args], check=True)
    result = subprocess.run(
        [str(BUILD), "--source", "git", "--prefix", str(tmp_path / "vgl")],
        capture_output=True, text=True, env={"PATH": "/usr/bin:/bin", "VGL_GIT_URL": f"file://{mirror}"},
    )  # fmt: skip
    assert result.returncode == 1
    assert f"not the pinned {pin('VGL_COMMIT')}" in result.stderr
    assert not (tmp_path / "vgl").exists()


def test_the_probe_names_the_renderer_and_proves_virtualgl_was_there() -> None:
    out = "name of display: :3\nOpenGL renderer string: NVIDIA H200/PCIe/SSE2\n"
    err = "[VGL] Shared memory segment ID for vglconfig: 1\n[VGL] Opening EGL device egl\n"
    probe = gpu.parse_probe(out, err)
    assert probe == gpu.GLProbe("NVIDIA H200/PCIe/SSE2", virtualgl=True, device="egl") and probe.on_gpu
    software = gpu.parse_probe("OpenGL renderer string: llvmpipe (LLVM 15.0.6, 256 bits)\n", "")
    assert not software.virtualgl and not software.on_gpu
    assert not gpu.parse_probe("", "").on_gpu  # no answer is never "GPU"


def test_vglrun_is_found_where_virtualgl_installs_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "/usr/bin:/bin")
    if vglcheck.have_virtualgl():
        pytest.skip(vglcheck.have_virtualgl())
    assert gpu.find_vglrun() == "/opt/VirtualGL/bin/vglrun"
    assert gpu.find_vglrun("/nonexistent/vglrun") == ""
    assert gpu.probe_argv("/opt/VirtualGL/bin/vglrun") == [
        "/opt/VirtualGL/bin/vglrun", "/opt/VirtualGL/bin/glxinfo", "-B",
    ]  # fmt: skip


async def screenshot(server: UserServer) -> tuple[bytes, int]:
    """One full screen (BGRX) through the server's authenticated websocket: what a browser gets."""
    stream, connection = await websocket_stream(server.ws_url, server.token)
    try:
        client = RFBClient(stream)
        init = await client.handshake()
        await client.set_pixel_format_32()
        await client.set_encodings(RAW)
        frame = bytearray(init.width * init.height * 4)
        await client.request_update(incremental=False)
        await asyncio.wait_for(client.read_update(frame), 30)
        return bytes(frame), init.width
    finally:
        connection.close()


async def logo_share(server: UserServer, seconds: float) -> float:
    """The best logo match seen on the screen within ``seconds``."""
    best, deadline = 0.0, asyncio.get_running_loop().time() + seconds
    while asyncio.get_running_loop().time() < deadline:
        best = max(best, vglcheck.find_logo(*await screenshot(server)))
        if best >= 0.98:
            break
        await asyncio.sleep(1)
    return best


XFCE_PROGRAMS = {"xfce4-panel", "xfdesktop", "xfwm4", "xfce4-session"}


@pytest.fixture
def gl_session() -> Iterator[tuple[Path, Path]]:
    """(xstartup, log) of a session that starts glxspheres64 (see vglcheck.gl_session_script)."""
    if vglcheck.have_virtualgl():
        pytest.skip(vglcheck.have_virtualgl())
    script, log = vglcheck.gl_session_script()
    yield script, log
    shutil.rmtree(script.parent, ignore_errors=True)


async def test_a_gl_program_in_the_desktop_renders_through_virtualgl(
    server_factory: Callable[..., UserServer], gl_session: tuple[Path, Path]
) -> None:
    script, gl_log = gl_session
    # "session": the whole desktop under vglrun, as "auto" does on a GPU node; here VirtualGL's EGL back
    # end renders on Mesa's software EGL device.
    server = server_factory("jack", "--VNCDesktop.virtualgl=session", f"--VNCDesktop.xstartup={script}")
    wait_until(lambda: server.status()["state"] == "running", 30, "the desktop running")
    share = await logo_share(server, 40)
    log = gl_log.read_text() if gl_log.exists() else "(no log)"
    assert share >= 0.9, f"VirtualGL's logo not on the screen (best match {share:.2f}); glxspheres64:\n{log}"
    assert "[VGL] Opening EGL device egl" in log and "llvmpipe" in log

    # Every program of the session carries the faker, the XFCE panel included: programs started from
    # the menu, the panel or a terminal inherit it without the user typing vglrun.
    def faker_in() -> dict[str, bool]:
        return {vglcheck.process_name(pid): vglcheck.maps_virtualgl(pid) for pid in server.desktop_pids()}

    wait_until(lambda: "xfce4-panel" in faker_in(), 30, "XFCE's panel")
    names = faker_in()
    assert names.get("xfce4-panel") and names.get("glxspheres64"), names
    assert not names.get("Xvnc", names.get("Xtigervnc")), "the X server itself must not run under VirtualGL"
    # ...but XFCE's own programs, which never draw with OpenGL, do not open the GPU for GTK's GL probe
    # (GDK_GL=disable in the session): only the GL program has a GL driver loaded.
    wait_until(lambda: set(faker_in()) >= XFCE_PROGRAMS, 30, "all of XFCE's programs")
    drivers = {vglcheck.process_name(pid): vglcheck.maps_gl_driver(pid) for pid in server.desktop_pids()}
    assert drivers.get("glxspheres64"), drivers
    xfce = {n: d for n, d in drivers.items() if n.startswith("xf")}
    assert set(xfce) >= XFCE_PROGRAMS and not any(xfce.values()), xfce

    status = server.status()
    assert status["gl_virtualgl"] is True, status  # the probe ran under VirtualGL and its log said so
    assert "llvmpipe" in status["gl_renderer"] and status["gl"] == "software"
    assert "VirtualGL" in status["gl_notice"]


async def test_without_virtualgl_the_same_program_carries_no_logo(
    server_factory: Callable[..., UserServer], gl_session: tuple[Path, Path]
) -> None:
    """The control: the logo finder does not fire on a GL window drawn straight by the X server."""
    script, gl_log = gl_session
    server = server_factory("jack", "--VNCDesktop.virtualgl=off", f"--VNCDesktop.xstartup={script}")
    wait_until(lambda: server.status()["state"] == "running", 30, "the desktop running")
    wait_until(
        lambda: "OpenGL Renderer" in (gl_log.read_text() if gl_log.exists() else ""), 30, "glxspheres64"
    )
    await asyncio.sleep(3)
    assert await logo_share(server, 3) < 0.1
    # GTK's GL probe ran in a program that exited (xstartup): none of XFCE's programs, which stay for the
    # whole session, holds Mesa and LLVM for it.
    wait_until(
        lambda: {vglcheck.process_name(pid) for pid in server.desktop_pids()} >= XFCE_PROGRAMS,
        30,
        "all of XFCE's programs",
    )
    names = {vglcheck.process_name(pid): pid for pid in server.desktop_pids()}
    xfce = {n: vglcheck.maps_gl_driver(pid) for n, pid in names.items() if n.startswith("xf")}
    assert set(xfce) >= XFCE_PROGRAMS and not any(xfce.values()), xfce
    status = server.status()
    assert (
        status["gl_virtualgl"] is False and status["gl"] == "software" and "llvmpipe" in status["gl_renderer"]
    )


async def test_in_the_image_a_gl_program_renders_through_the_images_virtualgl(
    apptainer: Path, desktop_image: Path, users: dict[str, pwd.struct_passwd], server_logs: Path
) -> None:
    """Apptainer mode: the image's own VirtualGL (built in its build stage), run as a Slurm job runs
    the image (--cleanenv --writable-tmpfs, the job directory bound at /run/jvnc)."""
    jack = users["jack"]
    job_dir = Path(tempfile.mkdtemp(prefix="jvnc-job-", dir="/tmp"))
    try:
        script, gl_log = vglcheck.gl_session_script(folder=job_dir)
        for path in (job_dir, script):
            os.chown(path, jack.pw_uid, jack.pw_gid)
        job_dir.chmod(0o700)
        port, token = free_port(), secrets.token_hex(16)
        log = server_logs / f"image-vgl-{port}.log"
        command = [
            str(apptainer), "exec", "--cleanenv", "--writable-tmpfs", "--bind", f"{job_dir}:/run/jvnc",
            str(desktop_image), "jupyter", "server", "--no-browser", f"--port={port}",
            "--ServerApp.ip=127.0.0.1", f"--IdentityProvider.token={token}",
            "--VNCDesktop.runtime_dir=/run/jvnc", "--VNCDesktop.virtualgl=session",
            "--VNCDesktop.xstartup=/run/jvnc/xstartup",
        ]  # fmt: skip
        env = {
            "HOME": jack.pw_dir,
            "USER": jack.pw_name,
            "PATH": "/usr/local/bin:/usr/bin:/bin",
            "LANG": "C.UTF-8",
            # Into the image as the job script passes it: a desktop job starts its desktop by itself.
            f"APPTAINERENV_{DESKTOP_JOB_VAR}": "1",
        }
        with open(log, "wb") as out:
            proc = subprocess.Popen(
                command, env=env, cwd=jack.pw_dir, stdout=out, stderr=subprocess.STDOUT,
                user=jack.pw_uid, group=jack.pw_gid, extra_groups=[], start_new_session=True,
            )  # fmt: skip
        server = UserServer(jack, port, token, proc, log)
        try:

            def running() -> bool:
                if proc.poll() is not None:
                    raise AssertionError(f"apptainer exited {proc.returncode}:\n{log.read_text()[-3000:]}")
                with contextlib.suppress(OSError, ValueError):
                    return server.status()["state"] == "running"
                return False

            wait_until(running, 120, "the desktop in the image running")
            share = await logo_share(server, 60)
            text = gl_log.read_text() if gl_log.exists() else "(no log)"
            assert share >= 0.9, f"no VirtualGL logo on the screen (best {share:.2f}); glxspheres64:\n{text}"
            assert "[VGL] Opening EGL device egl" in text
            status = server.status()
            assert status["gl_virtualgl"] is True and status["gl_renderer"], status
        finally:
            server.stop()
    finally:
        shutil.rmtree(job_dir, ignore_errors=True)
