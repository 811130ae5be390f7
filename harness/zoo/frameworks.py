"""Per-framework adapters for the zoo: run a PC model, load and save its weights."""

from __future__ import annotations

import weakref
from pathlib import Path

import numpy as np

from harness.frameworks import import_keras, import_tensorflow, import_torch
from harness.zoo.base import ZooError


def channels_last(x):
    """A 4-D torch tensor in channels-last memory (same values, same shape, NCHW indexing).

    The PC float models compute in channels-last memory: this torch build's CPU kernels
    are much faster that way for these small images (max pooling ~9x, the mini
    InceptionV3 ~2x overall), and convolutions follow their input's memory format, so
    converting the input converts the whole network. Logits differ from contiguous NCHW
    by float rounding only (~1e-6). Mobile runtimes keep the contiguous input an app feeds.
    """
    torch = import_torch()
    return x.contiguous(memory_format=torch.channels_last) if x.dim() == 4 else x


def channels_last_module(module):
    """``module`` behind a wrapper that feeds it channels-last input (for Foolbox, which
    wants an ``nn.Module`` and hands it contiguous NCHW tensors)."""
    torch = import_torch()

    class ChannelsLastInput(torch.nn.Module):
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, x):
            return self.inner(channels_last(x))

    return ChannelsLastInput(module).eval()


class PyTorchAdapter:
    name = "pytorch"
    weights_suffix = ".pt"

    def forward(self, module):
        torch = import_torch()
        module.eval()

        def run(x: np.ndarray) -> np.ndarray:
            with torch.inference_mode():
                return module(channels_last(torch.from_numpy(x))).numpy()

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

    def __init__(self):
        self._graphs: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()

    def graph(self, module):
        """The model's inference call as one traced ``tf.function``, shared in this process.

        Every PC-side caller (``ZooModel.predict``, the pc runtime, the attacks) runs this
        same function, so they compute identical logits. It is traced once per model, for any
        batch size (a signature with an unknown batch dimension; each retrace costs ~0.6 s).
        A traced graph is 2-3x faster than eager Keras calls on these batches; gradients flow
        through it.
        """
        if module not in self._graphs:
            tf = import_tensorflow()
            try:
                shape = (None, *tuple(module.input_shape)[1:])
                options = {"input_signature": [tf.TensorSpec(shape, tf.float32)]}
            except (AttributeError, ValueError, TypeError):  # a model without one fixed input
                options = {"reduce_retracing": True}
            self._graphs[module] = tf.function(lambda x: module(x, training=False), autograph=False, **options)
        return self._graphs[module]

    def forward(self, module):
        graph = self.graph(module)

        def run(x: np.ndarray) -> np.ndarray:
            return graph(x).numpy()

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
