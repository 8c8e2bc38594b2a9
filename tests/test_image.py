"""The desktop image (apptainer/desktop-debian.def) run by a real Apptainer the way a Slurm job runs it.

No fakes: the SIF is built (or taken from its cache) by devstack/build-desktop-image, and jack runs
the single-user Jupyter server inside it with `apptainer exec --cleanenv --writable-tmpfs --bind`.
Everything skips, saying why, where Apptainer cannot be had; running as jack needs root.
"""

from __future__ import annotations

import os
import pwd
import secrets
import shutil
import signal
import stat
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import procs
import pytest
from fixtures_jupyter import UserServer, desktop_pids, free_port, wait_until
from rfbstreams import websocket_stream

from jupyter_vnc.jobinfo import DESKTOP_JOB_VAR
from testkit.rfb import RFBClient

# Whose servers, jobs and homes these tests use (tests/isolation.py: modules of other users run beside).
pytestmark = pytest.mark.users("jack")

RUN_DIR = "/run/jvnc"  # where the per-job directory appears inside the container


def _stat_fields(pid: int) -> list[str] | None:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[-1].split()
    except OSError:
        return None


def _alive(pid: int) -> bool:
    fields = _stat_fields(pid)
    return fields is not None and fields[0] not in {"Z", "X"}


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def descendants(root: int) -> set[int]:
    """Live processes below ``root`` in the process tree (children, grandchildren...)."""
    parent: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and (fields := _stat_fields(int(entry.name))) and fields[0] not in "ZX":
            parent[int(entry.name)] = int(fields[1])
    found, grew = {root}, True
    while grew:
        grew = False
        for pid, ppid in parent.items():
            if ppid in found and pid not in found:
                found.add(pid)
                grew = True
    return found - {root}


def processes_mentioning(uid: int, text: str) -> set[int]:
    """Live processes of ``uid`` whose command line contains ``text``."""
    return {pid for pid in procs.of_uid(uid) if text in _cmdline(pid)}


def marker_of(pid: int) -> str:
    for var in Path(f"/proc/{pid}/environ").read_bytes().split(b"\0"):
        if var.startswith(b"JUPYTER_VNC_DESKTOP="):
            return var.split(b"=", 1)[1].decode()
    raise AssertionError(f"process {pid} ({_cmdline(pid)[:80]}) carries no desktop marker")


@pytest.fixture
def jack(users: dict[str, pwd.struct_passwd]) -> pwd.struct_passwd:
    return users["jack"]


@pytest.fixture
def job_dir(jack: pwd.struct_passwd) -> Iterator[Path]:
    """The per-job directory a Slurm job would make: owned by jack, mode 0700."""
    path = Path(tempfile.mkdtemp(prefix="jvnc-job-", dir="/tmp"))
    os.chown(path, jack.pw_uid, jack.pw_gid)
    path.chmod(0o700)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def apptainer_exec(apptainer: Path, image: Path, bind: Path, *command: str) -> list[str]:
    return [
        str(apptainer), "exec", "--cleanenv", "--writable-tmpfs", "--bind", f"{bind}:{RUN_DIR}",
        str(image), *command,
    ]  # fmt: skip


