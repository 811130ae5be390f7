"""Real photographs that ship inside installed packages: the ``real`` zoo's images.

``fixtures/photos/manifest.json`` lists each photo: the distribution that installs it
(scikit-image's ``skimage/data``, scikit-learn's sample images, matplotlib's sample
data), its path inside that distribution, its SHA-256, its licence and attribution as
the package states them, and its role:

- ``evaluation`` photos have one clear ImageNet class, chosen by a person looking at
  the photo (never by a model) and recorded by index, WordNet id and name; the loader
  checks the three against ``fixtures/imagenet/imagenet_class_index.json``. They are
  the study's candidates: the selection keeps those every model gets right, as for
  the other zoos.
- ``calibration`` photos are the others with a recorded licence. int8 calibration
  needs more images than there are photos, and the evaluation photos must not be
  among them, so :meth:`PhotoSource.calibration` draws seeded augmented crops of the
  calibration photos (a random 30-100% of the area, aspect 3:4 to 4:3, a horizontal
  flip half the time, resized to the model's input). They are real photographs but
  not ImageNet's distribution: the int8 model's calibration is rougher than with
  ImageNet images, which is what a user calibrating on a few photos of their own gets.

Nothing is downloaded: a photo's package not being installed, a file missing or one
whose digest differs from the manifest's is a :class:`~harness.data.sources.DataUnavailable`
or :class:`~harness.data.dataset.DataError` naming the file and what to install.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

import numpy as np
from PIL import Image

from harness.data import samples
from harness.data.dataset import DataError, ImageDataset
from harness.data.imagenet import CLASS_INDEX_FILE, class_index
from harness.data.preprocessing import Geometry
from harness.data.sources import DataUnavailable, StudySource
from harness.zoo.base import ModelSpec

REPO_ROOT = Path(__file__).resolve().parents[2]
MANIFEST = REPO_ROOT / "fixtures" / "photos" / "manifest.json"
ROLES = ("evaluation", "calibration")
INSTALL_HINT = "pip install --no-deps --require-hashes -r requirements-nodeps.lock (`make test` does)"
# The calibration crops: fraction of the photo's area, aspect ratio range (w/h), flip probability.
CROP_AREA = (0.3, 1.0)
CROP_ASPECT = (3 / 4, 4 / 3)
FLIP_PROBABILITY = 0.5


@dataclass(frozen=True)
class Photo:
    id: int
    role: str
    distribution: str
    version: str
    path: str  # inside the distribution
    sha256: str
    licence: str
    attribution: str
    label: int | None  # the ImageNet class (evaluation photos)
    label_name: str | None
    wnid: str | None

    @property
    def name(self) -> str:
        return Path(self.path).stem


def read_manifest(path: Path = MANIFEST) -> tuple[Photo, ...]:
    """The manifest's photos, checked: unique ids, known roles, every field present, and each
    evaluation label's index, WordNet id and name agreeing with the committed class index."""
    path = Path(path)
    try:
        data = json.loads(path.read_text())
        entries = data["photos"]
    except FileNotFoundError:
        raise DataError(f"{path}: photo manifest not found") from None
    except (ValueError, KeyError, TypeError) as exc:
        raise DataError(f"{path}: not a photo manifest (a JSON object with a 'photos' list): {exc}") from None
    index = class_index()
    photos, seen = [], set()
    required = ("id", "role", "distribution", "version", "path", "sha256", "licence", "attribution")
    for n, entry in enumerate(entries):
        where = f"{path}: photo {n}"
        if not isinstance(entry, dict):
            raise DataError(f"{where}: expected an object, found {type(entry).__name__}")
        missing = [k for k in required if not entry.get(k) and entry.get(k) != 0]
        if missing:
            raise DataError(f"{where}: missing {', '.join(missing)}")
        if entry["role"] not in ROLES:
            raise DataError(f"{where}: role {entry['role']!r}; expected one of {ROLES}")
        if not isinstance(entry["id"], int) or entry["id"] < 0 or entry["id"] in seen:
            raise DataError(f"{where}: id {entry['id']!r} must be a non-negative integer used once")
        seen.add(entry["id"])
        label = entry.get("label")
        if entry["role"] == "evaluation":
            if not isinstance(label, int) or not 0 <= label < len(index):
                raise DataError(f"{where} ({entry['path']}): label {label!r} is not an ImageNet class index "
                                f"0..{len(index) - 1}")
            wnid, name = index[label]
            if (entry.get("wnid"), entry.get("label_name")) != (wnid, name):
                raise DataError(f"{where} ({entry['path']}): label {label} is {wnid} {name!r} in "
                                f"{CLASS_INDEX_FILE.name}, but the manifest says {entry.get('wnid')} "
                                f"{entry.get('label_name')!r}")
        photos.append(Photo(entry["id"], entry["role"], entry["distribution"], entry["version"], entry["path"],
                            entry["sha256"], entry["licence"], entry["attribution"], label,
                            entry.get("label_name"), entry.get("wnid")))
    return tuple(photos)


def photo_file(photo: Photo) -> Path:
    """Where the installed distribution keeps the photo; DataUnavailable when it is not installed."""
    try:
        dist = metadata.distribution(photo.distribution)
    except metadata.PackageNotFoundError:
        raise DataUnavailable(f"{photo.path}: the package {photo.distribution} {photo.version}, which carries this "
                              f"photo, is not installed; install it with {INSTALL_HINT}") from None
    path = Path(dist.locate_file(photo.path))
    if not path.is_file():
        raise DataUnavailable(f"{path}: photo not found in the installed {photo.distribution} {dist.version} "
                              f"(the manifest expects it in {photo.distribution} {photo.version}; {INSTALL_HINT})")
    return path


