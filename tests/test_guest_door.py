"""The server's door for share recipients (jupyter_vnc.guests), without a hub: who counts as a
recipient, what the door answers them on a route that is not the desktop's, and how long a
recipient's token stays cached.

tests/test_guests.py walks every route of a real single-user server as a recipient; these tests hold
each rule on its own, on a small tornado application whose handlers ask the identity provider who is
calling, as every Jupyter handler does (``JupyterHandler.prepare``).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import AsyncIterator
from typing import Any, ClassVar

import pytest
from jupyter_server.auth import Authorizer, IdentityProvider
from tornado import web
from tornado.httpclient import AsyncHTTPClient, HTTPResponse
from tornado.httpserver import HTTPServer
from tornado.netutil import bind_sockets
from traitlets.config import LoggingConfigurable

from jupyter_vnc.guests import GuestAwareCache, GuestsAtTheDesktopOnly, hold_guests_at_the_desktop, is_guest

# No service: also run against the lowest declared dependency versions (devstack/floors).
pytestmark = pytest.mark.unit

# JupyterHub's scope to start and stop alice's default server (``servers`` with a ``server=`` filter):
# hub admins hold it, a share that grants only access does not.
MANAGE = "servers!server=alice/"
ACCESS = "access:servers!server=alice/"
PEOPLE = {
    "alice": {"name": "alice", "scopes": [ACCESS]},  # the owner
    "root": {"name": "root", "scopes": [ACCESS, MANAGE]},  # a hub admin
    "bob": {"name": "bob", "scopes": [ACCESS]},  # a share recipient
}


@pytest.fixture(autouse=True)
def owner(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JUPYTERHUB_USER", "alice")
    monkeypatch.setenv("JUPYTERHUB_SERVER_NAME", "")


class HubAuth:
    """What the door asks of JupyterHub's HubAuth."""

    cache_max_age = 300

    def __init__(self) -> None:
        self.cache: Any = {}

    def check_scopes(self, required: set[str], model: dict[str, Any]) -> set[str]:
        return set(required) & set(model.get("scopes", []))


@pytest.mark.parametrize(
    ("who", "guest"), [("alice", False), ("root", False), ("bob", True), (None, False)]
)  # fmt: skip
def test_a_guest_is_anyone_but_the_owner_who_may_not_start_and_stop_the_server(
    who: str | None, guest: bool
) -> None:
    assert is_guest(PEOPLE[who] if who else None, HubAuth()) is guest


# --- the door --------------------------------------------------------------------------------------


class User:
    def __init__(self, name: str) -> None:
        self.username = name
        self.hub_user = PEOPLE[name]


class Door:
    """An identity provider as JupyterHub's: who calls, from the request (here a test header)."""

    def __init__(self, asynchronous: bool) -> None:
        self.hub_auth = HubAuth()
        self.asynchronous = asynchronous

    def get_user(self, handler: web.RequestHandler) -> Any:
        who = handler.request.headers.get("X-Test-User")
        user = User(who) if who else None  # no login: JupyterHub's provider answers None
        if not self.asynchronous:
            return user

        async def later() -> User:
            return user

        return later()


class Page(web.RequestHandler):
    """Any route of the server: it asks who is calling first, as JupyterHandler.prepare does."""

    async def prepare(self) -> None:
        self.set_header("X-Page", "1")  # what the handler had set before the door answered
        self.user = await self.settings["door"].get_user(self)

    def get(self, *args: Any) -> None:
        self.finish({"page": type(self).__name__, "user": self.user.username if self.user else None})

    post = put = delete = get


class Desktop(Page):
    jupyter_vnc_desktop_route = True


@pytest.fixture(params=[False, True], ids=["sync", "async"])
async def server(request: pytest.FixtureRequest, caplog: pytest.LogCaptureFixture) -> AsyncIterator[Any]:
    fetch = await serve(request.param, "/user/alice/", caplog)
    yield fetch
    fetch.http.stop()


