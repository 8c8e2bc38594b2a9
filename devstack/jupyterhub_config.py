"""JupyterHub configuration of the demo stack (devstack/hub start).

Host mode: the desktop runs straight on the (single, local) Slurm node; tests cover Apptainer mode.
"""

import os
from pathlib import Path

from jupyter_vnc.resources import templates_dir
from jupyter_vnc.spawner import exit_messages

c = get_config()  # noqa: F821 - provided by JupyterHub when it loads this file

state = Path(os.environ.get("JVNC_STATE", "/var/lib/jupyter-vnc-dev")) / "hub"
venv = Path(os.environ.get("JVNC_VENV", "/opt/jupyter-vnc/venv"))
port = int(os.environ.get("JVNC_HUB_PORT", "8000"))

c.JupyterHub.bind_url = f"http://127.0.0.1:{port}"
c.JupyterHub.hub_ip = "127.0.0.1"
c.JupyterHub.db_url = f"sqlite:///{state}/jupyterhub.sqlite"
c.JupyterHub.cookie_secret_file = str(state / "jupyterhub_cookie_secret")
c.ConfigurableHTTPProxy.pid_file = str(state / "proxy.pid")

# A test login: the Unix users alice, bob and carol, with the password devstack/hub generated.
c.JupyterHub.authenticator_class = "dummy"
c.DummyAuthenticator.password = (state / "demo-password").read_text().strip()
c.Authenticator.allowed_users = {"alice", "bob", "carol"}

# The admin CLI (`jupyter-vnc -f devstack/jupyterhub_config.py sessions|cancel|doctor`) finds its token
# here: a service with just the scopes it needs.
c.JupyterHub.services = [{"name": "jupyter-vnc", "api_token": (state / "admin-token").read_text().strip()}]
c.JupyterHub.load_roles = [
    {
        "name": "jupyter-vnc-admin",
        "scopes": ["admin:servers", "admin:server_state", "list:users", "read:users"],
        "services": ["jupyter-vnc"],
    }
]

# Every user's server shares this hub's origin (no c.JupyterHub.subdomain_host on a demo): a page that
# one user's server serves could open a websocket to another's with the victim's cookie. With cookie
# authentication of websockets off, a websocket must carry the user's token instead; jupyter-vnc's
# viewer and Lab panel do, and it tells JupyterLab to do so for kernels and terminals.
c.Spawner.environment = {"JUPYTERHUB_ALLOW_WEBSOCKET_COOKIE_AUTH": "0"}

c.JupyterHub.spawner_class = "vnc-slurm"
# Several desktops per user (e.g. one with a GPU for visualisation, one without).
c.JupyterHub.allow_named_servers = True
c.JupyterHub.named_server_limit_per_user = 3
# ...but at most two desktop jobs in Slurm per user, whatever they ask for (GPU nodes are shared).
c.VNCSlurmSpawner.max_jobs_per_user = 2
# Shows users why a desktop ended (walltime, cancelled, node failure) on the "not running" page.
c.JupyterHub.template_paths = [str(templates_dir() / "hub")]
c.JupyterHub.template_vars = {"jupyter_vnc_exits": exit_messages}
# How soon the hub notices a desktop job that ended (JupyterHub's default is 30 s).
c.Spawner.poll_interval = 10
# Go straight to the progress page (queue position, Slurm's reasons) instead of a blank 10 s wait.
c.JupyterHub.slow_spawn_timeout = 0
# Desktops are Slurm jobs: they keep running while the hub restarts, and the hub finds them again.
c.JupyterHub.cleanup_servers = False
# sudo's secure_path replaces PATH and PATH is not exported into the job: absolute paths only.
c.VNCSlurmSpawner.batchspawner_singleuser_cmd = str(venv / "bin" / "batchspawner-singleuser")
c.Spawner.cmd = [str(venv / "bin" / "jupyterhub-singleuser")]
c.Spawner.default_url = "/lab"
c.VNCSlurmSpawner.req_partition = "vnc"
c.VNCSlurmSpawner.max_gpus = 2
c.VNCSlurmSpawner.max_memory_gb = 8
c.VNCSlurmSpawner.default_memory_gb = 2
c.VNCSlurmSpawner.max_hours = 8
# Every demo node is this machine: map squeue's node name to an address the hub can reach, and keep the
# server off the other interfaces (batchspawner starts it on 0.0.0.0).
c.VNCSlurmSpawner.state_exechost_exp = "127.0.0.1"
c.VNCSlurmSpawner.req_prologue = 'export JUPYTERHUB_SERVICE_URL="${JUPYTERHUB_SERVICE_URL/0.0.0.0/127.0.0.1}"'
# Sessions and the shared Slurm job-state cache in the demo's Redis (devstack/redis).
c.VNCSlurmSpawner.registry_url = f"redis://127.0.0.1:{os.environ.get('JVNC_REDIS_PORT', '16379')}/0"
# The demo's Redis requires a password (devstack/redis writes it, readable by root only).
c.VNCSlurmSpawner.registry_password_file = str(
    Path(os.environ.get("JVNC_STATE", "/var/lib/jupyter-vnc-dev")) / "redis" / "password"
)
# Apptainer mode when an image is given (the tests set it to the image devstack/build-desktop-image
# makes); the demo runs in host mode. The venv has the same path inside the image as on the host.
if os.environ.get("JVNC_DESKTOP_IMAGE"):
    c.VNCSlurmSpawner.image = os.environ["JVNC_DESKTOP_IMAGE"]
    c.VNCSlurmSpawner.apptainer = "/usr/local/bin/apptainer"
c.Spawner.start_timeout = 120
c.Spawner.http_timeout = 60
