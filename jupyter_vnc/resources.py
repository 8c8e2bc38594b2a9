"""Where the files shipped beside the code (job script, xstartup, spawn form) are found."""

from __future__ import annotations

from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent


def templates_dir() -> Path:
    """The ``templates/`` folder: inside the package in a wheel, at the top of a source checkout
    (editable installs), where admins find it to copy and override.
    """
    packaged = _PACKAGE / "templates"
    if packaged.is_dir():
        return packaged
    return _PACKAGE.parent / "templates"


def template_path(name: str) -> Path:
    path = templates_dir() / name
    if not path.is_file():
        raise FileNotFoundError(f"jupyter-vnc template {name!r} not found in {templates_dir()}")
    return path
