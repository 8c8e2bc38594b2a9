"""The try-out page's configuration, taken from the docs alone, is one JupyterHub loads as written.

docs/tryout.md marks the code blocks that make up its jupyterhub_config.py (class ``tryout-config``);
``tryout_config()`` joins them in order. The file is loaded the way JupyterHub loads its own and
checked for what a fresh hub needs (our spawner, the settings as given, nothing misspelt), then run: a
real hub from those lines alone (and this machine's ports) spawns a real desktop job.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
from traitlets.config import Config

# Whose servers, jobs and homes these tests use (tests/isolation.py: modules of other users run beside).
pytestmark = pytest.mark.users("alice")

ROOT = Path(__file__).resolve().parents[1]
TRYOUT = ROOT / "docs" / "tryout.md"

# A MyST code block: ```{code-block} python, its :option: lines, a blank line, the code, ```.
_BLOCK = re.compile(r"^```\{code-block\} python\n((?::[\w-]+:[^\n]*\n)*)\n(.*?)^```$", re.M | re.S)


def tryout_config(doc: Path = TRYOUT) -> str:
    """The jupyterhub_config.py that the try-out page's marked blocks make, in their order."""
    blocks = [
        code
        for options, code in _BLOCK.findall(doc.read_text())
        if re.search(r"^:class:.*\btryout-config\b", options, re.M)
    ]
    return "\n".join(blocks)


def load_hub_config(path: Path) -> tuple[object, Config]:
    """The hub application with ``path`` loaded as JupyterHub loads its configuration file."""
    from jupyterhub.app import JupyterHub

    app = JupyterHub()
    app.load_config_file(str(path))
    return app, app.config


def unknown_settings(config: Config) -> list[str]:
    """Settings that name no configurable trait of the class they are set on. JupyterHub only logs
    a warning for these, and the hub then runs without them."""
    from jupyterhub.app import JupyterHub
    from jupyterhub.auth import DummyAuthenticator

    from jupyter_vnc.spawner import VNCSlurmSpawner

    classes = {
        cls.__name__: cls for cls in (JupyterHub, *VNCSlurmSpawner.__mro__, *DummyAuthenticator.__mro__)
    }
    unknown = []
    for section, values in config.items():
        traits = classes[section].class_traits(config=True) if section in classes else {}
        unknown += [f"c.{section}.{name}" for name in values if name not in traits]
    return unknown


