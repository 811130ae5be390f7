"""The pytest layer's contract: usage errors exit 4 with the valid choices, device cases skip in one line."""

from __future__ import annotations

import json
import re
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from harness.attack.profiles import load_profile
from harness.metrics import gates as gating
from harness.study import Configuration, matrix
from tests.android_harness.test_adb_server import _fake_adb, private_adb_port  # noqa: F401  (a fixture)

REPO = Path(__file__).resolve().parents[1]
DEFAULT_ATTACKS = load_profile("default").attack_names


def _pytest(*args: str, tmp_path: Path, env: dict | None = None) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "pytest", "tests/test_matrix.py", "-p", "no:cacheprovider", "-q",
           "--report-dir", str(tmp_path / "reports"), "--cache-dir", str(tmp_path / "cache"), *args]
    return subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=600, env=env)


def _skip_lines(stdout: str) -> list[str]:
    return [line for line in stdout.splitlines() if line.startswith("SKIPPED")]


def test_matrix_ids_are_readable_and_complete():
    ids = [c.id for c in matrix(attacks=DEFAULT_ATTACKS)]
    assert DEFAULT_ATTACKS == ("fgsm", "bim", "boundary")  # the paper's, and the committed baseline's
    # pc float; mobile, arm64, device float+int8 of 12 deployments (PyTorch's weights on 3 runtimes)
    assert len(ids) == len(set(ids)) == 18 + 72 + 72 + 72
    assert "tensorflow-mobilenet_v2-bim-int8-mobile" in ids
    assert "pytorch-resnet50-fgsm-int8-pc" not in ids  # not a paper configuration
    assert Configuration.parse("pytorch-inception_v3-boundary-float-pc").attack == "boundary"
    with pytest.raises(ValueError, match="must be framework-model-attack-quantization-platform"):
        Configuration.parse("pytorch-inception_v3")


def test_markers_select_the_study_and_only_the_study():
    """`pytest -m pc` is the study on this host, `-m device` the study on a phone; unit tests carry neither."""
    cmd = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "--collect-only", "-q", "-m", "pc or device",
           "--virtual-phone-scope", "full"]
    result = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    collected = sorted(line.split("[", 1)[1].rstrip("]") for line in result.stdout.splitlines() if "::" in line)
    assert all(line.startswith("tests/test_matrix.py::") for line in result.stdout.splitlines() if "::" in line)
    assert collected == sorted(c.id for c in matrix(attacks=DEFAULT_ATTACKS))


def test_the_real_zoo_collects_its_own_matrix():
    """A zoo with one model collects that model's cases only (its own COMBINATIONS), on every platform."""
    cmd = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "--collect-only", "-q", "-m", "pc or device",
           "--zoo", "real"]
    result = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    collected = sorted(line.split("[", 1)[1].rstrip("]") for line in result.stdout.splitlines() if "::" in line)
    assert collected == sorted(c.id for c in matrix(attacks=load_profile("real").attack_names, zoo="real"))
    # pc: 3 attacks; mobile, arm64, device: 3 attacks x 2 quantizations x 2 runtimes
    assert len(collected) == 3 + 3 * 12 and all(i.startswith("pytorch-efficientnet_lite0-") for i in collected)


def test_unknown_profile_is_a_usage_error(tmp_path):
    result = _pytest("--profile", "turbo", tmp_path=tmp_path)
    assert result.returncode == 4, result.stdout + result.stderr
    assert "--profile 'turbo' is not in profiles.toml; valid: ['default', 'extended', 'paper', 'real', 'smoke', 'user']" in result.stderr


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
    assert "baseline NOT proposed: 161 host configurations did not run" in result.stdout
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


def test_device_cases_skip_with_one_line_when_no_phone_is_attached(tmp_path, private_adb_port):
    """On an adb server of its own (a private port), which sees no phone whatever is plugged
    into this machine or the session's virtual phone."""
    from android_harness import adb

    try:
        assert adb.attached_devices() == []  # starts the private server, if adb is installed
        result = _pytest("-m", "device", "--virtual-phone", "never", "-rs", tmp_path=tmp_path)
    finally:
        if shutil.which("adb"):
            subprocess.run(["adb", "kill-server"], capture_output=True, timeout=30)  # the private one
    assert result.returncode == 0, result.stdout[-3000:]
    assert "72 skipped" in result.stdout
    skip_lines = _skip_lines(result.stdout)
    assert len(skip_lines) == 1 and "[72]" in skip_lines[0] and "adb devices" in skip_lines[0]


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


# -- a new user's rough edges: each one a usage error in pytest and in `python -m harness` ----------
MALFORMED_PROFILE = """[default]
samples = "300"
calibration = 200
seed = 0
attack_batch_size = 150
fgsm = { eps = 0.1 }
bim = { eps = 0.1, steps = 10, rel_stepsize = 0.2 }
boundary = { steps = 5, spherical_step = 0.01, source_step = 0.01, init_directions = 5, init_retries = 1 }
"""


def _main(capsys, *argv: str) -> tuple[int, str]:
    from harness.__main__ import main

    with pytest.raises(SystemExit) as exited:
        main(list(argv))
    return exited.value.code, capsys.readouterr().err


