"""The documentation builds with warnings as errors, and it keeps up with the code.

- Every configurable class of jupyter_vnc that an admin sets is in the configuration reference, each
  of its traits with its name, help and example; a trait without "Example:" fails the build.
- The defaults VNCSlurmSpawner computes for JupyterHub's and batchspawner's traits are listed.
- Every option of the spawn API is in the REST page.
- Every message the troubleshooting page quotes is one the product prints.
"""

from __future__ import annotations

import html
import importlib
import inspect
import pkgutil
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

pytest.importorskip("sphinx", reason="the docs extra is not installed (pip install -e '.[docs]')")
pytest.importorskip("myst_parser", reason="the docs extra is not installed (pip install -e '.[docs]')")
pytest.importorskip("autodoc_traits", reason="the docs extra is not installed (pip install -e '.[docs]')")

from traitlets import HasTraits

import jupyter_vnc

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
PACKAGE = "jupyter_vnc"


def sphinx_build(source: Path, out: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "sphinx", "-W", "--keep-going", "-q", "-b", "html", str(source), str(out)],
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("docs-html")
    result = sphinx_build(DOCS, out)
    assert result.returncode == 0, f"the docs do not build cleanly:\n{result.stdout}\n{result.stderr}"
    return out


def _own_config_traits(cls: type[HasTraits]) -> dict[str, object]:
    return {
        name: trait
        for name, trait in cls.class_traits(config=True).items()
        if trait.this_class.__module__.startswith(PACKAGE + ".")
    }


def configurable_classes() -> list[type[HasTraits]]:
    """The classes an admin configures: every class of jupyter_vnc with config traits of its own
    (or inherited from jupyter_vnc), less those only there to be subclassed by another of them."""
    found: set[type[HasTraits]] = set()
    for module_info in pkgutil.walk_packages(jupyter_vnc.__path__, PACKAGE + "."):
        module = importlib.import_module(module_info.name)
        for _, cls in inspect.getmembers(module, inspect.isclass):
            if cls.__module__ == module.__name__ and issubclass(cls, HasTraits) and _own_config_traits(cls):
                found.add(cls)
    leaves = [c for c in found if not any(o is not c and issubclass(o, c) for o in found)]
    return sorted(leaves, key=lambda c: c.__name__)


def test_the_known_configurable_classes_are_found() -> None:
    names = {c.__name__ for c in configurable_classes()}
    assert {"VNCSlurmSpawner", "VNCDesktop", "DesktopIdle", "VNCExtension"} <= names


def test_every_trait_has_help_with_an_example() -> None:
    lacking = [
        f"{cls.__name__}.{name}"
        for cls in configurable_classes()
        for name, trait in _own_config_traits(cls).items()
        if "Example:" not in (trait.help or "")
    ]
    assert lacking == [], "traits whose help has no 'Example:'"


def _entry(page: str, cls: type, name: str) -> str:
    """The HTML of one trait's entry in the reference."""
    anchor = f'id="{cls.__module__}.{cls.__name__}.{name}"'
    start = page.find(anchor)
    assert start >= 0, f"{cls.__name__}.{name} is not in the configuration reference"
    end = page.find("</dd>", start)
    return page[start:end]


def _text(fragment: str) -> str:
    return " ".join(html.unescape(re.sub(r"<[^>]+>", "", fragment)).split())


def test_the_reference_lists_every_configurable_class_and_trait(built: Path) -> None:
    page = (built / "configuration.html").read_text()
    for cls in configurable_classes():
        assert f'id="{cls.__module__}.{cls.__name__}"' in page, (
            f"{cls.__module__}.{cls.__name__} has config traits but no autoconfigurable in "
            "docs/configuration.md"
        )
        for name, trait in _own_config_traits(cls).items():
            entry = _text(_entry(page, cls, name))
            assert f"c.{cls.__name__}.{name} = " in entry, f"{cls.__name__}.{name}: no default shown"
            words = " ".join(trait.help.split("Example:")[0].split()[:6])
            assert words in entry, f"{cls.__name__}.{name}: its help is not shown ({words!r})"
            example = " ".join(trait.help.split("Example:")[-1].split())
            assert example in entry, f"{cls.__name__}.{name}: its example is not shown ({example!r})"


