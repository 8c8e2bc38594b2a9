"""The peer the benchmarks compare against: jupyter-remote-desktop-proxy, in a venv of its own.

It is installed into its own venv, never into jupyter-vnc's: it registers a launcher entry and a server
extension of its own that would then show up next to ours. The venv is created on first use (about 15 s
with PyPI reachable) and reused afterwards.

What its source says (version 3.0.1, ``setup_websockify.py`` and ``server_extension.py``):
- the page is ``<base_url>desktop/``; the RFB websocket is ``<base_url>desktop-websockify/``, a
  jupyter-server-proxy entry with ``raw_socket_proxy`` and ``unix_socket`` (a socket in a fresh
  ``/tmp/jupyter-server-proxy-*`` directory);
- the desktop starts on the first connection to that websocket: jupyter-server-proxy runs
  ``/bin/sh -c 'cd CWD && vncserver -rfbunixpath SOCKET -rfbport -1 -xstartup .../share/xstartup
  -verbose -fg -geometry 1680x1050 -SecurityTypes None'`` and waits until the socket accepts a connection;
- its xstartup is ``dbus-launch xfce4-session``.
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

PEER_PACKAGE = "jupyter-remote-desktop-proxy"
PEER_VERSION = "3.0.1"  # the release the numbers in benchmarks/README.md were measured with
PEER_VENV = Path(os.environ.get("JVNC_PEER_VENV", "/opt/jupyter-vnc/peer-venv"))
PAGE_PATH = "desktop/"
WEBSOCKET_PATH = "desktop-websockify/"
DEFAULT_GEOMETRY = "1680x1050"


def python() -> Path:
    return PEER_VENV / "bin" / "python"


def bin_dir() -> Path:
    return PEER_VENV / "bin"


def _installed_version() -> str | None:
    if not python().exists():
        return None
    probe = subprocess.run(
        [str(python()), "-c", f"import importlib.metadata as m; print(m.version({PEER_PACKAGE!r}))"],
        capture_output=True,
        text=True,
    )
    return probe.stdout.strip() if probe.returncode == 0 else None


def _hub_versions() -> list[str]:
    """JupyterHub and batchspawner pinned as in jupyter-vnc's venv: a peer hub's jobs run this venv's
    jupyterhub-singleuser (started by batchspawner-singleuser), and a hub wants its own version there."""
    from importlib.metadata import version

    return [f"jupyterhub=={version('jupyterhub')}", f"batchspawner=={version('batchspawner')}"]


def ensure_venv(log=print) -> Path:
    """The peer's venv with jupyter-server, JupyterLab, the peer, and JupyterHub's single-user server with
    batchspawner's launcher (for a peer hub: spawn_latency.py), readable by every user."""
    version = _installed_version()
    wanted = _hub_versions()
    have = subprocess.run(
        [str(python()), "-m", "pip", "freeze"], capture_output=True, text=True
    ).stdout.lower() if python().exists() else ""  # fmt: skip
    if (
        version == PEER_VERSION
        and (bin_dir() / "jupyter-lab").exists()
        and all(w.lower() in have for w in wanted)
    ):
        return PEER_VENV
    log(f"# setting up the peer: {PEER_PACKAGE}=={PEER_VERSION} in {PEER_VENV} (one time, ~15 s)")
    if not python().exists():
        subprocess.run(["/usr/bin/python3", "-m", "venv", str(PEER_VENV)], check=True)
    subprocess.run(
        [
            str(python()),
            "-m",
            "pip",
            "install",
            "--quiet",
            f"{PEER_PACKAGE}=={PEER_VERSION}",
            "jupyter-server",
            # JupyterLab, for its launcher tile (time_to_desktop.py clicks it, as a user does).
            "jupyterlab>=4.2,<5",
            *wanted,
        ],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    # Servers run as the test users: the venv must be world-readable whatever root's umask was.
    subprocess.run(["chmod", "-R", "a+rX", str(PEER_VENV)], check=True)
    return PEER_VENV


def geometry() -> str:
    """The screen size the peer hard-codes (read from its installed source; ours is set to match)."""
    found = list(
        PEER_VENV.glob("lib/python3*/site-packages/jupyter_remote_desktop_proxy/setup_websockify.py")
    )
    if found:
        m = re.search(r"['\"]-geometry['\"],\s*['\"](\d+x\d+)['\"]", found[0].read_text())
        if m:
            return m.group(1)
    return DEFAULT_GEOMETRY


if __name__ == "__main__":
    ensure_venv()
    print(f"{PEER_PACKAGE} {_installed_version()} in {PEER_VENV}; screen {geometry()}")
