"""Share recipients on dave's running server (jupyter_vnc.guests): the desktop and nothing else, on every
route the server has, gone within seconds of a revocation, back at once when shared again, and bounded.

The route table is the one dave's single-user server in her Slurm job has: the same program, started
with that process's own environment (its extensions, its configuration), lists its routes; each is then
requested on the running server as erin (every HTTP method, and as a websocket) and as nobody.
"""

from __future__ import annotations

import asyncio
import json
import pwd
import re
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

import procs
import pytest
import requests
from hubclient import HubUser
from test_sharing import _rfb, _status, _up, dave, erin  # noqa: F401 - fixtures
from test_spawner import job_processes

# Whose servers, jobs and homes these tests use (tests/isolation.py: modules of other users run beside).
pytestmark = pytest.mark.users("dave", "erin")

CONTROL = "custom:jupyter-vnc:control!server=dave/"
METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "WEBSOCKET")
WEBSOCKET = {
    "Connection": "Upgrade",
    "Upgrade": "websocket",
    "Sec-WebSocket-Version": "13",
    "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
    "Sec-Fetch-Mode": "websocket",
}

ROUTES_SCRIPT = """
import json
from jupyterhub.singleuser.extension import JupyterHubSingleUser
from tornado.routing import Router

app = JupyterHubSingleUser.initialize_server(argv=[])

def walk(router):
    for rule in router.rules:
        if isinstance(rule.target, Router):
            yield from walk(rule.target)
        elif getattr(rule.matcher, "regex", None) is not None:
            target = rule.target
            name = getattr(target, "__module__", "") + "." + getattr(target, "__name__", str(target))
            yield rule.matcher.regex.pattern, name, bool(getattr(target, "jupyter_vnc_desktop_route", False))

print("ROUTES" + json.dumps(sorted(set(walk(app.web_app.default_router)))))
"""


def server_routes(job_id: str) -> list[tuple[str, str, bool]]:
    """(pattern, handler, desktop route) for every route of the single-user server in ``job_id``."""
    for pid in job_processes(job_id):
        cmdline = procs.argv(pid)
        if any("jupyterhub-singleuser" in part for part in cmdline):
            environ = dict(
                item.split("=", 1)
                for item in Path(f"/proc/{pid}/environ").read_bytes().decode().split("\0")
                if "=" in item
            )
            python = cmdline[0]  # the venv's interpreter, as the job started it
            break
    else:
        raise AssertionError(f"no jupyterhub-singleuser in job {job_id}")
    account = pwd.getpwnam("dave")
    # The same server, on a port of its own: it is only initialized, never started.
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    environ["JUPYTERHUB_SERVICE_URL"] = f"http://127.0.0.1:{port}/user/dave/"
    done = subprocess.run(
        [python, "-c", ROUTES_SCRIPT], env=environ, capture_output=True, text=True, timeout=120, cwd="/tmp",
        user=account.pw_uid, group=account.pw_gid, extra_groups=[],
    )  # fmt: skip
    found = [line for line in done.stdout.splitlines() if line.startswith("ROUTES")]
    assert found, done.stderr[-3000:]
    return [tuple(r) for r in json.loads(found[0][len("ROUTES") :])]  # type: ignore[misc]


def ask(method: str, url: str, headers: dict[str, str], body: str | None) -> tuple[int | None, bytes, str]:
    """(status, body, Location) of one request on a connection of its own (the proxy keeps none after a
    websocket attempt, and one the server left unanswered must not stall the next); None: no answer."""
    if method == "WEBSOCKET":
        method, headers = "GET", {**headers, **WEBSOCKET}
    for attempt in range(6):
        try:
            got = requests.request(method, url, headers=headers, data=body, allow_redirects=False, timeout=10)
        except requests.Timeout:
            return None, b"", ""
        # The proxy's own 503 ("socket hang up": it reused a connection the server had just closed)
        # is no answer of the server's; asked again a moment later, the server answers.
        if not hangs_up((got.status_code, got.content, "")):
            break
        time.sleep(0.2 * (attempt + 1))
    return got.status_code, got.content, got.headers.get("Location", "")


def hangs_up(got: tuple[int | None, bytes, str]) -> bool:
    """The answer is the proxy's own error page: the server closed the connection without one."""
    return got[0] == 503 and b"/hub/static/" in got[1]


