"""Framework or runtime? The same weights on several runtimes, against switching framework."""

from __future__ import annotations

import copy
import re
import statistics

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats as sp

from harness.report import RecordError, compute_statistics, config_id, write_report
from harness.report.figures import build_figures
from harness.report.stats import compare_runtimes, format_pct, runtime_comparison
from tests.report.conftest import make_records, make_run_info

FAST = settings(max_examples=60, deadline=None)
AGREEMENT = {"clean": {"n": 120, "prediction_agreement": 0.9917, "max_abs_logit_diff": 1.234e-4, "bit_exact": False},
             "adversarial": {"n": 120, "prediction_agreement": 0.9583, "max_abs_logit_diff": 5.678e-3,
                             "bit_exact": False}}


def _set_outcomes(rec: dict, outcomes) -> None:
    rec["per_sample_success"] = [bool(o) for o in outcomes]
    rec["success_rate"] = sum(rec["per_sample_success"]) / len(rec["per_sample_success"])


def twins(records, runtime, plant=None, seed=1, agreement=True, shuffle=True):
    """The PyTorch mobile records again on ``runtime``: outcomes changed by ``plant(outcomes, rng)``
    (None: identical), the samples stored in another order (pairing must go by id), and the
    symmetric runtime_agreement towards the native runtime."""
    rng, shuffler = np.random.default_rng(seed), np.random.default_rng(seed + 1000)
    out = []
    for r in records:
        if r["framework"] != "pytorch" or r["platform"] != "mobile":
            continue
        twin = copy.deepcopy(r)
        twin["runtime"] = runtime
        outcomes = np.asarray(r["per_sample_success"], dtype=bool)
        if plant is not None:
            outcomes = plant(outcomes.copy(), rng)
        _set_outcomes(twin, outcomes)
        if shuffle:
            order = shuffler.permutation(len(outcomes))
            twin["sample_ids"] = [twin["sample_ids"][i] for i in order]
            twin["per_sample_success"] = [twin["per_sample_success"][i] for i in order]
        if agreement:
            twin["runtime_agreement"] = {"torch_lite": copy.deepcopy(AGREEMENT)}
        out.append(twin)
    return out


def flip_random(share):
    """Flip exactly ``share`` of the outcomes, at random samples (both directions)."""
    def plant(outcomes, rng):
        idx = rng.choice(len(outcomes), size=round(share * len(outcomes)), replace=False)
        outcomes[idx] = ~outcomes[idx]
        return outcomes
    return plant


def lose_successes(share):
    """The runtime resists ``share`` of the attacks that fool the native one (one direction)."""
    def plant(outcomes, rng):
        hits = np.flatnonzero(outcomes)
        outcomes[rng.choice(hits, size=round(share * len(hits)), replace=False)] = False
        return outcomes
    return plant


def _by_id(rec):
    return dict(zip(rec["sample_ids"], rec["per_sample_success"]))


def _independent_mcnemar(first, second):
    """b, c and the exact p straight from SciPy, pairing the two records by id here."""
    a, b = _by_id(first), _by_id(second)
    assert set(a) == set(b)
    n_b = sum(a[i] and not b[i] for i in a)
    n_c = sum(b[i] and not a[i] for i in a)
    p = 1.0 if n_b + n_c == 0 else sp.binomtest(n_b, n_b + n_c, 0.5).pvalue
    return n_b, n_c, p


# ----------------------------------------------------------------------------- the statistics
def test_mcnemar_p_and_bh_q_match_scipy_computed_independently():
    base = make_records()
    extra = twins(base, "executorch", flip_random(0.1)) + twins(base, "litert", lose_successes(0.2), seed=2)
    result = compute_statistics(base + extra)["runtime_comparisons"]
    rows = result["comparisons"]
    assert len(rows) == 9 * 2 * 3  # 9 model x attack, 2 quantizations, 3 runtime pairs
    records = {config_id(r): r for r in base + extra}
    for row in rows:
        b, c, p = _independent_mcnemar(records[row["config_id_a"]], records[row["config_id_b"]])
        assert (row["b"], row["c"]) == (b, c) and row["p_value"] == p
        assert row["n_paired"] == 120 and row["discordant_fraction"] == (b + c) / 120
        assert row["difference"] == pytest.approx((b - c) / 120, abs=1e-12)
    q = sp.false_discovery_control([r["p_value"] for r in rows], method="bh")
    assert [r["p_value_bh"] for r in rows] == pytest.approx(list(q), rel=1e-12)
    # native runtime first, then the others in RUNTIME_FORMATS order
    assert {(r["runtime_a"], r["runtime_b"]) for r in rows} == {
        ("torch_lite", "litert"), ("torch_lite", "executorch"), ("litert", "executorch")}


