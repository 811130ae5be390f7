"""Model files are loaded in a child process first: a corrupt or hostile file is reported by name,
and a crash of the interpreter kills the child, not the test run."""

from __future__ import annotations

import os
import re
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from harness.runtime import ModelFileError, open_runtime
from harness.runtime import verify
from harness.runtime.verify import verify_model_file
from tests.convert import support


@pytest.fixture(autouse=True)
def fresh_verdicts(monkeypatch):
    monkeypatch.setattr(verify, "_VERIFIED", set())


@pytest.mark.parametrize("framework, fmt", [("tensorflow", "tflite"), ("pytorch", "ptl")])
def test_a_good_file_is_verified_once_and_the_cost_is_recorded(tmp_path, framework, fmt, record_property):
    art = support.artifact(framework, "mobilenet_v2", "float")
    shape = (1, 3, 32, 32) if fmt == "ptl" else None
    start = time.perf_counter()
    assert verify_model_file(art.path, fmt, input_shape=shape, marker_dir=tmp_path) is True
    seconds = time.perf_counter() - start
    record_property(f"verify_{fmt}_seconds", round(seconds, 3))
    print(f"verifying {art.path.name} in a child: {seconds:.2f} s")
    assert verify_model_file(art.path, fmt, input_shape=shape, marker_dir=tmp_path) is False  # in-process verdict
    assert len(list(tmp_path.iterdir())) == 1  # and the marker for the next process
    verify._VERIFIED.clear()
    assert verify_model_file(art.path, fmt, input_shape=shape, marker_dir=tmp_path) is False


def test_a_truncated_tflite_is_reported_by_name(tmp_path):
    data = support.artifact("tensorflow", "mobilenet_v2", "float").path.read_bytes()
    bad = tmp_path / "truncated.tflite"
    bad.write_bytes(data[: len(data) // 3])
    with pytest.raises(ModelFileError, match=re.escape(f"{bad}: LiteRT cannot load this model (")):
        verify_model_file(bad, marker_dir=tmp_path / "m")
    assert not (tmp_path / "m").exists()  # no verdict is remembered for a bad file


def test_random_bytes_named_ptl_are_reported_by_name(tmp_path):
    bad = tmp_path / "random.ptl"
    bad.write_bytes(os.urandom(5000))
    with pytest.raises(ModelFileError, match=re.escape(f"{bad}: the PyTorch lite interpreter cannot load this model (")):
        verify_model_file(bad, marker_dir=tmp_path / "m")


def test_a_child_killed_by_a_signal_is_reported_with_the_signal_and_its_stderr(tmp_path):
    """Mutating a real .tflite (random bytes at random offsets, redirected operator inputs, weight
    shapes and reduction axes out of range: ~200 files, three op resolvers) never crashed this
    LiteRT build: it refuses them all cleanly. So the crash is real but made by the kernel: the
    verifying child runs under a 1 s CPU-time limit and calls the real lite interpreter on an input
    large enough to need more, and the kernel kills it."""
    art = support.artifact("pytorch", "inception_v3", "float")
    limit = ["sh", "-c", 'ulimit -t 1 && echo "CPU time limited to 1 s" >&2 && exec "$@"', "sh"]
    with pytest.raises(ModelFileError) as caught:
        verify_model_file(art.path, "ptl", input_shape=(8, 3, 512, 512), wrapper=limit, marker_dir=tmp_path)
    message = str(caught.value)
    assert message.startswith(f"{art.path}: the interpreter crashed loading it (")
    assert re.search(r"\((SIGKILL|SIGXCPU), in a child process\); its stderr ends: .*CPU time limited to 1 s", message,
                     re.S), message


def test_formats_and_missing_files_are_refused_before_any_child(tmp_path):
    with pytest.raises(ModelFileError, match=r"cannot verify a 'onnx' model file; formats: \['tflite', 'ptl', 'pte'\]"):
        verify_model_file(tmp_path / "m.onnx")
    with pytest.raises(ModelFileError, match=re.escape(f"{tmp_path / 'm.tflite'}: model file not found")):
        verify_model_file(tmp_path / "m.tflite")


@pytest.mark.parametrize("framework", ["tensorflow", "pytorch"])
def test_runtimes_verify_the_file_before_loading_it_in_process(tmp_path, framework):
    art = support.artifact(framework, "mobilenet_v2", "float")
    bad = tmp_path / f"half{art.path.suffix}"
    data = art.path.read_bytes()
    bad.write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelFileError, match=re.escape(f"{bad}: ") + "(LiteRT|the PyTorch lite interpreter) cannot load"):
        open_runtime("mobile", spec=art.spec, artifact=bad, quantization="float")


# -- fuzzing: random bytes and truncated real files are a ModelFileError naming the file ------------
# Each example is a child process (a .ptl one imports torch: seconds), so few examples.
FUZZ = settings(max_examples=4, deadline=None)


def _verify_or_model_file_error(path, fmt):
    try:
        verify_model_file(path, fmt, marker_dir=path.parent / "verdicts")
    except ModelFileError as exc:
        assert str(exc).startswith(f"{path}: "), exc
        return exc
    return None


@FUZZ
@given(fmt=st.sampled_from(["tflite", "ptl"]), data=st.binary(max_size=2000))
def test_fuzz_random_bytes_are_refused(tmp_path_factory, fmt, data):
    path = tmp_path_factory.mktemp("fuzz") / f"random.{fmt}"
    path.write_bytes(data)
    assert isinstance(_verify_or_model_file_error(path, fmt), ModelFileError)


@FUZZ
@given(framework=st.sampled_from(["tensorflow", "pytorch"]), keep=st.floats(0.0, 0.98))
def test_fuzz_truncated_real_files_are_refused(tmp_path_factory, framework, keep):
    art = support.artifact(framework, "mobilenet_v2", "int8")
    data = art.path.read_bytes()
    path = tmp_path_factory.mktemp("fuzz") / art.path.name
    path.write_bytes(data[: int(len(data) * keep)])
    assert isinstance(_verify_or_model_file_error(path, art.path.suffix[1:]), ModelFileError)
