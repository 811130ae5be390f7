"""Bring your own model: a user's ``.tflite`` or ``.ptl`` file (and optionally the PC model it came from).

:func:`load_user_model` reads what the model needs off the file where the file says it
(LiteRT's input and output tensors: shape, layout, dtype, quantization scale and zero
point; for a ``.ptl``, what a call on a probe tensor returns and which operators it
holds) and the rest from its model card (:mod:`harness.zoo.card`): resize and crop,
channel order, normalisation, label offset and labels. A card that contradicts the file
is an error naming both files and both values. Refused, naming the file: not a model
(the interpreter cannot load it, checked in a child process first), two or more inputs
or outputs, an input that is not one image (rank 4 with 3 channels, square), an output
that is not (N, classes).

The result, a :class:`UserModel`, holds a :class:`ModelSpec` (zoo ``user``) whose
:class:`Normalization` the existing runtimes apply unchanged on every platform:

* float input: ``(pixel * scale - mean) / std`` from the card;
* uint8/int8 input declared ``"raw"`` (the default for quantized inputs): the app feeds the
  pixels themselves (uint8) or ``pixel - 128`` (int8). With the file's input scale ``s`` and
  zero point ``z`` the tensor value ``q`` means ``(q - z) * s``, so the Normalization is
  ``pixel * s - (z [+ 128]) * s``: the runtimes quantise that back to ``q = pixel [- 128]``
  exactly (``round(x / s + z)``), and a source model is fed the real value the quantized
  model computes with.

Outputs are kept as the model's: ``spec.num_classes`` is the number of outputs (1001 for a
model with a background class first), predictions are the argmax over all of them, and
the :class:`LabelSpace`'s offset maps class indices to output indices (the image source
puts its labels in output-index space).

``source_model`` (``--source-model``) is the PC model the file came from: a Keras
``.keras``/``.h5`` (``keras.models.load_model``), a TorchScript archive (``torch.jit.load``)
or an exported program ``.pt2`` (``torch.export.load(...).module()``), returned as a
:class:`ZooModel` the Foolbox attacks run on. Its outputs must match the file's.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from harness.data import labels as label_spaces
from harness.data.dataset import DataError
from harness.data.preprocessing import Geometry, Normalization
from harness.zoo.base import ModelSpec, ZooError, ZooModel, file_digest
from harness.zoo.card import Card, CardError, card_path_for, read_card

ZOO = "user"
FORMATS = ("tflite", "ptl", "pte")
FRAMEWORK_OF_FORMAT = {"tflite": "tensorflow", "ptl": "pytorch", "pte": "pytorch"}
SOURCE_SUFFIXES = {".keras": "keras", ".h5": "keras", ".hdf5": "keras", ".pt2": "exported",
                   ".pt": "torchscript", ".pth": "torchscript", ".ts": "torchscript", ".jit": "torchscript",
                   ".zip": "torchscript"}


class UserModelError(ZooError):
    """A user's model file (or its source model) that cannot be used as given; the message names the file."""


@dataclass
class UserModel:
    """A user's mobile model file, validated, with everything the runtimes and the study need."""

    path: Path
    format: str  # "tflite" | "ptl" | "pte"
    spec: ModelSpec  # zoo "user"; num_classes = the model's outputs; normalization as described above
    quantization: str  # "float" | "int8": what the file holds (the matrix's quantization axis)
    geometry: Geometry  # photo -> (size, size, 3) uint8
    labels: label_spaces.LabelSpace
    card: Card | None
    facts: dict  # what was read off the file (input/output shape, dtype, quantization, layout)
    digest: str  # SHA-256 of the file
    source: ZooModel | None = None  # the PC model it came from, when given
    notes: list[str] = field(default_factory=list)  # defaults applied (for the report)

    @property
    def runtime(self) -> str:
        """The mobile runtime's name, as the study's runtime axis spells it."""
        return {"tflite": "litert", "ptl": "torch_lite", "pte": "executorch"}[self.format]

    def open(self, platform: str = "mobile", threads: int = 1, **options):
        """The file on ``platform`` (``mobile`` here; the runner platforms take the same spec and path)."""
        from harness.runtime import open_runtime

        return open_runtime(platform, artifact=self.path, spec=self.spec, quantization=self.quantization,
                            threads=threads, **options)

    def describe(self) -> dict:
        n = self.spec.normalization
        return {"model": self.spec.id, "file": str(self.path), "sha256": self.digest, "format": self.format,
                "runtime": self.runtime, "quantization": self.quantization,
                "card": None if self.card is None or self.card.path is None else str(self.card.path),
                "input": self.facts["input"], "output": self.facts["output"],
                "outputs_kind": self.spec.output_kind, "output_kind": self.facts.get("output_kind"),
                **{k: self.facts[k] for k in ("recipe", "batch", "metadata", "delegation", "outputs")
                   if k in self.facts},
                "geometry": {"resize": self.geometry.resize, "crop": self.geometry.crop},
                "normalization": {"name": n.name, "scale": n.scale, "mean": list(n.mean), "std": list(n.std),
                                  "channel_order": n.channel_order, "layout": n.layout},
                "labels": self.labels.describe(), "notes": list(self.notes),
                "source_model": None if self.source is None else {
                    "file": str(self.source.weights_path), "sha256": self.source.weights_digest,
                    "framework": self.source.spec.framework}}


