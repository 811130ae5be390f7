"""The conversion stage: PC model -> cached mobile model file (``.tflite``, ``.ptl``).

    from harness.convert import convert
    artefact = convert(zoo_model, "int8", calibration_set, cache)
    artefact.path, artefact.size_bytes, artefact.options

One interface, one converter per framework (:mod:`harness.convert.tflite`,
:mod:`harness.convert.torch_mobile`); a new format registers another converter.
"""

from harness.convert.base import (
    CONVERTER_SOURCES,
    QUANTIZATIONS,
    ConversionError,
    MobileArtifact,
    calibration_inputs,
    convert,
    converter_for,
    converter_source_digest,
    register_converter,
)
from harness.convert.weights import module_digest, zoo_model_from_module

__all__ = [
    "CONVERTER_SOURCES", "QUANTIZATIONS", "ConversionError", "MobileArtifact", "calibration_inputs",
    "convert", "converter_source_digest", "converter_for", "register_converter", "module_digest", "zoo_model_from_module",
]
