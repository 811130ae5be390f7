"""Bring your own model: real .tflite/.ptl files made from the mini zoo, loaded as a user's would be."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from harness.data.dataset import DataError
from harness.runtime import ModelFileError
from harness.zoo.card import CardError
from harness.zoo.user import UserModelError, load_source_model, load_user_model
from tests.zoo import byo_support as byo


# --- the files load and predict as their source does ------------------------------------------------
def test_float_tflite_predicts_as_the_mini_model(float_tflite, mini_tf, byo_images):
    model = load_user_model(float_tflite)
    assert model.spec.id == "user/tensorflow/float" and model.quantization == "float" and model.runtime == "litert"
    assert (model.spec.input_size, model.spec.num_classes) == (32, 10)
    assert model.facts["input"]["dtype"] == "float32" and model.facts["layout"] == "NHWC"
    with model.open() as runtime:
        predictions = runtime.predict(byo_images.images)
    np.testing.assert_array_equal(predictions, mini_tf.predict(byo_images.images))


def test_uint8_tflite_with_background_and_1001_outputs(uint8_tflite, mini_tf, byo_images):
    model = load_user_model(uint8_tflite)
    assert model.quantization == "int8" and model.spec.num_classes == 1001
    assert model.facts["input"]["dtype"] == "uint8" and model.facts["output"]["dtype"] == "uint8"
    assert model.labels.offset == 1 and model.labels.num_classes == 1000
    assert model.labels.non_classes == ("background",) and model.labels.names[:10] == byo.FASHION
    # raw pixels: the Normalization is the file's own input quantization
    q = model.facts["input"]["quantization"]
    assert model.spec.normalization.scale == pytest.approx(q["scale"])
    assert model.spec.normalization.mean[0] == pytest.approx(q["zero_point"] * q["scale"])
    with model.open() as runtime:
        logits = runtime.predict_logits(byo_images.images)
    assert logits.shape == (len(byo_images), 1001)
    predictions = logits.argmax(axis=1)
    assert (predictions >= model.labels.offset).all()  # never the background output
    reference = mini_tf.predict(byo_images.images)
    agreement = np.mean(predictions == reference + model.labels.offset)
    assert agreement >= 0.9, agreement  # int8 vs float: a rounding step flips a few borderline images


def test_raw_normalization_feeds_the_pixels_themselves():
    """The uint8 tensor LiteRTRuntime computes from the raw Normalization is exactly the pixel values."""
    from harness.zoo.user import _normalization
    from harness.zoo.card import Card
    from pathlib import Path

    @settings(max_examples=200, deadline=None)
    @given(scale=st.floats(1e-4, 2.0), zero=st.integers(0, 255), dtype=st.sampled_from(["uint8", "int8"]))
    def check(scale, zero, dtype):
        zero = zero - 128 if dtype == "int8" else zero
        norm = _normalization(Path("m.tflite"), Card(raw=True), dtype, {"scale": scale, "zero_point": zero}, "NHWC", [])
        pixels = np.arange(256, dtype=np.uint8).reshape(1, 16, 16, 1).repeat(3, axis=-1)
        x = norm(pixels)
        info = np.iinfo(np.dtype(dtype))
        q = np.clip(np.round(x / np.float32(scale) + zero), info.min, info.max)  # as LiteRTRuntime does
        expected = pixels.astype(np.int64) - (128 if dtype == "int8" else 0)
        np.testing.assert_array_equal(q.astype(np.int64), expected)

    check()


def test_ptl_predicts_as_the_mini_model(float_ptl, mini_torch, byo_images):
    model = load_user_model(float_ptl)
    assert model.spec.id == "user/pytorch/float" and model.runtime == "torch_lite" and model.quantization == "float"
    assert model.facts["layout"] == "NCHW" and model.spec.num_classes == 10
    with model.open() as runtime:
        predictions = runtime.predict(byo_images.images)
    np.testing.assert_array_equal(predictions, mini_torch.predict(byo_images.images))


@pytest.mark.parametrize("kind", ["keras", "torchscript", "exported"])
def test_source_models_predict_and_attack(kind, byo_dir, float_tflite, float_ptl, keras_source, mini_tf, mini_torch,
                                          byo_images):
    from harness.attack.attacks import FGSM, FoolboxModel

    if kind == "keras":
        model, mini = load_user_model(float_tflite, source_model=keras_source), mini_tf
    else:
        writer, name = (byo.torchscript, "source.pt") if kind == "torchscript" else (byo.exported, "source.pt2")
        path = byo_dir / name
        if not path.is_file():
            writer(mini_torch.module, path)
        model, mini = load_user_model(float_ptl, source_model=path), mini_torch
    source = model.source
    assert source.spec.id == model.spec.id and source.spec.framework == mini.spec.framework
    reference = mini.predict(byo_images.images)
    np.testing.assert_array_equal(source.predict(byo_images.images[:9]), reference[:9])  # 9: not the batch size
    right = np.flatnonzero(reference == byo_images.labels)[:4]
    out = FGSM(eps=0.1).run(FoolboxModel(source), byo_images.images[right] / np.float32(255),
                            byo_images.labels[right], seed=0)
    assert out.adversarials.shape == (len(right), 32, 32, 3) and out.success.any()


def test_one_source_model_serves_both_files(byo_dir, float_tflite, keras_source):
    first = load_user_model(float_tflite, source_model=keras_source)
    again = load_user_model(float_tflite, card=byo_dir / "float.card.toml", source_model=first.source)
    assert again.source.module is first.source.module


# --- refused, naming the file ------------------------------------------------------------------------
def test_two_inputs_are_refused(byo_dir):
    path = byo.two_input_tflite(byo_dir / "two_inputs.tflite")
    with pytest.raises(UserModelError, match=r"two_inputs\.tflite: the model has 2 inputs"):
        load_user_model(path)


def test_a_non_image_input_is_refused(byo_dir):
    gray = byo.grayscale_input_tflite(byo_dir / "gray.tflite")
    with pytest.raises(UserModelError, match=r"gray\.tflite: input shape \(1, 32, 32, 1\) has no 3-channel axis"):
        load_user_model(gray)
    vector = byo.vector_input_tflite(byo_dir / "vector.tflite")
    with pytest.raises(UserModelError, match=r"vector\.tflite: input shape \(1, 48\) is not an image batch"):
        load_user_model(vector)


def test_a_non_image_output_is_refused(byo_dir):
    path = byo.spatial_output_tflite(byo_dir / "spatial.tflite")
    (byo_dir / "spatial.card.toml").write_text("[input]\nmean = 0\nstd = 1\n")
    with pytest.raises(UserModelError, match=r"spatial\.tflite: output shape \(1, 4, 4, 10\) is not \(N, classes\)"):
        load_user_model(path)


def test_a_file_that_is_not_a_model_is_refused(tmp_path):
    path = tmp_path / "notes.tflite"
    path.write_bytes(b"these are not the flatbuffers you are looking for" * 20)
    with pytest.raises(ModelFileError, match=r"notes\.tflite"):
        load_user_model(path)
    other = tmp_path / "model.onnx"
    other.write_bytes(b"x")
    with pytest.raises(UserModelError, match=r"model\.onnx: not a mobile model file"):
        load_user_model(other)
    with pytest.raises(UserModelError, match=r"absent\.tflite: model file not found"):
        load_user_model(tmp_path / "absent.tflite")


@pytest.mark.parametrize("card, message", [
    ('[input]\nsize = 224\nmean = 127.5\nstd = 127.5\n', r"input\.size = 224 contradicts the model file: the model's input is 32"),
    ('[input]\ndtype = "uint8"\nmean = 127.5\nstd = 127.5\n', r"input\.dtype = 'uint8' contradicts .* is 'float32'"),
    ('[input]\nlayout = "NCHW"\nmean = 127.5\nstd = 127.5\n', r"input\.layout = 'NCHW' contradicts .* is 'NHWC'"),
    ('[input]\nmean = 127.5\nstd = 127.5\n[output]\nclasses = 1001\n', r"output\.classes = 1001 contradicts .* has 10"),
    ('[input]\nmean = 127.5\nstd = 127.5\n[output]\nquantization = "int8"\n', r"output\.quantization = 'int8' contradicts"),
    ('[input]\nmean = 127.5\nstd = 127.5\nquantization = { scale = 0.5, zero_point = 3 }\n', r"input is float32 \(not quantized\)"),
    ('[input]\nnormalization = "raw"\n', r"raw.*float32"),
    ('[input]\nchannel_order = "RGB"\n', r"float32 input, and no model card says how to normalise"),
])
def test_a_card_that_contradicts_the_float_model_names_both_files(float_tflite, tmp_path, card, message):
    path = tmp_path / "contradicting.card.toml"
    path.write_text(card)
    with pytest.raises(CardError, match=message) as info:
        load_user_model(float_tflite, card=path)
    assert str(float_tflite) in str(info.value) or str(path) in str(info.value)
    if "contradicts" in message:
        assert str(float_tflite) in str(info.value) and str(path) in str(info.value)


def test_a_card_that_contradicts_the_quantized_model(uint8_tflite, tmp_path):
    path = tmp_path / "q.card.toml"
    path.write_text('[input]\nquantization = { scale = 0.5, zero_point = 3 }\n')
    with pytest.raises(CardError, match=r"scale = 0\.5, zero_point = 3 \}, but the model's input tensor has scale"):
        load_user_model(uint8_tflite, card=path)
    path.write_text('[output]\nlabel_offset = 0\nlabels = "nowhere.txt"\n')
    with pytest.raises(DataError, match=r"nowhere\.txt: labels file not found"):
        load_user_model(uint8_tflite, card=path)
    labels = tmp_path / "ten.txt"
    byo.fashion_labels(labels)
    with pytest.raises(DataError, match=r"ten\.txt: lists 10 labels; the model has 1001 outputs"):
        load_user_model(uint8_tflite, card=path, labels=labels)


def test_a_ptl_needs_its_input_size(float_ptl, tmp_path):
    path = tmp_path / "nosize.card.toml"
    path.write_text("[input]\nmean = 0\nstd = 1\n")
    with pytest.raises(CardError, match=r"float\.ptl: a \.ptl file does not record its input size"):
        load_user_model(float_ptl, card=path)
    path.write_text("[input]\nsize = 32\nlayout = \"NHWC\"\nmean = 0\nstd = 1\n")
    with pytest.raises(UserModelError, match=r"float\.ptl: a call on one NHWC image \(1, 32, 32, 3\) fails"):
        load_user_model(float_ptl, card=path)


def test_a_source_model_that_does_not_fit(uint8_tflite, keras_source, tmp_path):
    with pytest.raises(UserModelError, match=r"source\.keras: output shape \(10,\) per image .* 1001 outputs"):
        load_user_model(uint8_tflite, source_model=keras_source)
    state = tmp_path / "weights.pt"
    state.write_bytes(b"not a torchscript archive")
    with pytest.raises(UserModelError, match=r"weights\.pt: torch\.jit\.load cannot read it"):
        load_source_model(state, load_user_model(uint8_tflite).spec)


def test_an_nchw_tflite_reads_its_layout_off_the_file(byo_dir, mini_tf, byo_images):
    path = byo.nchw_tflite(mini_tf.module, byo_dir / "nchw.tflite")
    (byo_dir / "nchw.card.toml").write_text("[input]\nmean = 127.5\nstd = 127.5\n")
    model = load_user_model(path)
    assert model.facts["layout"] == "NCHW" and model.spec.normalization.layout == "NCHW"
    with model.open() as runtime:
        predictions = runtime.predict(byo_images.images)
    np.testing.assert_array_equal(predictions, mini_tf.predict(byo_images.images))


def test_the_device_runner_runs_a_user_model_as_the_host_does(uint8_tflite, byo_images, tmp_path):
    """The arm64/device runner is fed the spec's Normalization and class count: nothing user-specific."""
    import json
    import subprocess
    import sys

    from android_harness import runner

    model = load_user_model(uint8_tflite)
    n = model.spec.normalization
    np.save(tmp_path / "x.npy", byo_images.images)
    job = {"id": "user", "model": str(model.path), "format": model.format, "quantization": model.quantization,
           "threads": 1, "input": {"npy": str(tmp_path / "x.npy")}, "num_classes": model.spec.num_classes,
           "preprocess": {"scale": n.scale, "mean": list(n.mean), "std": list(n.std),
                          "channel_order": n.channel_order, "layout": n.layout}, "batch_size": 16}
    (tmp_path / "jobs.json").write_text(json.dumps({"format": runner.RUNNER_FORMAT, "jobs": [job]}))
    done = subprocess.run([sys.executable, runner.__file__, str(tmp_path / "jobs.json"), str(tmp_path / "out")],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    with model.open() as runtime:
        expected = runtime.predict_logits(byo_images.images, batch_size=16)
    np.testing.assert_array_equal(np.load(tmp_path / "out" / "user.npy"), expected)


def test_an_int8_ptl_is_read_as_int8_and_runs_on_qnnpack(byo_dir, mini_torch, byo_images):
    from harness.convert.torch_mobile import TorchMobileConverter
    from harness.data import fashion_mnist
    from harness.data.samples import calibration_set

    calibration = calibration_set(fashion_mnist.load("train", "fixtures"), byo.N_CALIBRATION, 0)
    TorchMobileConverter().build(mini_torch, "int8", mini_torch.spec.normalization(calibration.images), {},
                                 byo_dir, "int8.ptl")
    (byo_dir / "int8.ptl.card.toml").write_text(
        '[input]\nsize = 32\nscale = 0.00392156862745098\nmean = [0.485, 0.456, 0.406]\nstd = [0.229, 0.224, 0.225]\n'
        '[output]\nquantization = "int8"\n')
    model = load_user_model(byo_dir / "int8.ptl")
    assert model.quantization == "int8" and model.facts["operators"] > 0
    with model.open() as runtime:
        assert runtime.engine == "qnnpack"
        predictions = runtime.predict(byo_images.images)
    assert np.mean(predictions == mini_torch.predict(byo_images.images)) >= 0.9
    (byo_dir / "int8.ptl.card.toml").write_text('[input]\nsize = 32\nmean = 0\nstd = 1\n[output]\nquantization = "float"\n')
    with pytest.raises(CardError, match=r"int8\.ptl .* output\.quantization = 'float', but the file holds quantized"):
        load_user_model(byo_dir / "int8.ptl")