# --- reading the file ------------------------------------------------------------------------
def _tflite_facts(path: Path, output_name: str | None = None) -> dict:
    from ai_edge_litert.interpreter import Interpreter

    from harness.runtime.base import ModelFileError
    from harness.runtime.verify import verify_model_file
    from harness.zoo import tflite_file

    verify_model_file(path, "tflite")  # a file that crashes the interpreter kills a child, not us
    try:
        interpreter = Interpreter(model_path=str(path), num_threads=1)
        interpreter.allocate_tensors()
    except (ValueError, RuntimeError) as exc:
        raise ModelFileError(f"{path}: LiteRT cannot load this model ({_first_line(exc)})") from exc
    inputs, outputs = interpreter.get_input_details(), interpreter.get_output_details()
    if len(inputs) != 1:
        raise UserModelError(f"{path}: the model has {len(inputs)} inputs "
                             f"({', '.join(repr(d['name']) for d in inputs)}); expected one image input")
    structure = tflite_file.read_structure(path)
    try:
        chosen = structure.output(output_name)  # by tensor or signature output name; errors list the outputs
    except tflite_file.TFLiteFileError as exc:
        hint = "" if output_name is not None else " (the classifier's: --output NAME or the card's output.name)"
        raise UserModelError(f"{exc}{hint}") from None
    output = next(d for d in outputs if d["name"] == chosen.name)
    return {"input": _tensor_fact(inputs[0]), "output": _tensor_fact(output),
            "outputs": [_tensor_fact(d) for d in outputs]}


def _tensor_fact(detail: dict) -> dict:
    scale, zero = detail["quantization"]
    dtype = np.dtype(detail["dtype"]).name
    return {"name": str(detail["name"]), "shape": [int(d) for d in detail["shape"]], "dtype": dtype,
            "quantization": None if dtype == "float32" else {"scale": float(scale), "zero_point": int(zero)}}


def _ptl_facts(path: Path, size: int, layout: str) -> dict:
    from harness.convert.torch_mobile import ENGINE, quantized_engine, quiet_deprecations
    from harness.frameworks import import_torch
    from harness.runtime.base import ModelFileError
    from harness.runtime.verify import verify_model_file

    shape = (1, 3, size, size) if layout == "NCHW" else (1, size, size, 3)
    verify_model_file(path, "ptl", engine=ENGINE)  # loads in a child; the probe call comes below
    torch = import_torch()
    from torch.jit.mobile import _export_operator_list, _load_for_lite_interpreter

    with quiet_deprecations(), quantized_engine(ENGINE):
        try:
            module = _load_for_lite_interpreter(str(path))
        except Exception as exc:
            raise ModelFileError(f"{path}: the PyTorch lite interpreter cannot load this model "
                                 f"({_first_line(exc)})") from exc
        operators = sorted(_export_operator_list(module))
        quantized = any(op.startswith("quantized::") for op in operators)
        try:
            with torch.inference_mode():
                out = module(torch.zeros(shape))
        except Exception as exc:
            raise UserModelError(f"{path}: a call on one {layout} image {shape} fails ({_first_line(exc)}); "
                                 f"expected a model with one image input (a card's input.size/layout fix a "
                                 f"wrong probe)") from exc
    from harness.runtime.torch_runtime import logits_tensor

    out = logits_tensor(out)  # as the runtimes read it: a tuple's first tensor (scripted Inception)
    if not hasattr(out, "shape"):
        raise UserModelError(f"{path}: the model returns {type(out).__name__}; expected one (N, classes) tensor")
    dtype = str(out.dtype).replace("torch.", "")
    return {"input": {"name": "input", "shape": list(shape), "dtype": "float32", "quantization": None},
            "output": {"name": "output", "shape": [int(d) for d in out.shape], "dtype": dtype, "quantization": None},
            "quantization": "int8" if quantized else "float", "operators": len(operators)}


# ExecuTorch ScalarType codes of the dtypes a classifier's input or output may have.
_ET_DTYPES = {0: "uint8", 1: "int8", 6: "float32", 5: "float16", 15: "bfloat16", 4: "int64", 3: "int32"}


