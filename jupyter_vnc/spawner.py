"""VNCSlurmSpawner: a GPU desktop job on Slurm, from the spawn page or the Hub REST API.

A subclass of batchspawner's SlurmSpawner that keeps its contract (state with ``job_id`` and
``job_status``, ``req_*`` traits as template variables, Jinja2 ``batch_script``, the port reported by
``batchspawner-singleuser``) and fixes what its users run into: unknown is not dead, pending shows
Slurm's reason, a job that dies while starting ends the spawn at once with its log, and stop waits
until the job is really gone.

Configure it in ``jupyterhub_config.py``::

    c.JupyterHub.spawner_class = "vnc-slurm"
    c.VNCSlurmSpawner.image = "/cvmfs/site/desktop.sif"
    c.VNCSlurmSpawner.max_gpus = 2
"""

from __future__ import annotations

import asyncio
import contextlib
import shlex
import socket
import time
from collections.abc import AsyncIterator, Coroutine
from typing import Any

from batchspawner import JobStatus
from tornado import web
from tornado.httpclient import AsyncHTTPClient
from traitlets import observe

from . import jobscript, options, slurm_syntax
from .messages import SpawnFailed, explain_end, explain_exit, explain_reason, never_starts
from .poller import JobPoller, JobQuery
from .registry import Registry, RegistryUnavailable, ResilientRegistry, Session, open_registry
from .slurm import CommandResult, JobInfo, Phase, node_of_status, parse_squeue
from .slurm_commands import BatchedQuery, compose, outcome, parse_status_line, run_shell, widened
from .spawner_traits import DesktopSpawnerBase

# Variables the single-user server needs inside the container besides the hub's own (JUPYTERHUB_*).
_CONTAINER_ENV = (
    "CUDA_VISIBLE_DEVICES", "SLURM_JOB_ID", "SLURM_JOB_NODELIST", "SLURM_JOB_GPUS", "SLURM_GPUS_ON_NODE",
    "GPU_DEVICE_ORDINAL", "JUPYTER_VNC_RESOLUTION", "JUPYTER_VNC_JOB_END", "JUPYTER_VNC_DESKTOP_JOB",
)  # fmt: skip


# One registry and one poller per hub process, registry URL and status command, shared by every spawner.
_SHARED: dict[tuple[str, str], tuple[Registry, JobPoller]] = {}
# One lock per user around "count the user's jobs, then submit": 20 spawns at once must not all
# count the same jobs before any of them has submitted.
_SUBMIT_LOCKS: dict[str, asyncio.Lock] = {}
# Cancellations of interrupted spawns' jobs still running (asyncio keeps only weak references to tasks).
_ABANDONING: set[asyncio.Future[None]] = set()


def _beside(cleanup: Coroutine[Any, Any, None]) -> None:
    """Run the clean-up of an interrupted spawn on its own (kept referenced until it ends): the
    interruption ends the spawn at once."""
    task = asyncio.ensure_future(cleanup)
    _ABANDONING.add(task)
    task.add_done_callback(_ABANDONING.discard)


def shared(
    registry_url: str, query: JobQuery, key: str, interval: float, password_file: str = ""
) -> tuple[Registry, JobPoller]:
    if (registry_url, key) not in _SHARED:
        registry = ResilientRegistry(open_registry(registry_url, password_file))
        _SHARED[registry_url, key] = (registry, JobPoller(query, registry, interval))
    return _SHARED[registry_url, key]


# Why each user's desktops last ended, for the hub's "not running" page. JupyterHub drops a spawner
# object once its server has stopped, so the message cannot live on the spawner.
_EXIT_MESSAGES: dict[str, dict[str, str]] = {}


def exit_messages(user: Any) -> dict[str, str]:
    """Template variable for JupyterHub: ``{server_name: why it ended}`` for the viewing user.

    ``c.JupyterHub.template_vars = {"jupyter_vnc_exits": jupyter_vnc.spawner.exit_messages}``
    """
    name = getattr(user, "name", None)
    return dict(_EXIT_MESSAGES.get(name, {})) if name else {}


