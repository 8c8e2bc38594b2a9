"""The viewers connected to this desktop right now, and the watch that keeps each one's rights current.

A share can be revoked, or narrowed from control to watching, while its recipient is connected. The
hub does not tell the server; the server asks: while anyone but the owner is connected, each
recipient's token and the server's share list are looked up again every ``RECHECK`` seconds (without
the single-user server's usual five-minute token cache), and a connection whose access is gone is
closed with code ``REVOKED``. The lookups are one per distinct token a round, not one per connection,
and a recipient may hold at most ``guest_limit`` connections: forty tabs of one watcher cost the hub
what one does.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from typing import Any, Protocol

from .sharing import Role, ShareBook, Visitor, manage_scope, owner_name, role_of

RECHECK = 1.0
REVOKED = 4403  # websocket close codes 4000-4999 are the application's own
PAUSED = 4000
GUEST_LIMIT = 4  # connections one share recipient may hold open at a time (tabs, reconnects)


class Seat(Protocol):
    """A live connection: the bridge's websocket."""

    def close(self, code: int | None = None, reason: str | None = None) -> None: ...


class Audience:
    def __init__(self, hub_auth: Any, log: Any, guest_limit: int = GUEST_LIMIT) -> None:
        self._hub_auth = hub_auth
        self._log = log
        self.guest_limit = guest_limit
        self.book = ShareBook(hub_auth, log) if hub_auth is not None else None
        self._seats: dict[Seat, Visitor] = {}
        self._watch: asyncio.Task[None] | None = None

    # --- who is this -------------------------------------------------------------------------------

    async def role_for(self, model: dict[str, Any] | None) -> Role:
        """The role of a hub user at this desktop; a server outside JupyterHub has only its owner."""
        if model is None or self.book is None:
            return Role.OWNER
        manages = bool(self._hub_auth.check_scopes({manage_scope()}, model))
        return await role_of(model, self.book, manages)

    async def current_role(self, visitor: Visitor) -> Role | None:
        """What ``visitor`` may do now, asking the hub afresh; None when their access is gone."""
        if visitor.role is Role.OWNER or self._hub_auth is None:
            return visitor.role
        model = await self._hub_auth.user_for_token(visitor.token, use_cache=False, sync=False)
        return await self._role_in(visitor, model)

    async def _role_in(self, visitor: Visitor, model: dict[str, Any] | None) -> Role | None:
        """What ``visitor`` may do, given the hub's fresh ``model`` of their token."""
        hub_auth = self._hub_auth
        if not model or model.get("name") != visitor.name:
            return None
        if not hub_auth.check_scopes(hub_auth.access_scopes, model):
            return None
        return (await self.role_for(model)).narrowed(visitor.view_only)

    # --- who is here -------------------------------------------------------------------------------

    def join(self, seat: Seat, visitor: Visitor) -> bool:
        """Seat ``visitor``; False (and not seated) when a share recipient holds ``guest_limit``
        connections already. The owner and admins have no limit: the desktop is theirs."""
        if not visitor.role.may_manage:
            held = sum(1 for v in self._seats.values() if v.name == visitor.name)
            if held >= self.guest_limit:
                return False
        self._seats[seat] = visitor
        # Only a hub can take access back; a plain Jupyter server has its one user.
        watched = visitor.role is not Role.OWNER and self._hub_auth is not None
        if watched and (self._watch is None or self._watch.done()):
            self._watch = asyncio.create_task(self._keep_current())
        return True

    def leave(self, seat: Seat) -> None:
        self._seats.pop(seat, None)

    def connected(self) -> int:
        """How many viewers are connected now, the owner's included."""
        return len(self._seats)

    def watchers(self) -> list[dict[str, Any]]:
        """Everyone but the owner, for the owner's viewer:
        ``[{"user": "bob", "role": "view", "connections": 1}]``."""
        counts = Counter(
            (v.name, v.role.value)
            for v in self._seats.values()
            if v.role is not Role.OWNER and v.name != owner_name()
        )
        return [{"user": n, "role": r, "connections": c} for (n, r), c in sorted(counts.items())]

    def close_all(self, code: int, reason: str) -> int:
        seats = list(self._seats)
        for seat in seats:
            with contextlib.suppress(Exception):
                seat.close(code, reason)
        return len(seats)

    async def _fresh_models(self, tokens: set[str]) -> dict[str, Any]:
        """The hub's current word on each token, asked once per token, all at once; an exception in
        place of a model where the hub could not be asked."""
        hub_auth = self._hub_auth

        async def one(token: str) -> Any:
            return await hub_auth.user_for_token(token, use_cache=False, sync=False)

        tokens_list = sorted(tokens)
        replies = await asyncio.gather(*(one(t) for t in tokens_list), return_exceptions=True)
        return dict(zip(tokens_list, replies, strict=True))

    async def _keep_current(self) -> None:
        while any(v.role is not Role.OWNER for v in self._seats.values()):
            await asyncio.sleep(RECHECK)
            guests = [(s, v) for s, v in self._seats.items() if v.role is not Role.OWNER]
            models = await self._fresh_models({v.token for _, v in guests})
            for seat, visitor in guests:
                if seat not in self._seats:
                    continue
                model = models[visitor.token]
                try:
                    if isinstance(model, Exception):
                        raise model
                    role = await self._role_in(visitor, model)
                except Exception as e:  # the hub is briefly away: keep what we knew
                    self._log.warning("jupyter-vnc: cannot check %s's access: %s", visitor.name, e)
                    continue
                if role is None:
                    self._log.info("jupyter-vnc: %s may no longer see this desktop; closing", visitor.name)
                    self.leave(seat)
                    with contextlib.suppress(Exception):
                        seat.close(REVOKED, "this desktop is no longer shared with you")
                elif role is not visitor.role:
                    self._log.info("jupyter-vnc: %s's role changed: %s", visitor.name, role.value)
                    visitor.role = role
