"""Who may do what at a desktop (jupyter_vnc.sharing), without a hub: the roles, the share list as the
hub's REST API returns it, and how the server reads and caches that list.

The end-to-end proof on a real hub, with real shares and a real desktop, is tests/test_sharing.py; these
tests hold each rule on its own, with the hub's answers written here from JupyterHub's REST API
(``GET /hub/api/shares/{user}/{server}``, JupyterHub 5's sharing) and its scope syntax
(``scope!filter``: ``servers!server=alice/``), never taken from the product.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
from tornado import web
from tornado.httpserver import HTTPServer
from tornado.netutil import bind_sockets

from jupyter_vnc import sharing
from jupyter_vnc.sharing import Role, ShareBook, ShareList, manage_scope, parse_shares, role_of

# No service: also run against the lowest declared dependency versions (devstack/floors).
pytestmark = pytest.mark.unit

# The custom scope a share grants control with (README, "Sharing a desktop").
CONTROL = "custom:jupyter-vnc:control"


@pytest.fixture(autouse=True)
def owner(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JUPYTERHUB_USER", "alice")
    monkeypatch.setenv("JUPYTERHUB_SERVER_NAME", "")


# --- the roles ---------------------------------------------------------------------------------------

# (may type, may restart and stop): written from what each role promises (sharing.py's docstring, the
# README's "Sharing a desktop"): the owner and hub admins everything, control types, a watcher only watches.
PROMISES = {
    Role.OWNER: (True, True),
    Role.ADMIN: (True, True),
    Role.CONTROL: (True, False),
    Role.VIEW: (False, False),
}


@pytest.mark.parametrize("role", list(Role))
def test_what_each_role_may_do(role: Role) -> None:
    assert (role.may_type, role.may_manage) == PROMISES[role]


@pytest.mark.parametrize("role", list(Role))
def test_asking_to_watch_only_makes_anyone_a_watcher_and_nothing_else_changes_a_role(role: Role) -> None:
    assert role.narrowed(view_only=True) is Role.VIEW
    assert role.narrowed(view_only=False) is role


def test_the_permission_to_manage_is_jupyterhubs_start_and_stop_scope_on_this_server(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """JupyterHub's scope for starting and stopping one server, with its ``server=user/name`` filter."""
    assert manage_scope() == "servers!server=alice/"
    monkeypatch.setenv("JUPYTERHUB_SERVER_NAME", "viz")
    assert manage_scope() == "servers!server=alice/viz"


# --- the share list, as the hub returns it ------------------------------------------------------------


def share(scopes: list[str], user: str | None = None, group: str | None = None) -> dict[str, Any]:
    """One item of ``GET /hub/api/shares/alice/`` (JupyterHub 5): a share with a user or a group."""
    return {
        "server": {"name": "", "user": {"name": "alice"}, "url": "/user/alice/", "ready": True},
        "scopes": scopes,
        "user": {"name": user} if user else None,
        "group": {"name": group} if group else None,
        "kind": "user" if user else "group",
        "created_at": "2026-01-01T00:00:00Z",
    }


ACCESS = "access:servers!server=alice/"


def test_control_is_granted_by_the_custom_scope_on_a_share_to_a_user_or_a_group() -> None:
    shares = parse_shares(
        {
            "items": [
                share([ACCESS], user="carol"),  # access only: watches
                share([ACCESS, f"{CONTROL}ler!server=alice/"], user="dave"),  # another scope
                share([ACCESS, f"x{CONTROL}"], group="others"),
                share([ACCESS, f"{CONTROL}!server=alice/"], user="bob"),  # filtered, as the hub stores it
                share([ACCESS, CONTROL], group="team"),  # unfiltered
            ],
            "_pagination": {"offset": 0, "limit": 200, "total": 5, "next": None},
        }
    )
    assert shares == ShareList(frozenset({"bob"}), frozenset({"team"}))
    assert shares.grants_control("bob", ())
    assert shares.grants_control("erin", ("staff", "team"))  # through her group
    assert not shares.grants_control("carol", ("staff",))
    assert not shares.grants_control("team", ())  # a group's name is not a user's
    assert not ShareList(frozenset({"bob"})).grants_control("bob2", ())


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"items": None},
        {"items": []},
        {"items": ["bob", 3, None]},
        {"items": [{"scopes": None, "user": {"name": "bob"}}]},
        {"items": [{"scopes": [CONTROL], "user": None, "group": None}]},
        {"items": [{"scopes": [CONTROL], "user": "bob"}]},  # not an object
        {"items": [{"scopes": [CONTROL], "user": {"name": 7}, "group": {"name": ["team"]}}]},
        {"items": [{"scopes": [7, None, ["x"]], "user": {"name": "bob"}}]},
    ],
)
def test_an_odd_or_empty_share_list_grants_nobody_control(body: dict[str, Any]) -> None:
    shares = parse_shares(body)
    assert shares == ShareList()
    assert not shares.grants_control("bob", ("team",))


