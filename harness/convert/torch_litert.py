"""PyTorch -> ``.tflite`` with ``litert-torch`` (``litert_torch.convert``), for the LiteRT runtime.

The same PyTorch weights that the lite interpreter runs as ``.ptl`` run here on LiteRT,
so a difference between runtimes can be told apart from a difference between
frameworks. The file takes what the project's LiteRT runtime already feeds a ``.tflite``
(host and the aarch64 runner alike): one NHWC float32 tensor, normalised by the model's
:class:`Normalization`, with any batch size. The PyTorch module takes NCHW, so it is
wrapped with a permute in front of the first layer before export, and the artefact's
spec says NHWC (:meth:`LiteRTTorchConverter.artifact_spec`). The batch is exported as a
dynamic dimension; :func:`_global_pools_as_means` and :func:`_reshapes_with_inferred_batch`
are the two rewrites litert-torch 0.10 needs for that (both compute the same values).

int8 is PT2E post-training static quantization with the quantizer litert-torch provides
(``PT2EQuantizer`` with ``get_symmetric_quantization_config(is_per_channel=True)``):
``torch.export`` -> ``prepare_pt2e`` -> calibration on the same calibration images the
other int8 conversions use -> ``convert_pt2e`` -> ``litert_torch.convert`` with
``QuantConfig(pt2e_quantizer=...)``. Its input and output tensors are int8; the runtime
reads their scale and zero point off the file.

Importing ``litert_torch`` (``torch._dynamo``) in a process that has imported TensorFlow
segfaults, and the study's processes import both. So the conversion runs in a child
(``python -m harness.convert.torch_litert``) that never imports TensorFlow: the module
is pickled for it (``torch.save``), the normalised calibration tensors are handed over
as ``.npy``, and the child writes the ``.tflite`` (the plumbing, shared with the
ExecuTorch converter, is :mod:`harness.convert.child`). Anything the child reports, a
refusal by ``torch.export`` included, becomes a :class:`ConversionError` naming the
model and carrying the converter's message.
"""

from __future__ import annotations

import dataclasses
import sys
import tempfile
import time
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import numpy as np

from harness.convert.base import ConversionError, calibration_options, register_converter
from harness.convert.child import child_main, hand_over_module, run_child
from harness.zoo.base import ModelSpec, ZooModel

CALIBRATION_BATCH = 100
PROTOCOL = "LITERT-TORCH"  # the child's report lines (harness.convert.child)
DISTRIBUTIONS = ("litert-torch", "litert-converter", "ai-edge-litert", "torch", "torchao", "numpy")


def _version(dist: str) -> str | None:
    try:
        return version(dist)
    except PackageNotFoundError:
        return None


