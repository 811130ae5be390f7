"""Conversion of the trained mini zoo to .tflite / .ptl, float and int8, through the artefact cache."""

from __future__ import annotations

import json
import zipfile

import numpy as np
import pytest

from harness.cache import ArtifactCache, file_sha256
from harness.convert import ConversionError, MobileArtifact, convert, zoo_model_from_module
from harness.runtime import open_runtime
from harness.zoo import mini
from tests.convert import support


@pytest.fixture
def tmp_cache(tmp_path):
    return ArtifactCache(tmp_path / "cache", log=lambda message: None)


@pytest.mark.parametrize("framework, name", support.MINI, ids=support.MINI_IDS)
@pytest.mark.parametrize("quantization", ["float", "int8"])
def test_artefact_is_a_mobile_model_with_its_recipe_in_the_manifest(framework, name, quantization):
    art = support.artifact(framework, name, quantization)
    assert isinstance(art, MobileArtifact)
    assert art.spec.id == f"mini/{framework}/{name}" and art.quantization == quantization
    head = art.path.read_bytes()[:8]
    if framework == "tensorflow":
        assert art.path.suffix == ".tflite" and head[4:8] == b"TFL3"
        assert art.kind == f"tflite-{quantization}"
    else:
        assert art.path.suffix == ".ptl" and zipfile.is_zipfile(art.path)
        assert art.kind == f"ptl-{quantization}"
    assert art.size_bytes == art.path.stat().st_size
    manifest = json.loads((art.artifact.path / "manifest.json").read_text())
    assert manifest["files"][art.path.name]["sha256"] == file_sha256(art.path)
    parts = manifest["key_parts"]
    assert parts["weights"] == support.trained(framework, name).weights_digest
    assert parts["quantization"] == quantization
    assert set(parts["versions"]) >= ({"tensorflow", "keras"} if framework == "tensorflow" else {"torch"})
    options = manifest["metadata"]["options"]
    assert options == parts["options"]
    if quantization == "float":
        assert "calibration" not in parts
    else:
        assert parts["calibration"]["ids"] == [int(i) for i in support.calibration().ids]
        assert len(parts["calibration"]["ids"]) == support.CALIBRATION_SIZE
        if framework == "tensorflow":
            assert options["optimizations"] == ["DEFAULT"]
            assert options["representative_dataset"]["images"] == support.CALIBRATION_SIZE
            settings = manifest["metadata"]["converter_settings"]
            assert settings["inference_input_type"] == settings["inference_output_type"] == "float32"
        else:
            assert options["qconfig"] == "get_default_qconfig('qnnpack')" and options["engine"] == "qnnpack"
            assert options["fuse_model"] is True and options["optimize_for_mobile"] is False


@pytest.mark.parametrize("framework, name", support.MINI, ids=support.MINI_IDS)
def test_int8_file_is_at_most_30_percent_of_float(framework, name, record_property):
    ratio = support.artifact(framework, name, "int8").size_bytes / support.artifact(framework, name, "float").size_bytes
    record_property("int8_size_ratio", round(ratio, 4))
    assert ratio <= 0.30, f"int8/float size ratio {ratio:.3f}"


def test_tflite_int8_quantizes_weights_and_activations_but_keeps_float_io():
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=str(support.artifact("tensorflow", "mobilenet_v2", "int8").path))
    details = interpreter.get_tensor_details()
    int8 = [d for d in details if d["dtype"] == np.int8]
    assert len(int8) > len(details) / 2, "most tensors should be int8"
    assert interpreter.get_input_details()[0]["dtype"] == np.float32
    assert interpreter.get_output_details()[0]["dtype"] == np.float32


def test_pytorch_int8_keeps_the_quantized_state_for_the_pc_platform():
    torch = pytest.importorskip("torch")
    art = support.artifact("pytorch", "resnet50", "int8")
    state = torch.load(art.file("quantized_state_dict.pt"), weights_only=True)
    weights = [v for k, v in state.items() if k.endswith("weight") and isinstance(v, torch.Tensor)]
    assert weights and all(w.dtype == torch.qint8 for w in weights)


