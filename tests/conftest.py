"""Session fixtures: the real services of the test bed, started once by the project's own scripts.

A service that was already running (say, the demo stack) is used as it is and left running; one the
fixtures started is stopped at the end, so a test run leaves no daemon of ours behind.
"""

from __future__ import annotations

import os
import pwd
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DEVSTACK = ROOT / "devstack"
STATE = Path(os.environ.get("JVNC_STATE", "/var/lib/jupyter-vnc-dev"))

pytest_plugins = ["fixtures_apptainer", "fixtures_jupyter"]


def devstack(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(DEVSTACK / args[0]), *args[1:]], check=check, capture_output=True, text=True)


def _managed_service(name: str) -> Iterator[None]:
    if os.geteuid() != 0:
        pytest.skip(f"the {name} test bed needs root (it starts system daemons); run devstack/test as root")
    was_running = devstack(name, "status", check=False).returncode == 0
    started = devstack(name, "start", check=False)
    if started.returncode != 0:
        pytest.fail(f"devstack/{name} start failed:\n{started.stderr}")
    yield
    if not was_running:
        devstack(name, "stop")


@dataclass(frozen=True)
class SlurmBed:
    conf: Path
    partition: str = "vnc"


@pytest.fixture(scope="session")
def slurm() -> Iterator[SlurmBed]:
    """A running single-machine Slurm cluster (munged, slurmctld, slurmd per node)."""
    for _ in _managed_service("slurm"):
        yield SlurmBed(conf=Path(devstack("slurm", "conf").stdout.strip()))


@dataclass(frozen=True)
class RedisBed:
    url: str  # as the hub is configured: no credentials in it
    password_file: Path

    @property
    def password(self) -> str:
        return self.password_file.read_text().strip()

    def cli(self, *args: str) -> str:
        """redis-cli against this Redis, authenticated the way that keeps the password off argv."""
        port = self.url.rsplit(":", 1)[1].split("/", 1)[0]
        env = {**os.environ, "REDISCLI_AUTH": self.password}
        return subprocess.run(
            ["redis-cli", "-p", port, *args], env=env, capture_output=True, text=True
        ).stdout

    @property
    def auth_url(self) -> str:
        """The URL with the password in it, for the tests' own clients (never done in the product)."""
        return self.url.replace("redis://", f"redis://:{self.password}@", 1)


@pytest.fixture(scope="session")
def redis_bed() -> Iterator[RedisBed]:
    """The test bed's own redis-server, which requires a password like any production registry."""
    for _ in _managed_service("redis"):
        yield RedisBed(
            devstack("redis", "url").stdout.strip(), Path(devstack("redis", "password-file").stdout.strip())
        )


@pytest.fixture(scope="session")
def redis_url(redis_bed: RedisBed) -> str:
    """A URL of the test bed's Redis that the tests' own clients can use (password included)."""
    return redis_bed.auth_url


@pytest.fixture(scope="session")
def test_user() -> pwd.struct_passwd:
    """The non-root Unix user that jobs run as (created by devstack/install)."""
    try:
        return pwd.getpwnam("alice")
    except KeyError:
        pytest.skip("test user alice does not exist: run devstack/install")


@dataclass(frozen=True)
class HubBed:
    url: str  # the hub's origin (subdomain_host); not where users' servers are
    password: str  # the demo login's password (users alice and bob)


@pytest.fixture(scope="session")
def hub(slurm: SlurmBed, redis_url: str) -> Iterator[HubBed]:
    """The demo JupyterHub (with configurable-http-proxy) on http://localhost:8000, spawning into Slurm.
    Its users' servers have origins of their own (``hubclient.user_url``: http://alice.localhost:8000)."""
    for _ in _managed_service("hub"):
        port = os.environ.get("JVNC_HUB_PORT", "8000")
        yield HubBed(url=f"http://localhost:{port}", password=devstack("hub", "password").stdout.strip())


@pytest.fixture
def dead_controller_conf(slurm, tmp_path: Path) -> Path:
    """A copy of the cluster's config pointing at a port where no slurmctld listens."""
    text = slurm.conf.read_text().replace(
        "SlurmctldHost=localhost", "SlurmctldHost=localhost\nSlurmctldPort=6999"
    )
    conf = tmp_path / "slurm.conf"
    conf.write_text(text + "MessageTimeout=2\n")
    return conf


def pytest_terminal_summary(terminalreporter, exitstatus, config) -> None:  # type: ignore[no-untyped-def]
    """A green run that skipped something says so loudly: what was not tested here, and why."""
    skipped = terminalreporter.stats.get("skipped", [])
    if not skipped:
        return
    write = terminalreporter.write_line
    write("")
    write("=" * 30 + f" NOT TESTED ON THIS MACHINE: {len(skipped)} test(s) " + "=" * 30, red=True, bold=True)
    for report in skipped:
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        write(f"  {report.nodeid}: {reason.removeprefix('Skipped: ')}", yellow=True)
    write("A skip is no pass: run on a machine that has what these need (CI=true refuses Apptainer skips).")
