"""The session registry: the same tests on every backend, Redis against a real redis-server."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import redis.asyncio as aioredis
from conftest import DEVSTACK

from jupyter_vnc.registry import (
    MemoryRegistry,
    Registry,
    RegistryUnavailable,
    ResilientRegistry,
    Session,
    open_registry,
)
from jupyter_vnc.registry.base import parse_session
from jupyter_vnc.registry.redis import RedisRegistry, _redact

# Whose servers, jobs and homes these tests use (tests/isolation.py: modules of other users run beside).
pytestmark = pytest.mark.users("gina", "hugo", "iris")


class FakeClock:
    """Wall time that moves only when a test says so: expiry is logic, tested without waiting."""

    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


async def elapse(registry: Registry, seconds: float) -> None:
    """Let ``seconds`` pass for the registry: the memory one's clock jumps; Redis needs real time."""
    if isinstance(registry, MemoryRegistry):
        registry._clock.advance(seconds)  # type: ignore[attr-defined]
    else:
        await asyncio.sleep(seconds)


async def eventually(check, what: str, timeout: float = 15.0) -> None:  # type: ignore[no-untyped-def]
    """Poll an async check until it holds: Redis expires keys in real time, on a machine that may be busy."""
    deadline = time.monotonic() + timeout
    while not await check():
        assert time.monotonic() < deadline, f"{what} did not happen within {timeout} s"
        await asyncio.sleep(0.05)


@pytest.fixture(params=[pytest.param("memory", marks=pytest.mark.unit), "redis"])
async def registry(request: pytest.FixtureRequest) -> AsyncIterator[Registry]:
    if request.param == "memory":
        yield MemoryRegistry(clock=FakeClock())
        return
    url = request.getfixturevalue("redis_url")
    backend = RedisRegistry(url, prefix=f"jvnc-test-{uuid.uuid4().hex[:8]}:")
    yield backend
    await backend.close()


def session(user: str = "gina", server: str = "", **kw: object) -> Session:
    return Session(user=user, server=server, job_id=kw.pop("job_id", "101"), state="running", **kw)  # type: ignore[arg-type]


async def test_put_get_list_delete(registry: Registry) -> None:
    a = session(node="node1", gpus=1, memory_gb=16, resolution="1920x1080", ends_at=time.time() + 3600)
    b = session("hugo", "viz", job_id="102")
    await registry.put(a)
    await registry.put(b)
    assert await registry.get("gina") == a
    assert [s.key for s in await registry.sessions()] == ["gina/", "hugo/viz"]
    await registry.delete("gina")
    assert await registry.get("gina") is None
    assert [s.key for s in await registry.sessions()] == ["hugo/viz"]


