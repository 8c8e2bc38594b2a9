"""The server extension's configuration help lists every configurable class of the user's server side,
with all of its settings (issue 22: admins read docs, not code).

Jupyter Server prints its --help-all before it looks for extensions, so `jupyter server --help-all`
shows no extension's classes (not even JupyterLab's LabApp); the help of an extension app is what
traitlets prints for the app itself, as `jupyter lab --help-all` does for LabApp."""

from __future__ import annotations

import json
import subprocess
import sys

# The configurable classes that the server extension loads, found by walking what it imports: a new
# class the extension uses shows up here whether or not anyone remembered to list it.
FIND_CLASSES = """
import json
from traitlets.config import Configurable
import jupyter_vnc.extension

def subclasses(cls):
    for sub in cls.__subclasses__():
        yield sub
        yield from subclasses(sub)

print(json.dumps({
    c.__name__: sorted(c.class_own_traits(config=True))
    for c in subclasses(Configurable)
    if c.__module__.startswith("jupyter_vnc.") and c.class_own_traits(config=True)
}))
"""

HELP_ALL = "from jupyter_vnc.extension import VNCExtension; VNCExtension.launch_instance()"


def run(*argv: str) -> str:
    result = subprocess.run([sys.executable, *argv], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout


def test_every_configurable_class_of_the_server_side_is_in_the_help() -> None:
    classes = json.loads(run("-c", FIND_CLASSES))
    assert {"VNCExtension", "VNCDesktop", "DesktopIdle"} <= set(classes), classes
    text = run("-c", HELP_ALL, "--help-all")
    for name, traits in classes.items():
        assert f"\n{name}(" in text, f"{name} is not in the help"
        for trait in traits:
            assert f"--{name}.{trait}=" in text, f"{name}.{trait} is not in the help"
    # The help an admin acts on: what the setting does and an example line for the config file.
    assert "c.VNCExtension.enabled = False" in text
    assert "$JUPYTER_VNC_DESKTOP_JOB" in text


def test_the_admin_cli_prints_every_setting_of_both_sides() -> None:
    """`jupyter-vnc config-help`: what an admin types (no hub, no config file needed) to see every
    setting, the hub's spawner and the server extension's classes alike."""
    classes = json.loads(run("-c", FIND_CLASSES))
    cli = [sys.executable, "-m", "jupyter_vnc.cli", "config-help"]
    text = subprocess.run(cli, capture_output=True, text=True, timeout=120, check=True).stdout
    data = json.loads(subprocess.run([*cli, "--json"], capture_output=True, text=True, check=True).stdout)
    assert set(data) == {"hub", "server"} and set(data["hub"]) == {"VNCSlurmSpawner"}
    for name, traits in classes.items():
        side = data["hub"] if name in data["hub"] else data["server"]
        if name in {"DesktopSpawnerBase"}:  # the spawner's base: its settings show under VNCSlurmSpawner
            side, name = data["hub"], "VNCSlurmSpawner"
        assert name in side, f"{name} is not in config-help"
        for trait in traits:
            assert trait in side[name] and side[name][trait]["help"], f"{name}.{trait}"
            assert f"--{name}.{trait}=" in text, f"{name}.{trait} is not in the text"
    assert "--VNCSlurmSpawner.default_queue_hours=" in text and "c.VNCExtension.enabled = False" in text
