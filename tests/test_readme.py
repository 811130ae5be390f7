"""The README is short, its links and the docs pages' links resolve, and nothing it dropped is lost."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"
DOCS = REPO / "docs"
PAGES = [README, *sorted(DOCS.glob("*.md"))]

# The README's top-level sections before it was cut to a five-minute read; each now lives in docs/.
DROPPED = ["The suite", "Framework or runtime?", "Attacks and profiles", "Attacks on the deployed model",
           "Gates and baselines", "The conformance corpus: files this project did not write", "Running it in CI",
           "On a Ray cluster: `--executor ray`", "Bad input", "The phone's code on this host: platform `arm64`",
           "Run it on your phone: platform `device`", "Layout", "Zoos", "How the mini models were trained", "Data",
           "Known environment traps (handled)"]
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")


def _prose(text: str) -> str:
    """The text outside fenced code blocks."""
    return re.sub(r"^```.*?^```", "", text, flags=re.S | re.M)


def _headings(path: Path) -> list[str]:
    return [m.group(2).strip() for m in re.finditer(r"^(#+)\s+(.*)$", _prose(path.read_text()), re.M)]


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.lower()).replace(" ", "-")


def test_the_readme_is_under_2000_words():
    words = len(README.read_text().split())
    assert words < 2000, f"README.md has {words} words"


def test_the_word_count_check_fails_on_a_long_readme():
    assert len((README.read_text() + " word" * 2000).split()) >= 2000


def _broken_links(path: Path) -> list[str]:
    broken = []
    for target in LINK.findall(_prose(path.read_text())):
        if re.match(r"[a-z]+:", target):
            continue  # an absolute URL
        file, _, anchor = target.partition("#")
        dest = (path.parent / file).resolve() if file else path
        if not dest.exists():
            broken.append(target)
        elif anchor and dest.suffix == ".md" and anchor not in {_slug(h) for h in _headings(dest)}:
            broken.append(target)
    return broken


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.relative_to(REPO).as_posix())
def test_every_relative_link_resolves(page):
    assert not _broken_links(page), f"{page.name}: broken links {_broken_links(page)}"


def test_the_link_check_finds_a_broken_link(tmp_path):
    (tmp_path / "there.md").write_text("# Here\n")
    page = tmp_path / "page.md"
    page.write_text("[ok](there.md) [ok](there.md#here) [no](missing.md) [no](there.md#nowhere) "
                    "[web](https://example.org/x)\n```\n[code](ignored.md)\n```\n")
    assert _broken_links(page) == ["missing.md", "there.md#nowhere"]


def test_every_dropped_section_lives_in_a_docs_page():
    headings = {h for page in DOCS.glob("*.md") for h in _headings(page)}
    assert not [t for t in DROPPED if t not in headings]


def test_the_docs_index_lists_every_page():
    index = (DOCS / "index.md").read_text()
    assert not [p.name for p in DOCS.glob("*.md") if p.name != "index.md" and f"]({p.name})" not in index]


def test_the_readme_figure_is_committed_and_linked():
    assert (DOCS / "figures" / "success-mobile-float.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "](docs/figures/success-mobile-float.png)" in README.read_text()


def test_the_figure_is_drawn_from_the_baseline():
    import importlib.util

    spec = importlib.util.spec_from_file_location("readme_figure", REPO / "tools" / "readme_figure.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    records = module.baseline_records()
    assert len(records) == 18 and {r["platform"] for r in records} == {"mobile"}
    assert {r["quantization"] for r in records} == {"float"}
    assert all(r["n_samples"] > 0 and 0 <= r["n_success"] <= r["n_samples"] for r in records)
