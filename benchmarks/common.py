"""What the benchmarks share: Jupyter servers run as a test user, RFB clients, process accounting.

Every process a benchmark starts (the Jupyter servers and everything they start in turn: Xvnc, XFCE,
D-Bus, agents, glxgears) carries ``JVNC_BENCH_RUN=<id>`` in its environment. Run as root, we can read
every process's environment (setgid and non-dumpable ones included), so the whole tree is found by a
/proc scan even after daemons have left their parent's session, and ended at the end, while other
processes of the same user (other people's tests, say) are never touched.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import json
import os
import platform
import pwd
import re
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import peer
from tornado.httpclient import AsyncHTTPClient
from tornado.websocket import WebSocketClientConnection

REPO = Path(__file__).resolve().parents[1]
# The checkout's jupyter_vnc and testkit (the RFB client), for every script that imports this module.
if str(REPO) not in sys.path:
    sys.path.insert(1, str(REPO))

from jupyter_vnc.jobinfo import DESKTOP_JOB_VAR  # noqa: E402
from testkit.rfb import RAW, ByteStream, RFBClient  # noqa: E402

USER = os.environ.get("JVNC_BENCH_USER", "alice")
RUN_VAR = "JVNC_BENCH_RUN"
OURS_BIN = Path(sys.prefix) / "bin"
COLOURS_DRAWN = 20  # a screen with more distinct colours than this shows XFCE's panel/background
X_SERVERS = {"Xvnc", "Xtigervnc"}
# Server extensions of our venv that neither the desktop nor the peer's server has: off, so that both
# Jupyter servers do comparable work while a desktop starts (JupyterLab's and jupyter-lsp's start-up
# scans compete with XFCE for two cores otherwise). JVNC_BENCH_FULL_SERVER=1 keeps them on.
OURS_EXTENSIONS_OFF = ("jupyterlab", "jupyter_lsp", "notebook_shim", "jupyter_server_proxy")


def log(*args: object) -> None:
    print(*args, flush=True)


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def ratio(a: float, b: float) -> float:
    return a / b if b else float("nan")


def machine() -> str:
    cpu = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    os_name = ""
    with contextlib.suppress(OSError):
        m = re.search(r'PRETTY_NAME="([^"]+)"', Path("/etc/os-release").read_text())
        os_name = m.group(1) if m else ""
    return f"{os_name}, {os.cpu_count()} CPUs ({cpu}), {mem:.0f} GiB, Python {platform.python_version()}"


def preflight() -> pwd.struct_passwd:
    if os.geteuid() != 0:
        sys.exit("run as root: the benchmarks start Jupyter servers as the test user and read /proc")
    try:
        user = pwd.getpwnam(USER)
    except KeyError:
        sys.exit(f"no user {USER!r}: run devstack/install (it creates the test users)")
    if not (OURS_BIN / "jupyter").exists():
        sys.exit(f"no jupyter in {OURS_BIN}: run with /opt/jupyter-vnc/venv/bin/python")
    for tool in ("vncserver", "Xvnc", "xfce4-session", "dbus-launch"):
        if not shutil.which(tool):
            sys.exit(f"{tool} is missing: run devstack/install (TigerVNC + XFCE)")
    peer.ensure_venv(log)
    return user


# --- processes -----------------------------------------------------------------------------------


@dataclass
class Proc:
    pid: int
    ppid: int
    sid: int
    state: str
    name: str


def proc_table() -> dict[int, Proc]:
    table = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        name = stat[stat.index("(") + 1 : stat.rindex(")")]
        fields = stat.rsplit(")", 1)[-1].split()
        table[int(entry.name)] = Proc(int(entry.name), int(fields[1]), int(fields[3]), fields[0], name)
    return table


def run_pids(run_id: str) -> dict[int, Proc]:
    """Live processes of one benchmark run: marked ones, their sessions, their descendants."""
    needle = f"{RUN_VAR}={run_id}".encode()
    table = {pid: p for pid, p in proc_table().items() if p.state not in {"Z", "X"}}
    found = set()
    for pid in table:
        with contextlib.suppress(OSError):
            if needle in Path(f"/proc/{pid}/environ").read_bytes().split(b"\0"):
                found.add(pid)
    sessions = {table[pid].sid for pid in found}
    found |= {pid for pid, p in table.items() if p.sid in sessions}
    grew = True
    while grew:
        grew = False
        for pid, p in table.items():
            if p.ppid in found and pid not in found:
                found.add(pid)
                grew = True
    return {pid: table[pid] for pid in found}


def cmdline(pid: int) -> list[str]:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").rstrip("\0").split("\0")
    except OSError:
        return []


def memory_kib(pid: int) -> tuple[int, int, int]:
    """(PSS, RSS, USS) of a process in KiB; zeros if it is gone.

    PSS: ``Pss`` of smaps_rollup (shared pages divided among the processes that map them); RSS:
    ``VmRSS`` of status; USS: ``Private_Clean + Private_Dirty`` (pages no other process maps).
    """
    pss = rss = uss = 0
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            key, _, rest = line.partition(":")
            if key == "Pss":
                pss = int(rest.split()[0])
            elif key in ("Private_Clean", "Private_Dirty"):
                uss += int(rest.split()[0])
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1])
                break
    return pss, rss, uss


def started_at(pid: int) -> float | None:
    """When a process started, in CLOCK_BOOTTIME seconds (10 ms resolution)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[-1].split()
    except OSError:
        return None
    return int(fields[19]) / os.sysconf("SC_CLK_TCK")


