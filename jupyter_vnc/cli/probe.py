"""`doctor --user NAME`: a short job that checks, from a node of the desktop partition and as that user,
what a desktop job needs, submitted and read through the spawner's own command path.

The hub's configuration makes a real VNCSlurmSpawner, so the probe goes where a desktop goes: the same
``exec_prefix`` (sudo, ssh to a login node), ``batch_submit_cmd``, partition and login environment
(``--get-user-env=L``). From the node it checks that the two commands the job runs resolve on the user's
PATH with an interpreter the user may run, and that the node reaches the hub's API; it then listens on
a port, and the doctor checks that the hub resolves and reaches the node's address the way the spawner
will record it (``state_exechost_exp``). The job reports through its own Slurm comment (only check
names and outcomes, no paths of the user's files), read back with squeue: the commands a site's sudo
rule allows the hub already.
"""

from __future__ import annotations

import asyncio
import re
import shlex
import socket
import time
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any
from urllib.parse import urlsplit

from traitlets.config import Config

from ..slurm_commands import outcome
from .hubconfig import hub_base_url

MARK = "jvnc-doctor"
_ENDED = {"COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL", "OUT_OF_MEMORY", "BOOT_FAIL"}
_SAFE = re.compile(r"[^A-Za-z0-9_.:/=,+-]+")

# What the job runs. Its outcome words are read by parse_report(); the listener accepts one
# connection (the doctor's) and ends the job.
SCRIPT = r"""#!/bin/bash
#SBATCH --job-name=jupyter-vnc-doctor
#SBATCH --output=/dev/null
#SBATCH --time=5
#SBATCH --get-user-env=L
{sbatch_lines}
set -u
clean() {{ printf '%s' "$*" | tr -c 'A-Za-z0-9_.:/=,+-' '_' | cut -c1-120; }}
report="{mark};node=$(clean "$(hostname -s)")"
python=""
for cmd in {commands}; do
  name=$(clean "$(basename "$cmd")")
  found=$(command -v "$cmd") || {{ report+=";cmd:$name=missing"; continue; }}
  interpreter=$(head -c 200 "$found" 2>/dev/null | head -n1 | sed -n 's/^#! *\([^ ]*\).*/\1/p')
  if [ -n "$interpreter" ] && ! [ -x "$interpreter" ]; then
    report+=";cmd:$name=interpreter_not_runnable:$(clean "$interpreter")"
  else
    report+=";cmd:$name=ok"
    [ -n "$interpreter" ] && [ -z "$python" ] && python=$interpreter
  fi
done
# The desktop's own software on the node (host mode; an image is checked where the doctor runs).
has() {{ for c in "$@"; do command -v "$c" >/dev/null 2>&1 || [ -x "$c" ] && return 0; done; return 1; }}
has Xvnc Xtigervnc /opt/TurboVNC/bin/Xvnc && report+=";vnc=ok" || report+=";vnc=missing"
has startxfce4 && has dbus-run-session && report+=";xfce=ok" || report+=";xfce=missing"
has vglrun /opt/VirtualGL/bin/vglrun && report+=";vgl=ok" || report+=";vgl=missing"
[ -n "$python" ] || python=$(command -v python3 || true)
if [ -z "$python" ]; then
  report+=";hubapi=no_python"
  scontrol update JobId="$SLURM_JOB_ID" Comment="$report" >/dev/null 2>&1
  exit 0
fi
imports=$("$python" -c 'import jupyter_vnc, batchspawner; print("ok")' 2>&1 | tail -n1)
report+=";imports=$(clean "$imports")"
api=$("$python" - {api_url} <<'PY' 2>&1
import sys, urllib.request
try:
    with urllib.request.urlopen(sys.argv[1], timeout=10) as answer:
        print("ok", answer.status)
except Exception as e:
    print(type(e).__name__, getattr(e, "reason", e))
PY
)
report+=";hubapi=$(clean "$api")"
port_file=$(mktemp)
"$python" - "$port_file" <<'PY' &
import socket, sys
server = socket.create_server(("", 0), family=socket.AF_INET)
server.settimeout(120)
with open(sys.argv[1], "w") as out:
    out.write(str(server.getsockname()[1]))
try:
    connection, _ = server.accept()
    connection.close()
except OSError:
    pass
PY
listener=$!
for _ in $(seq 50); do [ -s "$port_file" ] && break; sleep 0.1; done
report+=";port=$(cat "$port_file")"
rm -f "$port_file"
scontrol update JobId="$SLURM_JOB_ID" Comment="$report" >/dev/null 2>&1 || report+=";comment=refused"
wait "$listener"
"""


@dataclass
class ProbeReport:
    """What the probe job found, read from its comment."""

    node: str = ""
    commands: dict[str, str] = field(default_factory=dict)
    hub_api: str = ""
    port: int = 0
    software: dict[str, str] = field(default_factory=dict)  # vnc, xfce, vgl: "ok" or "missing"
    imports: str = ""  # "ok", or the job's Python's last words on `import jupyter_vnc, batchspawner`


