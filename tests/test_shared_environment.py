"""jupyter-vnc installed in an environment that every Jupyter server of a site shares (issue 22): a server
that no spawner started for a desktop starts none by itself, offers one only where an Xvnc can run,
and the admin can turn the extension off. Real servers, run as a test user, looked at through /proc."""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import procs
import pytest
from fixtures_jupyter import MARKER_VAR, UserServer, wait_until
from test_cli import broken, cli

from jupyter_vnc import vncserver
from jupyter_vnc.extension import PAGE_CONFIG_KEY, VNCExtension
from jupyter_vnc.jobinfo import DESKTOP_JOB_VAR

# Whose servers, jobs and homes these tests use (tests/isolation.py: modules of other users run beside).
pytestmark = pytest.mark.users("jack", "kate")

# Set in the test's server only: everything the server starts inherits its environment, so the tag
# tells this server's processes from those of any other server of the same user.
TAG_VAR = "JVNC_TEST_SERVER"
VENV_BIN = Path(sys.executable).parent
XVNC = {"Xvnc", "Xtigervnc"}


def desktop_processes(server: UserServer, tag: str) -> dict[int, list[str]]:
    """This server's desktop processes, by what they are: anything with a desktop's marker, XFCE, and
    an Xvnc that serves (not `Xvnc -version`, which asks what the installed Xvnc is)."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == server.proc.pid:
            continue
        try:
            if entry.stat().st_uid != server.user.pw_uid:
                continue
        except OSError:
            continue
        pid = int(entry.name)
        env = procs.environ(pid)
        if env.get(TAG_VAR) != tag:
            continue
        args = procs.argv(pid)
        name = os.path.basename(args[0]) if args else ""
        serving_xvnc = name in XVNC and "-version" not in args
        if MARKER_VAR in env or serving_xvnc or name.startswith(("xfce4-", "xfwm4", "xfdesktop")):
            found[pid] = args
    return found


def watch(server: UserServer, tag: str, seconds: float) -> dict[int, list[str]]:
    """Every desktop process of the server seen in ``seconds`` of looking (ten looks a second)."""
    seen: dict[int, list[str]] = {}
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        seen.update(desktop_processes(server, tag))
        time.sleep(0.1)
    return seen


def children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry.name))
        except OSError:
            continue
    return found


def page_config(server: UserServer) -> dict:
    """JupyterLab's page config, as the Lab page hands it to the JupyterLab extension."""
    code, page = server.request("/lab")
    assert code == 200, (code, page[:300])
    found = re.search(rb'<script id="jupyter-config-data" type="application/json">(.*?)</script>', page, re.S)
    assert found, page[:300]
    return json.loads(found.group(1))


