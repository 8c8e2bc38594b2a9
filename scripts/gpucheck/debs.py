"""Debian packages for the GPU machine: which to ship (here, from apt's dependency data) and which to
unpack there (only what the system lacks, never replacing a file)."""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


# Every Ubuntu 24.04 has these (many as newer '...t64' builds); shipping Debian's would at best be
# skipped there and at worst shadow the system's own. Their own dependencies are not followed either.
BASE_PACKAGES = _words(
    """
    libc6 libgcc-s1 libstdc++6 gcc-12-base zlib1g libzstd1 liblzma5 liblz4-1 libbz2-1.0 libcrypt1
    libselinux1 libpcre2-8-0 libaudit1 libaudit-common libpam0g libsystemd0 libelogind0 libudev1 libcap2
    libcap-ng0 libgcrypt20 libgpg-error0 libacl1 libtinfo6 libmd0 libseccomp2 libuuid1 libsmartcols1
    libdb5.3 libgmp10 libnettle8 libhogweed6 libidn2-0 libunistring2 libtasn1-6 libp11-kit0 libffi8
    libgnutls30 debconf cdebconf perl-base dpkg tar bsdutils debianutils sysvinit-utils lsb-base
    """
)
# Not wanted: perl (only TigerVNC's vncserver wrapper uses it; we run Xtigervnc directly),
# documentation. Mesa only on request (``closure(..., mesa=True)``): the NVIDIA driver brings the GL
# vendor libraries, and Mesa's software renderer needs ~37 MiB of LLVM and Z3; it is shipped only to
# measure software GL on the GPU machine for comparison, when the bundle has room for it.
MESA_PACKAGES = _words(
    """
    libglx-mesa0 libegl-mesa0 libgl1-mesa-dri libglapi-mesa libgbm1 libllvm15 libz3-4
    """
)
UNWANTED_PACKAGES = MESA_PACKAGES | _words(
    """
    perl perl-modules-5.36 libperl5.36 libfile-readbackwards-perl man-db groff-base install-info
    """
)
NOT_SHIPPED = BASE_PACKAGES | UNWANTED_PACKAGES
NOT_SHIPPED_WITH_MESA = NOT_SHIPPED - MESA_PACKAGES

APT_DEPENDS_FLAGS = (
    "--no-recommends", "--no-suggests", "--no-conflicts", "--no-breaks", "--no-replaces", "--no-enhances",
)  # fmt: skip


def parse_apt_depends(text: str) -> dict[str, list[list[str]]]:
    """``apt-cache depends`` output to {package: [alternatives, ...]} for Depends and PreDepends.

    A line starting with ``|`` is or-ed with the next; a virtual package (``<name>``) stands for the
    providers listed under it; a provider listed under a real package is ignored (the real one wins).
    """
    result: dict[str, list[list[str]]] = {}
    groups: list[list[str]] | None = None
    joins_next = False  # the last dependency line began with '|': the next one is its alternative
    providers_count = False  # indented provider lines belong to the virtual package just read
    for line in text.splitlines():
        if not line.strip():
            continue
        if not line.startswith(" "):
            groups = result.setdefault(line.strip(), [])
            joins_next = providers_count = False
            continue
        if groups is None:
            continue
        stripped = line.strip()
        if line.startswith("    "):
            if providers_count:
                groups[-1].append(stripped)
            continue
        kind, _, name = stripped.lstrip("|").partition(":")
        name = name.strip()
        if kind.strip() not in {"Depends", "PreDepends"}:
            joins_next = providers_count = False
            continue
        if not joins_next:
            groups.append([])
        joins_next = stripped.startswith("|")
        providers_count = name.startswith("<")
        if not providers_count:
            groups[-1].append(name)
    return {package: [list(dict.fromkeys(g)) for g in gs if g] for package, gs in result.items()}


def _apt_depends(names: Iterable[str]) -> dict[str, list[list[str]]]:
    out = subprocess.run(
        ["apt-cache", "depends", *APT_DEPENDS_FLAGS, *names], capture_output=True, text=True, check=True
    ).stdout
    return parse_apt_depends(out)


def closure(
    roots: Iterable[str],
    lookup: Callable[[list[str]], dict[str, list[list[str]]]] = _apt_depends,
    skip: frozenset[str] = NOT_SHIPPED,
) -> list[str]:
    """The packages to ship: ``roots`` and, recursively, the first alternative of each dependency group
    that neither a chosen package nor one in ``skip`` (there already, or not wanted) satisfies."""
    chosen: list[str] = []
    seen: set[str] = set()
    todo = [r for r in roots if r not in skip]
    while todo:
        batch = [p for p in dict.fromkeys(todo) if p not in seen]
        todo = []
        if not batch:
            break
        seen.update(batch)
        chosen.extend(batch)
        depends = lookup(batch)
        for package in batch:
            for group in depends.get(package, []):
                if any(p in seen or p in skip or p in todo for p in group):
                    continue
                todo.extend(group[:1])
    return sorted(chosen)


@dataclass(frozen=True)
class DebFile:
    path: Path
    package: str
    version: str
    arch: str


def parse_deb_filename(path: Path) -> DebFile:
    """``name_version_arch.deb`` as apt-get download names it (an epoch's ':' written as %3a)."""
    parts = path.name.removesuffix(".deb").split("_")
    if len(parts) != 3:
        raise ValueError(f"not a NAME_VERSION_ARCH.deb file name: {path.name}")
    package, version, arch = parts
    return DebFile(path, package, version.replace("%3a", ":").replace("%3A", ":"), arch)


