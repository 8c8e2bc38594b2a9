"""The package as an admin installs it: a wheel carrying its templates; the code ruff-clean."""

from __future__ import annotations

import ast
import importlib.util
import json
import re
import shutil
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest
import tomllib

from jupyter_vnc import __version__
from jupyter_vnc.resources import template_path, templates_dir

ROOT = Path(__file__).resolve().parents[1]
# The wheel's and sdist's names for this version: jupyter_vnc/_version.py is the one place it is written.
DIST = f"jupyter_vnc-{__version__}"


def test_wheel_carries_the_templates(tmp_path: Path) -> None:
    src = tmp_path / "src"
    # Build from a copy so the checkout gets no build/ folder.
    shutil.copytree(
        ROOT, src, ignore=shutil.ignore_patterns(".git", "node_modules", "test-artifacts", ".*cache")
    )
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(tmp_path),
            str(src),
        ],
        check=True,
    )
    (wheel,) = tmp_path.glob("jupyter_vnc-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    templates = ROOT / "templates"
    for template in sorted(p.relative_to(templates) for p in templates.rglob("*") if p.is_file()):
        assert f"jupyter_vnc/templates/{template}" in names
    assert "jupyter_vnc/slurm.py" in names
    # The tests' helpers (testkit/: the RFB client) stay out of it.
    assert not [n for n in names if n.startswith("testkit/") or n == "jupyter_vnc/rfb.py"]
    assert "jupyter_vnc/static/viewer.js" in names  # users never need node
    # The prebuilt JupyterLab extension, where JupyterLab looks for it.
    lab = f"{DIST}.data/data/share/jupyter/labextensions/jupyter-vnc"
    assert {f"{lab}/package.json", f"{lab}/install.json", f"{lab}/schemas/jupyter-vnc/plugin.json"} <= names
    assert any(n.startswith(f"{lab}/static/remoteEntry.") for n in names)
    assert f"{DIST}.data/data/etc/jupyter/jupyter_server_config.d/jupyter_vnc.json" in names
    entry_points = zipfile.ZipFile(wheel).read(f"{DIST}.dist-info/entry_points.txt").decode()
    assert "vnc-slurm = jupyter_vnc.spawner:VNCSlurmSpawner" in entry_points
    # The licence a legal review reads: named in the metadata, its whole text in the wheel and the sdist.
    metadata = zipfile.ZipFile(wheel).read(f"{DIST}.dist-info/METADATA").decode()
    assert f"\nVersion: {__version__}\n" in metadata
    assert "License-Expression: BSD-3-Clause" in metadata and "License-File: LICENSE" in metadata
    licence = (ROOT / "LICENSE").read_text()
    assert licence.startswith("BSD 3-Clause License")
    assert zipfile.ZipFile(wheel).read(f"{DIST}.dist-info/licenses/LICENSE").decode() == licence
    subprocess.run(
        [sys.executable, "-c", f"from hatchling.build import build_sdist; build_sdist({str(tmp_path)!r})"],
        cwd=src, check=True, capture_output=True,
    )  # fmt: skip
    (sdist,) = tmp_path.glob("jupyter_vnc-*.tar.gz")
    with tarfile.open(sdist) as archive:
        packed = archive.extractfile(f"{DIST}/LICENSE")
        assert packed is not None and packed.read().decode() == licence
        # The sdist carries the tests, and so what they import.
        assert f"{DIST}/testkit/rfb.py" in archive.getnames()


def npm_version(version: str) -> str:
    """A PEP 440 version as npm writes it: 1.2.0 stays, 1.2.0a1 is 1.2.0-alpha.1 (b: beta, rc: rc)."""
    parts = re.fullmatch(r"(\d+\.\d+\.\d+)(?:(a|b|rc)(\d+))?", version)
    assert parts, f"{version}: not a version this test knows how to write for npm"
    release, kind, number = parts.groups()
    return f"{release}-{dict(a='alpha', b='beta', rc='rc')[kind]}.{number}" if kind else release


@pytest.mark.unit
def test_every_other_place_that_carries_the_version_agrees() -> None:
    """The version is written in jupyter_vnc/_version.py (hatch reads it for the wheel). The JupyterLab
    extension's package.json must carry one too (JupyterLab shows it): it must be the same, in npm's
    spelling; and the changelog has an entry for it."""
    package = json.loads((ROOT / "labextension" / "package.json").read_text())
    assert package["version"] == npm_version(__version__), "labextension/package.json: set it to match"
    assert f"## [{__version__}]" in (ROOT / "CHANGELOG.md").read_text(), "CHANGELOG.md: no entry for it"


@pytest.mark.unit
def test_every_module_of_the_package_imports() -> None:
    """Every module, each imported in a fresh interpreter's one run: a name that a dependency lacks at
    its declared floor (devstack/floors runs this there) fails here, not in a site's hub or server."""
    script = (
        "import importlib, pkgutil, jupyter_vnc\n"
        "for m in pkgutil.walk_packages(jupyter_vnc.__path__, 'jupyter_vnc.'):\n"
        "    if not m.name.endswith('__main__'):\n"
        "        importlib.import_module(m.name)\n"
        "        print(m.name)\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert {"jupyter_vnc.bridge", "jupyter_vnc.spawner", "jupyter_vnc.cli.doctor"} <= set(
        result.stdout.split()
    )


@pytest.mark.unit
def test_no_module_of_the_package_imports_the_test_helpers() -> None:
    """testkit/ (the RFB client of the tests, benchmarks and GPU check) is not in the wheel: a module of
    the package that imported it would fail at a site."""
    found = []
    for path in sorted((ROOT / "jupyter_vnc").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                modules = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and not node.level:
                modules = [node.module or ""]
            else:
                continue
            if any(m == "testkit" or m.startswith("testkit.") for m in modules):
                found.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert not found, "imports of testkit in the package: " + ", ".join(found)


@pytest.mark.unit
def test_the_floor_run_pins_every_direct_requirement_at_its_floor() -> None:
    """devstack/floors installs what devstack/floor_requirements.py lists: each dependency, each runtime
    extra and the unit tests' tools, at exactly its declared floor; a requirement without one is refused."""
    spec = importlib.util.spec_from_file_location(
        "floor_requirements", ROOT / "devstack" / "floor_requirements.py"
    )
    assert spec and spec.loader
    floors = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(floors)
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    pinned = floors.floor_requirements(project)
    declared = [*project["dependencies"], *project["optional-dependencies"]["redis"]]
    names = [re.split(r"[\[<>=~;]", line, maxsplit=1)[0] for line in pinned]
    assert names == [re.split(r"[\[<>=~;, ]", r, maxsplit=1)[0] for r in declared] + list(floors.TEST_TOOLS)
    for line, requirement in zip(pinned, declared, strict=False):
        floor = re.search(r"(?:>=|~=|==)\s*([^,;\s]+)", requirement)
        assert floor and line.split(";")[0].endswith(f"=={floor.group(1)}"), (line, requirement)
    with pytest.raises(floors.NoFloor, match="give it one lower bound"):
        floors.floor_requirements(
            {"dependencies": ["jinja2"], "optional-dependencies": project["optional-dependencies"]}
        )


@pytest.mark.unit
def test_templates_are_found_from_a_checkout() -> None:
    assert template_path("xstartup").read_text().startswith("#!/bin/sh")
    assert templates_dir().is_dir()


def test_ruff_is_clean() -> None:
    ruff = Path(sys.executable).with_name("ruff")
    result = subprocess.run([str(ruff), "check", str(ROOT)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    fmt = subprocess.run([str(ruff), "format", "--check", str(ROOT)], capture_output=True, text=True)
    assert fmt.returncode == 0, fmt.stdout + fmt.stderr


def test_every_third_party_import_is_a_declared_dependency() -> None:
    """A module the package imports but does not declare works here by luck (something else pulled it
    in) and breaks on a site whose versions differ."""
    import ast
    import re
    import sys

    import tomllib

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    # The package's own optional features count (jupyter-vnc[redis]); the test and docs extras do not.
    features = [d for name, deps in project["optional-dependencies"].items() if name not in {"test", "docs"}
                for d in deps]  # fmt: skip
    declared = {
        re.split(r"[<>=!~\[ ;]", d, maxsplit=1)[0].lower().replace("_", "-")
        for d in [*project["dependencies"], *features]
    }
    imported = set()
    for path in (ROOT / "jupyter_vnc").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                imported |= {a.name.split(".")[0] for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                imported.add(node.module.split(".")[0])
    third_party = {m for m in imported if m not in sys.stdlib_module_names and m != "jupyter_vnc"}
    missing = sorted(m for m in third_party if m.lower().replace("_", "-") not in declared)
    assert not missing, f"imported but not declared in pyproject.toml: {missing}"
