"""Bring your own images: folders of real PNGs (the committed Fashion-MNIST subset), labelled three ways."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from harness.data import labels as spaces
from harness.data.dataset import DataError
from harness.data.folder import FolderSource, read_csv
from harness.data.preprocessing import Geometry
from harness.zoo.base import ModelSpec
from harness.data.preprocessing import TF_INCEPTION
from tests.zoo import byo_support as byo

FASHION = spaces.LabelSpace(byo.FASHION, source="fashion")
SPEC = ModelSpec("user", "tensorflow", "m", 32, 10, TF_INCEPTION)


@pytest.fixture(scope="module")
def images():
    return byo.test_images()


def _by_id(source: FolderSource, images):
    """Source rows in the order of ``images`` (files are named by sample id)."""
    order = {int(p.stem): k for k, p in enumerate(source.paths)}
    return np.array([order[int(i)] for i in images.ids])


@pytest.mark.parametrize("naming", ["index", "name"])
def test_class_folders(tmp_path, images, naming):
    name_of = str if naming == "index" else (lambda k: byo.FASHION[k].replace("/", "_"))
    root = byo.write_class_folders(images, tmp_path / "photos", name_of)
    source = FolderSource(root, FASHION)
    assert source.mode == "folders" and source.labels_from == "class sub-folders" and len(source.ids) == len(images)
    rows = _by_id(source, images)
    np.testing.assert_array_equal(source.candidate_labels()[rows], images.labels)
    data = source.load(rows, SPEC)
    np.testing.assert_array_equal(data.images, images.images)  # 32x32 PNGs round-trip exactly
    np.testing.assert_array_equal(data.labels, images.labels)
    assert source.fingerprint()["candidates"] == len(images)


def test_a_csv_with_a_background_offset(tmp_path, images):
    root = byo.write_csv_folder(images, tmp_path / "photos", lambda k: byo.FASHION[k])
    space = spaces.LabelSpace(byo.FASHION, offset=1, source="fashion+background")
    source = FolderSource(root, space)
    assert source.mode == "csv" and "labels.csv" in source.labels_from
    rows = _by_id(source, images)
    np.testing.assert_array_equal(source.candidate_labels()[rows], images.labels + 1)  # output indices
    assert source.class_names()[0] == "background" and source.class_names()[1] == "T-shirt/top"
    spec = ModelSpec("user", "tensorflow", "m", 32, 11, TF_INCEPTION)
    assert source.load(rows[:3], spec).labels.tolist() == (images.labels[:3] + 1).tolist()
    with pytest.raises(DataError, match=r"cover 11 outputs; user/tensorflow/m has 10"):
        source.load(rows[:3], SPEC)
    csv_itself = FolderSource(root / "labels.csv", space)  # --images naming the CSV file
    assert csv_itself.mode == "csv" and len(csv_itself.ids) == len(images)


def test_wnid_folders_and_a_card_geometry(tmp_path):
    photo = (np.arange(48 * 64 * 3) % 251).astype(np.uint8).reshape(48, 64, 3)
    for wnid in ("n01440764", "n01443537"):
        (tmp_path / wnid).mkdir()
        Image.fromarray(photo).save(tmp_path / wnid / "a.jpg", quality=95)
    source = FolderSource(tmp_path, spaces.imagenet(offset=1))
    assert source.candidate_labels().tolist() == [1, 2]
    spec = ModelSpec("user", "tensorflow", "big", 24, 1001, TF_INCEPTION)
    source.set_geometry(spec, Geometry(32, 24))
    data = source.load([0, 1], spec)
    assert data.images.shape == (2, 24, 24, 3) and data.images.dtype == np.uint8


def test_unlabelled_images_take_the_reference_models_predictions(tmp_path, images, mini_models):
    root = byo.write_flat(images, tmp_path / "photos")
    source = FolderSource(root, FASHION)
    assert source.mode == "unlabelled" and not source.labelled and source.labels_from is None
    with pytest.raises(DataError, match="the images are unlabelled"):
        source.candidate_labels()
    reference = mini_models[("tensorflow", "mobilenet_v2")]
    source.label_with(reference)
    rows = _by_id(source, images)
    np.testing.assert_array_equal(source.candidate_labels()[rows], reference.predict(images.images))
    assert source.labels_from == "the clean predictions of the reference model mini/tensorflow/mobilenet_v2"
    assert source.fingerprint()["labels_from"] == source.labels_from


# --- refused, naming the file ---------------------------------------------------------------------------
def test_a_folder_with_no_images(tmp_path):
    with pytest.raises(DataError, match=f"{tmp_path}: no images in this folder"):
        FolderSource(tmp_path, FASHION)
    (tmp_path / "Coat").mkdir()
    with pytest.raises(DataError, match=f"{tmp_path}: no images in its class sub-folders"):
        FolderSource(tmp_path, FASHION)
    with pytest.raises(DataError, match="absent: images folder not found"):
        FolderSource(tmp_path / "absent", FASHION)


def test_files_that_are_not_images(tmp_path, images):
    root = byo.write_flat(images.select(images.ids[:2]), tmp_path / "photos")
    (root / "notes.txt").write_text("hello")
    with pytest.raises(DataError, match=r"notes\.txt: not an image file"):
        FolderSource(root, FASHION)
    (root / "notes.txt").unlink()
    (root / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 20)
    with pytest.raises(DataError, match=r"broken\.png: not a readable image"):
        FolderSource(root, FASHION)
    (root / "broken.png").unlink()
    (root / ".DS_Store").write_bytes(b"\0")  # hidden files are not photos
    assert len(FolderSource(root, FASHION).ids) == 2


def test_labels_out_of_range_and_unknown_class_folders(tmp_path, images):
    root = byo.write_class_folders(images.select(images.ids[:2]), tmp_path / "photos", lambda k: "12")
    with pytest.raises(DataError, match=r"photos/12 \(class folder\): label 12 is out of range: the model has 10 "
                                        r"classes \(class indices 0\.\.9"):
        FolderSource(root, FASHION)
    (root / "12").rename(root / "Umbrella")
    with pytest.raises(DataError, match=r"photos/Umbrella \(class folder\): 'Umbrella' is not a class of fashion"):
        FolderSource(root, FASHION)
    (root / "Umbrella").rename(root / "Bag")
    Image.fromarray(images.images[0]).save(root / "loose.png")
    with pytest.raises(DataError, match=r"loose\.png: a file beside the class sub-folders"):
        FolderSource(root, FASHION)


def test_csv_rows_that_are_wrong(tmp_path, images):
    root = byo.write_csv_folder(images.select(images.ids[:2]), tmp_path / "photos")
    csv = root / "labels.csv"
    first = csv.read_text().splitlines()[1].split(",")[0]
    for body, message in [
        (f"file,label\n{first},10\n", r"labels\.csv:2: label 10 is out of range"),
        (f"file,label\nmissing.png,1\n", r"labels\.csv:2: image file .*missing\.png not found"),
        (f"{first},1,extra\n", r"labels\.csv:1: expected two columns file,label; found 3"),
        (f"{first},Umbrella\n", r"labels\.csv:1: 'Umbrella' is not a class"),
        (f"{first},1\n{first},2\n", r"labels\.csv:2: .* is listed twice \(first on line 1\)"),
        ("file,label\n", r"labels\.csv: the labels CSV lists no images"),
    ]:
        csv.write_text(body)
        with pytest.raises(DataError, match=message):
            FolderSource(root, FASHION)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.one_of(st.binary(max_size=300),
                      st.lists(st.tuples(st.sampled_from(["a.png", "b.png", "", "x/../a.png", "\0", "a.png,"]),
                                         st.sampled_from(["0", "9", "10", "-1", "Bag", "bag", "", "1e3", "n01440764"])),
                               max_size=5).map(lambda rows: "\n".join(f"{f},{l}" for f, l in rows).encode())))
def test_fuzzed_csvs_give_only_data_errors(tmp_path, data):
    Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(tmp_path / "a.png")
    path = tmp_path / "fuzz.csv"
    path.write_bytes(data)
    try:
        rows = read_csv(path, FASHION)
    except DataError as exc:
        assert str(path) in str(exc)
        return
    assert rows and all(0 <= label < 10 for _, label in rows)