def _pte_facts(path: Path) -> dict:
    """An ExecuTorch program's ``forward``: its input and output as the program's method metadata says."""
    from harness.frameworks import import_torch
    from harness.runtime.base import ModelFileError
    from harness.runtime.verify import verify_model_file

    verify_model_file(path, "pte")  # load only: a hostile file aborts a child, not us
    import_torch()
    from executorch.runtime import Runtime

    try:
        program = Runtime.get().load_program(path)
        names = sorted(program.method_names)
        if "forward" not in names:
            raise UserModelError(f"{path}: the program has no 'forward' method (it has {names}); expected a "
                                 "classifier exported with torch.export and lowered with to_executorch()")
        meta = program.load_method("forward").metadata
    except UserModelError:
        raise
    except Exception as exc:  # RuntimeError("Failed to load program, error: 0x..")
        raise ModelFileError(f"{path}: ExecuTorch cannot load this program ({_first_line(exc)})") from exc
    if meta.num_inputs() != 1:
        raise UserModelError(f"{path}: forward takes {meta.num_inputs()} inputs; expected one image input")
    if meta.num_outputs() != 1:
        raise UserModelError(f"{path}: forward returns {meta.num_outputs()} outputs; expected one (N, classes) "
                             "tensor")
    inp, out = meta.input_tensor_meta(0), meta.output_tensor_meta(0)
    facts = {}
    for role, tensor in (("input", inp), ("output", out)):
        code = int(tensor.dtype())
        facts[role] = {"name": role, "shape": [int(d) for d in tensor.sizes()],
                       "dtype": _ET_DTYPES.get(code, f"ExecuTorch dtype {code}"), "quantization": None}
    if facts["input"]["dtype"] != "float32" or facts["output"]["dtype"] != "float32":
        raise UserModelError(f"{path}: forward takes {facts['input']['dtype']} and returns "
                             f"{facts['output']['dtype']}; expected float32 in and out (ExecuTorch's quantized "
                             "programs keep float32 at their edges)")
    verify_model_file(path, "pte", input_shape=facts["input"]["shape"])  # one call on zeros, in a child
    operators = _pte_delegation(path)
    return {**facts, "outputs": [facts["output"]],
            "quantization": "int8" if operators.get("quantized") else "float", "delegation": operators}


def _pte_delegation(path: Path) -> dict:
    """Which backends the program delegates to, the operators left on ExecuTorch's own kernels, and
    whether it is quantized, as ExecuTorch's own readers see the file: ``deserialize_pte_binary`` for
    the program, and for each XNNPACK blob its flatbuffer (``XNNHeader``) turned into text by the
    ``flatc`` ExecuTorch ships, with XNNPACK's schema: a quantized program's delegated tensors are
    ``XNNQuantizedTensorValue`` (its QUANTIZE ops run inside the delegate, not on the portable kernels)."""
    try:
        from executorch.exir._serialize._program import deserialize_pte_binary

        program = deserialize_pte_binary(path.read_bytes())
        program = getattr(program, "program", program)
        tensors = _xnnpack_tensor_kinds(program)
    except Exception as exc:  # noqa: BLE001  (the runtime loaded it: the file is not quantized as far as we know)
        return {"error": _first_line(exc), "quantized": False}
    backends = sorted({d.id for plan in program.execution_plan for d in plan.delegates})
    kernels = sorted({op.name for plan in program.execution_plan for op in plan.operators})
    quantized = any("quantize" in k for k in kernels) or bool(tensors.get("XNNQuantizedTensorValue"))
    return {"backends": backends, "portable_operators": kernels, "xnnpack_tensors": tensors, "quantized": quantized}


def _xnnpack_tensor_kinds(program) -> dict:
    """How many of the XNNPACK blobs' tensors are float and how many quantized (empty without XNNPACK)."""
    import subprocess
    import tempfile
    from collections import Counter

    import executorch.backends.xnnpack.serialization.xnnpack_graph_serialize as serialization
    from executorch.backends.xnnpack.serialization.xnnpack_graph_serialize import XNNHeader
    from executorch.exir._serialize._flatbuffer import _get_flatc_path

    inline = {i: bytes(b.data) for i, b in enumerate(program.backend_delegate_data)}
    blobs = [inline[d.processed.index] for plan in program.execution_plan for d in plan.delegates
             if d.id == "XnnpackBackend" and d.processed.index in inline]
    schema = Path(serialization.__file__).parent / "schema.fbs"
    kinds: Counter = Counter()
    with tempfile.TemporaryDirectory() as folder:
        for k, blob in enumerate(blobs):
            header = XNNHeader.from_bytes(blob[:XNNHeader.EXPECTED_LENGTH])
            graph = Path(folder, f"g{k}.bin")
            graph.write_bytes(blob[header.flatbuffer_offset:header.flatbuffer_offset + header.flatbuffer_size])
            subprocess.run([_get_flatc_path(), "--json", "--raw-binary", "-o", folder, str(schema), "--", str(graph)],
                           check=True, capture_output=True, timeout=60)
            kinds.update(re.findall(r'xvalue_union_type:\s*"?(\w+)', graph.with_suffix(".json").read_text()))
    return dict(kinds)