def test_malformed_profile_file_is_a_usage_error_naming_file_profile_and_key(tmp_path, capsys, monkeypatch):
    bad = tmp_path / "my-profiles.toml"
    bad.write_text(MALFORMED_PROFILE)
    expected = f"{bad} [default]: samples must be a positive integer, got '300'"
    result = _pytest(tmp_path=tmp_path, env={**os.environ, "HARNESS_PROFILES": str(bad)})
    assert result.returncode == 4, result.stdout[-2000:] + result.stderr[-2000:]
    assert expected in result.stderr and "Traceback" not in result.stderr
    monkeypatch.setenv("HARNESS_PROFILES", str(bad))
    code, err = _main(capsys)
    assert code == 2 and expected in err


def test_imagenet_dir_with_the_mini_zoo_is_a_usage_error(tmp_path, capsys, monkeypatch):
    result = _pytest("--imagenet-dir", str(tmp_path), tmp_path=tmp_path)
    assert result.returncode == 4, result.stdout[-2000:] + result.stderr[-2000:]
    assert f"--imagenet-dir {tmp_path} only applies to --zoo imagenet (this run uses --zoo mini" in result.stderr
    code, err = _main(capsys, "--imagenet-dir", str(tmp_path))
    assert code == 2 and "only applies to --zoo imagenet" in err
    # $IMAGENET_DIR is a standing setting: the mini zoo ignores it.
    from harness.suite import imagenet_dir_misuse

    monkeypatch.setenv("IMAGENET_DIR", str(tmp_path))
    assert imagenet_dir_misuse("mini", None) is None and imagenet_dir_misuse("imagenet", str(tmp_path)) is None


def test_more_samples_than_the_eligible_pool_fails_each_case_with_one_line(tmp_path):
    """The pool is known only after every model has classified the candidates: the first case
    finds it, later cases fail at once with the same one-line message (no traceback). (Against
    the committed 300-sample baseline the sample count alone is a usage error; proposing a
    baseline for 100000 samples is where the pool is what stops the run.)"""
    cases = "pytorch-mobilenet_v2-fgsm-float-pc or pytorch-mobilenet_v2-bim-float-pc"
    result = _pytest("--samples", "100000", "-m", "pc", "-k", cases, "-rf", "--write-thresholds",
                     f"--thresholds={tmp_path / 'mini-default.json'}",
                     tmp_path=tmp_path, env={**os.environ, "COLUMNS": "400"})
    assert result.returncode == 1, result.stdout[-3000:] + result.stderr[-3000:]
    assert "2 failed" in result.stdout
    lines = [line for line in result.stdout.splitlines() if line.startswith("FAILED")]
    assert len(lines) == 2, result.stdout[-3000:]
    for line in lines:
        assert "sample selection: asked for 100000 evaluation samples but only" in line
        assert "(the eligible pool): ask for at most" in line
    assert "Traceback" not in result.stdout and "raise " not in result.stdout and "During handling" not in result.stdout
    assert result.stdout.count("candidates right") == 6  # the six models classified the pool once, not per case


# -- a broken adb is not "no phone" (the adb plumbing itself: tests/android_harness/test_adb_server.py)
def test_device_cases_skip_saying_adb_is_broken(tmp_path, private_adb_port):
    env = {**os.environ, "PATH": f"{_fake_adb(tmp_path / 'bin')}{os.pathsep}{os.environ['PATH']}",
           "ANDROID_ADB_SERVER_PORT": str(private_adb_port), "COLUMNS": "400"}
    env.pop("ANDROID_SERIAL", None)
    result = _pytest("-m", "device", "--virtual-phone", "never", "-rs", tmp_path=tmp_path, env=env)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "72 skipped" in result.stdout
    (line,) = _skip_lines(result.stdout)
    assert "[72]" in line and "adb is installed but broken: `adb start-server`" in line
    assert "exited with status 1" in line and "no Android phone attached" not in line


def _collected_device_ids(result: subprocess.CompletedProcess) -> list[str]:
    return [line.split("[", 1)[1].rstrip("]") for line in result.stdout.splitlines()
            if line.startswith("tests/test_matrix.py::") and line.endswith("-device]")]


def test_the_virtual_phone_runs_one_model_per_framework_unless_asked_for_all(tmp_path):
    """The virtual phone repeats arm64 bit for bit: by default it keeps the first model of each
    framework (every runtime and quantization still gated there) and says so; scope full keeps all."""
    sample = _pytest("--collect-only", "-m", "device", "--virtual-phone", "always", tmp_path=tmp_path)
    assert sample.returncode == 0, sample.stdout[-3000:]
    ids = _collected_device_ids(sample)
    assert len(ids) == 24 and {i.split("-")[1] for i in ids} == {"mobilenet_v2"}
    kept = {(c.framework, c.quantization, c.runtime) for c in map(Configuration.parse, ids)}
    wanted = {(c.framework, c.quantization, c.runtime) for c in matrix(("device",), DEFAULT_ATTACKS)}
    assert kept == wanted  # every (framework, quantization, runtime) keeps its device cases
    assert "virtual phone: 24 of 72 device cases run" in sample.stdout
    full = _pytest("--collect-only", "-m", "device", "--virtual-phone", "always", "--virtual-phone-scope", "full",
                   tmp_path=tmp_path)
    assert len(_collected_device_ids(full)) == 72 and "virtual phone:" not in full.stdout
    never = _pytest("--collect-only", "-m", "device", "--virtual-phone", "never", tmp_path=tmp_path)
    assert len(_collected_device_ids(never)) == 72  # a real phone (or none: they skip) runs them all