def test_a_known_discordance_gives_the_textbook_p():
    base = [r for r in make_records() if r["framework"] == "pytorch" and r["platform"] == "mobile"][:1]

    def five_lost(outcomes, rng):
        outcomes[np.flatnonzero(outcomes)[:5]] = False
        return outcomes
    row, = compare_runtimes(base + twins(base, "executorch", five_lost))["comparisons"]
    assert (row["b"], row["c"]) == (5, 0)
    assert row["p_value"] == 2 * 0.5 ** 5 == 0.0625
    assert row["p_value_bh"] == 0.0625  # a family of one


def test_summary_counts_follow_the_rows():
    base = make_records()
    extra = twins(base, "executorch", flip_random(0.1)) + twins(base, "litert", lose_successes(0.2), seed=2)
    result = compare_runtimes(base + extra)
    assert len(result["summary"]) == 3
    for s in result["summary"]:
        pair = (s["runtime_a"], s["runtime_b"])
        rows = [r for r in result["comparisons"] if (r["runtime_a"], r["runtime_b"]) == pair]
        assert s["n_comparisons"] == len(rows) == 18
        assert s["n_significant"] == sum(r["p_value"] < 0.05 for r in rows)
        assert s["n_significant_bh"] == sum(r["p_value_bh"] < 0.05 for r in rows)
        assert s["median_abs_difference"] == pytest.approx(statistics.median(abs(r["difference"]) for r in rows))
        assert s["median_discordant_fraction"] == pytest.approx(
            statistics.median(r["discordant_fraction"] for r in rows))
        assert s["agreement"]["n_with_agreement"] == (18 if "torch_lite" in (s["runtime_a"], s["runtime_b"]) else 0)
    fw = result["framework"]
    pairs = [(r, o) for r in base for o in base if r["platform"] == o["platform"] == "mobile"
             and (r["framework"], o["framework"]) == ("tensorflow", "pytorch")
             and all(r[k] == o[k] for k in ("model", "attack", "quantization"))]
    assert fw["n_comparisons"] == len(pairs) == 18
    assert fw["median_abs_difference"] == pytest.approx(
        statistics.median(abs(r["success_rate"] - o["success_rate"]) for r, o in pairs))
    ps = [_independent_mcnemar(r, o)[2] for r, o in pairs]
    assert fw["n_significant"] == sum(p < 0.05 for p in ps)
    assert fw["n_significant_bh"] == sum(q < 0.05 for q in sp.false_discovery_control(ps, method="bh"))


def test_pairing_goes_by_sample_id_not_by_position():
    base = make_records()
    shuffled = compare_runtimes(base + twins(base, "executorch", flip_random(0.2), shuffle=True))["comparisons"]
    ordered = compare_runtimes(base + twins(base, "executorch", flip_random(0.2), shuffle=False))["comparisons"]
    assert shuffled == ordered


def test_different_sample_ids_are_refused_naming_both_configurations(tmp_path):
    base = make_records()
    extra = twins(base, "executorch")
    extra[0]["sample_ids"][0] = 10_000_001
    with pytest.raises(RecordError) as info:
        compute_statistics(base + extra)
    message = str(info.value)
    assert "field 'sample_ids'" in message and "10000001" in message and "1 ids only in the first" in message
    for cid in ("pytorch-mobilenet_v2-fgsm-float-executorch-mobile", "pytorch-mobilenet_v2-fgsm-float-mobile"):
        assert cid in message
    with pytest.raises(RecordError):
        write_report(base + extra, make_run_info(), tmp_path / "r")
    assert not (tmp_path / "r").exists()


def test_the_same_runtime_twice_is_refused():
    rec = next(r for r in make_records() if r["framework"] == "pytorch" and r["platform"] == "mobile")
    with pytest.raises(RecordError, match="'torch_lite' appears twice"):
        compare_runtimes([rec, dict(rec, runtime="torch_lite")])


