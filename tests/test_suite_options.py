"""The pytest layer's contract: usage errors exit 4 with the valid choices, device cases skip in one line."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from harness.metrics import gates as gating
from harness.study import Configuration, matrix

REPO = Path(__file__).resolve().parents[1]


def _pytest(*args: str, tmp_path: Path, env: dict | None = None) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "pytest", "tests/test_matrix.py", "-p", "no:cacheprovider", "-q",
           "--report-dir", str(tmp_path / "reports"), "--cache-dir", str(tmp_path / "cache"), *args]
    return subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=600, env=env)


def _skip_lines(stdout: str) -> list[str]:
    return [line for line in stdout.splitlines() if line.startswith("SKIPPED")]


def test_matrix_ids_are_readable_and_complete():
    ids = [c.id for c in matrix()]
    assert len(ids) == len(set(ids)) == 18 + 36 + 36 + 36  # pc float; mobile, arm64, device float+int8
    assert "tensorflow-mobilenet_v2-bim-int8-mobile" in ids
    assert "pytorch-resnet50-fgsm-int8-pc" not in ids  # not a paper configuration
    assert Configuration.parse("pytorch-inception_v3-boundary-float-pc").attack == "boundary"
    with pytest.raises(ValueError, match="must be framework-model-attack-quantization-platform"):
        Configuration.parse("pytorch-inception_v3")


def test_markers_select_the_study_and_only_the_study():
    """`pytest -m pc` is the study on this host, `-m device` the study on a phone; unit tests carry neither."""
    cmd = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "--collect-only", "-q", "-m", "pc or device"]
    result = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    collected = sorted(line.split("[", 1)[1].rstrip("]") for line in result.stdout.splitlines() if "::" in line)
    assert all(line.startswith("tests/test_matrix.py::") for line in result.stdout.splitlines() if "::" in line)
    assert collected == sorted(c.id for c in matrix())


def test_unknown_profile_is_a_usage_error(tmp_path):
    result = _pytest("--profile", "turbo", tmp_path=tmp_path)
    assert result.returncode == 4, result.stdout + result.stderr
    assert "--profile 'turbo' is not in profiles.toml; valid: ['default', 'paper', 'smoke']" in result.stderr


def test_unknown_zoo_and_bad_numbers_are_usage_errors(tmp_path):
    result = _pytest("--zoo", "cifar", tmp_path=tmp_path)
    assert result.returncode == 4 and "invalid choice: 'cifar'" in result.stderr
    result = _pytest("--samples", "0", tmp_path=tmp_path)
    assert result.returncode == 4 and "--samples must be a positive integer, got 0" in result.stderr


def test_empty_selection_is_a_usage_error_listing_choices(tmp_path):
    result = _pytest("-k", "tensorflow-vgg16", tmp_path=tmp_path)
    assert result.returncode == 4, result.stdout + result.stderr
    assert "no test case matches -k 'tensorflow-vgg16'" in result.stderr
    assert "models ['inception_v3', 'mobilenet_v2', 'resnet50']" in result.stderr


def test_threshold_file_naming_an_impossible_configuration_is_a_usage_error(tmp_path):
    document = json.loads(gating.default_path("mini", "default").read_text())
    document["configurations"]["tensorflow-vgg16-fgsm-float-pc"] = document["configurations"].popitem()[1]
    path = tmp_path / "t.json"
    path.write_text(json.dumps(document))
    result = _pytest("--thresholds", str(path), tmp_path=tmp_path)
    assert result.returncode == 4
    assert "configurations this run cannot produce: ['tensorflow-vgg16-fgsm-float-pc']" in result.stderr


def test_a_run_on_other_samples_is_a_fingerprint_error_not_a_verdict(tmp_path):
    result = _pytest("-m", "pc", "--samples", "40", tmp_path=tmp_path)
    assert result.returncode == 4, result.stdout[-2000:] + result.stderr[-2000:]
    assert "was measured on something else than this run" in result.stderr
    assert "samples.n: baseline 300, this run 40" in result.stderr
    result = _pytest("-m", "pc", "--profile", "smoke", "--thresholds",
                     str(gating.default_path("mini", "default")), tmp_path=tmp_path)
    assert result.returncode == 4 and "written for profile 'default', this run uses 'smoke'" in result.stderr


def _pytest_warm(*args: str, tmp_path: Path) -> subprocess.CompletedProcess:
    """Like _pytest, on the suite's own artefact cache (the study's cases fill it first)."""
    cmd = [sys.executable, "-m", "pytest", "tests/test_matrix.py", "-p", "no:cacheprovider", "-q",
           f"--report-dir={tmp_path / 'reports'}", *args]
    return subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=900,
                          env={**os.environ, "HARNESS_RUN_ID": "run"})


def test_write_thresholds_refuses_an_incomplete_matrix(tmp_path):
    target = tmp_path / "mini-default.json"
    result = _pytest_warm("-k", "tensorflow-mobilenet_v2-fgsm-float-pc", "--write-thresholds",
                          f"--thresholds={target}", tmp_path=tmp_path)
    assert result.returncode == 1, result.stdout[-3000:]
    assert "baseline NOT proposed: 125 host configurations did not run" in result.stdout
    assert not target.exists() and not gating.proposal_path(target).exists()
    assert (tmp_path / "reports" / "run" / "report.html").is_file()  # the run's report is still written


def test_a_case_that_raises_is_recorded_and_reported_as_an_error(tmp_path):
    result = _pytest_warm("-k", "tensorflow-mobilenet_v2-fgsm-float-pc", "--samples", "100000",
                          "--write-thresholds", f"--thresholds={tmp_path / 't.json'}", tmp_path=tmp_path)
    assert result.returncode == 1, result.stdout[-3000:]
    run = tmp_path / "reports" / "run"
    record = json.loads((run / "records" / "tensorflow-mobilenet_v2-fgsm-float-pc.json").read_text())
    assert "asked for 100000" in record["error"] and record["passed"] is False
    assert "baseline NOT proposed: 1 configurations ended in an error" in result.stdout
    assert "report NOT written" in result.stdout or "Errors" in (run / "report.html").read_text()


def test_device_cases_skip_with_one_line_when_no_phone_is_attached(tmp_path):
    from harness import suite

    if suite.attached_devices():
        pytest.skip("a phone is attached to this machine")
    result = _pytest("-m", "device", "--virtual-phone", "never", "-rs", tmp_path=tmp_path)
    assert result.returncode == 0, result.stdout[-3000:]
    assert "36 skipped" in result.stdout
    skip_lines = _skip_lines(result.stdout)
    assert len(skip_lines) == 1 and "[36]" in skip_lines[0] and "adb devices" in skip_lines[0]


def test_imagenet_cases_skip_saying_what_to_provide(tmp_path):
    """No images named: one skip line asking for them. Images but no weights: one line naming
    each file and where it goes. A named folder that is not usable: a usage error."""
    from tests.data.test_sources import write_imagenet_folder

    env = {k: v for k, v in os.environ.items() if k != "IMAGENET_DIR"}
    env.update(TORCH_HOME=str(tmp_path / "torch"), KERAS_HOME=str(tmp_path / "keras"))
    result = _pytest("--zoo", "imagenet", "-m", "pc", "-rs", tmp_path=tmp_path, env=env)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "90 skipped" in result.stdout  # pc, mobile and arm64
    (line,) = _skip_lines(result.stdout)
    assert "[90]" in line and "pass --imagenet-dir PATH (or set IMAGENET_DIR)" in line

    folder = write_imagenet_folder(tmp_path / "val", {1: 3, 2: 5})
    result = _pytest("--zoo", "imagenet", "--imagenet-dir", str(folder), "-m", "pc", "-rs", tmp_path=tmp_path, env=env)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    (line,) = _skip_lines(result.stdout)
    assert "6 of the imagenet zoo's weight files are not on this machine" in line
    assert str(tmp_path / "torch" / "hub" / "checkpoints" / "resnet50-0676ba61.pth") in line
    assert str(tmp_path / "keras" / "models" / "inception_v3_weights_tf_dim_ordering_tf_kernels.h5") in line

    result = _pytest("--zoo", "imagenet", "--imagenet-dir", str(tmp_path / "nowhere"), tmp_path=tmp_path, env=env)
    assert result.returncode == 4 and f"{tmp_path / 'nowhere'}: ImageNet validation folder not found" in result.stderr
