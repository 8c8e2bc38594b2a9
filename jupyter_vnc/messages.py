"""What a desktop user is told about their Slurm job: why it waits, how it ended, in words.

Slurm's own word always follows in parentheses, so a user can quote it to their site's support.
"""

from __future__ import annotations

from .slurm import JobInfo

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
