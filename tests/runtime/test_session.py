"""Streaming runner sessions on arm64 (the runner's serve mode under qemu): one process answers
many query batches with the batch runner's logits, bit for bit; a process that dies says so,
naming the platform and the model file; a direct attack runs through one session."""

from __future__ import annotations

import numpy as np
import pytest

from harness.attack.attacks import Boundary
from harness.attack.direct import run_direct
from harness.attack.profiles import load_profile
from harness.runtime import PlatformUnavailable, open_runtime
from harness.runtime.registry import check_available
from harness.runtime.remote import RunnerSessionError
from tests.convert import support

MODEL = ("tensorflow", "mobilenet_v2", "int8")  # a small int8 file: integer kernels are fast under qemu


@pytest.fixture(scope="module", autouse=True)
def needs_qemu():
    try:
        check_available("arm64")
    except PlatformUnavailable as exc:
        pytest.skip(str(exc))


def arm64():
    framework, name, quantization = MODEL
    return open_runtime("arm64", support.trained(framework, name), support.artifact(*MODEL),
                        quantization=quantization, cache=support.cache())


def test_batches_streamed_through_one_process_match_the_batch_runner_bit_for_bit():
    images = support.evaluation().images[:24]
    runtime = arm64()
    with runtime.open_session(log=lambda m: None) as session:
        process = session.channel.proc
        streamed = [session.predict_logits(images[first:first + 8]) for first in range(0, 24, 8)]
        streamed.append(session.predict_logits(images[:3]))  # another batch size, same process
        assert session.pids == {session.pid} == {process.pid} and session.batches == 4
        assert process.poll() is None  # still the one process
    assert process.poll() is not None  # and gone once the session closed
    (job,) = runtime.backend.run([runtime.request(images, batch_size=8)])  # the batch runner, same batches
    assert not isinstance(job, Exception), job
    assert np.array_equal(np.concatenate(streamed[:3]), job.logits)
    assert np.array_equal(streamed[3], job.logits[:3])
    with open_runtime("mobile", artifact=support.artifact(*MODEL), quantization="int8") as host:
        assert np.array_equal(np.concatenate(streamed[:3]), host.predict_logits(images))


def test_a_runner_that_dies_mid_session_is_a_clear_error_naming_platform_and_file():
    images = support.evaluation().images[:2]
    runtime = arm64()
    with runtime.open_session(log=lambda m: None) as session:
        session.predict_logits(images)
        session.channel.proc.kill()
        session.channel.proc.wait()
        with pytest.raises(RunnerSessionError, match=r"arm64 runner session for .*mobilenet_v2-int8\.tflite: the "
                                                     r"runner process ended after 1 batch\(es\).*killed by signal 9"):
            session.predict_logits(images)


def test_a_model_the_runner_cannot_load_fails_the_session_at_once(tmp_path):
    garbage = tmp_path / "garbage.tflite"
    garbage.write_bytes(b"\x1c\x00\x00\x00TFL3" + bytes(200))
    framework, name, quantization = MODEL
    runtime = open_runtime("arm64", support.trained(framework, name), garbage, quantization=quantization,
                           spec=support.trained(framework, name).spec, cache=support.cache())
    with pytest.raises(RunnerSessionError, match=r"arm64 runner session for .*garbage\.tflite: the runner could not "
                                                 r"load the model"):
        runtime.open_session(log=lambda m: None)


def test_a_direct_attack_on_arm64_runs_in_one_session_and_agrees_with_the_host():
    samples = support.evaluation()
    images, labels = samples.images[:2], samples.labels[:2]
    messages = []
    result = run_direct(Boundary(**load_profile("smoke").attack_params("boundary")), arm64(), images, labels, 0,
                        log=messages.append)
    assert sum("runner session" in m and "ready" in m for m in messages) == 1, messages
    assert result.identity["platform"] == "arm64" and result.identity["transport"]["transport"] == "qemu"
    with open_runtime("mobile", artifact=support.artifact(*MODEL), quantization="int8") as host:
        assert np.array_equal(host.predict(result.adversarials) != labels, result.success)
        # int8 is bit-exact between the ARM and x86 builds, so the same seed walks the same path
        on_host = run_direct(Boundary(**load_profile("smoke").attack_params("boundary")), host, images, labels, 0,
                             log=lambda m: None)
    assert np.array_equal(on_host.adversarials, result.adversarials)
    assert np.array_equal(on_host.queries, result.queries)
