"""The zoo registry: which zoos exist and how to load a model from each, by name.

A zoo is a module with ``spec(framework, name)``, ``build(framework, name)``,
``load(framework, name)`` and ``weights_path(framework, name)``; adding one is adding an
entry here. A zoo that does not hold every framework x model pair of the paper's matrix
says which it holds in its own ``COMBINATIONS`` (the ``real`` zoo: one PyTorch model). A zoo
may also say which mobile runtimes its models deploy to, as
``RUNTIMES = {framework: ("torch_lite", "litert")}`` (names from
:data:`harness.zoo.base.RUNTIME_FORMATS`); without it each framework's models deploy to their
native runtime only (:data:`harness.zoo.base.NATIVE_RUNTIMES`).
"""

from __future__ import annotations

import importlib

from harness.zoo.base import FRAMEWORKS, MODELS, NATIVE_RUNTIMES, RUNTIME_FORMATS, ZooError, ZooModel, check_choice

_ZOO_MODULES = {"mini": "harness.zoo.mini", "imagenet": "harness.zoo.imagenet", "real": "harness.zoo.real"}
ZOOS = tuple(_ZOO_MODULES)
# Zoos made by a run rather than shipped: the ``user`` zoo of the ``--model`` files
# (harness.zoo.user_zoo), registered when the options are read.
_RUN_ZOOS: dict[str, object] = {}


def register_run_zoo(name: str, zoo) -> None:
    """Make ``zoo`` (an object with a zoo module's interface) the zoo called ``name`` in this process."""
    _RUN_ZOOS[name] = zoo


def unregister_run_zoo(name: str) -> None:
    _RUN_ZOOS.pop(name, None)


def zoo_module(zoo: str):
    if zoo in _RUN_ZOOS:
        return _RUN_ZOOS[zoo]
    if zoo == "user":
        raise ZooError("the user zoo is the run's own --model files: pass --model PATH (and --images DIR)")
    check_choice("zoo", zoo, ZOOS)
    return importlib.import_module(_ZOO_MODULES[zoo])


def combinations(zoo: str) -> list[tuple[str, str]]:
    """The zoo's (framework, model) pairs: its ``COMBINATIONS``, else the paper's six."""
    module = zoo_module(zoo)
    declared = getattr(module, "COMBINATIONS", None)
    if declared is not None:
        return [tuple(pair) for pair in declared]
    return [(framework, name) for framework in FRAMEWORKS for name in MODELS]


def deployments(zoo: str) -> list[tuple[str, str, tuple[str, ...]]]:
    """(framework, model, runtimes) for each of the zoo's models: the mobile runtimes it is
    converted for, the native one first."""
    module = zoo_module(zoo)
    listed = getattr(module, "DEPLOYMENTS", None)
    if listed is not None:  # a zoo that knows each model's runtimes (the user zoo: one per file)
        return [(f, n, tuple(runtimes)) for f, n, runtimes in listed]
    declared = getattr(module, "RUNTIMES", {})
    out = []
    for framework, name in combinations(zoo):
        runtimes = tuple(declared.get(framework, ())) or (NATIVE_RUNTIMES[framework],)
        for runtime in runtimes:
            if runtime not in RUNTIME_FORMATS:
                raise ZooError(f"zoo {zoo!r}: unknown runtime {runtime!r} for {framework}; "
                               f"expected one of {tuple(RUNTIME_FORMATS)}")
        native = NATIVE_RUNTIMES[framework]
        out.append((framework, name, tuple(sorted(runtimes, key=lambda r: r != native))))
    return out


def load(zoo: str, framework: str, name: str) -> ZooModel:
    return zoo_module(zoo).load(framework, name)


def missing_weights(zoo: str) -> list[str]:
    """For each of the zoo's models whose weights file is absent, a message naming the
    file, where it goes and where it is published (empty when all are present)."""
    module = zoo_module(zoo)
    missing = []
    for framework, name in combinations(zoo):
        if not module.weights_path(framework, name).is_file():
            try:
                module.load(framework, name)
            except ZooError as exc:  # the zoo's own message: which file, where it goes, where to get it
                missing.append(str(exc))
    return missing


def parameter_count(model: ZooModel) -> int:
    """Trainable parameters, counted the same way in both frameworks."""
    if model.spec.framework == "pytorch":
        return int(sum(p.numel() for p in model.module.parameters()))
    return int(sum(int(v.numpy().size) for v in model.module.trainable_weights))
