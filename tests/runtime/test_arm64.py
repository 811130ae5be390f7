"""Platform arm64: the converted files in the runtimes' aarch64 builds under qemu, against this host's."""

from __future__ import annotations

import numpy as np
import pytest

from harness.runtime import PlatformUnavailable, open_runtime
from harness.runtime.registry import check_available
from harness.runtime.remote import JobRequest, RemoteJobError, RunnerBackend
from tests.convert import support

N = 24


@pytest.fixture(scope="module", autouse=True)
def needs_qemu():
    try:
        check_available("arm64")
    except PlatformUnavailable as exc:
        pytest.skip(str(exc))


def arm64(framework, name, quantization):
    art = support.artifact(framework, name, quantization)
    return open_runtime("arm64", support.trained(framework, name), art, quantization=quantization,
                        cache=support.cache())


def host(framework, name, quantization):
    art = support.artifact(framework, name, quantization)
    return open_runtime("mobile", support.trained(framework, name), art, quantization=quantization)


@pytest.mark.parametrize("framework", ["tensorflow", "pytorch"])
def test_int8_is_bit_exact_and_float_agrees_between_host_and_arm(framework):
    images = support.evaluation().images[:N]
    runtimes = {q: arm64(framework, "resnet50", q) for q in ("float", "int8")}
    # Both quantizations in one batch: one runner process for the family.
    results = runtimes["int8"].backend.run([runtimes[q].request(images) for q in ("float", "int8")])
    for q, result in zip(("float", "int8"), results):
        assert not isinstance(result, Exception), result
        with host(framework, "resnet50", q) as h:
            expected = h.predict_logits(images)
        assert result.logits.shape == expected.shape
        assert (result.logits.argmax(1) == expected.argmax(1)).all()
        if q == "int8":
            assert np.array_equal(result.logits, expected), np.abs(result.logits - expected).max()
        else:
            assert np.abs(result.logits - expected).max() <= 1e-4 * np.abs(expected).max()
        assert result.platform_facts["machine"] == "aarch64"
        assert result.transport["emulated"] and result.transport["qemu"] and result.transport["cpu_model"]
    assert "torch" in results[0].versions if framework == "pytorch" else "litert" in results[0].versions


def test_a_second_request_is_served_from_the_cache_without_a_runner():
    images = support.evaluation().images[:N]
    runtime = arm64("tensorflow", "mobilenet_v2", "int8")
    first = runtime.predict_logits(images)
    seconds = runtime.last_result.job["seconds_per_image"]
    again = arm64("tensorflow", "mobilenet_v2", "int8")
    assert np.array_equal(again.predict_logits(images), first)
    assert again.last_result.cached and again.last_result.job["seconds_per_image"] == seconds


def test_a_model_the_runner_cannot_load_fails_alone_and_names_its_file(tmp_path):
    images = support.evaluation().images[:8]
    good = arm64("tensorflow", "inception_v3", "int8")
    garbage = tmp_path / "garbage.tflite"
    garbage.write_bytes(b"\x1c\x00\x00\x00TFL3" + bytes(200))
    bad_request = JobRequest(garbage, "0" * 64, "tflite", "int8", 1, "default", None,
                             good.request(images).preprocess, 10, 64, images)
    results = good.backend.run([bad_request, good.request(images)])
    assert isinstance(results[0], RemoteJobError) and str(garbage) in str(results[0])
    assert not isinstance(results[1], Exception)
    again = good.backend.run([bad_request])[0]  # remembered: not run a second time
    assert isinstance(again, RemoteJobError) and str(garbage) in str(again)


def test_runner_processes_split_the_costliest_family_over_spare_cores():
    def request(fmt, quantization, n):
        return JobRequest(support.artifact("tensorflow", "resnet50", "int8").path, "0" * 64, fmt, quantization, 1,
                          None, None, {}, 10, 64, np.zeros((n, 1, 1, 3), np.uint8), input_sha256=f"{fmt}{quantization}{n}")

    requests = [request("tflite", "float", 60), request("tflite", "int8", 60)] + \
               [request("ptl", "float", 60) for _ in range(4)] + [request("ptl", "int8", 60)]
    misses = {"litert": [0, 1], "torch": [2, 3, 4, 5, 6]}
    two = RunnerBackend("arm64", None, support.cache(), processes=2).plan(misses, requests)
    assert [f for f, _ in two].count("torch") == 2 and [f for f, _ in two].count("litert") == 1
    assert sorted(i for _, idx in two for i in idx) == list(range(7))
    one = RunnerBackend("arm64", None, support.cache(), processes=1).plan(misses, requests)
    assert one == [("litert", [0, 1]), ("torch", [2, 3, 4, 5, 6])]  # one process per family


def test_a_fixed_batch_one_tflite_runs_in_the_runner_under_qemu_and_matches_the_host(tmp_path):
    # What TensorFlow's converter writes from a Keras model with a batch-1 input: the runner
    # feeds it image by image (it cannot be resized) and says so.
    from tests.runtime import batch_models as bm

    path = bm.write_tflite(tmp_path, "float1", 1)
    images = bm.images(12)
    runtime = open_runtime("arm64", artifact=str(path), spec=bm.TF_SPEC, quantization="float", cache=support.cache())
    logits = runtime.predict_logits(images, batch_size=5)
    assert runtime.describe()["batch"] == {"mode": "fixed", "size": 1, "invokes": 12, "padded_rows": 0}
    with open_runtime("mobile", artifact=str(path), spec=bm.TF_SPEC, quantization="float") as h:
        expected = h.predict_logits(images)
    assert (logits.argmax(1) == expected.argmax(1)).all()
    assert np.abs(logits - expected).max() <= 1e-4 * np.abs(expected).max()
    assert runtime.last_result.platform_facts["machine"] == "aarch64"
