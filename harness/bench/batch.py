"""Benchmark: a fixed-batch-1 ``.tflite`` (as third parties ship them) against its dynamic-batch twin.

    python -m harness.bench.batch [--size 64] [--queries 256] [--batch 32] [--quantization float int8]
        [--platforms mobile arm64] [--attacks square boundary] [--samples 2] [--profile user]
        [--max-iter N] [--out FILE]

One small Keras model (two convolutions and a dense layer, ``--size`` square RGB input,
seeded weights) is converted twice by ``tf.lite.TFLiteConverter.from_keras_model``: once
from a ``keras.Input(..., batch_size=1)`` (input ``shape_signature`` [1, H, W, 3], what
TensorFlow's converter, Model Maker and the model zoos write) and once with batch None
(signature [-1, ...], what this project's conversions write); float with default options
and full-integer int8. The suite's runtimes run the fixed file in chunks of one image and
resize the dynamic one (see :class:`harness.runtime.base.BatchPlan`). Reported, as JSON
under ``reports/bench/`` and a table on stdout:

* **queries per second** (images) through ``predict_logits`` at batch 1 and ``--batch``, per
  twin and quantization, on the host's LiteRT (platform ``mobile``) and in the runner under
  qemu (``arm64``, one streamed serve session; skipped with the reason when qemu or the
  bundle is not here), with each runtime's recorded batch mode (invokes, padded rows);
* **the cost of a direct attack** (Square by default; Boundary), with the profile's
  ``direct_<attack>`` parameters (``--max-iter`` shortens it), on ``--samples`` images per
  twin: seconds and queries per sample. The labels are the model's own answers, so every sample starts classified right.

The machine is shared: only the ratios within one report mean much. Under emulation,
times measure qemu's translation, not a phone.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

import harness  # noqa: F401  (import guard first)
from harness.attack.profiles import load_profile
from harness.bench import environment
from harness.cache import ArtifactCache
from harness.data.preprocessing import normalization_for
from harness.frameworks import import_keras
from harness.runtime import PlatformUnavailable, open_runtime
from harness.zoo.base import ModelSpec

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_OUT = REPO_ROOT / "reports" / "bench" / "batch.json"
CLASSES = 10
TWINS = {"fixed1": 1, "dynamic": None}  # twin name -> keras.Input batch_size
DISTRIBUTIONS = ("tensorflow-cpu", "keras", "ai-edge-litert", "numpy", "foolbox", "adversarial-robustness-toolbox")


def spec(size: int) -> ModelSpec:
    return ModelSpec("bench", "tensorflow", "batch_twin", size, CLASSES, normalization_for("tensorflow", "mobilenet_v2"))


def keras_model(size: int, batch_size: int | None, seed: int = 0):
    """The same weights for every ``batch_size`` (the seed decides them)."""
    keras = import_keras()
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((size, size, 3), batch_size=batch_size)
    x = keras.layers.Conv2D(16, 3, strides=2, activation="relu")(inputs)
    x = keras.layers.Conv2D(32, 3, strides=2, activation="relu")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, keras.layers.Dense(CLASSES)(x))


def write_twin(directory: Path, size: int, twin: str, quantization: str, seed: int = 0) -> Path:
    """The ``twin`` (``fixed1`` or ``dynamic``) in ``quantization`` (``float``: default options;
    ``int8``: full-integer, int8 input and output tensors), as ``from_keras_model`` writes it."""
    import tensorflow as tf

    model = keras_model(size, TWINS[twin], seed)
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    if quantization == "int8":
        rng = np.random.default_rng(1)
        normalization = spec(size).normalization

        def representative():
            for _ in range(16):
                yield [normalization(rng.integers(0, 256, (1, size, size, 3), dtype=np.uint8))]

        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = representative
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        converter.inference_input_type = converter.inference_output_type = tf.int8
    path = Path(directory) / f"{twin}-{quantization}.tflite"
    path.write_bytes(converter.convert())
    return path


def open_twin(platform_name: str, path: Path, size: int, quantization: str, cache: ArtifactCache):
    options = {"cache": cache} if platform_name == "arm64" else {}
    return open_runtime(platform_name, artifact=str(path), spec=spec(size), quantization=quantization, **options)


def main(argv=None) -> int:
    from harness.attack.registry import make_attack
    from harness.bench.direct import attack_cost, queries_per_second
    from harness.data.dataset import ImageDataset

    parser = argparse.ArgumentParser(prog="python -m harness.bench.batch", description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=64, help="input height and width of the model")
    parser.add_argument("--queries", type=int, default=256, help="images queried per runtime and batch size")
    parser.add_argument("--batch", type=int, default=32, help="the batched query size (besides 1)")
    parser.add_argument("--quantization", nargs="+", default=["float", "int8"], choices=["float", "int8"])
    parser.add_argument("--platforms", nargs="+", default=["mobile", "arm64"], choices=["mobile", "arm64"])
    parser.add_argument("--attacks", nargs="+", default=["square"], choices=["square", "boundary"])
    parser.add_argument("--attack-quantization", default="int8", choices=["float", "int8"])
    parser.add_argument("--samples", type=int, default=2, help="images attacked per attack and twin")
    parser.add_argument("--profile", default="user", help="the profile whose direct_<attack> parameters are used")
    parser.add_argument("--max-iter", type=int, default=None, help="override Square's max_iter / Boundary's steps")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args(argv)

    def say(message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    profile = load_profile(args.profile)
    cache = ArtifactCache()
    images = np.random.default_rng(args.seed).integers(0, 256, (args.queries, args.size, args.size, 3), np.uint8)
    batch_sizes = sorted({1, args.batch})
    rows, costs, skipped = [], [], []
    warmed: set[str] = set()
    chosen, missing = [], []
    for name in args.attacks:
        if f"direct_{name}" not in profile.attack_names:
            missing.append(name)
            continue
        params = dict(profile.attack_params(f"direct_{name}"))
        if args.max_iter:
            params["max_iter" if name == "square" else "steps"] = args.max_iter
        chosen.append(make_attack(name, params))
    with tempfile.TemporaryDirectory(prefix="bench-batch-") as tmp:
        files = {}
        for quantization in args.quantization:
            for twin in TWINS:
                start = time.perf_counter()
                files[twin, quantization] = write_twin(Path(tmp), args.size, twin, quantization, args.seed)
                say(f"converted {twin} {quantization} in {time.perf_counter() - start:.1f} s")
        for platform_name in args.platforms:
            for quantization in args.quantization:
                if any(s["platform"] == platform_name for s in skipped):
                    break
                for twin in TWINS:
                    try:
                        runtime = open_twin(platform_name, files[twin, quantization], args.size, quantization, cache)
                    except PlatformUnavailable as exc:
                        skipped.append({"platform": platform_name, "reason": str(exc).splitlines()[0]})
                        say(f"skipping {platform_name}: {skipped[-1]['reason']}")
                        break
                    with runtime:
                        qps = queries_per_second(runtime, images, batch_sizes)
                        described = runtime.describe()
                    rows.append({"platform": platform_name, "twin": twin, "quantization": quantization,
                                 "runtime": described["runtime"], "threads": runtime.threads,
                                 "batch_mode": described.get("batch"), **qps})
                    say(f"  {platform_name} {twin} {quantization}: " + ", ".join(
                        f"batch {b} {qps[str(b)]['queries_per_second']:.0f} q/s" for b in batch_sizes))
        for platform_name in args.platforms:
            if any(s["platform"] == platform_name for s in skipped):
                continue
            q = args.attack_quantization
            for twin in TWINS:
                with open_twin(platform_name, files[twin, q], args.size, q, cache) as runtime:
                    attacked = images[:args.samples]
                    with open_twin("mobile", files["fixed1", q], args.size, q, cache) as reference:
                        labels = reference.predict(attacked)
                    samples = ImageDataset("bench", "random", np.arange(len(attacked)), attacked,
                                           labels.astype(np.int64), tuple(str(i) for i in range(CLASSES)))
                    for attack in chosen:
                        if attack.name not in warmed:  # the attack library's first call imports and builds
                            attack_cost(attack, runtime, samples, args.seed)
                            warmed.add(attack.name)
                        cost = attack_cost(attack, runtime, samples, args.seed)
                        costs.append({"twin": twin, "quantization": q, "batch_mode": runtime.describe().get("batch"),
                                      **cost})
                        say(f"  {attack.name} on {platform_name} {twin} {q}: {cost['queries_per_sample']:.0f} "
                            f"queries, {cost['seconds_per_sample']:.2f} s per sample")

    report = {
        "benchmark": "batch",
        "command": "python -m harness.bench.batch " + " ".join(argv if argv is not None else sys.argv[1:]),
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "environment": environment(DISTRIBUTIONS),
        "settings": {"size": args.size, "queries": args.queries, "batch": args.batch,
                     "quantization": args.quantization, "platforms": args.platforms, "attacks": args.attacks,
                     "attack_quantization": args.attack_quantization, "samples": args.samples,
                     "profile": args.profile, "max_iter": args.max_iter, "seed": args.seed},
        "queries_per_second": rows, "attack_costs": costs, "skipped": skipped,
        "attacks_not_in_this_checkout": missing,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1) + "\n")

    b = str(args.batch)
    header = f"{'platform':8} {'twin':8} {'quant':6} {'q/s b=1':>9} {f'q/s b={b}':>10} {'invokes':>8} {'padded':>7}"
    print(header)
    print("-" * len(header))
    for r in rows:
        mode = r["batch_mode"] or {}
        print(f"{r['platform']:8} {r['twin']:8} {r['quantization']:6} {r['1']['queries_per_second']:9.0f} "
              f"{r.get(b, r['1'])['queries_per_second']:10.0f} {mode.get('invokes', '-')!s:>8} "
              f"{mode.get('padded_rows', '-')!s:>7}")
    if costs:
        header = f"{'attack':10} {'platform':8} {'twin':8} {'success':>8} {'queries/sample':>15} {'s/sample':>9}"
        print()
        print(header)
        print("-" * len(header))
        for c in costs:
            print(f"{c['attack']:10} {c['platform']:8} {c['twin']:8} {c['successes']:>4}/{c['samples']:<3} "
                  f"{c['queries_per_sample']:15.0f} {c['seconds_per_sample']:9.2f}")
    for s in skipped:
        print(f"skipped {s['platform']}: {s['reason']}")
    if missing:
        print(f"not in this checkout's registry/profile: {', '.join(missing)}")
    print(f"-> {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
