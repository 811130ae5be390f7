"""The conversion stage: PC model -> cached mobile model file (``.tflite``, ``.ptl``, ``.pte``).

    from harness.convert import convert
    artefact = convert(zoo_model, "int8", calibration_set, cache)
    artefact.path, artefact.size_bytes, artefact.options

One interface, one converter per (framework, format): Keras -> ``.tflite``
(:mod:`harness.convert.tflite`), PyTorch -> ``.ptl`` (:mod:`harness.convert.torch_mobile`),
PyTorch -> ``.tflite`` through litert-torch (:mod:`harness.convert.torch_litert`) and
PyTorch -> ExecuTorch ``.pte`` with the XNNPACK delegate (:mod:`harness.convert.executorch`);
``convert(..., format=None)`` picks the framework's native format. A new format
registers another converter. The converters that run ``torch.export`` do it in a child
process that never imports TensorFlow (:mod:`harness.convert.child`).
"""

from harness.convert.base import (
    CONVERTER_SOURCES,
    QUANTIZATIONS,
    ConversionError,
    NATIVE_FORMATS,
    MobileArtifact,
    calibration_inputs,
    convert,
    converter_for,
    converter_source_digest,
    native_format,
    register_converter,
)
from harness.convert.weights import module_digest, zoo_model_from_module
# The built-in converters: each module registers its own (the native ones first).
from harness.convert import tflite, torch_mobile, torch_litert, executorch  # noqa: E402,F401,I001

__all__ = [
    "CONVERTER_SOURCES", "NATIVE_FORMATS", "QUANTIZATIONS", "ConversionError", "MobileArtifact", "calibration_inputs",
    "convert", "converter_source_digest", "converter_for", "native_format", "register_converter", "module_digest", "zoo_model_from_module",
]
