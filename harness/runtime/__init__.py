"""The runtime stage: run a model on a platform behind one interface.

    from harness.runtime import open_runtime
    pc = open_runtime("pc", model=zoo_model)
    mobile = open_runtime("mobile", artifact=convert(zoo_model, "int8", calib), threads=1, resolver="builtin")
    logits = mobile.predict_logits(uint8_images)      # (N, classes) float32

Every runtime has ``framework``, ``platform``, ``quantization``, ``threads``, ``resolver``
(LiteRT's op resolver, else None), ``model_path`` and ``load_seconds``.
"""

from __future__ import annotations

from harness.runtime.base import (
    InputMismatchError,
    ModelFileError,
    NonFiniteLogits,
    PlatformUnavailable,
    Runtime,
    RuntimeFailure,
    RuntimeRequest,
    UnsupportedConfiguration,
)
from harness.runtime.registry import PLATFORMS, Platform, register_platform
from harness.zoo.base import ModelSpec, ZooModel

QUANTIZATIONS = ("float", "int8")


def open_runtime(platform: str, model: ZooModel | None = None, artifact=None, *, spec: ModelSpec | None = None,
                 quantization: str | None = None, threads: int = 1, **options) -> Runtime:
    """Open ``model`` (PC float model) or ``artifact`` (converted file) on ``platform``.

    ``spec`` and ``quantization`` default to the artefact's (or the model's, float);
    platform-specific ``options`` (e.g. ``resolver='builtin'`` for LiteRT) pass through.
    """
    if platform not in PLATFORMS:
        raise UnsupportedConfiguration(f"unknown platform {platform!r}; registered: {sorted(PLATFORMS)}")
    spec = spec or getattr(artifact, "spec", None) or getattr(model, "spec", None)
    if spec is None:
        raise UnsupportedConfiguration("open_runtime needs a model, an artefact with a spec, or spec=...")
    for source in (artifact, model):
        other = getattr(source, "spec", None)
        if other is not None and other.id != spec.id:
            raise UnsupportedConfiguration(f"model spec mismatch: {other.id} given for {spec.id}")
    quantization = quantization or getattr(artifact, "quantization", None) or "float"
    if quantization not in QUANTIZATIONS:
        raise UnsupportedConfiguration(f"unknown quantization {quantization!r}; expected one of {QUANTIZATIONS}")
    art_q = getattr(artifact, "quantization", None)
    if art_q is not None and art_q != quantization:
        raise UnsupportedConfiguration(f"{spec.id}: artefact is {art_q}, asked for {quantization}")
    request = RuntimeRequest(platform, spec, quantization, threads, model, artifact, dict(options))
    return PLATFORMS[platform].open(request)


__all__ = [
    "InputMismatchError", "ModelFileError", "NonFiniteLogits", "PLATFORMS", "PlatformUnavailable", "Platform", "QUANTIZATIONS", "Runtime",
    "RuntimeFailure", "RuntimeRequest", "UnsupportedConfiguration", "open_runtime",
    "register_platform",
]
