"""What a hub admin configures on VNCSlurmSpawner, and what users may ask for.

The traits (limits, defaults, image, registry...) and the spawn form live here, below the spawner's
lifecycle (spawner.py), so each module stays one job: this one says *what* a desktop may be, the
spawner makes it happen in Slurm.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jinja2
from batchspawner import SlurmSpawner
from jupyterhub import scopes as jupyterhub_scopes
from tornado import web
from traitlets import Bool, Dict, Float, Int, List, TraitError, Unicode, default, validate

from . import apps, native_client, options, slurm_commands, slurm_syntax
from .registry import RegistryConfigError, check_registry_url
from .resources import template_path
from .sharing import CONTROL_SCOPE

# "As long as Slurm keeps the job" as JupyterHub's start_timeout (seconds); it has no "never".
_NO_LIMIT = 365 * 24 * 3600


class DesktopSpawnerBase(SlurmSpawner):
    # --- what users may ask for ------------------------------------------------------------------
    max_gpus = Int(1, help="Most GPUs one desktop may ask for (0: no GPU choice). Example: 2").tag(
        config=True
    )
    max_memory_gb = Int(
        help="""Most memory (GiB) one desktop may ask for. Unset: 64, or batchspawner's req_memory where that
        asks for more (a site's existing jobs keep their size). Example: 128""",
    ).tag(config=True)
    max_hours = Float(
        help="""Longest walltime (hours) one desktop may ask for. Unset: 12, or batchspawner's req_runtime
        where that asks for longer ("3-00:00:00" stays three days). Example: 24""",
    ).tag(config=True)

    @default("max_memory_gb")
    def _max_memory_from_req(self) -> int:
        return max(64, slurm_syntax.memory_gb(self.req_memory) or 0)

    @default("max_hours")
    def _max_hours_from_req(self) -> float:
        return max(12.0, slurm_syntax.hours(self.req_runtime) or 0.0)

    resolutions = List(
        Unicode(),
        ["1280x720", "1600x900", "1920x1080", "2560x1440", "3840x2160"],
        help='Screen sizes offered (the viewer then fits the browser window). Example: ["1920x1080"]',
    ).tag(config=True)
    partitions = List(
        Unicode(),
        [],
        help="""Partitions users may choose from; empty: no choice (req_partition or Slurm's default).
        Example: c.VNCSlurmSpawner.partitions = ["vis", "gpu"]""",
    ).tag(config=True)
    default_gpus = Int(
        help="""GPUs when the user does not say. Unset: the count in batchspawner's req_ngpus or req_gres
        (a site's "gpu:a100:1" gives 1; the user's choice then changes the count, not the type), else 1.
        Example: 1""",
    ).tag(config=True)
    default_memory_gb = Int(
        help="""Memory (GiB) when the user does not say. Unset: batchspawner's req_memory ("32G", or
        "32000" in Slurm's MB), else 8. Example: 16""",
    ).tag(config=True)
    default_hours = Float(
        help="""Walltime (hours) when the user does not say. Unset: batchspawner's req_runtime ("8:00:00",
        "1-00:00:00"...), else 4. Example: 8""",
    ).tag(config=True)

    @default("default_gpus")
    def _gpus_from_req(self) -> int:
        if self.req_ngpus.strip().isdigit():
            return int(self.req_ngpus)
        found = slurm_syntax.gpus_in_gres(self.req_gres)
        return 1 if found is None else found

    @default("default_memory_gb")
    def _memory_from_req(self) -> int:
        return slurm_syntax.memory_gb(self.req_memory) or 8

    @default("default_hours")
    def _hours_from_req(self) -> float:
        return slurm_syntax.hours(self.req_runtime) or 4.0

    default_resolution = Unicode("1920x1080", help='Example: "2560x1440"').tag(config=True)

    # --- waiting in the queue ----------------------------------------------------------------------
    default_queue_hours = Float(
        24.0,
        help="""Cancel a desktop job that Slurm has not started after this many hours in the queue, and
        tell the user so (0: wait as long as Slurm keeps it). Users may choose their own "give up
        after" on the spawn form or as user_options["queue_hours"], up to max_queue_hours. No hub
        timeout cancels a queued desktop before this: start_timeout follows it (see there).
        Example: c.VNCSlurmSpawner.default_queue_hours = 8""",
    ).tag(config=True)
    max_queue_hours = Float(
        168.0,
        help="""Longest queue wait a user may ask for, in hours (0: any, including 0 for "as long as
        Slurm keeps it"). Example: c.VNCSlurmSpawner.max_queue_hours = 48""",
    ).tag(config=True)
    email_address = Unicode(
        "",
        help="""Offer "E-mail me when it starts" on the spawn form (and user_options["email"]): Slurm then
        mails the user when the desktop's job starts or fails (--mail-type=BEGIN,FAIL), at this address,
        {username} being the hub user's name. Empty: no e-mail offered. Slurm's MailProg (slurm.conf)
        must be able to send it; a bare {username} suits a site whose mail delivers to local users.
        Example: c.VNCSlurmSpawner.email_address = "{username}@example.org"
        """,
    ).tag(config=True)
    job_start_timeout = Float(
        300.0,
        help="""Seconds from the job running on its node to its desktop server answering the hub
        (environment, container, server start). A job past it is cancelled with the end of its log.
        Time in the queue does not count. Example: c.VNCSlurmSpawner.job_start_timeout = 600""",
    ).tag(config=True)

    @default("start_timeout")
    def _start_timeout_after_queue(self) -> float:
        # JupyterHub gives up on a spawn after start_timeout and stops it, cancelling the job:
        # batchspawner's 300 s killed every desktop that queued longer. The queue limit is ours to
        # enforce (with a message that says so), so the hub's own limit only has to come after the
        # longest queue wait a user may ask for plus the start on the node.
        longest = self.max_queue_hours or self.default_queue_hours
        return int((longest * 3600 if longest else _NO_LIMIT) + self.job_start_timeout + 60)

    fixed_options = List(
        Unicode(),
        [],
        help="""Options users may not change (they get the defaults). When every option is fixed the
        spawn form is skipped. Example: c.VNCSlurmSpawner.fixed_options = ["gpus", "partition"]""",
    ).tag(config=True)

    # --- how the job runs ------------------------------------------------------------------------
    batchspawner_singleuser_cmd = Unicode(
        "jupyter-vnc-singleuser",
        help="""The job's first command: it tells the hub the server's port, then runs the server (cmd).
        The default, jupyter-vnc's own, starts the server about a second sooner than batchspawner's
        batchspawner-singleuser, which also works. Where the job's PATH may not have it, give the path.
        Example: "/opt/jupyter-vnc/venv/bin/jupyter-vnc-singleuser"
        """,
    ).tag(config=True)
    image = Unicode(
        "",
        help="""Apptainer image (SIF) the desktop runs in. Empty: host mode, for sites that install the
        desktop (jupyter-vnc, TurboVNC or TigerVNC, XFCE) on the nodes themselves.
        Example: c.VNCSlurmSpawner.image = "/apps/images/desktop-2026.sif"
        """,
    ).tag(config=True)
    apptainer = Unicode(
        "apptainer", help='The apptainer command on the nodes. Example: "/opt/apptainer/bin/apptainer"'
    ).tag(config=True)
    apptainer_binds = List(
        Unicode(),
        [],
        help="""Host paths bound into the container, Apptainer's --bind syntax.
        Example: c.VNCSlurmSpawner.apptainer_binds = ["/scratch", "/project:/project:ro"]""",
    ).tag(config=True)
    apptainer_args = List(
        Unicode(),
        ["--cleanenv", "--writable-tmpfs"],
        help="""Arguments of `apptainer exec` besides --nv and --bind. The default runs the read-only
        image with a throw-away writable layer and without the hub's environment.
        Example: c.VNCSlurmSpawner.apptainer_args = ["--cleanenv", "--writable-tmpfs", "--contain"]""",
    ).tag(config=True)
    nv = Bool(
        True,
        help="Pass --nv to apptainer (the host's NVIDIA driver inside the container). Example: False",
    ).tag(config=True)
    log_dir = Unicode(
        "{homedir}/.jupyter-vnc/logs",
        help="""Where job logs go (the job creates it, 0700; {homedir} and {username} are replaced). Its
        tail is shown when a job dies, where log_tail_cmd is set. Example: "/scratch/{username}/logs"
        """,
    ).tag(config=True)
    log_tail_cmd = Unicode(
        "",
        help="""Reads the end of a job's log as its user, run with exec_prefix, for the message a user
        gets when a desktop fails to start ({lines} and {log_path} are replaced). Empty: the message
        names the log file instead. A site's usual sudo rule lets the hub run Slurm's commands only;
        set this where the rule also allows tail (or on a hub that runs as root).
        Example: c.VNCSlurmSpawner.log_tail_cmd = "tail -n {lines} {log_path}"
        """,
    ).tag(config=True)
    job_template = Unicode(
        "",
        help="""Path of the Jinja2 job script template. Empty: the one shipped in jupyter_vnc/templates/
        job.sh.j2; copy it to start your own. Example: "/etc/jupyterhub/desktop-job.sh.j2"
        """,
    ).tag(config=True)
    stop_timeout = Float(
        20.0,
        help="""Seconds stop() waits for the job's own clean shutdown before cancelling it outright.
        Example: 30""",
    ).tag(config=True)
    slurm_timeout = Float(30.0, help="Seconds before a Slurm command counts as failed. Example: 60").tag(
        config=True
    )
    max_jobs_per_user = Int(
        0,
        help="""Most desktop jobs one user may have in Slurm at once, queued or running, over all their
        servers (0: no limit of ours; JupyterHub's named_server_limit_per_user still applies). A spawn
        beyond it fails at once with a message, and nothing is submitted.
        Example: c.VNCSlurmSpawner.max_jobs_per_user = 2""",
    ).tag(config=True)

    # --- idle desktops and sharing ----------------------------------------------------------------

    idle_shutdown_minutes = Float(
        0.0,
        help="""End a desktop, its server and its Slurm job after this many minutes without keyboard,
        mouse or clipboard input (0: never). Viewers warn idle_warning_minutes before, with a "Keep
        it" button; the hub's page then says the desktop ended because it was idle. Works without
        jupyterhub-idle-culler. Example: c.VNCSlurmSpawner.idle_shutdown_minutes = 120""",
    ).tag(config=True)
    idle_warning_minutes = Float(
        5.0,
        help="""How long before an idle shutdown the viewer warns (at most half of
        idle_shutdown_minutes). Example: c.VNCSlurmSpawner.idle_warning_minutes = 10""",
    ).tag(config=True)
    idle_pause_minutes = Float(
        30.0,
        help="""Pause the viewers of a desktop after this many minutes without input (0: never). An open
        viewer otherwise streams pixels for ever, and configurable-http-proxy counts that as activity:
        jupyterhub-idle-culler would never see a forgotten desktop idle. The user clicks Resume.
        Example: c.VNCSlurmSpawner.idle_pause_minutes = 60""",
    ).tag(config=True)

    # --- applications ------------------------------------------------------------------------------

    desktop_apps = List(
        Dict(),
        help="""Applications offered as JupyterLab launcher tiles: each opens the desktop and starts the
        app in it, maximized, through VirtualGL where "gpu" is True and the node has a GPU. Keys: name
        (a-z, 0-9, - and _; used in the REST API), title, command (a list, or one command line), gpu,
        icon (an .svg or .png file on the node). Checked when the hub starts. Only these commands ever
        run: a click or a REST call names an app, nothing more. A server's own c.VNCExtension.apps wins.
        Example: c.VNCSlurmSpawner.desktop_apps = [{"name": "paraview", "title": "ParaView",
        "command": ["paraview"], "gpu": True, "icon": "/usr/share/icons/hicolor/scalable/apps/paraview.svg"}]
        """,
    ).tag(config=True)

    @validate("desktop_apps")
    def _check_desktop_apps(self, proposal: dict[str, Any]) -> list[dict[str, Any]]:
        try:
            apps.parse_apps(proposal["value"], "c.VNCSlurmSpawner.desktop_apps")
        except apps.AppsError as e:
            raise TraitError(str(e)) from None
        return proposal["value"]

    ssh_login_host = Unicode(
        "",
        help="""The host users ssh through to reach a compute node (ssh -J), e.g. the cluster's login node:
        the desktop's Settings panel then shows its owner the ssh -L command that brings the desktop to
        their own VNC viewer (TurboVNC's, TigerVNC's), with the same privacy as the browser's. Empty: the
        command ssh-es to the node directly. Example: c.VNCSlurmSpawner.ssh_login_host = "login.example.org"
        """,
    ).tag(config=True)

    @validate("ssh_login_host")
    def _check_ssh_login_host(self, proposal: dict[str, Any]) -> str:
        try:
            return native_client.check_login_host(proposal["value"])
        except ValueError as e:
            raise TraitError(str(e)) from None

    def job_settings(self) -> dict[str, str]:
        """Non-secret settings of the desktop's server, exported by the job script itself: through
        the environment they would not survive a site's sudo rule (env_reset keeps JUPYTERHUB_* only)."""
        settings = {
            "JUPYTER_VNC_IDLE_MINUTES": f"{self.idle_shutdown_minutes:g}",
            "JUPYTER_VNC_IDLE_WARNING_MINUTES": f"{self.idle_warning_minutes:g}",
            "JUPYTER_VNC_PAUSE_MINUTES": f"{self.idle_pause_minutes:g}",
        }
        if self.desktop_apps:
            settings[apps.ENV_VAR] = apps.to_env(apps.parse_apps(self.desktop_apps))
        if self.ssh_login_host:
            settings[native_client.ENV_VAR] = self.ssh_login_host
        return settings

    def get_env(self) -> dict[str, str]:
        # Also in the environment, for a site's own job template from before job_settings: where sudo
        # keeps the environment (SETENV) they still arrive; the shipped template exports them itself.
        return {**super().get_env(), **self.job_settings()}

    @default("oauth_client_allowed_scopes")
    def _default_oauth_scopes(self) -> Any:
        # The browser's token for this server says whether its user may start and stop the server
        # (the owner, hub admins): the desktop lets them restart and stop it, and nobody else. The
        # hub grants only what the user holds, so a share recipient's token never has it.
        return [f"servers!server={self.user.name}/{self.name}"]

    @default("server_token_scopes")
    def _default_server_token_scopes(self) -> Any:
        # JupyterHub's "server" role, plus this server's own shares: the desktop lets a share recipient
        # type only when the share carries custom:jupyter-vnc:control (sharing.py), which a recipient's
        # own token cannot tell; and the owner shares from the viewer (share_grants.py), which the hub
        # allows only with the names looked up. The hub grants each only where the owner holds it.
        scopes = [
            "users:activity!user",
            "access:servers!server",
            "read:shares!server",
            "shares!server",
            "read:users:name",
            "read:groups:name",
        ]
        if CONTROL_SCOPE in jupyterhub_scopes.scope_definitions:
            # Only a scope the hub defines may be asked for: an unknown one would fail every spawn.
            scopes.append(f"{CONTROL_SCOPE}!server")
        return scopes

    # --- Slurm commands (batchspawner's batch_submit_cmd, batch_cancel_cmd, exec_prefix also apply) ----
    batch_query_all_cmd = Unicode(
        help="""The status query in squeue's "%i#%T#%N#%r" lines (state, node and Slurm's reason for a wait).
        With query_exec_prefix set, run once per poll for every desktop of the hub ({job_ids}: a
        comma-separated list); otherwise per desktop as its user through exec_prefix. Unset: squeue,
        unless the site changed batch_query_cmd, which is then used per job as batchspawner does (read
        with state_*_re). Empty: always batch_query_cmd.
        Example: c.VNCSlurmSpawner.batch_query_all_cmd = "squeue -h -t all -j {job_ids} -o '%i#%T#%N#%r'"
        """,
    ).tag(config=True)
    query_exec_prefix = Unicode(
        None,
        allow_none=True,
        help="""Turns on the shared status query: one batch_query_all_cmd per poll for every desktop of the
        hub, run through this prefix (for all users at once, so not as one of them). Give it an account
        that sees every job (root, SlurmUser or an operator under PrivateData=jobs); a job it cannot see
        is then asked about as its user, never taken for ended. "" runs the query as the hub's own
        account (a hub on a submit host). On a hub that is not a submit host, reach a login node as in
        exec_prefix (no {username}: the query runs once for everyone; {job_ids} is the only variable).
        Unset (None): each desktop is asked about as its user through exec_prefix, as batchspawner does
        (one squeue per desktop per poll; fine for tens of desktops, not for thousands).
        Example: c.VNCSlurmSpawner.query_exec_prefix = "sudo -n -u root" (or, off the cluster,
        "ssh -i /etc/jupyterhub/ssh_key jupyterhub@login1")
        """,
    ).tag(config=True)
    batch_stop_cmd = Unicode(
        help="""Clean stop, run with exec_prefix: TERM to the job's batch shell, whose trap ends the desktop
        before Slurm kills what is left. batch_cancel_cmd follows if the job outlives stop_timeout.
        Unset: this scancel, unless the site changed batch_cancel_cmd (a wrapper its sudo rule allows
        instead of scancel), which is then used at once. Empty: batch_cancel_cmd at once.
        Example: c.VNCSlurmSpawner.batch_stop_cmd = "scancel --batch --signal=TERM {job_id}"
        """,
    ).tag(config=True)
    batch_list_cmd = Unicode(
        slurm_commands.LIST,
        help="""Lists the ids of the user's live desktop jobs (for max_jobs_per_user), run with exec_prefix,
        so the user sees their own jobs under PrivateData=jobs. {job_name} is the desktop job's name.
        Example: "ssh login1 squeue -h -u {username} --name {job_name} -t PD,CF,R,S,CG -o %i"
        """,
    ).tag(config=True)

    @default("batch_query_all_cmd")
    def _default_query_all(self) -> str:
        upstream = SlurmSpawner.class_traits()["batch_query_cmd"].default_value
        return slurm_commands.QUERY_ALL if self.batch_query_cmd == upstream else ""

    @default("batch_stop_cmd")
    def _default_stop(self) -> str:
        upstream = SlurmSpawner.class_traits()["batch_cancel_cmd"].default_value
        return slurm_commands.STOP if self.batch_cancel_cmd == upstream else ""

    registry_url = Unicode(
        "",
        help="""Where the session registry and the shared Slurm job-state cache live. Empty: in this hub
        process (one hub). A Redis URL lets several hub processes share them and survives hub restarts;
        if Redis goes down, spawns and stops go on and the registry catches up when it returns.
        Example: c.VNCSlurmSpawner.registry_url = "redis://127.0.0.1:6379/0"
        """,
    ).tag(config=True)
    registry_password_file = Unicode(
        "",
        help="""File holding the Redis password (readable by the hub only). Without it the password comes
        from $JUPYTER_VNC_REGISTRY_PASSWORD. Never put it in registry_url: URLs end up in logs. A Redis
        without a password lets every local user read and forge sessions (`jupyter-vnc doctor` warns).
        For an ACL user, name it in the URL: "redis://jupyterhub@redis1:6379/0".
        Example: c.VNCSlurmSpawner.registry_password_file = "/etc/jupyterhub/redis-password"
        """,
    ).tag(config=True)

    @validate("registry_url")
    def _check_registry_url(self, proposal: Any) -> str:
        # Here, where the configuration is read, not at the first spawn: a Redis URL on a hub installed
        # without jupyter-vnc[redis] names the trait and the fix instead of failing a user's spawn.
        try:
            check_registry_url(proposal.value, f"c.{type(self).__name__}.registry_url")
        except RegistryConfigError as e:
            raise TraitError(str(e)) from None
        return proposal.value

    @default("batch_script")
    def _default_batch_script(self) -> str:
        return Path(self.job_template or template_path("job.sh.j2")).read_text()

    @default("req_srun")
    def _default_srun(self) -> str:
        # The job script waits on the server itself so that its trap can stop it cleanly. A site's own
        # req_srun (e.g. "srun --cpu-bind=none") still prefixes the server: srun passes the TERM on.
        return ""

    # --- options ---------------------------------------------------------------------------------

    @property
    def limits(self) -> options.Limits:
        return options.Limits(
            max_gpus=self.max_gpus,
            max_memory_gb=self.max_memory_gb,
            max_hours=self.max_hours,
            resolutions=tuple(self.resolutions),
            partitions=tuple(self.partitions),
            default_gpus=self.default_gpus,
            default_memory_gb=self.default_memory_gb,
            default_hours=self.default_hours,
            default_resolution=self.default_resolution,
            default_partition=self.req_partition,
            default_queue_hours=self.default_queue_hours,
            max_queue_hours=self.max_queue_hours,
            email_address=self.email_address,
            fixed=tuple(self.fixed_options),
        )

    @default("apply_user_options")
    def _default_apply_user_options(self) -> Any:
        # JupyterHub >= 5.3 turns an error here into HTTP 400 before anything starts.
        return lambda spawner, user_options: spawner.validated_request()

    @default("options_form")
    def _default_options_form(self) -> Any:
        return self.render_options_form

    def render_options_form(self, spawner: DesktopSpawnerBase) -> str:
        limits = spawner.limits
        if not limits.choices():
            return ""  # nothing to choose: JupyterHub spawns at once
        env = jinja2.Environment(
            loader=jinja2.FileSystemLoader(str(template_path("spawn_form.html.j2").parent))
        )
        env.autoescape = True
        email_to = ""
        if limits.email_address:
            try:
                email_to = options.mail_address(limits.email_address, spawner.user.name)
            except options.OptionsError:
                email_to = ""  # this user cannot be mailed: no checkbox
        return env.get_template("spawn_form.html.j2").render(
            limits=limits, defaults=limits.defaults(), email_to=email_to
        )

    @default("options_from_form")
    def _default_options_from_form(self) -> Any:
        # A default, not a method: a site's own c.Spawner.options_from_form still takes effect (its
        # result is then checked by apply_user_options like any API request).
        return form_options

    def validated_request(self) -> options.DesktopRequest:
        try:
            request = options.validate(self.user_options or {}, self.limits)
            if request.email:
                options.mail_address(self.email_address, self.user.name)
            return request
        except options.OptionsError as e:
            raise web.HTTPError(400, f"Invalid desktop options: {e}") from e


def form_options(formdata: dict[str, list[str]], spawner: DesktopSpawnerBase) -> dict[str, Any]:
    """Form fields → user_options; invalid values go back to the form with the reason."""
    try:
        request = options.validate(options.from_form(formdata), spawner.limits)
        if request.email:
            options.mail_address(spawner.email_address, spawner.user.name)
        return request.as_dict()
    except options.OptionsError as e:
        raise web.HTTPError(400, str(e)) from e
