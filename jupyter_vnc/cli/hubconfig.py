"""What the admin CLI needs from the hub's own configuration file, read the way JupyterHub reads it."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from traitlets.config import Config
from traitlets.config.loader import PyFileConfigLoader

DEFAULT_PATHS = ("jupyterhub_config.py", "/etc/jupyterhub/jupyterhub_config.py")


class ConfigError(RuntimeError):
    pass


@dataclass
class HubSettings:
    path: Path
    config: Config
    hub_url: str
    token: str

    def spawner_config(self) -> Config:
        return self.config

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


def load(path: str | None, token_file: str | None = None) -> HubSettings:
    found = find_config(path)
    try:
        config = PyFileConfigLoader(found.name, str(found.parent)).load_config()
    except Exception as e:  # the admin's file: show what went wrong in it, whatever it is
        raise ConfigError(f"cannot load {found}: {e}") from e
    hub = config.get("JupyterHub", {})
    bind_url = hub.get("bind_url", "http://127.0.0.1:8000")
    base = hub.get("base_url", "/")
    hub_url = bind_url.rstrip("/") + (
        "" if bind_url.rstrip("/").endswith(base.rstrip("/")) else base.rstrip("/")
    )
    return HubSettings(found, config, hub_url, _token(config, token_file))


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