def concrete(pattern: str) -> str | None:
    """A path the route's pattern matches: each group at its shortest, the first of alternatives, "1"
    for a digit, "x" for any other character; None where that does not match after all."""
    from re import _constants as c  # type: ignore[attr-defined]
    from re import _parser

    def sample(items: Any) -> str:
        out = []
        for op, arg in items:
            if op is c.LITERAL:
                out.append(chr(arg))
            elif op is c.NOT_LITERAL or op is c.ANY:
                out.append("x" if chr(arg if op is c.NOT_LITERAL else 0) != "x" else "y")
            elif op is c.IN:
                first_op, first = arg[0]
                if first_op is c.NEGATE:
                    out.append("x")
                elif first_op is c.LITERAL:
                    out.append(chr(first))
                elif first_op is c.RANGE:
                    out.append(chr(first[0]))
                else:  # a category: \\d, \\w
                    out.append("1" if "DIGIT" in str(first) else "x")
            elif op is c.SUBPATTERN:
                out.append(sample(arg[-1]))
            elif op is c.BRANCH:
                out.append(sample(arg[1][0]))
            elif op in (c.MAX_REPEAT, c.MIN_REPEAT):
                low, _, body = arg
                out.append(sample(body) * max(low, 0))
            # AT (anchors) and the rest add nothing
        return "".join(out)

    path = sample(_parser.parse(pattern))
    return path if re.fullmatch(pattern.lstrip("^"), path) else None


async def test_a_guest_gets_403_on_every_route_but_the_desktops(dave: HubUser, erin: HubUser) -> None:  # noqa: F811
    job_id, x = _up(dave)
    x.close()
    assert dave.api("POST", "/shares/dave/", json={"user": "erin"}).status_code == 200
    token = erin.shared_config("dave")["token"]
    guest = {"Authorization": f"token {token}"}
    base = erin.server_url(owner="dave")  # http://dave.localhost:PORT/user/dave/
    prefix = "/user/dave/"
    settings_dir = Path("/home/dave/.jupyter/lab")
    before = sorted(str(p) for p in settings_dir.rglob("*")) if settings_dir.exists() else []

    routes = server_routes(job_id)
    walked, unfilled, leaks, hung_up = 0, [], [], []
    for pattern, handler, desktop in routes:
        path = concrete(pattern)
        path = prefix if path == prefix.rstrip("/") else path
        if path is None or not path.startswith(prefix):
            unfilled.append(pattern)
            continue
        if desktop:
            continue  # the desktop's own routes apply the guest's role (test_sharing)
        url = base + path[len(prefix) :]
        for method in METHODS:
            body = None if method in ("GET", "DELETE", "WEBSOCKET") else "{}"
            got = ask(method, url, guest, body)
            walked += 1
            if got[0] == 403:
                continue
            if path == prefix and method == "GET" and got[2].endswith("vnc/"):
                continue  # the link a share gives: on to the desktop
            if hangs_up(got):
                # The server hung up without an answer. jupyter_server 2.21 routes robots.txt and
                # favicon.ico to a StaticFileHandler without its path: the handler cannot be made,
                # and tornado drops the connection of whoever asks. The same for a guest as for no
                # login at all (the proxy's error pages differ only by their xsrf token), or a finding.
                if not hangs_up(ask(method, url, {}, body)):
                    leaks.append(f"{method} {path} ({handler}): hangs up on a guest only")
                hung_up.append((f"{method} {path}", handler))
                continue
            # Else only what anyone gets (public static files): no more than no login at all.
            if ask(method, url, {}, body)[:2] != got[:2] or got[0] is None:
                leaks.append(f"{method} {path} ({handler}): {got[0] or 'no answer in 10 s'} {got[1][:80]!r}")
    print(
        f"walked {walked} requests over {len(routes)} routes; no sample path for {len(unfilled)}: {unfilled};"
        f" the server hung up on {len(hung_up)}: {[request for request, _ in hung_up]}"
    )
    assert leaks == [], "\n".join(leaks)
    # Only that upstream route may hang up; a server that hangs up on anything else is broken.
    assert {handler for _, handler in hung_up} <= {"jupyter_server.base.handlers.PublicStaticFileHandler"}
    assert walked > 200  # the walk reached the server's routes, Lab's included
    assert any("jupyterlab" in handler or "jupyterlab_server" in handler for _, handler, _ in routes)

    # What the review did with a guest's access: write dave's Lab settings and workspaces. Refused,
    # and nothing was written.
    for method, path in (("PUT", "lab/api/settings/@jupyterlab/shortcuts-extension:shortcuts"),
                         ("PUT", "lab/api/workspaces/default"), ("DELETE", "lab/api/workspaces/default"),
                         ("GET", "lab"), ("GET", "api/me"), ("GET", "lab/api/extensions")):  # fmt: skip
        got = erin.http.request(method, base + path, headers=guest, data='{"raw": "{}"}', timeout=15)
        assert got.status_code == 403, (method, path, got.status_code)
    after = sorted(str(p) for p in settings_dir.rglob("*")) if settings_dir.exists() else []
    assert after == before
    # The desktop is still erin's to watch, and dave's server all hers.
    assert _status(erin, token)[0] == 200
    assert dave.server_api("lab/api/settings").status_code == 200


