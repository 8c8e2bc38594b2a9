"""The admin CLI against the real test bed, and against broken setups it must name.

The tests marked ``unit`` need no service (the CLI as a subprocess with a configuration of their own, the
hub URL as a pure function); the others run against the test bed's hub, Slurm and Redis.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis
from conftest import DEVSTACK, HubBed, RedisBed
from fixtures_jupyter import free_port, wait_until
from hubclient import HubUser
from test_spawner import squeue

from jupyter_vnc import __version__
from jupyter_vnc.cli.hubconfig import ConfigError, derived_hub_url, given_hub_url
from jupyter_vnc.registry import Session
from jupyter_vnc.registry.redis import RedisRegistry
from jupyter_vnc.slurm import Phase, SlurmClient

# Whose servers, jobs and homes these tests use (tests/isolation.py: modules of other users run beside).
pytestmark = pytest.mark.users("gina", "hugo")

CONFIG = DEVSTACK / "jupyterhub_config.py"
unit = pytest.mark.unit


def cli(*args: str, config: Path = CONFIG) -> subprocess.CompletedProcess[str]:
    exe = Path(sys.executable).with_name("jupyter-vnc")
    return subprocess.run([str(exe), "-f", str(config), *args], capture_output=True, text=True, timeout=300)


def module_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """The CLI as ``python -m jupyter_vnc.cli``: also where the package is not installed with its script
    (the run against the lowest declared dependency versions, devstack/floors)."""
    return subprocess.run(
        [sys.executable, "-m", "jupyter_vnc.cli", *args], capture_output=True, text=True, timeout=120, env=env
    )


def own_config(tmp_path: Path, *lines: str) -> Path:
    """A hub configuration of the test's own, with the CLI's token: nothing of the test bed's."""
    path = tmp_path / "own_config.py"
    token = 'c.JupyterHub.services = [{"name": "jupyter-vnc", "api_token": "cli-test-token"}]'
    path.write_text("\n".join(["c = get_config()  # noqa", token, *lines]) + "\n")
    return path


def broken(tmp_path: Path, *overrides: str) -> Path:
    """The demo hub's configuration with a few settings broken on purpose."""
    path = tmp_path / "jupyterhub_config.py"
    path.write_text(f"load_subconfig({str(CONFIG)!r})\n" + "\n".join(overrides) + "\n")
    return path


def test_render_job_is_the_script_a_spawn_submits() -> None:
    result = cli(
        "render-job", "--user", "gina", "--options", '{"gpus": 2, "hours": 1.5, "resolution": "1280x720"}'
    )
    assert result.returncode == 0, result.stderr
    assert "#SBATCH --gres=gpu:2\n" in result.stdout and "#SBATCH --time=1:30:00\n" in result.stdout
    assert "JUPYTER_VNC_RESOLUTION=1280x720" in result.stdout
    assert "TOKEN=" not in result.stdout


@pytest.mark.parametrize(
    ("options", "message"),
    [('{"gpus": 9}', "gpus must be between 0 and 2"), ("not json", "--options must be JSON"),
     ('{"resolution": "1x1;id"}', "resolution must look like")],
)  # fmt: skip
def test_render_job_refuses_bad_options_with_a_message(options: str, message: str) -> None:
    result = cli("render-job", "--user", "gina", "--options", options)
    assert result.returncode == 2 and message in result.stderr and "Traceback" not in result.stderr


def test_render_job_for_an_unknown_user() -> None:
    result = cli("render-job", "--user", "nosuchuser")
    assert result.returncode == 2 and "no Unix user 'nosuchuser'" in result.stderr


