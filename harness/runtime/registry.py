"""Platforms: adapters from a :class:`RuntimeRequest` to a :class:`Runtime`.

``pc`` runs the framework itself; ``mobile`` runs the mobile runtime on this host and
picks the runtime by the artefact's format (``tflite`` -> LiteRT, ``ptl`` -> PyTorch lite
interpreter, ``pte`` -> ExecuTorch with its XNNPACK delegate,
:mod:`harness.runtime.executorch_runtime`); ``arm64`` runs the same files in the runtimes'
aarch64 builds under user-mode emulation (:mod:`harness.runtime.arm64`), ``device`` on a
phone over ADB. Later platforms and formats register here; callers only name them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

from harness.axes import runtimes
from harness.runtime.base import ModelFileError, Runtime, RuntimeRequest, UnsupportedConfiguration


class Platform(Protocol):
    name: str

    def open(self, request: RuntimeRequest) -> Runtime: ...


class PCPlatform:
    name = "pc"

    def open(self, request: RuntimeRequest) -> Runtime:
        if request.spec.framework == "tensorflow":
            from harness.runtime.keras_runtime import KerasPCRuntime

            return KerasPCRuntime(request)
        if request.spec.framework == "pytorch":
            from harness.runtime.torch_runtime import TorchPCRuntime

            return TorchPCRuntime(request)
        raise UnsupportedConfiguration(f"pc platform: unknown framework {request.spec.framework!r}")


def artifact_format(artifact) -> str:
    if isinstance(artifact, (str, Path)):
        return Path(artifact).suffix.lstrip(".")
    return artifact.format


class MobilePlatform:
    name = "mobile"

    def open(self, request: RuntimeRequest) -> Runtime:
        if request.artifact is None:
            raise UnsupportedConfiguration(
                f"{request.spec.id}: the mobile platform runs a converted model file; pass the artefact "
                "from harness.convert.convert(...) or a .tflite/.ptl/.pte path"
            )
        fmt = artifact_format(request.artifact)
        if fmt not in runtimes.formats():
            raise ModelFileError(f"{request.model_file()}: no mobile runtime for format {fmt!r}; "
                                 f"have {sorted(runtimes.formats())}")
        return runtimes.by_format(fmt).open(request)


PLATFORMS: dict[str, Platform] = {}


def check_available(name: str) -> None:
    """Raise PlatformUnavailable, saying what to install, when this machine cannot run ``name``
    (cheap: asked before any model is converted for it)."""
    check = getattr(PLATFORMS[name], "check_available", None)
    if check is not None:
        check()


def register_platform(platform: Platform) -> None:
    PLATFORMS[platform.name] = platform


def _arm64() -> Platform:
    from harness.runtime.arm64 import Arm64Platform

    return Arm64Platform()


def _device() -> Platform:
    from harness.runtime.device import DevicePlatform

    return DevicePlatform()


register_platform(PCPlatform())
register_platform(MobilePlatform())
register_platform(_arm64())
register_platform(_device())
