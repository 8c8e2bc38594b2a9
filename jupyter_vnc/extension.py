"""The Jupyter server extension: one desktop per server, served at ``<base_url>vnc/``.

Installed into a shared environment it loads in every Jupyter server there, not only in desktop jobs,
so it changes no more than a desktop needs: the desktop starts by itself only in a server the spawner
started as a desktop job, JupyterLab offers it only where an Xvnc can run, and
``c.VNCExtension.enabled = False`` turns all of it off.
"""

from __future__ import annotations

import contextlib
import json
import os
from typing import Any, ClassVar

from jupyter_server.extension.application import ExtensionApp
from tornado.ioloop import IOLoop, PeriodicCallback
from traitlets import Bool, Dict, Int, List, Unicode, default
from traitlets.config import Configurable

from . import apps as apps_config
from . import jobinfo, native_client
from .audience import Audience
from .desktop import DesktopError, VNCDesktop
from .guests import GuestsAtTheDesktopOnly, hold_guests_at_the_desktop
from .handlers import routes, static_url
from .idle import DesktopIdle
from .share_grants import EXPIRY_CHECK_SECONDS, ShareDesk

_OFF = {"0", "false", "no", "off"}

# JupyterLab's page config entry that tells the JupyterLab extension whether to offer the desktop
# ("available" or "unavailable"; absent where this extension is off): labextension/src/lab/model.ts.
PAGE_CONFIG_KEY = "jupyterVncDesktop"
ASSETS_KEY = "jupyterVncViewerAssets"