def boottime() -> float:
    return time.clock_gettime(time.CLOCK_BOOTTIME)


def _signal(pids: object, sig: int) -> None:
    for pid in pids:  # type: ignore[attr-defined]
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, sig)


# --- servers -------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class XDisplay:
    pid: int
    display: int
    authority: str
    socket_path: str


@dataclass
class Server:
    kind: str  # "ours" or "peer"
    proc: subprocess.Popen[bytes]
    port: int
    token: str
    run_id: str
    home: Path
    log: Path
    spawned_at: float
    answered_at: float = 0.0  # CLOCK_BOOTTIME when /api/status first answered
    x_files: dict[int, int] = field(default_factory=dict)  # display -> Xvnc pid, for cleanup
    socket_dirs: set[str] = field(default_factory=set)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    @property
    def page_url(self) -> str:
        return self.url + ("vnc/" if self.kind == "ours" else peer.PAGE_PATH)

    @property
    def ws_url(self) -> str:
        path = "vnc/websockify" if self.kind == "ours" else peer.WEBSOCKET_PATH
        return f"ws://127.0.0.1:{self.port}/{path}"

    def get(self, path: str, timeout: float = 10) -> tuple[int, bytes]:
        req = urllib.request.Request(self.url + path, headers={"Authorization": f"token {self.token}"})
        try:
            with urllib.request.urlopen(req, timeout=timeout) as r:
                return r.status, r.read()
        except urllib.error.HTTPError as e:
            return e.code, e.read()

    def wait_answering(self, timeout: float = 60) -> float:
        """Seconds from spawning until ``/api/status`` answers 200."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.kind} server exited:\n{self.log.read_text()[-3000:]}")
            with contextlib.suppress(OSError):
                if self.get("api/status", timeout=2)[0] == 200:
                    self.answered_at = boottime()
                    return time.monotonic() - self.spawned_at
            time.sleep(0.05)
        raise RuntimeError(
            f"{self.kind} server did not answer in {timeout}s:\n{self.log.read_text()[-3000:]}"
        )

    def xdisplay(self) -> XDisplay:
        """The desktop's Xvnc: pid, display number, cookie file, VNC socket."""
        for pid in sorted(run_pids(self.run_id)):
            argv = cmdline(pid)
            if not argv or os.path.basename(argv[0]) not in X_SERVERS:
                continue
            display = next((int(a[1:]) for a in argv if re.fullmatch(r":\d+", a)), None)
            if display is None:  # ours passes -displayfd; its status API knows the number
                display = json.loads(self.get("vnc/api/status")[1])["display"]
            authority = argv[argv.index("-auth") + 1] if "-auth" in argv else ""
            sock = argv[argv.index("-rfbunixpath") + 1] if "-rfbunixpath" in argv else ""
            self.x_files[display] = pid
            if sock:
                self.socket_dirs.add(os.path.dirname(sock))
            return XDisplay(pid, display, authority, sock)
        raise RuntimeError(f"no Xvnc among the {self.kind} server's processes")

    def stop(self, timeout: float = 20) -> float:
        """SIGTERM the Jupyter server and wait for it; seconds it took."""
        t0 = time.monotonic()
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return time.monotonic() - t0


