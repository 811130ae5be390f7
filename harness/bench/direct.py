"""Benchmark: what a direct attack costs against each runtime.

    python -m harness.bench.direct [--queries 256] [--batch 32] [--samples 3]
        [--platforms pc mobile arm64 device] [--attacks boundary hopskipjump square]
        [--profile default] [--out FILE]

Reports, as JSON under ``reports/bench/`` and a table on stdout:

* **queries per second** against every runtime of the mini zoo's MobileNetV2 (the PC
  frameworks; LiteRT float and int8 and the torch lite interpreter float and int8 on this
  host; LiteRT int8 and float and torch int8 in the runner's serve mode under qemu, one
  process streamed to; the same on a phone when one is attached over ADB), at batch 1
  (a decision attack's usual query) and at ``--batch``. Each query is a uint8 image
  through ``predict_logits``, the path a direct attack takes; for runner platforms the
  session's start (process, imports, model load) is reported apart.
* **the cost of a direct attack per sample**: queries, seconds and success, for each
  attack named that this checkout has (decision attacks from the registry with the
  profile's parameters; Square, score-based, with the profile's FGSM eps), on the first
  ``--samples`` evaluation images, against the host's LiteRT int8 runtime and, when qemu
  is here, against the same file on ``arm64`` through one streamed session.

Under emulation, times measure qemu's translation, not a phone.
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
from harness.attack.profiles import load_profile
from harness.cache import ArtifactCache
from harness.convert import convert
from harness.data import fashion_mnist
from harness.data.samples import calibration_set
from harness.runtime import PlatformUnavailable, open_runtime
from harness.zoo import mini

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_OUT = REPO_ROOT / "reports" / "bench" / "direct.json"
MODEL = "mobilenet_v2"
# (platform, framework, quantization): the runtimes queried
RUNTIMES = [("pc", "tensorflow", "float"), ("pc", "pytorch", "float"),
            ("mobile", "tensorflow", "float"), ("mobile", "tensorflow", "int8"),
            ("mobile", "pytorch", "float"), ("mobile", "pytorch", "int8"),
            ("arm64", "tensorflow", "int8"), ("arm64", "tensorflow", "float"), ("arm64", "pytorch", "int8"),
            ("device", "tensorflow", "int8"), ("device", "tensorflow", "float"), ("device", "pytorch", "int8")]
HSJ_NAMES = ("hopskipjump", "hsj")


def open_for(platform_name: str, framework: str, quantization: str, cache: ArtifactCache, calibration):
    model = mini.load(framework, MODEL)
    if platform_name == "pc":
        return open_runtime("pc", model)
    art = convert(model, quantization, calibration, cache)
    options = {"cache": cache} if platform_name in ("arm64", "device") else {}
    return open_runtime(platform_name, model, art, quantization=quantization, **options)


def queries_per_second(runtime, images: np.ndarray, batch_sizes: list[int]) -> dict:
    """Images per second through the query path a direct attack uses, per batch size."""
    out = {}
    opener = getattr(runtime, "open_session", None)
    start = time.perf_counter()
    session = opener(log=lambda m: None) if opener else None
    if session is not None:
        out["session_start_seconds"] = time.perf_counter() - start
    query = session.predict_logits if session is not None else runtime.predict_logits
    try:
        for b in batch_sizes:
            query(images[:b])  # warm-up: allocation for this batch size
            n = (len(images) // b) * b
            start = time.perf_counter()
            for first in range(0, n, b):
                query(images[first:first + b])
            seconds = time.perf_counter() - start
            out[str(b)] = {"images": n, "calls": n // b, "seconds": seconds, "queries_per_second": n / seconds,
                           "calls_per_second": (n // b) / seconds}
    finally:
        if session is not None:
            session.close()
    return out


def attacks(names: list[str], profile) -> tuple[list, list[str]]:
    from harness.attack import registry
    from harness.attack.square import Square

    chosen, missing = [], []
    for name in names:
        if name == "square":
            eps = profile.attack_params("fgsm")["eps"] if "fgsm" in profile.attacks else 4 / 255
            chosen.append(Square(eps=eps, max_iter=300, p_init=0.1, nb_restarts=1))
            continue
        aliases = HSJ_NAMES if name in HSJ_NAMES else (name,)
        found = next((a for a in aliases if a in registry.names() and a in profile.attacks), None)
        if found is None:
            missing.append(name)
            continue
        chosen.append(registry.make_attack(found, profile.attack_params(found)))
    return chosen, missing


def attack_cost(attack, runtime, samples, seed: int) -> dict:
    from harness.attack.direct import run_direct

    result = run_direct(attack, runtime, samples.images, samples.labels, seed, ids=samples.ids, log=lambda m: None)
    return {"attack": attack.name, "params": dict(attack.params), "kind": getattr(attack, "kind", None),
            "platform": runtime.platform, "runtime": runtime.name, **result.totals,
            "per_sample": [{k: r[k] for k in ("id", "success", "queries", "seconds", "l2", "linf")}
                           for r in result.records()]}


def _versions() -> dict:
    out = {"python": sys.version.split()[0], "numpy": np.__version__}
    for name in ("torch", "tensorflow-cpu", "ai-edge-litert", "foolbox", "adversarial-robustness-toolbox"):
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = None
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m harness.bench.direct", description=__doc__.split("\n\n")[0])
    parser.add_argument("--queries", type=int, default=256, help="images queried per runtime and batch size")
    parser.add_argument("--batch", type=int, default=32, help="the batched query size (besides 1)")
    parser.add_argument("--samples", type=int, default=3, help="evaluation images attacked per attack")
    parser.add_argument("--platforms", nargs="+", default=["pc", "mobile", "arm64", "device"])
    parser.add_argument("--attacks", nargs="+", default=["boundary", "hopskipjump", "square"])
    parser.add_argument("--attack-platforms", nargs="+", default=["mobile", "arm64"],
                        help="where the attacks run (against LiteRT int8)")
    parser.add_argument("--profile", default="default", help="the profile whose attack parameters are used")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args(argv)

    profile = load_profile(args.profile)
    cache = ArtifactCache()
    test = fashion_mnist.load("test", "fixtures")
    images = test.images[: args.queries]
    samples = test.select(test.ids[: args.samples])
    calibration = calibration_set(fashion_mnist.load("train", "fixtures"), load_profile("default").calibration,
                                  load_profile("default").seed)
    rows, skipped = [], []
    for platform_name, framework, quantization in RUNTIMES:
        if platform_name not in args.platforms or any(s["platform"] == platform_name for s in skipped):
            continue
        try:
            runtime = open_for(platform_name, framework, quantization, cache, calibration)
        except PlatformUnavailable as exc:
            skipped.append({"platform": platform_name, "reason": str(exc).splitlines()[0]})
            continue
        with runtime:
            qps = queries_per_second(runtime, images, sorted({1, args.batch}))
        rows.append({"platform": platform_name, "framework": framework, "quantization": quantization,
                     "runtime": runtime.name, "threads": runtime.threads, **qps})
        print(f"  {platform_name} {framework} {quantization}: "
              + ", ".join(f"batch {b} {qps[str(b)]['queries_per_second']:.0f} q/s" for b in sorted({1, args.batch})),
              file=sys.stderr, flush=True)

    chosen, missing = attacks(args.attacks, profile)
    costs = []
    for platform_name in args.attack_platforms:
        if any(s["platform"] == platform_name for s in skipped):
            continue
        try:
            runtime = open_for(platform_name, "tensorflow", "int8", cache, calibration)
        except PlatformUnavailable as exc:
            skipped.append({"platform": platform_name, "attacks": True, "reason": str(exc).splitlines()[0]})
            continue
        with runtime:
            for attack in chosen:
                costs.append(attack_cost(attack, runtime, samples, args.seed))
                c = costs[-1]
                print(f"  {attack.name} on {platform_name}: {c['queries_per_sample']:.0f} queries, "
                      f"{c['seconds_per_sample']:.2f} s per sample", file=sys.stderr, flush=True)

    report = {
        "benchmark": "direct",
        "command": "python -m harness.bench.direct " + " ".join(argv if argv is not None else sys.argv[1:]),
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "environment": {**_versions(), "platform": platform.platform(), "machine": platform.machine(),
                        "cpu_count": os.cpu_count(),
                        "load_average": list(os.getloadavg()) if hasattr(os, "getloadavg") else None},
        "settings": {"model": MODEL, "queries": args.queries, "batch": args.batch, "samples": args.samples,
                     "profile": args.profile, "seed": args.seed, "sample_ids": [int(i) for i in samples.ids]},
        "queries_per_second": rows, "attack_costs": costs, "skipped": skipped,
        "attacks_not_in_this_checkout": missing,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1) + "\n")

    b = str(args.batch)
    header = f"{'platform':8} {'framework':10} {'quant':6} {'start s':>8} {'q/s b=1':>9} {f'q/s b={b}':>10}"
    print(header)
    print("-" * len(header))
    for r in rows:
        start = r.get("session_start_seconds")
        print(f"{r['platform']:8} {r['framework']:10} {r['quantization']:6} "
              f"{'' if start is None else f'{start:.1f}':>8} {r['1']['queries_per_second']:9.0f} "
              f"{r.get(b, r['1'])['queries_per_second']:10.0f}")
    if costs:
        header = f"{'attack':12} {'platform':8} {'success':>8} {'queries/sample':>15} {'s/sample':>9} {'median L2':>10}"
        print()
        print(header)
        print("-" * len(header))
        for c in costs:
            l2 = c["median_l2_successful"]
            print(f"{c['attack']:12} {c['platform']:8} {c['successes']:>4}/{c['samples']:<3} "
                  f"{c['queries_per_sample']:15.0f} {c['seconds_per_sample']:9.2f} "
                  f"{'-' if l2 is None else f'{l2:.2f}':>10}")
    for s in skipped:
        print(f"skipped {s['platform']}: {s['reason']}")
    if missing:
        print(f"not in this checkout's registry/profile: {', '.join(missing)}")
    print(f"-> {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
