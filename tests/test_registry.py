"""The session registry: the same tests on every backend, Redis against a real redis-server."""

from __future__ import annotations

import asyncio
import json
import logging
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
    RegistryConfigError,
    RegistryUnavailable,
    ResilientRegistry,
    Session,
    check_registry_url,
    open_registry,
    registry_password,
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
    with pytest.raises(
        RegistryConfigError, match=r"^c.VNCSlurmSpawner.registry_url must be empty .*\(redis://"
    ):
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


# --- rules that need no Redis: the session's key and lifetime, what a URL may be, the replay of writes ---


@pytest.mark.unit
def test_a_sessions_key_lifetime_and_time_left() -> None:
    now = 1_800_000_000.0
    assert session("gina").key == "gina/" and session("hugo", "viz").key == "hugo/viz"
    ends = session(ends_at=now + 3600)
    assert ends.ttl(now) == 3600 + 600  # kept ten minutes past its walltime
    assert ends.seconds_left(now) == 3600 and ends.seconds_left(now + 0.5) == 3599  # whole seconds
    assert ends.seconds_left(now + 4000) == 0  # over: none left, never negative
    assert session(ends_at=now - 50).ttl(now) == 600
    assert session().ttl(now) == 600 and session().seconds_left(now) is None  # no walltime known
    assert abs(ends.ttl() - (ends.ends_at - time.time() + 600)) < 5  # type: ignore[operator]
    assert session(ends_at=time.time() + 100).seconds_left() in (99, 100)


@pytest.mark.unit
def test_a_stored_session_reads_back_as_written_and_newer_fields_are_ignored() -> None:
    s = session("hugo", "viz", node="n1", gpus=2, memory_gb=16, started=1.8e9, ends_at=1.9e9, message="m")
    assert Session.from_json(s.to_json()) == s
    assert json.loads(s.to_json())["user"] == "hugo"
    newer = json.dumps({**json.loads(s.to_json()), "colour": "blue"})  # written by a newer hub
    assert Session.from_json(newer) == s
    assert parse_session("hugo/viz", newer, 1.85e9) == s


@pytest.mark.unit
def test_what_a_valid_entry_may_hold_at_its_bounds() -> None:
    now = 1_800_000_000.0
    good = json.loads(session("hugo", "viz", started=now - 60, ends_at=now + 3600).to_json())

    def ok(**changes: object) -> bool:
        return parse_session("hugo/viz", json.dumps({**good, **changes}), now) is not None

    # Job ids: none yet (queued before sbatch answered) or digits; states: exactly the five.
    assert ok(job_id="") and ok(job_id="12345") and not ok(job_id="12a") and not ok(job_id=12)
    assert all(ok(state=s) for s in ("queued", "running", "stopped", "failed", "unknown"))
    assert not ok(state="RUNNING") and not ok(state=None)
    # Numbers: whole, not negative, bounded; True is no number of GPUs.
    assert ok(gpus=0) and ok(gpus=64) and not ok(gpus=65) and not ok(gpus=-1) and not ok(gpus=True)
    assert not ok(gpus=1.0) and not ok(memory_gb=None)
    assert ok(memory_gb=1 << 20) and not ok(memory_gb=(1 << 20) + 1)
    # Text fields: strings up to 4 KiB; missing ones take their default.
    assert ok(message="x" * 4096) and not ok(message="x" * 4097) and not ok(resolution=None)
    for missing in ("node", "gpus", "memory_gb", "message"):  # an entry from an older hub: the defaults
        assert parse_session("hugo/viz", json.dumps({k: v for k, v in good.items() if k != missing}), now)
    # Times: from 2001 to ten years ahead; started and ends_at may be unknown, submitted may not.
    assert ok(started=None, ends_at=None) and not ok(submitted=None) and not ok(started="yesterday")
    assert not ok(started=None, ends_at=1e15)  # an unknown start does not excuse a wrong end
    assert ok(submitted=1e9) and not ok(submitted=1e9 - 1) and not ok(ends_at=True)
    assert ok(ends_at=now + 10 * 365 * 86400) and not ok(ends_at=now + 10 * 365 * 86400 + 1)
    # Names: JupyterHub's user and server names; the user is never empty.
    assert parse_session(
        "hugo.smith@x/viz-2", json.dumps({**good, "user": "hugo.smith@x", "server": "viz-2"}), now
    )
    for user, server in (("", "viz"), ("hugo viz", ""), ("hugo", "a/b"), ("b" * 256, "")):
        key = f"{user}/{server}"
        assert parse_session(key, json.dumps({**good, "user": user, "server": server}), now) is None, key
    assert parse_session("hugo/viz", json.dumps({**good, "server": None}), now) is None
    assert parse_session("hugo/viz", json.dumps({**good, "user": 7}), now) is None
    assert parse_session("hugo/viz", json.dumps({**good, "job_id": "101", "gpus": "1"}), now) is None
    assert parse_session("hugo/viz", b"\xff", now) is None and parse_session("hugo/viz", None, now) is None
    assert (
        parse_session("hugo/viz", json.dumps({**good, "submitted": now + 1}), None) is not None
    )  # time.time()


