"""PyTorch -> ExecuTorch ``.pte`` with the XNNPACK delegate, for the ExecuTorch runtime.

The same PyTorch weights that the lite interpreter runs as ``.ptl`` and LiteRT as
``.tflite`` run here on ExecuTorch, the PyTorch project's current on-device runtime. The
file takes what the lite interpreter's file takes: one NCHW float32 tensor normalised by
the model's :class:`Normalization` (the spec's layout, unchanged), and returns float32 logits.

Float: ``torch.export.export`` -> ``executorch.exir.to_edge_transform_and_lower`` with
``XnnpackPartitioner`` -> ``to_executorch()`` -> the ``.pte`` bytes. int8 is PT2E
post-training static quantization with ExecuTorch's own XNNPACK quantizer
(``XNNPACKQuantizer`` with ``get_symmetric_quantization_config(is_per_channel=True)``):
``torch.export`` -> ``prepare_pt2e`` -> calibration on the same calibration images the other
int8 conversions use -> ``convert_pt2e`` -> ``torch.export`` again -> the same lowering. The
quantize/dequantize pairs are folded into XNNPACK's int8 kernels; the file's input and output
stay float32.

The batch is a dynamic dimension (1 to :data:`MAX_BATCH`), so a batch runs in one call.
Lowering to XNNPACK with torch 2.14 narrows the batch's range to [2, 15] in the export's
shape environment (XNNPACK's channels-last pass re-runs the convolutions on fake tensors, and
their backend choice guards on the batch being under 16), which would make ExecuTorch plan
every tensor for at most 15 images; :func:`_lower` puts the exported range back before
memory planning. Where the module cannot be exported or lowered with a dynamic batch, the
conversion falls back to a fixed batch of 1 (the runtime then runs one image per call) and the
metadata says so (``batch``, ``dynamic_batch_failure``).

The artefact's metadata carries ``delegation``: which operators the XNNPACK delegate runs
(``delegated_ops``), which stay on ExecuTorch's portable kernels (``non_delegated_ops``), the
number of delegated subgraphs and the delegated fraction of the operators; counted on the
lowered graph as ``executorch.devtools.backend_debug.get_delegation_info`` counts them (that
function needs pandas, which the suite does not install), without the ``getitem`` nodes that
only unpack tuples.

Like :mod:`harness.convert.torch_litert`, the conversion runs in a child
(``python -m harness.convert.executorch``) that never imports TensorFlow
(:mod:`harness.convert.child`); a failure is a :class:`ConversionError` naming the model, the
quantization, the stage (``torch.export``, ``quantize``, ``lower``, ``serialize``) and the
converter's own message.
"""

from __future__ import annotations

import sys
import tempfile
import time
from collections import Counter
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import numpy as np

from harness.convert.base import ConversionError, calibration_options, register_converter
from harness.convert.child import child_main, hand_over_module, run_child, stage
from harness.zoo.base import ModelSpec, ZooModel

CALIBRATION_BATCH = 100
MAX_BATCH = 256  # the dynamic batch's upper bound: ExecuTorch plans its memory for this many images
PROTOCOL = "EXECUTORCH"  # the child's report lines (harness.convert.child)
BACKEND = "XnnpackBackend"
DISTRIBUTIONS = ("executorch", "torch", "torchao", "numpy")
STAGES = ("torch.export", "quantize", "lower", "serialize")


def _version(dist: str) -> str | None:
    try:
        return version(dist)
    except PackageNotFoundError:
        return None


def input_shape(spec: ModelSpec, batch: int = 1) -> list[int]:
    """The file's input: the spec's layout (NCHW for the PyTorch zoos), ``batch`` images."""
    size = spec.input_size
    return [batch, 3, size, size] if spec.normalization.layout == "NCHW" else [batch, size, size, 3]


