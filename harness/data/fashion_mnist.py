"""Fashion-MNIST, the embedded default's real data (MIT licence, Zalando SE).

Three sources, same reader (the official gzipped IDX format) and same sample ids:

* ``fixtures``: the subset committed under ``fixtures/fashion_mnist/`` (what a
  fresh clone uses: no apt, no download);
* ``debian``: the full set from Debian's ``dataset-fashion-mnist`` package;
* ``download``: the full set fetched from the dataset's public mirror into a
  local cache, verified by SHA-256 (only on machines with internet).

Images become 3-channel uint8 at the mini zoo's input size (28x28 zero-padded to
32x32: the background is 0, so padding adds no content and loses none).
"""

from __future__ import annotations

import gzip
import json
import os
import shutil
import struct
import urllib.request
from pathlib import Path

import numpy as np

from harness.cache import atomic_write
from harness.cache import file_sha256 as sha256_of
from harness.data.dataset import DataError, ImageDataset

CLASS_NAMES = (
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
)
SPLITS = ("train", "test")
SOURCES = ("fixtures", "debian", "download")
INPUT_SIZE = 32  # the mini zoo's input side

REPO_ROOT = Path(__file__).resolve().parents[2]
FIXTURE_DIR = REPO_ROOT / "fixtures" / "fashion_mnist"
DEBIAN_DIR = Path("/usr/share/datasets/fashion-mnist")
DOWNLOAD_URL = "https://storage.googleapis.com/tensorflow/tf-keras-datasets/"
DEFAULT_CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "ondevice-robustness"

# The official files, as Debian's package and the public mirror both ship them.
OFFICIAL_FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}
OFFICIAL_SHA256 = {
    "train-images-idx3-ubyte.gz": "b0564c3eedabfbf835052cff8503ea422014ce006caf5b757f851416ee8300c7",
    "train-labels-idx1-ubyte.gz": "0ae29f65d86684f32d1b9c85147786c547b9c6aebcaf235f0400a0cce308b056",
    "t10k-images-idx3-ubyte.gz": "cc1d090a38ace84dfa1aa66e3ada7c336ef481a96936906477e6dd344da56eaa",
    "t10k-labels-idx1-ubyte.gz": "8d3605d196f4be44669e46906da9733c8131fef761fdbfec72c424d5222f1a05",
}
_IDX_DTYPES = {0x08: np.uint8}


def read_idx(path: Path) -> np.ndarray:
    """Read a (gzipped) IDX file; any truncation or bad header is a DataError naming the file."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as fh:
            raw = fh.read()
    except (OSError, EOFError) as exc:  # gzip raises these on corrupt or truncated data
        raise DataError(f"{path}: not a readable gzip/IDX file ({exc})") from exc
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_DTYPES:
        raise DataError(f"{path}: bad IDX magic {raw[:4]!r}, expected 00 00 08 <ndim>")
    ndim = raw[3]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DataError(f"{path}: truncated IDX header")
    shape = struct.unpack(f">{ndim}I", raw[4:header])
    expected = header + int(np.prod(shape))
    if len(raw) != expected:
        raise DataError(
            f"{path}: IDX body holds {len(raw) - header} bytes, header {shape} says {expected - header}"
        )
    return np.frombuffer(raw, dtype=_IDX_DTYPES[raw[2]], offset=header).reshape(shape)


def write_idx(path: Path, array: np.ndarray) -> None:
    """Write a uint8 array as a gzipped IDX file (atomically)."""
    array = np.ascontiguousarray(array, dtype=np.uint8)
    header = bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    atomic_write(Path(path), gzip.compress(header + array.tobytes(), mtime=0))


def to_model_images(gray: np.ndarray, size: int = INPUT_SIZE) -> np.ndarray:
    """(N, 28, 28) grayscale -> (N, size, size, 3) uint8 RGB, zero-padded and centred."""
    if gray.ndim != 3 or gray.shape[1:] != (28, 28):
        raise DataError(f"Fashion-MNIST images must be (N, 28, 28), found {gray.shape}")
    if size < 28:
        raise DataError(f"input size {size} is smaller than Fashion-MNIST's 28 pixels")
    before = (size - 28) // 2
    padded = np.pad(gray, ((0, 0), (before, size - 28 - before), (before, size - 28 - before)))
    return np.repeat(padded[..., None], 3, axis=-1)


def _dataset(split: str, ids, gray, labels, source: str) -> ImageDataset:
    if len(gray) != len(labels):
        raise DataError(f"fashion_mnist/{split} ({source}): {len(gray)} images but {len(labels)} labels")
    if labels.size and labels.max() >= len(CLASS_NAMES):
        raise DataError(f"fashion_mnist/{split} ({source}): label {labels.max()} outside 0..9")
    return ImageDataset(
        name="fashion_mnist",
        split=split,
        ids=np.asarray(ids, dtype=np.int64),
        images=to_model_images(gray),
        labels=labels.astype(np.int64),
        class_names=CLASS_NAMES,
    )


def load_full(split: str, directory: Path) -> ImageDataset:
    """The full official split from a directory holding the four official files."""
    _check_split(split)
    images_name, labels_name = OFFICIAL_FILES[split]
    gray = read_idx(Path(directory) / images_name)
    labels = read_idx(Path(directory) / labels_name)
    return _dataset(split, np.arange(len(gray)), gray, labels, str(directory))


def fixture_manifest(directory: Path = FIXTURE_DIR) -> dict:
    path = Path(directory) / "MANIFEST.json"
    if not path.is_file():
        raise DataError(f"{path}: the committed Fashion-MNIST subset's manifest is missing")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise DataError(f"{path}: not valid JSON ({exc})") from exc


def load_fixture(split: str, directory: Path = FIXTURE_DIR) -> ImageDataset:
    """The committed subset of a split, checked against its manifest's digests."""
    _check_split(split)
    manifest = fixture_manifest(directory)
    entry = manifest["splits"][split]
    for key in ("images", "labels"):
        path = Path(directory) / entry[key]["file"]
        if not path.is_file():
            raise DataError(f"{path}: committed fixture file is missing")
        if sha256_of(path) != entry[key]["sha256"]:
            raise DataError(f"{path}: SHA-256 does not match MANIFEST.json (corrupt or edited fixture)")
    gray = read_idx(Path(directory) / entry["images"]["file"])
    labels = read_idx(Path(directory) / entry["labels"]["file"])
    ids = np.asarray(entry["ids"], dtype=np.int64)
    if len(ids) != len(gray):
        raise DataError(f"{directory}: manifest lists {len(ids)} ids for {len(gray)} images in {split}")
    return _dataset(split, ids, gray, labels, "fixtures")


