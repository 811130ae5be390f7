"""PNG sets: exact round trips, honest rounding, and a sidecar that catches any disagreement."""

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from PIL import Image

from harness.attack import pngset
from harness.attack.pngset import PngSetError


@settings(max_examples=50, deadline=None)
@given(arrays(np.uint8, st.tuples(st.integers(1, 40), st.integers(1, 40), st.just(3))))
def test_png_round_trip_is_exact(tmp_path_factory, image):
    path = tmp_path_factory.mktemp("png") / "x.png"
    path.write_bytes(pngset.encode_png(image))
    np.testing.assert_array_equal(pngset.decode_png(path), image)


@settings(max_examples=50, deadline=None)
@given(arrays(np.float32, st.tuples(st.integers(1, 4), st.just(3), st.just(3), st.just(3)),
              elements=st.floats(-0.5, 1.5, width=32)))
def test_rounding_clips_and_moves_at_most_half_a_grey_level(images01):
    rounded = pngset.to_uint8(images01)
    clipped = np.clip(images01.astype(np.float64), 0, 1)
    assert np.abs(rounded / 255.0 - clipped).max() <= 0.5 / 255 + 1e-9


@settings(max_examples=30, deadline=None)
@given(arrays(np.uint8, (3, 4, 4, 3)), arrays(np.uint8, (3, 4, 4, 3)))
def test_distance_identities(a, b):
    linf, l2 = pngset.distances(a, b)
    linf_back, l2_back = pngset.distances(b, a)
    np.testing.assert_allclose(linf, linf_back)
    np.testing.assert_allclose(l2, l2_back)
    assert (linf <= l2 + 1e-12).all() and (l2 <= linf * np.sqrt(48) + 1e-12).all()
    zero_inf, zero_l2 = pngset.distances(a, a)
    assert not zero_inf.any() and not zero_l2.any()


def _set(tmp_path, n=4):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (n, 8, 8, 3), dtype=np.uint8)
    ids = np.arange(10, 10 + n)
    records = [{"id": int(i), "label": 1, "success_before_rounding": True, "success_after_rounding": False,
                "linf": 0.0, "l2": 0.0} for i in ids]
    pngset.write_set(tmp_path / "set", ids, images, records, {"attack": "fgsm", "generation_seconds": 1.0})
    return tmp_path / "set", images


def test_written_set_reads_back_verified(tmp_path):
    path, images = _set(tmp_path)
    read = pngset.read_set(path, (8, 8, 3))
    np.testing.assert_array_equal(read.images, images)
    assert read.ids.tolist() == [10, 11, 12, 13] and read.success_after_rounding == 0.0


def test_edited_png_is_caught(tmp_path):
    path, images = _set(tmp_path)
    edited = images[1].copy()
    edited[0, 0, 0] ^= 1
    Image.fromarray(edited).save(path / "png" / "11.png")
    with pytest.raises(PngSetError, match=r"11\.png: pixels differ"):
        pngset.read_set(path)


def test_missing_extra_and_resized_pngs_are_caught(tmp_path):
    path, images = _set(tmp_path)
    (path / "png" / "12.png").unlink()
    with pytest.raises(PngSetError, match=r"\['12.png'\] missing"):
        pngset.read_set(path)
    Image.fromarray(images[2]).save(path / "png" / "12.png")
    Image.fromarray(images[2]).save(path / "png" / "99.png")
    with pytest.raises(PngSetError, match=r"\['99.png'\] not in the sidecar"):
        pngset.read_set(path)
    (path / "png" / "99.png").unlink()
    Image.fromarray(np.zeros((9, 8, 3), np.uint8)).save(path / "png" / "12.png")
    with pytest.raises(PngSetError, match=r"12\.png: image is \(9, 8, 3\), the sidecar says \(8, 8, 3\)"):
        pngset.read_set(path)


