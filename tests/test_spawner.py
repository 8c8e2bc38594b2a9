"""VNCSlurmSpawner through a real JupyterHub + configurable-http-proxy + Slurm (host mode)."""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import sqlite3
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import SimpleNamespace

import procs
import pytest
from conftest import STATE, HubBed, RedisBed
from hubclient import HubUser, server_path, spawn_watching_progress
from rfbstreams import websocket_stream

from jupyter_vnc.spawner import VNCSlurmSpawner
from testkit.rfb import RFBClient

# Whose servers, jobs and homes these tests use (tests/isolation.py: modules of other users run beside).
pytestmark = pytest.mark.users("alice", "bob", "carol")


def squeue(user: str) -> list[str]:
    out = subprocess.run(["squeue", "-h", "-u", user, "-o", "%i"], capture_output=True, text=True, check=True)
    return out.stdout.split()


def job_detail(job_id: str) -> str:
    return subprocess.run(["scontrol", "show", "job", job_id], capture_output=True, text=True).stdout


def spawner_state(user: str, server: str = "") -> dict:
    """The spawner state the hub keeps in its database (readable by admins only through the API)."""
    db = STATE / "hub" / "jupyterhub.sqlite"
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        row = conn.execute(
            "SELECT spawners.state FROM spawners JOIN users ON spawners.user_id = users.id"
            " WHERE users.name = ? AND spawners.name = ?",
            (user, server),
        ).fetchone()
    return json.loads(row[0]) if row and row[0] else {}


def job_processes(job_id: str) -> list[int]:
    """Live processes started by Slurm job ``job_id`` (they carry SLURM_JOB_ID in their environment),
    desktop daemons included."""
    needle = f"SLURM_JOB_ID={job_id}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        try:
            if (
                entry.name.isdigit()
                and needle in (entry / "environ").read_bytes().split(b"\0")
                and (entry / "stat").read_text().rsplit(")", 1)[-1].split()[0] not in {"Z", "X"}
            ):
                found.append(int(entry.name))
        except OSError:
            continue
    return found


def _logged_in(hub: HubBed, name: str) -> Iterator[HubUser]:
    """A logged-in test user with no server running when the test starts (a run that was killed may
    have left one) and all stopped when it ends."""
    user = HubUser(hub.url, name, hub.password)

    def stop_all() -> None:
        for server in list(user.api("GET", f"/users/{name}").json()["servers"]):
            user.api("DELETE", server_path(name, server))
            user.wait_stopped(server)
        remove_named_servers(user)

    stop_all()
    yield user
    stop_all()


def remove_named_servers(user: HubUser) -> None:
    """Stopped named servers still count against JupyterHub's limit of named servers: remove them."""
    model = user.api("GET", f"/users/{user.name}?include_stopped_servers=1").json()
    for server in model["servers"]:
        if server:
            user.api("DELETE", server_path(user.name, server), json={"remove": True})
            user.wait_stopped(server)


@pytest.fixture
def alice(hub: HubBed) -> Iterator[HubUser]:
    yield from _logged_in(hub, "alice")


@pytest.fixture
def bob(hub: HubBed) -> Iterator[HubUser]:
    yield from _logged_in(hub, "bob")


async def rfb_through_hub(user: HubUser, server: str = "") -> RFBClient:
    """An RFB handshake through the hub's proxy, as the viewer page makes it: the token the page was
    given in the URL (the hub refuses cookie-only websockets), and the cookies a browser would have."""
    prefix = user.server_prefix(server)
    assert user.open_server(server, "lab").status_code == 200  # the OAuth dance, as a browser does
    token = user.viewer_config(server)["token"]
    url = user.server_url(server).replace("http://", "ws://") + f"vnc/websockify?token={token}"
    # Sec-Fetch-Mode as a browser sends it: JupyterHub applies its websocket rules by that header.
    headers = {"Cookie": user.cookie_header(prefix), "Sec-Fetch-Mode": "websocket"}
    stream, _ = await websocket_stream(url, None, headers=headers)
    client = RFBClient(stream)
    await client.handshake()
    return client


