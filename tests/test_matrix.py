"""The study itself: one case per framework x model x attack x quantization x platform.

Select with -k on the case id (``tensorflow-mobilenet_v2-bim-int8-mobile``) or with the
markers (``-m pc``, ``-m device``). Each case measures its configuration on the
adversarial PNGs and gates it against the committed threshold file.
"""

from __future__ import annotations

import pytest

from harness import suite
from harness.metrics import gates as gating
from harness.runtime import PlatformUnavailable
from harness.runtime.registry import check_available


def test_configuration(configuration, study, run_options, request):
    if configuration.platform == "device":
        study.device_serial = request.getfixturevalue("device_serial")  # a phone, or the virtual one
    try:
        check_available(configuration.platform)
    except PlatformUnavailable as exc:
        pytest.skip(str(exc))
    gate = run_options.gate_for(configuration)
    try:
        # Runner platforms measure the whole planned batch at their first case (one process per runtime).
        study.prefetch(suite.planned_configurations(request.session, configuration))
        record = study.evaluate(configuration)
    except PlatformUnavailable as exc:
        pytest.skip(str(exc))
    verdicts = gating.check(gate, record)
    record["gate"] = gate
    record["verdicts"] = [v.describe(configuration.id) for v in verdicts]
    record["passed"] = all(v.passed for v in verdicts)
    suite.write_record(run_options, record)
    failures = [v.describe(configuration.id) for v in verdicts if not v.passed]
    assert not failures, "\n".join(failures)
