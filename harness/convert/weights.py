"""Digest of a model's weights as they are in memory, for models without a weights file.

Zoo models loaded from a file carry that file's SHA-256 (``ZooModel.weights_digest``).
A freshly built, randomly initialised module (``zoo.build``) has none; its cache key
then uses this digest of every parameter and buffer: name, dtype, shape and bytes.
"""

from __future__ import annotations

import hashlib

import numpy as np

from harness.zoo.base import ModelSpec, ZooModel
from harness.zoo.frameworks import ADAPTERS


def module_digest(framework: str, module) -> str:
    digest = hashlib.sha256(f"{framework}-weights-v1".encode())
    if framework == "pytorch":
        items = ((name, t.detach().cpu().contiguous().numpy()) for name, t in sorted(module.state_dict().items()))
    elif framework == "tensorflow":
        items = ((f"{i}:{w.path}", np.asarray(w.numpy())) for i, w in enumerate(module.weights))
    else:
        raise ValueError(f"unknown framework {framework!r}")
    for name, array in items:
        array = np.ascontiguousarray(array)
        digest.update(f"{name}|{array.dtype.str}|{array.shape}|".encode())
        digest.update(array.tobytes())
    return "mem-" + digest.hexdigest()


def zoo_model_from_module(spec: ModelSpec, module) -> ZooModel:
    """Wrap an in-memory module (e.g. ``mini.build(...)``) as a ZooModel with a weights digest."""
    adapter = ADAPTERS[spec.framework]
    return ZooModel(spec, module, None, module_digest(spec.framework, module), adapter.forward(module))
