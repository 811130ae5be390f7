"""Labels files and label spaces: names per output index, the background offset, lookups by index/wnid/name."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from harness.data import labels as spaces
from harness.data.dataset import DataError

FASHION = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")


def test_every_output_listed_with_a_declared_offset(tmp_path):
    path = tmp_path / "labels.txt"
    path.write_text("# offset: 1\nbackground\n" + "\n".join(FASHION) + "\n")
    space = spaces.read_labels(path, num_outputs=11)
    assert space.offset == 1 and space.names == FASHION and space.non_classes == ("background",)
    assert space.output_index(0) == 1 and space.class_name_of_output(0) == "background"
    assert space.class_name_of_output(10) == "Ankle boot"


def test_only_the_classes_listed_with_the_cards_offset(tmp_path):
    path = tmp_path / "labels.txt"
    path.write_text("\n".join(FASHION))
    space = spaces.read_labels(path, num_outputs=11, offset=1)
    assert space.offset == 1 and space.num_outputs == 11 and space.non_classes == ()
    with pytest.raises(DataError, match=r"labels\.txt: declares label offset 2, but the model card says 1"):
        path.write_text("# offset: 2\n" + "\n".join(FASHION))
        spaces.read_labels(path, num_outputs=12, offset=1)


def test_counts_that_do_not_fit_the_model(tmp_path):
    path = tmp_path / "labels.txt"
    path.write_text("\n".join(FASHION))
    with pytest.raises(DataError, match=r"labels\.txt: lists 10 labels; the model has 12 outputs with offset 0"):
        spaces.read_labels(path, num_outputs=12)


def test_lookups_by_index_wnid_and_name():
    space = spaces.imagenet(offset=1)
    assert space.lookup("0", "x") == 0 and space.lookup("n01440764", "x") == 0 and space.lookup("tench", "x") == 0
    assert space.output_index(space.lookup("goldfish", "x")) == 2
    with pytest.raises(DataError, match=r"here: label 1000 is out of range: the model has 1000 classes"):
        space.lookup("1000", "here")
    with pytest.raises(DataError, match=r"here: class name 'crane' is ambiguous .*\[134, 517\]"):
        space.lookup("crane", "here")  # ImageNet has two cranes (the bird and the machine)
    with pytest.raises(DataError, match=r"here: 'unicorn' is not a class of imagenet class index"):
        space.lookup("unicorn", "here")
    fashion = spaces.LabelSpace(FASHION)
    assert fashion.lookup("T-shirt_top", "x") == 0 and fashion.lookup("ankle boot", "x") == 9
    with pytest.raises(DataError, match=r"label -1 is out of range"):
        fashion.lookup("-1", "x")


def test_wnid_lines_and_json(tmp_path):
    path = tmp_path / "labels.txt"
    path.write_text("n01440764 tench\nn01443537 goldfish\n")
    space = spaces.read_labels(path, num_outputs=2)
    assert space.wnids == ("n01440764", "n01443537") and space.lookup("n01443537", "x") == 1
    path.write_text("n01440764 tench\ngoldfish\n")
    with pytest.raises(DataError, match="some lines start with a WordNet id"):
        spaces.read_labels(path)
    js = tmp_path / "labels.json"
    js.write_text('{"0": ["n01440764", "tench"], "1": ["n01443537", "goldfish"]}')
    assert spaces.read_labels(js).names == ("tench", "goldfish")
    js.write_text('{"1": "x"}')
    with pytest.raises(DataError, match=r"labels\.json: expected a JSON list"):
        spaces.read_labels(js)


def test_defaults_without_a_labels_file():
    assert spaces.default_for(1001).offset == 1 and spaces.default_for(1001).source == spaces.IMAGENET
    assert spaces.default_for(1000).offset == 0 and spaces.default_for(1000).wnids is not None
    assert spaces.default_for(10).names[3] == "class_3"
    assert spaces.default_for(1001, offset=0).source == "generic"


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.binary(max_size=300), suffix=st.sampled_from([".txt", ".json"]),
       outputs=st.one_of(st.none(), st.integers(1, 12)), offset=st.one_of(st.none(), st.integers(0, 3)))
def test_fuzzed_labels_files_give_only_data_errors(tmp_path, data, suffix, outputs, offset):
    path = tmp_path / f"fuzz{suffix}"
    path.write_bytes(data)
    try:
        space = spaces.read_labels(path, outputs, offset)
    except DataError as exc:
        assert str(path) in str(exc)
        return
    assert outputs is None or space.num_outputs == outputs


def test_a_list_of_every_output_with_a_background_first_is_offset_one():
    """The label files model zoos embed list every output, the background ("background", "???")
    first: that output is not a class."""
    from harness.data.labels import parse_labels

    for first in ("background", "???"):
        space = parse_labels("\n".join([first, "cat", "dog", "fox"]), "m.tflite!labels.txt", num_outputs=4)
        assert space.offset == 1 and space.names == ("cat", "dog", "fox") and space.non_classes == (first,)
    plain = parse_labels("cat\ndog\nfox\n", "labels.txt", num_outputs=3)
    assert plain.offset == 0 and plain.num_classes == 3
