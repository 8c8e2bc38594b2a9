"""The requirements that install the lowest versions pyproject.toml declares (for devstack/floors).

Every direct requirement of the package (its dependencies and its runtime extras) and the test tools the
unit tests need, each pinned to its declared floor: ``name==floor``. Pinned, not only left to
``uv pip install --resolution lowest-direct``: that keeps direct requirements at their lowest but lets
their own dependencies take their newest versions, and those can lift a direct one above its floor
(jupyter-client 8.10 lifted tornado from our 6.2 to 6.4.1), so the floor itself would never be tested.
A requirement without a lower bound is an error: nothing would say which oldest version is supported.

    python devstack/floor_requirements.py pyproject.toml    # one requirement a line, on stdout
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import tomllib
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

# The extras a site installs to run the product (not test, docs): their floors are promises too.
RUNTIME_EXTRAS = ("redis",)
# What the unit tests need from the test extra: pytest's configuration in pyproject.toml must work at
# these floors as well (pytest-timeout: its `timeout` option; --strict-config refuses it unknown).
TEST_TOOLS = ("pytest", "pytest-asyncio", "pytest-timeout", "hypothesis")


class NoFloor(ValueError):
    pass


def floor(requirement: Requirement) -> str:
    """The lowest version ``requirement`` allows, as written: its one ``>=``, ``~=`` or ``==`` bound."""
    lows = [spec.version for spec in requirement.specifier if spec.operator in (">=", "~=", "==")]
    if len(lows) != 1:
        raise NoFloor(f"{requirement}: give it one lower bound (>=) so that its oldest version is tested")
    return lows[0]


def pinned(text: str) -> str:
    requirement = Requirement(text)
    extras = f"[{','.join(sorted(requirement.extras))}]" if requirement.extras else ""
    marker = f"; {requirement.marker}" if requirement.marker else ""
    return f"{requirement.name}{extras}=={floor(requirement)}{marker}"


def floor_requirements(project: Mapping[str, Any]) -> list[str]:
    extras: Mapping[str, list[str]] = project.get("optional-dependencies", {})
    chosen = [*project.get("dependencies", []), *_each(extras[name] for name in RUNTIME_EXTRAS)]
    wanted = {canonicalize_name(name) for name in TEST_TOOLS}
    tools = [text for text in extras.get("test", []) if canonicalize_name(Requirement(text).name) in wanted]
    found = {canonicalize_name(Requirement(text).name) for text in tools}
    if found != wanted:
        raise NoFloor(f"the test extra does not name {', '.join(sorted(wanted - found))}")
    return [pinned(text) for text in [*chosen, *tools]]


def _each(lists: Iterable[list[str]]) -> list[str]:
    return [item for items in lists for item in items]


def main(argv: list[str]) -> int:
    pyproject = Path(argv[1] if len(argv) > 1 else "pyproject.toml")
    try:
        print("\n".join(floor_requirements(tomllib.loads(pyproject.read_text())["project"])))
    except NoFloor as e:
        print(f"{pyproject}: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
