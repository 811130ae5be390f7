"""The study: every framework x model x attack x quantization x platform configuration.

:class:`Study` is what the pytest layer holds. It builds each piece once per process
(models, sample selection, calibration set, conversions, adversarial sets, runtimes)
and leaves the expensive ones in the artefact cache, where concurrent workers find
them built once. ``evaluate(configuration)`` returns the configuration's record: every
metric the gates and the report need, as plain data.
"""

from __future__ import annotations

import functools
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from harness.attack.generate import generate_set
from harness.attack.pngset import AdversarialSet
from harness.attack.profiles import ATTACKS, Profile
from harness.cache import ArtifactCache
from harness.data import samples, sources
from harness.data.dataset import ImageDataset
from harness.data.sources import StudySource
from harness.zoo import registry
from harness.zoo.base import FRAMEWORKS, MODELS

QUANTIZATIONS = ("float", "int8")
PLATFORMS = ("pc", "mobile", "device")


@dataclass(frozen=True)
class Configuration:
    framework: str
    model: str
    attack: str
    quantization: str
    platform: str

    @property
    def id(self) -> str:
        return f"{self.framework}-{self.model}-{self.attack}-{self.quantization}-{self.platform}"

    @classmethod
    def parse(cls, config_id: str) -> "Configuration":
        parts = config_id.split("-")
        if len(parts) != 5:
            raise ValueError(f"configuration id {config_id!r} must be framework-model-attack-quantization-platform")
        return cls(*parts)


def matrix(platforms=PLATFORMS) -> list[Configuration]:
    """The paper's matrix: PC runs the float model only; mobile platforms run float and int8."""
    return [
        Configuration(f, m, a, q, p)
        for p in platforms for f in FRAMEWORKS for m in MODELS for a in ATTACKS for q in QUANTIZATIONS
        if not (p == "pc" and q == "int8")
    ]


