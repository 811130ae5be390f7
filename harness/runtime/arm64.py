"""Platform ``arm64``: the phone's code (the aarch64 runtime bundle and the runner) on this host.

The converted model runs in the aarch64 builds of LiteRT, torch and ExecuTorch, inside
the bundle of :mod:`android_harness.bundle`, under user-mode qemu (:mod:`android_harness.qemu`):
the ARM kernels a phone executes (XNNPACK, QNNPACK), without a phone. Options:
``bundle`` (``full``, the default, or ``litert``: no torch or ExecuTorch inside), ``cache``
(the artefact cache holding the bundle and the results), ``resolver`` (LiteRT).

ExecuTorch (``.pte``) on aarch64, as measured (Python 3.11 bundle, torch 2.9.1 CPU):

* the host writes ``.pte`` with ExecuTorch 1.5.1; its aarch64 wheel's runtime binding
  (``_C``) links libtorch and needs ``c10::TensorImpl::decref_pyobject``, which torch
  2.9.1 lacks ("undefined symbol" at import; so do 1.1.0 and 1.2.0), and the torch it is
  built for has only a CUDA aarch64 wheel;
* ExecuTorch 1.0.1's aarch64 wheel is built for torch 2.9 and loads; its runtime runs the
  host's 1.5.1 float and int8 XNNPACK programs (float within float rounding of the
  host's logits; int8 equal but for a few logits one output quantization step apart,
  5 of 120 on the mini mobilenet_v2: XNNPACK's ARM and x86 requantization round apart): that is what the bundle carries. ExecuTorch does not promise that an
  older runtime reads newer programs, so a program using something 1.0.1 lacks fails its
  job with the runtime's message, and the runner reports both versions;
* executorch-numpy-runtime 1.4.0 (no torch) needs Python 3.12 (cp312-abi3) and reads only
  ExecuTorch 1.3.1's programs.
"""

from __future__ import annotations

import os
import threading

from harness.cache import ArtifactCache
from harness.runtime.base import PlatformUnavailable, Runtime, RuntimeRequest, UnsupportedConfiguration
from harness.runtime.remote import RunnerBackend, RunnerRuntime, runner_family

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
                f"{request.spec.id}: the arm64 platform runs a converted model file (.tflite, .ptl or .pte); "
                "pass the artefact from harness.convert.convert(...)")
        chosen = backend(request.options.get("cache"), request.options.get("bundle"), request.options.get("log"))
        fmt = request.model_file().suffix.lstrip(".")
        family = runner_family(fmt)
        if family is not None and family not in chosen.transport.bundle.families:
            raise PlatformUnavailable(f"{request.model_file()}: the {chosen.transport.bundle.variant} bundle has no "
                                      f"{family} runtime; use the full bundle")
        return RunnerRuntime(request, chosen)
