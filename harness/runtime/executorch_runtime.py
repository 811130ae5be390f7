"""ExecuTorch on this host: a ``.pte`` file in ``executorch.runtime``.

``Runtime.get().load_program(path).load_method("forward")``, then ``Method.execute([x])``
on the tensor the lite interpreter's file gets: the spec's :class:`Normalization` (NCHW
float32 for the PyTorch zoos), contiguous. The XNNPACK delegate runs the delegated
subgraphs (float, and int8 with its quantized kernels); ExecuTorch's portable kernels run the
rest. A file converted with a dynamic batch runs a whole batch in one call, up to the batch
its memory was planned for (``max_batch``, the input's first dimension in the method's
metadata); a file exported at a static batch N (``torch.export`` without dynamic shapes:
the method refuses any other batch) runs in chunks of exactly N, a short last chunk padded
(:class:`harness.runtime.base.BatchPlan`). Which of the two a file is, the method's metadata
does not say: a program planned for more than one image is called once on one image when it
loads, and a refusal makes it fixed.

Threads: XNNPACK runs on ExecuTorch's process-wide thread pool, which
``portable_lib._unsafe_reset_threadpool`` resizes; this runtime sets it to its own count
when it loads and before each call when another runtime changed it (never during a call).

A missing, truncated, corrupt or non-``.pte`` file is a :class:`ModelFileError` naming it: it
is loaded and run once in a child first (:func:`harness.runtime.verify.verify_model_file`),
whose message carries the reason ExecuTorch logged (its exception holds an error code only).
The child matters: ExecuTorch 1.5.1 aborts the process (SIGABRT) on a file whose identifier
bytes are not UTF-8, when its log line about the bad identifier fails to decode.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import numpy as np

from harness.frameworks import import_torch
from harness.axes.runtimes import RUNTIMES, RuntimeKind
from harness.runtime.base import BatchPlan, InputMismatchError, ModelFileError, Runtime, RuntimeRequest, Timer
from harness.runtime.verify import verify_model_file

FLOAT = 6  # ExecuTorch ScalarType code of float32


def executorch_versions() -> dict:
    """This host's ExecuTorch runtime and what it runs with."""
    def get(dist: str) -> str | None:
        try:
            return version(dist)
        except PackageNotFoundError:
            return None

    return {"executorch": get("executorch"), "torch": get("torch"), "numpy": np.__version__}


def _threadpool():
    import executorch.extension.pybindings.portable_lib as portable_lib

    return portable_lib


