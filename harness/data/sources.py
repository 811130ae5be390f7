"""Where a study's images come from: one source per zoo, behind one small interface.

A :class:`StudySource` names the evaluation candidates (ids and labels, nothing
decoded), decodes any of them at a model's input geometry, and draws calibration
images that never overlap the evaluation samples. The study asks it for nothing else,
so a zoo whose images are 32x32 arrays in memory (``mini``: the committed
Fashion-MNIST subset), one whose images are 50,000 JPEGs decoded per model
(``imagenet``: 224x224 or 299x299, Table 1) and one whose few photos ship inside
installed packages (``real``: :mod:`harness.data.photos`) are the same to it.

``fingerprint()`` is what the sample selection's cache key holds about the
candidates. The mini source digests its pixels; the ImageNet source digests the
files' names, sizes and modification times, because reading 6.4 GB on every run to
re-derive a key would cost more than the cases (a replaced image changes its size or
time; the adversarial sets and calibration artefacts still key on decoded pixels).
"""

from __future__ import annotations

import hashlib
import os
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Iterator

import numpy as np

from harness.data import fashion_mnist, samples
from harness.data.dataset import DataError, ImageDataset
from harness.zoo.base import ModelSpec, ZooModel

IMAGENET_DIR_ENV = "IMAGENET_DIR"


class DataUnavailable(DataError):
    """The images a zoo needs are not on this machine; the message says what to provide."""


def digest(array: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(array).tobytes()).hexdigest()


class StudySource(ABC):
    """A zoo's evaluation candidates and calibration pool."""

    name: str  # dataset name, as ImageDataset.name
    split: str  # the split the candidates come from

    @abstractmethod
    def candidate_ids(self) -> np.ndarray: ...

    @abstractmethod
    def candidate_labels(self) -> np.ndarray: ...

    @abstractmethod
    def fingerprint(self) -> dict:
        """JSON-able facts that change whenever the candidates' images or labels do."""

    @abstractmethod
    def load(self, ids, spec: ModelSpec) -> ImageDataset:
        """The candidates with these ids, in this order, at ``spec``'s input size."""

    @abstractmethod
    def calibration(self, spec: ModelSpec, n: int, seed: int,
                    evaluation: samples.SampleSelection) -> ImageDataset:
        """n calibration images at ``spec``'s input size, none of them an evaluation sample."""

    def geometry_key(self, spec: ModelSpec):
        """Models with equal keys see identical images (the study decodes them once)."""
        return spec.input_size

    def batches(self, spec: ModelSpec, batch_size: int = 500) -> Iterator[ImageDataset]:
        ids = self.candidate_ids()
        for start in range(0, len(ids), batch_size):
            yield self.load(ids[start:start + batch_size], spec)

    def correct(self, model: ZooModel) -> np.ndarray:
        """Which candidates ``model`` classifies correctly (bool, in candidate order)."""
        hits = [model.predict(batch.images) == batch.labels for batch in self.batches(model.spec)]
        return np.concatenate(hits) if hits else np.zeros(0, bool)

    def select(self, models: list[ZooModel], n: int, seed: int,
               progress=lambda message: None) -> samples.SampleSelection:
        """The paper's selection: n of the candidates that every model gets right."""
        hits = {}
        for model in models:
            hits[model.spec.id] = self.correct(model)
            progress(f"  sample selection: {model.spec.id} gets {hits[model.spec.id].mean():.1%} of "
                     f"{len(hits[model.spec.id])} candidates right")
        return samples.select_from_hits(self.name, self.split, self.candidate_ids(), hits, n, seed)


