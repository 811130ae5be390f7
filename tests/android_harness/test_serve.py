"""The runner's serve mode on the virtual phone: query batches streamed through one process over an
ADB ``exec:`` socket give the host's logits bit for bit, the process stays the same one, and its death is a clear error.

serve.py itself is checked in this host's Python first (bad frames, an unloadable model);
starting the phone and pushing the bundle costs about a minute, so the phone has one test."""

from __future__ import annotations

import json

import numpy as np
import pytest

from android_harness import adb
from android_harness.bundle import get_bundle
from android_harness.virtual_phone import VirtualPhone, unavailable_reason
from harness.cache import ArtifactCache
from harness.runtime import RuntimeRequest, open_runtime
from harness.runtime.remote import (FRAME, IMAGE_HEADER, LOGIT_HEADER, RunnerBackend, RunnerRuntime,
                                    RunnerSessionError)
from tests.convert import support

needs_phone = pytest.mark.skipif(unavailable_reason() is not None, reason=str(unavailable_reason()))


def host_serve(config):
    """serve.py in this host's Python (it needs only numpy and the runtime), its pipes as a channel."""
    import sys

    from android_harness.channels import SERVE, ProcessChannel

    return ProcessChannel([sys.executable, SERVE], {"PATH": "/usr/bin:/bin"}, config)


def frame(tag, payload=b""):
    return FRAME.pack(tag, len(payload)) + payload


def answer(channel):
    tag, size = FRAME.unpack(channel.read(FRAME.size, 60))
    return tag, channel.read(size, 60) if size else b""


def test_serve_refuses_bad_frames_and_goes_on_answering():
    art = support.artifact("tensorflow", "mobilenet_v2", "int8")
    images = support.evaluation().images[:4]
    with open_runtime("mobile", artifact=art, quantization="int8") as host:
        n = host.spec.normalization
        config = {"model": str(art.path), "format": "tflite", "quantization": "int8", "threads": 1,
                  "resolver": "default", "engine": None, "num_classes": 10,
                  "preprocess": {"scale": n.scale, "mean": list(n.mean), "std": list(n.std),
                                 "channel_order": n.channel_order, "layout": n.layout}}
        channel = host_serve(config)
        try:
            channel.write(frame(b"CONF", json.dumps(config).encode()))
            tag, payload = answer(channel)
            assert tag == b"REDY" and json.loads(payload)["pid"] == channel.pid
            channel.write(frame(b"IMGS", IMAGE_HEADER.pack(4, 32, 32, 3) + images.tobytes()[:-1]))
            tag, payload = answer(channel)
            assert tag == b"FAIL" and "12287 pixel bytes for (4, 32, 32, 3) uint8 RGB" in json.loads(payload)["error"]
            channel.write(frame(b"JUNK", b"x"))
            tag, payload = answer(channel)
            assert tag == b"FAIL" and "expected IMGS or STOP, got b'JUNK'" in json.loads(payload)["error"]
            channel.write(frame(b"IMGS", IMAGE_HEADER.pack(4, 32, 32, 3) + images.tobytes()))
            tag, payload = answer(channel)
            count, classes, pid, batch, _ = LOGIT_HEADER.unpack_from(payload)
            logits = np.frombuffer(payload[LOGIT_HEADER.size:], "<f4").reshape(count, classes)
            assert tag == b"LOGT" and (count, classes, pid, batch) == (4, 10, channel.pid, 0)
            assert np.array_equal(logits, host.predict_logits(images))
            channel.write(frame(b"STOP"))
            assert channel.proc.wait(timeout=30) == 0
        finally:
            channel.close()


def test_serve_refuses_a_model_it_cannot_load_naming_the_file(tmp_path):
    garbage = tmp_path / "garbage.tflite"
    garbage.write_bytes(b"\x1c\x00\x00\x00TFL3" + bytes(200))
    config = {"model": str(garbage), "format": "tflite", "preprocess": {}, "num_classes": 10}
    channel = host_serve(config)
    try:
        channel.write(frame(b"CONF", json.dumps(config).encode()))
        tag, payload = answer(channel)
        assert tag == b"FAIL" and f"{garbage}: cannot load this tflite model" in json.loads(payload)["error"]
        assert channel.proc.wait(timeout=30) == 2
    finally:
        channel.close()


@needs_phone
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
            transport.shell(f"kill -9 {session.pid}")  # the runner dies mid-session
            with pytest.raises(RunnerSessionError, match=r"device runner session for .*mobilenet_v2-int8\.tflite: the "
                                                         r"runner process ended after 3 batch\(es\)"):
                session.predict_logits(images[:8])
        with open_runtime("mobile", artifact=art, quantization=quantization) as host:
            assert np.array_equal(np.concatenate(streamed), host.predict_logits(images))
        (job,) = backend.run([runtime.request(images, batch_size=8)])  # the phone's batch runner
        assert not isinstance(job, Exception), job
        assert np.array_equal(np.concatenate(streamed), job.logits)
