"""The spawner's settings in a hub configuration, checked where the hub starts and by the doctor.

JupyterHub makes a spawner only when a server starts (at hub start, only for the servers already
running), so a wrong value (``c.VNCSlurmSpawner.max_gpus = "two"``) would first show as a user's failed
spawn. Here each setting is applied to a spawner of its own, as the hub will apply it, and every one it
refuses is named with what it accepts.
"""

from __future__ import annotations

import sys
from types import SimpleNamespace

from traitlets import TraitError
from traitlets.config import Config

# Where a hub configuration sets VNCSlurmSpawner's traits (its own and those it inherits).
SPAWNER_SECTIONS = ("Spawner", "BatchSpawnerBase", "SlurmSpawner", "VNCSlurmSpawner")


def configuration_problems(config: Config) -> list[str]:
    """``"c.VNCSlurmSpawner.max_gpus: The 'max_gpus' trait ... expected an int, not the str 'two'."``
    for each spawner setting of ``config`` that the spawner refuses; [] when all are accepted."""
    from jupyterhub.objects import Hub

    from .spawner import VNCSlurmSpawner

    user = SimpleNamespace(
        name="nobody", escaped_name="nobody", url="/user/nobody/", server=None, spawners={}
    )
    problems = []
    for section in SPAWNER_SECTIONS:
        for name, value in (config.get(section) or {}).items():
            try:
                VNCSlurmSpawner(config=Config({section: {name: value}}), user=user, hub=Hub())
            except TraitError as e:
                problems.append(f"c.{section}.{name}: {e}")
    return problems


def refuse_wrong_settings(config: Config) -> None:
    """The last line of a hub's ``jupyterhub_config.py``: a wrong spawner setting stops the hub as it
    starts, each named with what it accepts, as a wrong value of JupyterHub's own settings does.

        from jupyter_vnc.config_check import refuse_wrong_settings
        refuse_wrong_settings(c)

    (JupyterHub offers no hook of its own: it makes a spawner only when a server starts, and an
    exception in its configuration file is only logged, so this exits.)"""
    problems = configuration_problems(config)
    for problem in problems:
        print(f"jupyter-vnc: wrong setting: {problem}", file=sys.stderr)
    if problems:
        print(
            "jupyter-vnc: the hub does not start with these settings (see `jupyter-vnc doctor`)",
            file=sys.stderr,
        )
        sys.exit(1)
