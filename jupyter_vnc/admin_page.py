"""The hub's "Desktops" page: every live desktop for the hub's admins, with stop and cancel.

A JupyterHub service run by the hub (``python -m jupyter_vnc.admin_page``; the admin guide has the
config). Its page and its JSON (``api/desktops``) list what ``jupyter-vnc sessions --json`` lists (from
the shared registry where there is one, else from the hub), plus for each desktop:

- a queued one's Slurm state in words (the spawn's latest message: "Waiting in the Slurm queue: ...
  (Priority)");
- who is watching a running one and with which right, asked of the desktop's own server with the
  service's token (which may manage every server, so the server tells it as it tells an admin).

Only users whose token for this service carries ``admin:servers`` see it (hub admins). Stop and cancel
go through the hub's API, as a stop from the hub's own admin page does: the job is cancelled and the
server says why to its owner.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ctypes
import ctypes.util
import json
import os
import signal
import sys
import time
from dataclasses import asdict
from typing import Any
from urllib.parse import quote, urlparse

import jinja2
from jupyterhub.services.auth import HubOAuthCallbackHandler, HubOAuthenticated
from jupyterhub.utils import url_path_join
from tornado import web
from tornado.httpclient import AsyncHTTPClient, HTTPClientError
from tornado.ioloop import IOLoop, PeriodicCallback

from .cli.hubapi import HubAPI, HubError
from .cli.sessions import from_registry, server_models, sessions_from_hub
from .resources import template_path

ADMIN_SCOPE = "admin:servers"
PR_SET_PDEATHSIG = 1
PROGRESS_WAIT = 1.0  # seconds to read a queued spawn's event stream for its latest message


def server_url(model: dict[str, Any], public_url: str) -> str:
    """Where the desktop's server answers through the hub's proxy: the model's URL (a whole URL on a
    hub with per-user domains), else the path on the public URL."""
    url = str(model.get("url") or "")
    return url if urlparse(url).netloc else public_url.rstrip("/") + url


def loopback_for_localhost(url: str) -> tuple[str, str]:
    """(url, Host header): a ``*.localhost`` name (per-user domains on one machine, RFC 6761) is the
    loopback address, which the system's resolver does not always know; other names are left to DNS."""
    parsed = urlparse(url)
    if not (parsed.hostname or "").endswith(".localhost"):
        return url, ""
    port = f":{parsed.port}" if parsed.port else ""
    return parsed._replace(netloc=f"127.0.0.1{port}").geturl(), parsed.netloc


class Desktops:
    """Reads the desktops once per page view (a few hub calls, one status call per running desktop)."""

    def __init__(
        self, hub: HubAPI, token: str, public_url: str, registry_url: str = "", password_file: str = ""
    ):
        self.hub = hub
        self.token = token
        self.public_url = public_url
        self.registry_url = registry_url
        self.password_file = password_file

    async def listing(self) -> list[dict[str, Any]]:
        users = await asyncio.to_thread(self.hub.users)
        models = server_models(users)
        if self.registry_url:
            sessions, _ = await from_registry(self.registry_url, self.password_file)
        else:
            sessions = sessions_from_hub(models)
        rows = []
        for session in sorted(sessions, key=lambda s: (s.state != "queued", s.user, s.server)):
            if session.state not in ("queued", "running", "unknown"):
                continue
            model = models.get((session.user, session.server), {})
            row = {**asdict(session), "seconds_left": session.seconds_left(), "viewers": None}
            if session.state == "queued" and not row["message"] and model.get("progress_url"):
                row["message"] = await self._latest_progress(model["progress_url"])
            rows.append((row, model))
        await asyncio.gather(*(self._viewers(row, model) for row, model in rows if row["state"] == "running"))
        return [row for row, _ in rows]

    async def _viewers(self, row: dict[str, Any], model: dict[str, Any]) -> None:
        """Who watches the desktop now, as its server tells an admin; None where it cannot be asked."""
        base = server_url(model, self.public_url)
        if not model.get("ready") or not urlparse(base).netloc:
            return  # no address for it: a hub without per-user domains needs --public-url
        url, host = loopback_for_localhost(url_path_join(base, "vnc/api/status"))
        headers = {"Authorization": f"token {self.token}", **({"Host": host} if host else {})}
        try:
            reply = await AsyncHTTPClient().fetch(
                url, headers=headers, request_timeout=5, follow_redirects=False
            )
            row["viewers"] = json.loads(reply.body).get("watchers", [])
        except (HTTPClientError, OSError, ValueError):
            row["viewers"] = None

    async def _latest_progress(self, progress_url: str) -> str:
        """The last message of a pending spawn's event stream (all past events come at once)."""
        latest = ""

        def take(chunk: bytes) -> None:
            nonlocal latest
            for line in chunk.decode(errors="replace").splitlines():
                if line.startswith("data:"):
                    try:
                        latest = json.loads(line[5:]).get("message", latest) or latest
                    except ValueError:
                        continue

        hub = urlparse(self.hub.base)
        url = f"{hub.scheme}://{hub.netloc}{progress_url}"  # the model's URL holds the hub's base_url
        # The stream stays open while the spawn waits: the timeout ends the read.
        with contextlib.suppress(HTTPClientError, OSError):
            await AsyncHTTPClient().fetch(
                url, headers={"Authorization": f"token {self.token}"}, request_timeout=PROGRESS_WAIT,
                streaming_callback=take,
            )  # fmt: skip
        return latest


