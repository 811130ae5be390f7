"""The on-device runner, run by this host's Python: jobs, inputs, failures, the status line.

The same file runs under qemu (tests/runtime/test_arm64.py) and on a phone; here it is
checked against the host's own runtimes, which it must match bit for bit on the same CPU.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from android_harness import runner
from harness.attack.pngset import write_set
from harness.data.preprocessing import TF_CAFFE, TF_INCEPTION, TORCH_IMAGENET
from harness.runtime import open_runtime
from tests.convert import support

RUNNER = Path(runner.__file__)


def preprocess(normalization) -> dict:
    n = normalization
    return {"scale": n.scale, "mean": list(n.mean), "std": list(n.std), "channel_order": n.channel_order,
            "layout": n.layout}


def job(job_id, model_path, fmt, images_npy, spec, quantization="int8", **extra) -> dict:
    return {"id": job_id, "model": str(model_path), "format": fmt, "quantization": quantization, "threads": 1,
            "input": {"npy": str(images_npy)}, "preprocess": preprocess(spec.normalization),
            "num_classes": spec.num_classes, "batch_size": 16, **extra}


def run_runner(tmp_path: Path, jobs: list[dict]) -> tuple[subprocess.CompletedProcess, dict | None]:
    jobfile = tmp_path / "jobs.json"
    jobfile.write_text(json.dumps({"format": runner.RUNNER_FORMAT, "jobs": jobs}))
    out = tmp_path / "out"
    done = subprocess.run([sys.executable, str(RUNNER), str(jobfile), str(out)], capture_output=True, text=True,
                          timeout=600)
    results = out / "results.json"
    return done, json.loads(results.read_text()) if results.is_file() else None


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    path = tmp_path_factory.mktemp("inputs") / "x.npy"
    np.save(path, support.evaluation().images[:40])
    return path


def test_runner_logits_equal_the_host_runtime_and_a_bad_job_does_not_stop_the_batch(tmp_path, images):
    art = support.artifact("tensorflow", "resnet50", "int8")
    spec = art.spec
    garbage = tmp_path / "garbage.tflite"
    garbage.write_bytes(b"\x00not a flatbuffer" * 64)
    jobs = [job("good", art.path, "tflite", images, spec),
            job("garbage", garbage, "tflite", images, spec),
            job("missing", tmp_path / "nowhere.tflite", "tflite", images, spec),
            job("good-reference", art.path, "tflite", images, spec, resolver="reference")]
    done, results = run_runner(tmp_path, jobs)
    assert done.returncode == 3, done.stdout + done.stderr
    assert done.stdout.strip().splitlines()[-1] == "RUNNER-STATUS failed jobs=4 failed=2"
    by_id = {j["id"]: j for j in results["jobs"]}
    assert by_id["good"]["status"] == by_id["good-reference"]["status"] == "ok"
    assert by_id["garbage"]["status"] == "error" and str(garbage) in by_id["garbage"]["error"]
    assert "model file not found" in by_id["missing"]["error"] and "nowhere.tflite" in by_id["missing"]["error"]
    assert not (tmp_path / "out" / "garbage.npy").exists()
    with open_runtime("mobile", artifact=art, quantization="int8") as host:
        expected = host.predict_logits(support.evaluation().images[:40])
    got = np.load(tmp_path / "out" / "good.npy")
    assert np.array_equal(got, expected)  # same kernels on the same CPU: bit for bit
    assert by_id["good"]["n_images"] == 40 and by_id["good"]["seconds_per_image"] > 0
    assert len(by_id["good"]["batch_seconds"]) == 3  # 40 images in batches of 16
    assert results["versions"]["litert"] and results["platform"]["machine"]
    assert not list((tmp_path / "out").glob(".*.part")), "temporary files left behind"


def test_lite_interpreter_job_matches_the_host_and_reads_a_png_set(tmp_path, images):
    art = support.artifact("pytorch", "mobilenet_v2", "int8")
    spec = art.spec
    batch = support.evaluation().images[:40]
    ids = support.evaluation().ids[:40]
    pngset = tmp_path / "set"
    records = [{"id": int(i), "label": 0} for i in ids]
    write_set(pngset, ids, batch, records, {"generation_seconds": 0.0})
    jobs = [job("npy", art.path, "ptl", images, spec, engine="qnnpack"),
            {**job("png", art.path, "ptl", images, spec, engine="qnnpack"), "input": {"pngset": str(pngset)}}]
    done, results = run_runner(tmp_path, jobs)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "RUNNER-STATUS ok jobs=2 failed=0" in done.stdout
    npy, png = np.load(tmp_path / "out" / "npy.npy"), np.load(tmp_path / "out" / "png.npy")
    assert np.array_equal(npy, png)
    with open_runtime("mobile", artifact=art, quantization="int8") as host:
        assert np.array_equal(npy, host.predict_logits(batch))
    assert results["mkldnn_enabled"] is False  # float torch runs without oneDNN's generated code


def test_a_png_that_does_not_match_its_sidecar_fails_that_job(tmp_path, images):
    art = support.artifact("tensorflow", "resnet50", "int8")
    ids = support.evaluation().ids[:4]
    pngset = tmp_path / "set"
    write_set(pngset, ids, support.evaluation().images[:4], [{"id": int(i), "label": 0} for i in ids], {})
    other = support.evaluation().images[5]
    from harness.attack.pngset import encode_png

    (pngset / "png" / f"{int(ids[2])}.png").write_bytes(encode_png(other))
    bad = {**job("png", art.path, "tflite", images, art.spec), "input": {"pngset": str(pngset)}}
    done, results = run_runner(tmp_path, [bad, job("npy", art.path, "tflite", images, art.spec)])
    assert done.returncode == 3
    assert f"{int(ids[2])}.png" in results["jobs"][0]["error"] and "sidecar" in results["jobs"][0]["error"]
    assert results["jobs"][1]["status"] == "ok"


@pytest.mark.parametrize("content", ["not json", json.dumps({"format": 99, "jobs": []}),
                                     json.dumps({"format": 1, "jobs": [{"id": "a"}, {"id": "a"}]})])
def test_an_unusable_job_file_is_an_error_status_and_exit_2(tmp_path, content):
    jobfile = tmp_path / "jobs.json"
    jobfile.write_text(content)
    done = subprocess.run([sys.executable, str(RUNNER), str(jobfile), str(tmp_path / "out")],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert done.stdout.strip().splitlines()[-1].startswith(f"RUNNER-STATUS error job file {jobfile}")


@settings(max_examples=40, deadline=None)
@given(arrays(np.uint8, st.tuples(st.integers(1, 3), st.integers(1, 6), st.integers(1, 6), st.just(3))),
       st.sampled_from([TORCH_IMAGENET, TF_INCEPTION, TF_CAFFE]))
def test_runner_preprocessing_is_bit_identical_to_the_hosts(images, normalization):
    ours = runner.normalise(images, preprocess(normalization))
    theirs = normalization(images)
    assert ours.dtype == theirs.dtype == np.float32 and ours.shape == theirs.shape
    assert np.array_equal(ours.view(np.uint32), theirs.view(np.uint32))


def test_a_zero_input_scale_is_a_failed_job_naming_the_file_and_tensor(tmp_path, images):
    from ai_edge_litert.interpreter import Interpreter

    data = support.fully_int8_tflite()
    detail = Interpreter(model_content=data).get_input_details()[0]
    broken = tmp_path / "zero-scale.tflite"
    broken.write_bytes(support.with_scale_replaced(data, detail["quantization"][0], 0.0))
    good = tmp_path / "int8-io.tflite"
    good.write_bytes(data)
    spec = support.artifact("tensorflow", "mobilenet_v2", "int8").spec
    done, results = run_runner(tmp_path, [job("good", good, "tflite", images, spec),
                                          job("zero", broken, "tflite", images, spec, resolver="builtin")])
    assert done.stdout.strip().splitlines()[-1] == "RUNNER-STATUS failed jobs=2 failed=1", done.stdout + done.stderr
    by_id = {j["id"]: j for j in results["jobs"]}
    assert by_id["good"]["status"] == "ok"
    assert by_id["zero"]["status"] == "error"
    assert f"{broken}: input tensor {detail['name']!r} (int8) has quantization scale 0.0" in by_id["zero"]["error"]
