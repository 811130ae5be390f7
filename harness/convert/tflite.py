"""Keras -> ``.tflite`` with ``tf.lite.TFLiteConverter.from_keras_model``.

int8 is the paper's setting: ``optimizations = [tf.lite.Optimize.DEFAULT]`` plus a
representative dataset (the calibration images through the model's Normalization, one
image per step), which makes the converter quantize weights and activations to int8
while keeping float32 input and output tensors. Per-channel weights, the new quantizer
and the builtin op set are the converter's defaults; the options are recorded as read
back from the converter object, so the manifest says what was actually used.
"""

from __future__ import annotations

import contextlib
import io
import time
import warnings
from pathlib import Path

import numpy as np

from harness.convert.base import ConversionError, register_converter
from harness.frameworks import import_tensorflow
from harness.zoo.base import ModelSpec, ZooModel


def _dtype_name(dtype) -> str:
    return getattr(dtype, "name", str(dtype))


class TFLiteConverter:
    framework = "tensorflow"
    format = "tflite"

    def versions(self) -> dict:
        tf = import_tensorflow()
        import keras

        return {"tensorflow": tf.__version__, "keras": keras.__version__, "numpy": np.__version__}

    def options(self, spec: ModelSpec, quantization: str, n_calibration: int) -> dict:
        options = {
            "converter": "tf.lite.TFLiteConverter.from_keras_model",
            "optimizations": [],
            "representative_dataset": None,
            "inference_input_type": "float32",
            "inference_output_type": "float32",
        }
        if quantization == "int8":
            options.update(
                optimizations=["DEFAULT"],
                representative_dataset={
                    "images": n_calibration, "images_per_step": 1,
                    "preprocessing": spec.normalization.name,
                },
            )
        return options

    def _converter(self, model: ZooModel, quantization: str, calibration: np.ndarray | None):
        tf = import_tensorflow()
        converter = tf.lite.TFLiteConverter.from_keras_model(model.module)
        if quantization == "int8":
            converter.optimizations = [tf.lite.Optimize.DEFAULT]

            def representative_dataset():
                for i in range(len(calibration)):
                    yield [calibration[i:i + 1]]

            converter.representative_dataset = representative_dataset
        return converter

    def build(self, model: ZooModel, quantization: str, calibration: np.ndarray | None,
              options: dict, out_dir: Path, filename: str) -> dict:
        converter = self._converter(model, quantization, calibration)
        effective = {
            "optimizations": sorted(o.name for o in converter.optimizations),
            "inference_input_type": _dtype_name(converter.inference_input_type),
            "inference_output_type": _dtype_name(converter.inference_output_type),
            "supported_ops": sorted(o.name for o in converter.target_spec.supported_ops),
            "supported_types": sorted(_dtype_name(t) for t in converter.target_spec.supported_types),
            "experimental_new_converter": bool(converter.experimental_new_converter),
            "experimental_new_quantizer": bool(converter.experimental_new_quantizer),
            "per_channel": not bool(getattr(converter, "_experimental_disable_per_channel", False)),
        }
        for key in ("optimizations", "inference_input_type", "inference_output_type"):
            if effective[key] != options[key]:
                raise ConversionError(f"{model.spec.id}: converter {key} is {effective[key]}, expected {options[key]}")
        start = time.perf_counter()
        chatter = io.StringIO()  # Keras' export prints every captured tensor to stdout
        try:
            with contextlib.redirect_stdout(chatter), warnings.catch_warnings():
                warnings.filterwarnings("ignore", message="Statistics for quantized inputs were expected")
                flatbuffer = converter.convert()
        except Exception as exc:
            raise ConversionError(
                f"{model.spec.id}: TFLite {quantization} conversion failed: {type(exc).__name__}: {exc}"
            ) from exc
        seconds = time.perf_counter() - start
        (Path(out_dir) / filename).write_bytes(flatbuffer)
        return {"converter_settings": effective, "conversion_seconds": round(seconds, 3)}


register_converter(TFLiteConverter())
