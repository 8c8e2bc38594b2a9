"""scripts/gpu_check.py, the GPU machine check: its parts, and the whole check on this machine (which has
no GPU, so the report must say so rather than pass)."""

from __future__ import annotations

import importlib
import importlib.util
import json
import os
import shutil
import struct
import subprocess
import sys
import zlib
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "gpu_check.py"


def _load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("gpu_check", SCRIPT)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules["gpu_check"] = module  # dataclasses look their module up by name
    spec.loader.exec_module(module)
    return module


gc = _load()
# Its parts, one job each (importable once gpu_check.py has put scripts/ on sys.path).
png = importlib.import_module("gpucheck.png")
debs = importlib.import_module("gpucheck.debs")
egl = importlib.import_module("gpucheck.egl")


def decode_png(data: bytes) -> tuple[int, int, bytes]:
    """(width, height, RGB rows) of an 8-bit RGB, non-interlaced PNG whose rows use filter 0 (what
    gpu_check writes), every chunk's CRC checked: an independent reader, not the writer's mirror."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG signature"
    pos, chunks = 8, []
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind, body = data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + length]
        (crc,) = struct.unpack(">I", data[pos + 8 + length : pos + 12 + length])
        assert zlib.crc32(kind + body) == crc, f"bad CRC in {kind!r}"
        chunks.append((kind, body))
        pos += 12 + length
    assert chunks[0][0] == b"IHDR" and chunks[-1][0] == b"IEND"
    width, height, depth, colour, compression, filtering, interlace = struct.unpack(">IIBBBBB", chunks[0][1])
    assert (depth, colour, compression, filtering, interlace) == (8, 2, 0, 0, 0)
    raw = zlib.decompress(b"".join(body for kind, body in chunks if kind == b"IDAT"))
    stride = width * 3 + 1
    assert len(raw) == stride * height
    rows = []
    for y in range(height):
        row = raw[y * stride : (y + 1) * stride]
        assert row[0] == 0, f"row {y} uses filter {row[0]}"
        rows.append(row[1:])
    return width, height, b"".join(rows)


def test_png_round_trip() -> None:
    width, height = 7, 3
    rgb = bytes(
        (x * 37 + y * 11 + c * 5) % 256 for y in range(height) for x in range(width) for c in range(3)
    )
    assert decode_png(png.encode_png(width, height, rgb)) == (width, height, rgb)
    with pytest.raises(ValueError):
        png.encode_png(width, height, rgb[:-1])


def test_bgrx_pixels_become_rgb_and_colours_ignore_padding() -> None:
    bgrx = bytes([1, 2, 3, 0, 1, 2, 3, 255, 9, 8, 7, 0])  # two pixels differ only in the padding byte
    assert png.bgrx_to_rgb(bgrx) == bytes([3, 2, 1, 3, 2, 1, 7, 8, 9])
    assert png.count_colours(bgrx) == 2


APT_DEPENDS = """\
fontconfig-config
 |Depends: debconf
  Depends: <debconf-2.0>
    cdebconf
    debconf
 |Depends: fonts-dejavu-core
  Depends: ttf-bitstream-vera
tigervnc-standalone-server
  Depends: libc6
  Depends: libsystemd0
    libelogind0
  Depends: <perl:any>
    perl
  Recommends: xfonts-base
  Depends: libgl1
libgl1
  Depends: libglvnd0
  Depends: libglx0
libglx0
  Depends: libglvnd0
  Depends: libglx-mesa0
libglvnd0
  Depends: libc6