@pytest.fixture
def config_dir() -> Iterator[Path]:
    """A directory of Jupyter configuration that the test users can read (tmp_path is root's alone)."""
    path = Path(tempfile.mkdtemp(prefix="jvnc-config-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def test_a_plain_jupyter_server_starts_no_desktop_until_its_user_opens_it(
    server_factory: Callable[..., UserServer],
) -> None:
    tag = secrets.token_hex(8)
    server = server_factory("kate", desktop_job=False, env={TAG_VAR: tag})
    assert watch(server, tag, 5) == {}
    # The Lab page offers the desktop (an Xvnc is installed here) and loading it starts nothing.
    assert page_config(server)[PAGE_CONFIG_KEY] == "available"
    assert server.status()["state"] == "stopped"
    assert watch(server, tag, 3) == {}
    # Opening it (the tile's viewer asks for it) starts it, and the same look sees it, XFCE included.
    code, body = server.request("/vnc/api/desktop", method="POST")
    assert code == 200, body

    def xvnc_and_xfce() -> bool:
        names = {os.path.basename(a[0]) for a in desktop_processes(server, tag).values() if a}
        return bool(names & XVNC) and "xfce4-session" in names

    wait_until(xvnc_and_xfce, 30, "Xvnc and XFCE of the opened desktop")


def test_the_desktop_job_mark_stays_with_its_server(server_factory: Callable[..., UserServer]) -> None:
    """The server's terminals, kernels and desktop programs inherit its environment: a `jupyter lab` that
    the user starts from one of them is no desktop job, and starts no second desktop by itself."""
    server = server_factory("kate")
    wait_until(lambda: server.status()["state"] == "running", 30, "the desktop job's desktop to prestart")
    pids = server.desktop_pids()
    assert len(pids) >= 3, pids
    code, body = server.request("/api/terminals", method="POST")
    assert code == 200, body
    terminal = json.loads(body)["name"]

    def shells() -> list[int]:
        return [p for p in children(server.proc.pid) if procs.program(p) == "bash"]

    wait_until(shells, 10, "the terminal's shell")
    checked = 0
    for pid in pids | set(shells()):
        env = procs.environ(pid)
        if not env and not procs.alive(pid):
            continue  # a short-lived helper of XFCE's that has ended since it was listed
        checked += 1
        assert env and DESKTOP_JOB_VAR not in env, (procs.argv(pid), sorted(env))
    assert checked >= 3
    server.request(f"/api/terminals/{terminal}", method="DELETE")


def test_without_an_xvnc_the_desktop_is_not_offered(server_factory: Callable[..., UserServer]) -> None:
    if any("/" in c and Path(c).is_file() for c in vncserver.CANDIDATES):
        pytest.skip("TurboVNC is installed at its own prefix: an Xvnc is found whatever PATH holds")
    tag = secrets.token_hex(8)
    # PATH without /usr/bin and /bin (where Debian's TigerVNC is); the server itself runs from the venv.
    server = server_factory("kate", desktop_job=False, env={"PATH": str(VENV_BIN), TAG_VAR: tag})
    assert page_config(server)[PAGE_CONFIG_KEY] == "unavailable"
    assert "jupyter-vnc: no desktop offered in this server: no usable VNC server" in server.log.read_text()
    assert watch(server, tag, 3) == {}
    # In a desktop job it is offered all the same: its user asked for a desktop, and the desktop's
    # page is where they read why it does not start.
    job = server_factory("kate", env={"PATH": str(VENV_BIN)})
    assert page_config(job)[PAGE_CONFIG_KEY] == "available"
    wait_until(lambda: job.status()["state"] == "failed", 30, "the prestart to fail")
    assert "no usable VNC server" in job.status()["message"]


# What `jupyter server extension disable jupyter_vnc` writes into the environment it is run in (in a
# virtual environment its default is --sys-prefix): the package's own enabling file, turned to false.
# The test does not run it: it would turn the extension off in the environment every test shares.
DISABLED = {"ServerApp": {"jpserver_extensions": {"jupyter_vnc": False}}}


@pytest.mark.parametrize("how", ["c.VNCExtension.enabled = False", "jupyter server extension disable"])
def test_the_admin_turns_the_extension_off(
    server_factory: Callable[..., UserServer], config_dir: Path, how: str
) -> None:
    """Off in a desktop job even, where the desktop would otherwise start by itself: no routes, no
    desktop, nothing for JupyterLab to offer; the rest of the server works. The setting sits where an
    admin puts it, in a configuration directory of the environment (JUPYTER_CONFIG_PATH: one that
    comes before the test venv's own)."""
    if how.startswith("c."):
        (config_dir / "jupyter_server_config.py").write_text(how + "\n")
    else:
        (config_dir / "jupyter_server_config.d").mkdir(mode=0o755)
        (config_dir / "jupyter_server_config.d" / "jupyter_vnc.json").write_text(json.dumps(DISABLED))
    for path in config_dir.rglob("*"):
        path.chmod(0o755 if path.is_dir() else 0o644)
    tag = secrets.token_hex(8)
    server = server_factory("kate", env={"JUPYTER_CONFIG_PATH": str(config_dir), TAG_VAR: tag})
    for route in ("/vnc", "/vnc/api/status", "/vnc/api/config", "/vnc/static/viewer.js"):
        assert server.request(route)[0] == 404, route
    assert PAGE_CONFIG_KEY not in page_config(server)
    assert watch(server, tag, 3) == {}
    assert server.request("/api/contents")[0] == 200


def test_a_shared_environment_keeps_the_desktop_to_desktop_jobs(
    server_factory: Callable[..., UserServer], config_dir: Path
) -> None:
    """The line that c.VNCExtension.enabled's help gives for it, in the environment's configuration."""
    help_lines = [x.strip() for x in VNCExtension.enabled.help.splitlines()]
    line = next(x for x in help_lines if x.startswith("import os"))
    (config_dir / "jupyter_server_config.py").write_text(line + "\n")
    (config_dir / "jupyter_server_config.py").chmod(0o644)
    env = {"JUPYTER_CONFIG_PATH": str(config_dir)}
    plain = server_factory("kate", desktop_job=False, env=env)
    assert plain.request("/vnc/api/status")[0] == 404
    assert PAGE_CONFIG_KEY not in page_config(plain)
    job = server_factory("kate", env=env)
    wait_until(lambda: job.status()["state"] == "running", 30, "the desktop job's desktop to prestart")


def test_the_lab_extension_reads_the_entry_the_server_writes() -> None:
    model = Path(__file__).resolve().parents[1] / "labextension" / "src" / "lab" / "model.ts"
    assert f"export const PAGE_CONFIG_KEY = '{PAGE_CONFIG_KEY}';" in model.read_text()


def test_the_job_script_marks_its_server_as_a_desktop_job_on_the_host_and_in_images(tmp_path: Path) -> None:
    """The mark travels in the job script, not through the hub's environment (which a site's sudo
    rules may reset), and crosses into the container with the server's other variables."""
    image = tmp_path / "desktop.sif"
    image.write_bytes(b"")
    for overrides in ((), (f"c.VNCSlurmSpawner.image = {str(image)!r}",)):
        result = cli("render-job", "--user", "jack", config=broken(tmp_path, *overrides))
        assert result.returncode == 0, result.stderr
        assert f"\nexport {DESKTOP_JOB_VAR}=1\n" in result.stdout
    crossing = re.search(r"^for var in (.*); do$", result.stdout, re.M)
    assert crossing and DESKTOP_JOB_VAR in crossing.group(1).split(), result.stdout
