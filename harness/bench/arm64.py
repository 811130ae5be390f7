"""Benchmark: the aarch64 runtime bundle and the arm64 platform (runtimes' ARM builds under qemu).

    python -m harness.bench.arm64 [--images 32] [--variants full litert] [--out FILE]

Reports, as JSON under ``reports/bench/`` and a table on stdout:

* **bundle build time** per variant, in a fresh artefact cache: *cold* (nothing
  downloaded: fetch from Debian and PyPI, unpack, trim, precompile), *downloads cached*
  (the fetched files kept by digest, the bundle built again) and *cached* (an artefact
  hit: every file's digest verified, nothing built);
* **bundle size**: unpacked bytes and files, and packed as the ``.tar.gz`` a phone receives;
* **per-image inference** for every mini-zoo model file (2 frameworks x 3 models x
  float/int8): the runner under qemu (fresh, not from the result cache; batches of 64,
  one thread; the runner's own timing, so process start and ``import torch`` are not in
  it) against this host's runtime on the same file and images, and the ratio of the two.
  Under emulation the ARM time measures qemu's translation (float vector operations are
  emulated in software), not a phone.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

import harness  # noqa: F401  (import guard first)
from android_harness import bundle as bundles
from android_harness.qemu import QemuTransport, find_qemu
from harness.attack.profiles import load_profile
from harness.cache import ArtifactCache
from harness.runtime import open_runtime
from harness.runtime.remote import RunnerBackend
from harness.study import Study
from harness.zoo import registry


def bench_bundle(variant: str, downloads: Path) -> dict:
    """Cold (own downloads), downloads cached, and cached build of ``variant`` in fresh caches."""
    out = {"variant": variant}
    with tempfile.TemporaryDirectory(prefix="bench-bundle-") as tmp:
        quiet = ArtifactCache(Path(tmp) / "cold", log=lambda m: None)
        start = time.perf_counter()
        built = bundles.get_bundle(variant, quiet, downloads=Path(tmp) / "downloads")
        out["cold_seconds"] = time.perf_counter() - start
        warm = ArtifactCache(Path(tmp) / "warm", log=lambda m: None)
        start = time.perf_counter()
        bundles.get_bundle(variant, warm, downloads=Path(tmp) / "downloads")
        out["downloads_cached_seconds"] = time.perf_counter() - start
        start = time.perf_counter()
        bundles.get_bundle(variant, warm, downloads=Path(tmp) / "downloads")
        out["cached_seconds"] = time.perf_counter() - start
        out["unpacked_bytes"], out["files"] = bundles.folder_size(built.root)
        start = time.perf_counter()
        out["packed_bytes"] = bundles.pack(built, Path(tmp) / "bundle.tar.gz")
        out["pack_seconds"] = time.perf_counter() - start
        out["versions"] = built.versions
        out["key"] = built.key
    return out


def bench_inference(n_images: int, cache: ArtifactCache) -> list[dict]:
    """Per-image time of every mini model file: runner under qemu (fresh) vs the host's runtime."""
    study = Study("mini", load_profile("default"), cache, log=lambda m: None)
    built = bundles.get_bundle("full", cache)
    rows, requests = [], []
    with tempfile.TemporaryDirectory(prefix="bench-arm64-") as tmp:
        fresh = ArtifactCache(tmp, log=lambda m: None)  # results measured now, not read from the cache
        backend = RunnerBackend("arm64", QemuTransport(built, log=lambda m: None), fresh, log=lambda m: None,
                                processes=1)
        for framework, name in registry.combinations("mini"):
            images = study.evaluation(framework, name).images[:n_images]
            for quantization in ("float", "int8"):
                art = study.conversion(framework, name, quantization)
                arm = open_runtime("arm64", study.model(framework, name), art, quantization=quantization, cache=cache)
                requests.append(arm.request(images))
                with open_runtime("mobile", study.model(framework, name), art, quantization=quantization) as host:
                    host.predict_logits(images[:8])  # warm-up, as the runner's first batch is not
                    start = time.perf_counter()
                    host_logits = host.predict_logits(images, batch_size=64)
                    host_seconds = (time.perf_counter() - start) / len(images)
                rows.append({"model": f"{framework}/{name}", "quantization": quantization,
                             "runtime": "LiteRT" if art.format == "tflite" else "PyTorch lite interpreter",
                             "host_seconds_per_image": host_seconds, "_host_logits": host_logits})
        start = time.perf_counter()
        results = backend.run(requests)  # one process per runtime family, one after the other
        wall = time.perf_counter() - start
    for row, result in zip(rows, results):
        if isinstance(result, Exception):
            row["error"] = str(result)
            continue
        host_logits = row.pop("_host_logits")
        row.update(arm_seconds_per_image=result.job["seconds_per_image"], arm_load_seconds=result.job["load_seconds"],
                   slowdown=result.job["seconds_per_image"] / row["host_seconds_per_image"],
                   bit_exact=bool(np.array_equal(result.logits, host_logits)),
                   max_abs_logit_diff=float(np.abs(result.logits - host_logits).max()),
                   arm_versions=result.versions)
    for row in rows:
        row.pop("_host_logits", None)
    rows.append({"runner_wall_seconds_all_files": wall, "n_images": n_images})
    return rows


