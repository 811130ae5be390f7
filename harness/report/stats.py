"""Statistics for the report: intervals, paired tests, effect sizes and the RQ1-RQ3 answers.

Everything here works on plain result records (see :mod:`harness.report.records`).

Methods (all from SciPy where SciPy has them):

* **Wilson 95% interval** for every success rate:
  ``scipy.stats.binomtest(k, n).proportion_ci(method="wilson")``.
* **McNemar's exact test** between two configurations evaluated on the same samples
  (paired by sample id): the two-sided exact binomial test of the discordant pairs,
  ``binomtest(b, b + c, 0.5)``; ``b`` = samples the first configuration misclassifies and
  the second does not, ``c`` = the reverse. With no discordant pairs, p = 1.
  Used per configuration for PC vs mobile (mobile float and mobile int8 both against the
  PC float model, the reference every conversion is judged against) and float vs int8
  (same platform). Within each family of per-configuration tests the Benjamini-Hochberg
  adjusted p (``scipy.stats.false_discovery_control``) is reported beside the raw p.
* **Framework or runtime?** (:func:`compare_runtimes`): the same weights on two runtimes of
  one platform, McNemar's exact test paired by sample id (the ids must match), BH over all
  runtime pairs, with the records' numeric agreement; summarised per runtime pair beside the
  same summary for TensorFlow vs PyTorch on their native runtimes.
* **Paired Wilcoxon signed-rank test** across configurations (``scipy.stats.wilcoxon``,
  defaults: ``zero_method="wilcox"``, ``method="auto"``), wrapped so that fewer than two
  pairs or all-zero differences give a clear result instead of an exception or a NaN.
* **Vargha-Delaney A** across configurations. The paper calls its effect size the
  "Paired Vargha and Delaney A" and reports A = 0.608 for int8 vs float while also
  reporting that quantization lowered the success rate in *every* one of the 18 pairs.
  A matched-pair A (share of pairs with x_i > y_i, ties counting half) would then be
  exactly 1 (or 0), so the paper's 0.608 can only be the standard all-pairs estimate
  A = P(X > Y) + 0.5 P(X = Y) over all n x m combinations (the R ``effsize::VD.A``
  definition, which has no paired variant). The headline ``a`` here is therefore that
  all-pairs A, computed as ``mannwhitneyu(x, y).statistic / (n m)``, so it is comparable
  with the paper; the matched-pair share is reported beside it as ``a_matched``.
  Magnitude (Vargha and Delaney 2000), on max(A, 1 - A): < 0.56 negligible, < 0.64 small,
  < 0.71 medium, otherwise large.

Directions: in every comparison x is the "treatment" (TFLite, the mobile runtime, int8)
and y the baseline (PyTorch Mobile, PC, float); differences are x - y in success rate,
and A > 0.5 means x tends to have the higher success rate, i.e. to be *less* robust.
"""

from __future__ import annotations

import math
import statistics as _pystats
import warnings
from dataclasses import asdict, dataclass, field
from typing import Any, Iterable, Mapping, Sequence

import numpy as np
from scipy import stats as _sp

from harness.report.records import (ATTACK_NAMES, MODEL_NAMES, RUNTIME_NAMES, RecordError, axis_values, config_id,
                                    deployed_runtime, framework_name, identity, runtime_axis, runtime_order, sort_key,
                                    success_rate, validate_records)
from harness.stats import (CONFIDENCE, McNemarResult, benjamini_hochberg, mcnemar_exact,  # noqa: F401 (public here)
                           wilson_interval)

ALPHA = 0.05


# ----------------------------------------------------------------------------- formatting
def format_p(p: float | None) -> str:
    """p-values as they appear in the generated answers."""
    if p is None or (isinstance(p, float) and math.isnan(p)):
        return "n/a"
    return f"{p:.1e}" if p < 0.001 else f"{p:.3f}"


def format_pct(rate: float | None) -> str:
    return "n/a" if rate is None else f"{100 * rate:.1f}%"


def format_pp(diff: float | None) -> str:
    """A difference of rates in percentage points, signed."""
    if diff is None:
        return "n/a"
    value = 100 * diff
    return f"{value:+.1f} pp" if round(value, 1) != 0 else "0.0 pp"


def format_a(a: float | None) -> str:
    return "n/a" if a is None else f"{a:.3f}"


def paired_outcomes(first: Mapping[str, Any], second: Mapping[str, Any]) -> tuple[list[bool], list[bool]]:
    """The two records' per-sample outcomes on the sample ids they share, in ``first``'s order."""
    lookup = dict(zip(second["sample_ids"], second["per_sample_success"]))
    a, b = [], []
    for sid, outcome in zip(first["sample_ids"], first["per_sample_success"]):
        if sid in lookup:
            a.append(bool(outcome))
            b.append(bool(lookup[sid]))
    return a, b


def paired_rates(first: Mapping[str, Any], second: Mapping[str, Any]) -> tuple[float, float]:
    """Both success rates on the samples the two records share (an emulated platform
    evaluates a subset of the samples; its comparison with the PC uses that subset)."""
    if list(first["sample_ids"]) == list(second["sample_ids"]):
        return success_rate(first), success_rate(second)
    a, b = paired_outcomes(first, second)
    if not a:
        return success_rate(first), success_rate(second)
    return sum(a) / len(a), sum(b) / len(b)


def mcnemar_records(first: Mapping[str, Any], second: Mapping[str, Any]) -> McNemarResult | None:
    """McNemar between two records paired by sample id; None when they share no sample."""
    a, b = paired_outcomes(first, second)
    return mcnemar_exact(a, b) if a else None


