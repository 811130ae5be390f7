"""What a real ``.tflite`` file says about itself: its TFLite Model Metadata and its graph.

A user's file (bring your own model, :mod:`harness.zoo.user`) may carry more than its tensors:

* **TFLite Model Metadata** (:func:`read_metadata`), as written by tflite-support's metadata
  writers and shipped with the TF Hub / Kaggle / MediaPipe classifiers: the model's name and
  version, per input the colour space and the normalisation ``(pixel - mean) / std``, per
  output the labels file packed into the zip appended to the model, and value ranges. Read with
  the published reader (``tensorflow_lite_support.metadata.python.metadata.MetadataDisplayer``),
  not a parser of our own. A file without it gives ``None``; a malformed metadata buffer or zip
  is a :class:`TFLiteMetadataError` naming the file and what is wrong.
* **Its structure** (:func:`read_structure`), read with LiteRT's own flatbuffer reader
  (``ai_edge_litert.tools.flatbuffer_utils.read_model``; no interpreter, no TensorFlow): the
  inputs and outputs (names, shapes, ``shape_signature``, dtypes, quantization), the signatures,
  the operators. From it, :func:`detect_recipe` tells how the file was quantized, and
  :func:`output_kind` whether an output is probabilities or logits, each with its evidence.

Only the main graph is read: the subgraph the first signature runs, or subgraph 0.
"""

from __future__ import annotations

import functools
import io
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from harness.zoo.base import ZooError

# Recipe names, in the words of TFLiteConverter's options.
RECIPES = ("float32", "float16", "dynamic_int8", "int8", "uint8_legacy", "int16x8")
OUTPUT_KINDS = ("probabilities", "logits")

# Operators whose weights (a constant input) say how the model was quantized, and that input's index.
_WEIGHT_INPUT = {"CONV_2D": 1, "DEPTHWISE_CONV_2D": 1, "FULLY_CONNECTED": 1, "TRANSPOSE_CONV": 1,
                 "CONV_3D": 1, "BATCH_MATMUL": 1, "EMBEDDING_LOOKUP": 1}
# ... and the index of their activation (data) input.
_DATA_INPUT = {"TRANSPOSE_CONV": 2}
# Operators between a classifier's SOFTMAX and the graph's output that leave the values as they are.
_PASS_THROUGH = ("QUANTIZE", "DEQUANTIZE", "RESHAPE", "SQUEEZE")
# Output quantization TFLite's converter gives a softmax: dtype -> (scale, zero point).
_SOFTMAX_QUANTIZATION = {"uint8": (1 / 256, 0), "int8": (1 / 256, -128), "int16": (1 / 32768, 0)}


class TFLiteFileError(ZooError):
    """A ``.tflite`` file that cannot be read as one; the message names the file."""


class TFLiteMetadataError(TFLiteFileError):
    """A ``.tflite`` file whose TFLite Model Metadata (or its packed associated files) is malformed."""


# --------------------------------------------------------------------------------------------
# Structure


@dataclass(frozen=True)
class TensorInfo:
    """One tensor of the graph. ``scale``/``zero_point`` are empty for an unquantized tensor."""

    name: str
    index: int  # in the subgraph's tensors
    shape: tuple[int, ...]
    shape_signature: tuple[int, ...]  # -1 where a dimension is dynamic; == shape when the file says none
    dtype: str  # numpy's name: float32, float16, int8, uint8, int16, int32, ...
    scale: tuple[float, ...] = ()
    zero_point: tuple[int, ...] = ()
    quantized_dimension: int = 0

    @property
    def quantized(self) -> bool:
        return bool(self.scale)

    @property
    def per_channel(self) -> bool:
        return len(self.scale) > 1

    @property
    def batch(self) -> int | None:
        """The first dimension from ``shape_signature``: a fixed N, -1 when dynamic, None for a scalar."""
        return self.shape_signature[0] if self.shape_signature else None