def _probe_output_kind(module_call, shape, layout: str) -> tuple[str, str]:
    """Logits or probabilities, from what a model returns on a few probe images: rows of scores in
    [0, 1] that sum to 1 on every probe are probabilities (a softmax inside the model)."""
    rng = np.random.default_rng(0)
    rows = [np.asarray(module_call(rng.uniform(-1, 1, size=shape).astype(np.float32)), np.float64)
            for _ in range(3)]
    scores = np.concatenate(rows)
    if np.all(scores >= -1e-6) and np.all(scores <= 1 + 1e-6) and np.allclose(scores.sum(axis=1), 1.0, atol=1e-3):
        return "probabilities", "on 3 probe inputs every output row is in [0, 1] and sums to 1"
    return "logits", "on 3 probe inputs the output rows are not probability vectors"


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:300] if text else type(exc).__name__


# --- the model -------------------------------------------------------------------------------
def load_user_model(path: Path | str, card: Path | str | Card | None = None,
                    source_model: Path | str | ZooModel | None = None, labels: Path | str | None = None,
                    output: str | None = None) -> UserModel:
    """Validate a user's ``.tflite``/``.ptl``/``.pte`` (and its card, labels file, source model) into a
    :class:`UserModel`.

    ``card``: a card file or parsed :class:`Card` (default: the one next to the model, if any).
    ``labels``: a labels file (``--labels``), which wins over the card's ``output.labels``.
    ``output``: the classifier's output by name (``--output``), for a file with several; wins over
    the card's ``output.name``.
    ``source_model``: a source model file, or one already loaded for another file
    (:func:`respec_source` re-labels it with this file's spec after checking its shape).
    Errors: :class:`UserModelError` / :class:`CardError` (zoo), ``ModelFileError`` (the
    interpreter cannot load the file), ``DataError`` (a labels file); each names the file.
    """
    path = Path(path)
    fmt = path.suffix.lstrip(".").lower()
    if not path.is_file():
        raise UserModelError(f"{path}: model file not found")
    if fmt not in FORMATS:
        raise UserModelError(f"{path}: not a mobile model file: expected a .tflite, .ptl or .pte file")
    notes: list[str] = []
    if isinstance(card, Card):
        parsed = card
    else:
        card_path = Path(card) if card is not None else card_path_for(path)
        if card is not None and not card_path.is_file():
            raise CardError(f"{card_path}: model card not found (given for {path})")
        parsed = read_card(card_path) if card_path is not None else None
    c = parsed or Card()
    where = f"{path}" + (f" and its card {c.path}" if c.path is not None else "")
    output_name = output if output is not None else c.output_name

    metadata = None
    if fmt == "tflite":
        from harness.zoo import tflite_file

        facts = _tflite_facts(path, output_name)
        metadata = tflite_file.read_metadata(path)
        recipe = tflite_file.detect_recipe(path)
        facts["recipe"] = _recipe_fact(recipe)
        facts["quantization"] = "float" if recipe.name in ("float32", "float16") else "int8"
        batch = tflite_file.input_batch(path)
        facts["batch"] = {"mode": "dynamic"} if batch == -1 else {"mode": "fixed", "size": batch}
        found = tflite_file.output_kind(path, facts["output"]["name"], metadata)
        kind, evidence = found.kind, "; ".join(found.evidence) or "no softmax, no 1/256 output quantization"
    elif fmt == "pte":
        if output_name is not None:
            raise UserModelError(f"{where}: output name {output_name!r} given, but an ExecuTorch program's forward "
                                 "returns one unnamed output (drop --output / output.name)")
        facts = _pte_facts(path)
        kind, evidence = None, None
    else:
        if c.size is None:
            raise CardError(f"{path}: a .ptl file does not record its input size; give input.size in its model card "
                            f"({path.with_name(path.stem + '.card.toml')} or --card)")
        if output_name is not None:
            raise UserModelError(f"{where}: output name {output_name!r} given, but a .ptl's outputs have no names; "
                                 "the runtimes read its first output (drop --output / output.name)")
        facts = _ptl_facts(path, c.size, c.layout or "NCHW")
        if c.layout is None:
            notes.append("input layout NCHW (the .ptl default; the card does not say)")
        kind, evidence = None, None
    size, layout = _input_geometry(path, facts["input"]["shape"])
    dtype = facts["input"]["dtype"]
    if dtype not in ("float32", "uint8", "int8"):
        raise UserModelError(f"{path}: input dtype {dtype}; expected float32, uint8 or int8")
    num_outputs = _num_outputs(path, facts["output"]["shape"])
    if facts["output"]["dtype"] not in ("float32", "uint8", "int8"):
        raise UserModelError(f"{path}: output dtype {facts['output']['dtype']}; expected float32, uint8 or int8")
    if kind is None:  # .ptl / .pte: what probe calls return
        kind, evidence = _probe_kind(path, fmt, facts, size, layout, c)
    if c.output_kind is not None and c.output_kind != kind:
        raise CardError(f"{where}: the card's output.kind = {c.output_kind!r} contradicts the model file: its "
                        f"outputs are {kind} ({evidence})")
    facts["output_kind"] = {"kind": kind, "evidence": evidence}

    # The card must agree with what the file says.
    _agree(where, "input.size", c.size, size, "the model's input is")
    _agree(where, "input.layout", c.layout, layout, "the model's input is")
    _agree(where, "input.dtype", c.dtype, dtype, "the model's input tensor is")
    _agree(where, "output.classes", c.classes, num_outputs, "the model's output has")
    quantization = facts["quantization"]
    if fmt in ("ptl", "pte") and c.quantization is not None and c.quantization != quantization:
        raise CardError(f"{where}: output.quantization = {c.quantization!r}, but the file holds "
                        f"{'quantized' if quantization == 'int8' else 'no quantized'} operators ({quantization})")
    if fmt == "tflite":
        _agree(where, "output.quantization", c.quantization, quantization, "the model file is")
    q = facts["input"]["quantization"]
    if c.input_quantization is not None:
        if q is None:
            raise CardError(f"{where}: input.quantization = {c.input_quantization} but the model's input is float32 "
                            "(not quantized)")
        if not (np.isclose(c.input_quantization[0], q["scale"], rtol=1e-5, atol=0)
                and c.input_quantization[1] == q["zero_point"]):
            raise CardError(f"{where}: input.quantization = {{ scale = {c.input_quantization[0]}, zero_point = "
                            f"{c.input_quantization[1]} }}, but the model's input tensor has scale {q['scale']} and "
                            f"zero point {q['zero_point']}")

    if metadata is not None:
        facts["metadata"] = _metadata_fact(metadata)
        c = _with_metadata(path, c, metadata, dtype, notes)
    normalization = _normalization(path, c, dtype, q, layout, notes)
    if c.resize is not None and c.resize < size:
        raise CardError(f"{where}: input.resize = {c.resize} is smaller than the input size {size} "
                        "(resize the shorter side, then center-crop the input size)")
    geometry = Geometry(c.resize or size, size)

    labels_path = Path(labels) if labels is not None else c.labels
    position = next((k for k, d in enumerate(facts.get("outputs", ())) if d["name"] == facts["output"]["name"]), 0)
    embedded = _metadata_labels(path, metadata, num_outputs, c.label_offset, position)
    if labels_path is not None:
        if not labels_path.is_file():
            raise DataError(f"{labels_path}: labels file not found (given for {path})")
        space = label_spaces.read_labels(labels_path, num_outputs, c.label_offset)
        if embedded is not None and (space.names, space.offset) != (embedded.names, embedded.offset):
            first = next((k for k, (a, b) in enumerate(zip(space.names, embedded.names)) if a != b), None)
            detail = (f"class {first} is {space.names[first]!r} there and {embedded.names[first]!r} in the "
                      f"metadata" if first is not None else
                      f"{space.num_classes} classes with offset {space.offset} there, {embedded.num_classes} with "
                      f"offset {embedded.offset} in the metadata")
            raise CardError(f"{labels_path} contradicts the label file {embedded.source}: {detail}")
    elif embedded is not None:
        space = embedded
    else:
        space = label_spaces.default_for(num_outputs, c.label_offset)
        if c.label_offset is None and space.offset:
            notes.append(f"label offset {space.offset}: {num_outputs} outputs read as background + "
                         f"{space.num_classes} classes (declare output.label_offset in the card to change it)")
    if space.num_outputs != num_outputs:
        raise DataError(f"{space.source}: {space.num_classes} classes with offset {space.offset} make "
                        f"{space.num_outputs} outputs; {path} has {num_outputs}")

    name = c.name or _name_of(path)
    source = None
    framework = FRAMEWORK_OF_FORMAT[fmt]
    if isinstance(source_model, ZooModel):
        framework = source_model.spec.framework
    elif source_model is not None:
        framework = "tensorflow" if SOURCE_SUFFIXES.get(Path(source_model).suffix.lower()) == "keras" else "pytorch"
    spec = ModelSpec(ZOO, framework, name, size, num_outputs, normalization,
                     output=facts["output"]["name"] if len(facts.get("outputs", ())) > 1 else None, output_kind=kind)
    if isinstance(source_model, ZooModel):
        source = respec_source(source_model, spec, reference=path)
    elif source_model is not None:
        source = load_source_model(source_model, spec, reference=path)
    facts = {**facts, "layout": layout}
    return UserModel(path, fmt, spec, quantization, geometry, space, parsed, facts, file_digest(path), source, notes)