"""


def test_apt_depends_output_is_parsed_into_alternatives() -> None:
    parsed = debs.parse_apt_depends(APT_DEPENDS)
    assert parsed["fontconfig-config"] == [
        ["debconf", "cdebconf"],
        ["fonts-dejavu-core", "ttf-bitstream-vera"],
    ]
    # a provider under a real package is no alternative; a virtual one stands for its providers;
    # Recommends are not followed
    assert parsed["tigervnc-standalone-server"] == [["libc6"], ["libsystemd0"], ["perl"], ["libgl1"]]
    assert parsed["libglvnd0"] == [["libc6"]]


def test_closure_follows_first_alternatives_and_stops_at_skipped_packages() -> None:
    parsed = debs.parse_apt_depends(APT_DEPENDS)
    asked: list[list[str]] = []

    def lookup(names: list[str]) -> dict[str, list[list[str]]]:
        asked.append(names)
        return {n: parsed.get(n, []) for n in names}

    shipped = debs.closure(["tigervnc-standalone-server", "fontconfig-config"], lookup, skip=debs.NOT_SHIPPED)
    assert shipped == sorted(
        [
            "tigervnc-standalone-server",
            "fontconfig-config",
            "libgl1",
            "libglvnd0",
            "libglx0",
            "fonts-dejavu-core",
        ]
    )
    assert not {"libc6", "libsystemd0", "perl", "debconf", "libglx-mesa0"} & set(shipped)
    assert all(len(batch) == len(set(batch)) for batch in asked)


def test_deb_file_names_and_the_dpkg_database() -> None:
    deb = debs.parse_deb_filename(Path("/x/libxfont2_1%3a2.0.6-1+deb12u1_amd64.deb"))
    assert (deb.package, deb.version, deb.arch) == ("libxfont2", "1:2.0.6-1+deb12u1", "amd64")
    with pytest.raises(ValueError):
        debs.parse_deb_filename(Path("nonsense.deb"))
    installed = debs.parse_dpkg_query(
        "libx11-6 2:1.8.7-1build1 ii \nlibgnutls30t64 3.8.3-1.1ubuntu3 ii \nold-conf 1.0 rc \nhalf 2.0 iU \n"
    )
    assert installed == {"libx11-6": "2:1.8.7-1build1", "libgnutls30t64": "3.8.3-1.1ubuntu3", "half": "2.0"}


@pytest.mark.skipif(not shutil.which("dpkg"), reason="needs dpkg --compare-versions")
def test_deb_plan_skips_what_the_system_has_at_an_equal_or_newer_version() -> None:
    deb_files = [
        debs.DebFile(Path(f"{name}.deb"), name, version, "amd64")
        for name, version in [
            ("libx11-6", "2:1.8.4-2+deb12u2"),  # Ubuntu 24.04 has 2:1.8.7: newer
            ("xterm", "379-1"),  # same version installed
            ("libgnutls30", "3.7.9-2+deb12u4"),  # Ubuntu's 64-bit-time rebuild is installed
            ("libxfont2", "1:2.0.6-1+deb12u1"),  # installed, but older
            ("tigervnc-common", "1.12.0+dfsg-8"),  # not there at all
        ]
    ]
    installed = {
        "libx11-6": "2:1.8.7-1build1",
        "xterm": "379-1",
        "libgnutls30t64": "3.8.3-1.1ubuntu3",
        "libxfont2": "1:2.0.5-1",
    }
    plan = {deb.package: (unpack, why) for deb, unpack, why in debs.plan_debs(deb_files, installed)}
    assert plan["libx11-6"][0] is False and "installed at 2:1.8.7" in plan["libx11-6"][1]
    assert plan["xterm"][0] is False
    assert plan["libgnutls30"][0] is False and "t64" in plan["libgnutls30"][1]
    assert plan["libxfont2"] == (True, "installed at older 1:2.0.5-1: adding only its missing files")
    assert plan["tigervnc-common"] == (True, "not installed")


def test_merge_keeps_everything_that_is_there_and_the_lib_link(tmp_path: Path) -> None:
    system, deb = tmp_path / "system", tmp_path / "deb"
    (system / "usr/lib").mkdir(parents=True)
    (system / "lib").symlink_to("usr/lib")  # Ubuntu's merged /usr
    (system / "usr/lib/libold.so.1").write_text("the system's")
    (system / "etc").mkdir(mode=0o700)
    (deb / "lib/x86_64-linux-gnu").mkdir(parents=True)
    (deb / "lib/x86_64-linux-gnu/libnew.so.1.0").write_text("new")
    (deb / "lib/x86_64-linux-gnu/libnew.so.1").symlink_to("libnew.so.1.0")
    (deb / "lib/libold.so.1").write_text("debian's")
    (deb / "etc/X11").mkdir(parents=True)
    (deb / "etc").chmod(0o755)
    (deb / "usr/bin").mkdir(parents=True)
    (deb / "usr/bin/X11").symlink_to(".")
    (deb / "usr/bin/xterm").write_text("#!/bin/sh\n")
    (deb / "usr/bin/xterm").chmod(0o755)

    merged = debs.merge_tree(deb, system)
    assert (merged.added, merged.kept, merged.failed) == (4, 1, [])
    assert (system / "lib").is_symlink() and os.readlink(system / "lib") == "usr/lib"
    assert (system / "usr/lib/libold.so.1").read_text() == "the system's"
    assert (system / "usr/lib/x86_64-linux-gnu/libnew.so.1").resolve().read_text() == "new"
    assert (system / "etc").stat().st_mode & 0o777 == 0o700  # an existing directory is not chmod-ed
    assert (system / "etc/X11").is_dir()
    assert os.readlink(system / "usr/bin/X11") == "."
    assert os.access(system / "usr/bin/xterm", os.X_OK)


def test_merge_reports_what_it_cannot_write_and_goes_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    system, deb = tmp_path / "system", tmp_path / "deb"
    system.mkdir()
    (deb / "mounted").mkdir(parents=True)
    (deb / "mounted/libGLdispatch.so.0").write_text("x")
    (deb / "other").mkdir()
    (deb / "other/file").write_text("y")
    copy = shutil.copy2

    def read_only_mount(src: Path, dst: Path) -> object:
        if "mounted" in str(dst):
            raise OSError(30, "Read-only file system")
        return copy(src, dst)

    monkeypatch.setattr(debs.shutil, "copy2", read_only_mount)
    merged = debs.merge_tree(deb, system)
    assert merged.added == 1 and merged.failed == [
        f"{system}/mounted/libGLdispatch.so.0: Read-only file system"
    ]
    assert (system / "other/file").read_text() == "y"


def test_egl_probe_reports_no_device_when_there_is_no_libegl(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(egl, "_load_first", lambda names: None)
    probe = egl.egl_probe()
    assert probe["ok"] is False and probe["error"].startswith("no EGL device")
    assert probe["devices"] == []
    assert egl.probe_summary(probe).startswith("EGL: no EGL device")


def test_egl_probe_is_retried_with_a_vendor_file_glvnd_may_not_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    vendor = tmp_path / "10_nvidia.json"
    vendor.write_text("{}")
    monkeypatch.setattr(egl, "VENDOR_FILES", (str(tmp_path / "absent.json"), str(vendor)))
    monkeypatch.delenv("__EGL_VENDOR_LIBRARY_FILENAMES", raising=False)
    software = {"ok": True, "devices": [{"index": 0, "ok": True, "gl_renderer": "llvmpipe (LLVM 15)"}]}
    gpu = {"ok": True, "devices": [{"index": 0, "ok": True, "gl_renderer": "NVIDIA H200/PCIe/SSE2"}]}
    seen: list[str | None] = []

    def fake(env: dict[str, str] | None = None, timeout: float = 0) -> dict[str, object]:
        seen.append(env.get("__EGL_VENDOR_LIBRARY_FILENAMES") if env else None)
        return gpu if env else software

    monkeypatch.setattr(egl, "run_egl_probe", fake)
    probe = egl.probe_egl_on_gpu()
    assert seen == [None, str(vendor)]
    assert probe["vendor_file"] == str(vendor) and probe["first_try"] == software
    assert egl.gpu_devices(probe) == gpu["devices"] and egl.gpu_devices(software) == []


def desktop_leftovers(directory: str) -> list[str]:
    """Command lines of live processes that name the desktop's directory (Xvnc, the reaper)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
            if directory in cmdline:
                found.append(cmdline)
    return found


