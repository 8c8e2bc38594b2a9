"""A power user's own VNC viewer (TurboVNC's, TigerVNC's) on the desktop, over ssh.

The desktop has no TCP port: its VNC server listens on a unix socket in a 0700 directory of its user.
``ssh -L`` forwards a port of the user's own computer to that socket, through the site's login host
to the job's node; sshd opens the socket as the user who logged in, so only the desktop's owner can
use the forward, exactly as only they can open the viewer page. The desktop's toolbar shows the two
commands to copy; the site names its login host (c.VNCSlurmSpawner.ssh_login_host, which the job
passes on as JUPYTER_VNC_SSH_LOGIN).
"""

from __future__ import annotations

import os
import pwd
import re
import shlex
import socket
from pathlib import Path

ENV_VAR = "JUPYTER_VNC_SSH_LOGIN"
LOCAL_PORT = 5901  # the port a VNC viewer takes for display :1 ("localhost:1" works too)
HOST_RE = re.compile(r"([A-Za-z0-9_.-]+@)?[A-Za-z0-9][A-Za-z0-9.-]{0,252}(:[0-9]{1,5})?")


def node_name() -> str:
    """The node as Slurm names it (what the login host resolves), else this machine's short name."""
    return os.environ.get("SLURMD_NODENAME") or socket.gethostname().split(".")[0]


def commands(socket_path: Path, login_host: str = "", user: str = "", node: str = "") -> dict[str, str]:
    """``{"ssh": ..., "viewer": ...}``: run the first on your computer, then the second."""
    user = user or pwd.getpwuid(os.getuid()).pw_name
    node = node or node_name()
    argv = ["ssh", "-N"]
    if login_host:
        argv += ["-J", login_host if "@" in login_host else f"{user}@{login_host}"]
    argv += ["-L", f"{LOCAL_PORT}:{socket_path}", f"{user}@{node}"]
    return {"ssh": shlex.join(argv), "viewer": f"vncviewer localhost::{LOCAL_PORT}"}


def check_login_host(value: str) -> str:
    """A login host as ssh -J takes it (``login.example.org``, ``alice@login``, ``login:2222``)."""
    if value and not HOST_RE.fullmatch(value):
        raise ValueError(f"ssh_login_host must be a host name such as login.example.org, not {value!r}")
    return value
