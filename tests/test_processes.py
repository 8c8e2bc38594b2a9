"""Finding and ending a desktop's processes (jupyter_vnc/processes.py), on real processes and /proc."""

from __future__ import annotations

import os
import subprocess
import time
import uuid

from jupyter_vnc import processes


def _sleeper(env: dict[str, str], *, own_session: bool) -> subprocess.Popen[bytes]:
    return subprocess.Popen(["sleep", "60"], env=env, start_new_session=own_session)


async def test_a_marked_program_in_the_servers_session_does_not_take_the_session_along() -> None:
    """The restart that ended a user's whole Slurm job: a status request's xdpyinfo (marked, in the
    server's session, which is the job's) was running when the desktop's processes were looked for,
    so everything in the job's session counted as the desktop's, the batch shell included. Now only
    the desktop's own sessions do; the marked program itself still ends."""
    marker = uuid.uuid4().hex
    marked = {**os.environ, processes.MARKER_VAR: marker}
    plain = {k: v for k, v in os.environ.items() if k != processes.MARKER_VAR}
    probe = _sleeper(marked, own_session=False)  # a probe started in our (the server's) session
    batch_shell = _sleeper(plain, own_session=False)  # stands for the job's batch shell beside us
    session = _sleeper(marked, own_session=True)  # the desktop: a session of its own
    try:
        time.sleep(0.3)
        found = processes.marked_pids(marker)
        assert {probe.pid, session.pid} <= found, found
        assert batch_shell.pid not in found and os.getpid() not in found
        await processes.terminate_marked(marker, first={session.pid}, grace=2)
        for proc in (probe, session):
            assert proc.wait(timeout=5) is not None
        assert batch_shell.poll() is None, "a process of the server's own session was ended"
    finally:
        for proc in (probe, batch_shell, session):
            proc.kill()
            proc.wait()
