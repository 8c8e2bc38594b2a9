"""JupyterHub configuration of the demo stack (devstack/hub start).

Host mode: the desktop runs straight on the (single, local) Slurm node; tests cover Apptainer mode.
"""

import json
import os
import sys
from pathlib import Path

c = get_config()  # noqa: F821 - provided by JupyterHub when it loads this file

state = Path(os.environ.get("JVNC_STATE", "/var/lib/jupyter-vnc-dev")) / "hub"
# The tests' users (devstack/lib.sh's JVNC_TEST_USERS passes them; the same default).
TEST_USERS = "alice bob carol dave erin fred gina hugo iris jack kate liam mona nick omar pete"
IDLE_TEST_USER = "pete"
port = int(os.environ.get("JVNC_HUB_PORT", "8000"))

c.JupyterHub.bind_url = f"http://127.0.0.1:{port}"
# Every user's servers on an origin of their own (http://alice.localhost:8000/user/alice/), as on a
# production site: without it a page that one user's server serves shares the origin of everyone's
# servers, and can open another user's JupyterLab or desktop in a window and read her token from it.
# Browsers resolve any *.localhost to this machine (RFC 6761), so no DNS is needed; the hub's own pages
# stay on http://localhost:8000.
c.JupyterHub.subdomain_host = f"http://localhost:{port}"
c.JupyterHub.hub_ip = "127.0.0.1"
c.JupyterHub.db_url = f"sqlite:///{state}/jupyterhub.sqlite"
c.JupyterHub.cookie_secret_file = str(state / "jupyterhub_cookie_secret")
c.ConfigurableHTTPProxy.pid_file = str(state / "proxy.pid")

# A test login with the password devstack/hub generated: the demo's users (ada, ben, cleo) and the
# tests' own (alice, bob, carol), so a test run leaves the desktops open in the demo alone.
c.JupyterHub.authenticator_class = "dummy"
c.DummyAuthenticator.password = (state / "demo-password").read_text().strip()
c.Authenticator.allowed_users = set(
    (
        os.environ.get("JVNC_DEMO_USERS", "ada ben cleo")
        + " "
        + os.environ.get("JVNC_TEST_USERS", TEST_USERS)
    ).split()
)

# A hub admin (no Unix account: admins do not spawn here) for the tests of what admins may do.
c.Authenticator.admin_users = {"hubadmin"}

# The admin CLI (`jupyter-vnc -f devstack/jupyterhub_config.py sessions|cancel|doctor`) finds its token
# here: a service with just the scopes it needs.
c.JupyterHub.services = [
    {"name": "jupyter-vnc", "api_token": (state / "admin-token").read_text().strip()},
    # jupyterhub-idle-culler, run by the idle tests as an external service with this token (a site runs
    # it as a managed service with --timeout=3600 or so; the scopes are the ones its README asks for).
    {"name": "idle-culler", "api_token": (state / "culler-token").read_text().strip()},
]
c.JupyterHub.load_roles = [
    {
        "name": "jupyter-vnc-admin",
        "scopes": ["admin:servers", "admin:server_state", "list:users", "read:users"],
        "services": ["jupyter-vnc"],
    },
    {
        "name": "idle-culler",
        # Its README's scopes, narrowed to the one user of the idle tests (tests/test_idle.py): a test run
        # must not cull a demo desktop, nor the desktop of another test running beside them.
        "scopes": [
            f"{scope}!user={IDLE_TEST_USER}"
            for scope in ("list:users", "read:users:activity", "read:servers", "delete:servers")
        ],
        "services": ["idle-culler"],
    },
]

# How desktops are spawned (limits, job, Slurm partition): shared with the hub off the submit host.
load_subconfig(str(Path(__file__).with_name("jupyterhub_desktops.py")))  # noqa: F821 - from JupyterHub

# The hub runs as the unprivileged account jvnc-hub (devstack/hub) and acts as the users through the
# sudo rule a site gives a batchspawner hub (devstack/install): Slurm's four commands, the environment
# reset but for JUPYTERHUB_*, no SETENV, hence no -E here.
c.SlurmSpawner.exec_prefix = "sudo -n -u {username}"
# The one status query for all desktops, as an account that sees every job under PrivateData=jobs
# (here root, the test bed's SlurmUser; a site uses an operator account).
c.VNCSlurmSpawner.query_exec_prefix = "sudo -n -u root"
# This site's rule also lets the hub read a job's log as its user (tail): a failed spawn then shows the
# end of it (the offsite hub, whose rule allows Slurm's commands only, names the log file instead).
c.VNCSlurmSpawner.log_tail_cmd = "tail -n {lines} {log_path}"

