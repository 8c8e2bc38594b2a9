"""The admin's apps in a real desktop (Xvnc, XFCE, xfwm4): listed without their commands, started by
name only, maximized by the window manager, through VirtualGL where asked, ended with the desktop."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import procs
import pytest
import vglcheck
from browser import chromium
from conftest import ROOT, HubBed
from fixtures_jupyter import UserServer, wait_until
from hubclient import HubUser, server_path, user_url
from test_lab_e2e import log_in
from test_spawner import _logged_in, job_processes, squeue

from jupyter_vnc.apps import AppsError, from_env, parse_apps, to_env

pytestmark = pytest.mark.users("liam", "carol")

ICON = Path(__file__).with_name("data") / "app-icon.svg"
TERMINAL = {"name": "term", "title": "Terminal", "command": ["xterm", "-title", "jvnc-app-term"]}


def _apps_env(*apps: dict) -> dict[str, str]:
    return {"JUPYTER_VNC_APPS": json.dumps(list(apps))}


def _x_env(server: UserServer) -> dict[str, str]:
    """DISPLAY and XAUTHORITY of the server's desktop, as a program of its user on it would have."""
    for pid in server.desktop_pids():
        argv = procs.argv(pid)
        if procs.program(pid) in {"Xvnc", "Xtigervnc"} and "-auth" in argv:
            display = f":{server.status()['display']}"
            return {"DISPLAY": display, "XAUTHORITY": argv[argv.index("-auth") + 1], "PATH": "/usr/bin:/bin"}
    raise AssertionError("no Xvnc")


def _maximized_windows_of(server: UserServer, pid: int) -> set[str]:
    """The maximized state of pid's window, read by a program of the user on the desktop."""
    code = (
        "import sys; from jupyter_vnc.xwindows import Display, descendants\n"
        f"d = Display(); fam = descendants({pid})\n"
        "w = [w for w, p in d.client_windows().items() if p in fam]\n"
        "print(','.join(sorted(d.state(w[0]))) if w else 'none')\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], env=_x_env(server), capture_output=True, text=True, timeout=20,
        user=server.user.pw_uid, group=server.user.pw_gid, extra_groups=[],
    )  # fmt: skip
    return set(out.stdout.strip().split(",")) - {"none", ""}


def test_an_app_list_is_checked_entry_by_entry() -> None:
    apps = parse_apps([TERMINAL, {"name": "pv", "command": "paraview --dr", "gpu": True}])
    assert [a.command for a in apps] == [("xterm", "-title", "jvnc-app-term"), ("paraview", "--dr")]
    assert apps[1].title == "pv" and from_env(to_env(apps)) == apps
    for wrong, words in (
        ([{"name": "Para View", "command": ["x"]}], "name must be"),
        ([{"name": "pv"}], "command must be"),
        ([{"name": "pv", "command": []}], "command must be"),
        ([{"name": "pv", "command": "x", "gpu": "yes"}], "gpu must be True or False"),
        ([{"name": "pv", "command": "x", "icon": "icon.svg"}], "absolute path"),
        ([{"name": "pv", "command": "x", "icon": "/i/icon.gif"}], ".svg or .png"),
        ([{"name": "pv", "command": "x", "cmd": "y"}], "unknown key(s) cmd"),
        ([{"name": "pv", "command": "x"}, {"name": "pv", "command": "y"}], "used twice: pv"),
        ({"name": "pv"}, "must be a list"),
        ([{"name": "pv", "command": "x 'unclosed"}], "cannot be split"),
    ):
        with pytest.raises(AppsError, match=words.replace("(", r"\(").replace(")", r"\)")):
            parse_apps(wrong)


async def test_an_app_starts_by_name_maximized_and_ends_with_the_desktop(
    server_factory: Callable[..., UserServer],
) -> None:
    icon = {**TERMINAL, "name": "term2", "title": "Terminal 2", "icon": str(ICON)}
    server = server_factory("liam", "--VNCDesktop.virtualgl=off", env=_apps_env(TERMINAL, icon))
    code, body = server.request("/vnc/api/apps")
    assert code == 200 and json.loads(body) == {
        "apps": [
            {"name": "term", "title": "Terminal", "gpu": False, "icon": False},
            {"name": "term2", "title": "Terminal 2", "gpu": False, "icon": True},
        ]
    }  # the commands stay on the server
    code, svg = server.request("/vnc/api/apps/term2/icon")
    assert code == 200 and svg == ICON.read_bytes()

    # Refused, and nothing started: an unknown app, a request that brings its own command.
    code, refused = server.post("/vnc/api/apps/rm")
    assert code == 404 and refused["message"] == "no app named 'rm' in this desktop; offered: term, term2"
    code, refused = server.post("/vnc/api/apps/term", json.dumps({"command": ["rm", "-rf", "~"]}).encode())
    assert code == 400 and "the app's command is the site's" in refused["message"]

    # Started by name: the desktop starts for it; the window comes up maximized by xfwm4.
    code, started = server.post("/vnc/api/apps/term")
    assert code == 200 and started["app"] == "term", started
    pid = started["pid"]
    assert procs.program(pid) == "xterm" and pid in server.desktop_pids()  # ends with the desktop
    wait_until(
        lambda: (
            _maximized_windows_of(server, pid)
            == {"_NET_WM_STATE_MAXIMIZED_VERT", "_NET_WM_STATE_MAXIMIZED_HORZ"}
        ),
        30,
        "the terminal's window maximized",
    )
    env = procs.environ(pid)
    assert (
        "DBUS_SESSION_BUS_ADDRESS" in env and env["DISPLAY"] == _x_env(server)["DISPLAY"]
    )  # as from the menu


