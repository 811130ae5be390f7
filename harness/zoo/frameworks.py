"""Per-framework adapters for the zoo: run a PC model, load and save its weights."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from harness.frameworks import import_keras, import_torch
from harness.zoo.base import ZooError


class PyTorchAdapter:
    name = "pytorch"
    weights_suffix = ".pt"

    def forward(self, module):
        torch = import_torch()
        module.eval()

        def run(x: np.ndarray) -> np.ndarray:
            with torch.inference_mode():
                return module(torch.from_numpy(x)).numpy()

        return run

    def load_weights(self, module, path: Path) -> None:
        torch = import_torch()
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:  # torch raises several types for a corrupt archive
            raise ZooError(f"{path}: not a readable PyTorch state dict ({type(exc).__name__}: {exc})") from exc
        try:
            module.load_state_dict(state, strict=True)
        except RuntimeError as exc:
            raise ZooError(f"{path}: weights do not match {type(module).__name__}: {exc}") from exc
        module.eval()

    def save_weights(self, module, path: Path) -> None:
        torch = import_torch()
        torch.save(module.state_dict(), path)


class KerasAdapter:
    name = "tensorflow"
    weights_suffix = ".weights.h5"

    def forward(self, module):
        def run(x: np.ndarray) -> np.ndarray:
            return np.asarray(module(x, training=False))

        return run

    def load_weights(self, module, path: Path) -> None:
        import_keras()
        try:
            module.load_weights(path)
        except Exception as exc:  # Keras raises ValueError on mismatch, OSError on a bad file
            raise ZooError(f"{path}: weights do not match {module.name}: {type(exc).__name__}: {exc}") from exc

    def save_weights(self, module, path: Path) -> None:
        module.save_weights(path)


ADAPTERS = {"pytorch": PyTorchAdapter(), "tensorflow": KerasAdapter()}