class LiteRTTorchConverter:
    framework = "pytorch"
    format = "tflite"

    def versions(self) -> dict:
        return {dist.replace("-", "_"): _version(dist) for dist in DISTRIBUTIONS}

    def artifact_spec(self, spec: ModelSpec) -> ModelSpec:
        """The spec the converted file is run with: the model's, with the input channels last."""
        return dataclasses.replace(spec, normalization=dataclasses.replace(spec.normalization, layout="NHWC"))

    def options(self, spec: ModelSpec, quantization: str, n_calibration: int) -> dict:
        options = {
            "converter": "litert_torch.convert",
            "input_layout": "NHWC (a permute in front of the NCHW module)",
            "batch": "dynamic",
            "strict_export": False,
            "inference_input_type": "float32",
            "inference_output_type": "float32",
        }
        if quantization == "int8":
            options.update(
                quantization="PT2E static post-training",
                quantizer="litert_torch PT2EQuantizer",
                quantization_config="get_symmetric_quantization_config(is_per_channel=True, is_dynamic=False)",
                inference_input_type="int8",
                inference_output_type="int8",
                **calibration_options(spec, n_calibration, CALIBRATION_BATCH),
            )
        return options

    def build(self, model: ZooModel, quantization: str, calibration: np.ndarray | None,
              options: dict, out_dir: Path, filename: str) -> dict:
        out_dir = Path(out_dir)
        spec = model.spec
        start = time.perf_counter()
        failed = f"{spec.id}: litert-torch {quantization} conversion failed"
        with tempfile.TemporaryDirectory(prefix="litert-torch-") as tmp:
            tmp = Path(tmp)
            hand_over_module(model.module, tmp / "module.pt", failed)
            job = {"module": str(tmp / "module.pt"), "output": str(out_dir / filename), "quantization": quantization,
                   "sample_shape": [1, spec.input_size, spec.input_size, 3]}
            if quantization == "int8":
                nhwc = calibration.transpose(0, 2, 3, 1) if spec.normalization.layout == "NCHW" else calibration
                np.save(tmp / "calibration.npy", np.ascontiguousarray(nhwc, dtype=np.float32))
                job["calibration"] = str(tmp / "calibration.npy")
                job["calibration_batch"] = CALIBRATION_BATCH
            facts = run_child("harness.convert.torch_litert", PROTOCOL, job, failed)
        written = out_dir / filename
        if not written.is_file() or written.stat().st_size == 0:
            raise ConversionError(f"{spec.id}: litert-torch {quantization} conversion wrote no file at {written}")
        io = _io_details(written, spec, quantization)
        for role in ("input", "output"):
            if io[role]["dtype"] != options[f"inference_{role}_type"]:
                raise ConversionError(
                    f"{spec.id}: litert-torch {quantization} file's {role} is {io[role]['dtype']}, "
                    f"expected {options[f'inference_{role}_type']} ({written})"
                )
        return {"conversion_seconds": round(time.perf_counter() - start, 3), "io": io, "child": facts}


register_converter(LiteRTTorchConverter())


def _io_details(path: Path, spec: ModelSpec, quantization: str) -> dict:
    """The file's input and output tensors as LiteRT reads them (shape, dtype, scale, zero point)."""
    from ai_edge_litert.interpreter import Interpreter

    try:
        interpreter = Interpreter(model_path=str(path))
    except (ValueError, RuntimeError) as exc:
        raise ConversionError(
            f"{spec.id}: litert-torch {quantization} file {path} does not load in LiteRT ({exc})") from exc
    inputs, outputs = interpreter.get_input_details(), interpreter.get_output_details()
    if len(inputs) != 1 or len(outputs) != 1:
        raise ConversionError(f"{spec.id}: litert-torch {quantization} file {path} has {len(inputs)} inputs and "
                              f"{len(outputs)} outputs, expected one of each")

    def describe(detail: dict) -> dict:
        scale, zero = detail["quantization"]
        return {"shape": [int(d) for d in detail["shape_signature"]], "dtype": np.dtype(detail["dtype"]).name,
                "scale": float(scale), "zero_point": int(zero)}

    io = {"input": describe(inputs[0]), "output": describe(outputs[0])}
    expected = [-1, spec.input_size, spec.input_size, 3]
    if io["input"]["shape"] != expected:
        raise ConversionError(f"{spec.id}: litert-torch {quantization} file {path} takes {io['input']['shape']}, "
                              f"expected NHWC {expected} (-1: any batch)")
    return io


# -- the child (never imports TensorFlow) ------------------------------------------------------------
def _reshapes_with_inferred_batch(graph_module) -> int:
    """Rewrite each view/reshape/flatten whose output has one dynamic dimension (the batch) as a
    ``reshape`` to the same shape with -1 there; return how many were rewritten.

    litert-torch 0.10 cannot lower a view to a shape that holds a symbolic size (its JAX
    bridge needs concrete integers), and ``torch.flatten(x, 1)`` after the global pool is
    exactly that once the batch is dynamic. A reshape with -1 in the one unknown place is the
    same operation and lowers."""
    import torch

    shape_ops = {torch.ops.aten.view.default, torch.ops.aten.reshape.default, torch.ops.aten.flatten.using_ints,
                 torch.ops.aten._unsafe_view.default}
    rewritten = 0
    for node in graph_module.graph.nodes:
        if node.op != "call_function" or node.target not in shape_ops or "val" not in node.meta:
            continue
        dims = list(node.meta["val"].shape)
        symbolic = [i for i, d in enumerate(dims) if not isinstance(d, int)]
        if len(symbolic) != 1:
            continue
        node.target = torch.ops.aten.reshape.default
        node.args = (node.args[0], [-1 if i in symbolic else int(d) for i, d in enumerate(dims)])
        node.kwargs = {}
        rewritten += 1
    graph_module.recompile()
    return rewritten


