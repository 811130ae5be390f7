"""Reporting and statistics: results files, RQ1-RQ3 statistics, figures and the HTML page.

Later stages call it with plain records (dicts, one per configuration; see
:mod:`harness.report.records` for the fields) and run information::

    from harness.report import write_report
    write_report(records, run_info, "reports/<run>")
"""

from harness.report.records import REQUIRED_FIELDS, RecordError, config_id, validate_records
from harness.report.stats import (a_magnitude, answer_questions, compare_platforms, compare_quantization,
                                  compare_runtimes, compute_statistics, mcnemar_exact, paired_vargha_delaney_a,
                                  paired_wilcoxon,
                                  rq1_summary, rq2_summary, rq3_summary, vargha_delaney_a, wilson_interval)
from harness.report.writer import ReportPaths, update_latest, write_report

__all__ = [
    "REQUIRED_FIELDS", "RecordError", "ReportPaths", "a_magnitude", "answer_questions", "compare_platforms",
    "compare_quantization", "compare_runtimes", "compute_statistics", "config_id", "mcnemar_exact",
    "paired_vargha_delaney_a",
    "paired_wilcoxon", "rq1_summary", "rq2_summary", "rq3_summary", "update_latest", "validate_records",
    "vargha_delaney_a", "wilson_interval", "write_report",
]