# Sessions and the shared Slurm job-state cache in the demo's Redis (devstack/redis).
c.VNCSlurmSpawner.registry_url = f"redis://127.0.0.1:{os.environ.get('JVNC_REDIS_PORT', '16379')}/0"
# The demo's Redis requires a password (devstack/redis writes it, readable by root only; devstack/hub
# copies it into the hub's own state, readable by the hub's account only).
c.VNCSlurmSpawner.registry_password_file = str(state / "redis-password")
# The hub's "Desktops" page for admins (jupyter_vnc/admin_page.py), a service the hub runs: every live
# desktop, queued ones with Slurm's reason, who watches, stop and cancel. In the hub's Services menu.
_registry_args = ["--registry-url", c.VNCSlurmSpawner.registry_url]
_registry_args += ["--registry-password-file", c.VNCSlurmSpawner.registry_password_file]
# List the desktops and their kept state, stop them, and ask each desktop's server who watches.
_page_scopes = ["list:users", "read:users", "read:servers", "admin:server_state", "servers", "access:servers"]
c.JupyterHub.services.append(
    {
        "name": "desktops",
        "url": f"http://127.0.0.1:{port + 110}",
        "command": [sys.executable, "-m", "jupyter_vnc.admin_page", *_registry_args],
        "display": True,
        "oauth_no_confirm": True,
        # The page is for admins: a user's token for it carries admin:servers only where they hold it.
        "oauth_client_allowed_scopes": ["admin:servers"],
    }
)
c.JupyterHub.load_roles.append(
    {
        "name": "desktops-page",
        "scopes": _page_scopes,
        "services": ["desktops"],
    }
)
# Apptainer mode when an image is given (the tests set it to the image devstack/build-desktop-image
# makes); the demo runs in host mode. The venv has the same path inside the image as on the host.
if os.environ.get("JVNC_DESKTOP_IMAGE"):
    c.VNCSlurmSpawner.image = os.environ["JVNC_DESKTOP_IMAGE"]
    c.VNCSlurmSpawner.apptainer = "/usr/local/bin/apptainer"
# No start_timeout: the spawner computes it from the queue limit (a desktop may wait in the queue for
# hours); the start on the node has job_start_timeout (jupyterhub_desktops.py).
c.Spawner.http_timeout = 60

# Spawner settings for one of the tests' users, read at each of their spawns from
# <state>/per-user/<name>.json (e.g. {"idle_pause_minutes": 0.25}): a test of such settings runs beside
# the others instead of restarting the hub for everyone (tests/isolation.py). A site would key settings
# like these by group the same way. The demo's users never get any.
_test_users = set(os.environ.get("JVNC_TEST_USERS", TEST_USERS).split())


def _test_users_settings(spawner):
    path = state / "per-user" / f"{spawner.user.name}.json"
    if spawner.user.name in _test_users and path.is_file():
        for name, value in json.loads(path.read_text()).items():
            if not spawner.has_trait(name):
                raise ValueError(f"{path}: {name} is no setting of {type(spawner).__name__}")
            setattr(spawner, name, value)


c.Spawner.pre_spawn_hook = _test_users_settings


# The spawn form and its submission come before the spawn: they see the same per-test-user settings.
def _test_users_form(spawner):
    _test_users_settings(spawner)
    return spawner.render_options_form(spawner)


def _test_users_form_options(formdata, spawner):
    from jupyter_vnc.spawner_traits import form_options

    _test_users_settings(spawner)
    return form_options(formdata, spawner)


c.VNCSlurmSpawner.options_form = _test_users_form
c.VNCSlurmSpawner.options_from_form = _test_users_form_options

# A site's own settings on top of the demo's: tests/test_site_settings.py restarts the hub with a file
# of them (a job template, partitions to choose from, fixed options, Apptainer binds).
if os.environ.get("JVNC_EXTRA_CONFIG"):
    load_subconfig(os.environ["JVNC_EXTRA_CONFIG"])  # noqa: F821 - from JupyterHub

# Last: a wrong spawner setting (this file's or the extra file's) stops the hub here, each one named.
from jupyter_vnc.config_check import refuse_wrong_settings  # noqa: E402

refuse_wrong_settings(c)
