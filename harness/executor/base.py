"""The executor stage's interface: who runs an adversarial set's chunks.

A set is attacked in chunks of ``profile.attack_batch_size`` samples; chunk ``b`` is seeded
``profile.seed + 1009 * b`` and is deterministic on its own, so chunks can run anywhere, in any
order. An :class:`Executor` runs a list of pending chunks and calls ``on_done(chunk, result)`` in
the driver as each one finishes; the driver alone saves finished chunks into the cache's partial
folder and assembles the set (:mod:`harness.attack.generate`). The executor never enters a set's
cache key: every executor builds the same bytes.
"""

from __future__ import annotations

import sys
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Callable

import numpy as np


class ExecutorError(RuntimeError):
    """An executor that cannot run (an unreachable cluster address, a missing package)."""


@dataclass(frozen=True)
class Chunk:
    """Samples ``start:stop`` of a set, the ``index``-th chunk, attacked with ``seed``."""

    index: int
    start: int
    stop: int
    seed: int

    @property
    def samples(self) -> int:
        return self.stop - self.start


@dataclass
class ChunkJob:
    """What every chunk of one set shares: the model, the attack and the samples (images in
    [0, 1], float32; int64 labels)."""

    model: object  # harness.zoo.base.ZooModel
    attack: str
    params: dict
    images01: np.ndarray
    labels: np.ndarray


ChunkResult = dict  # {"adversarials", "failed_init" (row numbers in the set), "success", "seconds"}


def run_chunk(attack, fmodel, images01: np.ndarray, labels: np.ndarray, chunk: Chunk) -> ChunkResult:
    """Attack one chunk: the one function every executor calls, in whatever process it runs."""
    t0 = time.perf_counter()
    out = attack.run(fmodel, images01, labels, seed=chunk.seed)
    return {"adversarials": out.adversarials, "failed_init": np.asarray(out.failed_init) + chunk.start,
            "success": out.success, "seconds": np.float64(time.perf_counter() - t0)}


def framework_threads() -> dict:
    """The driver's framework thread counts, so a remote worker computes with the same ones."""
    threads = {}
    if "torch" in sys.modules:
        threads["torch"] = sys.modules["torch"].get_num_threads()
    return threads


class Executor(ABC):
    """Runs chunks; ``name`` is the ``--executor`` value."""

    name: str = "?"

    @abstractmethod
    def run(self, job: ChunkJob, chunks: list[Chunk], on_done: Callable[[Chunk, ChunkResult], None]) -> None:
        """Run ``chunks``, calling ``on_done`` in this process as each finishes (in any order).
        An exception from ``on_done`` stops the run; chunks already handed to it are kept."""

    def describe(self) -> dict:
        """What a run's records say about the executor (never part of a set's key)."""
        return {"executor": self.name}

    def close(self) -> None:
        """Release what the executor holds (a Ray connection)."""
