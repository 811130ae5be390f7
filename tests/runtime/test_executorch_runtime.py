"""ExecuTorch on this host (harness.runtime.executorch_runtime): batches, threads, and bad files.

The agreement of the mini zoo's ``.pte`` files with their PC models is in
tests/convert/test_executorch.py; these tests reuse its conversions (a cache hit).
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from harness.cache import ArtifactCache
from harness.convert import convert, zoo_model_from_module
from harness.data.preprocessing import normalization_for
from harness.runtime import ModelFileError, open_runtime
from harness.axes.runtimes import formats as runtime_formats
from harness.zoo.base import ModelSpec
from tests.convert import support
from tests.convert.test_executorch import pte_artifact

N_IMAGES = 40


def _runtime(quantization: str, threads: int = 1, artifact=None):
    artifact = artifact if artifact is not None else pte_artifact("mobilenet_v2", quantization)
    return open_runtime("mobile", support.trained("pytorch", "mobilenet_v2"), artifact,
                        quantization=quantization, threads=threads)


@pytest.mark.parametrize("quantization", ["float", "int8"])
def test_a_batch_gives_what_its_images_give_one_by_one(quantization):
    images = support.evaluation().images[:N_IMAGES]
    with _runtime(quantization) as runtime:
        assert runtime.max_batch == 256
        whole = runtime.predict_logits(images, batch_size=N_IMAGES)
        single = np.concatenate([runtime.predict_logits(images[i:i + 1]) for i in range(N_IMAGES)])
        odd = runtime.predict_logits(images, batch_size=7)
    np.testing.assert_array_equal(whole, single)
    np.testing.assert_array_equal(whole, odd)


def test_a_batch_larger_than_the_planned_one_runs_in_parts():
    images = support.evaluation().images[:300]
    with _runtime("float") as runtime:
        big = runtime.predict_logits(images, batch_size=300)  # the program is planned for 256
        parts = runtime.predict_logits(images, batch_size=150)
    np.testing.assert_array_equal(big, parts)


def test_the_runtime_sets_and_records_its_threads():
    import executorch.extension.pybindings.portable_lib as portable_lib

    with _runtime("float", threads=2) as runtime:
        assert runtime.threadpool_threads == 2 == portable_lib._threadpool_get_thread_count()
        described = runtime.describe()
        assert described["threads"] == described["threadpool_threads"] == 2
        assert described["runtime"] == "ExecuTorchRuntime" and described["engine"] is None
        assert "XnnpackBackend" in described["backends"]
        assert set(described["versions"]) == {"executorch", "torch", "numpy"}
        assert runtime.load_seconds is not None and runtime.load_seconds >= 0
        portable_lib._unsafe_reset_threadpool(1)  # another runtime's count: the next call puts 2 back
        runtime.predict_logits(support.evaluation().images[:2])
        assert portable_lib._threadpool_get_thread_count() == 2
    with pytest.raises(ValueError, match="ExecuTorch threads must be a positive int, got 0"):
        _runtime("float", threads=0)


def test_pte_files_run_in_executorch_on_the_mobile_platform_also_as_a_plain_path():
    assert "pte" in runtime_formats()
    path = pte_artifact("mobilenet_v2", "float").path
    images = support.evaluation().images[:5]
    with _runtime("float") as from_artifact, _runtime("float", artifact=str(path)) as from_path:
        assert type(from_path).__name__ == "ExecuTorchRuntime"
        np.testing.assert_array_equal(from_artifact.predict_logits(images), from_path.predict_logits(images))


def test_host_runtime_versions_of_pte_files_are_executorchs():
    from harness.study import _host_runtime_versions

    versions = _host_runtime_versions("pte")
    assert set(versions) == {"executorch", "torch", "numpy"} and versions["executorch"] == "1.5.1"


# -- a file converted with a fixed batch of one ------------------------------------------------------
def test_a_module_without_a_dynamic_batch_becomes_a_batch_one_file_run_image_by_image(tmp_path):
    import torch

    from tests.convert.torch_modules import OneImageAtATime

    torch.manual_seed(0)
    spec = ModelSpec("test", "pytorch", "one_at_a_time", 32, 10, normalization_for("pytorch", "mobilenet_v2"))
    model = zoo_model_from_module(spec, OneImageAtATime().eval())
    art = convert(model, "float", cache=ArtifactCache(tmp_path, log=lambda m: None), format="pte")
    metadata = art.artifact.metadata
    assert metadata["batch"] == "1" and metadata["io"]["max_batch"] == 1
    assert "torch.export" in metadata["child"]["dynamic_batch_failure"]  # why it has a fixed batch
    images = support.evaluation().images[:6]
    with open_runtime("mobile", model, art, quantization="float") as runtime:
        assert runtime.max_batch == 1
        logits = runtime.predict_logits(images, batch_size=6)
    with torch.no_grad():
        expected = np.concatenate([model.module(torch.from_numpy(spec.normalization(images[i:i + 1])))
                                   for i in range(len(images))])
    np.testing.assert_allclose(logits, expected, atol=1e-5)


# -- bad files ---------------------------------------------------------------------------------------
def test_a_truncated_pte_is_a_model_file_error_naming_it(tmp_path):
    data = pte_artifact("mobilenet_v2", "float").path.read_bytes()
    bad = tmp_path / "truncated.pte"
    bad.write_bytes(data[:len(data) // 2])
    with pytest.raises(ModelFileError, match=rf"^{bad}: ExecuTorch cannot load this model .*File size is too small"):
        _runtime("float", artifact=bad)


def test_random_bytes_are_a_model_file_error_naming_the_file(tmp_path):
    bad = tmp_path / "random.pte"
    rng = np.random.default_rng(0)
    bad.write_bytes(b"\0" * 4 + b"XX12" + rng.integers(0, 256, 50_000, dtype=np.uint8).tobytes())
    with pytest.raises(ModelFileError, match=rf"^{bad}: ExecuTorch cannot load this model .*"
                                             r"Program identifier 'XX12' != expected 'ET12'"):
        _runtime("float", artifact=bad)


def test_a_file_that_crashes_executorch_is_a_model_file_error_not_a_crash(tmp_path):
    # ExecuTorch 1.5.1 aborts the process when the bytes where a .pte has its identifier ("ET12")
    # are not UTF-8: its log line about them fails to decode. The child dies, not this process.
    bad = tmp_path / "crashing.pte"
    bad.write_bytes(np.random.default_rng(0).integers(0, 256, 50_000, dtype=np.uint8).tobytes())
    with pytest.raises(ModelFileError, match=rf"(?s)^{bad}: the interpreter crashed loading it \(SIGABRT, in a "
                                             r"child process\); its stderr ends: .*UnicodeDecodeError"):
        _runtime("float", artifact=bad)


def test_a_tflite_file_named_pte_is_a_model_file_error(tmp_path):
    bad = tmp_path / "model.pte"
    bad.write_bytes(support.fully_int8_tflite())
    with pytest.raises(ModelFileError, match=rf"^{bad}: ExecuTorch cannot load this model"):
        _runtime("float", artifact=bad)


def test_a_missing_pte_is_a_model_file_error(tmp_path):
    with pytest.raises(ModelFileError, match=rf"^{tmp_path / 'absent.pte'}: .pte file not found"):
        _runtime("float", artifact=tmp_path / "absent.pte")


def test_a_pte_of_another_model_is_refused_by_its_signature():
    path = pte_artifact("mobilenet_v2", "float").path
    spec = dataclasses.replace(support.trained("pytorch", "mobilenet_v2").spec, num_classes=7)
    with pytest.raises(ModelFileError, match=rf"^{path}: model output \(256, 10\) .* does not match "
                                             r"mini/pytorch/mobilenet_v2's float32 \(N, 7\) logits"):
        open_runtime("mobile", artifact=str(path), spec=spec, quantization="float")
