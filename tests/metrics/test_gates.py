"""The baseline file and the gates' statistics: exact McNemar, Wilson bounds, fingerprints,
proposals, and a reader that refuses every malformed file with a ThresholdError."""

from __future__ import annotations

import copy
import json
import re

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from harness.metrics import gates as gating
from harness.attack.profiles import load_profile
from harness.study import matrix

IDS = list(range(1000, 1300))
HOST = matrix(("pc", "mobile", "arm64"), load_profile("default").attack_names)


def _record(cid: str, fooled, clean=None, adversarial=None, host_vs_arm=None) -> dict:
    platform = cid.rsplit("-", 1)[-1]
    n = len(fooled)
    record = {"configuration": cid, "platform": platform, "sample_ids": IDS[:n],
              "per_sample_success": [bool(x) for x in fooled],
              "per_sample_clean_agreement": [True] * n if clean is None else [bool(x) for x in clean],
              "per_sample_adversarial_agreement": [True] * n if adversarial is None else [bool(x) for x in adversarial],
              "adversarial_pngs": "/cache/advset/k/png"}
    if host_vs_arm is not None:
        record["host_vs_arm"] = host_vs_arm
    return record


def _fingerprint() -> dict:
    return {"samples": {"n": 300, "seed": 0, "emulated_samples": 60, "ids": IDS, "ids_sha256": "x"},
            "attacks": {"fgsm": {"eps": 0.0157}}, "weights": {"tensorflow-mobilenet_v2": "aa"},
            "versions": {"tensorflow-cpu": "2.21.0"}, "settings": {"threads": 1}}


def _baseline(records) -> gating.Baseline:
    return gating.propose(records, _fingerprint(), None, {"pc", "mobile", "arm64"}, "mini", "default",
                          gating.Policy(), "test")


def _fooled(rate: float, n: int = 300, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).random(n) < rate


# -- gates (the statistics themselves: tests/test_stats.py) ------------------------------------
def test_unchanged_run_passes_every_gate_of_the_baseline_it_proposed():
    records = [_record("tensorflow-mobilenet_v2-fgsm-float-pc", _fooled(0.4)),
               _record("tensorflow-mobilenet_v2-fgsm-int8-mobile", _fooled(0.45),
                       adversarial=~_fooled(0.1, seed=2)),
               _record("tensorflow-mobilenet_v2-fgsm-int8-arm64", _fooled(0.45)[:60],
                       host_vs_arm={"clean": {"bit_exact": True}, "adversarial": {"bit_exact": True}})]
    baseline = _baseline(records)
    assert baseline.entries["tensorflow-mobilenet_v2-fgsm-int8-arm64"].bit_exact
    assert not baseline.entries["tensorflow-mobilenet_v2-fgsm-int8-mobile"].bit_exact
    for record in records:
        verdicts = gating.judge(record, baseline, m=126)
        assert all(v.passed for v in verdicts), [v.text for v in verdicts]
    kinds = [v.kind for v in gating.judge(records[2], baseline, 126)]
    assert kinds == ["regression", "agreement (clean)", "agreement (adversarial)", "bit_exact"]
    assert [v.kind for v in gating.judge(records[0], baseline, 126)] == ["regression"]  # the PC is the reference


def test_regression_fails_only_when_significant_and_practically_worse():
    cid = "pytorch-resnet50-bim-float-pc"
    before = _fooled(0.3)
    baseline = _baseline([_record(cid, before)])
    worse = before.copy()
    newly = np.flatnonzero(~before)[:30]  # 30 samples (10 points) newly fooled
    worse[newly] = True
    (verdict,) = gating.judge(_record(cid, worse), baseline, m=126)
    assert not verdict.passed
    assert verdict.numbers["b"] == 30 and verdict.numbers["c"] == 0
    assert verdict.numbers["p_value"] == pytest.approx(0.5 ** 30)
    first = IDS[newly[0]]
    assert f"newly fooled ids: {first} (/cache/advset/k/png/{first}.png)" in verdict.text
    assert "30 of 300 samples newly fooled, 0 no longer fooled" in verdict.text
    # the same 30 flips against 25 in the other direction: not significant
    mixed = worse.copy()
    mixed[np.flatnonzero(before)[:25]] = False
    assert gating.judge(_record(cid, mixed), baseline, m=126)[0].passed
    # significant but below the practical margin (5 of 300 = 1.7 points < 2)
    small = before.copy()
    small[newly[:5]] = True
    (v,) = gating.judge(_record(cid, small), baseline, m=1)
    assert v.numbers["p_value"] < 0.05 / 1 and v.passed
    # fewer fooled is never a regression
    better = before.copy()
    better[np.flatnonzero(before)[:40]] = False
    assert gating.judge(_record(cid, better), baseline, m=1)[0].passed


