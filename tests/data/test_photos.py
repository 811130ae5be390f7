"""The real zoo's photos: the manifest, the files in the installed packages, the calibration crops."""

from __future__ import annotations

import json

import numpy as np
import pytest

from harness.data import photos
from harness.data.dataset import DataError
from harness.data.samples import SampleSelection
from harness.data.sources import DataUnavailable
from harness.zoo import real

SPEC = real.spec("pytorch", "efficientnet_lite0")
ALL_EVALUATION = SampleSelection("photos", "evaluation", 0, np.array([0, 1, 2, 3]), 4, 4)


def _manifest(tmp_path, edit) -> photos.Path:
    data = json.loads(photos.MANIFEST.read_text())
    edit(data["photos"])
    path = tmp_path / "manifest.json"
    path.write_text(json.dumps(data))
    return path


def test_the_committed_manifest_records_every_photo_and_its_licence():
    listed = photos.read_manifest()
    evaluation = [p for p in listed if p.role == "evaluation"]
    assert [(p.name, p.label, p.label_name) for p in evaluation] == [
        ("chelsea", 282, "tiger_cat"), ("coffee", 967, "espresso"), ("china", 698, "palace"),
        ("grace_hopper", 652, "military_uniform")]
    assert all(p.licence and p.attribution and len(p.sha256) == 64 for p in listed)
    assert {p.licence for p in listed} <= {"CC0-1.0", "CC-BY-2.0", "public domain", "no known copyright restrictions"}
    raw = json.loads(photos.MANIFEST.read_text())["photos"]
    assert all(entry["licence_source"] and entry["licence_text"] for entry in raw)


def test_source_reads_the_installed_photos_at_224():
    source = photos.PhotoSource()
    data = source.load(source.candidate_ids(), SPEC)
    assert data.images.shape == (4, 224, 224, 3) and data.images.dtype == np.uint8
    np.testing.assert_array_equal(data.labels, [282, 967, 698, 652])
    assert source.geometry_key(SPEC) == real.GEOMETRY
    with pytest.raises(DataError, match=r"no evaluation photos with ids \[4\]"):
        source.load([4], SPEC)  # a calibration photo is never an evaluation sample


def test_calibration_crops_are_seeded_and_never_evaluation_photos():
    source = photos.PhotoSource()
    first = source.calibration(SPEC, 9, 0, ALL_EVALUATION)
    again = source.calibration(SPEC, 9, 0, ALL_EVALUATION)
    other = source.calibration(SPEC, 9, 1, ALL_EVALUATION)
    assert first.images.shape == (9, 224, 224, 3) and (first.labels == -1).all()
    np.testing.assert_array_equal(first.images, again.images)
    assert not np.array_equal(first.images, other.images)
    evaluation = source.load(source.candidate_ids(), SPEC).images
    full = {tuple(im.ravel()[:4096]) for im in evaluation}
    assert not any(tuple(im.ravel()[:4096]) in full for im in first.images)
    assert {p.role for p in source.calibration_photos} == {"calibration"}


def test_fingerprint_follows_the_manifest(tmp_path):
    before = photos.PhotoSource().fingerprint()
    edited = _manifest(tmp_path, lambda entries: entries[1].update(attribution="someone else"))
    assert photos.PhotoSource(edited).fingerprint()["manifest_sha256"] != before["manifest_sha256"]


@pytest.mark.parametrize("edit,message", [
    (lambda e: e[1].update(label=968), r"label 968 is n07930864 'cup' in imagenet_class_index.json, but the "
                                       r"manifest says n07920052 'espresso'"),
    (lambda e: e[1].update(label=1000), r"label 1000 is not an ImageNet class index 0..999"),
    (lambda e: e[2].update(id=1), r"photo 2: id 1 must be a non-negative integer used once"),
    (lambda e: e[0].update(role="test"), r"photo 0: role 'test'; expected one of \('evaluation', 'calibration'\)"),
    (lambda e: e[0].pop("licence"), r"photo 0: missing licence"),
])
def test_a_bad_manifest_names_itself_and_the_entry(tmp_path, edit, message):
    path = _manifest(tmp_path, edit)
    with pytest.raises(DataError, match=f"{path}: .*{message}"):
        photos.PhotoSource(path)


def test_a_photo_whose_bytes_differ_from_the_manifest_is_named(tmp_path):
    path = _manifest(tmp_path, lambda entries: entries[1].update(sha256="0" * 64))
    source = photos.PhotoSource(path)
    with pytest.raises(DataError, match=r"skimage/data/coffee.png: SHA-256 cc02f8ca188b... differs from the "
                                        r"manifest's 000000000000"):
        source.load([1], SPEC)


def test_a_photo_whose_package_is_not_installed_says_what_to_install(tmp_path):
    path = _manifest(tmp_path, lambda entries: entries[0].update(distribution="scikit-image-not-installed"))
    with pytest.raises(DataUnavailable, match=r"skimage/data/chelsea.png: the package scikit-image-not-installed "
                                              r"0.26.0, which carries this photo, is not installed; install it with "
                                              r"pip install --no-deps --require-hashes -r requirements-nodeps.lock"):
        photos.PhotoSource(path)
