"""LiteRT (TFLite) on this host: ``ai_edge_litert.interpreter.Interpreter``.

``num_threads`` is always set explicitly. A file whose input ``shape_signature`` has -1 as
its batch (what this project's conversions write) runs a batch in one ``invoke`` after
``resize_tensor_input`` + ``allocate_tensors`` (re-done only when the batch size changes).
A file with a fixed batch (signature [1, 224, 224, 3] or [N, ...]: what TensorFlow's
converter writes from a model with a fixed-batch input, as Model Maker, MediaPipe and the
model zoos ship them) cannot be resized; it runs in chunks of exactly its batch, a short
last chunk padded (see :class:`harness.runtime.base.BatchPlan`).
The op resolver is selectable, because int8 outputs differ between kernels by a rounding
step: ``default`` (LiteRT's default, with the XNNPACK delegate applied), ``builtin`` (the
optimised builtin kernels without default delegates) and ``reference`` (the reference
kernels). A model with int8 input/output tensors is fed through its quantization
parameters, so bring-your-own fully-int8 models also run.
"""

from __future__ import annotations

from importlib.metadata import version
from pathlib import Path

import numpy as np

from android_harness.runner import JobError, litert_batches
from harness.axes.runtimes import RUNTIMES, RuntimeKind
from harness.runtime.base import BatchPlan, InputMismatchError, ModelFileError, Runtime, RuntimeRequest, Timer
from harness.runtime.verify import verify_model_file

# our name -> OpResolverType member name
RESOLVERS = {
    "default": "AUTO",
    "builtin": "BUILTIN_WITHOUT_DEFAULT_DELEGATES",
    "reference": "BUILTIN_REF",
}
ALIASES = {"xnnpack": "default", "auto": "default"}


def resolver_name(resolver: str | None) -> str:
    name = ALIASES.get(resolver or "default", resolver or "default")
    if name not in RESOLVERS:
        raise ValueError(f"unknown LiteRT op resolver {resolver!r}; expected one of {sorted(RESOLVERS) + sorted(ALIASES)}")
    return name


def batch_plan_of(input_detail: dict, output_detail: dict, path) -> BatchPlan:
    """The input's batch from its ``shape_signature`` (-1: dynamic; a positive number: fixed), read
    as the runner reads it (:func:`android_harness.runner.litert_batches`), refused in the same words
    when it is neither or when a fixed batch's output does not have one row per image."""
    try:
        found = litert_batches(str(path), input_detail, output_detail)
    except JobError as exc:
        raise ModelFileError(str(exc)) from None
    return BatchPlan(found.mode, size=found.size, max=found.max)


def quantization_of(detail: dict, path, role: str) -> tuple[float, int]:
    """(scale, zero point) of an int8/uint8 input or output tensor, refused unless the scale is a
    positive finite number: inputs are divided by it, and a zero scale would turn every pixel
    into inf (then a clipped constant) and every logit into 0 without any error."""
    scale, zero = detail["quantization"]
    if not (np.isfinite(scale) and scale > 0):
        raise ModelFileError(
            f"{path}: {role} tensor {detail['name']!r} ({np.dtype(detail['dtype']).name}) has quantization scale "
            f"{scale!r}; expected a positive finite number (the file is corrupt or was written wrongly)"
        )
    return float(scale), int(zero)


