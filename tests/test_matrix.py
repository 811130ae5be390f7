"""The study itself: one case per framework x model x attack x quantization x platform.

Select with -k on the case id (``tensorflow-mobilenet_v2-bim-int8-mobile``) or with the
markers (``-m pc``, ``-m device``). Each case measures its configuration on the
adversarial PNGs and judges it against the committed baseline
(``thresholds/<zoo>-<profile>.json``; the gates are described in harness/metrics/gates.py).
"""

from __future__ import annotations

import traceback

import pytest

from harness import suite
from harness.convert.base import ConversionError
from harness.metrics import gates as gating
from harness.runtime import PlatformUnavailable
from harness.runtime.registry import check_available


def test_configuration(configuration, phone_key, study, run_options, request):
    if configuration.platform == "device" and phone_key is not None:  # one of several phones: its own study
        study = request.getfixturevalue("device_phones").study(phone_key)
    elif configuration.platform == "device":
        study.device_serial = request.getfixturevalue("device_serial")  # a phone, or the virtual one
    try:
        check_available(configuration.platform)
    except PlatformUnavailable as exc:
        pytest.skip(str(exc))
    baseline = None
    try:
        baseline = run_options.baseline_for(configuration, study)
        # Runner platforms measure the whole planned batch at their first case (one process per runtime).
        study.prefetch(suite.planned_configurations(request.session, configuration, phone_key))
        record = study.evaluate(configuration)
    except PlatformUnavailable as exc:
        pytest.skip(str(exc))
    except ConversionError as exc:  # this configuration's model did not convert: say so in one line, run on
        expected = baseline.expects_conversion_failure(configuration.id) if baseline is not None else None
        suite.write_error_record(run_options, configuration, exc, traceback.format_exc(), expected=expected,
                                 phone_key=phone_key)
        record, failed = None, (expected, f"{configuration.id}: the model did not convert: {exc}")
    except Exception as exc:  # recorded, so the report shows the configuration as an error, not as absent
        suite.write_error_record(run_options, configuration, exc, traceback.format_exc(), phone_key=phone_key)
        raise
    else:
        failed = None
        suite.mark_phone(record, phone_key, study.device_serial)
    if failed is not None:  # outside the except block: one line, without the converter's traceback
        expected, message = failed
        if expected:
            pytest.xfail(f"{message} (as the baseline records)")
        pytest.fail(message, pytrace=False)
    if baseline is None:  # proposing a baseline with nothing to judge against: the proposal shows the numbers
        record.update(gate={}, verdicts=["not judged: no baseline measured on these settings (proposal run)"],
                      passed=True)
        suite.write_record(run_options, record)
        return
    if baseline.expects_conversion_failure(configuration.id):
        record.update(gate={}, passed=False, verdicts=[f"{configuration.id}: converts now, but the baseline records "
                                                       "a conversion failure: propose a new one with --write-thresholds"])
        suite.write_record(run_options, record)
        pytest.fail(record["verdicts"][0], pytrace=False)
    verdicts = gating.judge(record, baseline, run_options.gated_cases)
    record["gate"] = gating.gate_numbers(record, baseline, run_options.gated_cases)
    record["regression"] = verdicts[0].numbers
    record["verdicts"] = [v.describe(configuration.id) for v in verdicts]
    record["passed"] = all(v.passed for v in verdicts)
    suite.write_record(run_options, record)
    failures = [v.describe(configuration.id) for v in verdicts if not v.passed]
    assert not failures, "\n".join(failures)
