"""A logged-in browser-like session against the real hub, for tests (cookies, XSRF, OAuth redirects)."""

from __future__ import annotations

import ipaddress
import socket
import time
from http.cookiejar import Cookie, DefaultCookiePolicy
from typing import Any
from urllib.parse import urlsplit

import requests

_getaddrinfo = socket.getaddrinfo


def _getaddrinfo_localhost(host: bytes | str | None, *args: Any, **kwargs: Any) -> Any:
    """Resolve every ``*.localhost`` to this machine, as Chromium does (RFC 6761). The devstack hubs
    serve each user's servers on ``<name>.localhost``; glibc here has no rule for those names, and
    /etc/hosts cannot hold a wildcard. Patched in the test process only, so requests, tornado's
    websockets and everything else the tests use reach the user's own origin, with that origin's
    Host header and cookies."""
    name = host.decode() if isinstance(host, bytes) else host
    if name and name.lower().rstrip(".").endswith(".localhost"):
        host = "127.0.0.1"
    return _getaddrinfo(host, *args, **kwargs)


socket.getaddrinfo = _getaddrinfo_localhost


class _BrowserCookiePolicy(DefaultCookiePolicy):
    """Chromium keeps a cookie that localhost sets with ``Domain=localhost`` as a cookie of localhost;
    Python's jar keeps it as a domain cookie and then never sends it back to localhost (a name without
    a dot). JupyterHub with ``subdomain_host = "http://localhost:8000"`` sets its session id that way
    and checks its XSRF tokens against it: keep it as the browser does. (Set on the session's own jar:
    requests copies the cookies into a jar of default policy for each request.)"""

    def set_ok(self, cookie: Cookie, request: Any) -> bool:
        set_by = urlsplit(request.get_full_url()).hostname
        if set_by == "localhost" and cookie.domain.lstrip(".") == "localhost":
            cookie.domain = "localhost.local"  # how the jar names a host-only cookie of localhost
            cookie.domain_specified = cookie.domain_initial_dot = False
        return bool(super().set_ok(cookie, request))


def server_origin(hub_url: str, owner: str) -> str:
    """The origin of ``owner``'s servers. A hub with ``c.JupyterHub.subdomain_host`` (the devstack
    hubs, whose own origin is http://localhost:<port>) serves them on ``<owner>.<hub host>``
    (JupyterHub's 'idna' subdomain hook leaves plain names such as the tests' users as they are). A hub
    reached by IP address can have no subdomains: its users' servers share its origin."""
    parts = urlsplit(hub_url)
    try:
        ipaddress.ip_address(parts.hostname or "")
    except ValueError:
        return f"{parts.scheme}://{owner}.{parts.netloc}"
    return f"{parts.scheme}://{parts.netloc}"


def user_url(hub_url: str, owner: str, server: str = "") -> str:
    """Where ``owner``'s server (the default one, or ``server``) is:
    ``http://alice.localhost:8000/user/alice/``."""
    return f"{server_origin(hub_url, owner)}/user/{owner}/{server + '/' if server else ''}"


class TimedSession(requests.Session):
    """A requests session whose every request has a time limit (``DEFAULT_TIMEOUT`` s unless the call
    gives its own): a hub or server that stops answering fails the test that waits, never hangs it."""

    DEFAULT_TIMEOUT = 60.0

    def request(self, method, url, *args, **kwargs):  # type: ignore[no-untyped-def, override]
        kwargs.setdefault("timeout", self.DEFAULT_TIMEOUT)
        return super().request(method, url, *args, **kwargs)


