"""jupyter-vnc: GPU desktops in the browser for JupyterHub users on Slurm clusters."""

from __future__ import annotations

from typing import Any

from ._version import __version__

__all__ = ["__version__"]


def _jupyter_server_extension_points() -> list[dict[str, Any]]:
    # Imported here, not at the top: the hub imports this package for the spawner and needs none of
    # the server extension's imports.
    from .extension import VNCExtension

    return [{"module": "jupyter_vnc", "app": VNCExtension}]
