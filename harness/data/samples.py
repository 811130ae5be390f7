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

    def to_dict(self) -> dict:
        return {
            "dataset": self.dataset, "split": self.split, "seed": self.seed,
            "n": int(len(self.ids)), "pool_size": self.pool_size, "candidates": self.candidates,
            "accuracy": self.accuracy, "ids": [int(i) for i in self.ids],
        }


def correctly_classified_by_all(dataset: ImageDataset, models: Sequence) -> tuple[np.ndarray, dict]:
    """Ids that every model predicts correctly, plus each model's accuracy on the whole set."""
    if not models:
        raise DataError("sample selection needs at least one model")
    correct = np.ones(len(dataset), dtype=bool)
    accuracy = {}
    for model in models:
        hits = model.predict(dataset.images) == dataset.labels
        accuracy[model.spec.id] = float(hits.mean())
        correct &= hits
    return np.sort(dataset.ids[correct]), accuracy


def draw(pool: np.ndarray, n: int, seed: int) -> np.ndarray:
    """A seeded draw of n distinct ids from the pool, returned sorted."""
    pool = np.sort(np.asarray(pool, dtype=np.int64))
    if n <= 0:
        raise DataError(f"sample count must be positive, got {n}")
    if n > len(pool):
        raise DataError(f"asked for {n} samples but only {len(pool)} are eligible")
    return np.sort(np.random.default_rng(seed).choice(pool, size=n, replace=False))


def select_samples(dataset: ImageDataset, models: Sequence, n: int, seed: int) -> SampleSelection:
    pool, accuracy = correctly_classified_by_all(dataset, models)
    if n > len(pool):
        raise DataError(
            f"asked for {n} evaluation samples but only {len(pool)} of {len(dataset)} "
            f"{dataset.name}/{dataset.split} images are classified correctly by all {len(models)} models"
        )
    return SampleSelection(dataset.name, dataset.split, seed, draw(pool, n, seed), len(pool), len(dataset), accuracy)


def calibration_set(pool: ImageDataset, n: int, seed: int, evaluation: SampleSelection | None = None) -> ImageDataset:
    """n calibration images from ``pool``, disjoint from the evaluation samples.

    When the pool is the evaluation split itself (e.g. an ImageNet validation folder),
    the evaluation ids are removed from it first.
    """
    candidates = pool.ids
    if evaluation is not None and evaluation.dataset == pool.name and evaluation.split == pool.split:
        candidates = np.setdiff1d(candidates, evaluation.ids)
    if n > len(candidates):
        raise DataError(
            f"asked for {n} calibration images but {pool.name}/{pool.split} has only "
            f"{len(candidates)} outside the evaluation samples"
        )
    # A distinct stream from the evaluation draw even when the seeds are equal.
    return pool.select(draw(candidates, n, seed + 1_000_003))
