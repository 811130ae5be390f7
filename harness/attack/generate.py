"""Generate an adversarial PNG set once, on the PC float model, and cache it.

The set is an artefact of :mod:`harness.cache` keyed by everything that changes its
bytes: model and weights digest, attack and parameters, profile, sample ids and
their pixels, seed, batch size and library versions. Generation runs in batches;
each finished batch is kept in ``<cache>/advset/.partial-<key>/`` so an interrupted
generation resumes where it stopped. Reading a set back verifies it (cache manifest
digests, then every PNG against the sidecar).

The batches (chunks) are run by an executor (:mod:`harness.executor`: this process, or Ray
tasks on a cluster); whichever ran them, this module alone saves them and assembles the set,
so the bytes and the key are the same.
"""

from __future__ import annotations

import functools
import hashlib
import platform
import shutil
import time
from pathlib import Path
from typing import Callable

import numpy as np

from harness.attack import pngset
from harness.attack.profiles import Profile
from harness.cache import ArtifactCache, atomic_write, cache_key, source_digest
from harness.data.dataset import ImageDataset
from harness.executor.base import Chunk, ChunkJob, Executor
from harness.executor.local import LocalExecutor
from harness.executor.progress import BuildProgress, ProgressFile
from harness.zoo.base import ZooModel

KIND = "advset"
# The code that decides a set's bytes: this package (attacks, batching, rounding, PNG writing), the
# model definitions and adapters the attacks run through, and the models' input normalisation. Not
# the training script: weights are keyed by their digest. Of the executor stage, only the chunk
# function every executor calls (harness/executor/base.py): which executor ran a chunk is not in the key.
GENERATION_SOURCES = ("harness/attack", "harness/zoo", "harness/data/preprocessing.py", "harness/executor/base.py")
GENERATION_SOURCES_EXCLUDE = ("train.py",)


@functools.cache
def generation_source_digest() -> str:
    """The digest of :data:`GENERATION_SOURCES`, part of every set's key: editing the generation
    code gives new keys, with no version number to remember to bump."""
    return source_digest(*GENERATION_SOURCES, exclude=GENERATION_SOURCES_EXCLUDE)


def library_versions(framework: str) -> dict:
    import eagerpy
    import foolbox

    versions = {"foolbox": foolbox.__version__, "eagerpy": eagerpy.__version__, "numpy": np.__version__,
                "python": platform.python_version()}
    if framework == "pytorch":
        import torch
        versions["torch"] = torch.__version__
    else:
        import keras
        import tensorflow as tf
        versions["tensorflow"] = tf.__version__
        versions["keras"] = keras.__version__
    return versions


def set_key_parts(model: ZooModel, attack: str, profile: Profile, samples: ImageDataset) -> dict:
    return {
        "code": generation_source_digest(),
        "model": model.spec.id,
        "weights_sha256": model.weights_digest,
        "attack": attack,
        "params": profile.attack_params(attack),
        "profile": profile.name,
        "seed": profile.seed,
        "batch_size": profile.attack_batch_size,
        "dataset": f"{samples.name}/{samples.split}",
        "sample_ids": [int(i) for i in samples.ids],
        "pixels_sha256": hashlib.sha256(np.ascontiguousarray(samples.images).tobytes()).hexdigest(),
        "labels": [int(i) for i in samples.labels],
        "versions": library_versions(model.spec.framework),
    }


def generate_set(model: ZooModel, attack: str, profile: Profile, samples: ImageDataset,
                 cache: ArtifactCache, log: Callable[[str], None] = print, executor: Executor | None = None,
                 progress_file: ProgressFile | None = None) -> pngset.AdversarialSet:
    """The adversarial set for these samples, generated now or read from the cache.

    ``executor`` runs the chunks (default: :class:`~harness.executor.local.LocalExecutor`, in this
    process); it never enters the key: every executor builds the same bytes. ``progress_file``
    gets the build's progress (chunks, samples/s, time left) as JSON."""
    executor = executor if executor is not None else LocalExecutor(log)
    if samples.images.shape[1:] != (model.spec.input_size, model.spec.input_size, 3):
        raise ValueError(f"{model.spec.id}: samples are {samples.images.shape[1:]}, the model takes "
                         f"{(model.spec.input_size, model.spec.input_size, 3)}")
    parts = set_key_parts(model, attack, profile, samples)  # validates the attack name via the profile
    key = cache_key(KIND, parts)
    label = f"{attack} set for {model.spec.id} ({len(samples)} samples, profile {profile.name})"
    partial = cache.root / KIND / f".partial-{key}"

    fresh: dict = {}

    def build(directory: Path) -> dict:
        sidecar, images, stage_seconds = _generate(model, attack, profile, samples, directory, partial, log, label,
                                                   executor, progress_file)
        fresh.update(sidecar=sidecar, images=images)
        # the manifest's metadata: the set's facts, and where its generation time went
        # (the overhead benchmark reads stage_seconds)
        return {**{k: v for k, v in sidecar.items() if k != "samples"}, "stage_seconds": stage_seconds}

    artifact = cache.get_or_build(KIND, parts, build, label=label)
    shutil.rmtree(partial, ignore_errors=True)  # published: the batches are no longer needed
    if artifact.built:
        # Built just now: every PNG was checked against these pixels as it was written,
        # and the manifest's digests were taken from the files on disk. Later reads verify again.
        return pngset.AdversarialSet(artifact.path, fresh["sidecar"], samples.ids.astype(np.int64),
                                     samples.labels.astype(np.int64), fresh["images"])
    expected = (model.spec.input_size, model.spec.input_size, 3)
    return pngset.read_set(artifact.path, expected)