# ----------------------------------------------------------------------------- Wilcoxon
@dataclass(frozen=True)
class WilcoxonResult:
    n: int  # pairs
    n_nonzero: int  # pairs with a non-zero difference (the ones the test ranks)
    statistic: float | None
    p_value: float | None
    status: str  # "ok" | "all_zero" | "too_few"
    note: str
    warnings: tuple[str, ...] = field(default=())

    def to_dict(self) -> dict:
        d = asdict(self)
        d["warnings"] = list(self.warnings)
        return d


def _finite_pair(x: Sequence[float], y: Sequence[float], name: str) -> tuple[np.ndarray, np.ndarray]:
    xa, ya = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if xa.ndim != 1 or xa.shape != ya.shape:
        raise ValueError(f"{name} needs two 1-d sequences of equal length, got {xa.shape} and {ya.shape}")
    if not (np.all(np.isfinite(xa)) and np.all(np.isfinite(ya))):
        raise ValueError(f"{name} needs finite values")
    return xa, ya


def paired_wilcoxon(x: Sequence[float], y: Sequence[float]) -> WilcoxonResult:
    """Two-sided paired Wilcoxon signed-rank test of x - y, never raising on degenerate input.

    * fewer than 2 pairs: status "too_few", p None (nothing to test);
    * every difference zero: status "all_zero", statistic 0, p 1 (no evidence of a difference);
    * otherwise SciPy's result; any warning SciPy raises is kept in ``warnings``.
    """
    xa, ya = _finite_pair(x, y, "paired_wilcoxon")
    n = int(xa.size)
    d = xa - ya
    nonzero = int(np.count_nonzero(d))
    if n < 2:
        return WilcoxonResult(n, nonzero, None, None, "too_few",
                              f"Wilcoxon signed-rank test not computed: {n} pair(s), at least 2 needed")
    if nonzero == 0:
        return WilcoxonResult(n, 0, 0.0, 1.0, "all_zero",
                              f"all {n} paired differences are zero: no evidence of a difference (p = 1)")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        res = _sp.wilcoxon(xa, ya, zero_method="wilcox", alternative="two-sided")
    stat, p = float(res.statistic), float(res.pvalue)
    messages = tuple(dict.fromkeys(str(w.message) for w in caught))
    if math.isnan(p):  # defensive: SciPy versions differ on degenerate inputs
        return WilcoxonResult(n, nonzero, None, None, "too_few",
                              "Wilcoxon signed-rank test undefined for these differences", messages)
    note = f"{nonzero} of {n} differences non-zero (zeros dropped, zero_method='wilcox')"
    return WilcoxonResult(n, nonzero, stat, min(1.0, p), "ok", note, messages)


# ----------------------------------------------------------------------------- Vargha-Delaney
def vargha_delaney_a(x: Sequence[float], y: Sequence[float]) -> float:
    """A = P(X > Y) + 0.5 P(X = Y) over all pairs (x_i, y_j): Mann-Whitney U1 / (n m)."""
    xa, ya = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if xa.ndim != 1 or ya.ndim != 1 or xa.size == 0 or ya.size == 0:
        raise ValueError("vargha_delaney_a needs two non-empty 1-d samples")
    if not (np.all(np.isfinite(xa)) and np.all(np.isfinite(ya))):
        raise ValueError("vargha_delaney_a needs finite values")
    u1 = _sp.mannwhitneyu(xa, ya, alternative="two-sided", method="asymptotic").statistic
    return float(min(1.0, max(0.0, u1 / (xa.size * ya.size))))


def paired_vargha_delaney_a(x: Sequence[float], y: Sequence[float]) -> float:
    """Matched-pair share: mean over i of [x_i > y_i] + 0.5 [x_i = y_i]."""
    xa, ya = _finite_pair(x, y, "paired_vargha_delaney_a")
    if xa.size == 0:
        raise ValueError("paired_vargha_delaney_a needs at least one pair")
    return float(np.mean((xa > ya) + 0.5 * (xa == ya)))


def a_magnitude(a: float) -> str:
    """Vargha and Delaney's labels on max(A, 1 - A): 0.56 small, 0.64 medium, 0.71 large."""
    if not 0.0 <= a <= 1.0:
        raise ValueError(f"A must be in [0, 1], got {a}")
    s = max(a, 1.0 - a)
    if s < 0.56:
        return "negligible"
    if s < 0.64:
        return "small"
    if s < 0.71:
        return "medium"
    return "large"


# ----------------------------------------------------------------------------- per configuration
def _index(records: Iterable[Mapping[str, Any]]) -> dict[tuple, Mapping[str, Any]]:
    """Records by identity: (framework, model, attack, quantization, platform, non-native runtime or None)."""
    return {identity(r): r for r in records}


def _comparison(kind: str, subject: Mapping[str, Any], reference: Mapping[str, Any]) -> dict:
    res = mcnemar_records(subject, reference)
    rate, ref_rate = paired_rates(subject, reference)
    return {
        "kind": kind,
        "config_id": config_id(subject),
        "reference_id": config_id(reference),
        "framework": subject["framework"], "model": subject["model"], "attack": subject["attack"],
        "quantization": subject["quantization"], "platform": subject["platform"],
        "reference_quantization": reference["quantization"], "reference_platform": reference["platform"],
        "success_rate": rate,
        "reference_success_rate": ref_rate,
        "difference": rate - ref_rate,
        "n_paired": res.n if res else 0,
        "b": res.b if res else None,
        "c": res.c if res else None,
        "p_value": res.p_value if res else None,
    }