class LiteRTRuntime(Runtime):
    # Per image, batches of 32-64 ran fastest here; 250 was up to 40% slower (the
    # activations of a large batch fall out of cache). Results do not depend on it.
    default_batch_size = 64
    version_packages = ("ai-edge-litert",)

    def __init__(self, request: RuntimeRequest):
        from ai_edge_litert.interpreter import Interpreter, OpResolverType

        path = request.model_file()
        super().__init__(request, path)
        self.resolver = resolver_name(request.options.get("resolver"))
        self.op_resolver_type = RESOLVERS[self.resolver]
        if not isinstance(self.threads, int) or self.threads < 1:
            raise ValueError(f"{path}: LiteRT num_threads must be a positive int, got {self.threads!r}")
        if path is None or not path.is_file():
            raise ModelFileError(f"{path}: .tflite file not found")
        verify_model_file(path, "tflite", resolver=self.op_resolver_type)  # a crash kills a child, not us
        with Timer() as t:
            try:
                self.interpreter = Interpreter(
                    model_path=str(path), num_threads=self.threads,
                    experimental_op_resolver_type=getattr(OpResolverType, self.op_resolver_type),
                )
                self.interpreter.allocate_tensors()
            except (ValueError, RuntimeError) as exc:
                raise ModelFileError(f"{path}: LiteRT cannot load this model ({exc})") from exc
            self._check_signature(path)
        self.load_seconds = t.seconds
        self._batch = 1

    def _check_signature(self, path: Path) -> None:
        inputs, outputs = self.interpreter.get_input_details(), self.interpreter.get_output_details()
        wanted = self.spec.output  # a file with several outputs: the classifier's, by name
        if wanted is not None:
            outputs = [d for d in outputs if d["name"] == wanted] or outputs
        if len(inputs) != 1 or len(outputs) != 1:
            raise ModelFileError(f"{path}: expected one input and one output{f' named {wanted!r}' if wanted else ''}, "
                                 f"found {len(inputs)} and {len(outputs)}")
        self._input, self._output = inputs[0], outputs[0]
        s = self.spec
        # The spec's layout: NHWC for the zoos' files; a bring-your-own file may take NCHW
        # (e.g. one converted from PyTorch), and its Normalization then transposes.
        nchw = s.normalization.layout == "NCHW"
        expected = (3, s.input_size, s.input_size) if nchw else (s.input_size, s.input_size, 3)
        if tuple(int(d) for d in self._input["shape"][1:]) != expected:
            raise ModelFileError(
                f"{path}: model input shape {tuple(self._input['shape'])} does not match "
                f"{s.id}'s (N, {', '.join(str(d) for d in expected)})"
            )
        if int(self._output["shape"][-1]) != s.num_classes:
            raise ModelFileError(
                f"{path}: model output shape {tuple(self._output['shape'])} does not match {s.id}'s {s.num_classes} classes"
            )
        self.batch_plan = batch_plan_of(self._input, self._output, path)
        self.input_dtype = np.dtype(self._input["dtype"])
        self.output_dtype = np.dtype(self._output["dtype"])
        if self.input_dtype != np.float32:
            self._input_quantization = quantization_of(self._input, path, "input")
        if self.output_dtype != np.float32:
            self._output_quantization = quantization_of(self._output, path, "output")

    def _resize(self, n: int) -> None:
        if n != self._batch:  # dynamic batch only: a fixed one always runs at its size
            shape = [n, *(int(d) for d in self._input["shape"][1:])]
            self.interpreter.resize_tensor_input(self._input["index"], shape, strict=True)
            self.interpreter.allocate_tensors()
            self._batch = n

    def _infer(self, batch: np.ndarray) -> np.ndarray:
        if batch.shape[1:] != tuple(int(d) for d in self._input["shape"][1:]):
            raise InputMismatchError(f"{self.model_path}: input tensor {batch.shape} does not fit {tuple(self._input['shape'])}")
        return self.batch_plan.run(self._invoke, batch, str(self.model_path))

    def _invoke(self, batch: np.ndarray) -> np.ndarray:
        if self.batch_plan.mode == "dynamic":
            self._resize(len(batch))
        x = batch
        if self.input_dtype != np.float32:
            scale, zero = self._input_quantization
            info = np.iinfo(self.input_dtype)
            x = np.clip(np.round(batch / scale + zero), info.min, info.max)
        self.interpreter.set_tensor(self._input["index"], np.ascontiguousarray(x, dtype=self.input_dtype))
        self.interpreter.invoke()
        out = self.interpreter.get_tensor(self._output["index"])
        if self.output_dtype != np.float32:
            scale, zero = self._output_quantization
            out = (out.astype(np.float32) - zero) * scale
        return out

    def describe(self) -> dict:
        return {**super().describe(), "op_resolver_type": self.op_resolver_type,
                "input_dtype": self.input_dtype.name, "output_dtype": self.output_dtype.name}

    def close(self) -> None:
        self.interpreter = None


def check_load(path: str, settings: dict) -> None:
    import numpy as np
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    interpreter = Interpreter(model_path=path, num_threads=1,
                              experimental_op_resolver_type=getattr(OpResolverType, settings["resolver"]))
    interpreter.allocate_tensors()
    for detail in interpreter.get_input_details():
        interpreter.set_tensor(detail["index"], np.zeros(detail["shape"], detail["dtype"]))
    interpreter.invoke()


KIND = RUNTIMES.register(RuntimeKind(
    "litert", "tflite", "LiteRT (.tflite)", "LiteRT", "ai-edge-litert", open=LiteRTRuntime, check_load=check_load,
    native_for=("tensorflow",), runner_family="litert",
    versions=lambda: {"litert": version("ai-edge-litert"), "numpy": np.__version__}))