@pytest.mark.unit
async def test_memory_copies_in_and_out_and_keeps_each_job_state_for_its_own_ttl() -> None:
    clock = FakeClock()
    clock.now = 1_800_000_000.0  # whole seconds: the sums below land exactly on each expiry
    registry = MemoryRegistry(clock=clock)
    mine = session(ends_at=clock.now + 60)
    as_put = Session.from_json(mine.to_json())
    await registry.put(mine)
    mine.state = "stopped"  # the caller's object, changed after the put
    assert (await registry.get("gina")).state == "running"  # type: ignore[union-attr]
    got = await registry.get("gina")
    got.node = "elsewhere"  # type: ignore[union-attr]
    assert (await registry.sessions())[0].node == ""
    assert await registry.read_sessions() == ([as_put], [])
    await registry.delete("nobody")  # deleting what is not there is no error
    state = {"phase": "running"}
    await registry.put_job_states({"7": state, "8": {"phase": "queued"}}, ttl=5)
    state["phase"] = "changed"
    clock.advance(2)
    await registry.put_job_states({"8": {"phase": "running"}}, ttl=5)
    cached = await registry.get_job_states(["7", "8", "9"])
    assert cached == {"7": (clock.now - 2, {"phase": "running"}), "8": (clock.now, {"phase": "running"})}
    cached["7"][1]["phase"] = "mine"
    clock.advance(3)  # 7 was read 5 s ago: gone; 8 was read again
    assert await registry.get_job_states(["7", "8"]) == {"8": (clock.now - 3, {"phase": "running"})}
    assert await registry.try_lock("poll", ttl=1) and await registry.try_lock("other", ttl=1)
    clock.advance(1)  # a lock is free again when its time is up, not a moment later
    assert await registry.try_lock("poll", ttl=1)
    await registry.put(session("hugo", job_id="9"))  # no walltime known: kept ten minutes
    clock.advance(599.5)
    assert await registry.get("hugo") is not None
    clock.advance(0.5)
    assert await registry.get("hugo") is None


class Flaky(MemoryRegistry):
    """A backend that goes down and comes back when a test says so, recording what reached it."""

    def __init__(self) -> None:
        super().__init__(clock=FakeClock())
        self.down = False
        self.writes: list[str] = []
        self.closed = False

    def _check(self) -> None:
        if self.down:
            raise RegistryUnavailable("Redis at redis://db is not reachable: connection refused")

    async def put(self, session: Session) -> None:
        self._check()
        self.writes.append(f"put {session.key} {session.state}")
        await super().put(session)

    async def delete(self, user: str, server: str = "") -> None:
        self._check()
        self.writes.append(f"delete {user}/{server}")
        await super().delete(user, server)

    async def read_sessions(self) -> tuple[list[Session], list[str]]:
        self._check()
        return await super().read_sessions()

    async def get(self, user: str, server: str = "") -> Session | None:
        self._check()
        return await super().get(user, server)

    async def put_job_states(self, states: dict, ttl: float) -> None:  # type: ignore[type-arg]
        self._check()
        await super().put_job_states(states, ttl)

    async def ping(self) -> None:
        self._check()

    async def close(self) -> None:
        self.closed = True