class VNCExtension(ExtensionApp):
    name = "jupyter_vnc"
    load_other_extensions = True
    # The configurable classes besides this one, for the help and the configuration file that
    # traitlets generates (--help-all, --generate-config) when this app is the one launched.
    classes: ClassVar[list[type[Configurable]]] = [VNCDesktop, DesktopIdle]

    enabled = Bool(
        True,
        help="""Offer the desktop in this Jupyter server. False turns the whole extension off: no /vnc/
        routes, no desktop, no launcher tile, nothing else changed in the server. (`jupyter server
        extension disable jupyter_vnc` turns it off in every server of the environment it is run in,
        desktop jobs included.) To keep it to the desktop jobs of a shared environment, which their
        job script marks, write in the environment's jupyter_server_config.py:
        import os; c.VNCExtension.enabled = "JUPYTER_VNC_DESKTOP_JOB" in os.environ
        Example: c.VNCExtension.enabled = False
        """,
    ).tag(config=True)

    guests_desktop_only = Bool(
        True,
        help="""Users this server is shared with (JupyterHub shares) reach only the desktop: every
        other route of the server answers them 403 (JupyterLab's pages, terminals, kernels, files,
        settings, workspaces): those act as the owner, and from a terminal a view-only guest could type
        into the owner's desktop, from Lab's settings rebind her keys. False lets them use all of the
        server (for JupyterLab collaboration), and the desktop's view-only then protects against
        mistakes only.
        Example: c.VNCExtension.guests_desktop_only = False
        """,
    ).tag(config=True)

    guest_connections = Int(
        4,
        help="""How many desktop connections one user the server is shared with may hold open at a
        time (browser tabs, reconnects); one more is refused with 429. The owner and hub admins have
        no limit. Every connection costs the server a little work and the hub a token check a second.
        Example: c.VNCExtension.guest_connections = 8
        """,
    ).tag(config=True)

    apps = List(
        Dict(),
        help="""Applications offered as JupyterLab launcher tiles: each opens the desktop and starts the app
        in it, maximized, through VirtualGL where "gpu" is True and the desktop has it. Keys: name (a-z,
        0-9, - and _; in the REST API), title, command (a list, or one command line), gpu, icon (an .svg
        or .png file on the node). Unset: the hub's c.VNCSlurmSpawner.desktop_apps (the job gets them as
        JUPYTER_VNC_APPS). Only these commands ever run: a request names an app, nothing more.
        Example: c.VNCExtension.apps = [{"name": "paraview", "title": "ParaView", "command": ["paraview"],
        "gpu": True, "icon": "/usr/share/icons/hicolor/scalable/apps/paraview.svg"}]
        """,
    ).tag(config=True)

    native_client = Bool(
        True,
        help="""Show the desktop's owner, in the viewer's Settings, the ssh command that forwards a port
        of their own computer to the desktop's unix socket, and the vncviewer command to use it: for
        TurboVNC's or TigerVNC's own viewer. Only the owner's account can open the socket (sshd opens it
        as the user who logged in). Users need ssh to the job's node, usually allowed while their job
        runs there (pam_slurm_adopt). Example: c.VNCExtension.native_client = False
        """,
    ).tag(config=True)

    ssh_login_host = Unicode(
        help="""The host users ssh through to reach a job's node (ssh -J), e.g. the cluster's login node.
        Empty: ssh goes to the node directly. Default: the hub's c.VNCSlurmSpawner.ssh_login_host (the
        job gets it as JUPYTER_VNC_SSH_LOGIN). Example: c.VNCExtension.ssh_login_host = "login.example.org"
        """,
    ).tag(config=True)

    @default("ssh_login_host")
    def _login_host_from_the_hub(self) -> str:
        return os.environ.get(native_client.ENV_VAR, "")

    @default("apps")
    def _apps_from_the_hub(self) -> list[dict[str, Any]]:
        value = os.environ.get(apps_config.ENV_VAR, "")
        if not value:
            return []
        try:
            raw = json.loads(value)
        except ValueError:
            self.log.error("jupyter-vnc: %s is not JSON; no apps offered", apps_config.ENV_VAR)
            return []
        return raw if isinstance(raw, list) else []

    def _offered_apps(self) -> dict[str, apps_config.App]:
        try:
            return {app.name: app for app in apps_config.parse_apps(self.apps, "c.VNCExtension.apps")}
        except apps_config.AppsError as e:
            # The desktop itself still works; the admin reads why the tiles are missing.
            self.log.error("jupyter-vnc: no apps offered: %s", e)
            return {}

    def initialize_settings(self) -> None:
        if not self.enabled:
            self.log.info("jupyter-vnc: off in this server (c.VNCExtension.enabled = False)")
            return
        page = self.serverapp.web_app.settings.setdefault("page_config_data", {})
        if os.environ.get("JUPYTERHUB_ALLOW_WEBSOCKET_COOKIE_AUTH", "").strip().lower() in _OFF:
            # JupyterHub then accepts a websocket only with a token in its URL. JupyterLab adds its
            # token to kernel and terminal websockets only when told to, and would otherwise lose
            # them on a hub that follows the advice to turn cookie websockets off.
            page.setdefault("appendToken", "true")
        desktop_job = jobinfo.claim_desktop_job(os.environ)
        self.desktop = VNCDesktop(parent=self, log=self.log, desktop_job=desktop_job)
        page[PAGE_CONFIG_KEY] = "available" if desktop_job or self._desktop_can_run() else "unavailable"
        # The viewer's script and style, by their versioned URLs: JupyterLab fetches them into the
        # browser's cache while the user looks at the launcher, so the tile's new tab finds them there.
        base = self.serverapp.base_url
        page[ASSETS_KEY] = [static_url(base, "viewer.js"), static_url(base, "viewer.css")]
        self.settings["jupyter_vnc_desktop"] = self.desktop
        self.settings["jupyter_vnc_apps"] = self._offered_apps()
        try:
            login = native_client.check_login_host(self.ssh_login_host)
        except ValueError as e:
            self.log.error("jupyter-vnc: %s; the native-client commands are not shown", e)
            login = None
        self.settings["jupyter_vnc_ssh_login"] = login if self.native_client else None
        hub_auth = getattr(self.serverapp.identity_provider, "hub_auth", None)
        if hub_auth is not None and self.guests_desktop_only:
            hold_guests_at_the_desktop(self.serverapp.identity_provider, self.serverapp.base_url, self.log)
            # Into the extension's settings: ExtensionApp copies them over the web app's afterwards.
            self.settings["authorizer"] = GuestsAtTheDesktopOnly(self.settings["authorizer"], parent=self)
        self.audience = Audience(hub_auth, self.log, self.guest_connections)
        self.settings["jupyter_vnc_audience"] = self.audience
        if hub_auth is not None:
            # Sharing from the viewer; timed shares are ended even when nobody has the viewer open.
            desk = ShareDesk(hub_auth, self.log)
            self.settings["jupyter_vnc_shares"] = desk
            self._expiry = PeriodicCallback(self._end_expired_shares, EXPIRY_CHECK_SECONDS * 1000)
            self._expiry.start()
        self.idle = DesktopIdle(self.audience, parent=self, log=self.log)
        self.settings["jupyter_vnc_idle"] = self.idle
        # The clock starts with the server: a desktop nobody ever opens is idle from its start.
        IOLoop.current().add_callback(self.idle.start)
        if self.desktop.prestart:
            # Start while the user is still looking at JupyterLab: the desktop is then ready (or
            # nearly) when the tile is clicked. Queued until the server's event loop runs.
            IOLoop.current().add_callback(self._prestart)

    def _desktop_can_run(self) -> bool:
        """Whether a server that is no desktop job offers the desktop: only where an Xvnc is installed.
        (A desktop job offers it whatever: its user asked for a desktop, and the desktop's own page is
        where they read why it does not start.)"""
        reason = self.desktop.unavailable_reason()
        if reason:
            self.log.info("jupyter-vnc: no desktop offered in this server: %s", reason)
        return not reason

    async def _prestart(self) -> None:
        # A failure is already logged; the page shows the reason and the next connection retries.
        with contextlib.suppress(DesktopError):
            await self.desktop.ensure_running()

    async def _end_expired_shares(self) -> None:
        desk = self.settings.get("jupyter_vnc_shares")
        if desk is None:
            return
        if await desk.end_expired() and self.audience.book is not None:
            self.audience.book.forget()

    def initialize_handlers(self) -> None:
        if self.enabled:
            self.handlers.extend(routes())

    async def stop_extension(self) -> None:
        """The server is stopping: end the whole desktop, leaving no process behind."""
        if self.enabled:
            if getattr(self, "_expiry", None) is not None:
                self._expiry.stop()
            await self.desktop.stop()
