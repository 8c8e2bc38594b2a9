"""jupyter-vnc-singleuser, the job's first command (jupyter_vnc/launch.py).

Every spawn of the suite's real hubs goes through it (devstack's hub config names it), so the port's
way to the hub is tested there against JupyterHub's own batchspawner API. Here: what it saves (the
IRI parsers are not built at start, and IRIs are still checked), and what a user reads in the job's
log when the hub cannot be told.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import ClassVar

import pytest

from jupyter_vnc import launch

IRI_CHECKS = """
import sys
{prelude}
import jupyter_server.serverapp  # what the server imports as it starts: jupyter_events, jsonschema
built_at_start = "lark" in sys.modules
import jsonschema
checker = jsonschema.FormatChecker()
answers = [checker.conforms(v, "iri") for v in ("https://example.org/caf\\u00e9", "no iri", "http://[::1")]
print(built_at_start, answers, "lark" in sys.modules)
"""


def _run(prelude: str) -> str:
    code = IRI_CHECKS.format(prelude=prelude)
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout


def test_the_server_starts_without_building_the_iri_parsers_and_still_checks_iris() -> None:
    plain = _run("")
    deferred = _run("from jupyter_vnc.launch import defer_iri_checker; assert defer_iri_checker()")
    # Without the launcher the parsers are built as the server starts; with it, on the first IRI
    # check, which gives the same answers.
    assert plain == "True [True, False, False] True\n"
    assert deferred == "False [True, False, False] True\n"


def test_nothing_is_deferred_when_the_checker_is_loaded_already() -> None:
    modules = {launch.IRI_MODULE: object()}
    assert not launch.defer_iri_checker(modules)  # type: ignore[arg-type]


class _Hub(BaseHTTPRequestHandler):
    """Answers the port report as JupyterHub's batchspawner API does (201), or with ``status``."""

    status = 201
    reports: ClassVar[list[tuple[str, str, dict]]] = []

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.reports.append((self.path, self.headers["Authorization"], body))
        self.send_response(self.status)
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def hub() -> Iterator[HTTPServer]:
    _Hub.reports, _Hub.status = [], 201
    server = HTTPServer(("127.0.0.1", 0), _Hub)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server
    server.shutdown()
    server.server_close()


def _launch(hub_url: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    server = tmp_path / "fake-server"  # stands for jupyterhub-singleuser: says where it would listen
    server.write_text("import os, sys\nprint(os.environ['JUPYTERHUB_SERVICE_URL'], sys.argv[1:])\n")
    server.chmod(0o755)
    env = {
        "PATH": f"{tmp_path}:/usr/bin:/bin",
        "JUPYTERHUB_API_URL": hub_url,
        "JUPYTERHUB_API_TOKEN": "job-token",
        "JUPYTERHUB_SERVICE_URL": "http://0.0.0.0:0/user/ada/",
    }
    return subprocess.run(
        [sys.executable, "-m", "jupyter_vnc.launch", "fake-server", "--debug"],
        capture_output=True, text=True, env=env, timeout=60,
    )  # fmt: skip


def test_the_server_listens_on_the_port_the_hub_was_told(hub: HTTPServer, tmp_path: Path) -> None:
    result = _launch(f"http://127.0.0.1:{hub.server_port}/hub/api", tmp_path)
    assert result.returncode == 0, result.stderr
    [(path, auth, body)] = _Hub.reports
    assert (path, auth) == ("/hub/api/batchspawner", "token job-token")
    assert result.stdout == f"http://0.0.0.0:{body['port']}/user/ada/ ['--debug']\n"


def test_a_hub_that_refuses_the_port_ends_the_job_with_the_reason(hub: HTTPServer, tmp_path: Path) -> None:
    _Hub.status = 403
    result = _launch(f"http://127.0.0.1:{hub.server_port}/hub/api", tmp_path)
    assert result.returncode == 1
    assert result.stdout == ""  # no server started that the hub would never reach
    assert "the hub refused the server's port" in result.stderr and "HTTP 403" in result.stderr
    assert len(_Hub.reports) == 1  # a refusal is not asked again


def test_a_hub_that_stays_away_is_asked_again_then_named() -> None:
    with HTTPServer(("127.0.0.1", 0), _Hub) as closed:
        url = f"http://127.0.0.1:{closed.server_port}/hub/api"  # bound, then closed: refuses
    waits: list[float] = []
    env = {"JUPYTERHUB_API_URL": url, "JUPYTERHUB_API_TOKEN": "t"}
    with pytest.raises(launch.LaunchError, match=f"the hub at {url}/batchspawner did not answer"):
        launch.report_port(1234, env, sleep=waits.append)
    assert waits == [0.5, 1.0, 2.0, 4.0]


def test_outside_a_hub_job_it_says_what_is_missing() -> None:
    with pytest.raises(launch.LaunchError, match="JUPYTERHUB_API_URL and JUPYTERHUB_API_TOKEN"):
        launch.report_port(1234, {})
