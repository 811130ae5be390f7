"""The executor registry, the local executor's contract and the progress file (no Ray needed)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from harness.executor import EXECUTORS, ExecutorError, make_executor
from harness.executor.base import Chunk, ChunkJob
from harness.executor.progress import BuildProgress, ProgressFile


def test_registry_offers_local_and_ray_and_local_takes_no_address():
    assert set(EXECUTORS) == {"local", "ray"}
    assert make_executor().name == "local"
    with pytest.raises(ExecutorError, match="--ray-address is for --executor ray"):
        make_executor("local", "127.0.0.1:1")
    with pytest.raises(ExecutorError, match="unknown executor 'dask'"):
        make_executor("dask")


def test_local_executor_runs_the_chunks_in_order(mini_models, fashion_test):
    model = mini_models[("pytorch", "resnet50")]
    images01 = fashion_test.images[:6].astype(np.float32) / 255
    job = ChunkJob(model, "fgsm", {"eps": 0.02}, images01, fashion_test.labels[:6])
    chunks = [Chunk(0, 0, 4, 1), Chunk(1, 4, 6, 1010)]
    seen = []
    make_executor("local").run(job, chunks, lambda c, r: seen.append((c.index, r["adversarials"].shape, r["failed_init"])))
    assert [(i, shape) for i, shape, _ in seen] == [(0, (4, 32, 32, 3)), (1, (2, 32, 32, 3))]


def test_progress_counts_chunks_rate_and_time_left(tmp_path):
    file = ProgressFile(tmp_path / "progress.json")
    progress = BuildProgress("fgsm set", 4, 40, "local", file)
    progress.resumed(10)
    progress.publish()
    state = json.loads((tmp_path / "progress.json").read_text())["current"]
    assert state["chunks_done"] == 1 and state["samples_per_second"] is None and state["eta_seconds"] is None
    progress.start -= 2.0  # two seconds for the next 10 samples
    progress.done(10)
    assert "2/4 chunks, 20/40 samples" in progress.line()
    state = progress.state()
    assert state["samples_per_second"] == pytest.approx(5.0, rel=0.05)
    assert state["eta_seconds"] == pytest.approx(4.0, rel=0.05)
    progress.done(10), progress.done(10)
    progress.publish(finished=True)
    written = json.loads((tmp_path / "progress.json").read_text())
    assert written["current"] is None and written["finished"][0]["eta_seconds"] == 0.0
