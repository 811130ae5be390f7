"""``python -m harness.example``: the README's "your own model" example, written from the real zoo.

The slow tests write the example once (the three conversions are cached artefacts: about
100 s cold on two cores, 15 s warm) and load every file through the bring-your-own loader,
as ``python -m harness --model ...`` does.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from harness import example
from harness.data.photos import read_manifest
from harness.zoo import real


def _leftovers(parent: Path, name: str) -> list[Path]:
    return [p for p in parent.iterdir() if p.name.startswith(f".{name}.partial-")]


def test_refuses_a_folder_that_is_not_empty(tmp_path, capsys):
    out = tmp_path / "byo"
    out.mkdir()
    (out / "mine.txt").write_text("keep me")
    with pytest.raises(SystemExit) as exit_info:
        example.main([str(out)])
    assert exit_info.value.code == 2
    assert f"{out}: folder exists and is not empty" in capsys.readouterr().err
    assert [p.name for p in out.iterdir()] == ["mine.txt"]
    assert not _leftovers(tmp_path, "byo")


def test_refuses_a_file(tmp_path, capsys):
    out = tmp_path / "byo"
    out.write_text("a file")
    with pytest.raises(SystemExit):
        example.main([str(out)])
    assert f"{out}: exists and is not a folder" in capsys.readouterr().err


def test_a_failure_half_way_leaves_nothing(tmp_path, capsys):
    """The cache is a file, so the first conversion fails after the source model was written: the
    temporary folder goes, the output folder is never created, and the error says why."""
    cache = tmp_path / "cache"
    cache.write_text("not a folder")
    out = tmp_path / "byo"
    assert example.main([str(out), "--cache-dir", str(cache)]) == 1
    err = capsys.readouterr().err
    assert f"{cache}/" in err and "Not a directory" in err and f"nothing was written to {out}" in err
    assert not out.exists()
    assert not _leftovers(tmp_path, "byo")


def test_cards_parse_and_say_the_real_zoos_normalisation():
    from harness.zoo.card import parse_card
    import tomllib

    float_card = parse_card(tomllib.loads(example.float_card()))
    ptl_card = parse_card(tomllib.loads(example.float_card(ptl=True)))
    assert (float_card.layout, ptl_card.layout, ptl_card.size) == ("NHWC", "NCHW", real.INPUT_SIZE)
    int8_card = parse_card(tomllib.loads(example.int8_card(0.0078125, -1)))
    for card in (float_card, int8_card):
        assert card.name == "efficientnet_lite0"
        assert card.mean == real.LITE_NORMALIZATION.mean and card.std == real.LITE_NORMALIZATION.std
        assert card.scale is None and card.classes == real.NUM_CLASSES
    assert float_card.size == real.INPUT_SIZE and float_card.quantization == "float"
    assert int8_card.dtype == "int8" and int8_card.input_quantization == (0.0078125, -1)


# -- the example itself (slow: three conversions when the cache is cold) -----------------------------
@pytest.fixture(scope="module")
def written(tmp_path_factory):
    out = tmp_path_factory.mktemp("example") / "byo"
    assert example.main([str(out)]) == 0
    return out


@pytest.fixture(scope="module")
def loaded(written):
    from harness.byo import UserInputs

    inputs = UserInputs(models=(written / example.FLOAT_TFLITE, written / example.INT8_TFLITE,
                                written / example.FLOAT_PTL),
                        source_models=(written / example.SOURCE,), images=written / example.PHOTOS)
    return inputs.load()


@pytest.mark.slow
def test_writes_every_file_and_the_command(written, capsys):
    names = sorted(p.relative_to(written).as_posix() for p in written.rglob("*") if p.is_file())
    photos = [p for p in read_manifest() if p.role == "evaluation"]
    assert names == sorted([example.FLOAT_TFLITE, example.INT8_TFLITE, example.FLOAT_PTL, example.SOURCE,
                            example.FLOAT_CARD, example.PTL_CARD, example.INT8_CARD, example.LICENSES,
                            *(f"photos/{p.wnid}/{Path(p.path).name}" for p in photos)])
    licences = json.loads((written / example.LICENSES).read_text())["photos"]
    assert {e["file"]: e["licence"] for e in licences} == {f"photos/{p.wnid}/{Path(p.path).name}": p.licence
                                                           for p in photos}
    assert not _leftovers(written.parent, written.name)
    command = example.next_command(written)
    assert command[1:3] == ["-m", "harness"]
    for flag, value in zip(command[3::2], command[4::2]):
        assert flag in ("--model", "--source-model", "--images") and Path(value).exists()


@pytest.mark.slow
def test_refuses_to_overwrite_the_example(written, capsys):
    before = sorted(p.name for p in written.iterdir())
    with pytest.raises(SystemExit):
        example.main([str(written)])
    assert "is not empty" in capsys.readouterr().err
    assert sorted(p.name for p in written.iterdir()) == before


@pytest.mark.slow
def test_every_file_loads_through_the_bring_your_own_loader(loaded, written):
    by_file = {m.path.name: m for m in loaded.models}
    assert {name: (m.format, m.quantization, m.runtime, m.spec.name) for name, m in by_file.items()} == {
        example.FLOAT_TFLITE: ("tflite", "float", "litert", "efficientnet_lite0"),
        example.INT8_TFLITE: ("tflite", "int8", "litert", "efficientnet_lite0"),
        example.FLOAT_PTL: ("ptl", "float", "torch_lite", "efficientnet_lite0"),
    }
    for m in loaded.models:
        n = m.spec.normalization
        assert (n.scale, n.mean, n.std, n.channel_order) == (1.0, (127.0,) * 3, (128.0,) * 3, "RGB")
        assert m.spec.framework == "pytorch" and m.spec.num_classes == 1000 and m.labels.offset == 0
        assert m.geometry.crop == 224 and m.geometry.resize == 224 and m.notes == []
        # The source model gets the card's normalisation, channels first, as the zoo's module does.
        assert m.source.spec.normalization.layout == "NCHW"
        assert m.source.weights_path == written / example.SOURCE
    assert by_file[example.FLOAT_TFLITE].spec.normalization.layout == "NHWC"
    assert by_file[example.FLOAT_PTL].spec.normalization.layout == "NCHW"
    assert by_file[example.INT8_TFLITE].facts["input"]["dtype"] == "int8"
    # The class folders (WordNet ids) label the photos with the manifest's classes.
    images = loaded.images
    assert images.mode == "folders" and images.labelled
    by_name = {Path(p).name: int(label) for p, label in zip(images.paths, images.candidate_labels())}
    assert by_name == {Path(p.path).name: p.label for p in read_manifest() if p.role == "evaluation"}


def _photos(loaded, model):
    return loaded.images.load(loaded.images.candidate_ids(), model.spec)


@pytest.mark.slow
def test_the_source_model_is_the_real_zoos_model(loaded):
    zoo = real.load("pytorch", "efficientnet_lite0")
    source = loaded.models[0].source
    photos = _photos(loaded, source)
    np.testing.assert_allclose(source.predict_logits(photos.images), zoo.predict_logits(photos.images),
                               rtol=0, atol=1e-4)


@pytest.mark.slow
@pytest.mark.parametrize("name", [example.FLOAT_TFLITE, example.FLOAT_PTL])
def test_float_files_agree_with_the_pc_model_on_every_photo(loaded, name):
    """Top-1 of the float .tflite and .ptl equals the PC source model's on every photo, one photo a
    call (the app's way; see the batch test below)."""
    model = next(m for m in loaded.models if m.path.name == name)
    pc = model.source.predict_logits(_photos(loaded, model.source).images)
    with model.open("mobile") as runtime:
        mobile = runtime.predict_logits(_photos(loaded, model).images, batch_size=1)
    assert mobile.argmax(1).tolist() == pc.argmax(1).tolist()
    assert np.abs(mobile - pc).max() < 1e-2


@pytest.mark.slow
@pytest.mark.parametrize("name", [example.FLOAT_TFLITE, example.INT8_TFLITE])
def test_the_tflite_answers_a_batch_of_every_photo_as_it_answers_each(loaded, name):
    """litert-torch writes the crop after each stride-2 convolution (EfficientNet-Lite's SAME
    padding, x[:, :, 1:, 1:]) as a SLICE sized for the export's batch of 2; the converter rewrites
    that size to "any batch" (harness.convert.torch_litert._slices_with_any_batch). Without it a
    batch of 3 or more got 2 rows back."""
    model = next(m for m in loaded.models if m.path.name == name)
    photos = _photos(loaded, model).images
    assert len(photos) > 2
    with model.open("mobile") as runtime:
        batch = runtime.predict_logits(photos)
        each = runtime.predict_logits(photos, batch_size=1)
    assert batch.shape == (len(photos), 1000)
    np.testing.assert_array_equal(batch, each)