def test_a_planted_difference_is_found_and_identical_outcomes_are_not():
    base = make_records()
    planted = compare_runtimes(base + twins(base, "executorch", lose_successes(0.3)))
    s, = planted["summary"]
    # 30% of the native runtime's successes resisted: b = that many, c = 0, p = 2 * 0.5^b < 0.05 everywhere
    assert s["n_comparisons"] == s["n_significant"] == s["n_significant_bh"] == 18
    assert all(r["c"] == 0 and r["b"] > 0 and r["difference"] > 0 for r in planted["comparisons"])
    flipped = compare_runtimes(base + twins(base, "executorch", flip_random(0.3)))
    assert all(r["discordant_fraction"] == pytest.approx(0.3) for r in flipped["comparisons"])
    assert flipped["summary"][0]["median_discordant_fraction"] == pytest.approx(0.3)
    same = compare_runtimes(base + twins(base, "executorch"))
    s, = same["summary"]
    assert s["n_significant"] == s["n_significant_bh"] == 0 and s["median_abs_difference"] == 0
    assert all((r["b"], r["c"], r["p_value"], r["p_value_bh"]) == (0, 0, 1.0, 1.0) for r in same["comparisons"])


def test_the_verdict_follows_the_numbers():
    base = make_records()
    same = compare_runtimes(base + twins(base, "executorch"))
    assert "moved the results less than switching framework" in same["verdict"]
    fw = same["framework"]
    assert f"a median {format_pct(fw['median_discordant_fraction'])} of per-sample outcomes flipped" in same["verdict"]
    # frameworks made identical (TF outcomes := PyTorch outcomes), the runtime planted: now the runtime moves more
    pt = {(r["model"], r["attack"], r["quantization"], r["platform"]): r for r in base if r["framework"] == "pytorch"}
    twin_frameworks = copy.deepcopy(base)
    for r in twin_frameworks:
        if r["framework"] == "tensorflow":
            other = pt[(r["model"], r["attack"], r["quantization"], r["platform"])]
            r["sample_ids"] = list(other["sample_ids"])
            _set_outcomes(r, other["per_sample_success"])
    planted = compare_runtimes(twin_frameworks + twins(twin_frameworks, "executorch", lose_successes(0.3)))
    assert "moved the results as much as switching framework, or more" in planted["verdict"]
    assert planted["framework"]["n_significant"] == 0
    assert "18 of 18 (18 after Benjamini-Hochberg)" in planted["verdict"]
    # only one runtime per model: nothing to compare, and it says so
    assert compare_runtimes(base)["verdict"].startswith("No model was run on more than one runtime")


def test_direct_and_pc_records_take_no_part():
    base = make_records()
    extra = twins(base, "executorch", flip_random(0.1))
    direct = copy.deepcopy(extra[0])
    direct["attack"] = "direct_boundary"
    plain = compare_runtimes(base + extra)
    assert compare_runtimes(base + extra + [direct]) == plain
    assert all(r["platform"] != "pc" for r in plain["comparisons"])


def test_agreement_is_read_from_either_record():
    base = make_records()
    extra = twins(base, "executorch")
    rows = compare_runtimes(base + extra)["comparisons"]
    assert all(r["agreement"] == AGREEMENT for r in rows)
    # carried by the native record instead (the field is symmetric)
    moved = copy.deepcopy(base)
    for r in moved:
        if r["framework"] == "pytorch" and r["platform"] == "mobile":
            r["runtime_agreement"] = {"executorch": copy.deepcopy(AGREEMENT)}
    rows = compare_runtimes(moved + twins(base, "executorch", agreement=False))["comparisons"]
    assert all(r["agreement"] == AGREEMENT for r in rows)
    rows = compare_runtimes(base + twins(base, "executorch", agreement=False))["comparisons"]
    assert all(r["agreement"] is None for r in rows)


# ----------------------------------------------------------------------------- properties
def _pair_records(outcomes_a, outcomes_b, order):
    ids = [1000 + i for i in range(len(outcomes_a))]
    common = {"framework": "pytorch", "model": "resnet50", "attack": "bim", "quantization": "int8",
              "platform": "mobile"}
    a = dict(common, runtime="torch_lite", sample_ids=ids, per_sample_success=list(outcomes_a))
    b = dict(common, runtime="executorch", sample_ids=[ids[i] for i in order],
             per_sample_success=[outcomes_b[i] for i in order])
    return a, b


@FAST
@given(st.integers(1, 60).flatmap(lambda n: st.tuples(st.lists(st.booleans(), min_size=n, max_size=n),
                                                       st.lists(st.booleans(), min_size=n, max_size=n),
                                                       st.permutations(range(n)))))
