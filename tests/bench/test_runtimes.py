"""The runtimes benchmark: what it times, and that its JSON and figure come out of a real run."""

import json

from harness.bench import runtimes


def test_plan_follows_the_zoos_deployments():
    planned = runtimes.plan(("pytorch", "tensorflow"), ("resnet50",), ("torch_lite", "executorch", "litert"))
    assert planned == [("tensorflow", "resnet50", ("litert",)),
                       ("pytorch", "resnet50", ("torch_lite", "executorch", "litert"))]
    assert runtimes.plan(("pytorch",), ("resnet50",), ("litert",)) == [("pytorch", "resnet50", ("litert",))]
    assert runtimes.plan(("tensorflow",), ("resnet50",), ("executorch",)) == []


def test_ratios_are_to_the_native_runtime_of_the_same_model_and_quantization():
    def row(runtime, batch, single, quantization="float"):
        return {"model": "mini/pytorch/m", "framework": "pytorch", "runtime": runtime, "quantization": quantization,
                "batch_seconds_per_image": {"median": batch}, "single_seconds_per_image": {"median": single}}

    rows = [row("pc", 1.0, 1.0), row("torch_lite", 2.0, 4.0), row("executorch", 1.0, 1.0),
            row("litert", 4.0, 2.0, "int8")]
    (only,) = runtimes.ratios(rows)  # litert int8 has no lite-interpreter int8 row to compare with
    assert only == {"model": "mini/pytorch/m", "quantization": "float", "runtime": "executorch",
                    "versus": "torch_lite", "batch": 0.5, "single": 0.25}


def test_a_small_run_writes_its_json_and_figure(tmp_path):
    out = tmp_path / "bench" / "runtimes.json"
    assert runtimes.main(["--frameworks", "tensorflow", "--models", "mobilenet_v2", "--quantization", "float",
                          "--images", "8", "--batch", "4", "--repeats", "1", "--out", str(out)]) == 0
    report = json.loads(out.read_text())
    assert [(r["runtime"], r["quantization"]) for r in report["results"]] == [("pc", "float"), ("litert", "float")]
    litert = report["results"][1]
    assert litert["top1_agreement_vs_pc"] == 1.0 and litert["max_abs_diff_vs_pc"] < 1e-3
    assert report["settings"]["images"] == 8 and report["environment"]["versions"]["ai-edge-litert"]
    assert (tmp_path / "bench" / "runtimes.png").stat().st_size > 0