class ExecuTorchConverter:
    framework = "pytorch"
    format = "pte"

    def versions(self) -> dict:
        return {dist: _version(dist) for dist in DISTRIBUTIONS}

    def options(self, spec: ModelSpec, quantization: str, n_calibration: int) -> dict:
        options = {
            "converter": "executorch.exir.to_edge_transform_and_lower",
            "partitioner": "XnnpackPartitioner",
            "backend": BACKEND,
            "input_layout": spec.normalization.layout,
            "batch": "dynamic",
            "max_batch": MAX_BATCH,
            "strict_export": False,
            "inference_input_type": "float32",
            "inference_output_type": "float32",
        }
        if quantization == "int8":
            options.update(
                quantization="PT2E static post-training",
                quantizer="executorch XNNPACKQuantizer",
                quantization_config="get_symmetric_quantization_config(is_per_channel=True)",
                **calibration_options(spec, n_calibration, CALIBRATION_BATCH),
            )
        return options

    def build(self, model: ZooModel, quantization: str, calibration: np.ndarray | None,
              options: dict, out_dir: Path, filename: str) -> dict:
        out_dir = Path(out_dir)
        spec = model.spec
        start = time.perf_counter()
        failed = f"{spec.id}: executorch {quantization} conversion failed"
        with tempfile.TemporaryDirectory(prefix="executorch-") as tmp:
            tmp = Path(tmp)
            hand_over_module(model.module, tmp / "module.pt", failed)
            job = {"module": str(tmp / "module.pt"), "output": str(out_dir / filename), "quantization": quantization,
                   "sample_shape": input_shape(spec), "max_batch": int(options["max_batch"])}
            if quantization == "int8":
                np.save(tmp / "calibration.npy", np.ascontiguousarray(calibration, dtype=np.float32))
                job["calibration"] = str(tmp / "calibration.npy")
                job["calibration_batch"] = CALIBRATION_BATCH
            facts = run_child("harness.convert.executorch", PROTOCOL, job, failed)
        written = out_dir / filename
        if not written.is_file() or written.stat().st_size == 0:
            raise ConversionError(f"{failed}: it wrote no file at {written}")
        io = facts.pop("io")
        expected_input = input_shape(spec, io["max_batch"])
        if io["input"]["shape"] != expected_input or io["input"]["dtype"] != "float32":
            raise ConversionError(f"{failed}: the file takes {io['input']}, expected float32 {expected_input} "
                                  f"({written})")
        if io["output"]["shape"] != [io["max_batch"], spec.num_classes] or io["output"]["dtype"] != "float32":
            raise ConversionError(f"{failed}: the file answers {io['output']}, expected float32 "
                                  f"[{io['max_batch']}, {spec.num_classes}] ({written})")
        return {"conversion_seconds": round(time.perf_counter() - start, 3), "io": io,
                "delegation": facts.pop("delegation"), "batch": facts.pop("batch"), "child": facts}


register_converter(ExecuTorchConverter())


# -- the child (never imports TensorFlow) ------------------------------------------------------------
def _op_name(target) -> str:
    import torch

    if isinstance(target, torch._ops.OpOverload):
        return str(target)  # aten.sym_size.int
    return getattr(target, "__name__", str(target))  # edge ops: aten.convolution.default


def delegation_info(graph_module) -> dict:
    """Delegated and non-delegated operators of a lowered graph, by operator, as
    ``get_delegation_info`` counts them (tuple ``getitem`` nodes aside)."""
    import operator

    delegated: Counter = Counter()
    remaining: Counter = Counter()
    subgraphs = 0
    for node in graph_module.graph.nodes:
        if node.op == "get_attr" and node.name.startswith("lowered_module_"):
            lowered = getattr(graph_module, node.target)
            if lowered.backend_id != BACKEND:
                raise ValueError(f"a subgraph was lowered to {lowered.backend_id}, expected {BACKEND}")
            subgraphs += 1
            delegated.update(_op_name(inner.target) for inner in lowered.original_module.graph.nodes
                             if inner.op == "call_function" and inner.target is not operator.getitem)
        elif (node.op == "call_function" and node.target is not operator.getitem
              and _op_name(node.target) != "executorch_call_delegate"):
            remaining[_op_name(node.target)] += 1
    total = sum(delegated.values()) + sum(remaining.values())
    return {"backend": BACKEND, "delegated_ops": dict(sorted(delegated.items())),
            "non_delegated_ops": dict(sorted(remaining.items())), "delegated_subgraphs": subgraphs,
            "delegated_fraction": round(sum(delegated.values()) / total, 6) if total else 0.0}


def _batch_symbol(exported):
    """The batch's symbol in the exported program's shape environment, or None when it is fixed."""
    user_inputs = exported.graph_signature.user_inputs
    for node in exported.graph.nodes:
        if node.op == "placeholder" and node.name in user_inputs:
            size = node.meta["val"].shape[0]
            return None if isinstance(size, int) else size.node
    return None


