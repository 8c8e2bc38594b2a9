"""The websocket that carries RFB between the browser and the desktop's unix socket.

Our own bridge rather than jupyter-server-proxy's raw-socket proxy because that one measurably
slows the desktop down: it leaves TCP_NODELAY off on the browser-facing socket (small RFB messages then
wait on delayed ACKs, capping compressed updates near 20/s) and ignores backpressure (a slow client
lets its buffer grow without bound). Here every frame waits for the previous one to be flushed, and the
unix socket is only read as fast as the browser takes the data.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any

from jupyter_core.utils import ensure_async
from jupyter_server._tz import utcnow
from jupyter_server.auth.decorator import ws_authenticated
from jupyter_server.base.handlers import JupyterHandler
from jupyter_server.base.websocket import WebSocketMixin
from tornado import web
from tornado.iostream import StreamClosedError
from tornado.websocket import WebSocketClosedError, WebSocketHandler

from .audience import Audience
from .desktop import DesktopError, VNCDesktop
from .idle import DesktopIdle
from .rfb_input import WATCHING, Gate, ProtocolError
from .rfb_output import ServerStream
from .sharing import Role, Visitor, owner_name

READ_CHUNK = 256 * 1024  # one websocket frame carries at most this much RFB
# The viewer's frames are framed this much at a time, the event loop free in between: a 10 MB frame of
# update requests is a million messages, and the owner's server must not stop for it.
ADMIT_SLICE = 64 * 1024
# A share recipient's frames: noVNC's largest is a clipboard (and watchers send none). The default
# (10 MiB) would let one watcher make the server buffer and frame megabytes at a time.
GUEST_MAX_FRAME = 300 * 1024
# What a share recipient's connection may send, on average, and at once. A viewer sends a few hundred
# bytes a second (an update request per frame); the burst holds one clipboard of someone given control.
# Above it the server reads their socket no faster, so a flood of requests waits in their own TCP
# buffers instead of costing the owner's server its time.
GUEST_BYTES_PER_SECOND = 64 * 1024
GUEST_BURST = GUEST_MAX_FRAME
# Input stamps the server's last activity at most this often: a mouse move is many events a second,
# and JupyterHub reads the stamp only every few minutes anyway.
ACTIVITY_STEP = 5.0
_YES = {"1", "true", "yes"}


class DesktopHandlerMixin:
    """What every handler of the desktop shares: the desktop itself, and who may use it."""

    # A desktop runs arbitrary programs, like a terminal: an authorizer that denies terminals
    # denies desktops too.
    auth_resource = "terminals"
    # The routes a share recipient may reach (guests.py): each applies their role.
    jupyter_vnc_desktop_route = True
    settings: dict[str, Any]

    @property
    def desktop(self) -> VNCDesktop:
        return self.settings["jupyter_vnc_desktop"]

    @property
    def audience(self) -> Audience:
        return self.settings["jupyter_vnc_audience"]

    @property
    def idle(self) -> DesktopIdle:
        return self.settings["jupyter_vnc_idle"]

    async def http_role(self) -> Role:
        """The role of this request's user (the single-user server already checked their access)."""
        user = getattr(self, "current_user", None)
        return await self.audience.role_for(getattr(user, "hub_user", None))