def _means_without_kept_dims(graph_module) -> int:
    """Fold ``mean(x, dims, keepdim=True)`` followed by a reshape that drops those unit dims
    (a global pool, then ``flatten``) into ``mean(x, dims, keepdim=False)``; return how many.

    litert-torch writes such a reshape with the export's batch as a constant (2 here), so an
    int8 file (where quantize/dequantize pairs keep it from being folded away) would only run
    on batches of 2. Without the reshape nothing in the file holds the batch."""
    import torch

    folded = 0
    for node in list(graph_module.graph.nodes):
        if node.op != "call_function" or node.target != torch.ops.aten.reshape.default:
            continue
        mean = node.args[0]
        if (getattr(mean, "target", None) != torch.ops.aten.mean.dim or len(mean.users) != 1
                or len(mean.args) < 3 or mean.args[2] is not True or "val" not in mean.meta or "val" not in node.meta):
            continue
        kept = list(mean.meta["val"].shape)
        dims = {d % len(kept) for d in mean.args[1]}
        if [d for i, d in enumerate(kept) if i not in dims] != list(node.meta["val"].shape):
            continue
        mean.args = (mean.args[0], mean.args[1], False)
        mean.meta["val"] = node.meta["val"]
        node.replace_all_uses_with(mean)
        graph_module.graph.erase_node(node)
        folded += 1
    graph_module.graph.lint()
    graph_module.recompile()
    return folded