async def test_api_spawn_gets_the_job_it_asked_for_and_a_desktop_through_the_hub(
    alice: HubUser, redis_bed: RedisBed
) -> None:
    options = {"gpus": 1, "memory_gb": 2, "hours": 1, "resolution": "1280x720"}
    progress = spawn_watching_progress(alice, options=options)
    alice.wait_ready()
    (job_id,) = squeue("alice")
    detail = job_detail(job_id)
    assert "TimeLimit=01:00:00" in detail and "TresPerNode=gres:gpu:1" in detail and "mem=2G" in detail, (
        detail
    )
    assert "Partition=vnc" in detail and "UserId=alice" in detail
    messages = progress.messages()
    assert any(m.startswith(f"Submitted Slurm job {job_id} (1 GPU, 2 GB, 1 h, 1280x720") for m in messages), (
        messages
    )
    assert any(re.match(r"Running on node\d", m) for m in messages), messages
    client = await rfb_through_hub(alice)
    assert client.init is not None and (client.init.width, client.init.height) == (1280, 720)
    status = alice.server_api("vnc/api/status").json()
    assert status["job_id"] == job_id and 3000 < status["seconds_left"] <= 3600
    assert status["gpus"] == ["GPU 0"] or status["gpus"] == ["GPU 1"]
    # No secret in the job script Slurm keeps, nor in the hub's state of the server.
    script = subprocess.run(
        ["scontrol", "write", "batch_script", job_id, "-"], capture_output=True, text=True
    )
    token_vars = [line for line in script.stdout.splitlines() if "TOKEN=" in line]
    assert script.returncode == 0 and not token_vars
    state = spawner_state("alice")
    assert set(state) <= {"job_id", "job_status", "node", "started", "ends_at"} and state["job_id"] == job_id
    # The hub's API token for this server: in the job's environment, nowhere on disk or in Redis.
    server_pid = next(
        p for p in job_processes(job_id) if any("jupyterhub-singleuser" in part for part in procs.argv(p))
    )
    environ = dict(
        v.split(b"=", 1) for v in Path(f"/proc/{server_pid}/environ").read_bytes().split(b"\0") if b"=" in v
    )
    token = environ[b"JUPYTERHUB_API_TOKEN"]
    assert len(token) >= 16
    for log in (
        STATE / "logs" / "jupyterhub.log",
        Path(f"/home/alice/.jupyter-vnc/logs/jupyter-vnc-{job_id}.log"),
    ):
        assert token not in log.read_bytes(), log
    keys = redis_bed.cli("--scan").split()
    values = "".join(redis_bed.cli("GET", k) for k in keys if "session:" in k).encode()
    assert b"alice" in values and token not in values
    started = time.monotonic()
    alice.api("DELETE", "/users/alice/server")
    alice.wait_stopped()
    assert time.monotonic() - started < 15
    assert not squeue("alice")
    assert not job_processes(job_id)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"gpus": 5}, "gpus must be between 0 and 2"),
        ({"memory_gb": 999}, "memory_gb must be between 1 and 8"),
        ({"hours": 100}, "hours must be between 0.25 and 8"),
        ({"resolution": "1920x1080\n#SBATCH --uid=root"}, "resolution must look like 1920x1080"),
        ({"partition": "vnc;id"}, "partition must be a Slurm partition name"),
        ({"gpus": "$(reboot)"}, "gpus must be a whole number"),
        ({"colour": "red"}, "unknown option"),
    ],
)
def test_invalid_api_options_are_refused_and_submit_nothing(
    alice: HubUser, options: dict, message: str
) -> None:
    response = alice.api("POST", "/users/alice/server", json=options)
    assert response.status_code == 400, response.text
    assert message in response.json()["message"]
    assert not squeue("alice")
    assert "" not in alice.api("GET", "/users/alice").json()["servers"]


def test_spawn_form_shows_the_limits_and_refuses_bad_values(alice: HubUser) -> None:
    page = alice.http.get(f"{alice.url}/hub/spawn/alice").text
    assert 'name="gpus"' in page and 'max="2"' in page and 'name="resolution"' in page
    assert "0 to 2" in page and "1 to 8 GB" in page
    xsrf = alice.http.cookies.get("_xsrf", path="/hub/") or ""
    form = {"gpus": "3", "memory_gb": "2", "hours": "1", "resolution": "1920x1080", "_xsrf": xsrf}
    refused = alice.http.post(f"{alice.url}/hub/spawn/alice", data=form)
    assert "gpus must be between 0 and 2" in refused.text
    assert not squeue("alice")
    form["gpus"] = "0"
    accepted = alice.http.post(f"{alice.url}/hub/spawn/alice", data=form)
    assert accepted.status_code == 200
    alice.wait_ready()
    (job_id,) = squeue("alice")
    assert "gres:gpu" not in job_detail(job_id)


