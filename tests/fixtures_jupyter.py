"""Real Jupyter servers with jupyter-vnc, run as the test users, for the desktop tests."""

from __future__ import annotations

import json
import os
import pwd
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import procs
import pytest
from isolation import TEST_USERS

from jupyter_vnc.jobinfo import DESKTOP_JOB_VAR

MARKER_VAR = "JUPYTER_VNC_DESKTOP"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class UserServer:
    """A `jupyter server` process running as ``user``, reachable with ``token``."""

    user: pwd.struct_passwd
    port: int
    token: str
    proc: subprocess.Popen[bytes]
    log: Path
    extra: list[str] = field(default_factory=list)
    markers: set[str] = field(default_factory=set)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/vnc/websockify"

    def request(self, path: str, method: str = "GET", auth: bool = True) -> tuple[int, bytes]:
        req = urllib.request.Request(self.url + path, method=method)
        if auth:
            req.add_header("Authorization", f"token {self.token}")
        opener = urllib.request.build_opener(NoRedirect)
        try:
            with opener.open(req, timeout=30) as r:
                return r.status, r.read()
        except urllib.error.HTTPError as e:
            return e.code, e.read()

    def post(self, path: str, body: bytes = b"") -> tuple[int, dict]:
        """POST with the server's token; the status and the JSON answer (a refusal's too)."""
        req = urllib.request.Request(self.url + path, data=body, method="POST")
        req.add_header("Authorization", f"token {self.token}")
        try:
            with urllib.request.urlopen(req, timeout=60) as r:
                return r.status, json.loads(r.read())
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read())

    def status(self) -> dict:
        code, body = self.request("/vnc/api/status")
        assert code == 200, (code, body)
        return json.loads(body)

    def desktop_marker(self) -> str | None:
        """The marker of this server's current desktop, read from its direct children (Xvnc)."""
        for entry in Path("/proc").iterdir():
            try:
                if not entry.name.isdigit() or _ppid(entry) != self.proc.pid:
                    continue
                for var in (entry / "environ").read_bytes().split(b"\0"):
                    if var.startswith(MARKER_VAR.encode() + b"="):
                        marker = var.split(b"=", 1)[1].decode()
                        self.markers.add(marker)
                        return marker
            except OSError:
                continue
        return None

    def desktop_pids(self) -> set[int]:
        """Live processes of every desktop this server has had (as far as the test looked)."""
        self.desktop_marker()
        return {pid for marker in self.markers for pid in desktop_pids(self.user.pw_uid, marker)}

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 20) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        return None


def _ppid(entry: Path) -> int:
    return int((entry / "stat").read_text().rsplit(")", 1)[-1].split()[1])


def desktop_pids(uid: int, marker: str | None = None) -> set[int]:
    """Live processes of ``uid`` that belong to a jupyter-vnc desktop (any, or the one of ``marker``)."""
    wanted = f"{MARKER_VAR}={marker}".encode() if marker else None
    pids = set()
    for pid in procs.of_uid(uid):
        try:
            env = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if (wanted in env) if wanted else any(v.startswith(MARKER_VAR.encode() + b"=") for v in env):
            pids.add(pid)
    return pids


