"""What the desktop knows about its GPUs and OpenGL: which GPUs the job got, and where GL renders."""

from __future__ import annotations

import asyncio
import os
import shutil
from collections.abc import Mapping
from dataclasses import dataclass, field


@dataclass(frozen=True)
class GPUInfo:
    ids: list[str] = field(default_factory=list)  # CUDA_VISIBLE_DEVICES entries (Slurm sets them)
    names: list[str] = field(default_factory=list)  # models of those GPUs, from nvidia-smi
    virtualgl: str = ""  # path of vglrun when VirtualGL is installed

    @property
    def usable_for_gl(self) -> bool:
        """OpenGL can go to a GPU: a GPU we can name and VirtualGL to route GL to it."""
        return bool(self.names and self.virtualgl)


def visible_ids(env: Mapping[str, str]) -> list[str]:
    value = env.get("CUDA_VISIBLE_DEVICES", "").strip()
    if not value or value in {"NoDevFiles", "-1"}:
        return []
    return [part.strip() for part in value.split(",") if part.strip()]


def select_gpus(nvidia_smi_csv: str, ids: list[str]) -> list[str]:
    """Names of the GPUs among ``index, uuid, name`` rows that ``ids`` (indices or UUIDs) select;
    all rows when ``ids`` is empty (no CUDA_VISIBLE_DEVICES: the process sees every GPU)."""
    names = []
    for row in nvidia_smi_csv.strip().splitlines():
        parts = [p.strip() for p in row.split(",", 2)]
        if len(parts) != 3:
            continue
        index, uuid, name = parts
        if (
            not ids
            or index in ids
            or uuid in ids
            or any(uuid.startswith(i) for i in ids if i.startswith("GPU-"))
        ):
            names.append(name)
    return names


async def detect(env: Mapping[str, str] | None = None) -> GPUInfo:
    env = os.environ if env is None else env
    ids = visible_ids(env)
    names: list[str] = []
    smi = shutil.which("nvidia-smi")
    if smi:
        try:
            proc = await asyncio.create_subprocess_exec(
                smi, "--query-gpu=index,uuid,name", "--format=csv,noheader",
                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL,
            )  # fmt: skip
            out, _ = await asyncio.wait_for(proc.communicate(), 15)
            if proc.returncode == 0:
                names = select_gpus(out.decode(errors="replace"), ids)
        except (OSError, asyncio.TimeoutError):
            names = []
    return GPUInfo(ids=ids, names=names, virtualgl=shutil.which("vglrun") or "")


def renderer_from_glxinfo(text: str) -> str:
    for line in text.splitlines():
        if "OpenGL renderer string:" in line:
            return line.split(":", 1)[1].strip()
    return ""


def is_software_renderer(renderer: str) -> bool:
    lowered = renderer.lower()
    return not renderer or any(s in lowered for s in ("llvmpipe", "softpipe", "swrast", "software"))
