"""The conformance corpus: model files this project did not write, and files written the way the
field's tools write them, each run through the bring-your-own study (direct attacks) end to end.

:data:`WRITTEN` lists the files :mod:`tests.conformance.writers` makes at test time from the mini
zoo; each :class:`Entry` says where the file comes from, what it exercises, the options its run
needs, and what the run must find in the file (its recorded recipe, batch, output kind). The
The conformance table in docs/conformance.md is :func:`markdown_table` of this list (a test keeps them equal).
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Entry:
    file: str  # the file's name in the corpus folder
    source: str  # where it comes from
    exercises: str  # what it exercises
    options: tuple[str, ...] = ()  # options its run needs (beyond --model, --images)
    card: str | None = None  # a model card written beside it (TOML), or None: none needed
    expect: dict = field(default_factory=dict)  # facts the run must record about the file

    @property
    def result(self) -> str:
        return "report with direct attacks"


TFLITE_CONVERTER = "TensorFlow `TFLiteConverter.from_keras_model`, batch-1 Keras input"
FLOAT_CARD = "[input]\nmean = 127.5\nstd = 127.5\n"

WRITTEN = (
    Entry("float32_batch1.tflite", f"{TFLITE_CONVERTER}, defaults",
          "fixed batch 1 (`shape_signature` without -1), float32", card=FLOAT_CARD,
          expect={"recipe": "float32", "batch": 1, "outputs": "logits"}),
    Entry("float16_batch1.tflite", f"{TFLITE_CONVERTER}, `supported_types=[tf.float16]`",
          "float16 weights dequantized at run time", card=FLOAT_CARD,
          expect={"recipe": "float16", "batch": 1, "quantization": "float"}),
    Entry("dynamic_range_batch1.tflite", f"{TFLITE_CONVERTER}, `Optimize.DEFAULT`, no representative data",
          "dynamic-range int8 (weights only, float activations)", card=FLOAT_CARD,
          expect={"recipe": "dynamic_int8", "batch": 1, "quantization": "int8"}),
    Entry("uint8_1001_softmax_batch1.tflite",
          f"{TFLITE_CONVERTER}, full integer, `inference_input_type=inference_output_type=tf.uint8`",
          "legacy uint8 interface, 1001 outputs with a background first, probabilities quantized at 1/256",
          expect={"recipe": "int8", "batch": 1, "outputs": "probabilities", "label_offset": 1}),
    Entry("int8_batch1.tflite", f"{TFLITE_CONVERTER}, full integer, int8 input and output",
          "int8 interface (input scale 1/127.5, zero point -1), no card",
          expect={"recipe": "int8", "batch": 1, "quantization": "int8"}),
    Entry("int8_1001_128px_batch1.tflite", f"{TFLITE_CONVERTER}, full integer, int8 input and output",
          "a 128-px input, 1001 outputs with a background first, int8 logits out",
          expect={"recipe": "int8", "batch": 1, "outputs": "logits", "label_offset": 1}),
    Entry("float_edges_int8_batch1.tflite", f"{TFLITE_CONVERTER}, full-integer ops, float interface",
          "float input and output with QUANTIZE/DEQUANTIZE around an int8 interior", card=FLOAT_CARD,
          expect={"recipe": "int8", "batch": 1, "quantization": "int8"}),
    Entry("int16x8_batch1.tflite",
          f"{TFLITE_CONVERTER}, `EXPERIMENTAL_TFLITE_BUILTINS_ACTIVATIONS_INT16_WEIGHTS_INT8`",
          "16-bit activations, 8-bit weights", card=FLOAT_CARD,
          expect={"recipe": "int16x8", "batch": 1, "quantization": "int8"}),
    Entry("two_outputs_batch1.tflite", f"{TFLITE_CONVERTER}, a dict of two outputs",
          "several outputs: the classifier's picked by its signature name", options=("--output", "logits"),
          card=FLOAT_CARD, expect={"recipe": "float32", "batch": 1, "output": "logits"}),
    Entry("metadata_float32_batch1.tflite",
          "tflite-support 0.4.4 `ImageClassifierWriter.create_for_inference` on the float32 file",
          "TFLite Model Metadata: normalisation options and an embedded label file; no card",
          expect={"recipe": "float32", "batch": 1, "metadata": True, "labels": "metadata"}),
    Entry("static_batch1.pte", "`torch.export` at batch 1, `to_edge_transform_and_lower(XnnpackPartitioner)`",
          "ExecuTorch program with a static batch of 1, through `--model`",
          card="[input]\nscale = 0.00392156862745098\nmean = [0.485, 0.456, 0.406]\nstd = [0.229, 0.224, 0.225]\n",
          expect={"batch": 1, "quantization": "float"}),
    Entry("static_batch4.pte", "`torch.export` at batch 4, `to_edge_transform_and_lower(XnnpackPartitioner)`",
          "static batch of 4: the last short chunk padded",
          card="[input]\nscale = 0.00392156862745098\nmean = [0.485, 0.456, 0.406]\nstd = [0.229, 0.224, 0.225]\n",
          expect={"batch": 4, "quantization": "float"}),
    Entry("int8_static_batch1.pte", "the same, quantized first: PT2E with `XNNPACKQuantizer` (symmetric)",
          "an int8 ExecuTorch program: its quantized tensors live inside the XNNPACK blob",
          card="[input]\nscale = 0.00392156862745098\nmean = [0.485, 0.456, 0.406]\nstd = [0.229, 0.224, 0.225]\n",
          expect={"batch": 1, "quantization": "int8"}),
    Entry("baked_batch1.ptl", "`torch.jit.trace` of a module that ends in `reshape(1, -1)`",
          "a `.ptl` whose graph holds its batch of 1",
          card="[input]\nsize = 32\nscale = 0.00392156862745098\nmean = [0.485, 0.456, 0.406]\n"
               "std = [0.229, 0.224, 0.225]\n",
          expect={"batch": 1, "quantization": "float"}),
)


def markdown_table(entries) -> str:
    rows = ["| file | source | what it exercises | result |", "| --- | --- | --- | --- |"]
    rows += [f"| `{e.file}` | {e.source} | {e.exercises} | {e.result} |" for e in entries]
    return "\n".join(rows)