def compare_platforms(records: Iterable[Mapping[str, Any]], reference_platform: str = "pc") -> list[dict]:
    """Every non-PC configuration against the PC float model of its framework/model/attack.

    A quantized configuration is also compared with a PC model of the same quantization
    when the run has one (PyTorch can run int8 on the PC; not a paper configuration).
    ``b`` counts samples the subject misclassifies and the PC model does not.
    """
    records = list(records)
    idx = _index(records)
    out = []
    for rec in records:
        if rec["platform"] == reference_platform:
            continue
        key = (rec["framework"], rec["model"], rec["attack"])
        for ref_q in dict.fromkeys(("float", rec["quantization"])):
            ref = idx.get(key + (ref_q, reference_platform, None))
            if ref is not None:
                out.append(_comparison("platform", rec, ref))
    for c, p in zip(out, benjamini_hochberg([c["p_value"] for c in out])):
        c["p_value_bh"] = p
    return out


def compare_quantization(records: Iterable[Mapping[str, Any]], baseline: str = "float") -> list[dict]:
    """Every quantized configuration against the float model on the same platform.

    ``b`` counts samples the quantized model misclassifies and the float model does not.
    """
    records = list(records)
    idx = _index(records)
    out = []
    for rec in records:
        if rec["quantization"] == baseline:
            continue
        ref = idx.get((rec["framework"], rec["model"], rec["attack"], baseline, rec["platform"], runtime_axis(rec)))
        if ref is not None:
            out.append(_comparison("quantization", rec, ref))
    for c, p in zip(out, benjamini_hochberg([c["p_value"] for c in out])):
        c["p_value_bh"] = p
    return out


DIRECT_PREFIX = "direct_"


def is_direct(record: Mapping[str, Any]) -> bool:
    """A record of an attack run against the deployed model itself (queries to its runtime),
    not of PNGs generated on the PC model and transferred."""
    return str(record.get("attack", "")).startswith(DIRECT_PREFIX)


def _deployment(record: Mapping[str, Any]) -> tuple:
    return (record["framework"], record["model"], record["quantization"], record["platform"], record.get("runtime"))


def compare_direct(records: Iterable[Mapping[str, Any]]) -> list[dict]:
    """Each direct-attack configuration against transfer on the same deployment and samples.

    The reference is the transfer attack of the same name when the run has it (direct
    Boundary against transferred Boundary), else the transfer attack that fooled this
    deployment most often. ``b`` counts samples only the direct attack fooled, ``c``
    samples only the transferred images fooled; McNemar's exact test, BH within the family.
    """
    records = list(records)
    transfer: dict[tuple, list] = {}
    for rec in records:
        if not is_direct(rec):
            transfer.setdefault(_deployment(rec), []).append(rec)
    out = []
    for rec in records:
        if not is_direct(rec):
            continue
        base = str(rec["attack"])[len(DIRECT_PREFIX):]
        candidates = transfer.get(_deployment(rec), [])
        same = [r for r in candidates if r["attack"] == base]
        reference = same[0] if same else max(candidates, key=lambda r: paired_rates(rec, r)[1], default=None)
        facts = rec.get("direct") or {}
        row = {"config_id": rec.get("config_id") or config_id(rec), "attack": base,
               "success_rate": success_rate(rec),
               "queries_median": facts.get("queries_median"), "seconds_per_sample": facts.get("seconds_per_sample"),
               "l2_median": facts.get("l2_median"), "linf_median": facts.get("linf_median"),
               "reference_id": None, "reference_attack": None, "reference_success_rate": None,
               "difference": None, "n_paired": 0, "b": None, "c": None, "p_value": None}
        if reference is not None:
            res = mcnemar_records(rec, reference)
            rate, ref_rate = paired_rates(rec, reference)
            row.update(reference_id=reference.get("config_id") or config_id(reference),
                       reference_attack=reference["attack"], success_rate=rate, reference_success_rate=ref_rate,
                       difference=rate - ref_rate, n_paired=res.n if res else 0,
                       b=res.b if res else None, c=res.c if res else None, p_value=res.p_value if res else None)
        out.append(row)
    for c, p in zip(out, benjamini_hochberg([c["p_value"] for c in out])):
        c["p_value_bh"] = p
    return out


# ----------------------------------------------------------------------------- framework or runtime?
AGREEMENT_KINDS = ("clean", "adversarial")


def _runtime_pair(first: Mapping[str, Any], second: Mapping[str, Any]) -> tuple[list[bool], list[bool]]:
    """Both records' outcomes paired by sample id; the same weights on two runtimes of one platform
    must have been run on the same samples, so differing ids are refused, naming both."""
    ids_a, ids_b = set(first["sample_ids"]), set(second["sample_ids"])
    if ids_a != ids_b:
        only_a, only_b = sorted(ids_a - ids_b, key=str), sorted(ids_b - ids_a, key=str)
        raise RecordError(
            f"configuration {config_id(first)}: field 'sample_ids': cannot pair it with {config_id(second)} "
            f"(same weights, another runtime): {len(only_a)} ids only in the first (e.g. {only_a[:3]}), "
            f"{len(only_b)} only in the second (e.g. {only_b[:3]}); both runtimes must run the same samples")
    return paired_outcomes(first, second)


def _agreement_between(first: Mapping[str, Any], second: Mapping[str, Any]) -> dict | None:
    """``runtime_agreement`` of one record towards the other's runtime (the field is symmetric, so
    either record may carry it); None when neither does."""
    for rec, other in ((first, second), (second, first)):
        field = rec.get("runtime_agreement")
        if isinstance(field, Mapping) and isinstance(field.get(deployed_runtime(other)), Mapping):
            entry = field[deployed_runtime(other)]
            return {kind: dict(entry[kind]) for kind in AGREEMENT_KINDS if isinstance(entry.get(kind), Mapping)}
    return None