def test_the_filter_is_everything_after_the_first_bang() -> None:
    """JupyterHub's ``scope!filter``: a server name may hold a "!" of its own (``alice/a!b``)."""
    item = share([f"{CONTROL}!server=alice/a!b"], user="bob")
    assert parse_shares({"items": [item]}).grants_control("bob", ())


def test_junk_before_a_grant_does_not_hide_it() -> None:
    item = share([7, ACCESS, CONTROL], user="bob")  # a scope of the wrong type does not hide the grant
    assert parse_shares({"items": ["junk", item]}).grants_control("bob", ())


# --- reading the list from the hub -----------------------------------------------------------------


class Hub:
    """The hub's shares API, answering what a test sets, recording what it was asked."""

    def __init__(self) -> None:
        self.status = 200
        self.body: Any = {"items": []}
        self.asked: list[tuple[str, str]] = []  # (path, Authorization)
        self.hung = False  # takes the request and never answers


@pytest.fixture
async def shares_api() -> AsyncIterator[tuple[Hub, Any]]:
    state = Hub()

    class Shares(web.RequestHandler):
        async def get(self, rest: str) -> None:
            state.asked.append((self.request.path, self.request.headers.get("Authorization", "")))
            if state.hung:
                await asyncio.sleep(60)
            self.set_status(state.status)
            self.finish(state.body if isinstance(state.body, str) else json.dumps(state.body))

    sockets = bind_sockets(0, "127.0.0.1")
    server = HTTPServer(web.Application([(r"/hub/api/shares/(.*)", Shares)]))
    server.add_sockets(sockets)
    port = sockets[0].getsockname()[1]

    class HubAuth:  # what ShareBook reads of JupyterHub's HubAuth
        api_url = f"http://127.0.0.1:{port}/hub/api"
        api_token = "server-token"

    yield state, HubAuth()
    server.stop()


