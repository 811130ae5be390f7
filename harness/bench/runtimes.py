"""Benchmark: per-image inference on every runtime the mini zoo deploys to, batch and single image.

    python -m harness.bench.runtimes [--models ...] [--frameworks ...] [--quantization float int8]
        [--runtimes ...] [--images 300] [--batch 64] [--repeats 5] [--threads 1] [--out FILE]

For each mini-zoo model and quantization, the model file of every runtime the zoo deploys
it to (:func:`harness.zoo.registry.deployments`: TensorFlow's on LiteRT; PyTorch's on the
lite interpreter ``.ptl``, ExecuTorch ``.pte`` and LiteRT ``.tflite`` through litert-torch)
is taken from the artefact cache (converted on a miss) and runs the same committed test
images twice through the suite's own runtime (:func:`harness.runtime.open_runtime` on
platform ``mobile``): in batches of ``--batch`` and one image per call. The PC framework's
float model runs the same way, as the row every mobile file is compared with. Each mode is
repeated; per image, min and median seconds are reported, the speedup single / batch on
the medians, and each file's largest |logit difference| and top-1 agreement against the PC
float model, so a fast runtime that computes something else shows it.

One process, one run: the machine is shared, so only the ratios within one report mean
much (e.g. ExecuTorch vs the lite interpreter on the same weights). Results: JSON and a
figure (per-image milliseconds per runtime, batch and single) under ``reports/bench/``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import numpy as np

import harness  # noqa: F401  (import guard first)
from harness.bench.litert_batch import _calibration, bench_one
from harness.cache import ArtifactCache
from harness.convert import ConversionError, convert
from harness.data import fashion_mnist
from harness.runtime import open_runtime
from harness.study import runtime_format
from harness.zoo import mini, registry
from harness.zoo.base import FRAMEWORKS, MODELS, RUNTIME_FORMATS

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_OUT = REPO_ROOT / "reports" / "bench" / "runtimes.json"
PC = "pc"  # the row name of the PC framework's float model
DISTRIBUTIONS = ("torch", "tensorflow-cpu", "ai-edge-litert", "executorch", "litert-torch", "numpy")


def _versions() -> dict:
    out = {}
    for dist in DISTRIBUTIONS:
        try:
            out[dist] = version(dist)
        except PackageNotFoundError:
            out[dist] = None
    return out


def _environment() -> dict:
    return {"python": sys.version.split()[0], "platform": platform.platform(), "machine": platform.machine(),
            "cpu_count": os.cpu_count(), "versions": _versions(),
            "load_average": list(os.getloadavg()) if hasattr(os, "getloadavg") else None}


def plan(frameworks, models, runtimes) -> list[tuple[str, str, tuple[str, ...]]]:
    """(framework, model, runtimes to time) from the mini zoo's deployments, kept to those asked for."""
    out = []
    for framework, name, deployed in registry.deployments("mini"):
        if framework in frameworks and name in models:
            chosen = tuple(r for r in deployed if r in runtimes)
            if chosen:
                out.append((framework, name, chosen))
    return out


def run(args, say=print) -> dict:
    test = fashion_mnist.load("test", "fixtures")
    if args.images > len(test):
        raise SystemExit(f"--images {args.images}: the committed test subset has {len(test)}")
    images = test.images[: args.images]
    cache = ArtifactCache(log=say)
    calibration = _calibration(args.calibration) if "int8" in args.quantization else None
    rows, failures = [], []
    for framework, name, runtimes in plan(args.frameworks, args.models, args.runtimes):
        model = mini.load(framework, name)
        with open_runtime("pc", model, threads=args.threads) as pc:
            result = bench_one(pc, images, args.batch, args.repeats)
            reference = pc.predict_logits(images, batch_size=args.batch)
        result.update(model=model.spec.id, framework=framework, runtime=PC, quantization="float",
                      threads=args.threads, max_abs_diff_vs_pc=0.0, top1_agreement_vs_pc=1.0)
        rows.append(result)
        say(f"  {model.spec.id} pc float: {1e3 * result['single_seconds_per_image']['median']:.3f} ms/img single")
        for quantization in args.quantization:
            for runtime_name in runtimes:
                fmt = runtime_format(framework, runtime_name)
                try:
                    art = convert(model, quantization, calibration, cache, format=fmt)
                except ConversionError as exc:
                    failures.append({"model": model.spec.id, "runtime": runtime_name, "quantization": quantization,
                                     "message": str(exc)})
                    say(f"  {model.spec.id} {runtime_name} {quantization}: conversion FAILED: {exc}")
                    continue
                with open_runtime("mobile", model, art, threads=args.threads) as runtime:
                    result = bench_one(runtime, images, args.batch, args.repeats)
                    logits = runtime.predict_logits(images, batch_size=args.batch)
                    engine, resolver = runtime.engine, runtime.resolver
                result.update(model=model.spec.id, framework=framework, runtime=runtime_name, format=fmt,
                              quantization=quantization, threads=args.threads, engine=engine, resolver=resolver,
                              model_file=str(art.path), file_size_bytes=art.size_bytes,
                              max_abs_diff_vs_pc=float(np.abs(logits - reference).max()),
                              top1_agreement_vs_pc=float((logits.argmax(1) == reference.argmax(1)).mean()))
                if "delegation" in art.artifact.metadata:
                    result["delegated_fraction"] = art.artifact.metadata["delegation"].get("delegated_fraction")
                rows.append(result)
                say(f"  {model.spec.id} {runtime_name} {quantization}: "
                    f"{1e3 * result['batch_seconds_per_image']['median']:.3f} ms/img batch, "
                    f"{1e3 * result['single_seconds_per_image']['median']:.3f} single")
    return {
        "benchmark": "runtimes",
        "command": "python -m harness.bench.runtimes " + " ".join(args.argv),
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "environment": _environment(),
        "settings": {"images": len(images), "batch_size": args.batch, "repeats": args.repeats,
                     "threads": args.threads, "calibration": args.calibration},
        "results": rows,
        "conversion_failures": failures,
        "ratios": ratios(rows),
    }


