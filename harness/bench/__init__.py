"""Benchmark commands (``python -m harness.bench.<name>``); results go to ``reports/bench/``."""
