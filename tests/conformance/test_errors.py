"""Bad input from a user's files: each failure mode ends ``python -m harness`` in a one-line error
naming the file, the value found and the value expected, never a traceback; and a fuzzer over the
file-facing options (model, card, labels, output, images) finds no other ending."""

from __future__ import annotations

import shutil

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conformance import support


def _fails(world, tmp_path, monkeypatch, capsys, *options, images=None) -> tuple[int, str]:
    """(exit status, stderr) of a run that must stop: 2 (usage) from argparse, or 1."""
    try:
        code = support.run_main(world / "profiles.toml", tmp_path / "reports", world / "cache", monkeypatch,
                                *options, "--images", str(images or world / "photos"))
    except SystemExit as stop:
        code = stop.code
    out = capsys.readouterr()
    assert "Traceback" not in out.err and "Traceback" not in out.out
    return code, out.err


def _one_line(err: str) -> str:
    """The error line: argparse's usage lines, then ``python -m harness: error: ...`` (or ``error: ...``)."""
    lines = [line for line in err.strip().splitlines() if "error:" in line]
    assert len(lines) == 1, err
    return lines[0]


def test_several_outputs_without_a_name_lists_them(world, tmp_path, monkeypatch, capsys):
    model = world / "files" / "two_outputs_batch1.tflite"
    code, err = _fails(world, tmp_path, monkeypatch, capsys, "--model", str(model))
    line = _one_line(err)
    assert code == 2 and str(model) in line and "has 2 outputs, name one" in line
    assert "serving_default:embedding" in line and "serving_default:logits" in line


def test_an_output_name_the_file_does_not_have(world, tmp_path, monkeypatch, capsys):
    model = world / "files" / "two_outputs_batch1.tflite"
    code, err = _fails(world, tmp_path, monkeypatch, capsys, "--model", str(model), "--output", "scores")
    line = _one_line(err)
    assert code == 2 and str(model) in line and "'scores'" in line and "serving_default:logits" in line


def test_a_card_that_contradicts_the_metadata_names_both(world, tmp_path, monkeypatch, capsys):
    model = tmp_path / "m.tflite"
    shutil.copy(world / "files" / "metadata_float32_batch1.tflite", model)
    (tmp_path / "m.card.toml").write_text("[input]\nmean = 0\nstd = 255\n")
    code, err = _fails(world, tmp_path, monkeypatch, capsys, "--model", str(model))
    line = _one_line(err)
    assert code == 2 and str(tmp_path / "m.card.toml") in line and str(model) in line
    assert "mean [0.0, 0.0, 0.0]" in line and "metadata: normalization mean [127.5, 127.5, 127.5]" in line


def test_a_labels_file_that_contradicts_the_metadata_names_both(world, tmp_path, monkeypatch, capsys):
    model = world / "files" / "metadata_float32_batch1.tflite"
    labels = tmp_path / "labels.txt"
    labels.write_text("\n".join(["shirt"] + [f"class {k}" for k in range(1, 10)]) + "\n")
    code, err = _fails(world, tmp_path, monkeypatch, capsys, "--model", str(model), "--labels", str(labels))
    line = _one_line(err)
    assert code == 2 and str(labels) in line and "labels.txt" in line
    assert "class 0 is 'shirt' there and 'T-shirt/top' in the metadata" in line


def test_a_card_kind_that_contradicts_the_file(world, tmp_path, monkeypatch, capsys):
    model = tmp_path / "p.tflite"
    shutil.copy(world / "files" / "uint8_1001_softmax_batch1.tflite", model)
    (tmp_path / "p.card.toml").write_text('[output]\nkind = "logits"\n')
    code, err = _fails(world, tmp_path, monkeypatch, capsys, "--model", str(model))
    line = _one_line(err)
    assert code == 2 and str(model) in line and "output.kind = 'logits'" in line
    assert "its outputs are probabilities (produced by SOFTMAX" in line


def test_an_output_name_for_a_pte(world, tmp_path, monkeypatch, capsys):
    model = world / "files" / "static_batch1.pte"
    code, err = _fails(world, tmp_path, monkeypatch, capsys, "--model", str(model), "--output", "logits")
    line = _one_line(err)
    assert code == 2 and str(model) in line and "returns one unnamed output" in line


