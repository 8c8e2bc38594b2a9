"""What the admin CLI needs from the hub's own configuration file, read the way JupyterHub reads it."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from traitlets.config import Config
from traitlets.config.loader import PyFileConfigLoader

from .errors import USAGE, CLIError

DEFAULT_PATHS = ("jupyterhub_config.py", "/etc/jupyterhub/jupyterhub_config.py")
# A host a server binds to but nobody can connect to: this machine's loopback of the same family stands in
# (tornado binds "::" IPv6-only, so "::" needs ::1; "" listens on both).
LOOPBACK = {"": "localhost", "0.0.0.0": "127.0.0.1", "::": "::1", "*": "localhost"}


class ConfigError(CLIError):
    """The hub's configuration (or the admin's arguments) cannot be used; nothing was done."""

    def __init__(self, message: str) -> None:
        super().__init__(message, USAGE)


@dataclass
class HubSettings:
    path: Path
    config: Config
    hub_url: str
    token: str

    def trait(self, name: str, default: Any = None) -> Any:
        """A VNCSlurmSpawner setting as the hub would see it (VNCSlurmSpawner, SlurmSpawner, Spawner)."""
        for section in ("VNCSlurmSpawner", "SlurmSpawner", "BatchSpawnerBase", "Spawner"):
            if section in self.config and name in self.config[section]:
                return self.config[section][name]
        return default


def find_config(path: str | None) -> Path:
    candidates = [path] if path else [os.environ.get("JUPYTERHUB_CONFIG", ""), *DEFAULT_PATHS]
    for candidate in candidates:
        if candidate and Path(candidate).is_file():
            return Path(candidate).resolve()
    where = path or ", ".join(c for c in candidates if c)
    raise ConfigError(f"no JupyterHub configuration file found (looked at {where}); pass -f PATH")


def load(path: str | None, token_file: str | None = None, hub_url: str | None = None) -> HubSettings:
    found = find_config(path)
    try:
        config = PyFileConfigLoader(found.name, str(found.parent)).load_config()
    except Exception as e:  # the admin's file: show what went wrong in it, whatever it is
        raise ConfigError(f"cannot load {found}: {e}") from e
    url = given_hub_url(hub_url) if hub_url else derived_hub_url(config.get("JupyterHub", {}))
    return HubSettings(found, config, url, _token(config, token_file))


def derived_hub_url(hub: Mapping[str, Any]) -> str:
    """The URL the CLI reaches the Hub API under (``/hub/api`` is appended), from the hub's
    ``c.JupyterHub`` settings, read as JupyterHub reads them.

    Like any hub service, the CLI talks to the hub itself: ``hub_connect_url``, else the hub's bind
    address (``hub_bind_url``, else ``hub_ip``:``hub_port``). That needs no proxy and no public
    certificate. The public ``bind_url`` (through the proxy) is used only where the hub's own address is
    not plain HTTP(S) over TCP: a unix socket, or ``internal_ssl`` (client certificates). A wildcard or
    empty host is this machine; ``base_url`` is kept (given, or the path of ``bind_url``)."""
    try:
        for url in _addresses(hub):
            origin = _origin(url)
            if origin:
                return origin + hub_base_url(hub)
    except (TypeError, ValueError) as e:  # a port that is not a number, say: the admin's to fix
        raise ConfigError(f"cannot read the hub's address from c.JupyterHub: {e}; or pass --hub-url") from e
    raise ConfigError(
        "cannot reach the hub from its configuration: its bind_url is not HTTP over TCP, and its own "
        "address is a unix socket or needs internal_ssl; pass --hub-url"
    )


def _addresses(hub: Mapping[str, Any]) -> list[str]:
    """Where the hub answers API calls, best first."""
    own: list[str] = []
    if not hub.get("internal_ssl"):
        bind = hub.get("hub_bind_url") or "http://" + _netloc(
            str(hub.get("hub_ip", "127.0.0.1")), int(hub.get("hub_port", 8081))
        )
        own = [str(hub.get("hub_connect_url") or ""), str(bind)]
    public = _public_bind_url(hub)
    parts = urlsplit(public)
    named = str(hub.get("public_url") or hub.get("subdomain_host") or "")
    if parts.scheme == "https" and (parts.hostname or "") in LOOPBACK and named:
        # The certificate names the public host, not localhost: connect by that name where it is known.
        public = named if "://" in named else f"https://{named}"
    return [*own, public]


def given_hub_url(url: str) -> str:
    """``--hub-url``: the hub's root URL (with its base_url); a JUPYTERHUB_API_URL-style value ending
    in /hub/api is taken too."""
    parts = urlsplit(url)
    try:
        usable = parts.scheme in ("http", "https") and bool(parts.hostname) and parts.port != 0
    except ValueError:  # a port that is not a number, or out of range
        usable = False
    if not usable:
        raise ConfigError(f"--hub-url must be an http(s):// URL such as http://127.0.0.1:8081, not {url!r}")
    path = parts.path.rstrip("/")
    for tail in ("/hub/api", "/hub"):
        if path.endswith(tail):
            path = path[: -len(tail)]
            break
    return f"{parts.scheme}://{parts.netloc}{path}"


def hub_base_url(hub: Mapping[str, Any]) -> str:
    """JupyterHub's base_url: given, else the path of bind_url; without its trailing slash ("" at /)."""
    base = str(hub.get("base_url") or urlsplit(_public_bind_url(hub)).path or "/")
    return "/" + base.strip("/") if base.strip("/") else ""


def _public_bind_url(hub: Mapping[str, Any]) -> str:
    """JupyterHub.bind_url with the deprecated ip and port folded in (JupyterHub does the same)."""
    scheme = "https" if hub.get("ssl_cert") else "http"
    url = str(hub.get("bind_url") or f"{scheme}://:8000")
    if "ip" in hub or "port" in hub:
        parts = urlsplit(url)
        url = parts._replace(netloc=_netloc(str(hub.get("ip", "")), int(hub.get("port", 8000)))).geturl()
    if hub.get("ssl_cert") and url.startswith("http://"):
        url = "https://" + url[len("http://") :]
    return url


def _origin(url: str) -> str | None:
    """scheme://host:port to connect to, or None where urllib cannot (unix sockets, no host part)."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return None
    host = parts.hostname or ""
    return f"{parts.scheme}://{_netloc(LOOPBACK.get(host, host), parts.port)}"


def _netloc(host: str, port: int | None) -> str:
    bracketed = f"[{host}]" if ":" in host else host
    return f"{bracketed}:{port}" if port else bracketed


def _token(config: Config, token_file: str | None) -> str:
    """The admin token: --token-file, $JUPYTERHUB_API_TOKEN, or the hub's service named jupyter-vnc."""
    if token_file:
        try:
            token = Path(token_file).read_text().strip()
        except OSError as e:
            raise ConfigError(f"cannot read the token file {token_file}: {e.strerror}") from e
        if not token:
            raise ConfigError(f"the token file {token_file} is empty")
        return token
    if os.environ.get("JUPYTERHUB_API_TOKEN"):
        return os.environ["JUPYTERHUB_API_TOKEN"]
    for service in config.get("JupyterHub", {}).get("services", []) or []:
        if service.get("name") == "jupyter-vnc" and service.get("api_token"):
            return str(service["api_token"])
    return ""
