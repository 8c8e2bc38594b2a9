"""Who is at the desktop (jupyter_vnc.audience): a share recipient's connections are capped, and their
access is re-checked once per token each round, however many connections share it.

The hub here is a stand-in that counts lookups (the real hub's answers are exercised end to end in
tests/test_guests.py and tests/test_sharing.py); what is tested is the audience's own bookkeeping.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from jupyter_vnc.audience import GUEST_LIMIT, PAUSED, REVOKED, Audience
from jupyter_vnc.sharing import Role, ShareList, Visitor

# No service: also run against the lowest declared dependency versions (devstack/floors).
pytestmark = pytest.mark.unit

ACCESS = "access:servers!server=dave/"


class CountingHub:
    """What the audience asks of JupyterHub's HubAuth, counting token lookups."""

    api_url = "http://127.0.0.1:9/hub/api"  # nothing listens: the share list reads as unreadable
    api_token = "server-token"
    access_scopes = frozenset({ACCESS})

    def __init__(self) -> None:
        self.lookups: list[str] = []
        self.revoked: set[str] = set()

    def user_for_token(
        self, token: str, use_cache: bool = True, session_id: str = "", *, sync: bool = True
    ) -> Any:
        """As JupyterHub's HubAuth: the model itself with sync=True (blocking the event loop, which
        the server must never do), an awaitable with sync=False."""
        assert sync is False, "asked of the hub with sync=True: that blocks the server's event loop"
        self.lookups.append(token)

        async def model() -> dict[str, Any]:
            return self.model(token)

        return model()

    def model(self, token: str) -> dict[str, Any]:
        scopes = [] if token in self.revoked else [ACCESS]
        return {"name": "erin", "groups": [], "scopes": scopes}

    def check_scopes(self, required: set[str], model: dict[str, Any]) -> set[str]:
        return set(required) & set(model["scopes"])


class Seat:
    def __init__(self) -> None:
        self.closed: int | None = None
        self.reason: str | None = None

    def close(self, code: int | None = None, reason: str | None = None) -> None:
        self.closed, self.reason = code, reason


