"""Benchmark: the Ray executor against the local one, Boundary time against chunk size, and
the ``paper`` profile's wall time on N nodes estimated from measured per-sample costs.

    python -m harness.bench.executors [--profile default] [--samples N] [--models ...] [--attacks ...]
                                      [--ray-address HOST:PORT] [--chunk-sizes 5 10 20 40] [--nodes 1 2 4 8 16]

1. Overhead: every set of the matrix (mini zoo, the profile's attacks; default: the default
   profile's whole matrix) is built cold twice, by the local executor and by Ray (a local
   Ray with this machine's cores, or the cluster at ``--ray-address``), each into an empty
   cache; the bytes must be equal. Reported: the wall-time ratio Ray / local (Ray's start-up
   timed apart), per set and in total.
2. Chunk size: one Boundary set (``--chunk-model``) built by Ray at each ``--chunk-sizes``
   (each size is another, equally deterministic, set: the chunk size is in the key).
3. Paper estimate: the per-sample cost of each attack measured in 1 (seconds per sample and
   per attack step, on the mini zoo), scaled to the ``paper`` profile's steps and samples,
   times ``--cost-scale`` (how much slower a full-size model is than a mini one; 1 by
   default: say what you assume), scheduled in chunks of the paper's batch size over
   N nodes x ``--cpus-per-node`` slots (longest chunk first).

Results go to ``reports/bench/executors-<time>.json`` (and a PNG figure).
"""

from __future__ import annotations

import argparse
import dataclasses
import heapq
import json
import math
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np

import harness  # noqa: F401  (import guard first)
from harness.frameworks import import_torch

import_torch()  # torch before TensorFlow, always
from harness.attack.generate import generate_set, library_versions  # noqa: E402
from harness.attack.profiles import load_profile  # noqa: E402
from harness.cache import ArtifactCache  # noqa: E402
from harness.data import fashion_mnist, samples as sampling  # noqa: E402
from harness.executor import make_executor  # noqa: E402
from harness.zoo import registry  # noqa: E402

REPORTS = Path(__file__).resolve().parents[2] / "reports" / "bench"


def quiet(message):
    pass


def _pngs(adv) -> dict:
    return {p.name: p.read_bytes() for p in sorted((adv.path / "png").iterdir())}


def _steps(params: dict) -> int:
    return int(params.get("steps", 1))


def build(model, attack, profile, chosen, executor) -> tuple[float, object, tempfile.TemporaryDirectory]:
    tmp = tempfile.TemporaryDirectory()
    start = time.perf_counter()
    adv = generate_set(model, attack, profile, chosen, ArtifactCache(tmp.name, log=quiet), log=quiet,
                       executor=executor)
    return time.perf_counter() - start, adv, tmp


def schedule(chunk_seconds: list[float], slots: int) -> float:
    """Makespan of chunks over ``slots`` identical workers, longest first (LPT)."""
    loads = [0.0] * slots
    heapq.heapify(loads)
    for seconds in sorted(chunk_seconds, reverse=True):
        heapq.heappush(loads, heapq.heappop(loads) + seconds)
    return max(loads)


def paper_estimate(per_step: dict, nodes: list[int], cpus_per_node: int, cost_scale: float,
                   models: int = 6) -> dict:
    """Wall time of the paper profile's set builds: ``per_step`` is seconds per sample and per
    attack step, by attack, measured on this machine (one chunk on one core)."""
    paper = load_profile("paper")
    size = paper.attack_batch_size
    chunks, per_sample = [], {}
    for attack in paper.attack_names:
        if attack not in per_step:
            continue
        per_sample[attack] = per_step[attack] * _steps(paper.attack_params(attack)) * cost_scale
        for _ in range(models):
            for start in range(0, paper.samples, size):
                chunks.append(per_sample[attack] * min(size, paper.samples - start))
    total = sum(chunks)
    return {"profile": "paper", "samples": paper.samples, "chunk_size": size, "models": models,
            "attacks": sorted(per_sample), "cost_scale": cost_scale, "cpus_per_node": cpus_per_node,
            "seconds_per_sample": per_sample, "chunks": len(chunks), "cpu_seconds": total,
            "wall_seconds_by_nodes": {str(n): schedule(chunks, n * cpus_per_node) for n in nodes}}


