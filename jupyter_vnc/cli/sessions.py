"""`jupyter-vnc sessions`: the live desktops, from the registry (Redis) or else from the hub."""

from __future__ import annotations

import asyncio
import json
import sys
import time
from dataclasses import asdict
from datetime import datetime
from typing import Any

from ..registry import RegistryUnavailable, Session, open_registry
from ..slurm import node_of_status
from .errors import OK, UNREACHABLE, CLIError
from .hubapi import HubAPI
from .hubconfig import HubSettings

COLUMNS = ("USER", "SERVER", "JOB", "NODE", "GPUS", "STATE", "TIME LEFT")


def format_left(seconds: int | None) -> str:
    if seconds is None:
        return "-"
    hours, rest = divmod(seconds, 3600)
    return f"{hours}h{rest // 60:02d}m"


def table(sessions: list[Session], now: float | None = None) -> str:
    rows = [COLUMNS] + [
        (
            s.user,
            s.server or "-",
            s.job_id,
            s.node or "-",
            str(s.gpus),
            s.state,
            format_left(s.seconds_left(now)),
        )
        for s in sessions
    ]
    widths = [max(len(r[i]) for r in rows) for i in range(len(COLUMNS))]
    return "\n".join(
        "  ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True)).rstrip() for r in rows
    )


async def from_registry(url: str, password_file: str = "") -> tuple[list[Session], list[str]]:
    """The valid sessions, and the keys of registry entries that are not (skipped, never fatal)."""
    registry = open_registry(url, password_file)
    try:
        return await registry.read_sessions()
    finally:
        await registry.close()


def server_models(users: list[dict[str, Any]]) -> dict[tuple[str, str], dict[str, Any]]:
    return {
        (user["name"], name): server for user in users for name, server in (user.get("servers") or {}).items()
    }


def sessions_from_hub(models: dict[tuple[str, str], dict[str, Any]]) -> list[Session]:
    """Without a shared registry: what the hub knows of each server (its options and kept state); a
    server still spawning is "queued", as the registry says it."""
    out = []
    for (user, name), server in models.items():
        state = server.get("state") or {}
        options = server.get("user_options") or {}
        out.append(
            Session(
                user=user,
                server=name,
                job_id=str(state.get("job_id", "?")),
                state="running" if server.get("ready") else "queued" if server.get("pending") else "unknown",
                node=node_of_status(str(state.get("job_status", ""))) or str(state.get("node", "")),
                gpus=_whole(options.get("gpus")),
                memory_gb=_whole(options.get("memory_gb")),
                resolution=str(options.get("resolution") or ""),
                partition=str(options.get("partition") or ""),
                submitted=_epoch(server.get("started")) or time.time(),
                started=float(state["started"]) if isinstance(state.get("started"), int | float) else None,
                ends_at=float(state["ends_at"]) if isinstance(state.get("ends_at"), int | float) else None,
            )
        )
    return out


def _whole(value: Any) -> int:
    """A count the hub kept (validated when asked for); 0 for anything else, never an exception."""
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def _epoch(iso: Any) -> float | None:
    if not isinstance(iso, str):
        return None
    try:
        return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def from_hub(settings: HubSettings) -> list[Session]:
    """Without a shared registry: the hub's view (job ids need the admin:server_state scope)."""
    return sessions_from_hub(server_models(HubAPI(settings.hub_url, settings.token).users()))


def run(settings: HubSettings, as_json: bool, show_all: bool) -> int:
    url = settings.trait("registry_url", "")
    skipped: list[str] = []
    if url:
        try:
            sessions, skipped = asyncio.run(from_registry(url, settings.trait("registry_password_file", "")))
        except RegistryUnavailable as e:
            raise CLIError(
                f"{e}. The desktops themselves keep running; start Redis again to list them.", UNREACHABLE
            ) from e
    else:
        sessions = from_hub(settings)
    if not show_all:
        sessions = [s for s in sessions if s.state in ("queued", "running", "unknown")]
    if as_json:
        listing = [{**asdict(s), "seconds_left": s.seconds_left()} for s in sessions]
        print(json.dumps({"sessions": listing, "skipped": skipped}, indent=2))
    else:
        print(table(sessions) if sessions else "no desktops running")
    if skipped:
        # stderr: the listing on stdout stays parseable (--json) whatever the registry holds.
        print(
            f"warning: skipped {len(skipped)} registry entries that are not valid sessions: "
            + ", ".join(skipped),
            file=sys.stderr,
        )
    return OK
