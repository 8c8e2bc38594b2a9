"""`jupyter-vnc config-help`: every setting of jupyter-vnc, for the hub and for the user's server.

Jupyter Server prints its ``--help-all`` before it looks for extensions, so ``jupyter server --help-all``
cannot show the server extension's classes; JupyterHub's shows the spawner only once configured. This
prints both sides from the classes themselves, the way traitlets' --help-all does.
"""

from __future__ import annotations

from typing import Any

from traitlets.config import Configurable


def classes() -> dict[str, list[type[Configurable]]]:
    """The configurable classes, by the process that reads their settings."""
    from ..desktop import VNCDesktop
    from ..extension import VNCExtension
    from ..idle import DesktopIdle
    from ..spawner import VNCSlurmSpawner

    return {"hub": [VNCSlurmSpawner], "server": [VNCExtension, VNCDesktop, DesktopIdle]}


def as_text() -> str:
    where = {
        "hub": "# In jupyterhub_config.py (the hub):",
        "server": "# In the single-user environment's jupyter_server_config.py (the server in the job):",
    }
    parts = []
    for side, found in classes().items():
        parts.append(where[side])
        parts += [cls.class_get_help() for cls in found]
    return "\n".join(parts)


def as_json() -> dict[str, Any]:
    """--json's shape (documented in `jupyter-vnc config-help --help`): add keys, never rename one."""
    return {
        side: {
            cls.__name__: {
                name: {"help": trait.help, "default": repr(trait.default_value)}
                for name, trait in sorted(cls.class_traits(config=True).items())
            }
            for cls in found
        }
        for side, found in classes().items()
    }
