"""Rules the test suite keeps so that it cannot hang: every network wait in test code has a time limit.

pytest-timeout bounds each test's call (pyproject.toml: ``timeout``); these rules bound what it does
not see (fixtures) and turn a hang into a failure that names the wait. Read from the source with
``ast``: a new HTTP request, websocket receive or socket read without a limit fails here, with its
file and line.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

TESTS = Path(__file__).resolve().parent
HTTP_VERBS = {"get", "post", "put", "delete", "patch", "head", "options", "request"}
# Receivers of HTTP verbs that need timeout=: the requests module and plain sessions. HubUser.http is a
# hubclient.TimedSession, which gives every request a limit itself (checked below).
HTTP_CLIENTS = {"requests", "session"}
# Reads that wait for a peer: each must be the awaited argument of asyncio.wait_for(...).
ASYNC_READS = {"read_message", "readexactly", "readuntil", "readline", "receive"}


def _name(node: ast.AST) -> str:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return f"{_name(node.value)}.{node.attr}"
    return ""


def _has_keyword(call: ast.Call, *names: str) -> bool:
    return any(k.arg in names for k in call.keywords)


def _violations(path: Path) -> list[str]:
    """Waits without a limit in ``path``; a line that says ``# bounded by ...`` (where the limit is
    applied further out) is exempt."""
    text = path.read_text()
    exempt = {n for n, line in enumerate(text.splitlines(), 1) if "# bounded by " in line}
    tree = ast.parse(text, str(path))
    guarded: set[int] = set()  # ids of calls that are the first argument of asyncio.wait_for(...)
    awaited: set[int] = set()  # ids of calls awaited directly (a read that waits for a peer)
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and _name(node.func) in {"asyncio.wait_for", "wait_for"} and node.args:
            guarded.add(id(node.args[0]))
        if isinstance(node, ast.Await) and isinstance(node.value, ast.Call):
            awaited.add(id(node.value))
    found = []
    for func in ast.walk(tree):
        if not isinstance(func, ast.FunctionDef | ast.AsyncFunctionDef):
            continue
        calls = [n for n in ast.walk(func) if isinstance(n, ast.Call)]
        sets_timeout = any(isinstance(c.func, ast.Attribute) and c.func.attr == "settimeout" for c in calls)
        timed_request = any(  # tornado's HTTPRequest(..., request_timeout=...) handed to websocket_connect
            _name(c.func).endswith("HTTPRequest") and _has_keyword(c, "connect_timeout", "request_timeout")
            for c in calls
        )
        for call in calls:
            where = f"{path.name}:{call.lineno}"
            attr = call.func.attr if isinstance(call.func, ast.Attribute) else _name(call.func)
            receiver = _name(call.func.value) if isinstance(call.func, ast.Attribute) else ""
            if attr in HTTP_VERBS and receiver.split(".")[-1] in HTTP_CLIENTS:
                if not _has_keyword(call, "timeout"):
                    found.append(f"{where}: {receiver}.{attr}() without timeout=")
            elif attr == "urlopen" and not (_has_keyword(call, "timeout") or len(call.args) > 2):
                found.append(f"{where}: urlopen without timeout=")
            elif attr == "websocket_connect" and not (_has_keyword(call, "connect_timeout") or timed_request):
                found.append(f"{where}: websocket_connect without connect_timeout=")
            elif attr in ASYNC_READS and id(call) in awaited and id(call) not in guarded:
                found.append(f"{where}: .{attr}() outside asyncio.wait_for(..., limit)")
            elif attr == "recv" and not sets_timeout:
                found.append(f"{where}: socket .recv() in a function that sets no timeout (settimeout)")
    found = [v for v in found if int(v.split(":")[1]) not in exempt]
    return sorted(found, key=lambda v: int(v.split(":")[1]))


def test_the_rules_find_a_wait_without_a_limit(tmp_path: Path) -> None:
    bad = tmp_path / "test_bad.py"
    bad.write_text(
        "import asyncio, requests, socket\n"
        "async def f(conn, sock, s):\n"
        "    requests.get('http://x')\n"
        "    await conn.read_message()\n"
        "    sock.recv(1)\n"
        "    s.session.post('http://x')\n"
        "async def g(conn):\n"
        "    await asyncio.wait_for(conn.read_message(), 5)\n"
        "    requests.get('http://x', timeout=5)\n"
        "    await conn.read_message()  # bounded by the caller's wait_for\n"
    )
    assert [v.split(": ", 1)[0] for v in _violations(bad)] == [
        "test_bad.py:3", "test_bad.py:4", "test_bad.py:5", "test_bad.py:6",
    ]  # fmt: skip


def test_the_hub_clients_session_limits_every_request() -> None:
    from hubclient import TimedSession

    sent: dict = {}

    class Recorder(TimedSession):
        def send(self, request, **kwargs):  # type: ignore[no-untyped-def, override]
            sent.update(kwargs)
            raise ConnectionError("recorded")

    with pytest.raises(ConnectionError):
        Recorder().get("http://127.0.0.1:9/")
    assert sent["timeout"] == TimedSession.DEFAULT_TIMEOUT


def test_every_network_wait_in_the_tests_has_a_limit() -> None:
    # testkit/: the tests' helpers (rfb.py, their RFB client).
    files = sorted({*TESTS.glob("*.py"), *(TESTS.parent / "benchmarks").glob("*.py")})
    files += sorted((TESTS.parent / "testkit").glob("*.py"))
    assert TESTS.parent / "testkit" / "rfb.py" in files
    found = [v for path in files for v in _violations(path)]
    assert not found, "waits without a time limit:\n" + "\n".join(found)


def test_a_test_that_hangs_fails_with_its_stack(tmp_path: Path) -> None:
    """pytest-timeout is installed and on: a stuck test ends in failure, printing where it hung."""
    import subprocess
    import sys

    (tmp_path / "test_stuck.py").write_text("import time\n\ndef test_stuck():\n    time.sleep(60)\n")
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "-o", "timeout=2", str(tmp_path)],
        capture_output=True, text=True, timeout=50, cwd=tmp_path,
    )  # fmt: skip
    assert run.returncode == 1, run.stdout
    assert "Timeout" in run.stdout and "time.sleep(60)" in run.stdout, run.stdout


def _undeclared(path: Path) -> set[str]:
    """Test users that a module using the bed names without declaring them."""
    from isolation import BED_FIXTURES, TEST_USERS, declared, fixtures_used

    tree = ast.parse(path.read_text())
    named = {n.value for n in ast.walk(tree) if isinstance(n, ast.Constant) and n.value in TEST_USERS}
    return named - declared(tree)[0] if fixtures_used(tree) & BED_FIXTURES else set()


def test_the_rule_finds_a_user_a_module_does_not_declare(tmp_path: Path) -> None:
    module = tmp_path / "test_x.py"
    module.write_text('import pytest\npytestmark = pytest.mark.users("dave")\n'
                      'def test_a(hub):\n    spawn("dave")\n    spawn("erin")\n')  # fmt: skip
    assert _undeclared(module) == {"erin"}
    module.write_text('def test_a(hub):\n    spawn("dave")\n')
    assert _undeclared(module) == {"dave"}
    module.write_text('def test_a():\n    parse("dave")\n')  # no bed: a name in a unit test
    assert _undeclared(module) == set()


def test_every_module_on_the_bed_declares_the_users_it_uses() -> None:
    """tests/isolation.py runs modules side by side unless they declare the same user: a module that
    uses the test bed and names a user it does not declare could disturb another worker's test."""
    wrong = [f"{p.name}: {sorted(_undeclared(p))}" for p in sorted(TESTS.glob("test_*.py")) if _undeclared(p)]
    assert not wrong, "undeclared users (add them to the module's pytest.mark.users):\n" + "\n".join(wrong)


