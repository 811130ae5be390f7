"""The model card reader: the documented example parses, every bad field is named, and fuzzing finds no other error."""

from __future__ import annotations

import re

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from harness.zoo import card as cards
from harness.zoo.card import CardError, card_path_for, parse_card, read_card


def _example() -> str:
    """The commented example in harness/zoo/card.py's docstring, as a file."""
    doc = cards.__doc__
    block = doc[doc.index("A complete example::") + len("A complete example::"):]
    lines = [line[4:] if line.startswith("    ") else line for line in block.splitlines()]
    return "\n".join(lines)


def test_the_documented_example_parses(tmp_path):
    path = tmp_path / "m.card.toml"
    path.write_text(_example())
    card = read_card(path)
    assert card.name == "mobilenet_v2_int8" and card.size == 224 and card.layout == "NHWC" and card.dtype == "uint8"
    assert card.resize == 256 and card.mean == (127.5,) * 3 and card.std == (127.5,) * 3 and card.scale == 1.0
    assert card.input_quantization == (0.0078125, 128) and card.classes == 1001 and card.label_offset == 1
    assert card.labels == tmp_path / "labels.txt" and card.quantization == "int8" and not card.raw
    assert card.output_name == "probabilities" and card.output_kind == "probabilities"


def test_output_kind_and_name_are_checked():
    with pytest.raises(CardError, match=r"output\.kind = 'scores': expected one of logits, probabilities"):
        parse_card({"output": {"kind": "scores"}})
    with pytest.raises(CardError, match=r"output\.name = 3: expected the name of one of the model's outputs"):
        parse_card({"output": {"name": 3}})


def test_raw_and_defaults():
    card = parse_card({"input": {"normalization": "raw"}})
    assert card.raw and not card.has_float_normalization and card.channel_order == "RGB" and card.size is None
    assert parse_card({}) == cards.Card(given=frozenset())


@pytest.mark.parametrize("data, message", [
    ({"inptu": {}}, r"unknown field\(s\) inptu"),
    ({"input": {"mena": 1}}, r"unknown field\(s\) input\.mena"),
    ({"input": 3}, r"\[input\] must be a table"),
    ({"name": "my-model"}, r"name = 'my-model': expected 1-64 letters"),
    ({"input": {"size": 0}}, r"input\.size = 0: expected an integer at least 1"),
    ({"input": {"size": 2.5}}, r"input\.size = 2\.5: expected an integer"),
    ({"input": {"layout": "HWC"}}, r"input\.layout = 'HWC': expected one of NHWC, NCHW"),
    ({"input": {"dtype": "float16"}}, r"input\.dtype = 'float16'"),
    ({"input": {"mean": [1, 2]}}, r"input\.mean = \[1, 2\]: expected one number or three"),
    ({"input": {"std": 0}}, r"input\.std = 0: expected a positive number"),
    ({"input": {"std": float("nan")}}, r"input\.std = nan: expected a finite number"),
    ({"input": {"normalization": "imagenet"}}, r"the only value is \"raw\""),
    ({"input": {"normalization": "raw", "mean": 1}}, r"raw\" and input\.scale/mean/std both given"),
    ({"input": {"normalization": "raw", "dtype": "float32"}}, r"needs a uint8 or int8 input"),
    ({"input": {"quantization": {"scale": 1}}}, r"expected \{ scale = S, zero_point = Z \}"),
    ({"input": {"quantization": {"scale": 1, "zero_point": 300}}}, r"zero_point = 300: expected an integer in -128\.\.255"),
    ({"output": {"classes": 10, "label_offset": 10}}, r"label_offset = 10 leaves no class among 10 outputs"),
    ({"output": {"labels": 3}}, r"output\.labels = 3: expected a file path"),
    ({"output": {"quantization": "int4"}}, r"output\.quantization = 'int4'"),
])
def test_bad_fields_are_named(tmp_path, data, message):
    with pytest.raises(CardError, match=message) as info:
        parse_card(data, tmp_path / "bad.card.toml")
    assert str(tmp_path / "bad.card.toml") in str(info.value)


def test_unreadable_cards_name_the_file(tmp_path):
    path = tmp_path / "m.card.toml"
    path.write_bytes(b"[input\nsize = 3")
    with pytest.raises(CardError, match=re.escape(f"{path}: not valid TOML")):
        read_card(path)
    path.write_bytes(b"\xff\xfe")
    with pytest.raises(CardError, match="not UTF-8"):
        read_card(path)
    with pytest.raises(CardError, match="cannot read the model card"):
        read_card(tmp_path / "absent.card.toml")


def test_the_card_beside_the_model(tmp_path):
    model = tmp_path / "m.tflite"
    assert card_path_for(model) is None
    (tmp_path / "m.card.toml").write_text("")
    assert card_path_for(model) == tmp_path / "m.card.toml"
    (tmp_path / "m.tflite.card.toml").write_text("")
    assert card_path_for(model) == tmp_path / "m.tflite.card.toml"  # the more specific wins


FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@FUZZ
@given(data=st.binary(max_size=400))
def test_fuzzed_bytes_give_only_card_errors(tmp_path, data):
    path = tmp_path / "fuzz.card.toml"
    path.write_bytes(data)
    try:
        read_card(path)
    except CardError as exc:
        assert str(path) in str(exc)


_scalars = st.one_of(st.none(), st.booleans(), st.integers(-10**20, 10**20), st.floats(allow_nan=True),
                     st.text(max_size=12), st.sampled_from(["raw", "NHWC", "NCHW", "uint8", "int8", "float32", "RGB",
                                                            "BGR", "int8", "float", "labels.txt"]))
_values = st.recursive(_scalars, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                         st.dictionaries(st.text(max_size=8), inner, max_size=3)),
                       max_leaves=8)
_input_keys = st.sampled_from(sorted(cards._INPUT) + ["junk"])
_output_keys = st.sampled_from(sorted(cards._OUTPUT) + ["junk"])


@FUZZ
@given(top=st.dictionaries(st.sampled_from(["name", "junk"]), _values, max_size=2),
       section_in=st.dictionaries(_input_keys, _values, max_size=5),
       section_out=st.dictionaries(_output_keys, _values, max_size=4))
def test_fuzzed_fields_give_only_card_errors(tmp_path, top, section_in, section_out):
    data = {**{k: v for k, v in top.items() if v is not None},
            "input": {k: v for k, v in section_in.items() if v is not None},
            "output": {k: v for k, v in section_out.items() if v is not None}}
    try:
        card = parse_card(data, tmp_path / "fuzz.card.toml")
    except CardError:
        return
    assert card.channel_order in ("RGB", "BGR")

