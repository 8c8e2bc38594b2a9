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

The locks are flock(2) locks on files, so they hold across the workers' processes and are let go when
a worker dies. A module waiting for the whole bed closes a turnstile first, so that others cannot keep
it waiting for ever.
"""

from __future__ import annotations

import ast
import contextlib
import fcntl
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
def running_beside_others(users: set[str], alone: bool) -> Iterator[None]:
    """Hold what a module needs to itself while it runs (see the module's docstring)."""
    with contextlib.ExitStack() as held:
        if alone:
            held.enter_context(_flock("turnstile", fcntl.LOCK_EX))
            held.enter_context(_flock("bed", fcntl.LOCK_EX))
        else:
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


# Fixtures that reach the shared test bed (its Slurm, Redis or hub) or a test user's servers.
BED_FIXTURES = {
    "hub", "slurm", "redis_bed", "redis_url", "server_factory", "desktop_server", "users", "test_user",
    "kate_home", "spawner_settings", "dead_controller_conf",
}  # fmt: skip


def fixtures_used(tree: ast.Module) -> set[str]:
    """Every parameter name of the module's functions: the fixtures its tests and fixtures ask for."""
    return {
        a.arg
        for n in ast.walk(tree)
        if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)
        for a in n.args.args
    }


def needs_bed(path: Path) -> bool:
    """Whether a test module uses the shared test bed: a module that does not (unit tests, its own
    throwaway X server) runs beside anything, even a module that has the bed to itself."""
    tree = ast.parse(path.read_text())
    users, alone = declared(tree)
    return bool(users or alone or fixtures_used(tree) & BED_FIXTURES)


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


@contextlib.contextmanager
def service_lock(name: str) -> Iterator[None]:
    """One worker at a time checks, restarts or starts the devstack service ``name``."""
    with _flock(f"service-{name}", fcntl.LOCK_EX):
        yield


# The test bed's users for the tests, three to a set of modules that run beside the others' (the
# same list as devstack/lib.sh's JVNC_TEST_USERS; tests/test_suite_rules.py checks).
TEST_USERS = ("alice", "bob", "carol", "dave", "erin", "fred", "gina", "hugo", "iris", "jack", "kate", "liam")


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
