"""Share recipients are held at the desktop: on every request, at the server's door.

A share grants JupyterHub's ``access:servers``, which a Jupyter server takes as full access: terminals,
kernels, files, and JupyterLab's settings and workspaces, all as the owner. A "view only" recipient with
a terminal could drive the owner's desktop (``xdotool`` on her display); one who may PUT Lab's settings
can rebind the owner's keys to run a page of theirs in her Lab later. So a recipient reaches the
desktop's own routes (which apply their role themselves) and nothing else of the server.

Where it is enforced: the identity provider, which every Jupyter handler asks who is calling before it
does anything (``JupyterHandler.prepare``). An Authorizer alone is not enough: handlers that never ask
it (JupyterLab's pages, ``/api/me``, Lab's settings, workspaces and extension APIs) let a recipient
through. The server's authorizer is narrowed as well (:class:`GuestsAtTheDesktopOnly`), for handlers
that authorize without authenticating again.

And when: a recipient's token is looked up afresh at least every ``GUEST_CACHE_AGE`` seconds (the
owner's stays in the usual five-minute cache), so a revoked share ends all of their access within
about that long, and a share made again works at once instead of waiting out a cached refusal.

The owner, and whoever may start and stop the server in JupyterHub (hub admins), pass as they always
did.
"""

from __future__ import annotations

import inspect
import json
import time
from typing import Any, NoReturn

from jupyter_server.auth import Authorizer
from jupyter_server.utils import url_path_join
from jupyterhub.services.auth import _ExpiringDict
from tornado import web

from .sharing import manage_scope, owner_name

GUEST_CACHE_AGE = 1.0


def is_guest(model: dict[str, Any] | None, hub_auth: Any) -> bool:
    """A hub user who reached this server through a share: not its owner, may not start or stop it."""
    if model is None:
        return False
    return model.get("name") != owner_name() and not hub_auth.check_scopes({manage_scope()}, model)


class GuestAwareCache(_ExpiringDict):
    """JupyterHub's token cache, holding anyone but the owner only ``guest_age`` seconds (a refusal
    included: JupyterHub caches a token's "no access" like its access). A subclass of JupyterHub's own
    (private) cache class because ``HubAuth.cache`` accepts nothing else; pyproject pins the JupyterHub
    versions it is tested with, and tests/test_guests.py times revocation and re-sharing on them."""

    def __init__(self, max_age: float, guest_age: float = GUEST_CACHE_AGE) -> None:
        super().__init__(max_age)
        self.guest_age = guest_age

    def _check_age(self, key: Any) -> None:
        if key in self.values:
            value = self.values[key]
            owners = isinstance(value, dict) and value.get("name") == owner_name()
            if not owners and time.monotonic() - self.timestamps[key] > self.guest_age:
                self.values.pop(key)
                self.timestamps.pop(key)
        super()._check_age(key)


def hold_guests_at_the_desktop(identity_provider: Any, base_url: str, log: Any) -> None:
    """Make ``identity_provider`` (JupyterHub's) refuse a share recipient everywhere but the desktop."""
    hub_auth = identity_provider.hub_auth
    hub_auth.cache = GuestAwareCache(hub_auth.cache_max_age)
    inner = identity_provider.get_user
    root = url_path_join(base_url, "").rstrip("/")
    desktop = url_path_join(base_url, "vnc/")

    async def get_user(handler: web.RequestHandler) -> Any:
        user = inner(handler)
        if inspect.isawaitable(user):
            user = await user
        model = getattr(user, "hub_user", None)
        if not is_guest(model, hub_auth) or getattr(handler, "jupyter_vnc_desktop_route", False):
            return user
        assert model is not None
        if handler.request.method == "GET" and handler.request.path.rstrip("/") == root:
            _answer(handler, 302, location=desktop)  # the link a share gives leads to the server's root
        path = handler.request.path
        log.info("jupyter-vnc: %s may reach only the desktop here, not %s", model["name"], path)
        message = f"{owner_name()} shares only the desktop of this server with you"
        _answer(handler, 403, body=json.dumps({"message": message, "reason": "shared desktop only"}))

    identity_provider.get_user = get_user


def _answer(handler: web.RequestHandler, status: int, body: str = "", location: str = "") -> NoReturn:
    """End the request here with ``status``. Through tornado's own finish, not the handler's: some
    handlers change finish() (JupyterLab's licenses API requires an argument of its own there), and a
    403 raised into them never reaches the client."""
    handler.clear()
    handler.set_status(status)
    if location:
        handler.set_header("Location", location)
    if body:
        handler.set_header("Content-Type", "application/json")
    handler.set_header("Cache-Control", "no-store")
    web.RequestHandler.finish(handler, body)
    raise web.Finish()


class GuestsAtTheDesktopOnly(Authorizer):
    """The server's authorizer, narrowed for share recipients: they reach the desktop's routes (which
    apply their role themselves) and nothing else. The owner, and whoever may start and stop the
    server (hub admins), keep the server's own authorizer's answer."""

    def __init__(self, inner: Authorizer, **kwargs: Any) -> None:
        super().__init__(identity_provider=inner.identity_provider, **kwargs)
        self._inner = inner

    def is_authorized(self, handler: Any, user: Any, action: str, resource: str) -> Any:
        model = getattr(user, "hub_user", None)
        hub_auth = getattr(self._inner.identity_provider, "hub_auth", None)
        if getattr(handler, "jupyter_vnc_desktop_route", False) or not is_guest(model, hub_auth):
            return self._inner.is_authorized(handler, user, action, resource)
        self.log.info("jupyter-vnc: %s may reach only the desktop here, not %s", model["name"], resource)
        return False