# -- the cache: hits, keys, corruption ----------------------------------------------------------
def test_second_conversion_is_a_cache_hit_and_the_key_tracks_every_input(tmp_cache):
    model = support.trained("pytorch", "mobilenet_v2")
    calib = support.calibration()
    first = convert(model, "int8", calib, tmp_cache, calibration_size=20)
    again = convert(model, "int8", calib, tmp_cache, calibration_size=20)
    assert first.built and not again.built
    assert again.path == first.path and again.key == first.key
    other_ids = convert(model, "int8", calib.select(calib.ids[20:40]), tmp_cache)
    assert other_ids.built and other_ids.key != first.key
    other_size = convert(model, "int8", calib, tmp_cache, calibration_size=21)
    assert other_size.key not in (first.key, other_ids.key)
    # float ignores calibration images entirely
    f1 = convert(model, "float", calib, tmp_cache)
    f2 = convert(model, "float", None, tmp_cache)
    assert f1.built and not f2.built and f1.key == f2.key
    # other weights, other key
    fresh = zoo_model_from_module(model.spec, mini.build("pytorch", "mobilenet_v2"))
    assert fresh.weights_digest != model.weights_digest
    assert convert(fresh, "float", None, tmp_cache).key != f1.key


def test_corrupt_cached_tflite_is_rebuilt_not_used(tmp_cache):
    model = support.trained("tensorflow", "resnet50")
    first = convert(model, "float", None, tmp_cache)
    good = first.path.read_bytes()
    data = bytearray(good)
    for offset in range(len(data) // 2, len(data) // 2 + 64):
        data[offset] ^= 0xFF
    first.path.write_bytes(bytes(data))
    again = convert(model, "float", None, tmp_cache)
    assert again.built, "a corrupt artefact must be rebuilt"
    assert again.path.read_bytes() == good  # the converter is deterministic
    with open_runtime("mobile", model, again) as runtime:
        images = support.evaluation().images[:50]
        assert (runtime.predict(images) == model.predict(images)).mean() >= 0.98


def test_truncated_cached_ptl_is_rebuilt(tmp_cache):
    model = support.trained("pytorch", "resnet50")
    first = convert(model, "float", None, tmp_cache)
    first.path.write_bytes(first.path.read_bytes()[: first.size_bytes // 2])
    again = convert(model, "float", None, tmp_cache)
    assert again.built and again.size_bytes == first.size_bytes
    assert file_sha256(again.path) == again.artifact.manifest["files"][again.path.name]["sha256"]


# -- bad requests --------------------------------------------------------------------------------
@pytest.mark.parametrize("framework", ["tensorflow", "pytorch"])
def test_int8_without_calibration_images_is_a_clear_error(framework, tmp_cache):
    model = support.trained(framework, "mobilenet_v2")
    empty = support.calibration().select([])
    assert len(empty) == 0
    for calibration in (None, empty):
        with pytest.raises(ConversionError, match="int8 quantization needs calibration images"):
            convert(model, "int8", calibration, tmp_cache)
    assert not list(tmp_cache.root.rglob("manifest.json")), "nothing may be cached"


def test_other_bad_conversion_requests(tmp_cache):
    model = support.trained("pytorch", "mobilenet_v2")
    calib = support.calibration()
    with pytest.raises(ConversionError, match="unknown quantization 'int4'"):
        convert(model, "int4", calib, tmp_cache)
    too_many = len(calib) + 1
    with pytest.raises(ConversionError, match=f"asked for {too_many} calibration images, the set has {len(calib)}"):
        convert(model, "int8", calib, tmp_cache, calibration_size=too_many)
    with pytest.raises(ConversionError, match="calibration size must be positive"):
        convert(model, "int8", calib, tmp_cache, calibration_size=0)
    from harness.data.dataset import ImageDataset

    small = ImageDataset("toy", "train", np.arange(4), np.zeros((4, 28, 28, 3), np.uint8),
                         np.zeros(4, np.int64), ("a",))
    with pytest.raises(ConversionError, match=r"calibration images are \(28, 28, 3\), the model takes \(32, 32, 3\)"):
        convert(model, "int8", small, tmp_cache)


def test_int8_needs_a_quantizable_pytorch_module(tmp_cache):
    torch = pytest.importorskip("torch")
    spec = mini.spec("pytorch", "mobilenet_v2")
    plain = torch.nn.Sequential(torch.nn.Conv2d(3, 10, 3), torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten())
    with pytest.raises(ConversionError, match="has no fuse_model"):
        convert(zoo_model_from_module(spec, plain), "int8", support.calibration(), tmp_cache, calibration_size=4)