class Bench:
    """Owns everything one benchmark script starts and ends all of it, whatever happens."""

    def __init__(self, name: str) -> None:
        self.user = preflight()
        self.root = Path(tempfile.mkdtemp(prefix=f"jvnc-bench-{name}-"))
        self.root.chmod(0o711)  # the servers (the test user) reach their homes inside
        self.servers: list[Server] = []
        self.homes: dict[str, Path] = {}
        self._closed = False
        atexit.register(self.close)
        for sig in (signal.SIGTERM, signal.SIGHUP):
            signal.signal(sig, self._on_signal)
        log(
            f"# {name} on {machine()}; servers run as {self.user.pw_name};"
            f" {time.strftime('%Y-%m-%d %H:%M %Z')}"
        )

    def _on_signal(self, signum: int, frame: object) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    def home(self, label: str) -> Path:
        """A private, empty home for one kind of server (its XFCE settings persist across its runs)."""
        if label not in self.homes:
            path = self.root / f"home-{label}"
            path.mkdir(mode=0o700)
            os.chown(path, self.user.pw_uid, self.user.pw_gid)
            self.homes[label] = path
        return self.homes[label]

    async def prime(self, kind: str) -> None:
        """One unmeasured desktop in the kind's home: XFCE writes its settings when it first ends
        (xfwm4 then uses some 25 MiB more), so measured runs see a returning user's home."""
        server = self.start(kind)
        try:
            server.wait_answering()
            await open_desktop(server)
            await asyncio.sleep(2)
        finally:
            self.finish(server)

    def start(
        self,
        kind: str,
        home: Path | None = None,
        extra: tuple[str, ...] = (),
        full: bool = False,
        geometry: str = "",
    ) -> Server:
        """A Jupyter server of ``kind``; ``full`` keeps every extension on (JupyterLab included);
        ``geometry``: our desktop's screen size (default: the peer's, so both move the same pixels)."""
        bindir = OURS_BIN if kind == "ours" else peer.bin_dir()
        port, token, run_id = free_port(), secrets.token_hex(16), uuid.uuid4().hex
        home = home or self.home(kind)
        if kind == "ours":
            full = full or os.environ.get("JVNC_BENCH_FULL_SERVER") == "1"
            off = (
                {}
                if full
                else {"ServerApp": {"jpserver_extensions": dict.fromkeys(OURS_EXTENSIONS_OFF, False)}}
            )
            self._user_config(home, off)
        env = {
            "HOME": str(home),
            "USER": self.user.pw_name,
            "LOGNAME": self.user.pw_name,
            "SHELL": "/bin/bash",
            "PATH": f"{bindir}:/usr/local/bin:/usr/bin:/bin",
            "LANG": "C.UTF-8",
            RUN_VAR: run_id,
            # The token through the environment (readable by its owner only), never argv: `ps` shows argv
            # to every user of the machine.
            "JUPYTER_TOKEN": token,
        }
        if kind == "ours":
            env[DESKTOP_JOB_VAR] = "1"  # as its job script marks it: a desktop job prestarts its desktop
        argv = [
            str(bindir / "jupyter"), "server", "--no-browser", f"--port={port}", "--ServerApp.ip=127.0.0.1",
            "--ServerApp.open_browser=False",
        ]  # fmt: skip
        if kind == "ours":
            # The same screen size as the peer's (hard-coded there), so both move the same pixels.
            argv.append(f"--VNCDesktop.resolution={geometry or peer.geometry()}")
        argv += extra
        logfile = self.root / f"{kind}-{len(self.servers)}-{port}.log"
        with open(logfile, "wb") as out:
            spawned = time.monotonic()
            proc = subprocess.Popen(
                argv, env=env, cwd=home, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                user=self.user.pw_uid, group=self.user.pw_gid, extra_groups=[], start_new_session=True,
            )  # fmt: skip
        server = Server(kind, proc, port, token, run_id, home, logfile, spawned)
        self.servers.append(server)
        return server

    def _user_config(self, home: Path, config: dict) -> None:
        directory = home / ".jupyter"
        directory.mkdir(exist_ok=True)
        path = directory / "jupyter_server_config.json"
        path.write_text(json.dumps(config, indent=1))
        for p in (directory, path):
            os.chown(p, self.user.pw_uid, self.user.pw_gid)

    def spawn_on_display(self, server: Server, argv: list[str], nice: int = 0) -> subprocess.Popen[bytes]:
        """Run an X client on the server's desktop as the user, counted as part of that run."""
        x = server.xdisplay()
        env = {
            "HOME": str(server.home),
            "USER": self.user.pw_name,
            "PATH": "/usr/local/bin:/usr/bin:/bin",
            "DISPLAY": f":{x.display}",
            "XAUTHORITY": x.authority,
            "LIBGL_ALWAYS_SOFTWARE": "1",
            RUN_VAR: server.run_id,
        }
        return subprocess.Popen(
            ["nice", "-n", str(nice), *argv], env=env, cwd=server.home,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL,
            user=self.user.pw_uid, group=self.user.pw_gid, extra_groups=[], start_new_session=True,
        )  # fmt: skip

    def finish(self, server: Server, settle: float = 0.0) -> list[Proc]:
        """Stop the server with SIGTERM; what of its run is left after ``settle`` s; then end those."""
        with contextlib.suppress(RuntimeError):
            server.xdisplay()  # remember its display and socket dir for the file cleanup
        server.stop()
        if settle:
            time.sleep(settle)
        left = list(run_pids(server.run_id).values())
        self.kill_run(server)
        return left

    def kill_run(self, server: Server) -> None:
        """End every process of the run: SIGTERM, up to 3 s, then SIGKILL; remove its X files."""
        pids = run_pids(server.run_id)
        _signal(pids, signal.SIGTERM)
        deadline = time.monotonic() + 3
        while pids and time.monotonic() < deadline:
            time.sleep(0.05)
            pids = run_pids(server.run_id)
        for _ in range(20):
            if not pids:
                break
            _signal(pids, signal.SIGKILL)
            time.sleep(0.05)
            pids = run_pids(server.run_id)
        if server.proc.poll() is None:
            server.proc.kill()
        with contextlib.suppress(subprocess.TimeoutExpired):
            server.proc.wait(5)
        # A killed Xvnc leaves its lock and socket files; remove them only if they are that Xvnc's.
        for display, xpid in server.x_files.items():
            lock = Path(f"/tmp/.X{display}-lock")
            with contextlib.suppress(OSError, ValueError):
                if int(lock.read_text().strip()) == xpid:
                    lock.unlink()
                    with contextlib.suppress(OSError):
                        Path(f"/tmp/.X11-unix/X{display}").unlink()
        for directory in server.socket_dirs:
            with contextlib.suppress(OSError):
                if Path(directory).stat().st_uid == self.user.pw_uid:
                    shutil.rmtree(directory, ignore_errors=True)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        for server in self.servers:
            with contextlib.suppress(Exception):
                if server.proc.poll() is None:
                    server.xdisplay()
            with contextlib.suppress(Exception):
                server.stop(timeout=10)
            with contextlib.suppress(Exception):
                self.kill_run(server)
        shutil.rmtree(self.root, ignore_errors=True)


