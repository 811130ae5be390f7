"""Which images a run measures: the paper's sample selection and the calibration set.

Evaluation samples: the images that *every* model of *both* frameworks classifies
correctly (so a misclassification afterwards is the attack's doing), then a seeded
draw of N of them. Calibration images for int8 quantization are drawn from a
different pool (another split, or the same split minus the evaluation samples),
never from the evaluation samples: the original replication code got this wrong.

NumPy's PCG64 generator gives the same draw for the same seed on every machine.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from harness.data.dataset import DataError, ImageDataset


class PoolTooSmall(DataError):
    """More evaluation samples asked for than there are eligible images (a run-wide fact)."""

    def __init__(self, message: str, requested: int, pool_size: int):
        super().__init__(message)
        self.requested, self.pool_size = requested, pool_size


@dataclass(frozen=True)
class SampleSelection:
    """The drawn evaluation ids and how they were drawn (for the report)."""

    dataset: str
    split: str
    seed: int
    ids: np.ndarray
    pool_size: int
    candidates: int
    accuracy: dict = field(default_factory=dict)  # model id -> clean accuracy on all candidates
    pool: np.ndarray | None = None  # every eligible id (the draw's population), when known

    def to_dict(self) -> dict:
        return {
            "dataset": self.dataset, "split": self.split, "seed": self.seed,
            "n": int(len(self.ids)), "pool_size": self.pool_size, "candidates": self.candidates,
            "accuracy": self.accuracy, "ids": [int(i) for i in self.ids],
            "pool": None if self.pool is None else [int(i) for i in self.pool],
        }

    @classmethod
    def from_dict(cls, data: dict) -> "SampleSelection":
        pool = data.get("pool")
        return cls(data["dataset"], data["split"], data["seed"], np.asarray(data["ids"], np.int64), data["pool_size"],
                   data["candidates"], data["accuracy"], None if pool is None else np.asarray(pool, np.int64))


def draw(pool: np.ndarray, n: int, seed: int) -> np.ndarray:
    """A seeded draw of n distinct ids from the pool, returned sorted."""
    pool = np.sort(np.asarray(pool, dtype=np.int64))
    if n <= 0:
        raise DataError(f"sample count must be positive, got {n}")
    if n > len(pool):
        raise PoolTooSmall(f"asked for {n} samples but only {len(pool)} are eligible", n, len(pool))
    return np.sort(np.random.default_rng(seed).choice(pool, size=n, replace=False))


def select_samples(dataset: ImageDataset, models: Sequence, n: int, seed: int) -> SampleSelection:
    """Draw n of the images in ``dataset`` that every model classifies correctly."""
    hits = {model.spec.id: model.predict(dataset.images) == dataset.labels for model in models}
    return select_from_hits(dataset.name, dataset.split, dataset.ids, hits, n, seed)


def select_from_hits(name: str, split: str, ids: np.ndarray, hits: dict[str, np.ndarray], n: int,
                     seed: int) -> SampleSelection:
    """The selection from each model's per-candidate correctness (``hits[model id]``, in ``ids`` order)."""
    if not hits:
        raise DataError("sample selection needs at least one model")
    ids = np.asarray(ids, np.int64)
    correct = np.ones(len(ids), dtype=bool)
    for model_id, hit in hits.items():
        if len(hit) != len(ids):
            raise DataError(f"{model_id}: {len(hit)} predictions for {len(ids)} candidates")
        correct &= np.asarray(hit, bool)
    pool = np.sort(ids[correct])
    if n > len(pool):
        raise PoolTooSmall(
            f"asked for {n} evaluation samples but only {len(pool)} of {len(ids)} "
            f"{name}/{split} images are classified correctly by all {len(hits)} models "
            f"(the eligible pool): ask for at most {len(pool)}", n, len(pool))
    accuracy = {model_id: float(np.mean(hit)) if len(hit) else 0.0 for model_id, hit in hits.items()}
    return SampleSelection(name, split, seed, draw(pool, n, seed), len(pool), len(ids), accuracy, pool)


def calibration_set(pool: ImageDataset, n: int, seed: int, evaluation: SampleSelection | None = None) -> ImageDataset:
    """n calibration images from ``pool``, disjoint from the evaluation samples.

    When the pool is the evaluation split itself (e.g. an ImageNet validation folder),
    the evaluation ids are removed from it first.
    """
    return pool.select(calibration_ids(pool.ids, pool.name, pool.split, n, seed, evaluation))


def calibration_ids(pool_ids, name: str, split: str, n: int, seed: int,
                    evaluation: SampleSelection | None = None) -> np.ndarray:
    """The ids :func:`calibration_set` draws, for a pool that is not in memory."""
    candidates = np.asarray(pool_ids, np.int64)
    if evaluation is not None and evaluation.dataset == name and evaluation.split == split:
        candidates = np.setdiff1d(candidates, evaluation.ids)
    if n > len(candidates):
        raise DataError(
            f"asked for {n} calibration images but {name}/{split} has only "
            f"{len(candidates)} outside the evaluation samples"
        )
    # A distinct stream from the evaluation draw even when the seeds are equal.
    return draw(candidates, n, seed + 1_000_003)
