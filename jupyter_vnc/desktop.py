"""One user's desktop: a private Xvnc and an XFCE session on it, started, watched and ended as a whole.

The desktop belongs to the Jupyter server process that serves it (see ``extension.py``): it is started
when the server starts in a desktop job (so it is ready before the user asks), or on the first
connection in any other server, started again on the next connection if Xvnc crashed, and ended, every
process of it, when the server stops.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import pwd
import re
import shutil
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from traitlets import Bool, CaselessStrEnum, Float, Int, List, Unicode, default, validate
from traitlets.config import LoggingConfigurable

from . import gpu, processes, reaper, vncserver, xauth, xfiles
from .jobinfo import JobClock
from .options import parse_resolution
from .resources import template_path

# Secrets of the Jupyter server that desktop applications (and the reaper) have no business seeing.
_SECRET_ENV = ("JPY_API_TOKEN", "JUPYTER_TOKEN")
# A session that exits with an error this soon after its start failed to set itself up (see
# _watch_session): it is started again, this many times at most.
SESSION_EARLY_EXIT_S = 20.0
SESSION_RESTARTS = 2


def without_secrets(environ: dict[str, str] | os._Environ[str]) -> dict[str, str]:
    """The server's environment minus its tokens and secrets (every JUPYTERHUB_*TOKEN*/*SECRET* too)."""
    return {
        k: v
        for k, v in environ.items()
        if k not in _SECRET_ENV and not (k.startswith("JUPYTERHUB_") and ("TOKEN" in k or "SECRET" in k))
    }


class DesktopError(RuntimeError):
    """The desktop could not start; the message says why in words a user can act on."""