def test_doctor_passes_on_the_test_bed(hub: HubBed) -> None:
    result = cli("doctor")
    assert result.returncode == 0, result.stdout
    for check in (
        "Slurm controller",
        "Partition vnc",
        "GPUs in vnc",
        "VNC server",
        "XFCE",
        "Redis",
        "Hub API token",
        "Per-user origins",  # the test bed's hub has subdomain_host: nothing to warn about
    ):
        assert any(line.startswith("[  OK]") and check in line for line in result.stdout.splitlines()), check
    # --json: the same checks, in the shape `doctor --help` documents
    data = json.loads(cli("doctor", "--json").stdout)
    assert data["ok"] is True and data["failed"] == 0 and set(data) == {"ok", "failed", "warned", "checks"}
    assert all(set(c) == {"status", "check", "detail"} for c in data["checks"])
    assert [c["check"] for c in data["checks"]] == [
        line[7:].split("  ")[0].strip() for line in result.stdout.splitlines() if line.startswith("[")
    ]


@pytest.mark.parametrize(
    ("override", "named"),
    [
        ('c.VNCSlurmSpawner.req_partition = "nosuch"', "Partition nosuch  does not exist"),
        ('c.VNCSlurmSpawner.image = "/nonexistent/desktop.sif"', "/nonexistent/desktop.sif does not exist"),
        ('c.VNCSlurmSpawner.registry_url = "redis://127.0.0.1:1/0"', "Redis at redis://127.0.0.1:1/0 is not"),
        ('c.JupyterHub.services = [{"name": "jupyter-vnc", "api_token": "x"}]', "the hub refused the token"),
        ('c.VNCSlurmSpawner.batchspawner_singleuser_cmd = "/nope/bs-singleuser"', "missing on this host"),
        # JupyterHub makes a spawner only when a server starts: the doctor names a wrong value first.
        ('c.VNCSlurmSpawner.max_gpus = "two"', "c.VNCSlurmSpawner.max_gpus: The 'max_gpus' trait of a"),
    ],
)
def test_doctor_names_what_is_broken(hub: HubBed, tmp_path: Path, override: str, named: str) -> None:
    result = cli("doctor", config=broken(tmp_path, override))
    assert result.returncode == 1, result.stdout
    # Spaces squeezed: the columns' width follows the longest check name.
    assert " ".join(named.split()) in " ".join(result.stdout.split()), result.stdout
    assert "Traceback" not in result.stdout + result.stderr


def test_doctor_checks_from_inside_a_job_as_the_user(hub: HubBed) -> None:
    """--user: a real probe job as gina, through the spawner's exec_prefix, on the desktop partition."""
    result = cli("doctor", "--user", "gina")
    assert result.returncode == 0, result.stdout
    for check in ("Probe job", "jupyterhub-singleuser in the job", "jupyter-vnc in the job",
                  "Node to hub API", "Hub to node", "VNC server", "XFCE"):  # fmt: skip
        assert any(line.startswith("[  OK]") and check in line for line in result.stdout.splitlines()), check
    assert "as gina ran on" in result.stdout
    assert squeue("gina") == []  # the probe cancelled itself


@pytest.mark.parametrize(
    ("override", "check", "words"),
    [
        # The nodes cannot reach the hub's API where the hub says they can: no desktop could report its port.
        ('c.JupyterHub.hub_connect_url = "http://127.0.0.1:1"', "Node to hub API",
         "cannot reach http://127.0.0.1:1/hub/api (URLError"),
        # The hub would record the node under a name it cannot resolve (a site's state_exechost_exp).
        ('c.VNCSlurmSpawner.state_exechost_exp = "node-x.invalid"', "Hub to node",
         "cannot resolve node-x.invalid"),
        # A bare command name: the job sees the user's login PATH, which lacks the hub's venv.
        ('c.VNCSlurmSpawner.batchspawner_singleuser_cmd = "jvnc-no-such-command"',
         "jvnc-no-such-command in the job", "not on gina's PATH"),
    ],
)  # fmt: skip
def test_doctor_says_in_red_what_a_job_would_meet(
    hub: HubBed, tmp_path: Path, override: str, check: str, words: str
) -> None:
    result = cli("doctor", "--user", "gina", config=broken(tmp_path, override))
    assert result.returncode == 1, result.stdout
    (red,) = [line for line in doctor_lines(result.stdout, "FAIL") if line[7:].startswith(check + " ")]
    assert words in red, result.stdout
    assert "Traceback" not in result.stdout + result.stderr
    assert squeue("gina") == []