def test_regression_on_other_sample_ids_is_a_fingerprint_error():
    cid = "pytorch-resnet50-bim-float-pc"
    baseline = _baseline([_record(cid, _fooled(0.3))])
    record = _record(cid, _fooled(0.3))
    record["sample_ids"] = list(reversed(record["sample_ids"]))
    with pytest.raises(gating.FingerprintError, match="sample ids are not this run's"):
        gating.judge(record, baseline, 1)


def test_agreement_gate_fails_on_a_drop_and_lists_disagreeing_ids():
    cid = "tensorflow-resnet50-fgsm-int8-mobile"
    fooled = _fooled(0.5)
    baseline = _baseline([_record(cid, fooled)])
    entry = baseline.entries[cid]
    assert entry.clean_agreement == 1.0 and 0.96 <= entry.min_clean_agreement < 0.99
    clean = np.ones(300, bool)
    clean[::10] = False  # 90% agreement
    verdicts = {v.kind: v for v in gating.judge(_record(cid, fooled, clean=clean), baseline, 126)}
    assert verdicts["regression"].passed and verdicts["agreement (adversarial)"].passed
    failed = verdicts["agreement (clean)"]
    assert not failed.passed and f"disagreeing ids: {IDS[0]}, {IDS[10]}" in failed.text
    assert "270/300" in failed.text


def test_bit_exact_gate_fails_when_the_arm_build_differs():
    cid = "pytorch-mobilenet_v2-fgsm-int8-arm64"
    exact = {"clean": {"bit_exact": True, "max_abs_logit_diff": 0.0, "prediction_agreement": 1.0},
             "adversarial": {"bit_exact": True, "max_abs_logit_diff": 0.0, "prediction_agreement": 1.0}}
    baseline = _baseline([_record(cid, _fooled(0.5)[:60], host_vs_arm=exact)])
    differs = copy.deepcopy(exact)
    differs["adversarial"].update(bit_exact=False, max_abs_logit_diff=0.03)
    verdict = gating.judge(_record(cid, _fooled(0.5)[:60], host_vs_arm=differs), baseline, 1)[-1]
    assert verdict.kind == "bit_exact" and not verdict.passed and "adversarial: differs" in verdict.text


def test_run_level_benjamini_hochberg_catches_what_no_single_case_did():
    # 10 configurations each with p = 0.004: above 0.05/10 per case, all rejected by BH
    records = [{"configuration": f"c{i}", "passed": True, "regression": {"p_value": 0.004, "rise": 0.05}}
               for i in range(10)]
    rejected = gating.run_level_regressions(records, gating.Policy())
    assert [cid for cid, _ in rejected] == [f"c{i}" for i in range(10)]
    assert all(q == pytest.approx(0.004) for _, q in rejected)
    records[0]["regression"]["rise"] = 0.0  # significant but not practically worse
    assert "c0" not in dict(gating.run_level_regressions(records, gating.Policy()))


# -- fingerprints -------------------------------------------------------------------------------
def test_fingerprint_differences_are_errors_or_notes_by_what_they_change():
    old = _fingerprint()
    new = copy.deepcopy(old)
    new["samples"]["n"] = 40
    new["weights"]["tensorflow-mobilenet_v2"] = "bb"
    new["versions"]["tensorflow-cpu"] = "2.22.0"
    errors, notes = gating.compare_fingerprints(old, new)
    assert "samples.n: baseline 300, this run 40" in errors
    assert any(e.startswith("weights.tensorflow-mobilenet_v2: baseline aa") for e in errors)
    assert notes == ["versions.tensorflow-cpu: baseline 2.21.0, this run 2.22.0"]
    cheap = {"samples": {"n": 300, "seed": 0, "emulated_samples": 60}, "attacks": old["attacks"]}
    assert gating.compare_fingerprints(old, cheap) == ([], [])  # ids and weights unknown yet: not compared


# -- proposals ----------------------------------------------------------------------------------
def test_proposal_round_trips_and_says_which_gates_got_looser(tmp_path):
    cid_pc, cid_m = "tensorflow-mobilenet_v2-fgsm-float-pc", "tensorflow-mobilenet_v2-fgsm-int8-mobile"
    old = _baseline([_record(cid_pc, _fooled(0.4)), _record(cid_m, _fooled(0.4))])
    path = tmp_path / "mini-default.json"
    gating.write_baseline(path, old)
    loaded = gating.load_baseline(path, [c.id for c in matrix()], "mini", "default")
    assert np.array_equal(loaded.entries[cid_pc].fooled, old.entries[cid_pc].fooled)
    assert loaded.sample_ids == IDS and loaded.policy == gating.Policy()
    more = _fooled(0.4)
    more[np.flatnonzero(~more)[:12]] = True
    disagree = np.ones(300, bool)
    disagree[:20] = False
    new = gating.propose([_record(cid_pc, more), _record(cid_m, _fooled(0.4), clean=disagree)], _fingerprint(),
                         loaded, {"pc", "mobile", "arm64"}, "mini", "default", gating.Policy(), "test")
    lines = gating.describe_changes(loaded, new)
    assert lines[0].startswith("2 configurations got looser gates")
    pc_line = next(line for line in lines if line.startswith(cid_pc))
    assert "(12 samples flipped)" in pc_line and "LOOSER: regression" in pc_line
    assert "LOOSER: min_clean_agreement" in next(line for line in lines if line.startswith(cid_m))
    assert gating.proposal_path(path).name == "mini-default.proposed.json"


