"""Benchmark: how much time adversarial generation spends beyond the bare Foolbox calls.

    python -m harness.bench.generation [--profile default] [--models ...] [--attacks fgsm bim]

For each model and attack, on the same samples and the same batches, it times
(a) the bare Foolbox attack calls on ready-made framework tensors, and (b) a cold
``generate_set`` into an empty cache (conversion to tensors, the attack, rounding,
the success check after rounding, PNG encoding and verification, the sidecar, the
cache key and manifest). Overhead = b / a - 1; the target is at most 10%.

Both sides run after one warm-up forward pass, so neither pays the one-time costs of
a process (TensorFlow tracing the model's graph, first-call allocations). Beside the
total, each row splits (b) by stage (from the set's manifest) and gives the overhead
without the post-rounding evaluation: that is one forward pass over the set which the
measurement itself requires (the success of the PNGs as saved), and for FGSM, whose
whole attack is a forward, a backward and a forward, it alone is about a quarter of
the bare time. Results go to ``reports/bench/generation-<time>.json``.
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from pathlib import Path

import numpy as np

import harness  # noqa: F401  (import guard first)
from harness.attack.attacks import FoolboxModel
from harness.attack.generate import generate_set, library_versions
from harness.attack.profiles import load_profile
from harness.cache import ArtifactCache
from harness.data import fashion_mnist, samples
from harness.zoo import registry

REPORTS = Path(__file__).resolve().parents[2] / "reports" / "bench"


def bare_foolbox_seconds(fmodel: FoolboxModel, attack: str, params: dict, images01: np.ndarray,
                         labels: np.ndarray, batch_size: int) -> float:
    import foolbox

    if attack == "fgsm":
        fb_attack = foolbox.attacks.LinfFastGradientAttack(random_start=False)
    elif attack == "bim":
        fb_attack = foolbox.attacks.LinfBasicIterativeAttack(rel_stepsize=params["rel_stepsize"],
                                                            steps=params["steps"], random_start=False)
    else:
        raise SystemExit(f"the overhead benchmark covers fgsm and bim, not {attack!r}")
    batches = [fmodel.tensors(images01[i:i + batch_size], labels[i:i + batch_size])
               for i in range(0, len(images01), batch_size)]
    start = time.perf_counter()
    for x, y in batches:
        fb_attack(fmodel.fmodel, x, y, epsilons=params["eps"])
    return time.perf_counter() - start


def warm_up(fmodel: FoolboxModel, images01: np.ndarray, labels: np.ndarray, batch_size: int) -> None:
    """One forward pass at the attack's batch shape and one at the whole set's (what the
    post-rounding evaluation uses): TensorFlow traces its graph on these, once per process."""
    fmodel.fmodel(fmodel.tensors(images01[:batch_size], labels[:batch_size])[0])
    fmodel.model.predict((images01 * 255).round().astype(np.uint8))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="default")
    parser.add_argument("--models", nargs="+", default=["pytorch/resnet50", "tensorflow/resnet50"],
                        help="framework/name pairs from the mini zoo")
    parser.add_argument("--attacks", nargs="+", default=["fgsm", "bim"], choices=["fgsm", "bim"])
    parser.add_argument("--repeats", type=int, default=3, help="runs of each; the minimum counts")
    args = parser.parse_args(argv)

    profile = load_profile(args.profile)
    test = fashion_mnist.load("test", "fixtures")
    all_models = {f"{f}/{n}": registry.load("mini", f, n) for f, n in registry.combinations("mini")}
    selection = samples.select_samples(test, list(all_models.values()), profile.samples, profile.seed)
    chosen = test.select(selection.ids)
    images01 = chosen.images.astype(np.float32) / 255.0
    rows = []
    for name in args.models:
        model = all_models[name]
        fmodel = FoolboxModel(model)
        warm_up(fmodel, images01, chosen.labels, profile.attack_batch_size)
        for attack in args.attacks:
            params = profile.attack_params(attack)
            bare, total, stages = [], [], []
            for _ in range(args.repeats):
                bare.append(bare_foolbox_seconds(fmodel, attack, params, images01, chosen.labels,
                                                 profile.attack_batch_size))
                with tempfile.TemporaryDirectory() as tmp:
                    start = time.perf_counter()
                    adv = generate_set(model, attack, profile, chosen, ArtifactCache(tmp, log=lambda m: None),
                                       log=lambda m: None)
                    total.append(time.perf_counter() - start)
                    manifest = json.loads((adv.path / "manifest.json").read_text())
                stage = dict(manifest["metadata"]["stage_seconds"])
                stage["key_cache_and_rest"] = round(total[-1] - sum(stage.values()), 3)
                stages.append(stage)
            best = int(np.argmin(total))
            evaluate = stages[best]["evaluate_after_rounding"]
            row = {"model": model.spec.id, "attack": attack, "samples": len(chosen),
                   "bare_foolbox_seconds": min(bare), "harness_seconds": total[best],
                   "overhead": total[best] / min(bare) - 1.0,
                   "overhead_without_post_rounding_evaluation": (total[best] - evaluate) / min(bare) - 1.0,
                   "harness_stage_seconds": stages[best], "runs_bare": bare, "runs_harness": total}
            rows.append(row)
            print(f"{model.spec.id:32} {attack:5} bare {row['bare_foolbox_seconds']:7.2f} s  "
                  f"harness {row['harness_seconds']:7.2f} s  overhead {row['overhead']:+.1%} "
                  f"({row['overhead_without_post_rounding_evaluation']:+.1%} without the post-rounding "
                  f"evaluation; stages {stages[best]})", flush=True)
    REPORTS.mkdir(parents=True, exist_ok=True)
    out = REPORTS / f"generation-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.write_text(json.dumps({"profile": profile.to_dict(), "machine": platform.platform(),
                               "versions": library_versions("pytorch") | library_versions("tensorflow"),
                               "results": rows}, indent=1) + "\n")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
