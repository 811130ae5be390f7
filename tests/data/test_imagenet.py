"""The ImageNet validation loader, on tiny fake validation folders in each layout.

The folders hold a handful of PIL-made images named like the real ones; the devkit
layout gets a ``meta.mat`` written with ``scipy.io.savemat`` whose ILSVRC2012_IDs are a
shuffled order of the 1000 wnids (as in the real devkit, not the sorted order), so a
loader that read ILSVRC2012_IDs as class indices would fail here.
"""

import hashlib
import importlib.util
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from scipy.io import savemat

import harness  # noqa: F401  (installs the framework import guard first)
from harness.data import imagenet
from harness.data.dataset import DataError
from harness.data.preprocessing import IMAGENET_GEOMETRY, Geometry


SMALL = Geometry(40, 32)  # keeps the decoding cheap; the paper's sizes are checked separately
TENCH, KIT_FOX, TOILET_TISSUE = "n01440764", "n02119789", "n15075141"
# sample id -> (wnid, colour); class indices: tench 0, kit fox 278, toilet tissue 999
SAMPLES = {
    3: (TENCH, (200, 30, 30)),
    7: (KIT_FOX, (30, 200, 30)),
    12: (TOILET_TISSUE, (30, 30, 200)),
    40: (KIT_FOX, (120, 120, 10)),
    41: (TENCH, (10, 120, 120)),
}
INDEX = {TENCH: 0, KIT_FOX: 278, TOILET_TISSUE: 999}


def file_name(sample: int, suffix: str = ".JPEG") -> str:
    return f"ILSVRC2012_val_{sample:08d}{suffix}"


