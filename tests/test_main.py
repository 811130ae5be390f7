"""The main job, `python -m harness` (`make run`): runs the study, writes the records and the report,
prints the summary table; usage errors are argparse's (exit 2) and name the valid choices."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from harness.attack.profiles import load_profile
from harness.study import matrix

REPO = Path(__file__).resolve().parents[1]


def run_main(*args: str, timeout: float = 1800) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    env.pop("HARNESS_RUN_ID", None)  # pytest's run id: the job names its own run
    return subprocess.run([sys.executable, "-m", "harness", *args], capture_output=True, text=True,
                          cwd=REPO, env=env, timeout=timeout)


def test_main_job_runs_the_pc_study_and_writes_the_report(tmp_path):
    # The default profile on the pc platform: the artefacts (samples, adversarial sets) are the ones
    # `pytest -m pc` uses, so in `make test` they are built once for both.
    result = run_main("--platforms", "pc", "--report-dir", str(tmp_path), timeout=1800)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    out = result.stdout
    expected = [c.id for c in matrix(("pc",), load_profile("default").attack_names)]
    assert len(expected) == 18
    assert f"configuration 1 of 18: {expected[0]}" in out and f"configuration 18 of 18: {expected[-1]}" in out
    header = re.search(r"^configuration\s+n\s+success\s+PC succ\.\s+clean acc\s+agr\. PC$", out, re.M)
    assert header, out[-3000:]
    for cid in expected:
        assert re.search(rf"^{cid}\s+\d+\s+[\d.]+%\s+[\d.]+%\s+[\d.]+%\s+[\d.]+%$", out, re.M), cid
    report = Path(re.search(r"^report: (.+)$", out, re.M).group(1))
    assert report.is_file() and report.parent.parent == tmp_path
    assert (tmp_path / "latest").resolve() == report.parent.resolve()
    records = sorted((report.parent / "records").glob("*.json"))
    assert [p.stem for p in records] == sorted(expected)
    record = json.loads(records[0].read_text())
    assert record["passed"] is None and record["verdicts"] == []  # not gated: pytest's job
    assert record["versions"]["attack"]["foolbox"] and record["environment"]["python"]
    page = report.read_text()
    assert "18 not gated" in page and "(none recorded)" not in page[:page.index('id="answers"')]
    assert re.search(r"^thresholds: \S+ (exists|does not exist)", out, re.M)


@pytest.mark.parametrize("args, message", [
    (("--platforms", "pc,phone"), "comma-separated list of pc, mobile, arm64"),
    (("--profile", "nope"), "unknown profile 'nope'"),
    (("--samples", "0"), "--samples must be a positive integer"),
])
def test_bad_options_are_usage_errors(args, message):
    result = run_main(*args, timeout=300)
    assert result.returncode == 2 and message in result.stderr, result.stderr[-2000:]
