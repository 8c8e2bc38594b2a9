"""The few Hub REST API calls the admin CLI makes, with the admin's token."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from typing import Any
from urllib.parse import quote

from .errors import FAILED, UNREACHABLE, USAGE, CLIError


class HubError(CLIError):
    """The hub said no (exit code 1), did not answer (3), or the CLI has no token to ask it with (2)."""

    def __init__(self, message: str, exit_code: int = FAILED) -> None:
        super().__init__(message, exit_code)


# What the CLI's token needs, said in one place (the no-token message, doctor's check, the docs):
# list users and their servers (sessions), read one user (cancel's wait), stop servers (cancel), and
# the servers' state (sessions without a shared registry shows job ids from it).
SCOPES = ("admin:servers", "admin:server_state", "list:users", "read:users")


class HubAPI:
    def __init__(self, hub_url: str, token: str) -> None:
        self.base = hub_url.rstrip("/") + "/hub/api"
        self.token = token

    def call(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        if not self.token:
            raise HubError(
                "no hub API token: set $JUPYTERHUB_API_TOKEN, pass --token-file, or give the hub a service "
                f'named "jupyter-vnc" with an api_token and the scopes {", ".join(SCOPES)}',
                USAGE,
            )
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(self.base + path, data=data, method=method)
        request.add_header("Authorization", f"token {self.token}")
        if data is not None:
            request.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                text = response.read()
                return response.status, json.loads(text) if text else None
        except urllib.error.HTTPError as e:
            text = e.read()
            try:
                return e.code, json.loads(text)
            except ValueError:
                return e.code, {"message": text.decode(errors="replace")}
        except (urllib.error.URLError, OSError) as e:
            raise HubError(
                f"the hub at {self.base} does not answer: {getattr(e, 'reason', e)} (the hub's address comes "
                "from c.JupyterHub.hub_connect_url, hub_bind_url or hub_ip/hub_port; --hub-url overrides it)",
                UNREACHABLE,
            ) from e

    def whoami(self) -> dict[str, Any]:
        code, body = self.call("GET", "/user")
        if code != 200:
            raise HubError(f"the hub refused the token (HTTP {code}: {_message(body)})")
        return body

    def users(self) -> list[dict[str, Any]]:
        code, body = self.call("GET", "/users?state=active&include_stopped_servers=false")
        if code != 200:
            raise HubError(f"cannot list users (HTTP {code}: {_message(body)}); the token needs list:users")
        return body

    def stop_server(self, user: str, server: str, timeout: float = 60) -> None:
        path = f"/users/{quote(user)}/servers/{quote(server)}" if server else f"/users/{quote(user)}/server"
        deadline = time.monotonic() + timeout
        while True:
            code, body = self.call("DELETE", path)
            if code == 404:
                raise HubError(f"no such user or server: {user}/{server}")
            if code in (202, 204):
                break
            # A desktop still queued: the hub interrupts its spawn, waits one second, and answers 500
            # ("pending spawn") when the spawn has not ended by then. Asked again, it stops what is left.
            if code == 500 and time.monotonic() < deadline:
                time.sleep(1)
                continue
            raise HubError(f"the hub refused to stop {user}/{server} (HTTP {code}: {_message(body)})")
        while time.monotonic() < deadline:
            code, model = self.call("GET", f"/users/{quote(user)}")
            if code != 200 or server not in (model.get("servers") or {}):
                return
            time.sleep(0.5)
        raise HubError(f"{user}/{server} is still stopping after {timeout:g}s")


def _message(body: Any) -> str:
    return body.get("message", "") if isinstance(body, dict) else str(body)