@pytest.mark.skipif(
    not (shutil.which("Xvnc") or shutil.which("Xtigervnc")) or not shutil.which("xterm"),
    reason="needs TigerVNC and xterm (devstack/install)",
)
def test_the_check_on_this_machine_reports_what_it_has(tmp_path: Path) -> None:
    out = tmp_path / "out"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), "--out", str(out)], env=env, capture_output=True, text=True, timeout=240
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads((out / "report.json").read_text())
    checks = report["checks"]
    assert (out / "report.txt").read_text().startswith("jupyter-vnc GPU check: ")

    assert checks["desktop"]["result"] == "pass", checks["desktop"]
    assert report["status"]["state"] == "running" and report["status"]["vnc_server"] in {
        "tigervnc",
        "turbovnc",
    }

    # Both kinds of machine are asserted on: a GPU node must pass the GPU's checks, and one without must
    # say so (reported, not faked). VirtualGL is part of the install (devstack/install builds it from
    # vendor/): its absence is a broken test bed, not a reason to check less.
    has_gpu = shutil.which("nvidia-smi") is not None
    assert os.access("/opt/VirtualGL/bin/vglrun", os.X_OK), "no VirtualGL: run devstack/install"
    if has_gpu:
        assert checks["gpu"]["result"] == "pass" and report["status"]["gpus"], checks["gpu"]
        assert checks["egl_gpu"]["result"] == "pass", checks["egl_gpu"]
    else:
        assert checks["gpu"]["result"] == "fail" and "no NVIDIA GPU" in checks["gpu"]["detail"]
        assert report["status"]["gpus"] == []
        assert checks["egl_gpu"]["result"] == "fail"
        detail = checks["egl_gpu"]["detail"]
        assert "no EGL device" in detail or "software" in detail, detail
        assert report["result"] == "fail"

    # The desktop's session ran under VirtualGL and its status probe went through it; the GL figures
    # were measured. Without a GPU the renderer is Mesa's, and the checks that need the GPU say so.
    assert checks["virtualgl"]["result"] == "pass", checks["virtualgl"]
    assert report["status"]["gl_virtualgl"] is True, report["status"]
    assert "through VirtualGL" in checks["gl_in_desktop"]["detail"]
    assert report["gl"]["gpu"]["egl_device"] and report["gl"]["gpu"]["fps"] > 0, report["gl"]["gpu"]
    assert "frames/s delivered at 1920x1080" in checks["stream"]["detail"], checks["stream"]
    assert checks["software_gl"]["result"] in {"pass", "skip"}, checks["software_gl"]
    if has_gpu:
        assert "llvmpipe" not in report["status"]["gl_renderer"], report["status"]["gl_renderer"]
        assert checks["gl_in_desktop"]["result"] == "pass", checks["gl_in_desktop"]
        assert checks["glxspheres_gpu"]["result"] == "pass", checks["glxspheres_gpu"]
        assert checks["nvidia_smi_process"]["result"] == "pass", checks["nvidia_smi_process"]
    else:
        assert "llvmpipe" in report["status"]["gl_renderer"]
        assert checks["gl_in_desktop"]["result"] == "fail"
        assert (
            checks["glxspheres_gpu"]["result"] == "fail" and "llvmpipe" in checks["glxspheres_gpu"]["detail"]
        )
        assert checks["nvidia_smi_process"]["result"] == "fail"
    assert (out / "glxspheres-gpu.log").exists() and (out / "session-glxspheres.log").exists()

    assert checks["screenshot"]["result"] == "pass", checks["screenshot"]
    width, height, rgb = decode_png((out / "screenshot.png").read_bytes())
    assert (width, height) == (report["status"]["width"], report["status"]["height"]) == (1920, 1080)
    colours = {rgb[i : i + 3] for i in range(0, len(rgb), 3)}
    assert len(colours) > 4, f"only {len(colours)} colours: the terminal was not drawn"

    assert checks["stopped"]["result"] == "pass", checks["stopped"]
    assert report["processes"]["while_running"] and not report["processes"]["left_after_stop"]
    socket = checks["desktop"]["detail"].rsplit("VNC socket ", 1)[1]
    assert not desktop_leftovers(str(Path(socket).parent))
    assert not Path(socket).exists()
    assert set(os.listdir(out)) >= {"report.json", "report.txt", "screenshot.png", "xvnc.log", "session.log"}
