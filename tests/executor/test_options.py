"""--executor and --ray-address: usage errors said at once, for pytest (exit 4) and the main job (exit 2)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.ray_cluster import free_port

REPO = Path(__file__).resolve().parents[2]


def test_pytest_with_an_unreachable_ray_address_is_a_usage_error(tmp_path):
    port = free_port()
    run = subprocess.run([sys.executable, "-m", "pytest", "tests/test_matrix.py", "-p", "no:cacheprovider", "-q",
                          "--report-dir", str(tmp_path), "--executor", "ray", "--ray-address", f"127.0.0.1:{port}"],
                         cwd=REPO, capture_output=True, text=True, timeout=300)
    assert run.returncode == 4, run.stdout[-2000:] + run.stderr[-2000:]
    assert f"--ray-address 127.0.0.1:{port}: no Ray head reachable there" in run.stderr + run.stdout


def test_main_job_rejects_an_address_without_the_ray_executor(tmp_path):
    run = subprocess.run([sys.executable, "-m", "harness", "--report-dir", str(tmp_path), "--ray-address", "h:1"],
                         cwd=REPO, capture_output=True, text=True, timeout=300)
    assert run.returncode == 2 and "--ray-address needs --executor ray" in run.stderr, run.stderr[-2000:]