# --- RFB -----------------------------------------------------------------------------------------


async def websocket_rfb(
    server: Server, timeout: float = 90, query: str = ""
) -> tuple[RFBClient, WebSocketClientConnection]:
    """An RFB client on the server's authenticated desktop websocket (handshake not yet done);
    ``query`` is added to its URL (``view_only=1``: a connection that may only watch)."""
    # Browsers send small messages (input, update requests) at once: so does the client by default.
    nodelay = os.environ.get("JVNC_BENCH_CLIENT_NODELAY", "1") == "1"
    headers = {"Authorization": f"token {server.token}"}
    url = f"{server.ws_url}{'&' if '?' in server.ws_url else '?'}{query}" if query else server.ws_url
    stream = await ByteStream.websocket(url, headers, timeout=timeout, nodelay=nodelay)
    return RFBClient(stream), stream.connection  # type: ignore[attr-defined]


async def unix_rfb(path: str) -> tuple[RFBClient, object]:
    stream = await ByteStream.unix(path)
    return RFBClient(stream), stream


def close_transport(transport: object) -> None:
    with contextlib.suppress(Exception):
        transport.close()  # type: ignore[attr-defined]


async def full_screen_colours(client: RFBClient) -> int:
    """Distinct colours in a full-screen Raw update, counted over all its rectangles.

    Every 97th pixel is looked at (as the project's tests do): a blank X screen gives 1, XFCE's
    background and panel give dozens.
    """
    await client.request_update(incremental=False)
    stream = client.stream
    while True:
        kind = (await stream.read(1))[0]
        if kind == 0:
            break
        if kind == 1:
            count = int.from_bytes((await stream.read(5))[3:5], "big")
            await stream.read(count * 6)
        elif kind == 3:
            length = int.from_bytes((await stream.read(7))[3:7], "big")
            await stream.read(length)
        elif kind != 2:
            raise RuntimeError(f"unexpected RFB message {kind}")
    count = int.from_bytes((await stream.read(3))[1:3], "big")
    colours: set[bytes] = set()
    step = 4 * 97
    for _ in range(count):
        header = await stream.read(12)
        w, h = int.from_bytes(header[4:6], "big"), int.from_bytes(header[6:8], "big")
        encoding = int.from_bytes(header[8:12], "big", signed=True)
        if encoding != RAW:
            raise RuntimeError(f"asked for Raw only, got encoding {encoding}")
        data = await stream.read(w * h * 4)
        colours.update(data[i : i + 3] for i in range(0, len(data), step))
    return len(colours)


