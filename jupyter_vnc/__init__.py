"""jupyter-vnc: GPU desktops in the browser for JupyterHub users on Slurm clusters."""

from ._version import __version__

__all__ = ["__version__"]
