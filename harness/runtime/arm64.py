"""Platform ``arm64``: the phone's code (the aarch64 runtime bundle and the runner) on this host.

The converted model runs in the aarch64 builds of LiteRT and torch, inside the bundle
of :mod:`android_harness.bundle`, under user-mode qemu (:mod:`android_harness.qemu`):
the ARM kernels a phone executes (XNNPACK, QNNPACK), without a phone. Options:
``bundle`` (``full``, the default, or ``litert``: no torch inside), ``cache`` (the
artefact cache holding the bundle and the results), ``resolver`` (LiteRT).
"""

from __future__ import annotations

import os
import threading

from harness.cache import ArtifactCache
from harness.runtime.base import PlatformUnavailable, Runtime, RuntimeRequest, UnsupportedConfiguration
from harness.runtime.remote import FAMILIES, RunnerBackend, RunnerRuntime

BUNDLE_ENV = "HARNESS_BUNDLE_VARIANT"
_BACKENDS: dict[tuple, RunnerBackend] = {}
_LOCK = threading.Lock()


def backend(cache: ArtifactCache | None = None, variant: str | None = None, log=None) -> RunnerBackend:
    """This process's arm64 backend for ``cache`` and bundle ``variant`` (built once, then reused)."""
    from android_harness import bundle as bundles
    from android_harness.qemu import QemuTransport, QemuUnavailable, find_qemu

    cache = cache if cache is not None else ArtifactCache()
    variant = variant or os.environ.get(BUNDLE_ENV) or "full"
    if variant not in bundles.VARIANTS:
        raise UnsupportedConfiguration(f"bundle variant {variant!r}: expected one of {sorted(bundles.VARIANTS)}")
    key = (str(cache.root), variant)
    with _LOCK:
        if key not in _BACKENDS:
            try:
                qemu = find_qemu()  # before the bundle: no point building one that cannot run
            except QemuUnavailable as exc:
                raise PlatformUnavailable(str(exc)) from None
            log = log or cache.log
            built = bundles.get_bundle(variant, cache, log)
            _BACKENDS[key] = RunnerBackend("arm64", QemuTransport(built, qemu, log=log), cache, log)
        return _BACKENDS[key]


def check_available() -> None:
    """PlatformUnavailable (saying how to install qemu) when this host cannot run the platform."""
    from android_harness.qemu import QemuUnavailable, find_qemu

    try:
        find_qemu()
    except QemuUnavailable as exc:
        raise PlatformUnavailable(str(exc)) from None


class Arm64Platform:
    name = "arm64"

    def check_available(self) -> None:
        check_available()

    def open(self, request: RuntimeRequest) -> Runtime:
        if request.artifact is None:
            raise UnsupportedConfiguration(
                f"{request.spec.id}: the arm64 platform runs a converted model file (.tflite or .ptl); "
                "pass the artefact from harness.convert.convert(...)")
        chosen = backend(request.options.get("cache"), request.options.get("bundle"), request.options.get("log"))
        fmt = request.model_file().suffix.lstrip(".")
        family = FAMILIES.get(fmt)
        if family is not None and family not in chosen.transport.bundle.families:
            raise PlatformUnavailable(f"{request.model_file()}: the {chosen.transport.bundle.variant} bundle has no "
                                      f"{family} runtime; use the full bundle")
        return RunnerRuntime(request, chosen)
