"""Sharing from the desktop itself: the owner's viewer lists, grants and revokes the hub's shares.

The owner's browser asks this server (``/vnc/api/shares``); the server asks the hub with its own token.
The spawner requests for that token only what it needs here (``shares!server``, to change the shares
of this one server; ``read:users:name`` and ``read:groups:name``, which the hub asks of anyone who
shares by name; the control scope where the hub defines it), and the hub grants no more than the
owner holds. A right the hub does not grant comes back as a message saying which, not as an error.

JupyterHub's shares do not expire. A share given for a time is remembered here, in a small file in the
owner's home (``~/.jupyter-vnc/shares/<server>.json``, so a restarted server still ends it), and revoked
at the hub when its time is up; the recipient's open connections then end as with any revocation.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import tempfile
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any
from urllib.parse import quote

from tornado.httpclient import AsyncHTTPClient, HTTPClientError

from .sharing import CONTROL_SCOPE, owner_name, server_name

RIGHTS = ("watch", "control")
KINDS = ("user", "group")
MAX_MINUTES = 30 * 24 * 60  # a share for longer than a month is a share without an end
# Hub user and group names: no slash (they sit in URL paths), no whitespace, no control characters.
_NAME = re.compile(r"[^/\s\x00-\x1f\x7f]{1,255}")
EXPIRY_CHECK_SECONDS = 15.0


class ShareError(Exception):
    """A request the hub (or this server) refused, with the message for the owner's viewer."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class Grant:
    kind: str  # "user" or "group"
    name: str
    right: str  # "watch" or "control"
    minutes: int | None = None  # how long the share lasts; None: until revoked


def _check_who(kind: str, name: str) -> None:
    if kind not in KINDS:
        raise ShareError(400, f"share with a user or a group, not {kind!r}")
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise ShareError(400, f"{name!r} is not a {kind} name")


def parse_grant(body: bytes) -> Grant:
    """The owner's ``POST /vnc/api/shares`` body: ``{"user": "ben"}`` or ``{"group": "lab"}``, with
    ``"right": "watch"|"control"`` (default watch) and ``"minutes": N`` (optional). Anything else is
    refused with the reason, before the hub is asked."""
    try:
        data = json.loads(body or b"null")
    except ValueError:
        raise ShareError(400, "the request body must be JSON") from None
    if not isinstance(data, dict):
        raise ShareError(400, 'the request body must be a JSON object such as {"user": "ben"}')
    unknown = sorted(set(data) - {"user", "group", "right", "minutes"})
    if unknown:
        raise ShareError(400, f"unknown field(s): {', '.join(unknown)}")
    given = [k for k in KINDS if data.get(k) not in (None, "")]
    if len(given) != 1:
        raise ShareError(400, "name exactly one user or one group to share with")
    kind = given[0]
    name = data[kind]
    if not isinstance(name, str):
        raise ShareError(400, f"{kind} must be a name")
    name = name.strip()
    _check_who(kind, name)
    right = data.get("right", "watch")
    if right not in RIGHTS:
        raise ShareError(400, f'right must be "watch" or "control", not {right!r}')
    minutes = data.get("minutes")
    whole = isinstance(minutes, int) and not isinstance(minutes, bool)
    if minutes is not None and not (whole and 1 <= minutes <= MAX_MINUTES):
        raise ShareError(400, f"minutes must be a whole number from 1 to {MAX_MINUTES}, or left out")
    if name == owner_name() and kind == "user":
        raise ShareError(400, "this is your own desktop: there is no need to share it with yourself")
    return Grant(kind, name, right, minutes)


def _iso(ts: float | None) -> str | None:
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")


def share_rows(body: dict[str, Any], expiries: dict[str, float]) -> list[dict[str, Any]]:
    """The hub's share list as the viewer shows it: who, which right, since and until when."""
    rows = []
    for item in body.get("items") or []:
        if not isinstance(item, dict):
            continue
        kind = item.get("kind") if item.get("kind") in KINDS else ("group" if item.get("group") else "user")
        who = item.get(kind)
        if not isinstance(who, dict) or not isinstance(who.get("name"), str):
            continue
        scopes = [s for s in item.get("scopes") or [] if isinstance(s, str)]
        control = any(s.split("!", 1)[0] == CONTROL_SCOPE for s in scopes)
        rows.append(
            {
                "kind": kind,
                "name": who["name"],
                "right": "control" if control else "watch",
                "created_at": item.get("created_at"),
                "expires_at": _iso(expiries.get(f"{kind}:{who['name']}")),
            }
        )
    rows.sort(key=lambda r: (r["kind"], r["name"]))
    return rows


