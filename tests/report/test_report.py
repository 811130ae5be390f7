"""The written report: files, round trips, the HTML page, the latest link and invalid records."""

from __future__ import annotations

import copy
import csv
import json
import os
import re

import pytest

from harness.report import REQUIRED_FIELDS, RecordError, write_report
from harness.report.figures import build_figures
from harness.report.html import recorded_facts
from harness.report.records import validate_records
from harness.report.stats import compute_statistics, format_p


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    """One report shared by the read-only checks below (writing it takes a couple of seconds)."""
    from .conftest import make_records, make_run_info

    records = make_records()
    paths = write_report(records, make_run_info(), tmp_path_factory.mktemp("reports") / "run-001")
    return paths, records


def test_files_exist(written):
    paths, _ = written
    for p in (paths.results_json, paths.results_csv, paths.statistics_json, paths.report_html, paths.run_json):
        assert p.is_file() and p.stat().st_size > 0
    assert not [p for p in paths.directory.iterdir() if p.name.startswith(".")], "temp files left behind"


def test_results_json_round_trips(written):
    paths, records = written
    data = json.loads(paths.results_json.read_text())
    assert len(data) == 54
    by_id = {d["config_id"]: d for d in data}
    assert len(by_id) == 54
    for rec in records:
        cid = "-".join(rec[k] for k in ("framework", "model", "attack", "quantization", "platform"))
        out = by_id[cid]
        for field in REQUIRED_FIELDS:
            assert out[field] == rec[field], (cid, field)
        low, high = out["success_rate_ci"]
        assert 0 <= low <= out["success_rate"] <= high <= 1
    assert sum(d["platform"] == "pc" for d in data) == 18
    assert sum(d["platform"] == "mobile" for d in data) == 36


def test_csv_has_one_row_per_configuration(written):
    paths, records = written
    with paths.results_csv.open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 54
    assert {"config_id", "success_rate", "success_rate_ci_low", "success_rate_ci_high", "passed", "gate"} <= set(rows[0])
    assert "per_sample_success" not in rows[0] and "sample_ids" not in rows[0]
    row = next(r for r in rows if r["config_id"] == "pytorch-resnet50-boundary-int8-mobile")
    rec = next(r for r in records if (r["framework"], r["model"], r["attack"], r["quantization"]) ==
               ("pytorch", "resnet50", "boundary", "int8"))
    assert float(row["success_rate"]) == pytest.approx(rec["success_rate"])
    assert json.loads(row["gate"]) == rec["gate"]


def test_statistics_json(written):
    paths, records = written
    s = json.loads(paths.statistics_json.read_text())
    assert len(s["intervals"]) == 54
    assert len(s["platform_comparisons"]) == 36 and len(s["quantization_comparisons"]) == 18
    assert set(s["answers"]) == {"rq1", "rq2", "rq3"}
    assert s["rq3"]["mobile"]["n_pairs"] == 18
    assert s["run"]["zoo"] == "mini"


def test_html_is_complete_and_self_contained(written):
    paths, records = written
    page = paths.report_html.read_text()
    ids = ["-".join(r[k] for k in ("framework", "model", "attack", "quantization", "platform")) for r in records]
    for cid in ids:
        assert f'id="cfg-{cid}"' in page, cid
    assert not re.search(r"https?://", page)
    assert not re.search(r"<(script|link|iframe)\b", page, re.I)
    srcs = re.findall(r'src="([^"]*)"', page)
    assert srcs and all(s.startswith("data:image/") for s in srcs)
    # escaped user text, never raw markup
    assert "<script>alert(1)</script>" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    # header, answers and the named tables
    for text in ("mini", "smoke", "2.14.1", "RQ1", "RQ2", "RQ3", "Inference time", "Adversarial generation time",
                 "Quantization effect", "All configurations"):
        assert text in page, text
    stats = compute_statistics(records)
    for rq in ("rq1", "rq2", "rq3"):
        assert format_p(stats[rq]["mobile"]["wilcoxon"]["p_value"]) in page
    # every internal link resolves to an anchor on the page
    anchors = set(re.findall(r'id="([^"]+)"', page))
    targets = set(re.findall(r'href="#([^"]+)"', page))
    assert targets and targets <= anchors, targets - anchors


