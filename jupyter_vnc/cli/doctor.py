"""`jupyter-vnc doctor`: check a site end to end and say what is wrong in words an admin can act on.

Every check prints OK, WARN (works, but something users will notice, or a risk the site should close)
or FAIL (desktops cannot work); the exit code is 0 only when nothing FAILed.
"""

from __future__ import annotations

import asyncio
import json
import shlex
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from ..registry import RegistryConfigError, RegistryUnavailable, open_registry
from . import errors
from .hubapi import SCOPES, HubAPI, HubError
from .hubconfig import HubSettings

OK, WARN, FAIL = "OK", "WARN", "FAIL"


@dataclass
class Result:
    status: str
    check: str
    detail: str


def _run(argv: list[str], timeout: float = 60) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
    except FileNotFoundError:
        return subprocess.CompletedProcess(argv, 127, "", f"{argv[0]}: command not found")
    except subprocess.TimeoutExpired:
        return subprocess.CompletedProcess(argv, 124, "", f"{argv[0]} did not answer within {timeout:g}s")


def _shell(command: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """A command line composed like the spawner's (a site's prefix: ssh to a login node, sudo)."""
    return _run(["/bin/sh", "-c", command], timeout)


def _first_line(text: str) -> str:
    return next((line.strip() for line in text.splitlines() if line.strip()), "")


class Doctor:
    def __init__(self, settings: HubSettings) -> None:
        self.settings = settings
        self.results: list[Result] = []
        self.image = settings.trait("image", "") or ""
        self.apptainer = settings.trait("apptainer", "apptainer") or "apptainer"

    def add(self, status: str, check: str, detail: str) -> None:
        self.results.append(Result(status, check, detail))

    # --- Slurm -----------------------------------------------------------------------------------

    def slurm_command(self, command: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        """Run a Slurm command the way the spawner's shared status query runs: through
        query_exec_prefix (on a hub that is not a submit host: ssh to a login node)."""
        from ..slurm_commands import compose

        prefix = self.settings.trait("query_exec_prefix", "") or ""
        return _shell(compose(prefix, command, {}), timeout)

    def slurm_reachable(self) -> bool:
        if self.settings.trait("query_exec_prefix", ""):
            return self.slurm()
        if not shutil.which("scontrol"):
            self.add(
                FAIL,
                "Slurm controller",
                "scontrol not found on the hub machine (install slurm-client, or reach a login node"
                " through c.VNCSlurmSpawner.query_exec_prefix and exec_prefix)",
            )
            return False
        return self.slurm()

    def slurm(self) -> bool:
        ping = self.slurm_command("scontrol ping", timeout=30)
        if ping.returncode != 0 or "UP" not in ping.stdout:
            why = _first_line(ping.stderr or ping.stdout) or f"exit code {ping.returncode}"
            self.add(FAIL, "Slurm controller", f"not reachable from the hub: {why}")
            return False
        self.add(OK, "Slurm controller", _first_line(ping.stdout))
        return True

    def status_query(self) -> None:
        prefix = self.settings.trait("query_exec_prefix", None)
        if prefix is None:
            self.add(
                WARN,
                "Status query",
                "each desktop is asked about as its user (one squeue per desktop per poll, as batchspawner"
                " does): a load on slurmctld with hundreds of desktops. For one squeue per poll for the"
                ' whole hub, set c.VNCSlurmSpawner.query_exec_prefix (e.g. "sudo -n -u root", or "" for a'
                " hub that is root or a Slurm operator)",
            )
        else:
            self.add(OK, "Status query", f"one squeue per poll for every desktop, through {prefix!r}")

    def partitions(self) -> None:
        wanted = list(self.settings.trait("partitions", []) or [])
        default = self.settings.trait("req_partition", "") or ""
        if default and default not in wanted:
            wanted.insert(0, default)
        if not wanted:
            self.add(OK, "Partition", "none configured: jobs go to Slurm's default partition")
            return
        max_gpus = int(self.settings.trait("max_gpus", 1) or 0)
        for name in wanted:
            # "#", not "|": behind ssh (query_exec_prefix) the remote shell reads the format unquoted.
            info = self.slurm_command(f"sinfo -h -p {shlex.quote(name)} -o '%P#%a#%D#%G'")
            line = _first_line(info.stdout)
            if info.returncode != 0 or not line:
                self.add(
                    FAIL,
                    f"Partition {name}",
                    "does not exist (check c.VNCSlurmSpawner.req_partition/partitions)",
                )
                continue
            _, avail, nodes, gres = line.split("#", 3)
            if avail != "up":
                self.add(FAIL, f"Partition {name}", f"is {avail}: jobs will wait forever")
            else:
                self.add(OK, f"Partition {name}", f"up, {nodes} node(s)")
            if max_gpus > 0:
                if "gpu" in gres:
                    self.add(OK, f"GPUs in {name}", f"gres {gres}")
                else:
                    self.add(
                        FAIL, f"GPUs in {name}", f"no gpu in gres ({gres}) but users may ask for {max_gpus}"
                    )

    # --- the desktop's software --------------------------------------------------------------------

    def _in_desktop(self, script: str) -> subprocess.CompletedProcess[str]:
        """Run a shell snippet where the desktop runs: inside the image, or on this host (host mode)."""
        if self.image:
            return _run(
                [self.apptainer, "exec", "--cleanenv", self.image, "/bin/sh", "-c", script], timeout=120
            )
        return _run(["/bin/sh", "-c", script])

    def apptainer_image(self) -> bool:
        if not self.image:
            self.add(OK, "Apptainer", "not used (host mode: the desktop runs on the nodes themselves)")
            return True
        version = _run([self.apptainer, "--version"])
        if version.returncode != 0:
            self.add(FAIL, "Apptainer", f"{self.apptainer} does not run: {_first_line(version.stderr)}")
            return False
        self.add(OK, "Apptainer", _first_line(version.stdout))
        if not Path(self.image).is_file():
            self.add(FAIL, "Image", f"{self.image} does not exist (c.VNCSlurmSpawner.image)")
            return False
        probe = _run([self.apptainer, "exec", self.image, "true"], timeout=120)
        if probe.returncode != 0:
            self.add(FAIL, "Image", f"apptainer cannot run {self.image}: {_first_line(probe.stderr)}")
            return False
        self.add(OK, "Image", f"{self.image} runs")
        return True

    def desktop_software(self) -> None:
        where = "in the image" if self.image else "on this host"
        checks: list[tuple[str, str, str, str]] = [
            ("VNC server", "command -v Xvnc || command -v Xtigervnc || ls /opt/TurboVNC/bin/Xvnc", FAIL,
             "install TurboVNC or TigerVNC (tigervnc-standalone-server)"),
            ("XFCE", "command -v startxfce4 && command -v dbus-run-session", FAIL,
             "install xfce4-session xfwm4 xfce4-panel and dbus (dbus-x11)"),
            ("VirtualGL", "command -v vglrun || ls /opt/VirtualGL/bin/vglrun", WARN,
             "no vglrun: OpenGL renders in software, not on the GPU (scripts/build-virtualgl)"),
        ]  # fmt: skip
        for name, script, severity, advice in checks:
            found = self._in_desktop(script)
            path = _first_line(found.stdout)
            if found.returncode == 0 and path:
                self.add(OK, name, f"{path} ({where})")
            else:
                self.add(severity, name, f"not found {where}: {advice}")
        singleuser = self.settings.trait("batchspawner_singleuser_cmd", "jupyter-vnc-singleuser")
        cmd = (self.settings.trait("cmd", None) or ["jupyterhub-singleuser"])[0]
        python = shlex.quote(str(Path(cmd).parent / "python")) if "/" in cmd else "python3"
        check = (
            f"command -v {shlex.quote(singleuser)} >/dev/null && command -v {shlex.quote(cmd)} >/dev/null"
            f" && {python} -c 'import jupyter_vnc, batchspawner; print(jupyter_vnc.__version__)'"
        )
        found = self._in_desktop(check)
        if found.returncode == 0:
            self.add(OK, "jupyter-vnc", f"{_first_line(found.stdout)} with {singleuser} and {cmd} ({where})")
        else:
            why = _first_line(found.stderr) or "not found"
            self.add(
                FAIL, "jupyter-vnc", f"missing {where}: need {singleuser}, {cmd} and jupyter_vnc ({why})"
            )

    # --- hub side --------------------------------------------------------------------------------

    def registry(self) -> None:
        url = self.settings.trait("registry_url", "")
        if not url:
            self.add(OK, "Registry", "in the hub process (no Redis configured; one hub only)")
            return

        async def ping() -> bool:
            registry = open_registry(url, self.settings.trait("registry_password_file", "") or "")
            try:
                await registry.ping()
                return await registry.open_to_anyone()  # type: ignore[attr-defined]
            finally:
                await registry.close()

        try:
            anonymous = asyncio.run(ping())
        except RegistryConfigError as e:
            self.add(FAIL, "Registry", str(e))
            return
        except RegistryUnavailable as e:
            self.add(
                FAIL, "Redis", f"{e} (c.VNCSlurmSpawner.registry_url); spawns work, sessions cannot be listed"
            )
            return
        if anonymous:
            self.add(
                WARN,
                "Redis",
                "reachable, but it answers clients without a password: any local user can read and forge "
                "sessions. Set requirepass (or an ACL user) and c.VNCSlurmSpawner.registry_password_file",
            )
        else:
            self.add(OK, "Redis", "reachable, and it refuses clients without credentials")

    def hub_token(self) -> None:
        api = HubAPI(self.settings.hub_url, self.settings.token)
        try:
            me = api.whoami()
        except HubError as e:
            self.add(FAIL, "Hub API token", str(e))
            return
        scopes = set(me.get("scopes", []))
        missing = [s for s in SCOPES if not any(x == s or x.startswith(s + "!") for x in scopes)]
        if missing:
            self.add(
                WARN,
                "Hub API token",
                f"valid ({me.get('name')}) but lacks {', '.join(missing)}: cancel/sessions fail",
            )
        else:
            self.add(OK, "Hub API token", f"valid, {me.get('kind', 'user')} {me.get('name')}")

    def origins(self) -> None:
        host = self.settings.config.get("JupyterHub", {}).get("subdomain_host", "")
        if host:
            self.add(OK, "Per-user origins", f"each user's server on a subdomain of {host}")
            return
        # Loud on purpose: nothing in jupyter-vnc (or JupyterLab) can close this from inside the page.
        self.add(
            WARN,
            "Per-user origins",
            "NONE: every user's server shares the hub's origin (no c.JupyterHub.subdomain_host). A page "
            "that one user's server serves can open another user's JupyterLab or desktop in a window, "
            "read her token from it and act as her (her files, her kernels, her desktop). Set "
            'c.JupyterHub.subdomain_host = "https://hub.example.org" (wildcard DNS and certificate for '
            "*.hub.example.org); JUPYTERHUB_ALLOW_WEBSOCKET_COOKIE_AUTH=0 does not close this",
        )

    # --- the spawner's own settings ----------------------------------------------------------------

    def configuration(self) -> None:
        """Every VNCSlurmSpawner setting of the file, checked as the hub checks it when it starts."""
        from ..config_check import configuration_problems

        problems = configuration_problems(self.settings.config)
        for problem in problems:
            self.add(FAIL, "Configuration", problem)
        if not problems:
            self.add(OK, "Configuration", "every VNCSlurmSpawner setting has a value it accepts")

    # --- settings that cancel queued desktops or weaken security -----------------------------------

    def settings_risks(self) -> None:
        hub = self.settings.config.get("JupyterHub", {})
        queue = float(self.settings.trait("max_queue_hours", 168.0) or 0) or float(
            self.settings.trait("default_queue_hours", 24.0) or 0
        )
        start_timeout = self.settings.trait("start_timeout", None)
        if start_timeout is not None and (not queue or float(start_timeout) < queue * 3600):
            self.add(
                WARN,
                "start_timeout",
                f"set to {start_timeout} s: JupyterHub gives up on a spawn after it and the job is cancelled,"
                f" so a desktop queued longer never starts although users may wait "
                + (f"{queue:g} h" if queue else "without limit")
                + " (max_queue_hours). Remove the setting: the spawner computes it from the queue limit",
            )
        else:
            self.add(OK, "start_timeout", "follows the queue limit (max_queue_hours + job_start_timeout)")
        limit = hub.get("concurrent_spawn_limit", 100)
        if limit and int(limit) < 50:
            self.add(
                WARN,
                "concurrent_spawn_limit",
                f"{limit}: desktops waiting in the Slurm queue count against it; with {limit} queued, the "
                'next spawn is refused ("Too many users trying to log in right now"). Raise it, or 0',
            )
        else:
            self.add(
                OK,
                "concurrent_spawn_limit",
                f"{limit or 'no limit'} (desktops waiting in the Slurm queue count against it)",
            )
        environment = self.settings.trait("environment", {}) or {}
        cookie = str(environment.get("JUPYTERHUB_ALLOW_WEBSOCKET_COOKIE_AUTH", "")).strip().lower()
        if cookie not in {"0", "false", "no", "off"} and not hub.get("subdomain_host"):
            self.add(
                WARN,
                "Websocket cookie auth",
                "on, and users share one origin: a page of one user's server can open a websocket to "
                "another's desktop with her cookie. Set c.Spawner.environment = "
                '{"JUPYTERHUB_ALLOW_WEBSOCKET_COOKIE_AUTH": "0"} (and subdomain_host)',
            )

    # --- from inside a job, as a user ----------------------------------------------------------------

    def in_job(self, username: str) -> None:
        from . import probe

        try:
            spawner = probe.make_spawner(self.settings.config, username)
        except KeyError:
            self.add(FAIL, "Probe job", f"no Unix user {username!r} on the hub machine")
            return
        api = probe.hub_api_url(self.settings.config)
        found = asyncio.run(probe.run_probe(spawner, api))
        where = f"job {found.job_id} as {username}" if found.job_id else f"as {username}"
        if found.error or not found.report:
            self.add(FAIL, "Probe job", f"{where}: {found.error or 'no report'}")
            return
        report = found.report
        self.add(OK, "Probe job", f"{where} ran on {report.node} (submitted through exec_prefix)")
        for name, outcome in report.commands.items():
            if outcome == "ok":
                self.add(OK, f"{name} in the job", f"on {username}'s PATH on {report.node}, runnable")
            elif outcome == "missing":
                self.add(
                    FAIL,
                    f"{name} in the job",
                    f"not on {username}'s PATH on {report.node} (the job sees the user's login PATH, not "
                    "the hub's): give its full path in c.VNCSlurmSpawner.batchspawner_singleuser_cmd or "
                    "c.Spawner.cmd",
                )
            else:
                self.add(
                    FAIL,
                    f"{name} in the job",
                    f"{probe.safe(outcome)} for {username} on {report.node}: install into an environment "
                    "the users may read (not under /root)",
                )
        if report.imports == "ok":
            self.add(
                OK,
                "jupyter-vnc in the job",
                f"its Python imports jupyter_vnc and batchspawner on {report.node}",
            )
        else:
            self.add(
                FAIL,
                "jupyter-vnc in the job",
                f"the job's Python on {report.node} cannot import jupyter_vnc and batchspawner "
                f"({probe.safe(report.imports)}): install jupyter-vnc where the job runs",
            )
        if report.hub_api.startswith("ok"):
            self.add(OK, "Node to hub API", f"{report.node} reaches {api}")
        else:
            self.add(
                FAIL,
                "Node to hub API",
                f"{report.node} cannot reach {api} ({probe.safe(report.hub_api)}): desktops would never "
                "report their port. Set c.JupyterHub.hub_connect_url (or hub_ip) to an address the nodes "
                "reach",
            )
        if not self.image:
            self.software_on_node(report, username)
        if found.reached == "ok":
            self.add(OK, "Hub to node", f"reaches {found.address} (node {report.node}) as the spawner will")
        else:
            self.add(
                FAIL,
                "Hub to node",
                f"{found.reached} (node {report.node}, as c.VNCSlurmSpawner.state_exechost_exp maps it):"
                " the hub could not reach a desktop there",
            )

    def software_on_node(self, report: Any, username: str) -> None:
        checks = (
            ("vnc", "VNC server", FAIL, "install TurboVNC or TigerVNC (tigervnc-standalone-server)"),
            ("xfce", "XFCE", FAIL, "install xfce4-session xfwm4 xfce4-panel and dbus (dbus-x11)"),
            ("vgl", "VirtualGL", WARN, "no vglrun: OpenGL renders in software, not on the GPU"),
        )
        for key, name, severity, advice in checks:
            if report.software.get(key) == "ok":
                self.add(OK, name, f"on {report.node} (the probe job's node, as {username})")
            else:
                self.add(severity, name, f"not found on {report.node}: {advice}")

    def run(self, username: str = "") -> list[Result]:
        self.configuration()
        if any(r.status == FAIL for r in self.results):
            return self.results  # the other checks read these settings: fix them first
        steps: list[Callable[[], object]] = [self.hub_token, self.origins, self.registry, self.settings_risks]
        if self.slurm_reachable():
            steps += [self.status_query, self.partitions]
            if username:
                steps.append(lambda: self.in_job(username))
        off_cluster = shutil.which("sbatch") is None  # Slurm only through a login node
        # Host mode: the desktop's software is on the nodes. This host stands in for them only where it
        # is a submit host and no probe job looks at a node itself.
        local = self.image or not (username or off_cluster)
        if self.apptainer_image() and local:
            steps.append(self.desktop_software)
        elif not local and not username:
            self.add(
                WARN,
                "Desktop software",
                "not checked: this hub is not a submit host; give --user NAME to check on a node",
            )
        for step in steps:
            step()
        return self.results


def report(results: list[Result]) -> str:
    width = max(len(r.check) for r in results)
    return "\n".join(f"[{r.status:>4}] {r.check.ljust(width)}  {r.detail}" for r in results)


def as_json(results: list[Result]) -> dict[str, Any]:
    """--json's shape (documented in `jupyter-vnc doctor --help`): add keys, never rename one."""
    failed = sum(r.status == FAIL for r in results)
    return {
        "ok": not failed,
        "failed": failed,
        "warned": sum(r.status == WARN for r in results),
        "checks": [asdict(r) for r in results],
    }


def run(settings: HubSettings, json_output: bool = False, username: str = "") -> int:
    results = Doctor(settings).run(username)
    failed = [r for r in results if r.status == FAIL]
    if json_output:
        print(json.dumps(as_json(results), indent=2))
    else:
        print(report(results))
        if not username:
            print("\nFrom inside a job (PATH, the hub's API from a node, the node from the hub): --user NAME")
        print(f"\n{len(failed)} problem(s) found." if failed else "\nEverything a desktop needs is in place.")
    return errors.FAILED if failed else errors.OK
