"""The ``mini`` zoo: the three families at 32x32, trained on Fashion-MNIST, weights committed.

Weights live in ``fixtures/models/mini/<framework>/<model><suffix>`` and are listed,
with their SHA-256 and the recipe that produced them, in ``fixtures/models/mini/recipe.json``
(written by ``python -m harness.zoo.train``).
"""

from __future__ import annotations

import json
from pathlib import Path

from harness.data.preprocessing import normalization_for
from harness.zoo import mini_config as cfg
from harness.zoo.base import FRAMEWORKS, MODELS, ModelSpec, ZooError, ZooModel, check_choice, file_digest
from harness.zoo.frameworks import ADAPTERS

# The mobile runtimes the models deploy to. TensorFlow's: LiteRT. PyTorch's weights run on three,
# so a difference between runtimes can be told from a difference between frameworks: the lite
# interpreter (.ptl, the paper's and the native one), ExecuTorch (.pte, XNNPACK delegate) and
# LiteRT (.tflite through litert-torch).
RUNTIMES = {"pytorch": ("torch_lite", "executorch", "litert")}

REPO_ROOT = Path(__file__).resolve().parents[2]
WEIGHTS_DIR = REPO_ROOT / "fixtures" / "models" / "mini"
RECORD = WEIGHTS_DIR / "recipe.json"


def spec(framework: str, name: str) -> ModelSpec:
    check_choice("framework", framework, FRAMEWORKS)
    check_choice("mini zoo model", name, MODELS)
    return ModelSpec("mini", framework, name, cfg.INPUT_SIZE, cfg.NUM_CLASSES, normalization_for(framework, name))


def build(framework: str, name: str):
    """A fresh, untrained module of the named family."""
    spec(framework, name)
    if framework == "pytorch":
        from harness.zoo import mini_pytorch as builders
    else:
        from harness.zoo import mini_keras as builders
    return builders.BUILDERS[name]()


def weights_path(framework: str, name: str, directory: Path = WEIGHTS_DIR) -> Path:
    return Path(directory) / framework / f"{name}{ADAPTERS[framework].weights_suffix}"


def load(framework: str, name: str, directory: Path = WEIGHTS_DIR) -> ZooModel:
    """The trained model with committed weights, verified against the training record."""
    s = spec(framework, name)
    path = weights_path(framework, name, directory)
    if not path.is_file():
        raise ZooError(f"{path}: mini zoo weights missing; run `python -m harness.zoo.train` to make them")
    digest = file_digest(path)
    record_path = Path(directory) / RECORD.name
    if record_path.is_file():
        expected = json.loads(record_path.read_text()).get("models", {}).get(s.id, {}).get("sha256")
        if expected and expected != digest:
            raise ZooError(f"{path}: SHA-256 {digest[:12]}... differs from {record_path.name}'s {expected[:12]}...")
    module = build(framework, name)
    adapter = ADAPTERS[framework]
    adapter.load_weights(module, path)
    return ZooModel(s, module, path, digest, adapter.forward(module))
