"""Clean measurements of one model x quantization x platform, as data.

``measure(runtime, samples, reference)`` runs the runtime over the evaluation samples
once, timed, and compares its logits with the PC float model's (the reference every
conversion is judged against). The result is a :class:`Measurement`; ``to_dict()``
gives the record later stages put in reports (logits and predictions stay out of it).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, fields
from pathlib import Path

import numpy as np

from harness.data.dataset import ImageDataset
from harness.runtime.base import Runtime, check_finite


class MeasurementError(ValueError):
    """A reference that does not line up with the samples, or an empty sample set."""


@dataclass
class Measurement:
    model: str
    zoo: str
    framework: str
    name: str
    quantization: str
    platform: str
    resolver: str | None
    threads: int | None
    engine: str | None
    n_samples: int
    batch_size: int
    accuracy: float
    agreement: float | None  # top-1 agreement with the PC float model
    max_abs_logit_diff: float | None  # largest |logit - PC float logit| over samples and classes
    file_size_bytes: int | None
    model_file: str | None
    load_seconds: float | None
    inference_seconds: float
    seconds_per_image: float
    reference: str | None
    logits: np.ndarray = field(repr=False, compare=False, default=None)
    predictions: np.ndarray = field(repr=False, compare=False, default=None)

    _ARRAYS = ("logits", "predictions")

    def to_dict(self) -> dict:
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name not in self._ARRAYS}

    @property
    def configuration(self) -> str:
        return f"{self.model}/{self.quantization}/{self.platform}"


def file_size(path: Path | None) -> int | None:
    return None if path is None or not Path(path).is_file() else Path(path).stat().st_size


def measure(runtime: Runtime, samples: ImageDataset, reference: np.ndarray | Measurement | None = None,
            batch_size: int | None = None, file_size_bytes: int | None = None) -> Measurement:
    """Accuracy, agreement with the reference logits, size and timings of ``runtime`` on ``samples``.

    ``reference`` is the PC float model's logits on the same samples (or its Measurement).
    Without one, the PC float runtime is its own reference and anything else gets None.
    ``file_size_bytes`` defaults to the size of the runtime's model file.
    """
    if len(samples) == 0:
        raise MeasurementError(f"{runtime.name}: no samples to measure on")
    batch_size = batch_size or runtime.default_batch_size
    start = time.perf_counter()
    logits = runtime.predict_logits(samples.images, batch_size=batch_size)
    seconds = time.perf_counter() - start
    check_finite(logits, runtime.where)  # whatever the runtime, NaN logits are never a measurement
    predictions = logits.argmax(axis=1)
    reference_name = "pc/float"
    if isinstance(reference, Measurement):
        reference_name = f"{reference.platform}/{reference.quantization}"
        reference = reference.logits
    if reference is None and runtime.platform == "pc" and runtime.quantization == "float":
        reference = logits
    if reference is not None:
        reference = np.asarray(reference, dtype=np.float32)
        if reference.shape != logits.shape:
            raise MeasurementError(
                f"{runtime.name}: reference logits {reference.shape} do not line up with {logits.shape} on the samples"
            )
        agreement = float((reference.argmax(axis=1) == predictions).mean())
        max_diff = float(np.abs(logits - reference).max())
    else:
        agreement = max_diff = None
        reference_name = None
    spec = runtime.spec
    return Measurement(
        model=spec.id, zoo=spec.zoo, framework=spec.framework, name=spec.name,
        quantization=runtime.quantization, platform=runtime.platform, resolver=runtime.resolver,
        threads=runtime.threads, engine=runtime.engine, n_samples=len(samples), batch_size=batch_size,
        accuracy=float((predictions == samples.labels).mean()), agreement=agreement, max_abs_logit_diff=max_diff,
        file_size_bytes=file_size_bytes if file_size_bytes is not None else file_size(runtime.model_path),
        model_file=None if runtime.model_path is None else str(runtime.model_path),
        load_seconds=runtime.load_seconds, inference_seconds=seconds, seconds_per_image=seconds / len(samples),
        reference=reference_name, logits=logits, predictions=predictions,
    )


def measure_configuration(model, quantization: str, platform: str, samples: ImageDataset,
                          calibration: ImageDataset | None = None, cache=None,
                          reference: np.ndarray | Measurement | None = None, threads: int = 1,
                          batch_size: int | None = None, calibration_size: int | None = None,
                          **options) -> Measurement:
    """Convert if the configuration needs it, open its runtime, measure it, close it."""
    from harness.convert import convert
    from harness.runtime import open_runtime

    artifact = None
    if platform != "pc" or quantization != "float":
        artifact = convert(model, quantization, calibration, cache, calibration_size=calibration_size)
    runtime = open_runtime(platform, model, artifact, quantization=quantization, threads=threads, **options)
    try:
        return measure(runtime, samples, reference, batch_size=batch_size)
    finally:
        runtime.close()
