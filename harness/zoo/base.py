"""The zoo stage's interface: a model spec and a loaded PC model behind one API."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from harness.cache import file_sha256 as file_digest  # noqa: F401  (re-exported for the zoos)
from harness.data.preprocessing import Normalization

FRAMEWORKS = ("tensorflow", "pytorch")
MODELS = ("mobilenet_v2", "resnet50", "inception_v3")
# Views of the runtime registry (harness.axes.runtimes), for code that still reads the old tables.
from harness.axes.runtimes import NATIVE_RUNTIMES, RUNTIME_FORMATS  # noqa: E402,F401  alias: remove


class ZooError(ValueError):
    """Unknown zoo/model/framework, or weights that do not fit the architecture."""


class WeightsUnavailable(ZooError):
    """Pretrained weights are not on this machine; the message says what to put where."""


@dataclass(frozen=True)
class ModelSpec:
    zoo: str
    framework: str
    name: str
    input_size: int
    num_classes: int
    normalization: Normalization
    # A bring-your-own file with several outputs: the name of the classifier's (the runtimes read
    # that one); None: the model's only output.
    output: str | None = None
    # What the outputs are: "logits", or "probabilities" (a softmax inside the model): the
    # agreement and output-difference metrics and the score-based attack compare these.
    output_kind: str = "logits"

    @property
    def id(self) -> str:
        return f"{self.zoo}/{self.framework}/{self.name}"


@dataclass
class ZooModel:
    """A PC (float) model: the framework object, its spec, and where its weights came from.

    ``predict_logits`` takes uint8 RGB images at the model's input size, so every
    platform and every stage feeds models the same way.
    """

    spec: ModelSpec
    module: Any  # keras.Model or torch.nn.Module (eval mode)
    weights_path: Path | None
    weights_digest: str
    _forward: Callable[[np.ndarray], np.ndarray] = field(repr=False, default=None)

    def predict_logits(self, images: np.ndarray, batch_size: int = 250) -> np.ndarray:
        images = np.asarray(images)
        expected = (self.spec.input_size, self.spec.input_size, 3)
        if images.ndim != 4 or images.shape[1:] != expected or images.dtype != np.uint8:
            raise ZooError(
                f"{self.spec.id}: expected uint8 images (N, {expected[0]}, {expected[1]}, 3), "
                f"found {images.dtype} {images.shape}"
            )
        out = [self._forward(self.spec.normalization(images[i:i + batch_size]))
               for i in range(0, len(images), batch_size)]
        if not out:
            return np.zeros((0, self.spec.num_classes), np.float32)
        return np.concatenate(out).astype(np.float32)

    def predict(self, images: np.ndarray, batch_size: int = 250) -> np.ndarray:
        return self.predict_logits(images, batch_size).argmax(axis=1)


def check_choice(kind: str, value: str, valid) -> None:
    if value not in valid:
        raise ZooError(f"unknown {kind} {value!r}; expected one of {tuple(valid)}")
