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
from tornado import web
from traitlets import Bool, Float, Int, List, Unicode, default

from . import options
from .resources import template_path


class DesktopSpawnerBase(SlurmSpawner):
    # --- what users may ask for ------------------------------------------------------------------
    max_gpus = Int(1, help="Most GPUs one desktop may ask for (0: no GPU choice). Example: 2").tag(
        config=True
    )
    max_memory_gb = Int(64, help="Most memory (GiB) one desktop may ask for. Example: 128").tag(config=True)
    max_hours = Float(12.0, help="Longest walltime (hours) one desktop may ask for. Example: 24").tag(
        config=True
    )
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
    default_gpus = Int(1, help="GPUs when the user does not say. Example: 1").tag(config=True)
    default_memory_gb = Int(8, help="Memory (GiB) when the user does not say. Example: 16").tag(config=True)
    default_hours = Float(4.0, help="Walltime (hours) when the user does not say. Example: 8").tag(
        config=True
    )
    default_resolution = Unicode("1920x1080", help='Example: "2560x1440"').tag(config=True)
    fixed_options = List(
        Unicode(),
        [],
        help="""Options users may not change (they get the defaults). When every option is fixed the
        spawn form is skipped. Example: c.VNCSlurmSpawner.fixed_options = ["gpus", "partition"]""",
    ).tag(config=True)

    # --- how the job runs ------------------------------------------------------------------------
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
        help="""Where job logs go (created as the user before submission; {homedir} and {username} are
        replaced). The tail of the log is shown when a job dies. Example: "/scratch/{username}/logs"
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

    @default("batch_script")
    def _default_batch_script(self) -> str:
        return Path(self.job_template or template_path("job.sh.j2")).read_text()

    @default("req_srun")
    def _default_srun(self) -> str:
        # The job script waits on the server itself so that its trap can stop it cleanly.
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
            fixed=tuple(self.fixed_options),
        )

    @default("apply_user_options")
    def _default_apply_user_options(self) -> Any:
        # JupyterHub >= 5.3 turns an error here into HTTP 400 before anything starts.
        return lambda spawner, user_options: spawner.validated_request()

    @default("options_form")
    def _default_options_form(self) -> Any:
        return self._render_options_form

    def _render_options_form(self, spawner: DesktopSpawnerBase) -> str:
        limits = spawner.limits
        if not limits.choices():
            return ""  # nothing to choose: JupyterHub spawns at once
        env = jinja2.Environment(
            loader=jinja2.FileSystemLoader(str(template_path("spawn_form.html.j2").parent))
        )
        env.autoescape = True
        return env.get_template("spawn_form.html.j2").render(limits=limits, defaults=limits.defaults())

    def options_from_form(self, formdata: dict[str, list[str]]) -> dict[str, Any]:
        """Form fields → user_options; invalid values go back to the form with the reason."""
        try:
            return options.validate(options.from_form(formdata), self.limits).as_dict()
        except options.OptionsError as e:
            raise web.HTTPError(400, str(e)) from e

    def validated_request(self) -> options.DesktopRequest:
        try:
            return options.validate(self.user_options or {}, self.limits)
        except options.OptionsError as e:
            raise web.HTTPError(400, f"Invalid desktop options: {e}") from e