def runtime_comparison(first: Mapping[str, Any], second: Mapping[str, Any]) -> dict:
    """One pair of runtimes running the same weights: paired McNemar on the sample ids (``b``:
    samples only ``first``'s runtime was fooled by, ``c`` the reverse), rates, and the numeric
    agreement the records carry. Swapping the records swaps b and c and negates the difference."""
    a, b = _runtime_pair(first, second)
    res = mcnemar_exact(a, b)
    rate_a, rate_b = sum(a) / len(a), sum(b) / len(b)
    return {
        "framework": first["framework"], "model": first["model"], "attack": first["attack"],
        "quantization": first["quantization"], "platform": first["platform"],
        "runtime_a": deployed_runtime(first), "runtime_b": deployed_runtime(second),
        "config_id_a": config_id(first), "config_id_b": config_id(second),
        "n_paired": res.n, "success_rate_a": rate_a, "success_rate_b": rate_b, "difference": rate_a - rate_b,
        "b": res.b, "c": res.c, "discordant_fraction": (res.b + res.c) / res.n, "p_value": res.p_value,
        "agreement": _agreement_between(first, second),
    }


def _change_summary(rows: Sequence[Mapping[str, Any]], alpha: float) -> dict:
    """How much a switch moved the outcomes, over per-configuration comparison rows."""
    diffs = [abs(r["difference"]) for r in rows]
    flips = [r["discordant_fraction"] for r in rows]
    largest = max(rows, key=lambda r: (abs(r["difference"]), r["config_id_a"])) if rows else None
    return {
        "n_comparisons": len(rows),
        "n_significant": sum(r["p_value"] < alpha for r in rows),
        "n_significant_bh": sum(r["p_value_bh"] < alpha for r in rows),
        "median_abs_difference": float(_pystats.median(diffs)) if diffs else None,
        "max_abs_difference": max(diffs) if diffs else None,
        "median_discordant_fraction": float(_pystats.median(flips)) if flips else None,
        "max_discordant_fraction": max(flips) if flips else None,
        "largest": None if largest is None else {k: largest[k] for k in (
            "config_id_a", "config_id_b", "success_rate_a", "success_rate_b", "difference", "p_value", "p_value_bh")},
    }


def _agreement_summary(rows: Sequence[Mapping[str, Any]]) -> dict:
    out: dict[str, Any] = {"n_with_agreement": sum(bool(r["agreement"]) for r in rows)}
    for kind in AGREEMENT_KINDS:
        entries = [r["agreement"][kind] for r in rows if r["agreement"] and kind in r["agreement"]]
        agree = [e["prediction_agreement"] for e in entries if e.get("prediction_agreement") is not None]
        diff = [e["max_abs_logit_diff"] for e in entries if e.get("max_abs_logit_diff") is not None]
        out[kind] = {"n": len(entries),
                     "min_prediction_agreement": min(agree) if agree else None,
                     "max_abs_logit_diff": max(diff) if diff else None,
                     "n_bit_exact": sum(bool(e.get("bit_exact")) for e in entries)}
    return out


def _framework_rows(records: Sequence[Mapping[str, Any]], platforms: Iterable[str]) -> list[dict]:
    """TensorFlow vs PyTorch on their native runtimes (the paper's RQ1 pairing) on ``platforms``,
    in the same row shape as the runtime comparison, BH over this family."""
    keys = ("model", "attack", "quantization", "platform")
    platforms = set(platforms)
    recs = [r for r in records if r["platform"] in platforms]
    rows = []
    for x, y in _pairs(recs, {"framework": "tensorflow"}, {"framework": "pytorch"}, keys):
        res = mcnemar_records(x, y)
        if res is None:
            continue
        rate_x, rate_y = paired_rates(x, y)
        rows.append({"model": x["model"], "attack": x["attack"], "quantization": x["quantization"],
                     "platform": x["platform"], "config_id_a": config_id(x), "config_id_b": config_id(y),
                     "n_paired": res.n, "success_rate_a": rate_x, "success_rate_b": rate_y,
                     "difference": rate_x - rate_y, "b": res.b, "c": res.c,
                     "discordant_fraction": (res.b + res.c) / res.n, "p_value": res.p_value})
    for row, q in zip(rows, benjamini_hochberg([r["p_value"] for r in rows])):
        row["p_value_bh"] = q
    return rows


def compare_runtimes(records: Iterable[Mapping[str, Any]], alpha: float = ALPHA) -> dict:
    """Framework or runtime? The same weights on two or more runtimes, against switching framework.

    For every (framework, model, attack, quantization, platform) with transfer-attack records on
    two or more runtimes (direct attacks craft other images per runtime and are left out), each
    pair of runtimes (native first): McNemar's exact test paired by sample id (ids must match:
    :class:`RecordError` otherwise), BH-adjusted q over all runtime pairs, and the records'
    ``runtime_agreement`` (prediction agreement and max |logit difference|, clean and
    adversarial). ``summary`` sums it up per framework and runtime pair; ``framework`` is the same
    summary for TensorFlow vs PyTorch on their native runtimes on the same platforms, for context.
    """
    records = [r for r in records if not is_direct(r) and r["platform"] != "pc"]
    groups: dict[tuple, dict[str, Mapping[str, Any]]] = {}
    for rec in records:
        key = tuple(rec[k] for k in ("framework", "model", "attack", "quantization", "platform"))
        runtime = deployed_runtime(rec)
        if runtime in groups.setdefault(key, {}):
            raise RecordError(f"configuration {config_id(rec)}: field 'runtime': {runtime!r} appears twice for "
                              f"{'-'.join(key)} ({config_id(groups[key][runtime])})")
        groups[key][runtime] = rec
    rows = []
    for key, by_runtime in groups.items():
        order = runtime_order(key[0], by_runtime)
        for i, ra in enumerate(order):
            for rb in order[i + 1:]:
                rows.append(runtime_comparison(by_runtime[ra], by_runtime[rb]))
    rows.sort(key=lambda r: (sort_key({**{k: r[k] for k in ("framework", "model", "attack", "quantization",
                                                             "platform")}, "runtime": None}),
                             runtime_order(r["framework"], [r["runtime_a"], r["runtime_b"]]).index(r["runtime_a"]),
                             r["runtime_a"], r["runtime_b"]))
    for row, q in zip(rows, benjamini_hochberg([r["p_value"] for r in rows])):
        row["p_value_bh"] = q
    summary = []
    for pair in dict.fromkeys((r["framework"], r["runtime_a"], r["runtime_b"]) for r in rows):
        sel = [r for r in rows if (r["framework"], r["runtime_a"], r["runtime_b"]) == pair]
        summary.append({"framework": pair[0], "runtime_a": pair[1], "runtime_b": pair[2],
                        "platforms": axis_values(sel, "platform"),
                        **_change_summary(sel, alpha), "agreement": _agreement_summary(sel)})
    platforms = axis_values(rows, "platform") if rows else []
    framework_rows = _framework_rows(records, platforms) if rows else []
    framework = {"x_label": "tensorflow", "y_label": "pytorch", "platforms": platforms,
                 **_change_summary(framework_rows, alpha), "comparisons": framework_rows}
    out = {"alpha": alpha, "comparisons": rows, "summary": summary, "framework": framework}
    out["verdict"] = runtime_verdict(out)
    return out