@dataclass(frozen=True)
class Signature:
    """A signature: its key and its inputs and outputs by signature name, in the file's order."""

    key: str
    inputs: tuple[tuple[str, TensorInfo], ...]
    outputs: tuple[tuple[str, TensorInfo], ...]

    @property
    def input_names(self) -> tuple[str, ...]:
        return tuple(n for n, _ in self.inputs)

    @property
    def output_names(self) -> tuple[str, ...]:
        return tuple(n for n, _ in self.outputs)


@dataclass(frozen=True)
class Operator:
    name: str  # BuiltinOperator name (CONV_2D), or the custom code of a custom op
    inputs: tuple[int, ...]  # tensor indices; -1 for an omitted optional input
    outputs: tuple[int, ...]


@dataclass(frozen=True)
class TFLiteStructure:
    """The main graph of a ``.tflite`` file."""

    path: Path
    inputs: tuple[TensorInfo, ...]
    outputs: tuple[TensorInfo, ...]
    signatures: tuple[Signature, ...]
    operators: tuple[Operator, ...] = field(repr=False)
    tensors: tuple[TensorInfo, ...] = field(repr=False)
    constant: frozenset[int] = field(repr=False)  # indices of the tensors that hold data in the file

    def output(self, output: str | int | None = None) -> TensorInfo:
        """An output by tensor name, signature output name or position; ``None``: the only one."""
        return _pick(self, output, self.outputs, "output", lambda s: s.outputs)

    def input(self, input: str | int | None = None) -> TensorInfo:
        return _pick(self, input, self.inputs, "input", lambda s: s.inputs)

    def producer(self, tensor: int) -> Operator | None:
        for op in self.operators:
            if tensor in op.outputs:
                return op
        return None

    def consumers(self, tensor: int) -> tuple[Operator, ...]:
        return tuple(op for op in self.operators if tensor in op.inputs)

    def describe_outputs(self) -> str:
        """One line: every output with its signature name(s), shape and dtype (for error messages)."""
        return "; ".join(_describe(self, t, lambda s: s.outputs) for t in self.outputs)


def _describe(structure: TFLiteStructure, t: TensorInfo, side) -> str:
    aliases = [f"{s.key}:{n}" for s in structure.signatures for n, st in side(s) if st.index == t.index]
    alias = f" ({', '.join(aliases)})" if aliases else ""
    return f"{t.name!r}{alias} {list(t.shape_signature)} {t.dtype}"


def _pick(structure: TFLiteStructure, key, tensors: tuple[TensorInfo, ...], what: str, side) -> TensorInfo:
    if key is None:
        if len(tensors) == 1:
            return tensors[0]
        problem = f"has {len(tensors)} {what}s, name one"
    elif isinstance(key, int) and not isinstance(key, bool):
        if 0 <= key < len(tensors):
            return tensors[key]
        problem = f"has no {what} {key}"
    else:
        for t in tensors:
            if t.name == key:
                return t
        for s in structure.signatures:
            for n, t in side(s):
                if n == key:
                    return t
        problem = f"has no {what} named {key!r}"
    listing = "; ".join(_describe(structure, t, side) for t in tensors)
    raise TFLiteFileError(f"{structure.path}: {problem}; its {what}s: {listing}")


def _tensor_info(t, index: int) -> TensorInfo:
    from ai_edge_litert.tools import flatbuffer_utils as fu

    shape = tuple(int(d) for d in (t.shape if t.shape is not None else ()))
    sig = tuple(int(d) for d in t.shapeSignature) if t.shapeSignature is not None and len(t.shapeSignature) else shape
    q = t.quantization
    scale = tuple(float(s) for s in q.scale) if q is not None and q.scale is not None else ()
    zp = tuple(int(z) for z in q.zeroPoint) if q is not None and q.zeroPoint is not None else ()
    name = t.name.decode("utf-8", "replace") if isinstance(t.name, bytes) else str(t.name or "")
    return TensorInfo(name=name, index=index, shape=shape, shape_signature=sig,
                      dtype=fu.type_to_name(t.type).lower(), scale=scale, zero_point=zp,
                      quantized_dimension=int(q.quantizedDimension) if q is not None and scale else 0)


