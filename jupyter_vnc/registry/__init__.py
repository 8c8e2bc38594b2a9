"""Session registry backends: ``open_registry("")`` is in-process, ``open_registry("redis://...")``
is shared through Redis. Both are wrapped so that a backend outage never breaks a spawn or a stop."""

from __future__ import annotations

import os
from pathlib import Path

from .base import Registry, RegistryUnavailable, Session
from .memory import MemoryRegistry
from .resilient import ResilientRegistry

PASSWORD_ENV = "JUPYTER_VNC_REGISTRY_PASSWORD"


def registry_password(password_file: str = "") -> str | None:
    """The registry's password: from ``password_file`` if given, else $JUPYTER_VNC_REGISTRY_PASSWORD,
    else None (the URL's own, if any). Kept out of the URL so that it never reaches a log line."""
    if password_file:
        try:
            return Path(password_file).read_text().strip()
        except OSError as e:
            raise RegistryUnavailable(f"cannot read the registry password file {password_file}: {e}") from e
    return os.environ.get(PASSWORD_ENV) or None


def open_registry(url: str = "", password_file: str = "") -> Registry:
    if not url:
        return MemoryRegistry()
    if url.startswith(("redis://", "rediss://", "unix://")):
        from .redis import RedisRegistry

        return RedisRegistry(url, password=registry_password(password_file))
    raise ValueError(f"registry URL must be empty (in-process) or redis://..., not {url!r}")


__all__ = [
    "MemoryRegistry",
    "Registry",
    "RegistryUnavailable",
    "ResilientRegistry",
    "Session",
    "open_registry",
    "registry_password",
]