class VNCSlurmSpawner(DesktopSpawnerBase):
    def __init__(self, **kwargs: Any) -> None:
        self._port_reported = asyncio.Event()  # before the traits: config may set the port
        super().__init__(**kwargs)
        self.request: options.DesktopRequest | None = None
        self.node = ""
        self.started: float | None = None
        self.ends_at: float | None = None
        self.exit_message = ""
        self._events: list[dict[str, Any]] = []
        self._new_event = asyncio.Event()
        # Set when the shared status query cannot see this job (PrivateData=jobs and a hub account
        # that is not an operator): its state then comes from a query run as the user.
        self._ask_as_user = False
        self._own_answer: tuple[float, JobInfo] | None = None

    # --- the job script --------------------------------------------------------------------------

    def get_req_subvars(self) -> dict[str, Any]:
        """batchspawner's template variables, with the validated request's values.

        The admin's ``req_memory``/``req_runtime``/``req_gres`` are the request's defaults (see
        spawner_traits); when the user kept a default, the admin's own spelling stays in the script
        (``--mem=32000``, ``--gres=gpu:a100:1``); a user's choice changes the number, not the GPU type.
        """
        subvars = super().get_req_subvars()
        request = self.request or self._request_or_default()
        if slurm_syntax.memory_gb(subvars.get("memory", "")) != request.memory_gb:
            subvars["memory"] = f"{request.memory_gb}G"
        if slurm_syntax.hours(subvars.get("runtime", "")) != request.hours:
            subvars["runtime"] = request.walltime
        gres = subvars.get("gres", "")
        if (slurm_syntax.gpus_in_gres(gres) or 0) != request.gpus:
            subvars["gres"] = slurm_syntax.gres_with_gpus(gres, request.gpus)
        if request.partition:
            subvars["partition"] = request.partition
        mail_user = ""
        if request.email and self.email_address:
            try:
                mail_user = options.mail_address(self.email_address, self.user.name)
            except options.OptionsError:
                mail_user = ""  # refused when the request was made; a request kept from before
        subvars.update(
            mail_user=mail_user,
            resolution=request.resolution,
            gpus=request.gpus,
            job_name=f"jupyter-vnc-{self.user.name}"[:64],
            log_dir=self.user_log_dir(subvars.get("homedir", "")),
            image=self.image,
            apptainer=self.apptainer,
            apptainer_args=self._apptainer_argv(),
            settings=self.job_settings(),
            # Apptainer refuses to take HOME from APPTAINERENV_HOME: it sets HOME itself.
            container_env=sorted((set(_CONTAINER_ENV) | set(self.get_env())) - {"HOME"}),
        )
        return subvars

    def _request_or_default(self) -> options.DesktopRequest:
        try:
            return options.validate(self.user_options or {}, self.limits)
        except options.OptionsError:
            return options.validate({}, self.limits)

    def user_log_dir(self, homedir: str) -> str:
        return self.log_dir.format(homedir=homedir, username=self.user.name)

    def _apptainer_argv(self) -> list[str]:
        argv = list(self.apptainer_args)
        if self.nv:
            argv.insert(0, "--nv")
        for bind in self.apptainer_binds:
            argv += ["--bind", bind]
        return argv

    def cmd_formatted_for_batch(self) -> str:
        # Quoted word by word: an argument with a space or a quote must not change the script.
        return shlex.join([self.batchspawner_singleuser_cmd, *self.cmd, *self.get_args()])

    async def _get_batch_script(self, **subvars: Any) -> str:
        return jobscript.render(self.batch_script, **subvars)

    # --- Slurm -----------------------------------------------------------------------------------

    async def run_command(self, cmd: str, input: str | None = None, env: dict[str, str] | None = None) -> str:
        """batchspawner's contract (stdout, or RuntimeError with stderr), with ``slurm_timeout`` and a
        minimal environment: a command run as the user never sees the hub's own secrets."""
        return await run_shell(cmd, input=input, env=env, timeout=self.slurm_timeout)

    def command(self, template: str, **extra: Any) -> str:
        """``exec_prefix`` + ``template``, formatted with batchspawner's variables (and ``extra``),
        each value quoted as one shell word."""
        subvars = {**self.get_req_subvars(), "job_id": self.job_id, **extra}
        return compose(self.exec_prefix, template, subvars)

    def _shared(self) -> tuple[Registry, JobPoller]:
        template = self.batch_query_all_cmd
        query = BatchedQuery(self.run_command, self.query_exec_prefix or "", template, widened(template))
        key = f"{type(self).__qualname__}:{query.command(['{job_ids}'])}"
        return shared(self.registry_url, query, key, self.poll_interval, self.registry_password_file)

    @property
    def registry(self) -> Registry:
        return self._shared()[0]

    @property
    def poller(self) -> JobPoller:
        return self._shared()[1]

    @property
    def _batched(self) -> bool:
        """The shared query answers for this job: turned on by query_exec_prefix, until it proves
        unable to see the job (then the job is asked about as its user)."""
        return self.query_exec_prefix is not None and bool(self.batch_query_all_cmd) and not self._ask_as_user

    async def query(self, max_age: float | None = None) -> JobInfo:
        """The job's state: from the shared poller (one query for every desktop of the hub), or
        asked as the user when the shared query cannot answer for it."""
        max_age = self.startup_poll_interval if max_age is None else max_age
        if not self._batched:
            info = await self.query_as_user(max_age)
        else:
            info = await self.poller.get(self.job_id, max_age)
            if info.phase is Phase.UNKNOWN or (info.phase is Phase.ENDED and not info.state):
                # The shared query failed, or does not list the job: Slurm gone, or a job it may not
                # see. The user always sees their own jobs.
                own = await self.query_as_user(max_age)
                if own.phase.alive and own.phase is not Phase.UNKNOWN and info.phase is Phase.ENDED:
                    self.log.info(
                        "Desktop job %s of %s: the shared status query cannot see it; asking as the user",
                        self.job_id, self.user.name,
                    )  # fmt: skip
                    self._ask_as_user = True
                    self.poller.unwatch(self.job_id)
                if own.phase is not Phase.UNKNOWN:
                    info = own
        # batchspawner's format ("RUNNING node1"), kept in the state for sites and tools that read it.
        self.job_status = (
            f"{info.state} {info.node}".strip() if info.phase is not Phase.UNKNOWN else info.error
        )
        return info

    async def query_as_user(self, max_age: float = 0) -> JobInfo:
        """The job's state from a query run through ``exec_prefix``: ``batch_query_all_cmd`` for
        this one job, or the site's own per-job ``batch_query_cmd`` read with its ``state_*_re``."""
        job_id = self.job_id
        cached = self._own_answer
        if cached and cached[1].job_id == job_id and time.time() - cached[0] <= max_age:
            return cached[1]
        if self.batch_query_all_cmd:
            result = await outcome(self.run_command, self.command(self.batch_query_all_cmd, job_ids=job_id))
            info = parse_squeue(result, [job_id])[job_id]
            if info.phase is Phase.UNKNOWN and result.returncode == 0:
                # Not in squeue's "%i#%T#%N#%r": a site's wrapper (or batchspawner's own test double)
                # answering in batchspawner's "%T %B", read as batchspawner reads it. Only a reading
                # that names a state counts: an answer nobody can read (an ssh banner) proves no end.
                read = self._read_status_line(job_id, result)
                if read.phase is not Phase.ENDED:
                    info = read
        else:
            result = await outcome(self.run_command, self.command(self.batch_query_cmd))
            info = self._read_status_line(job_id, result)
        self._own_answer = (time.time(), info)
        return info

    def _read_status_line(self, job_id: str, result: CommandResult) -> JobInfo:
        return parse_status_line(
            job_id, result, pending_re=self.state_pending_re, running_re=self.state_running_re,
            unknown_re=self.state_unknown_re, exechost_re=self.state_exechost_re,
        )  # fmt: skip

    async def query_job_status(self) -> JobStatus:
        """batchspawner's query, answered by :meth:`query` (one path for every status question)."""
        if not self.job_id:
            self.job_status = ""
            return JobStatus.NOTFOUND
        phase = (await self.query(max_age=0)).phase
        if phase is Phase.QUEUED:
            return JobStatus.PENDING
        if phase in (Phase.RUNNING, Phase.ENDING):
            return JobStatus.RUNNING
        return JobStatus.UNKNOWN if phase is Phase.UNKNOWN else JobStatus.NOTFOUND

    async def cancel(self, job_id: str) -> bool:
        """``batch_cancel_cmd``; True when the job is cancelled or already gone."""
        result = await outcome(self.run_command, self.command(self.batch_cancel_cmd, job_id=job_id))
        if result.returncode and "Invalid job id specified" not in result.stderr:
            self.log.error(
                "Cancelling desktop job %s of %s failed: %s", job_id, self.user.name, result.stderr
            )
            return False
        return True

    def _event(self, message: str, progress: int) -> None:
        self.log.info("Desktop %s for %s: %s", self.job_id or "-", self.user.name, message)
        self._events.append({"progress": progress, "message": message})
        self._new_event.set()

    async def progress(self) -> AsyncIterator[dict[str, Any]]:
        """What Slurm says while the user waits: submitted, pending (and why), running on a node..."""
        sent = 0
        while True:
            while sent < len(self._events):
                yield self._events[sent]
                sent += 1
            # Until the spawn's last word (up, or why not): the job may report its port before the
            # hub has seen it running, and the user is still told where it runs.
            if self._events and self._events[-1]["progress"] >= 100:
                return
            self._new_event.clear()
            try:
                await asyncio.wait_for(self._new_event.wait(), 1)
            except asyncio.TimeoutError:
                continue

    async def start(self) -> tuple[str, int]:
        self.request = self.validated_request()
        self._events.clear()
        self.exit_message = ""
        _EXIT_MESSAGES.get(self.user.name, {}).pop(self.name, None)
        self.ip = self.traits()["ip"].default_value
        self.port = 0
        if self.server:
            self.server.port = self.port
        subvars = self.get_req_subvars()
        subvars["cmd"] = self.cmd_formatted_for_batch()
        script = await self._get_batch_script(**subvars)
        self._ask_as_user, self._own_answer = False, None
        async with _SUBMIT_LOCKS.setdefault(self.user.name, asyncio.Lock()):
            await self._check_job_limit(subvars["job_name"])
            try:
                # sbatch only: a site's sudo rule for the hub allows Slurm's commands and nothing else
                # (no mkdir: the job makes its own log directory, see job.sh.j2).
                # 2>&1: what sbatch says besides the id (a submit filter's warning, --test-only's
                # answer) reaches the user when no id comes; parse_job_id takes the id's line.
                submit = asyncio.ensure_future(
                    self.run_command(
                        self.command(self.batch_submit_cmd) + " 2>&1", input=script, env=self.get_env()
                    )
                )
                self.job_id = self.parse_job_id(await asyncio.shield(submit))
            except asyncio.CancelledError:
                # The hub interrupted the spawn (its user stopped it) while sbatch ran. Killed then,
                # sbatch may leave a job Slurm has accepted and nobody knows the id of: it finishes
                # beside, and the job it made is cancelled.
                _beside(self._cancel_submitted(submit))
                raise
            except (RuntimeError, ValueError, IndexError) as e:
                # RuntimeError as batchspawner raises it: JupyterHub shows its text on the spawn page
                # and in the REST API's progress stream.
                raise SpawnFailed(f"Slurm did not accept the desktop job: {e}") from e
        self._event(f"Submitted Slurm job {self.job_id} ({self._describe()})", 10)
        job_id = self.job_id
        try:
            await self._record("queued")
            info = await self._wait_until_running()
            self.node = info.node
            self.ip = self.state_gethost()
            self.started = time.time()
            self.ends_at = self.started + self.request.hours * 3600
            await self._record("running", started=self.started, ends_at=self.ends_at, message="")
            self._event(f"Running on {info.node}; starting the desktop server", 60)
            await self._wait_for_server(info.node)
        except asyncio.CancelledError:
            # The hub interrupts a pending spawn its user stopped, and stops the server one second
            # later if the spawn has ended by then (else the user's stop fails, HTTP 500): the job
            # is cancelled beside the interruption, not before it.
            _beside(self._abandon(job_id))
            raise
        except BaseException:
            # Whatever failed (a Slurm answer, the registry, a bug, the hub giving up), the job this
            # spawn submitted must not outlive it with no hub entry pointing at it.
            await asyncio.shield(self._abandon(job_id))
            raise
        self._event(f"Desktop server is up on {info.node}", 100)
        return self.ip, self.port

    async def _check_job_limit(self, job_name: str) -> None:
        if not self.max_jobs_per_user:
            return
        try:
            # As the user: under PrivateData=jobs the hub's own account may not see their jobs.
            live = (await self.run_command(self.command(self.batch_list_cmd, job_name=job_name))).split()
        except RuntimeError as e:
            # Not knowing is no reason to refuse a desktop; JupyterHub's own limits still hold.
            self.log.warning("Job limit of %s not checked: %s", self.user.name, e)
            return
        if len(live) >= self.max_jobs_per_user:
            raise web.HTTPError(
                429,
                f"You already have {len(live)} desktop job(s) in Slurm ({', '.join(live[:5])}); this site "
                f"allows {self.max_jobs_per_user} per user. Stop one of your desktops first.",
            )

    def _describe(self) -> str:
        r = self.request
        if r is None:
            return ""
        gpus = f"{r.gpus} GPU{'s' if r.gpus != 1 else ''}" if r.gpus else "no GPU"
        return f"{gpus}, {r.memory_gb} GB, {r.hours:g} h, {r.resolution}" + (
            f", {r.partition}" if r.partition else ""
        )

    async def _wait_for_server(self, node: str) -> None:
        """From the job running to its server answering, within job_start_timeout (the queue wait
        came before and does not count)."""

        async def port_then_http() -> None:
            if await self._wait_for_port():
                # batchspawner-singleuser reports the port before the server starts: wait for the
                # server itself, so that one which dies while starting fails the spawn now, not after
                # http_timeout.
                await self._wait_for_http()

        try:
            await asyncio.wait_for(port_then_http(), self.job_start_timeout)
        except asyncio.TimeoutError:
            await self._give_up(
                f"The desktop server of Slurm job {self.job_id} did not answer within "
                f"{self.job_start_timeout:g} s of the job starting on {node}; the job was cancelled."
            )

    async def _give_up(self, message: str) -> None:
        """End a spawn with ``message`` (and the end of the job's log) for the user. Raised inside
        start(), whose clean-up cancels the job if it still lives and forgets it."""
        tail = await self.log_tail()
        if tail:
            message += "\nLast lines of its log:\n" + tail
        elif self.job_id:
            message += f"\nIts log: {self.log_path()} (on the cluster)."
        self._record_exit(message)
        self._event(message, 100)
        raise SpawnFailed(message)

    async def _wait_until_running(self) -> JobInfo:
        last = ""
        hours = self.request.queue_hours if self.request else 0.0
        deadline = time.monotonic() + hours * 3600 if hours else None
        gives_up = ""
        if deadline is not None:  # a wall-clock time the user can read on the page
            at = time.localtime(time.time() + deadline - time.monotonic())
            gives_up = f" (gives up at {time.strftime('%H:%M', at)} if still queued)"
        while True:
            info = await self.query()
            if info.phase in (Phase.RUNNING, Phase.ENDING) and info.node:
                return info
            hopeless = never_starts(info.reason) if info.phase is Phase.QUEUED else ""
            if hopeless:
                await self._give_up(
                    f"Slurm job {self.job_id} can never start as asked: {hopeless}; the job was cancelled."
                    " Ask for less (GPUs, memory, hours) or another partition."
                )
            if deadline is not None and time.monotonic() >= deadline and info.phase is Phase.QUEUED:
                await self._give_up(
                    f"Gave up: Slurm job {self.job_id} was still waiting in the queue after "
                    f"{_duration(hours * 3600)}"
                    + (f" ({explain_reason(info.reason)})" if info.reason else "")
                    + ", the longest wait asked for; the job was cancelled. Ask for less (GPUs, memory,"
                    " hours) or another partition, or allow a longer wait."
                )
            ended = await self._slurm_says_ended(info)
            if ended:
                await self._fail(ended, "before it started")
            if info.phase is Phase.ENDED:
                info = await self.query()  # the confirmation refreshed it
            if info.phase is Phase.QUEUED:
                message = "Waiting in the Slurm queue" + (
                    f": {explain_reason(info.reason)}" if info.reason else ""
                )
                message += gives_up
                progress = 20
            elif info.phase is Phase.UNKNOWN:
                message = f"Slurm is not answering ({info.error}); still waiting"
                progress = 20
            else:
                message, progress = f"Job is {info.state.lower()}", 40
            if message != last:
                self._event(message, progress)
                last = message
                if info.phase is Phase.QUEUED:
                    # The admins' view (sessions, the Desktops page) shows why it waits.
                    await self._record("queued", message=message)
            await asyncio.sleep(self.startup_poll_interval)

    async def _wait_for_port(self) -> bool:
        """Until the job has reported its port; False when the port is batchspawner's ``mock_port``:
        its start() takes that attribute for the job's report (its test suite, which sites run
        against subclasses, stands in for the job that way) and no server stands behind it."""
        next_check = time.monotonic() + 2
        while self.port == 0:
            mock_port = getattr(self, "mock_port", 0)
            if mock_port:
                self.port = mock_port
                return False
            # Woken the moment the hub's batchspawner API sets the port (_on_port), not at the next
            # tick of a poll.
            self._port_reported.clear()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._port_reported.wait(), min(self.startup_poll_interval, 0.25))
            if self.port == 0 and time.monotonic() >= next_check:
                next_check = time.monotonic() + 2
                ended = await self._slurm_says_ended()
                if ended:
                    await self._fail(ended, "before the desktop server answered")
        return True

    @observe("port")
    def _on_port(self, change: dict[str, Any]) -> None:
        if change["new"]:
            self._port_reported.set()

    async def _wait_for_http(self) -> None:
        if self.internal_ssl or self.server is None:
            return  # JupyterHub's own wait (with its certificates) is all there is
        url = f"http://{self.ip}:{self.port}{self.server.base_url}api"
        client = AsyncHTTPClient()
        deadline = time.monotonic() + self.http_timeout
        next_check = time.monotonic() + 1
        while time.monotonic() < deadline:
            try:
                response = await client.fetch(
                    url, raise_error=False, request_timeout=2, follow_redirects=False
                )
                if response.code != 599:  # any HTTP answer: the server is up
                    return
            except socket.gaierror as e:
                # The node's name (or state_exechost_exp's address) means nothing here: no wait helps.
                await self._give_up(
                    f"The hub cannot resolve {self.ip!r}, the address of node {self.node} of Slurm job "
                    f"{self.job_id} ({e.strerror}); the job was cancelled. Tell your site's admins: the hub "
                    "must reach the nodes by name (DNS, /etc/hosts) or c.VNCSlurmSpawner.state_exechost_exp."
                )
            except OSError:
                pass  # connection refused: not listening yet
            # The job reports its port just before its server binds it; a refused connection costs
            # the node nothing, and each 50 ms here is 50 ms more the user waits.
            await asyncio.sleep(0.05)
            if time.monotonic() >= next_check:
                next_check = time.monotonic() + 1
                ended = await self._slurm_says_ended()
                if ended:
                    await self._fail(ended, "before the desktop server answered")

    async def _cancel_submitted(self, submit: asyncio.Future[str]) -> None:
        """Cancel the job of a submission whose spawn was stopped meanwhile, once sbatch has answered."""
        try:
            job_id = self.parse_job_id(await submit)
        except (RuntimeError, ValueError):
            return  # Slurm took no job
        self.log.info("Desktop job %s of %s: its spawn was stopped while sbatch ran; cancelling it",
                      job_id, self.user.name)  # fmt: skip
        await self._abandon(job_id)

    async def _abandon(self, job_id: str) -> None:
        """Cancel a job whose spawn failed (nothing if it has ended) and forget it."""
        await self.cancel(job_id)
        self.poller.unwatch(job_id)
        if self.job_id == job_id:
            await self._forget()
            self.clear_state()

    async def _slurm_says_ended(self, info: JobInfo | None = None) -> JobInfo | None:
        """The job's end, confirmed by Slurm itself, or None while it lives. Forgetting a server or
        failing a spawn cannot be undone, so a shared answer (which another process wrote to the
        registry) is never enough on its own."""
        info = info or await self.query()
        if info.phase is not Phase.ENDED:
            return None
        if not self._batched:
            return info  # the user's own query: Slurm's own answer
        confirmed = await self.poller.confirm(self.job_id)
        if confirmed.phase is Phase.ENDED and not confirmed.state:
            confirmed = await self.query_as_user()  # the hub's query may not see the job: ask its user
        if confirmed.phase is not Phase.ENDED:
            self.log.warning(
                "Desktop job %s of %s: the shared state said %s, Slurm says %s; trusting Slurm",
                self.job_id, self.user.name, info.state or "gone", confirmed.state or confirmed.phase.value,
            )  # fmt: skip
            return None
        return confirmed

    async def _fail(self, info: JobInfo, when: str) -> None:
        await self._give_up(f"Slurm job {self.job_id} {explain_end(info)} {when}.")

    async def _record(self, state: str, **changes: Any) -> None:
        """Update this desktop's entry in the registry (never fails: see ResilientRegistry)."""
        request = self.request or self._request_or_default()  # after a hub restart: the kept options
        session = await self._registry_get() or Session(
            user=self.user.name, server=self.name, job_id=self.job_id, state=state, gpus=request.gpus,
            memory_gb=request.memory_gb, resolution=request.resolution, partition=request.partition,
        )  # fmt: skip
        session.state, session.job_id, session.node = state, self.job_id, self.node
        for key, value in changes.items():
            setattr(session, key, value)
        await self.registry.put(session)

    async def _keep_registered(self, info: JobInfo) -> None:
        """Put a running desktop back into a registry that lost it (Redis restarted empty, flushed,
        its entry expired): admins list sessions from there. One GET per poll."""
        if info.phase is not Phase.RUNNING or not self.node:
            return
        try:
            found = await self.registry.get(self.user.name, self.name)
        except RegistryUnavailable:
            return  # down: ResilientRegistry replays the writes it missed when it returns
        if found is not None and found.job_id == self.job_id:
            if self.started is None:  # after a hub restart: the times the registry kept
                self.started, self.ends_at = found.started, found.ends_at
            return
        self.log.info("Desktop %s of %s: back into the registry", self.job_id, self.user.name)
        times = {"started": self.started, "ends_at": self.ends_at} if self.started else {}
        await self._record("running", **times)

    async def _registry_get(self) -> Session | None:
        try:
            found = await self.registry.get(self.user.name, self.name)
        except RegistryUnavailable:
            return None
        return found if found and found.job_id == self.job_id else None

    async def _forget(self) -> None:
        if self.job_id:
            self.poller.unwatch(self.job_id)
        await self.registry.delete(self.user.name, self.name)

    def _record_exit(self, message: str) -> None:
        self.exit_message = message
        _EXIT_MESSAGES.setdefault(self.user.name, {})[self.name] = message

    def log_path(self) -> str:
        homedir = self.get_req_subvars().get("homedir", "")
        return f"{self.user_log_dir(homedir)}/jupyter-vnc-{self.job_id}.log"

    async def log_tail(self, lines: int = 15) -> str:
        """The end of the job's log, read as the user with log_tail_cmd (the hub may not read users'
        files itself); "" without that command (the message then names log_path())."""
        if not self.job_id or not self.log_tail_cmd:
            return ""
        result = await outcome(
            self.run_command, self.command(self.log_tail_cmd, lines=lines, log_path=self.log_path())
        )
        return result.stdout.rstrip() if result.returncode == 0 else ""

    def parse_job_id(self, output: str) -> str:
        # batchspawner's raises IndexError on an empty answer, which reached users as "list index out
        # of range". A site's submit filter may print warnings before the id: take the last line.
        lines = [line.strip() for line in (output or "").splitlines() if line.strip()]
        job_id = lines[-1].split(";")[0] if lines else ""
        if not job_id.isdigit():
            said = " / ".join(lines[-3:]) if lines else "nothing"
            raise ValueError(f"sbatch answered without a job id ({said[:300]})")
        return job_id

    async def poll(self) -> int | None:
        if not self.job_id:
            return 1
        # The shared poll's answer of this interval; asked as the user, a fresh answer (as batchspawner).
        info = await self.query(max_age=self.poll_interval if self._batched else 0)
        if info.phase is Phase.UNKNOWN:
            self.log.warning(
                "Desktop job %s of %s: Slurm does not answer (%s); the desktop is kept",
                self.job_id, self.user.name, info.error,
            )  # fmt: skip
        if info.phase.alive:
            await self._keep_registered(info)
            return None  # UNKNOWN counts as alive: a slow controller must not end a session
        ended = await self._slurm_says_ended(info)
        if ended and not ended.state:
            # Slurm no longer lists the job: ask once more before calling it gone.
            await asyncio.sleep(1)
            ended = await self._slurm_says_ended(await self.query(max_age=0))
        if ended is None:
            return None
        # A job that completed may have ended itself because it was idle: its log says so.
        tail = await self.log_tail(40) if ended.state == "COMPLETED" else ""
        self._record_exit(explain_exit(self.job_id, ended, tail))
        self.log.warning("Desktop of %s: %s", self.user.name, self.exit_message)
        await self._forget()
        self.clear_state()
        return 1

    async def stop(self, now: bool = False) -> None:
        if not self.job_id:
            return
        job_id = self.job_id
        self.log.info("Stopping desktop job %s of %s", job_id, self.user.name)
        if self.batch_stop_cmd:
            try:
                # TERM to the batch shell only: its trap stops the server, which stops the desktop.
                await self.run_command(self.command(self.batch_stop_cmd, job_id=job_id))
            except RuntimeError as e:
                self.log.warning("Clean stop of job %s not done (%s); cancelling it", job_id, e)
                await self.cancel(job_id)
        else:
            await self.cancel(job_id)
        if now:  # JupyterHub will not wait: the trap finishes the job on its own
            await self._forget()
            return
        deadline = time.monotonic() + self.stop_timeout
        while time.monotonic() < deadline:
            if await self._slurm_says_ended():
                break
            await asyncio.sleep(0.25)
        else:
            await self.cancel(job_id)  # the clean stop did not finish in time
            for _ in range(40):
                if await self._slurm_says_ended():
                    break
                await asyncio.sleep(0.25)
            else:
                self.log.warning("Desktop job %s of %s did not end after scancel", job_id, self.user.name)
                await self._forget()
                return
        await self._forget()
        self.clear_state()  # gone: a poll after this stop needs no Slurm query

    # --- state -----------------------------------------------------------------------------------

    # batchspawner's state ({job_id, job_status}) and nothing more: tools that read a hub's database
    # and batchspawner's own tests expect exactly that. The node is in job_status ("RUNNING node1");
    # the desktop's start and end times come back from the registry (see _keep_registered).

    def load_state(self, state: dict[str, Any]) -> None:
        super().load_state(state)
        self.node = node_of_status(self.job_status)
        if self.job_id and self._batched:  # after a hub restart: back into the shared poll
            self.poller.watch(self.job_id)

    def clear_state(self) -> None:
        super().clear_state()
        self.node = ""
        self.started = self.ends_at = None


def _duration(seconds: float) -> str:
    """A wait as people say it: "45 s", "20 min", "2.5 h"."""
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.3g} h"
