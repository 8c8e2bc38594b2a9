"""HTTP routes under ``<base_url>vnc/``: the viewer page, its static files and the desktop API."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import json
import os
from pathlib import Path
from typing import Any

import jinja2
from jupyter_server._tz import utcnow
from jupyter_server.auth.decorator import authorized
from jupyter_server.base.handlers import APIHandler, FileFindHandler, JupyterHandler
from jupyter_server.utils import url_path_join
from tornado import web

from . import desktop_size, native_client
from .app_launch import AppStartError, start_app
from .apps import App, icon_type
from .bridge import DesktopHandlerMixin, DesktopWebSocket
from .desktop import DesktopError
from .resources import templates_dir
from .share_grants import ShareDesk, ShareError, parse_grant
from .sharing import Role, Visitor

STATIC_DIR = Path(__file__).resolve().parent / "static"
_YES, _NO = {"1", "true", "yes"}, {"0", "false", "no"}


def viewer_config(handler: DesktopHandlerMixin, base: str) -> dict[str, Any]:
    """What the viewer needs to find its desktop (the page embeds it; the Lab panel fetches it)."""
    hub_prefix = os.environ.get("JUPYTERHUB_BASE_URL")
    return {
        "websocket_path": url_path_join(base, "vnc", "websockify"),
        "status_url": url_path_join(base, "vnc", "api", "status"),
        "desktop_url": url_path_join(base, "vnc", "api", "desktop"),
        "activity_url": url_path_join(base, "vnc", "api", "activity"),
        "lab_url": url_path_join(base, "lab"),
        # Sharing from the viewer: only behind a hub (which keeps the shares); the link a recipient opens.
        "shares_url": (
            url_path_join(base, "vnc", "api", "shares") if "jupyter_vnc_shares" in handler.settings else ""
        ),
        "viewer_url": url_path_join(base, "vnc") + "/",
        "hub_url": url_path_join(hub_prefix, "hub", "home") if hub_prefix else "",
        "clipboard": handler.desktop.clipboard,
        "title": handler.desktop.desktop_name,
    }


def request_token(handler: JupyterHandler) -> str:
    """The token that authenticated this request, for the page's websocket to present in its URL.

    Behind JupyterHub this is the user's own OAuth token (the one JupyterLab's page also holds): with
    cookie authentication of websockets turned off, a token in the URL is the only way a websocket
    authenticates. Only per-user origins (c.JupyterHub.subdomain_host) keep it from other users: on a
    hub without them every user's server shares one origin, and a page that another user's server
    serves can open this page (or the user's JupyterLab) in a window and read the token out of it.
    Its opener may script a same-origin window at will, so no page can keep its token (or its live
    desktop connection) from it; `jupyter-vnc doctor` warns about such a hub. Outside JupyterHub the
    server's cookie works for websockets and no token is needed."""
    hub_auth = getattr(handler.identity_provider, "hub_auth", None)
    if hub_auth is None:
        return ""
    return str(hub_auth.get_token(handler) or "")


@functools.lru_cache(maxsize=8)
def _static_version(name: str, mtime_ns: int) -> str:
    """A hash of a static file's content (keyed by its mtime too, for a rebuild under a running
    server): in its URL as ``?v=``, the browser may keep the file for good (tornado's static handler
    then answers with a year's max-age) instead of asking again on every page."""
    return hashlib.sha256((STATIC_DIR / name).read_bytes()).hexdigest()[:16]


def static_url(base_url: str, name: str) -> str:
    path = url_path_join(base_url, "vnc", "static", name)
    try:
        return f"{path}?v={_static_version(name, (STATIC_DIR / name).stat().st_mtime_ns)}"
    except OSError:
        return path  # not built: the page says so (the script does not load)


def _json_for_script(value: Any) -> str:
    """JSON that can sit inside <script type="application/json"> whatever the strings contain."""
    return json.dumps(value).replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


class ViewerHandler(DesktopHandlerMixin, JupyterHandler):
    """The noVNC page. Starting the desktop is left to the websocket, so the page shows at once."""

    _env: jinja2.Environment | None = None

    @classmethod
    def environment(cls) -> jinja2.Environment:
        if cls._env is None:
            cls._env = jinja2.Environment(
                loader=jinja2.FileSystemLoader(str(templates_dir())), autoescape=True
            )
        return cls._env

    @property
    def content_security_policy(self) -> str:
        """The server's policy, with framing forbidden whatever the server allows elsewhere: on a hub
        without per-user origins every user's server shares one origin, and a page that another
        user's server serves could otherwise frame this one and act through it as its owner. (The
        JupyterLab tab draws the desktop in Lab's own page instead.) This does not stop such a page
        from opening this one in a window of its own: only per-user origins do (see request_token)."""
        kept = [
            d.strip()
            for d in super().content_security_policy.split(";")
            if d.strip() and not d.strip().lower().startswith("frame-ancestors")
        ]
        return "; ".join(["frame-ancestors 'none'", *kept])

    @web.authenticated
    @authorized("read")
    def get(self) -> None:
        # The desktop's state as of now (no X query, no sharing lookup: those come with the viewer's
        # status polls), so that the viewer opens its websocket without asking first.
        initial = {"state": self.desktop.state, "message": self.desktop.message, "idle": self.idle.status()}
        config = {
            **viewer_config(self, self.base_url),
            "token": request_token(self),
            "initial_status": initial,
        }
        page = (
            self.environment()
            .get_template("viewer.html")
            .render(
                script_url=static_url(self.base_url, "viewer.js"),
                style_url=static_url(self.base_url, "viewer.css"),
                config_json=_json_for_script(config),
            )
        )
        self.set_header("Cache-Control", "no-store")
        self.finish(page)


class ConfigHandler(DesktopHandlerMixin, APIHandler):
    """The viewer's configuration as JSON, for the JupyterLab panel (which has its own token)."""

    _track_activity = False  # a panel opening is no one working at the desktop

    @web.authenticated
    @authorized("read")
    def get(self) -> None:
        self.set_header("Cache-Control", "no-store")
        self.finish(json.dumps(viewer_config(self, self.base_url)))


class StatusHandler(DesktopHandlerMixin, APIHandler):
    """Desktop state as JSON. APIHandler: an unauthenticated call gets 403, not a login redirect."""

    # Viewers poll this every few seconds, also from a forgotten tab: it must not keep a GPU job
    # "active" (an APIHandler's reply would stamp the server's last activity). Input at the desktop
    # counts instead (bridge.py).
    _track_activity = False

    @web.authenticated
    @authorized("read")
    async def get(self) -> None:
        self.set_header("Content-Type", "application/json")
        self.set_header("Cache-Control", "no-store")
        people = await self.people()
        if people is None:
            self.set_status(403)
            self.finish(
                json.dumps({"state": "refused", "message": "this desktop is no longer shared with you"})
            )
            return
        status = {**await self.desktop.status(), **people, "idle": self.idle.status()}
        login = self.settings.get("jupyter_vnc_ssh_login")
        if login is not None and people["you"]["role"] in ("owner", "admin") and self.desktop.running:
            status["native_client"] = native_client.commands(self.desktop.socket_path, login)
        self.finish(json.dumps(status))

    async def people(self) -> dict[str, Any] | None:
        """Who asks and as what; the owner (and an admin) also learns who else is connected. None: the
        asker's share was revoked (the single-user server's token cache would let them in for minutes)."""
        role = await self.http_role()
        user = getattr(self.current_user, "username", "")
        visitor = Visitor(user, role, token=request_token(self))
        if role is not Role.OWNER and await self.audience.current_role(visitor) is None:
            return None
        you = {"user": user, "role": role.value}
        watchers = self.audience.watchers() if role.may_manage else []
        return {"you": you, "owner": os.environ.get("JUPYTERHUB_USER", user), "watchers": watchers}


class ActivityHandler(DesktopHandlerMixin, APIHandler):
    """POST: the user is here ("Keep it" before an idle shutdown, "Resume" on a paused viewer).

    From someone who may type it counts as input; a watcher's resume only reopens their own view."""

    _track_activity = False  # stamped below, only for someone who may type

    @web.authenticated
    @authorized("read")
    async def post(self) -> None:
        if (await self.http_role()).may_type:
            self.idle.touch()
            self.settings["api_last_activity"] = utcnow()
        self.set_header("Cache-Control", "no-store")
        self.finish(json.dumps(self.idle.status()))


class DesktopHandler(DesktopHandlerMixin, APIHandler):
    """POST: start the desktop, or restart it (``?restart=1``, the "Restart desktop" button), or size an
    unwatched one to the viewer JupyterLab is about to open (``?size=WxH``). DELETE: end it and every
    process in it. The owner and hub admins only."""

    def _refuse(self, message: str, status: int = 400) -> None:
        self.set_status(status)
        self.finish(json.dumps({"state": "refused", "message": message}))

    async def _not_manager(self) -> bool:
        """Restart and stop belong to the owner (and hub admins), not to those it is shared with."""
        if (await self.http_role()).may_manage:
            return False
        owner = os.environ.get("JUPYTERHUB_USER", "its owner")
        self._refuse(f"only {owner} can restart or stop this desktop; it is shared with you", 403)
        return True

    @web.authenticated
    @authorized("execute")
    async def post(self) -> None:
        if await self._not_manager():
            return
        # The request says everything in its URL; a body may only be empty or a small JSON object (what
        # JupyterLab's request helper sends), so garbage is refused, not silently taken as "start".
        body = self.request.body
        if len(body) > 4096:
            return self._refuse(f"request body too large ({len(body)} bytes); send none")
        if body.strip():
            try:
                parsed = json.loads(body)
            except ValueError:
                parsed = None
            if not isinstance(parsed, dict):
                return self._refuse("request body must be empty or a JSON object")
        size = self.get_argument("size", "")
        if size:
            return await self._fit(size)
        restart = self.get_argument("restart", "0")
        if restart not in _YES | _NO:
            return self._refuse("restart must be 1 or 0")
        try:
            if restart in _YES:
                await self.desktop.restart()
            else:
                await self.desktop.ensure_running()
        except DesktopError as e:
            self.set_status(503)
            self.finish(json.dumps({"state": "failed", "message": str(e)}))
            return
        self.finish(json.dumps(await self.desktop.status()))

    async def _fit(self, size: str) -> None:
        """``?size=WxH``: JupyterLab's size for the viewer it is about to open (desktop_size.py). Applied
        only to a running (or starting) desktop nobody is looking at: viewers size it themselves. Never
        starts a desktop."""
        try:
            width, height = desktop_size.parse_size(size)
        except desktop_size.SizeError as e:
            return self._refuse(str(e))
        if self.desktop.state == "starting":
            with contextlib.suppress(DesktopError):
                await self.desktop.ensure_running()
        if not self.desktop.running or self.audience.connected():
            return self.finish(json.dumps({"fitted": False, **await self.desktop.status()}))
        try:
            await desktop_size.resize(self.desktop.socket_path, width, height)
        except (OSError, asyncio.TimeoutError, asyncio.IncompleteReadError, desktop_size.SizeError) as e:
            self.log.info("jupyter-vnc: the desktop was not sized to %s: %s", size, e)
            return self.finish(json.dumps({"fitted": False, **await self.desktop.status()}))
        self.finish(json.dumps({"fitted": True, **await self.desktop.status()}))

    @web.authenticated
    @authorized("execute")
    async def delete(self) -> None:
        if await self._not_manager():
            return
        await self.desktop.stop()
        self.set_status(204)
        self.finish()


class SharesHandler(DesktopHandlerMixin, APIHandler):
    """The owner's sharing of this desktop (share_grants.py).

    GET: ``{"shares": [{"kind", "name", "right", "created_at", "expires_at"}], "watching": [...]}``;
    POST ``{"user"|"group": name, "right": "watch"|"control", "minutes": N}``: share, or change a share;
    DELETE ``.../shares/<user|group>/<name>``: revoke it (the recipient's connections end).
    The owner and hub admins only; the hub keeps the shares, asked with the server's own token."""

    _track_activity = False  # managing who watches is not work at the desktop
    jupyter_vnc_desktop_route = False  # never a share recipient's (guests.py refuses them before this)

    def _answer(self, status: int, body: dict[str, Any]) -> None:
        self.set_header("Cache-Control", "no-store")
        self.set_status(status)
        self.finish(json.dumps(body))

    async def _desk(self) -> ShareDesk | None:
        desk: ShareDesk | None = self.settings.get("jupyter_vnc_shares")
        if desk is None:
            self._answer(501, {"message": "sharing needs JupyterHub: this server runs without one"})
            return None
        if not (await self.http_role()).may_manage:
            owner = os.environ.get("JUPYTERHUB_USER", "its owner")
            self._answer(403, {"message": f"only {owner} can share this desktop"})
            return None
        return desk

    async def _reply(self, desk: ShareDesk, work: Any) -> None:
        try:
            shares = await work
        except ShareError as e:
            self._answer(e.status, {"message": str(e)})
            return
        if self.audience.book is not None:
            self.audience.book.forget()  # a narrowed share takes effect at the next check
        self._answer(200, {"shares": shares, "watching": self.audience.watchers()})

    @web.authenticated
    @authorized("read")
    async def get(self) -> None:
        desk = await self._desk()
        if desk is not None:
            await self._reply(desk, desk.list())

    @web.authenticated
    @authorized("execute")
    async def post(self) -> None:
        desk = await self._desk()
        if desk is None:
            return
        try:
            grant = parse_grant(self.request.body)
        except ShareError as e:
            return self._answer(e.status, {"message": str(e)})
        await self._reply(desk, desk.grant(grant))

    @web.authenticated
    @authorized("execute")
    async def delete(self, kind: str, name: str) -> None:
        desk = await self._desk()
        if desk is not None:
            await self._reply(desk, desk.revoke(kind, name))


class AppsHandler(DesktopHandlerMixin, APIHandler):
    """The admin's apps (apps.py). GET ``/vnc/api/apps``: ``{"apps": [{"name", "title", "gpu", "icon"}]}``;
    GET ``/vnc/api/apps/<name>/icon``: its icon; POST ``/vnc/api/apps/<name>``: start it in the desktop
    (starting the desktop first if needed), maximized. The owner and hub admins only: starting a program
    is typing a command. The command is the admin's; a request only names the app."""

    jupyter_vnc_desktop_route = False  # never a share recipient's (guests.py refuses them before this)

    def _answer(self, status: int, body: dict[str, Any]) -> None:
        self.set_header("Cache-Control", "no-store")
        self.set_status(status)
        self.finish(json.dumps(body))

    def _app(self, name: str) -> App | None:
        offered: dict[str, App] = self.settings.get("jupyter_vnc_apps") or {}
        app = offered.get(name)
        if app is None:
            choice = ", ".join(sorted(offered)) or "none"
            self._answer(404, {"message": f"no app named {name!r} in this desktop; offered: {choice}"})
        return app

    @web.authenticated
    @authorized("read")
    async def get(self) -> None:
        offered: dict[str, App] = self.settings.get("jupyter_vnc_apps") or {}
        self._answer(200, {"apps": [app.public() for app in offered.values()]})

    @web.authenticated
    @authorized("execute")
    async def post(self, name: str) -> None:
        if not (await self.http_role()).may_manage:
            owner = os.environ.get("JUPYTERHUB_USER", "its owner")
            return self._answer(403, {"message": f"only {owner} can start programs in this desktop"})
        body = self.request.body.strip()
        if body and body != b"{}":
            return self._answer(
                400, {"message": "send no body: the app's command is the site's, not the request's"}
            )
        app = self._app(name)
        if app is None:
            return
        try:
            await self.desktop.ensure_running()
            pid = await start_app(self.desktop, app)
        except DesktopError as e:
            return self._answer(503, {"state": "failed", "message": str(e)})
        except AppStartError as e:
            return self._answer(502, {"message": str(e)})
        self.log.info("jupyter-vnc: started %s (%s) in the desktop, pid %d", app.title, app.name, pid)
        self._answer(200, {"app": app.name, "pid": pid, "message": f"{app.title} is starting"})


class AppIconHandler(DesktopHandlerMixin, JupyterHandler):
    """GET ``/vnc/api/apps/<name>/icon``: the app's icon file (an image, not JSON: no APIHandler)."""

    jupyter_vnc_desktop_route = False
    _track_activity = False

    @web.authenticated
    @authorized("read")
    def get(self, name: str) -> None:
        app = (self.settings.get("jupyter_vnc_apps") or {}).get(name)
        try:
            data = Path(app.icon).read_bytes() if app is not None and app.icon else None
        except OSError:
            data = None
        if data is None:
            raise web.HTTPError(404, f"no icon for {name!r}")
        self.set_header("Content-Type", icon_type(app))
        self.set_header("Cache-Control", "private, max-age=3600")
        self.finish(data)


class StaticHandler(FileFindHandler):
    """The viewer's build (viewer.js, viewer.css): the same public files for everyone, served without
    authentication like Jupyter's own /static/ and JupyterLab's extension files. Behind JupyterHub an
    authenticated one cannot work: the page loads viewer.js as a module script, a CORS-mode request
    that carries no XSRF token, and JupyterHub refuses cookie authentication on those (redirect loop)."""

    jupyter_vnc_desktop_route = True  # a share recipient's viewer page loads it (guests.py)


def routes() -> list[tuple[str, type, dict[str, Any]] | tuple[str, type]]:
    """Patterns relative to the server's base_url (ExtensionApp prepends it)."""
    return [
        (r"/vnc/?", ViewerHandler),
        (r"/vnc/websockify", DesktopWebSocket),
        (r"/vnc/api/config", ConfigHandler),
        (r"/vnc/api/status", StatusHandler),
        (r"/vnc/api/desktop", DesktopHandler),
        (r"/vnc/api/activity", ActivityHandler),
        (r"/vnc/api/apps", AppsHandler),
        (r"/vnc/api/apps/([^/]+)/icon", AppIconHandler),
        (r"/vnc/api/apps/([^/]+)", AppsHandler),
        (r"/vnc/api/shares", SharesHandler),
        (r"/vnc/api/shares/(user|group)/([^/]+)", SharesHandler),
        (r"/vnc/static/(.*)", StaticHandler, {"path": str(STATIC_DIR)}),
    ]