def test_doctor_warns_about_settings_that_cancel_queued_desktops(hub: HubBed, tmp_path: Path) -> None:
    config = broken(tmp_path, "c.Spawner.start_timeout = 300", "c.JupyterHub.concurrent_spawn_limit = 10")
    result = cli("doctor", config=config)
    warned = doctor_lines(result.stdout, "WARN")
    assert any(w.startswith("[WARN] start_timeout") and "set to 300 s" in w and "168 h" in w for w in warned)
    assert any(w.startswith("[WARN] concurrent_spawn_limit") and "10: desktops waiting" in w for w in warned)
    assert result.returncode == 0, result.stdout  # warnings only: desktops still start


def test_doctor_says_which_status_query_the_hub_runs(hub: HubBed, tmp_path: Path) -> None:
    shared = doctor_lines(cli("doctor").stdout, "OK")
    assert any(line.startswith("[  OK] Status query") and "'sudo -n -u root'" in line for line in shared)
    config = broken(tmp_path, "c.VNCSlurmSpawner.query_exec_prefix = None")
    result = cli("doctor", config=config)
    warned = doctor_lines(result.stdout, "WARN")
    assert any(w.startswith("[WARN] Status query") and "one squeue per desktop per poll" in w for w in warned)
    assert result.returncode == 0, result.stdout


async def test_sessions_and_cancel_through_the_hub(hub: HubBed) -> None:
    hugo = HubUser(hub.url, "hugo", hub.password)
    hugo.api("POST", "/users/hugo/server", json={"gpus": 1, "memory_gb": 1, "hours": 2})
    try:
        hugo.wait_ready()
        listed = cli("sessions")
        assert listed.returncode == 0, listed.stderr
        row = next(line for line in listed.stdout.splitlines() if line.startswith("hugo "))
        assert " running " in row and " 1h5" in row  # 2 h walltime, started just now
        data = json.loads(cli("sessions", "--json").stdout)
        (mine,) = [s for s in data["sessions"] if s["user"] == "hugo"]
        assert mine["gpus"] == 1 and mine["node"].startswith("node") and 7000 < mine["seconds_left"] <= 7200
        job_id = mine["job_id"]
        cancelled = cli("cancel", "hugo", "--json")
        assert cancelled.returncode == 0, cancelled.stderr
        assert json.loads(cancelled.stdout) == {"user": "hugo", "server": "", "stopped": True}
        assert "" not in hugo.api("GET", "/users/hugo").json()["servers"]  # the hub's view is right
        assert (await SlurmClient().query([job_id]))[job_id].phase is Phase.ENDED
        assert "hugo " not in cli("sessions").stdout
    finally:
        hugo.api("DELETE", "/users/hugo/server")


def test_cancel_of_an_unknown_server_says_so(hub: HubBed) -> None:
    result = cli("cancel", "nosuchuser")
    assert result.returncode == 1 and "no such user or server" in result.stderr  # 1: not found
    as_json = cli("cancel", "nosuchuser", "--json")
    assert as_json.returncode == 1 and json.loads(as_json.stdout)["exit_code"] == 1


@unit
def test_sessions_when_redis_is_down(tmp_path: Path) -> None:
    config = own_config(tmp_path, 'c.VNCSlurmSpawner.registry_url = "redis://127.0.0.1:1/0"')
    result = module_cli("-f", str(config), "sessions")
    assert result.returncode == 3, result.stderr  # 3: the registry did not answer
    assert "is not reachable" in result.stderr and "keep running" in result.stderr and not result.stdout
    assert "Traceback" not in result.stdout + result.stderr
    as_json = module_cli("-f", str(config), "sessions", "--json")
    error = json.loads(as_json.stdout)
    assert as_json.returncode == 3 and error["exit_code"] == 3 and "is not reachable" in error["error"]