class DesktopWebSocket(DesktopHandlerMixin, WebSocketMixin, WebSocketHandler, JupyterHandler):  # type: ignore[misc]
    _reader: asyncio.StreamReader | None = None
    _writer: asyncio.StreamWriter | None = None
    _pump: asyncio.Task[None] | None = None
    _gate: Gate
    _unread_logged = False
    _visitor: Visitor | None = None
    _outgoing: ServerStream | None = None  # a share recipient's side: the owner's clipboard left out
    _last_input = 0.0
    _budget = float(GUEST_BURST)  # bytes a share recipient may still send at once
    _budget_at = 0.0

    def set_default_headers(self) -> None:
        """JupyterHandler's default headers (CSP, ...) make no sense on a websocket upgrade."""

    def get_compression_options(self) -> None:
        # RFB updates are already compressed (Tight/ZRLE): deflating them again costs CPU for nothing.
        return None

    @property
    def max_message_size(self) -> int:  # type: ignore[override]
        visitor = self._visitor
        if visitor is not None and not visitor.role.may_manage:
            return GUEST_MAX_FRAME
        return super().max_message_size

    def select_subprotocol(self, subprotocols: list[str]) -> str | None:
        return "binary" if "binary" in subprotocols else None

    def _refusal(self) -> tuple[int, str] | None:
        """Why tornado would refuse this upgrade, asked before anything starts: a refused request
        (a plain GET, a foreign Origin) must neither start a stopped desktop nor open a connection."""
        headers = self.request.headers
        if headers.get("Upgrade", "").lower() != "websocket":
            return 400, 'Can "Upgrade" only to "WebSocket".'
        if "upgrade" not in {v.strip().lower() for v in headers.get("Connection", "").split(",")}:
            return 400, '"Connection" must be "Upgrade".'
        origin = headers.get("Origin") or headers.get("Sec-Websocket-Origin")
        if origin is not None and not self.check_origin(origin):
            return 403, "Cross origin websockets not allowed"
        return None

    async def _visitor_or_refusal(self) -> Visitor | str:
        """Who is connecting, and as what; or why they may not.

        Behind JupyterHub, the websocket must prove it comes from the user's own page. On a hub without
        per-user domains a page that another user's server serves sends the victim's cookie with any
        websocket it opens to the victim's server, so a cookie proves nothing here. JupyterHub can refuse
        cookie-only websockets (JUPYTERHUB_ALLOW_WEBSOCKET_COOKIE_AUTH=0), but it recognises a websocket
        by its Sec-Fetch-Mode header, which Chromium (156) does not send on the handshake: the cookie is
        then accepted anyway. So the desktop asks for the user's own token (the viewer page and the Lab
        panel put it in the URL) and checks it itself. That stops a page that only opens websockets; a
        same-origin page that opens the owner's viewer or JupyterLab in a window can read her token there
        and present it. Only per-user origins (c.JupyterHub.subdomain_host) close that."""
        user = self.current_user
        name = getattr(user, "username", "")
        view_only = self.get_argument("view_only", "0").lower() in _YES
        hub_auth = getattr(self.identity_provider, "hub_auth", None)
        if hub_auth is None:  # a plain Jupyter server: one user, its own authentication and Origin check
            return Visitor(name, Role.OWNER.narrowed(view_only), view_only=view_only)
        token = self.get_argument("token", "")
        if not token:
            header = self.request.headers.get("Authorization", "")
            scheme, _, value = header.partition(" ")
            token = value.strip() if scheme.lower() in {"token", "bearer"} else ""
        if not token:
            return "the desktop's websocket needs the user's token (open the desktop from its own page)"
        # Anyone but the owner is looked up afresh: a revoked share must not live on in the single-user
        # server's five-minute token cache.
        model = await hub_auth.user_for_token(
            token, session_id=hub_auth.get_session_id(self), use_cache=name == owner_name(), sync=False
        )
        if not model or model.get("name") != name or not hub_auth.check_scopes(hub_auth.access_scopes, model):
            return "the token does not belong to the user of this desktop"
        role = (await self.audience.role_for(model)).narrowed(view_only)
        return Visitor(name, role, tuple(model.get("groups") or ()), view_only, token)

    @ws_authenticated
    async def get(self, *args: str, **kwargs: str) -> None:
        allowed = await ensure_async(
            self.authorizer.is_authorized(self, self.current_user, "execute", "terminals")
        )
        if not allowed:
            raise web.HTTPError(403)
        visitor = await self._visitor_or_refusal()
        if isinstance(visitor, str):
            self.log.warning("jupyter-vnc: refused a desktop websocket: %s", visitor)
            raise web.HTTPError(403, visitor)
        self._visitor = visitor
        refusal = self._refusal()
        if refusal:
            raise web.HTTPError(*refusal)
        if not visitor.role.may_manage and not self.desktop.running:
            raise web.HTTPError(503, f"the desktop is not running; only {owner_name()} can start it")
        try:
            socket_path = await self.desktop.ensure_running()
            self._reader, self._writer = await asyncio.open_unix_connection(
                str(socket_path), limit=READ_CHUNK * 4
            )
        except (DesktopError, OSError) as e:
            self.log.error("jupyter-vnc: cannot connect to the desktop: %s", e)
            raise web.HTTPError(503, f"the desktop is not available: {e}") from e
        # Taken before the upgrade, so that many connections opened at once cannot all pass the count.
        if not self.audience.join(self, visitor):
            self._close_desktop_side()
            self.log.warning("jupyter-vnc: refused %s: too many connections to this desktop", self._who())
            raise web.HTTPError(
                429, f"{visitor.name} has {self.audience.guest_limit} connections open already"
            )
        try:
            await ensure_async(super().get(*args, **kwargs))
        finally:
            if self.ws_connection is None:  # the upgrade did not happen after all
                self.audience.leave(self)
                self._close_desktop_side()

    def open(self, *args: str, **kwargs: str) -> None:
        super().open()  # the mixin's ping loop keeps idle connections through proxies alive
        self.set_nodelay(True)
        assert self._visitor is not None
        guest = not self._visitor.role.may_manage
        self._gate = Gate(guest=guest)
        if guest:
            self._outgoing = ServerStream(self._gate.session)
        if self._visitor.role is not Role.OWNER:
            self.log.info(
                "jupyter-vnc: %s joined the desktop (%s)", self._visitor.name, self._visitor.role.value
            )
        self._pump = asyncio.create_task(self._desktop_to_browser())

    async def _desktop_to_browser(self) -> None:
        assert self._reader is not None
        try:
            while True:
                data = await self._reader.read(READ_CHUNK)
                if not data:
                    break
                if self._outgoing is not None:
                    data = self._outgoing_data(data)
                    if not data:
                        continue
                # Waiting for the flush is the backpressure: while the browser is slow we stop
                # reading, the socket buffer fills, and Xvnc sends fewer, larger updates.
                await self.write_message(data, binary=True)
        except (WebSocketClosedError, StreamClosedError, OSError):
            pass  # OSError: Xvnc dropped this connection (it drops a client that reads too slowly)
        except ProtocolError as e:
            self.log.warning("jupyter-vnc: closing %s's connection: the desktop's stream: %s", self._who(), e)
            self.close(1008, "the desktop's stream could not be followed")
        finally:
            self.close()

    def _outgoing_data(self, data: bytes) -> bytes:
        """A share recipient's share of the desktop's bytes: the owner's clipboard and selection reach
        only someone she gave control (rfb_output)."""
        assert self._outgoing is not None and self._visitor is not None
        self._outgoing.clipboard = self._visitor.role.may_type
        return self._outgoing.feed(data)

    def _who(self) -> str:
        visitor = self._visitor
        return f"{visitor.name} ({visitor.role.value})" if visitor else "a viewer"

    async def on_message(self, message: str | bytes) -> None:
        raw = message.encode() if isinstance(message, str) else message
        if self._outgoing is not None:  # a share recipient: at their rate
            await self._pace(len(raw))
        for start in range(0, len(raw), ADMIT_SLICE):
            if start:
                await asyncio.sleep(0)  # bounded work per turn of the event loop
            if self._writer is None:
                return
            data = self._admit(raw[start : start + ADMIT_SLICE])
            writer = self._writer  # None: refused, the connection ends and nothing more goes on
            if not data or writer is None:
                continue
            writer.write(data)
            try:
                await writer.drain()
            except OSError:  # Xvnc ended this connection: so does the bridge
                self.close()
                return

    async def _pace(self, size: int) -> None:
        """Wait while a share recipient sends faster than GUEST_BYTES_PER_SECOND. Tornado reads their
        next message only after this one is handled: the wait is backpressure on their socket."""
        now = time.monotonic()
        elapsed = now - self._budget_at if self._budget_at else 0.0
        self._budget = min(GUEST_BURST, self._budget + elapsed * GUEST_BYTES_PER_SECOND) - size
        self._budget_at = now
        if self._budget < 0:
            await asyncio.sleep(-self._budget / GUEST_BYTES_PER_SECOND)

    def _admit(self, data: bytes) -> bytes:
        """What of the viewer's bytes reaches the desktop (rfb_input.Gate): everything for the owner,
        keys, pointer and clipboard too for someone given control, only how it wants pixels for a
        watcher. Input that gets through is the user's activity (the idle culler and shutdown read it)."""
        visitor = self._visitor
        admitted = self._gate.admit(data, visitor.role.sends if visitor else WATCHING)
        if admitted.input:
            self._input_seen()
        if admitted.refusal:
            self.log.warning("jupyter-vnc: closing %s's connection: %s", self._who(), admitted.refusal)
            self._close_desktop_side()  # nothing more of this connection may reach the desktop
            self.close(1008, "unexpected message from a view-only viewer")
        elif not self._gate.following and not self._unread_logged:
            self._unread_logged = True
            self.log.warning("jupyter-vnc: viewer stream not followed any more; all it sends is activity")
        return admitted.data

    def _input_seen(self) -> None:
        """Keys, pointer and clipboard are the user's activity; update requests and an open but
        untouched viewer are not."""
        self.idle.touch()
        now = time.monotonic()
        if now - self._last_input >= ACTIVITY_STEP:
            self._last_input = now
            self.settings["api_last_activity"] = utcnow()

    def on_close(self) -> None:
        self.audience.leave(self)
        if self._pump is not None:
            self._pump.cancel()
        self._close_desktop_side()

    def _close_desktop_side(self) -> None:
        if self._writer is not None:
            with contextlib.suppress(Exception):
                self._writer.close()
            self._writer = None
