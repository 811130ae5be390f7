"""Train the mini zoo: all six models on the full Fashion-MNIST, one recipe for both frameworks.

    python -m harness.zoo.train [--epochs N] [--models mobilenet_v2 ...] [--out DIR]

The recipe (recorded in ``recipe.json`` beside the weights): both frameworks start
from the *same* initial weights (PyTorch's initialisation, copied into Keras), see
the same mini-batches in the same order, and use Adam with the same cosine-decayed
learning rate and epsilon, cross-entropy on logits, no augmentation, no weight
decay. Each framework normalises pixels its own way (the paper's Table 1).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

import harness
from harness.data import fashion_mnist
from harness.frameworks import import_keras, import_torch
from harness.zoo import mini, port
from harness.zoo.base import MODELS, file_digest

RECIPE = {
    "optimizer": "adam",
    "learning_rate": 3e-3,
    "schedule": "cosine decay to 0 over all steps, per step",
    "adam_epsilon": 1e-7,
    "batch_size": 128,
    "epochs": 3,
    "seed": 0,
    "loss": "softmax cross-entropy on logits",
    "augmentation": "none",
    "initialisation": "PyTorch default init (seeded), copied into the Keras twin",
    "train_data": "Fashion-MNIST train split, all 60,000 images, padded to 32x32 RGB",
}


def batch_order(n: int, epochs: int, batch_size: int, seed: int) -> list[np.ndarray]:
    """The mini-batches, as row indices, that both frameworks see, epoch after epoch."""
    rng = np.random.default_rng(seed)
    batches = []
    for _ in range(epochs):
        perm = rng.permutation(n)
        batches.extend(perm[i:i + batch_size] for i in range(0, n, batch_size))
    return batches


def cosine_lr(step: int, total: int, base: float) -> float:
    return 0.5 * base * (1.0 + math.cos(math.pi * min(step, total) / total))


def train_pytorch(module, x: np.ndarray, y: np.ndarray, batches, recipe: dict, log) -> None:
    torch = import_torch()
    module.train()
    opt = torch.optim.Adam(module.parameters(), lr=recipe["learning_rate"], eps=recipe["adam_epsilon"])
    total = len(batches)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: cosine_lr(s, total, 1.0))
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    loss_fn = torch.nn.CrossEntropyLoss()
    for step, rows in enumerate(batches):
        idx = torch.from_numpy(rows)
        opt.zero_grad(set_to_none=True)
        loss = loss_fn(module(xt[idx]), yt[idx])
        loss.backward()
        opt.step()
        sched.step()
        log(step, total, float(loss))
    module.eval()


def train_keras(module, x: np.ndarray, y: np.ndarray, batches, recipe: dict, log) -> None:
    keras = import_keras()
    import tensorflow as tf

    total = len(batches)
    schedule = keras.optimizers.schedules.CosineDecay(recipe["learning_rate"], decay_steps=total, alpha=0.0)
    opt = keras.optimizers.Adam(learning_rate=schedule, epsilon=recipe["adam_epsilon"])
    loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=True)

    @tf.function(reduce_retracing=True)
    def step_fn(xb, yb):
        with tf.GradientTape() as tape:
            loss = loss_fn(yb, module(xb, training=True))
        grads = tape.gradient(loss, module.trainable_variables)
        opt.apply_gradients(zip(grads, module.trainable_variables))
        return loss

    for step, rows in enumerate(batches):
        loss = step_fn(tf.constant(x[rows]), tf.constant(y[rows]))
        log(step, total, float(loss))


def _progress(label: str):
    start = time.perf_counter()

    def log(step: int, total: int, loss: float) -> None:
        if step % 100 == 0 or step == total - 1:
            elapsed = time.perf_counter() - start
            print(f"  {label}: step {step + 1}/{total} loss {loss:.3f} ({elapsed:.0f}s)", flush=True)

    return log


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="Train the mini zoo on the full Fashion-MNIST.")
    parser.add_argument("--epochs", type=int, default=RECIPE["epochs"])
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=MODELS)
    parser.add_argument("--frameworks", nargs="+", default=["pytorch", "tensorflow"],
                        choices=["pytorch", "tensorflow"])
    parser.add_argument("--out", type=Path, default=mini.WEIGHTS_DIR)
    parser.add_argument("--limit", type=int, default=None, help="train on the first N images only (smoke runs)")
    args = parser.parse_args(argv)

    torch = import_torch()
    keras = import_keras()
    torch.set_num_threads(os.cpu_count() or 1)
    recipe = dict(RECIPE, epochs=args.epochs)
    train = fashion_mnist.load_full_any("train")
    test = fashion_mnist.load("test", "fixtures")
    n = len(train) if args.limit is None else min(args.limit, len(train))
    labels = train.labels[:n]
    batches = batch_order(n, recipe["epochs"], recipe["batch_size"], recipe["seed"])
    print(f"training on {n} images, {len(batches)} steps per model, recipe: {json.dumps(recipe)}", flush=True)

    record_path = args.out / "recipe.json"
    record = json.loads(record_path.read_text()) if record_path.is_file() else {"models": {}}
    record.update(recipe=recipe, versions=_versions(), machine=_machine())
    overall = time.perf_counter()
    for name in args.models:
        torch.manual_seed(recipe["seed"])
        torch_module = mini.build("pytorch", name)
        keras.utils.set_random_seed(recipe["seed"])
        keras_module = mini.build("tensorflow", name)
        port.torch_to_keras(torch_module, keras_module)  # same starting point in both frameworks
        for framework in args.frameworks:
            spec = mini.spec(framework, name)
            module = torch_module if framework == "pytorch" else keras_module
            x = spec.normalization(train.images[:n])
            start = time.perf_counter()
            trainer = train_pytorch if framework == "pytorch" else train_keras
            trainer(module, x, labels, batches, recipe, _progress(spec.id))
            seconds = time.perf_counter() - start
            del x
            path = mini.weights_path(framework, name, args.out)
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(".tmp-" + path.name)
            mini.ADAPTERS[framework].save_weights(module, tmp)
            os.replace(tmp, path)
            accuracy = _accuracy(framework, module, spec, test)
            record["models"][spec.id] = {
                "sha256": file_digest(path),
                "bytes": path.stat().st_size,
                "train_seconds": round(seconds, 1),
                "test_subset_accuracy": round(accuracy, 4),
                "parameters": _parameters(framework, module),
            }
            print(f"{spec.id}: {seconds:.0f}s, accuracy on the committed test subset {accuracy:.4f}", flush=True)
    record["total_train_seconds_last_run"] = round(time.perf_counter() - overall, 1)
    record_path.parent.mkdir(parents=True, exist_ok=True)
    record_path.write_text(json.dumps(record, indent=2, sort_keys=True) + "\n")
    print(f"wrote {record_path} ({record['total_train_seconds_last_run']:.0f}s in all)")
    return 0


def _accuracy(framework, module, spec, test) -> float:
    forward = mini.ADAPTERS[framework].forward(module)
    predictions = np.concatenate([
        forward(spec.normalization(test.images[i:i + 500])).argmax(1) for i in range(0, len(test), 500)
    ])
    return float((predictions == test.labels).mean())


def _parameters(framework, module) -> int:
    if framework == "pytorch":
        return int(sum(p.numel() for p in module.parameters()))
    return int(sum(int(np.prod(v.shape)) for v in module.trainable_weights))


def _versions() -> dict:
    import tensorflow as tf
    torch = import_torch()
    return {"python": platform.python_version(), "numpy": np.__version__, "torch": torch.__version__,
            "tensorflow": tf.__version__, "keras": import_keras().__version__, "harness": harness.__version__}


def _machine() -> dict:
    return {"platform": platform.platform(), "processor": platform.machine(), "cpus": os.cpu_count()}


if __name__ == "__main__":
    sys.exit(main())