@dataclass
class Open:
    """One page open, timed: page GET, websocket open, RFB handshake, desktop drawn."""

    page: float
    websocket: float
    handshake: float
    drawn: float
    polls: int
    colours: int


async def open_desktop(server: Server, timeout: float = 60, poll: float = 0.1) -> Open:
    """Open the page, connect the viewer, ask for full screens until the desktop is drawn."""
    t0 = time.perf_counter()
    response = await AsyncHTTPClient().fetch(
        server.page_url, headers={"Authorization": f"token {server.token}"}, raise_error=False,
        follow_redirects=False, request_timeout=timeout,
    )  # fmt: skip
    if response.code != 200:
        raise RuntimeError(f"{server.kind} page {server.page_url}: HTTP {response.code}")
    t_page = time.perf_counter()
    client, conn = await websocket_rfb(server, timeout)
    t_ws = time.perf_counter()
    try:
        await client.handshake()
        t_hs = time.perf_counter()
        await client.set_pixel_format_32()
        await client.set_encodings(RAW)
        polls = 0
        while True:
            polls += 1
            colours = await full_screen_colours(client)
            if colours > COLOURS_DRAWN:
                break
            if time.perf_counter() - t0 > timeout:
                raise RuntimeError(f"{server.kind}: only {colours} colours after {timeout}s")
            await asyncio.sleep(poll)
        t_drawn = time.perf_counter()
    finally:
        conn.close()
    return Open(t_page - t0, t_ws - t0, t_hs - t0, t_drawn - t0, polls, colours)


def fmt(value: float, digits: int = 2) -> str:
    return "nan" if value != value else f"{value:.{digits}f}"