def _share(s: Mapping[str, Any]) -> float:
    return s["n_significant_bh"] / s["n_comparisons"] if s["n_comparisons"] else 0.0


def runtime_verdict(result: Mapping[str, Any]) -> str:
    """The "framework or runtime?" answer, worded from the numbers of :func:`compare_runtimes`."""
    alpha = result["alpha"]
    if not result["comparisons"]:
        return "No model was run on more than one runtime in this run: nothing to compare between runtimes."
    fw = result["framework"]
    parts = []
    for s in result["summary"]:
        a, b = RUNTIME_NAMES.get(s["runtime_a"], s["runtime_a"]), RUNTIME_NAMES.get(s["runtime_b"], s["runtime_b"])
        who = framework_name(s["framework"], "pc")
        text = (f"The same {who} weights on {a} and on {b} ({s['n_comparisons']} configurations paired by sample "
                f"id): median |\u0394 success| {format_pp(s['median_abs_difference']).lstrip('+')} (largest "
                f"{format_pp(s['max_abs_difference']).lstrip('+')}), a median "
                f"{format_pct(s['median_discordant_fraction'])} of per-sample outcomes flipped (at most "
                f"{format_pct(s['max_discordant_fraction'])}); McNemar's exact "
                f"test p<{alpha:g} in {s['n_significant']} of {s['n_comparisons']} ({s['n_significant_bh']} after "
                f"Benjamini-Hochberg).")
        ag = s["agreement"]
        if ag["n_with_agreement"]:
            text += (f" Top-1 predictions agreed on at least {format_pct(ag['clean']['min_prediction_agreement'])} "
                     f"of clean and {format_pct(ag['adversarial']['min_prediction_agreement'])} of adversarial "
                     f"images; the largest |logit difference| was "
                     f"{_sci(ag['clean']['max_abs_logit_diff'])} (clean) and "
                     f"{_sci(ag['adversarial']['max_abs_logit_diff'])} (adversarial).")
        if not fw["n_comparisons"]:
            text += " This run has no TensorFlow/PyTorch pairs on the same platforms to set it against."
        else:
            # "as much" within a rounding error: rates are k/n, so equal fractions may differ in the last ulp
            more_sig = _share(s) >= _share(fw) - 1e-12
            more_diff = s["median_abs_difference"] >= fw["median_abs_difference"] - 1e-12
            flips_more = s["median_discordant_fraction"] >= fw["median_discordant_fraction"] - 1e-12
            if more_sig and more_diff and flips_more:
                verdict = "switching runtime moved the results as much as switching framework, or more"
            elif not (more_sig or more_diff or flips_more):
                verdict = "switching runtime moved the results less than switching framework"
            else:
                verdict = ("mixed: switching runtime moved the results "
                           + ", ".join(f"{'as much or more' if m else 'less'} by {what}" for m, what in (
                               (more_sig, "share of significant configurations"),
                               (more_diff, "median |\u0394 success|"),
                               (flips_more, "per-sample flips"))))
            text += f" Against switching framework: {verdict}."
        parts.append(text)
    if fw["n_comparisons"]:
        parts.append(f"For comparison, TensorFlow vs PyTorch on their native runtimes ({fw['n_comparisons']} "
                     f"configurations on {', '.join(fw['platforms'])}): median |\u0394 success| "
                     f"{format_pp(fw['median_abs_difference']).lstrip('+')}, a median "
                     f"{format_pct(fw['median_discordant_fraction'])} of per-sample outcomes flipped, McNemar "
                     f"p<{alpha:g} in {fw['n_significant']} of {fw['n_comparisons']} ({fw['n_significant_bh']} after "
                     f"Benjamini-Hochberg).")
    return " ".join(parts)


def _sci(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2e}"


