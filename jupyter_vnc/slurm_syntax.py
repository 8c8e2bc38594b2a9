"""Reading a site's batchspawner ``req_*`` values, written in Slurm's own syntax.

A site that ran plain ``SlurmSpawner`` has ``req_memory = "32G"``, ``req_runtime = "8:00:00"``,
``req_gres = "gpu:a100:1"``. Those are the admin's defaults: the spawn form and the REST API start
from them, and a user's choice changes only the number (the GPU type stays). Pure functions, so each
spelling Slurm accepts is tested without a cluster.
"""

from __future__ import annotations

import math
import re

_MEMORY_RE = re.compile(r"\s*([0-9]+(?:\.[0-9]+)?)\s*([KMGT]?)B?\s*", re.I)
_UNIT_GIB = {"K": 1 / 1024**2, "M": 1 / 1024, "": 1 / 1024, "G": 1.0, "T": 1024.0}  # Slurm: MB by default
_TIME_RE = re.compile(r"\s*(?:([0-9]+)-)?([0-9]+)(?::([0-9]+))?(?::([0-9]+))?\s*")


def memory_gb(value: str) -> int | None:
    """``"32G"`` → 32, ``"32000"`` (Slurm's unit is MB) → 31, ``"1T"`` → 1024; None if not memory."""
    m = _MEMORY_RE.fullmatch(value or "")
    if not m:
        return None
    gib = float(m.group(1)) * _UNIT_GIB[m.group(2).upper()]
    return max(1, math.floor(gib + 1e-9))


def hours(value: str) -> float | None:
    """Slurm's ``--time`` spellings in hours: ``"90"`` (minutes), ``"1:30"`` (min:sec), ``"8:00:00"``,
    ``"1-12"`` (days-hours), ``"1-12:30"``, ``"1-12:30:00"``; None if unreadable or unlimited."""
    m = _TIME_RE.fullmatch(value or "")
    if not m:
        return None
    days, a, b, c = m.groups()
    if days is not None:  # D-H, D-H:M, D-H:M:S
        h, mins, secs = int(a), int(b or 0), int(c or 0)
    elif c is not None:  # H:M:S
        h, mins, secs = int(a), int(b), int(c)
    elif b is not None:  # M:S
        h, mins, secs = 0, int(a), int(b)
    else:  # M
        h, mins, secs = 0, int(a), 0
    total = int(days or 0) * 24 + h + mins / 60 + secs / 3600
    return round(total, 4) if total > 0 else None


def _gpu_part(part: str) -> bool:
    return part == "gpu" or part.startswith("gpu:")


def gpus_in_gres(gres: str) -> int | None:
    """The GPU count of a ``--gres`` value: ``"gpu:a100:2"`` → 2, ``"gpu"`` → 1, ``"shard:2"`` → None."""
    for part in (gres or "").split(","):
        part = part.strip()
        if _gpu_part(part):
            last = part.rsplit(":", 1)[-1]
            return int(last) if last.isdigit() and part != "gpu" else 1
    return None


def gres_with_gpus(gres: str, count: int) -> str:
    """The admin's ``--gres`` with the user's GPU count: type and other resources kept.

    ``("gpu:a100:1", 2)`` → ``"gpu:a100:2"``; ``("gpu:a100:1,lscratch:10", 0)`` → ``"lscratch:10"``;
    ``("", 1)`` → ``"gpu:1"``.
    """
    parts = [p.strip() for p in (gres or "").split(",") if p.strip()]
    out, placed = [], False
    for part in parts:
        if not _gpu_part(part):
            out.append(part)
            continue
        placed = True
        if count:
            fields = part.split(":")
            gpu_type = fields[1] if len(fields) == 3 or (len(fields) == 2 and not fields[1].isdigit()) else ""
            out.append(f"gpu:{gpu_type}:{count}" if gpu_type else f"gpu:{count}")
    if not placed and count:
        out.append(f"gpu:{count}")
    return ",".join(out)