async def serve(asynchronous: bool, base_url: str, caplog: pytest.LogCaptureFixture) -> Any:
    """A server at ``base_url`` behind the door; the function that requests a path of it."""
    door = Door(asynchronous)
    hold_guests_at_the_desktop(door, base_url, logging.getLogger("test-door"))
    root = base_url.rstrip("/")
    app = web.Application([(rf"{root}/vnc/(.*)", Desktop), (rf"{root}/(.*)", Page), (root, Page)], door=door)
    sockets = bind_sockets(0, "127.0.0.1")
    http = HTTPServer(app)
    http.add_sockets(sockets)
    port = sockets[0].getsockname()[1]

    async def fetch(who: str, path: str, method: str = "GET") -> HTTPResponse:
        return await AsyncHTTPClient().fetch(
            f"http://127.0.0.1:{port}{path}", method=method, headers={"X-Test-User": who} if who else {},
            body=b"" if method in ("POST", "PUT") else None, follow_redirects=False, raise_error=False,
        )  # fmt: skip

    fetch.door, fetch.http = door, http  # type: ignore[attr-defined]
    caplog.set_level(logging.INFO, logger="test-door")
    return fetch


async def test_the_owner_and_an_admin_pass_the_door_everywhere(server: Any) -> None:
    for who in ("alice", "root"):
        for path in ("/user/alice/lab", "/user/alice/api/contents/x", "/user/alice/", "/user/alice/vnc/"):
            reply = await server(who, path, "POST")
            assert reply.code == 200 and json.loads(reply.body)["user"] == who, (who, path)


async def test_a_guest_reaches_the_desktops_routes(server: Any) -> None:
    for path in ("/user/alice/vnc/", "/user/alice/vnc/api/status", "/user/alice/vnc/websockify"):
        reply = await server("bob", path)
        assert reply.code == 200 and json.loads(reply.body) == {"page": "Desktop", "user": "bob"}


async def test_the_link_a_share_gives_leads_a_guest_to_the_desktop(server: Any) -> None:
    for path in ("/user/alice/", "/user/alice"):
        reply = await server("bob", path)
        assert reply.code == 302, path
        assert reply.headers["Location"] == "/user/alice/vnc/"
        assert reply.headers["Cache-Control"] == "no-store"
        assert "X-Page" not in reply.headers  # the handler's own answer was cleared
        assert reply.headers.get("Content-Type") != "application/json"  # an empty body claims no JSON
        assert reply.body == b""


async def test_a_guest_is_refused_everywhere_else_with_a_reason(server: Any, caplog: Any) -> None:
    for path, method in [
        ("/user/alice/", "POST"),  # only a GET of the server's root leads to the desktop
        ("/user/alice/lab", "GET"),
        ("/user/alice/lab/", "GET"),
        ("/user/alice/terminals/1", "GET"),
        ("/user/alice/api/contents/notes.txt", "PUT"),
        ("/user/alice/lab/api/settings/x", "PUT"),
        ("/user/alice/vn", "GET"),
    ]:
        reply = await server("bob", path, method)
        assert reply.code == 403, (path, method)
        assert json.loads(reply.body) == {
            "message": "alice shares only the desktop of this server with you",
            "reason": "shared desktop only",
        }
        assert reply.headers["Content-Type"] == "application/json" and "Location" not in reply.headers
        assert reply.headers["Cache-Control"] == "no-store"  # no cache keeps a refusal or an answer
        assert "X-Page" not in reply.headers  # the handler's own answer was cleared, not sent along
    said = [r.getMessage() for r in caplog.records if r.name == "test-door"]
    assert "jupyter-vnc: bob may reach only the desktop here, not /user/alice/lab" in said


async def test_the_door_leaves_a_request_without_a_login_to_the_server(server: Any) -> None:
    reply = await server("", "/user/alice/lab")  # the server's own login redirect or 403 follows
    assert reply.code == 200 and json.loads(reply.body) == {"page": "Page", "user": None}


