"""Adversarial PNG sets: lossless uint8 images named by sample id, plus a sidecar.

Layout of a set directory::

    sidecar.json      set-level facts and one record per sample
    png/<id>.png      the adversarial image, RGB, uint8, lossless

Per sample the sidecar holds: id, label, success on the float PC model before
rounding, success after the PNG round trip, L-inf and L2 distance (on the [0, 1]
scale, after rounding), and the SHA-256 of the decoded pixels, so reading a set back
proves every PNG decodes to exactly the array that was measured.
"""

from __future__ import annotations

import hashlib
import io
import json
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

SIDECAR = "sidecar.json"
PNG_DIR = "png"


class PngSetError(ValueError):
    """A set whose files and sidecar disagree (the message names the file)."""


def pixel_digest(image: np.ndarray) -> str:
    image = np.ascontiguousarray(image, dtype=np.uint8)
    return hashlib.sha256(repr(image.shape).encode() + image.tobytes()).hexdigest()


def encode_png(image: np.ndarray) -> bytes:
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[-1] != 3:
        raise PngSetError(f"PNG images must be uint8 (H, W, 3), got {image.dtype} {image.shape}")
    buffer = io.BytesIO()
    Image.fromarray(image, mode="RGB").save(buffer, format="PNG", optimize=False, compress_level=1)  # lossless at any level; 1 is fastest
    return buffer.getvalue()


def decode_png(source: Path | bytes, where: str | None = None) -> np.ndarray:
    """A PNG file (or its bytes; ``where`` names them in errors) -> uint8 (H, W, 3) RGB."""
    where = where or str(source)
    try:
        with Image.open(io.BytesIO(source) if isinstance(source, bytes) else source) as img:
            if img.format != "PNG":
                raise PngSetError(f"{where}: {img.format} file, expected PNG")
            return np.asarray(img.convert("RGB"), dtype=np.uint8)
    except PngSetError:
        raise
    except Exception as exc:  # PIL reports damage as OSError, SyntaxError, ValueError, DecompressionBombError...
        raise PngSetError(f"{where}: unreadable PNG ({type(exc).__name__}: {exc})") from exc


def to_uint8(images01: np.ndarray) -> np.ndarray:
    """Clip to [0, 1] and round to the nearest grey level, as saving a PNG must."""
    return np.clip(np.rint(np.asarray(images01, dtype=np.float64) * 255.0), 0, 255).astype(np.uint8)