def parse_report(comment: str) -> ProbeReport | None:
    """The probe's comment (``jvnc-doctor;node=n1;cmd:x=ok;hubapi=ok_200;port=4711``), or None when
    the job has not written it yet."""
    if not comment.startswith(MARK + ";"):
        return None
    report = ProbeReport()
    for part in comment.split(";")[1:]:
        key, _, value = part.partition("=")
        if key == "node":
            report.node = value
        elif key.startswith("cmd:"):
            report.commands[key[4:]] = value
        elif key == "hubapi":
            report.hub_api = value
        elif key == "port" and value.isdigit():
            report.port = int(value)
        elif key == "imports":
            report.imports = value
        elif key in {"vnc", "xfce", "vgl"}:
            report.software[key] = value
    return report


def make_spawner(config: Config, username: str) -> Any:
    """The hub's spawner for ``username``, configured as the hub configures it (no hub running)."""
    from jupyterhub.objects import Hub

    from ..spawner import VNCSlurmSpawner

    user = SimpleNamespace(name=username, escaped_name=username, url=f"/user/{username}/", server=None)
    user.spawners = {}
    return VNCSlurmSpawner(config=config, user=user, hub=Hub())


def hub_api_url(config: Config) -> str:
    """Where a job reaches the hub's API (JUPYTERHUB_API_URL), as JupyterHub computes it."""
    hub = config.get("JupyterHub", {})
    prefix = hub_base_url(hub) + "/hub/"  # JupyterHub puts its hub_prefix on whatever path is given
    for url in (hub.get("hub_connect_url"), hub.get("hub_bind_url")):
        if url:
            parts = urlsplit(str(url))
            return f"{parts.scheme}://{_connectable(parts.hostname or '')}{_port(parts.port)}{prefix}api"
    ip = str(hub.get("hub_connect_ip") or hub.get("hub_ip") or "127.0.0.1")
    port = int(hub.get("hub_connect_port") or hub.get("hub_port") or 8081)
    return f"http://{_connectable(ip)}{_port(port)}{prefix}api"


def _connectable(host: str) -> str:
    # A hub bound to every address is reached by this machine's name, as JupyterHub tells its servers.
    host = socket.gethostname() if host in {"", "0.0.0.0", "::", "*"} else host
    return f"[{host}]" if ":" in host else host


def _port(port: int | None) -> str:
    return f":{port}" if port else ""


def script_for(spawner: Any, api_url: str) -> str:
    subvars = spawner.get_req_subvars()
    lines = []
    if subvars.get("partition"):
        lines.append(f"#SBATCH --partition={subvars['partition']}")
    lines.append("#SBATCH --mem=512M")
    commands = [spawner.batchspawner_singleuser_cmd, *(spawner.cmd[:1] or ["jupyterhub-singleuser"])]
    return SCRIPT.format(
        sbatch_lines="\n".join(lines),
        mark=MARK,
        commands=" ".join(shlex.quote(c) for c in commands),
        api_url=shlex.quote(api_url),
    )


@dataclass
class ProbeOutcome:
    job_id: str = ""
    state: str = ""
    reason: str = ""
    report: ProbeReport | None = None
    address: str = ""
    error: str = ""  # the probe itself could not run (submit refused, never started)
    reached: str = ""  # "" until checked; "ok" or why not


async def run_probe(spawner: Any, api_url: str, wait: float = 120) -> ProbeOutcome:
    """Submit the probe as the spawner's user, wait for its report, connect to it, cancel it."""
    result = ProbeOutcome()
    script = script_for(spawner, api_url)
    submit = spawner.command(spawner.batch_submit_cmd) + " 2>&1"
    submitted = await outcome(spawner.run_command, submit, input=script)
    if submitted.returncode != 0:
        result.error = f"sbatch refused the probe job: {submitted.stderr[:300]}"
        return result
    try:
        result.job_id = spawner.parse_job_id(submitted.stdout)
    except ValueError as e:
        result.error = str(e)
        return result
    try:
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            answer = await outcome(
                spawner.run_command,
                # "#", not "|": behind ssh the remote shell reads the format unquoted.
                spawner.command("squeue -h -t all -j {job_id} -o '%T#%N#%r#%k'", job_id=result.job_id),
            )
            fields = answer.stdout.strip().split("#", 3) if answer.returncode == 0 else []
            if len(fields) == 4:
                result.state, node, result.reason, comment = fields
                result.report = parse_report(comment.strip())
                if result.report:
                    spawner.job_status = f"RUNNING {node.split(',')[0]}"
                    result.address = spawner.state_gethost() or node
                    result.reached = await asyncio.to_thread(_reach, result.address, result.report.port)
                    return result
                if result.state in _ENDED:
                    result.error = f"the probe job ended ({result.state}) before it reported"
                    return result
            await asyncio.sleep(1)
        result.error = f"the probe job {result.job_id} did not report within {wait:g} s" + (
            f" ({result.state}: {result.reason})" if result.state else ""
        )
        return result
    finally:
        await outcome(spawner.run_command, spawner.command(spawner.batch_cancel_cmd, job_id=result.job_id))


def _reach(host: str, port: int) -> str:
    try:
        addresses = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as e:
        return f"cannot resolve {host}: {e.strerror}"
    if not port:
        return "the probe reported no port"
    last = ""
    for family, kind, proto, _, address in addresses:
        try:
            with socket.socket(family, kind, proto) as connection:
                connection.settimeout(5)
                connection.connect(address)
                return "ok"
        except OSError as e:
            last = e.strerror or str(e)
    return f"cannot connect to {host}:{port}: {last}"


def safe(text: str) -> str:
    """The probe's words as they are shown (underscores back to spaces)."""
    return _SAFE.sub(" ", text.replace("_", " ")).strip()
