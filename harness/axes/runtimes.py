"""The runtime axis: what a mobile runtime is, and the registry of them.

Each runtime declares one :class:`RuntimeKind` in its own module
(:mod:`harness.runtime.litert`, :mod:`harness.runtime.torch_runtime`,
:mod:`harness.runtime.executorch_runtime`) and registers it with one line,
``RUNTIMES.register(KIND)``; a third-party package adds one through the
``ondevice_robustness.runtimes`` entry point group. Every other table about a runtime (its
file format, native framework, title, the package whose version decides a verdict, the
runner family) is a lookup here. This module sits on the ground floor: the zoo, convert and
report stages read it without importing the runtime stage.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError, version
from typing import Any, Callable

from harness.axes.registry import RegistrationError, Registry, UnknownName


@dataclass(frozen=True)
class RuntimeKind:
    name: str                       # the configuration id's part: "litert"
    format: str                     # the model file's suffix it runs: "tflite"
    title: str                      # as the report writes it: "LiteRT (.tflite)"
    interpreter: str                # as an error message names it: "LiteRT"
    package: str                    # the distribution whose version decides a verify verdict
    open: Callable[[Any], Any] = field(repr=False, compare=False)   # RuntimeRequest -> Runtime, on this host
    check_load: Callable[[str, dict], None] = field(repr=False, compare=False)  # the verify child's load (+ call)
    native_for: tuple[str, ...] = ()  # frameworks whose models deploy here when nothing else is said
    runner_family: str | None = None  # the runtime family the aarch64 bundle must carry (None: not in the runner)
    versions: Callable[[], dict] | None = field(default=None, repr=False, compare=False)  # this host's versions

    def host_versions(self) -> dict:
        if self.versions is not None:
            return self.versions()
        try:
            return {self.package: version(self.package)}
        except PackageNotFoundError:
            return {self.package: None}


def _validate(kind, where: str) -> None:
    if not isinstance(kind, RuntimeKind):
        raise RegistrationError(f"{where}: must be a harness.axes.runtimes.RuntimeKind")
    other = next((k for k in RUNTIMES._items.values() if k.format == kind.format), None)
    if other is not None:
        raise RegistrationError(f"{where}: format {kind.format!r} is already run by runtime {other.name!r}")
    for framework in kind.native_for:
        native = next((k for k in RUNTIMES._items.values() if framework in k.native_for), None)
        if native is not None:
            raise RegistrationError(f"{where}: {framework} already deploys natively to {native.name!r}")


RUNTIMES: Registry[RuntimeKind] = Registry(
    "runtime", group="ondevice_robustness.runtimes", validate=_validate,
    builtins=("harness.runtime.litert", "harness.runtime.torch_runtime", "harness.runtime.executorch_runtime"))


def by_format(fmt: str) -> RuntimeKind:
    """The runtime that runs ``fmt`` files; UnknownName lists the formats there are."""
    kind = RUNTIMES.find(lambda k: k.format == fmt)
    if kind is None:
        raise UnknownName(f"no runtime runs {fmt!r} model files; formats: {[k.format for k in RUNTIMES]}")
    return kind


def native(framework: str) -> RuntimeKind:
    """The runtime ``framework``'s models deploy to when nothing else is said (the paper's pairing)."""
    kind = RUNTIMES.find(lambda k: framework in k.native_for)
    if kind is None:
        have = sorted(f for k in RUNTIMES for f in k.native_for)
        raise UnknownName(f"no native runtime for framework {framework!r}; have {have}")
    return kind


def formats() -> tuple[str, ...]:
    return tuple(k.format for k in RUNTIMES)


class _View(Mapping):
    """A read-only mapping computed from the registry on each use (for the old table names)."""

    def __init__(self, compute: Callable[[], dict]):
        self._compute = compute

    def __getitem__(self, key):
        return self._compute()[key]

    def __iter__(self):
        return iter(self._compute())

    def __len__(self) -> int:
        return len(self._compute())

    def __repr__(self) -> str:
        return repr(self._compute())


def view(compute: Callable[[], dict]) -> _View:
    return _View(compute)


# The old tables, as views (for code outside the runtime axis that still reads them).
RUNTIME_FORMATS = view(lambda: {k.name: k.format for k in RUNTIMES})  # alias: remove
NATIVE_RUNTIMES = view(lambda: {f: k.name for k in RUNTIMES for f in k.native_for})  # alias: remove
