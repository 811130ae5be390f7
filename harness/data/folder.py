"""Bring your own images: a folder of photos as a :class:`StudySource` (``--images DIR``).

Three ways to label them, chosen by what is there:

* ``csv``: ``DIR/labels.csv`` (or ``--images`` naming a ``.csv`` file): rows ``file,label``, an
  optional header row ``file,label``; files relative to the CSV's folder;
* ``folders``: one sub-folder per class, named by class index, WordNet id or class name
  (images anywhere below it);
* ``unlabelled``: image files directly in ``DIR``. Then the labels are the reference model's
  clean predictions (:meth:`FolderSource.label_with`), and :attr:`FolderSource.labels_from`
  says so, for the report.

Class names, WordNet ids and indices are resolved against a :class:`LabelSpace` (the
model's labels file, or ImageNet's class index); labels are kept in the model's
*output-index* space (class index + the label offset), so a model with a background output
first is compared with the right label. Sample ids are the images' positions in sorted
path order; the fingerprint digests every file's bytes (a folder of photos is small).

Images are decoded with Pillow, converted to RGB and resized/cropped with each model's
:class:`Geometry` (from its card; default: shorter side to the input size, center crop).
Errors name the file: a folder with no images, a file that is not a readable image, a
label out of range, a class folder not among the labels, a CSV row naming a missing file.
"""

from __future__ import annotations

import csv
import hashlib
import io
import os
from pathlib import Path
import numpy as np
from PIL import Image

from harness.data import samples
from harness.data.dataset import DataError, ImageDataset
from harness.data.labels import LabelSpace, imagenet
from harness.data.preprocessing import Geometry
from harness.data.sources import StudySource
from harness.zoo.base import ModelSpec

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm")
CSV_NAME = "labels.csv"
MODES = ("csv", "folders", "unlabelled")


def _visible(path: Path) -> bool:
    return not path.name.startswith(".")


def _check_image(path: Path) -> None:
    if path.suffix.lower() not in IMAGE_SUFFIXES:
        raise DataError(f"{path}: not an image file (expected one of {', '.join(IMAGE_SUFFIXES)}); "
                        "move other files out of the images folder")
    try:
        with Image.open(path) as image:
            image.verify()
    except Exception as exc:  # Pillow raises UnidentifiedImageError, OSError, SyntaxError... on a bad file
        raise DataError(f"{path}: not a readable image ({type(exc).__name__}: {exc})") from None


def decode(path: Path, geometry: Geometry) -> np.ndarray:
    """One photo -> uint8 (crop, crop, 3) RGB."""
    try:
        with Image.open(path) as image:
            image.load()
            return geometry(image)
    except DataError as exc:
        raise DataError(f"{path}: {exc}") from None
    except Exception as exc:
        raise DataError(f"{path}: cannot decode this image ({type(exc).__name__}: {exc})") from None


