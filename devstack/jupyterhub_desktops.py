"""How the devstack hubs spawn desktops: limits, the job, the Slurm partition, what users are told.

Loaded by both devstack/jupyterhub_config.py (the demo, a hub on the submit host) and
devstack/jupyterhub_offsite_config.py (a hub that reaches Slurm over ssh); both run as the account
jvnc-hub, never root.
"""

import os
from pathlib import Path

from jupyter_vnc.resources import templates_dir
from jupyter_vnc.spawner import exit_messages

c = get_config()  # noqa: F821 - provided by JupyterHub when it loads this file
venv = Path(os.environ.get("JVNC_VENV", "/opt/jupyter-vnc/venv"))

# Each hub gives every user's servers an origin of their own (c.JupyterHub.subdomain_host in its own
# config): that is what keeps one user's pages, and the token in them, from another user's. Cookie
# authentication of websockets is off as well, as a hub without per-user origins should have it (there
# a page of one user's server could open a websocket to another's with the victim's cookie; it does not
# stop that page from reading the victim's token out of a window it opens, see the README's Security),
# so the tests keep that way working: a websocket carries the user's token; jupyter-vnc's viewer and
# Lab panel do, and it tells JupyterLab to do so for kernels and terminals.
c.Spawner.environment = {
    "JUPYTERHUB_ALLOW_WEBSOCKET_COOKIE_AUTH": "0",
    # How often a server reports its own activity (keys and pointer at the desktop) to the hub.
    "JUPYTERHUB_ACTIVITY_INTERVAL": "10",
}
# How often the hub collects the proxy's activity. JupyterHub's defaults are 5 minutes for both; 10 s
# lets the idle tests (jupyterhub-idle-culler with a short timeout) run in about a minute.
c.JupyterHub.last_activity_interval = 10

c.JupyterHub.spawner_class = "vnc-slurm"
# Several desktops per user (e.g. one with a GPU for visualisation, one without).
c.JupyterHub.allow_named_servers = True
c.JupyterHub.named_server_limit_per_user = 3
# ...but at most two desktop jobs in Slurm per user, whatever they ask for (GPU nodes are shared).
c.VNCSlurmSpawner.max_jobs_per_user = 2
# An app tile next to the desktop's own in JupyterLab's launcher: the desktop opens with the app in it,
# maximized, through VirtualGL where the node has a GPU.
c.VNCSlurmSpawner.desktop_apps = [
    {"name": "glxgears", "title": "OpenGL gears", "command": ["glxgears"], "gpu": True},
]
# Shows users why a desktop ended (walltime, cancelled, node failure) on the "not running" page.
c.JupyterHub.template_paths = [str(templates_dir() / "hub")]
c.JupyterHub.template_vars = {"jupyter_vnc_exits": exit_messages}
# How soon the hub notices a desktop job that ended (JupyterHub's default is 30 s).
c.Spawner.poll_interval = 10
# Go straight to the progress page (queue position, Slurm's reasons) instead of a blank 10 s wait.
# (A setting of JupyterHub's web application, not a trait: c.JupyterHub.slow_spawn_timeout is ignored.)
c.JupyterHub.tornado_settings = {"slow_spawn_timeout": 0}
# Desktops are Slurm jobs: they keep running while the hub restarts, and the hub finds them again.
c.JupyterHub.cleanup_servers = False
# sudo's secure_path replaces PATH and PATH is not exported into the job: absolute paths only.
c.VNCSlurmSpawner.batchspawner_singleuser_cmd = str(venv / "bin" / "jupyter-vnc-singleuser")
c.Spawner.cmd = [str(venv / "bin" / "jupyterhub-singleuser")]
c.Spawner.default_url = "/lab"
c.VNCSlurmSpawner.req_partition = "vnc"
c.VNCSlurmSpawner.max_gpus = 2
c.VNCSlurmSpawner.max_memory_gb = 8
c.VNCSlurmSpawner.default_memory_gb = 2
c.VNCSlurmSpawner.max_hours = 8
# A desktop here starts in seconds once its job runs; a minute is plenty (the default, 300 s, suits
# a node that pulls an image over a network file system). Time in the queue never counts against it.
c.VNCSlurmSpawner.job_start_timeout = 60
# Every demo node is this machine: map squeue's node name to an address the hub can reach, and keep the
# server off the other interfaces (batchspawner starts it on 0.0.0.0).
c.VNCSlurmSpawner.state_exechost_exp = "127.0.0.1"
c.VNCSlurmSpawner.req_prologue = 'export JUPYTERHUB_SERVICE_URL="${JUPYTERHUB_SERVICE_URL/0.0.0.0/127.0.0.1}"'

# Sharing (JupyterHub 5+): a user may share a desktop with another user or a group. A share lets its
# recipient watch; adding the custom scope below to the share also lets them type and point. Restart
# and stop stay with the owner. The server reads its own shares (the spawner asks for that scope).
c.JupyterHub.custom_scopes = {
    "custom:jupyter-vnc:control": {
        "description": "Use the keyboard, mouse and clipboard of a shared jupyter-vnc desktop.",
    },
}
c.JupyterHub.load_roles.append(
    {
        "name": "user",
        "scopes": [
            "self",
            "shares!user",
            "read:users:name",
            "read:groups:name",
            "custom:jupyter-vnc:control!user",
        ],
    }
)
