"""The embedded Fashion-MNIST: the IDX reader, the committed subset, the full-set and download paths."""

from __future__ import annotations

import functools
import gzip
import http.server
import json
import shutil
import threading

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from harness.data import fashion_mnist as fm
from harness.data.dataset import DataError


@settings(max_examples=40, deadline=None)
@given(arrays(np.uint8, st.tuples(st.integers(0, 5), st.integers(1, 9), st.integers(1, 9))))
def test_idx_round_trip_is_exact(tmp_path_factory, array):
    path = tmp_path_factory.mktemp("idx") / "a-idx3-ubyte.gz"
    fm.write_idx(path, array)
    back = fm.read_idx(path)
    assert back.dtype == np.uint8 and back.shape == array.shape
    np.testing.assert_array_equal(back, array)


def test_truncated_idx_names_the_file_and_the_sizes(tmp_path):
    path = tmp_path / "images-idx3-ubyte.gz"
    fm.write_idx(path, np.zeros((4, 28, 28), np.uint8))
    raw = gzip.decompress(path.read_bytes())
    path.write_bytes(gzip.compress(raw[:-100]))
    with pytest.raises(DataError, match=r"images-idx3-ubyte\.gz: IDX body holds 3036 bytes.*3136"):
        fm.read_idx(path)


def test_corrupt_gzip_and_bad_magic_are_clear_errors(tmp_path):
    broken = tmp_path / "broken.gz"
    broken.write_bytes(b"\x1f\x8b\x08garbage")
    with pytest.raises(DataError, match="broken.gz: not a readable gzip"):
        fm.read_idx(broken)
    magic = tmp_path / "magic.gz"
    magic.write_bytes(gzip.compress(b"\x00\x00\x0d\x01\x00\x00\x00\x01\x05"))
    with pytest.raises(DataError, match="magic.gz: bad IDX magic"):
        fm.read_idx(magic)
    with pytest.raises(DataError, match="missing.gz: file not found"):
        fm.read_idx(tmp_path / "missing.gz")


def test_committed_subset_loads_as_rgb_32x32(fashion_test, fashion_train_subset):
    for data, n in ((fashion_test, 5000), (fashion_train_subset, 1000)):
        assert len(data) == n
        assert data.images.shape == (n, 32, 32, 3) and data.images.dtype == np.uint8
        assert data.labels.dtype == np.int64 and set(np.unique(data.labels)) == set(range(10))
        # grayscale replicated to three identical channels
        assert np.array_equal(data.images[..., 0], data.images[..., 2])
    assert fashion_test.ids.max() < 10000 and fashion_train_subset.ids.max() < 60000


def test_padding_centres_the_28px_image_and_adds_only_zeros():
    gray = np.random.default_rng(0).integers(1, 256, (3, 28, 28), dtype=np.uint8)
    rgb = fm.to_model_images(gray)
    assert rgb.shape == (3, 32, 32, 3)
    np.testing.assert_array_equal(rgb[:, 2:30, 2:30, 1], gray)
    border = rgb.copy()
    border[:, 2:30, 2:30] = 0
    assert not border.any()
    with pytest.raises(DataError, match=r"\(N, 28, 28\), found \(3, 27, 28\)"):
        fm.to_model_images(gray[:, 1:])


def test_edited_fixture_is_detected(tmp_path):
    shutil.copytree(fm.FIXTURE_DIR, tmp_path / "fx")
    labels = tmp_path / "fx" / "t10k-labels-subset-idx1-ubyte.gz"
    data = bytearray(labels.read_bytes())
    data[-5] ^= 0xFF
    labels.write_bytes(bytes(data))
    with pytest.raises(DataError, match="t10k-labels-subset-idx1-ubyte.gz: SHA-256 does not match MANIFEST"):
        fm.load_fixture("test", tmp_path / "fx")
    (tmp_path / "fx" / "MANIFEST.json").unlink()
    with pytest.raises(DataError, match="manifest is missing"):
        fm.load_fixture("test", tmp_path / "fx")


def test_unknown_split_and_source():
    with pytest.raises(DataError, match="unknown Fashion-MNIST split 'val'"):
        fm.load("val")
    with pytest.raises(DataError, match="unknown Fashion-MNIST source 'hub'"):
        fm.load("test", "hub")


@pytest.mark.skipif(not (fm.DEBIAN_DIR / "t10k-images-idx3-ubyte.gz").is_file(),
                    reason="Debian's dataset-fashion-mnist is not installed (apt-get install dataset-fashion-mnist)")
def test_subset_is_exactly_the_full_set_at_its_ids(fashion_test):
    full = fm.load("test", "debian")
    assert len(full) == 10000
    sub = full.select(fashion_test.ids)
    np.testing.assert_array_equal(sub.images, fashion_test.images)
    np.testing.assert_array_equal(sub.labels, fashion_test.labels)


@pytest.fixture()
def mirror(tmp_path):
    """A loopback HTTP server serving the committed subset under the official file names."""
    root = tmp_path / "mirror"
    root.mkdir()
    manifest = fm.fixture_manifest()
    digests = {}
    for official, key in zip(fm.OFFICIAL_FILES["test"], ("images", "labels")):
        entry = manifest["splits"]["test"][key]
        shutil.copy(fm.FIXTURE_DIR / entry["file"], root / official)
        digests[official] = entry["sha256"]
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/", digests, root
    server.shutdown()
    server.server_close()


def test_download_fetches_verifies_and_reuses(tmp_path, mirror, fashion_test):
    url, digests, _ = mirror
    cache = tmp_path / "cache"
    folder = fm.download("test", cache, url, sha256=digests)
    data = fm.load_full("test", folder)
    np.testing.assert_array_equal(data.images, fashion_test.images)
    stamps = {p.name: p.stat().st_mtime_ns for p in folder.iterdir()}
    fm.download("test", cache, url, sha256=digests)  # verified files are not fetched again
    assert {p.name: p.stat().st_mtime_ns for p in folder.iterdir()} == stamps


def test_download_with_wrong_digest_leaves_nothing(tmp_path, mirror):
    url, digests, _ = mirror
    wrong = dict(digests, **{fm.OFFICIAL_FILES["test"][0]: "0" * 64})
    with pytest.raises(DataError, match="SHA-256 .* does not match the expected 0000"):
        fm.download("test", tmp_path / "cache", url, sha256=wrong)
    assert not list((tmp_path / "cache" / "fashion_mnist").glob("t10k-images*"))
    assert not list((tmp_path / "cache" / "fashion_mnist").glob(".*part"))


def test_download_from_unreachable_mirror_is_a_clear_error(tmp_path, mirror):
    url, digests, root = mirror
    (root / fm.OFFICIAL_FILES["test"][0]).unlink()
    with pytest.raises(DataError, match="could not download http://127.0.0.1:.*t10k-images-idx3-ubyte.gz"):
        fm.download("test", tmp_path / "cache", url, sha256=digests)


def test_manifest_records_licence_and_seed():
    manifest = json.loads((fm.FIXTURE_DIR / "MANIFEST.json").read_text())
    assert manifest["seed"] == 20261125 and "MIT" in manifest["dataset"]
    assert "Permission is hereby granted" in (fm.FIXTURE_DIR / "LICENSE").read_text()