@pytest.fixture(autouse=True)
def owner(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JUPYTERHUB_USER", "dave")
    monkeypatch.setenv("JUPYTERHUB_SERVER_NAME", "")


@pytest.fixture
def audiences(request: pytest.FixtureRequest) -> Iterator[Callable[..., Audience]]:
    """Audiences that log to this test's own logger and whose watch ends with the test: a watch left
    running would ask its hub, and log, through the tests that follow."""
    made: list[Audience] = []
    log = logging.getLogger(f"test-audience.{request.node.name}")

    def make(hub: Any, guest_limit: int = GUEST_LIMIT) -> Audience:
        made.append(Audience(hub, log, guest_limit=guest_limit))
        return made[-1]

    make.log = log  # type: ignore[attr-defined]
    yield make
    for audience in made:
        for seat in list(audience._seats):
            audience.leave(seat)  # nobody left: the watch ends at its next round
        if audience._watch is not None:
            audience._watch.cancel()


async def test_a_guest_holds_at_most_the_limit_and_the_owner_any(audiences: Callable[..., Audience]) -> None:
    audience = audiences(CountingHub(), guest_limit=3)
    erin = [Seat() for _ in range(4)]
    assert [audience.join(s, Visitor("erin", Role.VIEW, token="t")) for s in erin] == [
        True,
        True,
        True,
        False,
    ]
    assert all(audience.join(Seat(), Visitor("dave", Role.OWNER)) for _ in range(10))
    audience.leave(erin[0])
    assert audience.join(erin[3], Visitor("erin", Role.VIEW, token="t"))


async def test_a_recipient_watches_while_the_server_cannot_read_its_share_list(
    caplog: pytest.LogCaptureFixture,
    audiences: Callable[..., Audience],
) -> None:
    audience = audiences(CountingHub())  # its hub's API does not answer
    with caplog.at_level(logging.WARNING):
        assert await audience.role_for({"name": "erin", "groups": [], "scopes": [ACCESS]}) is Role.VIEW
    assert "cannot reach the hub for the share list" in caplog.text


async def test_access_is_checked_once_per_token_a_round_and_a_revocation_closes_every_seat(
    audiences: Callable[..., Audience],
) -> None:
    hub = CountingHub()
    audience = audiences(hub, guest_limit=10)
    same = [Seat() for _ in range(6)]
    for seat in same:
        audience.join(seat, Visitor("erin", Role.VIEW, token="one"))
    other = Seat()
    audience.join(other, Visitor("erin", Role.VIEW, token="two"))
    await asyncio.sleep(2.3)  # two rounds
    assert sorted(hub.lookups) == ["one", "one", "two", "two"], hub.lookups  # not 14
    hub.revoked.add("one")
    await asyncio.sleep(1.2)
    assert [s.closed for s in same] == [REVOKED] * 6
    assert other.closed is None


# --- a role that changes while connected -------------------------------------------------------------


class Shares:
    """The server's share list (ShareBook.current), as the owner changes it during a test."""

    def __init__(self, control: set[str]) -> None:
        self.control = control

    async def current(self) -> ShareList:
        return ShareList(frozenset(self.control))


class Hub(CountingHub):
    """Tokens of several users; one of them may start and stop dave's server (a hub admin)."""

    def __init__(self, owners: dict[str, str], admins: frozenset[str] = frozenset()) -> None:
        super().__init__()
        self.owners = owners  # token -> user
        self.admins = admins
        self.down = False
        self.failing: set[str] = set()  # tokens the hub cannot answer for (an error of its own)
        self.on_lookup: Callable[[str], object] = lambda token: None

    def user_for_token(
        self, token: str, use_cache: bool = True, session_id: str = "", *, sync: bool = True
    ) -> Any:
        assert use_cache is False, "a recipient's access is asked afresh, never from the token cache"
        return super().user_for_token(token, use_cache, session_id, sync=sync)

    def model(self, token: str) -> dict[str, Any]:
        self.on_lookup(token)
        if self.down or token in self.failing:
            raise ConnectionError("the hub is restarting")
        name = self.owners[token]
        scopes = [] if token in self.revoked else [ACCESS]
        if name in self.admins:
            scopes.append("servers!server=dave/")  # JupyterHub's scope to start and stop dave's server
        return {"name": name, "groups": [], "scopes": scopes}


@pytest.fixture
def quick(monkeypatch: pytest.MonkeyPatch) -> float:
    """Rounds of the re-check 20 times a second, so that a test waits a few of them."""
    monkeypatch.setattr("jupyter_vnc.audience.RECHECK", 0.05)
    return 0.05


async def test_control_taken_back_mid_session_leaves_a_watcher_and_given_again_lets_them_type(
    quick: float,
    caplog: pytest.LogCaptureFixture,
    audiences: Callable[..., Audience],
) -> None:
    audience = audiences(Hub({"t": "erin"}))
    shares = Shares({"erin"})
    audience.book = shares  # type: ignore[assignment]
    erin = Visitor("erin", Role.CONTROL, token="t")
    seat = Seat()
    assert audience.join(seat, erin)
    with caplog.at_level(logging.INFO):
        shares.control.clear()  # the owner narrowed the share to watching
        await asyncio.sleep(quick * 5)
        assert erin.role is Role.VIEW and seat.closed is None
        shares.control.add("erin")
        await asyncio.sleep(quick * 5)
        assert erin.role is Role.CONTROL
    said = [r.getMessage() for r in caplog.records if r.name == audiences.log.name]
    assert said == ["jupyter-vnc: erin's role changed: view", "jupyter-vnc: erin's role changed: control"]
    watching = Visitor("erin", Role.VIEW, token="t", view_only=True)  # asked to watch only (?view_only=1)
    audience.join(Seat(), watching)
    await asyncio.sleep(quick * 5)
    assert watching.role is Role.VIEW and erin.role is Role.CONTROL
    audience.close_all(1000, "done")


async def test_a_hub_that_is_briefly_away_closes_nobody_and_a_token_of_someone_else_is_refused(
    quick: float,
    caplog: pytest.LogCaptureFixture,
    audiences: Callable[..., Audience],
) -> None:
    hub = Hub({"t": "erin", "stolen": "mallory", "c": "fred"})
    audience = audiences(hub)
    erin, other, fred = Seat(), Seat(), Seat()
    audience.join(erin, Visitor("erin", Role.VIEW, token="t"))
    hub.down = True
    with caplog.at_level(logging.WARNING):
        await asyncio.sleep(quick * 5)
    assert erin.closed is None
    assert "jupyter-vnc: cannot check erin's access: the hub is restarting" in [
        r.getMessage() for r in caplog.records
    ]
    hub.down = False
    audience.join(other, Visitor("erin", Role.VIEW, token="stolen"))  # the token is mallory's, not erin's
    # The hub cannot answer for erin's own token (an error of its own), every round: that spares no one
    # else in the round. fred's share is revoked, and her connection ends all the same.
    hub.failing.add("t")
    audience.join(fred, Visitor("fred", Role.VIEW, token="c"))
    hub.revoked.add("c")
    caplog.clear()
    with caplog.at_level(logging.INFO):
        await asyncio.sleep(quick * 5)
    assert (other.closed, fred.closed, erin.closed) == (REVOKED, REVOKED, None)
    assert fred.reason == "this desktop is no longer shared with you"
    assert "jupyter-vnc: fred may no longer see this desktop; closing" in [
        r.getMessage() for r in caplog.records
    ]
    assert [w["connections"] for w in audience.watchers()] == [1]
    audience.leave(fred)  # the bridge's on_close, after the audience closed it: no error
    audience.leave(fred)


async def test_a_recipient_who_leaves_while_the_hub_is_asked_spares_no_one_else(
    quick: float, audiences: Callable[..., Audience]
) -> None:
    hub = Hub({"a": "anna", "b": "erin"})
    audience = audiences(hub)
    anna, erin = Seat(), Seat()
    audience.join(anna, Visitor("anna", Role.VIEW, token="a"))
    audience.join(erin, Visitor("erin", Role.VIEW, token="b"))
    hub.revoked.add("b")
    hub.on_lookup = lambda token: audience.leave(anna) if token == "a" else None  # anna closes her tab
    await asyncio.sleep(quick * 6)
    assert erin.closed == REVOKED
    assert hub.lookups.count("b") == 1  # closed in the round that found his share gone, not a round later


async def test_a_connection_that_fails_to_close_does_not_stop_the_watch(
    quick: float, audiences: Callable[..., Audience]
) -> None:
    class Broken(Seat):
        def close(self, code: int | None = None, reason: str | None = None) -> None:
            raise RuntimeError("already gone")

    hub = Hub({"d": "paul", "c": "fred"})
    audience = audiences(hub)
    audience.join(Broken(), Visitor("paul", Role.VIEW, token="d"))
    fred = Seat()
    audience.join(fred, Visitor("fred", Role.VIEW, token="c"))
    hub.revoked.add("d")
    await asyncio.sleep(quick * 4)
    hub.revoked.add("c")  # revoked later: the watch is still on
    await asyncio.sleep(quick * 4)
    assert fred.closed == REVOKED and audience.watchers() == []


async def test_the_owner_alone_is_never_asked_about_and_a_recipient_who_leaves_ends_the_watch(
    quick: float,
    audiences: Callable[..., Audience],
) -> None:
    hub = Hub({"t": "erin", "a": "dave"})
    audience = audiences(hub)
    audience.join(Seat(), Visitor("dave", Role.OWNER, token="a"))
    await asyncio.sleep(quick * 4)
    assert hub.lookups == []
    seat = Seat()
    audience.join(seat, Visitor("erin", Role.VIEW, token="t"))
    await asyncio.sleep(quick * 4)
    assert hub.lookups and set(hub.lookups) == {"t"}
    audience.leave(seat)
    await asyncio.sleep(quick * 6)  # a round begun before erin left may still ask, once
    asked = len(hub.lookups)
    await asyncio.sleep(quick * 4)
    assert len(hub.lookups) == asked  # nobody but the owner: no more questions to the hub


# --- who is here, and what they may do now --------------------------------------------------------------


async def test_the_owner_sees_everyone_else_with_their_role_and_connections(
    audiences: Callable[..., Audience],
) -> None:
    audience = audiences(Hub({}))
    for _ in range(3):
        audience.join(Seat(), Visitor("dave", Role.OWNER))
    audience.join(Seat(), Visitor("dave", Role.VIEW, view_only=True))  # the owner watching: not listed
    for _ in range(2):
        audience.join(Seat(), Visitor("fred", Role.VIEW, token="c"))
    audience.join(Seat(), Visitor("erin", Role.CONTROL, token="b"))
    audience.join(Seat(), Visitor("root", Role.ADMIN, token="r"))
    assert audience.watchers() == [
        {"user": "erin", "role": "control", "connections": 1},
        {"user": "fred", "role": "view", "connections": 2},
        {"user": "root", "role": "admin", "connections": 1},
    ]
    assert audience.close_all(1000, "bye") == 8


async def test_closing_everyone_goes_on_past_a_connection_that_fails_to_close(
    audiences: Callable[..., Audience],
) -> None:
    class Broken(Seat):
        def close(self, code: int | None = None, reason: str | None = None) -> None:
            raise RuntimeError("already gone")

    audience = audiences(None)
    seats = [Seat(), Broken(), Seat()]
    for seat in seats:
        audience.join(seat, Visitor("dave", Role.OWNER))
    assert audience.close_all(PAUSED, "paused: no keyboard or mouse input") == 3
    assert [(s.closed, s.reason) for s in (seats[0], seats[2])] == [
        (PAUSED, "paused: no keyboard or mouse input")
    ] * 2


async def test_without_a_hub_there_is_only_the_owner(audiences: Callable[..., Audience]) -> None:
    audience = audiences(None)
    assert await audience.role_for({"name": "erin"}) is Role.OWNER
    assert await audience.current_role(Visitor("erin", Role.VIEW)) is Role.VIEW


async def test_a_role_asked_afresh_of_the_hub(audiences: Callable[..., Audience]) -> None:
    hub = Hub({"t": "erin", "r": "root", "a": "dave"}, admins=frozenset({"root"}))
    audience = audiences(hub)
    audience.book = Shares({"erin"})  # type: ignore[assignment]
    assert await audience.role_for(None) is Role.OWNER  # a server outside JupyterHub
    assert await audience.current_role(Visitor("erin", Role.VIEW, token="t")) is Role.CONTROL
    assert await audience.current_role(Visitor("erin", Role.CONTROL, token="t", view_only=True)) is Role.VIEW
    assert await audience.current_role(Visitor("root", Role.VIEW, token="r")) is Role.ADMIN
    assert await audience.current_role(Visitor("erin", Role.VIEW, token="r")) is None  # root's token
    assert await audience.current_role(Visitor("dave", Role.OWNER, token="a")) is Role.OWNER
    assert hub.lookups == ["t", "t", "r", "r"]  # the owner's own token is never asked about
    hub.revoked.add("t")
    assert await audience.current_role(Visitor("erin", Role.CONTROL, token="t")) is None


def test_the_default_limit_is_four_connections_a_recipient(audiences: Callable[..., Audience]) -> None:
    assert audiences(Hub({})).guest_limit == 4 == GUEST_LIMIT