def write_image(path: Path, colour, size=(48, 36)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    image = Image.new("RGB", size, colour)
    image.save(path, format="PNG" if path.suffix.lower() == ".png" else "JPEG", quality=95)
    return path


def make_folders_layout(root: Path) -> Path:
    """torchvision ImageFolder layout; one PNG among the JPEGs."""
    for sample, (wnid, colour) in SAMPLES.items():
        write_image(root / wnid / file_name(sample, ".png" if sample == 12 else ".JPEG"), colour)
    return root


def make_flat_folder(root: Path) -> Path:
    for sample, (_, colour) in SAMPLES.items():
        write_image(root / file_name(sample), colour, size=(30 + sample, 50))
    return root


def write_kaggle_solution(path: Path, samples=SAMPLES, extra_rows=()) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    rows = ["ImageId,PredictionString"]
    for sample, (wnid, _) in samples.items():
        rows.append(f"{file_name(sample)[:-5]},{wnid} 1 2 30 40 {wnid} 5 6 20 20 ")
    rows += list(extra_rows)
    path.write_text("\n".join(rows) + "\n")
    return path


def devkit_mapping(seed: int = 0) -> dict[int, str]:
    """A shuffled ILSVRC2012_ID -> wnid mapping over the 1000 real wnids."""
    order = np.random.default_rng(seed).permutation(1000)
    return {int(i) + 1: imagenet.wnids()[o] for i, o in enumerate(order)}


def write_meta(path: Path, mapping: dict[int, str], extra_parents: int = 3) -> Path:
    """A devkit-style meta.mat: the 1000 leaves plus some non-leaf synsets."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fields = [("ILSVRC2012_ID", "O"), ("WNID", "O"), ("words", "O"), ("num_children", "O")]
    rows = [(ilsvrc_id, wnid, f"words of {wnid}", 0) for ilsvrc_id, wnid in mapping.items()]
    rows += [(1001 + k, f"n0000000{k}", "a parent", 2) for k in range(extra_parents)]
    synsets = np.array(rows, dtype=fields).reshape(-1, 1)  # MATLAB's (1860, 1) struct array
    savemat(path, {"synsets": synsets})
    return path


def write_devkit_ground_truth(path: Path, mapping: dict[int, str], count: int = 50) -> Path:
    """Line k = ILSVRC2012_ID of image k; images not in SAMPLES get tench."""
    by_wnid = {w: i for i, w in mapping.items()}
    lines = [str(by_wnid[SAMPLES.get(k, (TENCH,))[0]]) for k in range(1, count + 1)]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")
    return path


def expected_labels(ids):
    return [INDEX[SAMPLES[i][0]] for i in ids]


# --- the class index -----------------------------------------------------------------------


def test_class_index_fixture_facts():
    entries = imagenet.class_index()
    wnids = [w for w, _ in entries]
    assert len(entries) == 1000
    assert len(set(wnids)) == 1000 and wnids == sorted(wnids)
    assert entries[0] == ("n01440764", "tench")
    assert entries[999] == ("n15075141", "toilet_tissue")
    assert entries[278] == (KIT_FOX, "kit_fox")


def test_class_index_fixture_is_the_file_keras_pins():
    raw = imagenet.CLASS_INDEX_FILE.read_bytes()
    assert hashlib.md5(raw).hexdigest() == imagenet.CLASS_INDEX_MD5
    keras_dir = Path(importlib.util.find_spec("keras").submodule_search_locations[0])
    keras_source = (keras_dir / "src" / "applications" / "imagenet_utils.py").read_text()
    assert f'file_hash="{imagenet.CLASS_INDEX_MD5}"' in keras_source


def test_wnid_index_round_trip():
    for index, wnid in enumerate(imagenet.wnids()):
        assert imagenet.index_to_wnid(index) == wnid
        assert imagenet.wnid_to_index(wnid) == index
    assert len(imagenet.class_names()) == 1000
    assert imagenet.class_names()[imagenet.wnid_to_index(KIT_FOX)] == "kit_fox"


def test_ilsvrc_id_round_trip_goes_through_meta():
    mapping = devkit_mapping()
    indices = np.arange(1000)
    ilsvrc_ids = imagenet.index_to_ilsvrc_id(indices, mapping)
    assert sorted(ilsvrc_ids.tolist()) == list(range(1, 1001))
    np.testing.assert_array_equal(imagenet.ilsvrc_id_to_index(ilsvrc_ids, mapping), indices)
    first = imagenet.ilsvrc_id_to_index([1], mapping)[0]
    assert imagenet.index_to_wnid(first) == mapping[1]
    assert not np.array_equal(imagenet.ilsvrc_id_to_index(np.arange(1, 1001), mapping), indices)


def test_class_mapping_errors():
    with pytest.raises(DataError, match="unknown wnid 'n99999999'"):
        imagenet.wnid_to_index("n99999999")
    with pytest.raises(DataError, match="class index 1000"):
        imagenet.index_to_wnid(1000)
    with pytest.raises(DataError, match="1..1000"):
        imagenet.ilsvrc_id_to_index([0], devkit_mapping())
    with pytest.raises(DataError, match="0..999"):
        imagenet.index_to_ilsvrc_id([-1], devkit_mapping())
    partial = dict(list(devkit_mapping().items())[:10])
    with pytest.raises(DataError, match="not in the meta mapping"):
        imagenet.ilsvrc_id_to_index(np.arange(1, 1001), partial)


def test_bad_class_index_files(tmp_path):
    missing = tmp_path / "nope.json"
    with pytest.raises(DataError, match="nope.json"):
        imagenet.class_index(missing)
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(DataError, match="bad.json"):
        imagenet.class_index(tmp_path / "bad.json")
    (tmp_path / "short.json").write_text('{"0": ["n01440764", "tench"]}')
    with pytest.raises(DataError, match="1000 unique wnids"):
        imagenet.class_index(tmp_path / "short.json")


# --- the folders layout ----------------------------------------------------------------------


def test_folders_layout_lists_ids_and_labels(tmp_path):
    index = imagenet.index_folder(make_folders_layout(tmp_path / "val"))
    assert index.layout == "folders"
    assert index.ids.tolist() == [3, 7, 12, 40, 41]
    assert index.labels.tolist() == expected_labels([3, 7, 12, 40, 41])
    assert [p.name for p in index.paths] == [file_name(3), file_name(7), file_name(12, ".png"),
                                            file_name(40), file_name(41)]
    assert index.labels_of([41, 12]).tolist() == [0, 999]


def test_folders_layout_loads_selected_ids_in_order(tmp_path):
    index = imagenet.index_folder(make_folders_layout(tmp_path / "val"))
    data = index.load([12, 3], SMALL)
    assert data.name == "imagenet" and data.split == "val"
    assert data.ids.tolist() == [12, 3]
    assert data.labels.tolist() == [999, 0]
    assert data.images.shape == (2, 32, 32, 3) and data.images.dtype == np.uint8
    assert (data.images[0] == (30, 30, 200)).all()  # the PNG: lossless
    assert np.abs(data.images[1].astype(int) - (200, 30, 30)).max() <= 4  # a JPEG: nearly
    assert len(data.class_names) == 1000 and data.class_names[0] == "tench"


@pytest.mark.parametrize("model", ["resnet50", "inception_v3"])
def test_paper_geometry_output_shapes(tmp_path, model):
    geometry = IMAGENET_GEOMETRY[model]
    data = imagenet.load(make_folders_layout(tmp_path / "val"), geometry, ids=[7])
    assert data.images.shape == (1, geometry.crop, geometry.crop, 3)


def test_listing_decodes_nothing_and_loading_decodes_only_the_selection(tmp_path, monkeypatch):
    root = make_folders_layout(tmp_path / "val")
    opened = []
    real_open = Image.open
    monkeypatch.setattr(imagenet.Image, "open", lambda path, *a, **k: opened.append(Path(path).name)
                        or real_open(path, *a, **k))
    index = imagenet.index_folder(root)
    assert opened == []
    index.load([40, 7], SMALL)
    assert opened == [file_name(40), file_name(7)]


def test_a_corrupt_image_fails_only_when_selected(tmp_path):
    root = make_folders_layout(tmp_path / "val")
    broken = root / KIT_FOX / file_name(9)
    broken.write_bytes(b"\xff\xd8\xff not really a jpeg")
    index = imagenet.index_folder(root)
    assert 9 in index.ids.tolist()
    assert index.load([3, 7], SMALL).ids.tolist() == [3, 7]
    with pytest.raises(DataError, match=rf"{file_name(9)}.*not a readable image"):
        index.load([9], SMALL)


def test_a_truncated_jpeg_is_a_data_error(tmp_path):
    root = make_folders_layout(tmp_path / "val")
    path = root / TENCH / file_name(3)
    path.write_bytes(path.read_bytes()[:200])
    with pytest.raises(DataError, match=file_name(3)):
        imagenet.load(root, SMALL, ids=[3])


def test_batches_cover_the_selection_in_order(tmp_path):
    index = imagenet.index_folder(make_folders_layout(tmp_path / "val"))
    batches = list(index.batches([41, 3, 12, 7, 40], SMALL, batch_size=2))
    assert [len(b) for b in batches] == [2, 2, 1]
    assert np.concatenate([b.ids for b in batches]).tolist() == [41, 3, 12, 7, 40]
    whole = index.load([41, 3, 12, 7, 40], SMALL)
    np.testing.assert_array_equal(np.concatenate([b.images for b in batches]), whole.images)


def test_threaded_decoding_gives_the_same_images(tmp_path):
    index = imagenet.index_folder(make_folders_layout(tmp_path / "val"))
    one = index.load(None, SMALL, workers=1)
    two = index.load(None, SMALL, workers=2)
    np.testing.assert_array_equal(one.images, two.images)
    np.testing.assert_array_equal(one.ids, two.ids)


def test_unknown_ids_are_an_error(tmp_path):
    index = imagenet.index_folder(make_folders_layout(tmp_path / "val"))
    with pytest.raises(DataError, match=r"not in this folder: \[4, 99\]"):
        index.load([3, 4, 99], SMALL)


def test_unknown_wnid_folder_is_an_error(tmp_path):
    root = make_folders_layout(tmp_path / "val")
    write_image(root / "n99999999" / file_name(5), (1, 2, 3))
    with pytest.raises(DataError, match=r"n99999999: unknown wnid"):
        imagenet.index_folder(root)


def test_badly_named_image_is_an_error(tmp_path):
    root = make_folders_layout(tmp_path / "val")
    write_image(root / TENCH / "holiday.jpg", (1, 2, 3))
    with pytest.raises(DataError, match=r"holiday.jpg: expected an ImageNet validation file name"):
        imagenet.index_folder(root)


def test_duplicate_ids_are_an_error(tmp_path):
    root = make_folders_layout(tmp_path / "val")
    write_image(root / KIT_FOX / file_name(3, ".png"), (1, 2, 3))
    with pytest.raises(DataError, match="sample id 3 appears more than once"):
        imagenet.index_folder(root)


def test_missing_folder_is_an_error(tmp_path):
    with pytest.raises(DataError, match=rf"{tmp_path / 'absent'}: ImageNet validation folder not found"):
        imagenet.index_folder(tmp_path / "absent")


def test_a_folder_without_images_is_an_error(tmp_path):
    (tmp_path / "val" / TENCH).mkdir(parents=True)
    with pytest.raises(DataError, match="no images found"):
        imagenet.index_folder(tmp_path / "val")
    root = tmp_path / "flat"
    root.mkdir()
    with pytest.raises(DataError, match="no images found"):
        imagenet.index_folder(root, ground_truth=write_kaggle_solution(tmp_path / "LOC_val_solution.csv"))


def test_hidden_and_non_image_files_are_ignored(tmp_path):
    root = make_folders_layout(tmp_path / "val")
    (root / TENCH / "notes.txt").write_text("hello")
    (root / ".cache").mkdir()
    assert imagenet.index_folder(root).ids.tolist() == [3, 7, 12, 40, 41]


# --- the Kaggle layout -----------------------------------------------------------------------


def test_kaggle_layout_with_explicit_solution(tmp_path):
    root = make_flat_folder(tmp_path / "val")
    solution = write_kaggle_solution(tmp_path / "somewhere" / "LOC_val_solution.csv")
    index = imagenet.index_folder(root, ground_truth=solution)
    assert index.layout == "kaggle"
    assert index.ids.tolist() == [3, 7, 12, 40, 41]
    assert index.labels.tolist() == expected_labels([3, 7, 12, 40, 41])
    data = index.load([40], SMALL)
    assert data.images.shape == (1, 32, 32, 3) and data.labels.tolist() == [278]


def test_kaggle_solution_is_found_where_kaggle_puts_it(tmp_path):
    root = make_flat_folder(tmp_path / "imagenet-object-localization-challenge" / "ILSVRC" / "Data" / "CLS-LOC" / "val")
    write_kaggle_solution(tmp_path / "imagenet-object-localization-challenge" / "LOC_val_solution.csv")
    index = imagenet.index_folder(root)
    assert index.layout == "kaggle"
    assert index.labels.tolist() == expected_labels([3, 7, 12, 40, 41])


def test_kaggle_solution_errors(tmp_path):
    root = make_flat_folder(tmp_path / "val")
    bad_header = tmp_path / "a" / "LOC_val_solution.csv"
    bad_header.parent.mkdir()
    bad_header.write_text("id,label\nILSVRC2012_val_00000003,n01440764\n")
    with pytest.raises(DataError, match=r"a/LOC_val_solution.csv: expected Kaggle's header"):
        imagenet.index_folder(root, ground_truth=bad_header)

    no_wnid = write_kaggle_solution(tmp_path / "b" / "LOC_val_solution.csv",
                                    extra_rows=["ILSVRC2012_val_00000099,"])
    with pytest.raises(DataError, match=r"b/LOC_val_solution.csv, line 7: expected"):
        imagenet.index_folder(root, ground_truth=no_wnid)

    unknown = write_kaggle_solution(tmp_path / "c" / "LOC_val_solution.csv",
                                    extra_rows=["ILSVRC2012_val_00000099,n99999999 1 2 3 4"])
    with pytest.raises(DataError, match=r"c/LOC_val_solution.csv, line 7: unknown wnid 'n99999999'"):
        imagenet.index_folder(root, ground_truth=unknown)

    incomplete = write_kaggle_solution(tmp_path / "d" / "LOC_val_solution.csv",
                                       samples={k: v for k, v in SAMPLES.items() if k != 40})
    with pytest.raises(DataError, match=rf"no label for 1 image.*{file_name(40)}"):
        imagenet.index_folder(root, ground_truth=incomplete)


def test_missing_ground_truth_is_an_error(tmp_path):
    root = make_flat_folder(tmp_path / "val")
    with pytest.raises(DataError, match="no wnid subfolders and no ground-truth file found"):
        imagenet.index_folder(root)
    with pytest.raises(DataError, match=r"LOC_val_solution.csv: ground-truth file not found"):
        imagenet.index_folder(root, ground_truth=tmp_path / "LOC_val_solution.csv")


# --- the devkit layout -----------------------------------------------------------------------


def make_devkit(tmp_path: Path, mapping=None) -> tuple[Path, Path]:
    mapping = mapping or devkit_mapping()
    data = tmp_path / "ILSVRC2012_devkit_t12" / "data"
    write_meta(data / "meta.mat", mapping)
    return data / "ILSVRC2012_validation_ground_truth.txt", mapping


def test_devkit_layout_maps_ilsvrc_ids_through_meta(tmp_path):
    root = make_flat_folder(tmp_path / "val")
    truth, mapping = make_devkit(tmp_path)
    write_devkit_ground_truth(truth, mapping)
    index = imagenet.index_folder(root, ground_truth=truth)
    assert index.layout == "devkit"
    assert index.ids.tolist() == [3, 7, 12, 40, 41]
    assert index.labels.tolist() == expected_labels([3, 7, 12, 40, 41])
    # the raw ILSVRC2012_IDs are a different numbering: using them as indices would be wrong
    raw = [int(line) for line in truth.read_text().split()]
    assert [raw[i - 1] - 1 for i in index.ids] != index.labels.tolist()


def test_devkit_is_found_beside_the_folder(tmp_path):
    root = make_flat_folder(tmp_path / "val")
    truth, mapping = make_devkit(tmp_path)
    write_devkit_ground_truth(truth, mapping)
    data = imagenet.load(root, SMALL, ids=[12, 7])
    assert data.labels.tolist() == [999, 278]


def test_devkit_meta_reader(tmp_path):
    mapping = devkit_mapping(seed=3)
    assert imagenet.read_devkit_meta(write_meta(tmp_path / "meta.mat", mapping)) == mapping


def test_devkit_meta_errors(tmp_path):
    with pytest.raises(DataError, match=r"meta.mat: devkit meta.mat not found"):
        imagenet.read_devkit_meta(tmp_path / "meta.mat")
    (tmp_path / "garbage.mat").write_bytes(b"MATLAB 5.0 MAT-file, garbage" + bytes(200))
    with pytest.raises(DataError, match=r"garbage.mat: not a devkit meta.mat"):
        imagenet.read_devkit_meta(tmp_path / "garbage.mat")
    savemat(tmp_path / "other.mat", {"something": np.arange(3)})
    with pytest.raises(DataError, match=r"other.mat: not a devkit meta.mat"):
        imagenet.read_devkit_meta(tmp_path / "other.mat")
    short = dict(list(devkit_mapping().items())[:999])
    with pytest.raises(DataError, match=r"short.mat: expected the 1000 ILSVRC2012 classes.*999 leaves"):
        imagenet.read_devkit_meta(write_meta(tmp_path / "short.mat", short))


def test_devkit_ground_truth_errors(tmp_path):
    root = make_flat_folder(tmp_path / "val")
    truth, mapping = make_devkit(tmp_path)
    truth.write_text("5\nfive\n7\n")
    with pytest.raises(DataError, match=r"ground_truth.txt, line 2: 'five' is not an ILSVRC2012_ID"):
        imagenet.index_folder(root, ground_truth=truth)
    truth.write_text("5\n1001\n")
    with pytest.raises(DataError, match=r"line 2: '1001' is not an ILSVRC2012_ID"):
        imagenet.index_folder(root, ground_truth=truth)
    truth.write_text("")
    with pytest.raises(DataError, match="ground_truth.txt: empty"):
        imagenet.index_folder(root, ground_truth=truth)
    write_devkit_ground_truth(truth, mapping, count=20)  # images 40 and 41 have no line
    with pytest.raises(DataError, match=r"no label for 2 image"):
        imagenet.index_folder(root, ground_truth=truth)


def test_devkit_without_meta_is_an_error(tmp_path):
    root = make_flat_folder(tmp_path / "val")
    truth = write_devkit_ground_truth(tmp_path / "gt" / "ILSVRC2012_validation_ground_truth.txt",
                                      devkit_mapping())
    with pytest.raises(DataError, match=r"gt/meta.mat: devkit meta.mat not found"):
        imagenet.index_folder(root, ground_truth=truth)
