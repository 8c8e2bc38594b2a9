"""The parts of the GPU machine check (scripts/gpu_check.py), one job each."""