def _generate(model, attack_name, profile, samples, directory, partial, log, label, executor,
              progress_file) -> tuple[dict, np.ndarray, dict]:
    """Attack in batches, round, evaluate, write; -> (sidecar, rounded images, stage seconds)."""
    images01 = samples.images.astype(np.float32) / 255.0
    n, size = len(samples), profile.attack_batch_size
    chunks = [Chunk(b, start, min(start + size, n), profile.seed + 1009 * b) for b, start in enumerate(range(0, n, size))]
    partial.mkdir(parents=True, exist_ok=True)
    progress = BuildProgress(label, len(chunks), n, executor.name, progress_file)
    batches: dict[int, dict] = {}
    wall = time.perf_counter()
    for chunk in chunks:  # finished batches of an interrupted run (any executor's: the bytes are the same)
        batch = _load_batch(partial / f"batch-{chunk.index:05d}.npz")
        if batch is not None:
            batches[chunk.index] = batch
            progress.resumed(chunk.samples)
            log(f"  {label}: batch {chunk.index + 1}/{len(chunks)} ({progress.samples_done}/{n} samples, "
                f"{time.perf_counter() - wall:.1f} s, kept from an interrupted run)")
    resumed = len(batches)

    def finished(chunk: Chunk, batch: dict) -> None:  # in this process, as each chunk finishes
        _save_batch(partial / f"batch-{chunk.index:05d}.npz", batch)
        batches[chunk.index] = batch
        progress.done(chunk.samples)
        progress.publish()
        log(f"  {label}: batch {chunk.index + 1}/{len(chunks)} ({progress.samples_done}/{n} samples, "
            f"{time.perf_counter() - wall:.1f} s; {progress.line()})")

    pending = [c for c in chunks if c.index not in batches]
    job = ChunkJob(model, attack_name, profile.attack_params(attack_name), images01, samples.labels)
    executor.run(job, pending, finished)
    progress.publish(finished=True)
    adversarials = np.empty_like(images01)
    success_before = np.empty(n, bool)
    failed_init: list[int] = []
    attack_seconds = 0.0
    for chunk in chunks:  # assembled in sample order, whatever order the chunks finished in
        batch = batches[chunk.index]
        rows = slice(chunk.start, chunk.stop)
        adversarials[rows] = batch["adversarials"]
        success_before[rows] = batch["success"]
        failed_init.extend(int(i) for i in batch["failed_init"])
        attack_seconds += float(batch["seconds"])
    attack_wall = time.perf_counter() - wall
    t0 = time.perf_counter()
    rounded = pngset.to_uint8(adversarials)
    success_after = model.predict(rounded) != samples.labels
    evaluate_seconds = time.perf_counter() - t0
    linf, l2 = pngset.distances(rounded, samples.images)
    failed_ids = {int(samples.ids[row]) for row in failed_init}
    records = [
        {"id": int(i), "label": int(y), "success_before_rounding": bool(sb), "success_after_rounding": bool(sa),
         "linf": float(a), "l2": float(b), "init_failed": int(i) in failed_ids}
        for i, y, sb, sa, a, b in zip(samples.ids, samples.labels, success_before, success_after, linf, l2)
    ]
    info = {
        "attack": attack_name, "params": profile.attack_params(attack_name), "profile": profile.name,
        "model": model.spec.id, "weights_sha256": model.weights_digest, "seed": profile.seed,
        "batch_size": size, "versions": library_versions(model.spec.framework),
        "generation_seconds": round(attack_seconds, 3), "batches": len(chunks), "batches_resumed": resumed,
        "init_failed_ids": sorted(failed_ids),
        "success_before_rounding": float(success_before.mean()), "success_after_rounding": float(success_after.mean()),
    }
    t0 = time.perf_counter()
    sidecar = pngset.write_set(directory, samples.ids, rounded, records, info)
    stage_seconds = {"attack": round(attack_wall, 3), "evaluate_after_rounding": round(evaluate_seconds, 3),
                     "write_pngs": round(time.perf_counter() - t0, 3)}
    log(f"  {label}: success {success_before.mean():.1%} before rounding, {success_after.mean():.1%} "
        f"after; {attack_seconds:.1f} s in the attack")
    return sidecar, rounded, stage_seconds


def _save_batch(path: Path, batch: dict) -> None:
    atomic_write(path, lambda fh: np.savez(fh, **batch))


def _load_batch(path: Path) -> dict | None:
    """A finished batch from an interrupted run, or None (absent or unreadable: recompute)."""
    if not path.is_file():
        return None
    try:
        with np.load(path) as data:
            return {k: data[k] for k in ("adversarials", "failed_init", "success", "seconds")}
    except Exception:  # a torn or foreign file is recomputed, never trusted
        path.unlink(missing_ok=True)
        return None