def download(split: str, cache_dir: Path = DEFAULT_CACHE, base_url: str = DOWNLOAD_URL,
             sha256: dict[str, str] | None = None) -> Path:
    """Fetch a split's official files into ``cache_dir/fashion_mnist`` and verify them.

    Already-present files with the right digest are not fetched again. A file whose
    digest is wrong is deleted and reported; nothing partial is left behind.
    ``sha256`` maps file names to expected digests (default: the official ones).
    """
    _check_split(split)
    expected = OFFICIAL_SHA256 if sha256 is None else sha256
    target = Path(cache_dir) / "fashion_mnist"
    target.mkdir(parents=True, exist_ok=True)
    for name in OFFICIAL_FILES[split]:
        path = target / name
        if path.is_file() and sha256_of(path) == expected[name]:
            continue
        url = base_url.rstrip("/") + "/" + name
        try:
            with urllib.request.urlopen(url, timeout=60) as response:
                atomic_write(path, lambda fh: shutil.copyfileobj(response, fh))
        except OSError as exc:
            raise DataError(f"could not download {url}: {exc}") from exc
        got = sha256_of(path)
        if got != expected[name]:
            path.unlink()
            raise DataError(f"{url}: SHA-256 {got} does not match the expected {expected[name]}")
    return target


def load(split: str, source: str = "fixtures", cache_dir: Path = DEFAULT_CACHE) -> ImageDataset:
    """Load a split from a named source (see the module docstring)."""
    _check_split(split)
    if source == "fixtures":
        return load_fixture(split)
    if source == "debian":
        if not all((DEBIAN_DIR / f).is_file() for f in OFFICIAL_FILES[split]):
            raise DataError(
                f"{DEBIAN_DIR}: the full Fashion-MNIST is not installed; "
                "run `apt-get install dataset-fashion-mnist` or use source='download'"
            )
        return load_full(split, DEBIAN_DIR)
    if source == "download":
        return load_full(split, download(split, cache_dir))
    raise DataError(f"unknown Fashion-MNIST source {source!r}; expected one of {SOURCES}")


def load_full_any(split: str, cache_dir: Path = DEFAULT_CACHE) -> ImageDataset:
    """The full split from Debian's package if installed, else from the download cache/mirror."""
    if all((DEBIAN_DIR / f).is_file() for f in OFFICIAL_FILES[split]):
        return load(split, "debian")
    return load(split, "download", cache_dir)


def _check_split(split: str) -> None:
    if split not in SPLITS:
        raise DataError(f"unknown Fashion-MNIST split {split!r}; expected one of {SPLITS}")
