"""The runner's serve mode on the virtual phone: query batches streamed through one process over an
ADB ``exec:`` socket give the host's logits bit for bit, and the process stays the same one.

Starting the phone and pushing the bundle costs minutes, so this is one test."""

from __future__ import annotations

import numpy as np
import pytest

from android_harness import adb
from android_harness.bundle import get_bundle
from android_harness.virtual_phone import VirtualPhone, unavailable_reason
from harness.cache import ArtifactCache
from harness.runtime import RuntimeRequest, open_runtime
from harness.runtime.remote import RunnerBackend, RunnerRuntime
from tests.convert import support

pytestmark = pytest.mark.skipif(unavailable_reason() is not None, reason=str(unavailable_reason()))


def test_a_session_on_the_phone_streams_batches_through_one_process(tmp_path_factory, tmp_path):
    framework, name, quantization = "tensorflow", "mobilenet_v2", "int8"
    images = support.evaluation().images[:24]
    art = support.artifact(framework, name, quantization)
    with VirtualPhone(tmp_path_factory.mktemp("vphone"), name="vphone-serve", log=lambda m: None) as phone:
        transport = adb.AdbTransport(get_bundle("full", support.cache()), phone.serial, support.cache(),
                                     log=lambda m: None)
        backend = RunnerBackend("device", transport, ArtifactCache(tmp_path / "results", log=lambda m: None),
                                log=lambda m: None, processes=1)
        request = RuntimeRequest("device", support.trained(framework, name).spec, quantization, 1, artifact=art)
        runtime = RunnerRuntime(request, backend)
        with runtime.open_session(log=lambda m: None) as session:
            streamed = [session.predict_logits(images[first:first + 8]) for first in range(0, 24, 8)]
            assert session.pids == {session.pid} and session.batches == 3
            out, code = transport.shell_status(f"cat /proc/{session.pid}/cmdline | tr '\\0' ' '")
            assert code == 0 and "serve.py" in out  # the one process, still there
        with open_runtime("mobile", artifact=art, quantization=quantization) as host:
            assert np.array_equal(np.concatenate(streamed), host.predict_logits(images))
        (job,) = backend.run([runtime.request(images, batch_size=8)])  # the phone's batch runner
        assert not isinstance(job, Exception), job
        assert np.array_equal(np.concatenate(streamed), job.logits)