async def test_a_named_servers_root_leads_a_guest_to_its_desktop(caplog: pytest.LogCaptureFixture) -> None:
    fetch = await serve(False, "/user/alice/deskX/", caplog)
    try:
        for path in ("/user/alice/deskX/", "/user/alice/deskX"):
            reply = await fetch("bob", path)
            assert (reply.code, reply.headers.get("Location")) == (302, "/user/alice/deskX/vnc/"), path
        assert (await fetch("bob", "/user/alice/deskX/lab")).code == 403
    finally:
        fetch.http.stop()  # type: ignore[attr-defined]


async def test_the_door_looks_a_guests_token_up_again_within_a_second(server: Any) -> None:
    cache = server.door.hub_auth.cache
    assert isinstance(cache, GuestAwareCache)
    assert cache.max_age == HubAuth.cache_max_age  # the owner's tokens: the usual cache age


# --- the token cache ------------------------------------------------------------------------------


class Clock:
    """time.monotonic for the caches (JupyterHub's and ours read it as ``time.monotonic()``): ages are
    arithmetic, tested without waiting and without a busy machine's delays."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    fake = Clock()
    monkeypatch.setattr(time, "monotonic", fake)
    return fake


def test_a_guests_token_and_a_refusal_are_cached_for_guest_age_the_owners_for_max_age(clock: Clock) -> None:
    cache = GuestAwareCache(max_age=60, guest_age=0.5)
    cache["owner"] = {"name": "alice"}
    cache["guest"] = {"name": "bob"}
    cache["refused"] = None  # JupyterHub caches "no access" too
    clock.now += 0.4
    assert "guest" in cache and "refused" in cache
    clock.now += 0.2
    assert "owner" in cache and cache.get("owner") == {"name": "alice"}
    assert "guest" not in cache and cache.get("guest") is None
    assert "refused" not in cache
    clock.now += 60
    assert "owner" not in cache  # JupyterHub's own expiry still holds for the owner


def test_the_default_guest_age_is_a_second(clock: Clock) -> None:
    cache = GuestAwareCache(max_age=300)
    cache["guest"] = {"name": "bob"}
    clock.now += 0.9
    assert "guest" in cache
    clock.now += 0.2
    assert "guest" not in cache


# --- the authorizer ---------------------------------------------------------------------------------


class Answers(Authorizer):
    """The server's own authorizer: allows everything, and records what it was asked."""

    asked: ClassVar[list[tuple[Any, ...]]] = []

    def is_authorized(self, handler: Any, user: Any, action: str, resource: str) -> bool:
        self.asked.append((handler, user, action, resource))
        return True


class ServerApp(LoggingConfigurable):
    """The authorizer's parent, whose log is the server's."""


@pytest.mark.parametrize(
    ("who", "route", "allowed"),
    [("alice", Page, True), ("root", Page, True), ("bob", Page, False), ("bob", Desktop, True),
     ("alice", Desktop, True)],
)  # fmt: skip
def test_the_authorizer_says_no_to_a_guest_but_on_the_desktop(
    who: str, route: type, allowed: bool, caplog: pytest.LogCaptureFixture
) -> None:
    identity = IdentityProvider()
    identity.hub_auth = HubAuth()  # type: ignore[attr-defined]
    inner = Answers(identity_provider=identity)
    inner.asked = []
    server = ServerApp(log=logging.getLogger("test-server"))
    outer = GuestsAtTheDesktopOnly(inner, parent=server)
    assert outer.identity_provider is identity
    handler = object.__new__(route)  # only its class's attributes are read
    user = User(who)
    with caplog.at_level(logging.INFO, logger="test-server"):
        assert outer.is_authorized(handler, user, "write", "contents") is allowed
    # The server's own authorizer decides where it counts, on the same request.
    assert inner.asked == ([(handler, user, "write", "contents")] if allowed else [])
    said = [r.getMessage() for r in caplog.records if r.name == "test-server"]
    assert said == ([] if allowed else [f"jupyter-vnc: {who} may reach only the desktop here, not contents"])