def cached_costs(cache_root: Path, profile: str) -> dict:
    """Seconds per sample and per attack step, by attack, from the sets of ``profile`` already in
    an artefact cache (their manifests record the attack's seconds): e.g. the ``real`` zoo's
    full-size EfficientNet-Lite0 sets built on this machine. Median over the sets found."""
    found: dict = {}
    for manifest in sorted(Path(cache_root, "advset").glob("*/manifest.json")):
        meta = json.loads(manifest.read_text()).get("metadata", {})
        if meta.get("profile") != profile:
            continue
        sidecar = json.loads((manifest.parent / "sidecar.json").read_text())
        n = len(sidecar.get("samples", ())) or 1
        found.setdefault(meta["attack"], []).append(meta["generation_seconds"] / n / _steps(meta.get("params", {})))
    return {attack: float(np.median(v)) for attack, v in found.items()}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="default")
    parser.add_argument("--samples", type=int, default=None, help="samples per set (default: the profile's)")
    parser.add_argument("--models", nargs="+", default=None, help="framework/name pairs (default: all six)")
    parser.add_argument("--attacks", nargs="+", default=None, help="default: the profile's")
    parser.add_argument("--ray-address", default=None, help="a Ray head (default: start a local Ray)")
    parser.add_argument("--chunk-model", default="pytorch/mobilenet_v2")
    parser.add_argument("--chunk-sizes", nargs="+", type=int, default=[5, 10, 20, 40])
    parser.add_argument("--chunk-samples", type=int, default=40, help="samples of the chunk-size Boundary set")
    parser.add_argument("--nodes", nargs="+", type=int, default=[1, 2, 4, 8, 16, 32])
    parser.add_argument("--cpus-per-node", type=int, default=16)
    parser.add_argument("--cost-scale", type=float, default=1.0,
                        help="full-size / mini per-sample cost for the paper estimate (default 1: mini models)")
    parser.add_argument("--full-size-profile", default="real",
                        help="profile whose cached sets give full-size per-sample costs for a second paper estimate")
    parser.add_argument("--skip-overhead", action="store_true")
    parser.add_argument("--out", default=None)
    args = parser.parse_args(argv)

    profile = load_profile(args.profile)
    n = args.samples or profile.samples
    test = fashion_mnist.load("test", "fixtures")
    all_models = {f"{f}/{m}": registry.load("mini", f, m) for f, m in registry.combinations("mini")}
    selection = sampling.select_samples(test, list(all_models.values()), max(n, args.chunk_samples), profile.seed)
    chosen_all = test.select(selection.ids)
    chosen = test.select(selection.ids[:n])
    names = args.models or list(all_models)
    attacks = args.attacks or list(profile.attack_names)
    local = make_executor("local", log=quiet)
    # Ray runs its workers at niceness 15 by default: on a machine shared with other work (this one
    # is), they would lose every core to it and the ratio would measure that. Same priority as local.
    os.environ.setdefault("RAY_worker_niceness", "0")
    t0 = time.perf_counter()
    ray_executor = make_executor("ray", args.ray_address, log=quiet)
    cluster = ray_executor.describe()
    ray_startup = time.perf_counter() - t0
    print(f"Ray {cluster['ray_version']} at {cluster['address']}: {cluster['nodes']} node(s), {cluster['cpus']} CPUs; "
          f"started/joined in {ray_startup:.1f} s", flush=True)
    for model in all_models.values():  # one warm-up forward each: TensorFlow traces its graph once per process
        model.predict(chosen.images[:8])

    rows, per_step_samples = [], {}
    if not args.skip_overhead:
        for name in names:
            for attack in attacks:
                model = all_models[name]
                seconds_local, adv_local, tmp_l = build(model, attack, profile, chosen, local)
                seconds_ray, adv_ray, tmp_r = build(model, attack, profile, chosen, ray_executor)
                same = adv_local.path.name == adv_ray.path.name and _pngs(adv_local) == _pngs(adv_ray)
                cpu = float(adv_local.sidecar["generation_seconds"])
                per_step_samples.setdefault(attack, []).append(cpu / n / _steps(profile.attack_params(attack)))
                rows.append({"model": model.spec.id, "attack": attack, "samples": n,
                             "chunks": adv_local.sidecar["batches"], "local_seconds": round(seconds_local, 3),
                             "ray_seconds": round(seconds_ray, 3), "ratio": round(seconds_ray / seconds_local, 3),
                             "same_bytes_and_key": same, "attack_cpu_seconds_local": cpu})
                tmp_l.cleanup(), tmp_r.cleanup()
                print(f"{model.spec.id:32} {attack:8} local {seconds_local:7.2f} s  ray {seconds_ray:7.2f} s  "
                      f"ratio {seconds_ray / seconds_local:5.2f}  same bytes: {same}", flush=True)

    chunk_rows = []
    model = all_models[args.chunk_model]
    boundary_set = test.select(selection.ids[:args.chunk_samples])
    for size in args.chunk_sizes:
        sized = dataclasses.replace(profile, attack_batch_size=size)
        seconds, adv, tmp = build(model, "boundary", sized, boundary_set, ray_executor)
        chunk_rows.append({"chunk_size": size, "chunks": adv.sidecar["batches"], "samples": len(boundary_set),
                           "ray_seconds": round(seconds, 3),
                           "attack_cpu_seconds": float(adv.sidecar["generation_seconds"])})
        tmp.cleanup()
        print(f"boundary {model.spec.id} {len(boundary_set)} samples, chunk size {size:4}: {seconds:7.2f} s "
              f"({adv.sidecar['batches']} chunks)", flush=True)
        per_step_samples.setdefault("boundary", []).append(
            float(adv.sidecar["generation_seconds"]) / len(boundary_set) / _steps(profile.attack_params("boundary")))

    per_step = {a: float(np.median(v)) for a, v in per_step_samples.items()}
    estimate = paper_estimate(per_step, args.nodes, args.cpus_per_node, args.cost_scale)
    full_costs = cached_costs(ArtifactCache().root, args.full_size_profile)
    estimate_full = paper_estimate(full_costs, args.nodes, args.cpus_per_node, 1.0) if full_costs else None
    for label, est in (("mini-zoo costs", estimate), (f"{args.full_size_profile}-profile costs", estimate_full)):
        for nodes, seconds in (est or {}).get("wall_seconds_by_nodes", {}).items():
            print(f"paper profile on {nodes:>3} node(s) x {args.cpus_per_node} CPUs, {label}: {seconds / 3600:10.2f} h",
                  flush=True)
    total_local = sum(r["local_seconds"] for r in rows)
    total_ray = sum(r["ray_seconds"] for r in rows)
    summary = {"local_seconds": round(total_local, 3), "ray_seconds": round(total_ray, 3),
               "ratio": round(total_ray / total_local, 3) if rows else None,
               "ray_startup_seconds": round(ray_startup, 3), "all_same": all(r["same_bytes_and_key"] for r in rows)}
    if rows:
        print(f"total: local {total_local:.1f} s, ray {total_ray:.1f} s, ratio {summary['ratio']:.2f} "
              f"(+{ray_startup:.1f} s to start Ray); all sets equal: {summary['all_same']}", flush=True)
    result = {"settings": {**vars(args), "profile": profile.to_dict(), "samples": n, "cpu_count": os.cpu_count(),
                           "RAY_worker_niceness": os.environ.get("RAY_worker_niceness"),
                           "load_average_at_end": os.getloadavg()},
              "machine": platform.platform(), "cluster": cluster,
              "versions": library_versions("pytorch") | library_versions("tensorflow") | {"ray": cluster["ray_version"]},
              "overhead": {"summary": summary, "sets": rows}, "chunk_size": chunk_rows,
              "seconds_per_sample_and_step": per_step, "paper_estimate": estimate,
              "full_size_seconds_per_sample_and_step": {"profile": args.full_size_profile, "costs": full_costs},
              "paper_estimate_full_size": estimate_full}
    ray_executor.close()
    out = Path(args.out) if args.out else REPORTS / f"executors-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1) + "\n")
    _figure(result, out.with_suffix(".png"))
    print(f"wrote {out}")
    return 0


def _figure(result: dict, path: Path) -> None:
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.5))
    rows = result["chunk_size"]
    axes[0].plot([r["chunk_size"] for r in rows], [r["ray_seconds"] for r in rows], "o-")
    axes[0].set(xlabel="chunk size (samples)", ylabel="wall seconds", title="one Boundary set on Ray")
    est = result["paper_estimate"]["wall_seconds_by_nodes"]
    axes[1].loglog([int(k) for k in est], [v / 3600 for v in est.values()], "o-")
    axes[1].set(xlabel="nodes", ylabel="hours", title="paper profile, estimated set builds")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


if __name__ == "__main__":
    raise SystemExit(main())