def test_a_trait_without_an_example_fails_the_build(tmp_path: Path) -> None:
    (tmp_path / "fakepkg").mkdir()
    (tmp_path / "fakepkg" / "__init__.py").write_text(
        textwrap.dedent(
            """
            from traitlets import Int
            from traitlets.config import Configurable

            class Thing(Configurable):
                size = Int(1, help="How big. Example: 2").tag(config=True)
                depth = Int(1, help="How deep, without an example.").tag(config=True)
            """
        )
    )
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "conf.py").write_text(
        f"import sys\nsys.path[:0] = [{str(tmp_path)!r}, {str(DOCS / '_ext')!r}]\n"
        "extensions = ['traits_reference']\ntraits_reference_package = 'fakepkg'\n"
    )
    (tmp_path / "src" / "index.rst").write_text("Thing\n=====\n\n.. autoconfigurable:: fakepkg.Thing\n")
    result = sphinx_build(tmp_path / "src", tmp_path / "out")
    assert result.returncode != 0
    assert "Thing.depth: its help has no 'Example:'" in result.stderr
    assert "Thing.size" not in result.stderr


def _changed_defaults_section() -> str:
    text = (DOCS / "configuration.md").read_text()
    start = text.index("(changed-defaults)=")
    return text[start : text.index("\n## ", start)]


def test_the_defaults_vncslurmspawner_changes_are_listed() -> None:
    from jupyter_vnc.spawner import VNCSlurmSpawner

    changed = set()
    for klass in VNCSlurmSpawner.__mro__:
        if klass.__module__.startswith(PACKAGE + "."):
            for name in klass.__dict__.get("_trait_default_generators", {}):
                trait = VNCSlurmSpawner.class_traits().get(name)
                if trait is not None and not trait.this_class.__module__.startswith(PACKAGE + "."):
                    changed.add(name)
    listed = set(re.findall(r"^`(\w+)`", _changed_defaults_section(), re.M))
    assert listed == changed, "docs/configuration.md, 'Defaults VNCSlurmSpawner changes', is out of date"


def test_every_spawn_option_is_documented() -> None:
    from jupyter_vnc import options

    page = (DOCS / "rest-api.md").read_text()
    rows = set(re.findall(r"^\| `(\w+)` \|", page, re.M))
    assert set(options.FIELDS) <= rows, f"options missing from docs/rest-api.md: {set(options.FIELDS) - rows}"


_EDGES = " .,:;()\"'"


def _product_text() -> str:
    """The product's sources, with string literals that Python joins across lines joined here too."""
    files = [
        *ROOT.glob("jupyter_vnc/**/*.py"),
        *ROOT.glob("labextension/src/**/*.ts"),
        *ROOT.glob("templates/**/*"),
    ]
    text = "\n".join(p.read_text(errors="replace") for p in files if p.is_file() and ".test." not in p.name)
    return re.sub(r"([\"'])\s*\n\s*f?([\"'])", "", text)


def _printed(part: str, source: str) -> bool:
    """Whether the product prints ``part``: as one literal, or as two literals it joins (a message
    built from pieces, such as "Your desktop's" + "Slurm job ... reached its time limit")."""
    if part in source:
        return True
    cuts = [m.start() for m in re.finditer(r" ", part)]
    return any(
        min(len(a), len(b)) >= 4 and a in source and b in source
        for a, b in ((part[:i].strip(_EDGES), part[i:].strip(_EDGES)) for i in cuts)
    )


def test_the_troubleshooting_messages_are_the_products() -> None:
    """Each quoted heading of docs/troubleshooting.md is a message: its literal parts (between
    <placeholders>) must each be printed by the product, so a changed message shows up here."""
    headings = re.findall(r'^#{2,4} "(.+)"$', (DOCS / "troubleshooting.md").read_text(), re.M)
    assert len(headings) >= 10
    source = _product_text()
    missing = [
        f"{heading!r}: {part!r}"
        for heading in headings
        for part in (p.strip(_EDGES) for p in re.split(r"<[^>]+>|\.\.\.", heading))
        if len(part) >= 4 and not _printed(part, source)
    ]
    assert missing == [], "quoted messages that the product no longer prints:\n" + "\n".join(missing)