class ExpiryFile:
    """When each timed share of this server ends (``{"user:ben": <epoch seconds>}``), kept in the
    owner's home so that a restarted server still ends it."""

    def __init__(self, path: Path) -> None:
        self.path = path

    @classmethod
    def for_this_server(cls) -> ExpiryFile:
        name = server_name() or "_default"
        return cls(Path.home() / ".jupyter-vnc" / "shares" / f"{quote(name, safe='')}.json")

    def read(self) -> dict[str, float]:
        try:
            data = json.loads(self.path.read_text())
        except (OSError, ValueError):
            return {}
        if not isinstance(data, dict):
            return {}
        return {k: float(v) for k, v in data.items() if isinstance(k, str) and isinstance(v, int | float)}

    def write(self, expiries: dict[str, float]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        # Whole file or nothing: a server killed mid-write must not lose the other shares' ends.
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=".shares-")
        try:
            with os.fdopen(fd, "w") as f:
                json.dump(expiries, f)
            os.replace(tmp, self.path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise

    def set(self, key: str, when: float | None) -> None:
        expiries = self.read()
        if when is None:
            if key not in expiries:
                return
            expiries.pop(key)
        else:
            expiries[key] = when
        self.write(expiries)


class ShareDesk:
    """This server's shares at the hub, as the owner's viewer manages them."""

    def __init__(self, hub_auth: Any, log: Any, expiries: ExpiryFile | None = None) -> None:
        self._hub_auth = hub_auth
        self._log = log
        self.expiries = expiries or ExpiryFile.for_this_server()

    def _scope(self, base: str) -> str:
        return f"{base}!server={owner_name()}/{server_name()}"

    async def _hub(self, method: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        url = f"{self._hub_auth.api_url}/shares/{quote(owner_name())}/{quote(server_name())}"
        try:
            reply = await AsyncHTTPClient().fetch(
                url,
                method=method,
                headers={
                    "Authorization": f"token {self._hub_auth.api_token}",
                    "Content-Type": "application/json",
                },
                body=None if body is None else json.dumps(body),
                request_timeout=10,
            )
        except HTTPClientError as e:
            raise ShareError(*self._explain(e)) from None
        except OSError as e:
            raise ShareError(503, f"the hub cannot be reached now ({e}); try again in a moment") from None
        text = reply.body or b"{}"
        try:
            data = json.loads(text)
        except ValueError:
            data = {}
        return data if isinstance(data, dict) else {}

    def _explain(self, e: HTTPClientError) -> tuple[int, str]:
        """The hub's refusal in words an owner can act on."""
        message = ""
        if e.response is not None and e.response.body:
            with contextlib.suppress(ValueError, AttributeError):
                message = str(json.loads(e.response.body).get("message") or "")
        if e.code == 404 and not message.startswith("No such"):
            return 501, "this hub cannot share servers (sharing needs JupyterHub 5 or later)"
        if CONTROL_SCOPE in message:  # not granted to the owner (403), or not defined by the hub (400)
            return 403, (
                "this hub does not let you give control of your desktop; share it to watch, or ask "
                f"the hub's admins for {CONTROL_SCOPE}"
            )
        if e.code == 403:
            if "read:users:name" in message or "read:groups:name" in message:
                return 403, "this hub does not let you look up users or groups by name to share with"
            return 403, f"the hub does not let you share this desktop: {message or 'permission denied'}"
        if e.code == 400 and message:
            return 400, message  # "No such user: zed", "No such group: x"
        self._log.warning("jupyter-vnc: the hub refused a share request: %s %s", e.code, message)
        return 502, f"the hub refused ({e.code}{': ' + message if message else ''})"

    async def list(self) -> list[dict[str, Any]]:
        await self.end_expired()
        return share_rows(await self._hub("GET"), self.expiries.read())

    async def grant(self, grant: Grant) -> list[dict[str, Any]]:
        who = {grant.kind: grant.name}
        scopes = [self._scope("access:servers")]
        if grant.right == "control":
            scopes.append(self._scope(CONTROL_SCOPE))
        await self._hub("POST", {**who, "scopes": scopes})
        if grant.right == "watch":
            # A share that allowed control before is narrowed to watching (POST only ever adds).
            await self._hub("PATCH", {**who, "scopes": [self._scope(CONTROL_SCOPE)]})
        key = f"{grant.kind}:{grant.name}"
        self.expiries.set(key, None if grant.minutes is None else time.time() + 60 * grant.minutes)
        self._log.info(
            "jupyter-vnc: shared with %s %s to %s%s", grant.kind, grant.name, grant.right,
            f" for {grant.minutes} min" if grant.minutes else "",
        )  # fmt: skip
        return await self.list()

    async def revoke(self, kind: str, name: str) -> list[dict[str, Any]]:
        _check_who(kind, name)
        await self._hub("PATCH", {kind: name})  # no scopes: the whole share goes
        self.expiries.set(f"{kind}:{name}", None)
        self._log.info("jupyter-vnc: no longer shared with %s %s", kind, name)
        return share_rows(await self._hub("GET"), self.expiries.read())

    async def end_expired(self, now: float | None = None) -> list[str]:
        """Revoke every share whose time is up; the keys ended. A hub that cannot be asked now is
        asked again on the next round."""
        now = time.time() if now is None else now
        ended = []
        for key, when in self.expiries.read().items():
            if when > now:
                continue
            kind, _, name = key.partition(":")
            try:
                _check_who(kind, name)
                await self._hub("PATCH", {kind: name})
            except ShareError as e:
                if e.status == 400:  # not a share this file should hold: drop it
                    self.expiries.set(key, None)
                self._log.warning("jupyter-vnc: could not end the share with %s: %s", key, e)
                continue
            self.expiries.set(key, None)
            self._log.info("jupyter-vnc: the share with %s %s has run out; revoked", kind, name)
            ended.append(key)
        return ended
