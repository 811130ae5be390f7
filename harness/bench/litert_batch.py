"""Benchmark: LiteRT batch inference vs one image per ``invoke``, on the same model.

    python -m harness.bench.litert_batch [--models ...] [--quantization float int8]
        [--images 500] [--batch 64] [--repeats 5] [--threads 1 2] [--resolver default] [--out FILE]

For each mini-zoo TensorFlow model (trained weights) and quantization, the converted
``.tflite`` (from the artefact cache) runs the same images twice through the one
runtime the suite uses (:class:`harness.runtime.litert.LiteRTRuntime`): once in batches
(``resize_tensor_input`` to the batch size, one ``invoke`` per batch) and once one image
per ``invoke``, as the paper's app did. Each mode is repeated; min and median seconds per
image are reported, and the speedup is single / batch on the medians. Preprocessing is
part of both timings (the runtime normalises what it is given), so the comparison is
what a test run would see. Results: JSON under ``reports/bench/`` and a table on stdout.

Threads matter more than anything else here: with one thread, a mini model's per-image
compute dwarfs the per-``invoke`` overhead and batching gains little; with several, a
batch gives the kernels enough work to parallelise, a single 32x32 image does not. The
default therefore runs 1 thread and one per core.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np

import harness  # noqa: F401  (import guard first)
from harness.cache import ArtifactCache
from harness.convert import convert
from harness.data import fashion_mnist
from harness.runtime import open_runtime
from harness.zoo import mini
from harness.zoo.base import MODELS

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_OUT = REPO_ROOT / "reports" / "bench" / "litert_batch.json"


def _calibration(n: int):
    pool = fashion_mnist.load("train", "fixtures")
    try:
        from harness.data.samples import calibration_set
    except ImportError:
        return pool.select(pool.ids[:n])
    return calibration_set(pool, n, 0)


def _time(fn, repeats: int) -> list[float]:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return times


def bench_one(runtime, images: np.ndarray, batch: int, repeats: int) -> dict:
    n = len(images)
    runtime.predict_logits(images[:batch], batch_size=batch)  # warm-up: allocation, delegate setup
    runtime.predict_logits(images[:4], batch_size=1)
    batched_out = runtime.predict_logits(images, batch_size=batch)
    single_out = runtime.predict_logits(images, batch_size=1)
    batch_times = _time(lambda: runtime.predict_logits(images, batch_size=batch), repeats)
    single_times = _time(lambda: runtime.predict_logits(images, batch_size=1), repeats)
    per = lambda ts: {"min": min(ts) / n, "median": statistics.median(ts) / n}  # noqa: E731
    result = {
        "images": n, "batch_size": batch, "repeats": repeats,
        "batch_seconds_per_image": per(batch_times), "single_seconds_per_image": per(single_times),
        "batch_total_seconds": batch_times, "single_total_seconds": single_times,
        "max_abs_diff_batch_vs_single": float(np.abs(batched_out - single_out).max()),
        "top1_agreement_batch_vs_single": float((batched_out.argmax(1) == single_out.argmax(1)).mean()),
    }
    result["speedup_median"] = result["single_seconds_per_image"]["median"] / result["batch_seconds_per_image"]["median"]
    result["speedup_min"] = result["single_seconds_per_image"]["min"] / result["batch_seconds_per_image"]["min"]
    return result


def _environment() -> dict:
    import ai_edge_litert
    import tensorflow as tf

    return {
        "python": sys.version.split()[0], "platform": platform.platform(), "machine": platform.machine(),
        "cpu_count": os.cpu_count(), "tensorflow": tf.__version__,
        "ai_edge_litert": getattr(ai_edge_litert, "__version__", "unknown"), "numpy": np.__version__,
        "load_average": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m harness.bench.litert_batch", description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=MODELS)
    parser.add_argument("--quantization", nargs="+", default=["float", "int8"], choices=["float", "int8"])
    parser.add_argument("--images", type=int, default=500, help="evaluation images timed per mode")
    parser.add_argument("--batch", type=int, default=None,
                        help="batch size of the batched mode (default: the runtime's, what the suite uses)")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, nargs="+", default=sorted({1, os.cpu_count() or 1}))
    parser.add_argument("--resolver", default="default", help="LiteRT op resolver: default, builtin, reference")
    parser.add_argument("--calibration", type=int, default=1000, help="int8 calibration images")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args(argv)

    test = fashion_mnist.load("test", "fixtures")
    if args.images > len(test):
        parser.error(f"--images {args.images}: the committed test subset has {len(test)}")
    images = test.images[: args.images]
    cache = ArtifactCache()
    calibration = _calibration(args.calibration) if "int8" in args.quantization else None
    rows = []
    for name in args.models:
        model = mini.load("tensorflow", name)
        for quantization in args.quantization:
            art = convert(model, quantization, calibration, cache)
            for threads in args.threads:
                with open_runtime("mobile", model, art, threads=threads, resolver=args.resolver) as runtime:
                    result = bench_one(runtime, images, args.batch or runtime.default_batch_size, args.repeats)
                result.update(model=model.spec.id, quantization=quantization, threads=runtime.threads,
                              resolver=runtime.resolver, model_file=str(art.path), file_size_bytes=art.size_bytes)
                rows.append(result)
                print(f"  {model.spec.id} {quantization} threads={threads}: {result['speedup_median']:.2f}x",
                      file=sys.stderr, flush=True)

    report = {
        "benchmark": "litert_batch",
        "command": "python -m harness.bench.litert_batch " + " ".join(argv if argv is not None else sys.argv[1:]),
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "environment": _environment(),
        "target": "batch at least 2x faster per image than one image per invoke",
        "results": rows,
        "min_speedup_median": {str(t): min(r["speedup_median"] for r in rows if r["threads"] == t) for t in args.threads},
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1) + "\n")

    header = f"{'model':34} {'quant':6} {'thr':>3} {'batch ms/img':>13} {'single ms/img':>14} {'speedup':>8} {'max|diff|':>10}"
    print(header)
    print("-" * len(header))
    for r in rows:
        print(f"{r['model']:34} {r['quantization']:6} {r['threads']:3d} {1e3 * r['batch_seconds_per_image']['median']:13.3f} "
              f"{1e3 * r['single_seconds_per_image']['median']:14.3f} {r['speedup_median']:7.2f}x "
              f"{r['max_abs_diff_batch_vs_single']:10.2e}")
    lowest = ", ".join(f"{t} thread(s) {v:.2f}x" for t, v in report["min_speedup_median"].items())
    print(f"(median of {args.repeats} repeats, {args.images} images, batch {rows[0]['batch_size']}, resolver {args.resolver}; "
          f"lowest speedup: {lowest}) -> {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
