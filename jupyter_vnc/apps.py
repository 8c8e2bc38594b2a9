"""The applications an admin offers as JupyterLab launcher tiles that open the desktop with the app in it.

The admin lists them once, on the hub (``c.VNCSlurmSpawner.desktop_apps``; the spawner hands them to
the job as ``JUPYTER_VNC_APPS``) or in the server's own configuration (``c.VNCDesktop.apps``):

    [{"name": "paraview", "title": "ParaView", "command": ["paraview"], "gpu": True,
      "icon": "/usr/share/icons/hicolor/scalable/apps/paraview.svg"}]

A request names an app; its command comes from this list only, never from the request. Checked here,
the same way on both sides, so that a mistake stops the hub at start with its reason, not a user's click.
"""

from __future__ import annotations

import json
import re
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

ENV_VAR = "JUPYTER_VNC_APPS"
NAME_RE = re.compile(r"[a-z0-9][a-z0-9_-]{0,31}")
KEYS = {"name", "title", "command", "gpu", "icon"}
ICON_TYPES = {".svg": "image/svg+xml", ".png": "image/png"}


class AppsError(ValueError):
    """A wrong app list: the message names the entry and what to change."""


@dataclass(frozen=True)
class App:
    name: str  # in URLs and the REST API: /vnc/api/apps/<name>
    title: str  # the tile's label
    command: tuple[str, ...]  # argv, run in the desktop as its user
    gpu: bool = False  # through VirtualGL where the desktop has it
    icon: str = ""  # an .svg or .png file on the node; empty: the desktop's own icon

    def public(self) -> dict[str, Any]:
        """What a browser may see: not the command."""
        return {"name": self.name, "title": self.title, "gpu": self.gpu, "icon": bool(self.icon)}


def parse_app(raw: Any, where: str) -> App:
    if not isinstance(raw, Mapping):
        raise AppsError(f"{where} must be a dict such as {{'name': 'paraview', 'command': ['paraview']}}")
    unknown = sorted(set(raw) - KEYS)
    if unknown:
        raise AppsError(f"{where}: unknown key(s) {', '.join(unknown)}; allowed: {', '.join(sorted(KEYS))}")
    name = raw.get("name")
    if not isinstance(name, str) or not NAME_RE.fullmatch(name):
        raise AppsError(f"{where}: name must be 1-32 of a-z, 0-9, - and _ (starting with a letter or digit)")
    title = raw.get("title", name)
    if not isinstance(title, str) or not title.strip() or len(title) > 64:
        raise AppsError(f"{where} ({name}): title must be a non-empty string of at most 64 characters")
    command = raw.get("command")
    if isinstance(command, str):
        try:
            command = shlex.split(command)
        except ValueError as e:
            raise AppsError(f"{where} ({name}): command {command!r} cannot be split: {e}") from None
    if (
        not isinstance(command, Sequence)
        or not command
        or not all(isinstance(part, str) and part and "\0" not in part for part in command)
    ):
        raise AppsError(
            f"{where} ({name}): command must be a non-empty list of strings (or one command line)"
        )
    gpu = raw.get("gpu", False)
    if not isinstance(gpu, bool):
        raise AppsError(f"{where} ({name}): gpu must be True or False")
    icon = raw.get("icon", "")
    if not isinstance(icon, str) or (icon and (not icon.startswith("/") or _icon_type(icon) is None)):
        raise AppsError(f"{where} ({name}): icon must be an absolute path to an .svg or .png file")
    return App(name, title.strip(), tuple(command), gpu, icon)


def parse_apps(raw: Any, where: str = "apps") -> tuple[App, ...]:
    if raw is None or raw == "":
        return ()
    if not isinstance(raw, Sequence) or isinstance(raw, str | bytes):
        raise AppsError(f"{where} must be a list of dicts")
    apps = tuple(parse_app(item, f"{where}[{i}]") for i, item in enumerate(raw))
    names = [a.name for a in apps]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise AppsError(f"{where}: name(s) used twice: {', '.join(twice)}")
    return apps


def to_env(apps: Sequence[App]) -> str:
    return json.dumps([{**asdict(a), "command": list(a.command)} for a in apps], separators=(",", ":"))


def from_env(value: str) -> tuple[App, ...]:
    try:
        raw = json.loads(value)
    except ValueError as e:
        raise AppsError(f"{ENV_VAR} is not JSON: {e}") from None
    return parse_apps(raw, ENV_VAR)


def _icon_type(path: str) -> str | None:
    for suffix, mime in ICON_TYPES.items():
        if path.lower().endswith(suffix):
            return mime
    return None


def icon_type(app: App) -> str:
    return _icon_type(app.icon) or "application/octet-stream"