# ----------------------------------------------------------------------------- across configurations
def paired_summary(pairs: Sequence[tuple[Mapping[str, Any], Mapping[str, Any]]],
                   x_label: str, y_label: str, alpha: float = ALPHA) -> dict:
    """Wilcoxon, A and counts over configuration pairs (x record, y record)."""
    rates = [paired_rates(a, b) for a, b in pairs]
    x = [r[0] for r in rates]
    y = [r[1] for r in rates]
    diffs = [a - b for a, b in zip(x, y)]
    rows = []
    for (a, b), xr, yr, d in zip(pairs, x, y, diffs):
        res = mcnemar_records(a, b)
        rows.append({
            "x_id": config_id(a), "y_id": config_id(b),
            "framework": a["framework"], "model": a["model"], "attack": a["attack"],
            "quantization": a["quantization"], "platform": a["platform"],
            "x_success_rate": xr, "y_success_rate": yr, "difference": d,
            "n_paired": res.n if res else 0,
            "mcnemar_b": res.b if res else None, "mcnemar_c": res.c if res else None,
            "mcnemar_p": res.p_value if res else None,
        })
    for row, p in zip(rows, benjamini_hochberg([r["mcnemar_p"] for r in rows])):
        row["mcnemar_p_bh"] = p
    n = len(pairs)
    wil = paired_wilcoxon(x, y) if n else WilcoxonResult(0, 0, None, None, "too_few",
                                                          "no paired configurations")
    a = vargha_delaney_a(x, y) if n else None
    by_attack = {}
    for attack in axis_values(rows, "attack") if rows else []:
        ds = [r["difference"] for r in rows if r["attack"] == attack]
        by_attack[attack] = {"n": len(ds), "median_difference": float(_pystats.median(ds)),
                             "min_difference": min(ds), "max_difference": max(ds)}
    largest = max(rows, key=lambda r: (abs(r["difference"]), r["x_id"])) if rows else None
    return {
        "x_label": x_label, "y_label": y_label, "n_pairs": n,
        "n_x_higher": sum(d > 0 for d in diffs),
        "n_x_lower": sum(d < 0 for d in diffs),
        "n_equal": sum(d == 0 for d in diffs),
        "median_difference": float(_pystats.median(diffs)) if diffs else None,
        "mean_difference": float(np.mean(diffs)) if diffs else None,
        "wilcoxon": wil.to_dict(),
        "a": a,
        "a_magnitude": a_magnitude(a) if a is not None else None,
        "a_matched": paired_vargha_delaney_a(x, y) if n else None,
        "mcnemar_significant": sum(r["mcnemar_p"] is not None and r["mcnemar_p"] < alpha for r in rows),
        "mcnemar_significant_bh": sum(r["mcnemar_p_bh"] is not None and r["mcnemar_p_bh"] < alpha
                                      for r in rows),
        "mcnemar_tested": sum(r["mcnemar_p"] is not None for r in rows),
        "by_attack": by_attack,
        "largest": largest,
        "pairs": rows,
        "alpha": alpha,
    }


def _pairs(records, x_sel: Mapping[str, str], y_sel: Mapping[str, str], keys: Sequence[str]):
    """Pair records matching x_sel with those matching y_sel on equal ``keys``.

    The paper's questions compare frameworks on their native runtimes: records of a
    framework's weights on another runtime take no part."""
    records = [r for r in records if runtime_axis(r) is None]
    ys = {tuple(r[k] for k in keys): r for r in records if all(r[f] == v for f, v in y_sel.items())}
    pairs = []
    for r in records:
        if all(r[f] == v for f, v in x_sel.items()):
            other = ys.get(tuple(r[k] for k in keys))
            if other is not None and other is not r:
                pairs.append((r, other))
    return pairs


def rq1_summary(records: Sequence[Mapping[str, Any]], platform: str = "mobile", alpha: float = ALPHA) -> dict:
    """RQ1: TFLite (x) vs PyTorch Mobile (y) on ``platform``, paired by model/attack/quantization.

    The two frameworks' adversarial images are generated on their own PC models from the
    same source samples, so the per-pair McNemar pairs outcomes by source sample id.
    """
    keys = ("model", "attack", "quantization")
    pairs = _pairs(records, {"framework": "tensorflow", "platform": platform},
                   {"framework": "pytorch", "platform": platform}, keys)
    out = paired_summary(pairs, framework_name("tensorflow", platform), framework_name("pytorch", platform), alpha)
    out["platform"] = platform
    out["by_quantization"] = {
        q: _brief(paired_summary([p for p in pairs if p[0]["quantization"] == q], out["x_label"],
                                 out["y_label"], alpha))
        for q in axis_values([p[0] for p in pairs], "quantization")} if pairs else {}
    return out


def rq2_summary(records: Sequence[Mapping[str, Any]], platform: str = "mobile", alpha: float = ALPHA) -> dict:
    """RQ2: ``platform`` float (x) vs PC float (y), paired by framework/model/attack.

    ``int8_vs_pc_float`` repeats it for the quantized mobile model against the PC float one.
    """
    keys = ("framework", "model", "attack")
    pairs = _pairs(records, {"platform": platform, "quantization": "float"},
                   {"platform": "pc", "quantization": "float"}, keys)
    out = paired_summary(pairs, platform, "pc", alpha)
    out["platform"] = platform
    out["by_framework"] = {
        f: _brief(paired_summary([p for p in pairs if p[0]["framework"] == f], platform, "pc", alpha))
        for f in axis_values([p[0] for p in pairs], "framework")} if pairs else {}
    q_pairs = _pairs(records, {"platform": platform, "quantization": "int8"},
                     {"platform": "pc", "quantization": "float"}, keys)
    out["int8_vs_pc_float"] = _brief(paired_summary(q_pairs, f"{platform} int8", "pc float", alpha))
    return out


def rq3_summary(records: Sequence[Mapping[str, Any]], platform: str = "mobile", alpha: float = ALPHA) -> dict:
    """RQ3: int8 (x) vs float (y) on ``platform``, paired by framework/model/attack."""
    keys = ("framework", "model", "attack")
    pairs = _pairs(records, {"platform": platform, "quantization": "int8"},
                   {"platform": platform, "quantization": "float"}, keys)
    out = paired_summary(pairs, "int8", "float", alpha)
    out["platform"] = platform
    out["by_framework"] = {
        f: _brief(paired_summary([p for p in pairs if p[0]["framework"] == f], "int8", "float", alpha))
        for f in axis_values([p[0] for p in pairs], "framework")} if pairs else {}
    return out


