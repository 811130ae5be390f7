"""Attacks aimed at the deployed model: decision- and score-based attacks that query a
harness :class:`~harness.runtime.base.Runtime` (any platform) instead of the PC float model.

:class:`RuntimeModel` has the :class:`~harness.attack.attacks.FoolboxModel` interface
(``framework``, ``fmodel``, ``tensors()``, ``to_numpy()``, ``seed()``), so the attack
classes run unchanged against it. Foolbox works on float NHWC images in [0, 1]; every
query is rounded to uint8, as the app receives a photo, and sent through
``runtime.predict_logits``. :class:`QueryCounter` counts the images queried (the
attack's *queries*), the calls made and the seconds spent in them.

:func:`run_direct` attacks one sample at a time (an attacker with the app in hand attacks
one photo; queries and seconds are then exact per sample), rounds each result to uint8,
and verifies success by querying the runtime with that final image (never the attack's
own flag). The result is an artefact of the cache, keyed by the model file's digest, the
platform's identity, the attack and its parameters, the samples' ids and pixels, the seed
and this code's source, so a warm run attacks nothing again. Runtimes that run in the
on-device runner (``arm64``, ``device``) are queried through one streaming runner process
for the whole attack (:meth:`harness.runtime.remote.RunnerRuntime.open_session`).

The study's entry point is :func:`direct_attack`.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import platform as host_platform
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from harness.attack.pngset import distances, to_uint8
from harness.cache import ArtifactCache, atomic_write, file_sha256, source_digest

KIND = "direct"
# The code that decides a direct result's bits: the attack package, the runtime stage (how
# queries reach the model), the runner and its serve mode, and the input normalisation.
DIRECT_SOURCES = ("harness/attack", "harness/runtime", "android_harness/runner.py", "android_harness/serve.py",
                  "harness/data/preprocessing.py")


PROGRESS_SECONDS = 10.0  # a progress line at most this often (and after the last sample)


class DirectAttackError(ValueError):
    """Bad input to a direct attack (labels, image shapes): the message names the value and what was expected."""


@functools.cache
def direct_source_digest() -> str:
    return source_digest(*DIRECT_SOURCES)


@dataclass
class QueryCounter:
    """Images queried, calls made, seconds spent in the runtime."""

    queries: int = 0
    calls: int = 0
    seconds: float = 0.0

    def snapshot(self) -> tuple[int, int, float]:
        return self.queries, self.calls, self.seconds


class RuntimeModel:
    """A harness Runtime seen through Foolbox: NHWC [0, 1] numpy in, the runtime's logits out.

    ``query`` is what answers a uint8 batch (default: ``runtime.predict_logits``; a runner
    platform's streaming session otherwise). ``batch_size`` bounds the images per call.
    """

    framework = "numpy"

    def __init__(self, runtime, counter: QueryCounter | None = None, query: Callable | None = None,
                 batch_size: int | None = None):
        import foolbox

        self.runtime = runtime
        self.spec = runtime.spec
        self.counter = counter or QueryCounter()
        self._query = query or runtime.predict_logits
        self.batch_size = batch_size
        self.fmodel = foolbox.models.NumPyModel(self._forward, bounds=(0, 1), data_format="channels_last")

    def _forward(self, images01: np.ndarray) -> np.ndarray:
        images = to_uint8(images01)  # what the app receives: a photo, whole grey levels
        start = time.perf_counter()
        logits = self._query(images, self.batch_size) if self.batch_size else self._query(images)
        self.counter.seconds += time.perf_counter() - start
        self.counter.queries += len(images)
        self.counter.calls += 1
        return np.asarray(logits, dtype=np.float32)

    def logits_uint8(self, images: np.ndarray) -> np.ndarray:
        """Logits of uint8 images, counted like any other query."""
        return self._forward(images.astype(np.float32) / 255.0)

    def tensors(self, images01: np.ndarray, labels: np.ndarray):
        return np.ascontiguousarray(images01, dtype=np.float32), np.asarray(labels, dtype=np.int64)

    def to_numpy(self, tensor) -> np.ndarray:
        return np.ascontiguousarray(np.asarray(tensor.numpy() if hasattr(tensor, "numpy") else tensor),
                                    dtype=np.float32)

    def seed(self, seed: int) -> None:
        """Seed NumPy's global RNG: Foolbox's draws on NumPy tensors (eagerpy) and ART's use it."""
        import random

        np.random.seed(seed % 2**32)
        random.seed(seed)


# -- identity ---------------------------------------------------------------------------------
def model_digest(runtime) -> str:
    """The deployed file's SHA-256 (the PC model's weights digest on the ``pc`` platform)."""
    digest = getattr(runtime, "model_sha256", None)
    if digest:
        return digest
    if runtime.model_path is not None:
        return file_sha256(Path(runtime.model_path))
    model = getattr(runtime, "model", None)
    weights = getattr(model, "weights_digest", None)
    if weights:
        return weights
    raise DirectAttackError(f"{runtime.where}: no model file or weights digest to key a direct attack by")


def platform_identity(runtime) -> dict:
    """What decides the logits a query gets: platform, runtime, its settings, library versions,
    and for a runner platform the transport's identity (emulated CPU and qemu, or the phone)."""
    facts = {"platform": runtime.platform, "runtime": type(runtime).__name__, "framework": runtime.framework,
             "quantization": runtime.quantization, "threads": runtime.threads, "resolver": runtime.resolver,
             "engine": runtime.engine}
    if getattr(runtime.spec, "output", None) is not None:  # a file with several outputs: which one is read
        facts["output"] = runtime.spec.output
    backend = getattr(runtime, "backend", None)
    if backend is not None:
        facts["transport"] = backend.transport.key_facts()
        facts["runner_sha256"] = backend.runner_sha256
    else:
        facts["machine"] = host_platform.machine()
        facts["versions"] = _host_versions(runtime)
    return facts


def _host_versions(runtime) -> dict:
    from importlib.metadata import PackageNotFoundError, version

    out = {"numpy": np.__version__}
    for name in runtime.version_packages:  # the runtime class's own (ExecuTorch's: none yet)
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = None
    return out


def attack_versions(attack) -> dict:
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for name in ("foolbox", "eagerpy", "adversarial-robustness-toolbox"):
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = None
    return out


# -- results ------------------------------------------------------------------------------------
@dataclass
class DirectResult:
    attack: str
    params: dict
    kind: str
    identity: dict
    ids: np.ndarray
    labels: np.ndarray
    adversarials: np.ndarray = field(repr=False)  # uint8 NHWC, what was verified
    clean_predictions: np.ndarray = field(repr=False)
    predictions: np.ndarray = field(repr=False)  # the runtime's class for each adversarial
    success: np.ndarray = field(repr=False)  # predictions != labels, from the runtime itself
    queries: np.ndarray = field(repr=False)  # images the attack queried, per sample (verification not included)
    calls: np.ndarray = field(repr=False)
    l2: np.ndarray = field(repr=False)
    linf: np.ndarray = field(repr=False)
    seconds: np.ndarray = field(repr=False)  # wall time of each sample's attack
    query_seconds: np.ndarray = field(repr=False)  # of which in the runtime
    totals: dict = field(default_factory=dict)
    cached: bool = False
    path: Path | None = None  # the cache artefact holding direct.npz and result.json

    def records(self) -> list[dict]:
        return [{"id": int(i), "label": int(y), "clean_prediction": int(c), "prediction": int(p),
                 "success": bool(s), "queries": int(q), "calls": int(k), "l2": float(a), "linf": float(b),
                 "seconds": float(t), "query_seconds": float(u)}
                for i, y, c, p, s, q, k, a, b, t, u in zip(self.ids, self.labels, self.clean_predictions,
                                                          self.predictions, self.success, self.queries, self.calls,
                                                          self.l2, self.linf, self.seconds, self.query_seconds)]


def _totals(result: DirectResult) -> dict:
    n = len(result.ids)
    ok = result.success
    return {"samples": n, "success_rate": float(ok.mean()) if n else 0.0, "successes": int(ok.sum()),
            "clean_correct": int((result.clean_predictions == result.labels).sum()),
            "queries": int(result.queries.sum()), "calls": int(result.calls.sum()),
            "seconds": float(result.seconds.sum()), "query_seconds": float(result.query_seconds.sum()),
            "queries_per_sample": float(result.queries.mean()) if n else 0.0,
            "seconds_per_sample": float(result.seconds.mean()) if n else 0.0,
            "median_l2_successful": float(np.median(result.l2[ok])) if ok.any() else None,
            "median_linf_successful": float(np.median(result.linf[ok])) if ok.any() else None}


def check_inputs(runtime, images: np.ndarray, labels: np.ndarray, ids: np.ndarray | None) -> tuple:
    images = np.asarray(images)
    labels = np.asarray(labels)
    spec = runtime.spec
    expected = (spec.input_size, spec.input_size, 3)
    if images.dtype != np.uint8 or images.ndim != 4 or images.shape[1:] != expected:
        raise DirectAttackError(f"{runtime.where}: direct attack images must be uint8 (N, {expected[0]}, "
                                f"{expected[1]}, 3) RGB, got {images.dtype} {images.shape}")
    if labels.ndim != 1 or len(labels) != len(images):
        raise DirectAttackError(f"{runtime.where}: expected one label per image ({len(images)}), got labels of "
                                f"shape {labels.shape}")
    if not np.issubdtype(labels.dtype, np.integer):
        raise DirectAttackError(f"{runtime.where}: labels must be integers, got {labels.dtype}")
    bad = (labels < 0) | (labels >= spec.num_classes)
    if bad.any():
        raise DirectAttackError(f"{runtime.where}: label {int(labels[bad][0])} (row {int(np.flatnonzero(bad)[0])}) "
                                f"is out of range; the model has {spec.num_classes} classes (0-{spec.num_classes - 1})")
    ids = np.arange(len(images)) if ids is None else np.asarray(ids)
    if ids.shape != labels.shape:
        raise DirectAttackError(f"{runtime.where}: {len(ids)} sample ids for {len(images)} images")
    return images, labels.astype(np.int64), ids.astype(np.int64)


def key_parts(attack, runtime, images: np.ndarray, labels: np.ndarray, ids: np.ndarray, seed: int,
              batch_size: int | None) -> dict:
    n = runtime.spec.normalization
    return {"code": direct_source_digest(), "attack": attack.name, "params": dict(attack.params),
            "model_sha256": model_digest(runtime), "spec": runtime.spec.id, "num_classes": runtime.spec.num_classes,
            "normalization": {"scale": n.scale, "mean": list(n.mean), "std": list(n.std),
                              "channel_order": n.channel_order, "layout": n.layout},
            "identity": platform_identity(runtime), "sample_ids": [int(i) for i in ids],
            "pixels_sha256": hashlib.sha256(repr(images.shape).encode() + np.ascontiguousarray(images).tobytes()
                                            ).hexdigest(),
            "labels": [int(y) for y in labels], "seed": int(seed), "batch_size": batch_size,
            "versions": attack_versions(attack)}


@contextlib.contextmanager
def query_channel(runtime, log):
    """The callable a direct attack's queries go through: a streaming session for runner
    platforms (one process for the whole attack), the runtime itself otherwise."""
    opener = getattr(runtime, "open_session", None)
    if opener is None:
        yield runtime.predict_logits
        return
    with opener(log=log) as session:
        yield session.predict_logits


def run_direct(attack, runtime, images: np.ndarray, labels: np.ndarray, seed: int, *, ids=None,
               cache: ArtifactCache | None = None, log: Callable[[str], None] = print,
               batch_size: int | None = None) -> DirectResult:
    """``attack`` (an attack class instance) run directly against ``runtime`` on uint8 ``images``.

    With ``cache``, the result is read from (or published to) the artefact cache; samples
    finished by an interrupted run are kept under ``<cache>/direct/.partial-<key>/``.
    """
    images, labels, ids = check_inputs(runtime, images, labels, ids)
    if cache is None:
        return _attack_all(attack, runtime, images, labels, ids, seed, log, None, batch_size)
    from harness.cache import cache_key

    parts = key_parts(attack, runtime, images, labels, ids, seed, batch_size)
    key = cache_key(KIND, parts)
    partial = cache.root / KIND / f".partial-{key}"
    label = f"direct {attack.name} on {runtime.name} ({len(images)} samples)"
    fresh: dict = {}

    def build(directory: Path) -> dict:
        result = _attack_all(attack, runtime, images, labels, ids, seed, log, partial, batch_size)
        _save(result, directory)
        fresh["result"] = result
        return {"attack": attack.name, "platform": runtime.platform, "totals": result.totals}

    artifact = cache.get_or_build(KIND, parts, build, label=label)
    shutil.rmtree(partial, ignore_errors=True)
    if artifact.built:
        fresh["result"].path = artifact.path
        return fresh["result"]
    result = _load(artifact.path)
    result.cached = True
    result.path = artifact.path
    return result


def _attack_all(attack, runtime, images, labels, ids, seed, log, partial: Path | None, batch_size) -> DirectResult:
    n = len(images)
    shape = images.shape[1:]
    out = {"adversarials": np.empty((n, *shape), np.uint8), "clean": np.empty(n, np.int64),
           "pred": np.empty(n, np.int64), "queries": np.zeros(n, np.int64), "calls": np.zeros(n, np.int64),
           "seconds": np.zeros(n), "query_seconds": np.zeros(n)}
    if partial is not None:
        partial.mkdir(parents=True, exist_ok=True)
    wall = last = time.perf_counter()
    with query_channel(runtime, log) as query:
        counter = QueryCounter()
        model = RuntimeModel(runtime, counter, query=query, batch_size=batch_size)
        verify = QueryCounter()
        checker = RuntimeModel(runtime, verify, query=query, batch_size=batch_size)
        for row in range(n):
            done = _load_sample(partial, row)
            if done is None:
                done = _attack_one(attack, model, checker, images[row:row + 1], labels[row:row + 1],
                                   seed + 7919 * row)
                if partial is not None:
                    atomic_write(partial / f"sample-{row:05d}.npz", lambda fh, d=done: np.savez(fh, **d))
            for k in out:
                out[k][row] = done[k]
            if row + 1 == n or time.perf_counter() - last >= PROGRESS_SECONDS:
                last = time.perf_counter()
                log(f"  direct {attack.name} on {runtime.name}: {row + 1}/{n} samples, "
                    f"{int(out['pred'][:row + 1].__ne__(labels[:row + 1]).sum())} fooled, "
                    f"{int(out['queries'][:row + 1].sum())} queries, {time.perf_counter() - wall:.1f} s")
    linf, l2 = distances(out["adversarials"], images)
    result = DirectResult(attack.name, dict(attack.params), getattr(attack, "kind", "decision"),
                          platform_identity(runtime), ids, labels, out["adversarials"], out["clean"], out["pred"],
                          out["pred"] != labels, out["queries"], out["calls"], l2, linf, out["seconds"],
                          out["query_seconds"])
    result.totals = _totals(result)
    return result


def _attack_one(attack, model: RuntimeModel, checker: RuntimeModel, image: np.ndarray, label: np.ndarray,
                seed: int) -> dict:
    clean = int(checker.logits_uint8(image).argmax(axis=1)[0])
    before = model.counter.snapshot()
    start = time.perf_counter()
    model.seed(seed)
    output = attack.run(model, image.astype(np.float32) / 255.0, label, seed)
    seconds = time.perf_counter() - start
    after = model.counter.snapshot()
    adversarial = to_uint8(output.adversarials)
    if adversarial.shape != image.shape:
        raise DirectAttackError(f"{attack!r} returned adversarials of shape {adversarial.shape} for {image.shape}")
    prediction = int(checker.logits_uint8(adversarial).argmax(axis=1)[0])  # the runtime's verdict, not the attack's
    return {"adversarials": adversarial[0], "clean": clean, "pred": prediction, "queries": after[0] - before[0],
            "calls": after[1] - before[1], "seconds": seconds, "query_seconds": after[2] - before[2]}


def _load_sample(partial: Path | None, row: int) -> dict | None:
    if partial is None:
        return None
    path = partial / f"sample-{row:05d}.npz"
    if not path.is_file():
        return None
    try:
        with np.load(path) as data:
            return {k: data[k] for k in data.files}
    except Exception:  # a torn file is recomputed, never trusted
        path.unlink(missing_ok=True)
        return None


_ARRAYS = ("ids", "labels", "adversarials", "clean_predictions", "predictions", "success", "queries", "calls", "l2",
           "linf", "seconds", "query_seconds")


def _save(result: DirectResult, directory: Path) -> None:
    np.savez(directory / "direct.npz", **{k: getattr(result, k) for k in _ARRAYS})
    info = {"attack": result.attack, "params": result.params, "kind": result.kind, "identity": result.identity,
            "totals": result.totals, "samples": result.records()}
    (directory / "result.json").write_text(json.dumps(info, indent=1, sort_keys=True) + "\n")


def _load(directory: Path) -> DirectResult:
    info = json.loads((directory / "result.json").read_text())
    with np.load(directory / "direct.npz") as data:
        arrays = {k: data[k] for k in _ARRAYS}
    result = DirectResult(info["attack"], info["params"], info["kind"], info["identity"], **arrays)
    result.totals = info["totals"]
    return result


def direct_attack(runtime, samples, attack_name: str, params: dict, seed: int, cache: ArtifactCache | None,
                  log: Callable[[str], None] = print, make_attack: Callable | None = None) -> DirectResult:
    """The study's entry point: attack ``name`` with the profile's ``params`` directly against
    ``runtime`` on ``samples`` (an :class:`~harness.data.dataset.ImageDataset`, e.g. the
    adversarial set's samples: same ids as the transfer attacks), cached in ``cache``."""
    if make_attack is None:
        from harness.attack.registry import make_attack
    attack = make_attack(attack_name, params)
    return run_direct(attack, runtime, samples.images, samples.labels, seed, ids=samples.ids, cache=cache, log=log)


__all__ = ["DirectAttackError", "DirectResult", "QueryCounter", "RuntimeModel", "direct_attack", "run_direct"]