def read_structure(path: str | Path) -> TFLiteStructure:
    """The main graph of the file (cached per path, size and modification time)."""
    path = Path(path)
    try:
        st = path.stat()
    except OSError as e:
        raise TFLiteFileError(f"{path}: cannot read: {e.strerror or e}") from None
    return _read_structure(path, st.st_size, st.st_mtime_ns)


@functools.lru_cache(maxsize=8)
def _read_structure(path: Path, size: int, mtime_ns: int) -> TFLiteStructure:
    from ai_edge_litert.tools import flatbuffer_utils as fu

    with open(path, "rb") as f:
        head = f.read(8)
    if len(head) < 8 or head[4:8] != b"TFL3":
        raise TFLiteFileError(f"{path}: not a TFLite flatbuffer (no TFL3 identifier at byte 4)")
    try:
        model = fu.read_model(str(path))
        sig_defs = list(model.signatureDefs or [])
        sub_index = int(sig_defs[0].subgraphIndex) if sig_defs else 0
        sg = model.subgraphs[sub_index]
        tensors = tuple(_tensor_info(t, i) for i, t in enumerate(sg.tensors or []))
        constant = frozenset(
            i for i, t in enumerate(sg.tensors or [])
            if t.buffer and (model.buffers[t.buffer].data is not None or model.buffers[t.buffer].size))
        operators = []
        for op in sg.operators or []:
            name = fu.opcode_to_name(model, op.opcodeIndex)
            if name in (None, "CUSTOM"):
                code = model.operatorCodes[op.opcodeIndex].customCode
                name = code.decode("utf-8", "replace") if isinstance(code, bytes) else str(code or name)
            operators.append(Operator(name, tuple(int(i) for i in (op.inputs or [])),
                                      tuple(int(i) for i in (op.outputs or []))))
        signatures = []
        for s in sig_defs:
            if int(s.subgraphIndex) != sub_index:
                continue
            key = s.signatureKey.decode("utf-8", "replace") if s.signatureKey else ""
            signatures.append(Signature(
                key,
                tuple((m.name.decode("utf-8", "replace"), tensors[m.tensorIndex]) for m in (s.inputs or [])),
                tuple((m.name.decode("utf-8", "replace"), tensors[m.tensorIndex]) for m in (s.outputs or []))))
        return TFLiteStructure(path=path, inputs=tuple(tensors[i] for i in sg.inputs),
                               outputs=tuple(tensors[i] for i in sg.outputs), signatures=tuple(signatures),
                               operators=tuple(operators), tensors=tensors, constant=constant)
    except TFLiteFileError:
        raise
    except Exception as e:  # a truncated or corrupted flatbuffer fails anywhere in the generated reader
        raise TFLiteFileError(f"{path}: malformed TFLite flatbuffer ({type(e).__name__}: {e})") from None


def signatures(path: str | Path) -> tuple[Signature, ...]:
    return read_structure(path).signatures


def inputs(path: str | Path) -> tuple[TensorInfo, ...]:
    return read_structure(path).inputs


def outputs(path: str | Path) -> tuple[TensorInfo, ...]:
    return read_structure(path).outputs


def input_batch(path: str | Path, input: str | int | None = None) -> int | None:
    """The input's batch dimension from its ``shape_signature``: N when fixed, -1 when dynamic."""
    return read_structure(path).input(input).batch


# --------------------------------------------------------------------------------------------
# Quantization recipe