def _recipe_fact(recipe) -> dict:
    """The quantization recipe read off a .tflite, for records: its name, per-channel weights, and the
    input and output edges (float, float behind QUANTIZE/DEQUANTIZE, or quantized tensors)."""
    return {"name": recipe.name, "per_channel": recipe.per_channel,
            "inputs": [{"name": e.name, "dtype": e.dtype, "kind": e.kind, "op": e.op} for e in recipe.inputs],
            "outputs": [{"name": e.name, "dtype": e.dtype, "kind": e.kind, "op": e.op} for e in recipe.outputs],
            "activation_dtypes": list(recipe.evidence.get("activation_dtypes", ())),
            "weight_dtypes": list(recipe.evidence.get("weight_dtypes", ()))}


def _metadata_fact(metadata) -> dict:
    return {"name": metadata.name, "version": metadata.version, "license": metadata.license,
            "inputs": [{"name": m.name, "color_space": m.color_space, "mean": list(m.mean or ()),
                        "std": list(m.std or ()), "min": list(m.min or ()), "max": list(m.max or ())}
                       for m in metadata.inputs],
            "outputs": [{"name": m.name, "labels_file": m.labels_file,
                         "labels": None if m.labels is None else len(m.labels)} for m in metadata.outputs],
            "packed_files": list(metadata.packed_files)}