def read_photo(photo: Photo) -> Image.Image:
    """The photo as an RGB PIL image, after checking its digest against the manifest."""
    path = photo_file(photo)
    data = path.read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    if digest != photo.sha256:
        raise DataError(f"{path}: SHA-256 {digest[:12]}... differs from the manifest's {photo.sha256[:12]}... "
                        f"({MANIFEST.name}); the file is another version or damaged ({INSTALL_HINT})")
    import io

    try:
        image = Image.open(io.BytesIO(data))
        image.load()
    except Exception as exc:  # PIL raises several types for a damaged image
        raise DataError(f"{path}: not a readable image ({type(exc).__name__}: {exc})") from None
    return image.convert("RGB")


def augmented_crops(images: list[Image.Image], n: int, size: int, seed: int) -> np.ndarray:
    """n seeded random crops (area, aspect, flip: :data:`CROP_AREA` etc.) of the images, in
    turn, each resized to size x size; uint8 (n, size, size, 3)."""
    rng = np.random.default_rng(seed)
    out = np.empty((n, size, size, 3), np.uint8)
    for k in range(n):
        image = images[k % len(images)]
        width, height = image.size
        area = width * height * rng.uniform(*CROP_AREA)
        aspect = np.exp(rng.uniform(np.log(CROP_ASPECT[0]), np.log(CROP_ASPECT[1])))
        w = int(min(width, round(np.sqrt(area * aspect))))
        h = int(min(height, round(np.sqrt(area / aspect))))
        left = int(rng.integers(0, width - w + 1))
        top = int(rng.integers(0, height - h + 1))
        crop = image.crop((left, top, left + w, top + h)).resize((size, size), Image.Resampling.BILINEAR)
        if rng.uniform() < FLIP_PROBABILITY:
            crop = crop.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        out[k] = np.asarray(crop, np.uint8)
    return out


class PhotoSource(StudySource):
    """The real zoo's photos: evaluation candidates and augmented-crop calibration."""

    name, split = "photos", "evaluation"

    def __init__(self, manifest: Path = MANIFEST):
        self.manifest = Path(manifest)
        self.photos = read_manifest(self.manifest)
        self.evaluation_photos = tuple(p for p in self.photos if p.role == "evaluation")
        self.calibration_photos = tuple(p for p in self.photos if p.role == "calibration")
        if not self.evaluation_photos:
            raise DataError(f"{self.manifest}: no evaluation photos")
        if not self.calibration_photos:
            raise DataError(f"{self.manifest}: no calibration photos (int8 calibration never uses evaluation photos)")
        self._by_id = {p.id: p for p in self.evaluation_photos}
        for photo in self.photos:
            photo_file(photo)  # a missing package or file is said now, not in the first case

    def candidate_ids(self) -> np.ndarray:
        return np.array([p.id for p in self.evaluation_photos], np.int64)

    def candidate_labels(self) -> np.ndarray:
        return np.array([p.label for p in self.evaluation_photos], np.int64)

    def class_names(self) -> tuple[str, ...]:
        return tuple(name for _, name in class_index())

    def fingerprint(self) -> dict:
        return {"dataset": "photos/evaluation",
                "manifest_sha256": hashlib.sha256(self.manifest.read_bytes()).hexdigest(),
                "candidates": [int(i) for i in self.candidate_ids()],
                "photos_sha256": {p.name: p.sha256 for p in self.photos},
                "labels_sha256": hashlib.sha256(self.candidate_labels().tobytes()).hexdigest()}

    def _geometry(self, spec: ModelSpec) -> Geometry:
        from harness.zoo import registry

        geometry = registry.zoo_module(spec.zoo).input_geometry(spec.name)
        if geometry.crop != spec.input_size:
            raise DataError(f"{spec.id} takes {spec.input_size}x{spec.input_size} images; its geometry crops "
                            f"{geometry.crop}")
        return geometry

    def geometry_key(self, spec: ModelSpec):
        return self._geometry(spec)

    def load(self, ids, spec: ModelSpec) -> ImageDataset:
        ids = np.asarray(ids, np.int64)
        unknown = [int(i) for i in ids if int(i) not in self._by_id]
        if unknown:
            raise DataError(f"{self.manifest}: no evaluation photos with ids {unknown}; valid: {sorted(self._by_id)}")
        geometry = self._geometry(spec)
        chosen = [self._by_id[int(i)] for i in ids]
        images = np.stack([geometry(read_photo(p)) for p in chosen]) if chosen else \
            np.zeros((0, spec.input_size, spec.input_size, 3), np.uint8)
        labels = np.array([p.label for p in chosen], np.int64)
        return ImageDataset(self.name, self.split, ids, images, labels, self.class_names())

    def calibration(self, spec: ModelSpec, n: int, seed: int, evaluation: samples.SampleSelection) -> ImageDataset:
        """n augmented crops of the calibration photos; labels -1. The manifest gives every photo one
        role, so no evaluation photo (drawn or not) is among them."""
        self._geometry(spec)
        if n <= 0:
            raise DataError(f"calibration image count must be positive, got {n}")
        images = augmented_crops([read_photo(p) for p in self.calibration_photos], n, spec.input_size,
                                 seed + 1_000_003)  # a stream distinct from the evaluation draw's
        return ImageDataset(self.name, "calibration", np.arange(n, dtype=np.int64), images,
                            np.full(n, -1, np.int64), self.class_names())