async def test_records_expire_with_the_walltime(registry: Registry, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("jupyter_vnc.registry.base.TTL_MARGIN", 0.3)
    await registry.put(session(ends_at=time.time() + 0.2))  # kept until 0.5 s from now
    assert await registry.get("gina") is not None

    async def gone() -> bool:
        return await registry.get("gina") is None and await registry.sessions() == []

    if isinstance(registry, MemoryRegistry):
        await elapse(registry, 0.4)
        assert not await gone()  # still within walltime + margin
        await elapse(registry, 0.2)
        assert await gone()
    else:
        await eventually(gone, "expiry of a session past its walltime")


async def test_job_state_cache_and_lock(registry: Registry) -> None:
    await registry.put_job_states({"7": {"phase": "running", "state": "RUNNING"}}, ttl=5)
    cached = await registry.get_job_states(["7", "8"])
    assert list(cached) == ["7"] and cached["7"][1]["state"] == "RUNNING"
    assert abs(cached["7"][0] - time.time()) < 2
    name = uuid.uuid4().hex
    assert await registry.try_lock(name, ttl=1.0)
    assert not await registry.try_lock(name, ttl=1.0)  # held
    if isinstance(registry, MemoryRegistry):
        await elapse(registry, 0.9)
        assert not await registry.try_lock(name, ttl=1.0)  # still held just before its end
        await elapse(registry, 0.2)
        assert await registry.try_lock(name, ttl=1.0)
    else:

        async def free() -> bool:
            return await registry.try_lock(name, ttl=1.0)

        await eventually(free, "the lock's expiry")


async def test_no_secret_in_what_is_stored(redis_bed) -> None:
    backend = RedisRegistry(redis_bed.auth_url, prefix="jvnc-secret-test:")
    try:
        await backend.put(session(message="walltime reached"))
        keys = redis_bed.cli("--scan", "--pattern", "jvnc-secret-test:*").split()
        dump = "".join(redis_bed.cli("GET", k) for k in keys if k.endswith("/"))
        assert "gina" in dump and "token" not in dump.lower() and "password" not in dump.lower()
    finally:
        await backend.delete("gina")
        await backend.close()


@pytest.mark.unit
def test_open_registry_and_bad_urls() -> None:
    assert isinstance(open_registry(""), MemoryRegistry)
    with pytest.raises(ValueError, match="redis://"):
        open_registry("mysql://x")
    assert _redact("redis://:hunter2@db:6379/0") == "redis://:***@db:6379/0"


@pytest.mark.unit
def test_one_hub_needs_no_redis_and_a_redis_url_without_it_names_the_extra() -> None:
    """Redis is an optional extra (jupyter-vnc[redis]). Without the package: the hub side imports, a
    single hub's registry works, and a Redis registry_url fails where the spawner reads its
    configuration, naming the trait and the extra (never an ImportError at a user's spawn)."""
    script = """
import sys
sys.modules["redis"] = None  # as if the redis package were not installed
from types import SimpleNamespace
from jupyterhub.objects import Hub
from traitlets import TraitError
from traitlets.config import Config
import jupyter_vnc.cli.doctor, jupyter_vnc.cli.sessions, jupyter_vnc.extension
from jupyter_vnc.registry import MemoryRegistry, open_registry
from jupyter_vnc.spawner import VNCSlurmSpawner
assert isinstance(open_registry(""), MemoryRegistry)
owner = SimpleNamespace(name="gina", escaped_name="gina", url="/user/gina/", server=None, spawners={})
config = Config()
VNCSlurmSpawner(config=config, user=owner, hub=Hub())  # no registry_url: in the hub process
config.VNCSlurmSpawner.registry_url = "redis://127.0.0.1:6379/0"
try:
    VNCSlurmSpawner(config=config, user=owner, hub=Hub())
except TraitError as e:
    print(e)
"""
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(
        "c.VNCSlurmSpawner.registry_url names a Redis server, but the Redis client"
    )
    assert "install jupyter-vnc[redis], or leave c.VNCSlurmSpawner.registry_url empty" in result.stdout


async def test_redis_down_then_back_loses_nothing(tmp_path: Path) -> None:
    """A Redis of its own, stopped and started under a resilient registry: writes made while it is
    down reach it when it returns; reads say it is down instead of answering wrong."""
    if os.geteuid() != 0:
        pytest.skip("needs root to start its own redis-server")
    env = {**os.environ, "JVNC_STATE": str(tmp_path), "JVNC_REDIS_PORT": "16392"}

    def redis(command: str) -> None:
        subprocess.run([DEVSTACK / "redis", command], env=env, check=True, capture_output=True)

    redis("start")
    password = (tmp_path / "redis" / "password").read_text().strip()
    registry = ResilientRegistry(RedisRegistry("redis://127.0.0.1:16392/0", timeout=0.5, password=password))
    try:
        await registry.put(session("gina", job_id="1"))
        await registry.put(session("hugo", job_id="2"))
        redis("stop")
        await registry.put(session("iris", job_id="3"))  # no exception: the spawn goes on
        await registry.delete("gina")  # nor for a stop
        with pytest.raises(RegistryUnavailable, match="not reachable"):
            await registry.sessions()
        assert set(registry.pending) == {"iris/", "gina/"}
        redis("start")  # RDB snapshot: hugo's record survived the restart
        assert [s.key for s in await registry.sessions()] == ["hugo/", "iris/"]
        assert not registry.pending
    finally:
        await registry.close()
        redis("stop")


@pytest.mark.unit
def test_entries_that_are_not_sessions_are_refused() -> None:
    now = time.time()
    good = json.loads(session("hugo", "viz", node="node1", started=now - 60, ends_at=now + 3600).to_json())
    assert parse_session("hugo/viz", json.dumps(good), now) == Session(**good)
    forged = [
        "not json",
        "[1, 2]",
        json.dumps({**good, "user": "gina"}),  # does not agree with its key
        json.dumps({**good, "state": "owned"}),
        json.dumps({**good, "job_id": "12; scancel -u root"}),
        json.dumps({**good, "job_id": "\u0661\u0662"}),
        json.dumps({**good, "gpus": "all"}),
        json.dumps({**good, "gpus": 10**9}),
        json.dumps({**good, "ends_at": 1e15}),  # thirty thousand years from now
        json.dumps({**good, "started": -5}),
        json.dumps({**good, "message": "x" * 100_000}),
        json.dumps({**good, "node": ["node1"]}),
    ]
    for text in forged:
        assert parse_session("hugo/viz", text, now) is None, text[:80]


async def test_a_second_client_cannot_crash_or_hide_the_listing(redis_url: str) -> None:
    """Entries written by hand next to the real ones: the real ones are listed, the rest named."""
    prefix = f"jvnc-forge-{uuid.uuid4().hex[:8]}:"
    backend = RedisRegistry(redis_url, prefix=prefix)
    raw = aioredis.from_url(redis_url, decode_responses=True)
    try:
        await backend.put(session("hugo", job_id="5", ends_at=time.time() + 3600))
        forged = {
            "mallory/": "not json",
            "gina/": json.dumps({**json.loads(session("hugo", job_id="6").to_json())}),
            "iris/": json.dumps({**json.loads(session("iris", job_id="7").to_json()), "ends_at": 1e15}),
        }
        for key, value in forged.items():
            await raw.set(f"{prefix}session:{key}", value)
            await raw.sadd(f"{prefix}sessions", key)
        sessions, skipped = await backend.read_sessions()
        assert [s.key for s in sessions] == ["hugo/"]
        assert skipped == ["'gina/'", "'iris/'", "'mallory/'"]
        assert await backend.get("mallory") is None and await backend.get("gina") is None
        assert (await backend.get("hugo")).job_id == "5"  # type: ignore[union-attr]
    finally:
        await raw.aclose()
        await backend.close()


async def test_the_registry_refuses_clients_without_the_password(redis_bed) -> None:
    anonymous = RedisRegistry(redis_bed.url)
    try:
        with pytest.raises(RegistryUnavailable, match="refused our credentials"):
            await anonymous.ping()
    finally:
        await anonymous.close()
    registry = open_registry(redis_bed.url, str(redis_bed.password_file))
    try:
        await registry.ping()
        assert await registry.open_to_anyone() is False  # type: ignore[attr-defined]
    finally:
        await registry.close()
