"""The conformance corpus through the bring-your-own study, end to end: every file runs
``python -m harness --model FILE --images photos/`` (in this process, as the command line calls
it) to a report with direct-attack results, and the records say what was read off the file."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conformance import corpus, support

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("entry", corpus.WRITTEN, ids=lambda e: e.file)
def test_written_file_runs_the_study_to_a_report(entry, world, tmp_path, monkeypatch, capfd):
    model = world / "files" / entry.file
    code = support.run_main(world / "profiles.toml", tmp_path / "reports", world / "cache", monkeypatch,
                            "--model", str(model), "--images", str(world / "photos"), *entry.options)
    out = capfd.readouterr()
    assert code == 0, out.out[-3000:] + out.err[-3000:]
    assert "Traceback" not in out.err
    html = next((tmp_path / "reports").glob("*/report.html")).read_text()
    assert 'id="your-model-files"' in html and str(model) in html  # what was read off the file, in the report
    support.check_records(support.records(tmp_path / "reports"), entry.expect)


def test_the_conformance_page_table_is_the_corpus():
    page = (REPO / "docs" / "conformance.md").read_text()
    assert corpus.markdown_table(corpus.WRITTEN) in page
