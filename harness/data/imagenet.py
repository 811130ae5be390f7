"""The ImageNet (ILSVRC2012) validation set, read from a folder the user points to.

ImageNet cannot ship with the suite (licence, 6.4 GB), so the ``imagenet`` zoo reads
the user's copy in whichever of the common layouts it is in:

* ``folders``: one subfolder per class, named by wnid (torchvision's ``ImageFolder``
  layout, what ``valprep.sh`` produces): ``val/n01440764/ILSVRC2012_val_00000293.JPEG``;
* ``kaggle``: a flat folder plus Kaggle's ``LOC_val_solution.csv`` (a wnid per image);
* ``devkit``: a flat folder plus the devkit's ``ILSVRC2012_validation_ground_truth.txt``
  (line k holds the ILSVRC2012_ID, 1..1000, of image k) and ``meta.mat`` (which maps
  ILSVRC2012_IDs to wnids).

Class indices follow Keras applications and torchvision: 0..999 in sorted-wnid order,
from the committed ``fixtures/imagenet/imagenet_class_index.json``. The devkit's
ILSVRC2012_IDs are a *different* order (WordNet's), which is why they always go
through ``meta.mat``; reading them as class indices is a classic silent bug.

Sample ids are the number in the file name (``ILSVRC2012_val_00000293.JPEG`` -> 293),
the same in every layout. :func:`index_folder` lists ids and labels without decoding
anything; :meth:`ValidationIndex.load` and :meth:`ValidationIndex.batches` decode only
the ids asked for, so a 50,000-image folder never has to fit in memory.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import re
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Iterator

import numpy as np
from PIL import Image

from harness.data.dataset import DataError, ImageDataset
from harness.data.preprocessing import Geometry

REPO_ROOT = Path(__file__).resolve().parents[2]
CLASS_INDEX_FILE = REPO_ROOT / "fixtures" / "imagenet" / "imagenet_class_index.json"
# The MD5 Keras pins for this file (keras/src/applications/imagenet_utils.py).
CLASS_INDEX_MD5 = "c2c37ea517e94d9795004a39431a14cb"
NUM_CLASSES = 1000

LAYOUTS = ("folders", "kaggle", "devkit")
KAGGLE_SOLUTION = "LOC_val_solution.csv"
DEVKIT_GROUND_TRUTH = "ILSVRC2012_validation_ground_truth.txt"
DEVKIT_META = "meta.mat"
IMAGE_SUFFIXES = (".jpeg", ".jpg", ".png")

_FILE_ID = re.compile(r"^ILSVRC2012_val_(\d{8})$")
_WNID = re.compile(r"^n\d{8}$")


# --- classes: wnid <-> class index <-> ILSVRC2012_ID -------------------------------------


@lru_cache(maxsize=4)
def class_index(path: Path = CLASS_INDEX_FILE) -> tuple[tuple[str, str], ...]:
    """``((wnid, name), ...)`` in class-index order, checked against Keras' pinned MD5."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: ImageNet class index not found (it ships in fixtures/imagenet/)")
    raw = path.read_bytes()
    if path == CLASS_INDEX_FILE and hashlib.md5(raw).hexdigest() != CLASS_INDEX_MD5:
        raise DataError(f"{path}: MD5 differs from Keras' {CLASS_INDEX_MD5} (edited or corrupt fixture)")
    try:
        table = json.loads(raw)
        entries = tuple((str(table[str(i)][0]), str(table[str(i)][1])) for i in range(len(table)))
    except (ValueError, KeyError, IndexError, TypeError) as exc:
        raise DataError(f"{path}: expected JSON {{\"0\": [wnid, name], ...}} ({type(exc).__name__}: {exc})") from exc
    wnids = [w for w, _ in entries]
    if len(entries) != NUM_CLASSES or wnids != sorted(set(wnids)):
        raise DataError(f"{path}: expected {NUM_CLASSES} unique wnids in sorted order")
    return entries


def wnids() -> tuple[str, ...]:
    """The 1000 wnids; position = class index."""
    return tuple(w for w, _ in class_index())


def class_names() -> tuple[str, ...]:
    """The 1000 class names (Keras' spelling); position = class index."""
    return tuple(n for _, n in class_index())


@lru_cache(maxsize=1)
def _index_of_wnid() -> dict[str, int]:
    return {w: i for i, w in enumerate(wnids())}


def wnid_to_index(wnid: str, source: object = None) -> int:
    """The class index (0..999) of a wnid; ``source`` names the file in the error."""
    try:
        return _index_of_wnid()[wnid]
    except KeyError:
        where = f"{source}: " if source is not None else ""
        raise DataError(f"{where}unknown wnid {wnid!r}; expected one of the 1000 ILSVRC2012 wnids "
                        f"(n01440764 .. n15075141)") from None