def test_html_marks_failed_configuration(tmp_path, records, run_info):
    rec = next(r for r in records if r["platform"] == "mobile")
    rec["passed"] = False
    rec["gate"]["max_success_rate"] = 0.0
    page = write_report(records, run_info, tmp_path / "r").report_html.read_text()
    cid = "-".join(rec[k] for k in ("framework", "model", "attack", "quantization", "platform"))
    assert re.search(rf'<tr id="cfg-{cid}" class="fail">', page)
    assert "53 passed, 1 failed" in page


def test_html_shows_the_records_own_verdicts_and_result(tmp_path, records, run_info):
    """The report shows the gate checks' sentences as recorded; it knows no gate names."""
    rec = next(r for r in records if r["platform"] == "mobile")
    rec["verdicts"] = ["a verdict in words the report never parses: FAILS by 0.0100"]
    rec["passed"] = False
    page = write_report(records, run_info, tmp_path / "r").report_html.read_text()
    assert "a verdict in words the report never parses: FAILS by 0.0100" in page
    assert "53 passed, 1 failed" in page


def test_ungated_records_say_so(tmp_path, records, run_info):
    """Records of `python -m harness` are not gated (passed None): neither pass nor FAIL."""
    for r in records:
        r.update(gate={}, verdicts=[], passed=None)
    page = write_report(records, run_info, tmp_path / "r").report_html.read_text()
    assert "0 passed, 0 failed, 54 not gated" in page
    assert page.count("not gated</span>") == 54 and "FAIL</span>" not in page and 'class="fail"' not in page


def test_versions_and_environment_come_from_the_records(tmp_path, records, run_info):
    facts = recorded_facts(validate_records(records), "versions")
    assert facts["attack.foolbox"] == "3.3.4"
    assert facts["framework.torch"] == "2.14.1 (27 of 54 configurations)"
    page = write_report(records, run_info, tmp_path / "r").report_html.read_text()
    provenance = page[page.index('id="provenance"'):]
    assert "(none recorded)" not in provenance
    for text in ("runtime.litert", "2.0.2", "attack.foolbox", "Test CPU @ 2.0GHz", "Linux-test", "quantized_engine"):
        assert text in provenance, text


def test_the_report_opens_with_one_verdict_line_per_question_and_platform(tmp_path, records, run_info):
    page = write_report(records, run_info, tmp_path / "r").report_html.read_text()
    body = page[page.index("</h1>"):]
    assert body.index('id="verdicts"') < body.index('id="figures"') < body.index('id="run"') \
        < body.index('id="answers"') < body.index('id="provenance"')
    verdicts = body[body.index('id="verdicts"'):body.index("</ul>")]
    stats = compute_statistics(validate_records(records))
    expected = [(rq, p) for rq in ("rq1", "rq2", "rq3") for p in stats[rq]]
    assert expected and verdicts.count("<li>") == len(expected)
    for rq, platform in expected:
        assert f"{rq.upper()}, {platform}: " in verdicts


def test_latest_symlink_points_to_the_run(tmp_path, records, run_info):
    base = tmp_path / "reports"
    first = write_report(records, run_info, base / "run-a")
    assert os.readlink(base / "latest") == "run-a"
    write_report(records, run_info, base / "run-b")
    assert os.readlink(base / "latest") == "run-b"
    assert (base / "latest" / "report.html").read_bytes() == (base / "run-b" / "report.html").read_bytes()
    assert first.report_html.is_file()
    assert not [p for p in base.iterdir() if p.name.startswith(".")]


