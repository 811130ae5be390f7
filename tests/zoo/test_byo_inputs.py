"""The bring-your-own options: checked before anything loads, then loaded for real, usage errors naming the file."""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from harness import byo
from tests.zoo import byo_support as byo_files

REPO = Path(__file__).resolve().parents[2]


def _inputs(*argv: str) -> byo.UserInputs:
    parser = argparse.ArgumentParser()
    byo.add_options(parser.add_argument)
    return byo.UserInputs.from_options(parser.parse_args(list(argv)))


def test_options_parse_into_the_dataclass(tmp_path):
    inputs = _inputs("--model", "a.tflite", "--model", "b.ptl", "--card", "c.toml", "--images", "photos",
                     "--labels", "l.txt", "--source-model", "s.keras")
    assert inputs.models == (Path("a.tflite"), Path("b.ptl")) and inputs.cards == (Path("c.toml"),)
    assert inputs.images == Path("photos") and inputs.labels == Path("l.txt") and inputs.given
    assert inputs.pairs() == [(Path("a.tflite"), Path("c.toml"), Path("s.keras")),
                              (Path("b.ptl"), Path("c.toml"), Path("s.keras"))]
    assert not _inputs().given and _inputs().problems() == []


def test_cheap_problems_are_all_listed(tmp_path):
    model = tmp_path / "m.tflite"
    model.write_bytes(b"x")
    problems = _inputs("--model", str(model), "--model", str(tmp_path / "m.onnx"), "--model", str(tmp_path / "n.ptl"),
                       "--card", "a", "--card", "b", "--images", str(tmp_path / "nowhere"),
                       "--labels", str(tmp_path / "l.txt")).problems()
    assert any("m.onnx: expected a .tflite, .ptl or .pte file" in p for p in problems)
    assert any("n.ptl: file not found" in p for p in problems)
    assert any("--card is given 2 times for 3 --model files" in p for p in problems)
    assert any("nowhere: folder not found" in p for p in problems)
    assert any("l.txt: file not found" in p for p in problems)
    assert _inputs("--images", str(tmp_path)).problems() == [
        "--images needs --model PATH (the mobile model file it belongs to)"]


def test_load_gives_the_models_and_the_images(float_tflite, uint8_tflite, keras_source, byo_dir, byo_images, mini_tf):
    photos = byo_files.write_class_folders(byo_images, byo_dir / "by_name",
                                           lambda k: byo_files.FASHION[k].replace("/", "_"))
    labels = byo_files.fashion_labels_1001(byo_dir / "every_output.txt")
    loaded = _inputs("--model", str(uint8_tflite), "--images", str(photos), "--labels", str(labels)).load()
    (model,) = loaded.models
    assert loaded.images.labels_from == "class sub-folders" and loaded.images.label_space.offset == 1
    data = loaded.images.load(loaded.images.candidate_ids(), model.spec)
    with model.open() as runtime:
        hits = runtime.predict(data.images) == data.labels  # labels in output-index space
    assert hits.mean() >= 0.8  # the mini model's clean accuracy on these images, less int8 rounding
    assert loaded.describe()["images"]["label_space"]["offset"] == 1

    # unlabelled: the source model (the PC model) labels them
    flat = byo_files.write_flat(byo_images, byo_dir / "flat")
    loaded = _inputs("--model", str(float_tflite), "--source-model", str(keras_source), "--images", str(flat)).load()
    assert loaded.reference is loaded.models[0].source
    loaded.label_images()
    order = {int(p.stem): k for k, p in enumerate(loaded.images.paths)}
    rows = np.array([order[int(i)] for i in byo_images.ids])
    np.testing.assert_array_equal(loaded.images.candidate_labels()[rows], mini_tf.predict(byo_images.images))
    assert "source model source.keras" in loaded.images.labels_from and loaded.notes


def test_load_turns_every_problem_into_an_input_error(float_tflite, uint8_tflite, tmp_path):
    card = tmp_path / "wrong.card.toml"
    card.write_text("[input]\nsize = 64\nmean = 0\nstd = 1\n")
    with pytest.raises(byo.InputError, match=r"float\.tflite and its card .*wrong\.card\.toml: the card's input\.size"):
        _inputs("--model", str(float_tflite), "--card", str(card)).load()
    with pytest.raises(byo.InputError, match=r"uint8_1001\.tflite has 1001 outputs .* models studied together"):
        _inputs("--model", str(float_tflite), "--model", str(uint8_tflite)).load()
    (tmp_path / "empty").mkdir()
    with pytest.raises(byo.InputError, match=r"empty: no images in this folder"):
        _inputs("--model", str(float_tflite), "--images", str(tmp_path / "empty")).load()


def test_pytest_and_python_m_harness_refuse_bad_options(tmp_path, float_tflite):
    card = tmp_path / "wrong.card.toml"
    card.write_text("[input]\nsize = 64\nmean = 0\nstd = 1\n")
    cmd = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "tests/zoo/test_card.py",
           "-k", "example", "--report-dir", str(tmp_path), "--model", str(float_tflite), "--card", str(card)]
    result = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=600)
    assert result.returncode == 4, result.stdout[-2000:] + result.stderr[-2000:]
    assert "the card's input.size = 64 contradicts the model file" in result.stderr
    result = subprocess.run([sys.executable, "-m", "harness", "--report-dir", str(tmp_path), "--images", str(tmp_path)],
                            cwd=REPO, capture_output=True, text=True, timeout=600)
    assert result.returncode == 2 and "--images needs --model PATH" in result.stderr