def test_the_images_own_test_passes(apptainer: Path, desktop_image: Path) -> None:
    result = subprocess.run(
        [str(apptainer), "test", str(desktop_image)], capture_output=True, text=True, timeout=120, cwd="/"
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "desktop %test: ok" in result.stdout, result.stdout + result.stderr
    assert "TigerVNC" in result.stdout


def test_the_environment_a_job_gets(
    apptainer: Path, desktop_image: Path, jack: pwd.struct_passwd, job_dir: Path
) -> None:
    script = (
        "echo $PATH; echo $VGL_DISPLAY; command -v jupyter; command -v jupyter-vnc-singleuser; id -un;"
        " touch /scratch && echo writable"
    )
    result = subprocess.run(
        apptainer_exec(apptainer, desktop_image, job_dir, "sh", "-c", script),
        capture_output=True, text=True, timeout=60, cwd="/", env={"PATH": "/usr/local/bin:/usr/bin:/bin"},
        user=jack.pw_uid, group=jack.pw_gid, extra_groups=[],
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    path, vgl, jupyter, singleuser, name, writable = result.stdout.splitlines()
    assert path.startswith("/opt/jupyter-vnc/venv/bin:")
    assert vgl == "egl"
    assert jupyter == "/opt/jupyter-vnc/venv/bin/jupyter"
    assert singleuser == "/opt/jupyter-vnc/venv/bin/jupyter-vnc-singleuser"
    assert name == "jack"
    assert writable == "writable"  # --writable-tmpfs: the user may write where the image is root's


async def test_a_server_in_the_image_serves_the_desktop_and_takes_it_along_when_stopped(
    apptainer: Path, desktop_image: Path, jack: pwd.struct_passwd, job_dir: Path, server_logs: Path
) -> None:
    port, token = free_port(), secrets.token_hex(16)
    log = server_logs / f"image-{jack.pw_name}-{port}.log"
    command = apptainer_exec(
        apptainer, desktop_image, job_dir,
        "jupyter", "server", "--no-browser", f"--port={port}", "--ServerApp.ip=127.0.0.1",
        f"--IdentityProvider.token={token}", f"--VNCDesktop.runtime_dir={RUN_DIR}",
    )  # fmt: skip
    env = {
        "HOME": jack.pw_dir, "USER": jack.pw_name, "LOGNAME": jack.pw_name,
        "PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8",
        # Into the image as the job script passes it: a desktop job, which starts its desktop by itself.
        f"APPTAINERENV_{DESKTOP_JOB_VAR}": "1",
    }  # fmt: skip
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            command, env=env, cwd=jack.pw_dir, stdout=out, stderr=subprocess.STDOUT,
            user=jack.pw_uid, group=jack.pw_gid, extra_groups=[], start_new_session=True,
        )  # fmt: skip
    server = UserServer(jack, port, token, proc, log)

    def answering() -> bool:
        if proc.poll() is not None:
            raise AssertionError(f"apptainer exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        try:
            return server.request("/api/status")[0] == 200
        except OSError:
            return False

    try:
        wait_until(answering, 90, "the Jupyter server in the image to answer")
        wait_until(lambda: server.status()["state"] in {"running", "failed"}, 60, "the desktop to start")
        status = server.status()
        assert status["state"] == "running", (status, log.read_text()[-3000:])
        assert status["vnc_server"] == "tigervnc" and "TigerVNC" in status["vnc_version"]

        # The desktop's private directory is in the bound job directory, with the VNC socket in it.
        (desktop_dir,) = job_dir.iterdir()
        sock = desktop_dir / "vnc.sock"
        assert stat.S_ISSOCK(sock.stat().st_mode) and sock.stat().st_uid == jack.pw_uid
        assert oct(desktop_dir.stat().st_mode & 0o777) == "0o700"

        stream, conn = await websocket_stream(server.ws_url, token)
        client = RFBClient(stream)
        init = await client.handshake()
        assert (init.width, init.height) == (1920, 1080) and init.name == "GPU Desktop"
        conn.close()

        # Everything the job started: apptainer's helpers (squashfuse, fuse-overlayfs) and the
        # server below the apptainer process, and the desktop, whose daemons leave that tree.
        inside = f"{RUN_DIR}/{desktop_dir.name}"
        xvnc = [p for p in processes_mentioning(jack.pw_uid, inside) if "Xvnc" in _cmdline(p)]
        assert len(xvnc) == 1, [_cmdline(p) for p in processes_mentioning(jack.pw_uid, inside)]
        marker = marker_of(xvnc[0])
        expected = ("squashfuse_ll", "bin/jupyter-server", "bin/Xvnc", "xfce4-session", "xfwm4", "xfconfd")
        started: set[int] = set()

        def whole_desktop_up() -> bool:
            started.update(descendants(proc.pid) | desktop_pids(jack.pw_uid, marker))
            commands = "\n".join(_cmdline(p) for p in started)
            return all(name in commands for name in expected)

        # XFCE comes up a second or two after Xvnc answers.
        wait_until(whole_desktop_up, 30, f"all of {expected} to run")
    except BaseException:
        server.stop()
        raise

    started = {p for p in started if _alive(p)} | descendants(proc.pid) | desktop_pids(jack.pw_uid, marker)
    server.stop(signal.SIGTERM)  # what `scancel -s TERM` or the job's trap does to the apptainer process
    assert proc.returncode not in (None, -signal.SIGKILL), proc.returncode  # ended by itself, not killed
    wait_until(lambda: not any(_alive(p) for p in started), 10, "every process of the job to end")
    assert not desktop_pids(jack.pw_uid, marker)
    assert not processes_mentioning(jack.pw_uid, inside)
    assert not list(job_dir.iterdir()), list(job_dir.rglob("*"))  # no socket, no cookie left
    lock = Path(f"/tmp/.X{status['display']}-lock")  # Xvnc's display lock holds its pid
    assert not lock.exists() or int(lock.read_text().strip() or 0) not in started
