"""Which test modules may run at the same time, when pytest-xdist runs them on several workers.

Every worker uses the same test bed (one Slurm, one Redis, one hub), so what keeps two modules from
disturbing each other is declared in the module:

- ``pytestmark = pytest.mark.users("dave", "erin")``: the Unix/hub users whose servers, jobs, homes and
  processes the module's tests create, check and end. Two modules that name the same user never run at
  the same time (a lock per user), and tests/conftest.py's scheduler queues them on the same worker,
  so that no worker waits for another.
- ``pytest.mark.alone``: the module disturbs the whole test bed (stops slurmctld, Redis or the hub, sets
  the partition DOWN): it runs while no other module runs.
- neither: the module touches no user's state (unit tests, its own throwaway Xvnc) and runs beside any.

A module that needs none of the bed's services (Slurm, Redis, the hub: see ``needs_services``) runs
even while an ``alone`` module has them stopped; the others wait until every ``alone`` module is done.

The locks are flock(2) locks on files, so they hold across the workers' processes and are let go when
a worker dies. A module waiting for the whole bed closes a turnstile first, so that others cannot keep
it waiting for ever.
"""

from __future__ import annotations

import ast
import contextlib
import fcntl
import functools
import os
import time
from collections.abc import Iterator
from pathlib import Path

LOCKS = Path(os.environ.get("JVNC_TEST_LOCKS", "/run/lock/jupyter-vnc-tests"))