def parse_dpkg_query(text: str) -> dict[str, str]:
    """``dpkg-query -W -f '${Package} ${Version} ${db:Status-Abbrev}\\n'`` to {package: version} of
    the packages whose files are on the system (installed, or unpacked but not configured)."""
    installed: dict[str, str] = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) >= 3 and len(parts[2]) >= 2 and parts[2][1] in "iUFHW":
            installed.setdefault(parts[0], parts[1])
    return installed


def dpkg_version_ge(a: str, b: str) -> bool:
    return subprocess.run(["dpkg", "--compare-versions", a, "ge", b]).returncode == 0


def plan_debs(
    debs: Iterable[DebFile],
    installed: dict[str, str],
    version_ge: Callable[[str, str], bool] = dpkg_version_ge,
) -> list[tuple[DebFile, bool, str]]:
    """(deb, unpack?, why) for each deb: skip what the system has at an equal or newer version, and
    packages Ubuntu renamed to '...t64' when it rebuilt them for 64-bit time (its build is newer)."""
    plan = []
    for deb in sorted(debs, key=lambda d: d.package):
        have = installed.get(deb.package)
        t64 = installed.get(deb.package + "t64")
        if have is not None and version_ge(have, deb.version):
            plan.append((deb, False, f"installed at {have} (ours {deb.version})"))
        elif t64 is not None:
            plan.append((deb, False, f"{deb.package}t64 {t64} installed (Ubuntu's 64-bit-time rebuild)"))
        elif have is not None:
            plan.append((deb, True, f"installed at older {have}: adding only its missing files"))
        else:
            plan.append((deb, True, "not installed"))
    return plan


@dataclass
class Merged:
    added: int = 0  # files and links written
    kept: int = 0  # already there: left as they were
    failed: list[str] = field(default_factory=list)  # could not be written (a read-only mount, say)


def merge_tree(source: Path, target: Path) -> Merged:
    """Copy what ``source`` holds into ``target`` where nothing is there yet.

    Nothing that exists is replaced, chmod-ed or turned into something else: an existing file stays,
    and an existing directory, or a link to one (Ubuntu's /lib -> usr/lib), is merged into through
    the link. The plain ``dpkg -x DEB /`` replaces such a link with a directory and breaks the system.
    """
    merged = Merged()
    for top, dirs, files in os.walk(source):
        here = target / os.path.relpath(top, source)
        for name in list(dirs):
            src, dst = Path(top, name), here / name
            if src.is_symlink():  # a link to a directory: copied as a link, not walked into
                dirs.remove(name)
                files.append(name)
            elif not os.path.lexists(dst):
                try:
                    dst.mkdir()
                    shutil.copymode(src, dst)
                except OSError as e:
                    dirs.remove(name)
                    merged.failed.append(f"{dst}: {e.strerror}")
            elif not dst.is_dir():  # something else where the deb has a directory: leave all of it
                dirs.remove(name)
                merged.kept += sum(len(f) for _, _, f in os.walk(src))
        for name in files:
            src, dst = Path(top, name), here / name
            if os.path.lexists(dst):
                merged.kept += 1
                continue
            try:
                if src.is_symlink():
                    os.symlink(os.readlink(src), dst)
                else:
                    shutil.copy2(src, dst)
                merged.added += 1
            except OSError as e:
                merged.failed.append(f"{dst}: {e.strerror}")
    return merged


def install_debs(directory: Path, root: Path, log: Callable[[str], None] = print) -> int:
    """Unpack the debs that ``plan_debs`` keeps into ``root``; return how many were unpacked.

    Each deb goes to an empty staging directory first (``dpkg-deb --fsys-tarfile | tar -x``), then
    ``merge_tree`` adds only the files the system lacks. No maintainer script runs and the dpkg
    database is left alone: the system's own packages stay exactly as they were.
    """
    query = subprocess.run(
        ["dpkg-query", "-W", "-f", "${Package} ${Version} ${db:Status-Abbrev}\n"],
        capture_output=True,
        text=True,
    )
    installed = parse_dpkg_query(query.stdout)
    debs = [parse_deb_filename(p) for p in sorted(directory.glob("*.deb"))]
    unpacked = 0
    for deb, unpack, why in plan_debs(debs, installed):
        if not unpack:
            log(f"skip    {deb.package} {deb.version}: {why}")
            continue
        with tempfile.TemporaryDirectory(prefix="gpu-check-deb-") as staging:
            pipe = f"dpkg-deb --fsys-tarfile {_quote(deb.path)} | tar -x -C {_quote(staging)} -f -"
            done = subprocess.run(
                f"set -o pipefail; {pipe}",
                shell=True,
                executable="/bin/bash",
                capture_output=True,
                text=True,
            )
            if done.returncode != 0:
                log(f"FAILED  {deb.package} {deb.version}: {done.stderr.strip()[-300:]}")
                continue
            merged = merge_tree(Path(staging), root)
        unpacked += 1
        counts = f"{merged.added} file(s) added, {merged.kept} already there"
        log(f"unpack  {deb.package} {deb.version}: {why}; {counts}")
        for failure in merged.failed:
            log(f"FAILED  {deb.package}: {failure}")
    return unpacked


def _quote(path: Path | str) -> str:
    return shlex.quote(str(path))