def index_to_wnid(index: int) -> str:
    if not 0 <= int(index) < NUM_CLASSES:
        raise DataError(f"class index {index} outside 0..{NUM_CLASSES - 1}")
    return wnids()[int(index)]


def read_devkit_meta(path: Path) -> dict[int, str]:
    """``{ILSVRC2012_ID: wnid}`` for the 1000 classes, from the devkit's ``meta.mat``.

    ``meta.mat`` lists all 1860 synsets of the hierarchy; the classes are the leaves
    (``num_children == 0``), as torchvision's ``parse_devkit_archive`` reads them.
    """
    from scipy.io import loadmat

    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: devkit meta.mat not found (it is ILSVRC2012_devkit_t12/data/meta.mat)")
    try:
        synsets = np.atleast_1d(loadmat(path, squeeze_me=True)["synsets"])
        ids = [int(i) for i in synsets["ILSVRC2012_ID"]]
        names = [str(w) for w in synsets["WNID"]]
        children = [int(c) for c in synsets["num_children"]]
    except Exception as exc:  # scipy raises ValueError, TypeError, MatReadError... on a bad file
        raise DataError(f"{path}: not a devkit meta.mat with a 'synsets' struct array of "
                        f"ILSVRC2012_ID, WNID and num_children ({type(exc).__name__}: {exc})") from exc
    mapping = {i: w for i, w, c in zip(ids, names, children) if c == 0}
    if sorted(mapping) != list(range(1, NUM_CLASSES + 1)) or sorted(mapping.values()) != list(wnids()):
        raise DataError(f"{path}: expected the 1000 ILSVRC2012 classes as leaves with ILSVRC2012_IDs "
                        f"1..1000, found {len(mapping)} leaves")
    return mapping


def ilsvrc_id_to_index(ilsvrc_ids, meta: dict[int, str]) -> np.ndarray:
    """Devkit ILSVRC2012_IDs (1..1000) -> class indices (0..999), through ``meta``."""
    table = np.full(NUM_CLASSES + 1, -1, np.int64)
    for ilsvrc_id, wnid in meta.items():
        table[ilsvrc_id] = wnid_to_index(wnid)
    ilsvrc_ids = np.asarray(ilsvrc_ids, np.int64)
    if ilsvrc_ids.size and (ilsvrc_ids.min() < 1 or ilsvrc_ids.max() > NUM_CLASSES):
        raise DataError(f"ILSVRC2012_IDs must lie in 1..{NUM_CLASSES}")
    indices = table[ilsvrc_ids]
    if (indices < 0).any():
        raise DataError(f"ILSVRC2012_IDs {sorted(set(ilsvrc_ids[indices < 0].tolist()))[:10]} "
                        f"are not in the meta mapping")
    return indices


def index_to_ilsvrc_id(indices, meta: dict[int, str]) -> np.ndarray:
    """Class indices (0..999) -> devkit ILSVRC2012_IDs (1..1000), through ``meta``."""
    table = np.zeros(NUM_CLASSES, np.int64)
    for ilsvrc_id, wnid in meta.items():
        table[wnid_to_index(wnid)] = ilsvrc_id
    indices = np.asarray(indices, np.int64)
    if indices.size and (indices.min() < 0 or indices.max() >= NUM_CLASSES):
        raise DataError(f"class indices must lie in 0..{NUM_CLASSES - 1}")
    ilsvrc_ids = table[indices]
    if (ilsvrc_ids == 0).any():
        raise DataError(f"class indices {sorted(set(indices[ilsvrc_ids == 0].tolist()))[:10]} "
                        f"are not in the meta mapping")
    return ilsvrc_ids


# --- listing a validation folder ---------------------------------------------------------


def image_id(path: Path) -> int:
    """293 for ``ILSVRC2012_val_00000293.JPEG``."""
    match = _FILE_ID.match(Path(path).stem)
    if not match:
        raise DataError(f"{path}: expected an ImageNet validation file name like "
                        f"ILSVRC2012_val_00000293.JPEG (the number is the sample id)")
    return int(match.group(1))