def job_state(job_id: str) -> str:
    return subprocess.run(
        ["squeue", "-h", "-j", job_id, "-o", "%T"], capture_output=True, text=True
    ).stdout.strip()


def job_reason(job_id: str) -> str:
    reason = subprocess.run(["squeue", "-h", "-j", job_id, "-o", "%r"], capture_output=True, text=True).stdout
    return "" if reason.strip() in {"", "None"} else reason.strip()


async def test_a_job_that_dies_before_the_server_answers_shows_its_log(bob: HubUser) -> None:
    config = Path("/home/bob/.jupyter/jupyter_server_config.py")
    config.parent.mkdir(exist_ok=True)
    shutil.chown(config.parent, "bob", "bob")
    config.write_text("raise SystemExit('broken-user-config-for-the-test')\n")
    shutil.chown(config, "bob", "bob")
    try:
        progress = spawn_watching_progress(bob, options={"gpus": 0, "memory_gb": 1})
        started = time.monotonic()
        bob.wait_stopped(timeout=30)
        assert time.monotonic() - started < 20
        messages = progress.messages(timeout=10)
        failure = next(m for m in messages if "Last lines of its log" in m)
        assert "broken-user-config-for-the-test" in failure
        assert "before the desktop server answered" in failure
    finally:
        config.unlink()


async def test_a_job_cancelled_while_running_is_noticed_and_explained(alice: HubUser) -> None:
    alice.api("POST", "/users/alice/server", json={"gpus": 0, "memory_gb": 1})
    alice.wait_ready()
    (job_id,) = squeue("alice")
    subprocess.run(["scancel", job_id], check=True)
    # The hub polls every 10 s and takes the shared answer when it is under 10 s old: noticed within
    # about 20 s; the deadline leaves room for a loaded machine (a CI run once took 20.3 s).
    alice.wait_stopped(timeout=60)
    page = alice.http.get(f"{alice.url}/hub/user/alice/lab")
    assert f"Slurm job {job_id} was cancelled (CANCELLED" in page.text


async def test_named_servers_give_several_desktops(alice: HubUser) -> None:
    assert alice.api("POST", "/users/alice/servers/viz", json={"gpus": 1, "memory_gb": 1}).status_code in {
        201,
        202,
    }
    assert alice.api("POST", "/users/alice/server", json={"gpus": 0, "memory_gb": 1}).status_code in {
        201,
        202,
    }
    alice.wait_ready("viz")
    alice.wait_ready()
    assert len(squeue("alice")) == 2
    a, b = await asyncio.gather(rfb_through_hub(alice, "viz"), rfb_through_hub(alice))
    assert a.init and b.init
    assert (
        alice.server_api("vnc/api/status", server="viz").json()["display"]
        != alice.server_api("vnc/api/status").json()["display"]
    )


def contract_spawner(**traits: object) -> VNCSlurmSpawner:
    user = SimpleNamespace(name="alice", escaped_name="alice", url="/user/alice/", server=None, spawners={})
    from jupyterhub.objects import Hub

    return VNCSlurmSpawner(user=user, hub=Hub(), cmd=["singleuser_command"], **traits)