def test_swapping_the_runtimes_swaps_b_and_c_and_keeps_p(data):
    outcomes_a, outcomes_b, order = data
    a, b = _pair_records(outcomes_a, outcomes_b, order)
    ab, ba = runtime_comparison(a, b), runtime_comparison(b, a)
    assert (ab["b"], ab["c"]) == (ba["c"], ba["b"])
    assert ab["p_value"] == ba["p_value"] and 0.0 <= ab["p_value"] <= 1.0
    assert ab["difference"] == pytest.approx(-ba["difference"], abs=1e-12)
    assert ab["n_paired"] == ba["n_paired"] == len(outcomes_a)
    assert ab["discordant_fraction"] == ba["discordant_fraction"]
    n_b = sum(x and not y for x, y in zip(outcomes_a, outcomes_b))
    n_c = sum(y and not x for x, y in zip(outcomes_a, outcomes_b))
    assert (ab["b"], ab["c"]) == (n_b, n_c)
    assert ab["p_value"] == (1.0 if n_b + n_c == 0 else sp.binomtest(n_b, n_b + n_c, 0.5).pvalue)


# ----------------------------------------------------------------------------- the page
@pytest.fixture(scope="module")
def page(tmp_path_factory):
    base = make_records()
    extra = twins(base, "executorch", lose_successes(0.3))
    for t in extra:
        t["delegation"] = {"backend": "XnnpackBackend", "delegated_ops": {"aten.convolution.default": 52},
                           "non_delegated_ops": {"aten.mean.dim": 1}, "delegated_subgraphs": 3,
                           "delegated_fraction": 0.975 if t["quantization"] == "float" else 0.5}
    errors = [
        {"configuration": "pytorch-inception_v3-fgsm-int8-litert-mobile", "framework": "pytorch",
         "model": "inception_v3", "attack": "fgsm", "quantization": "int8", "platform": "mobile",
         "runtime": "litert", "passed": False,
         "error": "ConversionError: pytorch inception_v3 int8 litert: lower: <unsupported op>",
         "conversion_failed": {"converter": "torch_litert", "format": "tflite", "quantization": "int8",
                               "message": "pytorch inception_v3 int8 litert: lower: <unsupported op> aten::foo"}},
        {"configuration": "tensorflow-resnet50-fgsm-int8-arm64", "error": "RuntimeError: the runner fell over"},
    ]
    paths = write_report(base + extra + errors, make_run_info(), tmp_path_factory.mktemp("rt") / "run")
    return paths.report_html.read_text()


def _section(page, start, end_tag="<h2"):
    i = page.index(f'id="{start}"')
    j = page.find(end_tag, i + 1)
    return page[i:j if j > 0 else None]


def test_the_section_shows_verdict_figure_and_tables(page):
    section = _section(page, "framework-or-runtime")
    assert "Framework or runtime?" in section and 'class="answer"' in section
    assert "moved the results" in section and "18 of 18 (18 after Benjamini-Hochberg)" in section
    assert 'id="fig-runtime-pytorch-mobile"' in section and 'src="data:image/png;base64,' in section
    assert 'id="runtime-mcnemar"' in section and 'id="runtime-agreement"' in section
    assert "pytorch-resnet50-bim-int8-executorch-mobile" in section
    assert "1.23e-04" in section and "5.68e-03" in section and "99.2%" in section and "95.8%" in section
    delegation = _section(page, "delegation", "<h")
    assert "97.5%" in delegation and "50.0%" in delegation and "aten.mean.dim" in delegation
    assert delegation.count("<tr>") == 1 + 6  # header + one row per model and quantization
    assert 'href="#framework-or-runtime"' in page
    anchors = set(re.findall(r'id="([^"]+)"', page))
    assert set(re.findall(r'href="#([^"]+)"', page)) <= anchors


def test_conversion_failures_have_their_own_table_with_the_converters_message(page):
    table = _section(page, "conversion-failures")
    assert "pytorch-inception_v3-fgsm-int8-litert-mobile" in table and "torch_litert" in table
    assert "lower: &lt;unsupported op&gt; aten::foo" in table and "<unsupported" not in table
    errors = _section(page, "errors")
    assert "tensorflow-resnet50-fgsm-int8-arm64" in errors and "1 configurations raised" in errors
    assert page.count("pytorch-inception_v3-fgsm-int8-litert-mobile") == 1  # listed once, not twice


def test_one_runtime_per_model_leaves_the_section_and_figure_out(tmp_path):
    records = make_records()
    assert not [f for f in build_figures(records) if f.key.startswith("fig-runtime-")]
    html = write_report(records, make_run_info(), tmp_path / "r", update_latest_link=False).report_html.read_text()
    assert "framework-or-runtime" not in html and "fig-runtime-" not in html and "conversion-failures" not in html
    figures = build_figures(records + twins(records, "executorch"))
    runtime_figures = [f for f in figures if f.key.startswith("fig-runtime-")]
    assert [f.key for f in runtime_figures] == ["fig-runtime-pytorch-mobile"]
    assert len(runtime_figures[0].config_ids) == 36 and "Wilson" in runtime_figures[0].title