async def test_the_server_asks_the_hub_with_its_own_token_for_this_servers_shares(
    shares_api: tuple[Hub, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    state, hub_auth = shares_api
    monkeypatch.setenv("JUPYTERHUB_USER", "al ice")  # quoted into the path
    monkeypatch.setenv("JUPYTERHUB_SERVER_NAME", "viz")
    state.body = {"items": [share([CONTROL], user="bob")]}
    shares = await ShareBook(hub_auth, logging.getLogger("test")).current()
    assert shares.grants_control("bob", ())
    assert state.asked == [("/hub/api/shares/al%20ice/viz", "token server-token")]


async def test_the_list_is_read_again_only_once_it_is_older_than_max_age(shares_api: tuple[Hub, Any]) -> None:
    state, hub_auth = shares_api
    book = ShareBook(hub_auth, logging.getLogger("test"))
    state.body = {"items": [share([CONTROL], user="bob")]}
    assert (await book.current(max_age=60)).grants_control("bob", ())
    state.body = {"items": []}  # the share was narrowed to watching
    assert (await book.current(max_age=60)).grants_control("bob", ())  # from the cache
    assert len(state.asked) == 1
    assert not (await book.current(max_age=0)).grants_control("bob", ())  # read again
    assert len(state.asked) == 2


async def test_the_default_server_asks_for_the_share_list_of_its_unnamed_server(
    shares_api: tuple[Hub, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A user's default server: JupyterHub's name for it is "" (the variable may be absent)."""
    state, hub_auth = shares_api
    monkeypatch.setenv("JUPYTERHUB_USER", "dave")
    monkeypatch.delenv("JUPYTERHUB_SERVER_NAME", raising=False)
    await ShareBook(hub_auth, logging.getLogger("test")).current()
    assert [path for path, _ in state.asked] == ["/hub/api/shares/dave/"]


async def test_a_list_exactly_max_age_old_is_read_again(
    shares_api: tuple[Hub, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    state, hub_auth = shares_api
    now = [1000.0]
    monkeypatch.setattr(sharing.time, "monotonic", lambda: now[0])
    book = ShareBook(hub_auth, logging.getLogger("test"))
    await book.current(max_age=5)
    now[0] += 4.999
    await book.current(max_age=5)
    assert len(state.asked) == 1
    now[0] += 0.001  # five seconds old: no longer fresh
    await book.current(max_age=5)
    assert len(state.asked) == 2


async def test_a_server_not_allowed_to_read_its_shares_lets_everyone_only_watch_and_says_why_once(
    shares_api: tuple[Hub, Any], caplog: pytest.LogCaptureFixture
) -> None:
    state, hub_auth = shares_api
    book = ShareBook(hub_auth, logging.getLogger("test-shares-403"))
    state.status = 403
    with caplog.at_level(logging.WARNING, logger="test-shares-403"):
        for _ in range(3):
            shares = await book.current(max_age=0)
            assert not shares.grants_control("bob", ())
    assert [r.getMessage() for r in caplog.records if r.name == "test-shares-403"] == [
        "jupyter-vnc: cannot read this server's shares (HTTP 403: Forbidden): everyone it is shared with "
        "may only watch. The spawner requests read:shares!server for the server's token."
    ]


async def test_a_hub_that_is_briefly_away_leaves_the_last_known_list_in_force(
    shares_api: tuple[Hub, Any], caplog: pytest.LogCaptureFixture
) -> None:
    state, hub_auth = shares_api
    book = ShareBook(hub_auth, logging.getLogger("test-shares-away"))
    state.body = "<html>the proxy's error page</html>"  # not JSON: as if the hub were restarting
    first = await book.current(max_age=0)
    assert not first.grants_control("bob", ())  # nothing known yet: everyone watches
    state.body = {"items": [share([CONTROL], user="bob")]}
    assert (await book.current(max_age=0)).grants_control("bob", ())
    state.body = "<html>the proxy's error page</html>"
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="test-shares-away"):
        kept = await book.current(max_age=0)
    assert kept.grants_control("bob", ())
    assert [r.getMessage() for r in caplog.records if r.name == "test-shares-away"] == [
        "jupyter-vnc: cannot reach the hub for the share list: Expecting value: line 1 column 1 (char 0)"
    ]
    state.body = {"items": []}
    assert not (await book.current(max_age=0)).grants_control("bob", ())  # back: the new list counts


# --- a hub user's role at alice's desktop --------------------------------------------------------------


class FixedBook:
    def __init__(self, shares: ShareList) -> None:
        self.shares = shares
        self.asked = 0

    async def current(self) -> ShareList:
        self.asked += 1
        return self.shares


@pytest.mark.parametrize(
    ("model", "manages", "role"),
    [
        ({"name": "alice"}, False, Role.OWNER),
        ({"name": "alice"}, True, Role.OWNER),
        ({"name": "root"}, True, Role.ADMIN),  # may start and stop alice's server: a hub admin
        ({"name": "bob", "groups": []}, False, Role.CONTROL),
        ({"name": "erin", "groups": ["team"]}, False, Role.CONTROL),
        ({"name": "carol", "groups": ["staff"]}, False, Role.VIEW),
        ({"name": "carol"}, False, Role.VIEW),
        ({"name": "carol", "groups": None}, False, Role.VIEW),
        ({}, False, Role.VIEW),  # no name: never the owner
    ],
)
async def test_the_role_of_a_hub_user(model: dict[str, Any], manages: bool, role: Role) -> None:
    book = FixedBook(ShareList(frozenset({"bob"}), frozenset({"team"})))
    assert await role_of(model, book, manages) is role  # type: ignore[arg-type]
    assert book.asked == (role in (Role.CONTROL, Role.VIEW))  # the share list only for recipients


async def test_a_hub_that_never_answers_holds_a_viewer_ten_seconds_and_lets_nobody_control(
    shares_api: tuple[Hub, Any],
) -> None:
    """The hub takes the request and never answers (hung, not down): the server gives up after its
    10 s limit rather than keep the viewer's connection waiting, and nobody controls meanwhile."""
    state, hub_auth = shares_api
    state.hung = True
    book = ShareBook(hub_auth, logging.getLogger("test-shares-hung"))
    started = time.monotonic()
    shares = await asyncio.wait_for(book.current(max_age=0), 60)
    assert 9 < time.monotonic() - started < 15  # tornado's own default would be 20 s
    assert not shares.grants_control("bob", ())


async def test_a_nameless_model_is_not_the_owner_of_a_server_that_does_not_know_its_owner(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A server started without JUPYTERHUB_USER (by hand, or a broken spawn) has no owner: an empty
    name from the hub must not match that emptiness."""
    monkeypatch.delenv("JUPYTERHUB_USER", raising=False)
    book = FixedBook(ShareList())
    for model in ({}, {"name": ""}, {"name": None}):
        assert await role_of(model, book, False) is Role.VIEW  # type: ignore[arg-type]
