"""Session fixtures: the real services of the test bed, started once by the project's own scripts.

A service that was already running (say, the demo stack) is used as it is and left running; one the
fixtures started is stopped at the end, so a test run leaves no daemon of ours behind.
"""

from __future__ import annotations

import contextlib
import fnmatch
import functools
import json
import os
import pwd
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import isolation
import pytest

ROOT = Path(__file__).resolve().parents[1]
DEVSTACK = ROOT / "devstack"
STATE = Path(os.environ.get("JVNC_STATE", "/var/lib/jupyter-vnc-dev"))

pytest_plugins = ["fixtures_apptainer", "fixtures_jupyter"]


def devstack(*args: str, check: bool = True, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    """A devstack script; one that runs past ``timeout`` (a service that never comes up) fails the
    fixture or test that called it instead of hanging the run."""
    return subprocess.run(
        [str(DEVSTACK / args[0]), *args[1:]], check=check, capture_output=True, text=True, timeout=timeout
    )


# Services that run this checkout's Python code (and devstack's hub configurations), and where each
# records which code it runs.
_CODE_STAMPS = {"hub": STATE / "hub" / "code-stamp", "offsite-hub": STATE / "offsite-hub" / "code-stamp"}


# Shared by pytest-xdist's workers and the process that runs them, in a folder of this run's own
# (JVNC_TEST_RUN, made by that process): which code the run's services ran, for the summary ("SERVICE
# CHECKOUT HASH (how)" lines), and the services the tests started, in order, stopped at the very end.
def _run_file(name: str) -> Path:
    return Path(os.environ["JVNC_TEST_RUN"]) / name


def _runs_other_code(name: str) -> bool:
    """A running hub started from other code than this checkout's (the demo's, from before an edit):
    testing it would test the old code. Its record (devstack's code_stamp) against the checkout's."""
    if name not in _CODE_STAMPS:
        return False
    mine = devstack("code-stamp", str(ROOT)).stdout.strip()
    try:
        recorded = _CODE_STAMPS[name].read_text().strip()
    except OSError:
        recorded = "none"
    return recorded != mine


@functools.cache
def venv_imports_this_checkout() -> None:
    """The hub, the servers in the desktops' jobs and the servers the tests start import jupyter_vnc
    through the venv, from any directory: a venv whose editable install points at another checkout (a
    fresh clone's CI run installs itself) would have every test exercise that other code, or code
    that is gone. Fails the test that needs them, saying so, instead."""
    found = subprocess.run(
        [sys.executable, "-c", "import jupyter_vnc, os; print(os.path.dirname(jupyter_vnc.__file__))"],
        cwd="/", capture_output=True, text=True, timeout=60,
        env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"},
    )  # fmt: skip
    where = found.stdout.strip() or f"nowhere ({(found.stderr.strip().splitlines() or ['no output'])[-1]})"
    if where != str(ROOT / "jupyter_vnc"):
        pytest.fail(
            f"the venv ({sys.prefix}) imports jupyter_vnc from {where}, not this checkout ({ROOT}): "
            f"run {DEVSTACK / 'install'} (devstack/test does)",
            pytrace=False,
        )


def _append(path: Path, line: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as f:
        f.write(line + "\n")  # one short write: whole lines even with several workers appending


def _managed_service(name: str) -> Iterator[None]:
    """A devstack service, started (or restarted on this checkout's code) by the first worker that
    needs it, the others waiting on its lock; stopped at the end of the run if the tests started it."""
    if os.geteuid() != 0:
        pytest.skip(f"the {name} test bed needs root (it starts system daemons); run devstack/test as root")
    venv_imports_this_checkout()
    with isolation.service_lock(name):
        was_running = devstack(name, "status", check=False).returncode == 0
        how = "already running"
        if was_running and _runs_other_code(name):
            devstack(name, "stop")  # restarted on this checkout's code (and left running, as it was found)
            how = "restarted: it ran other code than this checkout's"
        elif not was_running:
            how = "started by the tests"
            _append(_run_file("started-by-tests"), name)
        started = devstack(name, "start", check=False)
        if started.returncode != 0:
            pytest.fail(f"devstack/{name} start failed:\n{started.stderr}")
        if name in _CODE_STAMPS:
            code = _CODE_STAMPS[name].read_text().strip() if _CODE_STAMPS[name].exists() else "unknown"
            _append(_run_file("service-code"), f"{name} {code} ({how})")
            if _runs_other_code(name):
                pytest.fail(f"devstack/{name} runs {code}, not this checkout ({ROOT}): run devstack/install")
    yield


def _declared(module: pytest.Module | pytest.Item) -> tuple[set[str], bool]:
    """A module's ``users(...)`` and ``alone`` marks (tests/isolation.py)."""
    users = {name for mark in module.iter_markers("users") for name in mark.args}
    return users, any(True for _ in module.iter_markers("alone"))


@pytest.hookimpl(optionalhook=True)  # devstack/floors runs without pytest-xdist
def pytest_xdist_make_scheduler(config: pytest.Config, log: object) -> object:
    """pytest-xdist's queues, one per group of modules (tests/isolation.py's module_groups): a worker
    takes a whole group and runs its modules one after another. (xdist's own ``loadgroup`` does not
    work with pytest 9, whose node ids xdist can no longer rename.)"""
    from xdist.scheduler import LoadScopeScheduling

    modules = sorted((ROOT / "tests").glob("test_*.py"))
    groups = isolation.module_groups(modules)
    members: dict[str, list[str]] = {}
    for module, group in groups.items():
        members.setdefault(group, []).append(module)
    bed_free = {g for g in groups.values()} - {
        groups[f"tests/{m.name}"] for m in modules if isolation.needs_services(m)
    }

    class ByModuleGroup(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            module = nodeid.split("::", 1)[0]
            return groups.get(module, module)

        def _reschedule(self, node: Any) -> None:
            # xdist hands a worker its next group while two of its tests are still to run. A test here
            # can take a minute or more, and a group handed out that early may wait behind it while
            # another worker is free. A worker holds back its last test until it knows its next one
            # (pytest's teardown needs it), so one test left is as late as a group can be handed.
            if node.shutting_down:
                return
            if not self.workqueue:
                node.shutdown()
            elif self._pending_of(self.assigned_work[node]) <= 1:
                self._assign_work_unit(node)

        def _assign_work_unit(self, node: Any) -> None:
            # The modules that need the whole bed first, while nothing else has started (later, each
            # would hold every other worker up until the longest module then running ended); beside
            # them, the modules that do not use the bed at all; then the rest, the longest first.
            rest = [s for s in self.workqueue if s not in bed_free and s != "alone"]
            rest.sort(key=lambda scope: isolation.expected_seconds(members.get(scope, [scope])))
            for scope in rest + [s for s in self.workqueue if s in bed_free] + ["alone"]:
                if scope in self.workqueue:
                    self.workqueue.move_to_end(scope, last=False)
            super()._assign_work_unit(node)

    return ByModuleGroup(config, log)


# The modules of this run that need the whole bed (their node ids' files), as a worker collected them.
ALONE_MODULES: set[str] = set()


def pytest_collection_finish(session: pytest.Session) -> None:
    ALONE_MODULES.update(item.nodeid.split("::", 1)[0] for item in session.items if _declared(item)[1])


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    """With several workers, a test that uses the bed's services waits, before any of its fixtures
    (the session's hub, Slurm and Redis among them), until every module that needs the whole bed is
    done: those run first, one after another (see pytest_xdist_make_scheduler), and stop and restart
    the services a fixture here would find half-way."""
    alone = _declared(item)[1]
    if _is_worker(item.config) and ALONE_MODULES and not alone and isolation.needs_services(item.path):
        isolation.wait_for_done(Path(os.environ["JVNC_TEST_RUN"]), ALONE_MODULES)


@pytest.fixture(scope="module", autouse=True)
def _beside_other_modules(request: pytest.FixtureRequest) -> Iterator[None]:
    """Wait until no other worker runs a module this one must not run beside (tests/isolation.py)."""
    selected = [item for item in request.session.items if item.path == request.node.path]
    if selected and all(item.get_closest_marker("unit") for item in selected):
        yield  # unit tests only (-m unit: devstack/floors): no user's state, no service
        return
    users, alone = _declared(request.node)
    module = request.node.nodeid.split("::", 1)[0]
    services = isolation.needs_services(request.node.path)
    try:
        with isolation.running_beside_others(users, alone, services):
            yield
    finally:
        if alone:
            isolation.mark_done(Path(os.environ["JVNC_TEST_RUN"]), module)


def _is_worker(config: pytest.Config) -> bool:
    return hasattr(config, "workerinput")  # pytest-xdist's mark of a worker process


def pytest_configure(config: pytest.Config) -> None:
    if not _is_worker(config):  # the workers, started after this, inherit it
        isolation.LOCKS.mkdir(parents=True, exist_ok=True)
        os.environ["JVNC_TEST_RUN"] = tempfile.mkdtemp(prefix="run-", dir=isolation.LOCKS)
        # Settings a run that was killed left for its users' spawns (spawner_settings) go first. Not
        # in a run of the unit tests only (devstack/floors, beside the whole run): it spawns nothing,
        # and the settings may be those of the whole run's tests.
        if config.getoption("markexpr", "") != "unit":
            for left in (STATE / "hub" / "per-user").glob("*.json"):
                left.unlink()


def pytest_unconfigure(config: pytest.Config) -> None:
    if not _is_worker(config):
        shutil.rmtree(os.environ.pop("JVNC_TEST_RUN", ""), ignore_errors=True)


def _stop_what_the_tests_started() -> None:
    try:
        started = _run_file("started-by-tests").read_text().split()
    except OSError:
        return
    for name in reversed(started):  # the hub before the Slurm and Redis it uses
        devstack(name, "stop", check=False)


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
def spawner_settings(hub: HubBed) -> Iterator[Callable[[str, dict], None]]:
    """``spawner_settings(user, {"idle_pause_minutes": 0.25})``: the demo hub's spawns of that test
    user get these VNCSlurmSpawner settings (devstack/jupyterhub_config.py reads them at each spawn),
    the other users' are untouched, so the test runs beside others. Removed at the test's end."""
    folder = STATE / "hub" / "per-user"
    written: list[Path] = []

    def configure(user: str, traits: dict) -> None:
        folder.mkdir(exist_ok=True)
        shutil.chown(folder, "jvnc-hub", "jvnc-hub")
        path = folder / f"{user}.json"
        path.write_text(json.dumps(traits))
        shutil.chown(path, "jvnc-hub", "jvnc-hub")
        written.append(path)

    yield configure
    for path in written:
        path.unlink(missing_ok=True)


@pytest.fixture
def dead_controller_conf(slurm, tmp_path: Path) -> Path:
    """A copy of the cluster's config pointing at a port where no slurmctld listens."""
    text = slurm.conf.read_text().replace(
        "SlurmctldHost=localhost", "SlurmctldHost=localhost\nSlurmctldPort=6999"
    )
    conf = tmp_path / "slurm.conf"
    conf.write_text(text + "MessageTimeout=2\n")
    return conf


# The only tests that may skip under CI=true, and why: what no machine of this test bed can have. Any
# other skip there fails the run (a missing Chromium, xclip or VirtualGL is a broken install, not a pass).
SKIPS_ALLOWED_IN_CI = {
    "tests/test_gate_xvnc.py::*[[]turbovnc*": "TurboVNC: no archive this machine reaches ships it (Debian has"
    " TigerVNC, which the same cases run against); they run where /opt/TurboVNC is installed",
}


def _in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in {"1", "true", "yes"}


def _skip_reason(report: pytest.TestReport) -> str:
    reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
    return reason.removeprefix("Skipped: ")


def unallowed_skips(reports: list[pytest.TestReport]) -> list[pytest.TestReport]:
    return [r for r in reports if not any(fnmatch.fnmatchcase(r.nodeid, p) for p in SKIPS_ALLOWED_IN_CI)]


# Each worker's modules and when they ran (first phase start, last phase stop), for the run's timeline.
TIMELINE: dict[tuple[str, str], list[float]] = {}


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    node = getattr(report, "node", None)  # the worker that ran it (pytest-xdist's controller side)
    worker = node.gateway.id if node is not None else "main"
    span = TIMELINE.setdefault((worker, report.nodeid.split("::", 1)[0]), [report.start, report.stop])
    span[0], span[1] = min(span[0], report.start), max(span[1], report.stop)


def _write_timeline(write: Callable[[str], None]) -> None:
    """Per worker, its modules in the order they ran with their seconds, and its idle time: where the
    run's wall time went (test-artifacts/timeline.tsv holds the spans)."""
    if not TIMELINE or {w for w, _ in TIMELINE} == {"main"}:  # one process: pytest's own report says it
        return
    begin = min(s for s, _ in TIMELINE.values())
    end = max(e for _, e in TIMELINE.values())
    rows = sorted((w, s - begin, e - begin, m) for (w, m), (s, e) in TIMELINE.items())
    with contextlib.suppress(OSError):
        (ROOT / "test-artifacts").mkdir(exist_ok=True)
        (ROOT / "test-artifacts" / "timeline.tsv").write_text(
            "".join(f"{w}\t{s:.1f}\t{e:.1f}\t{m}\n" for w, s, e, m in rows)
        )
    write(f"timeline ({end - begin:.0f} s of tests):")
    for worker in sorted({w for w, *_ in rows}):
        mine = [(s, e, m) for w, s, e, m in rows if w == worker]
        busy = sum(e - s for s, e, _ in mine)
        spans = ", ".join(
            f"{m.removeprefix('tests/test_').removesuffix('.py')} {e - s:.0f}" for s, e, m in mine
        )
        idle = end - begin - busy
        write(f"  {worker}: in modules {busy:.0f} s (waits for locks too), idle {idle:.0f} s: {spans}")


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if _is_worker(session.config):
        return
    _stop_what_the_tests_started()
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    skipped = reporter.stats.get("skipped", []) if reporter else []
    if _in_ci() and unallowed_skips(skipped) and exitstatus == 0:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter, exitstatus, config) -> None:  # type: ignore[no-untyped-def]
    """Which code the run's hubs ran; and a run that skipped something says so loudly: what was not
    tested here, and why. Under CI=true a skip outside SKIPS_ALLOWED_IN_CI fails the run."""
    with contextlib.suppress(OSError):
        for line in dict.fromkeys(_run_file("service-code").read_text().splitlines()):
            service, code = line.split(" ", 1)
            terminalreporter.write_line(f"{service} ran jupyter_vnc from {code}")
    _write_timeline(terminalreporter.write_line)
    skipped = terminalreporter.stats.get("skipped", [])
    if not skipped:
        return
    write = terminalreporter.write_line
    write("")
    write("=" * 30 + f" NOT TESTED ON THIS MACHINE: {len(skipped)} test(s) " + "=" * 30, red=True, bold=True)
    for report in skipped:
        write(f"  {report.nodeid}: {_skip_reason(report)}", yellow=True)
    refused = unallowed_skips(skipped)
    if _in_ci() and refused:
        write(
            f"CI=true: {len(refused)} skip(s) outside tests/conftest.py's SKIPS_ALLOWED_IN_CI fail this run:",
            red=True, bold=True,
        )  # fmt: skip
        for report in refused:
            write(f"  {report.nodeid}", red=True)
    else:
        write("A skip is no pass: run on a machine that has what these need.")
