"""Pytest fixtures for tests that run a real Apptainer.

Registered by ``pytest_plugins = ["fixtures_apptainer"]`` in tests/conftest.py. Only a machine that
truly cannot have Apptainer skips these tests, saying why (the reason ``devstack/install-apptainer``
wrote to ``$JVNC_STATE/apptainer-unavailable``), and never under CI (``CI=true``): there every
Apptainer test must run. An image that does not build is the project's failure (its definition, our
wheel, the labextension, the image's ``%test``), so it fails the tests that need it, never skips them.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
JVNC_STATE = Path(os.environ.get("JVNC_STATE", "/var/lib/jupyter-vnc-dev"))
APPTAINER_PREFIX = Path(os.environ.get("APPTAINER_PREFIX", "/opt/apptainer-sid"))
UNAVAILABLE = JVNC_STATE / "apptainer-unavailable"
NOT_INSTALLED = "apptainer not installed: run devstack/install"
BUILD_TIMEOUT_S = 900


def cannot_run(reason: str) -> None:
    """Skip for a machine without Apptainer; fail under CI, where nothing may go untested."""
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{reason} (CI=true: Apptainer tests may not skip)", pytrace=False)
    pytest.skip(reason)


def build_failed(what: str, detail: str) -> None:
    print(f"{what}: {detail}")
    pytest.fail(f"{what}: {detail}", pytrace=False)


def _unavailable_reason() -> str:
    try:
        reason = UNAVAILABLE.read_text().strip()
    except OSError:
        return NOT_INSTALLED
    return f"apptainer unavailable: {reason}" if reason else NOT_INSTALLED


def _find_apptainer() -> Path | None:
    candidates = [APPTAINER_PREFIX / "bin" / "apptainer"]
    on_path = shutil.which("apptainer")
    if on_path:
        candidates.append(Path(on_path))
    for candidate in candidates:
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return candidate
    return None


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else "(no output)"


@pytest.fixture(scope="session")
def apptainer() -> Path:
    """The apptainer binary, checked to run; skips with the install's reason when there is none."""
    if UNAVAILABLE.exists():
        cannot_run(_unavailable_reason())
    binary = _find_apptainer()
    if binary is None:
        cannot_run(_unavailable_reason())
    assert binary is not None
    try:
        result = subprocess.run(
            [str(binary), "--version"], capture_output=True, text=True, timeout=30, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        cannot_run(f"apptainer at {binary} does not run: {exc}")
    if result.returncode != 0:
        cannot_run(f"apptainer at {binary} does not run: {_last_line(result.stderr + result.stdout)}")
    return binary


@pytest.fixture(scope="session")
def testbed_image(apptainer: Path) -> Path:
    """The SIF built from apptainer/testbed.def (built once, then cached by devstack/build-test-image)."""
    script = REPO / "devstack" / "build-test-image"
    env = {**os.environ, "JVNC_STATE": str(JVNC_STATE)}
    try:
        result = subprocess.run(
            [str(script)],
            capture_output=True,
            text=True,
            timeout=BUILD_TIMEOUT_S,
            env=env,
            check=False,
        )
    except subprocess.TimeoutExpired:
        build_failed("testbed image", f"devstack/build-test-image took longer than {BUILD_TIMEOUT_S} s")
    except OSError as exc:
        build_failed("testbed image", f"devstack/build-test-image could not run: {exc}")
    if result.returncode != 0:
        build_failed("testbed image not built", (result.stderr + result.stdout)[-3000:])
    sif = Path(_last_line(result.stdout))
    if not sif.is_file():
        build_failed("testbed image", f"devstack/build-test-image printed {sif}, which is not a file")
    return sif


DESKTOP_BUILD_TIMEOUT_S = 1800  # a cold build (Debian + XFCE + Firefox + the venv) takes 3-6 minutes


@pytest.fixture(scope="session")
def desktop_image(apptainer: Path) -> Path:
    """The SIF built from apptainer/desktop-debian.def with this checkout's jupyter-vnc.

    Built (or found in its two-stage cache) by devstack/build-desktop-image; a build that cannot run
    or fails fails the tests that need it, with the build's own output.
    """
    script = REPO / "devstack" / "build-desktop-image"
    env = {**os.environ, "JVNC_STATE": str(JVNC_STATE)}

    try:
        result = subprocess.run(
            [str(script)],
            capture_output=True,
            text=True,
            timeout=DESKTOP_BUILD_TIMEOUT_S,
            env=env,
            check=False,
        )
    except subprocess.TimeoutExpired:
        build_failed(
            "desktop image", f"devstack/build-desktop-image took longer than {DESKTOP_BUILD_TIMEOUT_S} s"
        )
    except OSError as exc:
        build_failed("desktop image", f"devstack/build-desktop-image could not run: {exc}")
    if result.returncode != 0:
        build_failed("desktop image not built", (result.stderr + result.stdout)[-3000:])
    sif = Path(_last_line(result.stdout))
    if not sif.is_file():
        build_failed("desktop image", f"devstack/build-desktop-image printed {sif}, which is not a file")
    return sif