def test_the_test_users_are_the_test_beds() -> None:
    from isolation import TEST_USERS

    lib = (TESTS.parent / "devstack" / "lib.sh").read_text()
    default = lib.split('JVNC_TEST_USERS=${JVNC_TEST_USERS:-"', 1)[1].split('"', 1)[0]
    assert tuple(default.split()) == TEST_USERS


def test_modules_that_share_a_user_share_a_queue(tmp_path: Path) -> None:
    from isolation import module_groups

    tests = tmp_path / "tests"
    tests.mkdir()
    for name, mark in {
        "a": 'pytest.mark.users("dave", "erin")', "b": 'pytest.mark.users("erin")',
        "c": '[pytest.mark.users("fred", "dave"), pytest.mark.alone]', "d": 'pytest.mark.users("gina")',
        "e": "pytest.mark.unit", "f": "pytest.mark.alone",
    }.items():  # fmt: skip
        (tests / f"test_{name}.py").write_text(f"import pytest\npytestmark = {mark}\n")
    groups = module_groups(sorted(tests.glob("test_*.py")))
    assert groups["tests/test_a.py"] == groups["tests/test_b.py"]
    assert len({groups["tests/test_a.py"], groups["tests/test_d.py"], groups["tests/test_e.py"]}) == 3
    assert groups["tests/test_c.py"] == groups["tests/test_f.py"] == "alone"  # whatever their users
