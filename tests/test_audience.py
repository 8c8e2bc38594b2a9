"""Who is at the desktop (jupyter_vnc.audience): a share recipient's connections are capped, and their
access is re-checked once per token each round, however many connections share it.

The hub here is a stand-in that counts lookups (the real hub's answers are exercised end to end in
tests/test_guests.py and tests/test_sharing.py); what is tested is the audience's own bookkeeping.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest

from jupyter_vnc.audience import REVOKED, Audience
from jupyter_vnc.sharing import Role, Visitor

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

    async def user_for_token(self, token: str, use_cache: bool = True, sync: bool = True) -> dict[str, Any]:
        self.lookups.append(token)
        scopes = [] if token in self.revoked else [ACCESS]
        return {"name": "erin", "groups": [], "scopes": scopes}

    def check_scopes(self, required: set[str], model: dict[str, Any]) -> set[str]:
        return set(required) & set(model["scopes"])


class Seat:
    def __init__(self) -> None:
        self.closed: int | None = None

    def close(self, code: int | None = None, reason: str | None = None) -> None:
        self.closed = code


@pytest.fixture(autouse=True)
def owner(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JUPYTERHUB_USER", "dave")
    monkeypatch.setenv("JUPYTERHUB_SERVER_NAME", "")


async def test_a_guest_holds_at_most_the_limit_and_the_owner_any() -> None:
    audience = Audience(CountingHub(), logging.getLogger("test"), guest_limit=3)
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


async def test_access_is_checked_once_per_token_a_round_and_a_revocation_closes_every_seat() -> None:
    hub = CountingHub()
    audience = Audience(hub, logging.getLogger("test"), guest_limit=10)
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
