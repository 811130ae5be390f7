"""tools/check-disk.sh: `make run` and `make test` stop early, with numbers, on a disk too full."""

import os
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "tools" / "check-disk.sh"


def run(*args, **env):
    return subprocess.run(["bash", str(SCRIPT), *args], capture_output=True, text=True,
                          env={**os.environ, "HARNESS_SKIP_DISK_CHECK": "", **env})


def test_enough_space_passes_silently(tmp_path):
    result = run("make test", "0", "0", TMPDIR=str(tmp_path))
    assert result.returncode == 0 and result.stderr == ""


def test_a_disk_too_small_fails_naming_the_folder_and_the_numbers(tmp_path):
    result = run("make test", "100000", "4", TMPDIR=str(tmp_path))
    assert result.returncode == 1
    assert "make test needs about" in result.stderr
    assert "100004 GiB" in result.stderr or "100000 GiB" in result.stderr  # one file system, or two
    assert str(REPO) in result.stderr and "GiB is free" in result.stderr


def test_the_temporary_folder_is_checked_too(tmp_path):
    result = run("make test", "0", "100000", TMPDIR=str(tmp_path))
    assert result.returncode == 1 and "100000" in result.stderr


def test_the_check_can_be_skipped(tmp_path):
    assert run("make test", "100000", "100000", TMPDIR=str(tmp_path), HARNESS_SKIP_DISK_CHECK="1").returncode == 0
