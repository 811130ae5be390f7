"""Benchmark commands (``python -m harness.bench.<name>``); results go to ``reports/bench/``."""

from __future__ import annotations


def environment(distributions) -> dict:
    """What a benchmark ran on: the installed versions of ``distributions``, Python, the machine and
    its load (timings on a shared machine are read beside it)."""
    import os
    import platform
    import sys
    from importlib.metadata import PackageNotFoundError, version

    versions = {"python": sys.version.split()[0]}
    for dist in distributions:
        try:
            versions[dist] = version(dist)
        except PackageNotFoundError:
            versions[dist] = None
    return {"versions": versions, "platform": platform.platform(), "machine": platform.machine(),
            "cpu_count": os.cpu_count(),
            "load_average": list(os.getloadavg()) if hasattr(os, "getloadavg") else None}
