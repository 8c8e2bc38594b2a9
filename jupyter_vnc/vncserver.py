"""Which VNC server is installed, and the exact command line that keeps it private.

TurboVNC and TigerVNC both ship an ``Xvnc`` but take different flags, so the flavour is read from the
binary's own ``-version`` output rather than guessed from its path.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

# Looked at in this order: TurboVNC's usual prefix first (sites install it for its GPU-friendly
# encoder), then whatever Xvnc is on PATH, then Debian's TigerVNC name.
CANDIDATES = ("/opt/TurboVNC/bin/Xvnc", "Xvnc", "Xtigervnc")


@dataclass(frozen=True)
class VNCServer:
    kind: str  # "turbovnc" or "tigervnc"
    path: str
    version: str

    def argv(
        self,
        *,
        socket_path: Path,
        authority: Path,
        displayfd: int,
        geometry: str,
        depth: int = 24,
        name: str = "Desktop",
        clipboard: bool = True,
        extra: Iterable[str] = (),
    ) -> list[str]:
        """The Xvnc command line: VNC on a unix socket only, the X display behind a cookie.

        ``-SecurityTypes None`` is safe only because nothing but the owner can reach the socket
        (mode 0600 in a 0700 directory, no TCP listener): Jupyter's authentication is the door.
        """
        common = [
            "-displayfd", str(displayfd),  # the server picks a free display: two desktops never collide
            "-auth", str(authority),  # no cookie, no X connection (other local users included)
            "-nolisten", "tcp",
            "-geometry", geometry,
            "-depth", str(depth),
            "-desktop", name,
            "-rfbunixpath", str(socket_path),
            "-rfbunixmode", "0600",
        ]  # fmt: skip
        if self.kind == "turbovnc":
            # TurboVNC: a unix socket path already disables the TCP listener.
            flavour = ["-securitytypes", "none", "-alwaysshared"]
            if not clipboard:
                flavour += ["-noclipboardrecv", "-noclipboardsend"]
        else:
            flavour = [
                "-rfbport", "-1",  # TigerVNC would also listen on TCP 5900+n without this
                "-SecurityTypes", "None",
                "-AlwaysShared",
                "-AcceptSetDesktopSize=1",
                # Readiness probes and reconnects on a private socket are not attacks; the blacklist
                # would lock the owner out for 10 s after five of them.
                "-UseBlacklist=0",
            ]  # fmt: skip
            if not clipboard:
                flavour += ["-AcceptCutText=0", "-SendCutText=0", "-SendPrimary=0", "-SetPrimary=0"]
        return [self.path, *common, *flavour, *extra]


class NoVNCServerError(RuntimeError):
    pass


def kind_from_version(text: str) -> str | None:
    lowered = text.lower()
    if "turbovnc" in lowered:
        return "turbovnc"
    if "tigervnc" in lowered:
        return "tigervnc"
    return None


def detect(preferred: str = "") -> VNCServer:
    """Find the VNC server: ``preferred`` (a path or a command name) or the first of CANDIDATES."""
    tried = []
    for name in [preferred] if preferred else CANDIDATES:
        path = name if "/" in name else shutil.which(name)
        if not path or not Path(path).is_file():
            tried.append(f"{name}: not found")
            continue
        try:
            result = subprocess.run([path, "-version"], capture_output=True, text=True, timeout=10)
        except (OSError, subprocess.TimeoutExpired) as e:
            tried.append(f"{path}: {e}")
            continue
        output = result.stdout + result.stderr
        kind = kind_from_version(output)
        if kind:
            version = next((line.strip() for line in output.splitlines() if "vnc" in line.lower()), "")
            return VNCServer(kind=kind, path=path, version=version)
        tried.append(f"{path}: neither TurboVNC nor TigerVNC")
    raise NoVNCServerError(
        "no usable VNC server (install TurboVNC or TigerVNC's Xvnc); looked at: " + "; ".join(tried)
    )
