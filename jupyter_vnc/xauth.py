"""X authority files: the cookie that closes the desktop's X display to everyone but its owner.

Xvnc listens on ``/tmp/.X11-unix/X<n>`` and on an abstract socket besides the VNC socket; without
``-auth`` any local user could connect to the display, read the screen and inject input. We write the
file ourselves (the format is five length-prefixed fields) so no ``xauth`` binary is needed inside images.
"""

from __future__ import annotations

import os
import secrets
import struct
from pathlib import Path

FAMILY_WILD = 0xFFFF  # matches any host address, so the entry fits wherever the client connects from
COOKIE_NAME = b"MIT-MAGIC-COOKIE-1"


def _field(data: bytes) -> bytes:
    return struct.pack(">H", len(data)) + data


def entry(cookie: bytes, display: int | None) -> bytes:
    """One Xauthority entry; ``display=None`` leaves the number empty (any display)."""
    number = b"" if display is None else str(display).encode()
    return (
        struct.pack(">H", FAMILY_WILD) + _field(b"") + _field(number) + _field(COOKIE_NAME) + _field(cookie)
    )


def new_cookie() -> bytes:
    return secrets.token_bytes(16)


def write_authority(path: Path, cookie: bytes, display: int | None = None) -> None:
    """(Re)write ``path`` with the cookie, readable by its owner only.

    Xvnc needs the cookie before it has picked its display number (``-displayfd``); it accepts any
    cookie in the file whatever the number. Clients match the number, so the file is rewritten with it
    once known, keeping the any-display entry for the server.
    """
    data = entry(cookie, None) if display is None else entry(cookie, display) + entry(cookie, None)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    os.replace(tmp, path)