def _brief(summary: dict) -> dict:
    """A summary without its per-pair rows (for nested breakdowns)."""
    return {k: v for k, v in summary.items() if k not in ("pairs",)}


def compute_statistics(records: Iterable[Mapping[str, Any]], alpha: float = ALPHA) -> dict:
    """Everything statistics.json holds: intervals, per-configuration tests, RQ1-RQ3 and answers."""
    recs = validate_records(records)
    platforms = [p for p in axis_values(recs, "platform") if p != "pc"]
    transferred = [r for r in recs if not is_direct(r)]
    result = {
        "alpha": alpha,
        "confidence": CONFIDENCE,
        "methods": {
            "interval": "Wilson score interval, scipy.stats.binomtest(k, n).proportion_ci(method='wilson')",
            "mcnemar": "McNemar exact: two-sided binomtest(b, b + c, 0.5) on discordant pairs matched by "
                       "sample id; p = 1 without discordant pairs; BH-adjusted p within each family",
            "wilcoxon": "scipy.stats.wilcoxon(x, y), two-sided, zero_method='wilcox'; <2 pairs: not computed; "
                        "all differences zero: p = 1",
            "vargha_delaney_a": "A(x, y) = P(X > Y) + 0.5 P(X = Y) over all pairs = Mann-Whitney U1 / (n m) "
                                "(comparable with the paper's 0.608); a_matched = share of matched pairs "
                                "with x > y (ties half); magnitude on max(A, 1 - A): 0.56 / 0.64 / 0.71",
            "direct": "direct attack (queries to the deployed runtime, each query rounded to uint8) against "
                      "transferred PNGs on the same deployment and sample ids: McNemar exact, BH within the family",
            "runtime": "same weights on two runtimes of one platform (transferred PNGs): McNemar exact on "
                       "outcomes paired by sample id (ids must match), BH over all runtime pairs; numeric agreement "
                       "from the records' runtime_agreement; summarised per runtime pair against TensorFlow vs "
                       "PyTorch on their native runtimes on the same platforms (BH within that family)",
            "direction": "x - y in success rate; A > 0.5: x tends to the higher success rate (less robust)",
        },
        "intervals": {
            r["config_id"]: {"k": r["n_success"], "n": r["n_samples"], "success_rate": r["n_success"] / r["n_samples"],
                             "low": r["success_rate_ci"][0], "high": r["success_rate_ci"][1]}
            for r in recs
        },
        # Transferred PNGs only: a direct attack crafts different images for every deployment.
        "platform_comparisons": compare_platforms([r for r in recs if not is_direct(r)]),
        "quantization_comparisons": compare_quantization([r for r in recs if not is_direct(r)]),
        "direct_comparisons": compare_direct(recs),
        # Framework or runtime? The same weights on several runtimes (transferred PNGs only).
        "runtime_comparisons": compare_runtimes(recs, alpha),
        # The paper's questions are about transferred PNGs; direct attacks have their own table.
        "rq1": {p: rq1_summary(transferred, p, alpha) for p in platforms},
        "rq2": {p: rq2_summary(transferred, p, alpha) for p in platforms},
        "rq3": {p: rq3_summary(transferred, p, alpha) for p in platforms},
    }
    result["answers"] = answer_questions(result)
    return result


# ----------------------------------------------------------------------------- generated answers
def _where(platform: str) -> str:
    return {"mobile": "On the mobile runtimes", "arm64": "On the runtimes' ARM builds (emulated)",
            "device": "On the attached device"}.get(
        platform, f"On platform {platform}")


def _test_sentence(s: dict, x_name: str, y_name: str) -> str:
    w = s["wilcoxon"]
    if w["status"] == "too_few":
        wil = f"Wilcoxon signed-rank test not computed ({s['n_pairs']} pair(s))"
    elif w["status"] == "all_zero":
        wil = f"all {w['n']} paired differences are zero (Wilcoxon p={format_p(w['p_value'])})"
    else:
        wil = (f"paired Wilcoxon signed-rank p={format_p(w['p_value'])} "
               f"(n={w['n']}, {w['n_nonzero']} non-zero differences)")
    a = (f"Vargha-Delaney A({x_name}, {y_name})={format_a(s['a'])} ({s['a_magnitude']}), "
         f"matched-pair A={format_a(s['a_matched'])}") if s["a"] is not None else "A not computed"
    return f"{wil}; {a}."


def _verdict(s: dict, higher_means: str, lower_means: str) -> str:
    """The concluding sentence, chosen by the numbers: significance first, then direction."""
    w = s["wilcoxon"]
    alpha = s["alpha"]
    if w["p_value"] is None:
        return "Too few paired configurations to test across configurations."
    if w["p_value"] >= alpha:
        return (f"Across configurations the difference is not statistically significant at "
                f"\u03b1={alpha:g}.")
    direction = s["median_difference"] if s["median_difference"] else s["mean_difference"]
    if not direction:
        return (f"Across configurations the Wilcoxon test gives p<\u03b1={alpha:g}, but the median and "
                f"mean differences are zero, so there is no consistent direction.")
    meaning = higher_means if direction > 0 else lower_means
    return (f"Across configurations the difference is statistically significant at \u03b1={alpha:g}: "
            f"{meaning} (effect size {s['a_magnitude']}).")


