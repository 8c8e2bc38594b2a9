"""Session registry backends: ``open_registry("")`` is in-process, ``open_registry("redis://...")``
is shared through Redis. Both are wrapped so that a backend outage never breaks a spawn or a stop."""

from __future__ import annotations

import os
from pathlib import Path

from .base import Registry, RegistryConfigError, RegistryUnavailable, Session
from .memory import MemoryRegistry
from .resilient import ResilientRegistry

PASSWORD_ENV = "JUPYTER_VNC_REGISTRY_PASSWORD"
REDIS_SCHEMES = ("redis://", "rediss://", "unix://")


def registry_password(password_file: str = "") -> str | None:
    """The registry's password: from ``password_file`` if given, else $JUPYTER_VNC_REGISTRY_PASSWORD,
    else None (the URL's own, if any). Kept out of the URL so that it never reaches a log line."""
    if password_file:
        try:
            return Path(password_file).read_text().strip()
        except OSError as e:
            raise RegistryUnavailable(f"cannot read the registry password file {password_file}: {e}") from e
    return os.environ.get(PASSWORD_ENV) or None


def check_registry_url(url: str, name: str = "c.VNCSlurmSpawner.registry_url") -> None:
    """Raise RegistryConfigError, naming the setting, unless this installation can open ``url``. The
    spawner asks when its configuration is read, so a wrong URL, or a hub installed without the Redis
    client, is named there rather than in a user's failed spawn."""
    if not url:
        return
    if not url.startswith(REDIS_SCHEMES):
        raise RegistryConfigError(
            f"{name} must be empty (the registry lives in the hub process) or a Redis URL "
            f"(redis://, rediss://, unix://), not {url!r}"
        )
    try:
        import redis  # noqa: F401  (an optional extra: a single hub needs no Redis at all)
    except ImportError as e:
        raise RegistryConfigError(
            f"{name} names a Redis server, but the Redis client is not installed where the hub runs "
            f"({e}): install jupyter-vnc[redis], or leave {name} empty for a single hub"
        ) from e


def open_registry(url: str = "", password_file: str = "") -> Registry:
    check_registry_url(url)
    if not url:
        return MemoryRegistry()
    from .redis import RedisRegistry  # imported here: redis is an optional extra

    return RedisRegistry(url, password=registry_password(password_file))


__all__ = [
    "MemoryRegistry",
    "Registry",
    "RegistryConfigError",
    "RegistryUnavailable",
    "ResilientRegistry",
    "Session",
    "check_registry_url",
    "open_registry",
    "registry_password",
]
