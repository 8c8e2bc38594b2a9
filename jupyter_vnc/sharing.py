"""Who is at this desktop, and what each may do: the owner, hub admins, and the users it is shared with.

JupyterHub 5 lets a user share a server (``POST /hub/api/shares/alice/``); the recipient's browser then
passes the single-user server's login like the owner's. Left at that, a recipient could type into the
owner's desktop, restart it or end it. Here the server decides instead:

- the owner, and whoever may start and stop the server in JupyterHub (hub admins): everything;
- a share recipient: watch only, unless the share also carries the custom scope ``CONTROL_SCOPE``
  (``custom:jupyter-vnc:control``): then keyboard, mouse and clipboard too. Restart and stop stay
  with the owner.

Why a scope on the share and not a setting of ours: the grant then lives where JupyterHub keeps every
other permission, the owner manages it with the same API (grant, narrow, revoke), an admin sees it in
the hub's share list, and it survives restarts of the server and of the hub. The server reads its own
shares with its own token (``read:shares!server``, requested by the spawner): a recipient's OAuth
token never carries a scope that was shared after it was issued, so it cannot answer the question.
"""

from __future__ import annotations

import enum
import json
import os
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from tornado.httpclient import AsyncHTTPClient, HTTPClientError

from .rfb_input import EVERYTHING, TYPING, WATCHING, Kind

CONTROL_SCOPE = "custom:jupyter-vnc:control"
# How stale the server's copy of its share list may be: a revoked share ends a recipient's
# connection within about this long.
SHARES_MAX_AGE = 2.0


class Role(enum.Enum):
    OWNER = "owner"
    ADMIN = "admin"  # may start and stop this server (a hub admin): full control, like the owner
    CONTROL = "control"  # a share recipient the owner let type and point
    VIEW = "view"  # a share recipient who may only watch

    @property
    def may_type(self) -> bool:
        return self is not Role.VIEW

    def narrowed(self, view_only: bool) -> Role:
        """This role, or watching when the viewer asked only to watch (``?view_only=1``)."""
        return Role.VIEW if view_only else self

    @property
    def sends(self) -> frozenset[Kind]:
        """The kinds of RFB message this role's viewer may get through to the desktop."""
        if self.may_manage:
            return EVERYTHING
        return TYPING if self is Role.CONTROL else WATCHING

    @property
    def may_manage(self) -> bool:
        """Restart, stop, DELETE."""
        return self in (Role.OWNER, Role.ADMIN)


@dataclass
class Visitor:
    name: str
    role: Role
    groups: tuple[str, ...] = ()
    view_only: bool = False  # asked for watching only (``?view_only=1``), whatever the role allows
    token: str = field(default="", repr=False)  # to ask the hub again whether access still holds


def owner_name() -> str:
    return os.environ.get("JUPYTERHUB_USER", "")


def server_name() -> str:
    return os.environ.get("JUPYTERHUB_SERVER_NAME", "")


@dataclass
class ShareList:
    """Who this server is shared with, as the hub says, and who of them may control the desktop."""

    control_users: frozenset[str] = frozenset()
    control_groups: frozenset[str] = frozenset()

    def grants_control(self, name: str, groups: tuple[str, ...]) -> bool:
        return name in self.control_users or bool(self.control_groups.intersection(groups))


def parse_shares(body: dict[str, Any]) -> ShareList:
    """The hub's ``GET /shares/{owner}/{server}`` reply: ``{"items": [{"user": {"name"}, "scopes"}]}``."""
    users: set[str] = set()
    groups: set[str] = set()
    for item in body.get("items") or []:
        if not isinstance(item, dict):
            continue
        scopes = item.get("scopes") or []
        if not any(isinstance(s, str) and s.split("!", 1)[0] == CONTROL_SCOPE for s in scopes):
            continue
        for kind, into in (("user", users), ("group", groups)):
            who = item.get(kind)
            if isinstance(who, dict) and isinstance(who.get("name"), str):
                into.add(who["name"])
    return ShareList(frozenset(users), frozenset(groups))


class ShareBook:
    """The server's own, briefly cached, copy of its share list."""

    def __init__(self, hub_auth: Any, log: Any) -> None:
        self._hub_auth = hub_auth
        self._log = log
        self._list: ShareList | None = None
        self._read_at = 0.0
        self._warned = False

    def forget(self) -> None:
        """The list just changed (the owner shared or revoked): read it afresh next time."""
        self._list = None

    async def current(self, max_age: float = SHARES_MAX_AGE) -> ShareList:
        if self._list is not None and time.monotonic() - self._read_at < max_age:
            return self._list
        url = f"{self._hub_auth.api_url}/shares/{quote(owner_name())}/{quote(server_name())}"
        headers = {"Authorization": f"token {self._hub_auth.api_token}"}
        try:
            reply = await AsyncHTTPClient().fetch(url, headers=headers, request_timeout=10)
            shares = parse_shares(json.loads(reply.body))
        except HTTPClientError as e:
            if not self._warned:
                self._warned = True
                self._log.warning(
                    "jupyter-vnc: cannot read this server's shares (%s): everyone it is shared with may "
                    "only watch. The spawner requests read:shares!server for the server's token.",
                    e,
                )
            shares = ShareList()  # nobody controls: everyone it is shared with watches
        except (OSError, ValueError) as e:
            # The hub is briefly away (restarting): keep what we knew rather than cut everyone off.
            self._log.warning("jupyter-vnc: cannot reach the hub for the share list: %s", e)
            return self._list or ShareList()
        self._list, self._read_at = shares, time.monotonic()
        return shares


def manage_scope() -> str:
    """JupyterHub's permission to start and stop this server: who holds it (the owner, hub admins, a
    share that grants it) may also restart and stop the desktop. The spawner asks for it in the
    server's OAuth tokens, so a token carries it exactly when its user holds it."""
    return f"servers!server={owner_name()}/{server_name()}"


async def role_of(model: dict[str, Any], book: ShareBook, manages: bool) -> Role:
    """The role of the hub user ``model`` (as the hub describes a token's owner) at this desktop;
    ``manages``: their token holds ``manage_scope()``."""
    name = model.get("name")
    if name and name == owner_name():  # a nameless model is nobody's, whatever the environment says
        return Role.OWNER
    if manages:
        return Role.ADMIN
    shares = await book.current()
    return Role.CONTROL if shares.grants_control(name, tuple(model.get("groups") or ())) else Role.VIEW
