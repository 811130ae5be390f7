"""The fixed-vs-dynamic batch benchmark: a tiny run writes its JSON with both twins' numbers."""

import json

from harness.bench import batch


def test_a_tiny_run_times_both_twins_and_an_attack(tmp_path):
    out = tmp_path / "bench" / "batch.json"
    assert batch.main(["--size", "16", "--queries", "8", "--batch", "4", "--quantization", "int8",
                       "--platforms", "mobile", "--samples", "1", "--max-iter", "5", "--out", str(out)]) == 0
    report = json.loads(out.read_text())
    rows = {r["twin"]: r for r in report["queries_per_second"]}
    assert set(rows) == {"fixed1", "dynamic"}
    assert rows["fixed1"]["batch_mode"]["mode"] == "fixed" and rows["fixed1"]["batch_mode"]["size"] == 1
    assert rows["dynamic"]["batch_mode"]["mode"] == "dynamic"
    # batch 4 over 8 images: the fixed file takes one invoke per image, the dynamic one per call
    assert rows["fixed1"]["4"]["queries_per_second"] > 0 and rows["fixed1"]["4"]["calls"] == 2
    assert [c["twin"] for c in report["attack_costs"]] == ["fixed1", "dynamic"]
    assert all(c["samples"] == 1 and c["seconds_per_sample"] >= 0 for c in report["attack_costs"])
    assert report["environment"]["versions"]["ai-edge-litert"] and report["settings"]["size"] == 16
