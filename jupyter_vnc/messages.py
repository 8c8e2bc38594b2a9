"""What a desktop user is told about their Slurm job: why it waits, how it ended, in words.

Slurm's own word always follows in parentheses, so a user can quote it to their site's support.
"""

from __future__ import annotations

import re

from .slurm import JobInfo


class SpawnFailed(RuntimeError):
    """A spawn that ends with ``message`` for the user: a RuntimeError, as batchspawner raises (its
    tests and sites' code catch that), whose text JupyterHub also puts in the REST API's HTTP 500 reply
    (``jupyterhub_message``), not only in the progress stream."""

    @property
    def jupyterhub_message(self) -> str:
        return str(self)


# What the server logs when it ends an idle desktop (idle.SHUTDOWN_LINE); read from the job's log.
_IDLE_LINE = re.compile(r"jupyter-vnc: idle shutdown: no keyboard or mouse input for ([0-9.]+) minutes")

# Slurm's pending reasons a desktop user most often meets, in words; any other reason is shown as is.
PENDING_REASONS = {
    "Priority": "other jobs are ahead of yours (Priority)",
    "Resources": "waiting for a node with the GPUs and memory you asked for to free up (Resources)",
    "QOSMaxGRESPerUser": "you already use as many GPUs as your QOS allows (QOSMaxGRESPerUser)",
    "QOSMaxJobsPerUserLimit": "you already run as many jobs as your QOS allows (QOSMaxJobsPerUserLimit)",
    "ReqNodeNotAvail": "the nodes you need are unavailable, e.g. reserved for maintenance (ReqNodeNotAvail)",
    "PartitionDown": "the partition is down (PartitionDown)",
    "BeginTime": "the job's start time has not come yet (BeginTime)",
}

# Reasons Slurm gives for a job that can never start as it was asked for (a limit on the job itself,
# not a wait for resources): the spawn fails at once with the reason, instead of queueing until the
# queue limit. A site may lift a limit later, but the user is better served asking for less now.
# Not PartitionConfig: Slurm gives it to a job before its first scheduling pass (seen on the test bed,
# then PartitionTimeLimit).
NEVER_STARTS = {
    "PartitionTimeLimit": "you asked for more hours than the partition allows (PartitionTimeLimit)",
    "PartitionNodeLimit": "you asked for more nodes than the partition allows (PartitionNodeLimit)",
    "BadConstraints": "no node of the partition has what you asked for (BadConstraints)",
    "InvalidAccount": "the Slurm account is not valid for you (InvalidAccount)",
    "InvalidQOS": "the QOS is not valid for you (InvalidQOS)",
    "QOSMaxWallDurationPerJobLimit": (
        "you asked for more hours than your QOS allows (QOSMaxWallDurationPerJobLimit)"
    ),
    "AssocMaxWallDurationPerJobLimit": (
        "you asked for more hours than your account allows (AssocMaxWallDurationPerJobLimit)"
    ),
    "QOSMaxGRESPerJob": "you asked for more GPUs than your QOS allows in one job (QOSMaxGRESPerJob)",
    "QOSMaxMemoryPerJob": "you asked for more memory than your QOS allows in one job (QOSMaxMemoryPerJob)",
    "QOSMaxCpuPerJobLimit": "you asked for more CPUs than your QOS allows in one job (QOSMaxCpuPerJobLimit)",
    "AssocMaxCpuPerJobLimit": "you asked for more CPUs than your account allows (AssocMaxCpuPerJobLimit)",
    "DependencyNeverSatisfied": "it depends on a job that failed (DependencyNeverSatisfied)",
}


def never_starts(reason: str) -> str:
    """The words for a pending reason under which the job can never start, or ""."""
    return NEVER_STARTS.get(reason.split(",")[0].strip(), "")


# How a Slurm job ended, in words a desktop user understands; Slurm's own word follows in parentheses.
END_STATES = {
    "TIMEOUT": "reached its time limit",
    "NODE_FAIL": "ended because its node failed",
    "CANCELLED": "was cancelled",
    "FAILED": "failed",
    "COMPLETED": "ended",
    "OUT_OF_MEMORY": "ran out of memory",
    "PREEMPTED": "was preempted by a job with a higher priority",
    "BOOT_FAIL": "could not start, its node failed to boot",
    "DEADLINE": "reached its deadline",
}


def explain_end(info: JobInfo) -> str:
    """``"reached its time limit (TIMEOUT, TimeLimit)"``; ``"ended"`` when Slurm no longer knows the job."""
    if not info.state:
        return "ended"
    words = END_STATES.get(info.state, info.state.lower())
    return f"{words} ({', '.join(filter(None, (info.state, info.reason)))})"


def explain_reason(reason: str) -> str:
    return PENDING_REASONS.get(reason.split(",")[0].strip(), reason)


def explain_exit(job_id: str, info: JobInfo, log_tail: str = "") -> str:
    """The hub page's line for a desktop whose job ended; the idle shutdown says so in words."""
    ended = f"Slurm job {job_id} {explain_end(info)}"
    idle = _IDLE_LINE.findall(log_tail)
    if idle:
        idle_for = f"it was idle for {idle[-1]} minutes (no keyboard or mouse input)"
        return f"Your desktop ended because {idle_for}; {ended}."
    return f"Your desktop's {ended}."