def _mcnemar_sentence(s: dict, what: str) -> str:
    if not s["mcnemar_tested"]:
        return ""
    return (f" Per configuration, McNemar's exact test on {what} gave p<{s['alpha']:g} in "
            f"{s['mcnemar_significant']} of {s['mcnemar_tested']} "
            f"({s['mcnemar_significant_bh']} after Benjamini-Hochberg).")


def _largest_sentence(s: dict, x_name: str, y_name: str) -> str:
    r = s["largest"]
    if not r or r["difference"] == 0:
        return ""
    where = f"{MODEL_NAMES.get(r['model'], r['model'])} {ATTACK_NAMES.get(r['attack'], r['attack'])}"
    return (f" Largest gap: {where} ({r['x_id']} vs {r['y_id']}): {x_name} {format_pct(r['x_success_rate'])} vs "
            f"{y_name} {format_pct(r['y_success_rate'])} ({format_pp(r['difference'])}, "
            f"McNemar p={format_p(r['mcnemar_p'])}).")


def _counts(s: dict, lower_name: str, higher_name: str) -> str:
    return (f"{s['n_x_lower']} of {s['n_pairs']} {lower_name}, {s['n_x_higher']} {higher_name}, "
            f"{s['n_equal']} unchanged")


def answer_rq1(s: dict) -> str:
    x, y = s["x_label"], s["y_label"]
    head = f"RQ1 ({s['platform']}): "
    if not s["n_pairs"]:
        return head + f"no paired {x}/{y} configurations on {s['platform']} in this run."
    parts = [f"{_where(s['platform'])}, {x} had the lower attack success rate (was more robust) in "
             f"{s['n_x_lower']} of {s['n_pairs']} configurations paired by model, attack and quantization, "
             f"{y} in {s['n_x_higher']}, with {s['n_equal']} tied; median difference {x} \u2212 {y} "
             f"{format_pp(s['median_difference'])}"]
    if s.get("by_quantization"):
        parts.append(" (" + "; ".join(
            f"{q}: {x} lower in {b['n_x_lower']} of {b['n_pairs']}, median {format_pp(b['median_difference'])}"
            for q, b in s["by_quantization"].items()) + ")")
    ts = _test_sentence(s, x, y)
    text = head + "".join(parts) + ". " + ts[0].upper() + ts[1:]
    text += _mcnemar_sentence(s, "the shared source samples")
    text += _largest_sentence(s, x, y)
    text += " " + _verdict(s, f"{x} is less robust than {y}", f"{x} is more robust than {y}")
    return text


def answer_rq2(s: dict) -> str:
    p = s["platform"]
    head = f"RQ2 ({p} vs PC): "
    if not s["n_pairs"]:
        return head + f"no {p} float configuration has its PC float counterpart in this run."
    text = (head + f"Moving the float models from the PC framework to {p} lowered the attack success rate in "
            f"{_counts(s, 'configurations', 'raised it')} (paired by framework, model and attack); "
            f"median change {format_pp(s['median_difference'])}")
    if s.get("by_framework"):
        text += " (" + "; ".join(
            f"{framework_name(f, p)}: lower in {b['n_x_lower']}, higher in {b['n_x_higher']} of {b['n_pairs']}, "
            f"median {format_pp(b['median_difference'])}"
            for f, b in s["by_framework"].items()) + ")"
    ts = _test_sentence(s, p, "pc")
    text += ". " + ts[0].upper() + ts[1:]
    text += _mcnemar_sentence(s, "the same adversarial PNGs")
    text += _largest_sentence(s, p, "PC")
    text += " " + _verdict(s, f"the {p} runtime is less robust than the PC framework",
                           f"the {p} runtime is more robust than the PC framework")
    q = s.get("int8_vs_pc_float")
    if q and q["n_pairs"]:
        w = q["wilcoxon"]
        text += (f" The int8 {p} models against the PC float models: success lower in {q['n_x_lower']} of "
                 f"{q['n_pairs']}, higher in {q['n_x_higher']}, median change {format_pp(q['median_difference'])}, "
                 f"Wilcoxon p={format_p(w['p_value'])}, A={format_a(q['a'])} ({q['a_magnitude']}).")
    return text


def answer_rq3(s: dict) -> str:
    p = s["platform"]
    head = f"RQ3 ({p}): "
    if not s["n_pairs"]:
        return head + f"no int8 configuration on {p} has its float counterpart in this run."
    text = (head + f"{_where(p)}, int8 quantization lowered the attack success rate in "
            f"{s['n_x_lower']} of {s['n_pairs']} configurations (paired by framework, model and attack), "
            f"raised it in {s['n_x_higher']} and left it unchanged in {s['n_equal']}; "
            f"median change {format_pp(s['median_difference'])}")
    if s["by_attack"]:
        text += " (median by attack: " + ", ".join(
            f"{ATTACK_NAMES.get(a, a)} {format_pp(b['median_difference'])}" for a, b in s["by_attack"].items()) + ")"
    ts = _test_sentence(s, "int8", "float")
    text += ". " + ts[0].upper() + ts[1:]
    text += _mcnemar_sentence(s, "the same adversarial PNGs")
    text += _largest_sentence(s, "int8", "float")
    text += " " + _verdict(s, "int8 made the models less robust (higher success rates)",
                           "int8 made the models more robust (lower success rates)")
    return text


def answer_questions(statistics: Mapping[str, Any]) -> dict[str, str]:
    """Short generated answers to RQ1-RQ3; the wording follows the numbers in ``statistics``."""
    answers = {}
    for rq, fn in (("rq1", answer_rq1), ("rq2", answer_rq2), ("rq3", answer_rq3)):
        per_platform = statistics.get(rq) or {}
        if not per_platform:
            answers[rq] = f"{rq.upper()}: no mobile or device configurations in this run."
        else:
            answers[rq] = " ".join(fn(s) for s in per_platform.values())
    return answers
