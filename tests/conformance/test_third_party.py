"""Model files from packages on PyPI that this project did not write, through the bring-your-own
study: the classifiers run to a report with direct attacks on real photos (foolbox's labelled
ImageNet and CIFAR-10 validation photos); the files that are not RGB classifiers give their one-line
error and no traceback."""

from __future__ import annotations

import json

import pytest

from tests.conformance import support
from tests.conformance.third_party import THIRD_PARTY, Missing, extract, foolbox_photos, required
from tests.zoo import byo_support as byo


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    root = tmp_path_factory.mktemp("third-party")
    support.write_profile(root)
    foolbox_photos("imagenet", root / "imagenet")
    foolbox_photos("cifar10", root / "cifar10")
    data = byo.test_images()
    byo.write_class_folders(data.select(data.ids[:4]), root / "unlabelled", name_of=lambda label: ".")
    return root


def _file(entry, root):
    try:
        return extract(entry, root / "files")
    except Missing as exc:
        if required():
            raise
        pytest.skip(str(exc))


@pytest.mark.parametrize("entry", [e for e in THIRD_PARTY if e.error is None], ids=lambda e: e.file)
def test_third_party_classifier_runs_to_a_report(entry, root, tmp_path, monkeypatch, capsys):
    model = _file(entry, root)
    photos = root / (entry.images or "unlabelled")
    code = support.run_main(root / "profiles.toml", tmp_path / "reports", tmp_path / "cache", monkeypatch,
                            "--model", str(model), "--images", str(photos), *entry.options)
    out = capsys.readouterr()
    assert code == 0, out.out[-3000:] + out.err[-3000:]
    assert "Traceback" not in out.err
    found = support.records(tmp_path / "reports")
    support.check_records(found, entry.expect)
    if "min_accuracy" in entry.expect:  # the preprocessing read off the file is right: it sees the photos
        (selection,) = (tmp_path / "cache").glob("selection/*/selection.json")
        pool = json.loads(selection.read_text())["pool_size"]  # the photos the file classifies correctly
        assert pool / 20 >= entry.expect["min_accuracy"], pool


@pytest.mark.parametrize("entry", [e for e in THIRD_PARTY if e.error is not None], ids=lambda e: e.file)
def test_third_party_file_that_is_not_an_rgb_classifier_gives_one_line(entry, root, tmp_path, monkeypatch, capsys):
    model = _file(entry, root)
    with pytest.raises(SystemExit) as stop:
        support.run_main(root / "profiles.toml", tmp_path / "reports", root / "cache", monkeypatch,
                         "--model", str(model), "--images", str(root / "unlabelled"), *entry.options)
    err = capsys.readouterr().err
    assert stop.value.code == 2
    assert "Traceback" not in err
    line = err.strip().splitlines()[-1]
    assert str(model) in line and entry.error in line, err


def test_the_conformance_page_table_is_the_third_party_corpus():
    from tests.conformance.third_party import REPO, markdown_table

    assert markdown_table() in (REPO / "docs" / "conformance.md").read_text()