def _written(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "jupyterhub_config.py"
    path.write_text(text)
    return path


def test_the_page_marks_its_configuration() -> None:
    text = tryout_config()
    assert text.count("\n") >= 5, "docs/tryout.md lost its tryout-config blocks"
    compile(text, "jupyterhub_config.py", "exec")


def test_the_tryout_config_loads_with_our_spawner(tmp_path: Path) -> None:
    from jupyter_vnc.spawner import VNCSlurmSpawner

    app, config = load_hub_config(_written(tmp_path, tryout_config()))
    assert app.spawner_class is VNCSlurmSpawner
    assert unknown_settings(config) == []
    # The spawner takes the values, typed as its traits want them (a TraitError names the one that is not).
    spawner = VNCSlurmSpawner(config=config)
    assert spawner.req_partition
    assert spawner.batchspawner_singleuser_cmd.startswith("/")
    assert spawner.batchspawner_singleuser_cmd.endswith("/jupyter-vnc-singleuser")
    assert (
        spawner.cmd and spawner.cmd[0].startswith("/") and spawner.cmd[0].endswith("/jupyterhub-singleuser")
    )
    assert config.JupyterHub.subdomain_host, "the try-out gives each user's server its own origin"


def test_a_misspelt_setting_is_caught(tmp_path: Path) -> None:
    doc = tmp_path / "tryout.md"
    doc.write_text(
        "```{code-block} python\n:class: tryout-config\n\n"
        'c.JupyterHub.spawner_class = "vnc-slurm"\nc.VNCSlurmSpawner.req_partiton = "vnc"\n```\n'
        "```{code-block} python\n\nc.Unmarked.block = 1\n```\n"
    )
    _, config = load_hub_config(_written(tmp_path, tryout_config(doc)))
    assert unknown_settings(config) == ["c.VNCSlurmSpawner.req_partiton"]


# What this one machine needs besides the page's lines, and nothing a site would change: ports beside
# the demo hub's, and the node's address (the test bed's Slurm node names resolve nowhere; on a cluster
# they do, and `jupyter-vnc doctor` checks it).
TEST_BED = """
c.JupyterHub.bind_url = "http://127.0.0.1:{port}"
c.JupyterHub.subdomain_host = "http://localhost:{port}"
c.JupyterHub.hub_bind_url = "http://127.0.0.1:{hub_port}"
c.ConfigurableHTTPProxy.api_url = "http://127.0.0.1:{proxy_port}"
c.VNCSlurmSpawner.state_exechost_exp = "127.0.0.1"
"""


def test_a_hub_configured_from_the_page_alone_gives_a_desktop(slurm, tmp_path: Path) -> None:
    """The page's blocks, as an admin copies them, on a fresh hub: log in, spawn, Lab, the desktop,
    stop; nothing left in Slurm."""
    import os
    import time

    import requests
    from fixtures_jupyter import free_port
    from hubclient import HubUser
    from test_spawner import squeue

    port = free_port()
    config = tryout_config() + TEST_BED.format(port=port, hub_port=free_port(), proxy_port=free_port())
    password = re.search(r'DummyAuthenticator.password = "([^"]+)"', config).group(1)  # type: ignore[union-attr]
    path = _written(tmp_path, config)
    bindir = str(Path(sys.executable).parent)
    hub = subprocess.Popen(
        [f"{bindir}/jupyterhub", "-f", str(path)],
        cwd=tmp_path, stdout=(tmp_path / "hub.log").open("w"), stderr=subprocess.STDOUT,
        env={**os.environ, "PATH": f"{bindir}:{os.environ['PATH']}"}, start_new_session=True,
    )  # fmt: skip
    url = f"http://localhost:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if requests.get(f"{url}/hub/api/", timeout=2).ok:
                    break
            except requests.ConnectionError:
                pass
            assert hub.poll() is None and time.monotonic() < deadline, (tmp_path / "hub.log").read_text()
            time.sleep(0.5)
        alice = HubUser(url, "alice", password)
        answer = alice.api("POST", "/users/alice/server", json={"gpus": 0, "memory_gb": 1, "hours": 1})
        assert answer.status_code in {201, 202}, answer.text
        alice.wait_ready(timeout=120)
        assert alice.open_server(path="lab").status_code == 200
        assert alice.server_api("vnc/api/status").json()["state"] in {"starting", "running"}
        assert alice.api("DELETE", "/users/alice/server").status_code in {202, 204}
        alice.wait_stopped(timeout=60)
        assert squeue("alice") == []
    finally:
        hub.terminate()
        try:
            hub.wait(30)
        except subprocess.TimeoutExpired:
            hub.kill()
        subprocess.run(["scancel", "-u", "alice", "--name", "jupyter-vnc-alice"], check=False)


def test_a_hub_with_a_wrong_setting_does_not_start_and_names_it(tmp_path: Path) -> None:
    """The page's configuration ends with refuse_wrong_settings(c): a real JupyterHub given a wrong
    value exits at once, naming the setting and what it accepts (without the line, the first user's
    spawn would be the first to meet it)."""
    wrong = 'c.VNCSlurmSpawner.max_gpus = "two"\nc.VNCSlurmSpawner.registry_url = "http://redis1"\n'
    config = _written(tmp_path, wrong + tryout_config())
    hub = subprocess.run(
        [str(Path(sys.executable).parent / "jupyterhub"), "-f", str(config)],
        cwd=tmp_path, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert hub.returncode == 1, hub.stderr[-2000:]
    assert "jupyter-vnc: wrong setting: c.VNCSlurmSpawner.max_gpus: The 'max_gpus' trait" in hub.stderr
    assert "expected an int, not the str 'two'" in hub.stderr
    assert "c.VNCSlurmSpawner.registry_url must be empty" in hub.stderr
    assert not (tmp_path / "jupyterhub.sqlite").exists()  # stopped before it made anything