class HubUser:
    def __init__(self, url: str, name: str, password: str) -> None:
        self.url = url.rstrip("/")
        self.name = name
        self.http = TimedSession()
        self.http.cookies.set_policy(_BrowserCookiePolicy())
        self.http.get(f"{self.url}/hub/login").raise_for_status()
        response = self.http.post(
            f"{self.url}/hub/login",
            data={"username": name, "password": password, "_xsrf": self.http.cookies.get("_xsrf", "")},
            allow_redirects=False,
        )
        if response.status_code != 302:
            raise AssertionError(f"login as {name} failed: HTTP {response.status_code}")

    def api(self, method: str, path: str, headers: dict | None = None, **kwargs) -> requests.Response:
        """A hub REST API call authenticated by the login cookie (JupyterHub wants the XSRF header)."""
        headers = {"X-XSRFToken": self._cookie("_xsrf", f"{self.url}/hub/") or "", **(headers or {})}
        return self.http.request(method, f"{self.url}/hub/api{path}", headers=headers, **kwargs)

    def server_prefix(self, server: str = "") -> str:
        return f"/user/{self.name}/{server + '/' if server else ''}"

    def server_url(self, server: str = "", owner: str = "") -> str:
        """The URL of this user's server (or ``owner``'s), on its own origin where the hub has them."""
        return user_url(self.url, owner or self.name, server)

    def open_server(self, server: str = "", path: str = "") -> requests.Response:
        """Load a page of the single-user server as a browser does (runs the hub's OAuth dance)."""
        return self.http.get(self.server_url(server) + path)

    def server_api(self, path: str, server: str = "", method: str = "GET", **kwargs) -> requests.Response:
        """Call the single-user server's API with the cookie it set during OAuth, as the lab does."""
        url = self.server_url(server)
        headers = {"X-XSRFToken": self._cookie("_xsrf", url) or ""}
        return self.http.request(method, url + path, headers=headers, **kwargs)

    def open_shared(self, owner: str, path: str = "", server: str = "") -> requests.Response:
        """Load a page of someone else's server that was shared with this user. The hub first asks the
        recipient to authorize the owner's server to identify them (its OAuth page); accept as a
        person would, by submitting that form."""
        import re

        url = self.server_url(server, owner) + path
        response = self.http.get(url)
        if "/hub/api/oauth2/authorize" in response.url and '<form method="post"' in response.text:
            fields = re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)"', response.text)
            response = self.http.post(response.url, data=fields)
        return response

    def shared_config(self, owner: str, server: str = "") -> dict:
        """The viewer configuration that the owner's desktop page gives this (share recipient) user."""
        return _page_config(self.open_shared(owner, "vnc/", server))

    def viewer_config(self, server: str = "") -> dict:
        """The configuration the desktop viewer page embeds (its websocket path and token)."""
        return _page_config(self.open_server(server, "vnc/"))

    def cookie_header(self, path: str) -> str:
        """The cookies a browser would send to ``path`` of this user's server origin (for websockets
        through the proxy): the cookie jar's own rules of host and path."""
        url = server_origin(self.url, self.name) + path
        return self.http.prepare_request(requests.Request("GET", url)).headers.get("Cookie", "")

    def _cookie(self, name: str, url: str) -> str | None:
        """The cookie ``name`` this session would send to ``url`` (each origin has its own _xsrf)."""
        header = self.http.prepare_request(requests.Request("GET", url)).headers.get("Cookie", "")
        found = [v for k, _, v in (c.partition("=") for c in header.split("; ")) if k == name]
        return found[0] if found else None

    def wait_ready(self, server: str = "", timeout: float = 90) -> dict:
        deadline = time.monotonic() + timeout
        while True:
            model = self.api("GET", f"/users/{self.name}").json()
            info = model["servers"].get(server)
            if info and info.get("ready"):
                return info
            if time.monotonic() > deadline:
                raise AssertionError(f"server {self.name}/{server} not ready after {timeout}s: {info}")
            time.sleep(0.3)

    def wait_stopped(self, server: str = "", timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while self.api("GET", f"/users/{self.name}").json()["servers"].get(server):
            if time.monotonic() > deadline:
                raise AssertionError(f"server {self.name}/{server} still there after {timeout}s")
            time.sleep(0.3)


def _page_config(page: requests.Response) -> dict:
    import json
    import re

    page.raise_for_status()
    found = re.search(r'<script type="application/json" id="jvnc-config">(.*?)</script>', page.text, re.S)
    assert found, f"no viewer configuration at {page.url}: {page.text[:300]}"
    return json.loads(found.group(1))


def server_path(name: str, server: str = "") -> str:
    return f"/users/{name}/servers/{server}" if server else f"/users/{name}/server"


def spawn_watching_progress(user: HubUser, server: str = "", options: dict | None = None) -> ProgressReader:
    """Request a spawn and follow its progress stream from the start, the way the spawn page does.

    The POST may only return once the server is up, so it runs in a thread while we wait for the
    spawn to show as pending and attach to its event stream (which replays every event from the
    beginning)."""
    import threading

    result: dict = {}
    thread = threading.Thread(
        target=lambda: result.update(
            response=user.api("POST", server_path(user.name, server), json=options or {})
        ),
        daemon=True,
    )
    thread.start()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        info = user.api("GET", f"/users/{user.name}").json()["servers"].get(server)
        if info and info.get("pending") == "spawn":
            reader = ProgressReader(user, server)
            reader.request = thread, result
            return reader
        if not thread.is_alive() and result["response"].status_code >= 400:
            raise AssertionError(f"spawn refused: {result['response'].text}")
        time.sleep(0.02)
    raise AssertionError("the spawn never showed as pending")


class ProgressReader:
    """Reads a spawn's progress event stream in a thread while the test waits on the spawn."""

    def __init__(self, user: HubUser, server: str = "") -> None:
        import threading

        self.events: list[dict] = []
        path = f"/users/{user.name}/servers/{server}/progress"
        self._response = user.api("GET", path, stream=True, headers={"Accept": "text/event-stream"})
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        import json

        for line in self._response.iter_lines(decode_unicode=True):
            if line and line.startswith("data:"):
                self.events.append(json.loads(line[5:]))

    def messages(self, timeout: float = 5) -> list[str]:
        self._thread.join(timeout)
        return [e.get("message", "") for e in self.events]