@pytest.fixture
def flaky() -> tuple[Flaky, ResilientRegistry]:
    """A backend the test takes down and brings back, and the resilient registry in front of it."""
    backend = Flaky()
    return backend, ResilientRegistry(backend)


@pytest.mark.unit
async def test_writes_made_while_the_backend_is_down_reach_it_in_order_when_it_returns(
    flaky: tuple[Flaky, ResilientRegistry], caplog: pytest.LogCaptureFixture
) -> None:
    backend, registry = flaky
    with caplog.at_level(logging.WARNING, logger="jupyter_vnc.registry"):
        await registry.put(session("gina", job_id="1"))
        await registry.put(session("gina", "viz", job_id="9"))
        await registry.delete("gina", "viz")
    assert caplog.records == []  # nothing was ever down: nothing to catch up on
    assert await registry.get("gina", "viz") is None
    assert (await registry.get("gina")).job_id == "1"  # type: ignore[union-attr]
    backend.down = True
    with caplog.at_level(logging.WARNING, logger="jupyter_vnc.registry"):
        await registry.put(session("hugo", job_id="2"))  # no exception: the spawn goes on
        queued = session("iris", job_id="3")
        await registry.put(queued)
        await registry.put(Session("iris", "", "3", "stopped"))  # only iris's latest write is kept
        await registry.delete("gina")
        await registry.put(session("gina", "viz", job_id="4"))
        for read in (
            registry.sessions(),
            registry.get("gina"),
            registry.put_job_states({}, 1),
            registry.ping(),
        ):
            with pytest.raises(RegistryUnavailable, match="not reachable"):
                await read  # a reader is told, never shown a stale or empty list
        assert list(registry.pending) == ["hugo/", "iris/", "gina/", "gina/viz"]
        backend.down = False
        assert [s.key for s in await registry.sessions()] == ["gina/viz", "hugo/", "iris/"]
    assert backend.writes == [
        "put gina/ running",
        "put gina/viz running",
        "delete gina/viz",
        "put hugo/ running",
        "put iris/ stopped",
        "delete gina/",
        "put gina/viz running",
    ]
    assert not registry.pending and (await registry.get("iris")).state == "stopped"  # type: ignore[union-attr]
    assert [r.getMessage() for r in caplog.records] == [  # said once, not per write
        "jupyter-vnc registry unavailable (Redis at redis://db is not reachable: connection refused); "
        "will catch up when it returns",
        "jupyter-vnc registry reachable again; caught up",
    ]
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="jupyter_vnc.registry"):
        await registry.put(session("paul", job_id="5"))
    assert caplog.text == ""  # caught up already: nothing more to say


@pytest.mark.unit
async def test_a_write_after_a_delete_while_down_is_replayed_after_it(
    flaky: tuple[Flaky, ResilientRegistry], caplog: pytest.LogCaptureFixture
) -> None:
    backend, registry = flaky
    backend.down = True
    with caplog.at_level(logging.WARNING, logger="jupyter_vnc.registry"):
        await registry.delete("hugo")
    assert "unavailable (Redis at redis://db is not reachable: connection refused)" in caplog.text
    await registry.put(session("gina", job_id="1"))
    await registry.put(session("hugo", job_id="2"))  # hugo's delete is superseded by his new session
    backend.down = False
    await registry.ping()  # a ping that reaches the backend also catches up
    assert backend.writes == ["put gina/ running", "put hugo/ running"]
    assert [s.key for s in await backend.sessions()] == ["gina/", "hugo/"]
    await registry.put_job_states({"7": {"phase": "running"}}, ttl=5)
    assert list(await registry.get_job_states(["7"])) == ["7"]
    assert await registry.try_lock("poll", ttl=5) and not await registry.try_lock("poll", ttl=5)
    assert await registry.try_lock("other", ttl=5)  # each lock by its own name
    await registry.close()
    assert backend.closed


