"""The conversion stage's interface: a PC model in, a cached mobile model file out.

``convert(model, quantization, calibration, cache, format=None)`` picks the converter
for the model's framework and the asked format (None: the framework's native one;
:mod:`harness.convert.tflite`, :mod:`harness.convert.torch_mobile`,
:mod:`harness.convert.torch_litert`, :mod:`harness.convert.executorch`), derives the
artefact's key from everything that changes the file's bytes, and asks the cache for
it: a hit returns the verified file without converting; a miss converts into the
cache atomically. int8 is post-training static quantization calibrated on the given
images, fed through the model's own :class:`Normalization`.
"""

from __future__ import annotations

import functools
import hashlib
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from harness.axes import runtimes
from harness.cache import Artifact, ArtifactCache, source_digest
from harness.data.dataset import ImageDataset
from harness.zoo.base import ModelSpec, ZooModel

QUANTIZATIONS = ("float", "int8")
# The code that decides a converted file's bytes: this package (the converters), the model
# definitions and adapters they convert, and the normalisation applied to calibration images.
# Not the training script: weights are keyed by their digest.
CONVERTER_SOURCES = ("harness/convert", "harness/zoo", "harness/data/preprocessing.py")
CONVERTER_SOURCES_EXCLUDE = ("train.py",)


@functools.cache
def converter_source_digest() -> str:
    """The digest of :data:`CONVERTER_SOURCES`, part of every conversion's key: editing a
    converter or a model definition gives new keys, with no version number to remember to bump."""
    return source_digest(*CONVERTER_SOURCES, exclude=CONVERTER_SOURCES_EXCLUDE)


class ConversionError(ValueError):
    """Bad conversion request (unknown quantization, missing calibration) or a failed conversion."""


class Converter(Protocol):
    framework: str
    format: str  # the mobile file's suffix: "tflite", "ptl", "pte"

    def versions(self) -> dict: ...

    def options(self, spec: ModelSpec, quantization: str, n_calibration: int) -> dict: ...

    def build(self, model: ZooModel, quantization: str, calibration: np.ndarray | None,
              options: dict, out_dir: Path, filename: str) -> dict: ...


@dataclass(frozen=True)
class MobileArtifact:
    """A converted model file in the cache, with what produced it."""

    spec: ModelSpec
    quantization: str
    format: str
    artifact: Artifact

    @property
    def path(self) -> Path:
        return self.artifact.file(self.artifact.metadata["model_file"])

    @property
    def size_bytes(self) -> int:
        return self.artifact.size(self.artifact.metadata["model_file"])

    @property
    def options(self) -> dict:
        return self.artifact.metadata["options"]

    @property
    def built(self) -> bool:
        return self.artifact.built

    @property
    def key(self) -> str:
        return self.artifact.key

    @property
    def kind(self) -> str:
        return self.artifact.kind

    def file(self, name: str) -> Path:
        return self.artifact.file(name)

    def describe(self) -> dict:
        return {
            "model": self.spec.id, "quantization": self.quantization, "format": self.format,
            "file": str(self.path), "size_bytes": self.size_bytes, "key": self.key,
            "options": self.options, "versions": self.artifact.metadata.get("versions", {}),
        }


# Converters by (framework, format), each registered by its own module (the package's __init__
# imports the built-in ones; this module imports none of them). One framework may have several (PyTorch -> .ptl and
# PyTorch -> .tflite), so a second one for a framework sits beside the first, never over it.
_CONVERTERS: dict[tuple[str, str], Converter] = {}
# The format a framework's models convert to when none is named: its native runtime's (a view).
NATIVE_FORMATS = runtimes.view(lambda: {f: k.format for k in runtimes.RUNTIMES for f in k.native_for})  # alias: remove


def register_converter(converter: Converter) -> None:
    _CONVERTERS[(converter.framework, converter.format)] = converter


def native_format(framework: str) -> str:
    try:
        return runtimes.native(framework).format
    except runtimes.UnknownName:
        raise ConversionError(f"no native mobile format for framework {framework!r}; have {sorted(NATIVE_FORMATS)}") from None


def converter_for(framework: str, format: str | None = None) -> Converter:
    """The converter from ``framework`` to ``format`` (None: the framework's native format)."""
    fmt = format if format is not None else native_format(framework)
    try:
        return _CONVERTERS[(framework, fmt)]
    except KeyError:
        have = ", ".join(f"{f} -> .{x}" for f, x in sorted(_CONVERTERS))
        raise ConversionError(f"no converter from {framework!r} to {fmt!r}; have {have}") from None