def _global_pools_as_means(module) -> int:
    """Replace every ``nn.AdaptiveAvgPool2d`` to 1x1 by the same mean over H and W; return how many.

    On a feature map that is already 1x1 (the mini zoo's, at 32 px) ``adaptive_avg_pool2d``
    decomposes to an ``as_strided`` to a shape holding the dynamic batch, which litert-torch
    0.10 cannot lower; ``mean`` it lowers. The two compute the same average."""
    import torch
    from torch import nn

    class GlobalMeanPool(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x.mean(dim=(-2, -1), keepdim=True)

    replaced = 0
    for parent in list(module.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, nn.AdaptiveAvgPool2d) and child.output_size in (1, (1, 1)):
                setattr(parent, name, GlobalMeanPool())
                replaced += 1
    return replaced


def _convert(job: dict) -> dict:
    import torch

    import litert_torch
    from litert_torch.quantize import pt2e_quantizer, quant_config

    class ChannelsLastInput(torch.nn.Module):
        """The model behind a permute: NHWC in, as LiteRT's other files take it (what
        ``litert_torch.to_channel_last_io`` does, with a plain one-tensor signature)."""

        def __init__(self, wrapped):
            super().__init__()
            self.wrapped = wrapped

        def forward(self, x):
            return self.wrapped(x.permute(0, 3, 1, 2))

    module = torch.load(job["module"], map_location="cpu", weights_only=False).eval()
    pools = _global_pools_as_means(module)
    wrapped = ChannelsLastInput(module).eval()
    # Two images, so torch.export does not specialise the batch to 1; the batch stays a
    # dynamic dimension (-1 in the file), which the runtimes resize to each batch.
    sample = (torch.zeros([2, *job["sample_shape"][1:]], dtype=torch.float32),)
    dynamic = ({0: torch.export.Dim("batch", min=1, max=4096)},)
    exported = torch.export.export(wrapped, sample, dynamic_shapes=dynamic).module()
    facts: dict = {"global_pools_as_means": pools,
                   "reshapes_with_inferred_batch": _reshapes_with_inferred_batch(exported),
                   "means_without_kept_dims": _means_without_kept_dims(exported)}
    if job["quantization"] == "int8":
        from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e

        quantizer = pt2e_quantizer.PT2EQuantizer().set_global(
            pt2e_quantizer.get_symmetric_quantization_config(is_per_channel=True, is_dynamic=False))
        prepared = prepare_pt2e(exported, quantizer)
        calibration = np.load(job["calibration"])
        batch = int(job["calibration_batch"])
        with torch.no_grad():
            for i in range(0, len(calibration), batch):
                prepared(torch.from_numpy(calibration[i:i + batch]))
        quantized = convert_pt2e(prepared, fold_quantize=False)
        edge = litert_torch.convert(quantized, sample, dynamic_shapes=dynamic,
                                    quant_config=quant_config.QuantConfig(pt2e_quantizer=quantizer))
        facts["calibration_images"] = int(len(calibration))
    else:
        edge = litert_torch.convert(exported, sample, dynamic_shapes=dynamic)
    edge.export(job["output"])
    facts["slices_with_any_batch"] = _slices_with_any_batch(Path(job["output"]), int(sample[0].shape[0]))
    return facts


def _slices_with_any_batch(path: Path, export_batch: int) -> int:
    """Rewrite each SLICE whose constant size holds the export's batch as its first element to
    size -1 there ("to the end"), in place; returns how many constant size tensors changed.

    litert-torch 0.10 lowers a crop of the spatial dimensions (``x[:, :, 1:, 1:]``, e.g. the
    TensorFlow-style padding of EfficientNet-Lite's stride-2 convolutions) to a SLICE whose size
    spells out every dimension, the batch as the export's sample batch (2) included. The file then
    takes any batch at its input but answers 2 rows for every batch above 2. A size of -1 in the
    batch dimension is TFLite's own "to the end", which is what the crop means: the same values at
    every batch."""
    from ai_edge_litert import schema_py_generated as schema

    data = path.read_bytes()
    model = schema.ModelT.InitFromObj(schema.Model.GetRootAsModel(data, 0))
    slice_code = schema.BuiltinOperator.SLICE
    changed: set[int] = set()
    for graph in model.subgraphs:
        for op in graph.operators:
            code = model.operatorCodes[op.opcodeIndex]
            if max(code.builtinCode, code.deprecatedBuiltinCode) != slice_code or len(op.inputs) < 3:
                continue
            size = graph.tensors[op.inputs[2]]
            buffer = model.buffers[size.buffer]
            if buffer.data is None or size.type != schema.TensorType.INT32 or size.buffer in changed:
                continue
            values = np.frombuffer(bytes(buffer.data), dtype=np.int32).copy()
            if len(values) == 4 and values[0] == export_batch:
                values[0] = -1
                buffer.data = np.frombuffer(values.tobytes(), dtype=np.uint8)
                changed.add(size.buffer)
        if changed:  # the activations the export sized to its batch: any batch, as at the input
            for tensor in graph.tensors:
                const = model.buffers[tensor.buffer].data is not None
                shape = None if tensor.shape is None else [int(d) for d in tensor.shape]
                if not const and shape and shape[0] == export_batch and tensor.shapeSignature is None:
                    tensor.shapeSignature = np.array([-1, *shape[1:]], dtype=np.int32)
    if changed:
        import flatbuffers

        builder = flatbuffers.Builder(len(data))
        builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
        tmp = path.with_name(path.name + ".partial")
        tmp.write_bytes(bytes(builder.Output()))
        tmp.replace(path)
    return len(changed)


if __name__ == "__main__":
    sys.exit(child_main(sys.argv[1:], _convert, PROTOCOL))