async def test_revocation_ends_every_route_in_two_seconds_and_a_new_share_works_at_once(
    dave: HubUser,  # noqa: F811
    erin: HubUser,  # noqa: F811
) -> None:
    _, x = _up(dave)
    x.close()
    assert dave.api("POST", "/shares/dave/", json={"user": "erin"}).status_code == 200
    token = erin.shared_config("dave")["token"]
    guest = {"Authorization": f"token {token}"}
    base = erin.server_url(owner="dave")
    routes = ("vnc/", "vnc/api/config", "vnc/api/status")
    for path in routes:  # warm the server's token cache, as a guest's open page does
        assert erin.http.get(base + path, headers=guest, timeout=15).status_code == 200, path
    _, conn = await _rfb(erin, token)

    assert dave.api("DELETE", "/shares/dave/").status_code == 204
    revoked = time.monotonic()
    ended: dict[str, float] = {}
    while len(ended) < len(routes):
        for path in routes:
            if path not in ended and erin.http.get(base + path, headers=guest, timeout=15).status_code == 403:
                ended[path] = time.monotonic() - revoked
        assert time.monotonic() - revoked < 10, f"still open after 10 s: {set(routes) - set(ended)}"
        await asyncio.sleep(0.05)
    message = await asyncio.wait_for(conn.read_message(), 10)  # type: ignore[attr-defined]
    while message is not None:
        message = await asyncio.wait_for(conn.read_message(), 10)  # type: ignore[attr-defined]
    ended["websocket"] = time.monotonic() - revoked
    print("access ended after revocation (s):", {k: round(v, 2) for k, v in ended.items()})
    assert conn.close_code == 4403  # type: ignore[attr-defined]
    assert max(ended.values()) < 2.5, ended

    # Shared again: erin is back at once, not after a cached refusal runs out.
    assert dave.api("POST", "/shares/dave/", json={"user": "erin"}).status_code == 200
    again = time.monotonic()
    while erin.http.get(base + "vnc/api/status", headers=guest, timeout=15).status_code != 200:
        assert time.monotonic() - again < 2.5, "the new share did not reach the server in 2.5 s"
        await asyncio.sleep(0.05)
    print(f"shared again: back after {time.monotonic() - again:.2f} s")
    _, conn = await _rfb(erin, token)
    conn.close()  # type: ignore[attr-defined]


async def test_a_guest_holds_at_most_four_connections_and_the_owner_any(dave: HubUser, erin: HubUser) -> None:  # noqa: F811
    _, x = _up(dave)
    x.close()
    assert dave.api("POST", "/shares/dave/", json={"user": "erin"}).status_code == 200
    token = erin.shared_config("dave")["token"]
    held = [await _rfb(erin, token) for _ in range(4)]
    with pytest.raises(Exception, match="429"):
        await _rfb(erin, token)
    alice_token = dave.viewer_config()["token"]
    owners = [await _rfb(dave, alice_token) for _ in range(6)]  # the owner has no limit
    held.pop()[1].close()  # type: ignore[attr-defined]
    deadline = time.monotonic() + 10
    while True:  # the server sees the close a moment later
        try:
            held.append(await _rfb(erin, token))
            break
        except Exception as e:
            assert "429" in str(e) and time.monotonic() < deadline, e
            await asyncio.sleep(0.2)
    for _, conn in held + owners:
        conn.close()  # type: ignore[attr-defined]