class VNCDesktop(LoggingConfigurable):
    """The XFCE desktop served at ``/vnc/``. Configure it as ``c.VNCDesktop.<trait>`` in the Jupyter
    server's configuration (for example ``jupyter_server_config.py`` in the image)."""

    vnc_server = Unicode(
        "",
        help="""Path or command name of the Xvnc to run. Empty: TurboVNC's /opt/TurboVNC/bin/Xvnc when
        installed, else the Xvnc (or Xtigervnc) on PATH. The flavour is read from `Xvnc -version`.
        Example: c.VNCDesktop.vnc_server = "/opt/TurboVNC/bin/Xvnc"
        """,
    ).tag(config=True)

    resolution = Unicode(
        help="""Initial screen size, WIDTHxHEIGHT; the viewer then resizes it to the browser window.
        Defaults to $JUPYTER_VNC_RESOLUTION (set by the spawner from the spawn form), else 1920x1080.
        Example: c.VNCDesktop.resolution = "2560x1440"
        """,
    ).tag(config=True)

    @default("resolution")
    def _default_resolution(self) -> str:
        return os.environ.get("JUPYTER_VNC_RESOLUTION") or "1920x1080"

    @validate("resolution")
    def _check_resolution(self, proposal: dict[str, Any]) -> str:
        parse_resolution(proposal["value"])
        return proposal["value"].strip()

    depth = Int(
        24,
        help="Colour depth of the X screen: 16, 24 or 32. Example: c.VNCDesktop.depth = 24",
    ).tag(config=True)

    @validate("depth")
    def _check_depth(self, proposal: dict[str, Any]) -> int:
        if proposal["value"] not in (16, 24, 32):
            raise ValueError(f"depth must be 16, 24 or 32, not {proposal['value']}")
        return proposal["value"]

    xstartup = Unicode(
        "",
        help="""Program that starts the desktop session on the new display. Empty: the user's own
        ~/.vnc/xstartup when it exists, else jupyter-vnc's XFCE session (templates/xstartup).
        Example: c.VNCDesktop.xstartup = "/opt/site/bin/start-mate-session"
        """,
    ).tag(config=True)

    clipboard = Bool(
        True,
        help="""Let the clipboard cross between the browser and the desktop, both ways. Sites that must
        keep data from leaving the cluster turn it off. Example: c.VNCDesktop.clipboard = False
        """,
    ).tag(config=True)

    desktop_job = Bool(
        False,
        help="""Whether VNCSlurmSpawner started this server as a desktop job (the job script's
        $JUPYTER_VNC_DESKTOP_JOB, read by the extension). Not configurable: prestart is.""",
    )

    prestart = Bool(
        help="""Start the desktop as soon as the Jupyter server starts, so it is ready when the user
        opens it; False: start it when the user first opens it. Defaults to True in a server that
        VNCSlurmSpawner started as a desktop job (its job script exports $JUPYTER_VNC_DESKTOP_JOB), and
        to False in every other Jupyter server the package is installed in (a notebook server, a
        laptop's `jupyter lab`): no desktop starts there until its user asks for one.
        Example: c.VNCDesktop.prestart = False
        """,
    ).tag(config=True)

    @default("prestart")
    def _default_prestart(self) -> bool:
        return self.desktop_job

    virtualgl = CaselessStrEnum(
        ["auto", "session", "off"],
        "auto",
        help="""OpenGL on the GPU through VirtualGL's EGL back end (VGL_DISPLAY=egl: no X server on the
        node). "auto": run the whole desktop session under vglrun when VirtualGL and a GPU are present,
        so every program started from the menu, a terminal or the panel renders on the GPU without the
        user typing vglrun; "session": always (fails without VirtualGL; with no GPU, VirtualGL renders
        on a software EGL device); "off": never (users may still run `vglrun app` themselves).
        Example: c.VNCDesktop.virtualgl = "off"
        """,
    ).tag(config=True)

    vglrun = Unicode(
        "",
        help="""Path or command name of VirtualGL's vglrun. Empty: vglrun on PATH, else
        /opt/VirtualGL/bin/vglrun (where VirtualGL's own packages and scripts/build-virtualgl put it).
        Example: c.VNCDesktop.vglrun = "/apps/VirtualGL-3.1/bin/vglrun"
        """,
    ).tag(config=True)

    desktop_name = Unicode(
        "GPU Desktop",
        help='Name the VNC server announces (shown as the page title). Example: "Lab desktop"',
    ).tag(config=True)

    start_timeout = Float(
        30.0,
        help="Seconds to wait for Xvnc to accept connections before giving up. Example: 60",
    ).tag(config=True)

    extra_args = List(
        Unicode(),
        help='Extra Xvnc arguments, appended as given. Example: c.VNCDesktop.extra_args = ["-dpi", "120"]',
    ).tag(config=True)

    runtime_dir = Unicode(
        "",
        help="""Where the desktop's private 0700 directory (VNC socket, X cookie, logs) is made.
        Empty: $XDG_RUNTIME_DIR when set, else the system temp dir. Unix socket paths must stay under
        108 bytes. Example: c.VNCDesktop.runtime_dir = "/dev/shm"
        """,
    ).tag(config=True)

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.state = "stopped"
        self.message = "not started"
        self.server: vncserver.VNCServer | None = None
        self.display: int | None = None
        self.directory: Path | None = None
        self.started_at: float | None = None
        self._marker = ""
        self._xvnc: asyncio.subprocess.Process | None = None
        self._session: asyncio.subprocess.Process | None = None
        self._reaper: asyncio.subprocess.Process | None = None
        self._reaper_pipe: int | None = None  # the server's end of the reaper's pipe
        self._watcher: asyncio.Task[None] | None = None
        self._session_watcher: asyncio.Task[None] | None = None
        self._session_env: dict[str, str] = {}
        self._session_began = 0.0
        self._session_restarts = 0
        self._lock = asyncio.Lock()
        self._gpu: gpu.GPUInfo | None = None
        self._gl: gpu.GLProbe | None = None  # from a probe that ran on the display; None: not yet
        self._clock = JobClock(os.environ)

    # --- paths ---------------------------------------------------------------------------------

    @property
    def socket_path(self) -> Path:
        assert self.directory is not None
        return self.directory / "vnc.sock"

    @property
    def authority(self) -> Path:
        assert self.directory is not None
        return self.directory / "Xauthority"

    def _runtime_root(self) -> str:
        for candidate in (self.runtime_dir, os.environ.get("XDG_RUNTIME_DIR", "")):
            if candidate and os.path.isdir(candidate) and os.access(candidate, os.W_OK):
                return candidate
        return tempfile.gettempdir()

    # --- public API ----------------------------------------------------------------------------

    def unavailable_reason(self) -> str:
        """Why this server cannot run a desktop (no TurboVNC or TigerVNC Xvnc); "" when it can.
        Runs `Xvnc -version`: asked once, when the server starts."""
        try:
            vncserver.detect(self.vnc_server)
        except vncserver.NoVNCServerError as e:
            return str(e)
        return ""

    @property
    def running(self) -> bool:
        return self.state == "running" and self._xvnc is not None and self._xvnc.returncode is None

    async def ensure_running(self) -> Path:
        """The VNC socket of a running desktop, starting one (again) when needed."""
        async with self._lock:
            if not self.running:
                if self._marker:
                    await self._cleanup()
                await self._start()
            return self.socket_path

    async def stop(self) -> None:
        async with self._lock:
            await self._cleanup()
            self.state, self.message = "stopped", "stopped"

    async def restart(self) -> Path:
        async with self._lock:
            await self._cleanup()
            await self._start()
            return self.socket_path

    async def status(self) -> dict[str, Any]:
        """What the viewer and the JupyterLab panel show. Never contains a secret."""
        if self._gpu is None:
            self._gpu = await gpu.detect(vglrun=self.vglrun)
        width, height = parse_resolution(self.resolution)
        if self.running:
            width, height = await self._screen_size() or (width, height)
            if self._gl is None:
                self._gl = await self._probe_gl()
        gl = self._gl
        return {
            "state": self.state,
            "message": self.message,
            "display": self.display,
            "width": width,
            "height": height,
            "vnc_server": self.server.kind if self.server else "",
            "vnc_version": self.server.version if self.server else "",
            "gpus": self._gpu.names or [f"GPU {i}" for i in self._gpu.ids],
            # Only what the probe saw: "" until it has run (and when it could not tell).
            "gl": ("gpu" if gl.on_gpu else "software") if gl and gl.renderer else "",
            "gl_renderer": gl.renderer if gl else "",
            "gl_virtualgl": bool(gl and gl.virtualgl),
            "gl_notice": "" if gl and gl.on_gpu else self._software_gl_notice(),
            "clipboard": self.clipboard,
            "job_id": self._clock.job_id,
            "seconds_left": await self._clock.seconds_left(),
            "uptime": int(time.monotonic() - self.started_at) if self.started_at and self.running else 0,
        }

    # --- start ---------------------------------------------------------------------------------

    async def _start(self) -> None:
        self.state, self.message = "starting", "starting the desktop"
        try:
            await self._launch()
        except DesktopError as e:
            self.state, self.message = "failed", str(e)
            self.log.error("jupyter-vnc: desktop failed to start: %s", e)
            await self._cleanup(keep_message=True)
            raise
        self.state, self.message = "running", f"running on display :{self.display}"
        self.started_at = time.monotonic()
        self._gl = None
        self._watcher = asyncio.create_task(self._watch_xvnc())
        self._session_watcher = asyncio.create_task(self._watch_session())
        kind = self.server.kind if self.server else ""
        self.log.info("jupyter-vnc: desktop running on :%s (%s)", self.display, kind)

    async def _launch(self) -> None:
        try:
            self.server = await asyncio.to_thread(vncserver.detect, self.vnc_server)
        except vncserver.NoVNCServerError as e:
            raise DesktopError(str(e)) from e
        if self._gpu is None:
            self._gpu = await gpu.detect(vglrun=self.vglrun)
        self._marker = uuid.uuid4().hex
        user = pwd.getpwuid(os.getuid()).pw_name
        job = os.environ.get("SLURM_JOB_ID")
        prefix = f"jupyter-vnc-{user}-" + (f"job{job}-" if job else "")
        self.directory = Path(tempfile.mkdtemp(prefix=prefix, dir=self._runtime_root()))  # mode 0700
        cookie = xauth.new_cookie()
        xauth.write_authority(self.authority, cookie)

        read_fd, write_fd = os.pipe()
        argv = self.server.argv(
            socket_path=self.socket_path,
            authority=self.authority,
            displayfd=write_fd,
            geometry=self.resolution,
            depth=self.depth,
            name=self.desktop_name,
            clipboard=self.clipboard,
            extra=self.extra_args,
        )
        env = self._environment()
        with open(self.directory / "xvnc.log", "ab") as log:
            try:
                self._xvnc = await asyncio.create_subprocess_exec(
                    *argv,
                    pass_fds=(write_fd,),
                    stdin=asyncio.subprocess.DEVNULL,
                    stdout=log,
                    stderr=asyncio.subprocess.STDOUT,
                    env=env,
                    start_new_session=True,
                )
            finally:
                os.close(write_fd)
        await self._start_reaper()
        self.display = await self._read_display(read_fd)
        # Clients match the display number in the cookie file: add it now that Xvnc has chosen one.
        xauth.write_authority(self.authority, cookie, self.display)

        self._session_env = {**env, "DISPLAY": f":{self.display}", "XAUTHORITY": str(self.authority)}
        if self._use_virtualgl():
            # Under VirtualGL every GTK 3 program (XFCE's panel, desktop, window manager, session, ...)
            # would probe OpenGL as it opens the display, and each would open the GPU's EGL device for
            # it: ~15-20 MiB and a GPU context per program, for windows that never draw with OpenGL.
            # GTK 3's own OpenGL (GtkGLArea, rare in HPC applications) is off instead; applications'
            # OpenGL (Qt, VTK, Tk, GLX) still goes through VirtualGL. `GDK_GL= app` turns it on for one.
            self._session_env.setdefault("GDK_GL", "disable")
        self._session_restarts = 0
        await self._start_session()

    async def _start_session(self) -> None:
        assert self.directory is not None
        # A dead session's ICE socket at the new session's pid would make XFCE give up at once.
        removed = await asyncio.to_thread(xfiles.remove_dead_ice_sockets)
        if removed:
            self.log.info("jupyter-vnc: removed %d dead ICE socket(s) of earlier sessions", removed)
        argv = self._session_argv(self._session_env)
        with open(self.directory / "session.log", "ab") as log:
            self._session = await asyncio.create_subprocess_exec(
                *argv,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=log,
                stderr=asyncio.subprocess.STDOUT,
                env=self._session_env,
                cwd=os.path.expanduser("~"),
                start_new_session=True,
            )
        self._session_began = time.monotonic()

    async def _start_reaper(self) -> None:
        """A watcher that ends this desktop if the Jupyter server dies without stopping it."""
        assert self.directory is not None
        env = without_secrets(os.environ)  # and no marker: the reaper must survive the desktop's end
        # The server keeps the write end (close-on-exec: nothing it starts inherits it); the watcher
        # reads EOF when the server exits, however it exits (see reaper.py).
        read_fd, self._reaper_pipe = os.pipe()
        try:
            self._reaper = await asyncio.create_subprocess_exec(
                *reaper.watcher_argv(self._marker, str(self.directory)),
                stdin=read_fd,
                stdout=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.DEVNULL,
                env=env,
                start_new_session=True,
            )
        finally:
            os.close(read_fd)

    async def _read_display(self, read_fd: int) -> int:
        """Xvnc writes its display number to the -displayfd pipe once it accepts connections."""
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader()
        pipe = os.fdopen(read_fd, "rb", buffering=0)
        transport, _ = await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), pipe)
        try:
            line = await asyncio.wait_for(reader.readline(), self.start_timeout)
        except asyncio.TimeoutError:
            raise DesktopError(
                f"{self.server.kind if self.server else 'Xvnc'} did not start within "
                f"{self.start_timeout:g}s. {self._log_tail('xvnc.log')}"
            ) from None
        finally:
            transport.close()
        text = line.decode(errors="replace").strip()
        if not text.isdigit():
            code = self._xvnc.returncode if self._xvnc else None
            if self._xvnc is not None and code is None:
                with contextlib.suppress(asyncio.TimeoutError):
                    code = await asyncio.wait_for(self._xvnc.wait(), 2)
            # The reason first: a rejected option makes Xvnc print its whole usage text, and the
            # last lines of the log alone would be mostly that.
            reason = self._fatal_error("xvnc.log")
            raise DesktopError(
                f"Xvnc exited (code {code}) before it was ready{': ' + reason if reason else ''}. "
                f"{self._log_tail('xvnc.log')}"
            )
        return int(text)

    def _environment(self) -> dict[str, str]:
        env = without_secrets(os.environ)
        env[processes.MARKER_VAR] = self._marker
        if self._gpu and self._gpu.virtualgl:
            env.setdefault("VGL_DISPLAY", "egl")
        return env

    def _session_argv(self, env: dict[str, str]) -> list[str]:
        if self.xstartup:
            program = [self.xstartup]
        else:
            own = Path(env.get("HOME", os.path.expanduser("~"))) / ".vnc" / "xstartup"
            if own.is_file():
                program = [str(own)] if os.access(own, os.X_OK) else ["/bin/sh", str(own)]
            else:
                program = ["/bin/sh", str(template_path("xstartup"))]
        if self._use_virtualgl():
            assert self._gpu is not None
            return [self._gpu.virtualgl, *program]
        return program

    # --- for programs started in the desktop from outside it (apps.py) -------------------------------

    @property
    def marker(self) -> str:
        return self._marker

    def session_environment(self) -> dict[str, str]:
        """The environment the desktop session was started with (DISPLAY and XAUTHORITY included)."""
        return dict(self._session_env)

    def vglrun_for_apps(self) -> str:
        """vglrun, where the desktop routes OpenGL through VirtualGL; empty where it does not."""
        return self._gpu.virtualgl if self._gpu and self._use_virtualgl() else ""

    def _use_virtualgl(self) -> bool:
        if self.virtualgl == "off" or self._gpu is None:
            return False
        if self.virtualgl == "session":
            if not self._gpu.virtualgl:
                raise DesktopError('c.VNCDesktop.virtualgl = "session" but vglrun is not installed')
            return True
        return self._gpu.usable_for_gl

    # --- watch, inspect ------------------------------------------------------------------------

    async def _watch_xvnc(self) -> None:
        assert self._xvnc is not None
        code = await self._xvnc.wait()
        if self.state == "running":
            self.log.warning("jupyter-vnc: Xvnc exited with code %s; restarting on the next connection", code)
            self.state = "failed"
            self.message = f"the desktop's VNC server stopped (exit code {code}); reconnect to start it again"

    async def _watch_session(self) -> None:
        """A session that fails within its first seconds (XFCE that cannot set itself up) is started
        again, twice at most, on the same display. One that ends later (the user logged out) or keeps
        failing ends the desktop, with its last words: the viewer says so and a reconnect starts a new
        desktop, where a running X server with no session would show a black screen for ever. One
        that exits 0 at once (an xstartup that puts its programs in the background) is left be."""
        while self._session is not None:
            code = await self._session.wait()
            lived = time.monotonic() - self._session_began
            if code == 0 and lived < SESSION_EARLY_EXIT_S:
                return
            await asyncio.sleep(0.5)  # an X server that died took the session with it: its watcher says so
            if self.state != "running" or not self.running:
                return
            lines = self._log_tail("session.log", 1).splitlines()
            last = lines[-1].strip() if len(lines) > 1 else ""
            if code != 0 and lived < SESSION_EARLY_EXIT_S and self._session_restarts < SESSION_RESTARTS:
                self._session_restarts += 1
                self.log.warning(
                    "jupyter-vnc: the session exited with code %s after %.1f s (%s); starting it again",
                    code, lived, last,
                )  # fmt: skip
                await self._start_session()
                continue
            ended = f"the desktop session ended (exit code {code}{', ' + last if last else ''})"
            self.log.warning("jupyter-vnc: %s after %.0f s; stopping the desktop", ended, lived)
            async with self._lock:
                self._session_watcher = None  # this task: the cleanup must not cancel it
                await self._cleanup(keep_message=True)
                self.state, self.message = "failed", f"{ended}; reconnect to start a new desktop"
            return

    async def _screen_size(self) -> tuple[int, int] | None:
        if not shutil.which("xdpyinfo"):
            return None
        out, _ = await self._run_on_display(["xdpyinfo"])
        m = re.search(r"dimensions:\s+(\d+)x(\d+) pixels", out)
        return (int(m.group(1)), int(m.group(2))) if m else None

    async def _probe_gl(self) -> gpu.GLProbe:
        """Run glxinfo on the display the way the session's programs run (under vglrun when the
        session is), with VirtualGL's log on: the renderer shown to users is one that really answered."""
        use_vgl = self._use_virtualgl() and self._gpu is not None
        argv = gpu.probe_argv(self._gpu.virtualgl if use_vgl and self._gpu else "")
        if not argv:
            return gpu.GLProbe()
        out, err = await self._run_on_display(argv, {"VGL_VERBOSE": "1"} if use_vgl else {})
        probe = gpu.parse_probe(out, err)
        self.log.info(
            "jupyter-vnc: OpenGL on :%s: %s%s", self.display, probe.renderer or "no renderer reported",
            f" (through VirtualGL, device {probe.device})" if probe.virtualgl else "",
        )  # fmt: skip
        return probe

    def _software_gl_notice(self) -> str:
        if self._gl and self._gl.virtualgl:
            return (
                f"OpenGL goes through VirtualGL but renders in software ({self._gl.renderer or 'unknown'}):"
                " its EGL device is not a GPU."
            )
        if self._gpu and not self._gpu.ids and not self._gpu.names:
            return "No GPU in this session: OpenGL renders in software (slower, but it works)."
        if self._gpu and not self._gpu.virtualgl:
            return "VirtualGL is not installed: OpenGL renders in software, not on the GPU."
        if self.virtualgl == "off":
            return (
                "VirtualGL is off for this desktop: OpenGL renders in software (`vglrun app` uses the GPU)."
            )
        return "OpenGL renders in software."

    async def _run_on_display(
        self, argv: list[str], extra_env: dict[str, str] | None = None
    ) -> tuple[str, str]:
        """(stdout, stderr) of a short X client run on the desktop's display; empty when it failed."""
        env = {**self._environment(), "DISPLAY": f":{self.display}", "XAUTHORITY": str(self.authority)}
        env.update(extra_env or {})
        proc = None
        try:
            # A session of its own, as the desktop's other processes: it carries the desktop's marker,
            # and a restart that finds it running ends its session, which must not be the job's.
            proc = await asyncio.create_subprocess_exec(
                *argv, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
                start_new_session=True,
            )  # fmt: skip
            out, err = await asyncio.wait_for(proc.communicate(), 10)
        except (OSError, asyncio.TimeoutError):
            if proc is not None and proc.returncode is None:
                proc.kill()
            return "", ""
        return out.decode(errors="replace"), err.decode(errors="replace")

    def _fatal_error(self, name: str) -> str:
        """The X server's own reason for giving up: the "(EE)" lines after "Fatal server error:"
        (how every X server, TigerVNC's and TurboVNC's Xvnc included, reports it); "" when none."""
        if not self.directory:
            return ""
        try:
            lines = (self.directory / name).read_text(errors="replace").splitlines()
        except OSError:
            return ""
        starts = [i for i, line in enumerate(lines) if line.strip() == "Fatal server error:"]
        reason = []
        for line in lines[starts[-1] + 1 :] if starts else []:
            text = line.strip().removeprefix("(EE)").strip()
            if not line.strip().startswith("(EE)") or not text:
                break
            reason.append(text)
        return " ".join(reason)

    def _log_tail(self, name: str, lines: int = 8) -> str:
        if not self.directory:
            return ""
        try:
            text = (self.directory / name).read_text(errors="replace").strip().splitlines()
        except OSError:
            return ""
        return "Last lines of its log:\n" + "\n".join(text[-lines:]) if text else ""

    # --- stop ----------------------------------------------------------------------------------

    async def _cleanup(self, keep_message: bool = False) -> None:
        """End every process of the desktop and remove its directory and X display files."""
        for watcher in (self._watcher, self._session_watcher):
            if watcher:
                watcher.cancel()
        self._watcher = self._session_watcher = None
        if self._reaper is not None and self._reaper.returncode is None:
            self._reaper.kill()
            await self._reaper.wait()
        self._reaper = None
        if self._reaper_pipe is not None:
            os.close(self._reaper_pipe)  # after the kill: closing it first would set the reaper off
            self._reaper_pipe = None
        state = self.state
        self.state = "stopping"
        first = {p.pid for p in (self._xvnc, self._session) if p is not None and p.returncode is None}
        if self._marker:
            killed = await processes.terminate_marked(self._marker, first=first)
            if killed:
                self.log.warning("jupyter-vnc: %d desktop process(es) needed SIGKILL", killed)
        for proc in (self._xvnc, self._session):
            if proc is not None and proc.returncode is None:
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(proc.wait(), 2)
        if self.display is not None:
            xfiles.remove_display_files(self.display)
        # The session dies with its X server and leaves its ICE socket behind (see xfiles.py).
        await asyncio.to_thread(xfiles.remove_dead_ice_sockets)
        if self.directory:
            shutil.rmtree(self.directory, ignore_errors=True)
        self._xvnc = self._session = None
        self.directory = None
        self.display = None
        self._marker = ""
        self.started_at = None
        self.state = state if keep_message else "stopped"