def calibration_options(spec: ModelSpec, n_calibration: int, batch: int) -> dict:
    """The options every int8 conversion records about its calibration: how many images, in
    batches of how many, normalised how."""
    return {"calibration_images": n_calibration, "calibration_batch": batch, "preprocessing": spec.normalization.name}


def calibration_inputs(spec: ModelSpec, calibration: ImageDataset | None, size: int | None) -> tuple[ImageDataset, np.ndarray]:
    """The calibration images, checked and cut to ``size``, and their normalised tensors."""
    if calibration is None or len(calibration) == 0:
        raise ConversionError(
            f"{spec.id}: int8 quantization needs calibration images, got "
            f"{'none' if calibration is None else 'an empty set'} "
            "(pass an ImageDataset, e.g. harness.data.samples.calibration_set(...))"
        )
    if size is not None:
        if size <= 0:
            raise ConversionError(f"{spec.id}: calibration size must be positive, got {size}")
        if size > len(calibration):
            raise ConversionError(f"{spec.id}: asked for {size} calibration images, the set has {len(calibration)}")
        calibration = calibration.select(calibration.ids[:size])
    expected = (spec.input_size, spec.input_size, 3)
    if calibration.images.shape[1:] != expected:
        raise ConversionError(
            f"{spec.id}: calibration images are {calibration.images.shape[1:]}, the model takes {expected}"
        )
    return calibration, spec.normalization(calibration.images)


def _images_digest(images: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(images).tobytes()).hexdigest()


def key_parts(model: ZooModel, quantization: str, converter: Converter, options: dict,
              calibration: ImageDataset | None) -> dict:
    spec = model.spec
    parts = {
        "stage": "convert",
        "code": converter_source_digest(),
        "model": spec.id,
        "input_size": spec.input_size,
        "num_classes": spec.num_classes,
        "normalization": asdict(spec.normalization),
        "weights": model.weights_digest,
        "format": converter.format,
        "quantization": quantization,
        "options": options,
        "versions": converter.versions(),
    }
    if calibration is not None:
        parts["calibration"] = {
            "dataset": calibration.name,
            "split": calibration.split,
            "ids": [int(i) for i in calibration.ids],
            "images_sha256": _images_digest(calibration.images),
        }
    return parts


def convert(model: ZooModel, quantization: str, calibration: ImageDataset | None = None,
            cache: ArtifactCache | None = None, calibration_size: int | None = None,
            format: str | None = None) -> MobileArtifact:
    """The mobile model for ``model`` at ``quantization``, from the cache or freshly converted.

    ``calibration`` (int8 only; ignored for float) are uint8 images at the model's input
    size; ``calibration_size`` keeps the first N of them (the paper uses 1,000).
    ``format``: the mobile file's format (``tflite``, ``ptl``, ``pte``); None is the framework's
    native one (TensorFlow -> ``.tflite``, PyTorch -> ``.ptl``).
    """
    if quantization not in QUANTIZATIONS:
        raise ConversionError(f"unknown quantization {quantization!r}; expected one of {QUANTIZATIONS}")
    if not model.weights_digest:
        raise ConversionError(
            f"{model.spec.id}: model has no weights digest; wrap in-memory modules with "
            "harness.convert.weights.zoo_model_from_module"
        )
    cache = cache if cache is not None else ArtifactCache()
    converter = converter_for(model.spec.framework, format)
    inputs = None
    if quantization == "int8":
        calibration, inputs = calibration_inputs(model.spec, calibration, calibration_size)
    else:
        calibration = None
    options = converter.options(model.spec, quantization, 0 if inputs is None else len(inputs))
    parts = key_parts(model, quantization, converter, options, calibration)
    kind = f"{converter.format}-{quantization}"
    filename = f"{model.spec.name}-{quantization}.{converter.format}"

    def build(out_dir: Path) -> dict:
        metadata = converter.build(model, quantization, inputs, options, out_dir, filename)
        return {
            "model": model.spec.id,
            "model_file": filename,
            "quantization": quantization,
            "format": converter.format,
            "options": options,
            "versions": converter.versions(),
            "calibration": None if calibration is None else {
                "dataset": calibration.name, "split": calibration.split, "n": len(calibration),
            },
            **metadata,
        }

    artifact = cache.get_or_build(kind, parts, build, label=f"{kind} for {model.spec.id}")
    # A converter whose file takes another input layout than the PC model says so (artifact_spec);
    # the runtimes read the layout off the artefact's spec.
    spec = converter.artifact_spec(model.spec) if hasattr(converter, "artifact_spec") else model.spec
    return MobileArtifact(spec, quantization, converter.format, artifact)