@pytest.mark.unit
def test_the_password_comes_from_its_file_or_the_environment_never_the_log(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("JUPYTER_VNC_REGISTRY_PASSWORD", raising=False)
    assert registry_password() is None
    monkeypatch.setenv("JUPYTER_VNC_REGISTRY_PASSWORD", "from-env")
    assert registry_password() == "from-env"
    (tmp_path / "password").write_text("from-file\n")
    assert registry_password(str(tmp_path / "password")) == "from-file"
    with pytest.raises(RegistryUnavailable, match="cannot read the registry password file /nonexistent"):
        registry_password("/nonexistent")
    monkeypatch.setenv("JUPYTER_VNC_REGISTRY_PASSWORD", "")
    assert registry_password() is None


@pytest.mark.unit
@pytest.mark.parametrize("url", ["redis://db:6379/0", "rediss://db:6380/0", "unix:///run/redis.sock"])
def test_the_redis_urls_a_hub_may_name(url: str) -> None:
    check_registry_url(url)
    check_registry_url("")


@pytest.mark.unit
@pytest.mark.parametrize("url", ["mysql://x", "db:6379", "REDIS://db", " redis://db", "http://redis"])
def test_anything_else_is_refused_naming_the_setting(url: str) -> None:
    with pytest.raises(RegistryConfigError) as raised:
        check_registry_url(url)
    assert str(raised.value) == (
        "c.VNCSlurmSpawner.registry_url must be empty (the registry lives in the hub process) or a Redis "
        f"URL (redis://, rediss://, unix://), not {url!r}"
    )
    with pytest.raises(RegistryConfigError, match=r"^c.Other.url must be empty"):
        check_registry_url(url, "c.Other.url")


@pytest.mark.unit
async def test_a_redis_registry_presents_the_password_from_its_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The password of registry_password_file reaches Redis (and never the URL, nor the message): what
    a Redis that wants one receives first, here a stand-in that refuses it."""
    monkeypatch.delenv("JUPYTER_VNC_REGISTRY_PASSWORD", raising=False)
    received: list[bytes] = []

    async def refuse(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        received.append(await reader.read(4096))
        writer.write(b"-WRONGPASS invalid username-password pair or user is disabled.\r\n")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(refuse, "127.0.0.1", 0)
    url = f"redis://127.0.0.1:{server.sockets[0].getsockname()[1]}/0"
    (tmp_path / "password").write_text("s3cret-from-file\n")
    registry = open_registry(url, str(tmp_path / "password"))
    try:
        with pytest.raises(RegistryUnavailable, match=f"^Redis at {url} refused our credentials") as raised:
            await registry.ping()
    finally:
        await registry.close()
        server.close()
    assert b"s3cret-from-file" in received[0] and "s3cret" not in str(raised.value)


@pytest.mark.unit
def test_a_redis_url_where_the_redis_client_is_missing_names_the_extra(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "redis", None)  # as if jupyter-vnc[redis] were not installed
    with pytest.raises(RegistryConfigError) as raised:
        check_registry_url("redis://db:6379/0")
    assert str(raised.value).startswith(
        "c.VNCSlurmSpawner.registry_url names a Redis server, but the Redis client is not installed where "
        "the hub runs ("
    )
    assert str(raised.value).endswith(
        "install jupyter-vnc[redis], or leave c.VNCSlurmSpawner.registry_url empty for a single hub"
    )