async def test_batchspawner_slurm_expectations_still_hold() -> None:
    """batchspawner's own test_slurm expectations for a site's req_* settings, on our subclass."""
    spawner = contract_spawner(
        req_runtime="3-05:10:10", req_nprocs="5", req_memory="5678", req_options="some_option_asdf",
        req_prologue="PROLOGUE", req_epilogue="EPILOGUE",
    )  # fmt: skip
    subvars = spawner.get_req_subvars()
    subvars["cmd"] = spawner.cmd_formatted_for_batch()
    script = await spawner._get_batch_script(**subvars)
    assert re.search(r"^PROLOGUE.*^jupyter-vnc-singleuser singleuser_command.*^EPILOGUE", script, re.S | re.M)
    for pattern in [
        r"^#SBATCH \s+ --cpus-per-task=5",
        r"^#SBATCH \s+ --time=3-05:10:10",
        r"^#SBATCH \s+ [^\n]*some_option_asdf",
        r"^#SBATCH \s+ --mem=5678",
    ]:
        assert re.search(pattern, script, re.M | re.X), pattern
    spawner.job_id, spawner.job_status, spawner.node = "12345", "RUNNING node1", "node1"
    state = spawner.get_state()
    assert state == {"job_id": "12345", "job_status": "RUNNING node1"}  # batchspawner's, exactly
    fresh = contract_spawner()
    fresh.load_state(state)
    assert fresh.job_id == "12345" and fresh.state_gethost() == "node1" and fresh.node == "node1"
    fresh.clear_state()
    assert fresh.get_state() == {}


async def test_concurrent_spawns_all_get_their_desktop(hub: HubBed) -> None:
    """Six spawns at once (3 users x 2 named servers): jobs submitted while one shared squeue is in
    flight used to crash their spawn (KeyError in the poller, HTTP 500, the job lost)."""
    from concurrent.futures import ThreadPoolExecutor

    users = [HubUser(hub.url, name, hub.password) for name in ("alice", "bob", "carol")]
    servers = [(user, f"many{i}") for user in users for i in (1, 2)]
    try:
        with ThreadPoolExecutor(len(servers)) as pool:
            answers = list(
                pool.map(
                    lambda us: us[0].api(
                        "POST", server_path(us[0].name, us[1]), json={"gpus": 0, "memory_gb": 1, "hours": 1}
                    ),
                    servers,
                )
            )
        assert all(a.status_code in {201, 202} for a in answers), [(a.status_code, a.text) for a in answers]
        for user, name in servers:
            user.wait_ready(name, timeout=300)
        jobs = {j for user in users for j in squeue(user.name)}
        assert len(jobs) == len(servers)
    finally:
        for user, name in servers:
            user.api("DELETE", server_path(user.name, name), json={"remove": True})
        for user, name in servers:
            user.wait_stopped(name, timeout=120)
    assert not any(squeue(user.name) for user in users)


def hub_log_since(offset: int) -> str:
    return (STATE / "logs" / "jupyterhub.log").read_bytes()[offset:].decode(errors="replace")


async def test_registry_forgeries_lose_no_session_and_orphan_no_job(
    alice: HubUser, redis_bed: RedisBed, slurm, spawner_settings: Callable[[str, dict], None]
) -> None:
    """What a second Redis client writes is input, not truth: garbage for future job ids does not
    break a spawn, and a forged "ended" for a running job does not make the hub forget it."""
    # The hub reads the shared state of a desktop when its own answer is older than the desktop's
    # poll interval. Every desktop's poll refreshes every watched job: with other users' desktops
    # polled beside (the parallel suite), alice's 10 s poll would seldom be the one to read it.
    spawner_settings("alice", {"poll_interval": 1})
    import redis.asyncio as aioredis
    from test_slurm import script

    from jupyter_vnc.poller import info_to_dict
    from jupyter_vnc.slurm import JobInfo, Phase, SlurmClient

    raw = aioredis.from_url(redis_bed.auth_url)
    probe = await SlurmClient("alice").submit(script("true", "--output=/dev/null", "--time=1"))
    future = [str(int(probe) + i) for i in range(1, 12)]
    try:
        for i, job_id in enumerate(future):
            junk = (
                "garbage"
                if i % 2
                else json.dumps({"read_at": time.time() + 10**6, "state": {"phase": "ended"}})
            )
            await raw.set(f"jupyter-vnc:job:{job_id}", junk, ex=600)
        response = alice.api("POST", "/users/alice/server", json={"gpus": 0, "memory_gb": 1})
        assert response.status_code in {201, 202}, response.text
        alice.wait_ready(timeout=150)
        (job_id,) = squeue("alice")
        assert job_id in future  # its shared state was garbage from the start

        def ended(read_at: float) -> str:
            state = info_to_dict(JobInfo(job_id, Phase.ENDED, "CANCELLED"))
            return json.dumps({"read_at": read_at, "state": state})

        log_start = (STATE / "logs" / "jupyterhub.log").stat().st_size
        for forged, sign in (
            (lambda: ended(time.time() + 10**6), f"ignored an invalid shared state for job {job_id}"),
            (
                lambda: ended(time.time() + 1),
                f"Desktop job {job_id} of alice: the shared state said CANCELLED",
            ),
        ):
            # The hub-wide poller writes the real state every interval: the forgery is written again
            # until one of the hub's polls of this desktop (every second) has read it.
            deadline = time.monotonic() + 60
            while sign not in hub_log_since(log_start):  # the hub's own poll has read the forgery
                assert time.monotonic() < deadline, f"no sign of the hub reading the forgery: {sign}"
                await raw.set(f"jupyter-vnc:job:{job_id}", forged(), ex=600)
                await asyncio.sleep(0.5)
        assert alice.api("GET", "/users/alice").json()["servers"][""]["ready"]
        assert squeue("alice") == [job_id]
        assert alice.open_server(path="lab").status_code == 200  # her route and server still serve
        assert alice.server_api("vnc/api/status").status_code == 200
    finally:
        for job_id in future:
            await raw.delete(f"jupyter-vnc:job:{job_id}")
        await raw.aclose()


