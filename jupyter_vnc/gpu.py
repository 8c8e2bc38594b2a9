"""What the desktop knows about its GPUs and OpenGL: which GPUs the job got, and where GL renders."""

from __future__ import annotations

import asyncio
import os
import re
import shutil
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

# Where VirtualGL's own build installs it (scripts/build-virtualgl, the image, sites using its packages):
# not on PATH by default, so it is looked for here when PATH has no vglrun.
VIRTUALGL_VGLRUN = "/opt/VirtualGL/bin/vglrun"


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


def find_vglrun(configured: str = "") -> str:
    """The vglrun to use: ``configured`` (a path or a name on PATH) when given, else vglrun on PATH,
    else VirtualGL's default install; "" when there is none."""
    if configured:
        return shutil.which(configured) or ""
    found = shutil.which("vglrun")
    if found:
        return found
    return VIRTUALGL_VGLRUN if os.access(VIRTUALGL_VGLRUN, os.X_OK) else ""


async def detect(env: Mapping[str, str] | None = None, vglrun: str = "") -> GPUInfo:
    """``vglrun``: the site's configured vglrun, if any (see ``find_vglrun``)."""
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
    return GPUInfo(ids=ids, names=names, virtualgl=find_vglrun(vglrun))


def renderer_from_glxinfo(text: str) -> str:
    for line in text.splitlines():
        if "OpenGL renderer string:" in line:
            return line.split(":", 1)[1].strip()
    return ""


def is_software_renderer(renderer: str) -> bool:
    lowered = renderer.lower()
    return not renderer or any(s in lowered for s in ("llvmpipe", "softpipe", "swrast", "software"))


@dataclass(frozen=True)
class GLProbe:
    """What a GL program on the desktop's display actually got, read from one run of ``glxinfo -B``."""

    renderer: str = ""  # "OpenGL renderer string", e.g. "NVIDIA H200/PCIe/SSE2" or "llvmpipe (...)"
    virtualgl: bool = False  # VirtualGL's faker was loaded and opened its 3D device (its own log says so)
    device: str = ""  # the device VirtualGL opened ("egl", "egl1", "/dev/dri/card0", ":0")

    @property
    def on_gpu(self) -> bool:
        return bool(self.renderer) and not is_software_renderer(self.renderer)


# VGL_VERBOSE=1 makes the faker say which 3D device it opened, on stderr: proof that it was in the
# process, not merely that vglrun exists.
_VGL_DEVICE = re.compile(r"^\[VGL\] Opening (?:EGL device|connection to 3D X server) (\S+)", re.MULTILINE)


def probe_argv(vglrun: str) -> list[str]:
    """``glxinfo -B``, under ``vglrun`` when given. VirtualGL ships its own glxinfo beside vglrun;
    Debian's (mesa-utils) is used when that one is missing."""
    glxinfo = ""
    if vglrun:
        own = Path(vglrun).resolve().parent / "glxinfo"
        glxinfo = str(own) if os.access(own, os.X_OK) else ""
    glxinfo = glxinfo or shutil.which("glxinfo") or ""
    if not glxinfo:
        return []
    return [vglrun, glxinfo, "-B"] if vglrun else [glxinfo, "-B"]


def parse_probe(stdout: str, stderr: str) -> GLProbe:
    device = _VGL_DEVICE.search(stderr)
    return GLProbe(
        renderer=renderer_from_glxinfo(stdout),
        virtualgl=device is not None,
        device=device.group(1) if device else "",
    )
