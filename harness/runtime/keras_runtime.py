"""The Keras model itself, on the PC (float only: TensorFlow's int8 model exists only as .tflite)."""

from __future__ import annotations

import numpy as np

from harness.frameworks import import_tensorflow
from harness.runtime.base import Runtime, RuntimeRequest, UnsupportedConfiguration
from harness.zoo.frameworks import ADAPTERS


def tensorflow_threads(requested: int | None) -> int | None:
    """Set TensorFlow's intra-op threads if it is not initialised yet; return the effective count.

    TensorFlow fixes its thread pools when it initialises (usually when the model is
    built), so later requests cannot change them: then the count in force is reported,
    None meaning TensorFlow's default (one thread per core).
    """
    tf = import_tensorflow()
    current = tf.config.threading.get_intra_op_parallelism_threads()
    if requested and current != requested:
        try:
            tf.config.threading.set_intra_op_parallelism_threads(requested)
            current = requested
        except RuntimeError:
            pass
    return current or None


class KerasPCRuntime(Runtime):
    version_packages = ("tensorflow-cpu", "keras")

    def __init__(self, request: RuntimeRequest):
        if request.model is None:
            raise UnsupportedConfiguration(f"{request.spec.id}: the pc platform needs the PC model (ZooModel)")
        if request.quantization != "float":
            raise UnsupportedConfiguration(
                f"{request.spec.id}: TensorFlow has no PC {request.quantization} model (its int8 model exists "
                "only as .tflite); run it on the 'mobile' platform"
            )
        super().__init__(request, request.model.weights_path)
        self._module = request.model.module
        self._graph = ADAPTERS["tensorflow"].graph(self._module)  # the same traced call ZooModel.predict makes
        self.requested_threads = request.threads
        self.threads = tensorflow_threads(request.threads)

    def _infer(self, batch: np.ndarray) -> np.ndarray:
        return self._graph(batch).numpy()

    def describe(self) -> dict:
        return {**super().describe(), "requested_threads": self.requested_threads}

    def close(self) -> None:
        self._module = self._graph = None