def start_server(
    user: pwd.struct_passwd,
    log_dir: Path,
    *extra: str,
    timeout: float = 60,
    path_prefix: str = "",
    desktop_job: bool = True,
    env: Mapping[str, str] | None = None,
) -> UserServer:
    """``path_prefix``: directories put first on the server's PATH (a user's conda, say).
    ``desktop_job``: marked as the job script marks the server it starts for a desktop (which then
    starts its desktop by itself); False: a plain Jupyter server in the same environment.
    ``env``: variables to set or replace in the server's environment."""
    port, token = free_port(), secrets.token_hex(16)
    venv_bin = Path(sys.executable).parent
    server_env = {
        "HOME": user.pw_dir,
        "USER": user.pw_name,
        "LOGNAME": user.pw_name,
        "SHELL": "/bin/bash",
        "PATH": f"{path_prefix}{venv_bin}:/usr/local/bin:/usr/bin:/bin",
        "LANG": "C.UTF-8",
        # The token through the environment (readable by its owner only), never argv: `ps` shows argv
        # to every user of the machine.
        "JUPYTER_TOKEN": token,
        **({DESKTOP_JOB_VAR: "1"} if desktop_job else {}),
        **(env or {}),
    }
    log = log_dir / f"jupyter-{user.pw_name}-{port}.log"
    argv = [
        str(venv_bin / "jupyter"), "server", "--no-browser", f"--port={port}", "--ServerApp.ip=127.0.0.1",
        "--ServerApp.open_browser=False", *extra,
    ]  # fmt: skip
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            argv, env=server_env, cwd=user.pw_dir, stdout=out, stderr=subprocess.STDOUT,
            user=user.pw_uid, group=user.pw_gid, extra_groups=[], start_new_session=True,
        )  # fmt: skip
    server = UserServer(user, port, token, proc, log, list(extra))
    deadline = time.monotonic() + timeout
    while True:
        if proc.poll() is not None:
            raise AssertionError(f"jupyter server for {user.pw_name} exited:\n{log.read_text()[-3000:]}")
        try:
            if server.request("/api/status")[0] == 200:
                return server
        except OSError:
            pass
        if time.monotonic() > deadline:
            server.stop()
            raise AssertionError(
                f"jupyter server for {user.pw_name} did not answer:\n{log.read_text()[-3000:]}"
            )
        time.sleep(0.2)


def wait_until(predicate: Callable[[], object], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for: {what}")
        time.sleep(0.1)


@pytest.fixture(scope="session")
def artifacts() -> Path:
    path = Path(__file__).resolve().parents[1] / "test-artifacts"
    path.mkdir(exist_ok=True)
    return path


@pytest.fixture(scope="session")
def server_logs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("jupyter-logs")
    os.chmod(path, 0o777)  # the servers run as the test users and write their logs here
    return path


@pytest.fixture(scope="session")
def users() -> dict[str, pwd.struct_passwd]:
    if os.geteuid() != 0:
        pytest.skip("the desktop tests run servers as the test users and need root to start them")
    try:
        return {name: pwd.getpwnam(name) for name in TEST_USERS}
    except KeyError as e:
        pytest.fail(f"test user {e} does not exist: run devstack/install")


@pytest.fixture
def server_factory(
    server_logs: Path, users: dict[str, pwd.struct_passwd]
) -> Iterator[Callable[..., UserServer]]:
    """Start servers for a test; all are stopped (SIGTERM) at its end and must leave nothing behind."""
    from conftest import venv_imports_this_checkout  # the plugin loads while conftest is imported

    venv_imports_this_checkout()
    started: list[UserServer] = []

    def factory(
        name: str = "jack",
        *extra: str,
        path_prefix: str = "",
        desktop_job: bool = True,
        env: Mapping[str, str] | None = None,
    ) -> UserServer:
        server = start_server(
            users[name], server_logs, *extra, path_prefix=path_prefix, desktop_job=desktop_job, env=env
        )
        started.append(server)
        return server

    yield factory
    for server in started:
        server.desktop_marker()
        server.stop()
    for server in started:
        wait_until(lambda s=server: not s.desktop_pids(), 10, f"no desktop process of {server.user.pw_name}")


@pytest.fixture(scope="session")
def desktop_server(server_logs: Path, users: dict[str, pwd.struct_passwd]) -> Iterator[UserServer]:
    """One long-lived server of jack's with a prestarted desktop, for the tests that only look."""
    server = start_server(users["jack"], server_logs)
    wait_until(lambda: server.status()["state"] == "running", 30, "jack's desktop running")
    yield server
    server.stop()


@pytest.fixture
def kate_home() -> Iterator[Path]:
    """Kate's home, with whatever a test puts there removed afterwards."""
    home = Path("/home/kate")
    yield home
    for path in [home / ".vnc", home / "fakeconda", home / "xstartup-ran"]:
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()


def owned_by_kate(*paths: Path) -> None:
    for path in paths:
        shutil.chown(path, "kate", "kate")