@contextlib.contextmanager
def _flock(name: str, mode: int) -> Iterator[None]:
    LOCKS.mkdir(parents=True, exist_ok=True)
    fd = os.open(LOCKS / f"{name}.lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, mode)
        yield
    finally:
        os.close(fd)  # closing lets the lock go


@contextlib.contextmanager
def running_beside_others(users: set[str], alone: bool, services: bool = True) -> Iterator[None]:
    """Hold what a module needs to itself while it runs (see the module's docstring); ``services``:
    it uses the bed's services, which no ``alone`` module may stop meanwhile."""
    with contextlib.ExitStack() as held:
        if alone:
            held.enter_context(_flock("turnstile", fcntl.LOCK_EX))
            held.enter_context(_flock("bed", fcntl.LOCK_EX))
        elif services:
            with _flock("turnstile", fcntl.LOCK_EX):
                held.enter_context(_flock("bed", fcntl.LOCK_SH))
        for user in sorted(users):  # one order everywhere: no two modules wait for each other
            held.enter_context(_flock(f"user-{user}", fcntl.LOCK_EX))
        yield


def declared(tree: ast.Module) -> tuple[set[str], bool]:
    """A test module's users(...) and alone marks, read from its source's ``pytestmark``."""
    users: set[str] = set()
    alone = False
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", "") == "pytestmark" for t in node.targets):
            for part in ast.walk(node.value):
                name = ast.unparse(part.func if isinstance(part, ast.Call) else part)
                if isinstance(part, ast.Call) and name.endswith("mark.users"):
                    users |= {a.value for a in part.args if isinstance(a, ast.Constant)}
                elif isinstance(part, ast.Attribute) and name.endswith("mark.alone"):
                    alone = True
    return users, alone


# Fixtures that reach the shared test bed's services (Slurm, Redis, the hub), which a module that has
# the bed to itself may stop; and those that reach only a test user's own servers, home and processes.
SERVICE_FIXTURES = {
    "hub",
    "slurm",
    "redis_bed",
    "redis_url",
    "spawner_settings",
    "dead_controller_conf",
    "test_user",
}
USER_FIXTURES = {"server_factory", "desktop_server", "users", "kate_home"}
BED_FIXTURES = SERVICE_FIXTURES | USER_FIXTURES


def fixtures_used(tree: ast.Module) -> set[str]:
    """The fixtures a module's tests and fixtures ask for: the parameters of its test functions and of
    its functions decorated as fixtures. A helper's own parameter (a stand-in passed as `hub`) is not a
    fixture, and neither is anything of a function nested inside one."""

    def is_fixture(node: ast.FunctionDef | ast.AsyncFunctionDef) -> bool:
        return any("fixture" in ast.unparse(d) for d in node.decorator_list)

    def outer(body: list[ast.stmt]) -> list[ast.FunctionDef | ast.AsyncFunctionDef]:
        found: list[ast.FunctionDef | ast.AsyncFunctionDef] = []
        for node in body:
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                found.append(node)
            elif isinstance(node, ast.ClassDef):
                found.extend(outer(node.body))
        return found

    return {
        a.arg
        for n in outer(tree.body)
        if n.name.startswith("test") or is_fixture(n)
        for a in n.args.args + n.args.kwonlyargs
    }


@functools.cache
def needs_services(path: Path) -> bool:
    """Whether a test module uses the bed's services (Slurm, Redis, the hub), which a module that has
    the bed to itself may stop: one that does not (unit tests, its own X server, a test user's own
    Jupyter servers) runs beside anything but a module of the same users."""
    tree = ast.parse(path.read_text())
    used = fixtures_used(tree)
    # Fixtures taken from another test module (test_guests's dave, from test_sharing) count as that
    # module's use of the services.
    borrowed = [
        node.module for node in tree.body
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("test_")
        and any(alias.name in used for alias in node.names)
    ]  # fmt: skip
    return (
        declared(tree)[1]
        or bool(used & SERVICE_FIXTURES)
        or any(needs_services(path.with_name(f"{module}.py")) for module in borrowed)
    )


def module_groups(modules: list[Path]) -> dict[str, str]:
    """Which worker queue each test module joins: modules that share a user, joined over every such
    chain, one queue (so that no worker waits for another's user lock); the others one each.
    Keyed by the path pytest's node ids begin with (tests/test_x.py)."""
    parent: dict[str, str] = {}

    def root(name: str) -> str:
        while parent.setdefault(name, name) != name:
            name = parent[name]
        return name

    marks = {f"{m.parent.name}/{m.name}": declared(ast.parse(m.read_text())) for m in modules}
    for users, alone in marks.values():
        first, *others = sorted(users) or [""]
        for other in [] if alone else others:  # the bed to itself: its users wait anyway
            parent[root(other)] = root(first)
    return {
        module: "alone" if alone else f"users of {root(min(users))}" if users else module
        for module, (users, alone) in marks.items()
    }


# About how long the slow modules take on the 2-core test machine, in seconds (each worker's timeline at
# the end of a run, test-artifacts/timeline.tsv; 2026-12-07). Only their order matters: the scheduler
# hands out the longest groups first, so that none of them is left to run alone at the end.
SECONDS = {
    "test_faults": 200, "test_cli": 150, "test_idle": 170, "test_spawner_limits": 155, "test_spawner": 130,
    "test_lab_e2e": 100, "test_guests": 85, "test_rfb_input": 80, "test_queue_wait": 75, "test_desktop": 70,
    "test_site_settings": 55, "test_offsite_hub": 50, "test_cross_user": 50, "test_sharing": 45,
    "test_docs_tryout": 45, "test_desktop_session": 45, "test_image": 45, "test_shared_environment": 45,
}  # fmt: skip


def expected_seconds(modules: list[str]) -> float:
    """Roughly how long these modules (tests/test_x.py) take, one after another."""
    return sum(SECONDS.get(Path(m).stem, 20) for m in modules)


@contextlib.contextmanager
def service_lock(name: str) -> Iterator[None]:
    """One worker at a time checks, restarts or starts the devstack service ``name``."""
    with _flock(f"service-{name}", fcntl.LOCK_EX):
        yield


# The test bed's users for the tests, up to three to a set of modules that run beside the others' (the
# same list as devstack/lib.sh's JVNC_TEST_USERS; tests/test_suite_rules.py checks).
TEST_USERS = (
    "alice", "bob", "carol", "dave", "erin", "fred", "gina", "hugo", "iris", "jack", "kate", "liam",
    "mona", "nick", "omar", "pete",
)  # fmt: skip


def _done_file(run: Path, module: str) -> Path:
    return run / ("done-" + module.replace("/", "-"))


def mark_done(run: Path, module: str) -> None:
    _done_file(run, module).touch()


def wait_for_done(run: Path, modules: set[str], timeout: float = 1800) -> None:
    """Until each of ``modules`` has run (mark_done), or ``timeout`` seconds: a worker that died
    with one must not stop the rest of the run for good."""
    deadline = time.monotonic() + timeout
    while not all(_done_file(run, m).exists() for m in modules) and time.monotonic() < deadline:
        time.sleep(0.5)