async def test_sessions_lists_the_valid_entries_and_names_the_rest(hub: HubBed, redis_bed: RedisBed) -> None:
    registry = RedisRegistry(redis_bed.auth_url)
    raw = aioredis.from_url(redis_bed.auth_url)
    mine = Session(user="hugo", server="clitest", job_id="99999", state="running", ends_at=time.time() + 3600)
    try:
        await registry.put(mine)
        await raw.set("jupyter-vnc:session:mallory/", "not json")  # as a second client could write it
        await raw.sadd("jupyter-vnc:sessions", "mallory/")
        for args in (("sessions",), ("sessions", "--json")):
            result = cli(*args)
            assert result.returncode == 0 and "Traceback" not in result.stderr, result.stderr
            assert "99999" in result.stdout
            assert "skipped 1 registry entries that are not valid sessions: 'mallory/'" in result.stderr
        assert "mallory" not in cli("sessions").stdout
        listing = json.loads(result.stdout)
        assert "mallory" not in json.dumps(listing["sessions"]) and listing["skipped"] == ["'mallory/'"]
    finally:
        await registry.delete("hugo", "clitest")
        await raw.delete("jupyter-vnc:session:mallory/")
        await raw.srem("jupyter-vnc:sessions", "mallory/")
        await raw.aclose()
        await registry.close()


def test_doctor_warns_about_a_registry_open_to_anyone(hub: HubBed, tmp_path: Path) -> None:
    server = subprocess.Popen(
        ["redis-server", "--port", "16393", "--bind", "127.0.0.1", "--save", "", "--dir", str(tmp_path)],
        stdout=subprocess.DEVNULL,
    )
    try:
        for _ in range(50):
            if subprocess.run(["redis-cli", "-p", "16393", "ping"], capture_output=True).returncode == 0:
                break
            time.sleep(0.1)
        config = broken(
            tmp_path,
            'c.VNCSlurmSpawner.registry_url = "redis://127.0.0.1:16393/0"',
            'c.VNCSlurmSpawner.registry_password_file = ""',
        )
        result = cli("doctor", config=config)
        line = next(line for line in result.stdout.splitlines() if "Redis" in line)
        assert line.startswith("[WARN]") and "without a password" in line, result.stdout
    finally:
        server.terminate()
        server.wait()


def test_token_file_is_used_and_a_bad_one_is_named(hub: HubBed, tmp_path: Path) -> None:
    """A hub config without the jupyter-vnc service: the CLI says it has no token; --token-file gives
    it one; a missing or empty file is an error that names the file, never a traceback."""
    no_service = broken(tmp_path, "c.JupyterHub.services = []", "c.JupyterHub.load_roles = []")
    # (sessions reads the registry; cancel goes through the hub's API and needs the token.)
    env_free = cli("cancel", "nosuchuser", config=no_service)
    assert env_free.returncode == 2 and "no hub API token" in env_free.stderr, env_free.stderr
    token = tmp_path / "admin-token"
    token.write_text(admin_token())
    answered = cli("--token-file", str(token), "cancel", "nosuchuser", config=no_service)
    assert answered.returncode == 1 and "no such user or server" in answered.stderr  # the hub took it
    missing = cli("--token-file", str(tmp_path / "nope"), "cancel", "nosuchuser", config=no_service)
    assert missing.returncode == 2 and f"cannot read the token file {tmp_path / 'nope'}" in missing.stderr
    assert "Traceback" not in missing.stderr
    (tmp_path / "empty").write_text("\n")
    empty = cli("--token-file", str(tmp_path / "empty"), "cancel", "nosuchuser", config=no_service)
    assert empty.returncode == 2 and "is empty" in empty.stderr


def admin_token() -> str:
    from conftest import STATE

    return (STATE / "hub" / "admin-token").read_text()


def doctor_lines(stdout: str, status: str) -> list[str]:
    return [line for line in stdout.splitlines() if line.startswith(f"[{status:>4}]")]


