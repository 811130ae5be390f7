"""The runner (and its serve mode) on fixed-batch files, run by this host's Python.

The same model files as tests/runtime/test_fixed_batch.py: a batch-1 or batch-4 ``.tflite``
as TensorFlow's converter writes them, a ``.ptl`` traced with a baked-in batch of one, a
``.pte`` exported at a static batch of 3, and a dynamic-batch ``.tflite``. On this CPU the
runner's logits are the host runtime's, bit for bit, and results.json says the batch mode.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from harness.runtime import open_runtime
from harness.runtime.remote import IMAGE_HEADER, LOGIT_HEADER
from tests.android_harness.test_runner import job, run_runner
from tests.android_harness.test_serve import answer, frame, host_serve
from tests.runtime import batch_models as bm

N = 37  # no multiple of 16 (the job's batch), 4 or 3


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("runner-fixed-batch")
    return {
        "float1": (bm.write_tflite(d, "float1", 1), "tflite", "float", {"mode": "fixed", "size": 1}),
        "uint8_1": (bm.write_tflite(d, "uint8_1", 1, "uint8"), "tflite", "int8", {"mode": "fixed", "size": 1}),
        "float4": (bm.write_tflite(d, "float4", 4), "tflite", "float", {"mode": "fixed", "size": 4}),
        "dynamic": (bm.write_tflite(d, "dynamic", None), "tflite", "float", {"mode": "dynamic", "max": None}),
        "ptl1": (bm.write_ptl(d, "baked1", baked_batch=True), "ptl", "float", {"mode": "fixed", "size": 1}),
        "pte3": (bm.write_pte(d, "static3", 3), "pte", "float", {"mode": "fixed", "size": 3}),
    }


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    path = tmp_path_factory.mktemp("runner-fixed-batch-inputs") / "x.npy"
    np.save(path, bm.images(N))
    return path


def host_logits(path, quantization):
    spec = bm.TF_SPEC if path.suffix == ".tflite" else bm.TORCH_SPEC
    with open_runtime("mobile", artifact=str(path), spec=spec, quantization=quantization) as rt:
        return np.concatenate([rt.predict_logits(bm.images(N)[i:i + 1]) for i in range(N)])


def test_runner_jobs_on_fixed_batch_files_match_the_host_image_by_image(tmp_path, files, images):
    jobs = []
    for name, (path, fmt, quantization, _) in files.items():
        spec = bm.TF_SPEC if fmt == "tflite" else bm.TORCH_SPEC
        jobs.append(job(name, path, fmt, images, spec, quantization=quantization))
    done, results = run_runner(tmp_path, jobs)
    assert done.returncode == 0, done.stdout + done.stderr
    by_id = {j["id"]: j for j in results["jobs"]}
    for name, (path, fmt, quantization, mode) in files.items():
        result = by_id[name]
        assert result["status"] == "ok", result
        batch = result["batch"]
        assert {k: batch[k] for k in mode} == mode, (name, batch)
        size = mode.get("size")
        chunks = [16, 16, 5]  # the job's batches
        if size:
            assert batch["invokes"] == sum(-(-c // size) for c in chunks), (name, batch)
            assert batch["padded_rows"] == sum(-c % size for c in chunks), (name, batch)
        else:
            assert batch["invokes"] == 3 and batch["padded_rows"] == 0
        got = np.load(tmp_path / "out" / f"{name}.npy")
        expected = host_logits(path, quantization)
        if mode["mode"] == "fixed":
            np.testing.assert_array_equal(got, expected, err_msg=name)
        else:
            np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5, err_msg=name)


def test_a_file_with_batch_zero_fails_its_job_in_one_line_naming_it(tmp_path, images):
    path = bm.concrete_tflite(tmp_path, "zero", [0, bm.SIZE, bm.SIZE, 3], 0)
    done, results = run_runner(tmp_path, [job("zero", path, "tflite", images, bm.TF_SPEC, quantization="float")])
    assert done.returncode == 3
    error = results["jobs"][0]["error"]
    assert error == (f"JobError: {path}: input tensor 'x' has batch 0 (shape signature [0, 32, 32, 3]); "
                     "expected -1 (any batch) or a fixed positive batch")


def test_serve_streams_odd_batches_through_a_batch_one_file(files):
    path, _, quantization, _ = files["uint8_1"]
    n = bm.TF_SPEC.normalization
    config = {"model": str(path), "format": "tflite", "quantization": quantization, "threads": 1,
              "resolver": "default", "engine": None, "num_classes": bm.CLASSES,
              "preprocess": {"scale": n.scale, "mean": list(n.mean), "std": list(n.std),
                             "channel_order": n.channel_order, "layout": n.layout}}
    expected = host_logits(path, quantization)
    images = bm.images(N)
    channel = host_serve(config)
    try:
        channel.write(frame(b"CONF", json.dumps(config).encode()))
        tag, payload = answer(channel)
        assert tag == b"REDY", payload
        assert json.loads(payload)["batch"] == {"mode": "fixed", "size": 1, "invokes": 0, "padded_rows": 0}
        for first, count in ((0, 5), (5, 1), (6, 31)):
            chunk = np.ascontiguousarray(images[first:first + count])
            channel.write(frame(b"IMGS", IMAGE_HEADER.pack(*chunk.shape) + chunk.tobytes()))
            tag, payload = answer(channel)
            assert tag == b"LOGT", payload
            rows, classes = LOGIT_HEADER.unpack_from(payload)[:2]
            logits = np.frombuffer(payload[LOGIT_HEADER.size:], "<f4").reshape(rows, classes)
            np.testing.assert_array_equal(logits, expected[first:first + count])
        channel.write(frame(b"STOP"))
        assert channel.proc.wait(timeout=30) == 0
    finally:
        channel.close()