@dataclass(frozen=True)
class Edge:
    """An input or output of the graph and how it meets the quantized interior.

    ``kind``: ``"float"`` (a float tensor and no (de)quantize op next to it: a float graph, or a
    float16 / dynamic-range one), ``"float_with_quantize"`` (a float tensor a QUANTIZE op reads, or
    a DEQUANTIZE op writes: the converter's float interface around an integer interior), or
    ``"quantized"`` (the tensor itself is integer: the app feeds / reads int8, uint8 or int16,
    with ``scale`` and ``zero_point``). ``op``: the adjacent QUANTIZE/DEQUANTIZE, if any (a uint8
    interface around an int8 interior has both an integer tensor and a QUANTIZE op).
    """

    name: str
    dtype: str
    kind: str
    scale: tuple[float, ...] = ()
    zero_point: tuple[int, ...] = ()
    op: str | None = None


@dataclass(frozen=True)
class Recipe:
    """How the file was quantized: ``name`` is one of :data:`RECIPES`.

    ``per_channel``: whether the conv/FC weights carry one scale per output channel (None when
    the weights are not integer). ``evidence``: what the decision rests on (dtypes counted over the
    compute operators' activations and weights, the dequantized weight constants, the operators).
    """

    name: str
    per_channel: bool | None
    inputs: tuple[Edge, ...]
    outputs: tuple[Edge, ...]
    evidence: dict[str, Any] = field(compare=False, hash=False)


def _edge(s: TFLiteStructure, t: TensorInfo, is_input: bool) -> Edge:
    ops = s.consumers(t.index) if is_input else tuple(o for o in [s.producer(t.index)] if o is not None)
    adjacent = next((o.name for o in ops if o.name in ("QUANTIZE", "DEQUANTIZE")), None)
    if t.dtype in ("int8", "uint8", "int16") and t.quantized:
        kind = "quantized"
    elif adjacent is not None and t.dtype.startswith("float"):
        kind = "float_with_quantize"
    else:
        kind = "float"
    return Edge(name=t.name, dtype=t.dtype, kind=kind, scale=t.scale, zero_point=t.zero_point, op=adjacent)


def _count(values) -> dict[str, int]:
    out: dict[str, int] = {}
    for v in values:
        out[v] = out.get(v, 0) + 1
    return dict(sorted(out.items()))


def detect_recipe(path: str | Path) -> Recipe:
    """The quantization recipe of the file, read off the dtypes of its compute operators.

    * ``int16x8``: int16 activations (int8 weights);
    * ``uint8_legacy``: uint8 activations inside the graph (TF1's quantization-aware models);
    * ``int8``: int8 activations (full integer), ``per_channel`` when a weight has several scales;
    * ``dynamic_int8``: float activations, int8 weight constants (dynamic-range / weight-only);
    * ``float16``: float activations, float16 weight constants DEQUANTIZEd at run time;
    * ``float32``: none of these.

    The activations counted are the data inputs and outputs of the operators with weights
    (conv, depthwise conv, fully connected, ...), or of every operator in a graph without them.
    """
    s = read_structure(path)
    tensors = s.tensors
    weighted = [op for op in s.operators if op.name in _WEIGHT_INPUT]
    activations: list[str] = []
    weights: list[TensorInfo] = []
    for op in weighted or s.operators:
        data = [op.inputs[_DATA_INPUT.get(op.name, 0)]] if op.inputs else []
        for i in data + list(op.outputs):
            if i >= 0 and i not in s.constant:
                activations.append(tensors[i].dtype)
        w = _WEIGHT_INPUT.get(op.name)
        if w is not None and len(op.inputs) > w and op.inputs[w] >= 0:
            wi = op.inputs[w]
            if wi not in s.constant:  # a weight computed at run time: DEQUANTIZE of a constant
                prod = s.producer(wi)
                if prod is not None and prod.name == "DEQUANTIZE" and prod.inputs and prod.inputs[0] in s.constant:
                    wi = prod.inputs[0]
                else:
                    continue
            weights.append(tensors[wi])
    dequantized = [tensors[op.inputs[0]].dtype for op in s.operators
                   if op.name == "DEQUANTIZE" and op.inputs and op.inputs[0] in s.constant]
    act = _count(activations)
    wts = _count(t.dtype for t in weights)
    int_weights = [t for t in weights if t.dtype in ("int8", "uint8", "int4") and t.quantized]
    per_channel = any(t.per_channel for t in int_weights) if int_weights else None
    if act.get("int16"):
        name = "int16x8"
    elif act.get("uint8"):
        name = "uint8_legacy"
    elif act.get("int8"):
        name = "int8"
    elif int_weights:
        name = "dynamic_int8"
    elif "float16" in wts or "float16" in dequantized:
        name = "float16"
    else:
        name = "float32"
    evidence = {
        "activation_dtypes": act,
        "weight_dtypes": wts,
        "weight_scales": {t.name: len(t.scale) for t in int_weights},
        "dequantized_constants": _count(dequantized),
        "operators": _count(op.name for op in s.operators),
    }
    return Recipe(name=name, per_channel=per_channel,
                  inputs=tuple(_edge(s, t, True) for t in s.inputs),
                  outputs=tuple(_edge(s, t, False) for t in s.outputs), evidence=evidence)