@dataclass(frozen=True)
class ValidationIndex:
    """Which file holds which sample id and label; nothing decoded yet. Sorted by id."""

    root: Path
    layout: str
    ids: np.ndarray
    labels: np.ndarray
    paths: tuple[Path, ...]

    def __len__(self) -> int:
        return len(self.ids)

    def rows(self, ids=None) -> np.ndarray:
        """Positions of ``ids`` (all when None) in this index; unknown ids are an error."""
        if ids is None:
            return np.arange(len(self.ids))
        ids = np.asarray(ids, np.int64).reshape(-1)
        rows = np.searchsorted(self.ids, ids)
        found = np.zeros(len(ids), bool)
        if len(self.ids):
            found = (rows < len(self.ids)) & (self.ids[np.minimum(rows, len(self.ids) - 1)] == ids)
        if not found.all():
            missing = ids[~found]
            raise DataError(f"{self.root}: sample ids not in this folder: {missing[:10].tolist()}"
                            f"{' ...' if len(missing) > 10 else ''} ({len(self.ids)} images indexed)")
        return rows

    def labels_of(self, ids) -> np.ndarray:
        return self.labels[self.rows(ids)]

    def load(self, ids, geometry: Geometry, workers: int = 1) -> ImageDataset:
        """Decode the images with these ids (all when None), in the given order."""
        rows = self.rows(ids)
        size = geometry.crop
        images = np.empty((len(rows), size, size, 3), np.uint8)
        decode = lambda row: _decode(self.paths[row], geometry)  # noqa: E731
        if workers > 1 and len(rows) > 1:
            with ThreadPoolExecutor(workers) as pool:  # PIL releases the GIL while decoding
                for i, pixels in enumerate(pool.map(decode, rows)):
                    images[i] = pixels
        else:
            for i, row in enumerate(rows):
                images[i] = decode(row)
        return ImageDataset("imagenet", "val", self.ids[rows].copy(), images,
                            self.labels[rows].copy(), class_names())

    def batches(self, ids, geometry: Geometry, batch_size: int = 256,
                workers: int = 1) -> Iterator[ImageDataset]:
        """The same images as :meth:`load`, ``batch_size`` at a time."""
        chosen = self.ids[self.rows(ids)]
        for start in range(0, len(chosen), batch_size):
            yield self.load(chosen[start:start + batch_size], geometry, workers)


def _decode(path: Path, geometry: Geometry) -> np.ndarray:
    try:
        with Image.open(path) as image:
            image.load()
            return geometry(image)
    except (OSError, ValueError, Image.DecompressionBombError) as exc:
        raise DataError(f"{path}: not a readable image; expected a JPEG or PNG "
                        f"({type(exc).__name__}: {exc})") from exc


def _image_files(folder: Path) -> list[Path]:
    return [Path(e.path) for e in _scan(folder)
            if e.is_file() and not e.name.startswith(".") and Path(e.name).suffix.lower() in IMAGE_SUFFIXES]


def _scan(folder: Path) -> list[os.DirEntry]:
    with os.scandir(folder) as entries:
        return sorted(entries, key=lambda e: e.name)


def _class_folders(root: Path) -> list[Path]:
    return [Path(e.path) for e in _scan(root) if e.is_dir() and not e.name.startswith(".")]


def index_folder(root: Path, ground_truth: Path | None = None, meta: Path | None = None) -> ValidationIndex:
    """List a validation folder's ids and labels, in whichever layout it is (see module doc).

    ``ground_truth`` is needed for a flat folder unless the file sits where the Kaggle
    download or the devkit puts it (see :func:`find_ground_truth`); ``meta`` defaults to
    ``meta.mat`` beside a devkit ground-truth file.
    """
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"{root}: ImageNet validation folder not found; expected a folder of "
                        f"wnid subfolders, or of ILSVRC2012_val_*.JPEG files plus a ground-truth file")
    if ground_truth is None and any(_WNID.match(d.name) for d in _class_folders(root)):
        return _index_class_folders(root)
    if ground_truth is None:
        ground_truth = find_ground_truth(root)
    ground_truth = Path(ground_truth)
    if not ground_truth.is_file():
        raise DataError(f"{ground_truth}: ground-truth file not found; expected {KAGGLE_SOLUTION} "
                        f"(Kaggle) or {DEVKIT_GROUND_TRUTH} with {DEVKIT_META} (devkit)")
    if ground_truth.suffix.lower() == ".csv":
        layout, label_of_id = "kaggle", read_kaggle_solution(ground_truth)
    else:
        meta = Path(meta) if meta is not None else ground_truth.parent / DEVKIT_META
        layout, label_of_id = "devkit", read_devkit_ground_truth(ground_truth, read_devkit_meta(meta))
    files = _image_files(root)
    ids = [image_id(f) for f in files]
    missing = [f for f, i in zip(files, ids) if i not in label_of_id]
    if missing:
        raise DataError(f"{ground_truth}: no label for {len(missing)} image(s) in {root}, "
                        f"e.g. {missing[0].name}; is it the ground truth of the validation set?")
    return _sorted_index(root, layout, ids, [label_of_id[i] for i in ids], files)


