"""Helpers for the tests, the benchmarks and the GPU check (scripts/gpu_check.py); not shipped in the wheel.

The repository's root must be on ``sys.path``: pytest puts it there (pyproject.toml: ``pythonpath``),
``benchmarks/common.py`` and ``scripts/gpu_check.py`` do it themselves.
"""
