"""`jupyter-vnc render-job`: the exact job script a spawn would submit, without submitting it."""

from __future__ import annotations

import asyncio
import json
import pwd
from types import SimpleNamespace
from typing import Any

from jupyterhub.objects import Hub

from ..options import OptionsError, validate
from ..spawner import VNCSlurmSpawner
from .hubconfig import HubSettings


def spawner_for(settings: HubSettings, user: str, server: str = "") -> VNCSlurmSpawner:
    """A spawner configured exactly as the hub would configure it, for a user who is not spawning."""
    owner = SimpleNamespace(name=user, escaped_name=user, url=f"/user/{user}/", server=None, spawners={})
    return VNCSlurmSpawner(config=settings.config, user=owner, hub=Hub(), name=server)


def render_job(
    settings: HubSettings, user: str, options: dict[str, Any], server: str = ""
) -> tuple[str, dict[str, Any]]:
    """The job script, and the validated request it was made from (what the spawner would use)."""
    try:
        pwd.getpwnam(user)
    except KeyError:
        raise OptionsError(f"no Unix user {user!r} on this machine (the job runs as that user)") from None
    spawner = spawner_for(settings, user, server)
    spawner.user_options = options
    spawner.request = validate(options, spawner.limits)
    subvars = spawner.get_req_subvars()
    subvars["cmd"] = spawner.cmd_formatted_for_batch()
    return asyncio.run(spawner._get_batch_script(**subvars)), spawner.request.as_dict()


def parse_options(text: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except ValueError as e:
        raise OptionsError(f"--options must be JSON such as '{{\"gpus\": 1}}': {e}") from None
    if not isinstance(value, dict):
        raise OptionsError("--options must be a JSON object such as '{\"gpus\": 1}'")
    return value