def test_doctor_warns_without_virtualgl_and_still_exits_0(hub: HubBed) -> None:
    """A host without VirtualGL still runs desktops (OpenGL in software): the doctor says WARN and why,
    and its exit code stays 0, since only a FAIL means desktops cannot work. VirtualGL is taken away
    for real, for the doctor only: off its PATH, and /opt/VirtualGL hidden under an empty tmpfs in a
    mount namespace of its own (the machine's /opt/VirtualGL is untouched)."""
    env = {k: v for k, v in os.environ.items() if k != "JVNC_DESKTOP_IMAGE"}  # host mode: check this host
    env["PATH"] = os.pathsep.join(d for d in env["PATH"].split(os.pathsep) if not Path(d, "vglrun").exists())
    exe = Path(sys.executable).with_name("jupyter-vnc")
    hide = "mount -t tmpfs -o size=1m none /opt/VirtualGL" if Path("/opt/VirtualGL").is_dir() else "true"
    result = subprocess.run(
        ["unshare", "--mount", "--propagation", "private", "/bin/sh", "-c", f'{hide} && exec "$@"', "sh",
         str(exe), "-f", str(CONFIG), "doctor"],
        env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert "Traceback" not in result.stdout + result.stderr, result.stderr
    (warned,) = doctor_lines(result.stdout, "WARN")  # the only one: everything else is in place
    assert warned.startswith("[WARN] VirtualGL "), result.stdout
    assert "not found on this host: no vglrun: OpenGL renders in software, not on the GPU" in warned
    assert not doctor_lines(result.stdout, "FAIL"), result.stdout
    assert result.returncode == 0, result.stdout
    assert result.stdout.rstrip().endswith("Everything a desktop needs is in place.")


def test_doctor_warns_loudly_when_every_users_server_shares_one_origin(hub: HubBed, tmp_path: Path) -> None:
    """Without c.JupyterHub.subdomain_host a page of one user's server can read another user's token
    from a window it opens: a WARN that says so and what to set (desktops still work: exit code 0)."""
    result = cli("doctor", config=broken(tmp_path, 'c.JupyterHub.subdomain_host = ""'))
    line = next((line for line in result.stdout.splitlines() if "Per-user origins" in line), "")
    assert line.startswith("[WARN]") and "NONE: every user's server shares the hub's origin" in line, line
    assert "read her token" in line and "c.JupyterHub.subdomain_host = " in line, line
    assert result.returncode == 0, result.stdout


def test_doctor_warns_about_a_token_without_the_admin_scopes(hub: HubBed, tmp_path: Path) -> None:
    """A token the hub accepts but that cannot list or stop other users' servers: the doctor names the
    missing scopes as a WARN (spawns work; `sessions` and `cancel` will not), and exits 0."""
    gina = HubUser(hub.url, "gina", hub.password)
    created = gina.api(
        "POST",
        "/users/gina/tokens",
        json={"note": "doctor test", "expires_in": 600, "scopes": ["read:users:name!user"]},
    )
    assert created.status_code == 201, created.text
    token = tmp_path / "token"
    token.write_text(created.json()["token"])
    try:
        result = cli("--token-file", str(token), "doctor")
    finally:
        gina.api("DELETE", f"/users/gina/tokens/{created.json()['id']}")
    line = next((line for line in result.stdout.splitlines() if "Hub API token" in line), "")
    assert line.startswith("[WARN]"), result.stdout
    lacks = "admin:servers, admin:server_state, list:users, read:users"  # every scope the CLI needs
    assert f"valid (gina) but lacks {lacks}: cancel/sessions fail" in line
    assert result.returncode == 0, result.stdout


# --- the hub's URL, from every way JupyterHub lets a site give its addresses -----------------------------

UNIX = "http+unix://%2Fsrv%2Fjupyterhub%2Fhub.sock"


@unit
@pytest.mark.parametrize(
    ("hub", "url"),
    [
        # The hub's own API address (as its services use it): a wildcard or empty host is this machine.
        ({}, "http://127.0.0.1:8081"),
        ({"bind_url": "http://:8000"}, "http://127.0.0.1:8081"),
        ({"hub_ip": ""}, "http://localhost:8081"),
        ({"hub_ip": "0.0.0.0", "hub_port": 9000}, "http://127.0.0.1:9000"),
        ({"hub_ip": "::"}, "http://[::1]:8081"),
        ({"hub_ip": "10.1.2.3"}, "http://10.1.2.3:8081"),
        ({"hub_bind_url": "http://0.0.0.0:8082", "hub_ip": "10.1.2.3"}, "http://127.0.0.1:8082"),
        ({"hub_bind_url": "http://[::]:8082/ignored/"}, "http://[::1]:8082"),
        # hub_connect_url first, whatever its path: JupyterHub puts its own prefix there.
        ({"hub_connect_url": "http://hub.internal:8081/x/", "hub_bind_url": "http://0.0.0.0:8081"},
         "http://hub.internal:8081"),
        ({"hub_connect_url": UNIX, "hub_bind_url": "http://0.0.0.0:8090"}, "http://127.0.0.1:8090"),
        # base_url kept: given, or the path of bind_url (as JupyterHub reads it).
        ({"bind_url": "http://0.0.0.0:8000/prefix/"}, "http://127.0.0.1:8081/prefix"),
        ({"base_url": "/jh/", "hub_ip": ""}, "http://localhost:8081/jh"),
        ({"base_url": "/jh", "bind_url": "http://:8000/other/"}, "http://127.0.0.1:8081/jh"),
        # The public bind_url where the hub's own address cannot serve (a unix socket, internal_ssl).
        ({"hub_bind_url": UNIX, "bind_url": "http://:8000"}, "http://localhost:8000"),
        ({"hub_bind_url": UNIX, "bind_url": "http://0.0.0.0:8000/prefix/"}, "http://127.0.0.1:8000/prefix"),
        ({"internal_ssl": True, "bind_url": "https://[::]:443"}, "https://[::1]:443"),
        ({"internal_ssl": True, "ip": "10.0.0.1", "port": 9000}, "http://10.0.0.1:9000"),
        ({"hub_bind_url": UNIX, "ssl_cert": "/etc/hub.pem", "bind_url": "http://:8443"}, "https://localhost:8443"),
        # ...over TLS by the name on the certificate where the configuration gives it.
        ({"internal_ssl": True, "bind_url": "https://[::]:443", "subdomain_host": "https://hub.example.org"},
         "https://hub.example.org"),
        ({"internal_ssl": True, "bind_url": "https://:443/jh/", "subdomain_host": "hub.example.org"},
         "https://hub.example.org/jh"),
        ({"internal_ssl": True, "bind_url": "https://0.0.0.0:8443/jh/",
          "public_url": "https://hub.example.org:8443/jh/"}, "https://hub.example.org:8443/jh"),
        ({"internal_ssl": True, "bind_url": "https://10.0.0.5:443", "subdomain_host": "https://hub.example.org"},
         "https://10.0.0.5:443"),
    ],
)  # fmt: skip
def test_the_hub_url_from_the_hubs_configuration(hub: dict[str, Any], url: str) -> None:
    assert derived_hub_url(hub) == url


@unit
@pytest.mark.parametrize(
    ("hub", "message"),
    [
        ({"hub_port": "eighty"}, "cannot read the hub's address from c.JupyterHub"),
        ({"bind_url": "http://:99999", "hub_bind_url": UNIX}, "cannot read the hub's address"),
        ({"internal_ssl": True, "bind_url": UNIX}, "pass --hub-url"),
    ],
)
def test_a_hub_address_the_cli_cannot_use_is_named(hub: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message) as raised:
        derived_hub_url(hub)
    assert raised.value.exit_code == 2


@unit
@pytest.mark.parametrize(
    ("given", "url"),
    [
        ("http://127.0.0.1:8081", "http://127.0.0.1:8081"),
        ("https://hub.example.org/jh/", "https://hub.example.org/jh"),
        ("http://127.0.0.1:8081/jh/hub/api", "http://127.0.0.1:8081/jh"),  # as in $JUPYTERHUB_API_URL
        ("http://127.0.0.1:8081/hub/", "http://127.0.0.1:8081"),
    ],
)
def test_hub_url_given_on_the_command_line(given: str, url: str) -> None:
    assert given_hub_url(given) == url


@unit
@pytest.mark.parametrize(
    "given", ["ftp://hub", "127.0.0.1:8081", "http://", "http://hub:port", "http://hub:0"]
)
def test_a_bad_hub_url_on_the_command_line_is_a_usage_error(given: str) -> None:
    with pytest.raises(ConfigError, match="--hub-url must be an http"):
        given_hub_url(given)


# --- the CLI as scripts see it: --version, --json on every command, exit codes ---------------------------


@unit
def test_version_is_the_packages() -> None:
    result = module_cli("--version")
    assert result.returncode == 0 and result.stdout == f"jupyter-vnc {__version__}\n", result.stderr


@unit
def test_help_documents_exit_codes_and_every_commands_json() -> None:
    top = module_cli("--help")
    assert top.returncode == 0
    for line in ("0  done", "1  the command ran and the answer is no", "2  bad input, nothing was done",
                 "3  the hub or the registry (Redis) did not answer"):  # fmt: skip
        assert line in top.stdout, line
    for command in ("sessions", "cancel", "doctor", "render-job"):
        assert command in top.stdout
        own = module_cli(command, "--help")
        assert own.returncode == 0 and "--json prints:" in own.stdout and "exit codes" in own.stdout, command


@unit
@pytest.mark.parametrize(
    ("args", "stderr"),
    [
        (["bogus"], "invalid choice: 'bogus'"),
        (["render-job"], "the following arguments are required: --user"),
        (["--json", "cancel"], "the following arguments are required: USER[/SERVER]"),
        (["-f", "/nonexistent/jupyterhub_config.py", "doctor"], "no JupyterHub configuration file found"),
        (["--hub-url", "ftp://hub", "sessions"], "--hub-url must be an http"),
        (["cancel", "/named"], "cancel takes USER or USER/SERVER"),
        (["render-job", "--user", "root", "--options", "[1]"], "--options must be a JSON object"),
        (["render-job", "--user", "nosuchuser"], "no Unix user 'nosuchuser'"),
    ],
)
def test_bad_input_is_a_usage_error_in_words_and_in_json(
    tmp_path: Path, args: list[str], stderr: str
) -> None:
    if "-f" not in args:
        args = ["-f", str(own_config(tmp_path)), *args]
    words = [a for a in args if a != "--json"]
    for as_json in (False, True):
        result = module_cli(*(args if "--json" in args else [*args, "--json"]) if as_json else words)
        assert result.returncode == 2, result.stdout + result.stderr
        assert stderr in result.stderr and "Traceback" not in result.stderr
        if as_json:
            error = json.loads(result.stdout)
            assert error["exit_code"] == 2 and stderr in error["error"]
        else:
            assert result.stdout == ""


@unit
def test_a_hub_setting_the_spawner_refuses_is_a_usage_error(tmp_path: Path) -> None:
    """render-job configures a spawner as the hub would: a setting the spawner refuses is named, exit 2."""
    config = own_config(tmp_path, 'c.VNCSlurmSpawner.registry_url = "mysql://db/0"')
    result = module_cli("-f", str(config), "render-job", "--user", "root", "--json")
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
    assert "c.VNCSlurmSpawner.registry_url must be empty" in json.loads(result.stdout)["error"]


@unit
def test_render_job_json_is_the_script_and_the_request(tmp_path: Path) -> None:
    config = own_config(tmp_path, "c.VNCSlurmSpawner.max_gpus = 2")
    plain = module_cli("-f", str(config), "render-job", "--user", "root", "--options", '{"gpus": 2}')
    result = module_cli(
        "-f", str(config), "render-job", "--user", "root", "--options", '{"gpus": 2}', "--json"
    )
    assert result.returncode == 0 and plain.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["user"] == "root" and data["server"] == "" and data["request"]["gpus"] == 2
    assert data["script"] == plain.stdout and "#SBATCH --gres=gpu:2\n" in data["script"]


@unit
def test_a_hub_that_does_not_answer_is_exit_code_3(tmp_path: Path) -> None:
    config = own_config(tmp_path, f"c.JupyterHub.hub_port = {free_port()}")  # nothing listens there
    for command in (["cancel", "hugo"], ["sessions"]):
        result = module_cli("-f", str(config), *command, "--json")
        assert result.returncode == 3, result.stderr
        assert "does not answer" in json.loads(result.stdout)["error"] and "Traceback" not in result.stderr


# --- a real JupyterHub of the test's own, under the address layouts sites use ----------------------------


@pytest.fixture
def own_hub(tmp_path: Path) -> Iterator[Any]:
    """Start a bare JupyterHub (no spawns, its own ports and files) with the given address lines."""
    started: list[subprocess.Popen[bytes]] = []

    def start(*lines: str) -> Path:
        token = secrets.token_hex(16)
        config = own_config(
            tmp_path,
            f'c.JupyterHub.services = [{{"name": "jupyter-vnc", "api_token": "{token}"}}]',
            'c.JupyterHub.load_roles = [{"name": "cli", "scopes": ["list:users", "read:users",'
            ' "admin:servers"], "services": ["jupyter-vnc"]}]',
            f'c.JupyterHub.db_url = "sqlite:///{tmp_path}/hub.sqlite"',
            f'c.JupyterHub.cookie_secret_file = "{tmp_path}/cookie_secret"',
            f'c.ConfigurableHTTPProxy.api_url = "http://127.0.0.1:{free_port()}"',
            f'c.ConfigurableHTTPProxy.pid_file = "{tmp_path}/proxy.pid"',
            'c.JupyterHub.authenticator_class = "null"',
            *lines,
        )
        log = (tmp_path / "hub.log").open("wb")
        hub = subprocess.Popen(
            [sys.executable, "-m", "jupyterhub", "-f", str(config)], cwd=tmp_path, stdout=log, stderr=log,
            start_new_session=True,
        )  # fmt: skip
        started.append(hub)
        running = b"JupyterHub is now running"
        wait_until(
            lambda: hub.poll() is not None or running in _read(tmp_path / "hub.log"), 60, "the test's hub"
        )
        assert hub.poll() is None, _read(tmp_path / "hub.log").decode(errors="replace")[-3000:]
        return config

    yield start
    for hub in started:
        os.killpg(hub.pid, signal.SIGTERM)  # the hub and the proxy it started
        hub.wait(timeout=30)


def _read(path: Path) -> bytes:
    return path.read_bytes() if path.exists() else b""


@pytest.mark.parametrize(
    "layout",
    [
        # bind_url with an empty host and a base_url in its path; the hub's API on every interface
        ['c.JupyterHub.bind_url = "http://:{public}/prefix/"', 'c.JupyterHub.hub_ip = ""',
         "c.JupyterHub.hub_port = {hub}"],
        # the hub's own bind URL on a wildcard, base_url given on its own
        ['c.JupyterHub.bind_url = "http://127.0.0.1:{public}"', 'c.JupyterHub.base_url = "/jh/"',
         'c.JupyterHub.hub_bind_url = "http://0.0.0.0:{hub}"'],
        # the hub's API on a unix socket (not for urllib): the CLI goes through the proxy's bind_url
        ['c.JupyterHub.bind_url = "http://0.0.0.0:{public}/prefix/"',
         'c.JupyterHub.hub_bind_url = "http+unix://{socket}"',
         'c.JupyterHub.hub_connect_url = "http+unix://{socket}"'],
    ],
    ids=["empty-bind-host", "wildcard-hub-bind-url", "hub-on-a-unix-socket"],
)  # fmt: skip
def test_the_cli_reaches_a_real_hub_under_each_layout(
    own_hub: Any, tmp_path: Path, layout: list[str]
) -> None:
    socket_path = str(tmp_path / "hub.sock").replace("/", "%2F")
    lines = [line.format(public=free_port(), hub=free_port(), socket=socket_path) for line in layout]
    config = own_hub(*lines)
    result = module_cli("-f", str(config), "sessions", "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {"sessions": [], "skipped": []}
    # and the hub really is where the CLI went: its API answers there with the hub's version
    url = derived_hub_url(_hub_section(config))
    with urllib.request.urlopen(f"{url}/hub/api/", timeout=10) as answer:
        assert "version" in json.loads(answer.read())


def _hub_section(config: Path) -> dict[str, Any]:
    from jupyter_vnc.cli.hubconfig import load

    return dict(load(str(config)).config.get("JupyterHub", {}))