def test_a_float_file_with_neither_card_nor_metadata(world, tmp_path, monkeypatch, capsys):
    model = tmp_path / "bare.tflite"
    shutil.copy(world / "files" / "float32_batch1.tflite", model)
    code, err = _fails(world, tmp_path, monkeypatch, capsys, "--model", str(model))
    line = _one_line(err)
    assert code == 2 and str(model) in line and "no model card says how to normalise pixels" in line


def test_a_truncated_file(world, tmp_path, monkeypatch, capsys):
    model = tmp_path / "cut.tflite"
    model.write_bytes((world / "files" / "int8_batch1.tflite").read_bytes()[:5000])
    code, err = _fails(world, tmp_path, monkeypatch, capsys, "--model", str(model))
    line = _one_line(err)
    assert code == 2 and str(model) in line and "LiteRT" in line


def test_a_model_whose_invoke_fails_says_so(world, tmp_path, monkeypatch, capsys):
    """It loads and runs on zeros (the loader's check), then fails on the photos: every case ends in
    one line naming the file and LiteRT's own reason, and the run exits 1."""
    model = tmp_path / "failing.tflite"
    shutil.copy(world / "files" / "failing_op.tflite", model)
    (tmp_path / "failing.card.toml").write_text("[input]\nmean = 127.5\nstd = 127.5\n")
    code, err = _fails(world, tmp_path, monkeypatch, capsys, "--model", str(model))
    line = _one_line(err)
    assert code == 1 and str(model) in line and "gather index out of bounds" in line, err
    assert "failed running the model on a batch of" in line


# -- the fuzzer ----------------------------------------------------------------------------------
TOML = st.one_of(
    st.text(max_size=80),
    st.builds(lambda k, v: f"[input]\n{k} = {v}\n", st.sampled_from(["size", "mean", "std", "scale", "layout",
                                                                     "dtype", "resize", "normalization"]),
              st.sampled_from(["0", "-1", "1e400", '"NHWC"', '"raw"', "[1, 2]", "32", "127.5", '"x"'])),
    st.builds(lambda k, v: f"[output]\n{k} = {v}\n", st.sampled_from(["classes", "label_offset", "kind", "name",
                                                                      "labels", "quantization"]),
              st.sampled_from(["0", "10", "1001", '"logits"', '"probabilities"', '"nope"', '"labels.txt"'])),
)
MODELS = st.sampled_from(["float32_batch1.tflite", "metadata_float32_batch1.tflite", "two_outputs_batch1.tflite",
                          "static_batch1.pte", "baked_batch1.ptl", "uint8_1001_softmax_batch1.tflite",
                          "garbage.tflite", "garbage.pte", "garbage.ptl", "missing.tflite", "photo.tflite"])


@settings(max_examples=30, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
@given(model=MODELS, card=st.one_of(st.none(), TOML), labels=st.one_of(st.none(), st.text(max_size=60)),
       output=st.one_of(st.none(), st.sampled_from(["logits", "embedding", "", "StatefulPartitionedCall_1:0"])),
       garbage=st.binary(max_size=200))
def test_fuzzed_file_options_end_in_a_report_or_one_line(world, tmp_path_factory, monkeypatch, capsys, model, card,
                                                         labels, output, garbage):
    folder = tmp_path_factory.mktemp("fuzz")
    path = folder / model
    if model.startswith("garbage"):
        path.write_bytes(garbage)
    elif model == "photo.tflite":
        path.write_bytes(next((world / "photos").rglob("*.png")).read_bytes())
    elif model != "missing.tflite":
        shutil.copy(world / "files" / model, path)
    options = ["--model", str(path)]
    if card is not None:
        (folder / "fuzz.card.toml").write_text(card)
        options += ["--card", str(folder / "fuzz.card.toml")]
    if labels is not None:
        (folder / "labels.txt").write_text(labels)
        options += ["--labels", str(folder / "labels.txt")]
    if output is not None:
        options += ["--output", output]
    try:
        code = support.run_main(world / "profiles.toml", folder / "reports", world / "cache", monkeypatch, *options,
                                "--images", str(world / "photos"))
    except SystemExit as stop:
        code = stop.code
    out = capsys.readouterr()
    assert "Traceback" not in out.err and "Traceback" not in out.out, out.err[-2000:]
    assert code in (0, 1, 2)
    if code:
        assert [line for line in out.err.splitlines() if "error:" in line or "FAILED" in line] or \
            "FAILED" in out.out, out.err[-2000:] + out.out[-2000:]
