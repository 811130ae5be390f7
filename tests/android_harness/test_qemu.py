"""qemu for the arm64 platform: found, refused when missing or too old (with how to install),
and a runner process that dies is a clear failure."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from android_harness import qemu
from harness.runtime import PlatformUnavailable
from harness.runtime.registry import check_available

REPO = Path(__file__).resolve().parents[2]


def test_missing_qemu_says_how_to_install_it(monkeypatch):
    monkeypatch.setenv(qemu.QEMU_ENV, "/nonexistent/qemu-aarch64-static")
    with pytest.raises(qemu.QemuUnavailable, match="no /nonexistent/qemu-aarch64-static on this host") as info:
        qemu.find_qemu()
    assert "bookworm-backports" in str(info.value) and "qemu-user-static" in str(info.value)
    with pytest.raises(PlatformUnavailable, match="make system-deps"):
        check_available("arm64")


def test_qemu_older_than_8_is_refused(tmp_path, monkeypatch):
    old = tmp_path / "qemu-aarch64"
    old.write_text("#!/bin/sh\necho 'qemu-aarch64 version 7.2.19 (Debian 1:7.2+dfsg-7+deb12u18)'\n")
    old.chmod(0o755)
    monkeypatch.setenv(qemu.QEMU_ENV, str(old))
    with pytest.raises(qemu.QemuUnavailable, match=r"too old .*7\.2\.19.*LiteRT crashes"):
        qemu.find_qemu()


def test_the_installed_qemu_is_new_enough():
    try:
        found = qemu.find_qemu()
    except qemu.QemuUnavailable as exc:
        pytest.skip(str(exc))
    assert found.version_tuple >= qemu.MIN_VERSION


def test_a_runner_that_dies_without_its_status_line_is_a_clear_failure():
    argv = ["sh", "-c", "echo 'runner: job 1/2 j0: ok'; echo 'Segmentation fault' >&2; exit 139"]
    seen = []
    with pytest.raises(qemu.RunnerFailed, match=r"exited with code 139 without finishing(.|\n)*Segmentation fault"):
        qemu._stream(argv, dict(os.environ), 60, seen.append, "runner under test")
    assert seen == ["runner: job 1/2 j0: ok"]  # progress lines are relayed as they come


def test_a_runner_that_hangs_is_killed_at_its_timeout():
    with pytest.raises(qemu.RunnerFailed, match="killed after 1 s"):
        qemu._stream(["sleep", "30"], dict(os.environ), 1, print, "runner under test")


def test_arm64_cases_skip_in_one_line_when_qemu_is_missing(tmp_path):
    env = {**os.environ, qemu.QEMU_ENV: "/nonexistent/qemu-aarch64-static"}
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "tests/test_matrix.py", "-m", "pc", "-k", "resnet50-fgsm-int8-arm64",
         "-p", "no:cacheprovider", "--report-dir", str(tmp_path), "-q"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:]
    assert "2 skipped" in done.stdout
    assert "SKIPPED [2] tests/test_matrix.py" in done.stdout and "install qemu-user 8.0 or later" in done.stdout
