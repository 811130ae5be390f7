"""Study image sources: the committed Fashion-MNIST subset and a local ImageNet folder."""

from __future__ import annotations

import os

import numpy as np
import pytest
from PIL import Image

from harness.data import imagenet, samples, sources
from harness.data.dataset import DataError
from harness.data.preprocessing import IMAGENET_GEOMETRY
from harness.zoo import imagenet as imagenet_zoo
from harness.zoo import mini


def write_imagenet_folder(root, labels: dict[int, int], seed: int = 0, size=(320, 260)):
    """A validation folder in torchvision's layout: real JPEGs, ILSVRC2012 file names, wnid folders."""
    rng = np.random.default_rng(seed)
    wnids = imagenet.wnids()
    for sample_id, label in labels.items():
        folder = root / wnids[label]
        folder.mkdir(parents=True, exist_ok=True)
        coarse = rng.integers(0, 256, (size[1] // 20, size[0] // 20, 3), dtype=np.uint8)
        image = Image.fromarray(coarse).resize(size, Image.Resampling.BILINEAR)
        image.save(folder / f"ILSVRC2012_val_{sample_id:08d}.JPEG", quality=90)
    return root


class Oracle:
    """Right exactly on the given ids, whatever batches it is shown (selection needs predict and spec)."""

    def __init__(self, spec, right_ids, source):
        self.spec = spec
        data = source.load(source.candidate_ids(), spec)
        self._answer = {bytes(image): (label if i in set(right_ids) else (label + 1) % 1000)
                        for i, image, label in zip(data.ids.tolist(), data.images, data.labels.tolist())}
        self.seen_shapes = set()

    def predict(self, images):
        self.seen_shapes.add(images.shape[1:])
        return np.array([self._answer[bytes(image)] for image in images])


# --- the mini zoo's source ----------------------------------------------------------------------


def test_fashion_mnist_source_is_the_committed_subset():
    source = sources.source_for("mini")
    spec = mini.spec("pytorch", "resnet50")
    assert (source.name, source.split, len(source.candidate_ids())) == ("fashion_mnist", "test", 5000)
    chosen = source.load([7, 3], spec)
    assert chosen.ids.tolist() == [7, 3] and chosen.images.shape == (2, 32, 32, 3)
    assert source.geometry_key(spec) == source.geometry_key(mini.spec("tensorflow", "inception_v3"))
    fingerprint = source.fingerprint()
    assert fingerprint["pixels_sha256"] == sources.digest(source._test.images)
    assert len(fingerprint["candidates"]) == 5000


def test_fashion_mnist_calibration_comes_from_the_train_split():
    source = sources.source_for("mini")
    selection = samples.SampleSelection("fashion_mnist", "test", 0, np.array([1, 2, 3]), 3, 5000)
    calibration = source.calibration(mini.spec("pytorch", "resnet50"), 50, 0, selection)
    assert (calibration.name, calibration.split, len(calibration)) == ("fashion_mnist", "train", 50)


def test_images_of_another_size_are_refused_by_name():
    source = sources.source_for("mini")
    with pytest.raises(DataError, match="imagenet/pytorch/resnet50 takes 224x224 images; Fashion-MNIST here is 32x32"):
        source.load(source.candidate_ids()[:1], imagenet_zoo.spec("pytorch", "resnet50"))


# --- a local ImageNet folder --------------------------------------------------------------------


@pytest.fixture
def folder(tmp_path):
    labels = {i: (i * 37) % 1000 for i in range(1, 13)}
    return write_imagenet_folder(tmp_path / "val", labels), labels


def test_imagenet_source_decodes_each_model_at_its_table1_geometry(folder):
    root, labels = folder
    source = sources.ImageNetSource(root)
    assert source.candidate_ids().tolist() == sorted(labels)
    assert source.candidate_labels().tolist() == [labels[i] for i in sorted(labels)]
    resnet, inception = imagenet_zoo.spec("tensorflow", "resnet50"), imagenet_zoo.spec("pytorch", "inception_v3")
    small, large = source.load([5, 2], resnet), source.load([5, 2], inception)
    assert small.images.shape == (2, 224, 224, 3) and large.images.shape == (2, 299, 299, 3)
    assert small.ids.tolist() == [5, 2] and small.labels.tolist() == [labels[5], labels[2]]
    expected = IMAGENET_GEOMETRY["resnet50"](Image.open(root / imagenet.wnids()[labels[5]] / "ILSVRC2012_val_00000005.JPEG"))
    np.testing.assert_array_equal(small.images[0], expected)
    assert source.geometry_key(resnet) == source.geometry_key(imagenet_zoo.spec("pytorch", "mobilenet_v2"))
    assert source.geometry_key(resnet) != source.geometry_key(inception)


def test_imagenet_selection_streams_every_model_at_its_geometry(folder):
    root, labels = folder
    source = sources.ImageNetSource(root)
    mobilenet = Oracle(imagenet_zoo.spec("pytorch", "mobilenet_v2"), [2, 3, 4, 5, 6, 9], source)
    inception = Oracle(imagenet_zoo.spec("tensorflow", "inception_v3"), [1, 2, 3, 4, 5, 6, 7], source)
    selection = source.select([mobilenet, inception], 4, seed=0)
    assert set(selection.ids) <= {2, 3, 4, 5, 6} and len(selection.ids) == 4
    assert (selection.pool_size, selection.candidates) == (5, 12)
    assert selection.accuracy == {mobilenet.spec.id: 0.5, inception.spec.id: 7 / 12}
    assert mobilenet.seen_shapes == {(224, 224, 3)} and inception.seen_shapes == {(299, 299, 3)}


def test_imagenet_calibration_never_takes_an_evaluation_sample(folder):
    root, _ = folder
    source = sources.ImageNetSource(root)
    selection = samples.SampleSelection("imagenet", "val", 0, np.array([1, 2, 3, 4]), 12, 12)
    calibration = source.calibration(imagenet_zoo.spec("pytorch", "resnet50"), 8, 0, selection)
    assert sorted(calibration.ids.tolist()) == list(range(5, 13))
    with pytest.raises(DataError, match="asked for 9 calibration images but imagenet/val has only 8"):
        source.calibration(imagenet_zoo.spec("pytorch", "resnet50"), 9, 0, selection)


def test_imagenet_fingerprint_follows_the_files(folder):
    root, labels = folder
    before = sources.ImageNetSource(root).fingerprint()
    assert before == sources.ImageNetSource(root).fingerprint()
    path = root / imagenet.wnids()[labels[3]] / "ILSVRC2012_val_00000003.JPEG"
    Image.new("RGB", (300, 300), (10, 20, 30)).save(path)
    os.utime(path, ns=(1, 1))
    assert sources.ImageNetSource(root).fingerprint()["files_stat_sha256"] != before["files_stat_sha256"]


def test_the_imagenet_folder_must_be_named(tmp_path, monkeypatch):
    monkeypatch.delenv(sources.IMAGENET_DIR_ENV, raising=False)
    with pytest.raises(sources.DataUnavailable, match="pass --imagenet-dir PATH"):
        sources.source_for("imagenet")
    with pytest.raises(sources.DataUnavailable, match=f"{tmp_path / 'nowhere'}: ImageNet validation folder not found"):
        sources.source_for("imagenet", tmp_path / "nowhere")
    monkeypatch.setenv(sources.IMAGENET_DIR_ENV, str(tmp_path / "env"))
    with pytest.raises(sources.DataUnavailable, match="from IMAGENET_DIR"):
        sources.source_for("imagenet")
    with pytest.raises(DataError, match="no image source for zoo 'cifar'"):
        sources.source_for("cifar")