def _probe_kind(path: Path, fmt: str, facts: dict, size: int, layout: str, c: Card) -> tuple[str, str]:
    """Logits or probabilities for a .ptl or .pte, from probe calls (the card's ``output.kind`` when given)."""
    from harness.frameworks import import_torch

    if c.output_kind is not None:
        return c.output_kind, "the model card's output.kind"
    torch = import_torch()
    shape = tuple(facts["input"]["shape"]) if fmt == "pte" else \
        ((1, 3, size, size) if layout == "NCHW" else (1, size, size, 3))
    if fmt == "pte":
        from executorch.runtime import Runtime

        method = Runtime.get().load_program(path).load_method("forward")
        call = lambda x: method.execute([torch.from_numpy(x)])[0].numpy()  # noqa: E731
    else:
        from harness.convert.torch_mobile import ENGINE, quantized_engine, quiet_deprecations
        from harness.runtime.torch_runtime import logits_tensor
        from torch.jit.mobile import _load_for_lite_interpreter

        with quiet_deprecations(), quantized_engine(ENGINE):
            module = _load_for_lite_interpreter(str(path))

        def call(x):
            with quiet_deprecations(), quantized_engine(ENGINE), torch.inference_mode():
                return logits_tensor(module(torch.from_numpy(x))).numpy()
    try:
        return _probe_output_kind(call, shape, layout)
    except Exception as exc:  # noqa: BLE001  (a runtime error on a probe: say so by name)
        raise UserModelError(f"{path}: a probe call on {shape} fails ({_first_line(exc)})") from exc


def _with_metadata(path: Path, c: Card, metadata, dtype: str, notes: list) -> Card:
    """The card completed by the file's TFLite Model Metadata: its normalisation options (for a float
    input); a card field that contradicts the metadata is an error naming both."""
    meta_in = metadata.inputs[0] if metadata.inputs else None
    if meta_in is None or meta_in.mean is None or meta_in.std is None:
        return c
    mean = tuple(float(v) for v in (meta_in.mean * 3 if len(meta_in.mean) == 1 else meta_in.mean))
    std = tuple(float(v) for v in (meta_in.std * 3 if len(meta_in.std) == 1 else meta_in.std))
    if len(mean) != 3 or len(std) != 3:
        raise UserModelError(f"{path}: the metadata's normalization options have {len(meta_in.mean)} means and "
                             f"{len(meta_in.std)} stds; expected one or three (an RGB image input)")
    if dtype != "float32":
        notes.append(f"metadata normalization mean {list(mean)}, std {list(std)} not applied: the {dtype} input is "
                     "fed the pixels, as LiteRT's Task Library does")
        return c
    if c.has_float_normalization:
        card_scale = c.scale if c.scale is not None else 1.0
        card_mean = c.mean or (0.0,) * 3
        card_std = c.std or (1.0,) * 3
        # The card's (pixel * scale - mean) / std equals the metadata's (pixel - m) / s when
        # mean / scale == m and std / scale == s.
        same = np.allclose(np.divide(card_mean, card_scale), mean, rtol=1e-6, atol=1e-6) and \
            np.allclose(np.divide(card_std, card_scale), std, rtol=1e-6, atol=1e-6)
        if not same:
            raise CardError(f"{c.path}: the card's input scale {card_scale}, mean {list(card_mean)}, std "
                            f"{list(card_std)} contradict {path}'s metadata: normalization mean {list(mean)}, std "
                            f"{list(std)} (input = (pixel - mean) / std)")
        return c
    notes.append(f"normalization from the file's metadata: (pixel - {list(mean)}) / {list(std)}")
    return dataclasses.replace(c, scale=1.0, mean=mean, std=std)


def _metadata_labels(path: Path, metadata, num_outputs: int, offset: int | None, position: int = 0):
    """The label file embedded in the metadata (TENSOR_AXIS_LABELS of the classifier's output), or None."""
    if metadata is None:
        return None
    for meta_out in metadata.outputs:
        if meta_out.index == position and meta_out.labels:
            return label_spaces.parse_labels("\n".join(meta_out.labels), f"{path}!{meta_out.labels_file}",
                                             num_outputs, offset)
    return None