def ratios(rows: list[dict]) -> list[dict]:
    """Per model and quantization, each runtime's median seconds per image over the native
    runtime's (the lite interpreter for PyTorch, LiteRT for TensorFlow), batch and single:
    the comparison that survives a noisy machine."""
    from harness.zoo.base import NATIVE_RUNTIMES

    out = []
    for r in rows:
        if r["runtime"] == PC:
            continue
        native = next((n for n in rows if n["model"] == r["model"] and n["quantization"] == r["quantization"]
                       and n["runtime"] == NATIVE_RUNTIMES[r["framework"]]), None)
        if native is None or native is r:
            continue
        out.append({"model": r["model"], "quantization": r["quantization"], "runtime": r["runtime"],
                    "versus": native["runtime"],
                    "batch": r["batch_seconds_per_image"]["median"] / native["batch_seconds_per_image"]["median"],
                    "single": r["single_seconds_per_image"]["median"] / native["single_seconds_per_image"]["median"]})
    return out


def figure(report: dict, path: Path) -> Path:
    """Per-image milliseconds (median) per model file: one group per model and quantization,
    one bar pair (batch, single image) per runtime."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = report["results"]
    groups = list(dict.fromkeys((r["model"], r["quantization"]) for r in rows if r["runtime"] != PC))
    runtimes = list(dict.fromkeys(r["runtime"] for r in rows))
    colours = dict(zip(runtimes, plt.cm.tab10.colors))
    fig, ax = plt.subplots(figsize=(max(6.0, 1.3 * len(groups)), 4.2))
    width = 0.8 / max(1, 2 * len(runtimes))
    labelled: set[str] = set()
    for g, (model, quantization) in enumerate(groups):
        present = [r for r in rows if r["model"] == model and (r["quantization"] == quantization or r["runtime"] == PC)]
        for k, runtime in enumerate(runtimes):
            row = next((r for r in present if r["runtime"] == runtime), None)
            if row is None:
                continue
            x = g - 0.4 + (2 * k + 0.5) * width
            label_b = None if runtime in labelled else f"{runtime} batch"
            label_s = None if runtime in labelled else f"{runtime} single image"
            labelled.add(runtime)
            ax.bar(x, 1e3 * row["batch_seconds_per_image"]["median"], width, color=colours[runtime], label=label_b)
            ax.bar(x + width, 1e3 * row["single_seconds_per_image"]["median"], width, color=colours[runtime],
                   alpha=0.45, hatch="//", label=label_s)
    ax.set_xticks(range(len(groups)))
    ax.set_xticklabels([f"{m.split('/')[1]}\n{m.split('/')[-1]}\n{q}" for m, q in groups], fontsize=6)
    ax.set_ylabel("ms per image (median)")
    ax.set_yscale("log")
    s = report["settings"]
    ax.set_title(f"Per-image inference by runtime: {s['images']} images, batch {s['batch_size']} vs 1,\n"
                 f"{s['threads']} thread(s); the PC framework's float model for reference", fontsize=9)
    ax.legend(fontsize=6, ncol=2)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m harness.bench.runtimes", description=__doc__.split("\n\n")[0])
    parser.add_argument("--frameworks", nargs="+", default=list(FRAMEWORKS), choices=FRAMEWORKS)
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=MODELS)
    parser.add_argument("--runtimes", nargs="+", default=list(RUNTIME_FORMATS), choices=list(RUNTIME_FORMATS))
    parser.add_argument("--quantization", nargs="+", default=["float", "int8"], choices=["float", "int8"])
    parser.add_argument("--images", type=int, default=300, help="committed test images timed per mode")
    parser.add_argument("--batch", type=int, default=64, help="batch size of the batched mode")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--calibration", type=int, default=200, help="int8 calibration images (the default profile's)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args(argv)
    for name in ("images", "batch", "repeats", "threads", "calibration"):
        if getattr(args, name) <= 0:
            parser.error(f"--{name} must be positive, got {getattr(args, name)}")
    args.argv = list(argv if argv is not None else sys.argv[1:])
    report = run(args, say=lambda m: print(m, file=sys.stderr, flush=True))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    from harness.cache import atomic_write

    report["figure"] = str(figure(report, args.out.with_suffix(".png")))
    atomic_write(args.out, json.dumps(report, indent=1) + "\n")

    header = (f"{'model':28} {'runtime':11} {'quant':6} {'batch ms/img':>13} {'single ms/img':>14} {'speedup':>8} "
              f"{'max|d| vs pc':>12} {'top1 vs pc':>10}")
    print(header)
    print("-" * len(header))
    for r in report["results"]:
        print(f"{r['model']:28} {r['runtime']:11} {r['quantization']:6} "
              f"{1e3 * r['batch_seconds_per_image']['median']:13.3f} {1e3 * r['single_seconds_per_image']['median']:14.3f} "
              f"{r['speedup_median']:7.2f}x {r['max_abs_diff_vs_pc']:12.2e} {100 * r['top1_agreement_vs_pc']:9.1f}%")
    for f in report["conversion_failures"]:
        print(f"{f['model']} {f['runtime']} {f['quantization']}: conversion failed: {f['message']}")
    print(f"(median of {args.repeats} repeats; ratios to the native runtime in the JSON) -> {args.out}, {report['figure']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
