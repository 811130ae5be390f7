"""PyTorch runtimes: the eager module on the PC, and the lite interpreter for ``.ptl`` files.

Threads: ``torch.set_num_threads`` is process-wide, so every call sets this runtime's
count and puts the previous one back. int8 models run with the ``qnnpack`` quantized
engine (the one they were calibrated for and that phones use), set around loading and
every call for the same reason.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

import numpy as np

from harness.convert.torch_mobile import ENGINE, QUANTIZED_STATE, quantized_engine, quantized_module, quiet_deprecations
from harness.frameworks import import_torch
from harness.axes.runtimes import RUNTIMES, RuntimeKind
from harness.runtime.base import BatchPlan, ModelFileError, Runtime, RuntimeRequest, Timer, UnsupportedConfiguration
from harness.runtime.verify import verify_model_file
from harness.zoo.frameworks import channels_last


@contextlib.contextmanager
def torch_threads(n: int | None):
    torch = import_torch()
    previous = torch.get_num_threads()
    if n:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def logits_tensor(output):
    """The logits of a model's output: scripted torchvision Inception3 always returns
    ``InceptionOutputs(logits, aux_logits)`` (a tuple in the lite interpreter), even with
    ``aux_logits=False``, where the eager module returns the tensor alone."""
    if hasattr(output, "logits"):
        return output.logits
    if isinstance(output, (tuple, list)):
        return output[0]
    return output


class _TorchRuntime(Runtime):
    version_packages = ("torch",)
    # "channels_last" for the PC float model (see harness.zoo.frameworks.channels_last);
    # quantized and lite-interpreter models get the contiguous NCHW tensor an app feeds.
    memory_format = "contiguous"

    def _context(self):
        stack = contextlib.ExitStack()
        stack.enter_context(torch_threads(self.threads))
        stack.enter_context(quiet_deprecations())
        if self.engine:
            stack.enter_context(quantized_engine(self.engine))
        return stack

    def _infer(self, batch: np.ndarray) -> np.ndarray:
        torch = import_torch()
        x = torch.from_numpy(batch)
        if self.memory_format == "channels_last":
            x = channels_last(x)
        with self._context(), torch.inference_mode():
            return logits_tensor(self._module(x)).numpy()

    def describe(self) -> dict:
        return {**super().describe(), "memory_format": self.memory_format}

    def close(self) -> None:
        self._module = None


class TorchPCRuntime(_TorchRuntime):
    """The PyTorch module itself: the float model, or (an extra) the eager int8 module."""

    def __init__(self, request: RuntimeRequest):
        model = request.model
        if model is None:
            raise UnsupportedConfiguration(f"{request.spec.id}: the pc platform needs the PC model (ZooModel)")
        if request.quantization == "float":
            super().__init__(request, model.weights_path)
            self._module = model.module.eval()
            self.memory_format = "channels_last"  # as ZooModel.predict and the attacks compute
            return
        artifact = request.artifact
        if artifact is None or not hasattr(artifact, "file"):
            raise UnsupportedConfiguration(
                f"{request.spec.id}: pc int8 rebuilds the eager quantized module and needs the int8 "
                "conversion artefact (harness.convert.convert(model, 'int8', calibration))"
            )
        state = artifact.file(QUANTIZED_STATE)
        super().__init__(request, state)
        self.engine = ENGINE
        with Timer() as t:
            try:
                self._module = quantized_module(model, state)
            except Exception as exc:
                raise ModelFileError(f"{state}: cannot rebuild the int8 module ({exc})") from exc
        self.load_seconds = t.seconds


class TorchLiteRuntime(_TorchRuntime):
    """A ``.ptl`` file in the PyTorch Mobile lite interpreter (``_load_for_lite_interpreter``).

    A ``.ptl`` has no input signature to read its batch from: one traced or scripted with a
    baked-in batch (``x.reshape(1, -1)``, ``x.view(1, ...)``) takes one image and fails on two,
    or returns the wrong number of rows. When it loads, the file is called on one image and then
    on two; if two fail (or do not give two rows) it runs image by image (batch mode ``fixed``,
    size 1), else whole batches (``dynamic``)."""

    def __init__(self, request: RuntimeRequest):
        path = request.model_file()
        super().__init__(request, path)
        if path is None or not Path(path).is_file():
            raise ModelFileError(f"{path}: .ptl file not found")
        self.engine = ENGINE if request.quantization == "int8" else None
        s = self.spec
        probe = np.zeros((1, 3, s.input_size, s.input_size) if s.normalization.layout == "NCHW"
                         else (1, s.input_size, s.input_size, 3), np.float32)
        # Load and call it in a child first: a corrupt file that crashes the interpreter kills the child.
        verify_model_file(path, "ptl", input_shape=probe.shape, engine=self.engine)
        import_torch()
        from torch.jit.mobile import _load_for_lite_interpreter

        with Timer() as t, self._context():
            try:
                self._module = _load_for_lite_interpreter(str(path))
            except Exception as exc:  # torch raises RuntimeError with a long C++ trace
                first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
                raise ModelFileError(f"{path}: the PyTorch lite interpreter cannot load this model ({first})") from exc
        self.load_seconds = t.seconds
        # A probe: a file that loads but does not take this spec's input fails here, by name.
        try:
            out = self._infer(probe)
        except Exception as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ModelFileError(f"{path}: model does not take {s.id}'s input {probe.shape} ({first})") from exc
        if out.shape != (1, s.num_classes):
            raise ModelFileError(f"{path}: output shape {out.shape} does not match {s.id}'s {s.num_classes} classes")
        self.batch_plan = self._probe_batch(probe)

    def _probe_batch(self, probe: np.ndarray) -> BatchPlan:
        try:
            rows = len(self._infer(np.concatenate([probe, probe])))
        except Exception:  # noqa: BLE001  (a baked-in batch fails in the module's own ops)
            rows = None
        return BatchPlan("dynamic") if rows == 2 else BatchPlan("fixed", size=1)

    def _infer(self, batch: np.ndarray) -> np.ndarray:
        plan = self.batch_plan
        if plan is None:  # the load-time probes
            return super()._infer(batch)
        return plan.run(super()._infer, batch, str(self.model_path))


def check_load(path: str, settings: dict) -> None:
    from harness.frameworks import import_torch

    torch = import_torch()
    from torch.jit.mobile import _load_for_lite_interpreter

    if settings["engine"]:
        torch.backends.quantized.engine = settings["engine"]
    module = _load_for_lite_interpreter(path)
    if settings["input_shape"]:
        try:
            with torch.inference_mode():
                module(torch.zeros(settings["input_shape"]))
        except Exception as exc:
            raise RuntimeError(f"it loads, but a call on zeros of shape {tuple(settings['input_shape'])} fails: "
                               f"{str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__}")


def _torch_versions() -> dict:
    return {"torch": import_torch().__version__, "numpy": np.__version__}


KIND = RUNTIMES.register(RuntimeKind(
    "torch_lite", "ptl", "lite interpreter (.ptl)", "the PyTorch lite interpreter", "torch", open=TorchLiteRuntime,
    check_load=check_load, native_for=("pytorch",), runner_family="torch", versions=_torch_versions))