def _lower(exported):
    """``to_edge_transform_and_lower`` with XNNPACK, the batch's exported range kept (see the module doc)."""
    from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner
    from executorch.exir import to_edge_transform_and_lower

    symbol = _batch_symbol(exported)
    saved = None if symbol is None else symbol.shape_env.var_to_range[symbol.expr]
    edge = to_edge_transform_and_lower(exported, partitioner=[XnnpackPartitioner()])
    if symbol is not None:
        symbol.shape_env.var_to_range[symbol.expr] = saved
    return edge


def _export(module, job: dict, dynamic: bool):
    import torch

    # Two images with a dynamic batch, so torch.export does not specialise it to 1.
    shape = [2 if dynamic else 1, *job["sample_shape"][1:]]
    sample = (torch.zeros(shape, dtype=torch.float32),)
    dims = ({0: torch.export.Dim("batch", min=1, max=int(job["max_batch"]))},) if dynamic else None
    return torch.export.export(module, sample, dynamic_shapes=dims, strict=False), sample, dims


def _attempt(job: dict, dynamic: bool) -> tuple[bytes, dict]:
    import torch

    module = torch.load(job["module"], map_location="cpu", weights_only=False).eval()
    facts: dict = {}
    with stage("torch.export"):
        exported, sample, dims = _export(module, job, dynamic)
    if job["quantization"] == "int8":
        with stage("quantize"):
            from executorch.backends.xnnpack.quantizer.xnnpack_quantizer import (
                XNNPACKQuantizer,
                get_symmetric_quantization_config,
            )
            from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e

            quantizer = XNNPACKQuantizer().set_global(get_symmetric_quantization_config(is_per_channel=True))
            prepared = prepare_pt2e(exported.module(), quantizer)
            calibration = np.load(job["calibration"])
            batch = int(job["calibration_batch"])
            with torch.no_grad():
                for i in range(0, len(calibration), batch):
                    prepared(torch.from_numpy(calibration[i:i + batch]))
            quantized = convert_pt2e(prepared)
            facts["calibration_images"] = int(len(calibration))
        with stage("torch.export"):
            exported = torch.export.export(quantized, sample, dynamic_shapes=dims, strict=False)
    with stage("lower"):
        edge = _lower(exported)
        facts["delegation"] = delegation_info(edge.exported_program().graph_module)
    with stage("serialize"):
        program = edge.to_executorch()
        data = bytes(program.buffer)
    return data, facts


def _io(path: str) -> dict:
    """The written file's method ``forward`` as ExecuTorch's runtime reads it."""
    from executorch.runtime import Runtime

    meta = Runtime.get().load_program(path).load_method("forward").metadata
    if meta.num_inputs() != 1 or meta.num_outputs() != 1:
        raise ValueError(f"forward has {meta.num_inputs()} inputs and {meta.num_outputs()} outputs, expected one each")
    dtypes = {6: "float32", 1: "int8", 0: "uint8"}  # ExecuTorch ScalarType codes

    def describe(info) -> dict:
        return {"shape": [int(d) for d in info.sizes()], "dtype": dtypes.get(int(info.dtype()), str(info.dtype()))}

    io = {"input": describe(meta.input_tensor_meta(0)), "output": describe(meta.output_tensor_meta(0))}
    io["max_batch"] = io["input"]["shape"][0]
    return io


def _convert(job: dict) -> dict:
    dynamic_failure = None
    try:
        data, facts = _attempt(job, dynamic=True)
        facts["batch"] = "dynamic"
    except Exception as exc:  # noqa: BLE001 - tried again with a fixed batch; if that fails, it is the verdict
        dynamic_failure = str(exc)
        data, facts = _attempt(job, dynamic=False)
        facts["batch"] = "1"
        facts["dynamic_batch_failure"] = dynamic_failure[:1500]
    with stage("serialize"):
        output = Path(job["output"])
        partial = output.with_name(output.name + ".partial")
        partial.write_bytes(data)
        partial.replace(output)
        facts["io"] = _io(str(output))
    return facts


if __name__ == "__main__":
    sys.exit(child_main(sys.argv[1:], _convert, PROTOCOL))