def test_figures_say_what_they_show(records):
    figures = build_figures(records)
    keys = [f.key for f in figures]
    assert keys == ["fig-success-mobile-float", "fig-success-mobile-int8", "fig-success-pc-float",
                    "fig-platform-mobile-float", "fig-quantization-mobile"]
    for f in figures:
        assert f.data.startswith(b"\x89PNG") and f.title and f.caption
        assert "Wilson" in f.title
    assert len(figures[0].config_ids) == 18 and len(figures[-1].config_ids) == 36
    svg = build_figures(records, fmt="svg")[0]
    assert svg.data.lstrip().startswith(b"<?xml") and svg.mime == "image/svg+xml"


# ----------------------------------------------------------------------------- invalid records
def _broken(records, cid, mutate):
    out = copy.deepcopy(records)
    for r in out:
        if "-".join(r[k] for k in ("framework", "model", "attack", "quantization", "platform")) == cid:
            mutate(r)
    return out


CID = "tensorflow-resnet50-bim-int8-mobile"


@pytest.mark.parametrize("field, mutate", [
    ("success_rate", lambda r: r.pop("success_rate")),
    ("gate", lambda r: r.pop("gate")),
    ("n_samples", lambda r: r.update(n_samples=0, sample_ids=[], per_sample_success=[])),
    ("success_rate", lambda r: r.update(success_rate=1.5)),
    ("success_rate", lambda r: r.update(success_rate=-0.1)),
    ("success_rate", lambda r: r.update(success_rate=(r["success_rate"] + 0.2) % 1.0)),
    ("per_sample_success", lambda r: r.update(per_sample_success=r["per_sample_success"][:-1])),
    ("per_sample_success", lambda r: r["per_sample_success"].__setitem__(0, "yes")),
    ("sample_ids", lambda r: r["sample_ids"].__setitem__(1, r["sample_ids"][0])),
    ("clean_accuracy", lambda r: r.update(clean_accuracy=float("nan"))),
    ("inference_seconds", lambda r: r.update(inference_seconds=-1.0)),
    ("passed", lambda r: r.update(passed="no")),
    ("verdicts", lambda r: r.update(verdicts="passes")),
])
def test_invalid_record_names_configuration_and_field(tmp_path, records, run_info, field, mutate):
    bad = _broken(records, CID, mutate)
    with pytest.raises(ValueError) as info:
        write_report(bad, run_info, tmp_path / "reports" / "bad")
    assert isinstance(info.value, RecordError)
    assert CID in str(info.value) and repr(field) in str(info.value)
    assert not (tmp_path / "reports").exists(), "nothing may be written for invalid records"


def test_duplicate_configuration_is_rejected(records):
    with pytest.raises(ValueError, match="duplicate"):
        write_report(records + [copy.deepcopy(records[0])], {}, "/nonexistent/never-written")


def test_no_records_is_rejected(tmp_path):
    with pytest.raises(ValueError, match="no records"):
        write_report([], {}, tmp_path / "r")


def test_all_text_is_escaped(tmp_path, records):
    nasty = '<b onmouseover="x">&'
    records[0]["gate"][nasty] = 0.5
    records[0]["note"] = nasty
    info = {"run": nasty, "zoo": nasty, "profile": {"name": nasty}, "versions": {nasty: nasty}}
    page = write_report(records, info, tmp_path / "r").report_html.read_text()
    assert "<b " not in page and 'onmouseover="x"' not in page
    assert page.count("&lt;b onmouseover=&quot;x&quot;&gt;&amp;") >= 5


def test_numpy_values_are_accepted_and_written_as_plain_json(tmp_path, records):
    import numpy as np

    for r in records:
        r["per_sample_success"] = np.asarray(r["per_sample_success"], dtype=bool)
        r["sample_ids"] = np.asarray(r["sample_ids"], dtype=np.int64)
        r["success_rate"] = np.float64(r["success_rate"])
        r["n_samples"] = np.int64(r["n_samples"])
    paths = write_report(records, {}, tmp_path / "r")
    data = json.loads(paths.results_json.read_text())
    assert all(isinstance(x, bool) for d in data for x in d["per_sample_success"])
    assert all(isinstance(x, int) for d in data for x in d["sample_ids"])