class _Admins(HubOAuthenticated):
    """Hub admins only: a token for this service without admin:servers is refused (403)."""

    @property
    def hub_scopes(self) -> set[str]:
        return {ADMIN_SCOPE}

    @property
    def desktops(self) -> Desktops:
        return self.settings["desktops"]


class PageHandler(_Admins, web.RequestHandler):
    @web.authenticated
    async def get(self) -> None:
        rows = await self.desktops.listing()
        template = self.settings["page"]
        self.finish(
            template.render(
                rows=rows,
                now=time.time(),
                xsrf=self.xsrf_form_html(),
                prefix=self.settings["prefix"],
                hub_home=url_path_join(os.environ.get("JUPYTERHUB_BASE_URL", "/"), "hub/home"),
                stopped=self.get_argument("stopped", ""),
            )
        )


class ListHandler(_Admins, web.RequestHandler):
    @web.authenticated
    async def get(self) -> None:
        self.set_header("Content-Type", "application/json")
        self.set_header("Cache-Control", "no-store")
        self.finish(json.dumps({"desktops": await self.desktops.listing()}))


class StopHandler(_Admins, web.RequestHandler):
    """POST: stop a running desktop or cancel a queued one (the hub cancels its Slurm job)."""

    @web.authenticated
    async def post(self, user: str, server: str = "") -> None:
        try:
            await asyncio.to_thread(self.desktops.hub.stop_server, user, server)
        except HubError as e:
            raise web.HTTPError(502, str(e)) from None
        if "application/json" in self.request.headers.get("Accept", ""):
            self.finish(json.dumps({"user": user, "server": server, "stopped": True}))
        else:
            self.redirect(
                f"{self.settings['prefix']}?stopped={quote(user + ('/' + server if server else ''))}"
            )


def make_app(desktops: Desktops, prefix: str) -> web.Application:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(template_path("admin.html").parent)), autoescape=True
    )
    env.filters["duration"] = _duration
    return web.Application(
        [
            (prefix, PageHandler),
            (url_path_join(prefix, "api/desktops"), ListHandler),
            (url_path_join(prefix, r"api/desktops/([^/]+)/stop"), StopHandler),
            (url_path_join(prefix, r"api/desktops/([^/]+)/([^/]+)/stop"), StopHandler),
            (url_path_join(prefix, "oauth_callback"), HubOAuthCallbackHandler),
        ],
        desktops=desktops,
        page=env.get_template("admin.html"),
        prefix=prefix,
        cookie_secret=os.urandom(32),
        xsrf_cookies=True,
    )


def _duration(seconds: float | None) -> str:
    if seconds is None or seconds < 0:
        return "-"
    minutes = int(seconds // 60)
    return f"{minutes // 60} h {minutes % 60:02d} min" if minutes >= 60 else f"{minutes} min"


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m jupyter_vnc.admin_page", description=__doc__.split("\n")[0])
    p.add_argument("--registry-url", default=os.environ.get("JUPYTER_VNC_REGISTRY_URL", ""))
    p.add_argument(
        "--registry-password-file", default=os.environ.get("JUPYTER_VNC_REGISTRY_PASSWORD_FILE", "")
    )
    p.add_argument(
        "--public-url",
        default=os.environ.get("JUPYTERHUB_PUBLIC_URL", ""),
        help="the hub's public URL, where users' servers answer (default: the service's own host)",
    )
    args = p.parse_args(argv)
    token = os.environ["JUPYTERHUB_API_TOKEN"]
    api = urlparse(os.environ["JUPYTERHUB_API_URL"])
    hub = HubAPI(f"{api.scheme}://{api.netloc}{api.path.removesuffix('/hub/api')}", token)
    service = urlparse(os.environ["JUPYTERHUB_SERVICE_URL"])
    # Where users' servers answer: each server's own URL on a hub with per-user domains; else this.
    public = args.public_url or os.environ.get("JUPYTERHUB_PUBLIC_HUB_URL", "").removesuffix("/hub/")
    desktops = Desktops(hub, token, public, args.registry_url, args.registry_password_file)
    app = make_app(desktops, os.environ.get("JUPYTERHUB_SERVICE_PREFIX", "/services/desktops/"))
    end_with_the_hub()
    app.listen(service.port or 80, service.hostname or "127.0.0.1")
    IOLoop.current().start()


def end_with_the_hub() -> None:
    """A hub that is killed (SIGKILL, OOM) cannot stop the services it runs: one left behind would hold
    its port, and the hub's next start could not start the page again. So the page ends when the hub
    that started it is gone: at once where Linux can tell it (PR_SET_PDEATHSIG), and by a look at its
    parent every few seconds otherwise."""
    hub = os.getppid()
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() != hub:  # gone before the request took effect
        sys.exit(0)

    def check() -> None:
        if os.getppid() != hub:
            IOLoop.current().stop()

    PeriodicCallback(check, 2000).start()


if __name__ == "__main__":
    main()
