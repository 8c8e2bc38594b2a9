"""A GL program in a desktop started through the hub renders through VirtualGL: host mode and Apptainer.

The user's own session file (~/.vnc/xstartup, which the desktop prefers to its own) starts glxspheres64
with VGL_LOGO=1 and then jupyter-vnc's XFCE session; the user's Jupyter config asks for the whole
session under VirtualGL (``c.VNCDesktop.virtualgl = "session"``: this machine has no GPU, so "auto"
would not, while on a GPU node it does). The proof is VirtualGL's logo in the pixels that arrive
through the hub's proxy and our websocket, and the desktop's status saying its GL probe ran through
VirtualGL (see tests/vglcheck.py). Both files are the user's own: a site's users can do the same.
"""

from __future__ import annotations

import asyncio
import json
import os
import pwd
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
import vglcheck
from conftest import HubBed
from hubclient import HubUser
from test_spawner import _logged_in, rfb_through_hub, squeue
from test_spawner_apptainer import apptainer_hub, site_data  # noqa: F401 (fixtures)

from testkit.rfb import RAW

# Whose servers, jobs and homes these tests use (tests/isolation.py: modules of other users run beside).
pytestmark = pytest.mark.users("gina")


@pytest.fixture
def gina(hub: HubBed) -> Iterator[HubUser]:
    yield from _logged_in(hub, "gina")


@pytest.fixture
def gl_session_of_alice() -> Iterator[Path]:
    """gina's ~/.vnc/xstartup starting glxspheres64, and her Jupyter config asking for VirtualGL;
    what she had there before is put back afterwards. Yields the GL program's log."""
    if vglcheck.have_virtualgl():
        pytest.skip(vglcheck.have_virtualgl())
    user = pwd.getpwnam("gina")
    home = Path(user.pw_dir)
    vnc, jupyter = home / ".vnc", home / ".jupyter"
    saved = {}
    for path in (vnc / "xstartup", jupyter / "jupyter_server_config.json"):
        saved[path] = path.read_bytes() if path.exists() else None
    for folder in (vnc, jupyter):
        folder.mkdir(exist_ok=True)
        os.chown(folder, user.pw_uid, user.pw_gid)
    script, log = vglcheck.gl_session_script(folder=vnc)
    config = jupyter / "jupyter_server_config.json"
    settings = json.loads(saved[config] or b"{}")
    settings.setdefault("VNCDesktop", {})["virtualgl"] = "session"
    config.write_text(json.dumps(settings, indent=1))
    for path in (script, config):
        os.chown(path, user.pw_uid, user.pw_gid)
    log.unlink(missing_ok=True)
    try:
        yield log
    finally:
        log.unlink(missing_ok=True)
        for path, content in saved.items():
            if content is None:
                path.unlink(missing_ok=True)
            else:
                path.write_bytes(content)
                os.chown(path, user.pw_uid, user.pw_gid)


async def logo_through_the_hub(user: HubUser, seconds: float) -> float:
    """The best match of VirtualGL's logo in full screens fetched through the hub's proxy."""
    best = 0.0
    deadline = asyncio.get_running_loop().time() + seconds
    client = await rfb_through_hub(user)
    try:
        assert client.init is not None
        await client.set_pixel_format_32()
        await client.set_encodings(RAW)
        while asyncio.get_running_loop().time() < deadline and best < 0.98:
            frame = bytearray(client.init.width * client.init.height * 4)
            await client.request_update(incremental=False)
            await asyncio.wait_for(client.read_update(frame), 30)
            best = max(best, vglcheck.find_logo(bytes(frame), client.init.width))
            await asyncio.sleep(1)
    finally:
        client.stream.close()  # type: ignore[attr-defined]
    return best


async def check_gl_through_virtualgl(user: HubUser, log: Path) -> None:
    share = await logo_through_the_hub(user, 60)
    text = log.read_text(errors="replace") if log.exists() else "(no log)"
    assert share >= 0.9, (
        f"VirtualGL's logo not seen through the hub (best {share:.2f}); glxspheres64:\n{text}"
    )
    assert "[VGL] Opening EGL device" in text, text
    status = user.server_api("vnc/api/status").json()
    assert status["gl_virtualgl"] is True and status["gl_renderer"], status
    # No GPU here: honest about it (on a GPU node this reads gl == "gpu" and names the GPU).
    assert status["gl"] == ("gpu" if shutil.which("nvidia-smi") else "software"), status


async def spawn_and_check_gl(user: HubUser, log: Path) -> None:
    """A 1-GPU desktop for gina, the GL check through the hub, then stopped with no job left."""
    user.api("POST", "/users/gina/server", json={"gpus": 1, "memory_gb": 2, "resolution": "1280x720"})
    try:
        user.wait_ready(timeout=120)
        await check_gl_through_virtualgl(user, log)
    finally:
        user.api("DELETE", "/users/gina/server")
        user.wait_stopped(timeout=60)
    assert not squeue("gina")


async def test_host_mode_a_gl_program_renders_through_virtualgl(
    gina: HubUser,
    gl_session_of_alice: Path,
) -> None:
    await spawn_and_check_gl(gina, gl_session_of_alice)


async def test_apptainer_mode_a_gl_program_renders_through_the_images_virtualgl(
    apptainer_hub: HubBed,  # noqa: F811
    gl_session_of_alice: Path,
) -> None:
    await spawn_and_check_gl(HubUser(apptainer_hub.url, "gina", apptainer_hub.password), gl_session_of_alice)
