"""The runtime stage's interface: one way to run any model on any platform.

A :class:`Runtime` takes uint8 RGB images (N, H, W, 3) and returns float32 logits
(N, classes). It applies the model spec's :class:`Normalization` itself, one piece of
code for every platform of a framework, so the PC model and its mobile conversion see
identical tensors. Subclasses only implement ``_infer(normalised batch) -> logits``.

A *platform* (``pc``, ``mobile``; later ``arm64``, ``device``) is an adapter that turns a
:class:`RuntimeRequest` into a Runtime; see :mod:`harness.runtime.registry`. Callers
name the platform and never the concrete class.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from android_harness.runner import Batches, JobError
from harness.zoo.base import ModelSpec, ZooModel


class RuntimeFailure(ValueError):
    """Base of the runtime stage's errors."""


class ModelFileError(RuntimeFailure):
    """A model file that is missing, truncated, corrupt or does not fit its spec."""


class ModelInvokeError(ModelFileError):
    """A model file that loads but fails when it runs (an operator that errors on these inputs)."""


class NonFiniteLogits(RuntimeFailure):
    """Logits with NaN or infinite values: a broken model file or runtime, never a prediction."""


def check_finite(logits: np.ndarray, where: str) -> np.ndarray:
    """``logits`` if every value is finite; else a :class:`NonFiniteLogits` naming ``where``
    (the runtime and its model file) and how many values are NaN or infinite. argmax of a
    NaN row is 0, so without this a broken model would read as a confident class-0 classifier."""
    logits = np.asarray(logits)
    finite = np.isfinite(logits)
    if not finite.all():
        nan = int(np.isnan(logits).sum())
        raise NonFiniteLogits(
            f"{where}: {int(finite.size - finite.sum())} of {finite.size} logits are not finite "
            f"({nan} NaN, {int(finite.size - finite.sum()) - nan} infinite) in "
            f"{int((~finite).any(axis=-1).sum()) if logits.ndim > 1 else 1} of {len(logits)} images"
        )
    return logits


class InputMismatchError(RuntimeFailure):
    """Images whose dtype or shape the model does not take."""


class BatchPlan(Batches):
    """How a runtime feeds its model batches, and what it cost: the runner's own
    :class:`android_harness.runner.Batches` (one piece of code on the host, under qemu and on the
    phone), with a :class:`ModelFileError` for a model that returns the wrong number of rows.

    ``dynamic``: any batch in one call (up to ``max``, where the file plans memory for one;
    more runs in calls of ``max``). ``fixed``: the file takes exactly ``size`` images per
    call (a third-party ``.tflite`` with input ``shape_signature`` [1, ...], a ``.pte``
    exported at a static batch, a ``.ptl`` traced with a baked-in batch): images run in
    chunks of ``size``, a short last chunk padded by repeating its last image and the padded
    rows' outputs dropped. Rows are independent in every model these runtimes run, so the
    logits are those of the images called one chunk at a time, bit for bit.
    :meth:`describe` is what ``Runtime.describe()["batch"]`` records."""

    def __init__(self, mode: str, size: int | None = None, max: int | None = None):
        if mode not in ("fixed", "dynamic"):
            raise ValueError(f"batch mode {mode!r}: expected 'fixed' or 'dynamic'")
        super().__init__(mode, size, max)

    def run(self, call, batch: np.ndarray, where: str) -> np.ndarray:
        """``call(rows) -> outputs`` over ``batch`` in this plan's chunks; one row of output per
        image, padded rows dropped. An output whose row count is not its call's is a
        :class:`ModelFileError` naming ``where``."""
        try:
            return super().run(call, batch, where)
        except JobError as exc:
            raise ModelFileError(str(exc)) from None


class UnsupportedConfiguration(RuntimeFailure):
    """A platform/quantization/format combination this platform cannot run."""


class PlatformUnavailable(RuntimeFailure):
    """The platform needs something this machine lacks (qemu, a phone); the message says how to get it."""


@dataclass
class RuntimeRequest:
    """Everything a platform may need to open a runtime; each platform uses what it needs.

    ``model`` is the PC float model (the pc platform runs it; others take its spec);
    ``artifact`` is the converted file (a :class:`MobileArtifact`, or a plain path for a
    bring-your-own model); ``options`` holds platform-specific settings (e.g. the LiteRT
    op resolver, a device serial).
    """

    platform: str
    spec: ModelSpec
    quantization: str
    threads: int = 1
    model: ZooModel | None = None
    artifact: Any = None
    options: dict = field(default_factory=dict)

    def model_file(self) -> Path | None:
        if self.artifact is None:
            return None
        return Path(getattr(self.artifact, "path", self.artifact))