async def test_a_registry_that_lost_its_data_gets_the_desktop_back(
    alice: HubUser, redis_bed: RedisBed
) -> None:
    """Redis restarted empty: the next poll of a running desktop puts its entry back (admins list
    sessions from there), without touching the desktop."""
    import redis.asyncio as aioredis

    response = alice.api("POST", "/users/alice/server", json={"gpus": 0, "memory_gb": 1})
    assert response.status_code in {201, 202}, response.text
    alice.wait_ready(timeout=150)
    (job_id,) = squeue("alice")
    raw = aioredis.from_url(redis_bed.auth_url, decode_responses=True)
    try:
        assert json.loads(await raw.get("jupyter-vnc:session:alice/"))["job_id"] == job_id
        await raw.delete("jupyter-vnc:session:alice/")
        deadline = time.monotonic() + 60  # the hub polls every 10 s
        while not await raw.get("jupyter-vnc:session:alice/"):
            assert time.monotonic() < deadline, "the desktop never came back into the registry"
            await asyncio.sleep(0.5)
        entry = json.loads(await raw.get("jupyter-vnc:session:alice/"))
        assert entry["job_id"] == job_id and entry["state"] == "running" and entry["ends_at"] > time.time()
        assert squeue("alice") == [job_id]
    finally:
        await raw.aclose()


async def test_sbatch_refusing_the_job_fails_the_spawn_with_slurms_own_message(slurm) -> None:
    """A site's req_partition that Slurm does not know: the real sbatch refuses, the spawn fails at once
    with HTTP 500 and Slurm's words, and nothing is left in Slurm or in the registry."""

    spawner = contract_spawner(req_partition="nosuchpartition", registry_url="")
    spawner.user_options = {"gpus": 0, "memory_gb": 1}
    with pytest.raises(RuntimeError) as refused:
        await spawner.start()
    # What JupyterHub's REST API puts in its HTTP 500 reply (and the spawn page shows).
    message = refused.value.jupyterhub_message  # type: ignore[attr-defined]
    assert "Slurm did not accept the desktop job" in message
    assert "invalid partition" in message.lower(), message
    assert spawner.job_id == "" and squeue("alice") == []
    assert await spawner.registry.get("alice") is None


async def test_a_job_slurm_will_never_start_fails_at_once_with_the_reason(slurm) -> None:
    """Six hours on the test bed's debug partition (MaxTime 4 h): the real Slurm accepts the job and
    keeps it pending for PartitionTimeLimit, which no wait resolves. The spawn fails within seconds
    with that reason in words, and the job is cancelled (not left queued until the queue limit)."""
    spawner = contract_spawner(req_partition="debug", registry_url="", startup_poll_interval=0.5)
    spawner.user_options = {"gpus": 0, "memory_gb": 1, "hours": 6}
    started = time.monotonic()
    with pytest.raises(RuntimeError) as failed:
        await asyncio.wait_for(spawner.start(), 90)
    message = failed.value.jupyterhub_message  # type: ignore[attr-defined]
    assert "can never start as asked" in message and "(PartitionTimeLimit)" in message, message
    assert time.monotonic() - started < 60
    assert spawner.job_id == "" and squeue("alice") == []


