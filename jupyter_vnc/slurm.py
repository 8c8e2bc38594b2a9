"""The Slurm command layer: submit, query and cancel jobs with the real Slurm client commands.

Everything that talks to Slurm goes through here, so the rules that batchspawner gets wrong live in
one place:

- one ``squeue`` call answers for any number of jobs (batchspawner runs one per user per poll);
- a failed or timed-out query is ``UNKNOWN``, never "finished" (batchspawner #315, #171);
- a job Slurm no longer lists is ``ENDED`` with an empty state, distinguishable from a failed query.

Parsing is kept in pure functions (:func:`parse_squeue`, :func:`first_host`) so it can be tested on
real captured output without a cluster.
"""

from __future__ import annotations

import asyncio
import enum
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

# One line per job, fields split by "#", which never appears in ids, states or node lists; the reason
# goes last and may contain anything. Not "|": the format must survive one more shell unquoted (a
# site's ``ssh login1`` prefix hands the command to the login node's shell as one string).
SEP = "#"
SQUEUE_FORMAT = SEP.join(("%i", "%T", "%N", "%r"))

_QUEUED = {"PENDING", "CONFIGURING", "REQUEUED", "REQUEUE_HOLD", "REQUEUE_FED", "RESV_DEL_HOLD"}
_RUNNING = {"RUNNING", "SUSPENDED", "RESIZING", "SIGNALING", "STAGE_OUT", "STOPPED"}
_ENDING = {"COMPLETING"}
_ENDED = {
    "COMPLETED", "CANCELLED", "FAILED", "TIMEOUT", "NODE_FAIL", "PREEMPTED", "BOOT_FAIL", "DEADLINE",
    "OUT_OF_MEMORY", "SPECIAL_EXIT", "REVOKED",
}  # fmt: skip

# squeue's answer for an id it has forgotten (older than MinJobAge) when no requested id is known.
_INVALID_ID = "Invalid job id specified"


class Phase(enum.Enum):
    """Where a job is in its life, as far as a spawner cares."""

    QUEUED = "queued"
    RUNNING = "running"
    ENDING = "ending"
    ENDED = "ended"
    UNKNOWN = "unknown"  # the question could not be answered: treat the job as still alive

    @property
    def alive(self) -> bool:
        """True unless Slurm said the job is over. UNKNOWN counts as alive on purpose."""
        return self is not Phase.ENDED


@dataclass(frozen=True)
class JobInfo:
    """What Slurm said about one job at one moment."""

    job_id: str
    phase: Phase
    state: str = ""  # Slurm's own word (PENDING, TIMEOUT, ...); "" when Slurm no longer lists the job
    nodes: str = ""  # Slurm's node list expression, e.g. "node[1-2]"; "" while pending
    reason: str = ""  # pending or end reason ("Priority", "Resources", ...); "" for Slurm's "None"
    error: str = ""  # why the phase is UNKNOWN

    @property
    def node(self) -> str:
        """The first node of the job (where its batch script, hence the server, runs)."""
        return first_host(self.nodes)


class SlurmError(RuntimeError):
    """A Slurm command failed; the message says which and what Slurm printed."""


@dataclass(frozen=True)
class CommandResult:
    returncode: int
    stdout: str
    stderr: str


def phase_of(state: str) -> Phase:
    """Map a Slurm job state (as printed by ``squeue %T``) to a :class:`Phase`."""
    state = state.strip().upper()
    if state in _QUEUED:
        return Phase.QUEUED
    if state in _RUNNING:
        return Phase.RUNNING
    if state in _ENDING:
        return Phase.ENDING
    if state in _ENDED:
        return Phase.ENDED
    return Phase.UNKNOWN


def first_host(nodes: str) -> str:
    """First host of a Slurm host list: ``"gpu[03-05,9],cpu1"`` → ``"gpu03"``; ``""`` → ``""``."""
    nodes = nodes.strip()
    if not nodes or nodes in {"n/a", "(null)"}:
        return ""
    m = re.match(r"([^,\[]*)(?:\[([^\]]*)\])?", nodes)
    if not m:
        return nodes
    prefix, ranges = m.group(1), m.group(2)
    if ranges is None:
        return prefix
    first = ranges.split(",", 1)[0].split("-", 1)[0]
    return prefix + first


def node_of_status(job_status: str) -> str:
    """The node in batchspawner's job_status ("RUNNING node1", "RUNNING gpu[01-02]"), or ""."""
    words = job_status.split()
    alive = len(words) == 2 and words[0] in ("RUNNING", "COMPLETING")
    return first_host(words[1]) if alive else ""


def parse_squeue(result: CommandResult, job_ids: Sequence[str]) -> dict[str, JobInfo]:
    """Turn one ``squeue -h -t all -j IDS -o SQUEUE_FORMAT`` run into a JobInfo per requested id.

    - listed job → its phase, node and reason;
    - job not listed while squeue succeeded → ENDED ("" state): Slurm has forgotten it;
    - "Invalid job id specified" → every requested id is forgotten, hence ENDED;
    - any other failure, or a line not in our format (a site's wrapper, an ssh banner) → UNKNOWN for
      every id, with the reason.
    """
    ids = [str(j) for j in job_ids]
    if result.returncode != 0:
        message = (result.stderr or result.stdout).strip() or f"squeue exited with {result.returncode}"
        if _INVALID_ID in message:
            return {j: JobInfo(j, Phase.ENDED) for j in ids}
        return {j: JobInfo(j, Phase.UNKNOWN, error=message) for j in ids}

    seen: dict[str, JobInfo] = {}
    for line in result.stdout.splitlines():
        fields = line.strip().split(SEP, 3)
        if len(fields) != 4:
            if line.strip():  # not squeue's answer in our format: it proves nothing about any job
                return {
                    j: JobInfo(j, Phase.UNKNOWN, error=f"unreadable squeue line {line[:80]!r}") for j in ids
                }
            continue
        job_id, state, nodes, reason = (f.strip() for f in fields)
        seen[job_id] = JobInfo(
            job_id=job_id,
            phase=phase_of(state),
            state=state,
            nodes=nodes,
            reason="" if reason in {"None", "(null)"} else reason,
        )
    return {j: seen.get(j, JobInfo(j, Phase.ENDED)) for j in ids}