def find_ground_truth(root: Path) -> Path:
    """A flat folder's ground-truth file, where Kaggle's download or the devkit put it."""
    root = Path(root).resolve()
    candidates = []
    for base in [root, *list(root.parents)[:4]]:  # Kaggle: <top>/ILSVRC/Data/CLS-LOC/val
        candidates.append(base / KAGGLE_SOLUTION)
    for base in (root, root.parent):
        candidates += [base / DEVKIT_GROUND_TRUTH, base / "data" / DEVKIT_GROUND_TRUTH,
                       base / "ILSVRC2012_devkit_t12" / "data" / DEVKIT_GROUND_TRUTH]
    for path in candidates:
        if path.is_file():
            return path
    raise DataError(f"{root}: no wnid subfolders and no ground-truth file found; pass ground_truth= "
                    f"(a {KAGGLE_SOLUTION} or a {DEVKIT_GROUND_TRUTH} with its {DEVKIT_META})")


def _index_class_folders(root: Path) -> ValidationIndex:
    ids, labels, files = [], [], []
    for folder in _class_folders(root):
        label = wnid_to_index(folder.name, source=folder)
        for path in _image_files(folder):
            ids.append(image_id(path))
            labels.append(label)
            files.append(path)
    return _sorted_index(root, "folders", ids, labels, files)


def _sorted_index(root: Path, layout: str, ids, labels, files) -> ValidationIndex:
    if not files:
        raise DataError(f"{root}: no images found; expected ILSVRC2012_val_*.JPEG files "
                        f"({'in its wnid subfolders' if layout == 'folders' else 'directly in it'})")
    ids = np.asarray(ids, np.int64)
    order = np.argsort(ids, kind="stable")
    repeated = np.flatnonzero(ids[order][1:] == ids[order][:-1])
    if repeated.size:
        twin = ids[order][repeated[0]]
        raise DataError(f"{root}: sample id {twin} appears more than once: "
                        f"{[str(files[i]) for i in np.flatnonzero(ids == twin)]}")
    return ValidationIndex(root, layout, ids[order], np.asarray(labels, np.int64)[order],
                           tuple(files[i] for i in order))


def read_kaggle_solution(path: Path) -> dict[int, int]:
    """``{sample id: class index}`` from Kaggle's ``LOC_val_solution.csv``.

    Each row is ``ILSVRC2012_val_00008726,n02119789 255 142 454 329 ...``: boxes, each
    led by its wnid; all boxes of an image share its class.
    """
    path = Path(path)
    labels: dict[int, int] = {}
    try:
        with open(path, newline="") as fh:
            rows = list(csv.reader(fh))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise DataError(f"{path}: not a readable CSV ({type(exc).__name__}: {exc})") from exc
    if not rows or [c.strip() for c in rows[0][:2]] != ["ImageId", "PredictionString"]:
        raise DataError(f"{path}: expected Kaggle's header 'ImageId,PredictionString'")
    for line, row in enumerate(rows[1:], start=2):
        if not row:
            continue
        tokens = row[1].split() if len(row) >= 2 else []
        if not tokens:
            raise DataError(f"{path}, line {line}: expected 'ILSVRC2012_val_<8 digits>,<wnid> <box> ...'")
        sample = image_id(Path(row[0].strip()))
        labels[sample] = wnid_to_index(tokens[0], source=f"{path}, line {line}")
    return labels


def read_devkit_ground_truth(path: Path, meta: dict[int, str]) -> dict[int, int]:
    """``{sample id: class index}`` from the devkit's ground truth (line k = image k)."""
    path = Path(path)
    try:
        lines = path.read_text().rstrip().splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: not a readable text file ({type(exc).__name__}: {exc})") from exc
    lines = [line.strip() for line in lines]
    if not lines or lines == [""]:
        raise DataError(f"{path}: empty; expected one ILSVRC2012_ID (1..{NUM_CLASSES}) per line")
    values = []
    for line, token in enumerate(lines, start=1):
        if not (token.isascii() and token.isdigit()) or not 1 <= int(token) <= NUM_CLASSES:
            raise DataError(f"{path}, line {line}: {token!r} is not an ILSVRC2012_ID 1..{NUM_CLASSES}")
        values.append(int(token))
    indices = ilsvrc_id_to_index(values, meta)
    return {sample: int(label) for sample, label in enumerate(indices, start=1)}


def load(root: Path, geometry: Geometry, ids=None, ground_truth: Path | None = None,
         meta: Path | None = None, workers: int = 1) -> ImageDataset:
    """Index ``root`` and decode the images with these ids (all when None) at ``geometry``."""
    return index_folder(root, ground_truth, meta).load(ids, geometry, workers)
