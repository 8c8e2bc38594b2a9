"""Redis registry: several hub processes share sessions and job states; a hub restart loses nothing.

Keys (prefix configurable, default ``jupyter-vnc:``):
  ``session:<user>/<server>``  JSON of a Session, TTL = walltime left + margin
  ``sessions``                 a set of session keys (for listing without SCAN)
  ``job:<id>``                 JSON ``{"read_at": t, "state": {...}}``, TTL = a few poll intervals
  ``lock:<name>``              SET NX PX, the hub-wide poller lock
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import AuthenticationError, RedisError

from .base import Registry, RegistryUnavailable, Session, parse_session

log = logging.getLogger("jupyter_vnc.registry")


class RedisRegistry(Registry):
    def __init__(
        self, url: str, prefix: str = "jupyter-vnc:", timeout: float = 2.0, password: str | None = None
    ) -> None:
        self.url = url
        self.prefix = prefix
        extra = {"password": password} if password else {}
        # Short timeouts: a down Redis must make a spawn wait two seconds, not a minute.
        self._redis = aioredis.from_url(
            url, socket_timeout=timeout, socket_connect_timeout=timeout, decode_responses=True, **extra
        )

    def _k(self, *parts: str) -> str:
        return self.prefix + ":".join(parts)

    async def _call(self, coro: Any) -> Any:
        try:
            return await coro
        except (RedisError, OSError) as e:
            if _is_auth_error(e):
                raise RegistryUnavailable(
                    f"Redis at {_redact(self.url)} refused our credentials: {e} "
                    "(c.VNCSlurmSpawner.registry_password_file or $JUPYTER_VNC_REGISTRY_PASSWORD)"
                ) from e
            raise RegistryUnavailable(f"Redis at {_redact(self.url)} is not reachable: {e}") from e

    async def ping(self) -> None:
        await self._call(self._redis.ping())

    async def open_to_anyone(self) -> bool:
        """Whether this Redis answers a client that presents no credentials at all (then every Unix
        user who can reach it can read and forge sessions)."""
        anonymous = aioredis.from_url(
            _without_credentials(self.url), socket_timeout=2, socket_connect_timeout=2, decode_responses=True
        )
        try:
            await anonymous.get(self._k("probe"))
            return True
        except RedisError as e:
            if _is_auth_error(e):
                return False
            raise RegistryUnavailable(f"Redis at {_redact(self.url)} is not reachable: {e}") from e
        finally:
            await anonymous.aclose()

    async def put(self, session: Session) -> None:
        key = self._k("session", session.key)
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.set(key, session.to_json(), px=int(session.ttl() * 1000))
            pipe.sadd(self._k("sessions"), session.key)
            await self._call(pipe.execute())

    async def get(self, user: str, server: str = "") -> Session | None:
        key = f"{user}/{server}"
        text = await self._call(self._redis.get(self._k("session", key)))
        if not text:
            return None
        session = parse_session(key, text)
        if session is None:
            log.warning("jupyter-vnc registry: ignored the invalid entry %s", _show_key(key))
        return session

    async def delete(self, user: str, server: str = "") -> None:
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.delete(self._k("session", f"{user}/{server}"))
            pipe.srem(self._k("sessions"), f"{user}/{server}")
            await self._call(pipe.execute())

    async def read_sessions(self) -> tuple[list[Session], list[str]]:
        keys = sorted(await self._call(self._redis.smembers(self._k("sessions"))))
        if not keys:
            return [], []
        values = await self._call(self._redis.mget([self._k("session", k) for k in keys]))
        expired = [k for k, v in zip(keys, values, strict=True) if v is None]
        if expired:  # the record's TTL ran out: drop it from the index too
            await self._call(self._redis.srem(self._k("sessions"), *expired))
        found: list[Session] = []
        skipped: list[str] = []
        for key, value in zip(keys, values, strict=True):
            if value is None:
                continue
            session = parse_session(key, value)
            if session is None:
                skipped.append(_show_key(key))
            else:
                found.append(session)
        if skipped:
            log.warning(
                "jupyter-vnc registry: skipped %d invalid entries: %s", len(skipped), ", ".join(skipped)
            )
        return found, skipped

    async def put_job_states(self, states: dict[str, dict[str, Any]], ttl: float) -> None:
        if not states:
            return
        now = time.time()
        async with self._redis.pipeline(transaction=False) as pipe:
            for job_id, state in states.items():
                pipe.set(
                    self._k("job", job_id), json.dumps({"read_at": now, "state": state}), px=int(ttl * 1000)
                )
            await self._call(pipe.execute())

    async def get_job_states(self, job_ids: list[str]) -> dict[str, tuple[Any, Any]]:
        if not job_ids:
            return {}
        values = await self._call(self._redis.mget([self._k("job", j) for j in job_ids]))
        out: dict[str, tuple[Any, Any]] = {}
        for job_id, value in zip(job_ids, values, strict=True):
            if value:
                # As stored, unchecked: the poller validates (an entry anyone could have written).
                try:
                    data = json.loads(value)
                except ValueError:
                    data = None
                out[job_id] = (
                    (data.get("read_at"), data.get("state")) if isinstance(data, dict) else (None, None)
                )
        return out

    async def try_lock(self, name: str, ttl: float) -> bool:
        return bool(
            await self._call(self._redis.set(self._k("lock", name), "1", nx=True, px=int(ttl * 1000)))
        )

    async def close(self) -> None:
        await self._redis.aclose()


def _show_key(key: str) -> str:
    """A registry key fit for a log line: printable and bounded whatever was written there."""
    text = key.encode("ascii", "backslashreplace").decode()
    return repr(text if len(text) <= 80 else text[:77] + "...")


def _is_auth_error(error: Exception) -> bool:
    # Redis words it several ways: NOAUTH, WRONGPASS, NOPERM, or HELLO's "must be ... authenticated".
    text = str(error)
    return isinstance(error, AuthenticationError) or any(
        w in text for w in ("NOAUTH", "WRONGPASS", "NOPERM", "authenticated")
    )


def _without_credentials(url: str) -> str:
    if "://" not in url or "@" not in url.split("://", 1)[1].split("/", 1)[0]:
        return url
    scheme, rest = url.split("://", 1)
    return f"{scheme}://{rest.split('@', 1)[1]}"


def _redact(url: str) -> str:
    """The URL without its password (redis://:secret@host → redis://:***@host)."""
    if "@" not in url:
        return url
    scheme, rest = url.split("://", 1) if "://" in url else ("", url)
    creds, host = rest.rsplit("@", 1)
    user = creds.split(":", 1)[0]
    return f"{scheme}://{user}:***@{host}" if scheme else f"{user}:***@{host}"