def read_csv(path: Path | str, label_space: LabelSpace, check_files: bool = True) -> list[tuple[Path, int]]:
    """``file,label`` rows -> [(image path, class index)]; any problem is a :class:`DataError` naming the row."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise DataError(f"{path}: cannot read the labels CSV ({exc.strerror or exc})") from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: labels CSV is not UTF-8 text (byte {exc.start})") from None
    rows: list[tuple[Path, int]] = []
    seen: dict[Path, int] = {}
    header = True  # the first non-empty row may be a header
    try:
        reader = csv.reader(io.StringIO(text, newline=""))
        for row in reader:
            number = reader.line_num
            where = f"{path}:{number}"
            if not row or all(not cell.strip() for cell in row):
                continue
            if len(row) != 2:
                raise DataError(f"{where}: expected two columns file,label; found {len(row)}: {row[:4]!r}")
            name, label = row[0].strip(), row[1].strip()
            first, header = header, False
            if first and name.lower() in ("file", "filename", "path", "image") and label.lower() in ("label", "class"):
                continue
            if not name or not label:
                raise DataError(f"{where}: empty file name or label in {row!r}")
            if "\0" in name:
                raise DataError(f"{where}: file name contains a NUL character")
            image = Path(name) if Path(name).is_absolute() else path.parent / name
            if check_files:
                try:
                    exists = image.is_file()
                except (OSError, ValueError):
                    exists = False
                if not exists:
                    raise DataError(f"{where}: image file {image} not found")
            if image in seen:
                raise DataError(f"{where}: {name} is listed twice (first on line {seen[image]})")
            seen[image] = number
            rows.append((image, label_space.lookup(label, where)))
    except csv.Error as exc:
        raise DataError(f"{path}: not a readable CSV ({exc})") from None
    if not rows:
        raise DataError(f"{path}: the labels CSV lists no images (expected rows file,label)")
    return rows


class FolderSource(StudySource):
    """A user's folder of photos (see the module docstring)."""

    name = "images"

    def __init__(self, root: Path | str, label_space: LabelSpace | None = None, workers: int = 2):
        root = Path(root).expanduser()
        self.root = root
        self.label_space = label_space or imagenet()
        self.workers = workers
        self._geometries: dict[str, Geometry] = {}
        if root.is_file() and root.suffix.lower() == ".csv":
            self.mode, self.csv = "csv", root
        elif not root.is_dir():
            raise DataError(f"{root}: images folder not found")
        elif (root / CSV_NAME).is_file():
            self.mode, self.csv = "csv", root / CSV_NAME
        else:
            self.csv = None
            self.mode = "folders" if any(p.is_dir() and _visible(p) for p in root.iterdir()) else "unlabelled"
        self.split = (root.stem if root.is_file() else root.name) or "images"
        self.paths, classes = self._index()
        for p in self.paths:
            _check_image(p)
        self.ids = np.arange(len(self.paths), dtype=np.int64)
        self._labels = None if classes is None else np.array([self.label_space.output_index(c) for c in classes],
                                                             np.int64)
        self.labels_from = {"csv": f"the CSV {self.csv}", "folders": "class sub-folders",
                            "unlabelled": None}[self.mode]

    # -- indexing ---------------------------------------------------------------------------------
    def _index(self) -> tuple[list[Path], list[int] | None]:
        if self.mode == "csv":
            rows = read_csv(self.csv, self.label_space)
            rows.sort(key=lambda r: str(r[0]))
            return [p for p, _ in rows], [c for _, c in rows]
        top = sorted(p for p in self.root.iterdir() if _visible(p))
        if self.mode == "unlabelled":
            files = [p for p in top if p.is_file()]
            if not files:
                raise DataError(f"{self.root}: no images in this folder (expected image files, class sub-folders "
                                f"or a {CSV_NAME})")
            return files, None
        loose = [p for p in top if p.is_file()]
        if loose:
            raise DataError(f"{loose[0]}: a file beside the class sub-folders of {self.root}; put every image in "
                            f"its class's folder (or list them in {CSV_NAME})")
        paths, classes = [], []
        for folder in top:
            index = self.label_space.lookup(folder.name, f"{folder} (class folder)")
            files = sorted(p for p in folder.rglob("*") if p.is_file() and
                           not any(part.startswith(".") for part in p.relative_to(folder).parts))
            paths += files
            classes += [index] * len(files)
        if not paths:
            raise DataError(f"{self.root}: no images in its class sub-folders ({', '.join(p.name for p in top[:5])})")
        order = sorted(range(len(paths)), key=lambda i: str(paths[i]))
        return [paths[i] for i in order], [classes[i] for i in order]

    # -- labels ---------------------------------------------------------------------------------
    @property
    def labelled(self) -> bool:
        return self._labels is not None

    def label_with(self, model, who: str | None = None) -> np.ndarray:
        """Label an unlabelled folder with ``model``'s clean predictions (anything with ``spec`` and
        ``predict(uint8 images)``: a ZooModel or a Runtime); the report reads :attr:`labels_from`."""
        predictions = np.concatenate([model.predict(self._decode(self.ids[i:i + 250], model.spec))
                                      for i in range(0, len(self.ids), 250)])
        self._labels = predictions.astype(np.int64)
        self.labels_from = f"the clean predictions of the reference model {who or model.spec.id}"
        return self._labels

    def candidate_ids(self) -> np.ndarray:
        return self.ids

    def candidate_labels(self) -> np.ndarray:
        if self._labels is None:
            raise DataError(f"{self.root}: the images are unlabelled; label them with the reference model's "
                            "predictions first (FolderSource.label_with)")
        return self._labels

    def class_names(self) -> tuple[str, ...]:
        """Name of each output index."""
        space = self.label_space
        return tuple(space.class_name_of_output(k) for k in range(space.num_outputs))

    # -- geometry and decoding ---------------------------------------------------------------------
    def set_geometry(self, spec: ModelSpec, geometry: Geometry) -> None:
        """The resize/crop of ``spec``'s model (its card's); default: shorter side to the input size, center crop."""
        if geometry.crop != spec.input_size:
            raise DataError(f"{spec.id}: geometry crops {geometry.crop}, the model takes {spec.input_size}")
        self._geometries[spec.id] = geometry

    def geometry_key(self, spec: ModelSpec) -> Geometry:
        return self._geometries.get(spec.id, Geometry(spec.input_size, spec.input_size))

    def _decode(self, ids, spec: ModelSpec) -> np.ndarray:
        geometry = self.geometry_key(spec)
        rows = np.asarray(ids, np.int64).reshape(-1)
        bad = rows[(rows < 0) | (rows >= len(self.paths))]
        if len(bad):
            raise DataError(f"{self.root}: sample ids {bad[:10].tolist()} not in 0..{len(self.paths) - 1}")
        if not len(rows):
            return np.zeros((0, spec.input_size, spec.input_size, 3), np.uint8)
        paths = [self.paths[int(r)] for r in rows]
        if self.workers > 1 and len(paths) > 8:
            from concurrent.futures import ThreadPoolExecutor

            with ThreadPoolExecutor(self.workers) as pool:
                images = list(pool.map(lambda p: decode(p, geometry), paths))
        else:
            images = [decode(p, geometry) for p in paths]
        return np.stack(images)

    def load(self, ids, spec: ModelSpec) -> ImageDataset:
        labels = self.candidate_labels()
        if self.label_space.num_outputs != spec.num_classes:
            raise DataError(f"{self.root}: labels from {self.label_space.source} cover {self.label_space.num_outputs} "
                            f"outputs; {spec.id} has {spec.num_classes}")
        rows = np.asarray(ids, np.int64).reshape(-1)
        images = self._decode(rows, spec)
        return ImageDataset(self.name, self.split, rows, images, labels[rows], self.class_names())

    def calibration(self, spec, n, seed, evaluation):
        return self.load(samples.calibration_ids(self.ids, self.name, self.split, n, seed, evaluation), spec)

    def fingerprint(self) -> dict:
        files = hashlib.sha256()
        for path in self.paths:
            files.update(os.fsencode(self._relative(path)) + b"\0")
            files.update(hashlib.sha256(path.read_bytes()).digest())
        out = {"dataset": f"{self.name}/{self.split}", "root": str(self.root.resolve()), "mode": self.mode,
               "candidates": len(self.paths), "files_sha256": files.hexdigest(), "labels_from": self.labels_from,
               "label_space": self.label_space.describe()}
        if self._labels is not None:
            out["labels_sha256"] = hashlib.sha256(np.ascontiguousarray(self._labels).tobytes()).hexdigest()
        return out

    def _relative(self, path: Path) -> str:
        base = self.root.parent if self.root.is_file() else self.root
        try:
            return path.relative_to(base).as_posix()
        except ValueError:
            return str(path)

    def describe(self) -> dict:
        return {"root": str(self.root), "mode": self.mode, "images": len(self.paths),
                "labels_from": self.labels_from, "label_space": self.label_space.describe()}


def folder_source(images: Path | str, models=(), label_space: LabelSpace | None = None) -> FolderSource:
    """The source for ``--images``: labels resolved against ``label_space`` (default: the first model's),
    and each :class:`harness.zoo.user.UserModel`'s geometry registered."""
    models = list(models)
    if label_space is None and models:
        label_space = models[0].labels
    source = FolderSource(images, label_space)
    for model in models:
        source.set_geometry(model.spec, model.geometry)
        if model.source is not None:
            source.set_geometry(model.source.spec, model.geometry)
    return source

