"""The study: every framework x model x attack x quantization x (runtime x) platform configuration.

:class:`Study` is what the pytest layer holds. It builds each piece once per process
(models, sample selection, calibration set, conversions, adversarial sets, runtimes)
and leaves the expensive ones in the artefact cache, where concurrent workers find
them built once. ``evaluate(configuration)`` returns the configuration's record: every
metric the gates and the report need, as plain data.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import platform as _platform
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from harness.attack.generate import generate_set
from harness.attack.pngset import AdversarialSet
from harness.attack import registry as attack_registry
from harness.attack.profiles import DIRECT_PREFIX, Profile
from harness.cache import ArtifactCache
from harness.data import samples, sources
from harness.data.dataset import DataError, ImageDataset
from harness.data.sources import StudySource
from harness.convert.base import ConversionError
from harness.runtime.base import PlatformUnavailable, check_finite
from harness.zoo import registry
from harness.zoo.base import NATIVE_RUNTIMES, RUNTIME_FORMATS

QUANTIZATIONS = ("float", "int8")
PLATFORMS = ("pc", "mobile", "arm64", "device")
# Platforms that run on this host (`pytest -m pc`); the rest need a phone (`-m device`).
HOST_PLATFORMS = ("pc", "mobile", "arm64")
# Platforms whose runtime runs in the on-device runner (the aarch64 bundle), compared
# with the same file in this host's runtime (platform `mobile`) as well as with the PC.
RUNNER_PLATFORMS = ("arm64", "device")
# Platforms under emulation: they evaluate the profile's `emulated_samples` only.
EMULATED_PLATFORMS = ("arm64",)


@dataclass(frozen=True)
class Configuration:
    """One case. ``runtime`` names the mobile runtime that runs the converted file
    (:data:`RUNTIME_FORMATS`: ``litert`` runs ``.tflite``, ``torch_lite`` runs ``.ptl``);
    None is the framework's native one (TensorFlow -> LiteRT, PyTorch -> the lite
    interpreter), and naming the native one is the same as None. The ``pc`` platform runs
    the framework itself and has no runtime.

    The id is ``framework-model-attack-quantization-platform`` for the native runtime (the
    paper's cases keep the ids the committed baselines use) and
    ``framework-model-attack-quantization-runtime-platform`` otherwise.
    """

    framework: str
    model: str
    attack: str
    quantization: str
    platform: str
    runtime: str | None = None

    def __post_init__(self) -> None:
        for field_name in ("framework", "model", "attack", "quantization", "platform", "runtime"):
            value = getattr(self, field_name)
            if value is not None and (not isinstance(value, str) or not value or "-" in value):
                raise ValueError(f"configuration {field_name} {value!r} must be a non-empty name without '-'")
        if self.runtime is None:
            return
        if self.runtime not in RUNTIME_FORMATS:
            raise ValueError(f"unknown runtime {self.runtime!r}; expected one of {tuple(RUNTIME_FORMATS)}")
        if self.platform == "pc":
            raise ValueError(f"platform pc runs the {self.framework} model itself and has no runtime "
                             f"(asked for {self.runtime!r})")
        if self.runtime == NATIVE_RUNTIMES.get(self.framework):
            object.__setattr__(self, "runtime", None)  # the native runtime is the 5-part id

    @property
    def deployed_runtime(self) -> str | None:
        """The runtime that runs this case's file: the named one or the native one; None on pc."""
        if self.platform == "pc":
            return None
        return self.runtime or NATIVE_RUNTIMES[self.framework]

    @property
    def id(self) -> str:
        if self.runtime is None:
            return f"{self.framework}-{self.model}-{self.attack}-{self.quantization}-{self.platform}"
        return f"{self.framework}-{self.model}-{self.attack}-{self.quantization}-{self.runtime}-{self.platform}"

    @classmethod
    def parse(cls, config_id: str) -> "Configuration":
        parts = config_id.split("-")
        if len(parts) == 5:
            return cls(*parts)
        if len(parts) == 6:
            f, m, a, q, r, p = parts
            return cls(f, m, a, q, p, r)
        raise ValueError(f"configuration id {config_id!r} must be framework-model-attack-quantization-platform "
                         "or framework-model-attack-quantization-runtime-platform")


def runtime_format(framework: str, runtime: str | None) -> str:
    """The model file format ``runtime`` runs (None: the framework's native runtime)."""
    return RUNTIME_FORMATS[runtime or NATIVE_RUNTIMES[framework]]


def matrix(platforms=PLATFORMS, attacks=None, zoo: str = "mini") -> list[Configuration]:
    """The paper's matrix over the zoo's models (the mini and imagenet zoos hold the paper's
    six): PC runs the float model only; mobile platforms run float and int8, on every runtime
    the zoo deploys the model to (:func:`harness.zoo.registry.deployments`; the paper's zoos:
    the framework's native runtime only).

    ``attacks``: the attack names to run (a profile's ``attack_names``), or None for every
    registered attack; either way in registry order, so the case ids do not depend on how
    they were listed."""
    known = attack_registry.names()
    if attacks is None:
        attacks = known
    direct = [a[len(DIRECT_PREFIX):] for a in attacks if a.startswith(DIRECT_PREFIX)]
    unknown = [a for a in [a for a in attacks if not a.startswith(DIRECT_PREFIX)] + direct if a not in known]
    if unknown:
        raise attack_registry.UnknownAttack(f"unknown attack {unknown[0]!r}; registered attacks are {list(known)}")
    # Registry order, transfer attacks first; a direct attack queries a deployed model, so it has no pc case.
    attacks = [a for a in known if a in set(attacks)] + [DIRECT_PREFIX + a for a in known if a in set(direct)]
    keeps = getattr(registry.zoo_module(zoo), "keeps", None)  # a zoo that holds only some cases (user)
    return [
        Configuration(f, m, a, q, p, None if p == "pc" else r)
        for p in platforms for f, m, runtimes in registry.deployments(zoo) for a in attacks for q in QUANTIZATIONS
        for r in (runtimes[:1] if p == "pc" else runtimes)
        if not (p == "pc" and (q == "int8" or is_direct(a)))
        and (keeps is None or keeps(f, m, is_direct(a), q, p, None if p == "pc" else r))
    ]


def is_direct(attack: str) -> bool:
    """A case of an attack run against the deployed model itself, not of transferred PNGs."""
    return attack.startswith(DIRECT_PREFIX)


class Study:
    """The matrix of one zoo and profile: models, samples, conversions, attacks, runtimes.

    ``source`` gives the zoo's images (:mod:`harness.data.sources`); by default the
    zoo's own (the committed Fashion-MNIST subset for ``mini``, the folder named by
    ``$IMAGENET_DIR`` for ``imagenet``).
    """

    def __init__(self, zoo: str, profile: Profile, cache: ArtifactCache, n_samples: int | None = None,
                 threads: int = 1, log: Callable[[str], None] = print, source: StudySource | None = None,
                 device_serial: str | None = None, executor=None, progress_file=None):
        registry.zoo_module(zoo)  # an unknown zoo is a ZooError naming the valid ones
        self.zoo = zoo
        self.profile = profile
        self.cache = cache
        self.n_samples = n_samples or profile.samples
        self.threads = threads
        self.log = log
        self.source = source if source is not None else sources.source_for(zoo)
        self._runtimes: dict = {}
        self._conversions: dict = {}  # (framework, model, quantization, format) -> artefact or its ConversionError
        self._prefetched: set[str] = set()
        self.device_serial = device_serial
        # Several phones: each device record carries digests of its logits and predictions, so the
        # report can say whether the phones computed the same bits (harness.report.devices).
        self.record_digests = False
        # Who runs the adversarial sets' chunks (harness.executor; None: this process) and where
        # their progress goes (harness.executor.progress.ProgressFile). Neither enters a set's key.
        self.executor = executor
        self.progress_file = progress_file
        self._images: dict = {}  # (purpose, geometry key) -> ImageDataset, shared by models of one input geometry
        self._selection_error: samples.PoolTooSmall | None = None

    # -- inputs --------------------------------------------------------------------------
    @functools.cache
    def model(self, framework: str, name: str):
        return registry.load(self.zoo, framework, name)

    @functools.cached_property
    def selection(self) -> samples.SampleSelection:
        """The evaluation ids, cached as an artefact (it needs all six models' predictions).

        A pool smaller than the samples asked for is a fact of the whole run: it is
        remembered and raised again at once, so each later case fails with the same
        message instead of recomputing every model's predictions."""
        if self._selection_error is not None:
            raise self._selection_error
        try:
            return self._select()
        except samples.PoolTooSmall as exc:
            self._selection_error = exc
            raise

    def _select(self) -> samples.SampleSelection:
        models = [self.model(f, n) for f, n in registry.combinations(self.zoo)]
        parts = {
            "stage": "selection", "zoo": self.zoo, "n": self.n_samples, "seed": self.profile.seed,
            "weights": {m.spec.id: m.weights_digest for m in models},
            **self.source.fingerprint(),
        }

        def build(directory: Path) -> dict:
            try:
                chosen = self.source.select(models, self.n_samples, self.profile.seed, progress=self.log)
            except samples.PoolTooSmall as exc:
                if self.zoo != "user":
                    raise
                if exc.pool_size == 0:
                    files = ", ".join(str(m.weights_path) for m in models)
                    raise DataError(f"{self.source.name}: none of its images is classified correctly by every model "
                                    f"({files}); the attacks need images the models get right: check the labels "
                                    "and the card's normalisation, or give an unlabelled folder (the reference "
                                    "model's answers become the labels)") from None
                # A user's folder is what it is: run on every image the models get right, and say so.
                self.log(f"  sample selection: {exc.pool_size} of the images qualify, fewer than the profile's "
                         f"{self.n_samples}: using all {exc.pool_size}")
                chosen = self.source.select(models, exc.pool_size, self.profile.seed, progress=self.log)
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
    def conversion(self, framework: str, name: str, quantization: str, runtime: str | None = None):
        """The converted file ``runtime`` runs (None: the framework's native runtime); in the user
        zoo, the user's own file, as given."""
        given = getattr(registry.zoo_module(self.zoo), "artifact", None)
        if given is not None:
            return given(framework, name, quantization, runtime)
        return self._conversion(framework, name, quantization, runtime_format(framework, runtime))

    def reference(self, framework: str, name: str) -> tuple[str, str, str | None]:
        """(quantization, platform, runtime) of what every other case's agreement is measured
        against: the PC float model, or, for a user's file without a source model, the file
        itself in this host's runtime."""
        zoo = registry.zoo_module(self.zoo)
        if getattr(zoo, "source", None) is not None and zoo.source(framework, name) is None:
            first = zoo.deployed_files(framework, name)[0]
            return first.quantization, "mobile", first.runtime
        return "float", "pc", None

    def _conversion(self, framework: str, name: str, quantization: str, fmt: str):
        """The converted file, built once per process; a conversion that failed is not tried
        again by every case that needs the file: each gets the same ConversionError."""
        from harness.convert import convert

        key = (framework, name, quantization, fmt)
        if key not in self._conversions:
            calibration = self.calibration(framework, name) if quantization == "int8" else None
            try:
                self._conversions[key] = convert(self.model(framework, name), quantization, calibration, self.cache,
                                                 format=fmt)
            except ConversionError as exc:
                self.log(f"conversion of {framework}-{name} {quantization} to .{fmt} FAILED: {exc}")
                self._conversions[key] = exc
        found = self._conversions[key]
        if isinstance(found, ConversionError):
            raise found
        return found

    @functools.cache
    def adversarial_set(self, framework: str, name: str, attack: str) -> AdversarialSet:
        return generate_set(self.model(framework, name), attack, self.profile, self.evaluation(framework, name),
                            self.cache, self.log, executor=self.executor, progress_file=self.progress_file)

    def runtime(self, framework: str, name: str, quantization: str, platform: str, runtime: str | None = None):
        from harness.runtime import open_runtime

        if platform == "pc":
            runtime = None
        fmt = None if platform == "pc" else runtime_format(framework, runtime)
        key = (framework, name, quantization, platform, fmt)
        if key not in self._runtimes:
            model = self.model(framework, name)
            if platform == "pc" and quantization == "float":
                self._runtimes[key] = open_runtime("pc", model, threads=self.threads)
            else:
                artifact = self.conversion(framework, name, quantization, runtime)
                options = {"cache": self.cache, "log": self.log} if platform in RUNNER_PLATFORMS else {}
                if platform == "device":
                    options["serial"] = self.device_serial
                self._runtimes[key] = open_runtime(platform, model, artifact, quantization=quantization,
                                                   threads=self.threads, **options)
        return self._runtimes[key]

    def rows(self, platform: str, attack: str | None = None) -> slice:
        """Which of the samples ``platform`` evaluates: all, or the first ``emulated_samples``
        of the draw on an emulated platform (the draw is random, so they are a random subset);
        a direct attack stops at the profile's ``direct.samples`` as well."""
        limits = []
        if self.profile.emulated_samples and self.emulated(platform):
            limits.append(self.profile.emulated_samples)
        if attack is not None and is_direct(attack):
            if self.profile.direct_samples:
                limits.append(self.profile.direct_samples)
            if self.profile.direct_emulated_samples and self.emulated(platform):
                limits.append(self.profile.direct_emulated_samples)
        return slice(0, min(min(limits), self.n_samples)) if limits else slice(None)

    def emulated(self, platform: str) -> bool:
        """arm64 always; a device when it says it is one (the virtual phone: ro.kernel.qemu=1)."""
        if platform in EMULATED_PLATFORMS:
            return True
        if platform == "device":
            from harness.runtime.device import backend

            return bool(backend(self.cache, self.device_serial, log=self.log).transport.emulated)
        return False

    # -- measurements ------------------------------------------------------------------------
    def _clean(self, framework: str, name: str, quantization: str, platform: str, runtime: str | None = None):
        fmt = None if platform == "pc" else runtime_format(framework, runtime)
        return self._clean_of(framework, name, quantization, platform, fmt)

    @functools.cache
    def _clean_of(self, framework: str, name: str, quantization: str, platform: str, fmt: str | None):
        from harness.metrics.measure import measure

        runtime = _runtime_of(framework, fmt)
        rows = self.rows(platform)
        reference = None
        ref_q, ref_p, ref_r = self.reference(framework, name)
        if (quantization, platform, fmt) != (ref_q, ref_p, None if ref_p == "pc" else runtime_format(framework, ref_r)):
            reference = self._clean(framework, name, ref_q, ref_p, ref_r).logits[rows]
        size = None if platform == "pc" else self.conversion(framework, name, quantization, runtime).size_bytes
        runtime = self.runtime(framework, name, quantization, platform, runtime)
        samples = self.evaluation(framework, name)
        if rows != slice(None):
            samples = samples.select(samples.ids[rows])
        return measure(runtime, samples, reference, file_size_bytes=size)

    def _adversarial_logits(self, framework, name, attack, quantization, platform, runtime=None):
        """Logits of ``platform`` (and ``runtime``) on the adversarial set (its rows), and the seconds it took."""
        fmt = None if platform == "pc" else runtime_format(framework, runtime)
        return self._adversarial_logits_of(framework, name, attack, quantization, platform, fmt)

    @functools.cache
    def _adversarial_logits_of(self, framework, name, attack, quantization, platform, fmt):
        adv = self.adversarial_set(framework, name, attack)
        runtime = self.runtime(framework, name, quantization, platform, _runtime_of(framework, fmt))
        start = time.perf_counter()
        logits = runtime.predict_logits(adv.images[self.rows(platform)])
        seconds = time.perf_counter() - start
        return check_finite(logits, f"{runtime.where} on {adv.path}"), seconds

    def prefetch(self, configurations) -> None:
        """Measure every runner-platform configuration given in as few runner processes as possible.

        The runner starts one process per runtime family for the whole batch (importing
        torch under emulation costs ~10 s); results land in the cache, so the cases that
        follow find them there. Configurations already measured are skipped."""
        from harness.runtime.remote import RunnerRuntime

        # Direct attacks query their runtime through a streaming session of their own.
        wanted = [c for c in configurations if c.platform in RUNNER_PLATFORMS and c.id not in self._prefetched
                  and not is_direct(c.attack)]
        by_backend: dict = {}
        for c in wanted:
            try:
                runtime = self.runtime(c.framework, c.model, c.quantization, c.platform, c.runtime)
            except (ConversionError, PlatformUnavailable):
                continue  # raised again, with its message, by the configuration's own case
            if not isinstance(runtime, RunnerRuntime):
                continue
            rows = self.rows(c.platform)
            for images in (self.evaluation(c.framework, c.model).images[rows],
                           self.adversarial_set(c.framework, c.model, c.attack).images[rows]):
                by_backend.setdefault(id(runtime.backend), (runtime.backend, []))[1].append(runtime.request(images))
        for backend, requests in by_backend.values():
            backend.run(requests)  # failures are remembered and raised by the case that needs them
        self._prefetched.update(c.id for c in wanted)

    @functools.cache
    def direct_result(self, framework: str, name: str, attack: str, quantization: str, platform: str,
                      runtime: str | None = None):
        """The direct attack ``attack`` (``direct_<name>``) run against this deployment on its
        platform, on the same samples the transferred PNGs hold (cached as an artefact)."""
        from harness.attack.direct import direct_attack  # noqa: F401  (imported here: it pulls in Foolbox)

        samples = self.evaluation(framework, name)
        rows = self.rows(platform, attack)
        if rows != slice(None):
            samples = samples.select(samples.ids[rows])
        runtime = self.runtime(framework, name, quantization, platform, runtime)
        return direct_attack(runtime, samples, attack[len(DIRECT_PREFIX):], self.profile.attack_params(attack),
                             self.profile.seed, self.cache, self.log)

    def _evaluate_direct(self, config: Configuration) -> dict:
        """A direct attack's record: the deployed model's own outcomes, with what the attack cost
        (queries, seconds, distances) and the PC model's answers on the same images."""
        from harness.attack.direct import attack_versions

        f, n, a, q, p, r = (config.framework, config.model, config.attack, config.quantization, config.platform,
                            config.runtime)
        result = self.direct_result(f, n, a, q, p, r)
        rows = self.rows(p, a)
        evaluation = self.evaluation(f, n)
        if not np.array_equal(result.ids, evaluation.ids[rows]):
            raise RuntimeError(f"{result.path}: the direct attack's samples are not the evaluation samples in order")
        clean = self._clean(f, n, q, p, r)
        clean_rows = slice(0, len(result.ids))  # _clean covers rows(p), a prefix that holds these
        ref_q, ref_p, ref_r = self.reference(f, n)
        pc_clean = self._clean(f, n, ref_q, ref_p, ref_r).predictions[rows]
        pc = self.runtime(f, n, ref_q, ref_p, ref_r)
        pc_predictions = check_finite(pc.predict_logits(result.adversarials), f"{pc.where} on {result.path}").argmax(axis=1)
        runtime = self.runtime(f, n, q, p, r)
        model = self.model(f, n)
        success = result.success
        totals = result.totals
        ok = success.astype(bool)
        record = {
            "configuration": config.id,
            "framework": f, "model": n, "attack": a, "quantization": q, "platform": p,
            "runtime": config.deployed_runtime,
            "zoo": self.zoo, "profile": self.profile.name,
            "n_samples": int(len(result.ids)),
            "success_rate": float(success.mean()),
            "success_rate_before_rounding": None,  # every query is already a uint8 image
            "success_rate_after_rounding_pc": None,
            "pc_success_rate": float((pc_predictions != result.labels).mean()),
            "pc_gap": float(abs(success.mean() - (pc_predictions != result.labels).mean())),
            "clean_accuracy": float((clean.predictions[clean_rows] == result.labels).mean()),
            "agreement_with_pc": float((clean.predictions[clean_rows] == pc_clean).mean()),
            "adversarial_agreement_with_pc": float((result.predictions == pc_predictions).mean()),
            "max_abs_logit_diff": clean.max_abs_logit_diff,
            "model_bytes": clean.file_size_bytes if clean.file_size_bytes is not None else _weights_bytes(model),
            "load_seconds": runtime.load_seconds,
            "inference_seconds": float(totals["query_seconds"]),
            "inference_seconds_per_image": float(totals["query_seconds"]) / max(1, int(totals["queries"])),
            "clean_inference_seconds": clean.inference_seconds,
            "generation_seconds": float(totals["seconds"]),
            "boundary_init_failed": 0,
            "threads": runtime.threads, "resolver": runtime.resolver, "engine": runtime.engine,
            "weights_sha256": model.weights_digest,
            "sample_ids": [int(i) for i in result.ids],
            "per_sample_success": [bool(s) for s in success],
            "per_sample_clean_agreement": [bool(x) for x in clean.predictions[clean_rows] == pc_clean],
            "per_sample_adversarial_agreement": [bool(x) for x in result.predictions == pc_predictions],
            "adversarial_pngs": str(result.path),
            "artifact_key": self.conversion(f, n, q, r).key,
            "direct": {
                "attack": a[len(DIRECT_PREFIX):], "params": dict(result.params), "kind": result.kind,
                "queries": [int(x) for x in result.queries], "l2": [float(x) for x in result.l2],
                "linf": [float(x) for x in result.linf], "seconds": [float(x) for x in result.seconds],
                "queries_median": float(np.median(result.queries)) if len(result.queries) else None,
                "queries_total": int(totals["queries"]),
                "seconds_per_sample": float(totals["seconds_per_sample"]),
                "l2_median": float(np.median(result.l2[ok])) if ok.any() else None,
                "linf_median": float(np.median(result.linf[ok])) if ok.any() else None,
                "pc_fooled_by_direct": float((pc_predictions != result.labels).mean()),
                "identity": result.identity, "cached": bool(result.cached),
            },
        }
        converted = self.conversion(f, n, q, r)
        record["versions"] = {
            "framework": {}, "runtime": _host_runtime_versions(converted.format),
            "converter": dict(converted.artifact.metadata.get("versions", {})),
            "attack": attack_versions(None),
        }
        record["environment"] = {"quantized_engine": runtime.engine, "litert_resolver": runtime.resolver,
                                 "threads": runtime.threads, **_host_environment()}
        record.update(_deployment_facts(runtime, converted, clean.logits[clean_rows], None))
        return record

    def evaluate(self, config: Configuration) -> dict:
        if is_direct(config.attack):
            return self._evaluate_direct(config)
        f, n, a, q, p = config.framework, config.model, config.attack, config.quantization, config.platform
        r = config.runtime
        adv = self.adversarial_set(f, n, a)
        rows = self.rows(p)
        ids, labels = adv.ids[rows], adv.labels[rows]
        if not np.array_equal(ids, self.evaluation(f, n).ids[rows]):
            raise RuntimeError(f"{adv.path}: the set's samples are not the evaluation samples in order")
        logits, seconds = self._adversarial_logits(f, n, a, q, p, r)
        predictions = logits.argmax(axis=1)
        pc_predictions = self._adversarial_logits(f, n, a, "float", "pc")[0].argmax(axis=1)[rows]
        success = predictions != labels
        pc_success = pc_predictions != labels
        clean = self._clean(f, n, q, p, r)
        pc_clean = self._clean(f, n, "float", "pc").predictions[rows]
        runtime = self.runtime(f, n, q, p, r)
        model = self.model(f, n)
        record = {
            "configuration": config.id,
            "framework": f, "model": n, "attack": a, "quantization": q, "platform": p,
            "runtime": config.deployed_runtime,
            "zoo": self.zoo, "profile": self.profile.name,
            "n_samples": int(len(ids)),
            "success_rate": float(success.mean()),
            "success_rate_before_rounding": float(adv.column("success_before_rounding")[rows].mean()),
            "success_rate_after_rounding_pc": float(adv.column("success_after_rounding")[rows].mean()),
            "pc_success_rate": float(pc_success.mean()),
            "pc_gap": float(abs(success.mean() - pc_success.mean())),
            "clean_accuracy": clean.accuracy,
            "agreement_with_pc": clean.agreement,
            "adversarial_agreement_with_pc": float((predictions == pc_predictions).mean()),
            "max_abs_logit_diff": clean.max_abs_logit_diff,
            "model_bytes": clean.file_size_bytes if clean.file_size_bytes is not None else _weights_bytes(model),
            "load_seconds": runtime.load_seconds,
            "inference_seconds": seconds,
            "inference_seconds_per_image": seconds / max(1, len(ids)),
            "clean_inference_seconds": clean.inference_seconds,
            "generation_seconds": adv.generation_seconds,
            # samples a decision attack (Boundary, HopSkipJump) found no starting point for; the
            # key keeps its first attack's name so older records and reports read the same
            "boundary_init_failed": len(adv.sidecar.get("init_failed_ids", [])),
            "threads": runtime.threads, "resolver": runtime.resolver, "engine": runtime.engine,
            "weights_sha256": model.weights_digest,
            "sample_ids": [int(i) for i in ids],
            "per_sample_success": [bool(s) for s in success],
            # per sample, in sample_ids' order: what the paired and the equivalence gates read
            "per_sample_clean_agreement": [bool(x) for x in clean.predictions == pc_clean],
            "per_sample_adversarial_agreement": [bool(x) for x in predictions == pc_predictions],
            "adversarial_pngs": str(adv.path / "png"),
            "artifact_key": None if (q, p) == ("float", "pc") else self.conversion(f, n, q, r).key,
        }
        if p == "mobile":
            record["runtime_agreement"] = self._runtime_agreement(config, logits, clean.logits)
        if self.record_digests and p == "device":
            record["digests"] = {name: hashlib.sha256(np.ascontiguousarray(a).tobytes()).hexdigest()
                                 for name, a in (("adversarial_logits", logits), ("adversarial_predictions", predictions),
                                                 ("clean_logits", clean.logits), ("clean_predictions", clean.predictions))}
        if p in RUNNER_PLATFORMS:
            record.update(self._runner_facts(config, logits, clean))
        # What produced these numbers, so a reader can reproduce them: the PC framework and the
        # attack libraries that made the adversarial set (its sidecar), the converter (the converted
        # file's metadata), the runtime that ran it, and this machine's settings.
        attack_versions = dict(adv.sidecar.get("versions", {}))
        framework_keys = ("torch",) if f == "pytorch" else ("tensorflow", "keras")
        converted = None if p == "pc" else self.conversion(f, n, q, r)
        record["versions"] = {
            "framework": {k: attack_versions[k] for k in framework_keys if k in attack_versions},
            "runtime": (record["runtime_versions"] if "runtime_versions" in record
                        else _host_runtime_versions(converted.format) if converted is not None
                        else {k: attack_versions[k] for k in framework_keys if k in attack_versions}),
            "converter": {} if converted is None else dict(converted.artifact.metadata.get("versions", {})),
            "attack": {k: v for k, v in attack_versions.items() if k not in framework_keys},
        }
        record["environment"] = {"quantized_engine": runtime.engine, "litert_resolver": runtime.resolver,
                                 "threads": runtime.threads, **_host_environment()}
        if converted is not None and "delegation" in converted.artifact.metadata:
            record["delegation"] = converted.artifact.metadata["delegation"]  # which ops a delegate (XNNPACK) took
        record.update(_deployment_facts(runtime, converted, clean.logits, logits))
        return record

    def deployed_runtimes(self, framework: str, name: str) -> tuple[str, ...]:
        """The mobile runtimes the zoo deploys this model to, the native one first."""
        for f, n, runtimes in registry.deployments(self.zoo):
            if (f, n) == (framework, name):
                return runtimes
        return (NATIVE_RUNTIMES[framework],)

    def _runtime_agreement(self, config: Configuration, logits: np.ndarray, clean_logits: np.ndarray) -> dict:
        """The same weights on every other runtime this host runs them on: prediction agreement,
        largest |logit difference| and bit-exactness on the clean and on the adversarial images
        (the report's numeric table of "framework or runtime?"). A runtime whose file did not
        convert is named with the reason instead."""
        f, n, a, q = config.framework, config.model, config.attack, config.quantization
        out = {}
        for other in self.deployed_runtimes(f, n):
            if other == config.deployed_runtime:
                continue
            try:
                other_logits = self._adversarial_logits(f, n, a, q, "mobile", other)[0]
                other_clean = self._clean(f, n, q, "mobile", other).logits
            except (ConversionError, PlatformUnavailable) as exc:
                out[other] = {"unavailable": f"{type(exc).__name__}: {exc}"}
                continue
            out[other] = {"clean": _agreement(clean_logits, other_clean), "adversarial": _agreement(logits, other_logits)}
        return out

    def _runner_facts(self, config: Configuration, logits, clean) -> dict:
        """What a runner platform adds: its timings as the runner measured them, the runtime
        versions inside the bundle, the platform's facts, and the comparison with this host's
        runtime on the same file and the same images (the host-vs-ARM table)."""
        from harness.runtime.remote import job_timing

        f, n, a, q, p, r = (config.framework, config.model, config.attack, config.quantization, config.platform,
                            config.runtime)
        runtime = self.runtime(f, n, q, p, r)
        rows = self.rows(p)
        result = runtime.backend.run([runtime.request(self.adversarial_set(f, n, a).images[rows])])[0]
        clean_result = runtime.backend.run([runtime.request(self.evaluation(f, n).images[rows])])[0]
        for job in (result, clean_result):
            if isinstance(job, Exception):
                raise job
        timing = job_timing(result)
        host_logits = self._adversarial_logits(f, n, a, q, "mobile", r)[0][rows]
        host_clean = self._clean(f, n, q, "mobile", r).logits[rows]
        host = self.runtime(f, n, q, "mobile", r)
        host_versions = _host_runtime_versions(runtime.format)
        arm_versions = {k: v for k, v in result.versions.items() if k in host_versions}
        return {
            "emulated": bool(result.transport.get("emulated")),
            "inference_seconds": timing["inference_seconds"],
            "inference_seconds_per_image": timing["seconds_per_image"],
            "clean_inference_seconds": clean_result.job["inference_seconds"],
            "load_seconds": timing["load_seconds"],
            "timing_recorded": True,
            "transport": result.transport,
            "platform_facts": result.platform_facts,
            "runtime_versions": result.versions,
            "host_runtime_versions": host_versions,
            "runtime_versions_differ": sorted(k for k in host_versions if arm_versions.get(k) != host_versions[k]),
            "host_vs_arm": {
                "reference": "mobile",
                "runtime": host.__class__.__name__,
                "clean": _agreement(clean.logits, host_clean),
                "adversarial": _agreement(logits, host_logits),
                "arm_seconds_per_image": timing["seconds_per_image"],
                "host_seconds_per_image": self._clean(f, n, q, "mobile", r).seconds_per_image,
                "arm_timing": "emulated" if result.transport.get("emulated") else "measured on the device",
            },
        }

    def fingerprint(self, full: bool = True) -> dict:
        """What this run measures on, in the baseline's terms (see harness.metrics.gates).

        ``full=False`` gives what is known without loading a model (counts, seed,
        attack parameters); the full one adds the drawn ids and the weights' digests,
        the library versions and the settings."""
        fp = self.fingerprint_of(self.profile, self.n_samples)
        if not full:
            return fp
        ids = [int(i) for i in self.selection.ids]
        fp["samples"].update(ids_sha256=hashlib.sha256(json.dumps(ids).encode()).hexdigest(), ids=ids,
                             source=hashlib.sha256(json.dumps(self.source.fingerprint(), sort_keys=True)
                                                   .encode()).hexdigest())
        fp["weights"] = {m.spec.id: m.weights_digest
                         for m in (self.model(f, n) for f, n in registry.combinations(self.zoo))}
        fp["versions"] = library_versions()
        fp["settings"] = run_settings(self.threads)
        return fp

    @staticmethod
    def fingerprint_of(profile: Profile, n_samples: int) -> dict:
        samples = {"n": n_samples, "seed": profile.seed, "emulated_samples": profile.emulated_samples}
        if profile.direct:
            samples["direct_samples"] = profile.direct_samples
            samples["direct_emulated_samples"] = profile.direct_emulated_samples
        return {"samples": samples, "attacks": {a: profile.attack_params(a) for a in profile.attack_names}}

    def close(self) -> None:
        for runtime in self._runtimes.values():
            runtime.close()
        self._runtimes.clear()
        if self.executor is not None:
            self.executor.close()


def conversion_failure(config: Configuration, exc: ConversionError) -> dict:
    """What a record says of a configuration whose model did not convert: the converter (framework
    and file format), the quantization and the converter's own message."""
    fmt = runtime_format(config.framework, config.runtime)
    return {"converter": f"{config.framework} -> .{fmt}", "format": fmt, "runtime": config.deployed_runtime,
            "quantization": config.quantization, "message": str(exc)}


def error_record(config: Configuration, exc: BaseException, trace: str, zoo: str, profile: str) -> dict:
    """The record of a configuration that raised: the error, the end of its traceback and, when its
    model did not convert, :func:`conversion_failure`."""
    record = {"configuration": config.id, "framework": config.framework, "model": config.model,
              "attack": config.attack, "quantization": config.quantization, "platform": config.platform,
              "runtime": config.deployed_runtime, "zoo": zoo, "profile": profile,
              "error": f"{type(exc).__name__}: {exc}", "traceback": trace[-4000:], "passed": False}
    if isinstance(exc, ConversionError) and config.platform != "pc":
        record["conversion_failed"] = conversion_failure(config, exc)
    return record


def _runtime_of(framework: str, fmt: str | None) -> str | None:
    """The runtime name that runs ``fmt`` files of ``framework``'s models (None: native, or pc)."""
    if fmt is None or fmt == runtime_format(framework, None):
        return None
    return next(r for r, f in RUNTIME_FORMATS.items() if f == fmt)


def _deployment_facts(runtime, converted, clean_outputs, adversarial_outputs) -> dict:
    """What a record says about the outputs it compared and the file that made them: ``outputs`` is
    what agreement and ``max_abs_logit_diff`` compare (``logits``, or ``probabilities`` for a model
    with a softmax inside); ``top1_ties`` counts the images whose highest output is shared by
    several classes (quantized probabilities tie often; the prediction is then the lowest output
    index among them, numpy's argmax on every platform); a bring-your-own file's facts (recipe,
    metadata, batch, output) come along as ``user_model``; ``batch`` is how the runtime fed the file."""
    out = {"outputs": runtime.spec.output_kind,
           "top1_ties": {"clean": _ties(clean_outputs),
                         "adversarial": None if adversarial_outputs is None else _ties(adversarial_outputs)}}
    out["batch"] = runtime.batch_mode()  # fixed (chunks of the file's batch, padded) or dynamic
    metadata = getattr(getattr(converted, "artifact", None), "metadata", None) or {}
    if "user_model" in metadata:
        out["user_model"] = metadata["user_model"]
    return out


def _ties(outputs) -> int | None:
    """Images whose highest output value is reached by more than one output."""
    if outputs is None:
        return None
    outputs = np.asarray(outputs)
    if outputs.ndim != 2 or not len(outputs):
        return 0
    top = outputs.max(axis=1, keepdims=True)
    return int(((outputs == top).sum(axis=1) > 1).sum())


def _agreement(subject: np.ndarray, reference: np.ndarray) -> dict:
    """Prediction agreement, largest |logit difference| and bit-exactness of two logit arrays."""
    subject, reference = np.asarray(subject, np.float32), np.asarray(reference, np.float32)
    return {"n": int(len(subject)),
            "prediction_agreement": float((subject.argmax(axis=1) == reference.argmax(axis=1)).mean()),
            "max_abs_logit_diff": float(np.abs(subject - reference).max()) if len(subject) else 0.0,
            "bit_exact": bool(np.array_equal(subject.view(np.uint32), reference.view(np.uint32)))}


@functools.cache
def _host_runtime_versions(fmt: str) -> dict:
    """This host's version of the runtime that runs ``fmt`` files (to compare with the bundle's)."""
    from importlib.metadata import version

    import numpy

    if fmt == "tflite":
        return {"litert": version("ai-edge-litert"), "numpy": numpy.__version__}
    if fmt == "pte":
        from harness.runtime.executorch_runtime import executorch_versions

        return executorch_versions()
    torch = __import__("harness.frameworks", fromlist=["import_torch"]).import_torch()
    return {"torch": torch.__version__, "numpy": numpy.__version__}


@functools.cache
def _host_environment() -> dict:
    """This machine: CPU model, operating system, Python (the records' ``environment``)."""
    platform = _platform
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith(("model name", "hardware")):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"cpu": cpu, "cpu_count": os.cpu_count(), "os": platform.platform(),
            "python": platform.python_version()}


def _weights_bytes(model) -> int | None:
    return None if model.weights_path is None else Path(model.weights_path).stat().st_size


@functools.cache
def library_versions() -> dict:
    """Versions of everything that computes a number in the study (frameworks, converters,
    runtimes, attacks, statistics)."""
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": _platform.python_version()}
    for dist in ("torch", "torchvision", "tensorflow-cpu", "keras", "ai-edge-litert", "foolbox", "eagerpy",
                 "numpy", "scipy", "pillow"):
        try:
            out[dist] = version(dist)
        except PackageNotFoundError:
            out[dist] = None
    return out


def run_settings(threads: int) -> dict:
    """Settings that decide a number without being a library version: threads, the quantized
    engine and LiteRT resolver the runtimes use, and the machine."""
    from harness.convert.torch_mobile import ENGINE
    from harness.runtime.litert import resolver_name

    return {"threads": threads, "torch_quantized_engine": ENGINE, "litert_resolver": resolver_name(None),
            "cpu": _host_environment()["cpu"], "os": f"{_platform.system()} {_platform.release()}", "machine": _platform.machine()}