# -- the reader refuses malformed files ------------------------------------------------------------
def _valid_document() -> dict:
    records = [_record(c.id, _fooled(0.4)[:60] if c.platform == "arm64" else _fooled(0.4)) for c in HOST]
    return _baseline(records).to_dict()


@pytest.fixture(scope="module")
def valid_document():
    return _valid_document()


def _load(tmp_path, document) -> gating.Baseline:
    path = tmp_path / "t.json"
    path.write_text(document if isinstance(document, str) else json.dumps(document))
    return gating.load_baseline(path, [c.id for c in matrix()], "mini", "default")


@pytest.mark.parametrize("mutate,message", [
    (lambda d: d["configurations"]["pytorch-resnet50-bim-int8-mobile"].pop("min_clean_agreement"),
     "missing 'min_clean_agreement'"),
    (lambda d: d["configurations"]["pytorch-resnet50-bim-int8-mobile"].update(max_speed=1),
     "unknown fields ['max_speed']"),
    (lambda d: d["configurations"]["pytorch-resnet50-bim-float-pc"].update(fooled="zz"), "hexadecimal bitmap"),
    (lambda d: d["configurations"]["pytorch-resnet50-bim-float-pc"].update(fooled="00"), "cannot hold exactly 300"),
    (lambda d: d["configurations"]["pytorch-resnet50-bim-float-pc"].update(success_rate=0.99),
     "does not match its bitmap"),
    (lambda d: d["configurations"]["pytorch-resnet50-bim-int8-mobile"].update(min_adversarial_agreement=1.5),
     "expected a number in [0.0, 1.0]"),
    (lambda d: d["configurations"].update({"tensorflow-vgg16-fgsm-float-pc": {}}),
     "configurations this run cannot produce: ['tensorflow-vgg16-fgsm-float-pc']"),
    (lambda d: d.update(profile="paper"), "written for profile 'paper', this run uses 'default'"),
    (lambda d: d.update(format=1), "baseline format 1, this suite reads format 2"),
    (lambda d: d["policy"].update(alpha=0), "policy.alpha"),
    (lambda d: d.update(sample_ids=[1, 1]), "'sample_ids' must be a list of distinct integers"),
])
def test_baseline_schema_is_validated(tmp_path, valid_document, mutate, message):
    document = copy.deepcopy(valid_document)
    mutate(document)
    with pytest.raises(gating.ThresholdError, match=re.escape(message)):
        _load(tmp_path, document)


def test_a_missing_configuration_fails_that_case_only(tmp_path, valid_document):
    document = copy.deepcopy(valid_document)
    del document["configurations"]["pytorch-resnet50-bim-float-pc"]
    baseline = _load(tmp_path, document)
    with pytest.raises(gating.ThresholdError, match="no baseline for pytorch-resnet50-bim-float-pc"):
        gating.judge(_record("pytorch-resnet50-bim-float-pc", _fooled(0.4)), baseline, 1)


def _paths(document, prefix=()):
    if isinstance(document, dict):
        for k, v in document.items():
            yield prefix + (k,)
            yield from _paths(v, prefix + (k,))
    elif isinstance(document, list) and document:
        yield prefix + (0,)


json_values = st.recursive(st.none() | st.booleans() | st.integers(-5, 10 ** 6) | st.floats(allow_nan=True)
                           | st.text(max_size=20), lambda inner: st.lists(inner, max_size=4)
                           | st.dictionaries(st.text(max_size=8), inner, max_size=4), max_leaves=10)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_fuzzed_baselines_are_loaded_or_refused_with_a_threshold_error(tmp_path, valid_document, data):
    """Replace any one value of a valid file with arbitrary JSON, or cut the text anywhere:
    the reader returns a baseline or raises ThresholdError, never anything else."""
    document = copy.deepcopy(valid_document)
    paths = list(_paths(document))
    how = data.draw(st.sampled_from(["replace", "truncate", "bytes"]))
    if how == "replace":
        path = data.draw(st.sampled_from(paths))
        target = document
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = data.draw(json_values)
        text = json.dumps(document)
    elif how == "truncate":
        text = json.dumps(document)
        text = text[:data.draw(st.integers(0, len(text) - 1))]
    else:
        text = data.draw(st.binary(max_size=200)).decode("latin-1")
    try:
        baseline = _load(tmp_path, text)
    except gating.ThresholdError:
        return
    for cid, entry in baseline.entries.items():  # what loads is usable
        assert entry.fooled.shape == (entry.n,)
