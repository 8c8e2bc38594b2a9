"""Slurm commands as a batchspawner site writes them: ``exec_prefix`` + a command template.

A site that runs plain ``SlurmSpawner`` today has ``exec_prefix = "ssh login1 sudo -u {username}"``
or ``batch_submit_cmd = "/opt/site/sbatch-wrapper --parsable"`` in its configuration. Every command
the spawner runs is built here from those traits, formatted with batchspawner's substitution
variables, and run through the spawner's ``run_command`` (batchspawner's contract: stdout back,
``RuntimeError(stderr)`` on failure), so a site's wrappers and upstream's test doubles see them.

What batchspawner does not have: one query for many jobs (``batch_query_all_cmd``, run once per poll
for every desktop of the hub through ``query_exec_prefix``), a clean stop (``batch_stop_cmd``), and
the count of a user's live desktop jobs (``batch_list_cmd``).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import shlex
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

from batchspawner.batchspawner import format_template

from .slurm import BASE_ENV, SQUEUE_FORMAT, CommandResult, JobInfo, Phase, parse_squeue, phase_of

QUERY_ALL = f"squeue -h -t all -j {{job_ids}} -o '{SQUEUE_FORMAT}'"
# Past WIDE_FROM watched jobs the query drops its id list (widened): every job Slurm knows, the watched
# ones picked out by parse_squeue. squeue filters a -j list at a cost of (jobs on the cluster x ids
# listed) - 0.30 s of CPU for 5,000 ids among 5,000 jobs, 0.02 s for the whole list
# (benchmarks/poll_scaling.py's hub) - and Linux takes no command-line word over 128 KiB (about 14,500
# eight-digit ids): one query at any number of desktops.
WIDE_FROM = 500
_ID_LIST = " -j {job_ids}"


def widened(template: str) -> str:
    """The query for many jobs: an squeue template without its ``-j {job_ids}`` (this default's, or a
    site's that only puts squeue elsewhere: a path, an ssh prefix); "" for any other command, which is
    the site's own to answer."""
    if "squeue" in template and template.count(_ID_LIST) == 1 and template.count("{job_ids}") == 1:
        return template.replace(_ID_LIST, "")
    return ""


STOP = "scancel --batch --signal=TERM {job_id}"
LIST = "squeue -h -u {username} --name {job_name} -t PD,CF,R,S,CG -o %i"


RunCommand = Callable[..., Awaitable[str]]


def quoted(subvars: Mapping[str, Any]) -> dict[str, Any]:
    """Substitution variables fit for a shell command line: each string or number is one word."""
    return {
        k: shlex.quote(str(v)) if isinstance(v, str | int | float) and not isinstance(v, bool) else v
        for k, v in subvars.items()
    }


def compose(prefix: str, template: str, subvars: Mapping[str, Any]) -> str:
    """``prefix`` and ``template`` formatted as batchspawner does (``{var}`` or Jinja2), joined."""
    words = quoted(subvars)
    return " ".join(filter(None, (format_template(prefix, **words), format_template(template, **words))))


async def run_shell(
    cmd: str, input: str | None = None, env: Mapping[str, str] | None = None, timeout: float = 30.0
) -> str:
    """batchspawner's ``run_command`` contract, with a time limit and a minimal environment.

    Returns stdout (stripped); raises ``RuntimeError(stderr)`` when the command fails or does not
    finish within ``timeout`` seconds (it is killed then)."""
    full_env = {k: os.environ[k] for k in BASE_ENV if k in os.environ} | dict(env or {})
    proc = await asyncio.create_subprocess_shell(
        cmd,
        stdin=asyncio.subprocess.PIPE if input is not None else asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=full_env,
        start_new_session=True,  # a timeout kills the whole command (ssh, sudo and their children)
    )
    try:
        out, err = await asyncio.wait_for(
            proc.communicate(input.encode() if input is not None else None), timeout
        )
    except (asyncio.TimeoutError, asyncio.CancelledError) as e:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, 9)
        await proc.wait()
        if isinstance(e, asyncio.CancelledError):
            raise
        raise RuntimeError(
            f"{shlex.split(cmd)[0] if cmd.strip() else cmd} did not answer within {timeout:g}s"
        ) from e
    if proc.returncode:
        # stdout when stderr is empty: a command run with 2>&1 said it there.
        message = (
            err.decode(errors="replace").strip()
            or out.decode(errors="replace").strip()
            or f"exit status {proc.returncode}"
        )
        raise RuntimeError(message)
    return out.decode(errors="replace").strip()


async def outcome(run_command: RunCommand, cmd: str, **kwargs: Any) -> CommandResult:
    """Run a command through a ``run_command`` and keep its failure as data (never raises)."""
    try:
        return CommandResult(0, await run_command(cmd, **kwargs), "")
    except RuntimeError as e:
        return CommandResult(1, "", str(e.args[0]) if e.args else "failed")
    except OSError as e:
        return CommandResult(127, "", f"cannot run {cmd.split(' ', 1)[0]}: {e}")


class BatchedQuery:
    """One query for many jobs (the shared poller's), through a prefix and a command template; with
    ``wide`` (a template without {job_ids}), that one for more than WIDE_FROM jobs."""

    def __init__(self, run_command: RunCommand, prefix: str, template: str, wide: str = "") -> None:
        self.run_command, self.prefix, self.template, self.wide = run_command, prefix, template, wide

    def command(self, job_ids: Sequence[str]) -> str:
        ids = ",".join(job_ids)
        template = self.wide if self.wide and len(job_ids) > WIDE_FROM else self.template
        return compose(self.prefix, template, {"job_ids": ids, "job_id": ids})

    async def query(self, job_ids: Sequence[str]) -> dict[str, JobInfo]:
        ids = list(dict.fromkeys(str(j) for j in job_ids))
        if not ids:
            return {}
        return parse_squeue(await outcome(self.run_command, self.command(ids)), ids)


def parse_status_line(
    job_id: str,
    result: CommandResult,
    *,
    pending_re: str,
    running_re: str,
    unknown_re: str,
    exechost_re: str,
) -> JobInfo:
    """A site's own per-job ``batch_query_cmd`` answer, read with its ``state_*_re`` traits as
    batchspawner reads it. One difference on purpose: a command that failed is UNKNOWN (batchspawner:
    "not found", which ends the server); only an answer of a command that ran, naming no live state,
    is ENDED."""
    text = (result.stdout if result.returncode == 0 else result.stderr).strip()
    host = re.search(exechost_re, text) if text else None
    node = host.group(1) if host else ""
    word = text.split()[0] if text else ""
    if re.search(running_re, text) if text else False:
        return JobInfo(job_id, Phase.RUNNING, state=word, nodes=node)
    if re.search(pending_re, text) if text else False:
        return JobInfo(job_id, Phase.QUEUED, state=word)
    if result.returncode != 0 or (text and re.search(unknown_re, text)):
        if "Invalid job id specified" in text:
            return JobInfo(job_id, Phase.ENDED)
        return JobInfo(job_id, Phase.UNKNOWN, error=text or "the status query failed")
    if not word:
        return JobInfo(job_id, Phase.ENDED)  # the query ran and Slurm lists no such job
    phase = phase_of(word)
    if phase is Phase.UNKNOWN:
        # The command ran and its answer matches none of the site's patterns: for batchspawner that is
        # "not found", and the site's state_unknown_re is where it says otherwise.
        return JobInfo(job_id, Phase.ENDED)
    return JobInfo(job_id, phase, state=word, nodes=node if phase is Phase.RUNNING else "")
