"""Session registry backends: ``open_registry("")`` is in-process, ``open_registry("redis://...")``
is shared through Redis. Both are wrapped so that a backend outage never breaks a spawn or a stop."""

from __future__ import annotations

from .base import Registry, RegistryUnavailable, Session
from .memory import MemoryRegistry
from .resilient import ResilientRegistry


def open_registry(url: str = "") -> Registry:
    if not url:
        return MemoryRegistry()
    if url.startswith(("redis://", "rediss://", "unix://")):
        from .redis import RedisRegistry

        return RedisRegistry(url)
    raise ValueError(f"registry URL must be empty (in-process) or redis://..., not {url!r}")


__all__ = [
    "MemoryRegistry",
    "Registry",
    "RegistryUnavailable",
    "ResilientRegistry",
    "Session",
    "open_registry",
]
