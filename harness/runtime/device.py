"""Platform ``device``: the converted model in the runner on an Android phone, over ADB.

The same bundle and runner as ``arm64`` (:mod:`harness.runtime.arm64`), carried to the
phone by :mod:`android_harness.adb`. Options: ``serial`` (default: ``$ANDROID_SERIAL`` or
the only phone attached), ``bundle`` (``full`` or ``litert``), ``cache``, ``resolver``.
"""

from __future__ import annotations

import os
import threading

from harness.cache import ArtifactCache
from harness.runtime.base import PlatformUnavailable, Runtime, RuntimeRequest, UnsupportedConfiguration
from harness.runtime.remote import RunnerBackend, RunnerRuntime, runner_family

_BACKENDS: dict[tuple, RunnerBackend] = {}
_LOCK = threading.Lock()


def backend(cache: ArtifactCache | None = None, serial: str | None = None, variant: str | None = None,
            log=None) -> RunnerBackend:
    """This process's backend for one phone (the bundle checked on it once, then reused)."""
    from android_harness import adb
    from android_harness import bundle as bundles
    from harness.runtime.arm64 import BUNDLE_ENV

    cache = cache if cache is not None else ArtifactCache()
    variant = variant or os.environ.get(BUNDLE_ENV) or "full"
    try:
        serial = serial or adb.choose_serial()
    except adb.NoDevice as exc:
        raise PlatformUnavailable(str(exc)) from None
    key = (str(cache.root), serial, variant)
    with _LOCK:
        if key not in _BACKENDS:
            log = log or cache.log
            built = bundles.get_bundle(variant, cache, log)
            try:
                transport = adb.AdbTransport(built, serial, cache, log=log)
            except adb.WrongABI as exc:
                raise PlatformUnavailable(str(exc)) from None
            _BACKENDS[key] = RunnerBackend("device", transport, cache, log)
        return _BACKENDS[key]


class DevicePlatform:
    name = "device"

    def open(self, request: RuntimeRequest) -> Runtime:
        if request.artifact is None:
            raise UnsupportedConfiguration(f"{request.spec.id}: the device platform runs a converted model file")
        chosen = backend(request.options.get("cache"), request.options.get("serial"), request.options.get("bundle"),
                         request.options.get("log"))
        family = runner_family(request.model_file().suffix.lstrip("."))
        if family is not None and family not in chosen.transport.bundle.families:
            raise PlatformUnavailable(f"{request.model_file()}: the {chosen.transport.bundle.variant} bundle has no "
                                      f"{family} runtime; use the full bundle")
        return RunnerRuntime(request, chosen)