class Runtime(ABC):
    """A loaded model on one platform. ``predict_logits`` is the whole contract."""

    framework: str
    platform: str
    quantization: str
    threads: int | None
    resolver: str | None = None  # LiteRT op resolver; None where the notion does not apply
    engine: str | None = None  # e.g. PyTorch's quantized engine
    default_batch_size: int = 250
    version_packages: tuple[str, ...] = ()  # distributions whose versions a direct attack's facts record
    batch_plan: BatchPlan | None = None  # set by runtimes that run a model file's batches themselves

    def __init__(self, request: RuntimeRequest, model_path: Path | None = None):
        self.spec = request.spec
        self.framework = request.spec.framework
        self.platform = request.platform
        self.quantization = request.quantization
        self.threads = request.threads
        self.model_path = model_path
        self.load_seconds: float | None = None

    # -- what subclasses provide -------------------------------------------------------
    @abstractmethod
    def _infer(self, batch: np.ndarray) -> np.ndarray:
        """Normalised float32 batch in the spec's layout -> logits (n, classes)."""

    def close(self) -> None:
        """Release the loaded model (interpreters hold native memory)."""

    # -- the contract ------------------------------------------------------------------
    @property
    def name(self) -> str:
        return f"{self.spec.id}/{self.quantization}/{self.platform}"

    @property
    def source(self) -> str:
        return str(self.model_path) if self.model_path is not None else self.spec.id

    @property
    def where(self) -> str:
        """The runtime and its model file, for error messages."""
        return f"{self.name} ({self.source})"

    def check_images(self, images: np.ndarray) -> np.ndarray:
        images = np.asarray(images)
        expected = (self.spec.input_size, self.spec.input_size, 3)
        if images.dtype != np.uint8:
            raise InputMismatchError(f"{self.source}: expected uint8 pixels, got {images.dtype} {images.shape}")
        if images.ndim != 4 or images.shape[1:] != expected:
            raise InputMismatchError(
                f"{self.source}: model input is (N, {expected[0]}, {expected[1]}, 3) uint8 RGB, "
                f"got images of shape {images.shape}"
            )
        return images

    def predict_logits(self, images: np.ndarray, batch_size: int | None = None) -> np.ndarray:
        """uint8 (N, H, W, 3) RGB -> float32 logits (N, classes), ``batch_size`` images per call."""
        images = self.check_images(images)
        batch_size = batch_size or self.default_batch_size
        if batch_size < 1:
            raise ValueError(f"batch_size must be positive, got {batch_size}")
        outputs = []
        for start in range(0, len(images), batch_size):
            chunk = images[start:start + batch_size]
            try:
                logits = np.asarray(self._infer(self.spec.normalization(chunk)), dtype=np.float32)
            except RuntimeFailure:
                raise
            except RuntimeError as exc:  # an op that fails at run time: the interpreter's own words, one line
                text = " ".join(str(exc).split())[:500] or type(exc).__name__
                raise ModelInvokeError(f"{self.source}: {type(self).__name__} failed running the model on a batch "
                                       f"of {len(chunk)} images ({text})") from exc
            if logits.shape != (len(chunk), self.spec.num_classes):
                raise ModelFileError(
                    f"{self.source}: output shape {logits.shape}, expected ({len(chunk)}, {self.spec.num_classes})"
                )
            outputs.append(check_finite(logits, self.where))
        if not outputs:
            return np.zeros((0, self.spec.num_classes), np.float32)
        return np.concatenate(outputs)

    def predict(self, images: np.ndarray, batch_size: int | None = None) -> np.ndarray:
        return self.predict_logits(images, batch_size).argmax(axis=1)

    def describe(self) -> dict:
        return {
            "model": self.spec.id, "framework": self.framework, "platform": self.platform,
            "quantization": self.quantization, "threads": self.threads, "resolver": self.resolver,
            "engine": self.engine, "model_file": None if self.model_path is None else str(self.model_path),
            "load_seconds": self.load_seconds, "runtime": type(self).__name__,
            **({"batch": self.batch_mode()} if self.batch_mode() is not None else {}),
        }

    def batch_mode(self) -> dict | None:
        """How the model file takes its batches and what that cost so far (:meth:`BatchPlan.describe`),
        None where the runtime does not run a file's batches itself (the PC models)."""
        return None if self.batch_plan is None else self.batch_plan.describe()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name} threads={self.threads} resolver={self.resolver}>"

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class Timer:
    def __enter__(self):
        self.start = time.perf_counter()
        return self

    def __exit__(self, *exc) -> None:
        self.seconds = time.perf_counter() - self.start