# --------------------------------------------------------------------------------------------
# Probabilities or logits


@dataclass(frozen=True)
class OutputKind:
    """``kind`` is ``"probabilities"`` or ``"logits"``; ``evidence`` says why, one reason a line."""

    output: str  # the output tensor's name
    kind: str
    evidence: tuple[str, ...]


def output_kind(path: str | Path, output: str | int | None = None,
                metadata: TFLiteMetadata | None = None) -> OutputKind:
    """Whether an output (by tensor name, signature output name or position) holds probabilities.

    Probabilities when any of: a SOFTMAX produces it (through QUANTIZE/DEQUANTIZE/RESHAPE/SQUEEZE);
    it is quantized the way TFLite's converter quantizes a softmax (uint8 scale 1/256 zero point 0,
    int8 1/256 and -128, int16 1/32768 and 0); the file's metadata gives it the value range [0, 1]
    (``metadata``: pass it when already read; otherwise it is read here, when the file has any).
    Logits otherwise.
    """
    s = read_structure(path)
    t = s.output(output)
    evidence: list[str] = []
    chain = []
    index = t.index
    while (op := s.producer(index)) is not None:
        chain.append(op.name)
        if op.name in _PASS_THROUGH and op.inputs:
            index = op.inputs[0]
            continue
        break
    if chain and chain[-1] == "SOFTMAX":
        evidence.append("produced by " + " -> ".join(reversed(chain)))
    expected = _SOFTMAX_QUANTIZATION.get(t.dtype)
    if expected and len(t.scale) == 1 and t.zero_point == (expected[1],) and np.isclose(t.scale[0], expected[0], rtol=1e-6, atol=0):
        evidence.append(f"{t.dtype} output quantized as a softmax (scale {t.scale[0]:.6g}, zero point {t.zero_point[0]})")
    if metadata is None:
        metadata = read_metadata(path)
    if metadata is not None:
        position = s.outputs.index(t)
        for m in metadata.outputs:
            if m.index == position and m.min == (0.0,) and m.max == (1.0,):
                evidence.append(f"metadata output {m.name!r} has stats min 0, max 1")
    if evidence:
        return OutputKind(t.name, "probabilities", tuple(evidence))
    why = f"produced by {' -> '.join(reversed(chain))}" if chain else "no operator produces it"
    return OutputKind(t.name, "logits", (f"{why}: no SOFTMAX, no softmax quantization, no [0, 1] stats",))


# --------------------------------------------------------------------------------------------
# TFLite Model Metadata


@dataclass(frozen=True)
class AssociatedFile:
    name: str
    type: str  # AssociatedFileType's name: TENSOR_AXIS_LABELS, DESCRIPTIONS, ...
    description: str | None
    locale: str | None
    attached_to: str  # "model", "subgraph", "input <name>" or "output <name>"