def _input_geometry(path: Path, shape) -> tuple[int, str]:
    shape = [int(d) for d in shape]
    if len(shape) != 4:
        raise UserModelError(f"{path}: input shape {tuple(shape)} is not an image batch: expected rank 4, "
                             "(N, H, W, 3) or (N, 3, H, W)")
    if shape[3] == 3 and shape[1] != 3:
        layout, (h, w) = "NHWC", shape[1:3]
    elif shape[1] == 3 and shape[3] != 3:
        layout, (h, w) = "NCHW", shape[2:4]
    elif shape[1] == 3 and shape[3] == 3:
        raise UserModelError(f"{path}: input shape {tuple(shape)} is ambiguous (3 at both channel positions)")
    else:
        raise UserModelError(f"{path}: input shape {tuple(shape)} has no 3-channel axis: expected an RGB image "
                             "input (N, H, W, 3) or (N, 3, H, W)")
    if h != w or h < 1:
        raise UserModelError(f"{path}: input is {h}x{w}; expected a square image input")
    return h, layout


def _num_outputs(path: Path, shape) -> int:
    shape = [int(d) for d in shape]
    if len(shape) != 2 or shape[0] < 1 or shape[1] < 2:
        raise UserModelError(f"{path}: output shape {tuple(shape)} is not (N, classes): expected a classifier's "
                             "2-D output of one row of at least 2 class scores per image")
    return shape[1]


def _agree(where: str, key: str, card_value, file_value, says: str) -> None:
    if card_value is not None and card_value != file_value:
        raise CardError(f"{where}: the card's {key} = {card_value!r} contradicts the model file: "
                        f"{says} {file_value!r}")


def _normalization(path: Path, c: Card, dtype: str, q: dict | None, layout: str, notes: list) -> Normalization:
    where = c.path or path
    if dtype == "float32":
        if c.raw:
            raise CardError(f"{where}: input.normalization = \"raw\", but {path}'s input is float32 "
                            "(raw pixels need a uint8 or int8 input)")
        if not c.has_float_normalization:
            raise CardError(f"{path}: float32 input, and no model card says how to normalise pixels: write "
                            f"{path.with_name(path.stem + '.card.toml')} with input.scale/mean/std "
                            "(see harness/zoo/card.py)")
    if c.has_float_normalization:
        return Normalization(f"card-{c.scale or 1.0:g}-{'_'.join(f'{m:g}' for m in c.mean or (0,) * 3)}-"
                             f"{'_'.join(f'{s:g}' for s in c.std or (1,) * 3)}",
                             c.scale if c.scale is not None else 1.0, c.mean or (0.0,) * 3, c.std or (1.0,) * 3,
                             c.channel_order, layout)
    scale, zero = q["scale"], q["zero_point"]
    if not (np.isfinite(scale) and scale > 0):
        raise UserModelError(f"{path}: input quantization scale {scale!r}; expected a positive finite number")
    if not c.raw:
        notes.append(f"normalization raw: {dtype} input fed the {'pixels' if dtype == 'uint8' else 'pixels - 128'} "
                     "(the default for a quantized input; the card does not say)")
    shift = zero + (128 if dtype == "int8" else 0)
    return Normalization(f"raw-{dtype}", scale, (shift * scale,) * 3, (1.0,) * 3, c.channel_order, layout)


def _name_of(path: Path) -> str:
    name = re.sub(r"[^A-Za-z0-9_]+", "_", path.stem).strip("_") or "model"
    return name[:64]


# --- the source model ------------------------------------------------------------------------
def load_source_model(path: Path | str, spec: ModelSpec, reference: Path | str | None = None) -> ZooModel:
    """The PC model a user's file came from, as a :class:`ZooModel` for the Foolbox attacks.

    Its spec is ``spec`` with the source framework's layout (Keras: NHWC; PyTorch: NCHW), so
    it is fed the same values as the mobile file. Its outputs must number ``spec.num_classes``.
    """
    path = Path(path)
    ref = f" (the source model of {reference})" if reference is not None else ""
    kind = SOURCE_SUFFIXES.get(path.suffix.lower())
    if not path.is_file():
        raise UserModelError(f"{path}: source model file not found{ref}")
    if kind is None:
        raise UserModelError(f"{path}: unknown source model format{ref}: expected a Keras .keras/.h5, a TorchScript "
                             f"archive (.pt, .pth, .ts, .jit, .zip) or an exported program (.pt2)")
    if kind == "keras":
        module, layout, forward = _keras_source(path, ref)
        framework = "tensorflow"
    else:
        module, layout, forward = _torch_source(path, kind, ref)
        framework = "pytorch"
    source_spec = dataclasses.replace(spec, framework=framework,
                                      normalization=dataclasses.replace(spec.normalization, layout=layout))
    model = ZooModel(source_spec, module, path, file_digest(path), forward)
    probe = np.zeros((1, spec.input_size, spec.input_size, 3), np.uint8)
    try:
        logits = model.predict_logits(probe)
    except Exception as exc:
        raise UserModelError(f"{path}: a call on one {spec.input_size}x{spec.input_size} image ({layout}) fails"
                             f"{ref}: {_first_line(exc)}") from exc
    if logits.shape != (1, spec.num_classes):
        raise UserModelError(f"{path}: output shape {logits.shape[1:]} per image{ref}; the mobile file has "
                             f"{spec.num_classes} outputs")
    return model


