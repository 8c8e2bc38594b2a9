"""JupyterHub configuration of the demo stack (devstack/hub start).

Placeholder spawner: until jupyter-vnc's own VNCSlurmSpawner lands, the demo spawns with batchspawner's
plain SlurmSpawner, so a login already starts a real Slurm job running jupyterhub-singleuser.
"""

import os
from pathlib import Path

c = get_config()  # noqa: F821 - provided by JupyterHub when it loads this file

state = Path(os.environ.get("JVNC_STATE", "/var/lib/jupyter-vnc-dev")) / "hub"
venv = Path(os.environ.get("JVNC_VENV", "/opt/jupyter-vnc/venv"))
port = int(os.environ.get("JVNC_HUB_PORT", "8000"))

c.JupyterHub.bind_url = f"http://127.0.0.1:{port}"
c.JupyterHub.hub_ip = "127.0.0.1"
c.JupyterHub.db_url = f"sqlite:///{state}/jupyterhub.sqlite"
c.JupyterHub.cookie_secret_file = str(state / "jupyterhub_cookie_secret")
c.ConfigurableHTTPProxy.pid_file = str(state / "proxy.pid")

# A test login: the Unix users alice and bob, with the password devstack/hub generated.
c.JupyterHub.authenticator_class = "dummy"
c.DummyAuthenticator.password = (state / "demo-password").read_text().strip()
c.Authenticator.allowed_users = {"alice", "bob"}

c.JupyterHub.spawner_class = "batchspawner.SlurmSpawner"
# sudo's secure_path replaces PATH and PATH is not exported into the job: absolute paths only.
c.SlurmSpawner.batchspawner_singleuser_cmd = str(venv / "bin" / "batchspawner-singleuser")
c.Spawner.cmd = [str(venv / "bin" / "jupyterhub-singleuser")]
c.Spawner.default_url = "/lab"
c.SlurmSpawner.req_partition = "vnc"
c.SlurmSpawner.req_runtime = "8:00:00"
c.SlurmSpawner.req_memory = "2G"
c.SlurmSpawner.req_srun = ""
# Every demo node is this machine: map squeue's node name to an address the hub can reach, and keep the
# server off the other interfaces (batchspawner resets the ip to 0.0.0.0 at every start).
c.SlurmSpawner.state_exechost_exp = "127.0.0.1"
c.SlurmSpawner.req_prologue = 'export JUPYTERHUB_SERVICE_URL="${JUPYTERHUB_SERVICE_URL/0.0.0.0/127.0.0.1}"'
c.Spawner.start_timeout = 120
c.Spawner.http_timeout = 60