def jobs_of(user: str) -> dict[str, str]:
    """Every job of ``user`` Slurm still holds, ended ones included (for MinJobAge): id -> state."""
    command = ["squeue", "-h", "-t", "all", "-u", user, "-o", "%i %T"]
    out = subprocess.run(command, capture_output=True, text=True)
    return dict(line.split() for line in out.stdout.splitlines() if line.strip())


async def test_a_spawn_stopped_while_sbatch_runs_leaves_no_job_in_slurm(slurm) -> None:
    """The user stops her spawn after Slurm has accepted the job but before sbatch's answer is back
    (here the answer takes a second more, as through a busy login node): the spawn ends at once, and
    the job is cancelled once the answer has come, not left running with no server to show for it."""
    from jupyter_vnc import spawner as spawner_module

    before = set(jobs_of("alice"))
    # The job is a plain sleep, not the desktop script (whose server would fail at once without a hub
    # here and end the job by itself): only a cancel ends it.
    submit = "sh -c 'sbatch --parsable --output=/dev/null --time=5 --wrap \"sleep 300\" && sleep 1'"
    spawner = contract_spawner(batch_submit_cmd=submit, registry_url="")
    spawner.user_options = {"gpus": 0, "memory_gb": 1}
    spawn = asyncio.ensure_future(spawner.start())
    await asyncio.sleep(0.7)  # the job submitted, sbatch's answer not back yet
    spawn.cancel()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(spawn, 5)
    deadline = time.monotonic() + 60
    while spawner_module._ABANDONING:
        assert time.monotonic() < deadline, "the stopped submission was never dealt with"
        await asyncio.sleep(0.1)
    made = {job: state for job, state in jobs_of("alice").items() if job not in before}
    assert len(made) == 1 and set(made.values()) <= {"CANCELLED", "COMPLETING"}, made
    assert squeue("alice") == [] or job_state(*made) == "COMPLETING"


async def test_sbatch_answering_without_a_job_id_gives_the_user_slurms_words(slurm) -> None:
    """A real sbatch that exits 0 and prints no id (--test-only: it only says when the job would
    start): the spawn fails with what sbatch said, never "list index out of range"."""

    spawner = contract_spawner(batch_submit_cmd="sbatch --parsable --test-only", registry_url="")
    spawner.user_options = {"gpus": 0, "memory_gb": 1}
    with pytest.raises(RuntimeError) as refused:
        await spawner.start()
    message = refused.value.jupyterhub_message  # type: ignore[attr-defined]
    assert "Slurm did not accept the desktop job: sbatch answered without a job id (sbatch: Job" in message
    assert "to start at" in message, message
    assert spawner.job_id == "" and squeue("alice") == []


async def test_a_job_that_ignores_the_clean_stop_is_cancelled_after_stop_timeout(slurm) -> None:
    """The clean stop (TERM to the batch shell) is ignored: after stop_timeout the spawner cancels the
    job outright, and stop returns once Slurm says it is gone."""
    from test_slurm import script

    # Longer than Slurm's own KillWait (5 s), which a cancel waits out: a stop that cancelled at once
    # would take that long too, and only a wait beyond it shows the clean stop was waited for.
    spawner = contract_spawner(stop_timeout=8.0, registry_url="")
    body = "trap 'echo TERM ignored' TERM; while true; do sleep 1; done"
    out = await spawner.run_command(
        spawner.command(spawner.batch_submit_cmd), input=script(body, "--output=/dev/null", "--time=5")
    )
    spawner.job_id = spawner.parse_job_id(out)
    deadline = time.monotonic() + 60
    while job_state(spawner.job_id) != "RUNNING":
        assert time.monotonic() < deadline, job_state(spawner.job_id)
        await asyncio.sleep(0.2)
    started = time.monotonic()
    await spawner.stop()
    took = time.monotonic() - started
    assert 8.0 <= took < 40, took  # waited for the clean stop, then cancelled
    assert job_state(spawner.job_id) in {"", "CANCELLED", "COMPLETING"}
    assert squeue("alice") == [] or job_state(spawner.job_id) == "COMPLETING"