class FashionMNISTSource(StudySource):
    """The mini zoo's data: the committed Fashion-MNIST subset (test: candidates, train: calibration)."""

    def __init__(self, source: str = "fixtures"):
        self.source = source
        self._test = fashion_mnist.load("test", source)
        self.name, self.split = self._test.name, self._test.split
        self._train: ImageDataset | None = None

    def candidate_ids(self) -> np.ndarray:
        return self._test.ids

    def candidate_labels(self) -> np.ndarray:
        return self._test.labels

    def fingerprint(self) -> dict:
        return {"dataset": f"{self._test.name}/{self._test.split}", "source": self.source,
                "candidates": [int(i) for i in self._test.ids],
                "pixels_sha256": digest(self._test.images), "labels_sha256": digest(self._test.labels)}

    def load(self, ids, spec: ModelSpec) -> ImageDataset:
        data = self._test.select(ids)
        if data.image_size != (spec.input_size, spec.input_size):
            raise DataError(f"{spec.id} takes {spec.input_size}x{spec.input_size} images; "
                            f"Fashion-MNIST here is {data.image_size[0]}x{data.image_size[1]}")
        return data

    def batches(self, spec: ModelSpec, batch_size: int = 500) -> Iterator[ImageDataset]:
        yield self.load(self._test.ids, spec)  # already in memory: one batch

    def calibration(self, spec, n, seed, evaluation):
        if self._train is None:
            self._train = fashion_mnist.load("train", self.source)
        return samples.calibration_set(self._train, min(n, len(self._train)), seed, evaluation)


class ImageNetSource(StudySource):
    """A local ImageNet validation folder (any layout :mod:`harness.data.imagenet` reads).

    Images are decoded per model at its Table 1 geometry. Calibration images come from
    the same folder, minus the evaluation samples.
    """

    name, split = "imagenet", "val"

    def __init__(self, root: Path | str, workers: int = 2):
        from harness.data import imagenet

        self.root = Path(root)
        self.workers = workers
        self.index = imagenet.index_folder(self.root)

    def candidate_ids(self) -> np.ndarray:
        return self.index.ids

    def candidate_labels(self) -> np.ndarray:
        return self.index.labels

    def fingerprint(self) -> dict:
        files = hashlib.sha256()
        for path in self.index.paths:
            stat = os.stat(path)
            files.update(f"{path.relative_to(self.root).as_posix()}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
        return {"dataset": "imagenet/val", "root": str(self.root.resolve()), "layout": self.index.layout,
                "candidates": [int(i) for i in self.index.ids], "labels_sha256": digest(self.index.labels),
                "files_stat_sha256": files.hexdigest()}

    def _geometry(self, spec: ModelSpec):
        from harness.zoo import imagenet as zoo

        geometry = zoo.input_geometry(spec.name)
        if geometry.crop != spec.input_size:
            raise DataError(f"{spec.id} takes {spec.input_size}x{spec.input_size} images, "
                            f"Table 1's geometry for {spec.name} crops {geometry.crop}")
        return geometry

    def geometry_key(self, spec: ModelSpec):
        return self._geometry(spec)

    def load(self, ids, spec: ModelSpec) -> ImageDataset:
        return self.index.load(ids, self._geometry(spec), workers=self.workers)

    def calibration(self, spec, n, seed, evaluation):
        return self.load(samples.calibration_ids(self.index.ids, self.name, self.split, n, seed, evaluation), spec)


def imagenet_root(directory: Path | str | None) -> Path:
    """The ImageNet validation folder: the given one, else ``$IMAGENET_DIR``; a clear error if neither."""
    chosen = directory or os.environ.get(IMAGENET_DIR_ENV)
    if not chosen:
        raise DataUnavailable(
            "the imagenet zoo needs the ILSVRC2012 validation images: pass --imagenet-dir PATH (or set "
            f"{IMAGENET_DIR_ENV}) to a folder of wnid subfolders (torchvision's ImageFolder layout), or of "
            "ILSVRC2012_val_*.JPEG files beside Kaggle's LOC_val_solution.csv or the devkit's ground truth "
            "and meta.mat")
    root = Path(chosen).expanduser()
    if not root.is_dir():
        raise DataUnavailable(f"{root}: ImageNet validation folder not found (from "
                              f"{'--imagenet-dir' if directory else IMAGENET_DIR_ENV})")
    return root


def source_for(zoo: str, imagenet_dir: Path | str | None = None) -> StudySource:
    """The image source of a zoo's study."""
    if zoo == "mini":
        return FashionMNISTSource()
    if zoo == "imagenet":
        return ImageNetSource(imagenet_root(imagenet_dir))
    if zoo == "real":
        from harness.data.photos import PhotoSource

        return PhotoSource()
    raise DataError(f"no image source for zoo {zoo!r}; expected 'mini', 'imagenet' or 'real'")