class Study:
    """The matrix of one zoo and profile: models, samples, conversions, attacks, runtimes.

    ``source`` gives the zoo's images (:mod:`harness.data.sources`); by default the
    zoo's own (the committed Fashion-MNIST subset for ``mini``, the folder named by
    ``$IMAGENET_DIR`` for ``imagenet``).
    """

    def __init__(self, zoo: str, profile: Profile, cache: ArtifactCache, n_samples: int | None = None,
                 threads: int = 1, log: Callable[[str], None] = print, source: StudySource | None = None):
        registry.zoo_module(zoo)  # an unknown zoo is a ZooError naming the valid ones
        self.zoo = zoo
        self.profile = profile
        self.cache = cache
        self.n_samples = n_samples or profile.samples
        self.threads = threads
        self.log = log
        self.source = source if source is not None else sources.source_for(zoo)
        self._runtimes: dict = {}
        self._images: dict = {}  # (purpose, geometry key) -> ImageDataset, shared by models of one input geometry

    # -- inputs --------------------------------------------------------------------------
    @functools.cache
    def model(self, framework: str, name: str):
        return registry.load(self.zoo, framework, name)

    @functools.cached_property
    def selection(self) -> samples.SampleSelection:
        """The evaluation ids, cached as an artefact (it needs all six models' predictions)."""
        models = [self.model(f, n) for f, n in registry.combinations(self.zoo)]
        parts = {
            "stage": "selection", "zoo": self.zoo, "n": self.n_samples, "seed": self.profile.seed,
            "weights": {m.spec.id: m.weights_digest for m in models},
            **self.source.fingerprint(),
        }

        def build(directory: Path) -> dict:
            chosen = self.source.select(models, self.n_samples, self.profile.seed, progress=self.log)
            (directory / "selection.json").write_text(json.dumps(chosen.to_dict(), indent=1) + "\n")
            return {"pool_size": chosen.pool_size}

        artifact = self.cache.get_or_build("selection", parts, build, label=f"sample selection ({self.zoo})")
        return samples.SampleSelection.from_dict(json.loads(artifact.file("selection.json").read_text()))

    def evaluation(self, framework: str, name: str) -> ImageDataset:
        """The evaluation samples at this model's input geometry."""
        return self._at_geometry("evaluation", framework, name,
                                 lambda spec: self.source.load(self.selection.ids, spec))

    def calibration(self, framework: str, name: str) -> ImageDataset:
        """The int8 calibration images at this model's input geometry (never evaluation samples)."""
        return self._at_geometry("calibration", framework, name, lambda spec: self.source.calibration(
            spec, self.profile.calibration, self.profile.seed, self.selection))

    def _at_geometry(self, purpose: str, framework: str, name: str, load) -> ImageDataset:
        """Images decoded once per input geometry, shared by the models that take it."""
        spec = self.model(framework, name).spec
        key = (purpose, self.source.geometry_key(spec))
        if key not in self._images:
            self._images[key] = load(spec)
        return self._images[key]

    # -- artefacts -------------------------------------------------------------------------
    @functools.cache
    def conversion(self, framework: str, name: str, quantization: str):
        from harness.convert import convert

        calibration = self.calibration(framework, name) if quantization == "int8" else None
        return convert(self.model(framework, name), quantization, calibration, self.cache)

    @functools.cache
    def adversarial_set(self, framework: str, name: str, attack: str) -> AdversarialSet:
        return generate_set(self.model(framework, name), attack, self.profile, self.evaluation(framework, name),
                            self.cache, self.log)

    def runtime(self, framework: str, name: str, quantization: str, platform: str):
        from harness.runtime import open_runtime

        key = (framework, name, quantization, platform)
        if key not in self._runtimes:
            model = self.model(framework, name)
            if platform == "pc" and quantization == "float":
                self._runtimes[key] = open_runtime("pc", model, threads=self.threads)
            else:
                artifact = self.conversion(framework, name, quantization)
                self._runtimes[key] = open_runtime(platform, model, artifact, quantization=quantization,
                                                   threads=self.threads)
        return self._runtimes[key]

    # -- measurements ------------------------------------------------------------------------
    @functools.cache
    def _clean(self, framework: str, name: str, quantization: str, platform: str):
        from harness.metrics.measure import measure

        reference = None
        if (quantization, platform) != ("float", "pc"):
            reference = self._clean(framework, name, "float", "pc")
        runtime = self.runtime(framework, name, quantization, platform)
        size = None if platform == "pc" else self.conversion(framework, name, quantization).size_bytes
        return measure(runtime, self.evaluation(framework, name), reference, file_size_bytes=size)

    @functools.cache
    def _adversarial_predictions(self, framework, name, attack, quantization, platform):
        adv = self.adversarial_set(framework, name, attack)
        runtime = self.runtime(framework, name, quantization, platform)
        start = time.perf_counter()
        predictions = runtime.predict(adv.images)
        return predictions, time.perf_counter() - start

    def evaluate(self, config: Configuration) -> dict:
        f, n, a, q, p = config.framework, config.model, config.attack, config.quantization, config.platform
        adv = self.adversarial_set(f, n, a)
        predictions, seconds = self._adversarial_predictions(f, n, a, q, p)
        pc_predictions, _ = self._adversarial_predictions(f, n, a, "float", "pc")
        success = predictions != adv.labels
        pc_success = pc_predictions != adv.labels
        clean = self._clean(f, n, q, p)
        runtime = self.runtime(f, n, q, p)
        model = self.model(f, n)
        return {
            "configuration": config.id,
            "framework": f, "model": n, "attack": a, "quantization": q, "platform": p,
            "zoo": self.zoo, "profile": self.profile.name,
            "n_samples": int(len(adv.ids)),
            "success_rate": float(success.mean()),
            "success_rate_before_rounding": adv.success_before_rounding,
            "success_rate_after_rounding_pc": adv.success_after_rounding,
            "pc_success_rate": float(pc_success.mean()),
            "pc_gap": float(abs(success.mean() - pc_success.mean())),
            "clean_accuracy": clean.accuracy,
            "agreement_with_pc": clean.agreement,
            "adversarial_agreement_with_pc": float((predictions == pc_predictions).mean()),
            "max_abs_logit_diff": clean.max_abs_logit_diff,
            "model_bytes": clean.file_size_bytes if clean.file_size_bytes is not None else _weights_bytes(model),
            "load_seconds": runtime.load_seconds,
            "inference_seconds": seconds,
            "inference_seconds_per_image": seconds / max(1, len(adv.ids)),
            "clean_inference_seconds": clean.inference_seconds,
            "generation_seconds": adv.generation_seconds,
            "boundary_init_failed": len(adv.sidecar.get("init_failed_ids", [])),
            "threads": runtime.threads, "resolver": runtime.resolver, "engine": runtime.engine,
            "weights_sha256": model.weights_digest,
            "sample_ids": [int(i) for i in adv.ids],
            "per_sample_success": [bool(s) for s in success],
        }

    def close(self) -> None:
        for runtime in self._runtimes.values():
            runtime.close()
        self._runtimes.clear()


def _weights_bytes(model) -> int | None:
    return None if model.weights_path is None else Path(model.weights_path).stat().st_size
