"""A JupyterHub that is not a Slurm submit host (devstack/offsite-hub start).

It runs as the unprivileged account jvnc-hub, has no Slurm command on its PATH, and reaches Slurm only
through ssh to a login node (devstack/login-node), where sudo lets it act as the users. Slurm runs with
PrivateData=jobs, so jvnc-hub's own squeue sees no one's jobs: each desktop's state is then asked as its
user. The part a site with a login node copies is marked below.
"""

import os
from pathlib import Path

c = get_config()  # noqa: F821 - provided by JupyterHub when it loads this file

state = Path(os.environ.get("JVNC_STATE", "/var/lib/jupyter-vnc-dev")) / "offsite-hub"
port = int(os.environ.get("JVNC_OFFSITE_PORT", "8300"))

c.JupyterHub.bind_url = f"http://127.0.0.1:{port}"
# Each user's servers on an origin of their own (http://olga.localhost:8300), as every site should:
# see jupyterhub_config.py.
c.JupyterHub.subdomain_host = f"http://localhost:{port}"
c.JupyterHub.hub_bind_url = f"http://127.0.0.1:{port + 2}"
c.ConfigurableHTTPProxy.api_url = f"http://127.0.0.1:{port + 1}"
c.JupyterHub.db_url = f"sqlite:///{state}/jupyterhub.sqlite"
c.JupyterHub.cookie_secret_file = str(state / "jupyterhub_cookie_secret")
c.ConfigurableHTTPProxy.pid_file = str(state / "proxy.pid")
c.JupyterHub.authenticator_class = "dummy"
c.DummyAuthenticator.password = (state / "password").read_text().strip()
c.Authenticator.allowed_users = set(os.environ.get("JVNC_OFFSITE_USERS", "olga").split())
# The admin CLI (`jupyter-vnc doctor`, run as this hub's account) finds its token here.
c.JupyterHub.services = [{"name": "jupyter-vnc", "api_token": (state / "admin-token").read_text().strip()}]
c.JupyterHub.load_roles = [
    {
        "name": "jupyter-vnc-admin",
        "scopes": ["admin:servers", "admin:server_state", "list:users", "read:users"],
        "services": ["jupyter-vnc"],
    }
]

load_subconfig(str(Path(__file__).with_name("jupyterhub_desktops.py")))  # noqa: F821 - from JupyterHub

# --- a hub off the submit host: what a site writes ---------------------------------------------
# ssh to the login node as the hub's account (key login, host key pinned, the job's variables sent as
# ssh environment: the login node's sshd has `AcceptEnv JUPYTERHUB_* JUPYTER_* JPY_*`).
# e.g. "ssh -i /etc/jupyterhub/id_ed25519 -o BatchMode=yes -o SendEnv=JUPYTERHUB_* ... hub@login1"
ssh = os.environ["JVNC_LOGIN_NODE_SSH"]
# Every command for a user (submit, cancel, their job's state) runs there as that user, with sudo
# and no -E: the login node's rule (devstack/install) keeps only the JUPYTERHUB_* variables...
c.SlurmSpawner.exec_prefix = ssh + " sudo -H -n -u {username}"  # -H: the user's HOME, not the hub's
# ...and the one status query for all desktops as the hub's account. Under PrivateData=jobs it sees
# no one's jobs; the spawner then asks as each user (one query per desktop per poll, as batchspawner).
# Give it an operator account to keep one query per poll for the whole hub.
c.VNCSlurmSpawner.query_exec_prefix = ssh
# -----------------------------------------------------------------------------------------------
# The session registry in the hub process (the demo's Redis password is readable by root only).
c.VNCSlurmSpawner.registry_url = ""