@dataclass(frozen=True)
class InputMeta:
    index: int  # position among the subgraph's inputs
    name: str | None
    color_space: str | None  # "RGB", "GRAYSCALE", "UNKNOWN"; None without ImageProperties
    mean: tuple[float, ...] | None  # NormalizationOptions: input = (pixel - mean) / std, per channel
    std: tuple[float, ...] | None
    min: tuple[float, ...] | None  # Stats
    max: tuple[float, ...] | None
    content: str | None  # ContentProperties' name: ImageProperties, FeatureProperties, ...


@dataclass(frozen=True)
class OutputMeta:
    index: int  # position among the subgraph's outputs
    name: str | None
    labels: tuple[str, ...] | None  # the TENSOR_AXIS_LABELS file's lines, one per class
    labels_file: str | None
    min: tuple[float, ...] | None  # Stats
    max: tuple[float, ...] | None
    content: str | None


@dataclass(frozen=True)
class TFLiteMetadata:
    name: str | None
    version: str | None
    description: str | None
    author: str | None
    license: str | None
    min_parser_version: str | None
    inputs: tuple[InputMeta, ...]
    outputs: tuple[OutputMeta, ...]
    associated_files: tuple[AssociatedFile, ...]  # every one the metadata names, at any level
    packed_files: tuple[str, ...]  # the names in the zip appended to the model
    json: str = field(repr=False)


def _metadata_modules():
    # metadata.py tries `import tensorflow` at import time: torch goes first (harness.frameworks).
    from harness.frameworks import import_torch

    import_torch()
    try:
        from tensorflow_lite_support.metadata import metadata_schema_py_generated as fb
        from tensorflow_lite_support.metadata.python import metadata as md
    except ImportError as e:
        raise TFLiteFileError(
            f"cannot read TFLite metadata: tflite-support is not usable here ({e}); install it from "
            "requirements-nodeps.lock and libusb-1.0-0 (make system-deps)") from None
    return md, fb


def _s(value) -> str | None:
    if value is None:
        return None
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def _floats(values) -> tuple[float, ...] | None:
    if values is None:
        return None
    return tuple(float(v) for v in values)


def _enum_name(enum_cls, value) -> str:
    for k, v in vars(enum_cls).items():
        if not k.startswith("_") and v == value:
            return k
    return str(value)


