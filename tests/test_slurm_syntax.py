"""A site's req_* values in Slurm's own spellings, read as the defaults of the spawn form."""

from __future__ import annotations

import pytest

from jupyter_vnc.slurm_syntax import gpus_in_gres, gres_with_gpus, hours, memory_gb

# No service: also run against the lowest declared dependency versions (devstack/floors).
pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("value", "gib"),
    [("32G", 32), ("32GB", 32), ("32g", 32), ("32000", 31), ("32768M", 32), ("1T", 1024), ("512M", 1),
     ("", None), ("lots", None), ("32X", None)],
)  # fmt: skip
def test_memory_in_slurms_units(value: str, gib: int | None) -> None:
    assert memory_gb(value) == gib


@pytest.mark.parametrize(
    ("value", "expected"),
    [("8:00:00", 8.0), ("90", 1.5), ("30:00", 0.5), ("1-00:00:00", 24.0), ("1-12", 36.0), ("2-06:30", 54.5),
     ("1:30:36", 1.51), ("1:30:10", 1.5028), ("1-00:00:36", 24.01), ("10:30", 0.175),
     ("0", None), ("", None), ("UNLIMITED", None), ("8h", None)],
)  # fmt: skip
def test_walltime_in_slurms_spellings(value: str, expected: float | None) -> None:
    assert hours(value) == expected


@pytest.mark.parametrize(
    ("gres", "count"),
    [
        ("gpu:a100:1", 1),
        ("gpu:2", 2),
        ("gpu", 1),
        ("gpu:a100", 1),  # a type and no count: one GPU
        ("lscratch:10,gpu:v100:4", 4),
        ("shard:2", None),
        ("", None),
    ],
)
def test_gpu_count_in_gres(gres: str, count: int | None) -> None:
    assert gpus_in_gres(gres) == count


@pytest.mark.parametrize(
    ("gres", "count", "expected"),
    [("gpu:a100:1", 2, "gpu:a100:2"), ("gpu:a100", 3, "gpu:a100:3"), ("gpu:1", 2, "gpu:2"),
     ("gpu:a100:1,lscratch:10", 0, "lscratch:10"), ("lscratch:10", 1, "lscratch:10,gpu:1"), ("", 1, "gpu:1"),
     ("", 0, ""), ("lscratch:10,tmp:5,gpu:a100:1", 2, "lscratch:10,tmp:5,gpu:a100:2")],
)  # fmt: skip
def test_the_users_gpu_count_keeps_the_sites_gpu_type(gres: str, count: int, expected: str) -> None:
    assert gres_with_gpus(gres, count) == expected
