"""Measurements per model x quantization x platform, returned as data for the reports.

    from harness.metrics import measure
    m = measure(runtime, samples, reference=pc_float_logits)
    m.accuracy, m.agreement, m.max_abs_logit_diff, m.file_size_bytes, m.to_dict()
"""

from harness.metrics.measure import Measurement, MeasurementError, file_size, measure, measure_configuration

__all__ = ["Measurement", "MeasurementError", "file_size", "measure", "measure_configuration"]