def parse_sbatch(stdout: str) -> str:
    """The job id from ``sbatch --parsable`` output (``"123"`` or ``"123;cluster"``)."""
    text = stdout.strip().splitlines()[-1] if stdout.strip() else ""
    job_id = text.split(";", 1)[0].strip()
    if not job_id.isdigit():
        raise SlurmError(f"sbatch printed no job id: {stdout.strip()!r}")
    return job_id


# The only variables of the hub's own environment that Slurm's commands (and ssh to a login node)
# need. Everything else stays out: a command run as the user could otherwise read the hub's secrets
# in /proc/PID/environ.
BASE_ENV = ("PATH", "SLURM_CONF", "LANG", "LC_ALL", "TZ", "SSH_AUTH_SOCK")


class SlurmClient:
    """Runs Slurm's client commands, as a given user when one is named.

    ``user``: submit and cancel as this Unix user through ``sudo -E -n -u USER`` (the hub runs as root
    or as a service account allowed to sudo; Slurm then owns the job as the user). ``prefix``: the
    exact command prefix instead (a site's batchspawner ``exec_prefix``, e.g. ``ssh login1 sudo -u
    alice``). Neither: the commands run as the current user, which is what one shared status query
    wants.
    """

    def __init__(
        self,
        user: str | None = None,
        *,
        prefix: Sequence[str] | None = None,
        timeout: float = 30.0,
        env: Mapping[str, str] | None = None,
    ) -> None:
        self.user = user
        if prefix is None:
            prefix = ("sudo", "-E", "-n", "-u", user, "--") if user else ()
        self.prefix = tuple(prefix)
        self.timeout = timeout
        self.env = dict(env or {})

    def _argv(self, argv: Sequence[str]) -> list[str]:
        return [*self.prefix, *argv]

    async def run(
        self, argv: Sequence[str], *, input: str | None = None, env: Mapping[str, str] | None = None
    ) -> CommandResult:
        """Run one command; a timeout kills it and raises :class:`TimeoutError`.

        The command sees a minimal environment (``BASE_ENV``, ``self.env``, then ``env``).
        """
        base = {k: os.environ[k] for k in BASE_ENV if k in os.environ}
        full_env = {**base, **self.env, **(env or {})}
        proc = await asyncio.create_subprocess_exec(
            *self._argv(argv),
            stdin=asyncio.subprocess.PIPE if input is not None else asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=full_env,
        )
        try:
            out, err = await asyncio.wait_for(
                proc.communicate(input.encode() if input is not None else None), self.timeout
            )
        except (asyncio.TimeoutError, asyncio.CancelledError):
            proc.kill()
            await proc.wait()
            raise
        return CommandResult(proc.returncode or 0, out.decode(errors="replace"), err.decode(errors="replace"))

    async def submit(self, script: str, *, env: Mapping[str, str] | None = None) -> str:
        """Submit a batch script (given as text, fed on stdin) and return the job id.

        ``env`` reaches the job through the process environment, never through the script or argv,
        so secrets such as the hub API token stay out of ``ps`` output and of the script on disk.
        """
        try:
            result = await self.run(["sbatch", "--parsable"], input=script, env=env)
        except asyncio.TimeoutError as e:
            raise SlurmError(f"sbatch did not answer within {self.timeout:g}s") from e
        if result.returncode != 0:
            raise SlurmError(f"sbatch failed (exit {result.returncode}): {result.stderr.strip()}")
        return parse_sbatch(result.stdout)

    async def query(self, job_ids: Iterable[str]) -> dict[str, JobInfo]:
        """State of many jobs with ONE ``squeue`` call. Never raises: failures become UNKNOWN."""
        ids = list(dict.fromkeys(str(j) for j in job_ids))
        if not ids:
            return {}
        argv = ["squeue", "-h", "-t", "all", "-j", ",".join(ids), "-o", SQUEUE_FORMAT]
        try:
            result = await self.run(argv)
        except asyncio.TimeoutError:
            result = CommandResult(-1, "", f"squeue did not answer within {self.timeout:g}s")
        except OSError as e:
            result = CommandResult(-1, "", f"cannot run squeue: {e}")
        return parse_squeue(result, ids)

    async def cancel(self, job_id: str, *, signal: str | None = None, batch_only: bool = False) -> None:
        """Cancel a job, or send ``signal`` to it (``batch_only``: to the batch shell only, so the
        job's own trap can stop its desktop cleanly). Cancelling a job that is already gone is fine.
        """
        argv = ["scancel"]
        if batch_only:
            argv.append("--batch")
        if signal:
            argv += ["--signal", signal]
        argv.append(str(job_id))
        try:
            result = await self.run(argv)
        except asyncio.TimeoutError as e:
            raise SlurmError(f"scancel {job_id} did not answer within {self.timeout:g}s") from e
        if result.returncode != 0 and _INVALID_ID not in result.stderr:
            raise SlurmError(f"scancel {job_id} failed (exit {result.returncode}): {result.stderr.strip()}")