def respec_source(source: ZooModel, spec: ModelSpec, reference: Path | str | None = None) -> ZooModel:
    """An already loaded source model under another user file's spec (same module, weights and layout)."""
    ref = f" (the source model of {reference})" if reference is not None else ""
    if (source.spec.input_size, source.spec.num_classes) != (spec.input_size, spec.num_classes):
        raise UserModelError(f"{source.weights_path}: takes {source.spec.input_size} px and has "
                             f"{source.spec.num_classes} outputs{ref}; the mobile file takes {spec.input_size} px "
                             f"and has {spec.num_classes}")
    layout = source.spec.normalization.layout
    new = dataclasses.replace(spec, framework=source.spec.framework,
                              normalization=dataclasses.replace(spec.normalization, layout=layout))
    return dataclasses.replace(source, spec=new)


def _keras_source(path: Path, ref: str):
    from harness.frameworks import import_keras
    from harness.zoo.frameworks import ADAPTERS

    keras = import_keras()
    try:
        module = keras.models.load_model(path, compile=False)
    except Exception as exc:  # Keras raises ValueError, OSError, TypeError ... for a bad file
        raise UserModelError(f"{path}: keras.models.load_model cannot read it{ref} ({type(exc).__name__}: "
                             f"{_first_line(exc)})") from exc
    inputs = getattr(module, "inputs", None) or []
    if len(inputs) != 1:
        raise UserModelError(f"{path}: the Keras model has {len(inputs)} inputs{ref}; expected one image input")
    shape = tuple(inputs[0].shape)
    layout = "NCHW" if len(shape) == 4 and shape[1] == 3 and shape[3] != 3 else "NHWC"
    return module, layout, ADAPTERS["tensorflow"].forward(module)


def _torch_source(path: Path, kind: str, ref: str):
    from harness.frameworks import import_torch
    from harness.zoo.frameworks import ADAPTERS

    torch = import_torch()
    if kind == "exported":
        try:
            program = torch.export.load(str(path))
        except Exception as exc:
            raise UserModelError(f"{path}: torch.export.load cannot read it{ref} ({type(exc).__name__}: "
                                 f"{_first_line(exc)})") from exc
        module = ExportedModule(program)
    else:
        try:
            module = torch.jit.load(str(path), map_location="cpu")
        except Exception as exc:
            raise UserModelError(f"{path}: torch.jit.load cannot read it{ref} ({type(exc).__name__}: "
                                 f"{_first_line(exc)}); a state dict needs its architecture: save the model "
                                 "with torch.jit.script(model).save(path) or torch.export.save") from exc
        module.eval()
    return module, "NCHW", ADAPTERS["pytorch"].forward(module)


def _exported_module_class():
    from harness.frameworks import import_torch

    torch = import_torch()

    class _ExportedModule(torch.nn.Module):
        """An exported program as an ``nn.Module`` Foolbox can call: eval() is a no-op (the exported
        module refuses it and is already in inference form), and a program exported with a static
        batch size is called batch by batch (the chunks' gradients flow through ``torch.cat``)."""

        def __init__(self, program):
            super().__init__()
            inner = program.module()
            object.__setattr__(self, "_inner", inner)  # not a child: train()/eval() would reach it
            self.batch = _static_batch(program)

        def train(self, mode: bool = True):
            self.training = False
            return self

        def forward(self, x):
            if self.batch is None or len(x) == self.batch:
                return self._inner(x)
            chunks = []
            for start in range(0, len(x), self.batch):
                part = x[start:start + self.batch]
                short = self.batch - len(part)
                if short:
                    part = torch.cat([part, part[-1:].expand(short, *part.shape[1:])])
                chunks.append(self._inner(part)[:self.batch - short])
            return torch.cat(chunks)

    return _ExportedModule


def ExportedModule(program):  # noqa: N802  (a class, built on first use so torch loads lazily)
    return _exported_module_class()(program)


def _static_batch(program) -> int | None:
    """The exported program's fixed batch size, or None when its batch dimension is dynamic."""
    names = set(getattr(program.graph_signature, "user_inputs", ()))
    for node in program.graph.nodes:
        if node.op == "placeholder" and node.name in names:
            value = node.meta.get("val")
            shape = getattr(value, "shape", None)
            if shape is not None and len(shape) == 4:
                first = shape[0]
                return int(first) if isinstance(first, int) else None
    return None