def test_wrong_model_size_and_broken_sidecar(tmp_path):
    path, _ = _set(tmp_path)
    with pytest.raises(PngSetError, match=r"images are \(8, 8, 3\), the model expects \(32, 32, 3\)"):
        pngset.read_set(path, (32, 32, 3))
    (path / "sidecar.json").write_text("{not json")
    with pytest.raises(PngSetError, match="sidecar.json: not valid JSON"):
        pngset.read_set(path)
    (path / "sidecar.json").unlink()
    with pytest.raises(PngSetError, match="sidecar missing"):
        pngset.read_set(path)


def test_non_png_and_garbage_files(tmp_path):
    jpeg = tmp_path / "a.png"
    Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(jpeg, format="JPEG")
    with pytest.raises(PngSetError, match="JPEG file, expected PNG"):
        pngset.decode_png(jpeg)
    garbage = tmp_path / "b.png"
    garbage.write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    with pytest.raises(PngSetError, match="b.png: unreadable PNG"):
        pngset.decode_png(garbage)
    with pytest.raises(PngSetError, match="uint8 \\(H, W, 3\\)"):
        pngset.encode_png(np.zeros((4, 4), np.uint8))
    assert json.loads(json.dumps({"ok": 1}))  # sidecars are plain JSON


# -- fuzzing the reader: anything wrong in a set is a PngSetError naming a file, never another error --
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-2**70, 2**70) | st.floats(allow_nan=False) | st.text(max_size=12),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=12)
# Where a mutation lands: a path of keys and indexes into the sidecar (the whole document at ()).
SIDECAR_PLACES = [(), ("image_shape",), ("image_shape", 0), ("image_shape", 2), ("samples",), ("samples", 0),
                  ("samples", 1, "id"), ("samples", 2, "label"), ("samples", 3, "pixels_sha256")]


def _valid_set(tmp_path_factory):
    path, images = _set(tmp_path_factory.mktemp("fuzz"))
    return path, images, (path / "sidecar.json").read_bytes()


def _read_or_png_set_error(path, images):
    """read_set either gives back exactly the written images or raises PngSetError naming a file in the set."""
    try:
        read = pngset.read_set(path)
    except PngSetError as exc:
        assert str(path) in str(exc), exc
        return exc
    np.testing.assert_array_equal(read.images, images)
    return None


@settings(max_examples=50, deadline=None)
@given(place=st.sampled_from(SIDECAR_PLACES), value=JSON_VALUES)
def test_fuzz_sidecar_with_a_value_replaced(tmp_path_factory, place, value):
    path, images, original = _valid_set(tmp_path_factory)
    document = json.loads(original)
    if place:
        target = document
        for key in place[:-1]:
            target = target[key]
        target[place[-1]] = value
    else:
        document = value
    (path / "sidecar.json").write_text(json.dumps(document))
    _read_or_png_set_error(path, images)


@settings(max_examples=50, deadline=None)
@given(data=st.binary(max_size=400) | st.text(max_size=200).map(str.encode))
def test_fuzz_sidecar_bytes(tmp_path_factory, data):
    path, images, _ = _valid_set(tmp_path_factory)
    (path / "sidecar.json").write_bytes(data)
    assert isinstance(_read_or_png_set_error(path, images), PngSetError)


@settings(max_examples=50, deadline=None)
@given(edits=st.lists(st.tuples(st.integers(0, 10**6), st.integers(0, 255)), min_size=1, max_size=6),
       cut=st.none() | st.integers(0, 400))
def test_fuzz_png_bytes(tmp_path_factory, edits, cut):
    path, images, _ = _valid_set(tmp_path_factory)
    png = path / "png" / "12.png"
    data = bytearray(png.read_bytes())
    for position, byte in edits:
        data[position % len(data)] = byte
    png.write_bytes(bytes(data[:cut] if cut is not None else data))
    error = _read_or_png_set_error(path, images)
    if error is not None:
        assert str(png) in str(error)