def read_metadata(path: str | Path) -> TFLiteMetadata | None:
    """The file's TFLite Model Metadata, or ``None`` when it carries none.

    Raises :class:`TFLiteMetadataError` (one line, naming the file) for a metadata buffer that is
    not TFLite metadata or cannot be parsed, an associated file it names that the appended zip does
    not hold, a zip that cannot be read, or a labels file that is not UTF-8 text.
    """
    path = Path(path)
    read_structure(path)  # a file that is not a TFLite model at all says so first
    md, fb = _metadata_modules()
    buf = path.read_bytes()

    def bad(what: str) -> TFLiteMetadataError:
        return TFLiteMetadataError(f"{path}: malformed TFLite metadata: {what}")

    try:
        meta_buf = md.get_metadata_buffer(buf)
    except Exception as e:
        raise bad(f"cannot locate the metadata buffer ({type(e).__name__}: {e})") from None
    if meta_buf is None:
        return None
    if len(meta_buf) < 8 or not fb.ModelMetadata.ModelMetadataBufferHasIdentifier(meta_buf, 0):
        raise bad(f"the TFLITE_METADATA buffer ({len(meta_buf)} bytes) lacks the M001 identifier")
    try:
        displayer = md.MetadataDisplayer.with_model_buffer(buf)
        m = fb.ModelMetadataT.InitFromObj(fb.ModelMetadata.GetRootAsModelMetadata(meta_buf, 0))
        json_text = displayer.get_metadata_json()
    except Exception as e:
        raise bad(f"the metadata buffer cannot be parsed ({type(e).__name__}: {e})") from None
    packed = tuple(displayer.get_packed_associated_file_list())
    if not packed and b"PK\x05\x06" in buf[-(1 << 16) - 22:]:
        try:
            zipfile.ZipFile(io.BytesIO(buf)).close()
        except (zipfile.BadZipFile, ValueError, OSError) as e:
            raise bad(f"the zip of associated files appended to the model cannot be read ({e})") from None

    associated: list[AssociatedFile] = []

    def files(owner, where: str) -> list:
        out = list(getattr(owner, "associatedFiles", None) or [])
        for f in out:
            associated.append(AssociatedFile(_s(f.name) or "", _enum_name(fb.AssociatedFileType, f.type),
                                             _s(f.description), _s(f.locale), where))
        return out

    def content(t) -> str | None:
        c = t.content
        if c is None or not c.contentPropertiesType:
            return None
        return _enum_name(fb.ContentProperties, c.contentPropertiesType)

    def read_file(name: str, where: str) -> bytes:
        if name not in packed:
            held = ", ".join(packed) if packed else "no readable zip of associated files"
            raise bad(f"{where} names the associated file {name!r}, but the model holds {held}")
        try:
            return displayer.get_associated_file_buffer(name)
        except Exception as e:
            raise bad(f"the associated file {name!r} cannot be read from the appended zip ({e})") from None

    files(m, "model")
    inputs_meta: list[InputMeta] = []
    outputs_meta: list[OutputMeta] = []
    for sub in (m.subgraphMetadata or [])[:1]:
        files(sub, "subgraph")
        for i, t in enumerate(sub.inputTensorMetadata or []):
            name = _s(t.name)
            files(t, f"input {name}")
            color = None
            if t.content is not None and t.content.contentPropertiesType == fb.ContentProperties.ImageProperties:
                props = t.content.contentProperties
                color = _enum_name(fb.ColorSpaceType, props.colorSpace) if props is not None else None
            mean = std = None
            for unit in t.processUnits or []:
                if unit.optionsType == fb.ProcessUnitOptions.NormalizationOptions and unit.options is not None:
                    mean, std = _floats(unit.options.mean), _floats(unit.options.std)
                    break
            if std is not None and any(v == 0 for v in std):
                raise bad(f"input {name!r} has a normalisation std of 0 ({list(std)})")
            stats = t.stats
            inputs_meta.append(InputMeta(i, name, color, mean, std,
                                         _floats(stats.min) if stats else None,
                                         _floats(stats.max) if stats else None, content(t)))
        for i, t in enumerate(sub.outputTensorMetadata or []):
            name = _s(t.name)
            where = f"output {name!r}"
            label_files = [f for f in files(t, f"output {name}") if f.type == fb.AssociatedFileType.TENSOR_AXIS_LABELS]
            labels = labels_file = None
            if label_files:
                chosen = next((f for f in label_files if not f.locale), label_files[0])
                labels_file = _s(chosen.name)
                raw = read_file(labels_file, where)
                try:
                    text = raw.decode("utf-8")
                except UnicodeDecodeError as e:
                    raise bad(f"the labels file {labels_file!r} is not UTF-8 text ({e})") from None
                lines = text.splitlines()
                while lines and not lines[-1].strip():
                    lines.pop()
                labels = tuple(lines)
            stats = t.stats
            outputs_meta.append(OutputMeta(i, name, labels, labels_file,
                                           _floats(stats.min) if stats else None,
                                           _floats(stats.max) if stats else None, content(t)))
    for f in associated:  # every file the metadata names must be packed (the populator requires it)
        if f.name not in packed:
            read_file(f.name, f.attached_to)
    return TFLiteMetadata(name=_s(m.name), version=_s(m.version), description=_s(m.description),
                          author=_s(m.author), license=_s(m.license), min_parser_version=_s(m.minParserVersion),
                          inputs=tuple(inputs_meta), outputs=tuple(outputs_meta),
                          associated_files=tuple(associated), packed_files=packed, json=json_text)
