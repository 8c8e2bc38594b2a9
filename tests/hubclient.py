"""A logged-in browser-like session against the real hub, for tests (cookies, XSRF, OAuth redirects)."""

from __future__ import annotations

import time

import requests


class HubUser:
    def __init__(self, url: str, name: str, password: str) -> None:
        self.url = url.rstrip("/")
        self.name = name
        self.http = requests.Session()
        self.http.get(f"{self.url}/hub/login").raise_for_status()
        response = self.http.post(
            f"{self.url}/hub/login",
            data={"username": name, "password": password, "_xsrf": self.http.cookies.get("_xsrf", "")},
            allow_redirects=False,
        )
        if response.status_code != 302:
            raise AssertionError(f"login as {name} failed: HTTP {response.status_code}")

    def api(self, method: str, path: str, **kwargs) -> requests.Response:
        """A hub REST API call authenticated by the login cookie (JupyterHub wants the XSRF header)."""
        headers = {"X-XSRFToken": self.http.cookies.get("_xsrf", path="/hub/") or ""}
        return self.http.request(method, f"{self.url}/hub/api{path}", headers=headers, **kwargs)

    def server_prefix(self, server: str = "") -> str:
        return f"/user/{self.name}/{server + '/' if server else ''}"

    def open_server(self, server: str = "", path: str = "") -> requests.Response:
        """Load a page of the single-user server as a browser does (runs the hub's OAuth dance)."""
        return self.http.get(f"{self.url}{self.server_prefix(server)}{path}")

    def server_api(self, path: str, server: str = "", method: str = "GET", **kwargs) -> requests.Response:
        """Call the single-user server's API with the cookie it set during OAuth, as the lab does."""
        prefix = self.server_prefix(server)
        headers = {"X-XSRFToken": self.http.cookies.get("_xsrf", path=prefix) or ""}
        return self.http.request(method, f"{self.url}{prefix}{path}", headers=headers, **kwargs)

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
