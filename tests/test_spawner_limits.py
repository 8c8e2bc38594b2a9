"""The site's limits on desktops, through the real hub and Slurm: desktop jobs per user under a burst
and under a churn of spawn and stop requests, and the walltime (Slurm ends the job, the hub says why)."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator

import pytest
from conftest import STATE, HubBed
from hubclient import HubUser, server_path
from test_spawner import _logged_in, hub_log_since, job_processes, squeue

# Its own user: these tests take minutes, and run beside test_spawner's (tests/isolation.py).
pytestmark = pytest.mark.users("liam")


@pytest.fixture
def liam(hub: HubBed) -> Iterator[HubUser]:
    yield from _logged_in(hub, "liam")


class JobCounter:
    """Counts a user's jobs in Slurm every 0.1 s on a thread; ``most`` is the largest count seen."""

    def __init__(self, user: str) -> None:
        import threading

        self.user, self.most, self.samples = user, 0, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            self.most = max(self.most, len(squeue(self.user)))
            self.samples += 1
            self._stop.wait(0.1)

    def stop(self) -> int:
        self._stop.set()
        self._thread.join()
        return self.most


def refusal(answer) -> str:
    """The message of a refused hub API call (JupyterHub answers JSON with a "message")."""
    try:
        return answer.json().get("message", "")
    except ValueError:
        return ""


async def test_a_hundred_spawn_and_stop_requests_in_a_row_stay_within_the_limit(liam: HubUser) -> None:
    """One user fires 100 spawn/stop requests at three named servers as fast as the hub answers.
    Slurm never holds more than the site's 2 jobs of hers, every refusal says why, and afterwards no
    job and no process of hers is left."""
    names = ["churn1", "churn2", "churn3"]
    body = {"gpus": 0, "memory_gb": 1, "hours": 1}
    counter = JobCounter("liam")
    seen: dict[int, str] = {}
    jobs: set[str] = set()
    try:
        # P1 P2 P3 D1 P1 D2 P2 D3 P3 D1 ...: a third desktop is asked for while two are up.
        plan = [("POST", n) for n in names] + [
            (method, names[k % 3]) for k in range(49) for method in ("DELETE", "POST")
        ]
        started = time.monotonic()
        interrupted = 0
        for method, name in plan[:100]:
            answer = liam.api(method, server_path("liam", name), json=body if method == "POST" else None)
            while method == "DELETE" and answer.status_code == 500 and interrupted < 10:
                # JupyterHub's own window: a stop interrupts a pending spawn, waits one second, and
                # answers 500 if the spawn is still winding down then (jupyterhub#2975; a loaded
                # machine's sudo/sbatch takes that long). The user stops again, as here.
                interrupted += 1
                time.sleep(1)
                answer = liam.api(method, server_path("liam", name))
            assert answer.status_code in {201, 202, 204, 400, 429}, (method, answer.status_code, answer.text)
            if answer.status_code >= 400:
                assert refusal(answer), answer.text  # never a bare error
                seen.setdefault(answer.status_code, refusal(answer))
            jobs.update(squeue("liam"))
    finally:
        most = counter.stop()
        for name in names:
            if name in _servers(liam):
                liam.api("DELETE", server_path("liam", name))
        for name in names:
            liam.wait_stopped(name, timeout=120)
    assert counter.samples > 50, "the job count was hardly sampled"
    assert 1 <= most <= 2, f"Slurm held {most} of her jobs at once"
    deadline = time.monotonic() + 60
    while squeue("liam"):
        assert time.monotonic() < deadline, f"jobs left behind: {squeue('liam')}"
        time.sleep(0.5)
    assert not [j for j in jobs if job_processes(j)], "processes of her jobs left behind"
    took = time.monotonic() - started
    print(f"100 requests in {took:.0f} s; {len(jobs)} jobs, most at once: {most}, refusals: {seen},"
          f" stops JupyterHub answered 500 while a spawn wound down: {interrupted}")  # fmt: skip


async def test_a_desktop_at_its_walltime_is_ended_and_the_user_told_why(liam: HubUser) -> None:
    """Slurm ends the job at its time limit (shortened here with scontrol, as an admin can): the hub
    notices within a poll and tells her it reached its time limit, in words and with Slurm's."""
    liam.api("POST", "/users/liam/server", json={"gpus": 0, "memory_gb": 1, "hours": 1})
    liam.wait_ready(timeout=150)
    (job_id,) = squeue("liam")
    log_start = (STATE / "logs" / "jupyterhub.log").stat().st_size
    subprocess.run(["scontrol", "update", f"JobId={job_id}", "TimeLimit=1"], check=True)
    liam.wait_stopped(timeout=180)  # Slurm checks limits every ~30 s; the hub polls every 10 s
    assert f"Your desktop's Slurm job {job_id} reached its time limit (TIMEOUT" in hub_log_since(log_start)
    page = liam.http.get(f"{liam.url}/hub/user/liam/")  # the hub's "not running" page
    assert f"Slurm job {job_id} reached its time limit (TIMEOUT" in page.text, page.text[-2000:]


# The quickest test last: pytest-xdist hands a worker its next group of modules as that worker's last
# test starts, and a long last test would keep that group waiting behind it (tests/conftest.py).


async def test_a_user_cannot_put_more_jobs_into_slurm_than_the_site_allows(liam: HubUser) -> None:
    """Twenty named servers at once: JupyterHub's own limit (3 named servers) refuses 17, ours (2 desktop
    jobs per user) the third; each refused request says why, and Slurm never holds more than 2 jobs."""
    from concurrent.futures import ThreadPoolExecutor

    names = [f"lim{i}" for i in range(20)]
    log_start = (STATE / "logs" / "jupyterhub.log").stat().st_size
    counter = JobCounter("liam")
    with ThreadPoolExecutor(len(names)) as pool:
        body = {"gpus": 0, "memory_gb": 1, "hours": 1}
        answers = list(pool.map(lambda n: liam.api("POST", server_path("liam", n), json=body), names))
    ours = "this site allows 2 per user. Stop one of your desktops first."
    theirs = [a for a in answers if a.status_code == 400]
    assert len(theirs) == 17, answers
    assert all("maximum of 3 named servers" in refusal(a) for a in theirs), theirs[0].text
    # Of the three JupyterHub let through, ours refuses one: at once (429) or, if the hub has already
    # answered 202 by then, on its progress page and in the log.
    accepted = [n for n, a in zip(names, answers, strict=True) if a.status_code in {201, 202}]
    mine = [a for a in answers if a.status_code == 429]
    assert len(accepted) + len(mine) == 3 and all(ours in refusal(a) for a in mine), answers
    deadline = time.monotonic() + 120
    while (not mine and ours not in hub_log_since(log_start)) or counter.most < 2:
        assert time.monotonic() < deadline, f"no refusal or fewer than 2 jobs (max seen {counter.most})"
        time.sleep(0.2)
    running = [n for n in accepted if n in _servers(liam)]
    assert len(running) == 2
    for name in running:
        liam.wait_ready(name, timeout=150)
    assert counter.stop() == 2
    assert len(squeue("liam")) == 2


def _servers(user: HubUser) -> dict:
    return user.api("GET", f"/users/{user.name}").json()["servers"]