def _environment() -> dict:
    qemu = find_qemu()
    return {"python": sys.version.split()[0], "platform": platform.platform(), "machine": platform.machine(),
            "cpu_count": os.cpu_count(), "qemu": qemu.version, "qemu_path": qemu.path,
            "load_average": list(os.getloadavg()) if hasattr(os, "getloadavg") else None}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m harness.bench.arm64", description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=32, help="images per model file (default 32)")
    parser.add_argument("--variants", nargs="+", default=["full", "litert"], choices=sorted(bundles.VARIANTS))
    parser.add_argument("--skip-build", action="store_true", help="only the inference figures")
    parser.add_argument("--out", type=Path, default=Path("reports/bench/arm64.json"))
    args = parser.parse_args(argv)
    cache = ArtifactCache()
    report = {"benchmark": "arm64",
              "command": "python -m harness.bench.arm64 " + " ".join(argv if argv is not None else sys.argv[1:]),
              "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "environment": _environment()}
    if not args.skip_build:
        report["bundles"] = [bench_bundle(v, cache.root / ".downloads") for v in args.variants]
        for b in report["bundles"]:
            print(f"bundle {b['variant']:7}: cold {b['cold_seconds']:6.1f} s, downloads cached "
                  f"{b['downloads_cached_seconds']:5.1f} s, cached {b['cached_seconds']:5.2f} s; "
                  f"{b['unpacked_bytes'] / 2**20:6.1f} MiB unpacked in {b['files']} files, "
                  f"{b['packed_bytes'] / 2**20:6.1f} MiB tar.gz", flush=True)
    report["inference"] = bench_inference(args.images, cache)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1) + "\n")
    header = f"{'model':28} {'quant':6} {'runtime':25} {'host ms/img':>11} {'ARM ms/img':>11} {'ratio':>7} {'bit-exact':>9}"
    print(header)
    print("-" * len(header))
    for r in report["inference"]:
        if "model" not in r:
            continue
        if "error" in r:
            print(f"{r['model']:28} {r['quantization']:6} error: {r['error']}")
            continue
        print(f"{r['model']:28} {r['quantization']:6} {r['runtime']:25} {1e3 * r['host_seconds_per_image']:11.3f} "
              f"{1e3 * r['arm_seconds_per_image']:11.2f} {r['slowdown']:6.0f}x {str(r['bit_exact']):>9}")
    print(f"({args.images} images per file, batches of 64, 1 thread; ARM = aarch64 build under qemu "
          f"{report['environment']['qemu']}, emulated) -> {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