class ExecuTorchRuntime(Runtime):
    default_batch_size = 64  # per image as fast as larger batches here; results do not depend on it
    engine = None  # not PyTorch's quantized engine: XNNPACK's kernels run int8 (see ``backend``)

    def __init__(self, request: RuntimeRequest):
        path = request.model_file()
        super().__init__(request, path)
        if not isinstance(self.threads, int) or self.threads < 1:
            raise ValueError(f"{path}: ExecuTorch threads must be a positive int, got {self.threads!r}")
        if path is None or not Path(path).is_file():
            raise ModelFileError(f"{path}: .pte file not found")
        s = self.spec
        nchw = s.normalization.layout == "NCHW"
        probe = (1, 3, s.input_size, s.input_size) if nchw else (1, s.input_size, s.input_size, 3)
        verify_model_file(path, "pte", input_shape=probe)  # a crash kills a child, not us
        import_torch()
        from executorch.runtime import Runtime as ETRuntime

        self.versions = executorch_versions()
        self._set_threads()
        with Timer() as t:
            try:
                runtime = ETRuntime.get()
                self._program = runtime.load_program(Path(path))
                self._method = self._program.load_method("forward")
            except Exception as exc:  # RuntimeError("Failed to load program, error: 0x..")
                raise ModelFileError(f"{path}: ExecuTorch cannot load this program ({exc})") from exc
        self.load_seconds = t.seconds
        self.backends = sorted(runtime.backend_registry.registered_backend_names)
        self._check_signature(path)
        self.batch_plan = self._probe_batch()

    def _probe_batch(self) -> BatchPlan:
        """Dynamic (up to ``max_batch``) when the method takes a single image, else fixed at ``max_batch``."""
        if self.max_batch == 1:
            return BatchPlan("fixed", size=1)
        torch = import_torch()
        try:
            self._method.execute([torch.zeros((1, *self._input_shape), dtype=torch.float32)])
        except RuntimeError:  # "Attempted to resize a static tensor": a static batch
            return BatchPlan("fixed", size=self.max_batch)
        return BatchPlan("dynamic", max=self.max_batch)

    def _set_threads(self) -> None:
        pool = _threadpool()
        if pool._threadpool_get_thread_count() != self.threads:
            pool._unsafe_reset_threadpool(self.threads)
        self.threadpool_threads = int(pool._threadpool_get_thread_count())

    def _check_signature(self, path: Path) -> None:
        meta = self._method.metadata
        if meta.num_inputs() != 1 or meta.num_outputs() != 1:
            raise ModelFileError(f"{path}: expected one input and one output, found {meta.num_inputs()} and "
                                 f"{meta.num_outputs()}")
        inputs, outputs = meta.input_tensor_meta(0), meta.output_tensor_meta(0)
        shape, out_shape = tuple(inputs.sizes()), tuple(outputs.sizes())
        s = self.spec
        nchw = s.normalization.layout == "NCHW"
        expected = (3, s.input_size, s.input_size) if nchw else (s.input_size, s.input_size, 3)
        if len(shape) != 4 or shape[1:] != expected or int(inputs.dtype()) != FLOAT:
            raise ModelFileError(f"{path}: model input {shape} (ExecuTorch dtype {inputs.dtype()}) does not match "
                                 f"{s.id}'s float32 (N, {', '.join(str(d) for d in expected)})")
        if len(out_shape) != 2 or out_shape[1] != s.num_classes or int(outputs.dtype()) != FLOAT:
            raise ModelFileError(f"{path}: model output {out_shape} (ExecuTorch dtype {outputs.dtype()}) does not "
                                 f"match {s.id}'s float32 (N, {s.num_classes}) logits")
        self.max_batch = int(shape[0])  # the batch the program's memory is planned for
        if self.max_batch < 1:
            raise ModelFileError(f"{path}: model input {shape} has batch {self.max_batch}; expected a positive "
                                 "(static, or the upper bound of a dynamic) batch")
        self._input_shape = shape[1:]

    def _infer(self, batch: np.ndarray) -> np.ndarray:
        torch = import_torch()
        if batch.shape[1:] != self._input_shape:
            raise InputMismatchError(f"{self.model_path}: input tensor {batch.shape} does not fit "
                                     f"(N, {', '.join(str(d) for d in self._input_shape)})")
        if _threadpool()._threadpool_get_thread_count() != self.threads:
            self._set_threads()

        def call(chunk: np.ndarray) -> np.ndarray:
            x = torch.from_numpy(np.ascontiguousarray(chunk, dtype=np.float32))
            return self._method.execute([x])[0].numpy().copy()

        return self.batch_plan.run(call, batch, str(self.model_path))

    def describe(self) -> dict:
        return {**super().describe(), "backends": self.backends, "max_batch": self.max_batch,
                "threadpool_threads": self.threadpool_threads, "versions": self.versions}

    def close(self) -> None:
        self._method = None
        self._program = None


def check_load(path: str, settings: dict) -> None:
    from harness.frameworks import import_torch

    torch = import_torch()
    from executorch.runtime import Runtime

    method = Runtime.get().load_program(path).load_method("forward")  # it logs why it refuses to stderr
    if settings["input_shape"]:
        shape = list(settings["input_shape"])
        try:
            try:
                method.execute([torch.zeros(shape)])
            except RuntimeError:  # a program exported at a static batch N takes N images, not one
                planned = list(method.metadata.input_tensor_meta(0).sizes())
                if len(planned) != len(shape) or planned[0] in (shape[0], 0) or planned[1:] != shape[1:]:
                    raise
                method.execute([torch.zeros(planned)])
        except Exception as exc:
            raise RuntimeError(f"it loads, but a call on zeros of shape {tuple(settings['input_shape'])} fails: "
                               f"{str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__}")


KIND = RUNTIMES.register(RuntimeKind(
    "executorch", "pte", "ExecuTorch (.pte)", "ExecuTorch", "executorch", open=ExecuTorchRuntime,
    check_load=check_load, runner_family="executorch", versions=executorch_versions))
