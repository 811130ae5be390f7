"""Your own model through the whole study: `python -m harness --model ... --images ...` and the
gated `pytest -m pc --model ...` run, on files made at test time from the mini zoo.

Two deployments, as the README promises: a float .tflite, and a fully int8 .tflite with uint8
input and output and 1001 outputs (background first); each with its Keras source model, so the
report holds direct attacks on the file and transferred PNGs from the source, on the same samples.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from harness.data import fashion_mnist
from harness.data.samples import calibration_set
from harness.zoo import registry
from tests.zoo import byo_support as byo

REPO = Path(__file__).resolve().parents[1]
# The user profile, smaller: the same attacks (transfer FGSM and BIM, direct Boundary, HopSkipJump
# and Square), fewer samples and steps, so each run takes seconds.
PROFILE = """[user]
samples = 40
calibration = 1
seed = 0
attack_batch_size = 20
emulated_samples = 4
fgsm = { eps = 0.01568627450980392 }
bim = { eps = 0.01568627450980392, steps = 5, rel_stepsize = 0.2 }
[user.direct]
samples = 6
emulated_samples = 1
boundary = { steps = 40, spherical_step = 0.01, source_step = 0.01, init_directions = 20, init_retries = 2 }
hsj = { steps = 3, initial_gradient_eval_steps = 10, max_gradient_eval_steps = 20, constraint = "l2", init_directions = 20, init_retries = 2 }
square = { eps = 0.05, max_iter = 100, p_init = 0.3 }
"""


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("byo-study")
    model = registry.load("mini", "tensorflow", "mobilenet_v2")
    byo.float_tflite(model.module, root / "app.tflite")
    (root / "app.card.toml").write_text('[input]\nmean = 127.5\nstd = 127.5\n')
    model.module.save(root / "app.keras")
    wide = byo.background_1001(model.module)
    wide.save(root / "app_1001.keras")
    calibration = calibration_set(fashion_mnist.load("train", "fixtures"), byo.N_CALIBRATION, 0)
    byo.uint8_tflite(wide, model.spec.normalization(calibration.images), root / "app_uint8.tflite")
    byo.write_class_folders(byo.test_images(), root / "photos")  # sub-folders named by class index
    (root / "profiles.toml").write_text(PROFILE)
    return root


def _records(report_dir: Path) -> list[dict]:
    """The run's records (not again through the ``latest`` link beside the run)."""
    return [json.loads(p.read_text()) for p in report_dir.glob("*/records/*.json") if not p.parents[1].is_symlink()]


def _env(files):
    return {**os.environ, "HARNESS_PROFILES": str(files / "profiles.toml"), "OMP_NUM_THREADS": "1"}


def _run(args, files, timeout=900):
    return subprocess.run([sys.executable, *args], cwd=REPO, env=_env(files), capture_output=True, text=True,
                          timeout=timeout)


@pytest.mark.parametrize("model, source", [("app.tflite", "app.keras"), ("app_uint8.tflite", "app_1001.keras")])
def test_main_job_on_your_own_file_reports_direct_and_transferred_success(files, tmp_path, model, source):
    result = _run(["-m", "harness", "--model", str(files / model), "--source-model", str(files / source),
                   "--images", str(files / "photos"), "--platforms", "pc,mobile", "--report-dir", str(tmp_path)], files)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    records = _records(tmp_path)
    name = Path(model).stem
    by_attack = {(r["attack"], r["platform"]): r for r in records}
    quantization = "float" if model == "app.tflite" else "int8"
    assert {r["configuration"] for r in records} == {
        f"tensorflow-{name}-{a}-float-pc" for a in ("fgsm", "bim")} | {
        f"tensorflow-{name}-{a}-{quantization}-mobile"
        for a in ("fgsm", "bim", "direct_boundary", "direct_hsj", "direct_square")}
    direct = by_attack[("direct_boundary", "mobile")]
    assert direct["n_samples"] == 6 and direct["per_sample_success"].count(True) >= 3, direct["per_sample_success"]
    assert direct["direct"]["queries_total"] > 0 and direct["direct"]["l2_median"] > 0
    # the transferred PNGs were measured on the same file, on samples the direct attack shares
    transfer = by_attack[("bim", "mobile")]
    assert set(direct["sample_ids"]) <= set(transfer["sample_ids"])
    assert transfer["clean_accuracy"] >= 0.9  # the file (uint8 in, 1001 out) gets its samples right
    html = next(tmp_path.glob("*/report.html")).read_text()
    section = html[html.index('id="direct-vs-transfer"'):]
    section = section[:section.index("</table>")]
    assert f"tensorflow-{name}-direct_boundary-{quantization}-mobile" in section
    assert ("BIM: " in section or "FGSM: " in section) and "no transfer attack in this run" not in section
    assert "user-user.json does not exist; write it with `pytest -m pc --model=" in result.stdout


def test_without_a_source_model_only_direct_attacks_run_and_the_file_is_its_own_reference(files, tmp_path):
    result = _run(["-m", "harness", "--model", str(files / "app_uint8.tflite"), "--images", str(files / "photos"),
                   "--platforms", "mobile", "--report-dir", str(tmp_path)], files)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    records = _records(tmp_path)
    assert sorted(r["attack"] for r in records) == ["direct_boundary", "direct_hsj", "direct_square"]
    for r in records:  # the reference is the file on this host: on this host it agrees with itself
        assert r["agreement_with_pc"] == 1.0 and r["adversarial_agreement_with_pc"] == 1.0
    html = next(tmp_path.glob("*/report.html")).read_text()
    assert "no transfer attack in this run" in html


def test_gated_run_on_your_own_file_says_how_to_write_its_baseline_then_gates_on_it(files, tmp_path):
    thresholds = tmp_path / "mine.json"
    options = ["--model", str(files / "app_uint8.tflite"), "--source-model", str(files / "app_1001.keras"),
               "--images", str(files / "photos"), "--thresholds", str(thresholds),
               "--report-dir", str(tmp_path / "reports"), "-p", "no:cacheprovider", "-q", "tests/test_matrix.py"]
    first = _run(["-m", "pytest", "-m", "pc", *options], files)
    assert first.returncode == 4, first.stdout[-3000:]  # --thresholds names a file that does not exist yet
    assert f"--thresholds {thresholds}: file not found" in first.stderr
    proposed = _run(["-m", "pytest", "-m", "pc", "--write-thresholds", *options], files)
    assert proposed.returncode == 0, proposed.stdout[-4000:]
    proposal = thresholds.with_name("mine.proposed.json")
    entries = json.loads(proposal.read_text())["configurations"]
    assert "tensorflow-app_uint8-direct_hsj-int8-arm64" in entries and "tensorflow-app_uint8-bim-float-pc" in entries
    proposal.rename(thresholds)
    gated = _run(["-m", "pytest", "-m", "pc", *options], files)
    assert gated.returncode == 0, gated.stdout[-4000:]
    assert f"{len(entries)} passed" in gated.stdout