def distances(adversarial: np.ndarray, original: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-sample L-inf and L2 on the [0, 1] scale."""
    diff = (adversarial.astype(np.float64) - original.astype(np.float64)).reshape(len(original), -1) / 255.0
    return np.abs(diff).max(axis=1), np.sqrt((diff ** 2).sum(axis=1))


def write_set(directory: Path, ids, images: np.ndarray, records: list[dict], info: dict, workers: int = 2) -> dict:
    """Write the PNGs and the sidecar into ``directory`` (an artefact's build directory).

    Each PNG is decoded again from the bytes about to be written and must give back
    exactly the measured array (read_set repeats the check from disk on every later
    read). Encoding runs on ``workers`` threads: PIL releases the GIL while it deflates,
    and a set is hundreds of small files.
    """
    directory = Path(directory)
    (directory / PNG_DIR).mkdir(parents=True, exist_ok=True)
    if not (len(ids) == len(images) == len(records)):
        raise PngSetError(f"{len(ids)} ids, {len(images)} images and {len(records)} records do not line up")

    def write_one(row: int) -> str:
        path = directory / PNG_DIR / f"{int(ids[row])}.png"
        data = encode_png(images[row])
        if not np.array_equal(decode_png(data, str(path)), images[row]):
            raise PngSetError(f"{path}: the encoded PNG does not decode to the measured pixels")
        path.write_bytes(data)
        return pixel_digest(images[row])

    with ThreadPoolExecutor(max(1, workers)) as pool:
        digests = list(pool.map(write_one, range(len(ids))))
    for record, digest in zip(records, digests):
        record["pixels_sha256"] = digest  # read_set checks every decoded PNG against it
    sidecar = dict(info, image_shape=list(images.shape[1:]), n_samples=len(ids), samples=records)
    (directory / SIDECAR).write_text(json.dumps(sidecar, indent=1, sort_keys=True) + "\n")
    return sidecar


@dataclass(frozen=True)
class AdversarialSet:
    """A verified PNG set: images in sidecar order, and the sidecar's facts."""

    path: Path
    sidecar: dict
    ids: np.ndarray
    labels: np.ndarray
    images: np.ndarray

    @property
    def records(self) -> list[dict]:
        return self.sidecar["samples"]

    def column(self, field: str) -> np.ndarray:
        return np.array([r[field] for r in self.records])

    @property
    def success_before_rounding(self) -> float:
        return float(self.column("success_before_rounding").mean())

    @property
    def success_after_rounding(self) -> float:
        return float(self.column("success_after_rounding").mean())

    @property
    def generation_seconds(self) -> float:
        return float(self.sidecar["generation_seconds"])


def load_sidecar(path: Path) -> dict:
    """The sidecar's JSON object; PngSetError naming the file when it is missing or not JSON."""
    try:
        sidecar = json.loads(path.read_bytes().decode("utf-8"))
    except FileNotFoundError:
        raise PngSetError(f"{path}: sidecar missing") from None
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise PngSetError(f"{path}: not valid JSON ({type(exc).__name__}: {str(exc)[:200]})") from None
    if not isinstance(sidecar, dict):
        raise PngSetError(f"{path}: expected a JSON object, got {type(sidecar).__name__}")
    return sidecar


def _is_int(value) -> bool:
    """An integer that fits the int64 arrays ids and labels are kept in (JSON's are unbounded)."""
    return isinstance(value, int) and not isinstance(value, bool) and -2**63 <= value < 2**63


def check_sidecar(path: Path, sidecar: dict) -> tuple[tuple[int, int, int], list[dict]]:
    """(image shape, sample records) of a sidecar, each field checked; PngSetError naming the
    file, the field and what was expected otherwise."""
    shape = sidecar.get("image_shape")
    if not (isinstance(shape, list) and len(shape) == 3 and all(_is_int(d) and 0 < d <= 65535 for d in shape)
            and shape[2] == 3):
        raise PngSetError(f"{path}: image_shape must be [height, width, 3] with sizes 1-65535, got {shape!r}"[:400])
    records = sidecar.get("samples")
    if not isinstance(records, list):
        raise PngSetError(f"{path}: samples must be a list of records, got {type(records).__name__}")
    for row, record in enumerate(records):
        if not (isinstance(record, dict) and _is_int(record.get("id")) and record["id"] >= 0
                and _is_int(record.get("label")) and isinstance(record.get("pixels_sha256"), str)):
            raise PngSetError(f"{path}: samples[{row}] must have a non-negative integer id, an integer label and "
                              f"a pixels_sha256 string, got {record!r}"[:400])
    return tuple(shape), records


def read_set(directory: Path, expected_shape: tuple[int, int, int] | None = None, workers: int = 2) -> AdversarialSet:
    """Read a set and verify every PNG against the sidecar (presence, size, pixels)."""
    directory = Path(directory)
    sidecar_path = directory / SIDECAR
    sidecar = load_sidecar(sidecar_path)
    shape, records = check_sidecar(sidecar_path, sidecar)
    if expected_shape is not None and shape != tuple(expected_shape):
        raise PngSetError(f"{sidecar_path}: images are {shape}, the model expects {tuple(expected_shape)}")
    listed = {f"{r['id']}.png" for r in records}
    present = {p.name for p in (directory / PNG_DIR).glob("*.png")}
    if listed != present:
        raise PngSetError(f"{directory / PNG_DIR}: PNGs {sorted(present - listed)[:5]} not in the sidecar, "
                          f"{sorted(listed - present)[:5]} missing")
    images: list = [None] * len(records)  # filled as decoded: the sidecar's shape is not trusted to size memory

    def read_one(row: int) -> None:
        record = records[row]
        path = directory / PNG_DIR / f"{record['id']}.png"
        image = decode_png(path)
        if image.shape != shape:
            raise PngSetError(f"{path}: image is {image.shape}, the sidecar says {shape}")
        if pixel_digest(image) != record["pixels_sha256"]:
            raise PngSetError(f"{path}: pixels differ from the ones the sidecar measured")
        images[row] = image

    with ThreadPoolExecutor(max(1, workers)) as pool:  # PIL releases the GIL while it inflates
        list(pool.map(read_one, range(len(records))))
    pixels = np.stack(images) if images else np.zeros((0, *shape), np.uint8)
    return AdversarialSet(directory, sidecar, np.array([r["id"] for r in records], np.int64),
                          np.array([r["label"] for r in records], np.int64), pixels)
