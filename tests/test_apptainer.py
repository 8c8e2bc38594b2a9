"""A real Apptainer runs the testbed image the way the desktop jobs will: as root and as a user.

No fakes: these tests run /opt/apptainer-sid's apptainer on the SIF from apptainer/testbed.def, and
skip (saying why) where Apptainer cannot be installed. Runs as a test user need root (runuser).
"""

from __future__ import annotations

import hashlib
import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

# Whose servers, jobs and homes these tests use (tests/isolation.py: modules of other users run beside).
pytestmark = pytest.mark.users("jack")

TEST_USER = "jack"


def _user_exists(name: str) -> bool:
    try:
        pwd.getpwnam(name)
    except KeyError:
        return False
    return True


def _current_user() -> str:
    return pwd.getpwuid(os.geteuid()).pw_name


def _need_user(user: str) -> None:
    if os.geteuid() != 0 and _current_user() != user:
        pytest.skip(f"running apptainer as {user} needs root (runuser)")
    if not _user_exists(user):
        pytest.skip(f"test user {user} does not exist: run devstack/install")


def run(
    cmd: list[str | Path],
    *,
    user: str | None = None,
    env: dict[str, str] | None = None,
    timeout: float = 60,
) -> subprocess.CompletedProcess[str]:
    """Run cmd from / (as user via runuser, if another user), fail the test with its output if it fails."""
    argv = [str(c) for c in cmd]
    if user is not None and user != _current_user():
        argv = ["runuser", "-u", user, "--", *argv]
    result = subprocess.run(
        argv, capture_output=True, text=True, timeout=timeout, env=env, cwd="/", check=False
    )
    assert result.returncode == 0, (
        f"{argv} exited {result.returncode}\nstdout: {result.stdout}\nstderr: {result.stderr}"
    )
    return result


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@pytest.fixture(params=["root", TEST_USER])
def user(request: pytest.FixtureRequest) -> str:
    name: str = request.param
    if name == "root":
        if os.geteuid() != 0:
            pytest.skip("not running as root")
    else:
        _need_user(name)
    return name


@pytest.fixture
def alice_dir() -> Iterator[Path]:
    """A host directory owned by the test user, mode 0700, with a file in it."""
    _need_user(TEST_USER)
    entry = pwd.getpwnam(TEST_USER)
    path = Path(tempfile.mkdtemp(prefix="jvnc-bind-", dir="/tmp"))
    try:
        (path / "from-host.txt").write_text("written on the host\n")
        for p in (path, path / "from-host.txt"):
            os.chown(p, entry.pw_uid, entry.pw_gid)
        path.chmod(0o700)
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def test_exec_runs_debian_bookworm_as_the_calling_user(
    apptainer: Path, testbed_image: Path, user: str
) -> None:
    out = run(
        [apptainer, "exec", testbed_image, "sh", "-c", "id -u; id -un; cat /etc/os-release"], user=user
    ).stdout
    uid, name, os_release = out.split("\n", 2)
    assert int(uid) == pwd.getpwnam(user).pw_uid
    assert name == user  # the container's /etc/passwd knows the caller
    assert "VERSION_CODENAME=bookworm" in os_release.splitlines()


def test_run_uses_the_runscript(apptainer: Path, testbed_image: Path) -> None:
    out = run([apptainer, "run", testbed_image]).stdout
    assert out.startswith("jupyter-vnc testbed: Debian GNU/Linux 12 (bookworm)")


def test_writable_tmpfs_writes_inside_and_leaves_the_sif_unchanged(
    apptainer: Path, testbed_image: Path, user: str
) -> None:
    before = sha256(testbed_image)
    # The container's / is writable for its user through the tmpfs overlay (in user-namespace mode
    # a user cannot write into the image's root-owned directories such as /opt: unmapped owner).
    name = f"/jvnc-scratch-{os.getpid()}.txt"
    script = f"echo scratch > {name} && cat {name}"
    out = run([apptainer, "exec", "--writable-tmpfs", testbed_image, "sh", "-c", script], user=user)
    assert out.stdout == "scratch\n"
    assert not Path(name).exists()  # not on the host
    # Without the overlay the image is read-only, and the earlier write is gone.
    check = f"test ! -e {name} && ! touch {name} 2>/dev/null && echo read-only"
    out = run([apptainer, "exec", testbed_image, "sh", "-c", check], user=user)
    assert out.stdout == "read-only\n"
    assert sha256(testbed_image) == before


def test_bind_shows_the_users_host_directory(apptainer: Path, testbed_image: Path, alice_dir: Path) -> None:
    script = "cat /mnt/data/from-host.txt && echo from-container > /mnt/data/from-container.txt"
    out = run(
        [apptainer, "exec", "--bind", f"{alice_dir}:/mnt/data", testbed_image, "sh", "-c", script],
        user=TEST_USER,
    )
    assert out.stdout == "written on the host\n"
    written = alice_dir / "from-container.txt"
    assert written.read_text() == "from-container\n"
    assert written.stat().st_uid == pwd.getpwnam(TEST_USER).pw_uid


def test_cleanenv_drops_the_host_environment_but_passes_env(apptainer: Path, testbed_image: Path) -> None:
    user = (
        TEST_USER if _user_exists(TEST_USER) and (os.geteuid() == 0 or _current_user() == TEST_USER) else None
    )
    host_env = {**os.environ, "JVNC_HOST_ONLY": "leaked", "APPTAINERENV_JVNC_VIA_PREFIX": "prefixed"}
    out = run(
        [apptainer, "exec", "--cleanenv", "--env", "CUDA_VISIBLE_DEVICES=1", testbed_image, "env"],
        user=user,
        env=host_env,
    ).stdout
    inside = dict(line.split("=", 1) for line in out.splitlines() if "=" in line)
    assert inside.get("CUDA_VISIBLE_DEVICES") == "1"
    assert inside.get("JVNC_VIA_PREFIX") == "prefixed"
    assert "JVNC_HOST_ONLY" not in inside
