"""The executors benchmark on a tiny matrix: it runs, checks the sets are equal, and writes its JSON."""

from __future__ import annotations

import json

from harness.bench import executors


def test_schedule_is_the_longest_first_makespan():
    assert executors.schedule([4, 3, 3, 2], 2) == 6
    assert executors.schedule([1] * 10, 4) == 3


def test_benchmark_on_a_tiny_matrix(ray_cluster, tmp_path):
    out = tmp_path / "executors.json"
    assert executors.main(["--profile", "smoke", "--samples", "8", "--models", "pytorch/resnet50", "--attacks", "fgsm",
                           "--chunk-sizes", "4", "8", "--chunk-samples", "8", "--nodes", "1", "4",
                           "--ray-address", ray_cluster.address,
                           "--out", str(out)]) == 0
    result = json.loads(out.read_text())
    summary = result["overhead"]["summary"]
    assert summary["all_same"] and summary["ratio"] > 0
    assert [r["chunks"] for r in result["chunk_size"]] == [2, 1]
    wall = result["paper_estimate"]["wall_seconds_by_nodes"]
    assert wall["1"] >= wall["4"] > 0
    assert result["versions"]["ray"] and result["cluster"]["nodes"] >= 1