async def test_a_gpu_app_runs_through_virtualgl_and_gets_gtk_gl_back(
    server_factory: Callable[..., UserServer],
) -> None:
    if vglcheck.have_virtualgl():
        pytest.skip(vglcheck.have_virtualgl())
    spheres = {
        "name": "spheres",
        "title": "GL spheres",
        "command": ["/opt/VirtualGL/bin/glxspheres64"],
        "gpu": True,
    }
    server = server_factory("liam", "--VNCDesktop.virtualgl=session", env=_apps_env(spheres))
    wait_until(lambda: server.status()["state"] == "running", 30, "the desktop running")
    code, started = server.post("/vnc/api/apps/spheres")
    assert code == 200, started
    pid = started["pid"]
    wait_until(lambda: vglcheck.maps_virtualgl(pid), 20, "VirtualGL's faker in the app")
    environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    assert b"GDK_GL=disable" not in environ  # XFCE's programs have it; an app that asked for the GPU not

    # glxspheres (plain Xlib) does not name its process on its window: found as the new window.
    def spheres_maximized() -> bool:
        run = {"env": _x_env(server), "capture_output": True, "text": True, "timeout": 20}
        found = subprocess.run(["xdotool", "search", "--name", "GLX Spheres"], **run).stdout.split()  # type: ignore[call-overload]
        states = [subprocess.run(["xprop", "-id", w, "_NET_WM_STATE"], **run).stdout for w in found]  # type: ignore[call-overload]
        return any("MAXIMIZED_VERT" in st and "MAXIMIZED_HORZ" in st for st in states)

    wait_until(spheres_maximized, 30, "the spheres' window maximized")


@pytest.fixture
def carol(hub: HubBed) -> Iterator[HubUser]:
    yield from _logged_in(hub, "carol")


async def test_an_app_tile_in_jupyterlab_opens_the_desktop_with_the_app(
    hub: HubBed, carol: HubUser, spawner_settings: Callable[[str, dict], None]
) -> None:
    """The admin's list on the hub (c.VNCSlurmSpawner.desktop_apps) reaches the job; JupyterLab shows a
    tile with the app's icon; a click opens the desktop in a new tab and the app in it."""
    app = {"name": "xterm", "title": "XTerm on the desktop", "command": ["xterm", "-title", "from-tile"]}
    spawner_settings("carol", {"desktop_apps": [{**app, "icon": str(ICON)}]})
    assert carol.api("POST", server_path("carol", ""), json={}).status_code in (201, 202)
    carol.wait_ready("", 120)
    (job_id,) = squeue("carol")
    async with chromium() as browser:
        context = await browser.new_context(viewport={"width": 1400, "height": 900})
        page = await log_in(context, hub, "carol")
        await page.goto(user_url(hub.url, "carol") + "lab?reset")
        section = page.locator(".jp-Launcher-section", has_text="Desktop")
        tile = section.locator(".jp-LauncherCard", has_text="XTerm on the desktop")
        await tile.wait_for(timeout=60_000)
        assert "#2a7" in await tile.locator("svg").first.inner_html()  # the app's own icon
        assert await tile.get_attribute("title") == "Open the GPU Desktop with XTerm on the desktop"
        await page.screenshot(path=str(ROOT / "test-artifacts" / "lab-app-tile.png"))
        async with context.expect_page() as opened:
            await tile.click()
        desktop = await opened.value
        assert desktop.url == user_url(hub.url, "carol") + "vnc/"
        await desktop.wait_for_selector("body[data-vnc-state=connected]", timeout=60_000)

        def started() -> list[int]:
            return [p for p in job_processes(job_id) if procs.argv(p)[:3] == ["xterm", "-title", "from-tile"]]

        wait_until(lambda: bool(started()), 30, "the app started in carol's desktop")
        await desktop.screenshot(path=str(ROOT / "test-artifacts" / "lab-app-started.png"))
